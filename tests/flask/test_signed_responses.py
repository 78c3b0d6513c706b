"""Signed responses on routes that take plain bearer requests (``APISEC_SIGN_RESPONSES``,
``@sign_response``): each answer verifies with ``RequestVerifier`` against the request it
answers (FAPI 2.0 Message Signing, RFC 9421 ``;req``; a detached JWS profile), streamed
bodies are signed over exactly the bytes sent, and the errors of such a route (raised in the
view, or the token layer's refusals) are signed too."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask, Response, stream_with_context
from flask.views import MethodView
from werkzeug.test import TestResponse

from flask_apisec import APISec
from flask_apisec.testing import TestIssuer
from tests.flask import make_app, outcome
from wsgi_apisec import profiles
from wsgi_apisec.environ import message_from_environ
from wsgi_apisec.errors import ConfigurationError, InsufficientScope, SignatureError
from wsgi_apisec.fapi2 import FAPI2
from wsgi_apisec.httpsig_policy import parse_dictionary
from wsgi_apisec.keys import KeySet, PrivateKey
from wsgi_apisec.message import Body, Headers, Message
from wsgi_apisec.resolvers import StaticKeyResolver
from wsgi_apisec.signatures import Profile, RequestVerifier, SignatureResult

CHUNKS = [b'{"items": [', b'"a", ', b'"b"', b"]}"]


@pytest.fixture(scope="module")
def issuer() -> TestIssuer:
    return TestIssuer("ES256")


@pytest.fixture(scope="module")
def server_key() -> PrivateKey:
    return PrivateKey.generate("ES256", kid="rs-1")


@pytest.fixture(scope="module")
def client_key() -> PrivateKey:
    return PrivateKey.generate("ES256", kid="client-1")


@pytest.fixture(scope="module")
def app(issuer: TestIssuer, server_key: PrivateKey, client_key: PrivateKey) -> Flask:
    app = make_app(
        issuers=[issuer.issuer_config()],
        signing_key=server_key,
        sign_responses="fapi2",
        signature_keys=StaticKeyResolver(KeySet([client_key.public_key()])),
    )
    apisec = APISec(app)

    @app.get("/accounts")
    @apisec.require_token(scopes="accounts:read")
    def accounts() -> dict[str, Any]:
        return {"accounts": [{"id": "acc-1", "balance": "4823.17"}]}

    @app.get("/stream")
    @apisec.require_token(scopes="accounts:read")
    def stream() -> Response:
        def chunks() -> Iterator[bytes]:
            yield from CHUNKS

        return Response(stream_with_context(chunks()), mimetype="application/json")

    @app.get("/admin")
    @apisec.require_token(scopes="accounts:read")
    def admin() -> str:
        raise InsufficientScope("needs accounts:admin", challenge={"scope": "accounts:admin"})

    @app.get("/jws")
    @apisec.require_token(scopes="accounts:read")
    @apisec.sign_response(profile="jws")
    def jws_view() -> dict[str, Any]:
        return {"jws": True}

    @app.post("/signed")
    @apisec.require_token(scopes="accounts:read")
    @apisec.require_signature(profile=FAPI2)
    def signed() -> dict[str, Any]:
        return {"signed": True}

    @app.get("/open")
    def open_view() -> str:
        return "open"

    return app


def _verify(response: TestResponse, jwks: dict[str, Any], profile: Profile = FAPI2) -> Any:
    """Verify ``response`` as the client would, against the request it sent."""
    answer = Message(
        status=response.status_code,
        headers=Headers(list(response.headers.items())),
        body=Body(response.get_data()),
        request=message_from_environ(response.request.environ),
    )
    return RequestVerifier(profile, StaticKeyResolver(KeySet.from_jwks(jwks))).verify(answer)


@pytest.fixture(scope="module")
def jwks(app: Flask) -> dict[str, Any]:
    found: dict[str, Any] = app.test_client().get("/.well-known/jwks.json").get_json()
    return found


def test_fapi2_s5_token_only_route_response_is_signed(
    app: Flask, issuer: TestIssuer, jwks: dict[str, Any]
) -> None:
    response = app.test_client().get("/accounts", token=issuer.token("accounts:read"))
    assert response.status_code == 200
    assert 'tag="fapi-2-response"' in response.headers["Signature-Input"]
    result = _verify(response, jwks)
    assert result.kid == "rs-1"
    assert result.covered == ('"@status"', '"content-digest"', '"@method";req', '"@target-uri";req')
    response.set_data(response.get_data().replace(b"4823.17", b"9823.17"))
    with pytest.raises(SignatureError):
        _verify(response, jwks)


def test_streamed_response_is_signed_over_the_bytes_sent(
    app: Flask, issuer: TestIssuer, jwks: dict[str, Any]
) -> None:
    response = app.test_client().get("/stream", token=issuer.token("accounts:read"))
    assert response.get_data() == b"".join(CHUNKS)
    assert response.headers["Content-Length"] == str(len(b"".join(CHUNKS)))
    _verify(response, jwks)


def test_in_view_error_of_a_signed_route_is_signed(
    app: Flask, issuer: TestIssuer, jwks: dict[str, Any]
) -> None:
    response = app.test_client().get("/admin", token=issuer.token("accounts:read"))
    assert outcome(response) == (403, "insufficient_scope", "token.insufficient_scope")
    assert 'scope="accounts:admin"' in response.headers["WWW-Authenticate"]
    _verify(response, jwks)


@pytest.mark.parametrize(
    ("scope", "expected"),
    [(None, (401, None, "token.missing")), ("other", (403, "insufficient_scope", None))],
    ids=["no-token", "wrong-scope"],
)
def test_token_layer_refusal_of_a_signed_route_is_signed(
    app: Flask,
    issuer: TestIssuer,
    jwks: dict[str, Any],
    scope: str | None,
    expected: tuple[int, str | None, str | None],
) -> None:
    token = issuer.token(scope) if scope is not None else None
    response = app.test_client().get("/accounts", token=token)
    status, error, code = outcome(response)
    assert (status, error or None) == expected[:2]
    assert expected[2] is None or code == expected[2]
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    _verify(response, jwks)


def test_detached_jws_profile_on_a_token_only_route(
    app: Flask, issuer: TestIssuer, jwks: dict[str, Any]
) -> None:
    client = app.test_client()
    response = client.get("/jws", token=issuer.token("accounts:read"))
    assert response.status_code == 200 and "Signature" not in response.headers
    result = _verify(response, jwks, profiles.JWS)
    assert (result.profile, result.alg, result.kid) == ("jws", "ES256", "rs-1")
    refused = client.get("/jws")
    assert refused.status_code == 401
    _verify(refused, jwks, profiles.JWS)
    refused.set_data(refused.get_data() + b" ")
    with pytest.raises(SignatureError):
        _verify(refused, jwks, profiles.JWS)


def test_rfc9421_s2_4_signed_request_route_links_the_verified_signature(
    app: Flask, issuer: TestIssuer, client_key: PrivateKey, jwks: dict[str, Any]
) -> None:
    response = app.test_client().post(
        "/signed", json={"a": 1}, token=issuer.token("accounts:read"), signature=(FAPI2, client_key)
    )
    assert response.status_code == 200
    # Signed once (by the outer layer, not also by the signature layer), linked to the
    # request's verified signature and its digest.
    assert list(parse_dictionary(response.headers["Signature"], "signature")) == ["sig1"]
    result: SignatureResult = _verify(response, jwks)
    assert result.covered[-3:] == (
        '"content-digest";req',
        '"signature";key="sig1";req',
        '"signature-input";key="sig1";req',
    )


def test_routes_without_requirements_are_not_signed(app: Flask) -> None:
    client = app.test_client()
    for path, status in (("/open", 200), ("/nowhere", 404)):
        response = client.get(path)
        assert response.status_code == status
        assert "Signature" not in response.headers


# --- configuration -------------------------------------------------------------------------


def test_sign_response_decorator_without_the_config(issuer: TestIssuer) -> None:
    key = PrivateKey.generate("ES256")
    app = make_app(issuers=[issuer.issuer_config()], signing_key=key, signature_profile="jws")
    apisec = APISec(app)

    @app.get("/one")
    @apisec.sign_response(profile=FAPI2)
    def one() -> str:
        return "one"

    @app.get("/bare")
    @apisec.sign_response  # APISEC_SIGNATURE_PROFILE
    def bare() -> str:
        return "bare"

    @app.get("/two")
    @apisec.require_token
    def two() -> str:
        return "two"

    client = app.test_client()
    jwks = client.get("/.well-known/jwks.json").get_json()
    _verify(client.get("/one"), jwks)
    _verify(client.get("/bare"), jwks, profiles.JWS)
    assert "Signature" not in client.get("/two", token=issuer.token("x")).headers


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"sign_responses": "fapi2"}, "needs APISEC_SIGNING_KEY"),
        ({"sign_responses": True, "signing_key": "KEY"}, "APISEC_SIGNATURE_PROFILE"),
        ({"sign_responses": 1, "signing_key": "KEY"}, "must be True, False"),
        ({"sign_responses": "nope", "signing_key": "KEY"}, "unknown signature profile"),
        ({"sign_responses": "ukob", "signing_key": "KEY"}, "cannot sign ukob responses"),
        ({"sign_responses": "g2p_connect", "signing_key": "KEY"}, "cannot sign g2p_connect"),
    ],
    ids=["no-key", "true-without-profile", "not-a-flag", "unknown", "wrong-alg", "cannot-sign"],
)
def test_configuration_errors_at_start_up(config: dict[str, Any], message: str) -> None:
    if config.get("signing_key") == "KEY":
        config = {**config, "signing_key": PrivateKey.generate("Ed25519")}
    with pytest.raises(ConfigurationError, match=message):
        APISec(make_app(**config))


def test_sign_response_fails_closed_when_it_cannot_sign(issuer: TestIssuer) -> None:
    app = make_app(issuers=[issuer.issuer_config()])  # no signing key
    apisec = APISec(app)

    @app.get("/unsignable")
    @apisec.require_token
    @apisec.sign_response(profile="fapi2")
    def unsignable() -> str:
        return "never unsigned"

    @apisec.sign_response(profile="fapi2")
    @app.get("/above")
    def above() -> str:
        return "never unsigned"

    client = app.test_client()
    for path in ("/unsignable", "/above"):
        response = client.get(path, token=issuer.token("x"))
        assert outcome(response) == (500, "server_error", "config.invalid")
        assert "never" not in response.get_data(as_text=True)


def test_sign_response_the_url_map_cannot_see_fails_closed(
    issuer: TestIssuer, server_key: PrivateKey
) -> None:
    """On a ``MethodView`` method the decorator is invisible to the URL map: the view's own
    check refuses to answer unsigned."""
    other = make_app(issuers=[issuer.issuer_config()], signing_key=server_key)
    apisec = APISec(other)

    class Items(MethodView):
        @apisec.sign_response(profile="fapi2")
        def get(self) -> str:
            return "never unsigned"

    other.add_url_rule("/items", view_func=Items.as_view("items"))
    response = other.test_client().get("/items")
    assert outcome(response) == (500, "server_error", "config.not_installed")
    assert "Signature" not in response.headers
