"""FDX Consent API (``/fdx/v6/consents``) and Event Notification subscriptions
(``/fdx/v6/notification-subscriptions``).

Consents need a valid, certificate-bound token and no scope, but a client only ever sees
its own consents, and a user token only the ones that user gave (anything else is 404, FDX
902). Subscriptions need ``fdx:notifications:subscribe`` and belong to the token's client.
"""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Response, jsonify, url_for

from .access import caller, consent_for, protected, store
from .errors import CONSENT_NOT_ACTIVE, INVALID_INPUT, SUBSCRIPTION_NOT_FOUND, FDXError
from .query import choice, json_body, parse_date
from .seed import party
from .storage import Consent, fdx_time

__all__ = ["INITIATORS", "NOTIFICATION_TYPES", "REASONS", "consents", "events", "revoke"]

consents = Blueprint("fdx_consents", __name__)
events = Blueprint("fdx_events", __name__)

#: FDX ConsentUpdateReason and PartyType.
REASONS = ("BUSINESS_RULE", "USER_ACTION")
INITIATORS = (
    "DATA_ACCESS_PLATFORM",
    "DATA_PROVIDER",
    "DATA_RECIPIENT",
    "INDIVIDUAL",
    "MERCHANT",
    "VENDOR",
)
#: FDX NotificationCategory: what a subscription is for.
NOTIFICATION_TYPES = ("CONSENT", "FRAUD", "MAINTENANCE", "NEW_DATA", "SECURITY")
SUBSCRIBE = "fdx:notifications:subscribe"


@consents.get("/consents/<consent_id>")
@protected()
def get_consent(consent_id: str) -> Response:
    return jsonify(consent_for(caller(), consent_id).to_fdx())


@consents.put("/consents/<consent_id>/revocation")
@protected()
def revoke_consent(consent_id: str) -> tuple[str, int]:
    consent = consent_for(caller(), consent_id)
    body = json_body()
    revoke(consent, choice(body, "reason", REASONS), choice(body, "initiator", INITIATORS))
    return "", 204


@consents.get("/consents/<consent_id>/revocation")
@protected()
def revocations(consent_id: str) -> Response:
    consent = consent_for(caller(), consent_id)
    return jsonify({"revocations": store().revocations(consent.consent_id)})


def revoke(consent: Consent, reason: str, initiator: str) -> None:
    """FDX ConsentRevocation; 409 (FDX 903) when the consent is no longer active."""
    record = {
        "status": "REVOKED",
        "reason": reason,
        "initiator": initiator,
        "updatedTime": fdx_time(store().clock()),
    }
    if not store().revoke(consent, record):
        raise FDXError(CONSENT_NOT_ACTIVE, f"consent {consent.consent_id!r} is {consent.status}")


# --- notification subscriptions ---------------------------------------------------------


@events.post("/notification-subscriptions")
@protected(scopes=[SUBSCRIBE])
def subscribe() -> tuple[Response, int, dict[str, str]]:
    who = caller()
    body = json_body()
    subscription: dict[str, Any] = {
        "subscriptionId": "sub-" + secrets.token_hex(8),
        "type": choice(body, "type", NOTIFICATION_TYPES),
        "callbackUrl": _callback(body.get("callbackUrl")),
        "effectiveDate": _effective_date(body.get("effectiveDate")),
        # Who subscribed comes from the token, never from the body.
        "subscriber": party(who.client_id),
    }
    store().add_subscription(subscription["subscriptionId"], who.client_id, subscription)
    where = url_for(".get_subscription", subscription_id=subscription["subscriptionId"])
    return jsonify(subscription), 201, {"Location": where}


@events.get("/notification-subscriptions/<subscription_id>")
@protected(scopes=[SUBSCRIBE])
def get_subscription(subscription_id: str) -> Response:
    return jsonify(_own_subscription(subscription_id))


@events.delete("/notification-subscriptions/<subscription_id>")
@protected(scopes=[SUBSCRIBE])
def unsubscribe(subscription_id: str) -> tuple[str, int]:
    _own_subscription(subscription_id)
    store().delete_subscription(subscription_id)
    return "", 204


def _own_subscription(subscription_id: str) -> dict[str, Any]:
    found = store().subscription(subscription_id)
    if found is None or found[0] != caller().client_id:
        raise FDXError(SUBSCRIPTION_NOT_FOUND, f"no subscription {subscription_id!r}")
    return found[1]


def _callback(value: Any) -> str:
    # Notifications carry account events: only to an https endpoint.
    parts = urlsplit(value) if isinstance(value, str) and len(value) <= 2048 else None
    if parts is None or parts.scheme != "https" or not parts.hostname or parts.username:
        raise FDXError(INVALID_INPUT, "callbackUrl must be an https URL")
    return str(value)


def _effective_date(value: Any) -> str:
    if value is None:
        return fdx_time(store().clock())[:10]
    if not isinstance(value, str):
        raise FDXError(INVALID_INPUT, "effectiveDate must be a date, YYYY-MM-DD")
    return parse_date(value, "effectiveDate").isoformat()
