"""Access tokens by client credentials from the sample AS over real TLS: each client
authentication method, refresh ahead of expiry on a fake clock, one fetch for many threads."""

from __future__ import annotations

import base64
import json
import threading
from typing import Any
from urllib.parse import parse_qs

import pytest
import requests

from wsgi_apisec.client import APISecSession, ClientCredentials, DPoPProofs, StaticToken, Token
from wsgi_apisec.client.credentials import _lifetime
from wsgi_apisec.errors import ConfigurationError, TokenRequestError
from wsgi_apisec.keys import PrivateKey, x5t_s256

from . import FakeClock
from .conftest import DPOP_CLIENT, DPOP_SECRET, Live

pytestmark = pytest.mark.server


def claims(token: Token) -> dict[str, Any]:
    part = token.access_token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def basic(live: Live, **options: Any) -> ClientCredentials:
    return ClientCredentials(
        live.authserver + "/token",
        "fdx-aggregator",
        client_secret=live.demo.secrets["fdx-aggregator"],
        scope=["fdx:accountbasic:read"],
        verify=live.ca,
        **options,
    )


def token_calls(live: Live) -> int:
    return live.authserver_hits.hits["token"]


# --- client authentication -------------------------------------------------------------------


def test_client_secret_basic_rfc6749_s2_3_1(live: Live) -> None:
    tokens = basic(live)
    session = APISecSession(tokens, verify=live.ca)
    response = session.get(live.api + "/unsigned/accounts")
    assert response.status_code == 200, response.text
    assert response.json()["client_id"] == "fdx-aggregator"
    token = tokens.token()
    assert (token.token_type, token.scope) == ("Bearer", "fdx:accountbasic:read")
    assert "cnf" not in claims(token)  # no certificate on the token request: unbound


def test_scope_audience_and_resource_are_sent_rfc8707(live: Live) -> None:
    tokens = basic(live, audience="urn:api", resource="https://api.example/")
    tokens.token()
    sent = parse_qs(live.authserver_hits.last_body.decode())
    assert sent == {
        "grant_type": ["client_credentials"],
        "scope": ["fdx:accountbasic:read"],
        "audience": ["urn:api"],
        "resource": ["https://api.example/"],
    }


def test_client_secret_basic_over_mtls_gives_a_bound_token_rfc8705_s3(live: Live) -> None:
    tokens = basic(live, cert=live.files("other"))
    session = APISecSession(tokens, cert=live.files("other"), verify=live.ca)
    response = session.get(live.api + "/unsigned/accounts")
    expected = x5t_s256(live.pki.clients["other"].cert_der)
    assert claims(tokens.token())["cnf"] == {"x5t#S256": expected}
    # The resource server matched the bound token against the TLS client certificate.
    assert (response.status_code, response.json()["x5t"]) == (200, expected)
    # Without the certificate the same token is refused (RFC 8705 §3).
    bare = APISecSession(tokens, verify=live.ca).get(live.api + "/unsigned/accounts")
    assert (bare.status_code, bare.json()["code"]) == (401, "token.cert_missing")


def test_private_key_jwt_rfc7523_s2_2(live: Live) -> None:
    tokens = ClientCredentials(
        live.authserver + "/token",
        "ocen-lender",
        private_key=live.keys.ocen_client,
        scope="ocen:loan-applications",
        verify=live.ca,
    )
    token = tokens.token()
    assert claims(token)["client_id"] == "ocen-lender"
    assert claims(token)["participantId"] == "lender-1"
    assert tokens.auth_method.method == "private_key_jwt"


def test_private_key_jwt_with_another_key_is_invalid_client(live: Live) -> None:
    tokens = ClientCredentials(
        live.authserver + "/token",
        "ocen-lender",
        private_key=PrivateKey.generate("RS256"),
        verify=live.ca,
    )
    with pytest.raises(TokenRequestError) as caught:
        tokens.token()
    err = caught.value
    assert (err.oauth_error, err.upstream_status) == ("invalid_client", 400)
    assert (err.status, err.code) == (502, "upstream.token_request")


def test_tls_client_auth_rfc8705_s2_1(live: Live) -> None:
    tokens = ClientCredentials(
        live.authserver + "/token",
        "g2p-partner",
        auth_method="tls_client_auth",
        cert=live.files("client"),
        verify=live.ca,
    )
    token = tokens.token()
    cert_der = live.pki.clients["client"].cert_der
    assert claims(token)["client_id"] == "g2p-partner"
    assert claims(token)["cnf"] == {"x5t#S256": x5t_s256(cert_der)}


def test_tls_client_auth_with_the_wrong_certificate_is_invalid_client(live: Live) -> None:
    tokens = ClientCredentials(
        live.authserver + "/token", "g2p-partner", cert=live.files("other"), verify=live.ca
    )
    assert tokens.auth_method.method == "tls_client_auth"  # inferred: only a certificate
    with pytest.raises(TokenRequestError) as caught:
        tokens.token()
    assert (caught.value.oauth_error, caught.value.upstream_status) == ("invalid_client", 401)


def test_wrong_secret_is_a_clear_token_request_error(live: Live) -> None:
    tokens = ClientCredentials(
        live.authserver + "/token", "fdx-aggregator", client_secret="wrong", verify=live.ca
    )
    session = APISecSession(tokens, verify=live.ca)
    with pytest.raises(TokenRequestError) as caught:
        session.get(live.api + "/unsigned/accounts")
    err = caught.value
    assert (err.oauth_error, err.upstream_status, err.status) == ("invalid_client", 401, 502)
    assert err.description == "the token endpoint refused the request: invalid_client"


def test_a_scope_the_client_may_not_have_is_invalid_scope(live: Live) -> None:
    tokens = ClientCredentials(
        live.authserver + "/token",
        "fdx-aggregator",
        client_secret=live.demo.secrets["fdx-aggregator"],
        scope="payments:read",
        verify=live.ca,
    )
    with pytest.raises(TokenRequestError) as caught:
        tokens.token()
    assert (caught.value.oauth_error, caught.value.upstream_status) == ("invalid_scope", 400)


def test_an_untrusted_server_certificate_is_refused(live: Live) -> None:
    tokens = ClientCredentials(
        live.authserver + "/token", "fdx-aggregator", client_secret="x", verify=True
    )
    with pytest.raises(TokenRequestError) as caught:
        tokens.token()
    assert caught.value.upstream_status is None
    assert isinstance(caught.value.__cause__, requests.exceptions.SSLError)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"auth_method": "client_secret_basic"}, "client_secret_basic needs client_secret"),
        ({"auth_method": "private_key_jwt"}, "private_key_jwt needs private_key"),
        ({"auth_method": "tls_client_auth"}, "tls_client_auth needs cert"),
        ({"auth_method": "client_secret_post", "client_secret": "s"}, "auth_method must be"),
        ({}, "tls_client_auth needs cert"),
        ({"client_secret": "s", "refresh_ratio": 1.0}, "refresh_ratio"),
    ],
)
def test_configuration_errors(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        ClientCredentials("https://127.0.0.1:1/token", "c", **options)


def test_the_token_endpoint_must_be_https_except_on_loopback() -> None:
    with pytest.raises(ConfigurationError, match="must be an https URL"):
        ClientCredentials("http://as.example/token", "c", client_secret="s")
    with pytest.raises(ConfigurationError, match="must be an https URL"):
        ClientCredentials("https://c:s@as.example/token", "c", client_secret="s")
    assert ClientCredentials("http://127.0.0.1:9/t", "c", client_secret="s").token_endpoint
    plain = ClientCredentials("http://as.example/t", "c", client_secret="s", allow_http=True)
    assert plain.token_endpoint == "http://as.example/t"


# --- refresh before expiry ---------------------------------------------------------------------


def test_refresh_before_expiry_on_a_fake_clock(live: Live) -> None:
    clock = FakeClock()
    tokens = basic(live, clock=clock)
    session = APISecSession(tokens, verify=live.ca)
    start = token_calls(live)

    def call() -> str:
        response = session.get(live.api + "/unsigned/accounts")
        assert response.status_code == 200, response.text
        return str(response.request.headers["Authorization"])

    first = call()
    assert token_calls(live) - start == 1
    token = tokens.token()
    # expires_in 3600: re-fetched when less than min(60 s, 10 % of 3600 s) is left.
    assert (token.expires_at, token.refresh_at) == (clock.now + 3600, clock.now + 3540)
    clock.advance(3539)
    assert call() == first
    assert token_calls(live) - start == 1
    clock.advance(1)
    second = call()
    assert second != first
    assert token_calls(live) - start == 2
    assert call() == second
    assert token_calls(live) - start == 2


def test_invalidate_forces_a_new_token(live: Live) -> None:
    tokens = basic(live)
    start = token_calls(live)
    first = tokens.token()
    assert tokens.token() is first
    tokens.invalidate()
    assert tokens.token().access_token != first.access_token
    assert token_calls(live) - start == 2


def test_short_tokens_refresh_at_ten_percent_of_their_life(live: Live) -> None:
    clock = FakeClock()
    tokens = ClientCredentials(
        live.dpop_as + "/token",
        DPOP_CLIENT,
        client_secret=DPOP_SECRET,
        dpop=DPoPProofs(PrivateKey.generate("ES256")),
        verify=live.ca,
        clock=clock,
    )
    token = tokens.token()
    # expires_in 300: min(60 s, 10 % of 300 s) = 30 s before expiry.
    assert (token.expires_at, token.refresh_at) == (clock.now + 300, clock.now + 270)
    assert (tokens.refresh_margin, tokens.refresh_ratio) == (60.0, 0.1)


def test_expires_in_absent_or_not_a_number_means_the_default_lifetime() -> None:
    assert [_lifetime(v, 300.0) for v in (None, "3600", True, 0, -5, 120)] == [
        300.0,
        300.0,
        300.0,
        300.0,
        300.0,
        120.0,
    ]


def test_many_threads_cause_one_token_request(live: Live) -> None:
    tokens = basic(live)
    start = token_calls(live)
    barrier = threading.Barrier(8)
    got: list[Token] = []

    def worker() -> None:
        barrier.wait()
        got.append(tokens.token())

    live.authserver_hits.delay = 0.3
    try:
        threads = [threading.Thread(target=worker) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
    finally:
        live.authserver_hits.delay = 0.0
    assert len(got) == 8 and len({t.access_token for t in got}) == 1
    assert token_calls(live) - start == 1


def test_while_one_thread_refreshes_the_others_keep_the_valid_token(live: Live) -> None:
    clock = FakeClock()
    tokens = basic(live, clock=clock)
    old = tokens.token()
    clock.advance(3550)  # inside the refresh margin, not expired
    live.authserver_hits.delay = 0.4
    fresh: list[Token] = []
    refresher = threading.Thread(target=lambda: fresh.append(tokens.token()))
    try:
        refresher.start()
        while not tokens._fetching and refresher.is_alive():
            pass
        assert tokens.token() is old  # no wait for the slow AS
    finally:
        refresher.join(10)
        live.authserver_hits.delay = 0.0
    assert fresh and fresh[0].access_token != old.access_token
    assert tokens.token() is fresh[0]


def test_a_failed_refresh_keeps_the_valid_token(live: Live) -> None:
    clock = FakeClock()
    tokens = basic(live, clock=clock)
    old = tokens.token()
    clock.advance(3550)
    tokens.token_endpoint = live.authserver + "/no-such-endpoint"
    assert tokens.token() is old  # refresh failed, token still valid for 50 s
    clock.advance(50)
    with pytest.raises(TokenRequestError) as caught:
        tokens.token()
    assert caught.value.upstream_status == 404


def test_static_token_and_bad_token_values() -> None:
    assert StaticToken("abc.def-_~+/=", "dpop").token().token_type == "DPoP"
    with pytest.raises(TokenRequestError):
        StaticToken("abc\r\nX-Injected: 1")
    with pytest.raises(TokenRequestError, match="not Bearer or DPoP"):
        StaticToken("abc", "MAC")
