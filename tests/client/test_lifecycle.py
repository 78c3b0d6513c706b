"""Closing the client's connections, and what it takes from the process environment:
``close()`` / ``with`` on ClientCredentials and APISecSession, and ``trust_env`` /
``proxies`` on both the token session and the API session (an ``HTTPS_PROXY`` set for other
programs is not used unless asked for)."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from wsgi_apisec.client import APISecSession, ClientCredentials, StaticToken
from wsgi_apisec.errors import TokenRequestError

from .conftest import Live
from .test_tokens import basic, token_calls

pytestmark = pytest.mark.server

#: Nothing listens there: a request sent through this proxy fails at once.
DEAD_PROXY = "http://127.0.0.1:9"
ACCOUNTS = "/unsigned/accounts"


def pooled(session: requests.Session) -> int:
    """Connection pools the session holds open."""
    adapters: list[Any] = list(session.adapters.values())
    return sum(len(adapter.poolmanager.pools) for adapter in adapters)


def token_session(tokens: ClientCredentials) -> requests.Session:
    session: requests.Session = tokens._oauth  # Authlib's OAuth2Session inside
    return session


@pytest.fixture
def proxy_in_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.setenv(name, DEAD_PROXY)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)


# --- close() and with ---------------------------------------------------------------------------


def test_client_credentials_with_block_closes_the_token_session(live: Live) -> None:
    with basic(live) as tokens:
        tokens.token()
        assert pooled(token_session(tokens)) == 1
    assert pooled(token_session(tokens)) == 0
    # Closed is not broken: the next fetch opens a new connection.
    before = token_calls(live)
    tokens.invalidate()
    assert tokens.token().access_token
    assert token_calls(live) == before + 1
    tokens.close()
    assert pooled(token_session(tokens)) == 0


def test_session_with_block_closes_its_token_provider_too(live: Live) -> None:
    tokens = basic(live)
    with APISecSession(tokens, verify=live.ca) as session:
        assert session.get(live.api + ACCOUNTS).status_code == 200
        assert (pooled(session), pooled(token_session(tokens))) == (1, 1)
    assert (pooled(session), pooled(token_session(tokens))) == (0, 0)
    # A provider without close() (a fixed token) is simply left alone.
    with APISecSession(StaticToken("t0k3n"), verify=live.ca) as plain:
        assert plain.get(live.api + ACCOUNTS).status_code == 401
    assert pooled(plain) == 0


# --- trust_env and proxies -------------------------------------------------------------------


@pytest.mark.usefixtures("proxy_in_environment")
def test_an_environment_proxy_is_not_used_by_default(live: Live) -> None:
    with APISecSession(basic(live), verify=live.ca) as session:
        response = session.get(live.api + ACCOUNTS)
    assert response.status_code == 200, response.text
    assert response.json()["client_id"] == "fdx-aggregator"


@pytest.mark.usefixtures("proxy_in_environment")
def test_trust_env_true_sends_both_sessions_through_the_environment_proxy(live: Live) -> None:
    with pytest.raises(TokenRequestError) as caught:
        basic(live, trust_env=True).token()
    assert isinstance(caught.value.__cause__, requests.exceptions.ProxyError)
    session = APISecSession(StaticToken("t0k3n"), verify=live.ca, trust_env=True)
    with pytest.raises(requests.exceptions.ProxyError):
        session.get(live.api + ACCOUNTS)


def test_proxies_are_used_without_trusting_the_environment(live: Live) -> None:
    proxies = {"https": DEAD_PROXY}
    with pytest.raises(TokenRequestError) as caught:
        basic(live, proxies=proxies).token()
    assert isinstance(caught.value.__cause__, requests.exceptions.ProxyError)
    session = APISecSession(StaticToken("t0k3n"), verify=live.ca, proxies=proxies)
    assert session.trust_env is False
    with pytest.raises(requests.exceptions.ProxyError):
        session.get(live.api + ACCOUNTS)
