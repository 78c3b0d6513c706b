"""``APISec``: the Flask extension.

``init_app`` reads the ``APISEC_*`` configuration once and wraps ``app.wsgi_app`` with the
WSGI stack of :mod:`wsgi_apisec` (token check outside the signature check), fed by
:class:`ViewRules`: for each request it finds, with Flask's own URL map, the view that will
answer and turns that view's recorded requirements into a :class:`~wsgi_apisec.rules.Rule`.
So a bad token is refused before the body is read or any view code runs, and a view without
requirements costs one URL-map lookup.
"""

from __future__ import annotations

import functools
import logging
import re
import threading
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flask import Flask, Response, current_app, request
from werkzeug.exceptions import HTTPException
from werkzeug.routing import RoutingException

from wsgi_apisec import bearer, profiles
from wsgi_apisec.dpop import DPoPVerifier
from wsgi_apisec.errors import APISecError, ConfigurationError
from wsgi_apisec.middleware import SignatureMiddleware, TokenMiddleware
from wsgi_apisec.responses import error_response
from wsgi_apisec.rules import Rule
from wsgi_apisec.signatures import Profile
from wsgi_apisec.tokens import TokenValidator

from . import metadata
from .config import Settings, load_settings
from .context import ENV_INSTALLED, ENV_INTERACTION_ID
from .decorators import (
    Decorators,
    SignatureRequirement,
    signature_requirement,
    token_requirement,
    wrapped_without_requirements,
)

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = ["APISec", "APISecState", "InteractionIdLayer", "ViewRules"]

LOG = logging.getLogger("flask_apisec")

#: RFC 4122 §3 string form (FAPI 1.0 Baseline §6.2.1-11 asks for an RFC 4122 UUID).
_UUID = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")
_FAPI_HEADER = "x-fapi-interaction-id"
#: Paths longer than this are routed on every request rather than kept in the LRU.
MAX_CACHED_PATH = 512


@dataclass(eq=False)
class APISecState:
    """What ``init_app`` built for one app: ``app.extensions["apisec"]``."""

    settings: Settings
    validator: TokenValidator | None
    dpop_verifier: DPoPVerifier
    resource_metadata: str | None
    rules: ViewRules = field(init=False)

    def profile_for(self, requirement: SignatureRequirement) -> Profile:
        """The profile a ``require_signature`` means in this app."""
        if isinstance(requirement.profile, Profile):
            return requirement.profile
        if isinstance(requirement.profile, str):
            return profiles.get(requirement.profile)
        if self.settings.signature_profile is None:
            raise ConfigurationError(
                "@require_signature without profile= needs APISEC_SIGNATURE_PROFILE"
            )
        return self.settings.signature_profile

    def challenge(self, err: APISecError) -> str | None:
        """RFC 6750 §3 / RFC 9728 §5.1 ``WWW-Authenticate`` for an error with a scheme."""
        if not err.scheme:
            return None
        return bearer.challenge(
            err, realm=self.settings.realm, resource_metadata=self.resource_metadata
        )


class ViewRules:
    """The :data:`~wsgi_apisec.rules.RuleSource` of a Flask app: ``(method, path)`` ->
    the :class:`Rule` of the view Flask will dispatch to, ``None`` when Flask will answer
    404 / 405 / a redirect / an automatic ``OPTIONS`` itself, or the view needs nothing.

    Rules are built once per endpoint, and once the app has served its first request the
    answer for each ``(method, path)`` is kept in a bounded LRU (``cache_size`` entries;
    paths longer than :data:`MAX_CACHED_PATH` are routed every time), so the token and
    signature layers asking about the same request, and later requests for the same
    resource, cost one lookup. That is sound because the answer depends on nothing else:
    from then on Flask refuses new routes, and routing ignores the host (see below). While
    the app may still change its routes (before the first request, or after ``app.run``
    returns) nothing is cached, and the LRU starts empty when serving starts again. An error
    (a view that cannot be served) is never cached: every request for it fails the same way.

    Flask must route on the path alone: with host or subdomain matching the middleware could
    not know which view answers, so that is a :class:`ConfigurationError` rather than a
    request that slips past its checks.
    """

    def __init__(self, app: Flask, state: APISecState, *, cache_size: int = 1024) -> None:
        self.app = app
        self.state = state
        self._cache: dict[str, Rule | None] = {}
        self._lock = threading.Lock()
        self._routing_checked = False
        self._cached = functools.lru_cache(maxsize=cache_size)(self._lookup)
        self._serving = False

    def __call__(self, method: str, path: str) -> Rule | None:
        # Flask's own flag for "routes are final" (private; if it ever goes, nothing is
        # cached rather than something stale).
        if not getattr(self.app, "_got_first_request", False):
            self._serving = False
            return self._lookup(method, path)
        if not self._serving:
            self._cached.cache_clear()  # routes may have changed while the app was not serving
            self._serving = True
        if len(path) > MAX_CACHED_PATH:
            return self._lookup(method, path)
        return self._cached(method, path)

    def _lookup(self, method: str, path: str) -> Rule | None:
        if not self._routing_checked:
            # Once: Flask refuses new routes after its first request.
            self.check_routing()
            self._routing_checked = True
        adapter = self.app.url_map.bind("")
        try:
            url_rule, _ = adapter.match(path, method, return_rule=True)
        except (HTTPException, RoutingException):
            return None
        if method.upper() == "OPTIONS" and getattr(url_rule, "provide_automatic_options", False):
            return None  # Flask answers it without calling the view (a CORS preflight).
        endpoint = url_rule.endpoint
        if endpoint in self._cache:
            return self._cache[endpoint]
        with self._lock:
            rule = self._cache[endpoint] = self.build(endpoint)
        return rule

    def check_routing(self) -> None:
        """Refuse host and subdomain routes: the rule source only sees the path."""
        if self.app.url_map.host_matching or any(
            r.subdomain or r.host for r in self.app.url_map.iter_rules()
        ):
            raise ConfigurationError("flask_apisec needs routes that match on the path alone")

    def build(self, endpoint: str) -> Rule | None:
        """The rule for ``endpoint`` from its view's recorded requirements."""
        view = self.app.view_functions.get(endpoint)
        if view is None:
            return None
        token, signature = token_requirement(view), signature_requirement(view)
        if token is None and signature is None:
            if wrapped_without_requirements(view):
                raise ConfigurationError(
                    f"view {endpoint!r}: put @require_token / @require_signature *below* "
                    "@app.route, or the registered view carries no requirement"
                )
            return None
        if token is not None and self.state.validator is None:
            raise ConfigurationError(
                f"view {endpoint!r} requires a token: set APISEC_ISSUERS or APISEC_INTROSPECTION"
            )
        profile = self.state.profile_for(signature) if signature is not None else None
        if profile is not None and self.state.settings.signature_keys is None:
            raise ConfigurationError(
                f"view {endpoint!r} requires a signature: set APISEC_SIGNATURE_KEYS"
            )
        return Rule("/**", profile=profile, token=token)


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


class APISec(Decorators):
    """API security for a Flask app: ``APISec(app)`` or ``APISec()`` + ``init_app(app)``.

    ``overrides`` set ``APISEC_*`` keys for every app this instance is initialised on; they
    are written without the prefix, in lower case (``APISec(fapi=True)``).
    """

    def __init__(self, app: Flask | None = None, **overrides: Any) -> None:
        self.overrides = dict(overrides)
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        if "apisec" in app.extensions:
            raise ConfigurationError("flask_apisec is already initialised on this app")
        if app.url_map.host_matching:
            raise ConfigurationError("flask_apisec needs routes that match on the path alone")
        settings = load_settings(app.config, self.overrides)
        state = _build_state(settings)
        state.rules = ViewRules(app, state)
        app.extensions["apisec"] = state
        app.wsgi_app = InteractionIdLayer(  # type: ignore[method-assign]
            _protect(app.wsgi_app, state), fapi=settings.fapi
        )
        app.register_error_handler(APISecError, _render_error)
        metadata.register(app, settings)

    @staticmethod
    def state(app: Flask | None = None) -> APISecState:
        """The :class:`APISecState` of ``app`` (default: the current app)."""
        found = (app or current_app).extensions.get("apisec")
        if not isinstance(found, APISecState):
            raise ConfigurationError("flask_apisec is not initialised on this app")
        return found


def _build_state(settings: Settings) -> APISecState:
    sources: list[Any] = [*settings.issuers]
    if settings.introspection is not None:
        sources.append(settings.introspection)
    validator = TokenValidator(sources, cache=settings.token_cache) if sources else None
    dpop = DPoPVerifier(
        algorithms=settings.dpop_algorithms,
        replay_store=settings.replay_store,
        nonce=settings.dpop_nonce,
    )
    resource_md = metadata.metadata_url(settings.resource) if settings.resource else None
    return APISecState(settings, validator, dpop, resource_md)


def _protect(app: WSGIApplication, state: APISecState) -> WSGIApplication:
    """The token layer outside the signature layer, each only when configured (a view
    that needs a missing one is refused by :class:`ViewRules` or by its decorator)."""
    settings = state.settings
    wrapped = app
    if settings.signature_keys is not None:
        wrapped = SignatureMiddleware(
            wrapped,
            state.rules,
            resolver=settings.signature_keys,
            signing_key=settings.signing_key,
            replay_store=settings.replay_store,
            max_body=settings.max_body,
        )
    if state.validator is not None:
        wrapped = TokenMiddleware(
            wrapped,
            state.rules,
            validator=state.validator,
            cert_source=settings.cert_source,
            dpop_verifier=state.dpop_verifier,
            require_bound=settings.require_bound,
            allow_query=settings.allow_query,
            allow_form=settings.allow_form,
            realm=settings.realm,
            resource_metadata=state.resource_metadata,
            max_body=settings.max_body,
        )
    return wrapped


def _render_error(err: APISecError) -> Response:
    """An :class:`APISecError` raised in a view (or by a decorator's check): the same
    answer the middleware would give."""
    state = APISec.state()
    where = f"{request.method} {request.path}"
    status, headers, body = error_response(err, challenge=state.challenge, where=where)
    return current_app.response_class(body, status=int(status.split(" ", 1)[0]), headers=headers)
