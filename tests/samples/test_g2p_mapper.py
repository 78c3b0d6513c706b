"""The G2P Connect / OpenG2P ID-account mapper sample: every route sync and async, the
header and item reason codes, resolve scopes, token and signature refusals, replays, both
signature profiles, and callbacks delivered for real over HTTPS on 127.0.0.1 to a receiver
that checks the mapper's signature with the key the registry publishes."""

from __future__ import annotations

import json
import queue
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask, request
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from flask_apisec import APISec, current_signature
from flask_apisec.testing import PKI, APISecClient, ClientCert, TestIssuer, make_client_cert
from sample_apps import registry
from sample_apps.config import MAPPER_SCOPES, DemoConfig, make_demo_config
from sample_apps.g2p_mapper import Link, MapperState, callback_url, create_app
from sample_apps.g2p_mapper.envelope import rfc3339
from sample_apps.pki import make_pki
from wsgi_apisec import profiles
from wsgi_apisec.errors import ConfigurationError
from wsgi_apisec.keys import PrivateKey
from wsgi_apisec.message import Body, Headers, Message
from wsgi_apisec.registry import RegistryResolver
from wsgi_apisec.resolvers import StaticKeyResolver
from wsgi_apisec.signatures import Profile, RequestVerifier, ResponseSigner, SignatureResult

from . import serve

MAPPER, PARTNER = "g2p-mapper", "g2p-partner"
CALLBACKS = "https://partner.test/g2p"
ACTIONS = ("link", "resolve", "update", "unlink")
ID, FA = "token:12345@nid", "account:123@bank"


def as_sender(sender: str) -> Profile:
    return profiles.G2P_CONNECT.replace(
        options={**profiles.G2P_CONNECT.options, "sender_id": sender}
    )


# --- the partner's side -------------------------------------------------------------------------


@dataclass
class Outbox:
    """A CallbackSender that records each attempt and answers from a script (then 200)."""

    statuses: list[int | Exception] = field(default_factory=list)
    sent: list[tuple[str, bytes, dict[str, str]]] = field(default_factory=list)

    def send(self, url: str, body: bytes, headers: Mapping[str, str]) -> int:
        self.sent.append((url, body, dict(headers)))
        answer = self.statuses.pop(0) if self.statuses else 200
        if isinstance(answer, Exception):
            raise answer
        return answer


@dataclass
class Partner:
    """The partner calling the mapper: token, client certificate, signing profile and key."""

    client: FlaskClient
    token: str
    cert: ClientCert
    signature: tuple[Profile, PrivateKey] | None

    def post(self, path: str, doc: Any, **extras: Any) -> TestResponse:
        body = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
        options = {"token": self.token, "client_cert": self.cert, "signature": self.signature}
        options.update(extras)
        return self.client.post(path, data=body, content_type="application/json", **options)


def stamp(offset: float = 0.0) -> str:
    return rfc3339(time.time() + offset)


def envelope(action: str, items: list[Any], /, **header: Any) -> dict[str, Any]:
    head = {
        "version": "1.0.0",
        "message_id": uuid.uuid4().hex,
        "message_ts": stamp(),
        "action": action,
        "sender_id": PARTNER,
        "sender_uri": CALLBACKS,
        "receiver_id": MAPPER,
        "total_count": len(items),
        "is_msg_encrypted": False,
    }
    head.update(header)
    return {"header": head, "message": {"transaction_id": "txn-1", f"{action}_request": items}}


def item(ref: str = "ref-1", **fields: Any) -> dict[str, Any]:
    return {"reference_id": ref, "timestamp": stamp(), **fields}


def answers(resp: TestResponse, action: str) -> list[dict[str, Any]]:
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return list(resp.get_json()["message"][f"{action}_response"])


def statuses(resp: TestResponse, action: str) -> list[str]:
    return [answer["status"] for answer in answers(resp, action)]


def error_code(resp: TestResponse) -> str:
    assert resp.mimetype == "application/json"
    return str(resp.get_json()["errors"][0]["code"])


def ack_of(resp: TestResponse) -> dict[str, Any]:
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return dict(resp.get_json()["message"])


# --- the world: keys, token issuer, client certificate ----------------------------------------


@dataclass(frozen=True)
class World:
    demo: DemoConfig
    issuer: TestIssuer
    cert: ClientCert

    def key(self, party: str, profile: str = "g2p_connect") -> PrivateKey:
        keys = self.demo.ed25519_keys if profile == "g2p_connect" else self.demo.keys
        return keys[party]

    def config(self, **overrides: Any) -> dict[str, Any]:
        partner_keys = [self.key(PARTNER).public_key(), self.key(PARTNER, "openg2p").public_key()]
        base = {
            "issuers": [self.issuer.issuer_config()],
            "key_resolver": StaticKeyResolver(owners={PARTNER: partner_keys}),
            "signing_key": self.key(MAPPER, overrides.get("signature_profile", "g2p_connect")),
            "callback_prefixes": {PARTNER: [CALLBACKS + "/"]},
            "callback_backoff": 0,
        }
        return {**base, **overrides}

    def mapper(self, **overrides: Any) -> Flask:
        app = create_app(self.config(**overrides))
        app.test_client_class = APISecClient
        return app

    def token(self, scopes: Any = MAPPER_SCOPES, *, bound: bool = True, **claims: Any) -> str:
        claims = {"client_id": PARTNER, "sub": PARTNER, **claims}
        return self.issuer.token(scopes, cert=self.cert if bound else None, **claims)

    def partner(self, client: FlaskClient, profile: str = "g2p_connect") -> Partner:
        signer = as_sender(PARTNER) if profile == "g2p_connect" else profiles.get(profile)
        return Partner(client, self.token(), self.cert, (signer, self.key(PARTNER, profile)))

    def verify_mapper(
        self, headers: Iterable[tuple[str, str]], body: bytes, profile: str = "g2p_connect"
    ) -> SignatureResult:
        """Check a mapper response or callback the way a partner would."""
        message = Message("POST", "https://partner.test/", Headers(list(headers)), Body(body))
        resolver = StaticKeyResolver(owners={MAPPER: [self.key(MAPPER, profile).public_key()]})
        return RequestVerifier(profiles.get(profile), resolver).verify(message)


@pytest.fixture(scope="module")
def world() -> World:
    return World(make_demo_config(), TestIssuer("ES256"), make_client_cert(PARTNER))


@pytest.fixture
def outbox() -> Outbox:
    return Outbox()


@pytest.fixture
def app(world: World, outbox: Outbox) -> Iterator[Flask]:
    app = world.mapper(callback_sender=outbox)
    yield app
    state(app).close()


@pytest.fixture
def partner(client: FlaskClient, world: World) -> Partner:
    return world.partner(client)


def state(app: Flask) -> MapperState:
    found: MapperState = app.extensions["g2p_mapper"]
    return found


def seed(app: Flask, *links: Link) -> None:
    for link in links:
        assert state(app).store.link(link, time.time())


def stored(app: Flask, id: str = ID) -> Link | None:
    return state(app).store.get(id)


def drain(app: Flask) -> None:
    assert state(app).dispatcher.wait_idle(10)


# --- the routes ---------------------------------------------------------------------------------


def test_sync_link_update_resolve_unlink(app: Flask, partner: Partner) -> None:
    doc = envelope("link", [item(id=ID, fa=FA, name="Asha", phone_number="+911234567")])
    resp = partner.post("/mapper/sync/link", doc)
    header = resp.get_json()["header"]
    assert header == {
        "version": "1.0.0",
        "message_id": doc["header"]["message_id"],  # echoed for correlation
        "message_ts": header["message_ts"],
        "action": "on-link",
        "status": "succ",
        "total_count": 1,
        "completed_count": 1,
        "sender_id": MAPPER,
        "receiver_id": PARTNER,
        "is_msg_encrypted": False,
    }
    assert resp.get_json()["message"]["transaction_id"] == "txn-1"
    [linked] = answers(resp, "link")
    assert (linked["reference_id"], linked["status"], linked["fa"]) == ("ref-1", "succ", FA)
    assert stored(app) == Link(ID, FA, "Asha", "+911234567", None, PARTNER)

    doc = envelope("update", [item(id=ID, fa="account:456@bank2")])
    assert statuses(partner.post("/mapper/sync/update", doc), "update") == ["succ"]
    assert stored(app) == Link(ID, "account:456@bank2", "Asha", "+911234567", None, PARTNER)

    doc = envelope("resolve", [item(id=ID, scope="details")])
    [found] = answers(partner.post("/mapper/sync/resolve", doc), "resolve")
    assert (found["status_reason_code"], found["fa"]) == ("succ.id.active", "account:456@bank2")

    doc = envelope("unlink", [item(id=ID, fa="account:456@bank2")])
    assert statuses(partner.post("/mapper/sync/unlink", doc), "unlink") == ["succ"]
    assert stored(app) is None


def test_sync_response_is_signed_by_the_mapper(partner: Partner, world: World) -> None:
    resp = partner.post("/mapper/sync/resolve", envelope("resolve", [item(fa=FA)]))
    result = world.verify_mapper(resp.headers.items(), resp.get_data())
    assert (result.owner, result.kid) == (MAPPER, world.key(MAPPER).kid)


@pytest.mark.parametrize("action", ACTIONS)
def test_async_acks_then_calls_back_signed(
    app: Flask, partner: Partner, outbox: Outbox, world: World, action: str
) -> None:
    seed(app, Link("token:seeded@nid", FA, updated_by=PARTNER))
    fields = {"id": "token:seeded@nid"} if action != "link" else {"id": ID}
    resp = partner.post(f"/mapper/{action}", envelope(action, [item(**fields, fa=FA)]))
    ack = ack_of(resp)
    assert set(ack) == {"ack_status", "timestamp", "correlation_id"}
    assert ack["ack_status"] == "ACK"
    drain(app)
    [(url, body, headers)] = outbox.sent
    assert url == f"{CALLBACKS}/on-{action}"
    callback = json.loads(body)
    assert callback["header"]["action"] == f"on-{action}"
    assert (callback["header"]["sender_id"], callback["header"]["receiver_id"]) == (MAPPER, PARTNER)
    assert callback["message"]["correlation_id"] == ack["correlation_id"]
    assert [a["status"] for a in callback["message"][f"{action}_response"]] == ["succ"]
    assert world.verify_mapper(headers.items(), body).owner == MAPPER


# --- header-level reason codes ----------------------------------------------------------------

HEADER_CASES = [
    pytest.param({"version": "9.9.9"}, "rjct.version.invalid", id="version"),
    pytest.param({"action": "search"}, "rjct.action.not_supported", id="action-unknown"),
    pytest.param({"action": "unlink"}, "rjct.action.invalid", id="action-not-the-route"),
    pytest.param({"message_ts": stamp(-7200)}, "rjct.message_ts.invalid", id="ts-old"),
    pytest.param({"message_ts": stamp(600)}, "rjct.message_ts.invalid", id="ts-future"),
    pytest.param({"message_ts": "2024-01-01T00:00:00"}, "rjct.message_ts.invalid", id="ts-local"),
    pytest.param({"message_ts": "yesterday"}, "rjct.message_ts.invalid", id="ts-garbage"),
    pytest.param({"total_count": 3}, "rjct.total_count.invalid", id="count-wrong"),
    pytest.param({"total_count": "1"}, "rjct.total_count.invalid", id="count-string"),
]


@pytest.mark.parametrize(("header", "code"), HEADER_CASES)
def test_header_rejection_sync(
    app: Flask, partner: Partner, header: dict[str, Any], code: str
) -> None:
    resp = partner.post("/mapper/sync/link", envelope("link", [item(id=ID, fa=FA)], **header))
    assert resp.status_code == 200  # a business rejection, in the envelope
    head = resp.get_json()["header"]
    assert (head["status"], head["status_reason_code"], head["completed_count"]) == (
        "rjct",
        code,
        0,
    )
    assert stored(app) is None


@pytest.mark.parametrize(("header", "code"), HEADER_CASES)
def test_header_rejection_async(
    app: Flask, partner: Partner, outbox: Outbox, header: dict[str, Any], code: str
) -> None:
    ack = ack_of(partner.post("/mapper/link", envelope("link", [item(id=ID, fa=FA)], **header)))
    assert (ack["ack_status"], ack["error"]["code"]) == ("ERR", code)
    drain(app)
    assert outbox.sent == [] and stored(app) is None


def test_total_count_limit(world: World) -> None:
    app = world.mapper(max_items=2)
    items = [item(f"r{n}", id=f"token:{n}@nid", fa=FA) for n in range(3)]
    resp = world.partner(app.test_client()).post("/mapper/sync/link", envelope("link", items))
    assert resp.get_json()["header"]["status_reason_code"] == "rjct.total_count.limit_exceeded"
    state(app).close()


def test_replayed_message_id_is_refused(partner: Partner) -> None:
    doc = envelope("resolve", [item(fa=FA)])
    assert partner.post("/mapper/sync/resolve", doc).status_code == 200
    again = partner.post("/mapper/sync/resolve", doc)  # freshly signed, same message_id
    assert (again.status_code, error_code(again)) == (401, "rjct.message_id.duplicate")


def test_message_id_seen_by_another_worker(tmp_path: Path, world: World) -> None:
    # Two processes, each with its own replay memory, share the mapper database: the second
    # finds the message id there and rejects the message in the envelope.
    apps = [world.mapper(database=str(tmp_path / "mapper.db")) for _ in range(2)]
    doc = envelope("link", [item(id=ID, fa=FA)])
    first, second = (world.partner(a.test_client()).post("/mapper/sync/link", doc) for a in apps)
    assert first.get_json()["header"]["status"] == "succ"
    assert second.get_json()["header"]["status_reason_code"] == "rjct.message_id.duplicate"
    for a in apps:
        state(a).close()


@pytest.mark.parametrize(
    ("doc", "code"),
    [
        pytest.param(b"not json", "err.request.malformed", id="not-json"),
        pytest.param({"header": {"message_id": "m"}}, "err.request.invalid", id="header-fields"),
        pytest.param(
            envelope("link", [], receiver_id="x"), "err.receiver_id.invalid", id="receiver"
        ),
        pytest.param(
            envelope("link", [], is_msg_encrypted=True), "err.encryption.invalid", id="enc"
        ),
        pytest.param(
            {**envelope("link", []), "message": {"transaction_id": "t"}},
            "err.request.invalid",
            id="no-items",
        ),
    ],
)
def test_unreadable_envelope_is_400(partner: Partner, doc: Any, code: str) -> None:
    resp = partner.post("/mapper/sync/link", doc)
    assert (resp.status_code, error_code(resp)) == (400, code)


# --- item-level reason codes ------------------------------------------------------------------

LINKED = "token:linked@nid"
ITEM_CASES = [
    pytest.param("link", {"reference_id": None}, "rjct.reference_id.invalid", id="ref-missing"),
    pytest.param("link", {"reference_id": "a b"}, "rjct.reference_id.invalid", id="ref-bad"),
    pytest.param("link", {"timestamp": "noon"}, "rjct.timestamp.invalid", id="timestamp"),
    pytest.param("link", {"id": "12345"}, "rjct.id.invalid", id="id-form"),
    pytest.param("link", {"fa": "bank-123"}, "rjct.fa.invalid", id="fa-form"),
    pytest.param("link", {"name": "x" * 300}, "rjct.beneficiary_name.invalid", id="name"),
    pytest.param("link", {"phone_number": "12ab"}, "rjct.mobile_number.invalid", id="phone"),
    pytest.param("link", {"additional_info": "text"}, "rjct.other.error", id="info"),
    pytest.param("link", {"id": LINKED}, "rjct.id.invalid", id="link-twice"),
    pytest.param("update", {"id": "token:unknown@nid"}, "rjct.id.invalid", id="update-unknown"),
    pytest.param("update", {"id": LINKED, "fa": "nope"}, "rjct.fa.invalid", id="update-fa"),
    pytest.param("unlink", {"id": "token:unknown@nid"}, "rjct.id.invalid", id="unlink-unknown"),
    pytest.param("unlink", {"id": LINKED, "fa": "account:9@x"}, "rjct.fa.invalid", id="unlink-fa"),
    pytest.param("resolve", {"scope": "all"}, "rjct.resolve_type.not_supported", id="scope"),
    pytest.param("resolve", {"fa": None, "id": None}, "rjct.fa.invalid", id="resolve-nothing"),
]


@pytest.mark.parametrize(("action", "change", "code"), ITEM_CASES)
def test_item_rejection(
    app: Flask, partner: Partner, action: str, change: dict[str, Any], code: str
) -> None:
    seed(app, Link(LINKED, FA, updated_by=PARTNER))
    bad = {k: v for k, v in {**item(id=ID, fa=FA), **change}.items() if v is not None}
    good = item("ref-ok", id=LINKED if action != "link" else "token:new@nid", fa=FA)
    resp = partner.post(f"/mapper/sync/{action}", envelope(action, [bad, good]))
    first, second = answers(resp, action)
    assert (first["status"], first["status_reason_code"]) == ("rjct", code)
    assert first["status_reason_message"]
    assert second["status"] == "succ"  # one bad item never spoils the others
    assert resp.get_json()["header"]["completed_count"] == 2


def test_reference_id_duplicate_and_non_object_items(partner: Partner) -> None:
    items = [item("r1", id=ID, fa=FA), item("r1", id="token:2@nid", fa=FA), "not an object"]
    first, second, third = answers(
        partner.post("/mapper/sync/link", envelope("link", items)), "link"
    )
    assert first["status"] == "succ"
    assert (second["status"], second["status_reason_code"]) == (
        "rjct",
        "rjct.reference_id.duplicate",
    )
    assert (third["reference_id"], third["status_reason_code"]) == (
        None,
        "rjct.reference_id.invalid",
    )


# --- resolve scopes ---------------------------------------------------------------------------

OTHER_FA = "account:999@otherbank"
DETAILS = {
    "name": "Asha",
    "account_provider_info": {"name": "bank"},
    "additional_info": [{"k": "v"}],
}


@pytest.mark.parametrize(
    ("query", "code", "disclosed"),
    [
        pytest.param({"id": ID}, "succ.id.active", {"id": ID}, id="id-default-is-yes_no"),
        pytest.param({"id": ID, "scope": "yes_no"}, "succ.id.active", {"id": ID}, id="id-yes_no"),
        pytest.param(
            {"id": ID, "scope": "details"},
            "succ.id.active",
            {"id": ID, "fa": FA, **DETAILS},
            id="id-details",
        ),
        pytest.param({"fa": FA}, "succ.fa.active", {"fa": FA}, id="fa-yes_no"),
        pytest.param(
            {"fa": FA, "scope": "details"},
            "succ.fa.active",
            {"fa": FA, "account_provider_info": {"name": "bank"}},  # never whose FA it is
            id="fa-details",
        ),
        pytest.param(
            {"fa": OTHER_FA, "scope": "details"},
            "succ.fa.not_found",
            {"fa": OTHER_FA},
            id="fa-unknown",
        ),
        pytest.param(
            {"id": LINKED, "scope": "details"}, "succ.id.not_found", {"id": LINKED}, id="id-unknown"
        ),
        pytest.param(
            {"id": ID, "fa": FA}, "succ.fa.active", {"id": ID, "fa": FA}, id="both-yes_no"
        ),
        pytest.param(
            {"id": ID, "fa": OTHER_FA, "scope": "details"},
            "succ.fa.not_linked_to_id",
            {"id": ID, "fa": OTHER_FA},  # nothing about the real link
            id="both-mismatch",
        ),
    ],
)
def test_resolve_scope(
    app: Flask, partner: Partner, query: dict[str, Any], code: str, disclosed: dict[str, Any]
) -> None:
    seed(app, Link(ID, FA, "Asha", "+911234567", [{"k": "v"}], PARTNER))
    doc = envelope("resolve", [item(**query)])
    [found] = answers(partner.post("/mapper/sync/resolve", doc), "resolve")
    assert (found.pop("status"), found.pop("status_reason_code")) == ("succ", code)
    assert {
        k: v for k, v in found.items() if k not in ("reference_id", "timestamp", "locale")
    } == disclosed
    assert "phone_number" not in found  # never disclosed


# --- token and signature ----------------------------------------------------------------------


@pytest.mark.parametrize("action", ACTIONS)
def test_each_action_needs_its_scope(partner: Partner, world: World, action: str) -> None:
    partner.token = world.token([s for s in MAPPER_SCOPES if s != f"mapper:{action}"])
    for path in (f"/mapper/sync/{action}", f"/mapper/{action}"):
        resp = partner.post(path, envelope(action, [item(id=ID, fa=FA)]))
        assert (resp.status_code, error_code(resp)) == (403, "err.token.insufficient_scope")
        assert f'scope="mapper:{action}"' in resp.headers["WWW-Authenticate"]


def test_no_token(partner: Partner) -> None:
    resp = partner.post("/mapper/sync/link", envelope("link", []), token=None)
    assert (resp.status_code, error_code(resp)) == (401, "err.token.missing")
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")


def test_token_must_be_bound_to_the_client_certificate(partner: Partner, world: World) -> None:
    resp = partner.post("/mapper/sync/link", envelope("link", []), client_cert=None)
    assert (resp.status_code, error_code(resp)) == (401, "err.token.cert_missing")
    resp = partner.post("/mapper/sync/link", envelope("link", []), token=world.token(bound=False))
    assert (resp.status_code, error_code(resp)) == (401, "err.token.cert_required")


def test_no_signature(partner: Partner) -> None:
    resp = partner.post("/mapper/sync/link", envelope("link", []), signature=None)
    assert (resp.status_code, error_code(resp)) == (401, "err.signature.missing")


def test_bad_signature(partner: Partner, world: World) -> None:
    signed = json.dumps(envelope("link", [item(id=ID, fa=FA)])).encode()
    message = Message("POST", "http://localhost/mapper/sync/link", body=Body(signed))
    headers = dict(ResponseSigner(as_sender(PARTNER), world.key(PARTNER)).sign(message))
    tampered = signed.replace(FA.encode(), b"account:666@bank")
    resp = partner.post("/mapper/sync/link", tampered, signature=None, headers=headers)
    assert (resp.status_code, error_code(resp)) == (401, "err.signature.invalid")
    impostor = PrivateKey.generate("EdDSA", kid=world.key(PARTNER).kid)  # same kid, other key
    resp = partner.post(
        "/mapper/sync/link", envelope("link", []), signature=(as_sender(PARTNER), impostor)
    )
    assert (resp.status_code, error_code(resp)) == (401, "err.signature.invalid")


def test_sender_must_be_the_token_party(partner: Partner, world: World) -> None:
    partner.token = world.token(client_id="other-partner", sub="other-partner")
    resp = partner.post("/mapper/sync/link", envelope("link", []))
    assert (resp.status_code, error_code(resp)) == (401, "err.sender_id.invalid")
    # A participantId claim names the party as well as client_id does.
    partner.token = world.token(client_id="other-partner", participantId=PARTNER)
    assert partner.post("/mapper/sync/link", envelope("link", [])).status_code == 200


def test_sender_must_be_the_signer(partner: Partner) -> None:
    # Signed by the partner (its keyId) while the envelope claims to come from the mapper.
    resp = partner.post("/mapper/sync/link", envelope("link", [], sender_id=MAPPER))
    assert (resp.status_code, error_code(resp)) == (401, "err.sender_id.invalid")


def test_openg2p_profile(world: World) -> None:
    app = world.mapper(signature_profile="openg2p")
    partner = world.partner(app.test_client(), "openg2p")
    doc = envelope("link", [item(id=ID, fa=FA)])
    resp = partner.post("/mapper/sync/link", doc)
    assert statuses(resp, "link") == ["succ"]
    assert world.verify_mapper(resp.headers.items(), resp.get_data(), "openg2p").owner == MAPPER
    assert error_code(partner.post("/mapper/sync/link", doc)) == "rjct.message_id.duplicate"
    resp = partner.post("/mapper/sync/link", envelope("link", []), signature=None)
    assert (resp.status_code, error_code(resp)) == (401, "err.signature.missing")
    g2p = (as_sender(PARTNER), world.key(PARTNER))  # the other profile's signature
    resp = partner.post("/mapper/sync/link", envelope("link", []), signature=g2p)
    assert error_code(resp) == "err.signature.invalid"
    state(app).close()


# --- callbacks: the SSRF guard and delivery -------------------------------------------------------


@pytest.mark.parametrize(
    "sender_uri",
    [
        "https://evil.test/g2p",
        "https://partner.test.evil.test/g2p",
        "https://partner.test/g2p/../admin",
        "https://partner.test/g2p/%2e%2e/admin",
        "https://partner.test/g2p@evil.test",
        "https://partner.test/g2p?to=evil",
        "http://partner.test/g2p",
        None,
    ],
)
def test_callback_url_outside_the_prefixes_is_nacked(
    app: Flask, partner: Partner, outbox: Outbox, sender_uri: str | None
) -> None:
    doc = envelope("link", [item(id=ID, fa=FA)], sender_uri=sender_uri)
    ack = ack_of(partner.post("/mapper/link", doc))
    assert (ack["ack_status"], ack["error"]["code"]) == ("NACK", "rjct.sender_uri.invalid")
    drain(app)
    assert outbox.sent == [] and stored(app) is None  # NACK: nothing was done


def test_callback_url_is_per_sender() -> None:
    prefixes = {PARTNER: ("https://partner.test/g2p/",)}
    assert callback_url(PARTNER, CALLBACKS, "link", prefixes) == f"{CALLBACKS}/on-link"
    assert callback_url(PARTNER, CALLBACKS + "/", "link", prefixes) == f"{CALLBACKS}/on-link"
    assert callback_url("someone-else", CALLBACKS, "link", prefixes) is None


@pytest.mark.parametrize(
    ("script", "attempts", "delivered"),
    [
        pytest.param([503, 503], 3, 1, id="retried-until-200"),
        pytest.param([ConnectionError("refused")], 2, 1, id="network-error-retried"),
        pytest.param([500, 500, 500], 3, 0, id="gives-up"),
        pytest.param([400], 1, 0, id="4xx-is-final"),
    ],
)
def test_callback_retries(
    app: Flask, partner: Partner, outbox: Outbox, script: list[Any], attempts: int, delivered: int
) -> None:
    outbox.statuses = list(script)
    assert (
        ack_of(partner.post("/mapper/resolve", envelope("resolve", [item(fa=FA)])))["ack_status"]
        == "ACK"
    )
    drain(app)
    dispatcher = state(app).dispatcher
    assert (len(outbox.sent), dispatcher.delivered, dispatcher.failed) == (
        attempts,
        delivered,
        1 - delivered,
    )
    assert len({body for _, body, _ in outbox.sent}) == 1  # the same signed bytes each time


def test_full_callback_queue_is_503(world: World) -> None:
    started, release = threading.Event(), threading.Event()

    class Blocking(Outbox):
        def send(self, url: str, body: bytes, headers: Mapping[str, str]) -> int:
            started.set()
            release.wait(10)
            return super().send(url, body, headers)

    app = world.mapper(callback_sender=Blocking(), callback_queue_size=1)
    partner = world.partner(app.test_client())

    def link(who: str) -> TestResponse:
        return partner.post("/mapper/link", envelope("link", [item(id=f"token:{who}@nid", fa=FA)]))

    assert ack_of(link("a"))["ack_status"] == "ACK"
    assert started.wait(10)  # the worker holds the first; the queue has room for one more
    assert ack_of(link("b"))["ack_status"] == "ACK"
    resp = link("c")
    assert (resp.status_code, error_code(resp), resp.headers["Retry-After"]) == (
        503,
        "err.service.unavailable",
        "1",
    )
    release.set()
    drain(app)
    assert stored(app, "token:b@nid") is not None
    assert stored(app, "token:c@nid") is None  # refused before anything was done
    state(app).close()


# --- the real network: registry, HTTPS receiver, mTLS ---------------------------------------------


@dataclass
class Network:
    pki: PKI
    registry_url: str
    receiver_url: str
    inbox: queue.Queue[tuple[str, str | None, Any, str | None]]


def receiver(registry_url: str, inbox: queue.Queue[Any]) -> Flask:
    """The partner's callback endpoint: verifies the mapper's signature, under either
    profile, with the mapper's key from the registry."""
    app = Flask("partner")
    jwks = RegistryResolver(registry_url, path_template="/participants/{owner}/jwks")
    app.config["APISEC_SIGNATURE_KEYS"] = jwks
    apisec = APISec(app)

    def record(where: str) -> dict[str, Any]:
        cert = request.environ.get("SSL_CLIENT_CERT")
        inbox.put((where, current_signature.owner, request.get_json(), cert))
        return {"message": {"ack_status": "ACK"}}

    @app.post("/g2p/<name>")
    @apisec.require_signature(profile="g2p_connect")
    def g2p(name: str) -> dict[str, Any]:
        return record("g2p/" + name)

    @app.post("/openg2p/<name>")
    @apisec.require_signature(profile="openg2p")
    def openg2p(name: str) -> dict[str, Any]:
        return record("openg2p/" + name)

    return app


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory, world: World) -> Iterator[Network]:
    pki = make_pki(tmp_path_factory.mktemp("pki"), clients=(MAPPER,))
    inbox: queue.Queue[Any] = queue.Queue()
    with serve(lambda _: registry.create_app(world.demo.registry)) as registry_url:
        tls = pki.server_context("optional")
        with serve(lambda _: receiver(registry_url, inbox), tls) as receiver_url:
            yield Network(pki, registry_url, receiver_url, inbox)


@pytest.mark.parametrize(("profile", "route"), [("g2p_connect", "g2p"), ("openg2p", "openg2p")])
def test_callback_delivered_over_https(
    network: Network, world: World, profile: str, route: str
) -> None:
    base = f"{network.receiver_url}/{route}"
    identity = network.pki.clients[MAPPER]
    app = world.mapper(
        signature_profile=profile,
        key_resolver=None,
        registry_url=network.registry_url,  # the partner's key, looked up for real
        callback_prefixes={PARTNER: [base + "/"]},
        client_cert=[str(identity.cert_path), str(identity.key_path)],
        ca_file=str(network.pki.ca_cert_path),
    )
    partner = world.partner(app.test_client(), profile)
    ack = ack_of(
        partner.post("/mapper/link", envelope("link", [item(id=ID, fa=FA)], sender_uri=base))
    )
    assert ack["ack_status"] == "ACK"
    where, signer, body, client_pem = network.inbox.get(timeout=10)
    assert (where, signer) == (f"{route}/on-link", MAPPER)
    assert body["message"]["correlation_id"] == ack["correlation_id"]
    assert [a["status"] for a in body["message"]["link_response"]] == ["succ"]
    assert client_pem and "BEGIN CERTIFICATE" in client_pem  # the mapper presented its cert
    drain(app)
    assert (state(app).dispatcher.delivered, state(app).dispatcher.failed) == (1, 0)
    state(app).close()


def test_receiver_refuses_an_unsigned_callback(network: Network) -> None:
    url, ca = f"{network.receiver_url}/g2p/on-link", str(network.pki.ca_cert_path)
    resp = requests.post(url, json={}, verify=ca, timeout=5)
    assert resp.status_code == 401
    assert resp.json()["errors"][0]["code"] == "err.signature.missing"


# --- configuration ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        pytest.param({"colour": "blue"}, "unknown config key", id="unknown-key"),
        pytest.param({"signature_profile": "ocen"}, "signature_profile", id="profile"),
        pytest.param({"signing_key": "openg2p"}, "cannot sign g2p_connect", id="wrong-key-type"),
        pytest.param({"key_resolver": None}, "registry_url", id="no-keys"),
        pytest.param({"issuers": []}, "issuers", id="no-issuers"),
        pytest.param(
            {"callback_prefixes": {PARTNER: [CALLBACKS]}}, "must end in ./.", id="prefix-slash"
        ),
        pytest.param(
            {"callback_prefixes": {PARTNER: ["ftp://p.test/"]}}, "https URL", id="prefix-scheme"
        ),
        pytest.param(
            {"callback_prefixes": {PARTNER: ["http://p.test/"]}}, "must use https", id="prefix-http"
        ),
        pytest.param({"callback_sender": object()}, "CallbackSender", id="sender"),
    ],
)
def test_configuration_errors(world: World, change: dict[str, Any], message: str) -> None:
    if change.get("signing_key") == "openg2p":
        change = {"signing_key": world.key(MAPPER, "openg2p")}  # RS256 for an Ed25519 profile
    with pytest.raises(ConfigurationError, match=message):
        create_app(world.config(**change))
