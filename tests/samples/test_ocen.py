"""The OCEN lender sample: each route, then one test per attack on the token and the request
signature, with the signer's key looked up in the sample participant registry served on
127.0.0.1; key sources behind a private CA (``ca_file``) or injected (``key_resolver``); and
one run over real sockets (authorization server, registry and lender, all over TLS)."""

from __future__ import annotations

import http.client
import json
import secrets
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from flask_apisec.testing import APISecClient, TestIssuer
from sample_apps import authserver, registry
from sample_apps.config import DEMO_AUDIENCE, DemoConfig, make_demo_config
from sample_apps.ocen import create_app
from sample_apps.pki import PKI, make_pki
from wsgi_apisec import jws
from wsgi_apisec.encoding import b64url_encode, json_dumps
from wsgi_apisec.errors import ConfigurationError, SignatureError
from wsgi_apisec.keys import PrivateKey
from wsgi_apisec.message import Body, Headers, Message
from wsgi_apisec.profiles import EXPECTED_SIGNER, OCEN
from wsgi_apisec.resolvers import StaticKeyResolver
from wsgi_apisec.signatures import RequestVerifier, ResponseSigner

from . import serve

PATH = "/ocen/v4/loan-applications"
SCOPE = "ocen:loan-applications"
ISSUER = "https://auth.ocen.test/realms/ocen"


@pytest.fixture(scope="module")
def demo() -> DemoConfig:
    return make_demo_config()


@pytest.fixture(scope="module")
def registry_url(demo: DemoConfig) -> Iterator[str]:
    with serve(lambda _: registry.create_app(demo.registry)) as base:
        yield base


@pytest.fixture(scope="module")
def issuer() -> TestIssuer:
    # OCEN's auth service is Keycloak: RS256, typ "JWT".
    return TestIssuer("RS256", issuer=ISSUER, audience=DEMO_AUDIENCE)


@pytest.fixture
def app(demo: DemoConfig, registry_url: str, issuer: TestIssuer) -> Flask:
    config = {"issuer": ISSUER, "jwks": issuer.jwks, "registry_url": registry_url}
    lender = create_app({**config, "signing_key": demo.keys["lender-1"]})
    lender.test_client_class = APISecClient
    return lender


@pytest.fixture
def client(app: Flask) -> APISecClient:
    made = app.test_client()
    assert isinstance(made, APISecClient)
    return made


def token(issuer: TestIssuer, participant: str | None = "lsp-1", scopes: str = SCOPE) -> str:
    return issuer.token(scopes, participantId=participant, header={"typ": "JWT"})


def metadata(participant: str = "lsp-1", request_id: str | None = None) -> dict[str, str]:
    return {
        "version": "4.0.0",
        "originatorParticipantId": participant,
        "requestId": request_id or str(uuid.uuid4()),
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "traceId": str(uuid.uuid4()),
    }


def create_body(request_id: str | None = None, participant: str = "lsp-1") -> bytes:
    application = {
        "borrower": {"primaryId": "ABCDE1234F", "primaryIdType": "PAN", "name": "Asha"},
        "requestedAmount": "50000.00",
        "currency": "INR",
        "tenureMonths": 12,
    }
    doc = {"metadata": metadata(participant, request_id), "loanApplications": [application]}
    return json.dumps(doc).encode()


class Lsp:
    """The loan agent: its token, its signing key, and the lender it calls."""

    def __init__(self, client: APISecClient, tok: str, key: PrivateKey) -> None:
        self.client, self.token, self.key = client, tok, key

    def send(self, method: str, path: str, body: bytes | str = b"", **kw: Any) -> Any:
        kw.setdefault("token", self.token)
        kw.setdefault("signature", (OCEN, self.key))
        return self.client.open(
            path, method=method, data=body, content_type="application/json", **kw
        )

    def create(self, **kw: Any) -> str:
        resp = self.send("POST", PATH, create_body(), **kw)
        assert resp.status_code == 201, resp.get_data(as_text=True)
        return str(resp.get_json()["loanApplications"][0]["loanApplicationId"])


@pytest.fixture
def lsp(client: APISecClient, issuer: TestIssuer, demo: DemoConfig) -> Lsp:
    return Lsp(client, token(issuer), demo.keys["lsp-1"])


def lender_verifies(resp: Any, key: PrivateKey) -> bool:
    """The LSP's side: the answer's x-jws-signature over exactly the bytes received, with
    the key of the lender it called (the OCEN profile as it is: responses are verified for
    the expected signer, not for a token's participantId)."""
    verifier = RequestVerifier(OCEN, StaticKeyResolver(owners={"lender-1": [key.public_key()]}))
    message = Message(status=resp.status_code, headers=Headers(list(resp.headers.items())))
    message.body = Body(resp.get_data())
    message.context[EXPECTED_SIGNER] = "lender-1"
    try:
        return verifier.verify(message).covered == ("body",)
    except SignatureError:
        return False


def problem(resp: Any) -> tuple[int, str]:
    assert resp.headers["Content-Type"] == "application/problem+json"
    return resp.status_code, resp.get_json()["code"]


# --- each route -----------------------------------------------------------------------------


def test_create_loan_application_201_signed_by_lender_1(lsp: Lsp, demo: DemoConfig) -> None:
    resp = lsp.send("POST", PATH, create_body("req-1"))
    assert resp.status_code == 201, resp.get_data(as_text=True)
    doc = resp.get_json()
    assert doc["metadata"]["originatorParticipantId"] == "lender-1"
    assert doc["metadata"]["requestId"] == "req-1"
    assert doc["response"] == {"status": "SUCCESS"}
    (made,) = doc["loanApplications"]
    assert made["status"] == "CREATED" and made["loanApplicationId"].startswith("la-")
    assert lender_verifies(resp, demo.keys["lender-1"])
    assert not lender_verifies(resp, demo.keys["lsp-1"])  # it is the lender's key, no other


def test_status_is_a_signed_get(lsp: Lsp, demo: DemoConfig) -> None:
    app_id = lsp.create()
    resp = lsp.send("GET", f"{PATH}/{app_id}")
    assert resp.status_code == 200, resp.get_data(as_text=True)
    found = resp.get_json()["loanApplication"]
    assert (found["loanApplicationId"], found["status"], found["offers"]) == (app_id, "CREATED", [])
    assert found["requestedAmount"] == "50000.00" and found["borrower"]["primaryId"] == "ABCDE1234F"
    assert lender_verifies(resp, demo.keys["lender-1"])


def test_offers_then_selected_offer(lsp: Lsp, demo: DemoConfig) -> None:
    app_id = lsp.create()
    body = json.dumps({"metadata": metadata()}).encode()
    resp = lsp.send("POST", f"{PATH}/{app_id}/offers", body)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    offers = resp.get_json()["offers"]
    assert [(o["sanctionedAmount"], o["interestRate"]) for o in offers] == [
        ("50000.00", "14.00"),
        ("40000.00", "12.50"),
    ]
    assert offers[0]["installmentAmount"] == "4489.36"  # 50000 at 14 % p.a. over 12 months
    assert lender_verifies(resp, demo.keys["lender-1"])

    again = lsp.send("POST", f"{PATH}/{app_id}/offers", json.dumps({"metadata": metadata()}))
    assert problem(again) == (409, "application.state")

    choice = {"metadata": metadata(), "offerId": offers[1]["offerId"]}
    resp = lsp.send("PUT", f"{PATH}/{app_id}/selected-offer", json.dumps(choice).encode())
    assert resp.status_code == 200, resp.get_data(as_text=True)
    chosen = resp.get_json()["loanApplication"]
    assert (chosen["status"], chosen["selectedOfferId"]) == ("OFFER_ACCEPTED", offers[1]["offerId"])
    assert lender_verifies(resp, demo.keys["lender-1"])


def test_selected_offer_must_be_one_of_the_offers(lsp: Lsp) -> None:
    app_id = lsp.create()
    choice = json.dumps({"metadata": metadata(), "offerId": "la-other-offer-1"})
    before = lsp.send("PUT", f"{PATH}/{app_id}/selected-offer", choice)
    assert problem(before) == (409, "application.state")  # no offers were made yet
    lsp.send("POST", f"{PATH}/{app_id}/offers", json.dumps({"metadata": metadata()}))
    choice = json.dumps({"metadata": metadata(), "offerId": "la-other-offer-1"})
    assert problem(lsp.send("PUT", f"{PATH}/{app_id}/selected-offer", choice)) == (
        400,
        "offer.unknown",
    )


def test_same_request_id_gets_the_first_answer(lsp: Lsp) -> None:
    # A new body (its traceId differs) and signature, the same requestId: OCEN idempotency.
    first = lsp.send("POST", PATH, create_body("req-7"))
    second = lsp.send("POST", PATH, create_body("req-7"))
    assert (first.status_code, second.status_code) == (201, 201)
    assert first.get_json() == second.get_json()


def test_invalid_body_is_400(lsp: Lsp) -> None:
    doc = json.loads(create_body())
    doc["loanApplications"][0]["requestedAmount"] = "-5"
    resp = lsp.send("POST", PATH, json.dumps(doc).encode())
    assert problem(resp) == (400, "request.invalid")


def test_health_is_unprotected(client: APISecClient) -> None:
    assert client.get("/health").get_json() == {"status": "ok"}


# --- the access token -----------------------------------------------------------------------


def test_no_token_is_401_bearer_challenge(lsp: Lsp) -> None:
    resp = lsp.send("POST", PATH, create_body(), token=None)
    assert problem(resp) == (401, "token.missing")
    assert resp.headers["WWW-Authenticate"] == "Bearer"


def test_token_without_the_scope_is_403(lsp: Lsp, issuer: TestIssuer) -> None:
    resp = lsp.send("POST", PATH, create_body(), token=token(issuer, scopes="openid"))
    assert problem(resp) == (403, "token.insufficient_scope")
    assert 'scope="ocen:loan-applications"' in resp.headers["WWW-Authenticate"]


def test_forged_token_is_401(lsp: Lsp, issuer: TestIssuer) -> None:
    # The issuer's iss and kid, another key.
    forged = TestIssuer("RS256", issuer=ISSUER, audience=DEMO_AUDIENCE, kid=issuer.key.kid)
    resp = lsp.send("POST", PATH, create_body(), token=token(forged))
    assert problem(resp) == (401, "token.signature")


def test_token_without_participant_id_is_401(lsp: Lsp, issuer: TestIssuer) -> None:
    resp = lsp.send("POST", PATH, create_body(), token=token(issuer, participant=None))
    assert problem(resp) == (401, "token.claims")


def test_rfc9068_at_jwt_token_is_accepted_too(lsp: Lsp, issuer: TestIssuer) -> None:
    resp = lsp.send("POST", PATH, create_body(), token=issuer.token(SCOPE, participantId="lsp-1"))
    assert resp.status_code == 201


# --- the participant --------------------------------------------------------------------------


def test_signed_by_another_participant_is_401(lsp: Lsp, demo: DemoConfig) -> None:
    # lsp-1's token, lender-1's (registered, valid) key: the key must be the token's party's.
    resp = lsp.send("POST", PATH, create_body(), signature=(OCEN, demo.keys["lender-1"]))
    assert problem(resp) == (401, "signature.invalid")


def test_participant_not_in_the_registry_is_401(lsp: Lsp, issuer: TestIssuer) -> None:
    resp = lsp.send("POST", PATH, create_body(), token=token(issuer, participant="lsp-9"))
    assert problem(resp) == (401, "signature.unknown_key")


def test_body_naming_another_originator_is_403(lsp: Lsp) -> None:
    resp = lsp.send("POST", PATH, create_body(participant="lsp-2"))
    assert problem(resp) == (403, "participant.mismatch")


def test_another_participant_cannot_see_the_application(
    lsp: Lsp, issuer: TestIssuer, demo: DemoConfig
) -> None:
    app_id = lsp.create()
    other = Lsp(lsp.client, token(issuer, participant="g2p-partner"), demo.keys["g2p-partner"])
    assert problem(other.send("GET", f"{PATH}/{app_id}")) == (404, "application.not_found")
    body = json.dumps({"metadata": metadata("g2p-partner")}).encode()
    resp = other.send("POST", f"{PATH}/{app_id}/offers", body)
    assert problem(resp) == (404, "application.not_found")


# --- the request signature ------------------------------------------------------------------


def compact(header: dict[str, Any], body: bytes, key: PrivateKey) -> str:
    return jws.sign(key, body, header)


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("missing", (401, "signature.missing")),
        ("not-a-jws", (400, "signature.malformed")),
        ("attached-payload", (401, "signature.invalid")),
        ("alg-PS256", (401, "signature.invalid")),
        ("alg-none", (401, "signature.invalid")),
    ],
)
def test_bad_signature_is_refused(
    lsp: Lsp, demo: DemoConfig, case: str, expected: tuple[int, str]
) -> None:
    body, key = create_body(), demo.keys["lsp-1"]
    header = jws.build_header(key, "RS256", b64=False, b64_in_crit=False)
    same_key_as_ps256 = PrivateKey.from_key(key.key, algorithms=["PS256"])
    values = {
        "missing": None,
        "not-a-jws": "this-is-not-a-jws",
        "attached-payload": jws.sign(key, body, {"alg": "RS256"}, detached=False),
        "alg-PS256": jws.sign(same_key_as_ps256, body, {**header, "alg": "PS256"}),
        "alg-none": b64url_encode(json_dumps({"alg": "none", "b64": False})) + "..",
    }
    headers = {} if values[case] is None else {"x-jws-signature": values[case]}
    resp = lsp.send("POST", PATH, body, signature=None, headers=headers)
    assert problem(resp) == expected


def test_tampered_body_is_401_and_nothing_is_created(lsp: Lsp, app: Flask) -> None:
    signed = create_body("req-tampered")
    message = Message(method="POST", target_uri="http://localhost" + PATH, body=Body(signed))
    ((name, value),) = ResponseSigner(OCEN, lsp.key).sign(message)
    tampered = signed.replace(b"50000.00", b"90000.00")
    resp = lsp.send("POST", PATH, tampered, signature=None, headers={name: value})
    assert problem(resp) == (401, "signature.invalid")
    store = app.extensions["ocen"].store
    assert store.answer_for("lsp-1", f"POST {PATH} req-tampered") is None
    # A refused signature is not remembered: the genuine request still goes through.
    genuine = lsp.send("POST", PATH, signed, signature=None, headers={name: value})
    assert genuine.status_code == 201


def test_get_signature_covers_the_path(lsp: Lsp) -> None:
    app_id = lsp.create()
    other = Message(method="GET", target_uri=f"http://localhost{PATH}/la-other")
    ((name, value),) = ResponseSigner(OCEN, lsp.key).sign(other)
    resp = lsp.send("GET", f"{PATH}/{app_id}", signature=None, headers={name: value})
    assert problem(resp) == (401, "signature.invalid")


def test_replayed_request_is_refused(lsp: Lsp) -> None:
    body = create_body()
    first = lsp.send("POST", PATH, body)
    again = lsp.send("POST", PATH, body)  # RS256 is deterministic: the same x-jws-signature
    assert first.status_code == 201
    assert problem(again) == (401, "signature.replayed")


def test_repeated_signed_get_is_served(lsp: Lsp) -> None:
    # The OCEN profile remembers signatures of requests with a body only: reads are safe.
    app_id = lsp.create()
    codes = [lsp.send("GET", f"{PATH}/{app_id}").status_code for _ in range(2)]
    assert codes == [200, 200]


# --- key sources: a private CA, an injected resolver ------------------------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return make_pki(tmp_path_factory.mktemp("ocen-pki"), clients=("lsp",))


@pytest.fixture(scope="module")
def tls_registry(demo: DemoConfig, pki: PKI) -> Iterator[str]:
    """The registry over TLS with a certificate of the throwaway CA (no system CA knows it)."""
    with serve(lambda _: registry.create_app(demo.registry), pki.server_context("none")) as base:
        yield base


def lender(demo: DemoConfig, issuer: TestIssuer, **config: Any) -> APISecClient:
    app = create_app({"issuer": ISSUER, "jwks": issuer.jwks, **config})
    app.test_client_class = APISecClient
    made = app.test_client()
    assert isinstance(made, APISecClient)
    return made


def test_a_registry_behind_a_private_ca_is_reached_with_ca_file(
    demo: DemoConfig, issuer: TestIssuer, tls_registry: str, pki: PKI
) -> None:
    base = {"registry_url": tls_registry, "signing_key": demo.keys["lender-1"]}
    trusting = Lsp(
        lender(demo, issuer, **base, ca_file=str(pki.ca_cert_path)),
        token(issuer),
        demo.keys["lsp-1"],
    )
    trusting.create()
    # The system store does not know the CA: the key source is unavailable (503, not 401).
    untrusting = Lsp(lender(demo, issuer, **base), token(issuer), demo.keys["lsp-1"])
    resp = untrusting.send("POST", PATH, create_body())
    assert problem(resp) == (503, "keys.unavailable")


def test_key_resolver_replaces_the_registry(demo: DemoConfig, issuer: TestIssuer) -> None:
    keys = StaticKeyResolver(owners={"lsp-1": [demo.keys["lsp-1"].public_key()]})
    client = lender(demo, issuer, key_resolver=keys, signing_key=demo.keys["lender-1"])
    Lsp(client, token(issuer), demo.keys["lsp-1"]).create()
    # lender-1 is in the registry, but not among the resolver's owners.
    other = Lsp(client, token(issuer, "lender-1"), demo.keys["lender-1"])
    resp = other.send("POST", PATH, create_body(participant="lender-1"))
    assert problem(resp) == (401, "signature.unknown_key")


# --- configuration ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "config",
    [
        {"issuer": ISSUER, "registry_url": "https://registry.example"},  # no signing_key
        {"issuer": ISSUER, "registry_url": "https://r.example", "signing_key": "k", "x": 1},
        {"issuer": ISSUER, "registry_url": "http://registry.example", "signing_key": "k"},
    ],
    ids=["missing-key", "unknown-key", "http-registry"],
)
def test_bad_config_is_refused_at_start(config: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        create_app(config)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"key_resolver": StaticKeyResolver([])}, "registry_url or key_resolver"),
        ({"registry_url": None}, "registry_url or key_resolver"),
        ({"registry_url": None, "key_resolver": "not a resolver"}, "must be a KeyResolver"),
        ({"ca_file": "/nonexistent/ca.pem"}, "is no CA bundle"),
        ({"ca_file": __file__}, "is no CA bundle"),
        ({"ca_file": 42}, "must be a path"),
        (
            {"registry_url": None, "key_resolver": StaticKeyResolver([]), "ca_file": __file__},
            "nothing is fetched",
        ),
    ],
    ids=["both", "neither", "not-a-resolver", "no-ca-file", "not-pem", "not-a-path", "unused-ca"],
)
def test_key_source_config_is_checked_at_start(
    demo: DemoConfig, issuer: TestIssuer, change: dict[str, Any], message: str
) -> None:
    config = {"issuer": ISSUER, "jwks": issuer.jwks, "registry_url": "https://r.example"}
    with pytest.raises(ConfigurationError, match=message):
        create_app({**config, "signing_key": demo.keys["lender-1"], **change})


# --- over real sockets: authorization server, registry, lender over TLS ----------------------


def lsp_access_token(base: str, key: PrivateKey, pki: PKI) -> str:
    """client_credentials with private_key_jwt (RFC 7523 §2.2), as ocen-lsp."""
    now = int(time.time())
    claims = {"iss": "ocen-lsp", "sub": "ocen-lsp", "aud": base + "/token", "iat": now}
    claims |= {"exp": now + 60, "jti": secrets.token_urlsafe(12)}
    assertion = jws.sign(key, json_dumps(claims), jws.build_header(key, "RS256"), detached=False)
    form = urllib.parse.urlencode(
        {
            "grant_type": "client_credentials",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": assertion,
        }
    )
    port = urllib.parse.urlsplit(base).port
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=pki.client_context(), timeout=5)
    conn.request("POST", "/token", form, {"Content-Type": "application/x-www-form-urlencoded"})
    answer = json.loads(conn.getresponse().read())
    conn.close()
    return str(answer["access_token"])


def test_over_sockets_with_the_real_auth_server_and_registry(
    demo: DemoConfig, tls_registry: str, pki: PKI, tmp_path: Path
) -> None:
    """The lender fetches the AS's JWKS (jwks_uri) and lsp-1's key from the registry, both
    over TLS with the throwaway CA (ca_file)."""

    def as_app(base: str) -> Flask:
        return authserver.create_app({**demo.authserver, "issuer": base})

    with serve(as_app, pki.server_context()) as auth:
        config: dict[str, Any] = {"issuer": auth, "registry_url": tls_registry}
        config |= {"ca_file": str(pki.ca_cert_path), "signing_key": demo.keys["lender-1"]}
        config |= {"database": str(tmp_path / "ocen.db")}
        with serve(lambda _: create_app(config), pki.server_context()) as lender:
            body = create_body("req-socket")
            message = Message(method="POST", target_uri=lender + PATH, body=Body(body))
            ((name, value),) = ResponseSigner(OCEN, demo.keys["lsp-1"]).sign(message)
            headers = {
                "Authorization": f"Bearer {lsp_access_token(auth, demo.keys['ocen-lsp'], pki)}",
                "Content-Type": "application/json",
                name: value,
            }
            port = urllib.parse.urlsplit(lender).port
            conn = http.client.HTTPSConnection(
                "127.0.0.1", port, context=pki.client_context("lsp"), timeout=10
            )
            conn.request("POST", PATH, body, headers)
            resp = conn.getresponse()
            raw, status = resp.read(), resp.status
            reply = Message(status=status, headers=Headers(resp.getheaders()), body=Body(raw))
            conn.close()
    assert status == 201, raw
    assert json.loads(raw)["loanApplications"][0]["status"] == "CREATED"
    # The LSP checks the answer with the OCEN profile as it is, for the lender it called.
    lenders = StaticKeyResolver(owners={"lender-1": [demo.keys["lender-1"].public_key()]})
    reply.context[EXPECTED_SIGNER] = "lender-1"
    result = RequestVerifier(OCEN, lenders).verify(reply)
    assert (result.owner, result.covered) == ("lender-1", ("body",))
