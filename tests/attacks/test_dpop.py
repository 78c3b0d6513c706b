"""Every RFC 9449 check on the resource server (§4.3 steps 1-12, §7.1, §8, §11.1): each
mutation of an otherwise good proof is refused with 401 and a ``DPoP`` challenge."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from werkzeug.test import TestResponse

from flask_apisec.testing import TestIssuer
from tests.attacks import forge
from tests.attacks.harness import Setup, Target, dpop_challenge, passed, refused
from wsgi_apisec.encoding import b64url_encode
from wsgi_apisec.keys import PrivateKey

URL = "http://localhost/dpop"
PROOF = "invalid_dpop_proof"
NONCE_SECRET = b"n" * 32


@pytest.fixture(scope="module")
def holder() -> PrivateKey:
    return PrivateKey.generate("ES256", kid="holder")


def send(target: Target, token: str, proof: str | list[str] | None) -> TestResponse:
    headers: list[tuple[str, str]] = [("Authorization", f"DPoP {token}")]
    proofs = [proof] if isinstance(proof, str) else proof or []
    headers += [("DPoP", value) for value in proofs]
    return target.client.get("/dpop", headers=headers)


def refused_proof(
    resp: TestResponse, target: Target, description: str, code: str = "dpop.invalid"
) -> None:
    refused(
        resp, target, 401, code, error=PROOF, www_authenticate=dpop_challenge(PROOF, description)
    )


def test_positive_control_bound_token_with_a_good_proof(
    target: Target, issuer: TestIssuer, holder: PrivateKey
) -> None:
    token = issuer.token("read", dpop_key=holder)
    passed(send(target, token, forge.proof(holder, "GET", URL, token=token)), target, "/dpop")


def _p384_proof(holder: PrivateKey, token: str) -> str:
    key = PrivateKey.generate("ES384")
    jwk = key.public_key().to_jwk()
    head = {"alg": "ES384", "jwk": {k: jwk[k] for k in ("kty", "crv", "x", "y")}}
    return forge.proof(key, "GET", URL, token=token, head=head)


def _hs256_proof(holder: PrivateKey, token: str) -> str:
    head = {"typ": "dpop+jwt", "alg": "HS256", "jwk": {"kty": "oct", "k": "c2VjcmV0"}}
    claims = {"jti": "j", "htm": "GET", "htu": URL, "iat": int(time.time())}
    return forge.hs256(b"secret", head, claims)


def _none_proof(holder: PrivateKey, token: str) -> str:
    jwk = holder.public_key().to_jwk()
    head = {"typ": "dpop+jwt", "alg": "none", "jwk": jwk}
    return forge.unsigned(head, {"jti": "j", "htm": "GET", "htu": URL, "iat": int(time.time())})


def _other_signer(holder: PrivateKey, token: str) -> str:
    """Carries the holder's public key but is signed by someone else."""
    jwk = holder.public_key().to_jwk()
    head = {"jwk": {k: jwk[k] for k in ("kty", "crv", "x", "y")}}
    return forge.proof(PrivateKey.generate("ES256"), "GET", URL, token=token, head=head)


def _private_jwk(holder: PrivateKey, token: str) -> str:
    return forge.proof(holder, "GET", URL, token=token, head={"jwk": holder.to_jwk(private=True)})


def _mutated(**changes: Any) -> Callable[[PrivateKey, str], str]:
    """A proof for ``GET /dpop`` with ``changes`` (claims, ``head=``, ``drop=``)."""

    def make(holder: PrivateKey, token: str) -> str:
        return forge.proof(holder, "GET", URL, token=token, **changes)

    return make


NOW = int(time.time())
CASES: list[tuple[str, Callable[[PrivateKey, str], Any], str]] = [
    ("s4.3-1-no-proof", lambda h, t: None, "expected one DPoP header, got 0"),
    ("s4.3-2-not-a-jws", lambda h, t: "not.a.jwt", "DPoP proof is not a well-formed JWS"),
    (
        "s4.3-1-two-proofs",
        lambda h, t: [forge.proof(h, "GET", URL, token=t)] * 2,
        "DPoP proof is not a well-formed JWS",
    ),
    ("s4.3-4-typ-jwt", _mutated(head={"typ": "JWT"}), "DPoP proof typ must be dpop+jwt"),
    ("s4.3-4-typ-absent", _mutated(drop=("typ",)), "DPoP proof typ must be dpop+jwt"),
    ("s4.3-5-alg-none", _none_proof, "DPoP proof alg 'none' is not accepted"),
    ("s4.3-5-alg-hs256", _hs256_proof, "DPoP proof alg 'HS256' is not accepted"),
    ("s4.3-5-alg-not-offered", _p384_proof, "DPoP proof alg 'ES384' is not accepted"),
    ("s4.3-7-no-jwk", _mutated(drop=("jwk",)), "DPoP proof has no jwk header"),
    ("s4.3-7-private-jwk", _private_jwk, "DPoP proof jwk must not contain private key material"),
    ("s4.3-7-signed-by-another-key", _other_signer, "DPoP proof signature does not verify"),
    (
        "s4.3-crit",
        _mutated(head={"crit": ["urn:x"], "urn:x": 1}),
        "DPoP proof must be a plain compact JWT",
    ),
    ("s4.3-6-no-jti", _mutated(drop=("jti",)), "DPoP proof jti is missing or too long"),
    ("s4.3-6-long-jti", _mutated(jti="j" * 257), "DPoP proof jti is missing or too long"),
    ("s4.3-8-htm", _mutated(htm="POST"), "DPoP proof htm does not match the request method"),
    ("s4.3-8-htm-case", _mutated(htm="get"), "DPoP proof htm does not match the request method"),
    (
        "s4.3-9-htu-host",
        _mutated(htu="http://evil.example/dpop"),
        "DPoP proof htu does not match the request URI",
    ),
    (
        "s4.3-9-htu-path",
        _mutated(htu="http://localhost/read"),
        "DPoP proof htu does not match the request URI",
    ),
    (
        "s4.3-9-htu-scheme",
        _mutated(htu="https://localhost/dpop"),
        "DPoP proof htu does not match the request URI",
    ),
    ("s4.3-11-no-iat", _mutated(drop=("iat",)), "DPoP proof iat is missing"),
    ("s4.3-11-iat-string", _mutated(iat=str(NOW)), "DPoP proof iat is missing"),
    ("s4.3-11-iat-future", _mutated(iat=NOW + 3600), "DPoP proof iat is in the future"),
    ("s4.3-11-iat-old", _mutated(iat=NOW - 3600), "DPoP proof is too old"),
    ("s4.3-12-no-ath", _mutated(drop=("ath",)), "DPoP proof ath does not match the access token"),
    (
        "s4.3-12-ath-other-token",
        lambda h, t: forge.proof(h, "GET", URL, token=t + "x"),
        "DPoP proof ath does not match the access token",
    ),
]


@pytest.mark.parametrize(("make", "description"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_rfc9449_proof_check(
    target: Target,
    issuer: TestIssuer,
    holder: PrivateKey,
    make: Callable[[PrivateKey, str], Any],
    description: str,
) -> None:
    token = issuer.token("read", dpop_key=holder)
    refused_proof(send(target, token, make(holder, token)), target, description)


def test_rfc9449_s4_3_detached_proof(
    target: Target, issuer: TestIssuer, holder: PrivateKey
) -> None:
    token = issuer.token("read", dpop_key=holder)
    head, _, signature = forge.proof(holder, "GET", URL, token=token).split(".")
    refused_proof(
        send(target, token, f"{head}..{signature}"),
        target,
        "DPoP proof must be a plain compact JWT",
    )


def test_rfc9449_s6_1_proof_by_a_key_other_than_cnf_jkt(
    target: Target, issuer: TestIssuer, holder: PrivateKey
) -> None:
    token = issuer.token("read", dpop_key=holder)
    thief = PrivateKey.generate("ES256")
    resp = send(target, token, forge.proof(thief, "GET", URL, token=token))
    www = dpop_challenge("invalid_token", "Invalid DPoP key binding")
    refused(
        resp, target, 401, "token.dpop_key_mismatch", error="invalid_token", www_authenticate=www
    )


def test_rfc9449_s7_1_unbound_token_with_a_proof(
    target: Target, issuer: TestIssuer, holder: PrivateKey
) -> None:
    token = issuer.token("read")
    resp = send(target, token, forge.proof(holder, "GET", URL, token=token))
    www = dpop_challenge("invalid_token", "the token must be DPoP-bound")
    refused(resp, target, 401, "token.dpop_required", error="invalid_token", www_authenticate=www)


def test_rfc9449_s11_1_replayed_proof(
    target: Target, issuer: TestIssuer, holder: PrivateKey
) -> None:
    token = issuer.token("read", dpop_key=holder)
    proof = forge.proof(holder, "GET", URL, token=token)
    passed(send(target, token, proof), target, "/dpop")
    target.app.calls = 0
    refused_proof(
        send(target, token, proof), target, "DPoP proof has been used before", "dpop.replayed"
    )


def test_rfc9449_s8_server_nonce_required(
    build_target: Callable[[Setup], Target], setup: Setup, issuer: TestIssuer, holder: PrivateKey
) -> None:
    target = build_target(setup.replace(dpop_nonce=NONCE_SECRET))
    token = issuer.token("read", dpop_key=holder)
    resp = send(target, token, forge.proof(holder, "GET", URL, token=token))
    description = "Resource server requires nonce in DPoP proof"
    www = dpop_challenge("use_dpop_nonce", description)
    refused(resp, target, 401, "dpop.nonce_required", error="use_dpop_nonce", www_authenticate=www)
    nonce = resp.headers["DPoP-Nonce"]
    stale = send(
        target, token, forge.proof(holder, "GET", URL, token=token, nonce=b64url_encode(b"x" * 18))
    )
    refused(stale, target, 401, "dpop.nonce_required", error="use_dpop_nonce", www_authenticate=www)
    passed(
        send(target, token, forge.proof(holder, "GET", URL, token=token, nonce=nonce)),
        target,
        "/dpop",
    )


def test_rfc9449_s7_1_challenge_is_crlf_safe(
    target: Target, issuer: TestIssuer, holder: PrivateKey
) -> None:
    """The proof's ``alg`` is echoed in the description: CR, LF and quotes never reach the
    header."""
    token = issuer.token("read", dpop_key=holder)
    jwk = holder.public_key().to_jwk()
    head = {"typ": "dpop+jwt", "alg": 'x"\r\nSet-Cookie: a=b', "jwk": jwk}
    resp = send(target, token, forge.unsigned(head, {"jti": "j"}))
    assert resp.status_code == 401 and target.app.calls == 0
    value = resp.headers["WWW-Authenticate"]
    assert "\r" not in value and "\n" not in value and "Set-Cookie" not in resp.headers
    assert value.startswith('DPoP realm="api", error="invalid_dpop_proof"')
