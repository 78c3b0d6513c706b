"""Declarative per-view requirements: ``require_token``, ``require_signature`` and
``sign_response``.

The checks themselves run in the WSGI layer, *before* Flask routes the request, so a bad
token is refused before the body is read and a profile can find the signer's key from the
verified token. A decorator only records what the view needs, as an attribute that survives
``functools.wraps`` (the extension reads it through ``app.view_functions``), and, when the
view runs, checks that the middleware really did its job. If it did not (the extension is
not installed on this app, or the decorator sits where the URL map cannot see it, such as on
a ``MethodView`` method) the request fails closed with a 500 and a log line saying why. A
decorator placed *above* ``@app.route`` never runs at all: the extension notices that the
registered view is a function a decorator wrapped, and refuses the request the same way.

All work bare (``@require_token``) and called (``@require_token(scopes=[...])``), on
``def`` and ``async def`` views.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar, overload

from flask import current_app, request

from wsgi_apisec.bearer import require_scopes
from wsgi_apisec.binding import Binding
from wsgi_apisec.environ import ENV_BINDING, ENV_SIGNATURE, ENV_TOKEN, ENV_TOKEN_REQUIREMENT
from wsgi_apisec.errors import ConfigurationError
from wsgi_apisec.rules import TokenRequirement
from wsgi_apisec.signatures import Profile, SignatureResult
from wsgi_apisec.tokens import AccessToken

from .context import ENV_INSTALLED, ENV_SIGNED_RESPONSE

__all__ = [
    "Decorators",
    "ResponseSigning",
    "SignatureRequirement",
    "require_signature",
    "require_token",
    "response_signing",
    "sign_response",
    "signature_requirement",
    "token_requirement",
    "wrapped_without_requirements",
]

F = TypeVar("F", bound=Callable[..., Any])

_BEARER_ATTR = "__apisec_token__"
_SIGNATURE_ATTR = "__apisec_signature__"
_RESPONSE_ATTR = "__apisec_response__"
#: Marks a function one of our decorators wrapped; registered as a view, it lost its checks.
_WRAPPED_ATTR = "__apisec_wrapped__"
_NOT_SET_UP = "the API security checks for this resource are not set up"


@dataclass(frozen=True)
class SignatureRequirement:
    """The view needs a verified request signature; ``profile`` ``None`` means the app's
    ``APISEC_SIGNATURE_PROFILE``."""

    profile: Profile | str | None = None


@dataclass(frozen=True)
class ResponseSigning:
    """The view's responses are signed, its errors included; ``profile`` ``None`` means the
    view's ``@require_signature`` profile, else the one of ``APISEC_SIGN_RESPONSES``, else
    ``APISEC_SIGNATURE_PROFILE``."""

    profile: Profile | str | None = None


def token_requirement(view: Callable[..., Any]) -> TokenRequirement | None:
    found = getattr(view, _BEARER_ATTR, None)
    return found if isinstance(found, TokenRequirement) else None


def signature_requirement(view: Callable[..., Any]) -> SignatureRequirement | None:
    found = getattr(view, _SIGNATURE_ATTR, None)
    return found if isinstance(found, SignatureRequirement) else None


def response_signing(view: Callable[..., Any]) -> ResponseSigning | None:
    found = getattr(view, _RESPONSE_ATTR, None)
    return found if isinstance(found, ResponseSigning) else None


def wrapped_without_requirements(view: Callable[..., Any]) -> bool:
    """True when ``view`` is a function one of the decorators wrapped, registered *as is*:
    the decorator was placed above ``@app.route`` and its requirement was never seen."""
    return bool(view.__dict__.get(_WRAPPED_ATTR)) if hasattr(view, "__dict__") else False


def _not_installed(detail: str) -> ConfigurationError:
    return ConfigurationError(_NOT_SET_UP, detail=detail, code="config.not_installed")


def _where() -> str:
    return f"{request.method} {request.path} (endpoint {request.endpoint!r})"


def _environ() -> dict[str, Any]:
    """The request's environ, through one lookup of Werkzeug's ``LocalProxy`` (an attribute
    read through the proxy costs several times more; the proxy is typed as the Request)."""
    environ: dict[str, Any] = request._get_current_object().environ  # type: ignore[attr-defined]
    return environ


def _check_token(requirement: TokenRequirement) -> None:
    environ = _environ()
    if not environ.get(ENV_INSTALLED):
        raise _not_installed(f"{_where()}: flask_apisec is not installed on this app")
    token = environ.get(ENV_TOKEN)
    if environ.get(ENV_TOKEN_REQUIREMENT) is requirement and isinstance(token, AccessToken):
        return  # the token layer checked this very requirement (the common case)
    if token is None and requirement.optional:
        return
    if not isinstance(token, AccessToken):
        _explain()
        raise _not_installed(
            f"{_where()}: the token middleware did not run for this view; decorate the "
            "function registered with the URL map (MethodView: list it in `decorators`)"
        )
    # Defence in depth: the middleware checked these already, with the same function.
    require_scopes(token, scopes=requirement.scopes, any_of=requirement.any_of)
    if requirement.cert_bound or requirement.dpop:
        binding = environ.get(ENV_BINDING)
        cert = isinstance(binding, Binding) and binding.x5t_s256 is not None
        dpop = isinstance(binding, Binding) and binding.dpop is not None
        if (requirement.cert_bound and not cert) or (requirement.dpop and not dpop):
            raise _not_installed(f"{_where()}: the token binding was not checked")


def _explain() -> None:
    """When no middleware ran for this view, raise the reason the rule source gives (no
    issuers configured, no signature keys, ...) rather than a generic one."""
    state = current_app.extensions.get("apisec")
    if state is not None and request.endpoint is not None:
        state.rules.check_routing()
        state.rules.build(request.endpoint)


def _check_signature(requirement: SignatureRequirement) -> None:
    environ = _environ()
    state = current_app.extensions.get("apisec")
    result = environ.get(ENV_SIGNATURE)
    if not environ.get(ENV_INSTALLED) or state is None:
        raise _not_installed(f"{_where()}: flask_apisec is not installed on this app")
    expected = state.profile_for(requirement)
    if not isinstance(result, SignatureResult) or result.profile != expected.name:
        _explain()
        raise _not_installed(
            f"{_where()}: no verified {expected.name} signature; decorate the function "
            "registered with the URL map (MethodView: list it in `decorators`)"
        )


def _check_response_signing() -> None:
    environ = _environ()
    if not environ.get(ENV_INSTALLED):
        raise _not_installed(f"{_where()}: flask_apisec is not installed on this app")
    if not environ.get(ENV_SIGNED_RESPONSE):
        _explain()
        raise _not_installed(
            f"{_where()}: the response would not be signed; decorate the function "
            "registered with the URL map (MethodView: list it in `decorators`)"
        )


def _wrap(view: F, check: Callable[[], None], attr: str, requirement: object) -> F:
    if not callable(view):
        raise ConfigurationError(f"decorate a view function, not {view!r}")
    if getattr(view, attr, None) is not None:
        raise ConfigurationError(f"{view.__name__}: the same requirement is applied twice")
    if inspect.iscoroutinefunction(view):
        # Flask runs a coroutine function through ensure_sync; the wrapper must stay one.
        @functools.wraps(view)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            check()
            return await view(*args, **kwargs)

        wrapper: Callable[..., Any] = async_wrapper
    else:

        @functools.wraps(view)
        def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
            check()
            return view(*args, **kwargs)

        wrapper = sync_wrapper
    wrapper.__dict__.pop(_WRAPPED_ATTR, None)
    setattr(wrapper, attr, requirement)
    if hasattr(view, "__dict__"):
        view.__dict__[_WRAPPED_ATTR] = True
    return wrapper  # type: ignore[return-value]


class Decorators:
    """The decorators, as (static) methods of the extension: ``@apisec.require_token``."""

    @overload
    @staticmethod
    def require_token(view: F, /) -> F: ...
    @overload
    @staticmethod
    def require_token(
        *,
        scopes: str | Iterable[str] = (),
        any_of: str | Iterable[str] = (),
        optional: bool = False,
        cert_bound: bool = False,
        dpop: bool = False,
    ) -> Callable[[F], F]: ...
    @staticmethod
    def require_token(
        view: F | None = None,
        /,
        *,
        scopes: str | Iterable[str] = (),
        any_of: str | Iterable[str] = (),
        optional: bool = False,
        cert_bound: bool = False,
        dpop: bool = False,
    ) -> F | Callable[[F], F]:
        """The view needs a valid access token (RFC 6750): every scope of ``scopes`` and,
        when given, one of ``any_of`` (403 ``insufficient_scope`` otherwise). ``optional``:
        a request without a token gets through with ``current_token`` ``None`` (a bad token
        is still 401). ``cert_bound``: the token must be bound to the client certificate
        (RFC 8705); ``dpop``: to a DPoP key, with a valid proof (RFC 9449)."""
        if view is not None and not callable(view):
            raise ConfigurationError("require_token takes keyword arguments: scopes=[...]")
        requirement = TokenRequirement(
            scopes=_as_tuple(scopes),
            any_of=_as_tuple(any_of),
            optional=optional,
            cert_bound=cert_bound,
            dpop=dpop,
        )

        def decorate(fn: F) -> F:
            check = functools.partial(_check_token, requirement)
            return _wrap(fn, check, _BEARER_ATTR, requirement)

        return decorate(view) if view is not None else decorate

    @overload
    @staticmethod
    def require_signature(view: F, /) -> F: ...
    @overload
    @staticmethod
    def require_signature(*, profile: Profile | str | None = None) -> Callable[[F], F]: ...
    @staticmethod
    def require_signature(
        view: F | None = None, /, *, profile: Profile | str | None = None
    ) -> F | Callable[[F], F]:
        """The request must carry a valid signature under ``profile`` (a name or a
        :class:`~wsgi_apisec.profiles.Profile`; default ``APISEC_SIGNATURE_PROFILE``). The
        response is signed too when ``APISEC_SIGNING_KEY`` is set."""
        if view is not None and not callable(view):
            raise ConfigurationError("require_signature takes keyword arguments: profile=...")
        if profile is not None and not isinstance(profile, Profile | str):
            raise ConfigurationError(f"profile must be a Profile or a name, not {profile!r}")
        requirement = SignatureRequirement(profile)

        def decorate(fn: F) -> F:
            check = functools.partial(_check_signature, requirement)
            return _wrap(fn, check, _SIGNATURE_ATTR, requirement)

        return decorate(view) if view is not None else decorate

    @overload
    @staticmethod
    def sign_response(view: F, /) -> F: ...
    @overload
    @staticmethod
    def sign_response(*, profile: Profile | str | None = None) -> Callable[[F], F]: ...
    @staticmethod
    def sign_response(
        view: F | None = None, /, *, profile: Profile | str | None = None
    ) -> F | Callable[[F], F]:
        """Sign every response of the view with ``APISEC_SIGNING_KEY`` under ``profile`` (a
        name or a :class:`~wsgi_apisec.profiles.Profile`; default: see
        :class:`ResponseSigning`): its answer, the errors raised in it and the refusals of the
        token and signature checks. The request need not be signed."""
        if view is not None and not callable(view):
            raise ConfigurationError("sign_response takes keyword arguments: profile=...")
        if profile is not None and not isinstance(profile, Profile | str):
            raise ConfigurationError(f"profile must be a Profile or a name, not {profile!r}")
        requirement = ResponseSigning(profile)

        def decorate(fn: F) -> F:
            return _wrap(fn, _check_response_signing, _RESPONSE_ATTR, requirement)

        return decorate(view) if view is not None else decorate


#: ``@require_token`` / ``@require_token(scopes=[...])``: the same as ``apisec.require_token``.
require_token = Decorators.require_token
#: ``@require_signature`` / ``@require_signature(profile=...)``.
require_signature = Decorators.require_signature
#: ``@sign_response`` / ``@sign_response(profile=...)``.
sign_response = Decorators.sign_response


def _as_tuple(value: str | Iterable[str]) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(value)
