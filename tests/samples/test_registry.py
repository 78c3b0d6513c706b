"""The sample participant registry: each route, 404s, config checks, and the library's
RegistryResolver reading it over a real socket on 127.0.0.1."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

from sample_apps.config import DemoConfig, make_demo_config
from sample_apps.registry import create_app
from wsgi_apisec import jws
from wsgi_apisec.errors import ConfigurationError, UnknownKey
from wsgi_apisec.keys import PrivateKey
from wsgi_apisec.registry import RegistryResolver
from wsgi_apisec.resolvers import KeyQuery

from . import serve


@pytest.fixture(scope="module")
def demo() -> DemoConfig:
    return make_demo_config()


@pytest.fixture
def client(demo: DemoConfig) -> FlaskClient:
    return create_app(demo.registry).test_client()


def test_ocen_participant_roles(demo: DemoConfig, client: FlaskClient):
    resp = client.get("/participant-roles/lender-1")
    assert resp.status_code == 200
    assert resp.mimetype == "application/json"
    assert resp.get_json() == {
        "participantId": "lender-1",
        "roles": ["LENDER"],
        "publicKey": demo.keys["lender-1"].public_key().to_jwk(),
    }
    assert "d" not in resp.get_json()["publicKey"]
    assert resp.headers["Cache-Control"] == "public, max-age=300"


def test_openg2p_partner_key(demo: DemoConfig, client: FlaskClient):
    resp = client.get("/keys/PARTNER_G2P_PARTNER")  # PARTNER_ + id upper-cased, '-' -> '_'
    assert resp.status_code == 200
    assert resp.get_json() == {"publicKey": demo.keys["g2p-partner"].public_key().to_jwk()}


def test_participant_jwks(demo: DemoConfig, client: FlaskClient):
    resp = client.get("/participants/lsp-1/jwks")
    assert resp.status_code == 200
    assert resp.mimetype == "application/jwk-set+json"  # RFC 7517 §8.5
    assert resp.get_json() == {"keys": [demo.keys["lsp-1"].public_key().to_jwk()]}


@pytest.mark.parametrize(
    "path",
    [
        "/participant-roles/nobody",
        "/keys/PARTNER_NOBODY",
        "/keys/g2p-partner",  # the raw id is not an OpenG2P key name
        "/participants/nobody/jwks",
        "/participants",
    ],
)
def test_unknown_is_404_problem(client: FlaskClient, path: str):
    resp = client.get(path)
    assert resp.status_code == 404
    assert resp.mimetype == "application/problem+json"
    assert resp.get_json()["status"] == 404


def test_rotation_newest_key_first_in_answer_all_in_jwks(demo: DemoConfig):
    old, new = PrivateKey.generate("RS256", kid="old"), PrivateKey.generate("RS256", kid="new")
    config = {
        "participants": [
            {"participant_id": "lender-9", "jwks": {"keys": [old.to_jwk(), new.to_jwk()]}}
        ],
        "cache_max_age": 60,
    }
    client = create_app(config).test_client()
    answer = client.get("/participant-roles/lender-9")
    assert answer.get_json()["publicKey"]["kid"] == "new"
    assert answer.get_json()["roles"] == []
    assert answer.headers["Cache-Control"] == "public, max-age=60"
    kids = [k["kid"] for k in client.get("/participants/lender-9/jwks").get_json()["keys"]]
    assert kids == ["old", "new"]


def test_private_members_in_config_are_never_served():
    key = PrivateKey.generate("ES256", kid="k1")
    config = {"participants": [{"participant_id": "p-1", "jwks": {"keys": [key.to_jwk(True)]}}]}
    answer = create_app(config).test_client().get("/participant-roles/p-1").get_json()
    assert answer["publicKey"] == key.public_key().to_jwk()
    assert "d" not in answer["publicKey"]


@pytest.mark.parametrize(
    "participants",
    [
        [{"participant_id": "a-b", "jwks": "JWKS"}, {"participant_id": "A_B", "jwks": "JWKS"}],
        [{"participant_id": "p", "jwks": {"keys": []}}],
        [{"participant_id": "p", "jwks": {"keys": [{"kty": "EC"}]}}],
        [{"participant_id": "", "jwks": "JWKS"}],
        [{"participant_id": "p", "roles": "LENDER", "jwks": "JWKS"}],
    ],
    ids=["openg2p-name-clash", "no-keys", "bad-jwk", "no-id", "roles-not-a-list"],
)
def test_bad_config_is_refused_at_start(demo: DemoConfig, participants):
    jwks = demo.registry["participants"][0]["jwks"]
    for p in participants:
        if p["jwks"] == "JWKS":
            p["jwks"] = jwks
    with pytest.raises(ConfigurationError):
        create_app({"participants": participants})


# --- the library's RegistryResolver against the live registry ---------------------------------


@pytest.fixture(scope="module")
def live(demo: DemoConfig):
    with serve(lambda _url: create_app(demo.registry)) as url:
        yield url


@pytest.mark.server
def test_resolver_ocen_finds_the_participant_key(live: str, demo: DemoConfig):
    signer = demo.keys["lender-1"]
    body = b'{"loanApplicationId":"42"}'
    signature = jws.sign_detached(signer, body, "RS256")
    resolver = RegistryResolver.ocen(live)
    parsed = jws.parse_compact(signature)
    keys = resolver.resolve(KeyQuery("RS256", kid=parsed.kid, owner="lender-1"))
    assert [k.thumbprint() for k in keys] == [signer.thumbprint()]
    assert jws.verify(parsed, keys[0], body).alg == "RS256"


@pytest.mark.server
def test_resolver_openg2p_finds_the_partner_key(live: str, demo: DemoConfig):
    resolver = RegistryResolver.openg2p(live)
    keys = resolver.resolve(KeyQuery("RS256", owner="g2p-partner"))
    assert [k.thumbprint() for k in keys] == [demo.keys["g2p-partner"].thumbprint()]


@pytest.mark.server
@pytest.mark.parametrize("factory", [RegistryResolver.ocen, RegistryResolver.openg2p])
def test_resolver_unknown_participant_is_unknown_key(live: str, factory):
    with pytest.raises(UnknownKey):
        factory(live).resolve(KeyQuery("RS256", owner="nobody"))


@pytest.mark.server
def test_resolver_refuses_a_key_of_another_algorithm(live: str):
    with pytest.raises(UnknownKey):
        RegistryResolver.ocen(live).resolve(KeyQuery("ES256", owner="lender-1"))


@pytest.mark.server
def test_resolver_reads_the_participant_jwks_route(live: str, demo: DemoConfig):
    resolver = RegistryResolver(live, path_template="/participants/{owner}/jwks")
    keys = resolver.resolve(KeyQuery("RS256", owner="lsp-1"))
    assert [k.thumbprint() for k in keys] == [demo.keys["lsp-1"].thumbprint()]


@pytest.mark.server
def test_resolver_g2p_connect_finds_the_senders_ed25519_key(live: str, demo: DemoConfig):
    # G2P Connect (Beckn) signatures are Ed25519: the sender's JWKS also holds its RS256 key.
    resolver = RegistryResolver.g2p_connect(live)
    keys = resolver.resolve(KeyQuery("ed25519", owner="g2p-partner"))
    assert [k.thumbprint() for k in keys] == [demo.ed25519_keys["g2p-partner"].thumbprint()]
    with pytest.raises(UnknownKey):
        resolver.resolve(KeyQuery("ed25519", owner="lsp-1"))  # no Ed25519 key
