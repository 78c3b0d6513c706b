"""Replay stores: one contract run against every store, then what each store adds."""

from __future__ import annotations

import json
import math
import os
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from tests.redis_server import free_port
from wsgi_apisec.errors import APISecError, ConfigurationError
from wsgi_apisec.replay import (
    MemoryReplayStore,
    RedisReplayStore,
    ReplayStore,
    ReplayStoreFull,
    ReplayStoreUnavailable,
    SQLiteReplayStore,
    replay_store_from_url,
)

REPO_ROOT = Path(__file__).resolve().parent.parent


class FakeClock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Kit:
    """A store under test, a TTL to use with it, and a way to let that TTL pass."""

    store: ReplayStore
    ttl: float
    let_ttl_pass: Callable[[], None]
    #: Moves time forward by less than the TTL; None where time is real.
    almost_pass: Callable[[], None] | None


def _fake_clock_kit(store: ReplayStore, clock: FakeClock) -> Kit:
    return Kit(store, 10.0, lambda: clock.advance(10.0), lambda: clock.advance(9.999))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sqlite_store(tmp_path: Path, clock: FakeClock) -> Iterator[SQLiteReplayStore]:
    store = SQLiteReplayStore(tmp_path / "replay.db", clock=clock)
    yield store
    store.close()


@pytest.fixture
def redis_store(redis_url: str) -> Iterator[RedisReplayStore]:
    store = RedisReplayStore(redis_url, prefix=f"test:{uuid.uuid4().hex}:")
    yield store
    store.close()


@pytest.fixture(params=["memory", "sqlite", pytest.param("redis", marks=pytest.mark.server)])
def kit(request: pytest.FixtureRequest, clock: FakeClock) -> Kit:
    if request.param == "memory":
        return _fake_clock_kit(MemoryReplayStore(clock=clock), clock)
    if request.param == "sqlite":
        return _fake_clock_kit(request.getfixturevalue("sqlite_store"), clock)
    # Redis keeps its own time: a short real TTL, then sleep past it.
    return Kit(request.getfixturevalue("redis_store"), 0.3, lambda: time.sleep(0.45), None)


class TestReplayStoreContract:
    """What every ReplayStore guarantees, whichever backend holds the keys."""

    def test_first_add_is_fresh_second_is_replay(self, kit: Kit) -> None:
        assert kit.store.add("nonce-1", kit.ttl) is True
        assert kit.store.add("nonce-1", kit.ttl) is False
        assert kit.store.add("nonce-1", kit.ttl) is False

    def test_keys_are_independent(self, kit: Kit) -> None:
        keys = ["a", "b", "A", "a ", "", "nonce-1", "nonce-10", "é", "\udcff"]
        assert [kit.store.add(k, kit.ttl) for k in keys] == [True] * len(keys)
        assert [kit.store.add(k, kit.ttl) for k in keys] == [False] * len(keys)

    def test_key_is_a_replay_until_its_ttl_passes(self, kit: Kit) -> None:
        assert kit.store.add("jti", kit.ttl) is True
        if kit.almost_pass is not None:
            kit.almost_pass()
            assert kit.store.add("jti", kit.ttl) is False
        kit.let_ttl_pass()
        assert kit.store.add("jti", kit.ttl) is True
        assert kit.store.add("jti", kit.ttl) is False

    def test_long_keys_are_accepted_and_distinguished(self, kit: Kit) -> None:
        long_key = "x" * 1_000_000
        assert kit.store.add(long_key, kit.ttl) is True
        assert kit.store.add(long_key[:-1] + "y", kit.ttl) is True
        assert kit.store.add(long_key, kit.ttl) is False

    @pytest.mark.parametrize("ttl", [0, -1.0, math.nan, math.inf, -math.inf])
    def test_rejects_a_ttl_that_is_not_positive_and_finite(self, kit: Kit, ttl: float) -> None:
        with pytest.raises(ValueError, match="replay TTL"):
            kit.store.add("k", ttl)
        assert kit.store.add("k", kit.ttl) is True  # the rejected call stored nothing

    def test_threads_racing_on_the_same_keys_accept_each_exactly_once(self, kit: Kit) -> None:
        keys = [f"race-{i}" for i in range(100)]
        start = threading.Barrier(8)
        accepted: list[list[str]] = [[] for _ in range(8)]
        errors: list[BaseException] = []

        def worker(n: int) -> None:
            try:
                start.wait()
                order = keys if n % 2 else list(reversed(keys))
                accepted[n] = [k for k in order if kit.store.add(k, 60.0)]
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        counts = Counter(k for per_thread in accepted for k in per_thread)
        assert counts == Counter(keys)


class TestMemoryReplayStore:
    def test_full_of_live_keys_fails_closed_with_503(self, clock: FakeClock) -> None:
        store = MemoryReplayStore(max_entries=3, clock=clock)
        assert [store.add(k, 10) for k in "abc"] == [True, True, True]
        with pytest.raises(ReplayStoreFull) as info:
            store.add("d", 10)
        err = info.value
        assert isinstance(err, APISecError)
        assert (err.status, err.error, err.code) == (
            503,
            "temporarily_unavailable",
            "replay.store_full",
        )
        assert len(store) == 3
        assert store.add("a", 10) is False  # a full store still recognises replays

    def test_expired_keys_make_room(self, clock: FakeClock) -> None:
        store = MemoryReplayStore(max_entries=3, clock=clock)
        store.add("short", 1)
        store.add("b", 10)
        store.add("c", 10)
        clock.advance(1)
        assert store.add("d", 10) is True
        assert len(store) == 3
        with pytest.raises(ReplayStoreFull):
            store.add("e", 10)

    def test_expired_keys_are_dropped_before_the_store_is_full(self, clock: FakeClock) -> None:
        store = MemoryReplayStore(clock=clock)
        for i in range(100):
            store.add(f"k{i}", 1 + i % 3)
        clock.advance(2)
        store.add("new", 5)
        assert len(store) == 1 + sum(1 for i in range(100) if 1 + i % 3 > 2)
        clock.advance(1)
        store.add("newer", 5)
        assert len(store) == 2

    def test_max_entries_below_one_is_a_configuration_error(self) -> None:
        with pytest.raises(ConfigurationError):
            MemoryReplayStore(max_entries=0)


def _rows(path: str) -> list[tuple[bytes, float]]:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT key, expires FROM apisec_replay").fetchall()


class TestSQLiteReplayStore:
    def test_two_stores_on_one_file_share_keys(
        self, sqlite_store: SQLiteReplayStore, clock: FakeClock
    ) -> None:
        other = SQLiteReplayStore(sqlite_store.path, clock=clock)
        try:
            assert sqlite_store.add("shared", 10) is True
            assert other.add("shared", 10) is False
        finally:
            other.close()

    def test_uses_wal_mode(self, sqlite_store: SQLiteReplayStore) -> None:
        sqlite_store.add("k", 10)
        with sqlite3.connect(sqlite_store.path) as conn:
            assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)

    def test_stores_a_fixed_size_digest_not_the_key(self, sqlite_store: SQLiteReplayStore) -> None:
        sqlite_store.add("k" * 100_000, 10)
        [(key, _)] = _rows(sqlite_store.path)
        assert len(key) == 32

    def test_expired_rows_are_deleted_every_cleanup_every_adds(
        self, tmp_path: Path, clock: FakeClock
    ) -> None:
        store = SQLiteReplayStore(tmp_path / "r.db", clock=clock, cleanup_every=10)
        try:
            for i in range(9):
                store.add(f"old{i}", 1)
            clock.advance(2)
            assert len(_rows(store.path)) == 9  # no clean-up before the 10th add
            store.add("tenth", 5)
            assert len(_rows(store.path)) == 1
        finally:
            store.close()

    def test_database_failure_is_503(self, sqlite_store: SQLiteReplayStore) -> None:
        with sqlite3.connect(sqlite_store.path) as conn:
            conn.execute("DROP TABLE apisec_replay")
        with pytest.raises(ReplayStoreUnavailable) as info:
            sqlite_store.add("k", 10)
        assert info.value.status == 503
        assert info.value.code == "replay.unavailable"
        assert isinstance(info.value.__cause__, sqlite3.Error)

    def test_unopenable_path_is_a_configuration_error(self, tmp_path: Path) -> None:
        with pytest.raises(ConfigurationError, match="cannot open replay database"):
            SQLiteReplayStore(tmp_path / "missing-dir" / "r.db")


@pytest.mark.server
class TestRedisReplayStore:
    def test_sets_prefixed_digest_key_with_millisecond_ttl(
        self, redis_store: RedisReplayStore, redis_url: str
    ) -> None:
        assert redis_store.add("k" * 100_000, 2.5) is True
        client = redis.Redis.from_url(redis_url)
        try:
            [name] = client.keys(redis_store.prefix + "*")
            assert len(name) == len(redis_store.prefix) + 64
            assert 0 < client.pttl(name) <= 2500
        finally:
            client.close()

    def test_accepts_a_client_instance(self, redis_url: str) -> None:
        client = redis.Redis.from_url(redis_url)
        store = RedisReplayStore(client, prefix=f"test:{uuid.uuid4().hex}:")
        try:
            assert store.add("k", 10) is True
            assert store.add("k", 10) is False
        finally:
            store.close()

    def test_connection_failure_is_503(self) -> None:
        store = RedisReplayStore(f"redis://127.0.0.1:{free_port()}/0")
        try:
            with pytest.raises(ReplayStoreUnavailable) as info:
                store.add("k", 10)
        finally:
            store.close()
        assert info.value.status == 503
        assert isinstance(info.value.__cause__, redis.ConnectionError)

    def test_missing_redis_package_is_a_configuration_error(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setitem(sys.modules, "redis", None)
        with pytest.raises(ConfigurationError, match=r"flask-apisec\[redis\]"):
            RedisReplayStore("redis://127.0.0.1:6379/0")


# --- several processes ---------------------------------------------------------------

_WORKER = """
import json, sys
from wsgi_apisec.replay import replay_store_from_url
url, tag, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
store = replay_store_from_url(url)
keys = [f"{tag}:{i}" for i in range(count)]
print("ready", flush=True)
sys.stdin.readline()
print(json.dumps([k for k in keys if store.add(k, 60)]), flush=True)
"""


def _race_processes(url: str, cwd: Path, count: int = 200) -> list[list[str]]:
    tag = uuid.uuid4().hex
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, url, tag, str(count)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=cwd,
            env=env,
        )
        for _ in range(2)
    ]
    try:
        for p in procs:  # both stores are open before either starts adding
            assert p.stdout is not None
            assert p.stdout.readline() == "ready\n", p.communicate(timeout=30)[1]
        for p in procs:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        outputs = [p.communicate(timeout=60) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in outputs]
    accepted: list[list[str]] = [json.loads(out) for out, _ in outputs]
    assert Counter(k for per_proc in accepted for k in per_proc) == Counter(
        f"{tag}:{i}" for i in range(count)
    )
    return accepted


def test_two_processes_share_a_sqlite_store(tmp_path: Path) -> None:
    _race_processes(f"sqlite:///{tmp_path}/shared.db", tmp_path)


@pytest.mark.server
def test_two_processes_share_a_redis_store(redis_url: str, tmp_path: Path) -> None:
    _race_processes(redis_url, tmp_path)


# --- APISEC_REPLAY_STORE URLs ------------------------------------------------------------


def test_url_memory() -> None:
    store = replay_store_from_url("memory")
    assert isinstance(store, MemoryReplayStore)
    assert store.add("k", 1) is True


def test_url_sqlite_relative_path_is_resolved_against_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    store = replay_store_from_url("sqlite:///data/replay.db")
    assert isinstance(store, SQLiteReplayStore)
    try:
        assert store.path == str(tmp_path / "data" / "replay.db")
        assert store.add("k", 1) is True
        assert (tmp_path / "data" / "replay.db").is_file()
    finally:
        store.close()


def test_url_sqlite_absolute_path_has_four_slashes(tmp_path: Path) -> None:
    path = tmp_path / "abs.db"
    store = replay_store_from_url(f"sqlite:///{path}")  # path starts with "/"
    assert str(path).startswith("/")
    assert isinstance(store, SQLiteReplayStore)
    try:
        assert store.path == str(path)
        assert store.add("k", 1) is True
        assert path.is_file()
    finally:
        store.close()


@pytest.mark.server
def test_url_redis(redis_url: str) -> None:
    store = replay_store_from_url(redis_url)
    assert isinstance(store, RedisReplayStore)
    try:
        key = uuid.uuid4().hex
        assert store.add(key, 5) is True
        assert store.add(key, 5) is False
    finally:
        store.close()


def test_url_rediss_uses_tls() -> None:
    store = replay_store_from_url("rediss://127.0.0.1:6380/2")
    assert isinstance(store, RedisReplayStore)
    pool = store._client.connection_pool
    assert pool.connection_class is redis.SSLConnection
    assert pool.connection_kwargs["db"] == 2
    store.close()


@pytest.mark.parametrize(
    "url",
    [
        "",
        "Memory",
        "memory://",
        "sqlite://",
        "sqlite:///",
        "sqlite://host/replay.db",
        "sqlite:///:memory:",
        "sqlite:///replay.db?mode=ro",
        "redis://",
        "redis:///0",
        "postgresql://db/replay",
        "http://127.0.0.1:6379/0",
        "/var/lib/replay.db",
    ],
)
def test_url_unsupported_is_a_configuration_error(url: str) -> None:
    with pytest.raises(ConfigurationError, match="unsupported replay store URL"):
        replay_store_from_url(url)
