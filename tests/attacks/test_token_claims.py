"""Validly signed tokens whose claims try to confuse the checks (RFC 7519 §4.1, RFC 9068 §4,
RFC 8725 §3.8-3.11), and a token too large to parse."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from flask_apisec.testing import TestIssuer
from tests.attacks import forge
from tests.attacks.harness import Target, bearer, challenge, passed, refused

INVALID = "invalid_token"
FAR = 253402300799  # 9999-12-31T23:59:59Z


def refused_token(target: Target, token: str, code: str, description: str) -> None:
    resp = target.client.get("/read", headers=bearer(token))
    www = challenge(INVALID, description)
    refused(resp, target, 401, code, error=INVALID, www_authenticate=www)


def test_rfc7519_s4_duplicate_claim_names(target: Target, issuer: TestIssuer) -> None:
    # RFC 7519 §4: a parser MUST reject duplicate names or take the last; we reject, so a
    # claim cannot read one way to a gateway and another way here.
    good = json.dumps(forge.claims(issuer))
    for duplicate in (', "sub": "admin"}', ', "iss": "https://evil.example"}'):
        payload = (good[:-1] + duplicate).encode()
        token = forge.signed(issuer.key, forge.header(issuer), payload)
        refused_token(target, token, "token.malformed", "the token is not a well-formed JWT")


def test_rfc7515_s4_duplicate_header_member_kid(target: Target, issuer: TestIssuer) -> None:
    head = b'{"alg":"ES256","typ":"at+jwt","kid":"as-1","kid":"other"}'
    token = forge.signed_raw(issuer.key, head, json.dumps(forge.claims(issuer)).encode())
    refused_token(target, token, "token.malformed", "the token is not a well-formed JWT")


@pytest.mark.parametrize(
    ("name", "value"),
    [("exp", "NOW+300"), ("nbf", "NOW"), ("iat", "NOW"), ("exp", True), ("exp", ["NOW+300"])],
    ids=["exp-string", "nbf-string", "iat-string", "exp-bool", "exp-list"],
)
def test_rfc7519_s2_time_claim_not_a_numericdate(
    target: Target, issuer: TestIssuer, name: str, value: Any
) -> None:
    now = int(time.time())
    if isinstance(value, str):
        value = str(now + 300 if value.endswith("300") else now)
    elif isinstance(value, list):
        value = [now + 300]
    token = forge.signed(issuer.key, forge.header(issuer), forge.claims(issuer, **{name: value}))
    refused_token(target, token, "token.claims", f"the {name!r} claim is not a NumericDate")


@pytest.mark.parametrize(
    "exp", [1e300, 253402300800, -1.0], ids=["float-1e300", "year-10000", "negative"]
)
def test_rfc7519_s2_time_claim_out_of_range(target: Target, issuer: TestIssuer, exp: float) -> None:
    token = forge.signed(issuer.key, forge.header(issuer), forge.claims(issuer, exp=exp))
    refused_token(target, token, "token.claims", "the 'exp' claim is out of range")


def test_time_claim_with_hundreds_of_digits(target: Target, issuer: TestIssuer) -> None:
    text = json.dumps(forge.claims(issuer, exp=0)).replace('"exp": 0', '"exp": ' + "9" * 400)
    token = forge.signed(issuer.key, forge.header(issuer), text.encode())
    refused_token(target, token, "token.malformed", "the token is not a well-formed JWT")


def test_fractional_exp_is_a_valid_numericdate(target: Target, issuer: TestIssuer) -> None:
    """The positive control of the range checks: RFC 7519 §2 allows non-integer values."""
    claims = forge.claims(issuer, exp=time.time() + 300.5)
    token = forge.signed(issuer.key, forge.header(issuer), claims)
    passed(target.client.get("/read", headers=bearer(token)), target, "/read")


@pytest.mark.parametrize(
    ("name", "description"),
    [("nbf", "the token is not valid yet"), ("iat", "the token was issued in the future")],
)
def test_far_future_nbf_or_iat(
    target: Target, issuer: TestIssuer, name: str, description: str
) -> None:
    claims: dict[str, Any] = {name: FAR}
    token = issuer.token("read", **claims)
    refused_token(target, token, "token.not_yet_valid", description)


def test_expired_token(target: Target, issuer: TestIssuer) -> None:
    token = issuer.token("read", iat=int(time.time()) - 600, exp=int(time.time()) - 31)
    refused_token(target, token, "token.expired", "the token has expired")


@pytest.mark.parametrize(
    ("aud", "code", "description"),
    [
        (None, "token.claims", "the token lacks the 'aud' claim"),
        ("https://other.test", "token.audience", "the token is not meant for this audience"),
        (["https://other.test", "https://x.test"], "token.audience", "AUD"),
        ([], "token.claims", "AUD_SHAPE"),
        (["https://api.test", 7], "token.claims", "AUD_SHAPE"),
        ("https://api.test/", "token.audience", "AUD"),
        ("HTTPS://API.TEST", "token.audience", "AUD"),
    ],
    ids=[
        "missing",
        "wrong",
        "list-without-ours",
        "empty-list",
        "list-with-number",
        "slash",
        "case",
    ],
)
def test_rfc9068_s4_audience_confusion(
    target: Target, issuer: TestIssuer, aud: Any, code: str, description: str
) -> None:
    description = {
        "AUD": "the token is not meant for this audience",
        "AUD_SHAPE": "the 'aud' claim must be a string or a non-empty array of strings",
    }.get(description, description)
    token = issuer.token("read", aud=aud)
    refused_token(target, token, code, description)


@pytest.mark.parametrize(
    "iss",
    [
        "https://issuer.test/",
        "https://issuer.tes",
        "https://issuer.test.evil.example",
        "HTTPS://ISSUER.TEST",
        "https://issuer.test:443",
        " https://issuer.test",
        ["https://issuer.test"],
    ],
    ids=["trailing-slash", "prefix", "suffix-domain", "case", "port", "space", "list"],
)
def test_rfc9068_s4_partial_issuer_match(target: Target, issuer: TestIssuer, iss: Any) -> None:
    token = issuer.token("read", iss=iss)
    refused_token(target, token, "token.issuer", "the token issuer is not trusted")


@pytest.mark.parametrize(
    "typ",
    ["JWT", "jwt", None, "dpop+jwt", "secevent+jwt", "at+jwt; x=1", 1],
    ids=["JWT", "jwt", "absent", "dpop", "secevent", "params", "number"],
)
def test_rfc9068_s4_wrong_typ(target: Target, issuer: TestIssuer, typ: Any) -> None:
    token = issuer.token("read", header={"typ": typ})
    description = (
        "the token has no 'typ'; expected at+jwt"
        if typ is None
        else "the token 'typ' is not an access-token type"
    )
    refused_token(target, token, "token.type", description)


def test_id_token_presented_as_access_token(target: Target, issuer: TestIssuer) -> None:
    """An OpenID Connect ID token of the same issuer: ``typ`` JWT, ``aud`` the client."""
    token = issuer.token(
        "read", header={"typ": "JWT"}, aud="client-1", nonce="n-0S6", client_id=None, jti=None
    )
    refused_token(target, token, "token.type", "the token 'typ' is not an access-token type")


def test_keycloak_id_token_typ_claim(target: Target, issuer: TestIssuer) -> None:
    token = issuer.token("read", typ="ID")
    refused_token(target, token, "token.type", "the token is not an access token")


def test_one_megabyte_token(target: Target, issuer: TestIssuer) -> None:
    token = issuer.token("read", pad="A" * (1024 * 1024))
    start = time.perf_counter()
    refused_token(target, token, "token.too_large", "the token is too large")
    assert time.perf_counter() - start < 2.0  # a bound (refused before parsing), not a benchmark
