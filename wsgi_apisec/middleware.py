"""``SignatureMiddleware``: verify signed requests before a WSGI app runs, sign its responses.

Rules pick, per request, which profile applies (or that none does). A request that fails
verification gets the profile's error response and the app never runs. A verified request
reaches the app with the exact body that was verified and the
:class:`~wsgi_apisec.signatures.SignatureResult` in ``environ["wsgi_apisec.signature"]``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .environ import (
    DEFAULT_MAX_BODY,
    DEFAULT_SPOOL_THRESHOLD,
    ENV_SIGNATURE,
    hand_body_to_app,
    message_from_environ,
    read_body,
    route_path,
)
from .errors import APISecError, ConfigurationError, ResponseSigningError
from .keys import PrivateKey
from .message import Body, Headers, Message
from .replay import MemoryReplayStore, ReplayStore
from .resolvers import KeyResolver
from .responses import CapturedResponse, Challenge, ClosingIterable, error_response, send_body
from .signatures import Clock, RequestVerifier, ResponseSigner

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

    from .profiles import Profile

__all__ = ["Rule", "SignatureMiddleware"]

DEFAULT_MAX_RESPONSE_BODY = 64 * 1024 * 1024
_DOT_SEGMENT = re.compile(r"(?:^|/)\.{1,2}(?:/|$)")


def _glob(pattern: str) -> re.Pattern[str]:
    """``*`` and ``?`` stay inside one path segment, ``**`` crosses segments, and a trailing
    ``/**`` also matches the bare prefix (``/api/**`` covers ``/api``)."""
    out, i = [], 0
    if pattern.endswith("/**"):
        return re.compile(_glob(pattern[:-3]).pattern + "(?:/.*)?")
    while i < len(pattern):
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        char = pattern[i]
        out.append("[^/]*" if char == "*" else "[^/]" if char == "?" else re.escape(char))
        i += 1
    return re.compile("".join(out))


@dataclass(frozen=True)
class Rule:
    """Which requests a profile applies to.

    ``pattern`` is a path glob (``"/mapper/**"``, ``"/api/*/items"``) or a compiled regex;
    either must match the *whole* ``PATH_INFO`` (decoded, as the app routes on it).
    ``methods`` limits the rule to those methods (``None``: all). Give ``profile`` to verify
    with it, or ``exempt=True`` to let matching requests through unchecked.
    ``sign_response`` signs the answer when the middleware has a signing key; ``resolver``
    overrides the middleware's key resolver for this rule.
    """

    pattern: str | re.Pattern[str]
    methods: Iterable[str] | None = None
    profile: Profile | None = None
    exempt: bool = False
    sign_response: bool = True
    resolver: KeyResolver | None = None
    _regex: re.Pattern[str] = field(init=False, repr=False, compare=False)
    _methods: frozenset[str] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.exempt == (self.profile is not None):
            raise ConfigurationError("a Rule needs exactly one of profile=... or exempt=True")
        regex = self.pattern if isinstance(self.pattern, re.Pattern) else _glob(self.pattern)
        methods = None if self.methods is None else frozenset(m.upper() for m in self.methods)
        object.__setattr__(self, "_regex", regex)
        object.__setattr__(self, "_methods", methods)

    def matches(self, method: str, path: str) -> bool:
        # Frameworks upper-case the method before routing (Werkzeug does): "post" must not
        # slip past a rule written for POST.
        if self._methods is not None and method.upper() not in self._methods:
            return False
        return self._regex.fullmatch(path) is not None


@dataclass(frozen=True)
class _Route:
    profile: Profile
    verifier: RequestVerifier
    signer: ResponseSigner | None


class SignatureMiddleware:
    """Verify request signatures under per-path profiles; sign responses.

    What it trusts: the WSGI server's framing of the body, ``SSL_CLIENT_CERT`` /
    ``gunicorn.socket`` for the client certificate, and ``environ["wsgi_apisec.token"]`` --
    an access token an *outer* layer has already validated, put into
    ``message.context["token"]`` for key owners such as OCEN's ``participantId``. The key for
    a signature comes from ``resolver`` only, never from the message.

    Rules are tried in order; the first match wins. A request that matches no rule is
    verified with ``default_profile`` when one is given (fail closed: end with a catch-all
    or set a default), and is passed through unchecked otherwise. An exempt rule never
    matches a path with ``.`` or ``..`` segments.

    Request bodies are read whole before the app runs: at most ``max_body`` bytes (413
    past it), spooled to a temporary file past ``spool_threshold``. Responses to be signed
    are collected the same way, up to ``max_response_body`` (past it, or when the profile
    cannot sign the body, the client gets a 500 problem: never an unsigned response).
    ``replay_store`` defaults to a per-process :class:`MemoryReplayStore`.
    """

    def __init__(
        self,
        app: WSGIApplication,
        rules: Iterable[Rule],
        *,
        resolver: KeyResolver,
        default_profile: Profile | None = None,
        signing_key: PrivateKey | None = None,
        replay_store: ReplayStore | None = None,
        max_body: int = DEFAULT_MAX_BODY,
        spool_threshold: int = DEFAULT_SPOOL_THRESHOLD,
        max_response_body: int = DEFAULT_MAX_RESPONSE_BODY,
        challenge: Challenge | None = None,
        clock: Clock = time.time,
    ) -> None:
        self.app = app
        self.rules = list(rules)
        if not self.rules and default_profile is None:
            raise ConfigurationError("SignatureMiddleware needs rules or a default_profile")
        self.resolver = resolver
        self.signing_key = signing_key
        self.replay_store = (
            replay_store if replay_store is not None else MemoryReplayStore(clock=clock)
        )
        self.max_body = max_body
        self.spool_threshold = spool_threshold
        self.max_response_body = max_response_body
        self.challenge = challenge
        self.clock = clock
        self._routes = [self._build(r.profile, r.resolver, r.sign_response) for r in self.rules]
        self._default = self._build(default_profile, None, True) if default_profile else None

    def _build(
        self, profile: Profile | None, resolver: KeyResolver | None, sign: bool
    ) -> _Route | None:
        if profile is None:
            return None
        verifier = RequestVerifier(
            profile, resolver or self.resolver, replay_store=self.replay_store, clock=self.clock
        )
        signer = None
        if sign and self.signing_key is not None:
            signer = ResponseSigner(profile, self.signing_key, clock=self.clock)
            _check_signer(signer)
        return _Route(profile, verifier, signer)

    def _match(self, environ: WSGIEnvironment) -> _Route | None:
        """The profile setup that applies to this request, ``None`` when it passes through."""
        method = str(environ.get("REQUEST_METHOD", "GET"))
        path = route_path(environ)
        # A server, proxy or framework that resolves "." / ".." segments (RFC 3986 §5.2.4)
        # could route such a path outside the exempt prefix: never exempt it.
        dotted = _DOT_SEGMENT.search(path) is not None
        for rule, built in zip(self.rules, self._routes, strict=True):
            if rule.matches(method, path) and not (rule.exempt and dotted):
                return built
        return self._default

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        route = self._match(environ)
        if route is None:
            return self.app(environ, start_response)
        body = Body.EMPTY
        try:
            body = read_body(environ, max_bytes=self.max_body, spool_threshold=self.spool_threshold)
            request = message_from_environ(environ, body)
            environ[ENV_SIGNATURE] = route.verifier.verify(request)
        except APISecError as err:
            body.close()
            return self._reject(err, route.profile, environ, start_response)
        except BaseException:
            body.close()
            raise
        hand_body_to_app(environ, body)
        try:
            if route.signer is None:
                return ClosingIterable(self.app(environ, start_response), body.close)
            return self._signed(route, request, environ, start_response, body)
        except BaseException:
            body.close()
            raise

    def _reject(
        self,
        err: APISecError,
        profile: Profile | None,
        environ: WSGIEnvironment,
        start_response: StartResponse,
    ) -> list[bytes]:
        where = f"{environ.get('REQUEST_METHOD', '')} {route_path(environ)}"
        status, headers, payload = error_response(
            err, profile, challenge=self.challenge, where=where
        )
        start_response(status, headers)
        return [payload]

    def _signed(
        self,
        route: _Route,
        request: Message,
        environ: WSGIEnvironment,
        start_response: StartResponse,
        request_body: Body,
    ) -> Iterable[bytes]:
        """Run the app into a spool, sign exactly those bytes, then send them."""
        assert route.signer is not None
        captured = CapturedResponse(self.max_response_body, self.spool_threshold)
        try:
            response_body = captured.run(self.app, environ)
            response = Message(
                status=captured.status_code,
                headers=Headers(captured.headers),
                body=response_body,
                request=request,
            )
            try:
                added = route.signer.sign(response)
            except APISecError as exc:
                raise ResponseSigningError(
                    "the response could not be signed", detail=exc.detail
                ) from exc
        except ResponseSigningError as err:
            captured.close()
            request_body.close()
            return self._reject(err, route.profile, environ, start_response)
        except BaseException:
            captured.close()
            raise
        headers = captured.final_headers(request.method, added, len(response_body))
        try:
            start_response(captured.status, headers, captured.exc_info)
        except BaseException:
            captured.close()
            raise
        return ClosingIterable(send_body(response_body), response_body.close, request_body.close)


def _check_signer(signer: ResponseSigner) -> None:
    """Sign a dummy response once, so a profile that cannot sign fails at start-up."""
    probe = Message(status=200, body=Body(b"{}"), request=Message())
    try:
        signer.sign(probe)
    except APISecError as exc:
        raise ConfigurationError(
            f"cannot sign {signer.profile.name} responses: {exc.description}"
        ) from exc
