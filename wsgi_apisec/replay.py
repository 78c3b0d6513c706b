"""Replay stores: remember a nonce, ``jti`` or signature digest for as long as it is valid.

Every store answers one question atomically, first writer wins: *is this key new?*
(:meth:`ReplayStore.add`). Pick the store by how far the workers that must agree are apart:

- :class:`MemoryReplayStore` -- one process (threads share it);
- :class:`SQLiteReplayStore` -- several worker processes on one host;
- :class:`RedisReplayStore` -- several hosts behind a load balancer.

Keys are attacker-controlled, so every store keeps only their SHA-256 digest: the size of
an entry is fixed whatever the caller sends. A store that cannot answer raises
:class:`ReplayStoreUnavailable` (503): it never guesses "fresh".
"""

from __future__ import annotations

import hashlib
import heapq
import math
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol
from urllib.parse import urlsplit

from .errors import ConfigurationError, ReplayStoreFull, ReplayStoreUnavailable

__all__ = [
    "MemoryReplayStore",
    "RedisReplayStore",
    "ReplayStore",
    "ReplayStoreFull",
    "ReplayStoreUnavailable",
    "SQLiteReplayStore",
    "replay_store_from_url",
]

Clock = Callable[[], float]


class ReplayStore(Protocol):
    def add(self, key: str, ttl: float) -> bool:
        """Remember `key` for `ttl` seconds. Atomic, first writer wins: True if the key was new
        (the message is fresh), False if it was already present and not yet expired (a replay)."""
        ...


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()


def _check_ttl(ttl: float) -> None:
    # A zero, negative or non-finite TTL is a bug in the caller, not a property of the
    # request: raise loudly instead of storing something that never (or always) expires.
    if not math.isfinite(ttl) or ttl <= 0:
        raise ValueError(f"replay TTL must be a finite number of seconds > 0, got {ttl!r}")


class MemoryReplayStore:
    """Keys held in this process's memory: the default, right for a single process.

    Thread-safe. Memory is bounded by ``max_entries``. Expired keys are dropped in expiry
    order from a heap on each :meth:`add` (amortised O(log n), no full scan). When the store
    is full of *live* keys it raises :class:`ReplayStoreFull` (503) instead of evicting one:
    dropping a live key would let a replay of that message through. Size ``max_entries`` for
    the peak request rate times the replay window.
    """

    def __init__(self, max_entries: int = 100_000, clock: Clock = time.time) -> None:
        if max_entries < 1:
            raise ConfigurationError("MemoryReplayStore max_entries must be >= 1")
        self.max_entries = max_entries
        self._clock = clock
        self._lock = threading.Lock()
        self._expiry: dict[bytes, float] = {}
        # Exactly one heap entry per key in _expiry: a key enters both together and leaves
        # both together, so the heap never holds stale entries.
        self._heap: list[tuple[float, bytes]] = []

    def __len__(self) -> int:
        with self._lock:
            return len(self._expiry)

    def add(self, key: str, ttl: float) -> bool:
        _check_ttl(ttl)
        digest = _digest(key)
        with self._lock:
            now = self._clock()
            self._drop_expired(now)
            if digest in self._expiry:
                return False
            if len(self._expiry) >= self.max_entries:
                raise ReplayStoreFull(
                    "Service temporarily unavailable",
                    detail=f"replay store full: {self.max_entries} live entries",
                )
            self._expiry[digest] = now + ttl
            heapq.heappush(self._heap, (now + ttl, digest))
            return True

    def _drop_expired(self, now: float) -> None:
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, digest = heapq.heappop(heap)
            del self._expiry[digest]


_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS apisec_replay"
    " (key BLOB PRIMARY KEY, expires REAL NOT NULL) WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS apisec_replay_expires ON apisec_replay (expires)",
)
# One statement, hence one transaction under SQLite's single-writer lock: insert the key,
# or take over its row only if that row has expired. rowcount is 1 exactly when this
# caller won, whichever process or thread it races against.
_INSERT = (
    "INSERT INTO apisec_replay (key, expires) VALUES (?, ?)"
    " ON CONFLICT (key) DO UPDATE SET expires = excluded.expires"
    " WHERE apisec_replay.expires <= ?"
)
# Bounded batches keep the write lock short even after a long idle period.
_CLEANUP = (
    "DELETE FROM apisec_replay WHERE key IN"
    " (SELECT key FROM apisec_replay WHERE expires <= ? LIMIT 10000)"
)


class SQLiteReplayStore:
    """Keys in an SQLite file: right for several worker processes on one host.

    Every process and thread that opens the same file sees the same keys; :meth:`add` is
    one atomic upsert, so of any number of racing writers exactly one gets ``True``. The
    database runs in WAL mode with a busy timeout (``timeout`` seconds) so readers and the
    single writer do not block each other for long. Expired rows are deleted every
    ``cleanup_every`` adds. The file must be on a local disk (not NFS: its locks are not
    reliable). ``synchronous=NORMAL`` means the last commits may be lost on power failure,
    not on a process crash. Any SQLite failure raises :class:`ReplayStoreUnavailable`.

    Connections are pooled (``pool_size`` idle at most) rather than kept per thread, so a
    server that starts a thread per request does not leak one connection per thread; the
    pool is dropped in a forked child, which must not use its parent's connections.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        clock: Clock = time.time,
        *,
        timeout: float = 5.0,
        cleanup_every: int = 1000,
        pool_size: int = 8,
    ) -> None:
        self.path = os.path.abspath(os.fspath(path))
        self._clock = clock
        self._timeout = timeout
        self._cleanup_every = max(1, cleanup_every)
        self._pool_size = pool_size
        self._lock = threading.Lock()
        self._idle: list[sqlite3.Connection] = []
        self._pid = os.getpid()
        self._adds = 0
        try:
            conn = self._connect()
            try:
                self._enable_wal(conn)
                for statement in _SCHEMA:
                    conn.execute(statement)
            finally:
                conn.close()
        except sqlite3.Error as exc:
            raise ConfigurationError(f"cannot open replay database {self.path!r}: {exc}") from exc

    def add(self, key: str, ttl: float) -> bool:
        _check_ttl(ttl)
        digest = _digest(key)
        with self._lock:
            self._adds += 1
            clean = self._adds % self._cleanup_every == 0
        try:
            with self._connection() as conn:
                now = self._clock()
                inserted = conn.execute(_INSERT, (digest, now + ttl, now)).rowcount == 1
                if clean:
                    conn.execute(_CLEANUP, (now,))
        except sqlite3.Error as exc:
            raise ReplayStoreUnavailable(
                "Service temporarily unavailable", detail=f"replay store (SQLite): {exc}"
            ) from exc
        return inserted

    def close(self) -> None:
        """Close the idle connections (connections in use are closed when returned)."""
        with self._lock:
            idle, self._idle, self._pool_size = self._idle, [], 0
        for conn in idle:
            conn.close()

    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: autocommit, each statement is its own transaction.
        conn = sqlite3.connect(
            self.path, timeout=self._timeout, isolation_level=None, check_same_thread=False
        )
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn

    def _enable_wal(self, conn: sqlite3.Connection) -> None:
        # WAL is a property of the file, set once here. Switching needs an exclusive lock,
        # and SQLite answers SQLITE_BUSY at once, without its busy handler, while another
        # process opens or switches the same file: retry until the timeout.
        deadline = time.monotonic() + self._timeout
        while True:
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.01)

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self._pid != os.getpid():
                self._idle, self._pid = [], os.getpid()
            conn = self._idle.pop() if self._idle else None
        if conn is None:
            conn = self._connect()
        try:
            yield conn
        except BaseException:
            conn.close()
            raise
        with self._lock:
            if len(self._idle) < self._pool_size:
                self._idle.append(conn)
                return
        conn.close()


class RedisReplayStore:
    """Keys in Redis: right for several hosts behind a load balancer.

    :meth:`add` is ``SET key 1 NX PX ttl``: one atomic command, so of any number of
    racing writers on any host exactly one gets ``True``, and Redis expires the key
    itself. Run Redis with persistence (or accept that a restart forgets the window's
    keys) and, for several Redis nodes, a single primary per key. ``client_or_url`` is a
    ``redis.Redis`` (or compatible) client or a ``redis://`` / ``rediss://`` URL. Needs
    the ``redis`` extra: ``pip install flask-apisec[redis]``. A connection or server
    failure raises :class:`ReplayStoreUnavailable`.
    """

    def __init__(self, client_or_url: Any, prefix: str = "apisec:replay:") -> None:
        try:
            import redis  # optional dependency: imported on use only
        except ImportError as exc:
            raise ConfigurationError(
                "RedisReplayStore needs the 'redis' package: pip install 'flask-apisec[redis]'"
            ) from exc
        self._errors: type[Exception] = redis.RedisError
        if isinstance(client_or_url, str):
            client_or_url = redis.Redis.from_url(
                client_or_url, socket_timeout=5.0, socket_connect_timeout=5.0
            )
        self._client = client_or_url
        self.prefix = prefix

    def add(self, key: str, ttl: float) -> bool:
        _check_ttl(ttl)
        name = self.prefix + _digest(key).hex()
        try:
            result = self._client.set(name, b"1", nx=True, px=max(1, math.ceil(ttl * 1000)))
        except self._errors as exc:
            raise ReplayStoreUnavailable(
                "Service temporarily unavailable", detail=f"replay store (Redis): {exc}"
            ) from exc
        return bool(result)

    def close(self) -> None:
        self._client.close()


def replay_store_from_url(url: str) -> ReplayStore:
    """Build a store from an ``APISEC_REPLAY_STORE`` URL.

    - ``memory`` -- :class:`MemoryReplayStore`;
    - ``sqlite:///relative/path.db`` (relative to the working directory at start-up) or
      ``sqlite:////absolute/path.db`` -- :class:`SQLiteReplayStore`, the same spelling as
      SQLAlchemy / Flask-SQLAlchemy;
    - ``redis://[user:password@]host:port/db`` or ``rediss://...`` (TLS) --
      :class:`RedisReplayStore`.
    """
    if url == "memory":
        return MemoryReplayStore()
    parts = urlsplit(url)
    if parts.scheme in ("redis", "rediss") and parts.hostname:
        return RedisReplayStore(url)
    if parts.scheme == "sqlite" and url.startswith("sqlite:///"):
        path = url[len("sqlite:///") :]
        if path and path != ":memory:" and "?" not in path and "#" not in path:
            return SQLiteReplayStore(path)
    raise ConfigurationError(
        f"unsupported replay store URL {url!r}: use 'memory', 'sqlite:///relative.db', "
        "'sqlite:////absolute/path.db', 'redis://host:port/db' or 'rediss://host:port/db'"
    )
