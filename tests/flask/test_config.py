"""``APISEC_*`` configuration: every key parsed, every default, and each bad value refused
at ``init_app`` with a message that names the key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from flask_apisec import APISec
from flask_apisec.config import DEFAULTS, Settings, load_settings
from flask_apisec.testing import TestIssuer
from tests.flask import make_app
from wsgi_apisec.dpop import HMACNonceSource
from wsgi_apisec.errors import ConfigurationError
from wsgi_apisec.fapi2 import FAPI2
from wsgi_apisec.introspection import Introspection
from wsgi_apisec.jwks import JWKSResolver
from wsgi_apisec.keys import PrivateKey
from wsgi_apisec.profiles import OCEN
from wsgi_apisec.registry import RegistryResolver
from wsgi_apisec.replay import MemoryReplayStore, SQLiteReplayStore
from wsgi_apisec.resolvers import KeyQuery, StaticKeyResolver


@pytest.fixture(scope="module")
def issuer() -> TestIssuer:
    return TestIssuer("ES256")


_BASE = {"issuer": "x", "jwks": {"keys": []}, "audience": "a"}


def settings(**config: Any) -> Settings:
    return load_settings({f"APISEC_{k.upper()}": v for k, v in config.items()}, {})


def test_defaults() -> None:
    s = load_settings({}, {})
    assert s.issuers == () and s.introspection is None
    assert s.token_cache is True
    assert (s.require_bound, s.fapi, s.allow_query, s.allow_form) == (False, False, False, False)
    assert s.cert_source.trusted_proxies == () and s.cert_source.header_forms == ("client-cert",)
    assert s.dpop_algorithms == ("ES256", "PS256", "EdDSA", "RS256") and s.dpop_nonce is None
    assert (s.signature_profile, s.signature_keys, s.signing_key) == (None, None, None)
    assert s.response_profile is None
    assert isinstance(s.replay_store, MemoryReplayStore)
    assert s.max_body == 10 * 1024 * 1024
    assert (s.realm, s.resource, s.authorization_servers) == (None, None, ())
    assert s.jwks_path == "/.well-known/jwks.json"
    assert set(DEFAULTS) == {
        "ISSUERS", "INTROSPECTION", "AUDIENCE", "LEEWAY", "TOKEN_CACHE",
        "REQUIRE_BOUND_TOKENS", "FAPI", "TOKEN_IN_QUERY", "TOKEN_IN_FORM", "TRUSTED_PROXIES",
        "CLIENT_CERT_HEADERS", "DPOP_ALGORITHMS", "DPOP_NONCE", "SIGNATURE_PROFILE",
        "SIGNATURE_KEYS", "SIGNING_KEY", "SIGNING_KID", "SIGN_RESPONSES", "REPLAY_STORE",
        "MAX_BODY", "REALM", "RESOURCE", "AUTHORIZATION_SERVERS", "JWKS_PATH",
    }  # fmt: skip


# --- issuers -----------------------------------------------------------------------------------


def test_issuers_take_audience_and_leeway_defaults(issuer: TestIssuer) -> None:
    entry = {"issuer": issuer.issuer, "jwks": issuer.jwks}
    s = settings(issuers=[entry], audience="https://api.test", leeway=5)
    (parsed,) = s.issuers
    assert (parsed.audiences, parsed.leeway) == (("https://api.test",), 5)
    assert parsed.algorithms == ("PS256", "ES256", "EdDSA", "RS256")
    assert s.authorization_servers == (issuer.issuer,)


def test_issuer_entry_wins_over_defaults(issuer: TestIssuer) -> None:
    entry = issuer.issuer_config(audience="https://mine.test", leeway=0, allow_jwt_typ=True)
    (parsed,) = settings(issuers=[entry], audience="https://api.test").issuers
    assert (parsed.audiences, parsed.leeway, "jwt" in parsed.types) == (
        ("https://mine.test",),
        0,
        True,
    )


def test_issuer_with_jwks_uri() -> None:
    entry = {"issuer": "https://as.test", "jwks_uri": "https://as.test/jwks", "audience": "a"}
    (parsed,) = settings(issuers=[entry]).issuers
    assert isinstance(parsed.key_resolver, JWKSResolver)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"issuer": "x"}, "ISSUERS must be a list"),
        (["https://as.test"], r"ISSUERS\[0\] must be a dict"),
        ([{"issuer": "x", "jwks": {"keys": []}, "audiance": "a"}], "unknown key.*audiance"),
        ([{"issuer": "x", "jwks": {"keys": []}}], "configure the expected audience"),
        ([{"jwks": {"keys": []}, "audience": "a"}], r"ISSUERS\[0\].*issuer"),
        ([{"issuer": "x", "audience": "a"}], "exactly one of jwks_uri, jwks"),
        ([{"issuer": "x", "jwks_uri": "http://as.test/j", "audience": "a"}], "must use https"),
        ([{**_BASE, "algorithms": ["none"]}], "not supported"),
    ],
)  # fmt: skip
def test_bad_issuers(value: Any, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        settings(issuers=value)


def test_same_issuer_twice_is_refused_at_init_app(issuer: TestIssuer) -> None:
    app = make_app(issuers=[issuer.issuer_config(), issuer.issuer_config()])
    with pytest.raises(ConfigurationError, match="configured twice"):
        APISec(app)


def test_introspection() -> None:
    s = settings(
        introspection={
            "endpoint": "https://as.test/introspect",
            "client_id": "rs",
            "client_secret": "s3cret",
        },
        audience="https://api.test",
    )
    assert isinstance(s.introspection, Introspection)
    assert s.introspection.audiences == ("https://api.test",)
    with pytest.raises(ConfigurationError, match=r"INTROSPECTION: unknown key.*secret"):
        settings(introspection={"endpoint": "https://as.test/i", "client_id": "a", "secret": "b"})
    with pytest.raises(ConfigurationError, match="INTROSPECTION"):
        settings(introspection={"endpoint": "https://as.test/i"})


# --- FAPI and transports ---------------------------------------------------------------------


def test_fapi_implies_bound_tokens_and_fapi_algorithms(issuer: TestIssuer) -> None:
    entry = {"issuer": issuer.issuer, "jwks": issuer.jwks, "audience": "a"}
    s = settings(fapi=True, issuers=[entry])
    assert (s.fapi, s.require_bound) == (True, True)
    assert s.issuers[0].algorithms == ("PS256", "ES256", "EdDSA")


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"token_in_query": True}, "Authorization header only"),
        ({"token_in_form": True}, "Authorization header only"),
        ({"require_bound_tokens": False}, "sender-constrained"),
        (
            {"issuers": [{**_BASE, "algorithms": ["RS256"]}]},
            "FAPI allows only",
        ),
    ],
)  # fmt: skip
def test_fapi_contradictions(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        settings(fapi=True, **config)


def test_transport_switches() -> None:
    s = settings(token_in_query=True, token_in_form=True, require_bound_tokens=True)
    assert (s.allow_query, s.allow_form, s.require_bound) == (True, True, True)


@pytest.mark.parametrize("key", ["fapi", "token_in_query", "token_in_form", "require_bound_tokens"])
def test_booleans_must_be_booleans(key: str) -> None:
    with pytest.raises(ConfigurationError, match=f"APISEC_{key.upper()} must be True or False"):
        settings(**{key: "yes"})


# --- client certificates and DPoP ------------------------------------------------------------


def test_client_cert_sources() -> None:
    s = settings(
        trusted_proxies=["10.0.0.0/8", "127.0.0.1"],
        client_cert_headers=["x-forwarded-client-cert", "client-cert"],
    )
    assert s.cert_source.is_trusted_proxy("10.1.2.3") and s.cert_source.is_trusted_proxy(
        "127.0.0.1"
    )
    assert not s.cert_source.is_trusted_proxy("192.168.0.1")
    assert s.cert_source.header_forms == ("x-forwarded-client-cert", "client-cert")
    # A lone string is one entry, not a list of letters.
    assert settings(trusted_proxies="10.0.0.1").cert_source.trusted_proxies == ("10.0.0.1",)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"trusted_proxies": ["proxy.internal"]}, "not an IP or CIDR"),
        ({"trusted_proxies": [10]}, "TRUSTED_PROXIES must be a list of strings"),
        ({"client_cert_headers": ["x-client-cert"]}, "unknown client certificate header"),
    ],
)
def test_bad_client_cert_sources(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        settings(**config)


def test_dpop_settings() -> None:
    s = settings(dpop_algorithms=["ES256"], dpop_nonce="n" * 32)
    assert s.dpop_algorithms == ("ES256",)
    assert isinstance(s.dpop_nonce, HMACNonceSource)
    nonce = s.dpop_nonce.issue()
    # A shared secret: another worker with the same setting accepts this nonce.
    other = settings(dpop_nonce=b"n" * 32).dpop_nonce
    assert other is not None and other.validate(nonce)
    assert isinstance(settings(dpop_nonce=True).dpop_nonce, HMACNonceSource)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"dpop_nonce": "short"}, "at least 32 bytes"),
        ({"dpop_nonce": 1}, "DPOP_NONCE must be a bool"),
    ],
)
def test_bad_dpop_settings(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        settings(**config)


def test_dpop_algorithms_are_checked_at_init_app() -> None:
    app = make_app(dpop_algorithms=["HS256"])
    with pytest.raises(ConfigurationError, match="asymmetric"):
        APISec(app)


# --- signatures --------------------------------------------------------------------------------


def test_signature_profile_by_name() -> None:
    assert settings(signature_profile="ocen").signature_profile is OCEN
    assert settings(signature_profile="fapi2").signature_profile is FAPI2
    assert settings(signature_profile=OCEN).signature_profile is OCEN
    with pytest.raises(ConfigurationError, match="unknown signature profile 'oceania'"):
        settings(signature_profile="oceania")


def test_signature_keys_forms() -> None:
    key = PrivateKey.generate("RS256", kid="k1")
    jwks = {"keys": [key.public_key().to_jwk()]}
    inline = settings(signature_keys=jwks).signature_keys
    assert isinstance(inline, StaticKeyResolver)
    assert inline.resolve(KeyQuery("RS256", "k1"))[0].kid == "k1"
    owners = settings(signature_keys={"owners": {"lender-1": jwks}}).signature_keys
    assert owners is not None and owners.resolve(KeyQuery("RS256", owner="lender-1"))
    assert isinstance(settings(signature_keys="https://reg.test/jwks").signature_keys, JWKSResolver)
    uri = settings(signature_keys={"jwks_uri": "https://reg.test/jwks", "ttl": 60})
    assert isinstance(uri.signature_keys, JWKSResolver)
    registry = settings(signature_keys={"registry": "https://reg.test", "kind": "openg2p"})
    assert isinstance(registry.signature_keys, RegistryResolver)
    assert registry.signature_keys.url_for("sp-mosip") == "https://reg.test/keys/PARTNER_SP_MOSIP"
    mine = StaticKeyResolver([key.public_key()])
    assert settings(signature_keys=mine).signature_keys is mine


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (42, "must be a URL, a dict or a KeyResolver"),
        ({"registry": "https://reg.test", "kind": "beckn"}, "kind must be one of"),
        ({"registry": "https://reg.test", "colour": "red"}, "SIGNATURE_KEYS"),
        ({"nothing": 1}, "needs one of keys, owners, jwks_uri or registry"),
        ({"keys": "no"}, "SIGNATURE_KEYS"),
        ("http://reg.test/jwks", "must use https"),
    ],
)
def test_bad_signature_keys(value: Any, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        settings(signature_keys=value)


def test_signing_key_forms(tmp_path: Path) -> None:
    key = PrivateKey.generate("PS256")
    pem = key.to_pem()
    path = tmp_path / "signing.pem"
    path.write_bytes(pem)
    thumb = key.thumbprint()
    for value in (key, pem, pem.decode(), str(path), path, key.to_jwk(private=True)):
        loaded = settings(signing_key=value, signing_kid="rs-2024").signing_key
        assert loaded is not None
        assert (loaded.thumbprint(), loaded.kid) == (thumb, "rs-2024")
    import json

    as_text = json.dumps(key.to_jwk(private=True))
    assert settings(signing_key=as_text).signing_key is not None


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"signing_key": "/no/such/key.pem"}, "cannot read '/no/such/key.pem'"),
        ({"signing_key": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----"}, "PEM"),
        ({"signing_key": {"kty": "oct", "k": "c2VjcmV0c2VjcmV0c2VjcmV0"}}, "asymmetric"),
        ({"signing_key": 12}, "must be a key, a JWK, PEM or a path"),
        ({"signing_kid": "k"}, "no signing key"),
        ({"signing_key": {"kty": "EC", "crv": "P-256"}}, "SIGNING_KEY"),
    ],
)
def test_bad_signing_keys(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        settings(**config)


def test_signing_key_that_cannot_sign_the_default_profile() -> None:
    # OCEN signs with RS256 only.
    with pytest.raises(ConfigurationError, match="cannot sign ocen responses"):
        settings(signature_profile="ocen", signing_key=PrivateKey.generate("ES256"))


def test_sign_responses_forms() -> None:
    key = PrivateKey.generate("ES256")
    assert settings(signing_key=key).response_profile is None
    assert settings(sign_responses=False, signing_key=key).response_profile is None
    assert settings(sign_responses="fapi2", signing_key=key).response_profile is FAPI2
    assert settings(sign_responses=FAPI2, signing_key=key).response_profile is FAPI2
    both = settings(sign_responses=True, signature_profile="jws", signing_key=key)
    assert both.response_profile is not None and both.response_profile.name == "jws"


def test_signing_key_that_cannot_sign_a_view_profile_fails_closed() -> None:
    app = make_app(signature_keys={"keys": []}, signing_key=PrivateKey.generate("ES256"))
    apisec = APISec(app)

    @app.post("/x")
    @apisec.require_signature(profile="ocen")
    def x() -> str:
        return "ok"

    response = app.test_client().post("/x")
    assert (response.status_code, response.json["code"]) == (500, "config.invalid")
    assert response.data != b"ok"


# --- the rest ----------------------------------------------------------------------------------


def test_replay_store_urls(tmp_path: Path) -> None:
    store = settings(replay_store=f"sqlite:///{tmp_path}/replay.db").replay_store
    assert isinstance(store, SQLiteReplayStore)
    mine = MemoryReplayStore()
    assert settings(replay_store=mine).replay_store is mine
    with pytest.raises(ConfigurationError, match="unsupported replay store URL"):
        settings(replay_store="postgres://db/replay")
    with pytest.raises(ConfigurationError, match="must be a URL or a ReplayStore"):
        settings(replay_store=3)


def test_numbers_and_strings() -> None:
    s = settings(max_body=1024, token_cache=64, realm="bank", jwks_path="/keys")
    assert (s.max_body, s.token_cache, s.realm, s.jwks_path) == (1024, 64, "bank", "/keys")
    cases: list[tuple[dict[str, Any], str]] = [
        ({"max_body": -1}, "MAX_BODY must be an integer >= 0"),
        ({"max_body": 1.5}, "MAX_BODY must be an integer"),
        ({"max_body": True}, "MAX_BODY must be an integer"),
        ({"leeway": "30"}, "LEEWAY must be a number >= 0"),
        ({"token_cache": -3}, "TOKEN_CACHE must be a bool or a size"),
        ({"realm": ""}, "REALM must be a non-empty string"),
        ({"jwks_path": "keys.json"}, "JWKS_PATH must be a path"),
    ]
    for config, message in cases:
        with pytest.raises(ConfigurationError, match=message):
            settings(**config)


def test_resource_and_authorization_servers() -> None:
    s = settings(resource="https://api.test/fdx", authorization_servers=["https://as.test"])
    assert (s.resource, s.authorization_servers) == ("https://api.test/fdx", ("https://as.test",))
    assert settings(resource="http://127.0.0.1:8000/").resource == "http://127.0.0.1:8000/"
    for value, message in [
        ("http://api.test/", "must use https"),
        ("https://api.test/x?y=1", "no query or fragment"),
        ("https://api.test/#top", "no query or fragment"),
        ("api.test", "https URL with a host"),
    ]:
        with pytest.raises(ConfigurationError, match=message):
            settings(resource=value)


def test_unknown_keys_are_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"unknown flask-apisec setting.*APISEC_ISSUER\b"):
        load_settings({"APISEC_ISSUER": []}, {})
    with pytest.raises(ConfigurationError, match=r"unknown flask-apisec setting.*relam="):
        APISec(make_app(), relam="x")
    # Other prefixes are not ours.
    assert load_settings({"APISECRET": 1, "SECRET_KEY": "x"}, {}).realm is None


def test_config_is_read_once(issuer: TestIssuer) -> None:
    app = make_app(issuers=[issuer.issuer_config()], realm="first")
    APISec(app)
    app.config["APISEC_REALM"] = "second"
    assert APISec.state(app).settings.realm == "first"
