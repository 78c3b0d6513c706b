"""The G2P Connect envelope: reading a request, the header-level reason codes, and the
response, acknowledgement and callback envelopes.

Request::

    {"signature": <optional>, "header": {version, message_id, message_ts, action, sender_id,
     sender_uri, receiver_id, total_count, is_msg_encrypted, meta},
     "message": {"transaction_id": ..., "<action>_request": [...]}}

Two kinds of failure, answered differently (see the README section "G2P mapper sample"):

* the envelope cannot be read (not a JSON object, a header member of the wrong type, no
  ``<action>_request`` list, a message for another receiver, an encrypted message):
  :class:`~wsgi_apisec.errors.InvalidRequest`, HTTP 400 ``{"errors": [...]}``;
* it can be read but is refused (G2P Connect ``MsgHeaderStatusReasonCode``): a
  :class:`Rejection` with an ``rjct.*`` code, answered with HTTP 200 in the envelope.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from wsgi_apisec.errors import InvalidRequest

__all__ = [
    "ACTIONS",
    "Header",
    "HeaderPolicy",
    "Rejection",
    "ack",
    "check_counts",
    "check_header",
    "parse_header",
    "parse_items",
    "parse_time",
    "response_header",
    "rfc3339",
]

#: The mapper actions this sample serves (G2P Connect FAMAP link/update/unlink/resolve).
ACTIONS = ("link", "resolve", "update", "unlink")

VERSION_INVALID = "rjct.version.invalid"
MESSAGE_ID_DUPLICATE = "rjct.message_id.duplicate"
MESSAGE_TS_INVALID = "rjct.message_ts.invalid"
ACTION_INVALID = "rjct.action.invalid"
ACTION_NOT_SUPPORTED = "rjct.action.not_supported"
TOTAL_COUNT_INVALID = "rjct.total_count.invalid"
TOTAL_COUNT_LIMIT = "rjct.total_count.limit_exceeded"
#: Not in the spec's header codes: the async request names no callback URL we may call.
SENDER_URI_INVALID = "rjct.sender_uri.invalid"

_MAX_ID = 128
#: RFC 3339 §5.6 ``date-time``: full date, time with seconds, optional fraction, an offset.
_DATE_TIME = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?(?:[Zz]|[+-]\d{2}:\d{2})",
    re.ASCII,
)
_STRINGS = ("version", "message_id", "message_ts", "action", "sender_id")


@dataclass(frozen=True)
class Header:
    version: str
    message_id: str
    message_ts: str
    action: str
    sender_id: str
    sender_uri: str | None
    receiver_id: str | None
    total_count: object


@dataclass(frozen=True)
class Rejection:
    code: str
    message: str


@dataclass(frozen=True)
class HeaderPolicy:
    versions: frozenset[str]
    max_age: float
    clock_skew: float
    max_items: int


def parse_header(doc: object, mapper_id: str) -> Header:
    """The request header, or :class:`InvalidRequest` when the envelope cannot be read."""
    header = doc.get("header") if isinstance(doc, dict) else None
    if not isinstance(header, dict) or not isinstance(doc, dict):
        raise InvalidRequest("the body must be a G2P Connect envelope with a header object")
    for name in _STRINGS:
        value = header.get(name)
        if not isinstance(value, str) or not value or len(value) > _MAX_ID:
            raise InvalidRequest(f"header.{name} must be a non-empty string")
    for name in ("sender_uri", "receiver_id"):
        if header.get(name) is not None and not isinstance(header[name], str):
            raise InvalidRequest(f"header.{name} must be a string")
    receiver = header.get("receiver_id") or None
    if receiver is not None and receiver != mapper_id:
        # The signature covers receiver_id: a message signed for another mapper is refused
        # here rather than replayed against this one.
        raise InvalidRequest(
            "header.receiver_id names another receiver", code="receiver_id.invalid"
        )
    if header.get("is_msg_encrypted", False) is not False:
        raise InvalidRequest("encrypted messages are not supported", code="encryption.invalid")
    return Header(
        version=header["version"],
        message_id=header["message_id"],
        message_ts=header["message_ts"],
        action=header["action"],
        sender_id=header["sender_id"],
        sender_uri=header.get("sender_uri") or None,
        receiver_id=receiver,
        total_count=header.get("total_count"),
    )


def parse_items(doc: dict[str, Any], action: str) -> tuple[str, list[Any]]:
    """``(transaction_id, items)`` of ``message.<action>_request``."""
    message = doc.get("message")
    if not isinstance(message, dict):
        raise InvalidRequest("the envelope has no message object")
    transaction_id = message.get("transaction_id")
    if not isinstance(transaction_id, str) or not transaction_id or len(transaction_id) > _MAX_ID:
        raise InvalidRequest("message.transaction_id must be a non-empty string")
    items = message.get(f"{action}_request")
    if not isinstance(items, list):
        raise InvalidRequest(f"message.{action}_request must be a list")
    return transaction_id, items


def check_header(
    header: Header, route_action: str, policy: HeaderPolicy, now: float
) -> Rejection | None:
    """The first header-level reason to refuse the message, in the order of the spec's list."""
    if header.version not in policy.versions:
        return Rejection(VERSION_INVALID, f"version {header.version[:16]!r} is not supported")
    if header.action not in ACTIONS:
        return Rejection(ACTION_NOT_SUPPORTED, "this mapper serves link, resolve, update, unlink")
    if header.action != route_action:
        return Rejection(ACTION_INVALID, f"header.action must be {route_action!r} on this route")
    sent = parse_time(header.message_ts)
    if sent is None:
        return Rejection(MESSAGE_TS_INVALID, "message_ts is not an RFC 3339 date-time")
    if sent > now + policy.clock_skew or sent < now - policy.max_age - policy.clock_skew:
        return Rejection(MESSAGE_TS_INVALID, "message_ts is too old or in the future")
    return None


def check_counts(header: Header, items: list[Any], policy: HeaderPolicy) -> Rejection | None:
    count = header.total_count
    if isinstance(count, bool) or not isinstance(count, int) or count != len(items):
        return Rejection(TOTAL_COUNT_INVALID, "total_count must equal the number of requests")
    if count > policy.max_items:
        return Rejection(TOTAL_COUNT_LIMIT, f"at most {policy.max_items} requests per message")
    return None


def parse_time(value: object) -> float | None:
    """An RFC 3339 ``date-time`` (with an offset or ``Z``) as Unix time, else ``None``."""
    # RFC 3339 §5.6: a date-time always carries its offset; a local time is ambiguous.
    if not isinstance(value, str) or _DATE_TIME.fullmatch(value) is None:
        return None
    try:
        parsed = datetime.datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    except ValueError:  # e.g. month 13
        return None
    return parsed.timestamp()


def rfc3339(now: float) -> str:
    moment = datetime.datetime.fromtimestamp(now, datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def response_header(
    request: Header,
    mapper_id: str,
    now: float,
    *,
    rejection: Rejection | None = None,
    completed: int = 0,
) -> dict[str, Any]:
    """The header of a sync response or callback: the request's message_id echoed (the spec
    asks receivers to echo it for correlation), ``on-<action>``, and our own ids."""
    count = request.total_count
    header: dict[str, Any] = {
        # An unsupported version is not echoed back: we answer in the one we speak.
        "version": "1.0.0" if rejection and rejection.code == VERSION_INVALID else request.version,
        "message_id": request.message_id,
        "message_ts": rfc3339(now),
        "action": f"on-{request.action}",
        "status": "rjct" if rejection else "succ",
        "total_count": count if isinstance(count, int) and not isinstance(count, bool) else 0,
        "completed_count": completed,
        "sender_id": mapper_id,
        "receiver_id": request.sender_id,
        "is_msg_encrypted": False,
    }
    if rejection is not None:
        header["status_reason_code"] = rejection.code
        header["status_reason_message"] = rejection.message
    return header


AckStatus = Literal["ACK", "NACK", "ERR"]


def ack(
    status: AckStatus, now: float, correlation_id: str, error: Rejection | None = None
) -> Mapping[str, Any]:
    """The async acknowledgement ``{"message": {"ack_status", "timestamp", "error"?,
    "correlation_id"}}``."""
    message: dict[str, Any] = {"ack_status": status, "timestamp": rfc3339(now)}
    if error is not None:
        message["error"] = {"code": error.code, "message": error.message}
    message["correlation_id"] = correlation_id
    return {"message": message}
