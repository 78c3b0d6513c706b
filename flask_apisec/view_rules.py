"""``ViewRules``: what each view of a Flask app needs, found with Flask's own URL map.

For each request the token and signature layers ask it for the :class:`~wsgi_apisec.rules.Rule`
of the view that will answer, and the response-signing layer for the signer of its responses;
both come from one :class:`ViewPolicy` per endpoint, built from the requirements the
decorators recorded on the view.
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from flask import Flask
from werkzeug.exceptions import HTTPException
from werkzeug.routing import RoutingException

from wsgi_apisec.errors import ConfigurationError
from wsgi_apisec.rules import Rule
from wsgi_apisec.signatures import ResponseSigner

from .decorators import (
    response_signing,
    signature_requirement,
    token_requirement,
    wrapped_without_requirements,
)

if TYPE_CHECKING:
    from .extension import APISecState

__all__ = ["MAX_CACHED_PATH", "ViewPolicy", "ViewRules"]

#: Paths longer than this are routed on every request rather than kept in the LRU.
MAX_CACHED_PATH = 512


class ViewRules:
    """The :data:`~wsgi_apisec.rules.RuleSource` of a Flask app: ``(method, path)`` ->
    the :class:`Rule` of the view Flask will dispatch to, ``None`` when Flask will answer
    404 / 405 / a redirect / an automatic ``OPTIONS`` itself, or the view needs nothing.

    Policies are built once per endpoint, and once the app has served its first request the
    answer for each ``(method, path)`` is kept in a bounded LRU (``cache_size`` entries;
    paths longer than :data:`MAX_CACHED_PATH` are routed every time), so the response-signing,
    token and signature layers asking about the same request, and later requests for the
    same resource, cost one lookup. That is sound because the answer depends on nothing else:
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
        self._cache: dict[str, ViewPolicy | None] = {}
        self._lock = threading.Lock()
        self._routing_checked = False
        self._cached = functools.lru_cache(maxsize=cache_size)(self._lookup)
        self._serving = False

    def __call__(self, method: str, path: str) -> Rule | None:
        policy = self.policy(method, path)
        return None if policy is None else policy.rule

    def signer(self, method: str, path: str) -> ResponseSigner | None:
        """The :data:`~flask_apisec.layers.SignerSource` of the response-signing layer."""
        policy = self.policy(method, path)
        return None if policy is None else policy.signer

    def policy(self, method: str, path: str) -> ViewPolicy | None:
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

    def _lookup(self, method: str, path: str) -> ViewPolicy | None:
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
        return self.for_endpoint(url_rule.endpoint)

    def for_endpoint(self, endpoint: str) -> ViewPolicy | None:
        """The policy of ``endpoint``, built on first use."""
        if endpoint in self._cache:
            return self._cache[endpoint]
        with self._lock:
            policy = self._cache[endpoint] = self.build(endpoint)
        return policy

    def check_routing(self) -> None:
        """Refuse host and subdomain routes: the rule source only sees the path."""
        if self.app.url_map.host_matching or any(
            r.subdomain or r.host for r in self.app.url_map.iter_rules()
        ):
            raise ConfigurationError("flask_apisec needs routes that match on the path alone")

    def build(self, endpoint: str) -> ViewPolicy | None:
        """The policy for ``endpoint`` from its view's recorded requirements."""
        view = self.app.view_functions.get(endpoint)
        if view is None:
            return None
        token, signature = token_requirement(view), signature_requirement(view)
        signing = response_signing(view)
        if token is None and signature is None and signing is None:
            if wrapped_without_requirements(view):
                raise ConfigurationError(
                    f"view {endpoint!r}: put @require_token / @require_signature / "
                    "@sign_response *below* @app.route, or the registered view carries none"
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
        signer = self.state.response_signer(signature, signing)
        if token is None and profile is None:
            return ViewPolicy(None, signer)
        # With a signer the outer layer signs every answer (refusals included), so the
        # signature layer must not sign it a second time.
        return ViewPolicy(
            Rule("/**", profile=profile, token=token, sign_response=not signer), signer
        )


@dataclass(frozen=True)
class ViewPolicy:
    """What one view needs: the :class:`Rule` the token and signature layers apply (``None``:
    neither), and the signer of its responses (``None``: unsigned, or signed by the signature
    layer as the response to a signed request)."""

    rule: Rule | None
    signer: ResponseSigner | None = None
