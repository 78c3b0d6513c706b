"""Detached-JWS verify cost next to raw ``cryptography`` verification of the same bytes.

Run: ``python -m benchmarks.jws_verify`` (or ``make bench``). Prints medians of repeated
timings and the ratio to raw verification measured in the same run; these machines are small
and noisy, so read the ratios, not the absolute numbers.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, utils

from wsgi_apisec import jws
from wsgi_apisec.encoding import b64url_decode, b64url_encode, json_dumps
from wsgi_apisec.keys import PrivateKey
from wsgi_apisec.message import Body


def median_us(fn: Callable[[], object], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1e6


def raw_verifier(key: PrivateKey, alg: str) -> Callable[[bytes, bytes], None]:
    pub = key.public_key().key
    if alg.startswith("ES"):

        def verify_ec(signature: bytes, data: bytes) -> None:
            r = int.from_bytes(signature[:32], "big")
            s = int.from_bytes(signature[32:], "big")
            der = utils.encode_dss_signature(r, s)
            pub.verify(der, data, ec.ECDSA(hashes.SHA256()))  # type: ignore[union-attr,call-arg]

        return verify_ec
    pad: padding.AsymmetricPadding = (
        padding.PKCS1v15()
        if alg.startswith("RS")
        else padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
    )

    def verify_rsa(signature: bytes, data: bytes) -> None:
        pub.verify(signature, data, pad, hashes.SHA256())  # type: ignore[union-attr,call-arg]

    return verify_rsa


def run(alg: str, size: int, b64: bool, repeat: int) -> tuple[float, float]:
    key = PrivateKey.generate(alg, kid="bench")
    body = bytes(range(256)) * (size // 256)
    token = jws.sign_detached(key, body, alg, b64=b64)
    parsed = jws.parse_compact(token)
    pub = key.public_key()
    wrapped = Body(body)
    sig_b64 = token.split(".")[2]
    signature = b64url_decode(sig_b64)
    raw = raw_verifier(key, alg)
    # The baseline: raw verification of a signature made over the very same body bytes.
    raw_signature = b64url_decode(jws.sign(key, body, {"alg": alg, "b64": False}).split(".")[2])
    raw_input = f"{b64url_encode(json_dumps({'alg': alg, 'b64': False}))}.".encode() + body

    ours = median_us(lambda: jws.verify(jws.parse_compact(token), pub, wrapped), repeat)
    base = median_us(lambda: raw(raw_signature, raw_input), repeat)
    assert parsed.alg == alg and signature
    return ours, base


def main() -> None:
    print(f"{'alg':6} {'body':>7} {'b64':>5} {'ours µs':>10} {'raw µs':>10} {'ratio':>6}")
    for alg in ("RS256", "PS256", "ES256"):
        for size, repeat in ((1024, 400), (1024 * 1024, 60)):
            for b64 in (False, True):
                ours, base = run(alg, size, b64, repeat)
                label = "1 KiB" if size == 1024 else "1 MiB"
                print(f"{alg:6} {label:>7} {b64!s:>5} {ours:10.1f} {base:10.1f} {ours / base:6.2f}")


if __name__ == "__main__":
    main()
