"""Detached-JWS verify cost next to raw ``cryptography`` and the JOSE libraries a user would
otherwise pick (PyJWT, joserfc, jwcrypto), all verifying the same token in the same run.

Run: ``python -m benchmarks.jws_verify`` (``--quick`` for a short run, ``--rounds N`` for
more samples; ``make bench`` runs it). Variants are interleaved in rounds, in a shuffled
order each round, so machine noise spreads over all of them; each figure is the median of
single-call timings. *Raw* is ``cryptography`` verifying a signature over
``ASCII(header) || '.' || body`` (the ``b64:false`` signing input of the same body), which is
the floor for both modes: read the ratios, not the absolute numbers (the machines are small
and noisy). Every variant is first checked to accept the body and refuse it with one byte
changed.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import platform
import random
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import jwt as pyjwt
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, utils
from joserfc import jwk as jose_jwk
from joserfc import jws as jose_jws
from jwcrypto import jwk as jwc_jwk  # type: ignore[import-untyped]
from jwcrypto import jws as jwc_jws

from wsgi_apisec import encoding, jws, profiles
from wsgi_apisec.encoding import b64url_decode, b64url_encode, json_dumps
from wsgi_apisec.keys import PrivateKey
from wsgi_apisec.message import Body, Headers, Message
from wsgi_apisec.resolvers import StaticKeyResolver
from wsgi_apisec.signatures import RequestVerifier

OURS = "flask-apisec jws.verify"
RAW = "raw cryptography"
#: Issue 6: 1 MiB detached verify, b64:false within 1.1 x raw, b64:true within 3 x raw.
TARGETS = {False: 1.1, True: 3.0}


# --- the harness (also used by benchmarks.signing and benchmarks.httpsig) -----------------


@dataclass
class Variant:
    name: str
    call: Callable[[], object]
    samples: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        """Median of the single-call timings, in µs."""
        return statistics.median(self.samples) * 1e6


def measure(
    items: list[Variant],
    rounds: int,
    batch: int,
    *,
    cpu: bool = False,
    seed: int = 7515,
    warmup: int = 1,
) -> None:
    """Interleaved rounds, shuffled each round; ``batch`` single-call timings per round,
    after ``warmup`` untimed calls of each variant. ``cpu``: time with the thread's CPU
    clock, which other processes on a busy machine disturb far less than the wall clock."""
    order = random.Random(seed)
    items = list(items)
    for item in items:
        for _ in range(warmup):
            item.call()
    clock = time.thread_time if cpu else time.perf_counter
    for _ in range(rounds):
        order.shuffle(items)
        for item in items:
            call, samples = item.call, item.samples
            for _ in range(batch):
                start = clock()
                call()
                samples.append(clock() - start)


def table(items: list[Variant], raw: str = RAW) -> list[str]:
    base = next(v for v in items if v.name == raw).median
    lines = ["| variant | median µs | x raw |", "|---|---:|---:|"]
    lines += [f"| {v.name} | {v.median:.1f} | {v.median / base:.2f} |" for v in items]
    return lines


def versions(*names: str) -> str:
    found = []
    for name in ("cryptography", "pybase64", *names):
        try:
            found.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            found.append(f"{name} (not installed)")
    simd = "active" if encoding.SIMD_BASE64 else "off"
    return f"python {platform.python_version()}; " + ", ".join(found) + f"; SIMD base64 {simd}"


@contextlib.contextmanager
def pure_base64() -> Iterator[None]:
    """Run with the standard-library base64 only (what an install without ``speed`` gets)."""
    saved = encoding._pybase64
    encoding._pybase64 = None
    try:
        yield
    finally:
        encoding._pybase64 = saved


def raw_verifier(key: PrivateKey, alg: str) -> Callable[[bytes, bytes], None]:
    pub: Any = key.public_key().key
    if alg.startswith("ES"):

        def verify_ec(signature: bytes, data: bytes) -> None:
            r = int.from_bytes(signature[:32], "big")
            s = int.from_bytes(signature[32:], "big")
            der = utils.encode_dss_signature(r, s)
            pub.verify(der, data, ec.ECDSA(hashes.SHA256()))

        return verify_ec
    pad: padding.AsymmetricPadding = (
        padding.PKCS1v15()
        if alg.startswith("RS")
        else padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
    )

    def verify_rsa(signature: bytes, data: bytes) -> None:
        pub.verify(signature, data, pad, hashes.SHA256())

    return verify_rsa


# --- the variants ----------------------------------------------------------------------------


def _peers(
    key: PrivateKey, alg: str, token: str, b64: bool
) -> dict[str, Callable[[bytes], object]]:
    """Each peer library verifying ``token`` over a given body, as its docs show."""
    public = key.public_key().to_jwk()
    jose_key, jwc_key = jose_jwk.import_key(public), jwc_jwk.JWK(**public)
    py_key = pyjwt.PyJWK(public).key
    head, _, sig = token.split(".")
    registry = jose_jws.construct_registry([alg])  # type: ignore[attr-defined]
    registry.max_payload_length = 1 << 30  # its default (128 000 bytes) refuses 1 MiB

    def pyjwt_verify(body: bytes) -> object:
        if b64:  # PyJWT takes detached_payload only for b64:false: re-attach the body
            attached = f"{head}.{b64url_encode(body)}.{sig}"
            return pyjwt.api_jws.decode_complete(attached, py_key, algorithms=[alg])
        return pyjwt.api_jws.decode_complete(token, py_key, [alg], detached_payload=body)

    def jwcrypto_verify(body: bytes) -> object:
        obj = jwc_jws.JWS()
        obj.allowed_algs = [alg]
        obj.deserialize(token)
        obj.verify(jwc_key, detached_payload=body)
        return obj

    return {
        "PyJWT" + (" (re-attached)" if b64 else ""): pyjwt_verify,
        "joserfc": lambda body: jose_jws.deserialize_compact(
            token, jose_key, registry=registry, payload=body
        ),
        "jwcrypto": jwcrypto_verify,
    }


def _refuses(call: Callable[[bytes], object], body: bytes) -> bool:
    try:
        call(bytes([body[0] ^ 1]) + body[1:])
    except Exception:
        return True
    return False


def variants(alg: str, size: int, b64: bool) -> list[Variant]:
    key = PrivateKey.generate(alg, kid="bench")
    body = bytes(range(256)) * (size // 256)
    token = jws.sign_detached(key, body, alg, b64=b64)
    pub = key.public_key()
    verifier = RequestVerifier(profiles.JWS, StaticKeyResolver([pub]))

    def profile(data: bytes) -> object:
        headers = Headers([("x-jws-signature", token)])
        return verifier.verify(Message("POST", "https://api.example/", headers, Body(data)))

    calls: dict[str, Callable[[bytes], object]] = {
        OURS: lambda data: jws.verify(jws.parse_compact(token), pub, Body(data)),
        "flask-apisec RequestVerifier (profile JWS)": profile,
        **_peers(key, alg, token, b64),
    }
    items = []
    for name, call in calls.items():
        call(body)
        assert _refuses(call, body), name
        items.append(Variant(name, lambda call=call: call(body)))  # type: ignore[misc]
    if b64:
        items.insert(1, Variant(OURS + " (no pybase64)", _without_simd(items[0].call)))
    raw = raw_verifier(key, alg)
    # The floor: raw verification of a signature made over ``header.body`` (RFC 7797 input).
    header = {"alg": alg, "b64": False}
    raw_sig = b64url_decode(jws.sign(key, body, header).split(".")[2])
    raw_input = f"{b64url_encode(json_dumps(header))}.".encode() + body
    items.append(Variant(RAW, lambda: raw(raw_sig, raw_input)))
    return items


def _without_simd(call: Callable[[], object]) -> Callable[[], object]:
    def run() -> object:
        with pure_base64():
            return call()

    return run


def report(alg: str, size: int, b64: bool, items: list[Variant]) -> str:
    label = f"{size // 1024} KiB" if size < 1 << 20 else f"{size >> 20} MiB"
    lines = [f"### {alg}, {label}, b64={str(b64).lower()}", "", *table(items)]
    if size >= 1 << 20:
        ratio = items[0].median / next(v for v in items if v.name == RAW).median
        met = "met" if ratio <= TARGETS[b64] else "NOT met"
        lines += ["", f"target: {OURS} <= {TARGETS[b64]} x raw: {ratio:.2f} ({met})"]
    return "\n".join(lines)


def arguments(doc: str, rounds: int, quick: int) -> argparse.ArgumentParser:
    """The options every benchmark takes."""
    parser = argparse.ArgumentParser(description=doc.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help=f"{quick} rounds instead of {rounds}")
    parser.add_argument("--rounds", type=int, help=f"rounds (default {rounds})")
    parser.add_argument("--cpu", action="store_true", help="time with the thread's CPU clock")
    parser.set_defaults(default_rounds=rounds, quick_rounds=quick)
    return parser


def rounds_of(args: argparse.Namespace) -> int:
    return int(args.rounds or (args.quick_rounds if args.quick else args.default_rounds))


def main(argv: list[str] | None = None) -> None:
    parser = arguments(__doc__ or "", 100, 12)
    parser.add_argument("--algs", nargs="+", default=["RS256", "PS256", "ES256"])
    parser.add_argument("--sizes", nargs="+", type=int, default=[1024, 1 << 20])
    args = parser.parse_args(argv)
    rounds = rounds_of(args)
    print(versions("PyJWT", "joserfc", "jwcrypto"))
    clock = "thread CPU time" if args.cpu else "wall clock"
    print(f"{rounds} rounds; 1 KiB: 20 calls per round, 1 MiB: 1 call per round; {clock}\n")
    for alg in args.algs:
        for size in args.sizes:
            for b64 in (False, True):
                items = variants(alg, size, b64)
                measure(items, rounds, 20 if size < 1 << 18 else 1, cpu=args.cpu)
                print(report(alg, size, b64, items), end="\n\n")


if __name__ == "__main__":
    main()
