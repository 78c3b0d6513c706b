"""The test helpers users get: ``TestIssuer``, the certificate factory, ``APISecClient`` and
the pytest plugin (with pytest-flask)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from flask import request

from flask_apisec import APISec, current_signature
from flask_apisec.testing import (
    PKI,
    APISecClient,
    ClientCert,
    Identity,
    TestIssuer,
    make_client_cert,
    make_pki,
)
from tests.flask import make_app
from wsgi_apisec import jws
from wsgi_apisec.certs import ClientCertSource
from wsgi_apisec.dpop import DPoPVerifier
from wsgi_apisec.encoding import json_object
from wsgi_apisec.errors import InvalidToken
from wsgi_apisec.keys import PrivateKey, x5t_s256
from wsgi_apisec.message import Headers, Message
from wsgi_apisec.tokens import Issuer, TokenValidator

REPO_ROOT = Path(__file__).resolve().parents[2]


# --- TestIssuer --------------------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["PS256", "ES256", "EdDSA", "RS256"])
def test_issuer_tokens_follow_rfc9068(alg: str) -> None:
    issuer = TestIssuer(alg)
    validator = TokenValidator(issuer_from(issuer))
    token = validator.validate(issuer.token(["a", "b"]))
    assert (token.issuer, token.subject, token.client_id) == (issuer.issuer, "client-1", "client-1")
    assert token.scopes == {"a", "b"} and token.audience == ("https://api.test",)
    header = jws.parse_compact(issuer.token()).header
    assert (header["typ"], header["alg"], header["kid"]) == ("at+jwt", alg, issuer.key.kid)
    claims = validator.validate(issuer.token()).claims
    assert {"iss", "exp", "aud", "sub", "client_id", "iat", "jti"} <= claims.keys()
    assert claims["exp"] - claims["iat"] == 300


def issuer_from(issuer: TestIssuer) -> Issuer:
    return Issuer(**issuer.issuer_config())


def test_issuer_overrides_and_omissions() -> None:
    issuer = TestIssuer("ES256", issuer="https://as.test", audience="rs", lifetime=60)
    token = issuer.token("x", sub="alice", jti=None, participantId="p-1", header={"typ": None})
    parsed = jws.parse_compact(token)
    assert "typ" not in parsed.header
    claims = json_object(jws.payload_of(parsed), "claims")
    assert (claims["sub"], claims["participantId"], claims["aud"]) == ("alice", "p-1", "rs")
    assert "jti" not in claims and claims["exp"] - claims["iat"] == 60
    # Without typ the token is refused unless the issuer allows typ JWT (RFC 9068 §4).
    with pytest.raises(InvalidToken):
        TokenValidator(issuer_from(issuer)).validate(token)


def test_issuer_cnf_from_certificate_and_dpop_key() -> None:
    issuer = TestIssuer()
    cert, key = make_client_cert(), PrivateKey.generate("ES256")
    validator = TokenValidator(issuer_from(issuer))
    assert validator.validate(issuer.token(cert=cert)).cnf == {"x5t#S256": cert.x5t_s256}
    assert validator.validate(issuer.token(cert=cert.cert_der)).cnf == {"x5t#S256": cert.x5t_s256}
    both = validator.validate(issuer.token(cert=cert, dpop_key=key.public_key())).cnf
    assert both == {"x5t#S256": cert.x5t_s256, "jkt": key.thumbprint()}


def test_issuer_clock_is_injected() -> None:
    issuer = TestIssuer(clock=lambda: 1_000_000.0)
    claims = TokenValidator(issuer_from(issuer), clock=lambda: 1_000_100.0).validate(issuer.token())
    assert (claims.claims["iat"], claims.expires_at) == (1_000_000, 1_000_300)


def test_issuer_is_not_collected_as_a_test_class() -> None:
    assert TestIssuer.__test__ is False


# --- certificates ------------------------------------------------------------------------------


def test_self_signed_client_cert() -> None:
    cert = make_client_cert("tpp-1")
    parsed = x509.load_der_x509_certificate(cert.cert_der)
    assert parsed.subject == parsed.issuer
    assert "tpp-1" in parsed.subject.rfc4514_string()
    assert cert.x5t_s256 == x5t_s256(cert.cert_der)
    assert cert.key.public_key().thumbprint() == PrivateKey.from_pem(cert.key_pem).thumbprint()
    eku = parsed.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH in eku


def test_client_cert_issued_by_a_pki(tmp_path: Path) -> None:
    pki = make_pki(tmp_path, clients=("a",))
    cert = make_client_cert("b", pki=pki)
    ca = x509.load_pem_x509_certificate(pki.ca_cert_pem)
    parsed = x509.load_der_x509_certificate(cert.cert_der)
    assert parsed.issuer == ca.subject
    parsed.verify_directly_issued_by(ca)
    assert isinstance(pki.clients["a"], Identity) and isinstance(pki.clients["a"], ClientCert)
    assert (tmp_path / "a.key").stat().st_mode & 0o777 == 0o600


def test_rfc9440_client_cert_header_value() -> None:
    cert = make_client_cert()
    source = ClientCertSource(trusted_proxies=["127.0.0.1"])
    message = Message(headers=Headers({"Client-Cert": cert.client_cert_header}))
    message.remote_addr = "127.0.0.1"
    assert source.client_certificate(message) == cert.cert_der


def test_sample_apps_pki_reexports_the_library_helpers() -> None:
    from sample_apps import pki

    assert pki.make_pki is make_pki and pki.PKI is PKI and pki.Identity is Identity


# --- APISecClient ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def seen() -> Any:
    """An app whose view reports what reached it."""
    app = make_app()

    @app.route("/seen", methods=["GET", "POST"])
    def view() -> dict[str, Any]:
        return {
            "authorization": request.headers.get("Authorization"),
            "dpop": request.headers.get("DPoP"),
            "cert": request.environ.get("SSL_CLIENT_CERT"),
            "body": request.get_data(as_text=True),
            "url": request.url,
        }

    return app.test_client()


def test_client_without_extras_is_a_plain_flask_client(seen: Any) -> None:
    assert isinstance(seen, APISecClient)
    assert seen.get("/seen").json == {
        "authorization": None,
        "dpop": None,
        "cert": None,
        "body": "",
        "url": "http://localhost/seen",
    }


def test_client_attaches_token_and_certificate(seen: Any) -> None:
    cert = make_client_cert()
    got = seen.post("/seen", data="hi", token="abc.def.ghi", client_cert=cert).json
    assert got["authorization"] == "Bearer abc.def.ghi"
    assert got["cert"] == cert.cert_pem.decode()
    assert got["body"] == "hi"
    assert seen.get("/seen", client_cert=cert.cert_der).json["cert"] == cert.cert_pem.decode()


def test_client_dpop_proof_verifies(seen: Any) -> None:
    key = PrivateKey.generate("ES256")
    response = seen.post("/seen?x=1", json={"a": 1}, token="tok", dpop=key, dpop_nonce="n-1")
    got = response.json
    assert got["authorization"] == "DPoP tok"
    message = Message(
        method="POST",
        target_uri=got["url"],
        headers=Headers({"DPoP": got["dpop"]}),
    )
    proof = DPoPVerifier().verify(message)
    assert proof.jkt == key.thumbprint()
    assert proof.htu == "http://localhost/seen"
    payload = jws.parse_compact(got["dpop"])
    claims = json_object(jws.payload_of(payload), "claims")
    assert claims["nonce"] == "n-1" and claims["ath"]


def test_client_defaults_apply_to_every_request(seen: Any) -> None:
    client = seen.application.test_client()
    assert isinstance(client, APISecClient)
    client.token = "persistent"
    assert client.get("/seen").json["authorization"] == "Bearer persistent"
    assert client.get("/seen", token="once").json["authorization"] == "Bearer once"


def test_client_refuses_extras_with_a_prepared_request(seen: Any) -> None:
    with pytest.raises(TypeError, match="need a path"):
        seen.open({"PATH_INFO": "/seen"}, token="x")


@pytest.mark.parametrize("profile", ["rfc9421", "fapi2"])
def test_client_signs_requests_under_a_profile(profile: str) -> None:
    issuer = TestIssuer("PS256")
    signer = PrivateKey.generate("ES256", kid="client-sig")
    app = make_app(
        issuers=[issuer.issuer_config()],
        signature_keys={"keys": [signer.public_key().to_jwk()]},
    )
    apisec = APISec(app)

    @app.post("/payments")
    @apisec.require_token(dpop=True)
    @apisec.require_signature(profile=profile)
    def payments() -> dict[str, Any]:
        return {"covered": list(current_signature.covered), "kid": current_signature.kid}

    dpop = PrivateKey.generate("ES256")
    client = app.test_client()
    response = client.post(
        "/payments",
        json={"amount": "10.00"},
        token=issuer.token(dpop_key=dpop),
        dpop=dpop,
        signature=(profile, signer),
    )
    assert response.status_code == 200, response.data
    assert response.json["kid"] == "client-sig"
    assert '"content-digest"' in response.json["covered"]
    if profile == "fapi2":
        # The signature is made last, so it covers the Authorization and DPoP fields.
        assert {'"authorization"', '"dpop"'} <= set(response.json["covered"])


# --- the pytest plugin -------------------------------------------------------------------------

_PLUGIN_TEST = """
import pytest
from flask import Flask
from flask_apisec import APISec, current_token
from flask_apisec.testing import APISecClient


@pytest.fixture
def app(apisec_issuer):
    app = Flask(__name__)
    app.config["APISEC_ISSUERS"] = [apisec_issuer.issuer_config()]
    app.test_client_class = APISecClient
    apisec = APISec(app)

    @app.get("/me")
    @apisec.require_token(cert_bound=True)
    def me():
        return {"sub": current_token.subject}

    return app


def test_pytest_flask_client(client, apisec_issuer, apisec_client_cert):
    token = apisec_issuer.token(cert=apisec_client_cert)
    ok = client.get("/me", token=token, client_cert=apisec_client_cert)
    assert ok.json == {"sub": "client-1"}
    assert client.get("/me", token=token).status_code == 401
"""


def test_pytest_plugin_with_pytest_flask(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text('pytest_plugins = ["flask_apisec.pytest_plugin"]\n')
    (tmp_path / "test_app.py").write_text(textwrap.dedent(_PLUGIN_TEST))
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 passed" in proc.stdout
