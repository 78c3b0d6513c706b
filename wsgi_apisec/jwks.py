"""A remote JWKS (RFC 7517 §5) as a :class:`~wsgi_apisec.resolvers.KeyResolver`.

Keys rotate without restarts: the set is cached and refreshed by the rules of
:mod:`wsgi_apisec.cache` (TTL from ``Cache-Control``, refresh ahead, single flight, a
cooldown on unknown-``kid`` refetches, the last good set served through an outage up to
``max_stale``). A new document replaces the old one only once it has been validated.
"""

from __future__ import annotations

import logging
import time

from .cache import CachedSource, CachePolicy, Clock, Loaded
from .errors import ConfigurationError, KeySourceError, ParseError, UnknownKey
from .fetch import DocumentLimits, Fetcher, UrlFetcher, check_url, get_document, parse_max_age
from .keys import KeySet, PublicKey
from .resolvers import KeyQuery, select

__all__ = ["JWKSResolver"]

_log = logging.getLogger("wsgi_apisec.jwks")


class JWKSResolver:
    """Verification keys from the JWKS at ``url``.

    A fetched document must be a JSON object with a ``keys`` array of at most ``max_keys``
    members, at most ``max_bytes`` long, served with status 200 (a redirect is an error),
    and hold at least one usable signing key (``use`` absent or ``sig``; ``oct`` keys only
    with ``allow_symmetric``). Anything else is rejected with a warning on the
    ``wsgi_apisec.jwks`` logger and the previous set is kept.

    A ``kid`` the set does not hold triggers one refetch, at most once per
    ``unknown_kid_cooldown`` seconds, then :class:`~wsgi_apisec.errors.UnknownKey` (401).
    With nothing usable cached and the source down, :class:`KeySourceError` (503).
    """

    def __init__(
        self,
        url: str,
        *,
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
        allow_http: bool = False,
        allow_symmetric: bool = False,
    ) -> None:
        self.url = check_url(url, allow_http)
        self._limits = DocumentLimits(timeout, max_bytes, max_keys)
        self._fetcher: Fetcher = fetcher if fetcher is not None else UrlFetcher()
        self._allow_symmetric = allow_symmetric
        policy = CachePolicy(ttl, min_ttl, max_ttl, refresh_ahead, unknown_kid_cooldown, max_stale)
        self._cache = CachedSource(self._load, policy, clock=clock, logger=_log)

    def resolve(self, query: KeyQuery) -> list[PublicKey]:
        try:
            return select(self.keys(), query)
        except UnknownKey:
            # The issuer may have rotated since the last fetch: ask again (the cache allows
            # this at most once per cooldown, so made-up kids cannot hammer the source).
            return select(self._keys(force=True), query)

    def keys(self) -> KeySet:
        """The current set (fetched if nothing is cached yet)."""
        return self._keys(force=False)

    def _keys(self, *, force: bool) -> KeySet:
        keys = self._cache.get(self.url, force=force)
        if keys is None:  # pragma: no cover - _load never returns a negative answer
            raise KeySourceError("the key source is unavailable", detail=f"{self.url}: empty")
        return keys

    def _load(self, url: str) -> Loaded[KeySet]:
        result = get_document(self._fetcher, url, self._limits)
        try:
            keys = KeySet.from_jwks(
                result.body,
                max_keys=self._limits.max_keys,
                allow_symmetric=self._allow_symmetric,
            )
        except (ParseError, ConfigurationError) as exc:
            raise KeySourceError(
                "the key source is unavailable", detail=f"{url}: rejected: {exc.detail}"
            ) from exc
        if not len(keys):
            raise KeySourceError(
                "the key source is unavailable",
                detail=f"{url}: rejected: no usable key ({keys.skipped} skipped)",
            )
        return Loaded(keys, parse_max_age(result.headers.get("cache-control")))
