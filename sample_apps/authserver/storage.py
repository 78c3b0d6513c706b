"""SQLite storage (standard library ``sqlite3``) for what the server must remember: codes,
opaque tokens and the ``jti`` of client assertions.

Codes and tokens are stored under their SHA-256, never in clear, so a copy of the database
does not hand out working credentials. One connection, guarded by a lock: the dev server
runs requests on threads.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS codes (
    code_hash TEXT PRIMARY KEY, client_id TEXT NOT NULL, redirect_uri TEXT,
    scope TEXT NOT NULL, user TEXT NOT NULL, code_challenge TEXT NOT NULL,
    code_challenge_method TEXT NOT NULL, expires_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS tokens (
    token_hash TEXT PRIMARY KEY, client_id TEXT NOT NULL, claims TEXT NOT NULL,
    expires_at INTEGER NOT NULL, revoked INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS assertion_jtis (
    client_id TEXT NOT NULL, jti TEXT NOT NULL, expires_at INTEGER NOT NULL,
    PRIMARY KEY (client_id, jti));
"""


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class StoredCode:
    client_id: str
    redirect_uri: str | None
    scope: str
    user: str
    code_challenge: str
    code_challenge_method: str


@dataclass(frozen=True)
class StoredToken:
    client_id: str
    claims: Mapping[str, Any]
    expires_at: int
    revoked: bool


class Storage:
    def __init__(self, path: str = ":memory:", clock: Callable[[], float] = time.time) -> None:
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()
        self._clock = clock

    def now(self) -> int:
        return int(self._clock())

    def save_code(self, code: str, stored: StoredCode, lifetime: int) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO codes VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    _digest(code),
                    stored.client_id,
                    stored.redirect_uri,
                    stored.scope,
                    stored.user,
                    stored.code_challenge,
                    stored.code_challenge_method,
                    self.now() + lifetime,
                ),
            )

    def take_code(self, code: str, client_id: str) -> StoredCode | None:
        """The code issued to ``client_id``, deleted in the same step: RFC 6749 §4.1.2 says
        a code MUST NOT be used twice, and a failed attempt (wrong PKCE verifier) burns it."""
        with self._lock:
            row = self._db.execute(
                "DELETE FROM codes WHERE code_hash = ? AND client_id = ? "
                "RETURNING client_id, redirect_uri, scope, user, code_challenge, "
                "code_challenge_method, expires_at",
                (_digest(code), client_id),
            ).fetchone()
        if row is None or row[6] <= self.now():
            return None
        return StoredCode(*row[:6])

    def save_token(self, token: str, claims: Mapping[str, Any]) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO tokens (token_hash, client_id, claims, expires_at) VALUES (?,?,?,?)",
                (_digest(token), claims["client_id"], json.dumps(claims), claims["exp"]),
            )

    def find_token(self, token: str) -> StoredToken | None:
        with self._lock:
            row = self._db.execute(
                "SELECT client_id, claims, expires_at, revoked FROM tokens WHERE token_hash = ?",
                (_digest(token),),
            ).fetchone()
        if row is None:
            return None
        return StoredToken(row[0], json.loads(row[1]), row[2], bool(row[3]))

    def revoke_token(self, token: str) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE tokens SET revoked = 1 WHERE token_hash = ?", (_digest(token),)
            )

    def remember_jti(self, client_id: str, jti: str, expires_at: int) -> bool:
        """False when ``client_id`` used ``jti`` before (RFC 7523 §3 item 7: no replays)."""
        with self._lock:
            self._db.execute("DELETE FROM assertion_jtis WHERE expires_at < ?", (self.now(),))
            try:
                self._db.execute(
                    "INSERT INTO assertion_jtis VALUES (?, ?, ?)", (client_id, jti, expires_at)
                )
            except sqlite3.IntegrityError:
                return False
        return True
