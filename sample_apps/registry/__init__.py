"""A participant registry for the samples and tests: who a network participant is and which
public key verifies its signatures.

Routes (all ``GET``, JSON, 404 with ``application/problem+json`` for an unknown id)::

    /participant-roles/{participantId}   OCEN: {"participantId", "roles", "publicKey": JWK}
    /keys/PARTNER_{ID}                   OpenG2P partner key: {"publicKey": JWK}
    /participants/{participantId}/jwks   every key of the participant: {"keys": [...]}

``publicKey`` is the participant's newest key (the last in its ``jwks``); the JWKS route
lists them all, for rotation. These are the shapes
:class:`wsgi_apisec.RegistryResolver` reads (``.ocen`` and ``.openg2p``).

Config, with defaults::

    {
      "participants": [                      # required
        {"participant_id": "lender-1", "roles": ["LENDER"], "jwks": {"keys": [JWK, ...]}}
      ],
      "database": ":memory:",                # SQLite path
      "cache_max_age": 300                   # seconds, sent as Cache-Control max-age
    }
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NoReturn

from flask import Flask, Response, abort, jsonify

from wsgi_apisec.errors import ConfigurationError

from .storage import Participant, ParticipantStore

__all__ = ["Participant", "ParticipantStore", "create_app"]


def create_app(config: Mapping[str, Any] | str | Path) -> Flask:
    """The registry app for ``config`` (a dict or a JSON file path)."""
    raw: Mapping[str, Any]
    raw = json.loads(Path(config).read_text()) if isinstance(config, str | Path) else config
    participants = raw.get("participants")
    max_age = raw.get("cache_max_age", 300)
    if not isinstance(participants, list) or not isinstance(max_age, int) or max_age < 0:
        raise ConfigurationError("registry: participants (a list) and cache_max_age >= 0")
    store = ParticipantStore(str(raw.get("database", ":memory:")))
    store.seed(participants)
    app = Flask(__name__)
    app.extensions["registry"] = store

    def answer(body: dict[str, Any], media_type: str = "application/json") -> Response:
        response = jsonify(body)
        response.mimetype = media_type
        # Resolvers cache keys for this long (wsgi_apisec.cache honours max-age).
        response.cache_control.public = True
        response.cache_control.max_age = max_age
        return response

    @app.get("/participant-roles/<participant_id>")
    def participant_roles(participant_id: str) -> Response:
        p = store.by_id(participant_id) or _not_found()
        return answer(
            {"participantId": p.participant_id, "roles": list(p.roles), "publicKey": p.newest_key}
        )

    @app.get("/keys/<partner_key>")
    def partner_key(partner_key: str) -> Response:
        p = store.by_partner_key(partner_key) or _not_found()
        return answer({"publicKey": p.newest_key})

    @app.get("/participants/<participant_id>/jwks")
    def participant_jwks(participant_id: str) -> Response:
        p = store.by_id(participant_id) or _not_found()
        return answer({"keys": list(p.keys)}, "application/jwk-set+json")

    @app.errorhandler(404)
    def not_found(_: Exception) -> tuple[Response, int]:
        problem = {"type": "about:blank", "title": "Not Found", "status": 404}
        response = jsonify({**problem, "detail": "no such participant or route"})
        response.mimetype = "application/problem+json"
        return response, 404

    return app


def _not_found() -> NoReturn:
    abort(404)
