"""A small OAuth 2.0 authorization server for the samples and tests, built on Authlib.

* grants: ``client_credentials`` and ``authorization_code`` with PKCE (S256 required) and a
  minimal consent page (a fixed list of demo users, no passwords);
* client authentication: ``client_secret_basic``, ``private_key_jwt`` (RFC 7523) and
  ``tls_client_auth`` (RFC 8705 §2.1, certificate from ``SSL_CLIENT_CERT``);
* access tokens: RFC 9068 JWTs (``typ: at+jwt``, ES256 or PS256) with ``cnf.x5t#S256`` when
  the client used mTLS and ``participantId`` for OCEN clients, or opaque tokens for
  RFC 7662 introspection;
* ``/jwks``, RFC 8414 metadata, ``/introspect``, ``/revoke`` (RFC 7009).

Run it (throwaway config and PKI, TLS on https://127.0.0.1:8443, client certificates asked
for but not required; it prints the CA, a client certificate and the clients' secrets)::

    python -m sample_apps.authserver [port]
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from authlib.oauth2 import OAuth2Error  # type: ignore[import-untyped]
from flask import Flask, Response, jsonify, render_template, request

from wsgi_apisec.environ import client_cert

from .config import AUTH_METHODS, GRANT_TYPES, ServerConfig, load_config
from .models import DemoUser
from .oauth import ASSERTION_ALGS, SampleAuthorizationServer, build_server
from .storage import Storage
from .tokens import AccessTokenIssuer, load_signing_key

__all__ = ["ServerConfig", "create_app", "load_config", "metadata"]


def create_app(config: Mapping[str, Any] | str | Path | ServerConfig) -> Flask:
    """The Flask app for ``config`` (a dict, a JSON file path, or a :class:`ServerConfig`)."""
    settings = config if isinstance(config, ServerConfig) else load_config(config)
    key = load_signing_key(settings)
    storage = Storage(settings.database)

    def current_cert() -> bytes | None:
        # Set by the WSGI server from the TLS layer (werkzeug, mod_wsgi, uWSGI), never
        # from a request header, so a client cannot claim a certificate it did not present.
        return client_cert(request.environ)

    issuer = AccessTokenIssuer(settings, key, storage, current_cert)
    server = build_server(settings, storage, issuer, current_cert)
    app = Flask(__name__)
    app.extensions["authserver"] = server

    @app.get("/.well-known/oauth-authorization-server")
    def well_known() -> Response:
        return jsonify(metadata(settings))

    @app.get("/jwks")
    def jwks() -> Response:
        return jsonify({"keys": [key.public_key().to_jwk()]})

    @app.post("/token")
    def token() -> Response:
        return server.create_token_response()  # type: ignore[no-any-return]

    @app.post("/introspect")
    def introspect() -> Response:
        return server.create_endpoint_response("introspection")  # type: ignore[no-any-return]

    @app.post("/revoke")
    def revoke() -> Response:
        return server.create_endpoint_response("revocation")  # type: ignore[no-any-return]

    @app.route("/authorize", methods=["GET", "POST"])
    def authorize() -> Response | tuple[str, int, dict[str, str]]:
        return _authorize(server, settings)

    return app


def _authorize(
    server: SampleAuthorizationServer, settings: ServerConfig
) -> Response | tuple[str, int, dict[str, str]]:
    """GET shows the consent page; POST carries the decision (same query string)."""
    approved = request.method == "POST" and request.form.get("decision") == "approve"
    name = request.form.get("username", "")
    user = DemoUser(name) if approved and name in settings.users else None
    try:
        grant = server.get_consent_grant(end_user=user)
    except OAuth2Error as error:
        # Redirects back with the error once the client and redirect_uri are known
        # (RFC 6749 §4.1.2.1); before that it is shown here, never sent to an unknown URI.
        return server.handle_error_response(None, error)  # type: ignore[no-any-return]
    if request.method == "GET" or (approved and user is None):
        problem = "" if request.method == "GET" else f"unknown demo user {name!r}"
        page = render_template(
            "consent.html",
            client_id=grant.client.client_id,
            scopes=grant.request.scope.split(),
            users=settings.users,
            action=request.full_path,
            error=problem,
        )
        # The consent page must not be framed (clickjacking, RFC 6749 §10.13).
        headers = {"X-Frame-Options": "DENY", "Content-Security-Policy": "frame-ancestors 'none'"}
        return page, 400 if problem else 200, headers
    return server.create_authorization_response(grant_user=user, grant=grant)  # type: ignore[no-any-return]


def metadata(settings: ServerConfig) -> dict[str, Any]:
    """RFC 8414 §2 authorization server metadata (+ RFC 8705 §3.3)."""
    return {
        "issuer": settings.issuer,
        "authorization_endpoint": settings.endpoint("/authorize"),
        "token_endpoint": settings.endpoint("/token"),
        "jwks_uri": settings.endpoint("/jwks"),
        "introspection_endpoint": settings.endpoint("/introspect"),
        "revocation_endpoint": settings.endpoint("/revoke"),
        "scopes_supported": sorted({s for c in settings.clients.values() for s in c.scopes}),
        "response_types_supported": ["code"],
        "grant_types_supported": list(GRANT_TYPES),
        "token_endpoint_auth_methods_supported": list(AUTH_METHODS),
        "token_endpoint_auth_signing_alg_values_supported": list(ASSERTION_ALGS),
        "introspection_endpoint_auth_methods_supported": list(AUTH_METHODS),
        "introspection_endpoint_auth_signing_alg_values_supported": list(ASSERTION_ALGS),
        "revocation_endpoint_auth_methods_supported": list(AUTH_METHODS),
        "revocation_endpoint_auth_signing_alg_values_supported": list(ASSERTION_ALGS),
        "code_challenge_methods_supported": ["S256"],
        "tls_client_certificate_bound_access_tokens": True,
    }
