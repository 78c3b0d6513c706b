"""Loan applications, their offers and answered requests, in SQLite (standard ``sqlite3``).

Every application belongs to the participant (the loan agent) that created it; reads and
changes are always scoped to that participant, so one agent can neither see nor change
another's applications. Answers to POST / PUT requests are kept by participant and request
key (operation + ``requestId``) so a repeated request gets the answer it got the first time
(OCEN 4.0 makes every request idempotent on its ``requestId``).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

__all__ = ["Application", "LoanStore", "Offer", "StoredAnswer"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS applications (
    application_id TEXT PRIMARY KEY, participant_id TEXT NOT NULL, status TEXT NOT NULL,
    borrower TEXT NOT NULL, requested_amount TEXT NOT NULL, currency TEXT NOT NULL,
    tenure_months INTEGER NOT NULL, selected_offer TEXT,
    created_at REAL NOT NULL, updated_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS offers (
    offer_id TEXT PRIMARY KEY, application_id TEXT NOT NULL REFERENCES applications,
    sanctioned_amount TEXT NOT NULL, interest_rate TEXT NOT NULL,
    tenure_months INTEGER NOT NULL, installment TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS answers (
    participant_id TEXT NOT NULL, request_id TEXT NOT NULL, status INTEGER NOT NULL,
    body TEXT NOT NULL, PRIMARY KEY (participant_id, request_id));
"""

#: Loan application states, in order.
CREATED, OFFERED, OFFER_ACCEPTED = "CREATED", "OFFERED", "OFFER_ACCEPTED"


@dataclass(frozen=True)
class Offer:
    offer_id: str
    sanctioned_amount: str
    interest_rate: str
    tenure_months: int
    installment: str

    def to_json(self) -> dict[str, Any]:
        return {
            "offerId": self.offer_id,
            "sanctionedAmount": self.sanctioned_amount,
            "interestRate": self.interest_rate,
            "tenureMonths": self.tenure_months,
            "installmentAmount": self.installment,
        }


@dataclass(frozen=True)
class Application:
    application_id: str
    participant_id: str
    status: str
    borrower: Mapping[str, Any]
    requested_amount: str
    currency: str
    tenure_months: int
    selected_offer: str | None
    offers: tuple[Offer, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "loanApplicationId": self.application_id,
            "status": self.status,
            "borrower": dict(self.borrower),
            "requestedAmount": self.requested_amount,
            "currency": self.currency,
            "tenureMonths": self.tenure_months,
            "offers": [offer.to_json() for offer in self.offers],
            "selectedOfferId": self.selected_offer,
        }


@dataclass(frozen=True)
class StoredAnswer:
    status: int
    body: dict[str, Any]


class LoanStore:
    """One SQLite database (``":memory:"`` by default), safe to share between threads."""

    def __init__(self, path: str = ":memory:", *, clock: Callable[[], float] = time.time) -> None:
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()
        self._clock = clock

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One writer at a time; everything inside commits together or not at all."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # --- answered requests (idempotency on requestId) -------------------------------------

    def answer_for(self, participant: str, request_id: str) -> StoredAnswer | None:
        with self._lock:
            row = self._db.execute(
                "SELECT status, body FROM answers WHERE participant_id = ? AND request_id = ?",
                (participant, request_id),
            ).fetchone()
        return None if row is None else StoredAnswer(row[0], json.loads(row[1]))

    def remember(
        self, db: sqlite3.Connection, participant: str, request_id: str, answer: StoredAnswer
    ) -> None:
        db.execute(
            "INSERT INTO answers VALUES (?, ?, ?, ?)",
            (participant, request_id, answer.status, json.dumps(answer.body)),
        )

    # --- applications ---------------------------------------------------------------------

    def create(
        self,
        db: sqlite3.Connection,
        participant: str,
        borrower: Mapping[str, Any],
        amount: str,
        currency: str,
        tenure_months: int,
    ) -> Application:
        now, app_id = self._clock(), f"la-{uuid.uuid4()}"
        db.execute(
            "INSERT INTO applications VALUES (?, ?, ?, ?, ?, ?, ?, NULL, ?, ?)",
            (
                app_id,
                participant,
                CREATED,
                json.dumps(borrower),
                amount,
                currency,
                tenure_months,
                now,
                now,
            ),
        )
        return Application(
            app_id, participant, CREATED, borrower, amount, currency, tenure_months, None
        )

    def get(self, participant: str, application_id: str) -> Application | None:
        """The application, only if ``participant`` created it."""
        with self._lock:
            return self._get(self._db, participant, application_id)

    def get_for_update(
        self, db: sqlite3.Connection, participant: str, application_id: str
    ) -> Application | None:
        return self._get(db, participant, application_id)

    def _get(
        self, db: sqlite3.Connection, participant: str, application_id: str
    ) -> Application | None:
        row = db.execute(
            "SELECT application_id, participant_id, status, borrower, requested_amount,"
            " currency, tenure_months, selected_offer FROM applications"
            " WHERE application_id = ? AND participant_id = ?",
            (application_id, participant),
        ).fetchone()
        if row is None:
            return None
        offers = db.execute(
            "SELECT offer_id, sanctioned_amount, interest_rate, tenure_months, installment"
            " FROM offers WHERE application_id = ? ORDER BY rowid",
            (application_id,),
        ).fetchall()
        return Application(
            row[0], row[1], row[2], json.loads(row[3]), row[4], row[5], row[6], row[7],
            tuple(Offer(*o) for o in offers),
        )  # fmt: skip

    def add_offers(
        self, db: sqlite3.Connection, application_id: str, offers: Sequence[Offer]
    ) -> None:
        db.executemany(
            "INSERT INTO offers VALUES (?, ?, ?, ?, ?, ?)",
            [(o.offer_id, application_id, o.sanctioned_amount, o.interest_rate,
              o.tenure_months, o.installment) for o in offers],
        )  # fmt: skip
        self._set(db, application_id, status=OFFERED)

    def select_offer(self, db: sqlite3.Connection, application_id: str, offer_id: str) -> None:
        self._set(db, application_id, status=OFFER_ACCEPTED, selected_offer=offer_id)

    def _set(self, db: sqlite3.Connection, application_id: str, **values: str) -> None:
        columns = ", ".join(f"{name} = ?" for name in values)
        db.execute(
            f"UPDATE applications SET {columns}, updated_at = ? WHERE application_id = ?",
            (*values.values(), self._clock(), application_id),
        )
