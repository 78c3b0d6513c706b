"""WSGI environ -> sans-IO :class:`~wsgi_apisec.message.Message`, and the request body in
and out of WSGI.

This module, :mod:`~wsgi_apisec.responses` and :mod:`~wsgi_apisec.middleware` are the only
ones that know about WSGI. Everything here only *reads* what the server put in the environ,
except :func:`hand_body_to_app`, which gives the app the body that was read, byte for byte.

Environ keys this library reads or writes (the contract with the layers around it):

- ``wsgi_apisec.token`` -- an :class:`~wsgi_apisec.tokens.AccessToken` that an *earlier*
  (outer) layer -- :class:`~wsgi_apisec.middleware.TokenMiddleware` -- has already
  validated; it becomes ``message.context["token"]``, which is where key owners such as
  OCEN's ``participantId`` look.
- ``wsgi_apisec.binding`` -- set with it: the :class:`~wsgi_apisec.binding.Binding` that tied
  the token to the request (certificate thumbprint, DPoP proof, or neither).
- ``wsgi_apisec.context`` -- a mapping an earlier layer wants merged into
  ``message.context`` (the keys above win over it).
- ``wsgi_apisec.signature`` -- set by the middleware: the verified
  :class:`~wsgi_apisec.signatures.SignatureResult`.
- ``wsgi_apisec.transfer_encoding`` -- the ``Transfer-Encoding`` the request came with, once
  the body has been re-framed with a ``Content-Length``.

The TLS client certificate (``context["tls_client_cert"]``, DER bytes) is taken from
``SSL_CLIENT_CERT`` (PEM, as Werkzeug's dev server sets it, and mod_wsgi when Apache exports
it with ``SSLOptions +ExportCertData``) or, when gunicorn terminates TLS itself (which sets no
such variable), from the peer certificate of ``gunicorn.socket``. Headers set by a proxy are
*not* read here: that needs a trusted-proxy configuration and belongs to the certificate
layer.

The target URI (what a DPoP proof's ``htu`` and an RFC 9421 ``@target-uri`` are compared
with) is rebuilt from ``wsgi.url_scheme``, ``HTTP_HOST`` and the request target, as the WSGI
server saw them. Behind a TLS-terminating proxy that is the proxy's hop (``http``, an internal
host): wrap the app in ``werkzeug.middleware.proxy_fix.ProxyFix(app, x_proto=1, x_host=1)``
(or the equivalent) *outside* these middlewares, so they see the URI the client used. Leave
``x_for`` at 0 there when proxy client-certificate headers are used: ``REMOTE_ADDR`` must stay
the proxy's address, which is what :class:`~wsgi_apisec.certs.ClientCertSource` trusts.
"""

from __future__ import annotations

import functools
import logging
import ssl
import tempfile
from collections.abc import Callable, Mapping
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import quote, unquote_to_bytes, urlsplit

from .errors import APISecError, BodyTooLarge, InvalidRequest
from .message import Body, Headers, Message

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

__all__ = [
    "DEFAULT_MAX_BODY",
    "DEFAULT_SPOOL_THRESHOLD",
    "ENV_BINDING",
    "ENV_CONTEXT",
    "ENV_SIGNATURE",
    "ENV_TOKEN",
    "ENV_TOKEN_REQUIREMENT",
    "ENV_TRANSFER_ENCODING",
    "EnvironHeaders",
    "EnvironRequest",
    "Spool",
    "client_cert",
    "hand_body_to_app",
    "message_from_environ",
    "read_body",
    "request_headers",
    "route_path",
    "target_uri",
]

LOG = logging.getLogger("wsgi_apisec")

ENV_TOKEN = "wsgi_apisec.token"  # noqa: S105 -- an environ key, not a secret
ENV_BINDING = "wsgi_apisec.binding"
#: The :class:`~wsgi_apisec.rules.TokenRequirement` the token layer checked ``ENV_TOKEN``
#: against (a framework's per-view check can tell its own requirement was the one applied).
ENV_TOKEN_REQUIREMENT = "wsgi_apisec.token_requirement"  # noqa: S105 -- an environ key
ENV_CONTEXT = "wsgi_apisec.context"
ENV_SIGNATURE = "wsgi_apisec.signature"
ENV_TRANSFER_ENCODING = "wsgi_apisec.transfer_encoding"

MiB = 1024 * 1024
DEFAULT_MAX_BODY = 10 * MiB
DEFAULT_SPOOL_THRESHOLD = 1 * MiB
READ_SIZE = 64 * 1024

#: RFC 3986 §3.3 ``pchar`` minus unreserved (always safe for ``quote``), plus ``/``.
_PATH_SAFE = "/:@!$&'()*+,;="
_DEFAULT_PORTS = {"http": "80", "https": "443"}


# --- the body ------------------------------------------------------------------------------


class Spool:
    """Bytes appended in order: in memory up to ``spool_threshold``, then in a temporary file,
    never more than ``max_bytes`` (``too_large()`` is raised before going past it)."""

    def __init__(
        self, *, max_bytes: int, spool_threshold: int, too_large: Callable[[], APISecError]
    ) -> None:
        self.max_bytes = max_bytes
        self.spool_threshold = spool_threshold
        self._too_large = too_large
        self._buffer = bytearray()
        self._file: IO[bytes] | None = None
        self.length = 0

    def write(self, data: bytes) -> None:
        if self.length + len(data) > self.max_bytes:
            raise self._too_large()
        self.length += len(data)
        if self._file is None and self.length > self.spool_threshold:
            self._file = tempfile.TemporaryFile()  # noqa: SIM115 -- closed by Body.close
            self._file.write(self._buffer)
            self._buffer = bytearray()
        if self._file is not None:
            self._file.write(data)
        else:
            self._buffer += data

    def body(self) -> Body:
        """The bytes written so far, as a re-readable :class:`Body` that owns the file."""
        if self._file is None:
            return Body(bytes(self._buffer)) if self.length else Body.EMPTY
        self._file.flush()
        return Body(file=self._file, length=self.length)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


def _content_length(environ: WSGIEnvironment) -> int | None:
    value = environ.get("CONTENT_LENGTH")
    # PEP 3333: CONTENT_LENGTH "may be empty or absent".
    if value is None or not str(value).strip():
        return None
    text = str(value).strip()
    # RFC 9110 §8.6: Content-Length = 1*DIGIT; a list ("10, 10") or a sign is malformed.
    if not text.isdigit() or not text.isascii():
        raise InvalidRequest("Content-Length is not a number", code="request.content_length")
    return int(text)


def _is_chunked(environ: WSGIEnvironment) -> bool:
    codings = str(environ.get("HTTP_TRANSFER_ENCODING", "")).lower()
    return "chunked" in (c.strip() for c in codings.split(","))


def read_body(
    environ: WSGIEnvironment,
    *,
    max_bytes: int = DEFAULT_MAX_BODY,
    spool_threshold: int = DEFAULT_SPOOL_THRESHOLD,
) -> Body:
    """Read the whole request body from ``wsgi.input``.

    ``Content-Length`` bytes when given; otherwise until EOF when the server frames the stream
    (``wsgi.input_terminated``, or a chunked request); otherwise there is no body. Past
    ``max_bytes`` -> :class:`BodyTooLarge` (413) without reading the rest; past
    ``spool_threshold`` the bytes go to a temporary file.
    """
    length = _content_length(environ)
    chunked = _is_chunked(environ)
    if length is not None and chunked:
        # RFC 9112 §6.1: a server MAY reject both; doing so closes the request-smuggling gap.
        raise InvalidRequest("both Content-Length and Transfer-Encoding were sent")
    if length is None and not (chunked or environ.get("wsgi.input_terminated")):
        return Body.EMPTY
    if length is not None and length > max_bytes:
        raise BodyTooLarge(f"the body is larger than {max_bytes} bytes")
    if length == 0:
        return Body.EMPTY
    spool = Spool(
        max_bytes=max_bytes,
        spool_threshold=spool_threshold,
        too_large=lambda: BodyTooLarge(f"the body is larger than {max_bytes} bytes"),
    )
    try:
        _copy(environ["wsgi.input"], spool, length)
        return spool.body()
    except BaseException:
        spool.close()
        raise


def _copy(stream: IO[bytes], spool: Spool, length: int | None) -> None:
    remaining = length
    while remaining is None or remaining > 0:
        want = READ_SIZE if remaining is None else min(READ_SIZE, remaining)
        try:
            data = stream.read(want)
        except (OSError, ValueError) as exc:
            # A client that hangs up, or bad chunk framing the server reports as OSError.
            raise InvalidRequest("the request body could not be read", detail=str(exc)) from exc
        if not data:
            break
        spool.write(data)
        if remaining is not None:
            remaining -= len(data)
    if remaining:
        raise InvalidRequest(
            "the body is shorter than its Content-Length", detail=f"{remaining} bytes missing"
        )


def hand_body_to_app(environ: WSGIEnvironment, body: Body) -> None:
    """Give the app exactly the bytes that were read (and verified).

    The body is re-framed by length: ``CONTENT_LENGTH`` is its exact size and
    ``Transfer-Encoding`` is moved to ``wsgi_apisec.transfer_encoding``, so any framework
    (Django reads ``CONTENT_LENGTH`` only; Werkzeug reads to EOF under
    ``wsgi.input_terminated``) reads the same bytes and stops at the same place.
    """
    environ["wsgi.input"] = body.stream()
    environ["CONTENT_LENGTH"] = str(len(body))
    coding = environ.pop("HTTP_TRANSFER_ENCODING", None)
    if coding is not None:
        environ[ENV_TRANSFER_ENCODING] = coding
    environ["wsgi.input_terminated"] = True


# --- the rest of the request ----------------------------------------------------------------


def _wsgi_bytes(value: str) -> bytes:
    # PEP 3333: environ strings carry the raw bytes decoded as latin-1.
    return value.encode("latin-1", "replace")


def route_path(environ: WSGIEnvironment) -> str:
    """``PATH_INFO`` as the app routes on it (decoded, UTF-8)."""
    path = str(environ.get("PATH_INFO", ""))
    if path.isascii():  # latin-1 -> UTF-8 leaves ASCII as it is
        return path or "/"
    return _wsgi_bytes(path).decode("utf-8", "replace") or "/"


def _path_query(environ: WSGIEnvironment) -> str:
    """Path and query as sent: the raw request-target when the server gives one that agrees
    with ``SCRIPT_NAME + PATH_INFO`` and ``QUERY_STRING``, else those re-quoted."""
    text = str(environ.get("SCRIPT_NAME", "")) + str(environ.get("PATH_INFO", ""))
    path = _wsgi_bytes(text)
    query = str(environ.get("QUERY_STRING", ""))
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    target = _origin_form(raw) if isinstance(raw, str) and raw else None
    if target is not None:
        raw_path, _, raw_query = target.partition("?")
        # A middleware (ProxyFix x_prefix, a dispatcher) may have moved SCRIPT_NAME: then
        # the raw target no longer names what the app serves, and the rebuilt one is used.
        # Without a "%", the raw path decodes to itself: the same text agrees.
        plain = "%" not in raw_path and raw_path == text
        if raw_query == query and (plain or unquote_to_bytes(_wsgi_bytes(raw_path)) == path):
            return target
    rebuilt = quote(path, safe=_PATH_SAFE) or "/"
    return rebuilt + (f"?{query}" if query else "")


def _origin_form(raw: str) -> str | None:
    """Path and query of a request-target as sent (RFC 9112 §3.2): origin-form as it is,
    absolute-form reduced to it; ``None`` for one that does not parse."""
    if raw.startswith("/"):
        return raw
    try:
        parts = urlsplit(raw)
    except ValueError:  # e.g. "http://[x/": a broken IPv6 literal
        return None
    return parts.path + (f"?{parts.query}" if parts.query else "")


def target_uri(environ: WSGIEnvironment) -> str:
    """The target URI, rebuilt as PEP 3333 "URL Reconstruction" does."""
    scheme = str(environ.get("wsgi.url_scheme", "http"))
    host = environ.get("HTTP_HOST")
    if not host:
        host = str(environ.get("SERVER_NAME", "localhost"))
        port = str(environ.get("SERVER_PORT", ""))
        if port and port != _DEFAULT_PORTS.get(scheme):
            host = f"{host}:{port}"
    return f"{scheme}://{_checked_host(str(host))}{_path_query(environ)}"


def _checked_host(host: str) -> str:
    """``host``, unless no URI can be built on it: RFC 9112 §3.2 says a Host field with an
    invalid value MUST get a 400. Brackets that are not an IP literal (and some non-ASCII)
    make ``urlsplit`` refuse the target URI, which every check that reads it would meet."""
    if host.isascii() and "[" not in host and "]" not in host:
        return host
    try:
        urlsplit(f"//{host}/")
    except ValueError as exc:
        raise InvalidRequest("the Host header is not valid", detail=f"Host {host[:64]!r}") from exc
    return host


def request_headers(environ: WSGIEnvironment) -> Headers:
    """``HTTP_*`` plus ``CONTENT_TYPE`` / ``CONTENT_LENGTH``, names lower-cased with ``-``.

    CGI variables cannot tell ``_`` from ``-`` in a name: ``x_a`` and ``x-a`` both arrive as
    ``x-a``. Repeated fields arrive joined by the server with ``,`` as one line.
    """
    items: list[tuple[str, str]] = []
    for key, value in environ.items():
        if key.startswith("HTTP_") and key not in ("HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"):
            items.append((key[5:].lower().replace("_", "-"), str(value)))
        elif key in ("CONTENT_TYPE", "CONTENT_LENGTH") and str(value).strip():
            items.append((key.lower().replace("_", "-"), str(value)))
    return Headers(items)


_BODY_HEADERS = {"content-type": "CONTENT_TYPE", "content-length": "CONTENT_LENGTH"}
_BODY_VARIABLES = frozenset(_BODY_HEADERS.values())


@functools.lru_cache(maxsize=256)
def _environ_key(name: str) -> str | None:
    """The environ variable of header field ``name`` in :func:`request_headers`' reading,
    ``None`` for a name that reading never produces."""
    name = name.lower()
    if name in _BODY_HEADERS:
        return _BODY_HEADERS[name]
    # request_headers() writes every "_" as "-": a name with "_" is never present.
    if "_" in name or not name.isascii():
        return None
    return "HTTP_" + name.upper().replace("-", "_")


class EnvironHeaders(Headers):
    """The fields of :func:`request_headers`, read from the environ when asked for.

    A check that needs one or two fields (``Authorization``, ``DPoP``) does not pay for
    copying every ``HTTP_*`` variable. It is a *live* view: use it only while nothing
    changes the environ (within one check, before the app runs). PEP 3333 variable names
    are upper case, which is what a name is turned into.
    """

    __slots__ = ("_all", "_environ")

    def __init__(self, environ: WSGIEnvironment) -> None:  # no super(): nothing to copy yet
        self._environ = environ
        self._all: Headers | None = None

    def get_all(self, name: str) -> list[str]:
        key = _environ_key(name)
        value = None if key is None else self._environ.get(key)
        if value is None or (key in _BODY_VARIABLES and not str(value).strip()):
            return []
        return [str(value)]

    def get(self, name: str, default: str | None = None) -> str | None:
        values = self.get_all(name)
        return values[0] if values else default

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and bool(self.get_all(name))

    def items(self) -> list[tuple[str, str]]:
        if self._all is None:
            self._all = request_headers(self._environ)
        return self._all.items()

    def __repr__(self) -> str:
        return f"EnvironHeaders({self.items()!r})"


def client_cert(environ: WSGIEnvironment) -> bytes | None:
    """The DER client certificate the TLS layer authenticated, or ``None``."""
    pem = environ.get("SSL_CLIENT_CERT")
    if isinstance(pem, str) and pem.strip():
        try:
            return ssl.PEM_cert_to_DER_cert(pem.strip())
        except ValueError:
            LOG.warning("SSL_CLIENT_CERT is not a PEM certificate; ignored")
            return None
    getpeercert = getattr(environ.get("gunicorn.socket"), "getpeercert", None)
    if callable(getpeercert):
        try:
            der = getpeercert(binary_form=True)
        except (OSError, ValueError):
            return None
        return der if isinstance(der, bytes) and der else None
    return None


def _context(environ: WSGIEnvironment) -> dict[str, Any]:
    context: dict[str, Any] = {}
    extra = environ.get(ENV_CONTEXT)
    if extra is not None and isinstance(extra, Mapping):
        context.update(extra)
    token = environ.get(ENV_TOKEN)
    if token is not None:
        context["token"] = token
    cert = client_cert(environ)
    if cert is not None:
        context["tls_client_cert"] = cert
    return context


def message_from_environ(environ: WSGIEnvironment, body: Body = Body.EMPTY) -> Message:
    """The sans-IO request: method, target URI, headers, body, peer, and what earlier layers
    established (``wsgi_apisec.context``, ``wsgi_apisec.token``, the TLS client cert)."""
    remote = environ.get("REMOTE_ADDR")
    return Message(
        method=str(environ.get("REQUEST_METHOD", "GET")),
        target_uri=target_uri(environ),
        headers=request_headers(environ),
        body=body,
        remote_addr=str(remote) if remote else None,
        context=_context(environ),
    )


class EnvironRequest(Message):
    """The request of :func:`message_from_environ`, read from the environ as it is used:
    :class:`EnvironHeaders`, and the target URI and the context on first use (then kept).

    For a check that is over before anything changes the environ: the token check, which
    for most requests needs the ``Authorization`` field and the query only. The query is
    ``QUERY_STRING``, the one the app will parse (Werkzeug's ``request.args``), which is also
    the query of the target URI for any well-formed request. Built with
    :meth:`from_environ`; any part may be assigned (``dataclasses.replace`` works).
    """

    @property
    def query(self) -> str:
        environ = self.__dict__.get("_environ")
        if environ is None or "_target_uri_set" in self.__dict__:
            return super().query  # a target URI was given: its query
        return str(environ.get("QUERY_STRING", ""))

    @classmethod
    def from_environ(cls, environ: WSGIEnvironment, body: Body = Body.EMPTY) -> EnvironRequest:
        request = cls.__new__(cls)
        remote = environ.get("REMOTE_ADDR")
        # ``status``, ``request`` and a missing ``remote_addr`` are the class defaults (None):
        # five entries fit a new dict's first table.
        fields = {
            "_environ": environ,
            "method": str(environ.get("REQUEST_METHOD", "GET")),
            "headers": EnvironHeaders(environ),
            "body": body,
        }
        if remote:
            fields["remote_addr"] = str(remote)
        request.__dict__ = fields
        return request

    @property
    def target_uri(self) -> str:
        found: str | None = self.__dict__.get("_target_uri")
        if found is None:
            found = self.__dict__["_target_uri"] = target_uri(self.__dict__["_environ"])
        return found

    @target_uri.setter
    def target_uri(self, value: str) -> None:
        self.__dict__["_target_uri"] = self.__dict__["_target_uri_set"] = value

    @property
    def context(self) -> dict[str, Any]:
        found: dict[str, Any] | None = self.__dict__.get("_context")
        if found is None:
            found = self.__dict__["_context"] = _context(self.__dict__["_environ"])
        return found

    @context.setter
    def context(self, value: dict[str, Any]) -> None:
        self.__dict__["_context"] = value
