"""Story 3, G2P Connect: the partner ``g2p-partner`` gets a certificate-bound token by
``tls_client_auth``, links, resolves and unlinks an ID with signed envelopes (Ed25519,
Beckn-style ``Signature``) and checks the mapper's signed answers with its registry key;
then an async link is ACKed and its signed callback reaches the partner's receiver."""

from __future__ import annotations

import datetime
import queue
import time
import uuid
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import requests

from sample_apps.config import MAPPER_SCOPES
from wsgi_apisec import profiles
from wsgi_apisec.client import (
    APISecSession,
    ClientCredentials,
    RequestSigning,
    ResponseVerification,
    signature_of,
)
from wsgi_apisec.registry import RegistryResolver

from .demo_network import Callback, Network, unverified_claims
from .demo_transcript import PASS, Transcript, error_code, expect

__all__ = ["G2PRun", "envelope", "g2p_story", "partner_session"]

LABEL = "G2P"
PARTNER, MAPPER = "g2p-partner", "g2p-mapper"
ID, FA = "token:12345@nid", "account:123@bank"


def _now() -> str:
    moment = datetime.datetime.now(datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def envelope(net: Network, action: str, **item: Any) -> dict[str, Any]:
    """A G2P Connect request envelope with one item and a fresh message_id."""
    header = {
        "version": "1.0.0",
        "message_id": uuid.uuid4().hex,
        "message_ts": _now(),
        "action": action,
        "sender_id": PARTNER,
        "sender_uri": net.receiver + "/g2p",
        "receiver_id": MAPPER,
        "total_count": 1,
        "is_msg_encrypted": False,
    }
    items = [{"reference_id": "ref-1", "timestamp": _now(), **item}]
    return {"header": header, "message": {"transaction_id": "txn-1", f"{action}_request": items}}


@dataclass
class G2PRun:
    session: APISecSession
    #: The first request the mapper accepted (the replay step sends it again).
    accepted: requests.PreparedRequest | None = None


def partner_session(net: Network, stack: ExitStack) -> tuple[APISecSession, ClientCredentials]:
    tokens = ClientCredentials(
        net.auth + "/token",
        PARTNER,
        auth_method="tls_client_auth",
        scope=MAPPER_SCOPES,
        cert=net.certs[PARTNER],
        verify=net.ca,
    )
    as_partner = {**profiles.G2P_CONNECT.options, "sender_id": PARTNER}
    # G2P Connect: the sender's whole JWKS, where its Ed25519 key sits next to others.
    mapper_keys = RegistryResolver.g2p_connect(net.registry, fetcher=net.fetcher())
    session = APISecSession(
        tokens,
        sign=RequestSigning(
            profiles.G2P_CONNECT.replace(options=as_partner), net.signing_keys[PARTNER]
        ),
        verify_responses=ResponseVerification(profiles.G2P_CONNECT, mapper_keys, owner=MAPPER),
        cert=net.certs[PARTNER],
        verify=net.ca,
        timeout=10,
    )
    stack.enter_context(session)
    return session, tokens


def answered(response: requests.Response, action: str) -> tuple[dict[str, Any], str]:
    """The first item of a signed sync answer, and the evidence of its signature."""
    expect(response.status_code == 200, f"{response.status_code} {error_code(response)}")
    sig = signature_of(response)
    expect(sig is not None and sig.owner == MAPPER, "the answer is not signed by the mapper")
    assert sig is not None
    doc = response.json()
    expect(doc["header"]["status"] == "succ", f"header status {doc['header']['status']}")
    item: dict[str, Any] = doc["message"][f"{action}_response"][0]
    return item, f"response signed by g2p-mapper {PASS}"


def callback_for(net: Network, correlation_id: str, wait: float = 10.0) -> Callback:
    """The callback the receiver accepted for ``correlation_id`` (others are skipped)."""
    deadline = time.monotonic() + wait
    while (left := deadline - time.monotonic()) > 0:
        try:
            got = net.callbacks.get(timeout=left)
        except queue.Empty:
            break
        if got.body["message"].get("correlation_id") == correlation_id:
            return got
    raise AssertionError(f"no callback within {wait:g} s")


def g2p_story(net: Network, out: Transcript, stack: ExitStack) -> G2PRun:
    out.story("3. G2P — partner g2p-partner links, resolves and unlinks at the ID mapper")
    session, tokens = partner_session(net, stack)
    run = G2PRun(session)

    def sync(action: str, **item: Any) -> tuple[dict[str, Any], str]:
        response = session.post(
            f"{net.mapper}/mapper/sync/{action}", json=envelope(net, action, **item)
        )
        if run.accepted is None and response.status_code == 200:
            run.accepted = response.request
        return answered(response, action)

    def token() -> str:
        claims = unverified_claims(tokens.token().access_token)
        bound = claims.get("cnf", {}).get("x5t#S256")
        expect(bound == net.thumbprint(PARTNER), "the token is not bound to the certificate")
        return f"client_id {claims.get('client_id')}, cnf.x5t#S256 = its certificate"

    def link() -> str:
        got, evidence = sync("link", id=ID, fa=FA, name="Asha")
        expect(got["status"] == "succ", f"{got['status']} {got.get('status_reason_code')}")
        return f"{ID} → {got['fa']} succ, {evidence}"

    def resolve() -> str:
        got, evidence = sync("resolve", id=ID, scope="details")
        reason = got.get("status_reason_code")
        expect(got.get("fa") == FA, f"{got['status']} {reason}, fa {got.get('fa')!r}")
        return f"{reason}, fa {got['fa']}, {evidence}"

    def unlink() -> str:
        got, evidence = sync("unlink", id=ID, fa=FA)
        expect(got["status"] == "succ", f"{got['status']} {got.get('status_reason_code')}")
        return f"succ, {evidence}"

    def async_link() -> str:
        sent = envelope(net, "link", id="token:67890@nid", fa="account:456@bank")
        response = session.post(f"{net.mapper}/mapper/link", json=sent)
        expect(response.status_code == 200, f"{response.status_code} {error_code(response)}")
        ack = response.json()["message"]
        expect(ack.get("ack_status") == "ACK", f"ack_status {ack.get('ack_status')}")
        expect(signature_of(response) is not None, "the ACK is not signed")
        got = callback_for(net, ack["correlation_id"])
        statuses = [a["status"] for a in got.body["message"]["link_response"]]
        expect((got.path, got.signer) == ("on-link", MAPPER), f"{got.path} from {got.signer}")
        expect(statuses == ["succ"] and got.client_cert, f"{statuses}, cert {got.client_cert}")
        return (
            f"ACK signed; on-link arrived over mTLS, signed by {got.signer} "
            f"({got.alg}, registry key) {PASS}, succ"
        )

    out.step(LABEL, "token for g2p-partner by tls_client_auth", token)
    out.step(LABEL, "mapper verified the partner's Signature (ed25519) on sync link", link)
    out.step(LABEL, "sync resolve, scope details", resolve)
    out.step(LABEL, "sync unlink", unlink)
    out.step(LABEL, "async link: ACK now, signed callback later", async_link)
    return run
