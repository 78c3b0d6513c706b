"""The FDX sample: every route with a good certificate-bound token, each route's scope rule,
the FAPI transport rules (mTLS binding, header-only tokens, PS256/ES256, interaction id),
per-customer and per-consent data, FDX error shapes, paging, signed responses, and one run
over real TLS with tokens from the sample authorization server."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import http.client
import json
import re
import secrets
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from flask import Flask
from werkzeug.test import TestResponse

from flask_apisec.testing import APISecClient, ClientCert, TestIssuer, make_client_cert
from sample_apps import authserver
from sample_apps.config import DEMO_AUDIENCE, FDX_SCOPES, make_demo_config
from sample_apps.fdx import create_app
from sample_apps.fdx.core import PERSONAL_FIELDS
from sample_apps.fdx.seed import seed_demo
from sample_apps.fdx.storage import FDXStore
from sample_apps.pki import PKI, make_pki
from wsgi_apisec.errors import ConfigurationError, SignatureError
from wsgi_apisec.fapi2 import FAPI2
from wsgi_apisec.keys import KeySet
from wsgi_apisec.message import Body, Headers, Message
from wsgi_apisec.resolvers import StaticKeyResolver
from wsgi_apisec.signatures import RequestVerifier

from . import serve

AGGREGATOR = "fdx-aggregator"
CORE = "/fdx/v6/core/accounts"
CHECKING = f"{CORE}/acc-chk-1001"
RESOURCE = "/external/authentication/v1/resources/res-2001"
PARTICIPANT = "/participant/user/v1/consents"
BASIC, DETAILED = "fdx:accountbasic:read", "fdx:accountdetailed:read"
BASIC_FIELDS = {
    "accountCategory",
    "accountId",
    "accountType",
    "accountNumberDisplay",
    "productName",
    "nickname",
    "status",
    "currency",
}
UUID4 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")

# (method, path, scopes, any_of, what the answer holds)
ROUTES = [
    ("GET", CORE, (), (BASIC, DETAILED), "accounts"),
    ("GET", CHECKING, (), (BASIC, DETAILED), "accountId"),
    ("GET", f"{CHECKING}/transactions", ("fdx:transactions:read",), (), "transactions"),
    ("GET", f"{CHECKING}/contact", ("fdx:customercontact:read",), (), "holders"),
    ("GET", f"{CHECKING}/payment-networks", ("fdx:paymentsupport:read",), (), "paymentNetworks"),
    (
        "GET",
        f"{CORE}/acc-inv-1001/asset-transfer-networks",
        ("fdx:paymentsupport:read",),
        (),
        "assetTransferNetworks",
    ),
    ("GET", RESOURCE, ("external:resources:read",), (), "resourceId"),
    ("GET", PARTICIPANT, ("participantuser:consents:read",), (), "consents"),
    ("GET", f"{PARTICIPANT}/cns-1001-agg", ("participantuser:consents:read",), (), "resources"),
]


@pytest.fixture(scope="module")
def issuer() -> TestIssuer:
    return TestIssuer("ES256", issuer="https://as.example", audience=DEMO_AUDIENCE)


@pytest.fixture(scope="module")
def cert() -> ClientCert:
    return make_client_cert(AGGREGATOR)


@pytest.fixture(scope="module")
def shared_app(issuer: TestIssuer) -> Flask:
    app = create_app({"issuer": issuer.issuer, "jwks": issuer.jwks})
    app.test_client_class = APISecClient
    return app


@pytest.fixture
def app(shared_app: Flask) -> Flask:
    """The module's app with a freshly seeded database for each test (building the Flask
    app itself, its URL map above all, is the slow part)."""
    store = FDXStore()
    seed_demo(store)
    state = shared_app.extensions["fdx"]
    shared_app.extensions["fdx"] = dataclasses.replace(state, store=store)
    return shared_app


@pytest.fixture
def mint(issuer: TestIssuer, cert: ClientCert):
    """A token bound to ``cert``, for ``demo-user`` via ``fdx-aggregator`` unless told."""

    def make(scopes: Sequence[str] = FDX_SCOPES, **claims: Any) -> str:
        claims.setdefault("sub", "demo-user")
        claims.setdefault("client_id", AGGREGATOR)
        return issuer.token(scopes, cert=claims.pop("bound_to", cert), **claims)

    return make


@pytest.fixture
def call(client: APISecClient, cert: ClientCert, mint):
    """``call(method, path, token=..., json=...)`` over the mTLS-bound client."""

    def request(method: str, path: str, token: str | None = None, **kw: Any) -> TestResponse:
        kw.setdefault("client_cert", cert)
        return client.open(path, method=method, token=token or mint(), **kw)

    return request


def challenge(resp: TestResponse) -> dict[str, str]:
    header = resp.headers.get("WWW-Authenticate", "")
    assert header.startswith("Bearer"), header
    return dict(re.findall(r'(\w+)="([^"]*)"', header))


def fdx_error(resp: TestResponse, status: int, code: str) -> None:
    assert resp.status_code == status, resp.get_data(as_text=True)
    body = resp.get_json()
    assert body["code"] == code and body["message"], body
    assert set(body) <= {"code", "message", "debugMessage"}


# --- every route with a good token; each route's scope rule ---------------------------------


@pytest.mark.parametrize(("method", "path", "scopes", "any_of", "key"), ROUTES)
def test_route_answers_a_good_bound_token(call, mint, method, path, scopes, any_of, key):
    needed = [*scopes, *any_of[:1]]
    resp = call(method, path, token=mint(needed))
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert resp.mimetype == "application/json"
    assert resp.get_json()[key]


@pytest.mark.parametrize(("method", "path", "scopes", "any_of", "key"), ROUTES)
def test_route_without_its_scope_is_403_insufficient_scope_rfc6750_s3_1(
    call, mint, method, path, scopes, any_of, key
):
    others = [s for s in FDX_SCOPES if s not in (*scopes, *any_of)]
    resp = call(method, path, token=mint(others))
    assert resp.status_code == 403
    params = challenge(resp)
    assert params["error"] == "insufficient_scope"
    assert params["scope"].split() == [*scopes, *any_of]


@pytest.mark.parametrize("scope", [BASIC, DETAILED])
def test_accounts_need_either_account_scope_and_basic_shows_less(call, mint, scope):
    resp = call("GET", CORE, token=mint([scope]))
    accounts = resp.get_json()["accounts"]
    assert [a["accountId"] for a in accounts] == [
        "acc-chk-1001",
        "acc-sav-1001",
        "acc-loan-1001",
        "acc-inv-1001",
    ]
    if scope == BASIC:
        assert all(set(a) == BASIC_FIELDS for a in accounts)
    else:
        assert accounts[0]["currentBalance"] == 4823.17
        assert accounts[2]["principalBalance"] == 14210.55
        assert accounts[3]["holdings"][0]["symbol"] == "MSTMX"


def test_contact_adds_personal_data_only_with_the_optional_scope(call, mint):
    contact_only = call("GET", f"{CHECKING}/contact", token=mint(["fdx:customercontact:read"]))
    holders = contact_only.get_json()["holders"]
    assert [h["name"]["first"] for h in holders] == ["Jordan", "Sam"]
    assert not any(set(PERSONAL_FIELDS) & set(h) for h in holders)
    both = ["fdx:customercontact:read", "fdx:customerpersonal:read"]
    full = call("GET", f"{CHECKING}/contact", token=mint(both)).get_json()
    assert full["holders"][0]["dateOfBirth"] == "1986-04-12"
    assert full["holders"][1]["taxId"] == "900-55-1937"
    assert full["emails"] == contact_only.get_json()["emails"] == ["jordan.rivera@example.com"]


def test_consent_routes_need_a_token_but_no_scope(call, mint):
    resp = call("GET", "/fdx/v6/consents/cns-1001-agg", token=mint([]))
    assert resp.status_code == 200
    assert resp.get_json()["status"] == "ACTIVE"


def test_the_fdx_server_base_serves_the_same_core_routes(call):
    assert (
        call("GET", "/fdx/v6/accounts/acc-chk-1001").get_json() == call("GET", CHECKING).get_json()
    )


# --- FAPI transport: binding, header-only tokens, algorithms, interaction id ----------------


def test_no_token_is_401_with_a_bare_challenge_rfc6750_s3_1(client, cert):
    resp = client.get(CORE, client_cert=cert)
    assert resp.status_code == 401
    assert resp.headers["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize(
    ("bound_to", "presented"),
    [(None, "mine"), ("mine", "other"), ("mine", None)],
    ids=["unbound-token", "wrong-certificate", "no-certificate"],
)
def test_certificate_binding_is_required_rfc8705_s3(client, issuer, cert, bound_to, presented):
    other = make_client_cert("someone-else")
    token = issuer.token(
        FDX_SCOPES,
        cert={"mine": cert, None: None}[bound_to],
        sub="demo-user",
        client_id=AGGREGATOR,
    )
    resp = client.get(CORE, token=token, client_cert={"mine": cert, "other": other}.get(presented))
    assert resp.status_code == 401
    assert challenge(resp)["error"] == "invalid_token"


def test_a_token_that_names_no_client_is_401_rfc9068_s2_2(call, mint):
    resp = call("GET", CORE, token=mint(client_id=None))
    assert resp.status_code == 401
    assert challenge(resp)["error"] == "invalid_token"


def test_token_in_the_query_is_refused_fapi1_baseline_6_2_1(client, cert, mint):
    resp = client.get(f"{CORE}?access_token={mint()}", client_cert=cert)
    assert resp.status_code == 400
    assert challenge(resp)["error"] == "invalid_request"


def test_only_ps256_and_es256_tokens_fapi1_advanced_8_6(cert):
    rs256 = TestIssuer("RS256", issuer="https://as.example", audience=DEMO_AUDIENCE)
    app = create_app({"issuer": rs256.issuer, "jwks": rs256.jwks})
    app.test_client_class = APISecClient
    token = rs256.token(FDX_SCOPES, cert=cert, sub="demo-user", client_id=AGGREGATOR)
    resp = app.test_client().get(CORE, token=token, client_cert=cert)
    assert resp.status_code == 401
    assert challenge(resp)["error"] == "invalid_token"
    with pytest.raises(ConfigurationError):
        create_app({"issuer": rs256.issuer, "jwks": rs256.jwks, "algorithms": ["RS256"]})


def test_ps256_tokens_are_accepted(cert):
    ps256 = TestIssuer("PS256", issuer="https://as.example", audience=DEMO_AUDIENCE)
    app = create_app({"issuer": ps256.issuer, "jwks": ps256.jwks})
    app.test_client_class = APISecClient
    token = ps256.token([BASIC], cert=cert, sub="demo-user", client_id=AGGREGATOR)
    assert app.test_client().get(CORE, token=token, client_cert=cert).status_code == 200


def test_a_trusted_proxy_passes_the_certificate_rfc9440(issuer, cert, mint):
    config = {"issuer": issuer.issuer, "jwks": issuer.jwks, "trusted_proxies": ["127.0.0.1"]}
    app = create_app(config)
    app.test_client_class = APISecClient
    client, header = app.test_client(), {"Client-Cert": cert.client_cert_header}
    assert client.get(CORE, token=mint(), headers=header).status_code == 200
    elsewhere = {"REMOTE_ADDR": "203.0.113.9"}  # not a trusted proxy: the header is not believed
    resp = client.get(CORE, token=mint(), headers=header, environ_base=elsewhere)
    assert resp.status_code == 401 and challenge(resp)["error"] == "invalid_token"


def test_interaction_id_is_echoed_fapi1_baseline_6_2_1_11(call, client, cert):
    sent = str(uuid.uuid4())
    ok = call("GET", CORE, headers={"x-fapi-interaction-id": sent})
    missing = call("GET", f"{CORE}/nope", headers={"x-fapi-interaction-id": sent})
    refused = client.get(CORE, client_cert=cert, headers={"x-fapi-interaction-id": sent})
    assert [r.status_code for r in (ok, missing, refused)] == [200, 404, 401]
    assert {r.headers["x-fapi-interaction-id"] for r in (ok, missing, refused)} == {sent}


@pytest.mark.parametrize("sent", [None, "not-a-uuid"], ids=["absent", "not-a-uuid"])
def test_interaction_id_is_fresh_when_absent_or_invalid(call, sent):
    headers = {"x-fapi-interaction-id": sent} if sent else {}
    first, second = (call("GET", CORE, headers=headers) for _ in range(2))
    ids = [r.headers["x-fapi-interaction-id"] for r in (first, second)]
    assert all(UUID4.fullmatch(i) for i in ids) and ids[0] != ids[1]


# --- whose data: customers, consents, clients ------------------------------------------------


@pytest.mark.parametrize(
    "path",
    ["acc-nope", "acc-chk-1002", "acc-mtg-1002"],
    ids=["unknown", "another-customers", "not-in-any-consent"],
)
def test_account_outside_the_consent_is_404_fdx_701(call, path):
    fdx_error(call("GET", f"{CORE}/{path}"), 404, "701")
    fdx_error(call("GET", f"{CORE}/{path}/transactions"), 404, "701")


def test_each_user_sees_only_their_consented_accounts(call, mint):
    priya = call("GET", CORE, token=mint(sub="demo-user-2")).get_json()["accounts"]
    assert [a["accountId"] for a in priya] == ["acc-chk-1002"]
    fdx_error(call("GET", CHECKING, token=mint(sub="demo-user-2")), 404, "701")
    # Another client of the same customer sees what that customer gave it: one account.
    coinjar = call("GET", CORE, token=mint(client_id="coinjar-app")).get_json()["accounts"]
    assert [a["accountId"] for a in coinjar] == ["acc-sav-1001"]


def test_a_client_credentials_token_reaches_no_account_data(call, mint):
    token = mint(sub=AGGREGATOR)  # RFC 9068 §2.2: sub is the client itself
    assert call("GET", CORE, token=token).get_json()["accounts"] == []
    fdx_error(call("GET", CHECKING, token=token), 404, "701")


def test_fdx_consent_id_claim_narrows_to_that_consent(call, mint):
    own = mint(fdxConsentId="cns-1001-agg")
    assert len(call("GET", CORE, token=own).get_json()["accounts"]) == 4
    foreign = mint(fdxConsentId="cns-1001-coinjar")
    assert call("GET", CORE, token=foreign).get_json()["accounts"] == []
    fdx_error(call("GET", "/fdx/v6/consents/cns-1001-coinjar", token=foreign), 404, "902")


@pytest.mark.parametrize(
    ("consent", "claims", "status"),
    [
        ("cns-1001-agg", {}, 200),
        ("cns-1001-agg", {"sub": AGGREGATOR}, 200),
        ("cns-1002-agg", {"sub": AGGREGATOR}, 200),
        ("cns-1001-coinjar", {}, 404),
        ("cns-1002-agg", {}, 404),
        ("cns-1001-agg", {"sub": "demo-user-2"}, 404),
        ("cns-nope", {}, 404),
    ],
    ids=["own", "client", "client-other-user", "other-client", "other-user", "user-2", "unknown"],
)
def test_only_the_consents_own_client_and_user_see_it(call, mint, consent, claims, status):
    resp = call("GET", f"/fdx/v6/consents/{consent}", token=mint([], **claims))
    if status == 404:
        fdx_error(resp, 404, "902")
    else:
        assert resp.status_code == 200 and resp.get_json()["id"] == consent


def revoke(call, consent: str, token: str | None = None, **body: str) -> TestResponse:
    body = body or {"reason": "USER_ACTION", "initiator": "DATA_RECIPIENT"}
    return call("PUT", f"/fdx/v6/consents/{consent}/revocation", token=token, json=body)


def test_revoking_a_consent_cuts_off_its_accounts(call, mint):
    assert revoke(call, "cns-1001-agg").status_code == 204
    consent = call("GET", "/fdx/v6/consents/cns-1001-agg").get_json()
    assert consent["status"] == "REVOKED" and consent["updatedTime"]
    record = call("GET", "/fdx/v6/consents/cns-1001-agg/revocation").get_json()["revocations"]
    assert [(r["status"], r["reason"], r["initiator"]) for r in record] == [
        ("REVOKED", "USER_ACTION", "DATA_RECIPIENT")
    ]
    assert call("GET", CORE).get_json()["accounts"] == []
    fdx_error(call("GET", CHECKING), 404, "701")
    fdx_error(revoke(call, "cns-1001-agg"), 409, "903")


def test_another_client_cannot_revoke_a_consent(call, mint):
    fdx_error(revoke(call, "cns-1001-coinjar"), 404, "902")
    token = mint(client_id="coinjar-app")
    assert call("GET", "/fdx/v6/consents/cns-1001-coinjar", token=token).get_json()["status"] == (
        "ACTIVE"
    )


@pytest.mark.parametrize(
    "body", [{"reason": "BORED", "initiator": "INDIVIDUAL"}, {"reason": "USER_ACTION"}]
)
def test_revocation_needs_a_reason_and_initiator(call, body):
    fdx_error(revoke(call, "cns-1001-agg", **body), 400, "901")


def test_an_expired_consent_shares_nothing(issuer, cert, mint):
    now = [time.time()]
    app = create_app({"issuer": issuer.issuer, "jwks": issuer.jwks}, clock=lambda: now[0])
    app.test_client_class = APISecClient
    client = app.test_client()
    now[0] += 366 * 86400  # the seeded consents run for 365 days
    consent = client.get("/fdx/v6/consents/cns-1001-agg", token=mint(), client_cert=cert)
    assert consent.get_json()["status"] == "EXPIRED"
    assert client.get(CORE, token=mint(), client_cert=cert).get_json()["accounts"] == []


# --- paging and dates ----------------------------------------------------------------------


def test_transactions_page_through_every_entry_once(call):
    seen, path, pages = [], f"{CHECKING}/transactions?limit=5", 0
    while path:
        body = call("GET", path).get_json()
        pages += 1
        assert body["page"]["totalElements"] == 36
        seen += [t["transactionId"] for t in body["transactions"]]
        path = body.get("links", {}).get("next", {}).get("href")
        assert ("nextOffset" in body["page"]) == bool(path)
    assert pages == 8 and len(seen) == len(set(seen)) == 36
    assert seen[0] == "chk1001-0036"  # newest first
    last = call("GET", f"{CHECKING}/transactions?offset=35&limit=5").get_json()
    assert last["page"] == {"totalElements": 36, "prevOffset": "30"}
    assert last["links"]["prev"]["href"].endswith("offset=30&limit=5")


def test_limit_above_the_maximum_is_served_as_the_maximum(call):
    body = call("GET", f"{CHECKING}/transactions?limit=1000").get_json()
    assert len(body["transactions"]) == 36 and "links" not in body


@pytest.mark.parametrize("query", ["offset=-1", "offset=x", "limit=0", "limit=1.5", "offset=37"])
def test_bad_paging_is_400_fdx_901(call, query):
    fdx_error(call("GET", f"{CHECKING}/transactions?{query}"), 400, "901")


def test_transactions_between_dates_inclusive(call):
    path = f"{CHECKING}/transactions?startTime=2025-02-01&endTime=2025-02-28"
    found = call("GET", f"{path}&limit=100").get_json()["transactions"]
    assert len(found) == 12
    assert {t["postedTimestamp"][:7] for t in found} == {"2025-02"}
    keep = call("GET", f"{path}&limit=5").get_json()["links"]["next"]["href"]
    assert parse_qs(urlsplit(keep).query)["startTime"] == ["2025-02-01"]


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("startTime=2025-13-01", "702"),
        ("endTime=yesterday", "702"),
        ("startTime=2025-03-01&endTime=2025-02-01", "703"),
    ],
    ids=["bad-month", "not-a-date", "start-after-end"],
)
def test_bad_dates_are_fdx_702_703(call, query, code):
    fdx_error(call("GET", f"{CHECKING}/transactions?{query}"), 400, code)


# --- signed responses ----------------------------------------------------------------------


def verify_response(resp: TestResponse, method: str, path: str, jwks: Mapping[str, Any]) -> None:
    """Verify ``resp`` the way a client would, against the request it sent."""
    sent = Message(method, "http://localhost" + path, Headers([]), Body(b""))
    answer = Message(
        status=resp.status_code,
        headers=Headers(list(resp.headers.items())),
        body=Body(resp.get_data()),
        request=sent,
    )
    RequestVerifier(FAPI2, StaticKeyResolver(KeySet.from_jwks(jwks))).verify(answer)


def test_signed_responses_fapi2_message_signing(issuer, cert, mint):
    app = create_app({"issuer": issuer.issuer, "jwks": issuer.jwks, "sign_responses": True})
    app.test_client_class = APISecClient
    client = app.test_client()
    jwks = client.get("/.well-known/jwks.json").get_json()
    for path in (CHECKING, f"{CORE}/acc-nope"):
        resp = client.get(path, token=mint(), client_cert=cert)
        assert 'tag="fapi-2-response"' in resp.headers["Signature-Input"]
        verify_response(resp, "GET", path, jwks)
    tampered = client.get(CHECKING, token=mint(), client_cert=cert)
    tampered.set_data(tampered.get_data().replace(b"4823.17", b"9823.17"))
    with pytest.raises(SignatureError):
        verify_response(tampered, "GET", CHECKING, jwks)


def test_responses_are_unsigned_by_default(call, client):
    assert "Signature" not in call("GET", CORE).headers
    assert client.get("/.well-known/jwks.json").status_code == 404


# --- notification subscriptions ------------------------------------------------------------

SUBSCRIPTIONS = "/fdx/v6/notification-subscriptions"


def test_notification_subscription_lifecycle(call, mint):
    client_token = mint(["fdx:notifications:subscribe"], sub=AGGREGATOR)
    body = {"type": "CONSENT", "callbackUrl": "https://budget-buddy.example/fdx/events"}
    made = call("POST", SUBSCRIPTIONS, token=client_token, json=body)
    assert made.status_code == 201
    sub = made.get_json()
    assert sub["subscriber"]["registeredEntityId"] == AGGREGATOR
    where = f"{SUBSCRIPTIONS}/{sub['subscriptionId']}"
    assert made.headers["Location"] == where
    assert call("GET", where, token=client_token).get_json() == sub
    other = mint(["fdx:notifications:subscribe"], sub="coinjar-app", client_id="coinjar-app")
    fdx_error(call("GET", where, token=other), 404, "904")
    fdx_error(call("DELETE", where, token=other), 404, "904")
    assert call("DELETE", where, token=client_token).status_code == 204
    fdx_error(call("GET", where, token=client_token), 404, "904")


@pytest.mark.parametrize(
    "body",
    [
        {"type": "CONSENT", "callbackUrl": "http://budget-buddy.example/events"},
        {"type": "CONSENT"},
        {"type": "GOSSIP", "callbackUrl": "https://budget-buddy.example/events"},
        {"type": "CONSENT", "callbackUrl": "https://b.example/e", "effectiveDate": "soon"},
    ],
    ids=["http-callback", "no-callback", "unknown-type", "bad-date"],
)
def test_bad_subscriptions_are_400(call, mint, body):
    resp = call("POST", SUBSCRIPTIONS, token=mint(["fdx:notifications:subscribe"]), json=body)
    fdx_error(resp, 400, "702" if "effectiveDate" in body else "901")


def test_subscribing_needs_the_scope(call, mint):
    resp = call("POST", SUBSCRIPTIONS, token=mint([BASIC]), json={})
    assert resp.status_code == 403
    assert challenge(resp)["scope"] == "fdx:notifications:subscribe"


# --- solution APIs: external resources, participant-user consents ---------------------------


def test_authorizing_a_pending_resource_grants_the_consent(call, mint):
    app_token = mint(["external:resources:write"], sub=AGGREGATOR)
    done = call(
        "PATCH",
        RESOURCE,
        token=app_token,
        json={"status": "AUTHORIZED"} | {"accountIds": ["acc-mtg-1002"]},
    )
    assert done.status_code == 200 and done.get_json()["status"] == "AUTHORIZED"
    priya = call("GET", CORE, token=mint(sub="demo-user-2")).get_json()["accounts"]
    assert [a["accountId"] for a in priya] == ["acc-chk-1002", "acc-mtg-1002"]
    consent = call("GET", "/fdx/v6/consents/cns-1002-mtg", token=mint(sub="demo-user-2"))
    assert consent.get_json()["resources"][0]["dataClusters"] == [
        "ACCOUNT_DETAILED",
        "TRANSACTIONS",
    ]
    fdx_error(call("PATCH", RESOURCE, token=app_token, json={"status": "REJECTED"}), 409, "906")
    assert call("GET", RESOURCE, token=mint(["external:resources:read"])).get_json()["status"] == (
        "AUTHORIZED"
    )  # fmt: skip


@pytest.mark.parametrize(
    "body",
    [
        {"status": "AUTHORIZED", "accountIds": ["acc-chk-1001"]},
        {"status": "AUTHORIZED"},
        {"status": "MAYBE"},
    ],
    ids=["another-customers-account", "no-accounts", "unknown-status"],
)
def test_bad_resource_decisions_are_400(call, mint, body):
    fdx_error(
        call("PATCH", RESOURCE, token=mint(["external:resources:write"]), json=body), 400, "901"
    )


def test_unknown_resource_is_404(call, mint):
    resp = call("GET", RESOURCE.replace("2001", "9999"), token=mint(["external:resources:read"]))
    fdx_error(resp, 404, "905")


def test_participant_consents_by_user_and_for_the_dashboard(call, mint):
    read = ["participantuser:consents:read"]
    ids = lambda resp: [c["id"] for c in resp.get_json()["consents"]]  # noqa: E731
    assert ids(call("GET", PARTICIPANT, token=mint(read))) == ["cns-1001-agg", "cns-1001-coinjar"]
    dashboard = mint(read, sub=AGGREGATOR)
    assert ids(call("GET", PARTICIPANT, token=dashboard)) == [
        "cns-1001-agg",
        "cns-1001-coinjar",
        "cns-1002-agg",
    ]
    assert ids(call("GET", f"{PARTICIPANT}?userId=demo-user-2", token=dashboard)) == [
        "cns-1002-agg"
    ]
    fdx_error(call("GET", f"{PARTICIPANT}/cns-1002-agg", token=mint(read)), 404, "902")


def test_participant_user_narrows_then_revokes_a_consent(call, mint):
    write = mint(["participantuser:consents:write"])
    narrowed = call(
        "PATCH", f"{PARTICIPANT}/cns-1001-agg", token=write, json={"accountIds": ["acc-sav-1001"]}
    )
    assert narrowed.status_code == 200
    assert [a["accountId"] for a in call("GET", CORE).get_json()["accounts"]] == ["acc-sav-1001"]
    revoked = call("PATCH", f"{PARTICIPANT}/cns-1001-agg", token=write, json={"status": "REVOKED"})
    assert revoked.get_json()["status"] == "REVOKED"
    record = call("GET", "/fdx/v6/consents/cns-1001-agg/revocation").get_json()["revocations"]
    assert [(r["reason"], r["initiator"]) for r in record] == [("USER_ACTION", "INDIVIDUAL")]
    fdx_error(
        call("PATCH", f"{PARTICIPANT}/cns-1001-agg", token=write, json={"status": "REVOKED"}),
        409,
        "903",
    )
    fdx_error(
        call(
            "PATCH",
            f"{PARTICIPANT}/cns-1001-agg",
            token=write,
            json={"accountIds": ["acc-chk-1002"]},
        ),
        400,
        "901",
    )


def test_config_is_checked_at_start():
    with pytest.raises(ConfigurationError):
        create_app({"isuer": "https://as.example"})
    with pytest.raises(ConfigurationError):
        create_app({"signing_key": "-----BEGIN PRIVATE KEY-----"})
    with pytest.raises(ConfigurationError):
        create_app({"jwks": {"keys": []}, "jwks_uri": "https://as.example/jwks"})


@pytest.mark.parametrize(
    ("ca_file", "message"),
    [("/nonexistent/ca.pem", "is no CA bundle"), (__file__, "is no CA bundle"), (7, "a path")],
    ids=["missing", "not-pem", "not-a-path"],
)
def test_ca_file_is_checked_at_start(ca_file: Any, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        create_app({"ca_file": ca_file})


def test_ca_file_with_an_inline_jwks_is_refused(issuer, pki):
    with pytest.raises(ConfigurationError, match="nothing is fetched"):
        create_app({"jwks": issuer.jwks, "ca_file": str(pki.ca_cert_path)})


# --- over real TLS, with the sample authorization server ------------------------------------

REDIRECT = "http://127.0.0.1:8000/callback"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return make_pki(tmp_path_factory.mktemp("pki"), clients=("client", "other"))


def test_jwks_uri_behind_a_private_ca_is_fetched_with_ca_file(issuer, cert, mint, pki):
    """The issuer's JWKS served over TLS with a certificate of the throwaway CA."""

    def jwks(environ: Any, start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps(issuer.jwks).encode()]

    with serve(lambda _: jwks, pki.server_context("none")) as keys:
        config = {"issuer": issuer.issuer, "jwks_uri": keys + "/jwks"}
        answers = []
        for extra in ({"ca_file": str(pki.ca_cert_path)}, {}):
            app = create_app({**config, **extra})
            app.test_client_class = APISecClient
            answers.append(app.test_client().get(CORE, token=mint(), client_cert=cert))
    trusting, untrusting = answers
    assert trusting.status_code == 200, trusting.get_data(as_text=True)
    # The system store does not know the CA: the key source is unavailable (503, not 401).
    assert untrusting.status_code == 503, untrusting.get_data(as_text=True)
    assert untrusting.get_json()["code"] == "keys.unavailable"


def https(
    base: str, pki: PKI, who: str | None, method: str, path: str, **kw: Any
) -> tuple[int, Mapping[str, str], Any]:
    conn = http.client.HTTPSConnection(
        "127.0.0.1", urlsplit(base).port, context=pki.client_context(who), timeout=10
    )
    try:
        conn.request(method, path, **kw)
        resp = conn.getresponse()
        raw = resp.read()
        return resp.status, dict(resp.headers), json.loads(raw) if raw else None
    finally:
        conn.close()


def form(data: Mapping[str, str], secret: str | None = None) -> dict[str, Any]:
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if secret is not None:
        raw = base64.b64encode(f"{AGGREGATOR}:{secret}".encode()).decode()
        headers["Authorization"] = f"Basic {raw}"
    return {"body": urlencode(data), "headers": headers}


def user_token(live_as: str, pki: PKI, secret: str) -> str:
    """Authorization code + PKCE for demo-user, the code exchanged over mTLS."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    query = {
        "response_type": "code",
        "client_id": AGGREGATOR,
        "redirect_uri": REDIRECT,
        "scope": "fdx:accountdetailed:read fdx:transactions:read",
        "state": "s1",
        "code_challenge": base64.urlsafe_b64encode(digest).rstrip(b"=").decode(),
        "code_challenge_method": "S256",
    }
    conn = http.client.HTTPSConnection(
        "127.0.0.1", urlsplit(live_as).port, context=pki.client_context(None), timeout=10
    )
    try:
        conn.request(
            "POST",
            "/authorize?" + urlencode(query),
            **form({"username": "demo-user", "decision": "approve"}),
        )
        location = conn.getresponse().headers["Location"]
    finally:
        conn.close()  # fmt: skip
    code = parse_qs(urlsplit(location).query)["code"][0]
    grant = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT}
    status, _, body = https(
        live_as,
        pki,
        "client",
        "POST",
        "/token",
        **form(grant | {"code_verifier": verifier}, secret),
    )
    assert status == 200, body  # fmt: skip
    return str(body["access_token"])


@pytest.fixture(scope="module")
def live(pki: PKI) -> Iterator[tuple[str, str, str]]:
    """(authorization server, FDX API, fdx-aggregator's secret), both over TLS; the API
    requires a client certificate on every connection."""
    holder: dict[str, Any] = {}

    def make_as(url: str) -> Any:
        holder["demo"] = make_demo_config(url, redirect_uri=REDIRECT)
        return authserver.create_app(holder["demo"].authserver)

    with serve(make_as, pki.server_context()) as as_url:
        # The API fetches the AS's JWKS (issuer + "/jwks") trusting the throwaway CA.
        config = {"issuer": as_url, "ca_file": str(pki.ca_cert_path), "algorithms": ["ES256"]}
        with serve(lambda _: create_app(config), pki.server_context("required")) as api:
            yield as_url, api, holder["demo"].secrets[AGGREGATOR]


@pytest.mark.server
def test_over_mtls_with_the_sample_authorization_server_rfc8705_s3(live, pki):
    as_url, api, secret = live
    token = user_token(as_url, pki, secret)
    auth = {"Authorization": f"Bearer {token}"}
    status, headers, body = https(api, pki, "client", "GET", CORE, headers=auth)
    assert status == 200, body
    assert [a["accountId"] for a in body["accounts"]][:2] == ["acc-chk-1001", "acc-sav-1001"]
    assert body["accounts"][0]["currentBalance"] == 4823.17
    assert UUID4.fullmatch(headers["x-fapi-interaction-id"])
    # The same token over another certificate's connection: not the holder (RFC 8705 §3).
    status, headers, _ = https(api, pki, "other", "GET", CORE, headers=auth)
    assert status == 401 and 'error="invalid_token"' in headers["WWW-Authenticate"]
    # Client credentials over mTLS gives a bound token that may subscribe to notifications.
    cc = {"grant_type": "client_credentials", "scope": "fdx:notifications:subscribe"}
    _, _, issued = https(as_url, pki, "client", "POST", "/token", **form(cc, secret))
    sub = {"type": "NEW_DATA", "callbackUrl": "https://budget-buddy.example/fdx/events"}
    headers = {"Authorization": f"Bearer {issued['access_token']}"}
    headers["Content-Type"] = "application/json"
    status, _, made = https(
        api, pki, "client", "POST", SUBSCRIPTIONS, body=json.dumps(sub), headers=headers
    )
    assert status == 201 and made["type"] == "NEW_DATA"  # fmt: skip
