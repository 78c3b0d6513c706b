"""The WSGI layers the extension puts around the :mod:`wsgi_apisec` middlewares.

:class:`InteractionIdLayer` is the outermost one (FAPI ``x-fapi-interaction-id``).
:class:`ResponseSigningLayer` sits just inside it, outside the token and signature layers,
and signs every response of the views that opt in (``APISEC_SIGN_RESPONSES``,
``@sign_response``): the view's answer, the errors raised in the view, and the refusals of
the layers inside it. It holds each response back, signs exactly its bytes and only then
sends them, with :func:`wsgi_apisec.responses.run_signed`, as
:class:`~wsgi_apisec.middleware.SignatureMiddleware` does for signed requests.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from wsgi_apisec.environ import (
    DEFAULT_SPOOL_THRESHOLD,
    ENV_SIGNATURE,
    message_from_environ,
    route_path,
)
from wsgi_apisec.errors import APISecError, ResponseSigningError
from wsgi_apisec.fapi2 import CONTEXT_LABEL
from wsgi_apisec.message import Message
from wsgi_apisec.middleware import DEFAULT_MAX_RESPONSE_BODY
from wsgi_apisec.responses import error_response, run_signed
from wsgi_apisec.signatures import ResponseSigner, SignatureResult

from .context import ENV_INSTALLED, ENV_INTERACTION_ID, ENV_SIGNED_RESPONSE

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = ["InteractionIdLayer", "ResponseSigningLayer", "SignerSource"]

#: RFC 4122 §3 string form (FAPI 1.0 Baseline §6.2.1-11 asks for an RFC 4122 UUID).
_UUID = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")
_FAPI_HEADER = "x-fapi-interaction-id"

#: ``(method, path)`` -> the signer of that route's responses, ``None`` for unsigned ones.
SignerSource = Callable[[str, str], ResponseSigner | None]


class InteractionIdLayer:
    """The outermost layer: marks the environ as seen by the extension and, under FAPI,
    puts ``x-fapi-interaction-id`` on every response, the middleware's errors included.

    FAPI 1.0 Baseline §6.2.1-11: the response carries the request's interaction id, or a
    fresh RFC 4122 UUID when the request had none; a value that is not a UUID is replaced
    too, so nothing a client sends is reflected unchecked.
    """

    def __init__(self, app: WSGIApplication, *, fapi: bool) -> None:
        self.app = app
        self.fapi = fapi

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        environ[ENV_INSTALLED] = True
        if not self.fapi:
            return self.app(environ, start_response)
        sent = str(environ.get("HTTP_X_FAPI_INTERACTION_ID", "")).strip()
        value = sent if _UUID.fullmatch(sent) else str(uuid.uuid4())
        environ[ENV_INTERACTION_ID] = value

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            kept = [(n, v) for n, v in headers if n.lower() != _FAPI_HEADER]
            return start_response(status, [*kept, (_FAPI_HEADER, value)], exc_info)

        return self.app(environ, start)


class ResponseSigningLayer:
    """Sign every response of a route ``signers`` names a signer for, errors included.

    What it signs is what is sent: the whole response is collected (spooled to a temporary
    file past ``spool_threshold``, at most ``max_response_body`` bytes) and signed, and only
    then are the status, headers and those bytes passed on, with the exact
    ``Content-Length``. A response that cannot be signed (too large, a profile that cannot
    sign it) becomes a 500 problem, never an unsigned answer. The request the signature
    links to (RFC 9421 ``;req``) is the request as this layer received it; when the
    signature layer inside verified a request signature, the response links to that one.
    Routes without a signer pass through untouched.
    """

    def __init__(
        self,
        app: WSGIApplication,
        signers: SignerSource,
        *,
        max_response_body: int = DEFAULT_MAX_RESPONSE_BODY,
        spool_threshold: int = DEFAULT_SPOOL_THRESHOLD,
    ) -> None:
        self.app = app
        self.signers = signers
        self.limits = (max_response_body, spool_threshold)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        try:
            signer = self.signers(str(environ.get("REQUEST_METHOD", "GET")), route_path(environ))
        except APISecError as err:  # the view cannot be served as configured
            return _refuse(err, environ, start_response)
        if signer is None:
            return self.app(environ, start_response)
        environ[ENV_SIGNED_RESPONSE] = signer.profile.name
        # Taken now: the layers inside re-frame the body (CONTENT_LENGTH, Transfer-Encoding).
        request = message_from_environ(environ)

        def sign(response: Message) -> list[tuple[str, str]]:
            _link_verified_signature(request, environ)
            return signer.sign(response)

        try:
            limits, nothing = self.limits, lambda: None  # the spool closes with its body
            return run_signed(self.app, environ, start_response, sign, request, limits, nothing)
        except ResponseSigningError as err:
            return _refuse(err, environ, start_response)


def _link_verified_signature(request: Message, environ: WSGIEnvironment) -> None:
    """RFC 9421 §2.4: a response covers the request's signature by its label; name the one
    the signature layer verified rather than guess among several."""
    result = environ.get(ENV_SIGNATURE)
    if isinstance(result, SignatureResult) and result.label is not None:
        request.context[CONTEXT_LABEL] = result.label


def _refuse(
    err: APISecError, environ: WSGIEnvironment, start_response: StartResponse
) -> list[bytes]:
    where = f"{environ.get('REQUEST_METHOD', '')} {route_path(environ)}"
    status, headers, body = error_response(err, where=where)
    start_response(status, headers)
    return [body]
