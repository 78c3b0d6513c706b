"""RegistryResolver: per-participant keys from an OCEN / OpenG2P-style registry."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from tests.certs import make_cert, pem
from tests.test_jwks import JWK, FakeClock, FakeFetcher, jwks
from wsgi_apisec.errors import ConfigurationError, KeySourceError, ParseError, UnknownKey
from wsgi_apisec.fetch import FetchResult
from wsgi_apisec.keys import PrivateKey
from wsgi_apisec.registry import RegistryResolver, openg2p_partner_id, parse_registry_key
from wsgi_apisec.resolvers import KeyQuery

BASE = "https://registry.example/v4"
ALG = "EdDSA"


class RoutingFetcher(FakeFetcher):
    """Answers per URL; an unknown URL is a 404."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock)
        self.routes: dict[str, tuple[int, bytes]] = {}

    def fetch(self, url: str, *, timeout: float, max_bytes: int) -> FetchResult:
        answer = super().fetch(url, timeout=timeout, max_bytes=max_bytes)
        status, body = self.routes.get(url, (404, b'{"error":"not found"}'))
        return FetchResult(status, answer.headers, body)


def doc(value: Any) -> bytes:
    return json.dumps(value).encode()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def fetcher(clock: FakeClock) -> RoutingFetcher:
    f = RoutingFetcher(clock)
    f.routes[f"{BASE}/participant-roles/lender-1"] = (200, doc({"publicKey": JWK["k1"]}))
    return f


@pytest.fixture
def make(clock: FakeClock, fetcher: RoutingFetcher) -> Callable[..., RegistryResolver]:
    def build(**options: Any) -> RegistryResolver:
        return RegistryResolver.ocen(BASE, fetcher=fetcher, clock=clock, **options)

    return build


def resolve(
    resolver: RegistryResolver, owner: str | None, kid: str | None = None
) -> list[str | None]:
    return [k.kid for k in resolver.resolve(KeyQuery(ALG, kid, owner))]


def assert_unknown(resolver: RegistryResolver, owner: str | None, kid: str | None = None) -> None:
    with pytest.raises(UnknownKey) as info:
        resolver.resolve(KeyQuery(ALG, kid, owner))
    assert (info.value.status, info.value.code) == (401, "signature.unknown_key")


# --- URL forms -------------------------------------------------------------------------------


def test_ocen_participant_roles_url(
    make: Callable[..., RegistryResolver], fetcher: RoutingFetcher
) -> None:
    assert resolve(make(), "lender-1") == ["k1"]
    assert [url for url, _ in fetcher.calls] == [f"{BASE}/participant-roles/lender-1"]


def test_openg2p_partner_url(clock: FakeClock, fetcher: RoutingFetcher) -> None:
    base = "https://keymanager.example/v1/keymanager/"
    fetcher.routes[f"{base}keys/PARTNER_BANK_ONE_2"] = (200, doc(JWK["k2"]))
    resolver = RegistryResolver.openg2p(base, fetcher=fetcher, clock=clock)
    assert resolve(resolver, "bank-one-2") == ["k2"]
    assert fetcher.calls[0][0] == "https://keymanager.example/v1/keymanager/keys/PARTNER_BANK_ONE_2"
    assert openg2p_partner_id("spar-Mapper-1") == "PARTNER_SPAR_MAPPER_1"


def test_reserved_characters_are_percent_encoded(make: Callable[..., RegistryResolver]) -> None:
    assert make().url_for("a:b@c") == f"{BASE}/participant-roles/a%3Ab%40c"


# --- owner ids from the message cannot leave their path segment -------------------------------


@pytest.mark.parametrize(
    "owner",
    [
        "..",
        ".",
        "../admin",
        "..%2fadmin",
        "a/b",
        "/etc",
        "a%2fb",
        "a%2Fb",
        "a?x=1",
        "a#frag",
        "a\\b",
        "a b",
        " a",
        "a\nb",
        "\u00fcber",
        "a\u2215b",  # DIVISION SLASH
        "",
        "x" * 129,
    ],
)
def test_owner_traversal_attempts_rejected(
    make: Callable[..., RegistryResolver], fetcher: RoutingFetcher, owner: str
) -> None:
    resolver = make()
    assert_unknown(resolver, owner)
    with pytest.raises(UnknownKey):
        resolver.url_for(owner)
    assert fetcher.calls == []


def test_owner_is_required(make: Callable[..., RegistryResolver], fetcher: RoutingFetcher) -> None:
    assert_unknown(make(), None)
    assert fetcher.calls == []


def test_id_transform_output_is_checked_too(clock: FakeClock, fetcher: RoutingFetcher) -> None:
    resolver = RegistryResolver(
        BASE,
        path_template="/keys/{owner}",
        id_transform=lambda o: "../" + o,
        fetcher=fetcher,
        clock=clock,
    )
    assert_unknown(resolver, "lender-1")
    assert fetcher.calls == []


def test_longest_valid_owner_accepted(make: Callable[..., RegistryResolver]) -> None:
    owner = "x" * 128
    assert make().url_for(owner).endswith("/" + owner)


# --- negative answers and outages ------------------------------------------------------------


def test_404_is_cached_negatively_for_the_cooldown(
    make: Callable[..., RegistryResolver], fetcher: RoutingFetcher, clock: FakeClock
) -> None:
    resolver = make()
    assert_unknown(resolver, "lender-2")
    assert_unknown(resolver, "lender-2")
    clock.advance(29)
    assert_unknown(resolver, "lender-2")
    assert fetcher.count == 1
    fetcher.routes[f"{BASE}/participant-roles/lender-2"] = (200, doc(JWK["k2"]))
    clock.advance(1)
    assert resolve(resolver, "lender-2") == ["k2"]
    assert fetcher.count == 2


def test_404_after_a_key_revokes_it(
    make: Callable[..., RegistryResolver], fetcher: RoutingFetcher, clock: FakeClock
) -> None:
    resolver = make()
    assert resolve(resolver, "lender-1") == ["k1"]
    del fetcher.routes[f"{BASE}/participant-roles/lender-1"]
    clock.advance(300)
    assert_unknown(resolver, "lender-1")


@pytest.mark.parametrize("status", [500, 503, 403, 302])
def test_server_errors_are_outages_not_negatives(
    make: Callable[..., RegistryResolver], fetcher: RoutingFetcher, status: int
) -> None:
    fetcher.routes[f"{BASE}/participant-roles/lender-1"] = (status, b"")
    with pytest.raises(KeySourceError) as info:
        make().resolve(KeyQuery(ALG, None, "lender-1"))
    assert (info.value.status, info.value.code) == (503, "keys.unavailable")


def test_outage_serves_last_good_key_until_max_stale(
    make: Callable[..., RegistryResolver], fetcher: RoutingFetcher, clock: FakeClock
) -> None:
    resolver = make(max_stale=600)
    assert resolve(resolver, "lender-1") == ["k1"]
    fetcher.fail()
    clock.advance(300 + 599)
    assert resolve(resolver, "lender-1") == ["k1"]
    clock.advance(1)
    with pytest.raises(KeySourceError):
        resolver.resolve(KeyQuery(ALG, None, "lender-1"))
    assert fetcher.count == 2


def test_cold_owner_and_registry_down_is_503(
    make: Callable[..., RegistryResolver], fetcher: RoutingFetcher
) -> None:
    fetcher.fail()
    with pytest.raises(KeySourceError) as info:
        make().resolve(KeyQuery(ALG, None, "lender-1"))
    assert info.value.status == 503


# --- kid -------------------------------------------------------------------------------------


def test_kid_must_match_when_both_have_one(
    make: Callable[..., RegistryResolver], fetcher: RoutingFetcher
) -> None:
    resolver = make()
    assert resolve(resolver, "lender-1", "k1") == ["k1"]
    assert resolve(resolver, "lender-1", None) == ["k1"]
    assert_unknown(resolver, "lender-1", "k2")
    assert fetcher.count == 1  # the refetch for k2 waits for the cooldown


def test_registry_key_without_kid_fits_any_kid(
    make: Callable[..., RegistryResolver], fetcher: RoutingFetcher
) -> None:
    bare = {k: v for k, v in JWK["k1"].items() if k != "kid"}
    fetcher.routes[f"{BASE}/participant-roles/lender-1"] = (200, doc(bare))
    assert resolve(make(), "lender-1", "whatever") == [None]


def test_exact_kid_preferred_over_kidless_keys(
    make: Callable[..., RegistryResolver], fetcher: RoutingFetcher
) -> None:
    bare = {k: v for k, v in JWK["k3"].items() if k != "kid"}
    fetcher.routes[f"{BASE}/participant-roles/lender-1"] = (200, jwks(JWK["k1"], bare))
    resolver = make()
    assert resolve(resolver, "lender-1", "k1") == ["k1"]
    assert resolve(resolver, "lender-1", "zz") == [None]
    assert resolve(resolver, "lender-1", None) == ["k1", None]


def test_rotated_key_found_by_refetch_after_cooldown(
    make: Callable[..., RegistryResolver], fetcher: RoutingFetcher, clock: FakeClock
) -> None:
    resolver = make()
    assert resolve(resolver, "lender-1", "k1") == ["k1"]
    fetcher.routes[f"{BASE}/participant-roles/lender-1"] = (200, doc({"publicKey": JWK["k2"]}))
    clock.advance(31)
    assert resolve(resolver, "lender-1", "k2") == ["k2"]
    assert fetcher.count == 2


# --- response shapes -------------------------------------------------------------------------

_ED = PrivateKey.generate("EdDSA")
_ED_PEM = (
    _ED.public_key()
    .key.public_bytes(  # type: ignore[union-attr]
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    .decode()
)


def _cert_pem() -> str:
    return pem(make_cert("lender-1"))


GOOD_SHAPES: dict[str, tuple[Any, str, str | None]] = {
    "bare-jwk": (JWK["k1"], ALG, "k1"),
    "publicKey-jwk": ({"publicKey": JWK["k1"]}, ALG, "k1"),
    "public_key-jwk": ({"public_key": JWK["k1"]}, ALG, "k1"),
    "jwk-jwk": ({"jwk": JWK["k1"]}, ALG, "k1"),
    "jwks": ({"keys": [JWK["k1"]]}, ALG, "k1"),
    "ocen-participant": (
        {"participantId": "lender-1", "roles": ["LENDER"], "publicKey": JWK["k1"]},
        ALG,
        "k1",
    ),
    "publicKey-pem-spki": ({"publicKey": _ED_PEM}, ALG, None),
    "public_key-pem-certificate": ({"public_key": _cert_pem()}, "ES256", None),
}


@pytest.mark.parametrize("shape", GOOD_SHAPES)
def test_response_shapes_accepted(
    make: Callable[..., RegistryResolver], fetcher: RoutingFetcher, shape: str
) -> None:
    body, alg, kid = GOOD_SHAPES[shape]
    fetcher.routes[f"{BASE}/participant-roles/lender-1"] = (200, doc(body))
    found = make().resolve(KeyQuery(alg, None, "lender-1"))
    assert [k.kid for k in found] == [kid]


BAD_SHAPES: dict[str, Any] = {
    "no-key": {"participantId": "lender-1"},
    "two-wrappers": {"publicKey": JWK["k1"], "jwk": JWK["k2"]},
    "jwk-as-pem": {"jwk": _ED_PEM},
    "not-pem": {"publicKey": "MIIBIjANBgkq"},
    "number": {"publicKey": 42},
    "private-pem": {"publicKey": PrivateKey.generate("ES256").to_pem().decode()},
    "encryption-key": {"publicKey": {**JWK["k1"], "use": "enc"}},
    "symmetric-key": {"kty": "oct", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQtMzItYnl0ZXM"},
    "unknown-kty": {"kty": "XYZ"},
    "array": [JWK["k1"]],
    "empty-jwks": {"keys": []},
}


@pytest.mark.parametrize("shape", BAD_SHAPES)
def test_bad_response_shapes_rejected(
    make: Callable[..., RegistryResolver], fetcher: RoutingFetcher, shape: str
) -> None:
    fetcher.routes[f"{BASE}/participant-roles/lender-1"] = (200, doc(BAD_SHAPES[shape]))
    with pytest.raises(KeySourceError) as info:
        make().resolve(KeyQuery(ALG, None, "lender-1"))
    assert info.value.status == 503
    assert "rejected" in info.value.detail or "no usable key" in info.value.detail


@pytest.mark.parametrize("shape", [s for s in BAD_SHAPES if s not in ("empty-jwks",)])
def test_parse_registry_key_raises_parse_error(shape: str) -> None:
    with pytest.raises((ParseError, ConfigurationError)):
        parse_registry_key(doc(BAD_SHAPES[shape]))


# --- caching ---------------------------------------------------------------------------------


def test_owner_cache_is_lru_bounded(
    make: Callable[..., RegistryResolver], fetcher: RoutingFetcher
) -> None:
    for name in ("a", "b", "c"):
        fetcher.routes[f"{BASE}/participant-roles/{name}"] = (200, doc(JWK["k1"]))
    resolver = make(max_owners=2)
    for name in ("a", "b", "c"):
        resolve(resolver, name)
    assert fetcher.count == 3
    resolve(resolver, "b")
    resolve(resolver, "c")
    assert fetcher.count == 3
    resolve(resolver, "a")  # evicted as least recently used
    assert fetcher.count == 4


def test_owners_are_cached_separately(
    make: Callable[..., RegistryResolver], fetcher: RoutingFetcher
) -> None:
    fetcher.routes[f"{BASE}/participant-roles/lender-2"] = (200, doc(JWK["k2"]))
    resolver = make()
    assert resolve(resolver, "lender-1") == ["k1"]
    assert resolve(resolver, "lender-2") == ["k2"]
    assert_unknown(resolver, "lender-2", "k1")


def test_concurrent_requests_for_one_owner_fetch_once(
    make: Callable[..., RegistryResolver], fetcher: RoutingFetcher
) -> None:
    resolver = make()
    fetcher.gate = threading.Event()
    results: list[list[str | None]] = []
    threads = [
        threading.Thread(target=lambda: results.append(resolve(resolver, "lender-1")))
        for _ in range(20)
    ]
    for t in threads:
        t.start()
    assert fetcher.entered.wait(5)
    threading.Event().wait(0.2)
    fetcher.gate.set()
    for t in threads:
        t.join(10)
    assert results == [["k1"]] * 20
    assert fetcher.count == 1


# --- configuration ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("base", "options"),
    [
        ("http://registry.example", {}),
        ("https://registry.example?x=1", {}),
        (BASE, {"path_template": "/participant-roles"}),
        (BASE, {"path_template": "/{owner}/{owner}"}),
        (BASE, {"path_template": "participant-roles/{owner}"}),
        (BASE, {"max_owners": 0}),
        (BASE, {"min_ttl": 0}),
    ],
)
def test_bad_configuration_refused(base: str, options: Mapping[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        RegistryResolver(base, **options)


def test_loopback_http_registry_allowed() -> None:
    resolver = RegistryResolver.ocen("http://127.0.0.1:9000/")
    assert resolver.url_for("p1") == "http://127.0.0.1:9000/participant-roles/p1"
