"""A whole request through ``TokenMiddleware`` + ``SignatureMiddleware`` (:mod:`fuzz.stack`).

Input: one byte of :mod:`fuzz.stack` flags (chunked, trusted proxy, key-source outage,
lenient transports, TLS client certificate), then the request in the text form of
:mod:`fuzz.fixtures`. Nothing may escape the middleware, and :func:`fuzz.stack.check` holds.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from typing import NamedTuple
from urllib.parse import quote

from fuzz.fixtures import (
    CERT_DER,
    CERT_PEM,
    HOST,
    KEYS,
    NOW,
    ORIGIN,
    RawRequest,
    Target,
    claims,
    macro,
    mint,
    parse_request,
)
from fuzz.stack import CHUNKED, G2P, LENIENT, OCEN_ES256, OUTAGE, TLS_CERT, TRUSTED, Stack, check
from wsgi_apisec import profiles
from wsgi_apisec.dpop import access_token_hash, make_proof
from wsgi_apisec.keys import PrivateKey, x5t_s256
from wsgi_apisec.message import Body, Headers, Message
from wsgi_apisec.signatures import Profile, ResponseSigner

JKT = KEYS.dpop.public_key().thumbprint()
STACKS = (Stack(), Stack(lenient=True))


def wsgi_one(data: bytes) -> None:
    flags = data[0] if data else 0
    raw = parse_request(data[1:])
    check(STACKS[bool(flags & LENIENT)].run(raw, flags))


class Case(NamedTuple):
    """A valid request for one route (``accepted``: the app must get it) or a near miss."""

    name: str
    flags: int
    raw: RawRequest
    accepted: bool = True

    def encode(self) -> bytes:
        return bytes([self.flags]) + self.raw.encode()


def _case(
    name: str,
    flags: int,
    method: str,
    target: str,
    headers: list[tuple[str, str]],
    body: bytes = b"",
    accepted: bool = True,
) -> Case:
    return Case(name, flags, RawRequest(method, target, tuple(headers), body), accepted)


def _signed(
    profile: Profile,
    key: PrivateKey,
    method: str,
    target: str,
    headers: list[tuple[str, str]],
    body: bytes,
) -> list[tuple[str, str]]:
    message = Message(method, ORIGIN + target, Headers(headers), Body(body))
    return [*headers, *ResponseSigner(profile, key, clock=lambda: NOW).sign(message)]


JSON_BODY = b'{"amount": "10.00", "currency": "INR"}'
ENVELOPE = (
    b'{"signature":null,"header":{"message_id":"m-1","sender_id":"sender.example",'
    b'"action":"link"},"message":{"link_request":[]}}'
)


def signed_cases() -> list[Case]:
    """A good request for each signature route (FAPI 2.0 and OCEN also need a token)."""
    host = [("Host", HOST)]
    bearer = [
        *host,
        ("Authorization", f"Bearer {mint(claims())}"),
        ("Content-Type", "application/json"),
    ]
    fapi = _signed(profiles.FAPI2, KEYS.es256, "POST", "/fapi/pay", bearer, JSON_BODY)
    sig = _signed(profiles.HTTPSIG, KEYS.ed25519, "PUT", "/sig/x?y=1", host, b"\x00\xff")
    g2p = _signed(G2P, KEYS.ed25519, "POST", "/g2p/mapper/link", host, ENVELOPE)
    ocen = _signed(OCEN_ES256, KEYS.es256, "POST", "/ocen/loans", bearer, JSON_BODY)
    ocen_get = _signed(OCEN_ES256, KEYS.es256, "GET", "/ocen/loans?id=7", bearer, b"")
    detached = _signed(profiles.JWS, KEYS.es256, "POST", "/jws/a", host, JSON_BODY)
    cert_key = PrivateKey.from_key(KEYS.client_cert_key, kid="client")
    mtls = [*bearer, ("Client-Cert", ":" + base64.b64encode(CERT_DER).decode() + ":")]
    fapi_mtls = _signed(profiles.FAPI2, cert_key, "POST", "/fapi-mtls/pay", mtls, JSON_BODY)
    return [
        _case("fapi2", 0, "POST", "/fapi/pay", fapi, JSON_BODY),
        _case("fapi2-chunked", CHUNKED, "POST", "/fapi/pay", fapi, JSON_BODY),
        _case("fapi2-mtls-key", TRUSTED, "POST", "/fapi-mtls/pay", fapi_mtls, JSON_BODY),
        _case("fapi2-outage", OUTAGE, "POST", "/fapi/pay", fapi, JSON_BODY, accepted=False),
        _case("rfc9421", 0, "PUT", "/sig/x?y=1", sig, b"\x00\xff"),
        _case("g2p-connect", CHUNKED, "POST", "/g2p/mapper/link", g2p, ENVELOPE),
        _case("ocen", 0, "POST", "/ocen/loans", ocen, JSON_BODY),
        _case("ocen-get", 0, "GET", "/ocen/loans?id=7", ocen_get),
        _case("detached-jws", 0, "POST", "/jws/a", detached, JSON_BODY),
    ]


def token_cases() -> list[Case]:
    """A good request for each token route, and a few near misses."""
    host = [("Host", HOST)]
    token = mint(claims())
    bound = [
        *host,
        ("Authorization", f"Bearer {mint(claims(cnf={'x5t#S256': x5t_s256(CERT_DER)}))}"),
    ]
    sf = ":" + base64.b64encode(CERT_DER).decode() + ":"
    dpop_token = mint(claims(cnf={"jkt": JKT}))
    proof = make_proof(KEYS.dpop, "DELETE", ORIGIN + "/dpop/k", access_token=dpop_token, iat=NOW)
    dpop = [*host, ("Authorization", f"DPoP {dpop_token}")]
    header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": KEYS.dpop.public_key().to_jwk()}
    proof_claims = {
        "jti": "j",
        "htm": "GET",
        "htu": ORIGIN + "/dpop/m",
        "iat": int(NOW),
        "ath": access_token_hash(dpop_token),
    }
    at = macro("!jwt:", {"alg": "ES256", "typ": "at+jwt", "kid": "as-1"}, claims())
    form = [*host, ("Content-Type", "application/x-www-form-urlencoded")]
    ukob = {"alg": "PS256", "kid": "k", "crit": list(profiles.UKOB_CRIT)}
    ukob.update(profiles.ukob_header("org/ssa")(Message(), NOW))
    return [
        _case("mtls-tls", TLS_CERT, "GET", "/mtls/a", bound),
        _case("mtls-client-cert", TRUSTED, "GET", "/mtls/a", [*bound, ("Client-Cert", sf)]),
        _case(
            "mtls-nginx",
            TRUSTED,
            "GET",
            "/mtls/a",
            [*bound, ("X-SSL-Client-Cert", quote(CERT_PEM))],
        ),
        _case("dpop", 0, "DELETE", "/dpop/k", [*dpop, ("DPoP", proof)]),
        _case(
            "dpop-macro",
            0,
            "GET",
            "/dpop/m",
            [*dpop, ("DPoP", macro("!dpop:", header, proof_claims))],
        ),
        _case("bearer-macro", 0, "GET", "/accounts/1", [*host, ("Authorization", "Bearer " + at)]),
        _case("query-token", LENIENT, "GET", f"/public/x?access_token={token}", host),
        _case(
            "form-token",
            LENIENT | CHUNKED,
            "POST",
            "/accounts/f",
            form,
            f"access_token={token}".encode(),
        ),
        _case("optional-none", 0, "GET", "/public/x", host),
        _case("unprotected", 0, "POST", "/other", [*host, ("Content-Length", "3")], b"abcdef"),
        # No rule matches (not even the exempt one): passed through, as no default is set.
        _case("dot-segments", 0, "GET", "/health/../fapi/x", host),
        _case(
            "ukob",
            0,
            "POST",
            "/ukob/p",
            [*host, ("x-jws-signature", macro("!jws:", ukob, {}))],
            b"{}",
            False,
        ),
    ]


def wsgi_seeds() -> Iterable[bytes]:
    return [case.encode() for case in (*signed_cases(), *token_cases())]


TARGETS = {"wsgi": Target(wsgi_one, wsgi_seeds)}
