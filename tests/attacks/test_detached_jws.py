"""Detached-JWS request signatures (RFC 7515 App. F, RFC 7797): forged, confused and
replayed signatures under the generic JWS profile and OCEN."""

from __future__ import annotations

import json
from typing import Any

import pytest
from werkzeug.test import TestResponse

from flask_apisec.testing import TestIssuer
from tests.attacks import forge
from tests.attacks.harness import Parties, Target, bearer, passed, refused
from wsgi_apisec import jws
from wsgi_apisec.algorithms import get_algorithm
from wsgi_apisec.encoding import b64url_encode
from wsgi_apisec.keys import PrivateKey

BODY = b'{"amount":"10.00","currency":"EUR"}'
INVALID = "invalid_signature"


def post(
    target: Target, signature: str | None, body: bytes = BODY, path: str = "/jws", **headers: str
) -> TestResponse:
    if signature is not None:
        headers["x-jws-signature"] = signature
    return target.client.post(path, data=body, headers=headers, content_type="application/json")


NOT_VERIFIED = "signature does not verify"


def refused_signature(
    resp: TestResponse,
    target: Target,
    detail: str = NOT_VERIFIED,
    code: str = "signature.invalid",
    status: int = 401,
) -> dict[str, Any]:
    error = "invalid_request" if status == 400 else INVALID
    # Signature errors carry no auth scheme, so no WWW-Authenticate (RFC 9110 §11.6.1
    # needs a scheme the client can answer with).
    return refused(resp, target, status, code, error=error, www_authenticate=None, detail=detail)


def detached(key: PrivateKey, body: bytes = BODY, **header: Any) -> str:
    base = jws.build_header(key)
    base.update(header)
    return jws.sign(key, body, {k: v for k, v in base.items() if v is not None})


def test_positive_control_both_b64_forms(target: Target, parties: Parties) -> None:
    passed(post(target, detached(parties.jws)), target, "/jws", BODY)
    passed(post(target, jws.sign_detached(parties.jws, BODY, b64=False)), target, "/jws", BODY)


@pytest.mark.parametrize("alg", ["none", "NONE"])
def test_detached_alg_none(target: Target, parties: Parties, alg: str) -> None:
    head = forge.b64json({"alg": alg, "kid": parties.jws.kid})
    refused_signature(post(target, f"{head}.."), target, f"algorithm {alg!r} is not supported")
    assert target.resolver.queries == []


def test_detached_hs256_with_the_signers_public_key(target: Target, parties: Parties) -> None:
    pem = forge.public_pem(parties.jws)
    signature = forge.detached_hs256(pem, {"alg": "HS256", "kid": parties.jws.kid}, BODY)
    refused_signature(post(target, signature), target, "algorithm 'HS256' is not allowed here")
    assert target.resolver.queries == []


@pytest.mark.parametrize("name", ["jwk", "jku", "x5u", "x5c"])
def test_detached_key_named_by_the_message(target: Target, parties: Parties, name: str) -> None:
    attacker = PrivateKey.generate("ES256", kid=parties.jws.kid)
    value: Any = {
        "jwk": attacker.public_key().to_jwk(),
        "jku": "https://attacker.example/jwks",
        "x5u": "https://attacker.example/cert.pem",
        "x5c": ["MIIB"],
    }[name]
    resp = post(target, detached(attacker, **{name: value}))
    refused_signature(resp, target, f"header parameter {name!r} is not accepted")
    assert target.resolver.queries == []


def test_detached_unknown_crit(target: Target, parties: Parties) -> None:
    extra: dict[str, Any] = {"crit": ["urn:example:x"], "urn:example:x": 1}
    signature = detached(parties.jws, **extra)
    detail = "critical header parameter 'urn:example:x' is not understood"
    refused_signature(post(target, signature), target, detail)


def test_rfc7797_s6_b64_false_without_crit(target: Target, parties: Parties) -> None:
    """Only OCEN documents this leniency; the generic profile holds RFC 7797 §6."""
    signature = jws.sign_detached(parties.jws, BODY, b64=False, b64_in_crit=False)
    refused_signature(post(target, signature), target, "'b64' must be listed in 'crit'")


def test_rfc7797_b64_confusion_encoded_payload_sent_as_body(
    target: Target, parties: Parties
) -> None:
    """A ``b64: true`` signature over BODY signs ``b64url(BODY)``: sending those encoded bytes
    as the body must not verify (they would, if ``b64`` were ignored)."""
    signature = detached(parties.jws)
    encoded = b64url_encode(BODY).encode()
    refused_signature(post(target, signature, encoded), target)


def test_rfc7797_b64_false_signature_with_b64_flipped(target: Target, parties: Parties) -> None:
    signature = jws.sign_detached(parties.jws, BODY, b64=False)
    head, _, sig = signature.split(".")
    header = forge.unb64json(head)
    header.pop("b64"), header.pop("crit")
    refused_signature(post(target, f"{forge.b64json(header)}..{sig}"), target)


def test_signature_over_another_body(target: Target, parties: Parties) -> None:
    signature = detached(parties.jws, b'{"amount":"1.00","currency":"EUR"}')
    refused_signature(post(target, signature), target)


def test_attached_payload_instead_of_detached(target: Target, parties: Parties) -> None:
    """A compact JWS that carries its own payload says nothing about the body."""
    attached = jws.sign(
        parties.jws, b'{"amount":"1.00"}', jws.build_header(parties.jws), detached=False
    )
    detail = "x-jws-signature must be a detached JWS (empty payload part)"
    refused_signature(post(target, attached), target, detail)


def test_missing_signature(target: Target) -> None:
    detail = "the request has no x-jws-signature header"
    refused_signature(post(target, None), target, detail, "signature.missing")


def test_stripped_signature_value(target: Target, parties: Parties) -> None:
    head = detached(parties.jws).split(".")[0]
    refused_signature(post(target, f"{head}.."), target)


def test_json_serialised_jws_signature(target: Target, parties: Parties) -> None:
    head, _, sig = detached(parties.jws).split(".")
    general = json.dumps({"protected": head, "signature": sig})
    detail = "JSON-serialised JWS is not accepted; use compact"
    refused_signature(post(target, general), target, detail, "signature.malformed", 400)


@pytest.mark.parametrize("kid", ["../../etc/passwd", "unknown", "jws-1/../fapi-1"])
def test_unknown_or_traversing_kid(target: Target, parties: Parties, kid: str) -> None:
    resp = post(target, detached(parties.jws, kid=kid))
    refused_signature(resp, target, f"no key with kid {kid!r} for ES256", "signature.unknown_key")


def test_attacker_key_under_a_known_kid(target: Target, parties: Parties) -> None:
    forged = detached(PrivateKey.generate("ES256", kid=parties.jws.kid))
    refused_signature(post(target, forged), target)


def test_rfc7797_duplicate_header_member_b64(target: Target, parties: Parties) -> None:
    """``{"b64": true, "b64": false}``: one parser would hash the body raw, another encoded;
    strict JSON refuses the header instead of picking one."""
    head = b'{"alg":"ES256","kid":"jws-1","b64":true,"b64":false,"crit":["b64"]}'
    head_b64 = b64url_encode(head)
    signature = get_algorithm("ES256").sign(parties.jws.key, head_b64.encode() + b"." + BODY)
    resp = post(target, f"{head_b64}..{b64url_encode(signature)}")
    detail = "JWS header: duplicate member 'b64'"
    refused_signature(resp, target, detail, "signature.malformed", 400)


# --- OCEN: key by the *verified* token's participantId; signature digests remembered ----------


def ocen_signature(key: PrivateKey, body: bytes = BODY) -> str:
    """As OCEN's reference code signs: RS256, ``b64: false`` without ``crit``, detached."""
    return jws.sign(key, body, jws.build_header(key, "RS256", b64=False, b64_in_crit=False))


def ocen_post(target: Target, token: str, signature: str, body: bytes = BODY) -> TestResponse:
    return post(target, signature, body, "/ocen", **bearer(token))


def test_ocen_key_lookup_from_an_unverified_token(
    target: Target, issuer: TestIssuer, parties: Parties
) -> None:
    """PROTOCOLS.md: OCEN's reference code reads ``participantId`` before verifying the
    token. A forged token naming participant B must never reach the registry."""
    attacker = PrivateKey.generate("ES256", kid=issuer.key.kid)
    forged = forge.signed(attacker, forge.header(issuer), forge.claims(issuer, participantId="B"))
    resp = ocen_post(target, forged, ocen_signature(parties.ocen["A"]))
    description = "the token signature does not verify"
    www = f'Bearer realm="api", error="invalid_token", error_description="{description}"'
    refused(resp, target, 401, "token.signature", error="invalid_token", www_authenticate=www)
    assert target.resolver.queries == []
    # The positive control: a verified token for A, signed by A.
    good = ocen_post(
        target, issuer.token("read", participantId="A"), ocen_signature(parties.ocen["A"])
    )
    passed(good, target, "/ocen", BODY)
    assert [q.owner for q in target.resolver.queries] == ["A"]


def test_ocen_body_signed_by_another_participant(
    target: Target, issuer: TestIssuer, parties: Parties
) -> None:
    resp = ocen_post(
        target, issuer.token("read", participantId="A"), ocen_signature(parties.ocen["B"])
    )
    refused_signature(resp, target)
    assert [q.owner for q in target.resolver.queries] == ["A"]


def test_ocen_signature_replay(target: Target, issuer: TestIssuer, parties: Parties) -> None:
    token = issuer.token("read", participantId="A")
    signature = ocen_signature(parties.ocen["A"])
    passed(ocen_post(target, token, signature), target, "/ocen", BODY)
    target.app.calls = 0
    detail = "this signed message was already received"
    refused_signature(ocen_post(target, token, signature), target, detail, "signature.replayed")
