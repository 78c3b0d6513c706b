"""``ViewRules`` keeps the rule of each ``(method, path)`` once Flask's routes are final, and
never answers from a stale cache: routes added while the app is not serving are seen."""

from __future__ import annotations

import pytest
from flask import Flask

from flask_apisec import APISec
from flask_apisec.extension import MAX_CACHED_PATH
from flask_apisec.testing import TestIssuer
from tests.flask import make_app, outcome


@pytest.fixture(scope="module")
def issuer() -> TestIssuer:
    return TestIssuer("ES256")


def _app(issuer: TestIssuer) -> tuple[Flask, APISec]:
    app = make_app(issuers=[issuer.issuer_config()])
    apisec = APISec(app)

    @app.get("/open")
    def open_view() -> str:
        return "open"

    return app, apisec


def test_rules_are_kept_per_method_and_path_once_serving(issuer: TestIssuer) -> None:
    app, apisec = _app(issuer)

    @app.get("/items/<int:item>")
    @apisec.require_token(scopes=["items:read"])
    def item(item: int) -> str:
        return str(item)

    rules = APISec.state(app).rules
    assert app.test_client().get("/open").status_code == 200  # the first request
    first = rules("GET", "/items/1")
    assert first is not None and first.token is not None
    assert rules._cached.cache_info().currsize >= 1
    hits = rules._cached.cache_info().hits
    assert rules("GET", "/items/1") is first
    assert rules._cached.cache_info().hits == hits + 1
    long_path = "/items/" + "1" * MAX_CACHED_PATH
    assert rules("GET", long_path) is first  # routed, not kept
    assert rules._cached.cache_info().hits == hits + 1


def test_nothing_is_kept_before_the_first_request(issuer: TestIssuer) -> None:
    app, apisec = _app(issuer)
    rules = APISec.state(app).rules
    assert rules("GET", "/late") is None  # no such route yet

    @app.get("/late")
    @apisec.require_token(scopes=["late:read"])
    def late() -> str:
        return "late"

    response = app.test_client().get("/late")
    assert outcome(response) == (401, None, "token.missing")


def test_a_route_added_while_not_serving_is_protected(issuer: TestIssuer) -> None:
    app, apisec = _app(issuer)
    client = app.test_client()
    assert client.get("/open").status_code == 200  # serving: from now on rules are kept
    assert client.get("/later").status_code == 404  # (GET, /later) -> no rule, kept
    # What app.run() does when the development server stops: the app may change again.
    app._got_first_request = False

    @app.get("/later")
    @apisec.require_token(scopes=["later:read"])
    def later() -> str:
        return "later"

    assert outcome(client.get("/later")) == (401, None, "token.missing")
    assert client.get("/open").status_code == 200  # serving again: routes are final
    assert outcome(client.get("/later")) == (401, None, "token.missing")
    token = issuer.token("later:read")
    assert client.get("/later", token=token).get_data(as_text=True) == "later"
