"""Story 4, attacks: a body changed after it was signed, and a request sent a second time
exactly as it was accepted, to the OCEN lender and to the G2P mapper. Each must be refused
before the app runs, with the profile's own status and code."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping

import requests
from requests.auth import AuthBase

from .demo_g2p import G2PRun, envelope
from .demo_network import Network
from .demo_ocen import LOANS, OcenRun, create_body
from .demo_transcript import Transcript, expect, refusal

__all__ = ["TamperAfterSigning", "attack_story"]

UNLINKED = "token:55555@nid"
Signer = Callable[[requests.PreparedRequest], requests.PreparedRequest]


class TamperAfterSigning(AuthBase):
    """Runs the session's own auth (token, signature), then changes the body: what a
    party between the client and the server would do."""

    def __init__(self, auth: Signer, changes: Mapping[bytes, bytes]) -> None:
        self.auth, self.changes = auth, changes

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request = self.auth(request)
        body = request.body if isinstance(request.body, bytes) else b""
        for old, new in self.changes.items():
            body = body.replace(old, new, 1)
        request.body = body
        request.headers["Content-Length"] = str(len(body))
        return request


def _tampered(
    session: requests.Session, url: str, body: bytes, changes: Mapping[bytes, bytes]
) -> requests.Response:
    """POST ``body`` signed by the session, then changed by ``changes`` on the way."""
    assert session.auth is not None and not isinstance(session.auth, tuple)
    auth = TamperAfterSigning(session.auth, changes)
    return session.post(url, data=body, headers={"Content-Type": "application/json"}, auth=auth)


def _replayed(
    session: requests.Session, accepted: requests.PreparedRequest | None
) -> requests.Response:
    expect(accepted is not None, "no accepted request to replay")
    assert accepted is not None
    # The very bytes sent before: same token, same signature, same body.
    return session.send(accepted.copy())


def attack_story(net: Network, out: Transcript, ocen: OcenRun, g2p: G2PRun) -> None:
    out.story("4. Attacks — tampered bodies and replays are refused before the app runs")

    def ocen_tampered() -> str:
        response = _tampered(ocen.session, net.lender + LOANS, create_body(), net.tampering)
        return refusal(response, 401, "signature.invalid")

    def ocen_replay() -> str:
        return refusal(_replayed(ocen.session, ocen.accepted), 401, "signature.replayed")

    def g2p_tampered() -> str:
        doc = envelope(net, "link", id=UNLINKED, fa="account:777@bank")
        url, body = net.mapper + "/mapper/sync/link", json.dumps(doc).encode()
        response = _tampered(g2p.session, url, body, net.tampering)
        evidence = refusal(response, 401, "err.signature.invalid")
        # The proof that the mapper never ran: the ID is still not linked to anything.
        check = envelope(net, "resolve", id=UNLINKED)
        found = g2p.session.post(net.mapper + "/mapper/sync/resolve", json=check)
        expect(found.status_code == 200, f"resolve answered {found.status_code}")
        reason = found.json()["message"]["resolve_response"][0].get("status_reason_code")
        expect(reason == "succ.id.not_found", f"{UNLINKED}: {reason}")
        return f"{evidence}; {UNLINKED} still not linked"

    def g2p_replay() -> str:
        return refusal(_replayed(g2p.session, g2p.accepted), 401, "rjct.message_id.duplicate")

    out.step("OCEN", "body changed after signing (amount 50000.00 → 90000.00)", ocen_tampered)
    out.step("OCEN", "the accepted loan application sent again", ocen_replay)
    out.step("G2P", "body changed after signing (fa → account:666@evil)", g2p_tampered)
    out.step("G2P", "the accepted sync link sent again", g2p_replay)
