"""JWT access-token validation (RFC 9068): issuers, claims, the cache, mixing with
introspection. One positive case per algorithm first, then each rule. The attacks live in
``test_token_attacks.py``; the helpers here are shared with it."""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import pytest

from tests import vectors
from wsgi_apisec import jws
from wsgi_apisec.errors import ConfigurationError, InvalidToken, KeySourceError
from wsgi_apisec.keys import KeySet, PrivateKey, PublicKey
from wsgi_apisec.resolvers import KeyQuery, StaticKeyResolver
from wsgi_apisec.tokens import AccessToken, Issuer, TokenValidator

NOW = 1_700_000_000.0
ISS = "https://as.example.com/realms/api"
AUD = "https://api.example.com"
DROP = object()  # a claim value meaning "leave this claim out"


class FakeClock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class CountingResolver:
    """A static resolver that records every query, to prove when no key was looked up."""

    def __init__(self, keys: Iterable[PublicKey]) -> None:
        self.inner = StaticKeyResolver(list(keys))
        self.queries: list[KeyQuery] = []

    def resolve(self, query: KeyQuery) -> list[PublicKey]:
        self.queries.append(query)
        return self.inner.resolve(query)


@functools.cache
def signing_key(alg: str, kid: str | None = None) -> PrivateKey:
    return PrivateKey.generate(alg, kid=kid or f"{alg.lower()}-1")


def claims(**changes: Any) -> dict[str, Any]:
    """RFC 9068 §2.2 claims for ISS/AUD, with ``changes`` applied (``DROP`` removes)."""
    base: dict[str, Any] = {
        "iss": ISS,
        "sub": "user-1",
        "aud": AUD,
        "client_id": "client-1",
        "iat": int(NOW) - 10,
        "exp": int(NOW) + 300,
        "jti": str(uuid.uuid4()),
        "scope": "accounts:read payments:write",
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not DROP}


def mint(
    key: PrivateKey,
    payload: dict[str, Any] | bytes | None = None,
    *,
    alg: str | None = None,
    typ: str | None = "at+jwt",
    **header: Any,
) -> str:
    """A compact JWT signed by ``key``; ``header`` adds (or with None removes) parameters."""
    extra = {"typ": typ, **header}
    built = jws.build_header(key, alg, extra={k: v for k, v in extra.items() if v is not None})
    for name in [k for k, v in extra.items() if v is None]:
        built.pop(name, None)
    body = payload if isinstance(payload, bytes) else json.dumps(payload or claims()).encode()
    return jws.sign(key, body, built, detached=False)


@dataclass
class Kit:
    key: PrivateKey
    resolver: CountingResolver
    issuer: Issuer
    validator: TokenValidator
    clock: FakeClock


def kit(alg: str = "PS256", *, cache: bool | int = False, **issuer_kw: Any) -> Kit:
    key = signing_key(alg)
    resolver = CountingResolver([key.public_key()])
    issuer_kw.setdefault("audience", AUD)
    issuer = Issuer(ISS, resolver=resolver, **issuer_kw)
    clock = FakeClock()
    return Kit(key, resolver, issuer, TokenValidator([issuer], clock=clock, cache=cache), clock)


def rejected(validate: Callable[[], AccessToken], code: str) -> InvalidToken:
    """The InvalidToken ``validate`` raises, checked for status, RFC code and dotted code."""
    with pytest.raises(InvalidToken) as info:
        validate()
    exc = info.value
    assert (exc.status, exc.error, exc.code) == (401, "invalid_token", code), exc.detail
    return exc


# --- positive cases ----------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["PS256", "ES256", "EdDSA", "RS256"])
def test_valid_token_per_default_algorithm(alg: str) -> None:
    k = kit(alg)
    token = k.validator.validate(mint(k.key))
    assert token.issuer == ISS
    assert token.subject == "user-1"
    assert token.client_id == "client-1"
    assert token.scopes == frozenset({"accounts:read", "payments:write"})
    assert token.audience == (AUD,)
    assert token.expires_at == int(NOW) + 300
    assert token.scheme == "Bearer"
    assert token.cnf is None and not token.bound
    assert k.resolver.queries == [KeyQuery(alg, f"{alg.lower()}-1")]


@pytest.mark.parametrize("typ", ["at+jwt", "AT+JWT", "application/at+jwt", "Application/At+JWT"])
def test_rfc9068_s4_typ_matched_case_insensitively(typ: str) -> None:
    k = kit()
    assert k.validator.validate(mint(k.key, typ=typ)).subject == "user-1"


@pytest.mark.parametrize(
    ("name", "alg", "extra"),
    [
        ("A1", "HS256", {}),
        ("A2", "RS256", {}),
        ("A3", "ES256", {}),
    ],
    ids=["rfc7515-A.1-HS256", "rfc7515-A.2-RS256", "rfc7515-A.3-ES256"],
)
def test_rfc7515_appendix_a_tokens_validate(name: str, alg: str, extra: dict[str, Any]) -> None:
    vector = vectors.load("rfc7515/appendix_a.json")[name]
    issuer = Issuer(
        "joe",
        jwks={"keys": [vector["key_jwk"]]},
        algorithms=(alg,),
        allow_jwt_typ=True,
        required_claims=("iss", "exp"),
    )
    validator = TokenValidator(issuer, clock=lambda: 1300819380 - 60)
    token = validator.validate(vector["jws_compact"])
    assert token.issuer == "joe"
    assert token.claims["http://example.com/is_root"] is True
    assert token.expires_at == 1300819380


def test_audience_array_containing_ours() -> None:
    k = kit()
    token = k.validator.validate(mint(k.key, claims(aud=["https://other", AUD])))
    assert token.audience == ("https://other", AUD)


def test_one_of_several_configured_audiences() -> None:
    k = kit(audience=["https://a.example", AUD])
    assert k.validator.validate(mint(k.key)).audience == (AUD,)


def test_rfc7519_s2_numericdate_may_be_a_float() -> None:
    k = kit()
    token = k.validator.validate(mint(k.key, claims(exp=NOW + 300.75, iat=NOW - 1.5)))
    assert token.expires_at == int(NOW) + 300


def test_scope_string_split_on_spaces_only() -> None:
    k = kit()
    token = k.validator.validate(mint(k.key, claims(scope="a  b\tc")))
    assert token.scopes == frozenset({"a", "b\tc"})


def test_scope_as_array_is_refused_by_default() -> None:
    k = kit()
    rejected(lambda: k.validator.validate(mint(k.key, claims(scope=["a"]))), "token.claims")


@pytest.mark.parametrize("scp", [["a", "b"], "a b"])
def test_scp_read_only_when_the_issuer_opts_in(scp: Any) -> None:
    k = kit(accept_scp=True)
    token = k.validator.validate(mint(k.key, claims(scope=DROP, scp=scp)))
    assert token.scopes == frozenset({"a", "b"})
    plain = kit()
    assert plain.validator.validate(mint(plain.key, claims(scope=DROP, scp=scp))).scopes == set()


def test_keycloak_style_issuer() -> None:
    """OCEN / Keycloak: typ JWT, azp instead of client_id, no aud rule (PROTOCOLS.md)."""
    k = kit(allow_jwt_typ=True, required_claims=("exp", "iat", "iss", "sub"), audience=None)
    payload = claims(aud=DROP, client_id=DROP, jti=DROP, azp="lender-app", typ="Bearer")
    token = k.validator.validate(mint(k.key, payload, typ="JWT"))
    assert token.client_id == "lender-app"
    assert token.audience == ()
    assert k.validator.validate(mint(k.key, payload, typ=None)).client_id == "lender-app"


def test_keycloak_id_token_refused_even_when_typ_jwt_allowed() -> None:
    k = kit(allow_jwt_typ=True, required_claims=("exp", "iat", "iss", "sub"), audience=None)
    payload = claims(typ="ID", azp="web")
    rejected(lambda: k.validator.validate(mint(k.key, payload, typ="JWT")), "token.type")


def test_cnf_exposed_and_bound() -> None:
    k = kit()
    token = k.validator.validate(mint(k.key, claims(cnf={"x5t#S256": "a" * 43})))
    assert token.bound and token.cnf == {"x5t#S256": "a" * 43}


def test_validate_records_the_presentation_scheme() -> None:
    k = kit()
    assert k.validator.validate(mint(k.key), scheme="DPoP").scheme == "DPoP"


def test_jti_property() -> None:
    k = kit()
    assert k.validator.validate(mint(k.key, claims(jti="abc"))).jti == "abc"


# --- time rules ----------------------------------------------------------------------------


def test_exp_inside_leeway_accepted_and_past_it_refused() -> None:
    k = kit()
    k.clock.now = NOW + 300 + 29
    assert k.validator.validate(mint(k.key)).subject == "user-1"
    k.clock.now = NOW + 300 + 30
    rejected(lambda: k.validator.validate(mint(k.key)), "token.expired")


def test_rfc7519_s4_1_4_rejected_on_exp_itself_without_leeway() -> None:
    k = kit(leeway=0)
    k.clock.now = NOW + 300
    rejected(lambda: k.validator.validate(mint(k.key)), "token.expired")


def test_rfc7519_s4_1_5_nbf() -> None:
    k = kit()
    assert k.validator.validate(mint(k.key, claims(nbf=int(NOW) + 20))).subject == "user-1"
    rejected(lambda: k.validator.validate(mint(k.key, claims(nbf=NOW + 31))), "token.not_yet_valid")


def test_max_age_counts_from_iat() -> None:
    k = kit(max_age=60)
    assert k.validator.validate(mint(k.key, claims(iat=int(NOW) - 80))).subject == "user-1"
    rejected(lambda: k.validator.validate(mint(k.key, claims(iat=NOW - 91))), "token.expired")


def test_max_age_needs_iat_even_when_not_otherwise_required() -> None:
    k = kit(max_age=60, required_claims=("exp", "iss"), audience=None)
    rejected(lambda: k.validator.validate(mint(k.key, claims(iat=DROP))), "token.claims")


# --- the cache -------------------------------------------------------------------------------


def test_cache_hit_skips_key_lookup_and_verification() -> None:
    k = kit(cache=True)
    raw = mint(k.key)
    first = k.validator.validate(raw)
    second = k.validator.validate(raw)
    assert second == first
    assert len(k.resolver.queries) == 1


def test_cached_token_past_exp_fails() -> None:
    k = kit(cache=16, leeway=0)
    raw = mint(k.key, claims(exp=int(NOW) + 10))
    k.validator.validate(raw)
    k.clock.now = NOW + 10
    rejected(lambda: k.validator.validate(raw), "token.expired")


def test_cached_token_time_claims_rechecked_on_hit() -> None:
    k = kit(cache=16, max_age=60, leeway=0)
    raw = mint(k.key, claims(iat=int(NOW)))
    k.validator.validate(raw)
    k.clock.now = NOW + 61
    rejected(lambda: k.validator.validate(raw), "token.expired")
    assert len(k.resolver.queries) == 1  # the hit failed on time, without a new lookup


def test_cache_is_bounded() -> None:
    k = kit(cache=2)
    for _ in range(5):
        k.validator.validate(mint(k.key))
    assert k.validator._cache is not None and len(k.validator._cache) == 2


def test_cache_keeps_scheme_per_use() -> None:
    k = kit(cache=True)
    raw = mint(k.key)
    assert k.validator.validate(raw, scheme="DPoP").scheme == "DPoP"
    assert k.validator.validate(raw).scheme == "Bearer"


# --- require_bound, key sources ----------------------------------------------------------------


def test_require_bound_refuses_plain_bearer_tokens() -> None:
    k = kit()
    validator = TokenValidator([k.issuer], clock=k.clock, require_bound=True)
    rejected(lambda: validator.validate(mint(k.key)), "token.unbound")
    bound = validator.validate(mint(k.key, claims(cnf={"jkt": "x" * 43})))
    assert bound.bound


def test_key_source_outage_is_503_not_401() -> None:
    class Down:
        def resolve(self, query: KeyQuery) -> list[PublicKey]:
            raise KeySourceError("the key source is unavailable")

    issuer = Issuer(ISS, resolver=Down(), audience=AUD)
    validator = TokenValidator([issuer], clock=FakeClock())
    with pytest.raises(KeySourceError) as info:
        validator.validate(mint(signing_key("PS256")))
    assert (info.value.status, info.value.error) == (503, "temporarily_unavailable")


def test_unknown_kid_is_invalid_token() -> None:
    k = kit()
    other = PrivateKey.generate("PS256", kid="rotated-away")
    rejected(lambda: k.validator.validate(mint(other)), "token.key")


def test_jwks_uri_uses_jwks_resolver() -> None:
    jwks_mod = pytest.importorskip("wsgi_apisec.jwks")
    from wsgi_apisec.fetch import FetchResult

    key = signing_key("ES256")
    document = json.dumps(KeySet([key.public_key()]).to_jwks()).encode()
    fetched: list[str] = []

    class Fetcher:
        def fetch(self, url: str, *, timeout: float, max_bytes: int) -> FetchResult:
            fetched.append(url)
            return FetchResult(200, {"cache-control": "max-age=300"}, document)

    issuer = Issuer(
        ISS,
        jwks_uri="https://as.example.com/jwks",
        audience=AUD,
        jwks_options={"fetcher": Fetcher()},
    )
    assert isinstance(issuer.key_resolver, jwks_mod.JWKSResolver)
    validator = TokenValidator(issuer, clock=FakeClock())
    assert validator.validate(mint(key)).subject == "user-1"
    assert fetched == ["https://as.example.com/jwks"]


# --- introspection alongside JWT issuers ------------------------------------------------------


class FakeIntrospection:
    def __init__(self) -> None:
        self.seen: list[str] = []

    def introspect(self, token: str) -> AccessToken:
        self.seen.append(token)
        return AccessToken(token, {"active": True}, "https://opaque", "u", "c", frozenset({"x"}))


def test_opaque_and_foreign_tokens_go_to_introspection() -> None:
    k = kit()
    intro = FakeIntrospection()
    validator = TokenValidator([k.issuer, intro], clock=k.clock)
    assert validator.validate("opaque-token-123").issuer == "https://opaque"
    foreign = mint(k.key, claims(iss="https://other-as.example"))
    assert validator.validate(foreign, scheme="DPoP").scheme == "DPoP"
    assert validator.validate(mint(k.key)).issuer == ISS
    assert intro.seen == ["opaque-token-123", foreign]
    assert len(k.resolver.queries) == 1


def test_bad_jwt_of_a_known_issuer_is_not_handed_to_introspection() -> None:
    k = kit()
    intro = FakeIntrospection()
    validator = TokenValidator([k.issuer, intro], clock=k.clock)
    rejected(lambda: validator.validate(mint(k.key, typ="JWT")), "token.type")
    assert intro.seen == []


def test_introspection_alone() -> None:
    intro = FakeIntrospection()
    assert TokenValidator(intro).validate("abc").subject == "u"


# --- configuration -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"jwks": {"keys": []}, "resolver": StaticKeyResolver([])},
        {"jwks": {"keys": []}, "algorithms": ("none",)},
        {"jwks": {"keys": []}, "algorithms": ()},
        {"jwks_uri": "https://as.example.com/jwks", "algorithms": ("HS256",)},
        {"jwks": {"keys": []}, "algorithms": ("HS256",)},
        {"jwks": {"keys": "x"}},
        {"jwks": {"keys": []}, "leeway": -1},
        {"jwks": {"keys": []}, "max_age": 0},
    ],
    ids=[
        "no-key-source",
        "two-key-sources",
        "alg-none",
        "no-algorithms",
        "hs256-from-remote-jwks",
        "hs256-without-secret",
        "malformed-inline-jwks",
        "negative-leeway",
        "zero-max-age",
    ],
)
def test_issuer_configuration_errors(kwargs: dict[str, Any]) -> None:
    kwargs.setdefault("audience", AUD)
    with pytest.raises(ConfigurationError):
        Issuer(ISS, **kwargs)


def test_rfc9068_s4_audience_must_be_configured_when_aud_is_required() -> None:
    with pytest.raises(ConfigurationError, match="audience"):
        Issuer(ISS, jwks={"keys": []})
    Issuer(ISS, jwks={"keys": []}, required_claims=("iss", "exp", "sub"))


def test_single_strings_are_not_read_letter_by_letter() -> None:
    issuer = Issuer(ISS, jwks={"keys": []}, algorithms="ES256", typ="at+jwt", required_claims="exp")
    assert (issuer.algorithms, issuer.typ, issuer.required_claims) == (
        ("ES256",),
        ("at+jwt",),
        ("exp",),
    )
    assert issuer.policy.algorithms == {"ES256"}


def test_hs256_with_an_explicit_secret() -> None:
    secret = PrivateKey.generate("HS256", kid="shared")
    jwks = {"keys": [secret.to_jwk(private=True)]}
    issuer = Issuer(ISS, jwks=jwks, algorithms=("HS256",), audience=AUD)
    assert TokenValidator(issuer, clock=FakeClock()).validate(mint(secret)).subject == "user-1"


def test_validator_configuration_errors() -> None:
    issuer = Issuer(ISS, jwks={"keys": []}, audience=AUD)
    with pytest.raises(ConfigurationError):
        TokenValidator([])
    with pytest.raises(ConfigurationError):
        TokenValidator([issuer, Issuer(ISS, jwks={"keys": []}, audience=AUD)])
    with pytest.raises(ConfigurationError):
        TokenValidator([issuer, FakeIntrospection(), FakeIntrospection()])
    with pytest.raises(ConfigurationError):
        TokenValidator([object()])  # type: ignore[list-item]
