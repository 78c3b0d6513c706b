"""FDX business errors: the FDX ``Error`` entity ``{"code", "message", "debugMessage"}``.

Authentication and authorization failures are not these: they stay RFC 6750 answers from
flask_apisec (401 / 403 with ``WWW-Authenticate``). These are what the API itself refuses
once the caller is known: an account that is not there for this consent, a bad date range.

FDX (v6 ``Error.code``, a string) defines the 7xx account codes; the 9xx codes below are
this Data Provider's own, which the FDX ``Error`` entity allows.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import Response, jsonify

__all__ = [
    "ACCOUNT_NOT_FOUND",
    "CONSENT_NOT_ACTIVE",
    "CONSENT_NOT_FOUND",
    "INVALID_DATE",
    "INVALID_DATE_RANGE",
    "INVALID_INPUT",
    "RESOURCE_DECIDED",
    "RESOURCE_NOT_FOUND",
    "SUBSCRIPTION_NOT_FOUND",
    "ErrorCode",
    "FDXError",
    "render",
]


@dataclass(frozen=True)
class ErrorCode:
    code: str
    status: int
    message: str


ACCOUNT_NOT_FOUND = ErrorCode("701", 404, "Account not found")
INVALID_DATE = ErrorCode("702", 400, "Invalid start or end date")
INVALID_DATE_RANGE = ErrorCode("703", 400, "Invalid date range")
INVALID_INPUT = ErrorCode("901", 400, "Invalid input")
CONSENT_NOT_FOUND = ErrorCode("902", 404, "Consent not found")
CONSENT_NOT_ACTIVE = ErrorCode("903", 409, "Consent is not active")
SUBSCRIPTION_NOT_FOUND = ErrorCode("904", 404, "Subscription not found")
RESOURCE_NOT_FOUND = ErrorCode("905", 404, "Resource not found")
RESOURCE_DECIDED = ErrorCode("906", 409, "Resource is already authorized or rejected")


class FDXError(Exception):
    """A refusal in the FDX shape; ``debug`` must be safe to show to the caller."""

    def __init__(self, kind: ErrorCode, debug: str | None = None) -> None:
        super().__init__(kind.message)
        self.kind = kind
        self.debug = debug


def render(err: FDXError) -> tuple[Response, int]:
    body = {"code": err.kind.code, "message": err.kind.message}
    if err.debug:
        body["debugMessage"] = err.debug
    return jsonify(body), err.kind.status
