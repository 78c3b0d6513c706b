"""JWKSResolver: caching, rotation, outages, caps and single flight, with a fake clock and a
fake fetcher. ``FakeClock`` and ``FakeFetcher`` are reused by ``test_registry.py``."""

from __future__ import annotations

import json
import logging
import random
import threading
from collections.abc import Callable, Mapping
from itertools import pairwise
from typing import Any

import pytest

from wsgi_apisec.errors import ConfigurationError, KeySourceError, UnknownKey
from wsgi_apisec.fetch import FetchResult
from wsgi_apisec.jwks import JWKSResolver
from wsgi_apisec.keys import KeySet, PrivateKey
from wsgi_apisec.resolvers import KeyQuery

URL = "https://issuer.example/jwks"
ALG = "EdDSA"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeFetcher:
    """Programmable answers; records each call (url, clock time); can hold every call on
    ``gate`` until the test opens it."""

    def __init__(self, clock: FakeClock, body: bytes = b"{}") -> None:
        self.clock = clock
        self.status = 200
        self.body = body
        self.headers: dict[str, str] = {}
        self.error: KeySourceError | None = None
        self.calls: list[tuple[str, float]] = []
        self.entered = threading.Event()
        self.gate: threading.Event | None = None
        self._lock = threading.Lock()

    def answer(self, body: bytes, status: int = 200, headers: Mapping[str, str] = {}) -> None:
        self.body, self.status, self.headers, self.error = body, status, dict(headers), None

    def fail(self) -> None:
        self.error = KeySourceError("down", detail="connection refused")

    @property
    def count(self) -> int:
        return len(self.calls)

    def fetch(self, url: str, *, timeout: float, max_bytes: int) -> FetchResult:
        with self._lock:
            self.calls.append((url, self.clock()))
        self.entered.set()
        if self.gate is not None:
            assert self.gate.wait(10), "test gate never opened"
        if self.error is not None:
            raise KeySourceError(self.error.description, detail=self.error.detail)
        return FetchResult(self.status, self.headers, self.body)


def make_keys(*kids: str) -> dict[str, dict[str, Any]]:
    return {kid: PrivateKey.generate(ALG, kid=kid).public_key().to_jwk() for kid in kids}


def jwks(*jwk: Mapping[str, Any], **extra: Any) -> bytes:
    return json.dumps({"keys": list(jwk), **extra}).encode()


JWK = make_keys("k1", "k2", "k3", "k4", "k5")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def fetcher(clock: FakeClock) -> FakeFetcher:
    return FakeFetcher(clock, jwks(JWK["k1"]))


@pytest.fixture
def make(clock: FakeClock, fetcher: FakeFetcher) -> Callable[..., JWKSResolver]:
    def build(**options: Any) -> JWKSResolver:
        return JWKSResolver(URL, fetcher=fetcher, clock=clock, **options)

    return build


def kids(resolver: JWKSResolver, kid: str | None = None) -> list[str | None]:
    return [k.kid for k in resolver.resolve(KeyQuery(ALG, kid))]


def assert_unknown(resolver: JWKSResolver, kid: str | None) -> None:
    with pytest.raises(UnknownKey) as info:
        resolver.resolve(KeyQuery(ALG, kid))
    assert (info.value.status, info.value.code) == (401, "signature.unknown_key")


def assert_unavailable(resolver: JWKSResolver, kid: str | None = "k1") -> None:
    with pytest.raises(KeySourceError) as info:
        resolver.resolve(KeyQuery(ALG, kid))
    assert (info.value.status, info.value.code) == (503, "keys.unavailable")
    assert info.value.error == "temporarily_unavailable"


# --- basics ----------------------------------------------------------------------------------


def test_resolves_by_kid_and_caches(
    make: Callable[..., JWKSResolver], fetcher: FakeFetcher
) -> None:
    resolver = make()
    assert kids(resolver, "k1") == ["k1"]
    assert kids(resolver, None) == ["k1"]
    current = resolver.keys()
    assert isinstance(current, KeySet)
    assert [k.kid for k in current] == ["k1"]
    assert fetcher.calls == [(URL, 1000.0)]


def test_algorithm_the_key_does_not_allow_is_unknown(make: Callable[..., JWKSResolver]) -> None:
    with pytest.raises(UnknownKey):
        make().resolve(KeyQuery("RS256", "k1"))


def test_symmetric_keys_only_when_allowed(
    make: Callable[..., JWKSResolver], fetcher: FakeFetcher, clock: FakeClock
) -> None:
    fetcher.answer(jwks({"kty": "oct", "kid": "h", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQtMzItYnl0ZXM"}))
    assert_unavailable(make(), "h")  # the only key is skipped: no usable key
    allowed = make(allow_symmetric=True)
    assert [k.kid for k in allowed.resolve(KeyQuery("HS256", "h"))] == ["h"]


# --- rotation --------------------------------------------------------------------------------


def test_rotation_after_ttl(
    make: Callable[..., JWKSResolver], fetcher: FakeFetcher, clock: FakeClock
) -> None:
    resolver = make(refresh_ahead=0)
    assert kids(resolver, "k1") == ["k1"]
    fetcher.answer(jwks(JWK["k2"]))
    clock.advance(299)
    assert kids(resolver, "k1") == ["k1"]
    assert fetcher.count == 1
    clock.advance(1)
    assert kids(resolver, "k2") == ["k2"]
    assert_unknown(resolver, "k1")  # the old kid is gone; the refetch was just now
    assert fetcher.count == 2


def test_rotation_found_by_unknown_kid_refetch(
    make: Callable[..., JWKSResolver], fetcher: FakeFetcher, clock: FakeClock
) -> None:
    resolver = make()
    assert kids(resolver, "k1") == ["k1"]
    fetcher.answer(jwks(JWK["k1"], JWK["k2"]))
    clock.advance(10)
    assert_unknown(resolver, "k2")  # fetched 10 s ago: inside the cooldown, no refetch
    assert fetcher.count == 1
    clock.advance(20)
    assert kids(resolver, "k2") == ["k2"]
    assert fetcher.count == 2
    fetcher.answer(jwks(JWK["k2"]))
    clock.advance(240)  # refresh point of the set fetched at +30: 30 + 300 * 0.8
    assert kids(resolver, "k2") == ["k2"]
    assert_unknown(resolver, "k1")
    assert fetcher.count == 3


# --- Cache-Control ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cache_control", "ttl"),
    [
        ("max-age=120", 120),
        ("public, max-age=3600", 3600),
        ("max-age=5", 60),  # clamped up to min_ttl
        ("max-age=10000000", 86400),  # clamped down to max_ttl
        ("no-store", 60),
        ("no-cache", 60),
        ("private", 300),  # no max-age: the default ttl
    ],
)
def test_cache_control_max_age_honoured_and_clamped(
    make: Callable[..., JWKSResolver],
    fetcher: FakeFetcher,
    clock: FakeClock,
    cache_control: str,
    ttl: float,
) -> None:
    fetcher.answer(jwks(JWK["k1"]), headers={"cache-control": cache_control})
    resolver = make(refresh_ahead=0)
    resolver.keys()
    clock.advance(ttl - 0.5)
    resolver.keys()
    assert fetcher.count == 1
    clock.advance(0.5)
    resolver.keys()
    assert fetcher.count == 2


def test_refresh_ahead_does_not_block_other_threads(
    make: Callable[..., JWKSResolver], fetcher: FakeFetcher, clock: FakeClock
) -> None:
    resolver = make()  # ttl 300, refresh when 20 % is left: at 240 s
    resolver.keys()
    clock.advance(239)
    resolver.keys()
    assert fetcher.count == 1
    clock.advance(1)
    fetcher.answer(jwks(JWK["k1"], JWK["k2"]))
    fetcher.entered.clear()
    gate = fetcher.gate = threading.Event()
    safety = threading.Timer(5, gate.set)
    safety.start()
    refresher = threading.Thread(target=resolver.keys)
    refresher.start()
    try:
        assert fetcher.entered.wait(5)
        # The refresh is in flight: this thread is served the current set at once.
        assert kids(resolver, "k1") == ["k1"]
        assert not gate.is_set()
    finally:
        gate.set()
        refresher.join(5)
        safety.cancel()
    assert fetcher.count == 2
    assert kids(resolver, "k2") == ["k2"]


# --- outages ---------------------------------------------------------------------------------


def test_outage_serves_last_good_set_until_max_stale(
    make: Callable[..., JWKSResolver],
    fetcher: FakeFetcher,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    resolver = make()  # expires at +300, max_stale 6 h
    resolver.keys()
    fetcher.fail()
    clock.advance(250)
    with caplog.at_level(logging.WARNING, logger="wsgi_apisec.jwks"):
        assert kids(resolver, "k1") == ["k1"]
    assert fetcher.count == 2
    assert "connection refused; keeping the last good keys" in caplog.text
    clock.advance(10)
    assert kids(resolver, "k1") == ["k1"]
    assert fetcher.count == 2  # a failed source is not asked again inside the cooldown
    clock.now = 1000 + 300 + 6 * 3600 - 1
    assert kids(resolver, "k1") == ["k1"]
    assert fetcher.count == 3
    clock.advance(1)
    assert_unavailable(resolver)  # past max_stale: 503, not a stale key
    fetcher.answer(jwks(JWK["k2"]))
    clock.advance(30)
    assert kids(resolver, "k2") == ["k2"]


def test_cold_cache_and_source_down_is_503(
    make: Callable[..., JWKSResolver], fetcher: FakeFetcher, clock: FakeClock
) -> None:
    fetcher.fail()
    resolver = make()
    assert_unavailable(resolver)
    clock.advance(29)
    assert_unavailable(resolver)
    assert fetcher.count == 1  # retried only after the cooldown
    fetcher.answer(jwks(JWK["k1"]))
    clock.advance(1)
    assert kids(resolver, "k1") == ["k1"]
    assert fetcher.count == 2


@pytest.mark.parametrize("status", [500, 404, 302, 304, 204])
def test_non_200_is_a_failure(
    make: Callable[..., JWKSResolver], fetcher: FakeFetcher, status: int
) -> None:
    fetcher.answer(jwks(JWK["k1"]), status=status)
    assert_unavailable(make())


# --- unknown-kid storms ----------------------------------------------------------------------


def test_unknown_kid_storm_one_fetch_per_cooldown(
    make: Callable[..., JWKSResolver], fetcher: FakeFetcher, clock: FakeClock
) -> None:
    resolver = make()
    rng = random.Random(7)
    for _ in range(100):
        assert_unknown(resolver, f"kid-{rng.getrandbits(64):x}")
        clock.advance(0.9)  # 100 requests over 90 s: three cooldown windows
    times = [at for _, at in fetcher.calls]
    assert all(later - earlier >= 30 for earlier, later in pairwise(times))
    assert len(times) == 3  # the cold fetch, then one each at >= +30 s and >= +60 s


def test_concurrent_unknown_kid_storm_one_fetch(
    make: Callable[..., JWKSResolver], fetcher: FakeFetcher, clock: FakeClock
) -> None:
    resolver = make()
    resolver.keys()
    clock.advance(31)
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            resolver.resolve(KeyQuery(ALG, f"made-up-{i}"))
        except UnknownKey as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(100)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(errors) == 100
    assert fetcher.count == 2


# --- validation of a new document ------------------------------------------------------------

BAD_DOCUMENTS = {
    "malformed-json": b'{"keys": [',
    "not-an-object": b'[{"kty": "OKP"}]',
    "keys-not-a-list": b'{"keys": {"kty": "OKP"}}',
    "duplicate-member": b'{"keys": [], "keys": []}',
    "no-usable-key": jwks({**JWK["k2"], "use": "enc"}, {"kty": "XYZ", "kid": "odd"}),
    "empty-set": jwks(),
    "oversize": jwks(JWK["k2"], pad="x" * 2000),
    "too-many-keys": jwks(*JWK.values()),
}


@pytest.mark.parametrize("name", BAD_DOCUMENTS)
def test_bad_document_rejected_old_set_kept(
    make: Callable[..., JWKSResolver],
    fetcher: FakeFetcher,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
    name: str,
) -> None:
    resolver = make(max_bytes=1500, max_keys=4)
    resolver.keys()
    fetcher.answer(BAD_DOCUMENTS[name])
    clock.advance(301)
    with caplog.at_level(logging.WARNING, logger="wsgi_apisec.jwks"):
        assert kids(resolver, "k1") == ["k1"]
    assert fetcher.count == 2
    [record] = [r for r in caplog.records if r.name == "wsgi_apisec.jwks"]
    assert record.levelno == logging.WARNING
    assert "keeping the last good keys" in record.getMessage()


@pytest.mark.parametrize("name", BAD_DOCUMENTS)
def test_bad_document_on_cold_cache_is_503(
    make: Callable[..., JWKSResolver], fetcher: FakeFetcher, name: str
) -> None:
    fetcher.answer(BAD_DOCUMENTS[name])
    assert_unavailable(make(max_bytes=1500, max_keys=4), None)


def test_document_at_the_caps_is_accepted(
    make: Callable[..., JWKSResolver], fetcher: FakeFetcher
) -> None:
    body = jwks(*list(JWK.values())[:4])
    fetcher.answer(body)
    resolver = make(max_bytes=len(body), max_keys=4)
    assert len(resolver.keys()) == 4


# --- single flight ---------------------------------------------------------------------------


def _cold_start(resolver: JWKSResolver, fetcher: FakeFetcher, n: int) -> list[object]:
    gate = fetcher.gate = threading.Event()
    start = threading.Barrier(n)
    results: list[object] = []
    lock = threading.Lock()

    def worker() -> None:
        start.wait()
        try:
            out: object = kids(resolver, "k1")
        except KeySourceError as exc:
            out = exc
        with lock:
            results.append(out)

    threads = [threading.Thread(target=worker) for _ in range(n)]
    for t in threads:
        t.start()
    assert fetcher.entered.wait(5)
    threading.Event().wait(0.2)  # let the others reach the in-flight fetch and wait on it
    gate.set()
    for t in threads:
        t.join(10)
    return results


def test_concurrent_cold_start_fetches_once(
    make: Callable[..., JWKSResolver], fetcher: FakeFetcher
) -> None:
    results = _cold_start(make(), fetcher, 20)
    assert results == [["k1"]] * 20
    assert fetcher.count == 1


def test_concurrent_cold_start_failure_fetches_once(
    make: Callable[..., JWKSResolver], fetcher: FakeFetcher
) -> None:
    fetcher.fail()
    results = _cold_start(make(), fetcher, 20)
    assert len(results) == 20
    assert all(isinstance(r, KeySourceError) and r.status == 503 for r in results)
    assert fetcher.count == 1


# --- configuration ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url", ["http://issuer.example/jwks", "ftp://issuer.example/jwks", "https://u:p@i.example/"]
)
def test_insecure_url_refused_at_construction(url: str) -> None:
    with pytest.raises(ConfigurationError):
        JWKSResolver(url)


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080/jwks", "http://[::1]/jwks"])
def test_http_allowed_for_loopback(url: str) -> None:
    assert JWKSResolver(url).url == url


def test_http_allowed_by_opt_in() -> None:
    assert JWKSResolver("http://issuer.internal/jwks", allow_http=True)


@pytest.mark.parametrize(
    "options",
    [
        {"min_ttl": 400},
        {"ttl": 100000},
        {"min_ttl": 0},
        {"refresh_ahead": 1.0},
        {"refresh_ahead": -0.1},
        {"unknown_kid_cooldown": -1},
        {"max_stale": float("inf")},
        {"max_keys": 0},
        {"max_bytes": 0},
        {"timeout": 0},
    ],
)
def test_bad_settings_refused(options: dict[str, float]) -> None:
    with pytest.raises(ConfigurationError):
        JWKSResolver(URL, **options)  # type: ignore[arg-type]
