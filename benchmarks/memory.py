"""Peak memory of verifying (and signing) a large signed request through SignatureMiddleware.

Run: ``python -m benchmarks.memory`` (``--quick`` for 16 MiB and tracemalloc only;
``--mib N`` for another size). Each case runs in a fresh subprocess. The request body is
generated as it is read (the test's own input costs no memory), the middleware spools it to a
temporary file past ``spool_threshold`` (1 MiB), verifies the detached JWS over it (b64:false
hashes the file's chunks; b64:true base64url-encodes them chunk by chunk and hashes that),
hands it to an app that reads it in 64 KiB pieces, and, for the ``+ response`` cases, signs a
response of the same size. Two measures: ``tracemalloc`` peak of Python allocations during the
request, and the growth of the process's peak RSS (``VmHWM``, reset through
``/proc/self/clear_refs``). *Control* does what a user of a JOSE library does: read the body
into memory and verify it with PyJWT (``detached_payload``), to show what the measures see
when a body is materialised. Issue 6 target: verifying adds less than 16 MiB at 64 MiB.
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt as pyjwt

from wsgi_apisec import jws, profiles
from wsgi_apisec.encoding import b64url_encode
from wsgi_apisec.keys import PrivateKey
from wsgi_apisec.middleware import SignatureMiddleware
from wsgi_apisec.resolvers import StaticKeyResolver

MiB = 1024 * 1024
PIECE = 64 * 1024
TARGET_MIB = 16
PATTERN = bytes(range(256)) * (PIECE // 256)


def _pieces(size: int) -> Iterator[bytes]:
    for start in range(0, size, PIECE):
        yield PATTERN[: min(PIECE, size - start)]


class _Generated:
    """``wsgi.input`` that makes the body as it is read."""

    def __init__(self, size: int) -> None:
        self.left = size

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 else min(n, self.left)
        self.left -= n
        return (PATTERN * (n // len(PATTERN) + 1))[:n] if n else b""


def _reader(size: int, respond: bool) -> Any:
    def app(environ: dict[str, Any], start_response: Any) -> Any:
        stream, seen = environ["wsgi.input"], 0
        while piece := stream.read(PIECE):
            seen += len(piece)
        assert seen == size, seen
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return _pieces(size) if respond else [b"ok"]

    return app


def _environ(size: int, token: str) -> dict[str, Any]:
    return {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/upload",
        "SERVER_NAME": "api.example",
        "SERVER_PORT": "443",
        "wsgi.url_scheme": "https",
        "CONTENT_LENGTH": str(size),
        "CONTENT_TYPE": "application/octet-stream",
        "HTTP_X_JWS_SIGNATURE": token,
        "wsgi.input": _Generated(size),
    }


def _request(case: str, size: int, b64: bool) -> tuple[Any, Any]:
    """What is measured, and a check that it did what it should."""
    key = PrivateKey.generate("ES256", kid="bench")
    header = jws.build_header(key, "ES256", b64=b64)
    token = jws.sign(key, _pieces(size), header)
    if case == "control":
        public = pyjwt.PyJWK(key.public_key().to_jwk()).key

        def control() -> Any:
            body = _Generated(size).read()
            if b64:
                head, _, sig = token.split(".")
                attached = f"{head}.{b64url_encode(body)}.{sig}"
                return pyjwt.api_jws.decode_complete(attached, public, ["ES256"])
            return pyjwt.api_jws.decode_complete(token, public, ["ES256"], detached_payload=body)

        return control, lambda result: result is not None
    respond = case == "verify + response"
    profile = profiles.JWS.replace(sign_alg="ES256", sign_b64=b64)
    middleware = SignatureMiddleware(
        _reader(size, respond),
        [],
        resolver=StaticKeyResolver([key.public_key()]),
        default_profile=profile,
        signing_key=key if respond else None,
        max_body=size + MiB,
        max_response_body=size + MiB,
    )
    statuses: list[str] = []

    def call() -> int:
        result = middleware(_environ(size, token), _recorder(statuses))
        sent = sum(len(piece) for piece in result)
        result.close()  # type: ignore[attr-defined]
        return sent

    return call, lambda sent: statuses == ["200 OK"] and sent == (size if respond else 2)


def _recorder(statuses: list[str]) -> Any:
    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        statuses.append(status)

    return start_response


def _vm(name: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1]) * 1024
    return 0


def child(case: str, size: int, b64: bool, mode: str) -> dict[str, Any]:
    call, ok = _request(case, size, b64)
    gc.collect()
    if mode == "tracemalloc":
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        result = call()
        peak = tracemalloc.get_traced_memory()[1] - before
        tracemalloc.stop()
    else:
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
        before = _vm("VmRSS")
        result = call()
        peak = _vm("VmHWM") - before
    assert ok(result), case
    return {"peak": peak}


CASES = ("verify", "verify + response", "control")


def run(case: str, size: int, b64: bool, mode: str) -> float:
    argv = [sys.executable, "-m", "benchmarks.memory", "--child", case, str(size), str(b64)]
    done = subprocess.run([*argv, mode], capture_output=True, text=True, check=True)
    return float(json.loads(done.stdout.strip().splitlines()[-1])["peak"]) / MiB


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="16 MiB, tracemalloc only")
    parser.add_argument("--mib", type=int, help="body size in MiB (default 64)")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        case, size, b64, mode = args.child
        print(json.dumps(child(case, int(size), b64 == "True", mode)))
        return
    mib = args.mib or (16 if args.quick else 64)
    modes = ("tracemalloc",) if args.quick else ("tracemalloc", "rss")
    print(f"ES256 detached JWS over a {mib} MiB body; peak growth during one request, MiB\n")
    print("| case | b64 | " + " | ".join(modes) + " |")
    print("|---|---|" + "---:|" * len(modes))
    worst = 0.0
    for case in CASES:
        for b64 in (False, True):
            peaks = [run(case, mib * MiB, b64, mode) for mode in modes]
            if case == "verify":
                worst = max(worst, *peaks)
            cells = " | ".join(f"{p:.1f}" for p in peaks)
            print(f"| {case} | {str(b64).lower()} | {cells} |")
    limit = TARGET_MIB * mib / 64
    met = "met" if worst < limit else "NOT met"
    print(f"\ntarget: verifying adds < {limit:g} MiB: worst {worst:.1f} MiB ({met})")


if __name__ == "__main__":
    main()
