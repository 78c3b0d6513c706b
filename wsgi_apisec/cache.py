"""The caching rules every remote key source shares (JWKS, participant registries).

One :class:`CachedSource` holds one entry per key (the JWKS URL, or a participant id), each
with the last good answer and its expiry. The rules, in the order they are applied:

- **TTL**: an answer is fresh for its ``Cache-Control: max-age`` clamped into
  ``[min_ttl, max_ttl]``, or ``ttl`` when the source sends none.
- **Refresh ahead**: once ``refresh_ahead`` of the TTL is left, the next caller refreshes
  *synchronously in its own thread* while every other thread keeps using the current answer
  without waiting. No background threads: nothing to leak in a pre-forking server, and a
  source nobody asks is never polled.
- **Single flight**: at most one fetch per entry is in flight. Threads that have nothing
  usable (cold cache) or that need a refetch wait for it instead of fetching again.
- **Forced refetch** (unknown ``kid``): allowed only when ``cooldown`` has passed since the
  last fetch attempt of that entry, so a storm of made-up ``kid`` values costs at most one
  fetch per cooldown.
- **Failure**: a failed or rejected fetch keeps the last good answer, logs a warning and is
  not retried for ``cooldown``. The last good answer is served until ``max_stale`` past its
  expiry; after that, or with nothing cached, :class:`KeySourceError` (503).
- **Negative answers** (the source says "no such participant"): cached for ``cooldown``.
- **Bounded**: at most ``max_entries`` entries, least recently used dropped first, entries
  without keys (negative or failed answers) before any that hold keys.
"""

from __future__ import annotations

import logging
import math
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from .errors import ConfigurationError, KeySourceError

__all__ = ["CachePolicy", "CachedSource", "Clock", "Loaded"]

T = TypeVar("T")
Clock = Callable[[], float]


@dataclass(frozen=True)
class CachePolicy:
    ttl: float = 300.0
    min_ttl: float = 60.0
    max_ttl: float = 86400.0
    refresh_ahead: float = 0.2
    cooldown: float = 30.0
    max_stale: float = 6 * 3600.0

    def __post_init__(self) -> None:
        values = (self.ttl, self.min_ttl, self.max_ttl, self.cooldown, self.max_stale)
        if not all(math.isfinite(v) and v >= 0 for v in values):
            raise ConfigurationError("cache times must be finite and >= 0 seconds")
        if not 0 < self.min_ttl <= self.ttl <= self.max_ttl:
            raise ConfigurationError("cache TTLs must satisfy 0 < min_ttl <= ttl <= max_ttl")
        if not 0 <= self.refresh_ahead < 1:
            raise ConfigurationError("refresh_ahead is a fraction of the TTL in [0, 1)")

    def ttl_for(self, max_age: float | None) -> float:
        if max_age is None:
            return self.ttl
        return min(max(max_age, self.min_ttl), self.max_ttl)


@dataclass(frozen=True)
class Loaded(Generic[T]):
    """A successful fetch: ``value`` ``None`` is an authoritative negative answer."""

    value: T | None
    max_age: float | None = None


@dataclass(eq=False)
class _Entry(Generic[T]):
    value: T | None = None
    known: bool = False  # a good (positive or negative) answer has been stored
    expires: float = -math.inf
    refresh: float = -math.inf
    attempted: float = -math.inf
    failed: bool = False
    error: KeySourceError | None = None
    loading: bool = False


class CachedSource(Generic[T]):
    """Cached answers of ``load(key)``, which returns :class:`Loaded` or raises
    :class:`KeySourceError` (source down, or a document that failed validation)."""

    def __init__(
        self,
        load: Callable[[str], Loaded[T]],
        policy: CachePolicy,
        *,
        clock: Clock,
        logger: logging.Logger,
        max_entries: int = 1,
    ) -> None:
        if max_entries < 1:
            raise ConfigurationError("a key cache must hold at least one entry")
        self._load = load
        self._policy = policy
        self._clock = clock
        self._log = logger
        self._max_entries = max_entries
        self._cond = threading.Condition()
        self._entries: OrderedDict[str, _Entry[T]] = OrderedDict()

    def get(self, key: str, *, force: bool = False) -> T | None:
        """The current answer for ``key`` (``None``: negative), fetching when the rules above
        say so; ``force`` asks for a refetch (subject to the cooldown)."""
        with self._cond:
            entry, mine = self._claim(key, force)
        if mine:
            self._fetch(key, entry)
        with self._cond:
            return self._current(key, entry, self._clock())

    def __len__(self) -> int:
        with self._cond:
            return len(self._entries)

    def _claim(self, key: str, force: bool) -> tuple[_Entry[T], bool]:
        """Under the lock: the entry, and whether this caller must fetch it."""
        entry = self._entry(key)
        while entry.loading:
            if not force and self._servable(entry, self._clock()):
                return entry, False
            self._cond.wait()
        now = self._clock()
        if not self._due(entry, now, force):
            return entry, False
        entry.loading, entry.attempted = True, now
        return entry, True

    def _due(self, entry: _Entry[T], now: float, force: bool) -> bool:
        since = now - entry.attempted
        if entry.failed and since < self._policy.cooldown:
            return False
        if not entry.known or now >= entry.refresh:
            return True
        return force and since >= self._policy.cooldown

    def _fetch(self, key: str, entry: _Entry[T]) -> None:
        loaded: Loaded[T] | None = None
        error: KeySourceError | None = None
        try:
            loaded = self._load(key)
        except KeySourceError as exc:
            error = exc
        finally:
            with self._cond:
                entry.loading = False
                if loaded is not None:
                    self._store(entry, loaded)
                elif error is not None:
                    self._fail(key, entry, error)
                self._cond.notify_all()

    def _store(self, entry: _Entry[T], loaded: Loaded[T]) -> None:
        policy = self._policy
        if loaded.value is None:
            ttl, ahead = policy.cooldown, 0.0
        else:
            ttl = policy.ttl_for(loaded.max_age)
            ahead = ttl * policy.refresh_ahead
        # The lifetime counts from when the source was asked, not from when it answered.
        entry.value, entry.known = loaded.value, True
        entry.expires = entry.attempted + ttl
        entry.refresh = entry.expires - ahead
        entry.failed, entry.error = False, None

    def _fail(self, key: str, entry: _Entry[T], error: KeySourceError) -> None:
        entry.failed, entry.error = True, error
        serving = self._servable(entry, self._clock())
        self._log.warning(
            "key source %s: %s; %s",
            key,
            error.detail,
            "keeping the last good keys" if serving else "nothing usable cached",
        )

    def _servable(self, entry: _Entry[T], now: float) -> bool:
        return entry.known and now < entry.expires + self._policy.max_stale

    def _current(self, key: str, entry: _Entry[T], now: float) -> T | None:
        if self._servable(entry, now):
            return entry.value
        last = entry.error.detail if entry.error else "no answer yet"
        if entry.known:
            last = f"last good answer expired more than {self._policy.max_stale:g}s ago; {last}"
        # A fresh exception per caller: one shared instance would collect their tracebacks.
        raise KeySourceError("the key source is unavailable", detail=f"{key}: {last}")

    def _entry(self, key: str) -> _Entry[T]:
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
            return entry
        entry = self._entries[key] = _Entry()
        if len(self._entries) > self._max_entries:
            self._evict(keep=key)
        return entry

    def _evict(self, keep: str) -> None:
        """Drop one idle entry: the least recently used one that holds no keys (a negative,
        failed or never-loaded answer), else the least recently used one. Keys come from the
        message (a participant id), so a flood of made-up ids must only push out each
        other's "no such participant", never a real participant's keys."""
        fallback = None
        for name, entry in self._entries.items():
            if name == keep or entry.loading:
                continue
            if entry.value is None:
                del self._entries[name]
                return
            if fallback is None:
                fallback = name
        if fallback is not None:
            del self._entries[fallback]
