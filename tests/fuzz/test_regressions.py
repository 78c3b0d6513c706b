"""One test per crash the fuzzers found, from its minimised input: each is answered as a
clean 4xx through the whole middleware stack (and, where it helps, at the parser itself).

Crashes in files the fuzzing work does not own are strict ``xfail`` until fixed; each is
listed in ``fuzz/known.py`` so the fuzz targets tolerate exactly it meanwhile.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from typing import Any
from urllib.parse import quote

import pytest

from fuzz.fixtures import (
    CERT_DER,
    CERT_PEM,
    HOST,
    KEYS,
    NOW,
    SENDER,
    TRUSTED_PROXY,
    RawRequest,
    claims,
    expand,
    macro,
    mint,
)
from fuzz.known import KNOWN_BUGS
from fuzz.stack import TRUSTED, Outcome, Stack, check
from fuzz.targets.wsgi import signed_cases
from wsgi_apisec import profiles
from wsgi_apisec.certs import CLIENT_CERT, SSL_CLIENT_CERT, ClientCertSource
from wsgi_apisec.environ import target_uri
from wsgi_apisec.errors import InvalidRequest, MalformedSignature, SignatureError
from wsgi_apisec.keys import x5t_s256
from wsgi_apisec.message import Headers, Message
from wsgi_apisec.resolvers import StaticKeyResolver

#: The version field of a v3 certificate (``[0] INTEGER 2``) and the fuzzer's 34 for it.
V3, V34 = bytes.fromhex("a003020102"), bytes.fromhex("a003020122")
BAD_VERSION_DER = CERT_DER.replace(V3, V34)
#: id-Ed25519 (1.3.101.112) and an OID no library knows (1.3.101.127).
ED25519_OID, UNKNOWN_OID = bytes.fromhex("06032b6570"), bytes.fromhex("06032b657f")
BECKN = (
    'keyId="sender.example|ed-1|ed25519",algorithm="ed25519",created="{created}",'
    'expires="1700000300",headers="(created) (expires) digest",signature="{signature}"'
)


@pytest.fixture(scope="module")
def stack() -> Stack:
    return Stack()


def send(
    stack: Stack,
    method: str,
    target: str,
    headers: list[tuple[str, str]],
    body: bytes = b"",
    flags: int = 0,
) -> Outcome:
    raw = expand(RawRequest(method, target, (("Host", HOST), *headers), body))
    outcome = stack.run(raw, flags)
    check(outcome)
    return outcome


def g2p_code(outcome: Outcome) -> str:
    return str(json.loads(outcome.body)["errors"][0]["code"])


# --- fixed in wsgi_apisec/beckn.py ---------------------------------------------------------


@pytest.mark.parametrize("created", ["\xb2", "1\u0660", "\xb9\xb2\xb3"])
def test_beckn_created_with_a_non_ascii_digit_is_400(stack: Stack, created: str) -> None:
    # str.isdigit() accepted "²" (latin-1 0xB2, as a WSGI header carries it); int() did not.
    value = BECKN.format(created=created, signature="AAAA")
    outcome = send(stack, "POST", "/g2p/mapper/link", [("Signature", value)], b"{}")
    assert (outcome.status, g2p_code(outcome)) == (400, "err.signature.invalid")
    with pytest.raises(MalformedSignature, match="created must be a Unix time"):
        verify_g2p(value)


def test_beckn_signature_with_a_non_ascii_character_is_400(stack: Stack) -> None:
    # The fuzzer's input: one byte of the base64 signature turned into 0xFF (or 0xE9).
    for bad in ("Twlf\xffHRWe/HUCQ==", "Twlf\xe9HRWe/HUCQ=="):
        value = BECKN.format(created="1700000000", signature=bad)
        outcome = send(stack, "POST", "/g2p/mapper/link", [("Signature", value)], b"{}")
        assert (outcome.status, g2p_code(outcome)) == (400, "err.signature.invalid")
        with pytest.raises(MalformedSignature, match="signature is not base64"):
            verify_g2p(value)


def verify_g2p(value: str) -> None:
    resolver = StaticKeyResolver(owners={SENDER: [KEYS.ed25519.public_key()]})
    message = Message("POST", f"https://{HOST}/g2p", Headers({"Signature": value}))
    profiles.G2P_CONNECT.mechanism.verify(profiles.G2P_CONNECT, message, resolver, NOW)


# --- fixed in wsgi_apisec/environ.py --------------------------------------------------------


@pytest.mark.parametrize("host", ["[", "a]", "[::1", "[1.2.3.4]", "[x]:443"])
def test_host_that_is_no_uri_authority_is_400(stack: Stack, host: str) -> None:
    # RFC 9112 §3.2: a Host with an invalid value MUST get a 400. It used to reach
    # urlsplit() inside the OCEN bodiless payload (path + query) and escape as a ValueError.
    case = next(c for c in signed_cases() if c.name == "ocen-get")
    headers = tuple((n, host if n == "Host" else v) for n, v in case.raw.headers)
    outcome = stack.run(dataclasses.replace(case.raw, headers=headers), case.flags)
    check(outcome)
    assert (outcome.status, json.loads(outcome.body)["code"]) == (400, "request.invalid")
    with pytest.raises(InvalidRequest, match="Host header is not valid"):
        target_uri({"wsgi.url_scheme": "https", "HTTP_HOST": host, "PATH_INFO": "/"})


def test_absolute_form_target_that_does_not_parse_is_rebuilt() -> None:
    # A RAW_URI such as "http://[x/a" made urlsplit() raise; now the URI is rebuilt from
    # PATH_INFO and QUERY_STRING, as for any raw target that does not agree with them.
    environ = {
        "wsgi.url_scheme": "https",
        "HTTP_HOST": HOST,
        "PATH_INFO": "/a b",
        "QUERY_STRING": "q=1",
        "RAW_URI": "http://[x/a b?q=1",
    }
    assert target_uri(environ) == f"https://{HOST}/a%20b?q=1"


# --- fixed in wsgi_apisec/certs.py by its owner (the wsgi target found it too) ---------------


@pytest.mark.parametrize("form", ["client-cert", "ssl-client-cert", "tls"])
def test_client_cert_with_bad_x509_version_is_unusable(stack: Stack, form: str) -> None:
    # x509.InvalidVersion is not a ValueError: a certificate whose version field is 34
    # escaped certs.py as a 500 instead of being "no usable certificate" (-> 401). The wsgi
    # target found it through nginx's X-SSL-Client-Cert.
    first_line = base64.b64encode(CERT_DER).decode()[:64]
    bad_pem = CERT_PEM.replace(first_line, base64.b64encode(BAD_VERSION_DER).decode()[:64])
    headers: dict[str, Any] = {
        "client-cert": [("Client-Cert", ":" + base64.b64encode(BAD_VERSION_DER).decode() + ":")],
        "ssl-client-cert": [("X-SSL-Client-Cert", quote(bad_pem))],
        "tls": [],
    }
    source = ClientCertSource(
        trusted_proxies=[TRUSTED_PROXY], header_forms=[CLIENT_CERT, SSL_CLIENT_CERT]
    )
    message = Message(headers=Headers(headers[form]), remote_addr=TRUSTED_PROXY)
    if form == "tls":
        message.context["tls_client_cert"] = BAD_VERSION_DER
    assert source.client_certificate(message) is None
    token = mint(claims(cnf={"x5t#S256": x5t_s256(CERT_DER)}))
    outcome = send(
        stack,
        "GET",
        "/mtls/a",
        [("Authorization", f"Bearer {token}"), *headers[form]],
        flags=TRUSTED,
    )
    assert outcome.status == 401


# --- found in files other helpers own: strict xfail until fixed ------------------------------


def _reason(test: str) -> str:
    bug = next(b for b in KNOWN_BUGS if b.test.endswith("::" + test))
    return f"{bug.exception} escapes {bug.file} (listed in fuzz/known.py)"


def test_client_cert_with_an_unknown_key_type_finds_no_key(stack: Stack) -> None:
    # A certificate that parses but whose key algorithm cryptography does not know: keys.py
    # PublicKey.from_certificate let UnsupportedAlgorithm out, and ClientCertificateKeys
    # (FAPI 2.0 keys from the mTLS certificate) only converts ConfigurationError: a 500.
    case = next(c for c in signed_cases() if c.name == "fapi2-mtls-key")
    unknown = CERT_DER.replace(ED25519_OID, UNKNOWN_OID)
    sf = ":" + base64.b64encode(unknown).decode() + ":"
    headers = tuple((n, sf if n == "Client-Cert" else v) for n, v in case.raw.headers)
    outcome = stack.run(dataclasses.replace(case.raw, headers=headers), case.flags)
    check(outcome)
    assert outcome.status == 401 and json.loads(outcome.body)["code"].startswith("signature.")


@pytest.mark.parametrize("tan", [[], {}, ["openbanking.org.uk"]])
def test_ukob_tan_of_the_wrong_type_is_a_signature_error(stack: Stack, tan: object) -> None:
    # An unhashable tan ("in frozenset") raised TypeError in profiles.ukob_checks before any
    # signature was checked: any client could turn a UK OB route into a 500.
    header: dict[str, Any] = {"alg": "PS256", "kid": "k", "crit": list(profiles.UKOB_CRIT)}
    header.update(profiles.ukob_header("org/ssa")(Message(), NOW))
    header[profiles.UKOB_TAN] = tan
    outcome = send(
        stack, "POST", "/ukob/p", [("x-jws-signature", macro("!jws:", header, {}))], b"{}"
    )
    assert outcome.status == 401
    with pytest.raises(SignatureError):
        assert profiles.UKOB.header_check is not None
        profiles.UKOB.header_check(header, Message(), NOW)
