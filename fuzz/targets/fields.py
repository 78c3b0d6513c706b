"""Header-field parsers: RFC 8941 structured fields, RFC 9530 digests, the Beckn / G2P Connect
``Signature`` header, and the client-certificate headers (RFC 9440, nginx, Envoy XFCC).

Properties beyond "only :class:`APISecError` escapes": a structured field that parses
serialises and parses back to the same value; a digest we compute always verifies; a
certificate taken from a header is a valid DER certificate, and only from a trusted proxy.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterable
from contextlib import suppress
from typing import Any
from urllib.parse import quote

from cryptography import x509

from fuzz.fixtures import (
    CERT_DER,
    CERT_PEM,
    KEYS,
    NOW,
    SENDER,
    TRUSTED_PROXY,
    UNTRUSTED_PEER,
    Target,
    parse_request,
    request,
)
from wsgi_apisec import beckn, digest, profiles, sfv
from wsgi_apisec.certs import CLIENT_CERT, SSL_CLIENT_CERT, XFCC, ClientCertSource
from wsgi_apisec.errors import APISecError
from wsgi_apisec.message import Body, Message
from wsgi_apisec.resolvers import StaticKeyResolver
from wsgi_apisec.signatures import ResponseSigner

# --- sfv --------------------------------------------------------------------------------------

_KINDS: list[tuple[Callable[..., Any], Callable[[Any], str]]] = [
    (sfv.parse_list, sfv.serialize_list),
    (sfv.parse_dictionary, sfv.serialize_dictionary),
    (sfv.parse_item, sfv.serialize_item),
]


def sfv_one(data: bytes) -> None:
    for parse, serialize in _KINDS:
        try:
            value = parse(data)
        except APISecError:
            continue
        text = serialize(value)  # RFC 8941 §4.1: everything parsed serialises
        assert parse(text) == value, "structured field does not round-trip"
        assert serialize(parse(text)) == text, "serialisation is not canonical"


def sfv_seeds() -> Iterable[bytes]:
    yield b'sig1=("@method" "@target-uri" "content-digest");created=1618884473;keyid="k"'
    yield b"sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:, sha-512=:YQ==:"
    yield b'a=?1, b=?0;x=1.5, c=(1 2 "three" tok/en);p, d=-999999999999999'
    yield b'1, 42.125, abc, (a b);q=9, :AAEC:, "x\\"y\\\\z"'


# --- digest -----------------------------------------------------------------------------------


def digest_one(data: bytes) -> None:
    """First line: a ``Content-Digest`` (also read as ``Want-Content-Digest``); rest: body."""
    value, _, body = data.partition(b"\n")
    for signed in (True, False):
        with suppress(APISecError):
            digest.verify_content_digest(value, body, signed=signed)
    with suppress(APISecError):
        digest.parse_want_digest(value)
    chosen = digest.choose_digest_algorithm(value)
    assert chosen is None or chosen in digest.SUPPORTED
    ours = digest.content_digest(body, digest.SUPPORTED)
    assert digest.verify_content_digest(ours, [body[:7], body[7:]]) == digest.SUPPORTED


def digest_seeds() -> Iterable[bytes]:
    body = b'{"hello": "world"}'
    yield digest.content_digest(body).encode() + b"\n" + body
    yield digest.content_digest(body, ["sha-512", "sha-256"]).encode() + b"\n" + body
    yield b"md5=:AAAA:, sha-256=:AAAA:\n" + body
    yield b"sha-256=10, sha-512=3, md5=0\n"


# --- beckn ------------------------------------------------------------------------------------

G2P = profiles.G2P_CONNECT.replace(options={**profiles.G2P_CONNECT.options, "sender_id": SENDER})
G2P_RESOLVER = StaticKeyResolver(owners={SENDER: [KEYS.ed25519.public_key()]})


def beckn_one(data: bytes) -> None:
    raw = parse_request(data)
    message = raw.message()
    for _, value in raw.headers:
        with suppress(APISecError):
            beckn.parse_header(value)
    try:
        result = G2P.mechanism.verify(G2P, message, G2P_RESOLVER, NOW)
    except APISecError:
        return
    assert result.owner == SENDER and result.alg == "ed25519"


def beckn_seeds() -> Iterable[bytes]:
    envelope = (
        b'{"signature":null,"header":{"message_id":"m-1","sender_id":"sender.example",'
        b'"action":"link"},"message":{"link_request":[]}}'
    )
    signer = ResponseSigner(G2P, KEYS.ed25519, clock=lambda: NOW)
    for body in (envelope, b"", b"not json"):
        message = Message("POST", "https://api.example.com/mapper/link", body=Body(body))
        headers = signer.sign(message)
        yield request("POST", "/mapper/link", headers, body)
        value = headers[0][1]
        yield request("POST", "/mapper/link", [("Authorization", "Signature " + value)], body)


# --- certs ------------------------------------------------------------------------------------

CERT_SOURCE = ClientCertSource(
    trusted_proxies=[TRUSTED_PROXY, "2001:db8::/32"],
    header_forms=[CLIENT_CERT, SSL_CLIENT_CERT, XFCC],
)


def certs_one(data: bytes) -> None:
    raw = parse_request(data)
    trusted = raw.message(remote=TRUSTED_PROXY)
    der = CERT_SOURCE.client_certificate(trusted)
    if der is not None:
        x509.load_der_x509_certificate(der)  # only a valid certificate comes out
    # Anyone else's headers are never read (and this message has no TLS certificate).
    assert CERT_SOURCE.client_certificate(raw.message(remote=UNTRUSTED_PEER)) is None
    peer = raw.target  # the request line's target doubles as a peer address to match
    if CERT_SOURCE.client_certificate(raw.message(remote=peer)) is not None:
        assert CERT_SOURCE.is_trusted_proxy(peer), "a header was read from an untrusted peer"


def certs_seeds() -> Iterable[bytes]:
    sf = ":" + base64.b64encode(CERT_DER).decode() + ":"
    escaped = quote(CERT_PEM, safe="")
    xfcc = f'By=spiffe://proxy;Hash=abc;Cert="{escaped}";Subject="CN=a,O=b";URI=spiffe://c'
    yield request("GET", "/", [("Client-Cert", sf)], b"")
    yield request("GET", "/", [("X-SSL-Client-Cert", escaped)], b"")
    yield request("GET", "/", [("X-Forwarded-Client-Cert", xfcc)], b"")
    yield request("GET", "10.0.0.7", [("Client-Cert", sf), ("X-SSL-Client-Cert", escaped)], b"")
    yield request("GET", "::ffff:10.0.0.7", [("X-Forwarded-Client-Cert", xfcc + ",By=x")], b"")


TARGETS = {
    "sfv": Target(sfv_one, sfv_seeds),
    "digest": Target(digest_one, digest_seeds),
    "beckn": Target(beckn_one, beckn_seeds),
    "certs": Target(certs_one, certs_seeds),
}
