"""Signed requests the resource server verifies under OCEN, OpenG2P, G2P Connect and FAPI 2.0,
the exact bytes it received, and the client's check of the signed responses."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from wsgi_apisec import profiles
from wsgi_apisec.client import (
    APISecSession,
    ClientCredentials,
    RequestSigning,
    ResponseVerification,
    StaticToken,
    signature_of,
)
from wsgi_apisec.errors import ResponseSignatureError
from wsgi_apisec.resolvers import StaticKeyResolver

from . import g2p_connect
from .conftest import Live

pytestmark = pytest.mark.server


def received(response: Any) -> bytes:
    return base64.b64decode(response.json()["received"])


def envelope(sender: str = "g2p-partner", **message: Any) -> dict[str, Any]:
    """A G2P-style body; each has its own message_id (the servers refuse replays)."""
    header = {"sender_id": sender, "message_id": str(uuid.uuid4()), "action": "link"}
    return {"header": header, "message": message}


# --- OCEN ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ocen(live: Live) -> APISecSession:
    tokens = ClientCredentials(
        live.authserver + "/token",
        "ocen-lender",
        private_key=live.keys.ocen_client,
        scope="ocen:loan-applications",
        verify=live.ca,
    )
    provider = StaticKeyResolver([live.keys.ocen_provider.public_key()])
    return APISecSession(
        tokens,
        sign=(profiles.OCEN, live.keys.ocen_client),
        verify_responses=(profiles.OCEN, provider),
        verify=live.ca,
    )


def test_ocen_request_signed_and_response_verified(live: Live, ocen: APISecSession) -> None:
    response = ocen.post(live.api + "/ocen/loans", json={"amount": 1000, "id": "a1"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["profile"], body["owner"], body["client_id"]) == (
        "ocen",
        "lender-1",
        "ocen-lender",
    )
    assert received(response) == response.request.body == b'{"amount": 1000, "id": "a1"}'
    sig = signature_of(response)
    assert sig is not None and (sig.profile, sig.alg, sig.kid) == ("ocen", "RS256", "lender-api")
    # OCEN's reference form: b64:false without crit, RS256.
    header = response.request.headers["x-jws-signature"].split(".")[0]
    assert json.loads(base64.urlsafe_b64decode(header + "==")) == {
        "alg": "RS256",
        "kid": live.keys.ocen_client.kid,
        "b64": False,
    }


def test_ocen_get_signs_path_and_query(live: Live, ocen: APISecSession) -> None:
    response = ocen.get(live.api + "/ocen/loans/a1", params={"view": "full", "q": "a b"})
    assert response.status_code == 200, response.text
    assert response.json()["covered"] == ["path_query"]
    assert received(response) == b""
    assert signature_of(response) is not None


@pytest.mark.parametrize(
    "body",
    [
        f"résumé ✓ {uuid.uuid4()}",
        b"\x00\xff raw bytes " + uuid.uuid4().bytes,
        iter([b"chunk one, ", str(uuid.uuid4()).encode(), b", chunk three"]),
    ],
    ids=["text-as-utf8", "binary", "iterable-of-chunks"],
)
def test_the_server_gets_exactly_the_bytes_signed(live: Live, ocen: APISecSession, body) -> None:
    response = ocen.post(live.api + "/ocen/upload", data=body)
    assert response.status_code == 200, response.text
    sent = response.request.body
    assert isinstance(sent, bytes) and received(response) == sent
    assert response.request.headers["Content-Length"] == str(len(sent))
    assert "Transfer-Encoding" not in response.request.headers
    if isinstance(body, str):
        assert sent == body.encode("utf-8")


# --- response signature failures ------------------------------------------------------------


@pytest.mark.parametrize(
    ("tamper", "code"),
    [
        ("strip", "upstream.signature.missing"),
        ("body", "upstream.signature.invalid"),
        ("signature", "upstream.signature.invalid"),
    ],
)
def test_a_missing_or_tampered_response_signature_is_refused(
    live: Live, ocen: APISecSession, tamper: str, code: str
) -> None:
    with pytest.raises(ResponseSignatureError) as caught:
        ocen.post(
            live.api + "/ocen/loans",
            json={"id": str(uuid.uuid4())},
            headers={"X-Test-Tamper": tamper},
        )
    err = caught.value
    assert (err.code, err.upstream_status, err.status, err.error) == (
        code,
        200,
        502,
        "server_error",
    )


def test_an_unsigned_success_is_refused(live: Live) -> None:
    tokens = ClientCredentials(
        live.authserver + "/token",
        "fdx-aggregator",
        client_secret=live.demo.secrets["fdx-aggregator"],
        verify=live.ca,
    )
    keys = StaticKeyResolver([live.keys.ocen_provider.public_key()])
    session = APISecSession(tokens, verify_responses=(profiles.OCEN, keys), verify=live.ca)
    with pytest.raises(ResponseSignatureError) as caught:
        session.get(live.api + "/unsigned/accounts")
    assert caught.value.code == "upstream.signature.missing"
    assert caught.value.description.startswith("the response signature is not acceptable: ")


def test_an_unsigned_error_answer_is_returned_unverified(live: Live) -> None:
    keys = StaticKeyResolver([live.keys.ocen_provider.public_key()])
    session = APISecSession(
        StaticToken("not-a-valid-token"),
        verify_responses=(profiles.OCEN, keys),
        verify=live.ca,
    )
    response = session.post(live.api + "/ocen/loans", json={})
    assert (response.status_code, response.json()["code"]) == (401, "token.malformed")
    assert signature_of(response) is None
    strict = APISecSession(
        StaticToken("not-a-valid-token"),
        verify_responses=ResponseVerification(profiles.OCEN, keys, signed_errors=True),
        verify=live.ca,
    )
    with pytest.raises(ResponseSignatureError) as caught:
        strict.post(live.api + "/ocen/loans", json={})
    assert (caught.value.code, caught.value.upstream_status) == ("upstream.signature.missing", 401)


def test_a_response_signed_by_another_key_is_refused(live: Live) -> None:
    tokens = ClientCredentials(
        live.authserver + "/token",
        "ocen-lender",
        private_key=live.keys.ocen_client,
        verify=live.ca,
    )
    wrong = StaticKeyResolver([live.keys.mapper_rs256.public_key()])
    session = APISecSession(
        tokens,
        sign=(profiles.OCEN, live.keys.ocen_client),
        verify_responses=(profiles.OCEN, wrong),
        verify=live.ca,
    )
    with pytest.raises(ResponseSignatureError) as caught:
        session.post(live.api + "/ocen/loans", json={"id": str(uuid.uuid4())})
    assert caught.value.code == "upstream.signature.invalid"


def test_ocen_response_keys_are_asked_for_the_expected_lender(live: Live) -> None:
    """The OCEN profile unchanged: its key-owner rule names the party the client expects
    for a response (a token's participantId is for requests)."""
    tokens = ClientCredentials(
        live.authserver + "/token",
        "ocen-lender",
        private_key=live.keys.ocen_client,
        verify=live.ca,
    )
    lenders = StaticKeyResolver(owners={"lender-1": [live.keys.ocen_provider.public_key()]})

    def session(owner: str) -> APISecSession:
        return APISecSession(
            tokens,
            sign=(profiles.OCEN, live.keys.ocen_client),
            verify_responses=ResponseVerification(profiles.OCEN, lenders, owner=owner),
            verify=live.ca,
        )

    response = session("lender-1").post(live.api + "/ocen/loans", json={"id": str(uuid.uuid4())})
    sig = signature_of(response)
    assert sig is not None and (sig.owner, sig.kid) == ("lender-1", "lender-api")
    with pytest.raises(ResponseSignatureError) as caught:
        session("lender-2").post(live.api + "/ocen/loans", json={"id": str(uuid.uuid4())})
    assert caught.value.code == "upstream.signature.unknown_key"


# --- OpenG2P and G2P Connect ------------------------------------------------------------------


@pytest.fixture(scope="module")
def partner_tokens(live: Live) -> ClientCredentials:
    return ClientCredentials(
        live.authserver + "/token",
        "g2p-partner",
        auth_method="tls_client_auth",
        cert=live.files("client"),
        verify=live.ca,
    )


def test_openg2p_request_signed_over_canonical_json(
    live: Live, partner_tokens: ClientCredentials
) -> None:
    mapper = StaticKeyResolver([live.keys.mapper_rs256.public_key()])
    session = APISecSession(
        partner_tokens,
        sign=(profiles.OPENG2P, live.keys.g2p_partner_rs256),
        verify_responses=ResponseVerification(profiles.OPENG2P, mapper, owner="g2p-mapper"),
        cert=live.files("client"),
        verify=live.ca,
    )
    sent = envelope(link_request=[{"id": "x", "fa": "acct@bank"}])
    response = session.post(live.api + "/openg2p/mapper/sync/link", json=sent)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["profile"], body["owner"], body["covered"]) == (
        "openg2p",
        "g2p-partner",
        ["canonical_json(body)"],
    )
    assert body["x5t"] == live.pki.clients["client"].x5t_s256
    assert received(response) == response.request.body
    sig = signature_of(response)
    assert sig is not None and (sig.profile, sig.alg) == ("openg2p", "RS256")


def test_g2p_connect_request_signed_beckn_style(
    live: Live, partner_tokens: ClientCredentials
) -> None:
    mapper = StaticKeyResolver(owners={"g2p-mapper": [live.keys.mapper_ed25519.public_key()]})
    session = APISecSession(
        partner_tokens,
        sign=RequestSigning(g2p_connect("g2p-partner"), live.keys.g2p_partner_ed25519),
        verify_responses=ResponseVerification(profiles.G2P_CONNECT, mapper, owner="g2p-mapper"),
        cert=live.files("client"),
        verify=live.ca,
    )
    sent = envelope(resolve_request=[{"fa": "acct@bank", "scope": "details"}])
    response = session.post(live.api + "/g2p/mapper/sync/resolve", json=sent)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["profile"], body["owner"]) == ("g2p_connect", "g2p-partner")
    assert body["covered"] == ["(created)", "(expires)", "digest"]
    assert received(response) == response.request.body
    assert response.request.headers["Signature"].startswith('keyId="g2p-partner|')
    sig = signature_of(response)
    assert sig is not None and (sig.owner, sig.alg) == ("g2p-mapper", "ed25519")


def test_g2p_connect_response_from_another_party_is_refused(
    live: Live, partner_tokens: ClientCredentials
) -> None:
    # The signature verifies with the mapper's key, but the client expects another party.
    both = StaticKeyResolver(owners={"g2p-mapper": [live.keys.mapper_ed25519.public_key()]})
    session = APISecSession(
        partner_tokens,
        sign=RequestSigning(g2p_connect("g2p-partner"), live.keys.g2p_partner_ed25519),
        verify_responses=ResponseVerification(profiles.G2P_CONNECT, both, owner="someone-else"),
        cert=live.files("client"),
        verify=live.ca,
    )
    with pytest.raises(ResponseSignatureError) as caught:
        session.post(live.api + "/g2p/mapper/sync/resolve", json=envelope())
    assert caught.value.description == "the response is signed by another party"


# --- FAPI 2.0 (RFC 9421) over mTLS -------------------------------------------------------------


@pytest.fixture(scope="module")
def fapi_mtls(live: Live) -> Iterator[APISecSession]:
    tokens = ClientCredentials(
        live.authserver + "/token",
        "fdx-aggregator",
        client_secret=live.demo.secrets["fdx-aggregator"],
        cert=live.files("other"),
        verify=live.ca,
    )
    server = StaticKeyResolver([live.keys.fapi_server.public_key()])
    yield APISecSession(
        tokens,
        sign=(profiles.FAPI2, live.keys.fapi_client),
        verify_responses=(profiles.FAPI2, server),
        cert=live.files("other"),
        verify=live.ca,
    )


def test_fapi2_signed_post_with_content_digest(live: Live, fapi_mtls: APISecSession) -> None:
    response = fapi_mtls.post(live.api + "/fapi-mtls/payments", json={"amount": "10.00"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["profile"] == "fapi2"
    assert body["covered"] == [
        '"@method"',
        '"@target-uri"',
        '"authorization"',
        '"content-digest"',
    ]
    sent = response.request
    assert sent.headers["Content-Digest"].startswith("sha-256=:")
    assert 'tag="fapi-2-request"' in sent.headers["Signature-Input"]
    assert received(response) == sent.body
    sig = signature_of(response)
    assert sig is not None and sig.profile == "fapi2" and sig.kid == "fapi-server"
    # The response links to this request (RFC 9421 §2.4).
    assert '"@method";req' in sig.covered and '"content-digest";req' in sig.covered


def test_fapi2_signed_get(live: Live, fapi_mtls: APISecSession) -> None:
    response = fapi_mtls.get(live.api + "/fapi-mtls/accounts?limit=5")
    assert response.status_code == 200, response.text
    assert response.json()["covered"] == ['"@method"', '"@target-uri"', '"authorization"']
    assert "Content-Digest" not in response.request.headers


def test_fapi2_tampered_response_body_fails_its_digest(
    live: Live, fapi_mtls: APISecSession
) -> None:
    with pytest.raises(ResponseSignatureError) as caught:
        fapi_mtls.post(
            live.api + "/fapi-mtls/payments", json={"n": 1}, headers={"X-Test-Tamper": "body"}
        )
    assert caught.value.code == "upstream.digest.invalid"
