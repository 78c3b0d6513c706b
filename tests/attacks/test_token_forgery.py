"""Forged and mangled access tokens (RFC 8725 §2, §3.1; RFC 7515 §4.1.11; RFC 9068 §4).

Each attack is refused by both entry points with 401 ``invalid_token``, the exact RFC 6750
challenge, before the app runs.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from flask_apisec.testing import TestIssuer
from tests.attacks import forge
from tests.attacks.harness import Target, bearer, challenge, passed, refused
from wsgi_apisec.encoding import b64url_encode
from wsgi_apisec.keys import PrivateKey

INVALID = "invalid_token"


def refused_token(target: Target, token: str, code: str, description: str) -> None:
    resp = target.client.get("/read", headers=bearer(token))
    refused(
        resp,
        target,
        401,
        code,
        error=INVALID,
        www_authenticate=challenge(INVALID, description),
    )


def test_positive_control_valid_token_reaches_the_app(target: Target, issuer: TestIssuer) -> None:
    doc = passed(target.client.get("/read", token=issuer.token("read")), target, "/read")
    assert doc["sub"] == "client-1"


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
def test_rfc7515_A5_alg_none_in_any_letter_case(
    target: Target, issuer: TestIssuer, alg: str
) -> None:
    token = forge.unsigned(forge.header(issuer, alg=alg), forge.claims(issuer))
    refused_token(target, token, "token.header", f"algorithm {alg!r} is not supported")


def test_rfc8725_s2_1_hs256_signed_with_the_issuers_public_key(
    target: Target, issuer: TestIssuer
) -> None:
    pem = forge.public_pem(issuer.key)
    token = forge.hs256(pem, forge.header(issuer, alg="HS256"), forge.claims(issuer))
    refused_token(target, token, "token.header", "algorithm 'HS256' is not allowed here")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("jwk", "attacker"),
        ("jku", "https://attacker.example/jwks.json"),
        ("x5u", "https://attacker.example/cert.pem"),
        ("x5c", ["MIIBattacker"]),
    ],
)
def test_rfc8725_s3_10_key_named_by_the_token(
    target: Target, issuer: TestIssuer, name: str, value: Any
) -> None:
    attacker = PrivateKey.generate("ES256", kid=issuer.key.kid)
    if name == "jwk":
        value = attacker.public_key().to_jwk()
    token = forge.signed(attacker, forge.header(issuer, **{name: value}), forge.claims(issuer))
    refused_token(target, token, "token.header", f"header parameter {name!r} is not accepted")


@pytest.mark.parametrize(
    "kid",
    ["../../etc/passwd", "keys/../../secret", "./as-1", "a\\b", "k\x00", "", "x" * 257, 7],
    ids=["dotdot", "nested", "dot", "backslash", "nul", "empty", "long", "number"],
)
def test_kid_traversal_or_junk(target: Target, issuer: TestIssuer, kid: Any) -> None:
    token = issuer.token("read", header={"kid": kid})
    refused_token(target, token, "token.header", "the token 'kid' is not acceptable")


def test_kid_absolute_path_is_only_ever_a_lookup_key(target: Target, issuer: TestIssuer) -> None:
    """``/`` is a base64 character, so ``/dev/null`` reaches the issuer's key set, where it
    is a dictionary key that names nothing."""
    token = issuer.token("read", header={"kid": "/dev/null"})
    refused_token(target, token, "token.key", "no key of the issuer matches the token")


def test_ecdsa_signature_r_and_s_zero(target: Target, issuer: TestIssuer) -> None:
    head, payload, _ = issuer.token("read").split(".")
    token = f"{head}.{payload}.{b64url_encode(bytes(64))}"
    refused_token(target, token, "token.signature", "the token signature does not verify")


def test_stripped_signature(target: Target, issuer: TestIssuer) -> None:
    head, payload, _ = issuer.token("read").split(".")
    refused_token(
        target, f"{head}.{payload}.", "token.signature", "the token signature does not verify"
    )
    refused_token(
        target, f"{head}.{payload}", "token.malformed", "the token is not a well-formed JWT"
    )


def test_json_serialised_jws(target: Target, issuer: TestIssuer) -> None:
    head, payload, signature = issuer.token("read").split(".")
    general = json.dumps({"protected": head, "payload": payload, "signature": signature})
    # Not even an RFC 6750 b64token: refused at the transport, before any parsing.
    resp = target.client.get("/read", headers=bearer(general))
    description = "the Bearer credentials are malformed"
    refused(
        resp,
        target,
        400,
        "request.invalid",
        error="invalid_request",
        www_authenticate=challenge("invalid_request", description),
    )
    # The same members as a b64token-shaped string still are not a compact JWS.
    flattened = b64url_encode(general.encode())
    refused_token(target, flattened, "token.malformed", "the token is not a well-formed JWT")


def test_rfc7515_s4_1_11_unknown_crit(target: Target, issuer: TestIssuer) -> None:
    head = forge.header(issuer, crit=["urn:example:must-understand"])
    head["urn:example:must-understand"] = True
    token = forge.signed(issuer.key, head, forge.claims(issuer))
    description = "critical header parameter 'urn:example:must-understand' is not understood"
    refused_token(target, token, "token.header", description)


def test_rfc7797_unencoded_payload_in_an_access_token(target: Target, issuer: TestIssuer) -> None:
    head = forge.header(issuer, b64=False, crit=["b64"])
    token = forge.unsigned(head, forge.claims(issuer), bytes(64))
    refused_token(target, token, "token.malformed", "the token is not a well-formed JWT")


def test_signature_spliced_from_another_token(target: Target, issuer: TestIssuer) -> None:
    good = issuer.token("read")
    forged = issuer.token("read admin", sub="admin")
    spliced = ".".join([*forged.split(".")[:2], good.split(".")[2]])
    refused_token(target, spliced, "token.signature", "the token signature does not verify")


def test_attacker_key_under_the_issuers_kid(target: Target, issuer: TestIssuer) -> None:
    attacker = PrivateKey.generate("ES256", kid=issuer.key.kid)
    token = forge.signed(attacker, forge.header(issuer), forge.claims(issuer))
    refused_token(target, token, "token.signature", "the token signature does not verify")
