"""``require_token`` / ``require_signature``: every decorator path, with the exact status,
RFC 6750 error, dotted code and challenge the client gets."""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from flask import Blueprint, Flask
from flask.views import MethodView

from flask_apisec import APISec, current_binding, current_signature, current_token
from flask_apisec.context import ENV_INSTALLED
from flask_apisec.decorators import token_requirement
from flask_apisec.testing import ClientCert, TestIssuer, make_client_cert
from tests.flask import make_app, outcome
from wsgi_apisec.environ import ENV_TOKEN, ENV_TOKEN_REQUIREMENT
from wsgi_apisec.errors import ConfigurationError, InsufficientScope
from wsgi_apisec.keys import PrivateKey
from wsgi_apisec.message import Body, Headers, Message
from wsgi_apisec.profiles import OCEN
from wsgi_apisec.resolvers import StaticKeyResolver
from wsgi_apisec.rules import TokenRequirement
from wsgi_apisec.signatures import RequestVerifier
from wsgi_apisec.tokens import Issuer, TokenValidator

CHALLENGE = "WWW-Authenticate"


@pytest.fixture(scope="module")
def issuer() -> TestIssuer:
    return TestIssuer("ES256")


@pytest.fixture(scope="module")
def cert() -> ClientCert:
    return make_client_cert("tpp")


def _views(app: Flask, apisec: APISec) -> None:
    """One view per decorator form, sync and async."""

    @app.get("/bare")
    @apisec.require_token
    def bare() -> dict[str, Any]:
        return {"sub": current_token.subject}

    @app.get("/async-bare")
    @apisec.require_token
    async def async_bare() -> dict[str, Any]:
        return {"sub": current_token.subject}

    @app.get("/all-of")
    @apisec.require_token(scopes=["accounts:read", "balances:read"])
    def all_of() -> dict[str, Any]:
        return {"scopes": sorted(current_token.scopes)}

    @app.get("/async-any-of")
    @apisec.require_token(any_of=["fdx:accountbasic:read", "fdx:accountdetailed:read"])
    async def async_any_of() -> dict[str, Any]:
        return {"scopes": sorted(current_token.scopes)}

    @app.get("/contact")
    @apisec.require_token(scopes="fdx:customercontact:read")
    def contact() -> dict[str, Any]:
        # PROTOCOLS.md (FDX): fdx:customerpersonal:read is optional and adds data.
        more = current_token.has_scope("fdx:customerpersonal:read")
        return {"email": "a@example.com", **({"ssn": "***"} if more else {})}

    @app.get("/optional")
    @apisec.require_token(optional=True)
    def optional() -> dict[str, Any]:
        return {
            "token": bool(current_token),
            "sub": current_token.subject if current_token else None,
        }

    @app.get("/mtls")
    @apisec.require_token(cert_bound=True)
    def mtls() -> dict[str, Any]:
        return {"x5t": current_binding.x5t_s256}

    @app.post("/dpop")
    @apisec.require_token(dpop=True)
    async def dpop() -> dict[str, Any]:
        return {"jkt": current_binding.dpop.jkt if current_binding.dpop else None}


@pytest.fixture(scope="module")
def client(issuer: TestIssuer) -> Any:
    app = make_app(issuers=[issuer.issuer_config()], realm="api")
    apisec = APISec(app)
    _views(app, apisec)
    return app.test_client()


# --- require_token: bare and called, sync and async ------------------------------------------


@pytest.mark.parametrize("path", ["/bare", "/async-bare"])
def test_bare_accepts_a_valid_token(client: Any, issuer: TestIssuer, path: str) -> None:
    response = client.get(path, token=issuer.token(sub="alice"))
    assert (response.status_code, response.json) == (200, {"sub": "alice"})


@pytest.mark.parametrize("path", ["/bare", "/async-bare"])
def test_rfc6750_s3_1_no_credentials_is_401_without_error(client: Any, path: str) -> None:
    response = client.get(path)
    assert outcome(response) == (401, None, "token.missing")
    assert response.headers[CHALLENGE] == 'Bearer realm="api"'


@pytest.mark.parametrize("path", ["/bare", "/async-bare"])
def test_rfc6750_s3_1_bad_token_is_invalid_token(
    client: Any, issuer: TestIssuer, path: str
) -> None:
    expired = issuer.token(exp=int(time.time()) - 3600, iat=int(time.time()) - 7200)
    response = client.get(path, token=expired)
    assert outcome(response) == (401, "invalid_token", "token.expired")
    assert response.headers[CHALLENGE].startswith('Bearer realm="api", error="invalid_token"')


def test_foreign_issuer_is_invalid_token(client: Any) -> None:
    stranger = TestIssuer("ES256", issuer="https://evil.test")
    response = client.get("/bare", token=stranger.token())
    assert outcome(response) == (401, "invalid_token", "token.issuer")


def test_all_of_scopes(client: Any, issuer: TestIssuer) -> None:
    ok = client.get("/all-of", token=issuer.token(["accounts:read", "balances:read", "x"]))
    assert (ok.status_code, ok.json) == (200, {"scopes": ["accounts:read", "balances:read", "x"]})
    short = client.get("/all-of", token=issuer.token(["accounts:read"]))
    assert outcome(short) == (403, "insufficient_scope", "token.insufficient_scope")
    # RFC 6750 §3: the challenge names the scope the resource needs.
    assert 'scope="accounts:read balances:read"' in short.headers[CHALLENGE]
    assert 'error="insufficient_scope"' in short.headers[CHALLENGE]


def test_any_of_scopes_on_async_view(client: Any, issuer: TestIssuer) -> None:
    ok = client.get("/async-any-of", token=issuer.token("fdx:accountdetailed:read"))
    assert (ok.status_code, ok.json) == (200, {"scopes": ["fdx:accountdetailed:read"]})
    none = client.get("/async-any-of", token=issuer.token("fdx:customercontact:read"))
    assert outcome(none) == (403, "insufficient_scope", "token.insufficient_scope")
    assert 'scope="fdx:accountbasic:read fdx:accountdetailed:read"' in none.headers[CHALLENGE]


def test_optional_scope_read_through_current_token(client: Any, issuer: TestIssuer) -> None:
    base = client.get("/contact", token=issuer.token("fdx:customercontact:read"))
    assert base.json == {"email": "a@example.com"}
    more = issuer.token(["fdx:customercontact:read", "fdx:customerpersonal:read"])
    assert client.get("/contact", token=more).json == {"email": "a@example.com", "ssn": "***"}


def test_optional_token(client: Any, issuer: TestIssuer) -> None:
    assert client.get("/optional").json == {"token": False, "sub": None}
    given = client.get("/optional", token=issuer.token(sub="bob"))
    assert given.json == {"token": True, "sub": "bob"}
    # optional never means "a bad token is fine".
    bad = client.get("/optional", token=issuer.token(aud="https://other.test"))
    assert outcome(bad) == (401, "invalid_token", "token.audience")


# --- sender-constrained tokens -----------------------------------------------------------------


def test_rfc8705_s3_cert_bound_token_with_its_certificate(
    client: Any, issuer: TestIssuer, cert: ClientCert
) -> None:
    response = client.get("/mtls", token=issuer.token(cert=cert), client_cert=cert)
    assert (response.status_code, response.json) == (200, {"x5t": cert.x5t_s256})


def test_rfc8705_s3_cert_bound_token_with_another_certificate(
    client: Any, issuer: TestIssuer, cert: ClientCert
) -> None:
    other = make_client_cert("other")
    response = client.get("/mtls", token=issuer.token(cert=cert), client_cert=other)
    assert outcome(response) == (401, "invalid_token", "token.cert_mismatch")
    missing = client.get("/mtls", token=issuer.token(cert=cert))
    assert outcome(missing) == (401, "invalid_token", "token.cert_missing")


def test_rfc8705_s3_route_refuses_an_unbound_token(
    client: Any, issuer: TestIssuer, cert: ClientCert
) -> None:
    response = client.get("/mtls", token=issuer.token(), client_cert=cert)
    assert outcome(response) == (401, "invalid_token", "token.cert_required")


def test_rfc9449_s7_dpop_bound_token_with_proof(client: Any, issuer: TestIssuer) -> None:
    key = PrivateKey.generate("ES256")
    token = issuer.token(dpop_key=key)
    response = client.post("/dpop", token=token, dpop=key, json={"a": 1})
    assert (response.status_code, response.json) == (200, {"jkt": key.thumbprint()})


def test_rfc9449_s7_2_dpop_bound_token_as_bearer(client: Any, issuer: TestIssuer) -> None:
    key = PrivateKey.generate("ES256")
    response = client.post("/dpop", token=issuer.token(dpop_key=key))
    assert outcome(response) == (401, "invalid_token", "token.dpop_scheme_required")
    assert response.headers[CHALLENGE].startswith('DPoP realm="api", error="invalid_token"')
    assert 'algs="ES256 PS256 EdDSA RS256"' in response.headers[CHALLENGE]


def test_rfc9449_s7_1_dpop_route_refuses_unbound_token(client: Any, issuer: TestIssuer) -> None:
    response = client.post("/dpop", token=issuer.token())
    assert outcome(response) == (401, "invalid_token", "token.dpop_required")
    assert response.headers[CHALLENGE].startswith("DPoP ")


def test_rfc9449_s4_3_proof_of_another_key(client: Any, issuer: TestIssuer) -> None:
    key, thief = PrivateKey.generate("ES256"), PrivateKey.generate("ES256")
    response = client.post("/dpop", token=issuer.token(dpop_key=key), dpop=thief)
    assert outcome(response) == (401, "invalid_token", "token.dpop_key_mismatch")


def test_rfc9449_s11_1_replayed_proof(client: Any, issuer: TestIssuer) -> None:
    from wsgi_apisec.dpop import make_proof

    key = PrivateKey.generate("ES256")
    token = issuer.token(dpop_key=key)
    proof = make_proof(key, "POST", "http://localhost/dpop", access_token=token)
    headers = {"Authorization": f"DPoP {token}", "DPoP": proof}
    assert client.post("/dpop", headers=headers).status_code == 200
    again = client.post("/dpop", headers=headers)
    assert outcome(again) == (401, "invalid_dpop_proof", "dpop.replayed")


# --- require_signature -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ocen() -> dict[str, Any]:
    """An OCEN lender key, the provider's response key and an app verifying with them."""
    lender = PrivateKey.generate("RS256")
    provider = PrivateKey.generate("RS256", kid="provider-1")
    issuer = TestIssuer("RS256")
    app = make_app(
        issuers=[issuer.issuer_config()],
        signature_profile="ocen",
        signature_keys={"owners": {"lender-1": {"keys": [lender.public_key().to_jwk()]}}},
        signing_key=provider,
    )
    apisec = APISec(app)

    @app.post("/loans")
    @apisec.require_token
    @apisec.require_signature
    def loans() -> dict[str, Any]:
        return {"owner": current_signature.owner, "profile": current_signature.profile}

    @app.post("/async-loans")
    @apisec.require_token(scopes="loan:apply")
    @apisec.require_signature(profile="ocen")
    async def async_loans() -> dict[str, Any]:
        return {"owner": current_signature.owner}

    @app.post("/profile-object")
    @apisec.require_token
    @apisec.require_signature(profile=OCEN)
    def profile_object() -> dict[str, Any]:
        return {"owner": current_signature.owner}

    token = issuer.token("loan:apply", participantId="lender-1")
    return {"client": app.test_client(), "lender": lender, "provider": provider, "token": token}


@pytest.mark.parametrize("path", ["/loans", "/async-loans", "/profile-object"])
def test_signed_request_passes_and_response_is_signed(ocen: dict[str, Any], path: str) -> None:
    body = json.dumps({"amount": "50000.00", "n": path}).encode()
    response = ocen["client"].post(
        path,
        data=body,
        content_type="application/json",
        token=ocen["token"],
        signature=("ocen", ocen["lender"]),
    )
    assert response.status_code == 200, response.data
    assert response.json["owner"] == "lender-1"
    signed = Message(status=200, headers=Headers(list(response.headers.items())))
    signed.body = Body(response.data)
    verifier = RequestVerifier(
        OCEN.replace(key_owner=None, replay=None),
        StaticKeyResolver([ocen["provider"].public_key()]),
    )
    assert verifier.verify(signed).kid == "provider-1"


def test_unsigned_request_is_refused_before_the_view(ocen: dict[str, Any]) -> None:
    response = ocen["client"].post("/loans", json={"a": 1}, token=ocen["token"])
    assert outcome(response) == (401, "invalid_signature", "signature.missing")


def test_tampered_body_is_refused(ocen: dict[str, Any]) -> None:
    signed = ocen["client"].post(
        "/loans",
        data=b'{"amount":"1.00"}',
        content_type="application/json",
        token=ocen["token"],
        signature=("ocen", ocen["lender"]),
    )
    assert signed.status_code == 200
    header = signed.request.headers["x-jws-signature"]
    response = ocen["client"].post(
        "/loans",
        data=b'{"amount":"9.00"}',
        content_type="application/json",
        token=ocen["token"],
        headers={"x-jws-signature": header},
    )
    assert outcome(response) == (401, "invalid_signature", "signature.invalid")


def test_token_is_checked_before_the_signature(ocen: dict[str, Any]) -> None:
    response = ocen["client"].post("/loans", json={}, signature=("ocen", ocen["lender"]))
    assert outcome(response) == (401, None, "token.missing")


# --- fail closed -------------------------------------------------------------------------------


def test_decorator_above_route_fails_closed(issuer: TestIssuer) -> None:
    app = make_app(issuers=[issuer.issuer_config()])
    apisec = APISec(app)

    @apisec.require_token
    @app.get("/wrong")
    def wrong() -> str:
        return "secret"

    response = app.test_client().get("/wrong")
    assert outcome(response) == (500, "server_error", "config.invalid")
    assert b"secret" not in response.data


def test_decorated_view_on_app_without_extension(issuer: TestIssuer) -> None:
    app = make_app()
    bp = Blueprint("bp", __name__)

    @bp.get("/x")
    @APISec.require_token
    def x() -> str:
        return "secret"

    app.register_blueprint(bp)
    with pytest.raises(ConfigurationError) as info:
        app.test_client().get("/x", token=issuer.token())
    assert info.value.code == "config.not_installed"
    assert "not installed" in info.value.detail


def test_token_view_without_issuers_is_a_500(issuer: TestIssuer) -> None:
    app = make_app()
    apisec = APISec(app)

    @app.get("/x")
    @apisec.require_token
    def x() -> str:
        return "secret"

    response = app.test_client().get("/x", token=issuer.token())
    assert outcome(response) == (500, "server_error", "config.invalid")


def test_signature_view_without_profile_is_a_500(issuer: TestIssuer) -> None:
    app = make_app(issuers=[issuer.issuer_config()], signature_keys={"keys": []})
    apisec = APISec(app)

    @app.post("/x")
    @apisec.require_signature
    def x() -> str:
        return "secret"

    response = app.test_client().post("/x")
    assert outcome(response) == (500, "server_error", "config.invalid")


def test_requirement_survives_another_wrapping_decorator(issuer: TestIssuer) -> None:
    app = make_app(issuers=[issuer.issuer_config()])
    apisec = APISec(app)

    def audited(view: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            return view(*args, **kwargs)

        return wrapper

    @app.get("/x")
    @audited
    @apisec.require_token(scopes="a")
    def x() -> str:
        return "ok"

    client = app.test_client()
    assert outcome(client.get("/x")) == (401, None, "token.missing")
    assert client.get("/x", token=issuer.token("a")).status_code == 200


def test_method_view_with_decorators(issuer: TestIssuer) -> None:
    app = make_app(issuers=[issuer.issuer_config()])
    apisec = APISec(app)

    class Items(MethodView):
        decorators = [apisec.require_token(scopes="items:read")]

        def get(self) -> str:
            return "items"

    app.add_url_rule("/items", view_func=Items.as_view("items"))
    client = app.test_client()
    assert outcome(client.get("/items", token=issuer.token("x"))) == (
        403,
        "insufficient_scope",
        "token.insufficient_scope",
    )
    assert client.get("/items", token=issuer.token("items:read")).data == b"items"


def test_decorated_method_of_a_method_view_fails_closed(issuer: TestIssuer) -> None:
    app = make_app(issuers=[issuer.issuer_config()])
    apisec = APISec(app)

    class Items(MethodView):
        @apisec.require_token(scopes="items:read")
        def get(self) -> str:
            return "items"

    app.add_url_rule("/items", view_func=Items.as_view("items"))
    response = app.test_client().get("/items", token=issuer.token("items:read"))
    assert outcome(response) == (500, "server_error", "config.not_installed")
    assert response.data != b"items"


# --- routing corners: Flask answers, not us ------------------------------------------------------


def test_routing_corners(client: Any) -> None:
    assert client.get("/nowhere").status_code == 404
    assert client.delete("/bare").status_code == 405
    # The automatic OPTIONS answer (a CORS preflight carries no credentials).
    assert client.options("/bare").status_code == 200
    # HEAD runs the GET view, so it needs the token too.
    assert outcome(client.head("/bare"))[0] == 401


def test_strict_slash_redirect_is_flasks(issuer: TestIssuer) -> None:
    app = make_app(issuers=[issuer.issuer_config()])
    apisec = APISec(app)

    @app.get("/dir/")
    @apisec.require_token
    def directory() -> str:
        return "ok"

    client = app.test_client()
    assert client.get("/dir").status_code == 308
    assert outcome(client.get("/dir/"))[0] == 401


# --- decorator misuse ----------------------------------------------------------------------------


def test_decorator_misuse_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="keyword arguments"):
        APISec.require_token("accounts:read")  # type: ignore[call-overload]
    with pytest.raises(ConfigurationError, match="scope-token"):
        APISec.require_token(scopes=["a b"])
    with pytest.raises(ConfigurationError, match="applied twice"):

        @APISec.require_token
        @APISec.require_token
        def twice() -> None: ...

    with pytest.raises(ConfigurationError, match="Profile or a name"):
        APISec.require_signature(profile=42)  # type: ignore[call-overload]


def test_wrapped_view_keeps_its_name_and_coroutine_nature() -> None:
    @APISec.require_token
    async def view() -> None: ...

    import inspect

    assert view.__name__ == "view"
    assert inspect.iscoroutinefunction(view)


def test_view_check_trusts_only_the_requirement_the_layer_applied(issuer: TestIssuer) -> None:
    """The view-side check is skipped only when the token layer recorded this very
    requirement; a token checked against another one (here: a wrapper or a second
    middleware that put its own result in the environ) is checked again."""
    app = make_app(issuers=[issuer.issuer_config()])
    apisec = APISec(app)

    @app.get("/admin")
    @apisec.require_token(scopes=["admin"])
    def admin() -> str:
        return "secret"

    view = app.view_functions["admin"]
    requirement = token_requirement(view)
    assert requirement is not None
    token = TokenValidator(Issuer(**issuer.issuer_config())).validate(issuer.token("read"))
    base = {ENV_INSTALLED: True, ENV_TOKEN: token}
    other = TokenRequirement(scopes=("read",))
    with (
        app.test_request_context(
            "/admin", environ_overrides={**base, ENV_TOKEN_REQUIREMENT: other}
        ),
        pytest.raises(InsufficientScope),
    ):
        view()
    with app.test_request_context(
        "/admin", environ_overrides={**base, ENV_TOKEN_REQUIREMENT: requirement}
    ):
        assert view() == "secret"  # what the layer applied is what the view asked for
