"""FDX Core API: accounts, account details, transactions, contact, payment networks and
asset-transfer networks. Registered under ``/fdx/v6/core`` (the path of the FDX security
table this sample follows) and ``/fdx/v6`` (the FDX v6 OpenAPI server base).

``fdx:accountbasic:read`` gives the FDX AccountDescriptor (type, masked number, product,
status, currency); ``fdx:accountdetailed:read`` adds balances, rates, loan terms and
holdings. The contact answer carries names and contact points with
``fdx:customercontact:read``, and each holder's date of birth and tax id only when the token
also has ``fdx:customerpersonal:read``.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request

from flask_apisec import current_token

from .access import account_for, caller, protected, store, visible_account_ids
from .query import date_range, paged
from .storage import Account

__all__ = ["PERSONAL_FIELDS", "core"]

core = Blueprint("fdx_core", __name__)

BASIC, DETAILED = "fdx:accountbasic:read", "fdx:accountdetailed:read"
CONTACT, PERSONAL = "fdx:customercontact:read", "fdx:customerpersonal:read"
#: FDX names these in the PAYMENT_SUPPORT data cluster; one scope covers both network lists.
PAYMENT_SUPPORT = "fdx:paymentsupport:read"
#: Holder members of the CUSTOMER_PERSONAL data cluster.
PERSONAL_FIELDS = ("dateOfBirth", "taxId", "taxIdCountry")


def _describe(account: Account) -> dict[str, Any]:
    basic: dict[str, Any] = dict(account.data["basic"])
    if current_token.has_scope(DETAILED):
        basic.update(account.data["detail"])
    return basic


@core.get("/accounts")
@protected(any_of=[BASIC, DETAILED])
def accounts() -> Response:
    found = (store().account(a) for a in visible_account_ids(caller()))
    return jsonify(paged([_describe(a) for a in found if a is not None], "accounts"))


@core.get("/accounts/<account_id>")
@protected(any_of=[BASIC, DETAILED])
def account(account_id: str) -> Response:
    return jsonify(_describe(account_for(caller(), account_id)))


@core.get("/accounts/<account_id>/transactions")
@protected(scopes=["fdx:transactions:read"])
def transactions(account_id: str) -> Response:
    found = account_for(caller(), account_id)
    start, end = date_range(request.args)
    return jsonify(paged(store().transactions(found.account_id, start, end), "transactions"))


@core.get("/accounts/<account_id>/contact")
@protected(scopes=[CONTACT])
def contact(account_id: str) -> Response:
    details: dict[str, Any] = dict(account_for(caller(), account_id).data["contact"])
    if not current_token.has_scope(PERSONAL):
        details["holders"] = [
            {k: v for k, v in holder.items() if k not in PERSONAL_FIELDS}
            for holder in details["holders"]
        ]
    return jsonify(details)


@core.get("/accounts/<account_id>/payment-networks")
@protected(scopes=[PAYMENT_SUPPORT])
def payment_networks(account_id: str) -> Response:
    found = account_for(caller(), account_id)
    return jsonify(paged(found.data["paymentNetworks"], "paymentNetworks"))


@core.get("/accounts/<account_id>/asset-transfer-networks")
@protected(scopes=[PAYMENT_SUPPORT])
def asset_transfer_networks(account_id: str) -> Response:
    found = account_for(caller(), account_id)
    return jsonify(paged(found.data["assetTransferNetworks"], "assetTransferNetworks"))
