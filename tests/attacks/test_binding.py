"""Sender-constrained tokens: RFC 8705 certificate binding (TLS layer and trusted-proxy
headers) and FAPI's "bound tokens only"."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from werkzeug.test import TestResponse

from flask_apisec.testing import ClientCert, TestIssuer, make_client_cert
from tests.attacks.harness import PROXY, Setup, Target, challenge, passed, refused
from wsgi_apisec.keys import PrivateKey

INVALID = "invalid_token"


@pytest.fixture(scope="module")
def cert() -> ClientCert:
    return make_client_cert("tpp")


@pytest.fixture(scope="module")
def other_cert() -> ClientCert:
    return make_client_cert("other-tpp")


def refused_token(target: Target, resp: TestResponse, code: str, description: str) -> None:
    www = challenge(INVALID, description)
    refused(resp, target, 401, code, error=INVALID, www_authenticate=www)


def test_positive_control_bound_token_with_its_certificate(
    target: Target, issuer: TestIssuer, cert: ClientCert
) -> None:
    resp = target.client.get("/mtls", token=issuer.token("read", cert=cert), client_cert=cert)
    passed(resp, target, "/mtls")


def test_rfc8705_s3_bound_token_without_a_certificate(
    target: Target, issuer: TestIssuer, cert: ClientCert
) -> None:
    resp = target.client.get("/mtls", token=issuer.token("read", cert=cert))
    description = "token is certificate-bound but no client certificate was presented"
    refused_token(target, resp, "token.cert_missing", description)


def test_rfc8705_s3_bound_token_with_another_certificate(
    target: Target, issuer: TestIssuer, cert: ClientCert, other_cert: ClientCert
) -> None:
    token = issuer.token("read", cert=cert)
    resp = target.client.get("/mtls", token=token, client_cert=other_cert)
    refused_token(target, resp, "token.cert_mismatch", "certificate does not match the token")


def test_rfc8705_s3_bound_token_on_a_route_without_binding_still_needs_the_certificate(
    target: Target, issuer: TestIssuer, cert: ClientCert
) -> None:
    resp = target.client.get("/read", token=issuer.token("read", cert=cert))
    description = "token is certificate-bound but no client certificate was presented"
    refused_token(target, resp, "token.cert_missing", description)


def test_rfc9440_client_cert_header_forged_by_an_untrusted_peer(
    target: Target, issuer: TestIssuer, cert: ClientCert
) -> None:
    token = issuer.token("read", cert=cert)
    forged = {"Client-Cert": cert.client_cert_header}
    resp = target.client.get("/mtls", token=token, headers=forged)
    description = "token is certificate-bound but no client certificate was presented"
    refused_token(target, resp, "token.cert_missing", description)
    assert any("untrusted peer" in r.getMessage() for r in target.logs)
    # The positive control: the same header from the configured proxy is the certificate.
    trusted = target.client.get(
        "/mtls", token=token, headers=forged, environ_base={"REMOTE_ADDR": PROXY}
    )
    passed(trusted, target, "/mtls")


def test_rfc9440_proxy_header_cannot_override_the_tls_certificate(
    target: Target, issuer: TestIssuer, cert: ClientCert, other_cert: ClientCert
) -> None:
    """An untrusted peer with its own TLS certificate adds a header naming the victim's."""
    token = issuer.token("read", cert=cert)
    resp = target.client.get(
        "/mtls",
        token=token,
        client_cert=other_cert,
        headers={"Client-Cert": cert.client_cert_header},
    )
    refused_token(target, resp, "token.cert_mismatch", "certificate does not match the token")


def test_unbound_token_on_a_certificate_bound_route(target: Target, issuer: TestIssuer) -> None:
    resp = target.client.get("/mtls", token=issuer.token("read"))
    description = "the token must be bound to a client certificate"
    refused_token(target, resp, "token.cert_required", description)


def test_fapi_unbound_token_when_bound_tokens_are_required(
    build_target: Callable[[Setup], Target], setup: Setup, issuer: TestIssuer, cert: ClientCert
) -> None:
    target = build_target(setup.replace(require_bound=True))
    resp = target.client.get("/read", token=issuer.token("read"))
    refused_token(target, resp, "token.unbound", "token is not sender-constrained")
    passed(
        target.client.get("/read", token=issuer.token("read", cert=cert), client_cert=cert),
        target,
        "/read",
    )


def test_rfc9449_s7_1_dpop_bound_token_sent_as_bearer(target: Target, issuer: TestIssuer) -> None:
    token = issuer.token("read", dpop_key=PrivateKey.generate("ES256"))
    resp = target.client.get("/read", token=token)
    description = "DPoP-bound token must be presented with the DPoP scheme"
    www = challenge(INVALID, description, scheme="DPoP", algs="ES256 PS256 EdDSA RS256")
    refused(resp, target, 401, "token.dpop_scheme_required", error=INVALID, www_authenticate=www)


def test_cached_token_is_rebound_on_every_use(
    target: Target, issuer: TestIssuer, cert: ClientCert, other_cert: ClientCert
) -> None:
    """Both targets cache validated tokens by their bytes (``APISEC_TOKEN_CACHE`` default):
    a stolen token replayed after a good use still needs its certificate."""
    token = issuer.token("read", cert=cert)
    passed(target.client.get("/mtls", token=token, client_cert=cert), target, "/mtls")
    target.app.calls = 0
    resp = target.client.get("/mtls", token=token, client_cert=other_cert)
    refused_token(target, resp, "token.cert_mismatch", "certificate does not match the token")
    resp = target.client.get("/mtls", token=token)
    description = "token is certificate-bound but no client certificate was presented"
    refused_token(target, resp, "token.cert_missing", description)


@pytest.mark.parametrize(
    ("cnf", "code", "description"),
    [
        ({"x5t": "bwcK0esc3ACC3DB2Y5_lESsXE8o"}, "token.cnf_unsupported", "UNSUPPORTED"),
        ({"jwk": {"kty": "EC"}}, "token.cnf_unsupported", "UNSUPPORTED"),
        ({"x5t#S256": 5}, "token.cnf_invalid", "token confirmation claim is malformed"),
        ({"jkt": ""}, "token.cnf_invalid", "token confirmation claim is malformed"),
        ("bound", "token.claims", "the 'cnf' claim must be an object"),
    ],
    ids=["sha1-thumbprint", "jwk", "thumbprint-not-a-string", "empty-jkt", "not-an-object"],
)
def test_rfc7800_confirmation_we_cannot_check_is_never_bearer(
    target: Target, issuer: TestIssuer, cnf: object, code: str, description: str
) -> None:
    if description == "UNSUPPORTED":
        description = "token is bound by an unsupported confirmation method"
    resp = target.client.get("/read", token=issuer.token("read", cnf=cnf))
    refused_token(target, resp, code, description)
