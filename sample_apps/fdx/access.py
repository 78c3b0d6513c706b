"""Whose data a token reaches.

flask_apisec has already checked the token (signature, audience, expiry, scopes, the
certificate binding); this decides what its holder may see:

* the **client** is the token's ``client_id`` (RFC 9068 §2.2);
* the **user** is its ``sub`` when that is not the client itself: a token from the
  authorization-code flow names the customer who approved it, a client-credentials token
  names the client (RFC 9068 §2.2) and so no user;
* a user token reaches the accounts in the **active** consents that user gave that client
  (only the one named by an FDX ``fdxConsentId`` claim, when the token carries one); a
  client-credentials token reaches no account data at all.

An account outside those is answered exactly like an account that does not exist (404,
FDX 701), so a client cannot probe for other customers' account ids.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from flask import current_app

from flask_apisec import current_token, require_token
from wsgi_apisec.errors import InvalidToken

from .errors import ACCOUNT_NOT_FOUND, CONSENT_NOT_FOUND, FDXError
from .storage import Account, Consent, FDXStore

__all__ = [
    "Caller",
    "account_for",
    "caller",
    "consent_for",
    "protected",
    "store",
    "visible_account_ids",
]

V = TypeVar("V", bound=Callable[..., Any])


def protected(*, scopes: Sequence[str] = (), any_of: Sequence[str] = ()) -> Callable[[V], V]:
    """Every FDX route: a valid token bound to the TLS client certificate (RFC 8705 §3;
    FAPI 1.0 Advanced §6.2.1-1), with ``scopes`` and one of ``any_of``."""
    return require_token(scopes=scopes, any_of=any_of, cert_bound=True)


def store() -> FDXStore:
    found: FDXStore = current_app.extensions["fdx"].store
    return found


@dataclass(frozen=True)
class Caller:
    client_id: str
    #: The ``sub`` of a user token; ``None`` for a client-credentials token.
    user: str | None
    #: The customer that user is here (``None``: not a customer of this bank).
    customer_id: str | None
    #: FDX JWT profile ``fdxConsentId``: the one consent this token stands for.
    consent_id: str | None


def caller() -> Caller:
    token = current_token
    if not token.client_id:
        # RFC 9068 §2.2 makes client_id REQUIRED; without it nobody owns the request.
        raise InvalidToken("the access token names no client", code="token.no_client")
    user = token.subject if token.subject and token.subject != token.client_id else None
    consent = token.claims.get("fdxConsentId")
    return Caller(
        client_id=token.client_id,
        user=user,
        customer_id=store().customer_for_user(user) if user else None,
        consent_id=consent if isinstance(consent, str) else None,
    )


def _active_consents(who: Caller) -> list[Consent]:
    if who.customer_id is None:
        return []
    found = store().consents(client_id=who.client_id, customer_id=who.customer_id)
    return [
        c
        for c in found
        if c.status == "ACTIVE" and (who.consent_id is None or c.consent_id == who.consent_id)
    ]


def visible_account_ids(who: Caller) -> list[str]:
    """The accounts ``who`` may read, in consent order, each once."""
    seen: dict[str, None] = {}
    for consent in _active_consents(who):
        seen.update(dict.fromkeys(consent.account_ids))
    return list(seen)


def account_for(who: Caller, account_id: str) -> Account:
    account = store().account(account_id) if account_id in visible_account_ids(who) else None
    if account is None or account.customer_id != who.customer_id:
        raise FDXError(ACCOUNT_NOT_FOUND, f"no account {account_id!r} under this consent")
    return account


def consent_for(who: Caller, consent_id: str) -> Consent:
    """A consent this caller may see: one its client holds and, for a user token, one that
    user gave. Any other is 404, as if it did not exist."""
    consent = store().consent(consent_id)
    if (
        consent is None
        or consent.client_id != who.client_id
        or (who.user is not None and consent.customer_id != who.customer_id)
        or (who.consent_id is not None and consent_id != who.consent_id)
    ):
        raise FDXError(CONSENT_NOT_FOUND, f"no consent {consent_id!r} for this client")
    return consent
