"""The issuer's JWKS over real HTTP on 127.0.0.1: outage, slowness, bad documents, a key
flood and an unknown-``kid`` storm, through both entry points (DESIGN.md "Keys rotate
without restarts"; README "Keys and key sources" for the defaults used here).

The cache runs on an injected clock; only the deadline tests wait in real time.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from werkzeug.test import TestResponse

from flask_apisec.testing import APISecClient, TestIssuer
from tests.attacks.harness import Setup, Target, bearer, challenge, passed, refused
from tests.attacks.keyserver import HANG, Answer, KeyServer, key_server

TTL = 300.0
MAX_STALE = 600.0
COOLDOWN = 30.0
TIMEOUT = 0.5


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def jwks(issuer: TestIssuer) -> Iterator[KeyServer]:
    with key_server(json.dumps(issuer.jwks).encode()) as server:
        yield server


@pytest.fixture
def clock() -> Clock:
    return Clock()


def remote(
    build_target: Callable[[Setup], Target],
    setup: Setup,
    jwks: KeyServer,
    clock: Clock,
    **options: Any,
) -> Target:
    """The issuer's keys from ``jwks`` only, with the cache on ``clock``."""
    jwks_options = {"clock": clock, "timeout": TIMEOUT, "max_stale": MAX_STALE, **options}
    return build_target(
        setup.replace(issuer_options={"jwks_uri": jwks.url, "jwks_options": jwks_options})
    )


def get(target: Target, token: str) -> TestResponse:
    return target.client.get("/read", headers=bearer(token))


def unavailable(resp: TestResponse, target: Target) -> None:
    """A key source that is down with nothing usable is 503, not 401, and no challenge."""
    refused(
        resp,
        target,
        503,
        "keys.unavailable",
        error="temporarily_unavailable",
        detail="the key source is unavailable",
    )


def test_outage_serves_the_last_good_keys_then_503_past_max_stale(
    build_target: Callable[[Setup], Target],
    setup: Setup,
    jwks: KeyServer,
    clock: Clock,
    issuer: TestIssuer,
) -> None:
    target = remote(build_target, setup, jwks, clock)
    passed(get(target, issuer.token("read")), target, "/read")
    jwks.answer = Answer(status=500, body=b"down")
    clock.now += TTL + 1  # expired: a refresh is due, and fails
    passed(get(target, issuer.token("read")), target, "/read")
    clock.now += MAX_STALE - 2  # still within max_stale past expiry
    passed(get(target, issuer.token("read")), target, "/read")
    assert jwks.hits == 3  # one refetch per cooldown while down
    clock.now += 2  # past max_stale, nothing fresh
    target.app.calls = 0
    unavailable(get(target, issuer.token("read")), target)
    assert any("last good answer expired" in r.getMessage() for r in target.logs)
    # Recovery needs no restart: once the endpoint answers again (after the cooldown).
    jwks.answer = Answer(body=json.dumps(issuer.jwks).encode())
    clock.now += COOLDOWN
    passed(get(target, issuer.token("read")), target, "/read")


@pytest.mark.parametrize(
    "answer",
    [Answer(delay=HANG), Answer(drip=0.05), Answer(drip_headers=0.05), Answer(hang_up=True)],
    ids=["no-answer", "dripping-body", "dripping-headers", "hang-up"],
)
def test_slow_endpoint_hits_the_fetch_deadline(
    build_target: Callable[[Setup], Target],
    setup: Setup,
    jwks: KeyServer,
    clock: Clock,
    issuer: TestIssuer,
    answer: Answer,
) -> None:
    target = remote(build_target, setup, jwks, clock)
    jwks.answer = answer
    start = time.monotonic()
    resp = get(target, issuer.token("read"))
    elapsed = time.monotonic() - start
    unavailable(resp, target)
    assert elapsed < TIMEOUT + 2.0  # a bound on the deadline, not a benchmark
    assert jwks.hits == 1


BAD_DOCUMENTS = {
    "malformed-json": Answer(body=b'{"keys": [ {"kty": "EC",'),
    "html": Answer(body=b"<html>maintenance</html>", headers=(("Content-Type", "text/html"),)),
    "keys-not-an-array": Answer(body=b'{"keys": "all of them"}'),
    "no-usable-key": Answer(body=b'{"keys": [{"kty": "EC", "use": "enc"}]}'),
    "duplicate-members": Answer(body=b'{"keys": [], "keys": []}'),
    "oversized": Answer(body=b'{"keys": [], "pad": "' + b"x" * (512 * 1024) + b'"}'),
    "redirect": Answer(status=302, headers=(("Location", "/evil-jwks"),)),
    "not-found": Answer(status=404, body=b"{}"),
}


@pytest.mark.parametrize("answer", list(BAD_DOCUMENTS.values()), ids=list(BAD_DOCUMENTS))
def test_bad_document_refused_and_the_last_good_set_kept(
    build_target: Callable[[Setup], Target],
    setup: Setup,
    jwks: KeyServer,
    clock: Clock,
    issuer: TestIssuer,
    answer: Answer,
) -> None:
    good = jwks.answer
    jwks.answer = answer
    cold = remote(build_target, setup, jwks, clock)
    unavailable(get(cold, issuer.token("read")), cold)
    # Warm: the good set first, then the bad document when a refresh is due.
    jwks.answer = good
    warm = remote(build_target, setup, jwks, clock)
    passed(get(warm, issuer.token("read")), warm, "/read")
    jwks.answer = answer
    clock.now += TTL + 1
    passed(get(warm, issuer.token("read")), warm, "/read")
    assert jwks.hits == 3
    assert "/evil-jwks" not in jwks.paths  # a redirect is never followed


def _flood(issuer: TestIssuer, count: int) -> bytes:
    jwk = issuer.key.to_jwk()
    return json.dumps({"keys": [{**jwk, "kid": f"k{i}"} for i in range(count)]}).encode()


@pytest.mark.parametrize(
    ("max_bytes", "reason"),
    [(512 * 1024, "bytes > 524288"), (8 * 1024 * 1024, "JWKS has more than 100 keys")],
    ids=["size-cap", "key-count-cap"],
)
def test_ten_thousand_keys(
    build_target: Callable[[Setup], Target],
    setup: Setup,
    jwks: KeyServer,
    clock: Clock,
    issuer: TestIssuer,
    max_bytes: int,
    reason: str,
) -> None:
    jwks.answer = Answer(body=_flood(issuer, 10_000))
    target = remote(build_target, setup, jwks, clock, max_bytes=max_bytes)
    start = time.monotonic()
    unavailable(get(target, issuer.token("read")), target)
    assert time.monotonic() - start < 2.0  # no key is parsed: a bound, not a benchmark
    assert any(reason in r.getMessage() for r in target.logs), [r.getMessage() for r in target.logs]


def test_unknown_kid_storm_refetches_at_most_once_per_cooldown(
    build_target: Callable[[Setup], Target],
    setup: Setup,
    jwks: KeyServer,
    clock: Clock,
    issuer: TestIssuer,
) -> None:
    target = remote(build_target, setup, jwks, clock)
    description = "no key of the issuer matches the token"
    www = challenge("invalid_token", description)
    for phase in range(2):
        for _ in range(100):
            token = issuer.token("read", header={"kid": secrets.token_urlsafe(8)})
            refused(
                get(target, token),
                target,
                401,
                "token.key",
                error="invalid_token",
                www_authenticate=www,
            )
        assert jwks.hits == 1 + phase  # the cold fetch, then one refetch per cooldown
        clock.now += COOLDOWN + 1
    # The real issuer's tokens kept working through the storm.
    passed(get(target, issuer.token("read")), target, "/read")
    assert jwks.hits == 2


def test_kid_traversal_and_unknown_issuer_fetch_nothing(
    build_target: Callable[[Setup], Target],
    setup: Setup,
    jwks: KeyServer,
    clock: Clock,
    issuer: TestIssuer,
) -> None:
    target = remote(build_target, setup, jwks, clock)
    refused(
        get(target, issuer.token("read", header={"kid": "../../etc/passwd"})),
        target,
        401,
        "token.header",
        error="invalid_token",
        www_authenticate=challenge("invalid_token", "the token 'kid' is not acceptable"),
    )
    refused(
        get(target, issuer.token("read", iss="https://evil.example")),
        target,
        401,
        "token.issuer",
        error="invalid_token",
        www_authenticate=challenge("invalid_token", "the token issuer is not trusted"),
    )
    assert jwks.hits == 0


@pytest.mark.parametrize(("status", "expected"), [(200, 200), (500, 503)], ids=["up", "down"])
def test_cold_cache_under_concurrent_requests_is_one_fetch(
    build_target: Callable[[Setup], Target],
    setup: Setup,
    jwks: KeyServer,
    clock: Clock,
    issuer: TestIssuer,
    status: int,
    expected: int,
) -> None:
    """20 requests at once on a cold cache wait for one fetch; when it fails, they all get
    503 from that one failure rather than 20 fetches."""
    jwks.answer = Answer(status=status, body=jwks.answer.body, delay=0.3)
    target = remote(build_target, setup, jwks, clock)
    token = issuer.token("read")
    start = threading.Barrier(20)
    statuses: list[int] = []

    def call() -> None:
        client = target.client.application.test_client()
        assert isinstance(client, APISecClient)
        start.wait()
        statuses.append(get_with(client, token).status_code)

    threads = [threading.Thread(target=call) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert statuses == [expected] * 20
    assert jwks.hits == 1


def get_with(client: APISecClient, token: str) -> TestResponse:
    return client.get("/read", headers=bearer(token))
