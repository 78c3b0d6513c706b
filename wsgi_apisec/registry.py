"""A caller's key from a participant registry, looked up by the caller's id.

OCEN (PROTOCOLS.md): ``GET {registry}/participant-roles/{participantId}`` answers with the
participant's public key as a JWK. OpenG2P: the partner key is ``PARTNER_<ID>`` with the id
upper-cased and ``-`` turned into ``_``. The id (``KeyQuery.owner``) comes from the message,
so it is checked against a narrow charset and percent-encoded before it goes into a URL:
it can name one path segment and nothing else.

Answers are cached per participant by the rules of :mod:`wsgi_apisec.cache`; a 404 is the
registry saying "no such participant" and is cached for the cooldown, not taken as an outage.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote, urlsplit

from .cache import CachedSource, CachePolicy, Clock, Loaded
from .encoding import json_object
from .errors import ConfigurationError, KeySourceError, ParseError, UnknownKey
from .fetch import DocumentLimits, Fetcher, UrlFetcher, check_url, get_document, parse_max_age
from .keys import KeySet, PublicKey
from .resolvers import KeyQuery

__all__ = ["RegistryResolver", "openg2p_partner_id"]

_log = logging.getLogger("wsgi_apisec.registry")

#: A participant id: starts with a letter or digit, then letters, digits and ``._:@-``; no
#: ``/``, ``%``, ``?``, ``#`` or whitespace, and never ``.`` or ``..``.
_OWNER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}")
_WRAPPERS = ("publicKey", "public_key", "jwk")
_NOT_FOUND = 404


def openg2p_partner_id(owner: str) -> str:
    """OpenG2P's key name for a partner: ``PARTNER_<ID upper, '-' -> '_'>``."""
    return "PARTNER_" + owner.upper().replace("-", "_")


def parse_registry_key(body: bytes | str, *, max_keys: int = 100) -> KeySet:
    """The key(s) in a registry answer, which must be a JSON object of one of these forms:

    1. a bare JWK (has ``kty``);
    2. a JWKS ``{"keys": [...]}``;
    3. exactly one of ``publicKey`` / ``public_key`` / ``jwk`` holding a JWK object, or
       (``publicKey`` / ``public_key`` only) a PEM string: SPKI, PKCS#1 or an X.509
       certificate. Other members are ignored.

    A private key, a key with ``use`` other than ``sig`` or any other shape is a
    :class:`ParseError`; symmetric keys are never taken from a registry.
    """
    doc = json_object(body, "registry answer")
    if "kty" in doc:
        return KeySet([_jwk(doc)])
    if "keys" in doc:
        return KeySet.from_jwks(doc, max_keys=max_keys)
    present = [name for name in _WRAPPERS if name in doc]
    if len(present) != 1:
        raise ParseError(f"registry answer must carry one of {', '.join(_WRAPPERS)}")
    value = doc[present[0]]
    if isinstance(value, Mapping):
        return KeySet([_jwk(value)])
    if isinstance(value, str) and present[0] != "jwk" and value.startswith("-----BEGIN "):
        if "PRIVATE KEY-----" in value:
            raise ParseError("registry answer carries a private key")
        return KeySet([PublicKey.from_pem(value)])
    raise ParseError(f"registry {present[0]!r} is neither a JWK nor a PEM key")


def _jwk(jwk: Mapping[str, Any]) -> PublicKey:
    # RFC 7517 §4.2: a key published for encryption is not a signature key.
    if jwk.get("use", "sig") != "sig":
        raise ParseError("registry key is not a signature key")
    return PublicKey.from_jwk(jwk)


class RegistryResolver:
    """Per-participant keys from ``{base_url}{path_template}`` with ``{owner}`` replaced by
    the percent-encoded, optionally transformed participant id.

    ``query.owner`` is required: without one, or with one outside the allowed charset,
    :class:`UnknownKey` (401) is raised before any request is made. If both the signature
    and the registry key carry a ``kid`` they must be equal; a registry key without a
    ``kid`` fits any ``kid``. The caching knobs mean what they mean for
    :class:`~wsgi_apisec.jwks.JWKSResolver`; ``max_owners`` caps the participants cached.
    """

    def __init__(
        self,
        base_url: str,
        *,
        path_template: str = "/participant-roles/{owner}",
        id_transform: Callable[[str], str] | None = None,
        fetcher: Fetcher | None = None,
        clock: Clock = time.monotonic,
        ttl: float = 300.0,
        min_ttl: float = 60.0,
        max_ttl: float = 86400.0,
        refresh_ahead: float = 0.2,
        unknown_kid_cooldown: float = 30.0,
        max_stale: float = 6 * 3600.0,
        max_bytes: int = 512 * 1024,
        max_keys: int = 100,
        timeout: float = 5.0,
        max_owners: int = 1024,
        allow_http: bool = False,
    ) -> None:
        base = check_url(base_url, allow_http).rstrip("/")
        if urlsplit(base).query or urlsplit(base).fragment:
            raise ConfigurationError("registry base URL must not carry a query or fragment")
        if path_template.count("{owner}") != 1 or not path_template.startswith("/"):
            raise ConfigurationError("path_template must start with '/' and hold one {owner}")
        self.base_url = base
        self._template = path_template
        self._transform = id_transform
        self._limits = DocumentLimits(timeout, max_bytes, max_keys)
        self._fetcher: Fetcher = fetcher if fetcher is not None else UrlFetcher()
        policy = CachePolicy(ttl, min_ttl, max_ttl, refresh_ahead, unknown_kid_cooldown, max_stale)
        self._cache = CachedSource(
            self._load, policy, clock=clock, logger=_log, max_entries=max_owners
        )

    @classmethod
    def ocen(cls, base_url: str, **options: Any) -> RegistryResolver:
        """OCEN: ``GET {base_url}/participant-roles/{participantId}``."""
        return cls(base_url, path_template="/participant-roles/{owner}", **options)

    @classmethod
    def openg2p(cls, base_url: str, **options: Any) -> RegistryResolver:
        """OpenG2P partners: ``GET {base_url}/keys/PARTNER_<ID upper, '-' -> '_'>``."""
        return cls(
            base_url, path_template="/keys/{owner}", id_transform=openg2p_partner_id, **options
        )

    @classmethod
    def g2p_connect(cls, base_url: str, **options: Any) -> RegistryResolver:
        """G2P Connect senders: every key of the participant as a JWKS,
        ``GET {base_url}/participants/{sender_id}/jwks`` (the Ed25519 key is picked by alg)."""
        return cls(base_url, path_template="/participants/{owner}/jwks", **options)

    def resolve(self, query: KeyQuery) -> list[PublicKey]:
        owner = _check_owner(query.owner)
        self.url_for(owner)  # refuse a bad transformed id before anything is cached
        found = _pick(self._cache.get(owner), query)
        if not found:
            # A rotated key: ask again, at most once per cooldown for this participant.
            found = _pick(self._cache.get(owner, force=True), query)
        if not found:
            kid = f" with kid {query.kid[:64]!r}" if query.kid else ""
            raise UnknownKey(f"no key of {owner!r}{kid} for {query.alg}")
        return found

    def url_for(self, owner: str) -> str:
        """The registry URL for participant ``owner`` (:class:`UnknownKey` if not valid)."""
        ident = _check_owner(owner)
        if self._transform is not None:
            ident = _check_owner(self._transform(ident))
        # safe="": every reserved character is encoded, so the id stays one path segment.
        return self.base_url + self._template.replace("{owner}", quote(ident, safe=""))

    def _load(self, owner: str) -> Loaded[KeySet]:
        url = self.url_for(owner)
        result = get_document(self._fetcher, url, self._limits, negative=(_NOT_FOUND,))
        if result.status == _NOT_FOUND:
            return Loaded(None)
        try:
            keys = parse_registry_key(result.body, max_keys=self._limits.max_keys)
        except (ParseError, ConfigurationError) as exc:
            raise KeySourceError(
                "the key source is unavailable", detail=f"{url}: rejected: {exc.detail}"
            ) from exc
        if not len(keys):
            raise KeySourceError("the key source is unavailable", detail=f"{url}: no usable key")
        return Loaded(keys, parse_max_age(result.headers.get("cache-control")))


def _check_owner(owner: str | None) -> str:
    if owner is None:
        raise UnknownKey("the request does not name a participant")
    if not isinstance(owner, str) or _OWNER.fullmatch(owner) is None:
        raise UnknownKey("the participant id is not valid", detail=f"bad owner {owner!r:.80}")
    return owner


def _pick(keys: KeySet | None, query: KeyQuery) -> list[PublicKey]:
    if keys is None:
        return []
    if query.kid is not None:
        exact = keys.get(query.kid)
        if exact is not None:
            return [exact] if exact.allows(query.alg) else []
    # PROTOCOLS.md (OpenG2P): kid is optional and must match when both sides have one.
    return [k for k in keys if k.allows(query.alg) and (query.kid is None or k.kid is None)]
