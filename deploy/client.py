"""A small HTTP client for the deployed stack, shared by ``tests/deploy`` and
``benchmarks/load.py``: one keep-alive ``http.client`` connection (TLS with an optional client
certificate), requests with a bearer token, and FAPI 2.0 (RFC 9421) signed requests.
"""

from __future__ import annotations

import http.client
import json
import ssl
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from wsgi_apisec.fapi2 import FAPI2
from wsgi_apisec.keys import PrivateKey
from wsgi_apisec.message import Body, Headers, Message
from wsgi_apisec.signatures import ResponseSigner

__all__ = ["Client", "Reply", "sign_request"]

HeaderList = Sequence[tuple[str, str]]


@dataclass(frozen=True)
class Reply:
    """A complete response: status, headers (names lower-cased), body."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def pid(self) -> int:
        """The gunicorn worker that answered (``X-Worker-Pid``); 0 when nginx answered."""
        return int(self.headers.get("x-worker-pid", "0"))

    @property
    def code(self) -> str | None:
        """The dotted ``code`` of a problem+json refusal."""
        if not self.headers.get("content-type", "").startswith("application/problem+json"):
            return None
        code = self.json().get("code")
        return str(code) if code is not None else None


def sign_request(
    key: PrivateKey, method: str, url: str, body: bytes, headers: HeaderList = ()
) -> list[tuple[str, str]]:
    """``headers`` plus ``Content-Digest``, ``Signature-Input`` and ``Signature``: the request
    signed as FAPI 2.0 Message Signing wants (``@method @target-uri authorization`` and the
    digest of ``body``). ``url`` is the target URI the server will rebuild."""
    message = Message(
        method=method, target_uri=url, headers=Headers(list(headers)), body=Body(body)
    )
    return [*headers, *ResponseSigner(FAPI2, key).sign(message)]


class Client:
    """One persistent connection to ``host:port`` (TLS when ``context`` is given); it
    reconnects on its own after the server closed it (``Connection: close``)."""

    def __init__(
        self,
        port: int,
        context: ssl.SSLContext | None = None,
        *,
        host: str = "127.0.0.1",
        source: str | None = None,
        timeout: float = 60.0,
    ) -> None:
        self.host, self.port = host, port
        self.scheme = "https" if context is not None else "http"
        options: dict[str, Any] = {"timeout": timeout}
        if source is not None:  # connect from this local address
            options["source_address"] = (source, 0)
        self.conn: http.client.HTTPConnection
        if context is not None:
            self.conn = http.client.HTTPSConnection(host, port, context=context, **options)
        else:
            self.conn = http.client.HTTPConnection(host, port, **options)

    def url(self, path: str) -> str:
        return f"{self.scheme}://{self.host}:{self.port}{path}"

    def request(
        self,
        method: str,
        path: str,
        body: bytes | Iterable[bytes] | None = None,
        headers: HeaderList = (),
    ) -> Reply:
        """Send one request; an iterable body goes out with ``Transfer-Encoding: chunked``."""
        chunked = body is not None and not isinstance(body, bytes)
        self.conn.request(method, path, body=body, headers=dict(headers), encode_chunked=chunked)
        response = self.conn.getresponse()
        data = response.read()
        names = {name.lower(): value for name, value in response.getheaders()}
        return Reply(response.status, names, data)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
