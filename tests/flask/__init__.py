"""Tests of the Flask extension (``flask_apisec``), and what they share."""

from __future__ import annotations

from typing import Any

from flask import Flask
from werkzeug.test import TestResponse

from flask_apisec.testing import APISecClient


def make_app(**config: Any) -> Flask:
    """A Flask app in testing mode whose test client is :class:`APISecClient`; ``config``
    are ``APISEC_*`` keys without the prefix (``issuers=[...]``)."""
    app = Flask(__name__)
    app.config["TESTING"] = True
    app.config.update({f"APISEC_{name.upper()}": value for name, value in config.items()})
    app.test_client_class = APISecClient
    return app


def outcome(response: TestResponse) -> tuple[int, str | None, str | None]:
    """``(status, RFC 6750 error, dotted code)`` of a problem+json answer."""
    body = response.get_json(silent=True) or {}
    return response.status_code, body.get("error"), body.get("code")
