"""Bearer access tokens: JWT access tokens (RFC 9068) checked against configured issuers,
opaque ones handed to RFC 7662 introspection, and what a validated token looks like.

A token is checked in a fixed order so that nothing the sender controls is trusted before
the signature is: size, compact-JWS shape, the *unverified* ``iss`` only to pick a configured
:class:`Issuer` (no key is fetched for an unknown one), header policy, key from that issuer's
resolver, signature, then claims. Binding checks (mTLS, DPoP) are separate functions that take
the :class:`AccessToken` this module returns.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Protocol, runtime_checkable

from . import jws
from .algorithms import JOSE_ALGORITHMS, SYMMETRIC, get_algorithm
from .claims import ExpiringLRU, TimeWindow, audience_of, scopes_of, string_claim
from .encoding import b64url_decode, is_b64token, json_object
from .errors import (
    APISecError,
    ConfigurationError,
    InvalidToken,
    KeySourceError,
    ParseError,
    SignatureError,
)
from .keys import KeySet
from .resolvers import KeyQuery, KeyResolver, StaticKeyResolver

DEFAULT_ALGORITHMS = ("PS256", "ES256", "EdDSA", "RS256")
#: RFC 9068 §4: the ``typ`` header values of a JWT access token.
AT_JWT_TYPES = ("at+jwt", "application/at+jwt")
#: RFC 9068 §2.2: claims every JWT access token carries.
RFC9068_CLAIMS = ("iss", "exp", "aud", "sub", "client_id", "iat", "jti")
#: Keys tried for a token without ``kid``; bounds the work a forged token can cause.
MAX_KEY_TRIES = 4
#: Key ids we pass to a resolver: visible, path-free characters only.
_KID = re.compile(r"[A-Za-z0-9._~+/=:@#-]{1,256}")
#: Headers of verified tokens kept per validator (see ``TokenValidator._known``).
MAX_KNOWN_HEADERS = 64
#: Keycloak's own ``typ`` *claim* on access tokens; ``ID`` / ``Refresh`` are refused.
_ACCESS_TYP_CLAIMS = frozenset({"bearer", "dpop", "at+jwt"})


@dataclass(frozen=True)
class AccessToken:
    """A token that passed validation. ``claims`` are the JWT claims or the RFC 7662
    introspection response; the other fields are normalised views of them."""

    raw: str = field(repr=False)
    claims: Mapping[str, Any]
    issuer: str | None
    subject: str | None
    client_id: str | None
    scopes: frozenset[str]
    audience: tuple[str, ...] = ()
    expires_at: int | None = None
    #: RFC 7800 / RFC 8705 / RFC 9449 confirmation: ``{"x5t#S256": ...}`` or ``{"jkt": ...}``.
    cnf: Mapping[str, Any] | None = None
    #: ``"Bearer"`` or ``"DPoP"``: the scheme the token was presented with.
    scheme: str = "Bearer"

    @classmethod
    def built(cls, fields: dict[str, Any]) -> AccessToken:
        """An instance whose ``__dict__`` is ``fields``, which must name *every* field: no
        per-field ``object.__setattr__`` of a frozen dataclass's ``__init__`` (a tenth of
        the claim checks' cost, once per token). For validators that have already checked
        each value; everyone else calls the class."""
        token = object.__new__(cls)
        object.__setattr__(token, "__dict__", fields)
        return token

    def has_scope(self, *scopes: str) -> bool:
        """True when the token carries every scope named."""
        return all(s in self.scopes for s in scopes)

    def has_any_scope(self, scopes: Iterable[str]) -> bool:
        return any(s in self.scopes for s in scopes)

    @property
    def bound(self) -> bool:
        return bool(self.cnf) and ("x5t#S256" in (self.cnf or {}) or "jkt" in (self.cnf or {}))

    @property
    def jti(self) -> str | None:
        value = self.claims.get("jti")
        return value if isinstance(value, str) else None


# --- issuers --------------------------------------------------------------------------------


def _media_type(typ: str) -> str:
    # RFC 7515 §4.1.9: compared case-insensitively; "application/" may be omitted.
    typ = typ.lower()
    return typ[len("application/") :] if typ.startswith("application/") else typ


@dataclass(frozen=True, eq=False)
class Issuer:
    """One trusted token issuer. ``issuer`` is matched byte for byte against ``iss``.

    Give exactly one key source: ``jwks_uri`` (a :class:`~wsgi_apisec.jwks.JWKSResolver`
    built with ``jwks_options``), inline ``jwks``, or any ``resolver``.
    """

    issuer: str
    jwks_uri: str | None = None
    jwks: Mapping[str, Any] | KeySet | None = field(default=None, repr=False)
    resolver: KeyResolver | None = field(default=None, repr=False)
    audience: str | Sequence[str] | None = None
    algorithms: Sequence[str] = DEFAULT_ALGORITHMS
    typ: Sequence[str] = AT_JWT_TYPES
    #: Also accept ``typ: JWT`` and no ``typ`` (Keycloak, OCEN); a per-issuer choice.
    allow_jwt_typ: bool = False
    required_claims: Sequence[str] = RFC9068_CLAIMS
    leeway: float = 30.0
    max_age: float | None = None
    #: Read ``scp`` when ``scope`` is absent (Okta, Azure AD).
    accept_scp: bool = False
    jwks_options: Mapping[str, Any] = field(default_factory=dict, repr=False)
    key_resolver: KeyResolver = field(init=False, repr=False)
    policy: jws.JWSPolicy = field(init=False, repr=False)
    audiences: tuple[str, ...] = field(init=False, repr=False)
    audience_set: frozenset[str] = field(init=False, repr=False)
    types: frozenset[str] = field(init=False, repr=False)
    #: ``exp`` and ``required_claims``, as one set to test a token's claims against.
    claim_names: frozenset[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.issuer, str) or not self.issuer:
            raise ConfigurationError("an Issuer needs its exact 'iss' value")
        for name in ("algorithms", "typ", "required_claims"):
            value = getattr(self, name)  # a lone string would be read letter by letter
            object.__setattr__(self, name, (value,) if isinstance(value, str) else tuple(value))
        algs = frozenset(self.algorithms)
        if not algs or not algs <= JOSE_ALGORITHMS:
            bad = ", ".join(sorted(algs - JOSE_ALGORITHMS)) or "none"
            raise ConfigurationError(f"issuer algorithms not supported: {bad}")
        audiences = (
            (self.audience,) if isinstance(self.audience, str) else tuple(self.audience or ())
        )
        # RFC 9068 §4: the resource server MUST check that aud names it; when aud is
        # required, running without a configured audience would accept anyone's tokens.
        if "aud" in self.required_claims and not audiences:
            raise ConfigurationError(f"issuer {self.issuer}: configure the expected audience")
        if self.leeway < 0 or (self.max_age is not None and self.max_age <= 0):
            raise ConfigurationError("leeway must be >= 0 and max_age > 0")
        types = {_media_type(t) for t in self.typ} | ({"jwt"} if self.allow_jwt_typ else set())
        # A JWT access token never needs crit or RFC 7797 unencoded payloads.
        policy = jws.JWSPolicy(algs, understood_crit=frozenset(), b64=frozenset({True}))
        object.__setattr__(self, "audiences", audiences)
        object.__setattr__(self, "audience_set", frozenset(audiences))
        object.__setattr__(self, "claim_names", frozenset(("exp", *self.required_claims)))
        object.__setattr__(self, "types", frozenset(types))
        object.__setattr__(self, "policy", policy)
        object.__setattr__(self, "key_resolver", self._make_resolver(bool(algs & SYMMETRIC)))

    def _make_resolver(self, symmetric: bool) -> KeyResolver:
        given = [s for s in (self.jwks_uri, self.jwks, self.resolver) if s is not None]
        if len(given) != 1:
            raise ConfigurationError("give an Issuer exactly one of jwks_uri, jwks, resolver")
        if self.resolver is not None:
            return self.resolver
        if self.jwks is not None:
            keys = self.jwks if isinstance(self.jwks, KeySet) else _load(self.jwks, symmetric)
            if symmetric and not any(k.kty == "oct" for k in keys):
                raise ConfigurationError("HS* algorithms need a symmetric key in jwks")
            return StaticKeyResolver(keys)
        if symmetric:
            raise ConfigurationError("a shared secret is never taken from a remote JWKS")
        from .jwks import JWKSResolver

        resolver: KeyResolver = JWKSResolver(str(self.jwks_uri), **dict(self.jwks_options))
        return resolver


def _load(jwks: Mapping[str, Any], symmetric: bool) -> KeySet:
    try:
        return KeySet.from_jwks(jwks, allow_symmetric=symmetric)
    except ParseError as exc:
        raise ConfigurationError(f"inline jwks: {exc.description}") from exc


@runtime_checkable
class TokenIntrospector(Protocol):
    """An opaque-token source, e.g. :class:`~wsgi_apisec.introspection.Introspection`."""

    def introspect(self, token: str) -> AccessToken: ...


@dataclass(frozen=True)
class _Cached:
    token: AccessToken
    window: TimeWindow


# --- the validator --------------------------------------------------------------------------

Sources = Issuer | TokenIntrospector | Iterable[Issuer | TokenIntrospector]


class TokenValidator:
    """Validates bearer tokens: JWTs against :class:`Issuer` s, anything else (an opaque
    token, or a JWT from an issuer not configured here) with the one introspection given.

    ``cache`` (``True`` = 1024 entries, or a size) keeps validated JWTs by their exact string
    until ``exp``; time claims are checked again on every hit. ``require_bound`` refuses
    tokens without an RFC 8705 / RFC 9449 ``cnf`` (checking the binding itself is separate).
    """

    def __init__(
        self,
        issuers: Sources,
        *,
        clock: Callable[[], float] = time.time,
        max_token_bytes: int = 8192,
        cache: bool | int = False,
        require_bound: bool = False,
    ) -> None:
        self.issuers: dict[str, Issuer] = {}
        self.introspection: TokenIntrospector | None = None
        if isinstance(issuers, Issuer | TokenIntrospector):
            issuers = [issuers]
        for source in issuers:
            self._add(source)
        if not self.issuers and self.introspection is None:
            raise ConfigurationError("TokenValidator needs at least one issuer or introspection")
        self.clock = clock
        self.max_token_bytes = max_token_bytes
        self.require_bound = require_bound
        size = 1024 if cache is True else int(cache or 0)
        self._cache: ExpiringLRU[str, _Cached] | None = ExpiringLRU(size) if size > 0 else None
        # encoded header -> {iss: key query}, for headers that passed parsing and that
        # issuer's header policy on a token whose signature then verified.
        self._headers: dict[str, dict[str, KeyQuery]] = {}
        self._headers_lock = threading.Lock()

    def _add(self, source: Issuer | TokenIntrospector) -> None:
        if isinstance(source, Issuer):
            if source.issuer in self.issuers:
                raise ConfigurationError(f"issuer {source.issuer!r} is configured twice")
            self.issuers[source.issuer] = source
        elif isinstance(source, TokenIntrospector) and self.introspection is None:
            self.introspection = source
        else:
            raise ConfigurationError("give Issuer objects and at most one introspection")

    def validate(self, token: str, *, scheme: str = "Bearer") -> AccessToken:
        """The validated token, presented with ``scheme``; else :class:`InvalidToken`.
        :class:`KeySourceError` (503) passes through when keys cannot be had."""
        if not isinstance(token, str):
            raise InvalidToken("the token is not a string", code="token.malformed")
        if len(token) > self.max_token_bytes:
            raise InvalidToken("the token is too large", code="token.too_large")
        now = self.clock()
        hit = self._cache.get(token, now) if self._cache is not None else None
        if hit is not None:
            hit.window.check(now)
            return self._finish(hit.token, scheme)
        known = self._known(token)
        if known is None:
            routed = self._route(token)
            if routed is None:
                assert self.introspection is not None  # _route only declines when there is one
                # RFC 6750 §2.1: only a b64token is sent on to the introspection endpoint.
                if not is_b64token(token):
                    raise InvalidToken("the token is malformed", code="token.malformed")
                return self._finish(self.introspection.introspect(token), scheme)
            parsed, claims, issuer = routed
            _check_header(parsed, issuer)
            query = KeyQuery(parsed.alg, parsed.kid)
            _verify(issuer, query, _signing_input(parsed), parsed.signature)
            self._remember(issuer, parsed, query)
        else:
            claims, issuer, query, signing_input, signature = known
            _verify(issuer, query, signing_input, signature)
        result, window = _token_from_claims(token, claims, issuer, now)
        if self._cache is not None:
            self._cache.put(token, _Cached(result, window), window.expires)
        return self._finish(result, scheme)

    def _route(self, token: str) -> tuple[jws.CompactJWS, dict[str, Any], Issuer] | None:
        """Parse and pick the issuer by the unverified ``iss``; None = introspect instead."""
        try:
            parsed = jws.parse_compact(token, max_length=self.max_token_bytes)
            claims = json_object(jws.payload_of(parsed), "JWT claims")
        except APISecError as exc:
            if self.introspection is not None:
                return None
            raise InvalidToken(
                "the token is not a well-formed JWT", code="token.malformed", detail=exc.detail
            ) from exc
        iss = claims.get("iss")
        issuer = self.issuers.get(iss) if isinstance(iss, str) else None
        if issuer is None:
            if self.introspection is not None:
                return None
            detail = f"iss {str(iss)[:100]!r} is not configured"
            raise InvalidToken(
                "the token issuer is not trusted", code="token.issuer", detail=detail
            )
        return parsed, claims, issuer

    def _known(self, token: str) -> tuple[dict[str, Any], Issuer, KeyQuery, bytes, bytes] | None:
        """:meth:`_route` and :func:`_check_header` for a token whose encoded header is one
        that its issuer's verified tokens already had: the header is not decoded and checked
        again (nor its key query built), the rest is (the same decoders on the same bytes, so
        the result is the one the full path gives). ``None`` sends the token down the full
        path, which also names what is wrong with it: a token with blanks around it, or with
        any part that does not decode, never takes this one. Returns the claims, the issuer,
        the key query, the JWS Signing Input and the signature."""
        parts = token.split(".")
        by_issuer = self._headers.get(parts[0]) if len(parts) == 3 else None
        if by_issuer is None:
            return None  # before any decoding: an unknown header costs nothing here
        header_b64, payload_b64, sig_b64 = parts
        try:
            claims = json_object(b64url_decode(payload_b64, "JWS payload"), "JWT claims")
            iss = claims.get("iss")
            query = by_issuer.get(iss) if isinstance(iss, str) else None
            if query is None:
                return None
            signature = b64url_decode(sig_b64, "JWS signature")
        except APISecError:
            return None
        # RFC 7515 §5.2 step 8: the Signing Input is the encoded header and payload as sent.
        signing_input = token[: len(header_b64) + 1 + len(payload_b64)].encode("ascii")
        return claims, self.issuers[str(iss)], query, signing_input, signature

    def _remember(self, issuer: Issuer, parsed: jws.CompactJWS, query: KeyQuery) -> None:
        """Keep a header once a token carrying it verified: only the issuer's own headers
        get in, so a flood of forged ones cannot push them out. The keys are still asked
        for on every token (they rotate); only the query is kept."""
        with self._headers_lock:
            by_issuer = self._headers.get(parsed.header_b64)
            if by_issuer is None:
                if len(self._headers) >= MAX_KNOWN_HEADERS:
                    del self._headers[next(iter(self._headers))]
                by_issuer = self._headers[parsed.header_b64] = {}
            by_issuer[issuer.issuer] = query

    def _finish(self, token: AccessToken, scheme: str) -> AccessToken:
        if self.require_bound and not token.bound:
            raise InvalidToken("the token is not sender-constrained", code="token.unbound")
        return token if token.scheme == scheme else replace(token, scheme=scheme)


def _check_header(parsed: jws.CompactJWS, issuer: Issuer) -> None:
    try:
        # RFC 8725 §3.1 / RFC 7515 §4.1.11: alg from the issuer's allow-list only; crit
        # names we do not process, and keys named by the token itself, are refused.
        jws.check_header(parsed, issuer.policy)
    except SignatureError as exc:
        raise InvalidToken(exc.description, code="token.header") from exc
    kid = parsed.header.get("kid")
    if kid is not None and (
        not isinstance(kid, str)
        or _KID.fullmatch(kid) is None
        or any(part in (".", "..") for part in kid.split("/"))
    ):
        raise InvalidToken("the token 'kid' is not acceptable", code="token.header")
    typ = parsed.header.get("typ")
    # RFC 9068 §4: MUST reject a typ other than at+jwt (absent / JWT only by opt-in), which
    # keeps ID tokens and other JWTs of the same issuer out.
    if typ is None and not issuer.allow_jwt_typ:
        raise InvalidToken("the token has no 'typ'; expected at+jwt", code="token.type")
    if typ is not None and (not isinstance(typ, str) or _media_type(typ) not in issuer.types):
        raise InvalidToken("the token 'typ' is not an access-token type", code="token.type")


def _signing_input(parsed: jws.CompactJWS) -> bytes:
    return f"{parsed.header_b64}.{parsed.payload_b64}".encode("ascii")


def _verify(issuer: Issuer, query: KeyQuery, signing_input: bytes, signature: bytes) -> None:
    """The signature checked with the issuer's keys for ``query`` (at most
    :data:`MAX_KEY_TRIES` of them); each key only with an algorithm it is bound to."""
    try:
        keys = issuer.key_resolver.resolve(query)
    except KeySourceError:
        raise
    except APISecError as exc:
        raise InvalidToken(
            "no key of the issuer matches the token", code="token.key", detail=exc.detail
        ) from exc
    algorithm = get_algorithm(query.alg)
    for key in keys[:MAX_KEY_TRIES]:
        try:
            if key.allows(query.alg) and algorithm.verify(key.key, signing_input, signature):
                return
        except SignatureError:  # a key the algorithm refuses (e.g. RSA below 2048 bits)
            continue
    raise InvalidToken("the token signature does not verify", code="token.signature")


def _token_from_claims(
    raw: str, claims: dict[str, Any], issuer: Issuer, now: float
) -> tuple[AccessToken, TimeWindow]:
    if not claims.keys() >= issuer.claim_names:
        name = next(n for n in ("exp", *issuer.required_claims) if n not in claims)
        raise InvalidToken(f"the token lacks the {name!r} claim", code="token.claims")
    window = TimeWindow.from_claims(claims, leeway=issuer.leeway, max_age=issuer.max_age)
    window.check(now)
    audience = audience_of(claims)
    # RFC 9068 §4: aud MUST contain an identifier this resource server expects.
    if issuer.audience_set and issuer.audience_set.isdisjoint(audience):
        raise InvalidToken("the token is not meant for this audience", code="token.audience")
    typ_claim = claims.get("typ")
    if isinstance(typ_claim, str) and typ_claim.lower() not in _ACCESS_TYP_CLAIMS:
        raise InvalidToken("the token is not an access token", code="token.type")
    cnf = claims.get("cnf")
    if cnf is not None and cnf.__class__ is not dict:
        raise InvalidToken("the 'cnf' claim must be an object", code="token.claims")
    string_claim(claims, "jti")
    exp = window.exp
    fields = {
        "raw": raw,
        "claims": MappingProxyType(claims),
        "issuer": issuer.issuer,
        "subject": string_claim(claims, "sub"),
        # RFC 9068 §2.2: client_id; Keycloak and other pre-RFC issuers send azp.
        "client_id": string_claim(claims, "client_id") or string_claim(claims, "azp"),
        "scopes": scopes_of(claims, accept_scp=issuer.accept_scp),
        "audience": audience,
        "expires_at": None if exp is None else int(exp),
        "cnf": None if cnf is None else MappingProxyType(cnf),
        "scheme": "Bearer",
    }
    return AccessToken.built(fields), window
