"""How the token travels (RFC 6750 §2, §3): query and form transports, more than one
token, header smuggling through a real server on 127.0.0.1."""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from werkzeug.test import TestResponse

from flask_apisec.testing import TestIssuer
from tests.attacks.harness import Setup, Target, bearer, challenge, passed, refused
from tests.samples import serve

BAD_REQUEST = "invalid_request"


def refused_400(target: Target, resp: TestResponse, description: str) -> None:
    www = challenge(BAD_REQUEST, description)
    refused(resp, target, 400, "request.invalid", error=BAD_REQUEST, www_authenticate=www)


def test_rfc6750_s3_1_no_credentials_is_401_without_error(target: Target) -> None:
    doc = refused(
        target.client.get("/read"), target, 401, "token.missing", www_authenticate=challenge()
    )
    assert doc["detail"] == "an access token is required"


def test_rfc6750_s3_1_missing_scope_is_403_naming_the_scope(
    target: Target, issuer: TestIssuer
) -> None:
    resp = target.client.get("/read", token=issuer.token("write"))
    description = "the token lacks the scope read"
    www = challenge("insufficient_scope", description, scope="read")
    refused(
        resp,
        target,
        403,
        "token.insufficient_scope",
        error="insufficient_scope",
        www_authenticate=www,
    )


def test_rfc6750_s2_3_token_in_query_when_disabled(target: Target, issuer: TestIssuer) -> None:
    token = issuer.token("read")
    description = "access tokens are not accepted in the URI query"
    refused_400(target, target.client.get(f"/read?access_token={token}"), description)
    # The name percent-encoded, as a framework would decode it.
    refused_400(target, target.client.get(f"/read?access%5Ftoken={token}"), description)


def test_rfc6750_s2_2_token_in_form_body_when_disabled(target: Target, issuer: TestIssuer) -> None:
    """The body belongs to the app: a form ``access_token`` is no credential here."""
    resp = target.client.post("/read", data={"access_token": issuer.token("read")})
    refused(resp, target, 401, "token.missing", www_authenticate=challenge())


def test_rfc6750_s2_two_tokens_header_and_query(
    build_target: Callable[[Setup], Target], setup: Setup, issuer: TestIssuer
) -> None:
    target = build_target(setup.replace(token_in_query=True))
    token = issuer.token("read")
    description = "the request carries more than one access token"
    refused_400(
        target, target.client.get(f"/read?access_token={token}", headers=bearer(token)), description
    )
    # The positive control: the query transport alone works once enabled.
    passed(target.client.get(f"/read?access_token={token}"), target, "/read")


def test_two_authorization_headers(target: Target, issuer: TestIssuer) -> None:
    headers = [("Authorization", f"Bearer {issuer.token('read')}"), ("Authorization", "Bearer x")]
    refused_400(
        target, target.client.get("/read", headers=headers), "the Bearer credentials are malformed"
    )


# --- through a real server: what reaches the WSGI environ from the wire ----------------------


@contextmanager
def wire(target: Target) -> Iterator[int]:
    with serve(lambda base_url: target.wsgi) as base_url:
        yield int(base_url.rsplit(":", 1)[1])


def send(port: int, head: bytes, body: bytes = b"") -> tuple[int, dict[str, str], bytes]:
    """One raw HTTP/1.1 request, exactly these bytes; the parsed answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(head + b"\r\n" + body)
        resp = http.client.HTTPResponse(sock)
        resp.begin()
        data = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data


def _request(path: str, *lines: str) -> bytes:
    fields = ["Host: 127.0.0.1", "Connection: close", *lines]
    return f"GET {path} HTTP/1.1\r\n".encode() + "".join(f"{f}\r\n" for f in fields).encode()


def test_smuggled_second_authorization_header_over_the_wire(
    target: Target, issuer: TestIssuer
) -> None:
    token = issuer.token("read")
    with wire(target) as port:
        status, _, data = send(port, _request("/read", f"Authorization: Bearer {token}"))
        assert status == 200  # the positive control, through the same server
        calls = target.app.calls
        two = _request("/read", f"Authorization: Bearer {token}", "Authorization: Bearer other")
        status, headers, data = send(port, two)
    assert (status, json.loads(data)["code"]) == (400, "request.invalid")
    assert headers["www-authenticate"] == challenge(
        BAD_REQUEST, "the Bearer credentials are malformed"
    )
    assert target.app.calls == calls


def test_crlf_folded_authorization_header_over_the_wire(target: Target, issuer: TestIssuer) -> None:
    """RFC 9112 §5.2 obs-fold: a continuation line must not become a second header or a
    different token; whatever the server makes of it, it is refused."""
    token = issuer.token("read")
    folded = _request("/read", f"Authorization: Bearer {token}", " X-Injected: 1")
    with wire(target) as port:
        status, headers, data = send(port, folded)
    assert (status, json.loads(data)["code"]) == (400, "request.invalid")
    assert "\r" not in headers["www-authenticate"] and "\n" not in headers["www-authenticate"]
    assert target.app.calls == 0


def test_content_length_with_transfer_encoding_over_the_wire(target: Target, setup: Setup) -> None:
    """RFC 9112 §6.1 request smuggling: a signed route refuses a body framed both ways."""
    head = (
        b"POST /jws HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\nx-jws-signature: a..b\r\n"
    )
    with wire(target) as port:
        status, _, data = send(port, head, b"4\r\nabcd\r\n0\r\n\r\n")
    assert (status, json.loads(data)["code"]) == (400, "request.invalid")
    assert target.app.calls == 0


def test_rfc9110_s9_3_2_head_on_a_get_only_route(target: Target) -> None:
    """``/mtls`` is declared for GET only. HEAD runs the same handler in every framework,
    so it must be checked like GET."""
    resp = target.client.head("/mtls")
    assert resp.status_code == 401, f"{target.kind}: {resp.status_code}"
    assert resp.headers["WWW-Authenticate"] == challenge()
    assert target.app.calls == 0
