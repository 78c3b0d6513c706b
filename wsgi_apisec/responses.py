"""Render an :class:`~wsgi_apisec.errors.APISecError` as a WSGI response, and log it.

The body is the profile's own envelope when it has one (G2P Connect ``{"errors": [...]}``),
else RFC 9457 problem details. Nothing secret is ever rendered or logged: the description
is the error's safe text, and the log line carries the error's ``detail``, never a token or
signature value.

:class:`CapturedResponse` holds an app's response back (status, headers, ``exc_info`` and
every body byte, from the iterable and from ``write()``) so it can be signed before anything
is sent; :class:`ClosingIterable` makes sure every ``close()`` runs (PEP 3333).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

from . import bearer
from .encoding import json_dumps
from .environ import Spool
from .errors import APISecError, ResponseSigningError, ResponseTooLarge
from .message import Body, Headers, Message
from .problem import PROBLEM_JSON, problem_body, reason_phrase

if TYPE_CHECKING:
    from _typeshed import OptExcInfo
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

    from .signatures import Profile

__all__ = [
    "CapturedResponse",
    "Challenge",
    "ClosingIterable",
    "default_challenge",
    "error_response",
    "run_signed",
    "send_body",
]

LOG = logging.getLogger("wsgi_apisec")

#: Builds the ``WWW-Authenticate`` value for an error (``None``: no header).
Challenge = Callable[[APISecError], str | None]

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
#: Framing is ours: an error's extra headers may not change it.
_OURS = frozenset({"content-type", "content-length", "cache-control"})
_LOG_LIMIT = 300


def _clean(text: str, limit: int = _LOG_LIMIT) -> str:
    return _CONTROL.sub("?", text)[:limit]


def default_challenge(err: APISecError) -> str | None:
    """RFC 6750 §3 :func:`~wsgi_apisec.bearer.challenge` for errors that have an auth scheme
    (token errors); ``None`` (no header) for the others, such as signature errors."""
    return bearer.challenge(err) if err.scheme else None


def _extra_headers(err: APISecError) -> list[tuple[str, str]]:
    out = []
    for name, value in err.headers.items():
        if _TOKEN.match(name) and name.lower() not in _OURS:
            # Header injection: CR/LF (and other controls) never reach the wire.
            out.append((name, _CONTROL.sub("", str(value))))
    return out


def error_response(
    err: APISecError,
    profile: Profile | None = None,
    *,
    challenge: Challenge | None = None,
    where: str = "",
) -> tuple[str, list[tuple[str, str]], bytes]:
    """``(status line, headers, body)`` for ``err``, logged as one line on ``wsgi_apisec``.

    ``challenge`` overrides :func:`default_challenge` (a profile that wants a challenge for
    signature errors passes one). ``where`` (``"POST /path"``) goes into the log line.
    """
    if profile is not None and profile.envelope is not None:
        body = json_dumps(dict(profile.envelope(err)))
        content_type = "application/json"
    else:
        body = problem_body(err)
        content_type = PROBLEM_JSON
    headers = [
        ("Content-Type", content_type),
        ("Content-Length", str(len(body))),
        ("Cache-Control", "no-store"),
    ]
    value = (challenge or default_challenge)(err)
    if value:
        headers.append(("WWW-Authenticate", _CONTROL.sub("", value)))
    headers.extend(_extra_headers(err))
    _log(err, where)
    return f"{err.status} {reason_phrase(err.status)}", headers, body


def _log(err: APISecError, where: str) -> None:
    level = logging.WARNING if err.status >= 500 else logging.INFO
    LOG.log(
        level,
        "rejected %s: %d %s: %s",
        _clean(where, 200) or "-",
        err.status,
        err.code,
        _clean(err.detail),
    )


# --- holding back a response until it is signed ------------------------------------------


class CapturedResponse:
    """The app's response, held back until it is signed: status, headers, ``exc_info`` and
    the body from both the iterable and the ``write()`` callable (PEP 3333), in order."""

    def __init__(self, max_bytes: int, spool_threshold: int) -> None:
        self.spool = Spool(
            max_bytes=max_bytes,
            spool_threshold=spool_threshold,
            too_large=lambda: ResponseTooLarge(
                "the response is too large to be signed", detail=f"over {max_bytes} bytes"
            ),
        )
        self.status = ""
        self.headers: list[tuple[str, str]] = []
        self.exc_info: OptExcInfo | None = None

    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: OptExcInfo | None = None, /
    ) -> Callable[[bytes], object]:
        # PEP 3333: a second call is only allowed with exc_info. Nothing has been sent yet,
        # so the new status and headers simply replace the old ones.
        if self.status and exc_info is None:
            raise RuntimeError("start_response() was called twice without exc_info")
        self.status, self.headers, self.exc_info = status, list(headers), exc_info
        return self.write

    def write(self, data: bytes) -> None:
        if not self.status:
            raise RuntimeError("write() was called before start_response()")
        self.spool.write(data)

    def run(self, app: WSGIApplication, environ: WSGIEnvironment) -> Body:
        result = app(environ, self.start_response)
        try:
            for chunk in result:
                if chunk:
                    self.write(chunk)
        finally:
            close = getattr(result, "close", None)
            if callable(close):
                close()
        if not self.status:
            raise RuntimeError("the app returned without calling start_response()")
        return self.spool.body()

    @property
    def status_code(self) -> int:
        return int(self.status.split(" ", 1)[0])

    def final_headers(
        self, method: str, added: list[tuple[str, str]], length: int
    ) -> list[tuple[str, str]]:
        """The app's headers, our signature header(s) instead of any it set, and the exact
        ``Content-Length`` of what is sent (not for HEAD, and RFC 9110 §8.6: never on 1xx
        or 204)."""
        code = self.status_code
        fix_length = method != "HEAD" and code >= 200 and code not in (204, 304)
        drop = {name.lower() for name, _ in added}
        if fix_length:
            drop.add("content-length")
        out = [(n, v) for n, v in self.headers if n.lower() not in drop]
        if fix_length:
            out.append(("Content-Length", str(length)))
        return out + added

    def close(self) -> None:
        self.spool.close()


def run_signed(
    app: WSGIApplication,
    environ: WSGIEnvironment,
    start_response: StartResponse,
    sign: Callable[[Message], list[tuple[str, str]]],
    request: Message,
    limits: tuple[int, int],
    cleanup: Callable[[], Any],
) -> Iterable[bytes]:
    """Run ``app`` into a spool (``limits``: max bytes, spool threshold), ``sign`` exactly
    those bytes, then send them; ``cleanup`` runs when the response is closed. A response
    that cannot be signed raises :class:`ResponseSigningError` before anything is sent."""
    captured = CapturedResponse(*limits)
    try:
        response_body = captured.run(app, environ)
        response = Message(
            status=captured.status_code,
            headers=Headers(captured.headers),
            body=response_body,
            request=request,
        )
        try:
            added = sign(response)
        except APISecError as exc:
            raise ResponseSigningError(
                "the response could not be signed", detail=exc.detail
            ) from exc
        headers = captured.final_headers(request.method, added, len(response_body))
        start_response(captured.status, headers, captured.exc_info)
    except BaseException:
        captured.close()
        raise
    return ClosingIterable(send_body(response_body), response_body.close, cleanup)


def send_body(body: Body) -> Iterable[bytes]:
    if body.in_memory:
        return [body.read()] if len(body) else []
    return (bytes(chunk) for chunk in body.chunks())


class ClosingIterable:
    """An app iterable whose ``close()`` (PEP 3333) also runs our clean-ups, in order, each
    one even if an earlier one raised."""

    def __init__(self, iterable: Iterable[bytes], *cleanups: Callable[[], Any]) -> None:
        self._iterable = iterable
        close = getattr(iterable, "close", None)
        self._cleanups = ([close] if callable(close) else []) + list(cleanups)

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._iterable)

    def close(self) -> None:
        for done, cleanup in enumerate(self._cleanups):
            try:
                cleanup()
            except BaseException:
                # The rest still run; their errors chain onto this one, as ExitStack does.
                with ExitStack() as stack:
                    for rest in reversed(self._cleanups[done + 1 :]):
                        stack.callback(rest)
                    raise
