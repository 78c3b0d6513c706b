"""The deployment of ``deploy/`` run for real: nginx terminating TLS with client certificates,
gunicorn (2 sync workers) behind it, a second gunicorn terminating TLS itself, and a shared
redis-server replay store. One stack serves the whole module.

What must hold: a certificate-bound token (RFC 8705) passes with its certificate through
either nginx header form (RFC 9440 ``Client-Cert``, nginx's escaped PEM) and through
gunicorn's own TLS, and fails with any other; a certificate header sent by the client is
never believed, and the app trusts the header only from nginx's own address; a signed
request (FAPI 2.0, RFC 9421) replayed to another worker is refused; the app receives every
body byte for byte (8 MiB, chunked too); a too-large body gets nginx's 413 and the client's
next request still works; a refusal made before the body is read stays a clean 401 (no 502,
no dropped keep-alive connection).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import pwd
import ssl
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from deploy.app import SCOPE
from deploy.client import Client, Reply, sign_request
from deploy.nginx_map import client_cert_map
from deploy.stack import BINARIES, DEPLOY, Stack, missing_binaries, running
from flask_apisec.testing import Identity, make_client_cert
from tests.deploy.certs import issue_with_pem_lines, tls_context

missing = missing_binaries() + ([] if importlib.util.find_spec("gunicorn") else ["gunicorn"])
pytestmark = [
    pytest.mark.server,
    pytest.mark.xdist_group("deploy-stack"),
    pytest.mark.skipif(bool(missing), reason=f"not installed: {', '.join(missing)}"),
]

MiB = 1024 * 1024
#: The app's APISEC_MAX_BODY and nginx's client_max_body_size (the same, as deployed).
MAX_BODY = 8 * MiB + 64 * 1024


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running(tmp_path_factory.mktemp("stack"), direct=True, max_body=MAX_BODY) as started:
        yield started


Connect = Callable[..., Client]


@pytest.fixture
def connect(stack: Stack) -> Iterator[Connect]:
    """``connect(port, who="alice" | None | SSLContext, source=None)``: a client connection
    (plain HTTP when ``port`` is the app's), closed after the test."""
    opened: list[Client] = []

    def make(port: int, who: str | ssl.SSLContext | None = "alice", **options: Any) -> Client:
        context = who if isinstance(who, ssl.SSLContext) else stack.pki.client_context(who)
        client = Client(port, None if port == stack.app_port else context, **options)
        opened.append(client)
        return client

    yield make
    for client in opened:
        client.close()


def _bearer(token: str) -> list[tuple[str, str]]:
    return [("Authorization", f"Bearer {token}")]


def _problem(reply: Reply, status: int, code: str) -> None:
    assert (reply.status, reply.code) == (status, code), reply.body[:300]


# --- certificate-bound tokens -------------------------------------------------------------


@pytest.mark.parametrize("port", ["nginx_port", "nginx_escaped_port", "direct_port"])
def test_rfc8705_bound_token_passes_with_its_certificate(
    stack: Stack, connect: Connect, port: str
) -> None:
    alice = stack.pki.clients["alice"]
    client = connect(getattr(stack, port))
    reply = client.request("GET", "/token", headers=_bearer(stack.token("alice")))
    assert reply.status == 200, reply.body
    seen = reply.json()
    assert seen["x5t"] == alice.x5t_s256
    assert (seen["scheme"], seen["host"]) == ("https", f"127.0.0.1:{getattr(stack, port)}")
    # Behind nginx the peer is nginx's own address; gunicorn with TLS sees the client.
    behind = port != "direct_port"
    assert seen["remote"] == (stack.proxy_address if behind else "127.0.0.1")


@pytest.mark.parametrize("port", ["nginx_port", "nginx_escaped_port", "direct_port"])
def test_rfc8705_bound_token_fails_with_another_certificate(
    stack: Stack, connect: Connect, port: str
) -> None:
    client = connect(getattr(stack, port), "bob")
    reply = client.request("GET", "/token", headers=_bearer(stack.token("alice")))
    _problem(reply, 401, "token.cert_mismatch")
    assert reply.headers["www-authenticate"].startswith('Bearer error="invalid_token"')


def test_certificate_from_another_ca_is_refused_by_nginx(
    stack: Stack, connect: Connect, tmp_path: Path
) -> None:
    stranger = make_client_cert("stranger")  # self-signed: not issued by the stack's CA
    cert_path, key_path = tmp_path / "stranger.crt", tmp_path / "stranger.key"
    cert_path.write_bytes(stranger.cert_pem)
    key_path.write_bytes(stranger.key_pem)
    context = tls_context(stack.pki, Identity("stranger", b"", b"", cert_path, key_path))
    token = _bearer(stack.issuer.token(SCOPE, cert=stranger))
    reply = connect(stack.nginx_port, context).request("GET", "/token", headers=token)
    _problem(reply, 400, "request.client_cert")
    assert reply.pid == 0  # nginx answered; no worker saw it


@pytest.mark.parametrize("who", ["bob", None])
@pytest.mark.parametrize("port", ["nginx_port", "nginx_escaped_port"])
def test_client_sent_certificate_headers_are_stripped(
    stack: Stack, connect: Connect, port: str, who: str | None
) -> None:
    alice = stack.pki.clients["alice"]
    forged = [
        ("Client-Cert", alice.client_cert_header),
        ("X-SSL-Client-Cert", quote(alice.cert_pem.decode(), safe="")),
    ]
    client = connect(getattr(stack, port), who)
    reply = client.request("GET", "/token", headers=_bearer(stack.token("alice")) + forged)
    _problem(reply, 401, "token.cert_mismatch" if who else "token.cert_missing")


def test_certificate_header_is_trusted_only_from_nginx_address(
    stack: Stack, connect: Connect
) -> None:
    if stack.proxy_address == "127.0.0.1":
        pytest.skip("127.0.0.2 cannot be bound here: nginx and clients share one address")
    alice = stack.pki.clients["alice"]
    headers = [*_bearer(stack.token("alice")), ("Client-Cert", alice.client_cert_header)]
    # A local client reaching gunicorn directly is not nginx: its header is ignored...
    reply = connect(stack.app_port).request("GET", "/token", headers=headers)
    _problem(reply, 401, "token.cert_missing")
    assert "ignoring Client-Cert header from untrusted peer 127.0.0.1" in stack.log("gunicorn")
    # ... and the same request from nginx's address is believed (the control).
    reply = connect(stack.app_port, source=stack.proxy_address).request(
        "GET", "/token", headers=headers
    )
    assert reply.status == 200, reply.body


def test_rfc9440_map_takes_a_large_certificate(
    stack: Stack, connect: Connect, tmp_path: Path
) -> None:
    # 64 lines: the most nginx-client-cert.conf takes.
    big = issue_with_pem_lines(stack.pki, tmp_path, "big", lines=64)
    token, context = _bearer(stack.issuer.token(SCOPE, cert=big)), tls_context(stack.pki, big)
    for port in (stack.nginx_port, stack.nginx_escaped_port):
        reply = connect(port, context).request("GET", "/token", headers=token)
        assert (reply.status, reply.json()["x5t"]) == (200, big.x5t_s256)


def test_rfc9440_map_file_is_the_generated_one() -> None:
    """The map's regex is unreadable by hand: the file must be what the generator writes
    (nested, possessive groups, so a certificate that does not fit fails in linear time)."""
    assert (DEPLOY / "nginx-client-cert.conf").read_text() == client_cert_map()


def test_rfc9440_map_fails_closed_past_its_limit(
    stack: Stack, connect: Connect, tmp_path: Path
) -> None:
    huge = issue_with_pem_lines(stack.pki, tmp_path, "huge", lines=65)
    token, context = _bearer(stack.issuer.token(SCOPE, cert=huge)), tls_context(stack.pki, huge)
    reply = connect(stack.nginx_port, context).request("GET", "/token", headers=token)
    _problem(reply, 401, "token.cert_missing")
    assert "client certificate header Client-Cert from" in stack.log("gunicorn")
    # The escaped-PEM form has no such limit.
    reply = connect(stack.nginx_escaped_port, context).request("GET", "/token", headers=token)
    assert reply.status == 200, reply.body


# --- signed requests, replay, bodies ------------------------------------------------------


def _signed(stack: Stack, client: Client, body: bytes) -> list[tuple[str, str]]:
    headers = [*_bearer(stack.token("alice")), ("Content-Type", "application/octet-stream")]
    return sign_request(stack.signing_key, "POST", client.url("/signed"), body, headers)


def test_fapi2_signed_request_replayed_to_another_worker_is_refused(
    stack: Stack, connect: Connect
) -> None:
    first = connect(stack.nginx_port)
    body = b'{"amount": "10.00"}'
    headers = _signed(stack, first, body)
    accepted = first.request("POST", "/signed", body, headers)
    assert accepted.status == 200, accepted.body
    other_workers = 0
    for _ in range(30):  # the kernel picks the worker: send until another one answered
        replay = connect(stack.nginx_port).request("POST", "/signed", body, headers)
        _problem(replay, 401, "signature.replayed")
        other_workers += replay.pid not in (0, accepted.pid)
        if other_workers >= 2:
            break
    assert other_workers >= 2, "every replay reached the worker that accepted the request"


def _chunks(data: bytes, size: int = 64 * 1024) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_app_receives_the_8mib_body_byte_for_byte(
    stack: Stack, connect: Connect, chunked: bool
) -> None:
    client = connect(stack.nginx_port)
    body = os.urandom(8 * MiB)
    headers = _signed(stack, client, body)
    reply = client.request("POST", "/signed", _chunks(body) if chunked else body, headers)
    assert reply.status == 200, reply.body
    assert reply.json()["sha256"] == hashlib.sha256(body).hexdigest()
    assert reply.json()["length"] == len(body)


@pytest.mark.parametrize("port", ["nginx_port", "direct_port"])
def test_refusal_before_the_body_is_read_stays_a_clean_401(
    stack: Stack, connect: Connect, port: str
) -> None:
    """A bad token is refused before the body is read. The unread 4 MiB must not turn the
    401 into nginx's 502 (gunicorn resetting the connection nginx still writes to) nor drop
    the keep-alive connection of a client talking to gunicorn directly."""
    client = connect(getattr(stack, port))
    body = os.urandom(4 * MiB)
    auth = _bearer(stack.token("bob"))  # alice's connection: the certificate does not match
    headers = sign_request(stack.signing_key, "POST", client.url("/signed"), body, auth)
    for _ in range(4):  # on one connection
        _problem(client.request("POST", "/signed", body, headers), 401, "token.cert_mismatch")


def test_body_at_the_limit_passes(stack: Stack, connect: Connect) -> None:
    client = connect(stack.nginx_port)
    body = os.urandom(MAX_BODY)
    reply = client.request("POST", "/open", body)
    assert (reply.status, reply.json()["length"]) == (200, MAX_BODY)


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_413_past_the_limit_keeps_the_client_working(
    stack: Stack, connect: Connect, chunked: bool
) -> None:
    client = connect(stack.nginx_port)
    body = os.urandom(MAX_BODY + 1)
    headers = _signed(stack, client, body)
    reply = client.request("POST", "/signed", _chunks(body) if chunked else body, headers)
    _problem(reply, 413, "request.too_large")
    # nginx answered and closed cleanly (the rest of the body never reached a worker) ...
    assert reply.pid == 0
    assert reply.headers.get("connection") == "close"
    # ... and the same client's next request works.
    after = client.request("GET", "/token", headers=_bearer(stack.token("alice")))
    assert after.status == 200, after.body


def test_production_config_passes_nginx_t(stack: Stack, tmp_path: Path) -> None:
    """``deploy/nginx.production.conf`` is valid nginx, with its paths pointed at the stack."""
    deploy, pki = DEPLOY, stack.pki
    text = (deploy / "nginx.production.conf").read_text()
    for old, new in {
        "/etc/nginx/apisec/": f"{deploy}/",
        "/etc/nginx/tls/clients-ca.pem": str(pki.ca_cert_path),
        "/var/log/nginx/": f"{tmp_path}/",
        "/run/nginx.pid": str(tmp_path / "nginx.pid"),
        "listen 443": "listen 127.0.0.1:9",
    }.items():
        assert old in text
        text = text.replace(old, new)
    for name in ("default", "api.example.com"):
        text = text.replace(f"/etc/nginx/tls/{name}.crt", str(pki.server.cert_path))
        text = text.replace(f"/etc/nginx/tls/{name}.key", str(pki.server.key_path))
    try:
        pwd.getpwnam("www-data")
    except KeyError:  # not a Debian-like system: keep the rest of the check
        text = text.replace("user www-data;", "")
    conf = tmp_path / "nginx.conf"
    conf.write_text(text)
    argv = [BINARIES["nginx"], "-t", "-p", str(tmp_path), "-c", str(conf)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr
