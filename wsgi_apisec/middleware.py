"""WSGI middlewares: ``TokenMiddleware`` checks access tokens, ``SignatureMiddleware``
verifies signed requests and signs responses, :func:`protect` stacks the two.

The same :mod:`~wsgi_apisec.rules` pick, per request, what a route needs. A request that
fails a check gets the error response and the app never runs. One that passes reaches the
app with the exact body that was checked, the :class:`~wsgi_apisec.tokens.AccessToken` in
``environ["wsgi_apisec.token"]`` (its :class:`~wsgi_apisec.binding.Binding` in
``environ["wsgi_apisec.binding"]``) and the :class:`~wsgi_apisec.signatures.SignatureResult`
in ``environ["wsgi_apisec.signature"]``.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Iterable
from functools import partial
from typing import TYPE_CHECKING, Any

from .bearer import TokenGuard, may_carry_form_token
from .certs import ClientCertSource
from .dpop import DPoPVerifier
from .environ import (
    DEFAULT_MAX_BODY,
    DEFAULT_SPOOL_THRESHOLD,
    ENV_BINDING,
    ENV_SIGNATURE,
    ENV_TOKEN,
    ENV_TOKEN_REQUIREMENT,
    EnvironRequest,
    hand_body_to_app,
    message_from_environ,
    read_body,
    route_path,
)
from .errors import APISecError, ConfigurationError, ResponseSigningError
from .keys import PrivateKey
from .message import Body
from .replay import MemoryReplayStore, ReplayStore
from .resolvers import KeyResolver
from .responses import Challenge, ClosingIterable, error_response, run_signed
from .rules import Rule, RuleSource, SignatureRoute, SignatureRoutes, TokenRequirement, match
from .signatures import Clock
from .tokens import TokenValidator

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

    from .signatures import Profile

__all__ = [
    "Rule",
    "RuleSource",
    "SignatureMiddleware",
    "TokenMiddleware",
    "TokenRequirement",
    "protect",
]

DEFAULT_MAX_RESPONSE_BODY = 64 * 1024 * 1024
#: Rules given as a list (any iterable, read once) or as a callable.
Rules = RuleSource | Iterable[Rule]


def _rule_source(rules: Rules) -> RuleSource:
    return rules if callable(rules) else tuple(rules)


def _reject(
    err: APISecError,
    environ: WSGIEnvironment,
    start_response: StartResponse,
    profile: Profile | None = None,
    challenge: Challenge | None = None,
    *,
    drain: int = 0,
) -> Iterable[bytes]:
    where = f"{environ.get('REQUEST_METHOD', '')} {route_path(environ)}"
    status, headers, payload = error_response(err, profile, challenge=challenge, where=where)
    start_response(status, headers)
    drainer = _drainer(environ, drain)
    return [payload] if drainer is None else ClosingIterable([payload], drainer)


#: Read size when discarding an unread request body.
_DRAIN_CHUNK = 64 * 1024


def _drainer(environ: WSGIEnvironment, limit: int) -> Callable[[], None] | None:
    """After a refusal, read and discard what is left of the request body (at most
    ``limit`` bytes), so the server can reuse or close the connection cleanly: a server
    that closes a socket with unread data sends a TCP reset, and a proxy still sending the
    body then answers 502 instead of our 4xx. Only a body whose end the server knows
    (``Content-Length`` up to ``limit``, or a terminated chunked stream) is read: a larger
    one is the 413 itself, and reading an unframed stream could wait forever."""
    stream = environ.get("wsgi.input")
    declared = str(environ.get("CONTENT_LENGTH") or "").strip()
    if limit <= 0 or stream is None or not hasattr(stream, "read"):
        return None
    if declared:
        if not declared.isdigit() or int(declared) > limit:
            return None
    elif not environ.get("wsgi.input_terminated"):
        return None

    def drain() -> None:
        left = limit
        try:
            while left > 0 and (chunk := stream.read(min(_DRAIN_CHUNK, left))):
                left -= len(chunk)
        except (OSError, ValueError):  # the client went away, or bad chunk framing
            pass

    return drain


class SignatureMiddleware:
    """Verify request signatures under per-path profiles; sign responses.

    What it trusts: the WSGI server's framing of the body, ``SSL_CLIENT_CERT`` /
    ``gunicorn.socket`` for the client certificate, and ``environ["wsgi_apisec.token"]`` --
    an access token an *outer* layer has already validated, put into
    ``message.context["token"]`` for key owners such as OCEN's ``participantId``. The key for
    a signature comes from ``resolver`` only, never from the message.

    Rules are tried in order; the first match wins (or a callable picks the rule). A
    request that matches no rule is verified with ``default_profile`` when one is given
    (fail closed: end with a catch-all or set a default), and is passed through unchecked
    otherwise; one whose rule has no ``profile`` (token only, or exempt) passes through. An
    exempt rule never matches a path with ``.`` or ``..`` segments.

    Request bodies are read whole before the app runs: at most ``max_body`` bytes (413
    past it), spooled to a temporary file past ``spool_threshold``. Responses to be signed
    are collected the same way, up to ``max_response_body`` (past it, or when the profile
    cannot sign the body, the client gets a 500 problem: never an unsigned response).
    ``replay_store`` defaults to a per-process :class:`MemoryReplayStore`.
    """

    def __init__(
        self,
        app: WSGIApplication,
        rules: Rules,
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
        self.rules = _rule_source(rules)
        if not self.rules and default_profile is None:
            raise ConfigurationError("SignatureMiddleware needs rules or a default_profile")
        store = replay_store if replay_store is not None else MemoryReplayStore(clock=clock)
        self.routes = SignatureRoutes(resolver, signing_key, replay_store=store, clock=clock)
        self.max_body = max_body
        self.spool_threshold = spool_threshold
        self.max_response_body = max_response_body
        self.challenge = challenge
        for rule in () if callable(self.rules) else self.rules:
            self.routes.for_rule(rule)  # built now: a profile that cannot sign fails at start-up
        self._default = self.routes.build(default_profile) if default_profile else None

    def _match(self, environ: WSGIEnvironment) -> SignatureRoute | None:
        """The profile setup that applies to this request, ``None`` when it passes through."""
        method = str(environ.get("REQUEST_METHOD", "GET"))
        rule = match(self.rules, method, route_path(environ))
        return self._default if rule is None else self.routes.for_rule(rule)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        try:
            route = self._match(environ)
        except APISecError as err:  # a callable rule source named a profile that cannot sign
            return _reject(err, environ, start_response, drain=self.max_body)
        if route is None:
            return self.app(environ, start_response)
        body = Body.EMPTY
        try:
            body = read_body(environ, max_bytes=self.max_body, spool_threshold=self.spool_threshold)
            request = message_from_environ(environ, body)
            environ[ENV_SIGNATURE] = route.verifier.verify(request)
        except APISecError as err:
            body.close()
            return _reject(
                err, environ, start_response, route.profile, self.challenge, drain=self.max_body
            )
        except BaseException:
            body.close()
            raise
        hand_body_to_app(environ, body)
        try:
            if route.signer is None:
                return ClosingIterable(self.app(environ, start_response), body.close)
            limits = (self.max_response_body, self.spool_threshold)
            sign = route.signer.sign
            return run_signed(self.app, environ, start_response, sign, request, limits, body.close)
        except ResponseSigningError as err:
            body.close()  # never an unsigned response: the client gets a 500 problem
            return _reject(
                err, environ, start_response, route.profile, self.challenge, drain=self.max_body
            )
        except BaseException:
            body.close()
            raise


class TokenMiddleware:
    """Check the access token a route's :class:`TokenRequirement` asks for, before the app.

    Per request the first matching rule (or the callable source) gives the requirement;
    ``default`` applies when no rule matches (``None``: pass through), and a rule without
    ``token`` (signature only, or exempt) passes through. The check is
    :class:`~wsgi_apisec.bearer.TokenGuard`: token from the request, ``validator``, binding
    (``cert_source``, ``dpop_verifier``, ``require_bound``), then scopes. A refused request
    gets an RFC 9457 body (or the envelope of the rule's profile) and an RFC 6750 / RFC 9449
    challenge (with ``realm`` and RFC 9728 ``resource_metadata`` when set); a key source
    that is down is 503. The app never runs.

    What it trusts: the token only once ``validator`` accepted it; the client certificate
    from ``SSL_CLIENT_CERT`` / ``gunicorn.socket``, or a proxy header only from a peer in
    ``cert_source.trusted_proxies``; and ``wsgi.url_scheme`` + ``HTTP_HOST`` for the DPoP
    ``htu`` -- behind a proxy, wrap this in ``ProxyFix(app, x_proto=1, x_host=1)`` (or the
    equivalent) first, see :mod:`wsgi_apisec.environ`. A ``wsgi_apisec.token`` set by an
    outer layer is dropped on every route this middleware checks.

    The body is only read for ``allow_form`` (RFC 6750 §2.2) on a form-encoded POST, PUT or
    PATCH: at most ``max_body`` bytes (413), then handed to the app byte for byte.
    """

    def __init__(
        self,
        app: WSGIApplication,
        rules: Rules,
        *,
        validator: TokenValidator,
        cert_source: ClientCertSource | None = None,
        dpop_verifier: DPoPVerifier | None = None,
        require_bound: bool = False,
        allow_query: bool = False,
        allow_form: bool = False,
        realm: str | None = None,
        resource_metadata: str | None = None,
        default: TokenRequirement | None = None,
        max_body: int = DEFAULT_MAX_BODY,
        spool_threshold: int = DEFAULT_SPOOL_THRESHOLD,
    ) -> None:
        self.app = app
        self.rules = _rule_source(rules)
        if not _needs(self.rules, "token", default):
            raise ConfigurationError("TokenMiddleware needs a rule with token=... or a default")
        listed = () if callable(self.rules) else self.rules
        wanted = [default, *(rule.token for rule in listed)]
        if dpop_verifier is None and any(t is not None and t.dpop for t in wanted):
            raise ConfigurationError("a rule requires DPoP: give dpop_verifier=...")
        self.guard = TokenGuard(
            validator,
            cert_source=cert_source,
            dpop_verifier=dpop_verifier,
            require_bound=require_bound,
            allow_query=allow_query,
            allow_form=allow_form,
            realm=realm,
            resource_metadata=resource_metadata,
        )
        self.default = default
        self.max_body = max_body
        self.spool_threshold = spool_threshold

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        try:
            method = str(environ.get("REQUEST_METHOD", "GET"))
            rule = match(self.rules, method, route_path(environ))
        except APISecError as err:
            return _reject(err, environ, start_response, drain=self.max_body)
        # What the route needs (None: no token check); its profile's envelope for refusals.
        requirement = self.default if rule is None else rule.token
        if requirement is None:
            return self.app(environ, start_response)
        profile = None if rule is None else rule.profile
        # Further in, "the token" is only ever one this layer has verified.
        environ.pop(ENV_TOKEN, None)
        environ.pop(ENV_BINDING, None)
        environ.pop(ENV_TOKEN_REQUIREMENT, None)
        body = None
        try:
            if self.guard.allow_form:
                body = self._form_body(environ)
            request = EnvironRequest.from_environ(environ, Body.EMPTY if body is None else body)
            found = self.guard.authorize(request, requirement)
        except BaseException as exc:
            if body is not None:
                body.close()
            if not isinstance(exc, APISecError):
                raise
            hook = partial(self.guard.challenge, requirement=requirement)
            return _reject(exc, environ, start_response, profile, hook, drain=self.max_body)
        if found is not None:
            environ[ENV_TOKEN], environ[ENV_BINDING] = found.token, found.binding
            environ[ENV_TOKEN_REQUIREMENT] = requirement
        if body is None:
            return self.app(environ, start_response)
        hand_body_to_app(environ, body)
        try:
            return ClosingIterable(self.app(environ, start_response), body.close)
        except BaseException:
            body.close()
            raise

    def _form_body(self, environ: WSGIEnvironment) -> Body | None:
        """The body, read only when it may carry the token (RFC 6750 §2.2)."""
        method = str(environ.get("REQUEST_METHOD", "GET"))
        if not may_carry_form_token(method, str(environ.get("CONTENT_TYPE") or "")):
            return None
        return read_body(environ, max_bytes=self.max_body, spool_threshold=self.spool_threshold)


def protect(
    app: WSGIApplication,
    rules: Rules,
    *,
    validator: TokenValidator | None = None,
    resolver: KeyResolver | None = None,
    **options: Any,
) -> WSGIApplication:
    """``app`` behind :class:`TokenMiddleware` (outside) and :class:`SignatureMiddleware`
    (inside), both on ``rules``; ``options`` go to the middleware that takes them.

    The token is checked first: a bad token is refused before the body is read, and a
    profile that finds the signer by a token claim (OCEN ``participantId``) reads it from the
    token this layer verified. A layer no rule needs is left out; one that is needed without
    its ``validator`` / ``resolver`` (or a callable rule source, which may need either) is a
    :class:`ConfigurationError`.
    """
    signature, token = _options(SignatureMiddleware, options), _options(TokenMiddleware, options)
    unknown = options.keys() - signature.keys() - token.keys()
    if unknown:
        raise ConfigurationError(f"protect() got unknown options: {sorted(unknown)}")
    source = _rule_source(rules)
    wrapped = app
    if _needs(source, "profile", options.get("default_profile")):
        if resolver is None:
            raise ConfigurationError("signature rules need resolver=...")
        wrapped = SignatureMiddleware(wrapped, source, resolver=resolver, **signature)
    if _needs(source, "token", options.get("default")):
        if validator is None:
            raise ConfigurationError("token rules need validator=...")
        wrapped = TokenMiddleware(wrapped, source, validator=validator, **token)
    return wrapped


def _options(middleware: type, options: dict[str, Any]) -> dict[str, Any]:
    """The ``options`` that ``middleware`` takes as keyword arguments."""
    accepted = inspect.signature(middleware).parameters
    return {name: value for name, value in options.items() if name in accepted}


def _needs(source: RuleSource, attribute: str, default: object) -> bool:
    if callable(source) or default is not None:
        return True
    return any(getattr(rule, attribute) is not None for rule in source)
