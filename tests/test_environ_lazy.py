"""``EnvironHeaders`` and ``EnvironRequest``: the token check's view of a request, read from
the environ on use. Each must read exactly what the copying ``request_headers`` /
``message_from_environ`` read; the one deliberate difference is the query (the server's
``QUERY_STRING``, which the app parses)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from flask_apisec.testing import make_pki
from wsgi_apisec.environ import (
    ENV_CONTEXT,
    ENV_TOKEN,
    EnvironHeaders,
    EnvironRequest,
    message_from_environ,
    request_headers,
)
from wsgi_apisec.message import Body


def environ(**extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "REQUEST_METHOD": "POST",
        "SCRIPT_NAME": "/app",
        "PATH_INFO": "/items/%C3%BC",
        "QUERY_STRING": "a=1&b=%20",
        "RAW_URI": "/app/items/%25C3%25BC?a=1&b=%20",
        "SERVER_NAME": "api.example",
        "SERVER_PORT": "443",
        "wsgi.url_scheme": "https",
        "HTTP_HOST": "api.example",
        "HTTP_AUTHORIZATION": "Bearer abc",
        "HTTP_DPOP": "proof",
        "HTTP_X_MULTI_WORD": "v",
        "HTTP_CONTENT_TYPE": "text/evil",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": "",
        "REMOTE_ADDR": "192.0.2.9",
    }
    base.update(extra)
    return base


NAMES = [
    "Authorization",
    "authorization",
    "AUTHORIZATION",
    "DPoP",
    "x-multi-word",
    "X_Multi_Word",
    "x_multi_word",
    "content-type",
    "Content-Type",
    "content-length",
    "host",
    "missing",
    "ß",
    "",
]


@pytest.mark.parametrize("name", NAMES)
def test_environ_headers_read_what_request_headers_copy(name: str) -> None:
    env = environ()
    lazy, copied = EnvironHeaders(env), request_headers(env)
    assert lazy.get_all(name) == copied.get_all(name)
    assert lazy.get(name, "dflt") == copied.get(name, "dflt")
    assert (name in lazy) == (name in copied)


def test_environ_headers_items_are_the_copy() -> None:
    env = environ()
    assert EnvironHeaders(env).items() == request_headers(env).items()


def test_environ_request_reads_what_message_from_environ_reads(tmp_path: Path) -> None:
    cert = make_pki(tmp_path).clients["client"]
    token = object()
    env = environ(
        SSL_CLIENT_CERT=cert.cert_pem.decode(),
        **{ENV_TOKEN: token, ENV_CONTEXT: {"tenant": "t1", "token": "ignored"}},
    )
    body = Body(b"{}")
    lazy, full = EnvironRequest.from_environ(env, body), message_from_environ(env, body)
    assert lazy.method == full.method == "POST"
    assert lazy.target_uri == full.target_uri
    assert lazy.query == full.query == "a=1&b=%20"
    assert lazy.path == full.path
    assert lazy.context == full.context
    assert lazy.context["token"] is token
    assert lazy.context["tls_client_cert"] == cert.cert_der
    assert lazy.remote_addr == full.remote_addr == "192.0.2.9"
    assert lazy.body is body
    assert lazy.headers.items() == full.headers.items()


def test_environ_request_reads_nothing_it_is_not_asked_for() -> None:
    lazy = EnvironRequest.from_environ(environ())
    assert lazy.headers.get("authorization") == "Bearer abc"
    assert "_target_uri" not in vars(lazy) and "_context" not in vars(lazy)


def test_environ_request_query_is_what_the_app_parses() -> None:
    # A Host field with a "?" (malformed) would put it into the rebuilt target URI's query;
    # the app parses QUERY_STRING, and so does the token check.
    env = environ(HTTP_HOST="api.example?access_token=x", QUERY_STRING="", RAW_URI="/app/x")
    assert message_from_environ(env).query != ""
    assert EnvironRequest.from_environ(env).query == ""


def test_environ_request_parts_can_be_replaced() -> None:
    lazy = EnvironRequest.from_environ(environ())
    moved = dataclasses.replace(lazy, target_uri="https://api.example/other?q=2")
    assert isinstance(moved, EnvironRequest)
    assert (moved.target_uri, moved.query, moved.path) == (
        "https://api.example/other?q=2",
        "q=2",
        "/other",
    )
    assert moved.headers.get("dpop") == "proof"
    lazy.context = {"k": "v"}
    assert lazy.context == {"k": "v"}


@pytest.mark.parametrize(
    ("raw", "path_info", "expected"),
    [
        ("/app/items/x?a=1&b=%20", "/items/x", "https://api.example/app/items/x?a=1&b=%20"),
        # A "%" in the raw path: it names PATH_INFO only once decoded.
        ("/app/a%2Fb?a=1&b=%20", "/a/b", "https://api.example/app/a%2Fb?a=1&b=%20"),
        # The same text, but the raw "%2F" decodes to "/", not to PATH_INFO's "%2F".
        ("/app/a%2Fb?a=1&b=%20", "/a%2Fb", "https://api.example/app/a%252Fb?a=1&b=%20"),
        # SCRIPT_NAME moved by a dispatcher: the raw target is not what the app serves.
        ("/items/x?a=1&b=%20", "/items/x", "https://api.example/app/items/x?a=1&b=%20"),
    ],
)
def test_target_uri_uses_the_raw_target_only_when_it_agrees(
    raw: str, path_info: str, expected: str
) -> None:
    env = environ(RAW_URI=raw, PATH_INFO=path_info)
    assert EnvironRequest.from_environ(env).target_uri == expected
    assert message_from_environ(env).target_uri == expected
