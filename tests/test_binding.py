"""Sender-constrained tokens: RFC 8705 certificate binding, RFC 9449 DPoP binding, FAPI."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tests.certs import make_cert
from tests.vectors import load, text
from wsgi_apisec.binding import Binding, check_binding, check_certificate_binding
from wsgi_apisec.certs import TLS_CONTEXT_KEY, ClientCertSource
from wsgi_apisec.dpop import DPoPVerifier, make_proof
from wsgi_apisec.errors import InvalidDPoPProof, InvalidToken
from wsgi_apisec.keys import PrivateKey, x5t_s256
from wsgi_apisec.message import Headers, Message
from wsgi_apisec.tokens import AccessToken

NOW = 1_700_000_000
URL = "https://bank.example.com/fdx/v6/core/accounts"
RAW = "opaque-token-value"
PROXY = "10.0.0.7"


@pytest.fixture(scope="module")
def rfc_cert_der() -> bytes:
    pem = text("rfc9440/client_end_entity.pem").encode()
    return x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)


@pytest.fixture(scope="module")
def derived() -> Any:
    return load("rfc8705/derived_x5t_s256_rfc9440_cert.json")


@pytest.fixture(scope="module")
def dpop_key() -> PrivateKey:
    return PrivateKey.generate("ES256")


@pytest.fixture
def verifier() -> DPoPVerifier:
    return DPoPVerifier(clock=lambda: NOW)


def token(cnf: Mapping[str, Any] | None = None, scheme: str = "Bearer") -> AccessToken:
    return AccessToken(
        raw=RAW,
        claims={} if cnf is None else {"cnf": cnf},
        issuer="https://as.example.com",
        subject="alice",
        client_id="tpp-1",
        scopes=frozenset({"fdx:accountbasic:read"}),
        cnf=cnf,
        scheme=scheme,
    )


def request(
    *, tls: object = None, headers: list[tuple[str, str]] | None = None, remote: str = "192.0.2.1"
) -> Message:
    context = {} if tls is None else {TLS_CONTEXT_KEY: tls}
    return Message(
        method="GET",
        target_uri=URL,
        headers=Headers(headers or []),
        remote_addr=remote,
        context=context,
    )


def dpop_request(key: PrivateKey, *, jti: str = "j1", **kw: Any) -> Message:
    proof = make_proof(key, "GET", URL, access_token=RAW, iat=NOW, jti=jti)
    headers = [("Authorization", f"DPoP {RAW}"), ("DPoP", proof)]
    return request(headers=headers + kw.pop("headers", []), **kw)


def invalid_token(err: InvalidToken, description: str, scheme: str = "Bearer") -> None:
    assert (err.status, err.error, err.scheme) == (401, "invalid_token", scheme)
    assert err.description == description


# --- RFC 8705 §3: check_certificate_binding ------------------------------------------


def test_rfc8705_s3_1_derived_thumbprint_matches_rfc9440_certificate(
    rfc_cert_der: bytes, derived: Any
) -> None:
    assert x5t_s256(rfc_cert_der) == derived["x5t#S256"]
    bound = token(derived["cnf"])
    assert check_certificate_binding(bound, rfc_cert_der) == derived["x5t#S256"]


def test_rfc8705_s3_1_jwt_example_cnf_does_not_match_another_certificate(
    rfc_cert_der: bytes,
) -> None:
    example = load("rfc8705/section3_examples.json")
    cnf = example["jwt_payload"]["cnf"]
    assert len(cnf["x5t#S256"]) == 43 and "=" not in cnf["x5t#S256"]
    with pytest.raises(InvalidToken) as info:
        check_certificate_binding(token(cnf), rfc_cert_der)
    invalid_token(info.value, "certificate does not match the token")
    assert info.value.code == "token.cert_mismatch"


def test_rfc8705_s3_2_introspection_cnf_needs_a_certificate() -> None:
    example = load("rfc8705/section3_examples.json")
    with pytest.raises(InvalidToken) as info:
        check_certificate_binding(token(example["introspection_response"]["cnf"]), None)
    invalid_token(info.value, "token is certificate-bound but no client certificate was presented")
    assert info.value.code == "token.cert_missing"


def test_unbound_token_needs_no_certificate(rfc_cert_der: bytes) -> None:
    assert check_certificate_binding(token(), None) is None
    assert check_certificate_binding(token({"jkt": "x" * 43}), rfc_cert_der) is None


@pytest.mark.parametrize("cnf", [{"x5t#S256": 5}, {"x5t#S256": ""}, {"jkt": None}, ["x5t#S256"]])
def test_malformed_cnf_is_invalid_token(cnf: Any, rfc_cert_der: bytes) -> None:
    with pytest.raises(InvalidToken) as info:
        check_binding(token(cnf), request(tls=rfc_cert_der))
    invalid_token(info.value, "token confirmation claim is malformed")


# --- check_binding: mTLS ---------------------------------------------------------------


def test_mtls_via_tls_layer_pem(rfc_cert_der: bytes, derived: Any) -> None:
    pem = text("rfc9440/client_end_entity.pem")
    binding = check_binding(token(derived["cnf"]), request(tls=pem))
    assert binding == Binding(x5t_s256=derived["x5t#S256"], dpop=None)
    assert binding.bound


def test_mtls_via_trusted_proxy_client_cert_header(derived: Any) -> None:
    header = derived["Client-Cert_header"].partition(": ")[2]
    source = ClientCertSource(trusted_proxies=["10.0.0.0/24"])
    msg = request(headers=[("Client-Cert", header)], remote=PROXY)
    binding = check_binding(token(derived["cnf"]), msg, cert_source=source)
    assert binding.x5t_s256 == derived["x5t#S256"]


def test_mtls_header_from_untrusted_peer_is_not_a_certificate(derived: Any) -> None:
    header = derived["Client-Cert_header"].partition(": ")[2]
    source = ClientCertSource(trusted_proxies=["10.0.0.0/24"])
    msg = request(headers=[("Client-Cert", header)], remote="198.51.100.4")
    with pytest.raises(InvalidToken) as info:
        check_binding(token(derived["cnf"]), msg, cert_source=source)
    invalid_token(info.value, "token is certificate-bound but no client certificate was presented")


def test_mtls_default_source_ignores_proxy_headers(derived: Any) -> None:
    header = derived["Client-Cert_header"].partition(": ")[2]
    msg = request(headers=[("Client-Cert", header)], remote="127.0.0.1")
    with pytest.raises(InvalidToken):
        check_binding(token(derived["cnf"]), msg)


def test_mtls_garbage_from_trusted_proxy_is_invalid_token(derived: Any) -> None:
    source = ClientCertSource(trusted_proxies=[PROXY])
    msg = request(headers=[("Client-Cert", ":bm90IGEgY2VydA==:")], remote=PROXY)
    with pytest.raises(InvalidToken) as info:
        check_binding(token(derived["cnf"]), msg, cert_source=source)
    invalid_token(info.value, "token is certificate-bound but no client certificate was presented")


def test_mtls_other_certificate(derived: Any) -> None:
    other = make_cert("other").public_bytes(serialization.Encoding.DER)
    with pytest.raises(InvalidToken) as info:
        check_binding(token(derived["cnf"]), request(tls=other))
    invalid_token(info.value, "certificate does not match the token")


# --- check_binding: unbound tokens and FAPI -------------------------------------------


def test_unbound_bearer_token_passes_when_not_required() -> None:
    binding = check_binding(token(), request())
    assert binding == Binding() and not binding.bound
    assert check_binding(token({}), request()) == Binding()


def test_fapi_require_bound_refuses_unbound_token() -> None:
    with pytest.raises(InvalidToken) as info:
        check_binding(token(), request(), require_bound=True)
    invalid_token(info.value, "token is not sender-constrained")
    assert info.value.code == "token.unbound"


def test_fapi_require_bound_accepts_cert_bound(rfc_cert_der: bytes, derived: Any) -> None:
    binding = check_binding(token(derived["cnf"]), request(tls=rfc_cert_der), require_bound=True)
    assert binding.bound


def test_unsupported_confirmation_method_is_not_bearer() -> None:
    cnf = {"jwk": {"kty": "EC", "crv": "P-256", "x": "x", "y": "y"}}
    with pytest.raises(InvalidToken) as info:
        check_binding(token(cnf), request())
    invalid_token(info.value, "token is bound by an unsupported confirmation method")


def test_unknown_scheme_refused() -> None:
    with pytest.raises(InvalidToken) as info:
        check_binding(token(scheme="MAC"), request())
    invalid_token(info.value, "unsupported authorization scheme 'MAC'")


# --- check_binding: DPoP ---------------------------------------------------------------


def test_dpop_bound_token_with_valid_proof(dpop_key: PrivateKey, verifier: DPoPVerifier) -> None:
    bound = token({"jkt": dpop_key.thumbprint()}, scheme="DPoP")
    binding = check_binding(bound, dpop_request(dpop_key), dpop_verifier=verifier)
    assert binding.dpop is not None and binding.x5t_s256 is None
    assert binding.dpop.jkt == dpop_key.thumbprint()


def test_rfc9449_s7_2_dpop_bound_token_sent_as_bearer(
    dpop_key: PrivateKey, verifier: DPoPVerifier
) -> None:
    bound = token({"jkt": dpop_key.thumbprint()}, scheme="Bearer")
    with pytest.raises(InvalidToken) as info:
        check_binding(bound, dpop_request(dpop_key), dpop_verifier=verifier)
    invalid_token(info.value, "DPoP-bound token must be presented with the DPoP scheme", "DPoP")
    assert info.value.challenge == {"algs": "ES256 PS256 EdDSA RS256"}


def test_rfc9449_s7_1_unbound_token_sent_with_dpop_scheme(
    dpop_key: PrivateKey, verifier: DPoPVerifier
) -> None:
    with pytest.raises(InvalidToken) as info:
        check_binding(token(scheme="DPoP"), dpop_request(dpop_key), dpop_verifier=verifier)
    invalid_token(info.value, "token is not DPoP-bound", "DPoP")


def test_rfc9449_s7_1_cert_bound_token_sent_with_dpop_scheme(
    dpop_key: PrivateKey, verifier: DPoPVerifier, rfc_cert_der: bytes, derived: Any
) -> None:
    msg = dpop_request(dpop_key, tls=rfc_cert_der)
    with pytest.raises(InvalidToken) as info:
        check_binding(token(derived["cnf"], scheme="DPoP"), msg, dpop_verifier=verifier)
    invalid_token(info.value, "token is not DPoP-bound", "DPoP")


def test_dpop_scheme_without_a_verifier_is_refused(dpop_key: PrivateKey) -> None:
    bound = token({"jkt": dpop_key.thumbprint()}, scheme="DPoP")
    with pytest.raises(InvalidToken) as info:
        check_binding(bound, dpop_request(dpop_key))
    invalid_token(info.value, "DPoP is not accepted here", "DPoP")


def test_dpop_key_mismatch(dpop_key: PrivateKey, verifier: DPoPVerifier) -> None:
    other = PrivateKey.generate("ES256")
    bound = token({"jkt": other.thumbprint()}, scheme="DPoP")
    with pytest.raises(InvalidToken) as info:
        check_binding(bound, dpop_request(dpop_key), dpop_verifier=verifier)
    invalid_token(info.value, "Invalid DPoP key binding", "DPoP")


def test_dpop_missing_proof(dpop_key: PrivateKey, verifier: DPoPVerifier) -> None:
    bound = token({"jkt": dpop_key.thumbprint()}, scheme="DPoP")
    with pytest.raises(InvalidDPoPProof) as info:
        check_binding(bound, request(), dpop_verifier=verifier)
    assert (info.value.status, info.value.error) == (401, "invalid_dpop_proof")


def test_dpop_scheme_name_is_case_insensitive(dpop_key: PrivateKey, verifier: DPoPVerifier) -> None:
    bound = token({"jkt": dpop_key.thumbprint()}, scheme="dpop")
    assert check_binding(bound, dpop_request(dpop_key), dpop_verifier=verifier).dpop


def test_fapi_require_bound_accepts_dpop(dpop_key: PrivateKey, verifier: DPoPVerifier) -> None:
    bound = token({"jkt": dpop_key.thumbprint()}, scheme="DPoP")
    msg = dpop_request(dpop_key)
    assert check_binding(bound, msg, require_bound=True, dpop_verifier=verifier).bound


# --- both bindings at once -------------------------------------------------------------


def test_token_bound_to_certificate_and_dpop_key(
    dpop_key: PrivateKey, verifier: DPoPVerifier, rfc_cert_der: bytes, derived: Any
) -> None:
    cnf = {"x5t#S256": derived["x5t#S256"], "jkt": dpop_key.thumbprint()}
    binding = check_binding(
        token(cnf, scheme="DPoP"), dpop_request(dpop_key, tls=rfc_cert_der), dpop_verifier=verifier
    )
    assert binding.x5t_s256 == derived["x5t#S256"]
    assert binding.dpop is not None and binding.dpop.jkt == dpop_key.thumbprint()


def test_certificate_failure_does_not_spend_the_dpop_jti(
    dpop_key: PrivateKey, verifier: DPoPVerifier, rfc_cert_der: bytes, derived: Any
) -> None:
    cnf = {"x5t#S256": derived["x5t#S256"], "jkt": dpop_key.thumbprint()}
    bound = token(cnf, scheme="DPoP")
    with pytest.raises(InvalidToken) as info:
        check_binding(bound, dpop_request(dpop_key, jti="same"), dpop_verifier=verifier)
    assert info.value.code == "token.cert_missing"
    msg = dpop_request(dpop_key, jti="same", tls=rfc_cert_der)
    assert check_binding(bound, msg, dpop_verifier=verifier).dpop is not None
    with pytest.raises(InvalidDPoPProof) as replay:
        check_binding(bound, msg, dpop_verifier=verifier)
    assert replay.value.code == "dpop.replayed"


def test_certificate_from_base64_der_in_context(derived: Any, rfc_cert_der: bytes) -> None:
    # gunicorn: the adapter puts the DER bytes of the peer certificate in the context.
    assert base64.b64encode(rfc_cert_der).decode() in derived["Client-Cert_header"]
    assert check_binding(token(derived["cnf"]), request(tls=rfc_cert_der)).bound
