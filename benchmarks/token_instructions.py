"""CPU instructions per token-protected request, counted with valgrind's callgrind: a
measure that does not move with machine load, for when wall-clock medians are too noisy.

Run: ``python -m benchmarks.token_instructions [--alg RS256] [--requests 1000]
[variant ...]`` (variants: base, floor, floor_rfc9068, uncached, cached, pyjwt, authlib; needs
``valgrind``). For each variant the same app is run twice under callgrind, once with no
timed requests and once with ``--requests``; the difference divided by the count is the
cost of one request. Both runs load one fixed key (written once to a temporary file) and
use ``PYTHONHASHSEED=0``, so start-up costs the same in both. Each run takes about 30 s.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from wsgi_apisec.keys import PrivateKey

VARIANTS = ("base", "floor", "floor_rfc9068", "uncached", "cached", "pyjwt", "authlib")


def _child(alg: str, variant: str, count: int, pem: str) -> None:
    from benchmarks import tokens as bench
    from flask_apisec.testing import TestIssuer

    fixed = PrivateKey.from_pem(Path(pem).read_bytes(), kid="fixed", algorithms=[alg])
    # The issuer's key (flask_apisec.testing generates it with this very class).
    PrivateKey.generate = staticmethod(lambda *a, **k: fixed)  # type: ignore[method-assign]
    issuer = TestIssuer(alg)
    build = {
        "base": bench.baseline,
        "floor": bench.floor,
        "floor_rfc9068": bench.floor_rfc9068,
        "uncached": lambda i: bench.flask_apisec(i, cache=False),
        "cached": lambda i: bench.flask_apisec(i, cache=True),
        "pyjwt": bench.plain_pyjwt,
        "authlib": bench.authlib,
    }[variant]
    app = build(issuer)
    environ = bench._environ(issuer.token(bench.SCOPE))
    for _ in range(20 + count):
        bench._request(app, environ)


def _instructions(alg: str, variant: str, count: int, pem: str) -> int:
    cmd = [
        "valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
        sys.executable, "-m", "benchmarks.token_instructions", "--child",
        alg, variant, str(count), pem,
    ]  # fmt: skip
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stderr
    found = re.search(r"Collected : (\d+)", out)
    if found is None:
        raise SystemExit(f"no callgrind total for {variant}:\n{out[-2000:]}")
    return int(found.group(1))


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["--child"]:
        _child(args[1], args[2], int(args[3]), args[4])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--alg", default="RS256")
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("variants", nargs="*", default=["base", "floor", "uncached", "cached"])
    opts = parser.parse_args(args)
    with tempfile.TemporaryDirectory() as tmp:
        pem = Path(tmp, "key.pem")
        pem.write_bytes(PrivateKey.generate(opts.alg).to_pem())
        per = {
            v: (_instructions(opts.alg, v, opts.requests, str(pem))
                - _instructions(opts.alg, v, 0, str(pem))) / opts.requests
            for v in opts.variants
        }  # fmt: skip
    base = per.get("base", 0.0)
    floor = per.get("floor", 0.0) - base
    print(f"{opts.alg}, instructions per request ({opts.requests} requests, callgrind)")
    for v, n in per.items():
        over = n - base
        ratio = f"  {over / floor:.2f} x floor" if floor > 0 and v not in ("base", "floor") else ""
        print(f"  {v:9s} {n / 1000:8.1f}k  over base {over / 1000:7.1f}k{ratio}")


if __name__ == "__main__":
    main()
