"""``APISec`` itself: init patterns, the WSGI stack it installs, FAPI interaction ids, the
error handler for errors raised in views, and the per-endpoint rule cache."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from flask import Blueprint, Flask

from flask_apisec import APISec, APISecState, current_token, interaction_id
from flask_apisec.testing import TestIssuer, make_client_cert
from tests.flask import make_app, outcome
from wsgi_apisec.errors import ConfigurationError, InsufficientScope
from wsgi_apisec.rules import TokenRequirement

FAPI_ID = "x-fapi-interaction-id"


@pytest.fixture(scope="module")
def issuer() -> TestIssuer:
    return TestIssuer("PS256")


def test_app_factory_pattern(issuer: TestIssuer) -> None:
    apisec = APISec()
    bp = Blueprint("api", __name__)

    @bp.get("/me")
    @apisec.require_token(scopes="profile")
    def me() -> dict[str, Any]:
        return {"sub": current_token.subject}

    def create_app() -> Flask:
        app = make_app(issuers=[issuer.issuer_config()])
        apisec.init_app(app)
        app.register_blueprint(bp)
        return app

    first, second = create_app(), create_app()
    for app in (first, second):
        assert isinstance(app.extensions["apisec"], APISecState)
        client = app.test_client()
        assert outcome(client.get("/me"))[0] == 401
        assert client.get("/me", token=issuer.token("profile")).json == {"sub": "client-1"}
    assert APISec.state(first) is not APISec.state(second)


def test_overrides_win_over_app_config(issuer: TestIssuer) -> None:
    app = make_app(issuers=[issuer.issuer_config()], realm="from-config")
    APISec(app, realm="from-override")
    assert APISec.state(app).settings.realm == "from-override"


def test_init_twice_is_refused(issuer: TestIssuer) -> None:
    app = make_app(issuers=[issuer.issuer_config()])
    APISec(app)
    with pytest.raises(ConfigurationError, match="already initialised"):
        APISec(app)


def test_state_of_an_app_without_the_extension() -> None:
    with pytest.raises(ConfigurationError, match="not initialised"):
        APISec.state(Flask(__name__))


def test_host_matching_is_refused() -> None:
    app = Flask(__name__, host_matching=True, static_host="example.com")
    with pytest.raises(ConfigurationError, match="path alone"):
        APISec(app)


def test_subdomain_routes_fail_closed(issuer: TestIssuer) -> None:
    app = make_app(issuers=[issuer.issuer_config()])
    app.config["SERVER_NAME"] = "example.test"
    app.subdomain_matching = True
    apisec = APISec(app)

    @app.get("/x", subdomain="api")
    @apisec.require_token
    def x() -> str:
        return "secret"

    response = app.test_client().get("/x", base_url="http://api.example.test")
    assert outcome(response) == (500, "server_error", "config.invalid")


def test_rules_are_built_once_per_endpoint(issuer: TestIssuer) -> None:
    app = make_app(issuers=[issuer.issuer_config()])
    apisec = APISec(app)

    @app.get("/items/<int:item>")
    @apisec.require_token(any_of=["a", "b"], cert_bound=True)
    def item(item: int) -> str:
        return str(item)

    rules = APISec.state(app).rules
    first, second = rules("GET", "/items/1"), rules("GET", "/items/2")
    assert first is second
    assert first is not None and first.token == TokenRequirement(any_of=("a", "b"), cert_bound=True)
    assert first.profile is None
    assert rules("GET", "/items/x") is None  # 404: Flask answers
    assert rules("POST", "/items/1") is None  # 405: Flask answers
    assert rules("GET", "/static/app.js") is None  # a view without requirements


def test_api_error_raised_in_a_view_gets_the_same_answer(issuer: TestIssuer) -> None:
    app = make_app(issuers=[issuer.issuer_config()], realm="bank", resource="https://api.test/bank")
    apisec = APISec(app)

    @app.get("/transfer")
    @apisec.require_token
    def transfer() -> str:
        if not current_token.has_scope("payments:write"):
            raise InsufficientScope("needs payments:write", challenge={"scope": "payments:write"})
        return "ok"

    response = app.test_client().get("/transfer", token=issuer.token("payments:read"))
    assert outcome(response) == (403, "insufficient_scope", "token.insufficient_scope")
    assert response.headers["WWW-Authenticate"] == (
        'Bearer realm="bank", error="insufficient_scope", error_description="needs '
        'payments:write", scope="payments:write", resource_metadata='
        '"https://api.test/.well-known/oauth-protected-resource/bank"'
    )
    assert response.headers["Content-Type"] == "application/problem+json"


def test_views_without_requirements_are_untouched(issuer: TestIssuer) -> None:
    app = make_app(issuers=[issuer.issuer_config()])
    APISec(app)

    @app.post("/public")
    def public() -> dict[str, Any]:
        return {"token": bool(current_token)}

    # Even a token that would be refused elsewhere is not looked at here.
    response = app.test_client().post("/public", token="not-a-jwt")
    assert response.json == {"token": False}


# --- transports --------------------------------------------------------------------------------


def _echo_app(issuer: TestIssuer, **config: Any) -> Any:
    app = make_app(issuers=[issuer.issuer_config()], **config)
    apisec = APISec(app)

    @app.route("/echo", methods=["GET", "POST"])
    @apisec.require_token
    def echo() -> dict[str, Any]:
        from flask import request

        return {"sub": current_token.subject, "form": dict(request.form)}

    return app.test_client()


def test_rfc6750_s2_3_query_token_refused_by_default(issuer: TestIssuer) -> None:
    client = _echo_app(issuer)
    response = client.get("/echo", query_string={"access_token": issuer.token()})
    assert outcome(response) == (400, "invalid_request", "request.invalid")


def test_rfc6750_s2_3_query_token_when_enabled(issuer: TestIssuer) -> None:
    client = _echo_app(issuer, token_in_query=True)
    response = client.get("/echo", query_string={"access_token": issuer.token()})
    assert response.json["sub"] == "client-1"


def test_rfc6750_s2_2_form_token_when_enabled(issuer: TestIssuer) -> None:
    client = _echo_app(issuer, token_in_form=True)
    token = issuer.token()
    response = client.post("/echo", data={"access_token": token, "other": "kept"})
    # The app still gets the whole form, byte for byte.
    assert response.json == {"sub": "client-1", "form": {"access_token": token, "other": "kept"}}
    ignored = _echo_app(issuer).post("/echo", data={"access_token": issuer.token()})
    assert outcome(ignored) == (401, None, "token.missing")


# --- FAPI --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fapi(issuer: TestIssuer) -> Any:
    app = make_app(issuers=[issuer.issuer_config()], fapi=True)
    apisec = APISec(app)

    @app.get("/accounts")
    @apisec.require_token(scopes="accounts")
    def accounts() -> Any:
        return {"id": interaction_id()}, 200, {FAPI_ID: "app-set-value"}

    @app.get("/open")
    def open_view() -> dict[str, Any]:
        return {"id": interaction_id()}

    return app.test_client()


def test_fapi_echoes_a_valid_interaction_id(fapi: Any, issuer: TestIssuer) -> None:
    cert = make_client_cert()
    sent = str(uuid.uuid4())
    response = fapi.get(
        "/accounts",
        token=issuer.token("accounts", cert=cert),
        client_cert=cert,
        headers={FAPI_ID: sent},
    )
    assert response.status_code == 200
    # The app's own value is replaced: exactly one, the echoed one.
    assert response.headers.getlist(FAPI_ID) == [sent]
    assert response.json == {"id": sent}


@pytest.mark.parametrize("sent", [None, "", "not-a-uuid", "1234", "<script>", "a" * 36])
def test_fapi_replaces_a_missing_or_bad_interaction_id(fapi: Any, sent: str | None) -> None:
    headers = {FAPI_ID: sent} if sent is not None else {}
    response = fapi.get("/open", headers=headers)
    (value,) = response.headers.getlist(FAPI_ID)
    assert uuid.UUID(value).version == 4
    assert value != sent and response.json == {"id": value}


def test_fapi_interaction_id_on_middleware_errors(fapi: Any) -> None:
    sent = str(uuid.uuid4())
    response = fapi.get("/accounts", headers={FAPI_ID: sent})
    assert outcome(response) == (401, None, "token.missing")
    assert response.headers.getlist(FAPI_ID) == [sent]


def test_fapi_refuses_unbound_tokens(fapi: Any, issuer: TestIssuer) -> None:
    response = fapi.get("/accounts", token=issuer.token("accounts"))
    assert outcome(response) == (401, "invalid_token", "token.unbound")


def test_fapi_refuses_query_tokens(fapi: Any, issuer: TestIssuer) -> None:
    response = fapi.get("/accounts", query_string={"access_token": issuer.token("accounts")})
    assert outcome(response) == (400, "invalid_request", "request.invalid")
    assert len(response.headers.getlist(FAPI_ID)) == 1


def test_no_interaction_id_without_fapi(issuer: TestIssuer) -> None:
    client = _echo_app(issuer)
    response = client.get("/echo", headers={FAPI_ID: str(uuid.uuid4())})
    assert FAPI_ID not in response.headers
