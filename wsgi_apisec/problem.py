"""RFC 9457 problem details for an :class:`~wsgi_apisec.errors.APISecError`: the one JSON
error body of the library (a profile may replace it with its own envelope)."""

from __future__ import annotations

import http

from .encoding import json_dumps
from .errors import APISecError

__all__ = ["PROBLEM_JSON", "problem_body", "reason_phrase"]

PROBLEM_JSON = "application/problem+json"


def reason_phrase(status: int) -> str:
    """The RFC 9110 reason phrase of ``status``, ``"Error"`` for a code it does not name."""
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def problem_body(error: APISecError) -> bytes:
    """An RFC 9457 ``application/problem+json`` body for ``error``: the §3.1 members, plus
    ``error`` (the RFC 6750 code, when there is one) and ``code`` (the dotted reason). Only
    the error's safe ``description`` is shown, never its log ``detail``."""
    body: dict[str, object] = {
        "type": "about:blank",
        "title": reason_phrase(error.status),
        "status": error.status,
        "detail": error.description,
    }
    if error.error:
        body["error"] = error.error
    body["code"] = error.code
    return json_dumps(body)
