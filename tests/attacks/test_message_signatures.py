"""RFC 9421 under FAPI 2.0 Message Signing (with RFC 9530 ``Content-Digest``), and the
Beckn-style G2P Connect signature with its ``errors[]`` envelope: missing components, time
windows, digests, tampering and replays."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

import pytest
from werkzeug.test import TestResponse

from flask_apisec.testing import TestIssuer
from tests.attacks import forge
from tests.attacks.harness import G2P_SENDER, Parties, Target, passed, refused
from wsgi_apisec import profiles
from wsgi_apisec.digest import content_digest
from wsgi_apisec.encoding import b64url_encode
from wsgi_apisec.fapi2 import FAPI2, REQUEST_TAG
from wsgi_apisec.httpsig import sign_message
from wsgi_apisec.keys import PrivateKey
from wsgi_apisec.message import Body, Headers, Message
from wsgi_apisec.signatures import ResponseSigner

FAPI_URL = "http://localhost/fapi"
BODY = b'{"amount":"10.00"}'
FULL = ("@method", "@target-uri", "authorization", "content-digest")
INVALID = "invalid_signature"
DIGEST_MISMATCH = "Content-Digest sha-256 does not match the content"


# --- FAPI 2.0 / RFC 9421 ---------------------------------------------------------------------


def fapi_fields(
    key: PrivateKey,
    token: str,
    *,
    body: bytes = BODY,
    covered: Sequence[str] | None = None,
    now: float | None = None,
    extra: Sequence[tuple[str, str]] = (),
) -> list[tuple[str, str]]:
    """The request's header fields, signed as a FAPI 2.0 client signs them (``covered``:
    signed over exactly these components instead)."""
    headers = [("Authorization", f"Bearer {token}"), ("Content-Type", "application/json"), *extra]
    message = Message("POST", FAPI_URL, Headers(headers), Body(body))
    when = time.time() if now is None else now
    if covered is None:
        added = ResponseSigner(FAPI2, key, clock=lambda: when).sign(message)
    else:
        added = sign_message(
            message, key, list(covered), now=when, tag=REQUEST_TAG, include_alg=False
        )
    return [*headers, *added]


def fapi_post(target: Target, fields: list[tuple[str, str]], body: bytes = BODY) -> TestResponse:
    return target.client.post("/fapi", data=body, headers=fields)


def refused_rfc9421(resp: TestResponse, target: Target, code: str, detail: str) -> dict[str, Any]:
    doc = refused(resp, target, 401, code, error=INVALID, detail=detail)
    # RFC 9421 §5.1: the refusal says what a good signature covers.
    assert resp.headers["Accept-Signature"].startswith(
        'sig1=("@method" "@target-uri" "authorization" "content-digest")'
    )
    assert 'tag="fapi-2-request"' in resp.headers["Accept-Signature"]
    return doc


def test_positive_control_fapi2_signed_request(
    target: Target, issuer: TestIssuer, parties: Parties
) -> None:
    fields = fapi_fields(parties.fapi, issuer.token("read"))
    passed(fapi_post(target, fields), target, "/fapi", BODY)


@pytest.mark.parametrize("missing", FULL)
def test_rfc9421_missing_required_component(
    target: Target, issuer: TestIssuer, parties: Parties, missing: str
) -> None:
    covered = [c for c in FULL if c != missing]
    fields = fapi_fields(parties.fapi, issuer.token("read"), covered=covered)
    detail = f'the signature does not cover "{missing}"'
    refused_rfc9421(fapi_post(target, fields), target, "signature.component_missing", detail)


@pytest.mark.parametrize(
    ("age", "detail"),
    [
        (120.0, "the signature is older than 60 seconds"),
        (-60.0, "the signature was created in the future"),
    ],
    ids=["expired", "created-in-the-future"],
)
def test_rfc9421_created_outside_the_window(
    target: Target, issuer: TestIssuer, parties: Parties, age: float, detail: str
) -> None:
    fields = fapi_fields(parties.fapi, issuer.token("read"), now=time.time() - age)
    refused_rfc9421(fapi_post(target, fields), target, "signature.expired", detail)


def test_rfc9530_wrong_content_digest(target: Target, issuer: TestIssuer, parties: Parties) -> None:
    """The signature covers a ``Content-Digest`` that is not the body's."""
    wrong = ("Content-Digest", content_digest(b'{"amount":"99.00"}'))
    fields = fapi_fields(parties.fapi, issuer.token("read"), extra=[wrong])
    refused_rfc9421(fapi_post(target, fields), target, "digest.invalid", DIGEST_MISMATCH)


def test_rfc9530_body_swapped_under_a_good_signature(
    target: Target, issuer: TestIssuer, parties: Parties
) -> None:
    fields = fapi_fields(parties.fapi, issuer.token("read"))
    resp = fapi_post(target, fields, b'{"amount":"99.00"}')
    refused_rfc9421(resp, target, "digest.invalid", DIGEST_MISMATCH)


def test_rfc9421_signature_over_another_token(
    target: Target, issuer: TestIssuer, parties: Parties
) -> None:
    """``authorization`` is covered: a signature lifted onto a request with another token."""
    fields = fapi_fields(parties.fapi, issuer.token("read"))
    swapped = [
        (n, v) if n != "Authorization" else (n, f"Bearer {issuer.token('read')}") for n, v in fields
    ]
    refused_rfc9421(
        fapi_post(target, swapped), target, "signature.invalid", "the signature does not verify"
    )


@pytest.mark.parametrize(
    ("include_alg", "code", "detail"),
    [
        (True, "signature.alg_not_allowed", "algorithm 'hmac-sha256' is not accepted"),
        (False, "signature.invalid", "the signature does not verify"),
    ],
    ids=["alg-sent", "alg-left-out"],
)
def test_rfc9421_s3_3_7_hmac_keyed_with_the_clients_public_key(
    target: Target,
    issuer: TestIssuer,
    parties: Parties,
    include_alg: bool,
    code: str,
    detail: str,
) -> None:
    """Key confusion in RFC 9421: the client's public key bytes as an HMAC secret under its
    ``keyid``. The algorithm comes from the key (§3.3.7), never from ``alg``."""
    secret = b64url_encode(forge.public_pem(parties.fapi))
    hmac_key = PrivateKey.from_jwk({"kty": "oct", "k": secret, "kid": parties.fapi.kid})
    token = issuer.token("read")
    headers = [("Authorization", f"Bearer {token}"), ("Content-Type", "application/json")]
    message = Message("POST", FAPI_URL, Headers(headers), Body(BODY))
    added = sign_message(
        message,
        hmac_key,
        list(FULL),
        now=time.time(),
        alg="hmac-sha256",
        include_alg=include_alg,
        tag=REQUEST_TAG,
    )
    refused_rfc9421(fapi_post(target, [*headers, *added]), target, code, detail)


def test_rfc9421_replayed_request(target: Target, issuer: TestIssuer, parties: Parties) -> None:
    fields = fapi_fields(parties.fapi, issuer.token("read"))
    passed(fapi_post(target, fields), target, "/fapi", BODY)
    target.app.calls = 0
    detail = "this signed message was already received"
    refused(
        fapi_post(target, fields), target, 401, "signature.replayed", error=INVALID, detail=detail
    )


# --- G2P Connect (Beckn-style) ---------------------------------------------------------------


def envelope(message_id: str = "m-1", sender: str = G2P_SENDER) -> bytes:
    doc = {
        "header": {
            "version": "1.0.0",
            "message_id": message_id,
            "message_ts": "2024-01-01T00:00:00Z",
            "action": "link",
            "sender_id": sender,
            "total_count": 1,
        },
        "message": {"transaction_id": "t-1", "link_request": []},
    }
    return json.dumps(doc).encode()


def g2p_post(
    target: Target,
    key: PrivateKey,
    body: bytes,
    *,
    sent: bytes | None = None,
    now: float | None = None,
    sender: str = G2P_SENDER,
) -> TestResponse:
    """``body`` signed as ``sender`` at ``now``; ``sent`` is what goes on the wire."""
    profile = profiles.G2P_CONNECT.replace(
        options={**profiles.G2P_CONNECT.options, "sender_id": sender}
    )
    when = time.time() if now is None else now
    message = Message("POST", "http://localhost/g2p", body=Body(body))
    headers = ResponseSigner(profile, key, clock=lambda: when).sign(message)
    data = body if sent is None else sent
    return target.client.post("/g2p", data=data, headers=headers, content_type="application/json")


def refused_g2p(resp: TestResponse, target: Target, code: str, g2p_code: str) -> None:
    refused(resp, target, 401, code, envelope=g2p_code)


def test_positive_control_g2p_signed_envelope(target: Target, parties: Parties) -> None:
    passed(g2p_post(target, parties.g2p, envelope()), target, "/g2p", envelope())


def test_g2p_tampered_body(target: Target, parties: Parties) -> None:
    resp = g2p_post(target, parties.g2p, envelope(), sent=envelope().replace(b"t-1", b"t-2"))
    refused_g2p(resp, target, "signature.invalid", "err.signature.invalid")


@pytest.mark.parametrize("age", [2 * 3600.0, -120.0], ids=["expired", "created-in-the-future"])
def test_g2p_outside_the_validity_window(target: Target, parties: Parties, age: float) -> None:
    resp = g2p_post(target, parties.g2p, envelope(), now=time.time() - age)
    refused_g2p(resp, target, "signature.expired", "err.signature.invalid")


def test_g2p_key_id_naming_another_sender(target: Target, parties: Parties) -> None:
    resp = g2p_post(target, parties.g2p, envelope(sender="someone-else"))
    refused_g2p(resp, target, "signature.sender_invalid", "err.sender_id.invalid")


def test_g2p_missing_signature(target: Target) -> None:
    resp = target.client.post("/g2p", data=envelope(), content_type="application/json")
    refused_g2p(resp, target, "signature.missing", "err.signature.missing")


def test_g2p_message_id_replayed_under_a_fresh_signature(target: Target, parties: Parties) -> None:
    passed(g2p_post(target, parties.g2p, envelope("m-7")), target, "/g2p", envelope("m-7"))
    target.app.calls = 0
    resp = g2p_post(target, parties.g2p, envelope("m-7"), now=time.time() + 1)
    refused_g2p(resp, target, "signature.replayed", "rjct.message_id.duplicate")
