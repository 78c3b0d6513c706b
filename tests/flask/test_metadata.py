"""The JWKS endpoint and RFC 9728 protected-resource metadata."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask

from flask_apisec import APISec
from flask_apisec.metadata import metadata_path, metadata_url
from flask_apisec.testing import TestIssuer
from tests.flask import make_app
from wsgi_apisec.keys import KeySet, PrivateKey

RESOURCE = "https://api.bank.test/fdx/v6"
WELL_KNOWN = "/.well-known/oauth-protected-resource/fdx/v6"


@pytest.fixture(scope="module")
def issuer() -> TestIssuer:
    return TestIssuer("ES256", issuer="https://as.bank.test")


@pytest.fixture(scope="module")
def signing_key() -> PrivateKey:
    return PrivateKey.generate("PS256", kid="rs-1")


def _app(issuer: TestIssuer, **config: Any) -> Flask:
    app = make_app(issuers=[issuer.issuer_config()], **config)
    apisec = APISec(app)

    @app.get("/accounts")
    @apisec.require_token(any_of=["fdx:accountbasic:read", "fdx:accountdetailed:read"])
    def accounts() -> str:
        return "ok"

    @app.get("/contact")
    @apisec.require_token(scopes=["fdx:customercontact:read"], cert_bound=True)
    def contact() -> str:
        return "ok"

    @app.get("/consents")
    @apisec.require_token
    def consents() -> str:
        return "ok"

    return app


@pytest.mark.parametrize(
    ("resource", "path", "url"),
    [
        # RFC 9728 §3.1: the suffix goes between host and path; a trailing "/" is dropped.
        ("https://rs.test", "/.well-known/oauth-protected-resource", None),
        ("https://rs.test/", "/.well-known/oauth-protected-resource", None),
        ("https://rs.test/a/b/", "/.well-known/oauth-protected-resource/a/b", None),
        (
            "https://rs.test:8443/api",
            "/.well-known/oauth-protected-resource/api",
            "https://rs.test:8443/.well-known/oauth-protected-resource/api",
        ),
    ],
)
def test_rfc9728_s3_1_metadata_location(resource: str, path: str, url: str | None) -> None:
    assert metadata_path(resource) == path
    if url is not None:
        assert metadata_url(resource) == url


def test_rfc9728_s2_metadata_document(issuer: TestIssuer, signing_key: PrivateKey) -> None:
    app = _app(issuer, resource=RESOURCE, signing_key=signing_key)
    response = app.test_client().get(WELL_KNOWN)
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert response.json == {
        "resource": RESOURCE,
        "authorization_servers": ["https://as.bank.test"],
        "jwks_uri": "https://api.bank.test/.well-known/jwks.json",
        "scopes_supported": [
            "fdx:accountbasic:read",
            "fdx:accountdetailed:read",
            "fdx:customercontact:read",
        ],
        "bearer_methods_supported": ["header"],
        "tls_client_certificate_bound_access_tokens": True,
        "dpop_bound_access_tokens_required": False,
        "dpop_signing_alg_values_supported": ["ES256", "PS256", "EdDSA", "RS256"],
    }


def test_metadata_reflects_transports_and_settings(issuer: TestIssuer) -> None:
    app = _app(
        issuer,
        resource=RESOURCE,
        token_in_form=True,
        token_in_query=True,
        dpop_algorithms=["ES256"],
        authorization_servers=["https://login.bank.test"],
    )
    document = app.test_client().get(WELL_KNOWN).json
    assert document["bearer_methods_supported"] == ["header", "body", "query"]
    assert document["dpop_signing_alg_values_supported"] == ["ES256"]
    assert document["authorization_servers"] == ["https://login.bank.test"]
    assert "jwks_uri" not in document  # no signing key


def test_dpop_required_only_when_every_route_requires_it(issuer: TestIssuer) -> None:
    app = make_app(issuers=[issuer.issuer_config()], resource=RESOURCE)
    apisec = APISec(app)

    @app.get("/a")
    @apisec.require_token(dpop=True, scopes="a")
    def a() -> str:
        return "ok"

    document = app.test_client().get(WELL_KNOWN).json
    assert document["dpop_bound_access_tokens_required"] is True
    assert document["scopes_supported"] == ["a"]


def test_rfc9728_s5_1_challenges_point_at_the_metadata(issuer: TestIssuer) -> None:
    client = _app(issuer, resource=RESOURCE).test_client()
    response = client.get("/accounts")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == (
        'Bearer resource_metadata="https://api.bank.test' + WELL_KNOWN + '"'
    )
    # The metadata itself needs no token.
    assert client.get(WELL_KNOWN).status_code == 200


def test_no_metadata_without_resource(issuer: TestIssuer) -> None:
    client = _app(issuer).test_client()
    assert client.get("/.well-known/oauth-protected-resource").status_code == 404
    response = client.get("/accounts")
    assert response.headers["WWW-Authenticate"] == "Bearer"


def test_jwks_endpoint_serves_the_public_key(issuer: TestIssuer, signing_key: PrivateKey) -> None:
    client = _app(issuer, signing_key=signing_key).test_client()
    response = client.get("/.well-known/jwks.json")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "public, max-age=300"
    (jwk,) = response.json["keys"]
    assert not {"d", "p", "q", "dp", "dq", "qi"} & jwk.keys()
    assert (jwk["kid"], jwk["alg"], jwk["use"]) == ("rs-1", "PS256", "sig")
    keys = KeySet.from_jwks(response.json)
    assert keys.get("rs-1") is not None
    assert keys.get("rs-1").thumbprint() == signing_key.thumbprint()  # type: ignore[union-attr]


def test_jwks_path_is_configurable(issuer: TestIssuer, signing_key: PrivateKey) -> None:
    client = _app(issuer, signing_key=signing_key, jwks_path="/keys").test_client()
    assert client.get("/keys").status_code == 200
    assert client.get("/.well-known/jwks.json").status_code == 404


def test_no_jwks_without_a_signing_key(issuer: TestIssuer) -> None:
    assert _app(issuer).test_client().get("/.well-known/jwks.json").status_code == 404
