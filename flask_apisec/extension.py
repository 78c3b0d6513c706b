"""``APISec``: the Flask extension.

``init_app`` reads the ``APISEC_*`` configuration once and wraps ``app.wsgi_app`` with the
WSGI stack of :mod:`wsgi_apisec` (response signing outside the token check outside the
signature check), fed by :class:`ViewRules`: for each request it finds, with Flask's own URL
map, the view that will answer and turns that view's recorded requirements into a
:class:`~wsgi_apisec.rules.Rule` (and the signer of its responses). So a bad token is refused
before the body is read or any view code runs, and a view without requirements costs one
URL-map lookup. An :class:`~wsgi_apisec.errors.APISecError` raised in a view is rendered as
the layers render their refusals, in the envelope of the view's signature profile.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flask import Flask, Response, current_app, request

from wsgi_apisec import bearer, profiles
from wsgi_apisec.dpop import DPoPVerifier
from wsgi_apisec.errors import APISecError, ConfigurationError
from wsgi_apisec.middleware import SignatureMiddleware, TokenMiddleware
from wsgi_apisec.resolvers import StaticKeyResolver
from wsgi_apisec.responses import error_response
from wsgi_apisec.rules import Rule, SignatureRoutes
from wsgi_apisec.signatures import Profile, ResponseSigner
from wsgi_apisec.tokens import TokenValidator

from . import metadata
from .config import Settings, load_settings
from .decorators import Decorators, ResponseSigning, SignatureRequirement
from .layers import InteractionIdLayer, ResponseSigningLayer
from .view_rules import MAX_CACHED_PATH, ViewPolicy, ViewRules

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

__all__ = [
    "MAX_CACHED_PATH",
    "APISec",
    "APISecState",
    "InteractionIdLayer",
    "ViewPolicy",
    "ViewRules",
]

LOG = logging.getLogger("flask_apisec")


@dataclass(eq=False)
class APISecState:
    """What ``init_app`` built for one app: ``app.extensions["apisec"]``."""

    settings: Settings
    validator: TokenValidator | None
    dpop_verifier: DPoPVerifier
    resource_metadata: str | None
    #: Builds (once per profile) and checks the response signers; ``None`` without a key.
    signing: SignatureRoutes | None = None
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

    def response_signer(
        self, signature: SignatureRequirement | None, signing: ResponseSigning | None
    ) -> ResponseSigner | None:
        """The signer of a view's responses: ``@sign_response``'s profile, else the view's
        ``@require_signature`` profile, else ``APISEC_SIGN_RESPONSES``'s; ``None`` when the
        view does not opt in and ``APISEC_SIGN_RESPONSES`` is off."""
        default = self.settings.response_profile
        if signing is None and default is None:
            return None
        if signing is not None and signing.profile is not None:
            profile = self.profile_for(SignatureRequirement(signing.profile))
        elif signature is not None:
            profile = self.profile_for(signature)
        elif default is not None:
            profile = default
        elif self.settings.signature_profile is not None:
            profile = self.settings.signature_profile
        else:
            raise ConfigurationError(
                "@sign_response without profile= needs APISEC_SIGN_RESPONSES or "
                "APISEC_SIGNATURE_PROFILE"
            )
        if self.signing is None:
            raise ConfigurationError("signed responses need APISEC_SIGNING_KEY")
        signer = self.signing.for_rule(Rule("/**", profile=profile))
        return signer.signer if signer is not None else None

    def challenge(self, err: APISecError) -> str | None:
        """RFC 6750 §3 / RFC 9728 §5.1 ``WWW-Authenticate`` for an error with a scheme."""
        if not err.scheme:
            return None
        return bearer.challenge(
            err, realm=self.settings.realm, resource_metadata=self.resource_metadata
        )


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
    signing = None
    if settings.signing_key is not None:
        # Only ever used to sign: a token-only view has no request signature to verify.
        resolver = settings.signature_keys or StaticKeyResolver()
        signing = SignatureRoutes(resolver, settings.signing_key)
        if settings.response_profile is not None:
            signing.build(settings.response_profile)  # a profile that cannot sign fails now
    return APISecState(settings, validator, dpop, resource_md, signing)


def _protect(app: WSGIApplication, state: APISecState) -> WSGIApplication:
    """The response-signing layer outside the token layer outside the signature layer, each
    only when configured (a view that needs a missing one is refused by :class:`ViewRules`
    or by its decorator)."""
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
    if state.signing is not None:
        wrapped = ResponseSigningLayer(wrapped, state.rules.signer)
    return wrapped


def _render_error(err: APISecError) -> Response:
    """An :class:`APISecError` raised in a view (or by a decorator's check): the same
    answer the middleware would give, in the envelope of the view's profile."""
    state = APISec.state()
    where = f"{request.method} {request.path}"
    status, headers, body = error_response(
        err, _view_profile(state), challenge=state.challenge, where=where
    )
    return current_app.response_class(body, status=int(status.split(" ", 1)[0]), headers=headers)


def _view_profile(state: APISecState) -> Profile | None:
    """The profile whose envelope the token and signature layers render this view's
    refusals in (its ``@require_signature`` profile), ``None`` for problem+json."""
    if request.endpoint is None:
        return None
    try:
        policy = state.rules.for_endpoint(request.endpoint)
    except APISecError:  # the view cannot be served: the error being rendered says why
        return None
    return policy.rule.profile if policy is not None and policy.rule is not None else None
