"""SignatureMiddleware behind a real TLS server on 127.0.0.1 (werkzeug's, in a thread), with
``http.client`` as the participant: bodies arrive byte for byte whether framed by
Content-Length or chunked, the client certificate reaches the environ, and a signed request
gets a signed response the client verifies."""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from werkzeug.serving import BaseWSGIServer, make_server
from werkzeug.wrappers import Request

from tests.tls import PKI, make_pki
from wsgi_apisec import jws
from wsgi_apisec.environ import ENV_SIGNATURE, ENV_TOKEN, client_cert
from wsgi_apisec.errors import SignatureError
from wsgi_apisec.keys import PrivateKey
from wsgi_apisec.message import Body, Headers, Message
from wsgi_apisec.middleware import Rule, SignatureMiddleware
from wsgi_apisec.profiles import OCEN
from wsgi_apisec.resolvers import StaticKeyResolver
from wsgi_apisec.signatures import RequestVerifier
from wsgi_apisec.tokens import AccessToken

pytestmark = pytest.mark.server

REPO_ROOT = Path(__file__).resolve().parents[1]

MiB = 1024 * 1024
SEND_CHUNK = 256 * 1024


def echo(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    data = Request(environ).get_data()
    cert = client_cert(environ)
    result = environ.get(ENV_SIGNATURE)
    info = {
        "sha256": hashlib.sha256(data).hexdigest(),
        "length": len(data),
        "owner": result.owner if result else None,
        "client_cert_sha256": hashlib.sha256(cert).hexdigest() if cert else None,
    }
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(info).encode()]


def token_layer(app: Any) -> Any:
    """Stand-in for the token layer: the participant's token, already validated."""
    tok = AccessToken(
        raw="stand-in",
        claims={"participantId": "p1"},
        issuer=None,
        subject="p1",
        client_id="p1",
        scopes=frozenset(),
    )

    def outer(environ: dict[str, Any], start_response: Any) -> Any:
        environ[ENV_TOKEN] = tok
        return app(environ, start_response)

    return outer


@dataclass
class Server:
    pki: PKI
    port: int
    client_key: PrivateKey
    server_key: PrivateKey

    def connection(self, cert: str | None = "client") -> http.client.HTTPSConnection:
        ctx = self.pki.client_context(cert)
        return http.client.HTTPSConnection("127.0.0.1", self.port, context=ctx, timeout=60)

    def sign(self, payload: bytes) -> str:
        header = jws.build_header(self.client_key, "RS256", b64=False, b64_in_crit=False)
        return jws.sign(self.client_key, payload, header)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    pki = make_pki(tmp_path_factory.mktemp("pki"))
    client_key = PrivateKey.generate("RS256", kid="p1-key")
    server_key = PrivateKey.generate("RS256", kid="provider-key")
    app = SignatureMiddleware(
        echo,
        [Rule("/**", profile=OCEN)],
        resolver=StaticKeyResolver(owners={"p1": [client_key.public_key()]}),
        signing_key=server_key,
        max_body=64 * MiB,
    )
    httpd: BaseWSGIServer = make_server(
        "127.0.0.1", 0, token_layer(app), threaded=True, ssl_context=pki.server_context()
    )
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield Server(pki, httpd.port, client_key, server_key)
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


def body_of(size: int, seed: str) -> bytes:
    block = hashlib.sha256(f"{seed}:{size}".encode()).digest() * 2048
    return (block * (size // len(block) + 1))[:size]


def pieces(data: bytes) -> Iterator[bytes]:
    for start in range(0, len(data), SEND_CHUNK):
        yield data[start : start + SEND_CHUNK]


def post(
    srv: Server, path: str, data: bytes, signature: str, *, chunked: bool = False
) -> tuple[http.client.HTTPResponse, bytes]:
    conn = srv.connection()
    headers = {"x-jws-signature": signature, "Content-Type": "application/octet-stream"}
    try:
        if chunked:
            headers["Transfer-Encoding"] = "chunked"
            conn.request("POST", path, body=pieces(data), headers=headers, encode_chunked=True)
        else:
            conn.request("POST", path, body=data, headers=headers)
        resp = conn.getresponse()
        return resp, resp.read()
    finally:
        conn.close()


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
@pytest.mark.parametrize("size", [0, 1, MiB, 32 * MiB], ids=["0B", "1B", "1MiB", "32MiB"])
def test_body_reaches_app_identical_over_tls(server: Server, size: int, framing: str) -> None:
    data = body_of(size, framing)
    path = f"/upload?framing={framing}"
    signature = server.sign(data if size else path.encode())
    resp, raw = post(server, path, data, signature, chunked=framing == "chunked")
    assert resp.status == 200, raw
    seen = json.loads(raw)
    assert (seen["length"], seen["sha256"]) == (size, hashlib.sha256(data).hexdigest())
    assert seen["owner"] == "p1"


def test_client_certificate_reaches_the_environ(server: Server) -> None:
    data = b'{"tls": "mutual"}'
    _, raw = post(server, "/cert", data, server.sign(data))
    expected = hashlib.sha256(server.pki.clients["client"].cert_der).hexdigest()
    assert json.loads(raw)["client_cert_sha256"] == expected


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_client_certificate_from_gunicorn_socket(tmp_path: Path) -> None:
    """gunicorn serving TLS itself sets no SSL_CLIENT_CERT: the cert comes from its socket."""
    pki = make_pki(tmp_path)
    port = free_port()
    gunicorn = [sys.executable, "-m", "gunicorn", "-b", f"127.0.0.1:{port}", "--workers", "1"]
    tls = ["--certfile", str(pki.server.cert_path), "--keyfile", str(pki.server.key_path)]
    tls += ["--ca-certs", str(pki.ca_cert_path), "--cert-reqs", "1"]  # 1 = CERT_OPTIONAL
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.Popen(
        [*gunicorn, *tls, "tests.test_middleware_server:echo"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        raw = b""
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            conn = http.client.HTTPSConnection(
                "127.0.0.1", port, context=pki.client_context("client"), timeout=5
            )
            try:
                conn.request("POST", "/", body=b"x")
                raw = conn.getresponse().read()
                break
            except OSError:
                time.sleep(0.1)
            finally:
                conn.close()
        expected = hashlib.sha256(pki.clients["client"].cert_der).hexdigest()
        assert json.loads(raw)["client_cert_sha256"] == expected
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_signed_round_trip_with_signed_response(server: Server) -> None:
    data = json.dumps({"loanApplicationId": "la-1", "at": time.time()}).encode()
    resp, raw = post(server, "/loan-applications", data, server.sign(data))
    assert resp.status == 200, raw
    response = Message(status=resp.status, headers=Headers(resp.getheaders()), body=Body(raw))
    provider = OCEN.replace(key_owner=None, replay=None)
    resolver = StaticKeyResolver([server.server_key.public_key()])
    result = RequestVerifier(provider, resolver).verify(response)
    assert (result.alg, result.kid) == ("RS256", "provider-key")
    # The same response with one byte changed does not verify.
    response.body = Body(raw.replace(b"p1", b"p2"))
    with pytest.raises(SignatureError, match="does not verify"):
        RequestVerifier(provider, resolver).verify(response)


def test_tampered_request_over_tls_is_401(server: Server) -> None:
    data = b'{"amount": 100}'
    resp, raw = post(server, "/pay", b'{"amount": 900}', server.sign(data))
    assert resp.status == 401
    assert json.loads(raw)["code"] == "signature.invalid"
    assert resp.getheader("x-jws-signature") is None
