"""RFC 7662 introspection: the request, the answer, caching and outages (with a fake poster),
then the default urllib poster against a real ``http.server`` on 127.0.0.1."""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from collections.abc import Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import pytest

from tests.redis_server import free_port
from tests.test_tokens import NOW, FakeClock, kit, mint
from wsgi_apisec.errors import ConfigurationError, InvalidToken, KeySourceError
from wsgi_apisec.introspection import Introspection, UrllibPoster
from wsgi_apisec.tokens import TokenValidator

ENDPOINT = "https://as.example.com/oauth2/introspect"
TOKEN = "2YotnFZFEjr1zCsicMWpAA"

Reply = tuple[int, dict[str, str], bytes] | KeySourceError


def active(**changes: Any) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "active": True,
        "scope": "read write",
        "client_id": "l238j323ds-23ij4",
        "sub": "Z5O3upPC88QrAjx00dis",
        "iss": "https://as.example.com/",
        "aud": "https://api.example.com",
        "exp": int(NOW) + 600,
        "iat": int(NOW) - 10,
    }
    answer.update(changes)
    return answer


class FakePoster:
    """Answers with the scripted replies in turn (the last one repeats)."""

    def __init__(self, *replies: Reply | dict[str, Any]) -> None:
        self.replies = list(replies)
        self.calls: list[tuple[str, dict[str, str], dict[str, str]]] = []

    def post(
        self, url: str, *, data: Mapping[str, str], headers: Mapping[str, str], timeout: float
    ) -> tuple[int, Mapping[str, str], bytes]:
        self.calls.append((url, dict(data), dict(headers)))
        reply = self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]
        if isinstance(reply, KeySourceError):
            raise reply
        if isinstance(reply, dict):
            return 200, {"content-type": "application/json"}, json.dumps(reply).encode()
        return reply


def introspection(poster: FakePoster, clock: FakeClock, **kwargs: Any) -> Introspection:
    kwargs.setdefault("client_id", "rs client")
    kwargs.setdefault("client_secret", "s3cr3t:&=+")
    return Introspection(ENDPOINT, poster=poster, clock=clock, **kwargs)


def test_rfc7662_s2_1_request_with_client_secret_basic() -> None:
    poster = FakePoster(active())
    token = introspection(poster, FakeClock()).introspect(TOKEN)
    url, data, headers = poster.calls[0]
    assert url == ENDPOINT
    assert data == {"token": TOKEN, "token_type_hint": "access_token"}
    # RFC 6749 §2.3.1: form-urlencode id and secret, then Basic.
    expected = base64.b64encode(b"rs+client:s3cr3t%3A%26%3D%2B").decode()
    assert headers["Authorization"] == f"Basic {expected}"
    assert token.raw == TOKEN
    assert token.scopes == frozenset({"read", "write"})
    assert (token.client_id, token.subject) == ("l238j323ds-23ij4", "Z5O3upPC88QrAjx00dis")
    assert token.issuer == "https://as.example.com/"
    assert token.audience == ("https://api.example.com",)
    assert token.expires_at == int(NOW) + 600


def test_client_secret_post() -> None:
    poster = FakePoster(active())
    introspection(poster, FakeClock(), auth_method="client_secret_post").introspect(TOKEN)
    _, data, headers = poster.calls[0]
    assert data["client_id"] == "rs client" and data["client_secret"] == "s3cr3t:&=+"
    assert "Authorization" not in headers


def test_cnf_carried_into_the_token() -> None:
    poster = FakePoster(active(cnf={"x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"}))
    token = introspection(poster, FakeClock()).introspect(TOKEN)
    assert token.bound and token.cnf == {"x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"}


def test_rfc7662_s2_2_inactive_is_invalid_token() -> None:
    intro = introspection(FakePoster({"active": False}), FakeClock())
    with pytest.raises(InvalidToken) as info:
        intro.introspect(TOKEN)
    assert (info.value.status, info.value.error, info.value.code) == (
        401,
        "invalid_token",
        "token.inactive",
    )


def test_positive_answer_cached_for_ttl() -> None:
    clock, poster = FakeClock(), FakePoster(active())
    intro = introspection(poster, clock)
    intro.introspect(TOKEN)
    clock.now += 59
    assert intro.introspect(TOKEN).subject == "Z5O3upPC88QrAjx00dis"
    assert len(poster.calls) == 1
    clock.now += 1
    intro.introspect(TOKEN)
    assert len(poster.calls) == 2


def test_positive_answer_cached_no_longer_than_exp() -> None:
    clock = FakeClock()
    poster = FakePoster(active(exp=int(NOW) + 10), {"active": False})
    intro = introspection(poster, clock, ttl=300)
    intro.introspect(TOKEN)
    clock.now += 10
    with pytest.raises(InvalidToken):
        intro.introspect(TOKEN)
    assert len(poster.calls) == 2


def test_negative_answer_cached_briefly() -> None:
    clock, poster = FakeClock(), FakePoster({"active": False}, active())
    intro = introspection(poster, clock)
    for _ in range(3):
        with pytest.raises(InvalidToken):
            intro.introspect(TOKEN)
    assert len(poster.calls) == 1
    clock.now += 5
    assert intro.introspect(TOKEN).client_id == "l238j323ds-23ij4"
    assert len(poster.calls) == 2


def test_cache_key_is_a_hash_and_the_token_is_not_kept() -> None:
    intro = introspection(FakePoster(active()), FakeClock())
    intro.introspect(TOKEN)
    (key,) = intro._cache._items
    assert key == hashlib.sha256(TOKEN.encode()).digest()
    (entry,) = (value for _, value in intro._cache._items.values())
    assert entry.token is not None and entry.token.raw == ""


def test_cache_is_bounded() -> None:
    intro = introspection(FakePoster(active()), FakeClock(), cache_size=2)
    for n in range(5):
        intro.introspect(f"token-{n}")
    assert len(intro._cache) == 2


@pytest.mark.parametrize(
    "reply",
    [
        KeySourceError("the token introspection endpoint is unavailable"),
        (500, {}, b"oops"),
        (401, {}, b'{"error":"invalid_client"}'),
        (200, {}, b"<html>"),
        (200, {}, b'{"scope":"a"}'),
        (200, {}, b'{"active":"true"}'),
        (200, {}, b"[true]"),
        (200, {}, b'{"active":true,"pad":"' + b"x" * 70000 + b'"}'),
    ],
    ids=["down", "500", "401", "not-json", "no-active", "active-string", "array", "too-big"],
)
def test_endpoint_failure_with_nothing_cached_is_503(reply: Reply) -> None:
    intro = introspection(FakePoster(reply), FakeClock())
    with pytest.raises(KeySourceError) as info:
        intro.introspect(TOKEN)
    assert (info.value.status, info.value.error) == (503, "temporarily_unavailable")


def test_failures_are_not_cached() -> None:
    poster = FakePoster((500, {}, b""), active())
    intro = introspection(poster, FakeClock())
    with pytest.raises(KeySourceError):
        intro.introspect(TOKEN)
    assert intro.introspect(TOKEN).subject == "Z5O3upPC88QrAjx00dis"


def test_cached_answer_served_during_an_outage() -> None:
    clock = FakeClock()
    poster = FakePoster(active(), KeySourceError("down"))
    intro = introspection(poster, clock)
    intro.introspect(TOKEN)
    clock.now += 30
    assert intro.introspect(TOKEN).client_id == "l238j323ds-23ij4"


@pytest.mark.parametrize(
    ("answer", "code"),
    [
        (active(exp=int(NOW) - 31), "token.expired"),
        (active(nbf=int(NOW) + 60), "token.not_yet_valid"),
        (active(exp="soon"), "token.claims"),
        (active(scope=["read"]), "token.claims"),
        (active(cnf="x"), "token.claims"),
        (active(iss="https://evil.example/"), "token.issuer"),
        (active(aud="https://other.example"), "token.audience"),
    ],
    ids=["expired", "not-yet", "exp-string", "scope-array", "cnf-string", "issuer", "audience"],
)
def test_active_answer_still_checked(answer: dict[str, Any], code: str) -> None:
    intro = introspection(
        FakePoster(answer),
        FakeClock(),
        issuer="https://as.example.com/",
        audience="https://api.example.com",
    )
    with pytest.raises(InvalidToken) as info:
        intro.introspect(TOKEN)
    assert (info.value.status, info.value.code) == (401, code)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"endpoint": "http://as.example.com/introspect"},
        {"endpoint": "ftp://as.example.com/introspect"},
        {"auth_method": "private_key_jwt"},
        {"ttl": 0},
    ],
)
def test_configuration_errors(kwargs: dict[str, Any]) -> None:
    endpoint = kwargs.pop("endpoint", ENDPOINT)
    with pytest.raises(ConfigurationError):
        Introspection(endpoint, client_id="a", client_secret="b", **kwargs)


def test_http_allowed_for_loopback() -> None:
    intro = Introspection("http://127.0.0.1:9/introspect", client_id="a", client_secret="b")
    assert intro.endpoint == "http://127.0.0.1:9/introspect"


def test_validator_hands_opaque_tokens_to_introspection() -> None:
    k = kit()
    poster = FakePoster(active())
    validator = TokenValidator(
        [k.issuer, introspection(poster, k.clock)], clock=k.clock, require_bound=False
    )
    assert validator.validate(TOKEN).subject == "Z5O3upPC88QrAjx00dis"
    assert validator.validate(mint(k.key)).subject == "user-1"
    assert len(poster.calls) == 1


@pytest.mark.parametrize("token", ["abc def", "abc\u00e9", "a=b", "tok\r\nX-Injected: 1"])
def test_rfc6750_s2_1_validator_never_introspects_a_non_b64token(token: str) -> None:
    clock = FakeClock()
    poster = FakePoster(active())
    validator = TokenValidator(introspection(poster, clock), clock=clock)
    with pytest.raises(InvalidToken) as info:
        validator.validate(token)
    assert info.value.code == "token.malformed"
    assert poster.calls == []


def test_validator_require_bound_applies_to_introspected_tokens() -> None:
    clock = FakeClock()
    validator = TokenValidator(
        introspection(FakePoster(active()), clock), clock=clock, require_bound=True
    )
    with pytest.raises(InvalidToken) as info:
        validator.validate(TOKEN)
    assert info.value.code == "token.unbound"


# --- the urllib poster against a real server ------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        form = parse_qs(self.rfile.read(length).decode())
        self.server.seen.append((self.path, dict(self.headers), form))  # type: ignore[attr-defined]
        token = form.get("token", [""])[0]
        if self.headers.get("Authorization") != "Basic " + base64.b64encode(b"rs:pw").decode():
            self._send(401, b'{"error":"invalid_client"}')
        elif token == "boom":
            self._send(500, b"internal error")
        elif token == "moved":
            self._send(302, b"", Location="http://127.0.0.1:1/elsewhere")
        elif token == "good":
            self._send(200, json.dumps({"active": True, "scope": "a b", "sub": "s"}).encode())
        else:
            self._send(200, b'{"active": false}')

    def _send(self, status: int, body: bytes, **headers: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[ThreadingHTTPServer]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.seen = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def _real(server: ThreadingHTTPServer, **kwargs: Any) -> Introspection:
    port = server.server_address[1]
    kwargs.setdefault("client_secret", "pw")
    return Introspection(
        f"http://127.0.0.1:{port}/introspect", client_id="rs", poster=UrllibPoster(), **kwargs
    )


@pytest.mark.server
def test_urllib_poster_against_real_server(server: ThreadingHTTPServer) -> None:
    token = _real(server).introspect("good")
    assert token.scopes == frozenset({"a", "b"}) and token.subject == "s"
    path, headers, form = server.seen[0]  # type: ignore[attr-defined]
    assert path == "/introspect"
    assert headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert form == {"token": ["good"], "token_type_hint": ["access_token"]}
    with pytest.raises(InvalidToken):
        _real(server).introspect("revoked")


@pytest.mark.server
@pytest.mark.parametrize("token", ["boom", "moved"])
def test_urllib_poster_server_error_and_redirect_are_503(
    server: ThreadingHTTPServer, token: str
) -> None:
    with pytest.raises(KeySourceError):
        _real(server).introspect(token)
    assert len(server.seen) == 1  # type: ignore[attr-defined]


@pytest.mark.server
def test_urllib_poster_wrong_client_secret_is_503(server: ThreadingHTTPServer) -> None:
    with pytest.raises(KeySourceError) as info:
        _real(server, client_secret="wrong").introspect("good")
    assert "HTTP 401" in info.value.detail


@pytest.mark.server
def test_urllib_poster_connection_refused_is_503() -> None:
    intro = Introspection(
        f"http://127.0.0.1:{free_port()}/introspect", client_id="a", client_secret="b"
    )
    with pytest.raises(KeySourceError):
        intro.introspect("good")
