"""RFC 9449 DPoP from the client: a DPoP-bound token from an AS that wants a nonce (§8), proofs
the resource server's ``DPoPVerifier`` accepts, its ``use_dpop_nonce`` answered once (§9) and
the nonce remembered per server, and FAPI 2.0 signatures covering ``authorization`` and
``dpop``."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import pytest

from wsgi_apisec import profiles
from wsgi_apisec.client import (
    APISecSession,
    ClientCredentials,
    DPoPProofs,
    StaticToken,
    signature_of,
)
from wsgi_apisec.client.dpop import asks_for_nonce, origin
from wsgi_apisec.encoding import b64url_decode
from wsgi_apisec.errors import ConfigurationError
from wsgi_apisec.keys import PrivateKey
from wsgi_apisec.resolvers import StaticKeyResolver

from .conftest import DPOP_CLIENT, DPOP_SECRET, Live

pytestmark = pytest.mark.server


def claims_of(jwt: str) -> dict[str, Any]:
    return json.loads(b64url_decode(jwt.split(".")[1]))


def dpop_session(live: Live, proofs: DPoPProofs, **options: Any) -> APISecSession:
    tokens = ClientCredentials(
        live.dpop_as + "/token",
        DPOP_CLIENT,
        client_secret=DPOP_SECRET,
        scope="fapi:read",
        verify=live.ca,
        dpop=proofs,
    )
    return APISecSession(tokens, verify=live.ca, **options)


def test_dpop_token_nonce_retry_and_resource_nonce_retry_rfc9449_s8_s9(live: Live) -> None:
    proofs = DPoPProofs(PrivateKey.generate("ES256"))
    server = StaticKeyResolver([live.keys.fapi_server.public_key()])
    session = dpop_session(
        live,
        proofs,
        sign=(profiles.FAPI2, live.keys.fapi_client),
        verify_responses=(profiles.FAPI2, server),
    )
    as_before, api_before = live.dpop_as_hits.hits["token"], live.api_hits.hits["fapi"]

    response = session.post(live.api + "/fapi/payments", json={"amount": "1.00"})
    assert response.status_code == 200, response.text
    # §8: the AS asked for a nonce once; §9: so did the resource server.
    assert live.dpop_as_hits.hits["token"] - as_before == 2
    assert live.api_hits.hits["fapi"] - api_before == 2
    [refused] = response.history
    assert refused.status_code == 401
    assert asks_for_nonce(refused.status_code, refused.headers)

    token = session.tokens.token()  # type: ignore[union-attr]
    assert token.token_type == "DPoP"
    assert claims_of(token.access_token)["cnf"] == {"jkt": proofs.key.thumbprint()}
    sent = response.request.headers
    assert sent["Authorization"] == f"DPoP {token.access_token}"
    proof = claims_of(sent["DPoP"])
    assert proof["htm"] == "POST" and proof["htu"] == live.api + "/fapi/payments"
    assert proof["nonce"] == refused.headers["DPoP-Nonce"]
    digest = hashlib.sha256(token.access_token.encode()).digest()
    assert proof["ath"] == base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    body = response.json()
    assert body["jkt"] == proofs.key.thumbprint()
    # The FAPI 2.0 request signature covers the token and the proof.
    assert body["covered"] == [
        '"@method"',
        '"@target-uri"',
        '"authorization"',
        '"dpop"',
        '"content-digest"',
    ]
    assert signature_of(response) is not None

    # The nonce is remembered for that server: the next request goes through at once.
    again = session.get(live.api + "/fapi/accounts")
    assert again.status_code == 200, again.text
    assert again.history == []
    assert live.api_hits.hits["fapi"] - api_before == 3
    assert live.dpop_as_hits.hits["token"] - as_before == 2


def test_nonces_are_kept_per_origin(live: Live) -> None:
    proofs = DPoPProofs(PrivateKey.generate("ES256"))
    session = dpop_session(live, proofs, sign=(profiles.FAPI2, live.keys.fapi_client))
    assert session.get(live.api + "/fapi/accounts").status_code == 200
    as_nonce, api_nonce = proofs.nonce(live.dpop_as + "/x"), proofs.nonce(live.api + "/y")
    assert as_nonce and api_nonce and as_nonce != api_nonce
    assert proofs.nonce("https://elsewhere.example/") is None


def test_a_stale_nonce_is_answered_again_once(live: Live) -> None:
    proofs = DPoPProofs(PrivateKey.generate("ES256"))
    session = dpop_session(live, proofs, sign=(profiles.FAPI2, live.keys.fapi_client))
    assert session.get(live.api + "/fapi/accounts").status_code == 200
    proofs.remember(live.api, {"DPoP-Nonce": "stale-nonce"})
    before = live.api_hits.hits["fapi"]
    response = session.get(live.api + "/fapi/accounts")
    assert response.status_code == 200, response.text
    assert len(response.history) == 1
    assert live.api_hits.hits["fapi"] - before == 2


def test_without_its_proof_key_the_dpop_token_is_refused(live: Live) -> None:
    proofs = DPoPProofs(PrivateKey.generate("ES256"))
    session = dpop_session(live, proofs, sign=(profiles.FAPI2, live.keys.fapi_client))
    token = session.tokens.token()  # type: ignore[union-attr]
    other = DPoPProofs(PrivateKey.generate("ES256"))
    thief = APISecSession(
        StaticToken(token.access_token, "DPoP"),
        dpop=other,
        sign=(profiles.FAPI2, live.keys.fapi_client),
        verify=live.ca,
    )
    response = thief.get(live.api + "/fapi/accounts")
    assert (response.status_code, response.json()["code"]) == (401, "token.dpop_key_mismatch")


def test_proofs_helpers() -> None:
    key = PrivateKey.generate("EdDSA")
    with pytest.raises(ConfigurationError):
        DPoPProofs(key, alg="ES256")
    proofs = DPoPProofs(key)
    assert origin("HTTPS://Api.Example/a?b") == "https://api.example:443"
    assert origin("http://127.0.0.1:8080/") == "http://127.0.0.1:8080"
    assert not proofs.remember("https://a.example/", {"DPoP-Nonce": 'bad"nonce'})
    assert proofs.remember("https://a.example/", {"DPoP-Nonce": "n-1"})
    assert proofs.nonce("https://a.example:443/other") == "n-1"
    header = json.loads(b64url_decode(proofs.proof("GET", "https://a.example/x?y").split(".")[0]))
    assert header["typ"] == "dpop+jwt" and header["alg"] == "EdDSA" and "d" not in header["jwk"]
    assert not asks_for_nonce(401, {"WWW-Authenticate": 'DPoP error="invalid_dpop_proof"'})
    assert not asks_for_nonce(401, {"WWW-Authenticate": 'DPoP error="use_dpop_nonce"'})
    challenge = {"WWW-Authenticate": 'DPoP error="use_dpop_nonce"', "DPoP-Nonce": "n"}
    assert asks_for_nonce(401, challenge)
    both = 'Bearer realm="api", DPoP algs="ES256", error="use_dpop_nonce"'
    assert asks_for_nonce(401, {"WWW-Authenticate": both, "DPoP-Nonce": "n"})
    other_scheme = {"WWW-Authenticate": 'DPoPx error="use_dpop_nonce"', "DPoP-Nonce": "n"}
    assert not asks_for_nonce(401, other_scheme)
    assert not asks_for_nonce(400, challenge)
