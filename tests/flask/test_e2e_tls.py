"""A Flask app behind Werkzeug's server over real TLS on 127.0.0.1: certificate-bound tokens
(RFC 8705) checked against the TLS client certificate, and against an RFC 9440
``Client-Cert`` header only when it comes from a trusted proxy.

Werkzeug's server puts the verified peer certificate into ``SSL_CLIENT_CERT`` (PEM) itself,
which is where :mod:`wsgi_apisec.environ` reads it; no custom request handler is needed.
"""

from __future__ import annotations

import http.client
import json
import ssl
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask, request

from flask_apisec import APISec, current_binding, current_token
from flask_apisec.testing import PKI, TestIssuer, make_pki, serving
from tests.flask import make_app

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return make_pki(tmp_path_factory.mktemp("pki"), clients=("tpp", "other"))


@pytest.fixture(scope="module")
def issuer() -> TestIssuer:
    return TestIssuer("PS256")


def _app(issuer: TestIssuer, trusted_proxies: list[str]) -> Flask:
    app = make_app(issuers=[issuer.issuer_config()], trusted_proxies=trusted_proxies)
    apisec = APISec(app)

    @app.get("/accounts")
    @apisec.require_token(scopes="accounts", cert_bound=True)
    def accounts() -> dict[str, Any]:
        return {
            "sub": current_token.subject,
            "x5t": current_binding.x5t_s256,
            "tls_cert": "SSL_CLIENT_CERT" in request.environ,
        }

    return app


@pytest.fixture(scope="module")
def mtls_port(pki: PKI, issuer: TestIssuer) -> Iterator[int]:
    """Client certificates required by the TLS layer."""
    with serving(_app(issuer, []), pki.server_context("required")) as port:
        yield port


def _get(
    port: int, ctx: ssl.SSLContext, token: str, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, Any], str | None]:
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=10)
    try:
        conn.request(
            "GET", "/accounts", headers={"Authorization": f"Bearer {token}", **(headers or {})}
        )
        response = conn.getresponse()
        return response.status, json.loads(response.read()), response.getheader("WWW-Authenticate")
    finally:
        conn.close()


def test_rfc8705_s3_bound_token_with_its_certificate(
    mtls_port: int, pki: PKI, issuer: TestIssuer
) -> None:
    tpp = pki.clients["tpp"]
    token = issuer.token("accounts", cert=tpp)
    status, body, _ = _get(mtls_port, pki.client_context("tpp"), token)
    assert (status, body) == (200, {"sub": "client-1", "x5t": tpp.x5t_s256, "tls_cert": True})


def test_rfc8705_s3_bound_token_with_another_certificate(
    mtls_port: int, pki: PKI, issuer: TestIssuer
) -> None:
    token = issuer.token("accounts", cert=pki.clients["tpp"])
    status, body, challenge = _get(mtls_port, pki.client_context("other"), token)
    assert (status, body["error"], body["code"]) == (401, "invalid_token", "token.cert_mismatch")
    assert challenge is not None and challenge.startswith('Bearer error="invalid_token"')


def test_tls_layer_refuses_a_client_without_certificate(mtls_port: int, pki: PKI) -> None:
    with pytest.raises((ssl.SSLError, ConnectionError, http.client.HTTPException)):
        _get(mtls_port, pki.client_context(None), "x")


# --- behind a TLS-terminating proxy ------------------------------------------------------------


@pytest.fixture(scope="module")
def proxied_ports(pki: PKI, issuer: TestIssuer) -> Iterator[tuple[int, int]]:
    """Server TLS only (the proxy's hop carries no client certificate): one app trusts
    127.0.0.1 as its proxy, the other trusts only 10.0.0.0/8."""
    context = pki.server_context("none")
    with (
        serving(_app(issuer, ["127.0.0.1"]), context) as trusted,
        serving(_app(issuer, ["10.0.0.0/8"]), context) as untrusted,
    ):
        yield trusted, untrusted


def test_rfc9440_client_cert_from_a_trusted_proxy(
    proxied_ports: tuple[int, int], pki: PKI, issuer: TestIssuer
) -> None:
    tpp = pki.clients["tpp"]
    token = issuer.token("accounts", cert=tpp)
    header = {"Client-Cert": tpp.client_cert_header}
    status, body, _ = _get(proxied_ports[0], pki.client_context(None), token, header)
    assert (status, body) == (200, {"sub": "client-1", "x5t": tpp.x5t_s256, "tls_cert": False})
    # A proxy that forwards another certificate gets the token refused.
    other = {"Client-Cert": pki.clients["other"].client_cert_header}
    status, body, _ = _get(proxied_ports[0], pki.client_context(None), token, other)
    assert (status, body["code"]) == (401, "token.cert_mismatch")


def test_rfc9440_client_cert_from_an_untrusted_peer_is_ignored(
    proxied_ports: tuple[int, int], pki: PKI, issuer: TestIssuer
) -> None:
    tpp = pki.clients["tpp"]
    token = issuer.token("accounts", cert=tpp)
    header = {"Client-Cert": tpp.client_cert_header}
    status, body, _ = _get(proxied_ports[1], pki.client_context(None), token, header)
    assert (status, body["error"], body["code"]) == (401, "invalid_token", "token.cert_missing")
