"""Fetching key documents over HTTP(S): the :class:`Fetcher` plug point and its default,
and :func:`post_form` for endpoints that are asked with a form POST (RFC 7662 introspection).

A key source is trusted for what it serves, so the way to it is narrow: https only (plain
http for loopback or by explicit opt-in), redirects are never followed (a 3xx is an error:
following one would let whoever controls the first host name the key source), the body is
capped and the whole exchange has a deadline. Every failure is a
:class:`~wsgi_apisec.errors.KeySourceError` (503); what to do with a non-200 answer is the
caller's choice.
"""

from __future__ import annotations

import http.client
import io
import ipaddress
import os
import socket
import ssl
import time
import urllib.request
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlencode, urlsplit

from .errors import ConfigurationError, KeySourceError

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

__all__ = [
    "DocumentLimits",
    "FetchResult",
    "Fetcher",
    "UrlFetcher",
    "check_url",
    "get_document",
    "parse_max_age",
    "post_form",
]

_UNAVAILABLE = "the key source is unavailable"
_CHUNK = 64 * 1024
#: RFC 9111 §1.2.2: a delta-seconds too large to represent is taken as 2**31.
_MAX_DELTA = 2**31


@dataclass(frozen=True)
class FetchResult:
    status: int
    #: Header names in lower case; repeated fields joined with ", " (RFC 9110 §5.3).
    headers: Mapping[str, str]
    body: bytes


class Fetcher(Protocol):
    def fetch(self, url: str, *, timeout: float, max_bytes: int) -> FetchResult:
        """GET ``url``. Raises :class:`KeySourceError` on connection failure, timeout, a body
        longer than ``max_bytes`` or a redirect (3xx is never followed)."""
        ...


@dataclass(frozen=True)
class DocumentLimits:
    """Caps on one key document: total fetch time, body size and number of keys."""

    timeout: float = 5.0
    max_bytes: int = 512 * 1024
    max_keys: int = 100

    def __post_init__(self) -> None:
        if not self.timeout > 0 or self.max_bytes < 1 or self.max_keys < 1:
            raise ConfigurationError("timeout, max_bytes and max_keys must be positive")


def check_url(url: str, allow_http: bool = False) -> str:
    """``url`` if it may serve keys, else :class:`ConfigurationError` (at start-up).

    https is required; http only for a loopback host (127.0.0.0/8, ::1, ``localhost``) or
    with ``allow_http``. Credentials in the URL are refused: URLs end up in logs.
    """
    try:
        parts = urlsplit(url)
        host, _ = parts.hostname, parts.port
    except ValueError as exc:
        raise ConfigurationError(f"key source URL {url!r} is not valid") from exc
    if parts.scheme not in ("https", "http") or not host:
        raise ConfigurationError(f"key source URL {url!r} must be an https URL with a host")
    if parts.username is not None or parts.password is not None:
        raise ConfigurationError("key source URL must not carry credentials")
    if parts.scheme == "http" and not (allow_http or _is_loopback(host)):
        raise ConfigurationError(f"key source URL {url!r} must use https")
    return url


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_max_age(cache_control: str | None) -> float | None:
    """Freshness lifetime from ``Cache-Control`` (RFC 9111 §5.2.2): seconds, ``None`` if the
    header gives none, ``0`` for ``no-store`` / ``no-cache`` or an invalid or conflicting
    ``max-age`` (§4.2.1: such a response is treated as stale)."""
    if not cache_control:
        return None
    found: float | None = None
    for directive in cache_control.split(","):
        name, _, value = directive.partition("=")
        name = name.strip().lower()
        if name in ("no-store", "no-cache"):
            return 0.0
        if name != "max-age":
            continue
        value = value.strip().strip('"')
        if not (value.isascii() and value.isdigit()):
            return 0.0
        seconds = float(min(int(value[:12]), _MAX_DELTA))
        if found is not None and found != seconds:
            return 0.0
        found = seconds
    return found


def get_document(
    fetcher: Fetcher, url: str, limits: DocumentLimits, *, negative: Collection[int] = ()
) -> FetchResult:
    """Fetch a key document: a 200 result, or one with a status in ``negative`` (that the
    caller takes as an authoritative "no such thing"); anything else is a
    :class:`KeySourceError`."""
    result = fetcher.fetch(url, timeout=limits.timeout, max_bytes=limits.max_bytes)
    # The cap is checked again here so that a lax custom fetcher cannot lift it.
    if len(result.body) > limits.max_bytes:
        raise KeySourceError(_UNAVAILABLE, detail=f"GET {url}: body over {limits.max_bytes} bytes")
    if result.status != 200 and result.status not in negative:
        raise KeySourceError(_UNAVAILABLE, detail=f"GET {url}: HTTP {result.status}")
    return result


class _Deadline:
    """One deadline for the whole exchange: each socket operation may only use what is left,
    so a server that drips a byte at a time cannot hold the caller past ``timeout``."""

    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds
        self.sock: socket.socket | None = None

    def left(self) -> float:
        left = self.end - time.monotonic()
        if left <= 0:
            raise TimeoutError("deadline passed")
        return left

    def watch(self, sock: socket.socket) -> None:
        self.sock = sock
        self.arm()

    def arm(self) -> None:
        left = self.left()
        if self.sock is not None:
            self.sock.settimeout(left)


class _DeadlineReader(io.RawIOBase):
    """The connection's bytes as the response reads them: every read first gets only the
    time that is left. http.client reads the status line and the headers in a loop of its
    own, so arming the socket between our reads alone would let a server that drips its
    headers hold the caller without end."""

    def __init__(self, raw: io.RawIOBase, deadline: _Deadline) -> None:
        super().__init__()
        self._raw = raw
        self._deadline = deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer, /) -> int | None:
        self._deadline.arm()
        return self._raw.readinto(buffer)

    def close(self) -> None:
        self._raw.close()
        super().close()


class _DeadlineSocket:
    """The socket as http.client holds it: the real one, except that the response reads it
    through a :class:`_DeadlineReader`."""

    def __init__(self, sock: socket.socket, deadline: _Deadline) -> None:
        self._sock = sock
        self._deadline = deadline

    def makefile(self, mode: str = "rb", *args: Any, **kw: Any) -> io.BufferedReader:
        # The real makefile() holds a reference: the socket stays open for the body after
        # urllib closes the connection, as it does for http.client's own reader.
        raw = self._sock.makefile("rb", buffering=0)
        return io.BufferedReader(_DeadlineReader(raw, self._deadline))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class _HTTPConnection(http.client.HTTPConnection):
    def __init__(self, host: str, /, *, deadline: _Deadline | None = None, **kw: Any) -> None:
        super().__init__(host, **kw)
        self._deadline = deadline

    def connect(self) -> None:
        if self._deadline is not None:
            self.timeout = self._deadline.left()  # connecting may only use what is left
        super().connect()
        if self._deadline is not None:
            self._deadline.watch(self.sock)
            self.sock = _DeadlineSocket(self.sock, self._deadline)


class _HTTPSConnection(_HTTPConnection, http.client.HTTPSConnection):
    """The same deadline over TLS (the MRO puts the TLS ``connect`` under ours)."""


class _Handler(urllib.request.AbstractHTTPHandler):
    """http and https with the deadline; no redirect or error processor is installed, so a
    3xx comes back as a plain response and is rejected, never followed."""

    def __init__(self, deadline: _Deadline, context: ssl.SSLContext | None) -> None:
        super().__init__()
        self._deadline = deadline
        self._context = context

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(_HTTPConnection, req, deadline=self._deadline)

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(_HTTPSConnection, req, deadline=self._deadline, context=self._context)

    http_request = urllib.request.AbstractHTTPHandler.do_request_
    https_request = urllib.request.AbstractHTTPHandler.do_request_


class UrlFetcher:
    """The default :class:`Fetcher`, on :mod:`urllib.request`.

    ``ssl_context`` replaces the system trust store (a private CA, or a client certificate
    for mTLS to a registry). Environment proxies are ignored; pass ``proxies``
    (``{"https": "http://proxy:3128"}``) to use one.
    """

    def __init__(
        self,
        *,
        ssl_context: ssl.SSLContext | None = None,
        proxies: Mapping[str, str] | None = None,
        user_agent: str = "wsgi-apisec",
    ) -> None:
        self._context = ssl_context
        self._proxies = dict(proxies) if proxies else None
        self._headers = {
            "Accept": "application/jwk-set+json, application/json",
            "User-Agent": user_agent,
        }

    @classmethod
    def trusting(cls, ca_file: str | os.PathLike[str], **options: Any) -> UrlFetcher:
        """A fetcher that trusts the CA bundle ``ca_file`` *instead of* the system store (a
        private PKI); a missing or unreadable bundle is a :class:`ConfigurationError` now,
        not a failed fetch later."""
        try:
            context = ssl.create_default_context(cafile=os.fspath(ca_file))
        except (OSError, ssl.SSLError) as exc:
            raise ConfigurationError(f"ca_file {str(ca_file)!r} is no CA bundle") from exc
        return cls(ssl_context=context, **options)

    def fetch(self, url: str, *, timeout: float, max_bytes: int) -> FetchResult:
        limits = (timeout, max_bytes)
        return _exchange(url, None, self._headers, limits, self._context, self._proxies)


def post_form(
    url: str,
    data: Mapping[str, str],
    headers: Mapping[str, str] | None = None,
    *,
    timeout: float,
    max_bytes: int,
    ssl_context: ssl.SSLContext | None = None,
) -> FetchResult:
    """POST ``data`` as ``application/x-www-form-urlencoded`` under the rules of
    :class:`UrlFetcher` (one deadline, redirects never followed, the answer capped at
    ``max_bytes``, environment proxies ignored). Any status comes back; a failure to get
    one is :class:`KeySourceError`."""
    form = urlencode(dict(data)).encode("ascii")
    fields = {**(headers or {}), "Content-Type": "application/x-www-form-urlencoded"}
    return _exchange(url, form, fields, (timeout, max_bytes), ssl_context, None)


def _exchange(
    url: str,
    data: bytes | None,
    headers: Mapping[str, str],
    limits: tuple[float, int],
    context: ssl.SSLContext | None,
    proxies: Mapping[str, str] | None,
) -> FetchResult:
    """GET (``data`` None) or POST ``url``; ``limits`` is (timeout, max_bytes)."""
    timeout, max_bytes = limits
    what = f"{'GET' if data is None else 'POST'} {url}"
    deadline = _Deadline(timeout)
    opener = urllib.request.OpenerDirector()
    # Only http and https are handled; any other scheme (file:, ftp:) is an error.
    opener.add_handler(_Handler(deadline, context))
    opener.add_handler(urllib.request.UnknownHandler())
    if proxies:
        opener.add_handler(urllib.request.ProxyHandler(dict(proxies)))
    try:
        request = urllib.request.Request(url, data=data, headers=dict(headers))  # noqa: S310
        with opener.open(request, timeout=timeout) as response:
            return _read(response, max_bytes, what)
    except (OSError, http.client.HTTPException, ValueError) as exc:
        raise KeySourceError(_UNAVAILABLE, detail=f"{what}: {exc!r}") from exc


def _read(response: http.client.HTTPResponse, max_bytes: int, what: str) -> FetchResult:
    if 300 <= response.status < 400:
        where = response.headers.get("location", "")[:200]
        raise KeySourceError(
            _UNAVAILABLE, detail=f"{what}: HTTP {response.status} to {where!r} not followed"
        )
    length = response.headers.get("content-length", "")
    if length.isdigit() and int(length) > max_bytes:
        raise KeySourceError(_UNAVAILABLE, detail=f"{what}: {length} bytes > {max_bytes}")
    body = bytearray()
    while True:
        # At most max_bytes + 1 bytes are ever read: one more than allowed proves "too big".
        chunk = response.read1(min(_CHUNK, max_bytes + 1 - len(body)))
        if not chunk:
            break
        body += chunk
        if len(body) > max_bytes:
            raise KeySourceError(_UNAVAILABLE, detail=f"{what}: body over {max_bytes} bytes")
    return FetchResult(response.status, _headers(response.headers), bytes(body))


def _headers(message: http.client.HTTPMessage) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in message.items():
        key = name.lower()
        out[key] = f"{out[key]}, {value}" if key in out else value
    return out
