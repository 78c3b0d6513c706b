"""environ.py: WSGI environ -> Message, and the request body in and out of WSGI."""

from __future__ import annotations

import hashlib
import io
import ssl
from pathlib import Path
from typing import Any

import pytest
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from tests.tls import make_pki
from wsgi_apisec.environ import (
    ENV_CONTEXT,
    ENV_TOKEN,
    ENV_TRANSFER_ENCODING,
    READ_SIZE,
    client_cert,
    hand_body_to_app,
    message_from_environ,
    read_body,
    request_headers,
    route_path,
    target_uri,
)
from wsgi_apisec.errors import BodyTooLarge, InvalidRequest
from wsgi_apisec.message import Body

MiB = 1024 * 1024


def environ(**extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "REQUEST_METHOD": "POST",
        "SCRIPT_NAME": "",
        "PATH_INFO": "/",
        "QUERY_STRING": "",
        "SERVER_NAME": "api.example",
        "SERVER_PORT": "443",
        "wsgi.url_scheme": "https",
        "wsgi.input": io.BytesIO(b""),
    }
    base.update(extra)
    return base


class CountingStream(io.RawIOBase):
    """An endless input that counts what was read from it."""

    def __init__(self, limit: int | None = None) -> None:
        self.read_bytes = 0
        self.limit = limit

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if size < 0:
            raise AssertionError("an unbounded read() was attempted")
        if self.limit is not None:
            size = min(size, self.limit - self.read_bytes)
        self.read_bytes += size
        return b"x" * size


# --- target URI (PEP 3333 "URL Reconstruction") ----------------------------------------------


def test_target_uri_uses_host_header_and_raw_target() -> None:
    env = environ(
        HTTP_HOST="api.example:8443",
        PATH_INFO="/a b/ü",
        QUERY_STRING="x=1&y=%20",
        RAW_URI="/a%20b/%C3%BC?x=1&y=%20",
    )
    # PATH_INFO holds the UTF-8 bytes decoded as latin-1, as a server puts them.
    env["PATH_INFO"] = "/a b/ü".encode().decode("latin-1")
    assert target_uri(env) == "https://api.example:8443/a%20b/%C3%BC?x=1&y=%20"


def test_target_uri_keeps_the_raw_spelling_the_client_signed() -> None:
    # "%7E" and "~" decode to the same path; the client signed the one it sent.
    env = environ(PATH_INFO="/~user", REQUEST_URI="/%7Euser")
    assert target_uri(env) == "https://api.example/%7Euser"


def test_target_uri_absolute_form_request_target() -> None:
    env = environ(HTTP_HOST="api.example", PATH_INFO="/p", RAW_URI="https://api.example/p?q")
    env["QUERY_STRING"] = "q"
    assert target_uri(env) == "https://api.example/p?q"


def test_target_uri_rebuilt_when_raw_target_disagrees_with_script_name() -> None:
    # ProxyFix(x_prefix=1) moved the mount point: the raw target no longer names the path.
    env = environ(SCRIPT_NAME="/prefix", PATH_INFO="/p q", RAW_URI="/p%20q", HTTP_HOST="h")
    assert target_uri(env) == "https://h/prefix/p%20q"


def test_target_uri_without_host_header_uses_server_name_and_non_default_port() -> None:
    assert target_uri(environ(SERVER_PORT="443")) == "https://api.example/"
    assert target_uri(environ(SERVER_PORT="8443")) == "https://api.example:8443/"
    env = environ(SERVER_PORT="80", PATH_INFO="/x")
    env["wsgi.url_scheme"] = "http"
    assert target_uri(env) == "http://api.example/x"


def test_route_path_is_decoded_utf8() -> None:
    env = environ(PATH_INFO="/ü".encode().decode("latin-1"))
    assert route_path(env) == "/ü"
    assert route_path(environ(PATH_INFO="")) == "/"


# --- headers, peer, context -------------------------------------------------------------------


def test_headers_restored_lower_case_with_content_type_and_length() -> None:
    env = environ(
        HTTP_X_JWS_SIGNATURE="sig",
        HTTP_HOST="h",
        CONTENT_TYPE="application/json",
        CONTENT_LENGTH="2",
        HTTP_CONTENT_LENGTH="999",
    )
    headers = request_headers(env)
    assert headers.get("x-jws-signature") == "sig"
    assert headers.get("content-type") == "application/json"
    assert headers.get_all("content-length") == ["2"]
    assert "host" in headers


def test_empty_content_type_is_not_a_header() -> None:
    assert "content-type" not in request_headers(environ(CONTENT_TYPE=""))


def test_message_carries_token_context_and_remote_addr() -> None:
    token = object()
    env = environ(
        REMOTE_ADDR="192.0.2.7",
        **{ENV_TOKEN: token, ENV_CONTEXT: {"token": "ignored", "tenant": "t1"}},
    )
    msg = message_from_environ(env, Body(b"{}"))
    assert msg.context["token"] is token  # the validated token wins over the loose context
    assert msg.context["tenant"] == "t1"
    assert msg.remote_addr == "192.0.2.7"
    assert msg.method == "POST"
    assert msg.body.read() == b"{}"
    assert "tls_client_cert" not in msg.context


def test_client_cert_from_ssl_client_cert_pem(tmp_path: Path) -> None:
    pki = make_pki(tmp_path)
    ident = pki.clients["client"]
    env = environ(SSL_CLIENT_CERT=ident.cert_pem.decode())
    assert client_cert(env) == ident.cert_der
    assert message_from_environ(env).context["tls_client_cert"] == ident.cert_der


def test_client_cert_absent_empty_or_garbage_is_none() -> None:
    assert client_cert(environ()) is None
    assert client_cert(environ(SSL_CLIENT_CERT="")) is None  # Apache sets it empty
    assert client_cert(environ(SSL_CLIENT_CERT="not a certificate")) is None


def test_client_cert_header_from_a_client_is_never_used() -> None:
    pem = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
    assert client_cert(environ(HTTP_SSL_CLIENT_CERT=pem, HTTP_CLIENT_CERT=":AAAA:")) is None


def test_client_cert_from_gunicorn_socket() -> None:
    class PeerSocket:
        def getpeercert(self, binary_form: bool = False) -> bytes | None:
            assert binary_form
            return b"\x30\x03DER"

    class PlainSocket:  # TLS terminated in front of gunicorn: no getpeercert
        pass

    assert client_cert(environ(**{"gunicorn.socket": PeerSocket()})) == b"\x30\x03DER"
    assert client_cert(environ(**{"gunicorn.socket": PlainSocket()})) is None


def test_client_cert_pem_wins_over_socket() -> None:
    pem = ssl.DER_cert_to_PEM_cert(b"\x30\x01A")

    class PeerSocket:
        def getpeercert(self, binary_form: bool = False) -> bytes:
            return b"other"

    env = environ(SSL_CLIENT_CERT=pem, **{"gunicorn.socket": PeerSocket()})
    assert client_cert(env) == b"\x30\x01A"


# --- reading the body ---------------------------------------------------------------------------


@pytest.mark.parametrize("size", [1, READ_SIZE, READ_SIZE + 1, 3 * MiB])
def test_read_body_content_length(size: int) -> None:
    data = bytes(range(256)) * (size // 256) + b"z" * (size % 256)
    env = environ(CONTENT_LENGTH=str(size), **{"wsgi.input": io.BytesIO(data + b"NEXT")})
    body = read_body(env, spool_threshold=MiB)
    assert len(body) == size
    assert body.read() == data
    assert body.in_memory == (size <= MiB)
    body.close()


def test_read_body_spools_past_threshold_and_stays_rereadable() -> None:
    data = b"0123456789" * 30_000
    env = environ(CONTENT_LENGTH=str(len(data)), **{"wsgi.input": io.BytesIO(data)})
    body = read_body(env, spool_threshold=1000)
    assert not body.in_memory
    first = hashlib.sha256(b"".join(body.chunks())).digest()
    assert (
        first == hashlib.sha256(b"".join(body.chunks())).digest() == hashlib.sha256(data).digest()
    )
    body.close()


def test_read_body_chunked_reads_to_eof() -> None:
    data = b"a" * (READ_SIZE * 2 + 5)
    env = environ(HTTP_TRANSFER_ENCODING="chunked", **{"wsgi.input": io.BytesIO(data)})
    assert read_body(env).read() == data
    env = environ(**{"wsgi.input": io.BytesIO(data), "wsgi.input_terminated": True})
    assert read_body(env).read() == data


def test_read_body_no_length_no_framing_is_empty_and_reads_nothing() -> None:
    stream = CountingStream()
    assert len(read_body(environ(**{"wsgi.input": stream}))) == 0
    assert len(read_body(environ(CONTENT_LENGTH="", **{"wsgi.input": stream}))) == 0
    assert stream.read_bytes == 0


def test_read_body_over_limit_with_content_length_reads_nothing() -> None:
    stream = CountingStream()
    env = environ(CONTENT_LENGTH=str(MiB + 1), **{"wsgi.input": stream})
    with pytest.raises(BodyTooLarge) as info:
        read_body(env, max_bytes=MiB)
    assert (info.value.status, info.value.code) == (413, "request.too_large")
    assert stream.read_bytes == 0


def test_read_body_over_limit_chunked_stops_reading() -> None:
    stream = CountingStream()  # endless: a client that never stops sending
    env = environ(HTTP_TRANSFER_ENCODING="chunked", **{"wsgi.input": stream})
    with pytest.raises(BodyTooLarge):
        read_body(env, max_bytes=MiB, spool_threshold=MiB // 4)
    assert stream.read_bytes <= MiB + READ_SIZE


def test_read_body_exactly_at_limit_is_accepted() -> None:
    env = environ(HTTP_TRANSFER_ENCODING="chunked", **{"wsgi.input": CountingStream(MiB)})
    assert len(read_body(env, max_bytes=MiB)) == MiB


def test_read_body_short_body_is_400() -> None:
    env = environ(CONTENT_LENGTH="10", **{"wsgi.input": io.BytesIO(b"12345")})
    with pytest.raises(InvalidRequest) as info:
        read_body(env)
    assert info.value.status == 400
    assert type(info.value) is InvalidRequest


@pytest.mark.parametrize("value", ["-1", "1e3", "10, 10", "0x10", " +5", "١٢"])
def test_read_body_bad_content_length_is_400(value: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        read_body(environ(CONTENT_LENGTH=value))
    assert (info.value.status, info.value.code) == (400, "request.content_length")


def test_read_body_content_length_and_chunked_is_400() -> None:
    # RFC 9112 §6.1: both framings at once is how requests are smuggled.
    env = environ(CONTENT_LENGTH="5", HTTP_TRANSFER_ENCODING="gzip, chunked")
    with pytest.raises(InvalidRequest) as info:
        read_body(env)
    assert info.value.status == 400


def test_read_body_broken_stream_is_400() -> None:
    class Broken(io.RawIOBase):
        def read(self, size: int = -1) -> bytes:
            raise OSError("Invalid chunk header")

    env = environ(HTTP_TRANSFER_ENCODING="chunked", **{"wsgi.input": Broken()})
    with pytest.raises(InvalidRequest) as info:
        read_body(env)
    assert info.value.status == 400


# --- handing the body to the app -----------------------------------------------------------------


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize("size", [0, 1, 2 * MiB])
def test_werkzeug_reads_the_handed_body_exactly(chunked: bool, size: int) -> None:
    data = b"q" * size
    if chunked:
        env = EnvironBuilder(
            method="POST", input_stream=io.BytesIO(data), headers={"Transfer-Encoding": "chunked"}
        ).get_environ()
        env["CONTENT_LENGTH"] = ""
        env["wsgi.input_terminated"] = True
    else:
        env = EnvironBuilder(method="POST", data=data).get_environ()
    body = read_body(env, spool_threshold=MiB)
    hand_body_to_app(env, body)
    assert env["CONTENT_LENGTH"] == str(size)
    assert "HTTP_TRANSFER_ENCODING" not in env
    assert (env.get(ENV_TRANSFER_ENCODING) == "chunked") is chunked
    assert Request(env).get_data() == data
    body.close()


def test_plain_pep3333_reader_gets_the_handed_body() -> None:
    data = b"abc" * 1000
    env = environ(HTTP_TRANSFER_ENCODING="chunked", **{"wsgi.input": io.BytesIO(data)})
    body = read_body(env)
    hand_body_to_app(env, body)
    assert env["wsgi.input"].read(int(env["CONTENT_LENGTH"])) == data
