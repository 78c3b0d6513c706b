"""Request bodies: the size cap (413) on the bytes as sent, chunked or not, and
``Content-Encoding`` treated as opaque (a gzip bomb is never inflated).

Nothing in the library honours ``Content-Encoding``: signatures and digests cover the bytes
as sent (RFC 9530 §2: the digest is over the content *after* content coding), the size cap
counts those bytes, and the app gets them unchanged.
"""

from __future__ import annotations

import gzip
import json
import os
import socket

import pytest
from werkzeug.test import TestResponse

from flask_apisec.testing import TestIssuer
from tests.attacks.harness import MAX_BODY, Parties, Target, bearer, passed, refused
from tests.samples import serve
from wsgi_apisec import jws

INFLATED = 16 * 1024 * 1024
TOO_LARGE = f"the body is larger than {MAX_BODY} bytes"


@pytest.fixture(scope="module")
def bomb() -> bytes:
    """16 MiB of zeros, gzip-compressed to about 16 KiB: under the cap as sent."""
    data = gzip.compress(bytes(INFLATED), compresslevel=9)
    assert len(data) < MAX_BODY < INFLATED
    return data


def signed_post(
    target: Target, key_body: bytes, sent: bytes, parties: Parties, **headers: str
) -> TestResponse:
    headers["x-jws-signature"] = jws.sign_detached(parties.jws, key_body)
    return target.client.post("/jws", data=sent, headers=headers, content_type="application/json")


def refused_413(resp: TestResponse, target: Target) -> None:
    refused(resp, target, 413, "request.too_large", error="invalid_request", detail=TOO_LARGE)


def test_oversized_body_with_content_length(target: Target, parties: Parties) -> None:
    body = b"x" * (MAX_BODY + 1)
    refused_413(signed_post(target, body, body, parties), target)
    passed(
        signed_post(target, body[:MAX_BODY], body[:MAX_BODY], parties),
        target,
        "/jws",
        body[:MAX_BODY],
    )


def test_oversized_body_in_the_g2p_envelope(target: Target) -> None:
    resp = target.client.post("/g2p", data=b"{" * (MAX_BODY + 1), content_type="application/json")
    refused(resp, target, 413, "request.too_large", envelope="err.request.too_large")


def test_oversized_body_with_a_bad_token_is_refused_before_it_is_read(
    target: Target, parties: Parties
) -> None:
    """The token layer runs first: 401, and no 413 (the body was never read)."""
    body = b"x" * (MAX_BODY + 1)
    resp = target.client.post("/ocen", data=body, headers=bearer("not-a-jwt"))
    description = "the token is not a well-formed JWT"
    www = f'Bearer realm="api", error="invalid_token", error_description="{description}"'
    refused(resp, target, 401, "token.malformed", error="invalid_token", www_authenticate=www)


def test_oversized_chunked_body_over_the_wire(target: Target, parties: Parties) -> None:
    """No Content-Length to refuse up front: the cap holds while the chunks are read."""
    # One byte over the cap, so that next to nothing is left unread when the server answers.
    pieces = [b"x" * 4096] * (MAX_BODY // 4096) + [b"x"]
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces)
    head = (
        b"POST /jws HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        b"Transfer-Encoding: chunked\r\nContent-Type: application/json\r\n"
        + b"x-jws-signature: "
        + jws.sign_detached(parties.jws, b"x").encode()
        + b"\r\n\r\n"
    )
    with serve(lambda base_url: target.wsgi) as base_url:
        port = int(base_url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(head + chunks + b"0\r\n\r\n")
            sock.shutdown(socket.SHUT_WR)
            answer = receive_all(sock)
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line.split()[1] == b"413", answer[:300]
    doc = json.loads(rest.partition(b"\r\n\r\n")[2])
    assert (doc["code"], doc["detail"]) == ("request.too_large", TOO_LARGE)
    assert target.app.calls == 0


def receive_all(sock: socket.socket) -> bytes:
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass  # the server may reset after answering, over the bytes it left unread
    return data


def test_gzip_bomb_is_opaque_bytes(target: Target, parties: Parties, bomb: bytes) -> None:
    """Signed over the compressed bytes, a bomb under the cap passes untouched: the library
    never inflates it, and the app receives exactly what was sent."""
    resp = signed_post(target, bomb, bomb, parties, **{"Content-Encoding": "gzip"})
    passed(resp, target, "/jws", bomb)
    assert target.app.bodies == [bomb]


def test_gzip_signature_over_the_inflated_bytes_does_not_verify(
    target: Target, parties: Parties
) -> None:
    """A signer who signed the decoded content: a verifier that inflated would accept it."""
    inflated = b'{"amount":"10.00"}' * 64
    resp = signed_post(
        target, inflated, gzip.compress(inflated), parties, **{"Content-Encoding": "gzip"}
    )
    refused(
        resp,
        target,
        401,
        "signature.invalid",
        error="invalid_signature",
        detail="signature does not verify",
    )


def test_gzip_body_cap_counts_the_bytes_as_sent(target: Target, parties: Parties) -> None:
    """Incompressible content over the cap as sent is 413, whatever it would inflate to."""
    body = gzip.compress(os.urandom(MAX_BODY + 1024), compresslevel=1)
    assert len(body) > MAX_BODY
    refused_413(signed_post(target, body, body, parties, **{"Content-Encoding": "gzip"}), target)


def test_gzip_token_route_passes_the_body_through_unread(
    target: Target, issuer: TestIssuer, bomb: bytes
) -> None:
    """A route that only checks the token never touches the body at all."""
    resp = target.client.post(
        "/read", data=bomb, headers={**bearer(issuer.token("read")), "Content-Encoding": "gzip"}
    )
    passed(resp, target, "/read", bomb)
