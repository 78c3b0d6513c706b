"""Participants in SQLite (standard library ``sqlite3``), seeded from the config.

Only public keys are stored: each configured JWK is re-exported through
:class:`~wsgi_apisec.keys.PublicKey`, so a private member given by mistake never reaches a
reply.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from wsgi_apisec.errors import APISecError, ConfigurationError
from wsgi_apisec.keys import PublicKey
from wsgi_apisec.registry import openg2p_partner_id

_SCHEMA = """
CREATE TABLE IF NOT EXISTS participants (
    participant_id TEXT PRIMARY KEY, partner_key TEXT NOT NULL UNIQUE,
    roles TEXT NOT NULL, jwks TEXT NOT NULL);
"""


@dataclass(frozen=True)
class Participant:
    participant_id: str
    roles: tuple[str, ...]
    #: Public JWKs, oldest to newest.
    keys: tuple[dict[str, Any], ...]

    @property
    def newest_key(self) -> dict[str, Any]:
        return self.keys[-1]


class ParticipantStore:
    def __init__(self, path: str = ":memory:") -> None:
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()

    def seed(self, participants: Iterable[Mapping[str, Any]]) -> None:
        for raw in participants:
            self.add(_participant(raw))

    def add(self, p: Participant) -> None:
        row = (p.participant_id, openg2p_partner_id(p.participant_id))
        try:
            with self._lock:
                self._db.execute(
                    "INSERT INTO participants VALUES (?, ?, ?, ?)",
                    (*row, json.dumps(p.roles), json.dumps(p.keys)),
                )
        except sqlite3.IntegrityError as exc:
            # "a-b" and "A_B" share the OpenG2P name PARTNER_A_B: one would shadow the other.
            raise ConfigurationError(f"participant {p.participant_id!r} clashes") from exc

    def by_id(self, participant_id: str) -> Participant | None:
        return self._one("participant_id", participant_id)

    def by_partner_key(self, name: str) -> Participant | None:
        return self._one("partner_key", name)

    def _one(self, column: str, value: str) -> Participant | None:
        with self._lock:
            row = self._db.execute(
                f"SELECT participant_id, roles, jwks FROM participants WHERE {column} = ?",
                (value,),
            ).fetchone()
        if row is None:
            return None
        return Participant(row[0], tuple(json.loads(row[1])), tuple(json.loads(row[2])))


def _participant(raw: Mapping[str, Any]) -> Participant:
    pid, roles, jwks = raw.get("participant_id"), raw.get("roles", []), raw.get("jwks")
    if not isinstance(pid, str) or not pid:
        raise ConfigurationError("every participant needs a participant_id")
    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
        raise ConfigurationError(f"{pid}: roles must be a list of strings")
    members = jwks.get("keys") if isinstance(jwks, Mapping) else None
    if not isinstance(members, list) or not members:
        raise ConfigurationError(f"{pid}: jwks must hold at least one key")
    try:
        keys = tuple(PublicKey.from_jwk(jwk).to_jwk() for jwk in members)
    except APISecError as exc:
        raise ConfigurationError(f"{pid}: {exc.description}") from exc
    return Participant(pid, tuple(roles), keys)
