"""Story 1, OCEN: the borrower agent ``ocen-lsp`` (participant ``lsp-1``) gets a token with
``private_key_jwt``, applies for a loan at ``lender-1`` with signed requests, and checks
every answer's signature with the lender's key from the participant registry; then asks for
offers and picks one."""

from __future__ import annotations

import json
import time
import uuid
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

import requests

from wsgi_apisec import jws, profiles
from wsgi_apisec.client import (
    APISecSession,
    ClientCredentials,
    ResponseVerification,
    signature_of,
)
from wsgi_apisec.registry import RegistryResolver

from .demo_network import Network, unverified_claims
from .demo_transcript import PASS, Transcript, error_code, expect

__all__ = ["LOANS", "OcenRun", "create_body", "lsp_session", "ocen_story"]

LOANS = "/ocen/v4/loan-applications"
LABEL = "OCEN"


def metadata() -> dict[str, str]:
    return {
        "version": "4.0.0",
        "originatorParticipantId": "lsp-1",
        "requestId": str(uuid.uuid4()),
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "traceId": str(uuid.uuid4()),
    }


def create_body() -> bytes:
    """A CreateLoanApplicationRequest for one borrower (each with its own requestId)."""
    application = {
        "borrower": {"primaryId": "ABCDE1234F", "primaryIdType": "PAN", "name": "Asha"},
        "requestedAmount": "50000.00",
        "currency": "INR",
        "tenureMonths": 12,
    }
    return json.dumps({"metadata": metadata(), "loanApplications": [application]}).encode()


@dataclass
class OcenRun:
    """What later steps need: the session and the first request the lender accepted."""

    session: APISecSession
    accepted: requests.PreparedRequest | None = None
    application_id: str | None = None
    offers: list[dict[str, Any]] = field(default_factory=list)


def lsp_session(net: Network, stack: ExitStack) -> tuple[APISecSession, ClientCredentials]:
    """lsp-1's client: tokens by private_key_jwt, every request signed under the OCEN
    profile with lsp-1's key, every answer checked against lender-1's registry key."""
    tokens = ClientCredentials(
        net.auth + "/token",
        "ocen-lsp",
        private_key=net.demo.keys["ocen-lsp"],
        scope="ocen:loan-applications",
        cert=net.certs["lsp-1"],
        verify=net.ca,
    )
    lender_key = RegistryResolver.ocen(net.registry, fetcher=net.fetcher())
    session = APISecSession(
        tokens,
        sign=(profiles.OCEN, net.signing_keys["lsp-1"]),
        verify_responses=ResponseVerification(profiles.OCEN, lender_key, owner="lender-1"),
        cert=net.certs["lsp-1"],
        verify=net.ca,
        timeout=10,
    )
    stack.enter_context(session)
    return session, tokens


def signed_by_lender(response: requests.Response, status: int) -> str:
    """The answer has ``status`` and a signature that verified with lender-1's key."""
    got = f"{response.status_code} {error_code(response)}"
    expect(response.status_code == status, f"expected {status}, got {got}")
    sig = signature_of(response)
    expect(sig is not None and sig.owner == "lender-1", "the answer is not signed by lender-1")
    return f"response signed by lender-1 {PASS}"


def ocen_story(net: Network, out: Transcript, stack: ExitStack) -> OcenRun:
    out.story("1. OCEN — borrower agent ocen-lsp (lsp-1) applies for a loan at lender-1")
    session, tokens = lsp_session(net, stack)
    run = OcenRun(session)

    def token() -> str:
        got = tokens.token()
        participant = unverified_claims(got.access_token).get("participantId")
        expect(participant == "lsp-1", f"participantId is {participant!r}")
        left = round((got.expires_at or 0) - time.time())
        return f"{got.token_type} JWT, participantId lsp-1, scope {got.scope}, {left} s"

    def create() -> str:
        response = session.post(
            net.lender + LOANS, data=create_body(), headers={"Content-Type": "application/json"}
        )
        evidence = signed_by_lender(response, 201)
        header = jws.parse_compact(response.request.headers["x-jws-signature"]).header
        sent = (header["alg"], header.get("b64"))
        expect(sent == ("RS256", False), f"the client signed with {sent}")
        run.accepted = response.request
        [made] = response.json()["loanApplications"]
        run.application_id = made["loanApplicationId"]
        return f"201 {made['status']} {run.application_id[:11]}…, {evidence}"

    def offers() -> str:
        expect(run.application_id is not None, "no loan application to continue")
        path = f"{net.lender}{LOANS}/{run.application_id}/offers"
        response = session.post(path, json={"metadata": metadata()})
        evidence = signed_by_lender(response, 200)
        run.offers = list(response.json()["offers"])
        terms = ", ".join(f"{o['sanctionedAmount']} at {o['interestRate']} %" for o in run.offers)
        return f"200, {len(run.offers)} offers: {terms}, {evidence}"

    def select() -> str:
        expect(bool(run.offers), "no offers to choose from")
        path = f"{net.lender}{LOANS}/{run.application_id}/selected-offer"
        choice = {"metadata": metadata(), "offerId": run.offers[-1]["offerId"]}
        response = session.put(path, json=choice)
        evidence = signed_by_lender(response, 200)
        status = response.json()["loanApplication"]["status"]
        expect(status == "OFFER_ACCEPTED", f"status {status}")
        return f"200 {status}, {evidence}"

    out.step(LABEL, "token for ocen-lsp by private_key_jwt", token)
    out.step(LABEL, "lender verified lsp-1's x-jws-signature (RS256, b64:false)", create)
    out.step(LABEL, "GenerateOffersRequest, signed", offers)
    out.step(LABEL, "SetOfferRequest for the second offer, signed", select)
    return run
