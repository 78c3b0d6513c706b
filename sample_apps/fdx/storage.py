"""SQLite storage (standard library ``sqlite3``) for the FDX sample: customers, their
accounts and transactions, consent grants and their revocations, notification
subscriptions and pending consent authorizations ("external resources").

Each row keeps its FDX document as JSON next to the columns the queries select on. One
connection, guarded by a lock: the dev server runs requests on threads.
"""

from __future__ import annotations

import datetime
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Account", "Consent", "FDXStore", "fdx_time"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS customers (
    customer_id TEXT PRIMARY KEY, user_id TEXT UNIQUE NOT NULL, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS accounts (
    account_id TEXT PRIMARY KEY, customer_id TEXT NOT NULL, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS transactions (
    transaction_id TEXT PRIMARY KEY, account_id TEXT NOT NULL, posted TEXT NOT NULL,
    data TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS transactions_by_account ON transactions (account_id, posted);
CREATE TABLE IF NOT EXISTS consents (
    consent_id TEXT PRIMARY KEY, client_id TEXT NOT NULL, customer_id TEXT NOT NULL,
    status TEXT NOT NULL, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS revocations (consent_id TEXT NOT NULL, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS subscriptions (
    subscription_id TEXT PRIMARY KEY, client_id TEXT NOT NULL, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS resources (resource_id TEXT PRIMARY KEY, data TEXT NOT NULL);
"""


def fdx_time(seconds: float) -> str:
    """An FDX ``Timestamp``: ISO 8601 UTC with milliseconds, ``2025-03-31T12:00:00.000Z``."""
    moment = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _seconds(timestamp: str) -> float:
    return datetime.datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()


@dataclass(frozen=True)
class Account:
    """``data``: ``basic`` (FDX AccountDescriptor), ``detail`` (balances, rates, holdings),
    ``contact`` (FDX AccountContact), ``paymentNetworks``, ``assetTransferNetworks``."""

    account_id: str
    customer_id: str
    data: Mapping[str, Any]


@dataclass(frozen=True)
class Consent:
    """A consent grant; ``grant`` is the FDX ConsentGrant without ``id`` and ``status``."""

    consent_id: str
    client_id: str
    customer_id: str
    status: str
    grant: Mapping[str, Any]

    @property
    def account_ids(self) -> tuple[str, ...]:
        return tuple(
            r["resourceId"]
            for r in self.grant.get("resources", ())
            if r["resourceType"] == "ACCOUNT"
        )

    def to_fdx(self) -> dict[str, Any]:
        return {"id": self.consent_id, "status": self.status, **self.grant}


class FDXStore:
    def __init__(self, path: str = ":memory:", clock: Callable[[], float] = time.time) -> None:
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()
        self.clock = clock

    def _rows(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def _write(self, sql: str, rows: Iterable[Sequence[Any]]) -> int:
        with self._lock:
            return self._db.executemany(sql, rows).rowcount

    # --- the demo data -------------------------------------------------------------------

    def is_empty(self) -> bool:
        return not self._rows("SELECT 1 FROM customers LIMIT 1")

    def add_customer(self, customer_id: str, user_id: str, data: Mapping[str, Any]) -> None:
        self._write("INSERT INTO customers VALUES (?, ?, ?)", [(customer_id, user_id, _j(data))])

    def add_account(self, account: Account, transactions: Iterable[Mapping[str, Any]]) -> None:
        row = (account.account_id, account.customer_id, _j(account.data))
        self._write("INSERT INTO accounts VALUES (?, ?, ?)", [row])
        self._write(
            "INSERT INTO transactions VALUES (?, ?, ?, ?)",
            [
                (t["transactionId"], account.account_id, t["postedTimestamp"][:10], _j(t))
                for t in transactions
            ],
        )

    # --- customers and accounts ----------------------------------------------------------

    def customer_for_user(self, user_id: str) -> str | None:
        rows = self._rows("SELECT customer_id FROM customers WHERE user_id = ?", (user_id,))
        return str(rows[0][0]) if rows else None

    def account(self, account_id: str) -> Account | None:
        rows = self._rows(
            "SELECT account_id, customer_id, data FROM accounts WHERE account_id = ?",
            (account_id,),
        )
        return Account(rows[0][0], rows[0][1], json.loads(rows[0][2])) if rows else None

    def transactions(
        self, account_id: str, start: datetime.date | None, end: datetime.date | None
    ) -> list[dict[str, Any]]:
        """Newest first; ``start`` / ``end`` bound the posted date, both inclusive."""
        low = start.isoformat() if start else "0000-01-01"
        high = end.isoformat() if end else "9999-12-31"
        rows = self._rows(
            "SELECT data FROM transactions WHERE account_id = ? AND posted BETWEEN ? AND ? "
            "ORDER BY posted DESC, transaction_id DESC",
            (account_id, low, high),
        )
        return [json.loads(row[0]) for row in rows]

    # --- consents ------------------------------------------------------------------------

    def _consent(self, row: tuple[Any, ...]) -> Consent:
        consent_id, client_id, customer_id, status, data = row
        grant = json.loads(data)
        expires = grant.get("expirationTime")
        if status == "ACTIVE" and expires and _seconds(expires) <= self.clock():
            status = "EXPIRED"
        return Consent(consent_id, client_id, customer_id, status, grant)

    def consent(self, consent_id: str) -> Consent | None:
        rows = self._rows("SELECT * FROM consents WHERE consent_id = ?", (consent_id,))
        return self._consent(rows[0]) if rows else None

    def consents(
        self, *, client_id: str | None = None, customer_id: str | None = None
    ) -> list[Consent]:
        rows = self._rows(
            "SELECT * FROM consents WHERE (?1 IS NULL OR client_id = ?1) "
            "AND (?2 IS NULL OR customer_id = ?2) ORDER BY consent_id",
            (client_id, customer_id),
        )
        return [self._consent(row) for row in rows]

    def add_consent(self, consent: Consent) -> None:
        self._write(_ADD_CONSENT, [_consent_row(consent)])

    def update_grant(self, consent_id: str, grant: Mapping[str, Any]) -> None:
        self._write("UPDATE consents SET data = ? WHERE consent_id = ?", [(_j(grant), consent_id)])

    def revoke(self, consent: Consent, revocation: Mapping[str, Any]) -> bool:
        """Mark ``consent`` revoked and keep the record; False when it was no longer active
        (checked and changed in one step, so two revocations cannot both succeed)."""
        if consent.status != "ACTIVE":
            return False
        grant = {**consent.grant, "updatedTime": revocation["updatedTime"]}
        with self._lock:
            changed = self._db.execute(
                "UPDATE consents SET status = 'REVOKED', data = ? "
                "WHERE consent_id = ? AND status = 'ACTIVE'",
                (_j(grant), consent.consent_id),
            ).rowcount
            if changed:
                self._db.execute(
                    "INSERT INTO revocations VALUES (?, ?)", (consent.consent_id, _j(revocation))
                )
        return bool(changed)

    def revocations(self, consent_id: str) -> list[dict[str, Any]]:
        rows = self._rows(
            "SELECT data FROM revocations WHERE consent_id = ? ORDER BY rowid", (consent_id,)
        )
        return [json.loads(row[0]) for row in rows]

    # --- notification subscriptions ------------------------------------------------------

    def add_subscription(
        self, subscription_id: str, client_id: str, data: Mapping[str, Any]
    ) -> None:
        self._write(
            "INSERT INTO subscriptions VALUES (?, ?, ?)", [(subscription_id, client_id, _j(data))]
        )

    def subscription(self, subscription_id: str) -> tuple[str, dict[str, Any]] | None:
        rows = self._rows(
            "SELECT client_id, data FROM subscriptions WHERE subscription_id = ?",
            (subscription_id,),
        )
        return (rows[0][0], json.loads(rows[0][1])) if rows else None

    def delete_subscription(self, subscription_id: str) -> None:
        self._write("DELETE FROM subscriptions WHERE subscription_id = ?", [(subscription_id,)])

    # --- external resources (pending consent authorizations) -----------------------------

    def add_resource(self, resource: Mapping[str, Any]) -> None:
        self._write("INSERT INTO resources VALUES (?, ?)", [(resource["resourceId"], _j(resource))])

    def resource(self, resource_id: str) -> dict[str, Any] | None:
        rows = self._rows("SELECT data FROM resources WHERE resource_id = ?", (resource_id,))
        found: dict[str, Any] | None = json.loads(rows[0][0]) if rows else None
        return found

    def decide(self, resource: Mapping[str, Any], consent: Consent | None) -> bool:
        """Record the decision on a pending resource (and create its consent when
        authorized) in one step; False when it was already decided."""
        with self._lock:
            current = self._db.execute(
                "SELECT data FROM resources WHERE resource_id = ?", (resource["resourceId"],)
            ).fetchone()
            if current is None or json.loads(current[0])["status"] != "AWAITING_AUTHORIZATION":
                return False
            self._db.execute(
                "UPDATE resources SET data = ? WHERE resource_id = ?",
                (_j(resource), resource["resourceId"]),
            )
            if consent is not None:
                self._db.execute(_ADD_CONSENT, _consent_row(consent))
        return True


_ADD_CONSENT = "INSERT INTO consents VALUES (?, ?, ?, ?, ?)"


def _consent_row(c: Consent) -> tuple[str, str, str, str, str]:
    return (c.consent_id, c.client_id, c.customer_id, c.status, _j(c.grant))


def _j(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))
