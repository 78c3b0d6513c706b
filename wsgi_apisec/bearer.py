"""Bearer token transport and challenges (RFC 6750), on the sans-IO :class:`Message`.

:func:`extract_token` finds the one token a request carries (``Authorization: Bearer`` or
``DPoP``; the form body and the URI query only when enabled), :func:`challenge` builds the
``WWW-Authenticate`` value for an :class:`APISecError` (its RFC 9457 body is
:func:`~wsgi_apisec.problem.problem_body`), and :func:`require_scopes` turns a missing scope
into a 403 ``insufficient_scope``. :class:`TokenGuard` runs the whole check a route's
:class:`~wsgi_apisec.rules.TokenRequirement` asks for: transport, validation, binding, scopes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, NamedTuple
from urllib.parse import parse_qsl

from .binding import Binding, check_binding
from .certs import ClientCertSource
from .dpop import DPoPVerifier, dpop_invalid_token
from .encoding import is_b64token
from .errors import (
    APISecError,
    InsufficientScope,
    InvalidRequest,
    InvalidToken,
    MissingCredentials,
)
from .message import Message
from .problem import problem_body
from .rules import TokenRequirement
from .tokens import AccessToken, TokenValidator

__all__ = [
    "Authorized",
    "TokenGuard",
    "challenge",
    "extract_token",
    "may_carry_form_token",
    "problem_body",
    "require_scopes",
]

#: RFC 6750 §3: quoted values are restricted to %x20-21 / %x23-5B / %x5D-7E.
_UNSAFE = re.compile(r"[^\x20\x21\x23-\x5b\x5d-\x7e]")
_TOKEN_CHARS = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_SCHEMES = {"bearer": "Bearer", "dpop": "DPoP"}
#: RFC 6750 §2.2: a method whose request body has defined semantics (never GET).
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_FORM = "application/x-www-form-urlencoded"
MAX_DESCRIPTION = 200
_MAX_FIELDS = 1000
#: No tokens found in a place (shared: nothing is allocated for the common case).
_NONE: tuple[str, ...] = ()
#: ``cnf`` of an unbound token, for the checks that read it.
_NO_CNF: Mapping[str, Any] = MappingProxyType({})


def extract_token(
    message: Message, *, allow_form: bool = False, allow_query: bool = False
) -> tuple[str, str] | None:
    """``(scheme, token)`` with scheme ``"Bearer"`` or ``"DPoP"``, or None when the request
    carries no access token. An ambiguous or malformed one is :class:`InvalidRequest`.

    A query ``access_token`` is refused (400) unless ``allow_query``; a form body is only
    looked at with ``allow_form`` (otherwise it belongs to the application).
    """
    return _find_token(message, allow_form=allow_form, allow_query=allow_query)


def _find_token(
    message: Message, *, allow_form: bool, allow_query: bool, check_header: bool = True
) -> tuple[str, str] | None:
    """:func:`extract_token`; ``check_header=False`` leaves the ``b64token`` syntax of an
    ``Authorization`` credential to the caller (:class:`TokenGuard` tests it only when the
    token is refused: one that validated is made of base64url and dots)."""
    header = _from_header(message, check_header)
    form = _from_form(message) if allow_form else _NONE
    query_string = message.query
    query = _params(query_string, "URI query") if query_string else _NONE
    if query and not allow_query:
        raise InvalidRequest("access tokens are not accepted in the URI query")
    # RFC 6750 §2: clients MUST NOT use more than one method per request.
    if (header is not None) + len(form) + len(query) > 1:
        raise InvalidRequest("the request carries more than one access token")
    if header is not None:
        return header
    found = form or query
    return ("Bearer", found[0]) if found else None


def _from_header(message: Message, check: bool = True) -> tuple[str, str] | None:
    values = message.headers.get_all("Authorization")
    if not values:
        return None
    if len(values) > 1:
        raise InvalidRequest("the request has more than one Authorization header")
    scheme, _, rest = values[0].strip(" \t").partition(" ")
    canonical = _SCHEMES.get(scheme.lower())  # RFC 9110 §11.1: schemes are case-insensitive
    if canonical is None:
        return None  # another scheme (Basic, ...): not an access token
    token = rest.lstrip(" ")  # RFC 6750 §2.1: "Bearer" 1*SP b64token
    if check and not is_b64token(token):
        raise _malformed(canonical)
    return canonical, token


def _malformed(scheme: str) -> InvalidRequest:
    return InvalidRequest(f"the {scheme} credentials are malformed")


def may_carry_form_token(method: str, content_type: str | None) -> bool:
    """Whether RFC 6750 §2.2 lets this request carry its token in the body: only a
    single-part form-encoded body of a method with body semantics."""
    media_type = (content_type or "").split(";")[0].strip().lower()
    return media_type == _FORM and method.upper() in _BODY_METHODS


def _from_form(message: Message) -> Sequence[str]:
    if not may_carry_form_token(message.method, message.headers.get("Content-Type")):
        return _NONE
    raw = message.body.read()
    try:
        text = raw.decode("ascii")  # §2.2: the body contains only ASCII characters
    except UnicodeDecodeError:
        if b"access_token=" in raw:
            raise InvalidRequest("a form body carrying a token must be ASCII") from None
        return _NONE
    return _params(text, "form body")


def _params(text: str, where: str) -> list[str]:
    try:
        pairs = parse_qsl(text, keep_blank_values=True, max_num_fields=_MAX_FIELDS)
    except ValueError as exc:
        raise InvalidRequest(f"the {where} cannot be parsed") from exc
    tokens = [value for name, value in pairs if name == "access_token"]
    for token in tokens:
        if not is_b64token(token):
            raise InvalidRequest(f"the access_token in the {where} is malformed")
    return tokens


def _quote(value: str, limit: int | None = None) -> str:
    # Values outside the RFC 6750 §3 set (CR, LF, '"', '\\', non-ASCII) could break or
    # extend the header: they are dropped rather than escaped.
    clean = _UNSAFE.sub("", value)
    return '"' + (clean[:limit] if limit else clean) + '"'


def challenge(
    error: APISecError,
    *,
    realm: str | None = None,
    scope: str | None = None,
    resource_metadata: str | None = None,
    algs: str | Iterable[str] | None = None,
    scheme: str | None = None,
) -> str:
    """The ``WWW-Authenticate`` value for ``error`` (RFC 6750 §3, RFC 9449 §7.1, RFC 9728
    §5.1). :class:`MissingCredentials` gets no ``error`` (RFC 6750 §3.1). ``algs`` is
    added to a ``DPoP`` challenge only."""
    scheme = scheme or error.scheme or "Bearer"
    params: dict[str, str] = {}
    if realm is not None:
        params["realm"] = _quote(realm)
    if error.error and not isinstance(error, MissingCredentials):
        params["error"] = _quote(error.error)
        params["error_description"] = _quote(error.description, MAX_DESCRIPTION)
    extra = {k: v for k, v in error.challenge.items() if _TOKEN_CHARS.fullmatch(k)}
    if scope is not None:
        extra["scope"] = scope
    if resource_metadata is not None:
        extra["resource_metadata"] = resource_metadata
    if algs is not None and scheme == "DPoP":
        extra["algs"] = algs if isinstance(algs, str) else " ".join(algs)
    for name, value in extra.items():
        params.setdefault(name, _quote(value))
    if not params:
        return scheme
    return scheme + " " + ", ".join(f"{name}={value}" for name, value in params.items())


def require_scopes(
    token: AccessToken, *, scopes: Iterable[str] = (), any_of: Iterable[str] = ()
) -> None:
    """Every scope of ``scopes`` and, when given, at least one of ``any_of``; else
    :class:`InsufficientScope` (403) whose challenge names what the resource needs."""
    required, alternatives = tuple(scopes), tuple(any_of)
    granted = token.scopes
    if granted.issuperset(required) and (not alternatives or not granted.isdisjoint(alternatives)):
        return
    missing = [s for s in required if s not in granted]
    needed = " ".join(dict.fromkeys(required + alternatives))
    if missing:
        description = "the token lacks the scope " + " ".join(missing)
    else:
        description = "the token needs one of the scopes " + " ".join(alternatives)
    raise InsufficientScope(description, challenge={"scope": needed})


# --- a route's whole token check -----------------------------------------------------------


class Authorized(NamedTuple):
    """A request whose token passed: the token and how it was tied to the request."""

    token: AccessToken
    binding: Binding


@dataclass(frozen=True)
class TokenGuard:
    """Checks a request against a :class:`TokenRequirement`, in an order that trusts nothing
    early: transport (:func:`extract_token`), :meth:`TokenValidator.validate`, binding
    (:func:`~wsgi_apisec.binding.check_binding`), then scopes (only for a holder who proved
    possession, so a stolen bound token does not reveal what it may do).

    ``require_bound`` (FAPI): every token must be sender-constrained. ``allow_query`` /
    ``allow_form``: RFC 6750 §2.3 / §2.2 transports (default off). ``realm`` and
    ``resource_metadata`` (RFC 9728) go into every challenge.
    """

    validator: TokenValidator
    cert_source: ClientCertSource | None = None
    dpop_verifier: DPoPVerifier | None = None
    require_bound: bool = False
    allow_query: bool = False
    allow_form: bool = False
    realm: str | None = None
    resource_metadata: str | None = None

    def authorize(self, message: Message, requirement: TokenRequirement) -> Authorized | None:
        """The checked token, ``None`` for an optional route called without one; else the
        :class:`APISecError` to answer with."""
        found = _find_token(
            message, allow_form=self.allow_form, allow_query=self.allow_query, check_header=False
        )
        if found is None:
            if requirement.optional:
                return None
            raise MissingCredentials("an access token is required")
        scheme, raw = found
        try:
            try:
                token = self.validator.validate(raw, scheme=scheme)
            except InvalidToken:
                # RFC 6750 §3.1: a credential that is not a b64token is a malformed request
                # (400), not a bad token. The validator checks an opaque token's syntax
                # before introspecting it; a JWT that validates is base64url and dots.
                if not is_b64token(raw):
                    raise _malformed(scheme) from None
                raise
            self._check_confirmation(token, requirement)
            binding = check_binding(
                token,
                message,
                require_bound=self.require_bound,
                dpop_verifier=self.dpop_verifier,
                cert_source=self.cert_source,
            )
            require_scopes(token, scopes=requirement.scopes, any_of=requirement.any_of)
        except (InvalidToken, InsufficientScope) as err:
            if scheme == "DPoP":
                err.scheme = "DPoP"  # RFC 9449 §7.1: answer in the scheme the client used
            raise
        return Authorized(token, binding)

    def _check_confirmation(self, token: AccessToken, requirement: TokenRequirement) -> None:
        """What the route demands of ``cnf``, checked before any proof is spent."""
        cnf = token.cnf or _NO_CNF
        if requirement.cert_bound and "x5t#S256" not in cnf:
            # RFC 8705 §3: the route only honours certificate-bound tokens.
            raise InvalidToken(
                "the token must be bound to a client certificate", code="token.cert_required"
            )
        if requirement.dpop and "jkt" not in cnf:
            # RFC 9449 §7.1: the route only honours DPoP-bound tokens.
            raise dpop_invalid_token(
                "the token must be DPoP-bound", code="token.dpop_required", challenge=self._algs()
            )

    def _algs(self) -> dict[str, str]:
        return self.dpop_verifier.challenge() if self.dpop_verifier is not None else {}

    def challenge(self, error: APISecError, requirement: TokenRequirement) -> str | None:
        """The ``WWW-Authenticate`` value for a refusal of this route (RFC 6750 §3, RFC 9449
        §7.1); ``None`` for anything but 400/401/403 (a 5xx or a 413 is no challenge)."""
        if error.status not in (400, 401, 403):
            return None
        scheme = "DPoP" if requirement.dpop or error.scheme == "DPoP" else "Bearer"
        algs = self._algs().get("algs") if scheme == "DPoP" else None
        return challenge(
            error,
            realm=self.realm,
            resource_metadata=self.resource_metadata,
            algs=algs,
            scheme=scheme,
        )
