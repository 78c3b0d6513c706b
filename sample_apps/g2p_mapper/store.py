"""The mapper's records in SQLite (standard library ``sqlite3``): ID -> financial address
links, and the message ids already processed per sender.

One ID maps to one financial address (FA); many IDs may share an FA (a household's
account). Several app processes may share one database file: every write is one statement
in autocommit mode, and the message-id table's primary key makes "first writer wins" atomic
across them.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Link", "MapperStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS links (
    id TEXT PRIMARY KEY, fa TEXT NOT NULL, name TEXT, phone_number TEXT,
    additional_info TEXT, updated_by TEXT NOT NULL, updated_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS links_fa ON links (fa);
CREATE TABLE IF NOT EXISTS messages (
    sender_id TEXT NOT NULL, message_id TEXT NOT NULL, received_at REAL NOT NULL,
    PRIMARY KEY (sender_id, message_id));
"""
#: The optional fields of a link an update may replace.
DETAILS = ("name", "phone_number", "additional_info")


@dataclass(frozen=True)
class Link:
    id: str
    fa: str
    name: str | None = None
    phone_number: str | None = None
    additional_info: Any = None
    #: The sender that linked or last updated it.
    updated_by: str = ""


class MapperStore:
    def __init__(self, path: str = ":memory:") -> None:
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=5)
        if path != ":memory:":
            self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()

    def get(self, id: str) -> Link | None:
        with self._lock:
            row = self._db.execute(
                "SELECT id, fa, name, phone_number, additional_info, updated_by "
                "FROM links WHERE id = ?",
                (id,),
            ).fetchone()
        if row is None:
            return None
        info = json.loads(row[4]) if row[4] is not None else None
        return Link(row[0], row[1], row[2], row[3], info, row[5])

    def fa_linked(self, fa: str) -> bool:
        with self._lock:
            row = self._db.execute("SELECT 1 FROM links WHERE fa = ? LIMIT 1", (fa,)).fetchone()
        return row is not None

    def link(self, link: Link, now: float) -> bool:
        """Add ``link``; ``False`` when its ID is already linked (nothing changed)."""
        with self._lock:
            cursor = self._db.execute(
                "INSERT OR IGNORE INTO links VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    link.id,
                    link.fa,
                    link.name,
                    link.phone_number,
                    _json(link.additional_info),
                    link.updated_by,
                    now,
                ),
            )
        return cursor.rowcount == 1

    def update(self, id: str, fa: str, details: Mapping[str, Any], by: str, now: float) -> bool:
        """Point ``id`` at ``fa`` and replace the ``details`` given (keys of
        :data:`DETAILS`); ``False`` when ``id`` is not linked."""
        columns = [name for name in DETAILS if name in details]
        values = [_json(details[n]) if n == "additional_info" else details[n] for n in columns]
        assignments = "".join(f", {name} = ?" for name in columns)
        with self._lock:
            cursor = self._db.execute(
                f"UPDATE links SET fa = ?, updated_by = ?, updated_at = ?{assignments} "
                "WHERE id = ?",
                (fa, by, now, *values, id),
            )
        return cursor.rowcount == 1

    def unlink(self, id: str, fa: str | None = None) -> bool:
        """Remove ``id``'s link, only if it points at ``fa`` when one is given (one
        statement, so a concurrent update cannot slip between the check and the delete)."""
        with self._lock:
            cursor = self._db.execute(
                "DELETE FROM links WHERE id = ? AND (? IS NULL OR fa = ?)", (id, fa, fa)
            )
        return cursor.rowcount == 1

    def first_sight(self, sender_id: str, message_id: str, now: float, keep: float) -> bool:
        """Record ``message_id`` of ``sender_id``; ``False`` when it was seen before.

        Ids received more than ``keep`` seconds ago are forgotten: a message that old is
        refused by its (signed) ``message_ts`` anyway.
        """
        with self._lock:
            self._db.execute("DELETE FROM messages WHERE received_at < ?", (now - keep,))
            cursor = self._db.execute(
                "INSERT OR IGNORE INTO messages VALUES (?, ?, ?)", (sender_id, message_id, now)
            )
        return cursor.rowcount == 1

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True)
