"""RFC 9421 verification cost: a FAPI 2.0 request (ES256, 1 KiB JSON body, covering
``@method``, ``@target-uri``, ``authorization`` and ``content-digest``) verified by us, by the
peer library ``http-message-signatures`` and by raw ``cryptography`` over the signature base.

Run: ``python -m benchmarks.httpsig`` (``--quick``, ``--rounds N``, ``--cpu``). Interleaved,
shuffled rounds; medians of single calls (see :mod:`benchmarks.jws_verify`). Both libraries
check the ``Content-Digest`` against the body. *sfv parse* is the RFC 8941 parsing of the
three fields alone, to show its share. Each verifier is first checked to accept the request
and refuse it with one body byte changed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils
from http_message_signatures import HTTPMessageVerifier, MappingKeyResolver, algorithms

from benchmarks.jws_verify import Variant, arguments, measure, rounds_of, table, versions
from wsgi_apisec import sfv
from wsgi_apisec.fapi2 import FAPI2, FAPI2_REQUEST_POLICY
from wsgi_apisec.httpsig_components import signature_base
from wsgi_apisec.httpsig_policy import signature_input
from wsgi_apisec.keys import PrivateKey
from wsgi_apisec.message import Body, Headers, Message
from wsgi_apisec.resolvers import StaticKeyResolver
from wsgi_apisec.signatures import RequestVerifier, ResponseSigner

URL = "https://api.example.com/fdx/v6/accounts?offset=0"
RAW = "raw cryptography verify (signature base)"


@dataclass
class PeerRequest:
    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)


def _signed(key: PrivateKey, body: bytes) -> Message:
    request = Message(
        "POST",
        URL,
        Headers([("Authorization", "DPoP token-value"), ("Content-Type", "application/json")]),
        Body(body),
    )
    added = ResponseSigner(FAPI2, key, clock=time.time).sign(request)
    return Message("POST", URL, Headers([*request.headers.items(), *added]), Body(body))


def variants(size: int) -> list[Variant]:
    key = PrivateKey.generate("ES256", kid="client-1")
    body = (b'{"data":"' + b"x" * size)[: size - 2] + b'"}'
    message = _signed(key, body)
    ours = RequestVerifier(FAPI2, StaticKeyResolver([key.public_key()]))
    resolver = MappingKeyResolver(public_keys={"client-1": key.public_key().key}, private_keys={})
    peer = HTTPMessageVerifier(
        signature_algorithm=algorithms.ECDSA_P256_SHA256, key_resolver=resolver
    )
    peer_request = PeerRequest("POST", URL, dict(message.headers.items()))

    def verify_ours(data: bytes) -> Any:
        return ours.verify(Message("POST", URL, message.headers, Body(data)))

    def verify_peer(data: bytes) -> Any:
        return peer.verify(peer_request, expect_tag="fapi-2-request", body=data)

    for call in (verify_ours, verify_peer):
        call(body)
        try:
            call(body[:-3] + b"y" + body[-2:])
        except Exception:
            pass
        else:
            raise AssertionError(f"{call.__name__} accepted a changed body")
    fields = [
        message.headers.get(n) or "" for n in ("signature-input", "signature", "content-digest")
    ]
    raw = _raw(key, message)
    return [
        Variant("flask-apisec RequestVerifier (FAPI2)", lambda: verify_ours(body)),
        Variant("http-message-signatures", lambda: verify_peer(body)),
        Variant(
            "sfv parse of the three fields (ours)",
            lambda: [sfv.parse_dictionary(f) for f in fields],
        ),
        Variant(RAW, raw),
    ]


def _raw(key: PrivateKey, message: Message) -> Any:
    inputs = sfv.parse_dictionary(message.headers.get("signature-input") or "")
    sig = signature_input("sig1", inputs["sig1"])
    FAPI2_REQUEST_POLICY.check(sig, message, time.time())
    base = signature_base(message, sig.covered, sig.value)
    value = sfv.parse_dictionary(message.headers.get("signature") or "")["sig1"]
    assert isinstance(value, sfv.Item) and isinstance(value.value, bytes)
    signature = value.value
    der = utils.encode_dss_signature(
        int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    )
    public: Any = key.public_key().key
    ecdsa = ec.ECDSA(hashes.SHA256())
    return lambda: public.verify(der, base, ecdsa)


def main(argv: list[str] | None = None) -> None:
    parser = arguments(__doc__ or "", 150, 20)
    parser.add_argument("--size", type=int, default=1024)
    args = parser.parse_args(argv)
    rounds = rounds_of(args)
    print(versions("http-message-signatures"))
    clock = "thread CPU time" if args.cpu else "wall clock"
    print(f"{rounds} rounds x 20 calls per variant; medians of single calls; {clock}\n")
    items = variants(args.size)
    measure(items, rounds, 20, cpu=args.cpu)
    print(f"### FAPI 2.0 request, ES256, {args.size} byte body\n")
    print("\n".join(table(items, RAW)))


if __name__ == "__main__":
    main()
