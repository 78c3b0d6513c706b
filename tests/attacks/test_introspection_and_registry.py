"""The other remote key sources over real HTTP on 127.0.0.1: RFC 7662 introspection for
opaque tokens, and a participant registry for G2P Connect signatures (the sender id comes
from the *unverified* message, so it is attacker-chosen)."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from werkzeug.test import TestResponse

from tests.attacks.harness import (
    G2P_SENDER,
    Parties,
    Setup,
    Target,
    bearer,
    challenge,
    passed,
    refused,
)
from tests.attacks.keyserver import HANG, Answer, KeyServer, key_server
from tests.attacks.test_message_signatures import envelope, g2p_post
from wsgi_apisec.registry import RegistryResolver

OPAQUE = "opaque-" + "a" * 32
TIMEOUT = 0.5


def active(**claims: object) -> bytes:
    now = int(time.time())
    doc = {
        "active": True,
        "scope": "read",
        "client_id": "c",
        "sub": "s",
        "exp": now + 300,
        **claims,
    }
    return json.dumps(doc).encode()


@pytest.fixture
def endpoint() -> Iterator[KeyServer]:
    with key_server(active()) as server:
        yield server


def introspecting(
    build_target: Callable[[Setup], Target], setup: Setup, endpoint: KeyServer, **options: Any
) -> Target:
    options = {
        "endpoint": endpoint.url,
        "client_id": "rs",
        "client_secret": "rs-secret",
        "timeout": TIMEOUT,
        **options,
    }
    return build_target(setup.replace(introspection=options))


def get(target: Target, token: str = OPAQUE) -> TestResponse:
    return target.client.get("/read", headers=bearer(token))


def unavailable(
    resp: TestResponse, target: Target, detail: str, envelope: str | None = None
) -> None:
    if envelope is not None:
        refused(resp, target, 503, "keys.unavailable", envelope=envelope)
        return
    refused(resp, target, 503, "keys.unavailable", error="temporarily_unavailable", detail=detail)


DOWN = "the token introspection endpoint is unavailable"


def test_positive_control_opaque_token_is_introspected(
    build_target: Callable[[Setup], Target], setup: Setup, endpoint: KeyServer
) -> None:
    target = introspecting(build_target, setup, endpoint)
    passed(get(target), target, "/read")
    passed(get(target), target, "/read")
    assert endpoint.hits == 1  # the positive answer is cached


@pytest.mark.parametrize(
    "answer",
    [
        Answer(status=500, body=b"{}"),
        Answer(hang_up=True),
        Answer(body=b"<html>login</html>"),
        Answer(body=b'{"active": "true"}'),
        Answer(status=302, headers=(("Location", "/elsewhere"),)),
    ],
    ids=["http-500", "hang-up", "html", "active-not-a-boolean", "redirect"],
)
def test_introspection_endpoint_down_or_lying_is_503(
    build_target: Callable[[Setup], Target], setup: Setup, endpoint: KeyServer, answer: Answer
) -> None:
    endpoint.answer = answer
    target = introspecting(build_target, setup, endpoint)
    unavailable(get(target), target, DOWN)
    assert "/elsewhere" not in endpoint.paths


@pytest.mark.parametrize(
    "answer", [Answer(delay=HANG), Answer(drip_headers=0.05)], ids=["no-answer", "dripping-headers"]
)
def test_introspection_endpoint_slow_hits_the_deadline(
    build_target: Callable[[Setup], Target], setup: Setup, endpoint: KeyServer, answer: Answer
) -> None:
    endpoint.answer = answer
    target = introspecting(build_target, setup, endpoint)
    start = time.monotonic()
    unavailable(get(target), target, DOWN)
    assert time.monotonic() - start < TIMEOUT + 2.0  # a bound, not a benchmark


def test_introspection_inactive_token(
    build_target: Callable[[Setup], Target], setup: Setup, endpoint: KeyServer
) -> None:
    endpoint.answer = Answer(body=b'{"active": false}')
    target = introspecting(build_target, setup, endpoint)
    www = challenge("invalid_token", "the token is not active")
    refused(get(target), target, 401, "token.inactive", error="invalid_token", www_authenticate=www)


def test_introspection_garbage_token_storm_keeps_good_answers_cached(
    build_target: Callable[[Setup], Target], setup: Setup, endpoint: KeyServer
) -> None:
    """Made-up tokens each cost one question (only the server can tell), but their "not
    active" answers must not push a good token's answer out of the cache."""
    target = introspecting(build_target, setup, endpoint, cache_size=4)
    passed(get(target), target, "/read")
    endpoint.answer = Answer(body=b'{"active": false}')
    for _ in range(10):
        assert get(target, "made-up-" + secrets.token_hex(8)).status_code == 401
    assert endpoint.hits == 11 and target.app.calls == 1
    passed(get(target), target, "/read")
    assert endpoint.hits == 11  # the good answer was still cached


# --- a participant registry behind the G2P Connect route -------------------------------------


@pytest.fixture
def registry(parties: Parties) -> Iterator[KeyServer]:
    with key_server(b"{}") as server:
        server.answer = Answer(status=404, body=b'{"error": "no such participant"}')
        jwk = json.dumps(parties.g2p.public_key().to_jwk()).encode()
        server.routes[f"/keys/{G2P_SENDER}"] = Answer(body=jwk)
        yield server


def with_registry(
    build_target: Callable[[Setup], Target], setup: Setup, registry: KeyServer, **options: Any
) -> Target:
    base = registry.url.rsplit("/", 1)[0]

    def resolver() -> RegistryResolver:
        return RegistryResolver(base, path_template="/keys/{owner}", timeout=TIMEOUT, **options)

    return build_target(setup.replace(signature_keys=resolver))


def test_registry_down_with_nothing_cached_is_503_in_the_g2p_envelope(
    build_target: Callable[[Setup], Target], setup: Setup, registry: KeyServer, parties: Parties
) -> None:
    registry.routes.clear()
    registry.answer = Answer(status=503, body=b"down")
    target = with_registry(build_target, setup, registry)
    unavailable(
        g2p_post(target, parties.g2p, envelope()), target, "", envelope="err.keys.unavailable"
    )


@pytest.mark.parametrize("sender", ["../admin", "a/../../b", "x%2f..", "a b", ".."])
def test_registry_sender_id_cannot_leave_its_path_segment(
    build_target: Callable[[Setup], Target],
    setup: Setup,
    registry: KeyServer,
    parties: Parties,
    sender: str,
) -> None:
    target = with_registry(build_target, setup, registry)
    resp = g2p_post(target, parties.g2p, envelope(sender=sender), sender=sender)
    refused(resp, target, 401, "signature.unknown_key", envelope="err.signature.invalid")
    assert registry.hits == 0


def test_registry_unknown_sender_storm_keeps_known_participants_cached(
    build_target: Callable[[Setup], Target], setup: Setup, registry: KeyServer, parties: Parties
) -> None:
    """Random sender ids each cost one lookup (nothing else can tell they are unknown), but
    their "no such participant" answers must not push a known participant out of the cache."""
    target = with_registry(build_target, setup, registry, max_owners=8)
    passed(g2p_post(target, parties.g2p, envelope("m-0")), target, "/g2p", envelope("m-0"))
    assert registry.hits == 1
    for _ in range(20):
        sender = "spar-" + secrets.token_hex(4)
        resp = g2p_post(target, parties.g2p, envelope(sender=sender), sender=sender)
        assert resp.status_code == 401 and target.app.calls == 1
    assert registry.hits == 21
    passed(g2p_post(target, parties.g2p, envelope("m-1")), target, "/g2p", envelope("m-1"))
    assert registry.hits == 21  # the known participant was still cached
