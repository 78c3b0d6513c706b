"""Access tokens on a request: RFC 6750 transport and challenges with the whole token check
(validation, RFC 8705 / RFC 9449 binding, scopes), and RFC 9449 DPoP proofs.

Properties beyond "only :class:`APISecError` escapes": every challenge is a header value of
visible ASCII (nothing a client sent can split or extend the header), every refusal renders
as JSON, and an accepted proof is bound to the thumbprint of the key that signed it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from itertools import product

from fuzz.fixtures import (
    AUD,
    CERT_DER,
    ISS,
    KEYS,
    NOW,
    ORIGIN,
    TRUSTED_PROXY,
    ResettableStore,
    Target,
    claims,
    clock,
    mint,
    parse_request,
    request,
)
from wsgi_apisec.bearer import TokenGuard, challenge, extract_token, problem_body
from wsgi_apisec.certs import CLIENT_CERT, SSL_CLIENT_CERT, XFCC, ClientCertSource
from wsgi_apisec.dpop import DPoPVerifier, HMACNonceSource, make_proof, normalize_htu
from wsgi_apisec.errors import APISecError, InvalidToken
from wsgi_apisec.keys import KeySet, x5t_s256
from wsgi_apisec.rules import TokenRequirement
from wsgi_apisec.tokens import AccessToken, Issuer, TokenValidator

_HEADER_SAFE = re.compile(r"[\x20-\x7e]*")
_STRAY_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
STORE = ResettableStore()
NONCES = HMACNonceSource(b"n" * 32, clock=clock)
DPOP = DPoPVerifier(algorithms=["ES256", "EdDSA", "PS256"], clock=clock, replay_store=STORE)
DPOP_NONCE = DPoPVerifier(algorithms=["ES256"], clock=clock, replay_store=STORE, nonce=NONCES)
VALIDATOR = TokenValidator(
    Issuer(ISS, jwks=KeySet([KEYS.issuer.public_key()]), audience=AUD), clock=clock, cache=True
)
CERTS = ClientCertSource(
    trusted_proxies=[TRUSTED_PROXY], header_forms=[CLIENT_CERT, SSL_CLIENT_CERT, XFCC]
)
GUARDS = [
    TokenGuard(VALIDATOR, cert_source=CERTS, dpop_verifier=DPOP, realm='r"\r\n'),
    TokenGuard(
        VALIDATOR,
        dpop_verifier=DPOP_NONCE,
        require_bound=True,
        allow_form=True,
        allow_query=True,
        resource_metadata=ORIGIN + "/.well-known/x",
    ),
]
REQUIREMENTS = [
    TokenRequirement(scopes=("accounts:read",)),
    TokenRequirement(any_of=("a", "payments:write"), optional=True),
    TokenRequirement(cert_bound=True),
    TokenRequirement(dpop=True),
]
JKT = KEYS.dpop.public_key().thumbprint()


def _check_refusal(err: APISecError, guard: TokenGuard, requirement: TokenRequirement) -> None:
    assert 400 <= err.status < 500 or err.status == 503, f"token check answered {err.status}"
    value = guard.challenge(err, requirement)
    assert (value is not None) == (err.status in (400, 401, 403)), "challenge missing"
    assert value is None or _HEADER_SAFE.fullmatch(value), f"unsafe challenge {value!r}"
    assert isinstance(json.loads(problem_body(err)), dict)


def bearer_one(data: bytes) -> None:
    raw = parse_request(data)
    message = raw.message(remote=TRUSTED_PROXY)
    message.context["tls_client_cert"] = CERT_DER
    for form, query in product((False, True), repeat=2):
        try:
            extract_token(message, allow_form=form, allow_query=query)
        except APISecError as err:
            assert err.status == 400
    STORE.reset()
    for guard, requirement in product(GUARDS, REQUIREMENTS):
        try:
            found = guard.authorize(message, requirement)
        except APISecError as err:
            _check_refusal(err, guard, requirement)
            continue
        assert found is not None or requirement.optional
    for _, value in raw.headers:  # whatever a client sends never breaks our header
        refusal = InvalidToken(value, challenge={"scope": value, value: "x"})
        text = challenge(refusal, realm=value, scope=value, algs=[value], scheme="DPoP")
        assert _HEADER_SAFE.fullmatch(text), f"unsafe challenge {text!r}"


def bearer_seeds() -> Iterable[bytes]:
    plain = mint(claims())
    bound = mint(claims(cnf={"x5t#S256": x5t_s256(CERT_DER)}))
    dpop_bound = mint(claims(cnf={"jkt": JKT}))
    uri = ORIGIN + "/accounts"
    proof = make_proof(KEYS.dpop, "GET", uri, access_token=dpop_bound, iat=NOW)
    yield request("GET", "/accounts", [("Authorization", f"Bearer {plain}")], b"")
    yield request("GET", "/accounts", [("Authorization", f"bearer  {bound}")], b"")
    yield request(
        "GET", "/accounts", [("Authorization", f"DPoP {dpop_bound}"), ("DPoP", proof)], b""
    )
    yield request("GET", f"/accounts?access_token={plain}", [], b"")
    form = [("Content-Type", "application/x-www-form-urlencoded; charset=ascii")]
    yield request("POST", "/accounts", form, f"a=1&access_token={plain}".encode())
    yield request("GET", "/accounts", [("Authorization", "Basic dXNlcjpwYXNz")], b"")


def dpop_one(data: bytes) -> None:
    raw = parse_request(data)
    message = raw.message()
    auth = message.headers.get("Authorization") or ""
    token = AccessToken(
        raw=auth.partition(" ")[2],
        claims={},
        issuer=ISS,
        subject=None,
        client_id=None,
        scopes=frozenset(),
        cnf={"jkt": JKT},
        scheme="DPoP",
    )
    STORE.reset()
    for verifier, bound in product((DPOP, DPOP_NONCE), (None, token)):
        try:
            proof = verifier.verify(message, bound)
        except APISecError as err:
            assert err.status == 401 and err.scheme == "DPoP"
            continue
        STORE.reset()
        assert proof.jkt == proof.key.thumbprint()
        assert bound is None or proof.jkt == JKT
    for uri in (message.target_uri, raw.target):
        once = normalize_htu(uri)
        # One pass of RFC 3986 §6.2.2 is a fixed point, unless a stray "%" (not a
        # percent-encoding) meets a decoded octet: "%2%65" -> "%2e" (refused: fails closed).
        if once is not None and _STRAY_PERCENT.search(uri) is None:
            assert normalize_htu(once) == once, "htu normalisation is not idempotent"


def dpop_seeds() -> Iterable[bytes]:
    uri = ORIGIN + "/dpop/pay"
    token = mint(claims(cnf={"jkt": JKT}))
    nonce = NONCES.issue()
    for extra in ({}, {"access_token": token}, {"access_token": token, "nonce": nonce}):
        proof = make_proof(KEYS.dpop, "POST", uri, iat=NOW, **extra)
        yield request(
            "POST", "/dpop/pay", [("Authorization", f"DPoP {token}"), ("DPoP", proof)], b""
        )
    proof = make_proof(KEYS.ed25519, "GET", ORIGIN + "/a/../b/%7e", iat=NOW - 30)
    yield request("GET", "/b/~?q=1", [("DPoP", proof)], b"")


TARGETS = {
    "bearer": Target(bearer_one, bearer_seeds),
    "dpop": Target(dpop_one, dpop_seeds),
}
