"""What a route requires: the signature profile and the access token, chosen per request.

Sans-IO: a :class:`Rule` is matched on the method and the decoded path (``PATH_INFO``, as the
app routes on it), never on the environ. :class:`~wsgi_apisec.middleware.TokenMiddleware` and
:class:`~wsgi_apisec.middleware.SignatureMiddleware` take the same rules and pick the same rule
for a request with :func:`match`, so one list says everything a route needs.
:class:`SignatureRoutes` builds the verifier and signer a rule's profile needs, once.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeAlias

from .errors import APISecError, ConfigurationError
from .message import Body, Message
from .signatures import Clock, RequestVerifier, ResponseSigner

if TYPE_CHECKING:
    from .keys import PrivateKey
    from .replay import ReplayStore
    from .resolvers import KeyResolver
    from .signatures import Profile

__all__ = [
    "Rule",
    "RuleSource",
    "SignatureRoute",
    "SignatureRoutes",
    "TokenRequirement",
    "match",
]

#: Distinct (profile, resolver, sign) setups kept built for a callable rule source.
MAX_ROUTES = 256

_DOT_SEGMENT = re.compile(r"(?:^|/)\.{1,2}(?:/|$)")
#: RFC 6749 §3.3: ``scope-token = 1*( %x21 / %x23-5B / %x5D-7E )``.
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")


def _scopes(value: str | Iterable[str], name: str) -> tuple[str, ...]:
    # A lone string would otherwise be read letter by letter.
    scopes = (value,) if isinstance(value, str) else tuple(value)
    for scope in scopes:
        if not isinstance(scope, str) or _SCOPE_TOKEN.fullmatch(scope) is None:
            # "a b" as one entry would never match: each scope is a separate entry.
            raise ConfigurationError(f"{name}: {scope!r} is not one RFC 6749 scope-token")
    return scopes


@dataclass(frozen=True)
class TokenRequirement:
    """The access token a route needs.

    ``scopes``: every one of these; ``any_of``: at least one of these (when non-empty).
    ``optional``: a request without credentials goes on without a token (a *bad* token is
    still refused). ``cert_bound``: the token must carry ``cnf.x5t#S256`` matching the client
    certificate (RFC 8705). ``dpop``: the token must be DPoP-bound and presented with a valid
    proof (RFC 9449).
    """

    scopes: tuple[str, ...] = ()
    any_of: tuple[str, ...] = ()
    optional: bool = False
    cert_bound: bool = False
    dpop: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "scopes", _scopes(self.scopes, "scopes"))
        object.__setattr__(self, "any_of", _scopes(self.any_of, "any_of"))


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
    """What the requests matching ``pattern`` (and ``methods``) need.

    ``pattern`` is a path glob (``"/mapper/**"``, ``"/api/*/items"``) or a compiled regex;
    either must match the *whole* decoded path. ``methods`` limits the rule to those methods
    (``None``: all; a rule for GET also covers HEAD). Give ``profile`` to verify the request
    signature with it, ``token`` to require an access token, both, or ``exempt=True`` for
    neither.
    ``sign_response`` signs the answer when the signature middleware has a signing key;
    ``resolver`` overrides its key resolver for this rule.
    """

    pattern: str | re.Pattern[str]
    methods: Iterable[str] | None = None
    profile: Profile | None = None
    exempt: bool = False
    sign_response: bool = True
    resolver: KeyResolver | None = None
    token: TokenRequirement | None = None
    _regex: re.Pattern[str] = field(init=False, repr=False, compare=False)
    _methods: frozenset[str] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        checks = self.profile is not None or self.token is not None
        if self.exempt == checks:
            raise ConfigurationError(
                "a Rule needs profile=... and/or token=..., or exempt=True (not both)"
            )
        regex = self.pattern if isinstance(self.pattern, re.Pattern) else _glob(self.pattern)
        methods = None if self.methods is None else frozenset(m.upper() for m in self.methods)
        if methods is not None and "GET" in methods:
            # RFC 9110 §9.3.2: frameworks answer HEAD with the GET handler, so a GET rule
            # must also hold for HEAD or HEAD would reach that handler unchecked.
            methods |= {"HEAD"}
        object.__setattr__(self, "_regex", regex)
        object.__setattr__(self, "_methods", methods)

    def matches(self, method: str, path: str) -> bool:
        # Frameworks upper-case the method before routing (Werkzeug does): "post" must not
        # slip past a rule written for POST.
        if self._methods is not None and method.upper() not in self._methods:
            return False
        return self._regex.fullmatch(path) is not None


#: Rules tried in order (first match wins), or a callable given ``(method, path)`` that
#: returns the rule for the request (a framework that knows its routes), ``None`` for none.
RuleSource: TypeAlias = Sequence[Rule] | Callable[[str, str], Rule | None]


def match(rules: RuleSource, method: str, path: str) -> Rule | None:
    """The rule for this request, ``None`` when none applies.

    An exempt rule never matches a path with ``.`` or ``..`` segments: a server, proxy or
    framework that resolves them (RFC 3986 §5.2.4) could route such a path outside the
    exempt prefix.
    """
    if callable(rules):
        return rules(method, path)
    dotted = _DOT_SEGMENT.search(path) is not None
    for rule in rules:
        if rule.matches(method, path) and not (rule.exempt and dotted):
            return rule
    return None


@dataclass(frozen=True)
class SignatureRoute:
    """What verifying (and signing for) one profile takes."""

    profile: Profile
    verifier: RequestVerifier
    signer: ResponseSigner | None


class SignatureRoutes:
    """The :class:`SignatureRoute` of each rule, built once per (profile, resolver, sign):
    the rule's ``resolver`` or the default one, the shared replay store and clock, and a
    signer when there is a ``signing_key`` and the rule signs responses."""

    def __init__(
        self,
        resolver: KeyResolver,
        signing_key: PrivateKey | None = None,
        *,
        replay_store: ReplayStore | None = None,
        clock: Clock = time.time,
    ) -> None:
        self.resolver = resolver
        self.signing_key = signing_key
        self.replay_store = replay_store
        self.clock = clock
        self._built: dict[tuple[int, int, bool], SignatureRoute] = {}

    def for_rule(self, rule: Rule) -> SignatureRoute | None:
        """``None`` for a rule without a profile (token only, or exempt)."""
        if rule.profile is None:
            return None
        key = (id(rule.profile), id(rule.resolver), rule.sign_response)
        route = self._built.get(key)
        if route is None:
            route = self.build(rule.profile, rule.resolver, rule.sign_response)
            if len(self._built) < MAX_ROUTES:
                self._built[key] = route  # the route holds the profile: its id stays valid
        return route

    def build(
        self, profile: Profile, resolver: KeyResolver | None = None, sign: bool = True
    ) -> SignatureRoute:
        verifier = RequestVerifier(
            profile, resolver or self.resolver, replay_store=self.replay_store, clock=self.clock
        )
        signer = None
        if sign and self.signing_key is not None:
            signer = ResponseSigner(profile, self.signing_key, clock=self.clock)
            _check_signer(signer)
        return SignatureRoute(profile, verifier, signer)


def _check_signer(signer: ResponseSigner) -> None:
    """Sign a dummy response once, so a profile that cannot sign fails at start-up."""
    probe = Message(status=200, body=Body(b"{}"), request=Message())
    try:
        signer.sign(probe)
    except APISecError as exc:
        raise ConfigurationError(
            f"cannot sign {signer.profile.name} responses: {exc.description}"
        ) from exc
