"""Tokens from a real Authlib authorization server are accepted by ``require_token``.

A minimal Flask AS (``authlib.integrations.flask_oauth2.AuthorizationServer``, the
client-credentials grant, Authlib's RFC 9068 ``JWTBearerTokenGenerator``) runs on 127.0.0.1;
the resource server fetches the AS's JWKS over HTTP with our ``JWKSResolver`` (plain http is
allowed for loopback only), for each of PS256, ES256, EdDSA and RS256.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests
from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import ClientMixin, grants
from authlib.oauth2.rfc9068 import JWTBearerTokenGenerator
from authlib.oauth2.rfc9068 import token as authlib_rfc9068
from flask import Flask, jsonify
from joserfc import jwt
from joserfc.jwk import KeySet

from flask_apisec import APISec, current_token
from flask_apisec.testing import serving
from tests.flask import make_app, outcome
from wsgi_apisec.keys import PrivateKey

pytestmark = [
    pytest.mark.server,
    # joserfc warns on the polymorphic EdDSA name (RFC 9864); FAPI 2.0 peers still send it.
    pytest.mark.filterwarnings("ignore:EdDSA is deprecated via RFC 9864"),
]

AUDIENCE = "https://api.test"
CLIENT_ID, CLIENT_SECRET = "tpp-1", "tpp-secret-0123456789"


@dataclass
class Client(ClientMixin):  # type: ignore[misc]
    """The one registered client: client_secret_basic, client_credentials only."""

    client_id: str = CLIENT_ID

    def get_client_id(self) -> str:
        return self.client_id

    def get_allowed_scope(self, scope: str) -> str:
        allowed = {"accounts", "payments"}
        return " ".join(s for s in (scope or "").split() if s in allowed)

    def check_client_secret(self, client_secret: str) -> bool:
        return client_secret == CLIENT_SECRET

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method == "client_secret_basic"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "client_credentials"


def authorization_server(issuer: str, key: PrivateKey, alg: str) -> Flask:
    app = Flask("authlib-as")
    server = AuthorizationServer(
        app,
        query_client=lambda cid: Client() if cid == CLIENT_ID else None,
        save_token=lambda token, request: None,
    )
    server.register_grant(grants.ClientCredentialsGrant)

    class Generator(JWTBearerTokenGenerator):  # type: ignore[misc]
        def get_jwks(self) -> KeySet:
            return KeySet.import_key_set({"keys": [key.to_jwk(private=True)]})

        def get_audiences(self, client: Any, user: Any, scope: str) -> str:
            return AUDIENCE

    server.register_token_generator("default", Generator(issuer=issuer, alg=alg))

    @app.post("/oauth/token")
    def token() -> Any:
        return server.create_token_response()

    @app.get("/jwks")
    def jwks() -> Any:
        return jsonify({"keys": [key.public_key().to_jwk()]})

    return app


class _OneAlgorithm:
    """Authlib's generator calls joserfc's ``jwt.encode`` without ``algorithms=``, which
    limits it to joserfc's "recommended" set (no PS256, no EdDSA): name the AS's one."""

    def __init__(self, alg: str) -> None:
        self.alg = alg

    def encode(self, header: dict[str, Any], claims: dict[str, Any], key: Any) -> str:
        return jwt.encode(header, claims, key, algorithms=[self.alg])


@pytest.fixture(scope="module", params=["PS256", "ES256", "EdDSA", "RS256"])
def authlib_as(request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    alg: str = request.param
    key = PrivateKey.generate(alg, kid=f"as-{alg.lower()}")
    # The issuer identifier names the port, known only once the server listens.
    app = Flask("late")
    with pytest.MonkeyPatch.context() as patch, serving(app) as port:
        patch.setattr(authlib_rfc9068, "jwt", _OneAlgorithm(alg))
        issuer = f"http://127.0.0.1:{port}"
        app.wsgi_app = authorization_server(issuer, key, alg).wsgi_app  # type: ignore[method-assign]
        yield {"alg": alg, "issuer": issuer}


def get_token(issuer: str, scope: str) -> str:
    response = requests.post(
        f"{issuer}/oauth/token",
        data={"grant_type": "client_credentials", "scope": scope},
        auth=(CLIENT_ID, CLIENT_SECRET),
        timeout=10,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"].lower() == "bearer"
    token: str = body["access_token"]
    return token


@pytest.fixture(scope="module")
def resource_server(authlib_as: dict[str, Any]) -> Any:
    app = make_app(
        issuers=[
            {
                "issuer": authlib_as["issuer"],
                "jwks_uri": f"{authlib_as['issuer']}/jwks",
                "audience": AUDIENCE,
                "algorithms": [authlib_as["alg"]],
            }
        ]
    )
    apisec = APISec(app)

    @app.get("/accounts")
    @apisec.require_token(scopes="accounts")
    def accounts() -> dict[str, Any]:
        return {
            "iss": current_token.issuer,
            "client_id": current_token.client_id,
            "sub": current_token.subject,
            "scopes": sorted(current_token.scopes),
        }

    return app.test_client()


def test_authlib_rfc9068_token_is_accepted(
    authlib_as: dict[str, Any], resource_server: Any
) -> None:
    token = get_token(authlib_as["issuer"], "accounts payments")
    response = resource_server.get("/accounts", token=token)
    assert response.status_code == 200, response.data
    assert response.json == {
        "iss": authlib_as["issuer"],
        "client_id": CLIENT_ID,
        "sub": CLIENT_ID,
        "scopes": ["accounts", "payments"],
    }


def test_authlib_token_without_the_scope(authlib_as: dict[str, Any], resource_server: Any) -> None:
    token = get_token(authlib_as["issuer"], "payments")
    response = resource_server.get("/accounts", token=token)
    assert outcome(response) == (403, "insufficient_scope", "token.insufficient_scope")


def test_authlib_token_with_a_changed_claim(
    authlib_as: dict[str, Any], resource_server: Any
) -> None:
    import base64
    import json

    header, payload, signature = get_token(authlib_as["issuer"], "payments").split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["scope"] = "accounts"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    response = resource_server.get("/accounts", token=f"{header}.{forged}.{signature}")
    assert outcome(response) == (401, "invalid_token", "token.signature")
