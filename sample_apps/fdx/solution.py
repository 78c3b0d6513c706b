"""The Data Provider's own consent-management APIs (client credentials, no FDX standard):

* External Resource Authentication (``/external/authentication/v1/resources/{resourceId}``):
  the bank's consent page reads a pending authorization (``external:resources:read``) and
  records the customer's decision on it (``external:resources:write``): ``AUTHORIZED``
  with the accounts the customer picked creates the consent grant, ``REJECTED`` does not.
* Participant Management User (``/participant/user/v1/consents``): the customer's consent
  dashboard lists and reads consents (``participantuser:consents:read``), revokes them or
  changes their accounts (``participantuser:consents:write``). A user token sees only its
  user's consents; the dashboard's client-credentials token sees every customer's (filter
  with ``?userId=``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flask import Blueprint, Response, jsonify, request

from .access import Caller, caller, protected, store
from .consents import revoke
from .errors import (
    CONSENT_NOT_ACTIVE,
    CONSENT_NOT_FOUND,
    INVALID_INPUT,
    RESOURCE_DECIDED,
    RESOURCE_NOT_FOUND,
    FDXError,
)
from .query import choice, json_body, paged
from .seed import account_resources, grant
from .storage import Consent, fdx_time

__all__ = ["external", "participant"]

external = Blueprint("external_resources", __name__)
participant = Blueprint("participant_user", __name__)


@external.get("/resources/<resource_id>")
@protected(scopes=["external:resources:read"])
def get_resource(resource_id: str) -> Response:
    return jsonify(_resource(resource_id))


@external.patch("/resources/<resource_id>")
@protected(scopes=["external:resources:write"])
def decide_resource(resource_id: str) -> Response:
    resource = _resource(resource_id)
    body = json_body()
    status = choice(body, "status", ("AUTHORIZED", "REJECTED"))
    accounts = _accounts(body, resource["customerId"]) if status == "AUTHORIZED" else []
    now = store().clock()
    decided = {**resource, "status": status, "accountIds": accounts, "updatedTime": fdx_time(now)}
    consent = None
    if status == "AUTHORIZED":
        resources = account_resources(accounts, resource["dataClusters"])
        granted = grant(resource["clientId"], now, resources)
        consent = Consent(
            resource["consentId"], resource["clientId"], resource["customerId"], "ACTIVE", granted
        )
    if not store().decide(decided, consent):
        raise FDXError(RESOURCE_DECIDED, f"resource {resource_id!r} is {resource['status']}")
    return jsonify(decided)


def _resource(resource_id: str) -> dict[str, Any]:
    found = store().resource(resource_id)
    if found is None:
        raise FDXError(RESOURCE_NOT_FOUND, f"no resource {resource_id!r}")
    return found


def _accounts(body: dict[str, Any], customer_id: str) -> list[str]:
    """``accountIds``: a non-empty list of the customer's own accounts."""
    ids = body.get("accountIds")
    if not isinstance(ids, list) or not ids or not all(isinstance(a, str) for a in ids):
        raise FDXError(INVALID_INPUT, "accountIds must be a non-empty list of account ids")
    for account_id in ids:
        found = store().account(account_id)
        if found is None or found.customer_id != customer_id:
            raise FDXError(INVALID_INPUT, f"{account_id!r} is not an account of this customer")
    return list(dict.fromkeys(ids))


# --- participant user consents ----------------------------------------------------------


def _visible(who: Caller, consent: Consent | None) -> bool:
    return consent is not None and (who.user is None or consent.customer_id == who.customer_id)


@participant.get("/consents")
@protected(scopes=["participantuser:consents:read"])
def list_consents() -> Response:
    who = caller()
    if who.user is not None:
        found = store().consents(customer_id=who.customer_id) if who.customer_id else []
    elif "userId" in request.args:
        customer = store().customer_for_user(request.args["userId"])
        found = store().consents(customer_id=customer) if customer else []
    else:
        found = store().consents()
    return jsonify(paged([c.to_fdx() for c in found], "consents"))


@participant.get("/consents/<consent_id>")
@protected(scopes=["participantuser:consents:read"])
def get_consent(consent_id: str) -> Response:
    return jsonify(_consent(consent_id).to_fdx())


@participant.patch("/consents/<consent_id>")
@protected(scopes=["participantuser:consents:write"])
def update_consent(consent_id: str) -> Response:
    """``{"accountIds": [...]}`` changes the shared accounts; ``{"status": "REVOKED"}``
    revokes it as the customer did it (FDX initiator INDIVIDUAL, reason USER_ACTION)."""
    consent = _consent(consent_id)
    body = json_body()
    if "accountIds" not in body and "status" not in body:
        raise FDXError(INVALID_INPUT, "give accountIds and/or status")
    revoking = "status" in body and choice(body, "status", ("REVOKED",)) == "REVOKED"
    accounts = _accounts(body, consent.customer_id) if "accountIds" in body else None
    if consent.status != "ACTIVE":
        raise FDXError(CONSENT_NOT_ACTIVE, f"consent {consent_id!r} is {consent.status}")
    if accounts is not None:
        store().update_grant(consent_id, _with_accounts(consent, accounts))
        consent = _consent(consent_id)
    if revoking:
        revoke(consent, "USER_ACTION", "INDIVIDUAL")
    return jsonify(_consent(consent_id).to_fdx())


def _consent(consent_id: str) -> Consent:
    found = store().consent(consent_id)
    if found is None or not _visible(caller(), found):
        raise FDXError(CONSENT_NOT_FOUND, f"no consent {consent_id!r}")
    return found


def _with_accounts(consent: Consent, accounts: Sequence[str]) -> dict[str, Any]:
    """The grant with its ACCOUNT resources replaced, keeping their data clusters."""
    resources = consent.grant.get("resources", [])
    kept = [r for r in resources if r["resourceType"] != "ACCOUNT"]
    clusters = next(
        (r["dataClusters"] for r in resources if r["resourceType"] == "ACCOUNT"),
        ["ACCOUNT_BASIC"],
    )
    updated = fdx_time(store().clock())
    return {
        **consent.grant,
        "resources": account_resources(accounts, clusters) + kept,
        "updatedTime": updated,
    }
