"""fetch.py: URL policy, Cache-Control parsing, and UrlFetcher against a real server."""

from __future__ import annotations

import json
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.tls import make_pki
from wsgi_apisec.errors import ConfigurationError, KeySourceError
from wsgi_apisec.fetch import (
    DocumentLimits,
    FetchResult,
    UrlFetcher,
    check_url,
    get_document,
    parse_max_age,
)

JWKS = json.dumps({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "A" * 43}]}).encode()
LIMIT = 4096


# --- check_url -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://issuer.example/jwks",
        "https://issuer.example:8443/.well-known/jwks.json?x=1",
        "http://127.0.0.1:8080/jwks",
        "http://127.9.9.9/jwks",
        "http://[::1]:9000/jwks",
        "http://localhost/jwks",
    ],
)
def test_check_url_accepts_https_and_loopback_http(url: str) -> None:
    assert check_url(url) == url


@pytest.mark.parametrize(
    "url",
    [
        "http://issuer.example/jwks",
        "http://10.0.0.1/jwks",
        "http://localhost.evil.example/jwks",
        "http://127.0.0.1.nip.io/jwks",
        "ftp://issuer.example/jwks",
        "file:///etc/passwd",
        "https:///no-host",
        "https://user:secret@issuer.example/jwks",
        "https://issuer.example:99999/jwks",
        "jwks.json",
    ],
)
def test_check_url_refuses(url: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        check_url(url)
    assert info.value.code == "config.invalid"


def test_check_url_http_only_by_explicit_opt_in() -> None:
    assert check_url("http://issuer.internal/jwks", allow_http=True)
    with pytest.raises(ConfigurationError):
        check_url("ftp://issuer.internal/jwks", allow_http=True)


# --- parse_max_age (RFC 9111 §5.2.2) ---------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("", None),
        ("public", None),
        ("max-age=600", 600.0),
        ("public, MAX-AGE=120, must-revalidate", 120.0),
        ('max-age="60"', 60.0),
        ("s-maxage=10", None),
        ("no-store", 0.0),
        ("max-age=600, no-cache", 0.0),
        ("max-age=abc", 0.0),
        ("max-age=-5", 0.0),
        ("max-age=", 0.0),
        ("max-age=\u00b2", 0.0),
        ("max-age=60, max-age=60", 60.0),
        ("max-age=60, max-age=120", 0.0),  # §4.2.1: conflicting -> stale
        ("max-age=99999999999999999999", float(2**31)),  # §1.2.2
    ],
)
def test_parse_max_age(header: str | None, expected: float | None) -> None:
    assert parse_max_age(header) == expected


# --- get_document ----------------------------------------------------------------------------


class _Lax:
    """A fetcher that ignores max_bytes: get_document must still enforce it."""

    def __init__(self, status: int, body: bytes) -> None:
        self.result = FetchResult(status, {}, body)

    def fetch(self, url: str, *, timeout: float, max_bytes: int) -> FetchResult:
        return self.result


def test_get_document_enforces_size_and_status() -> None:
    limits = DocumentLimits(max_bytes=10)
    assert get_document(_Lax(200, b"0123456789"), "u", limits).body == b"0123456789"
    with pytest.raises(KeySourceError) as info:
        get_document(_Lax(200, b"0123456789X"), "u", limits)
    assert (info.value.status, info.value.code) == (503, "keys.unavailable")
    with pytest.raises(KeySourceError):
        get_document(_Lax(404, b""), "u", limits)
    assert get_document(_Lax(404, b""), "u", limits, negative=(404,)).status == 404


@pytest.mark.parametrize(
    "kwargs", [{"timeout": 0}, {"max_bytes": 0}, {"max_keys": 0}, {"timeout": float("nan")}]
)
def test_document_limits_must_be_positive(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigurationError):
        DocumentLimits(**kwargs)  # type: ignore[arg-type]


# --- UrlFetcher against a real server on 127.0.0.1 ------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    hits: dict[str, int]

    def do_GET(self) -> None:
        self.server.hits[self.path] = self.server.hits.get(self.path, 0) + 1  # type: ignore[attr-defined]
        route = getattr(self, "route_" + self.path.strip("/").replace("-", "_"), None)
        if route is None:
            self._send(404, b'{"error":"not found"}')
        else:
            route()

    def _send(self, status: int, body: bytes, **headers: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        self.wfile.write(body)

    def route_jwks(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(JWKS)))
        self.send_header("Cache-Control", "public")
        self.send_header("Cache-Control", "max-age=120")
        self.end_headers()
        self.wfile.write(JWKS)

    def route_redirect(self) -> None:
        self._send(302, b"", Location="/jwks")

    def route_big(self) -> None:
        self._send(200, b"x" * (LIMIT + 1))

    def route_big_no_length(self) -> None:
        # No Content-Length: the body ends when the connection closes.
        self.send_response(200)
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(b"x" * (LIMIT * 4))

    def route_exact(self) -> None:
        self._send(200, b"x" * LIMIT)

    def route_slow(self) -> None:
        time.sleep(1.0)
        self._send(200, JWKS)

    def route_drip(self) -> None:
        # Every byte arrives well within a socket timeout; only a total deadline stops it.
        self.send_response(200)
        self.send_header("Content-Length", "60")
        self.end_headers()
        for _ in range(60):
            self.wfile.write(b"x")
            self.wfile.flush()
            time.sleep(0.05)

    def log_message(self, format: str, *args: object) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.hits: dict[str, int] = {}

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # the client hanging up early (oversize, timeout) is the point of some tests


def _serve(server: _Server) -> Iterator[str]:
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server.server_address[1]  # type: ignore[misc]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def server() -> Iterator[_Server]:
    srv = _Server()
    for _ in _serve(srv):
        yield srv


def _url(server: _Server, path: str, scheme: str = "http") -> str:
    return f"{scheme}://127.0.0.1:{server.server_address[1]}{path}"


pytestmark = pytest.mark.server


def test_url_fetcher_serves_document(server: _Server) -> None:
    result = UrlFetcher().fetch(_url(server, "/jwks"), timeout=5, max_bytes=LIMIT)
    assert result.status == 200
    assert result.body == JWKS
    assert result.headers["cache-control"] == "public, max-age=120"
    assert result.headers["content-length"] == str(len(JWKS))
    assert parse_max_age(result.headers["cache-control"]) == 120.0


def test_url_fetcher_returns_non_200_to_the_caller(server: _Server) -> None:
    result = UrlFetcher().fetch(_url(server, "/missing"), timeout=5, max_bytes=LIMIT)
    assert (result.status, result.body) == (404, b'{"error":"not found"}')


def test_url_fetcher_does_not_follow_redirects(server: _Server) -> None:
    with pytest.raises(KeySourceError) as info:
        UrlFetcher().fetch(_url(server, "/redirect"), timeout=5, max_bytes=LIMIT)
    assert info.value.status == 503
    assert "302" in info.value.detail and "not followed" in info.value.detail
    assert server.hits == {"/redirect": 1}  # /jwks was never asked for


@pytest.mark.parametrize("path", ["/big", "/big-no-length"])
def test_url_fetcher_rejects_oversize_body(server: _Server, path: str) -> None:
    with pytest.raises(KeySourceError) as info:
        UrlFetcher().fetch(_url(server, path), timeout=5, max_bytes=LIMIT)
    assert info.value.code == "keys.unavailable"
    assert str(LIMIT) in info.value.detail


def test_url_fetcher_accepts_body_at_the_limit(server: _Server) -> None:
    result = UrlFetcher().fetch(_url(server, "/exact"), timeout=5, max_bytes=LIMIT)
    assert len(result.body) == LIMIT


def test_url_fetcher_times_out_waiting_for_answer(server: _Server) -> None:
    with pytest.raises(KeySourceError) as info:
        UrlFetcher().fetch(_url(server, "/slow"), timeout=0.3, max_bytes=LIMIT)
    assert info.value.status == 503
    assert "timed out" in info.value.detail.lower()


def test_url_fetcher_total_deadline_stops_a_dripping_body(server: _Server) -> None:
    # 60 bytes at 50 ms each: no single read waits 0.5 s, the whole body takes 3 s.
    with pytest.raises(KeySourceError) as info:
        UrlFetcher().fetch(_url(server, "/drip"), timeout=0.5, max_bytes=LIMIT)
    assert "deadline" in info.value.detail or "timed out" in info.value.detail


def test_url_fetcher_connection_refused() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(KeySourceError) as info:
        UrlFetcher().fetch(f"http://127.0.0.1:{port}/jwks", timeout=2, max_bytes=LIMIT)
    assert info.value.status == 503


@pytest.mark.parametrize("url", ["file:///etc/hostname", "ftp://127.0.0.1/x", "not a url"])
def test_url_fetcher_refuses_other_schemes(url: str) -> None:
    with pytest.raises(KeySourceError):
        UrlFetcher().fetch(url, timeout=1, max_bytes=LIMIT)


# --- https with a private CA -----------------------------------------------------------------


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[_Server, Path]]:
    pki = make_pki(tmp_path, clients=())
    srv = _Server()
    srv.socket = pki.server_context("none").wrap_socket(srv.socket, server_side=True)
    for _ in _serve(srv):
        yield srv, pki.ca_cert_path


def test_url_fetcher_https_with_private_ca(tls_server: tuple[_Server, Path]) -> None:
    srv, ca = tls_server
    trusted = UrlFetcher(ssl_context=ssl.create_default_context(cafile=str(ca)))
    result = trusted.fetch(_url(srv, "/jwks", "https"), timeout=5, max_bytes=LIMIT)
    assert (result.status, result.body) == (200, JWKS)


def test_url_fetcher_https_untrusted_certificate(tls_server: tuple[_Server, Path]) -> None:
    srv, _ = tls_server
    with pytest.raises(KeySourceError) as info:
        UrlFetcher().fetch(_url(srv, "/jwks", "https"), timeout=5, max_bytes=LIMIT)
    assert "CERTIFICATE_VERIFY_FAILED" in info.value.detail
    assert srv.hits == {}
