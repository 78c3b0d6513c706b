"""Where the client certificate comes from: the TLS layer, or a trusted proxy's header."""

from __future__ import annotations

import base64
import logging
from urllib.parse import quote

import pytest
from cryptography import x509
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.certs import der, make_cert, pem, sf_bytes
from tests.vectors import load, text
from wsgi_apisec.certs import (
    CLIENT_CERT,
    SSL_CLIENT_CERT,
    TLS_CONTEXT_KEY,
    XFCC,
    ClientCertSource,
)
from wsgi_apisec.errors import ConfigurationError
from wsgi_apisec.keys import x5t_s256
from wsgi_apisec.message import Headers, Message

PROXY = "10.0.0.7"
CLIENT = "203.0.113.9"
ALL_FORMS = (CLIENT_CERT, SSL_CLIENT_CERT, XFCC)


@pytest.fixture(scope="module")
def cert() -> x509.Certificate:
    return make_cert()


@pytest.fixture(scope="module")
def rfc9440() -> tuple[str, bytes]:
    """The RFC 9440 §3 ``Client-Cert`` field value and the DER of its certificate."""
    example = load("rfc9440/example.json")
    name, _, value = example["Client-Cert"].partition(": ")
    assert name == "Client-Cert"
    cert_pem = text("rfc9440/client_end_entity.pem")
    return value, der(x509.load_pem_x509_certificate(cert_pem.encode()))


def message(
    headers: list[tuple[str, str]] | None = None,
    remote_addr: str | None = PROXY,
    tls: object = None,
) -> Message:
    context = {} if tls is None else {TLS_CONTEXT_KEY: tls}
    return Message(headers=Headers(headers or []), remote_addr=remote_addr, context=context)


# --- RFC 9440 vector ------------------------------------------------------------------


def test_rfc9440_s3_client_cert_header_from_trusted_proxy(rfc9440: tuple[str, bytes]) -> None:
    value, expected = rfc9440
    source = ClientCertSource(trusted_proxies=[PROXY])
    got = source.client_certificate(message([("Client-Cert", value)]))
    assert got == expected
    # RFC 8705 §3.1: the thumbprint an AS would put in cnf for this certificate.
    derived = load("rfc8705/derived_x5t_s256_rfc9440_cert.json")
    assert x5t_s256(got) == derived["x5t#S256"] == "v68ffgcPn6jdYpBfFY2nP4ShE2Yk-6_Mk5PI9yh6aes"
    assert derived["Client-Cert_header"] == f"Client-Cert: {value}"


def test_rfc9440_s3_client_cert_header_from_untrusted_peer_is_ignored(
    rfc9440: tuple[str, bytes], caplog: pytest.LogCaptureFixture
) -> None:
    value, _ = rfc9440
    source = ClientCertSource(trusted_proxies=[PROXY])
    with caplog.at_level(logging.WARNING, logger="wsgi_apisec.certs"):
        assert source.client_certificate(message([("Client-Cert", value)], CLIENT)) is None
    assert f"ignoring Client-Cert header from untrusted peer {CLIENT}" in caplog.text


def test_default_source_trusts_no_proxy(rfc9440: tuple[str, bytes]) -> None:
    value, _ = rfc9440
    for addr in (PROXY, "127.0.0.1", "::1", None):
        assert (
            ClientCertSource().client_certificate(message([("Client-Cert", value)], addr)) is None
        )


# --- the TLS layer --------------------------------------------------------------------


def test_tls_layer_pem_as_ssl_client_cert_sets_it(cert: x509.Certificate) -> None:
    # Werkzeug's dev server, mod_wsgi and uWSGI give SSL_CLIENT_CERT as PEM text.
    assert ClientCertSource().client_certificate(message(tls=pem(cert), remote_addr=CLIENT)) == (
        der(cert)
    )


def test_tls_layer_pem_bytes_and_der_bytes(cert: x509.Certificate) -> None:
    source = ClientCertSource()
    assert source.client_certificate(message(tls=pem(cert).encode())) == der(cert)
    assert source.client_certificate(message(tls=der(cert))) == der(cert)


@pytest.mark.parametrize(
    "value",
    ["", b"", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", b"\x30\x03abc", 42],
    ids=["empty-str", "empty-bytes", "bad-pem", "bad-der", "int"],
)
def test_tls_layer_unusable_value_gives_no_certificate(value: object) -> None:
    assert ClientCertSource().client_certificate(message(tls=value)) is None


def test_tls_layer_can_be_switched_off(cert: x509.Certificate) -> None:
    source = ClientCertSource(use_tls_layer=False)
    assert source.client_certificate(message(tls=pem(cert))) is None


def test_untrusted_peer_header_does_not_override_tls_layer(cert: x509.Certificate) -> None:
    forged = make_cert("forged")
    source = ClientCertSource(trusted_proxies=[PROXY], header_forms=ALL_FORMS)
    msg = message([("Client-Cert", sf_bytes(der(forged)))], CLIENT, tls=pem(cert))
    assert source.client_certificate(msg) == der(cert)


def test_trusted_proxy_header_preferred_over_proxys_own_tls_cert(cert: x509.Certificate) -> None:
    proxy_cert = make_cert("proxy")
    source = ClientCertSource(trusted_proxies=[PROXY])
    msg = message([("Client-Cert", sf_bytes(der(cert)))], PROXY, tls=der(proxy_cert))
    assert source.client_certificate(msg) == der(cert)


def test_proxys_own_tls_cert_never_stands_in_for_a_client_without_one() -> None:
    # A proxy speaking mTLS to the app sends no header for a client without a certificate:
    # its own certificate must not become "the client's" (a token bound to it would pass).
    proxy_cert = make_cert("proxy")
    source = ClientCertSource(trusted_proxies=[PROXY])
    assert source.client_certificate(message([], PROXY, tls=der(proxy_cert))) is None


# --- trusted proxies ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("trusted", "addr", "ok"),
    [
        (["10.0.0.0/8"], "10.255.1.2", True),
        (["10.0.0.0/8"], "11.0.0.1", False),
        (["10.0.0.7"], "10.0.0.8", False),
        (["::1"], "::1", True),
        (["::1"], "[::1]", True),
        (["10.0.0.0/8"], "::ffff:10.1.2.3", True),
        (["2001:db8::/32"], "2001:db8::5", True),
        (["10.0.0.0/8"], "not-an-ip", False),
        (["10.0.0.0/8"], "", False),
        ("10.0.0.7", "10.0.0.7", True),
    ],
)
def test_trusted_proxy_matching(trusted: list[str], addr: str, ok: bool) -> None:
    assert ClientCertSource(trusted_proxies=trusted).is_trusted_proxy(addr) is ok


@pytest.mark.parametrize("bad", [["10.0.0.0/33"], ["proxy.example.com"], ["10.0.0.0/8", ""]])
def test_trusted_proxy_config_errors(bad: list[str]) -> None:
    with pytest.raises(ConfigurationError):
        ClientCertSource(trusted_proxies=bad)


def test_unknown_header_form_is_a_config_error() -> None:
    with pytest.raises(ConfigurationError):
        ClientCertSource(header_forms=["x-client-cert"])


# --- each proxy header form -----------------------------------------------------------


def test_client_cert_form_without_padding_is_refused(rfc9440: tuple[str, bytes]) -> None:
    # sfv.py accepts only canonical padded base64 (stricter than RFC 8941 §4.2.7's SHOULD).
    value, _ = rfc9440
    assert value.endswith("=:")
    source = ClientCertSource(trusted_proxies=[PROXY])
    assert source.client_certificate(message([("Client-Cert", value[:-2] + ":")])) is None


@pytest.mark.parametrize(
    "value",
    [
        "MIIB",
        ":not base64!:",
        '"string"',
        ":" + base64.b64encode(b"not a certificate").decode() + ":",
        "?1",
    ],
    ids=["bare-base64", "bad-base64", "sf-string", "not-der", "sf-boolean"],
)
def test_client_cert_form_malformed_from_trusted_proxy(
    value: str, caplog: pytest.LogCaptureFixture
) -> None:
    source = ClientCertSource(trusted_proxies=[PROXY])
    with caplog.at_level(logging.WARNING, logger="wsgi_apisec.certs"):
        assert source.client_certificate(message([("Client-Cert", value)], tls=b"")) is None
    assert "client certificate header Client-Cert from 10.0.0.7 is unusable" in caplog.text


def test_client_cert_form_two_field_lines(cert: x509.Certificate) -> None:
    source = ClientCertSource(trusted_proxies=[PROXY])
    line = sf_bytes(der(cert))
    assert (
        source.client_certificate(message([("Client-Cert", line), ("Client-Cert", line)])) is None
    )


def test_client_cert_form_with_parameters_is_accepted(cert: x509.Certificate) -> None:
    source = ClientCertSource(trusted_proxies=[PROXY])
    value = sf_bytes(der(cert)) + ";via=edge"
    assert source.client_certificate(message([("Client-Cert", value)])) == der(cert)


def test_nginx_escaped_pem_form(cert: x509.Certificate) -> None:
    escaped = quote(pem(cert), safe="")  # as $ssl_client_escaped_cert
    assert "%0A" in escaped and "-----BEGIN" in escaped
    source = ClientCertSource(trusted_proxies=[PROXY], header_forms=[SSL_CLIENT_CERT])
    assert source.client_certificate(message([("X-SSL-Client-Cert", escaped)])) == der(cert)
    # Empty value: nginx had no client certificate.
    assert source.client_certificate(message([("X-SSL-Client-Cert", "")])) is None


def test_nginx_form_custom_header_name(cert: x509.Certificate) -> None:
    escaped = quote(pem(cert), safe="")
    source = ClientCertSource(
        trusted_proxies=[PROXY], header_forms=[SSL_CLIENT_CERT], ssl_client_cert_header="X-Cert"
    )
    assert source.client_certificate(message([("x-cert", escaped)])) == der(cert)
    assert source.client_certificate(message([("X-SSL-Client-Cert", escaped)])) is None


def test_nginx_form_not_enabled_by_default(cert: x509.Certificate) -> None:
    escaped = quote(pem(cert), safe="")
    source = ClientCertSource(trusted_proxies=[PROXY])
    assert source.client_certificate(message([("X-SSL-Client-Cert", escaped)])) is None


@pytest.mark.parametrize("value", ["%ZZ", "%C3%28", "-----BEGIN CERTIFICATE-----%0Aoops"])
def test_nginx_form_malformed(value: str) -> None:
    source = ClientCertSource(trusted_proxies=[PROXY], header_forms=[SSL_CLIENT_CERT])
    assert source.client_certificate(message([("X-SSL-Client-Cert", value)])) is None


def xfcc(cert: x509.Certificate, **extra: str) -> str:
    parts = [
        "By=spiffe://cluster.local/ns/default/sa/api",
        "Hash=" + "a" * 64,
        f'Cert="{quote(pem(cert), safe="")}"',
        'Subject="CN=client,O=Example; Inc"',
        "URI=spiffe://cluster.local/ns/default/sa/client",
    ]
    parts += [f"{k}={v}" for k, v in extra.items()]
    return ";".join(parts)


def test_envoy_xfcc_form(cert: x509.Certificate) -> None:
    source = ClientCertSource(trusted_proxies=[PROXY], header_forms=[XFCC])
    got = source.client_certificate(message([("X-Forwarded-Client-Cert", xfcc(cert))]))
    assert got == der(cert)


def test_envoy_xfcc_unquoted_cert_and_escaped_quote(cert: x509.Certificate) -> None:
    value = f'Subject="CN=\\"x\\""; Cert={quote(pem(cert), safe="")}'
    source = ClientCertSource(trusted_proxies=[PROXY], header_forms=[XFCC])
    assert source.client_certificate(message([("X-Forwarded-Client-Cert", value)])) == der(cert)


@pytest.mark.parametrize(
    "value",
    [
        "By=spiffe://a;Hash=00",  # no Cert: no certificate
        'Cert="unterminated',
        "Cert",
        "=x",
        'Cert="a"junk',
    ],
    ids=["no-cert", "unterminated", "no-equals", "empty-key", "junk"],
)
def test_envoy_xfcc_without_usable_cert(value: str) -> None:
    source = ClientCertSource(trusted_proxies=[PROXY], header_forms=[XFCC])
    assert source.client_certificate(message([("X-Forwarded-Client-Cert", value)])) is None


def test_envoy_xfcc_several_elements_refused(cert: x509.Certificate) -> None:
    # Only the edge proxy's SANITIZE_SET single element says who the client is.
    value = xfcc(make_cert("injected")) + "," + xfcc(cert)
    source = ClientCertSource(trusted_proxies=[PROXY], header_forms=[XFCC])
    assert source.client_certificate(message([("X-Forwarded-Client-Cert", value)])) is None


def test_envoy_xfcc_two_certs_in_one_element_refused(cert: x509.Certificate) -> None:
    value = xfcc(cert, Cert=quote(pem(cert), safe=""))
    source = ClientCertSource(trusted_proxies=[PROXY], header_forms=[XFCC])
    assert source.client_certificate(message([("X-Forwarded-Client-Cert", value)])) is None


def test_enabled_forms_that_disagree_give_no_certificate(cert: x509.Certificate) -> None:
    other = make_cert("other")
    source = ClientCertSource(trusted_proxies=[PROXY], header_forms=ALL_FORMS)
    same = message([("Client-Cert", sf_bytes(der(cert))), ("X-Forwarded-Client-Cert", xfcc(cert))])
    assert source.client_certificate(same) == der(cert)
    differ = message(
        [("Client-Cert", sf_bytes(der(cert))), ("X-Forwarded-Client-Cert", xfcc(other))]
    )
    assert source.client_certificate(differ) is None


def test_oversized_header_refused(cert: x509.Certificate) -> None:
    source = ClientCertSource(trusted_proxies=[PROXY], header_forms=ALL_FORMS)
    huge = ":" + "A" * 40_000 + ":"
    assert source.client_certificate(message([("Client-Cert", huge)])) is None
    pad = quote(pem(cert), safe="") + "%0A" * 20_000
    assert source.client_certificate(message([("X-SSL-Client-Cert", pad)])) is None


@settings(max_examples=300, deadline=None)
@given(
    value=st.one_of(
        st.text(max_size=300),
        st.binary(max_size=300).map(lambda b: ":" + base64.b64encode(b).decode() + ":"),
        st.binary(max_size=300).map(lambda b: quote(b, safe="")),
    ),
    tls=st.one_of(st.binary(max_size=200), st.text(max_size=200)),
)
def test_any_header_or_tls_value_gives_der_or_none(value: str, tls: object) -> None:
    source = ClientCertSource(trusted_proxies=[PROXY], header_forms=ALL_FORMS)
    for name in ("Client-Cert", "X-SSL-Client-Cert", "X-Forwarded-Client-Cert"):
        assert source.client_certificate(message([(name, value)], tls=tls)) is None
        assert source.client_certificate(message([(name, value)], CLIENT, tls=tls)) is None


@pytest.mark.parametrize("cut", [1, 10, 100, -1])
def test_truncated_or_flipped_der_never_raises(cert: x509.Certificate, cut: int) -> None:
    data = der(cert)
    source = ClientCertSource(trusted_proxies=[PROXY])
    for broken in (data[:cut], data[:cut] + b"\x00" + data[cut + 1 :]):
        got = source.client_certificate(message([("Client-Cert", sf_bytes(broken))], tls=broken))
        assert got is None or got == broken


def test_trusted_proxy_answers_are_cached_and_bounded() -> None:
    from wsgi_apisec import certs

    source = ClientCertSource(trusted_proxies=["10.0.0.0/8", "::ffff:192.0.2.0/120"])
    for _ in range(2):  # the second pass answers from the cache, the same way
        assert source.is_trusted_proxy("10.1.2.3")
        assert source.is_trusted_proxy("[::ffff:10.1.2.3]")  # IPv4-mapped: the IPv4 rule
        assert not source.is_trusted_proxy("11.1.2.3")
        assert not source.is_trusted_proxy("not an address")
    for n in range(certs._ADDRESS_CACHE + 10):  # a flood of peers never grows it unbounded
        assert source.is_trusted_proxy(f"10.0.{n // 256}.{n % 256}")
        assert len(source._trusted) <= certs._ADDRESS_CACHE
    assert not source.is_trusted_proxy("11.1.2.3")
