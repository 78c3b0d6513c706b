"""The demo data: two customers of the fictional Maple Street Bank, their deposit, loan and
investment accounts with three months of transactions (January to March 2025), the payment
and asset-transfer networks of each account, and the consents they gave.

* ``demo-user`` (customer ``cust-1001``, Jordan Rivera): joint checking ``acc-chk-1001``,
  savings ``acc-sav-1001``, auto loan ``acc-loan-1001``, brokerage ``acc-inv-1001``. Consent
  ``cns-1001-agg`` shares all four with ``fdx-aggregator``; ``cns-1001-coinjar`` shares the
  savings account with another client, ``coinjar-app``.
* ``demo-user-2`` (``cust-1002``, Priya Shah): checking ``acc-chk-1002`` (shared with
  ``fdx-aggregator`` by ``cns-1002-agg``) and a mortgage ``acc-mtg-1002`` that no consent
  shares yet: the pending authorization ``res-2001`` asks for it.

Names, numbers and addresses are made up (``example.com``, 555 numbers, 900-series tax ids,
a routing number that belongs to no bank).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from .storage import Account, Consent, FDXStore, fdx_time

__all__ = ["BANK", "party", "seed_demo"]

BANK = {
    "name": "Maple Street Bank",
    "type": "DATA_PROVIDER",
    "homeUri": "https://maple-street-bank.example",
    "logoUri": "https://maple-street-bank.example/logo.png",
    "registry": "FDX",
    "registeredEntityName": "Maple Street Bank, N.A.",
    "registeredEntityId": "maple-street-bank",
}
RECIPIENTS = {
    "fdx-aggregator": ("Budget Buddy", "Budget Buddy, Inc."),
    "coinjar-app": ("Coin Jar", "Coin Jar Labs LLC"),
}
ROUTING = "123456780"  # a well-formed ABA number of no bank
MONTHS = ("2025-01", "2025-02", "2025-03")
AS_OF = "2025-03-31T23:59:59.000Z"
DAY = 86400.0

PEOPLE = {
    "jordan": {"name": {"first": "Jordan", "middle": "A", "last": "Rivera"}}
    | {"dateOfBirth": "1986-04-12", "taxId": "900-12-4821", "taxIdCountry": "US"},
    "sam": {"name": {"first": "Sam", "last": "Rivera"}}
    | {"dateOfBirth": "1988-09-30", "taxId": "900-55-1937", "taxIdCountry": "US"},
    "priya": {"name": {"first": "Priya", "last": "Shah"}}
    | {"dateOfBirth": "1979-01-23", "taxId": "900-73-6604", "taxIdCountry": "US"},
}
CONTACTS = {
    "cust-1001": {
        "emails": ["jordan.rivera@example.com"],
        "addresses": [
            {"line1": "1200 Harbor View Dr", "line2": "Apt 4B", "city": "Columbus"}
            | {"region": "OH", "postalCode": "43215", "country": "US"}
        ],
        "telephones": [{"type": "CELL", "country": "1", "number": "6145550142"}],
    },
    "cust-1002": {
        "emails": ["priya.shah@example.com"],
        "addresses": [
            {"line1": "77 Orchard Ln", "city": "Dublin", "region": "OH", "postalCode": "43017"}
            | {"country": "US"}
        ],
        "telephones": [{"type": "HOME", "country": "1", "number": "6145550199"}],
    },
}

# Monthly pattern: (day, description, debitCreditMemo, amount, transactionType, change a month)
Pattern = Sequence[tuple[int, str, str, float, str, float]]
CHECKING: Pattern = (
    (1, "ACME LOGISTICS PAYROLL", "CREDIT", 3125.40, "DIRECTDEPOSIT", 0.0),
    (3, "CHECK 1041 HARBOR VIEW APTS RENT", "DEBIT", 1650.00, "CHECK", 0.0),
    (5, "KROGER #512 COLUMBUS OH", "DEBIT", 126.43, "POSDEBIT", 7.13),
    (8, "AEP OHIO ELECTRIC", "DEBIT", 94.18, "BILLPAYMENT", -6.02),
    (11, "SHELL OIL 5741", "DEBIT", 48.20, "POSDEBIT", 3.35),
    (14, "TRANSFER TO SAVINGS ...8842", "DEBIT", 500.00, "TRANSFER", 0.0),
    (15, "ACME LOGISTICS PAYROLL", "CREDIT", 3125.40, "DIRECTDEPOSIT", 0.0),
    (15, "AUTO LOAN PAYMENT ...3307", "DEBIT", 458.12, "TRANSFER", 0.0),
    (18, "NETFLIX.COM", "DEBIT", 15.49, "POSDEBIT", 0.0),
    (21, "ATM WITHDRAWAL 2ND & HIGH ST", "DEBIT", 80.00, "ATMWITHDRAWAL", 20.0),
    (24, "WHOLE FOODS MARKET #10233", "DEBIT", 88.67, "POSDEBIT", -4.81),
    (28, "INTEREST PAID", "CREDIT", 0.41, "INTEREST", 0.02),
)
SAVINGS: Pattern = (
    (14, "TRANSFER FROM CHECKING ...6012", "CREDIT", 500.00, "TRANSFER", 0.0),
    (28, "INTEREST PAID", "CREDIT", 60.12, "INTEREST", 1.71),
)
LOAN: Pattern = ((15, "SCHEDULED PAYMENT - THANK YOU", "CREDIT", 458.12, "PAYMENT", 0.0),)
BROKERAGE: Pattern = (
    (6, "BUY MSTMX MSB TOTAL MARKET INDEX", "DEBIT", 250.00, "PURCHASED", 0.0),
    (27, "DIVIDEND MSTMX", "CREDIT", 41.37, "DIVIDEND", 2.10),
)
CHECKING_2: Pattern = (
    (2, "STATE OF OHIO PAYROLL", "CREDIT", 2890.15, "DIRECTDEPOSIT", 0.0),
    (9, "COLUMBIA GAS OF OHIO", "DEBIT", 132.56, "BILLPAYMENT", -18.40),
    (17, "MEIJER #231 DUBLIN OH", "DEBIT", 74.35, "POSDEBIT", 5.50),
)


def transactions(prefix: str, category: str, pattern: Pattern) -> list[dict[str, Any]]:
    """Three months of ``pattern``; the last entry of the last month is still pending."""
    out: list[dict[str, Any]] = []
    for month_index, month in enumerate(MONTHS):
        for day, text, memo, amount, kind, step in pattern:
            when = f"{month}-{day:02d}"
            last = month == MONTHS[-1] and (day, text) == pattern[-1][:2]
            out.append(
                {
                    "accountCategory": category,
                    "transactionId": f"{prefix}-{len(out) + 1:04d}",
                    "postedTimestamp": f"{when}T12:00:00.000Z",
                    "transactionTimestamp": f"{when}T09:30:00.000Z",
                    "description": text,
                    "debitCreditMemo": memo,
                    "status": "PENDING" if last else "POSTED",
                    "amount": round(amount + step * month_index, 2),
                    "transactionType": kind,
                }
            )
    return out


def _basic(account_id: str, category: str, kind: str, last4: str, names: str) -> dict[str, Any]:
    product, nickname = names.split("|")
    return {
        "accountCategory": category,
        "accountId": account_id,
        "accountType": kind,
        "accountNumberDisplay": last4,
        "productName": product,
        "nickname": nickname,
        "status": "OPEN",
        "currency": {"currencyCode": "USD"},
    }


def _ach(number: str, *, transfer_out: bool = True) -> list[dict[str, Any]]:
    base = {"bankId": ROUTING, "identifier": number, "identifierType": "ACCOUNT_NUMBER"}
    networks = [{**base, "type": "US_ACH", "transferIn": True, "transferOut": transfer_out}]
    if transfer_out:
        networks.append({**base, "type": "US_FEDWIRE", "transferIn": True, "transferOut": True})
    return networks


def _contact(customer_id: str, *holders: str) -> dict[str, Any]:
    """``holders``: ``"person:RELATIONSHIP"`` (FDX AccountHolderRelationship)."""
    people = []
    for holder in holders:
        person, relationship = holder.split(":")
        people.append({**PEOPLE[person], "relationship": relationship})
    return {"holders": people, **CONTACTS[customer_id]}


_HOLDINGS = [
    {"holdingId": "hld-1", "securityId": "55501A101", "securityIdType": "CUSIP"}
    | {"holdingName": "MSB Total Market Index Fund", "holdingType": "MUTUALFUND"}
    | {"symbol": "MSTMX", "units": 212.418, "currentUnitPrice": 118.44, "marketValue": 25158.79},
    {"holdingId": "hld-2", "securityId": "55501B208", "securityIdType": "CUSIP"}
    | {"holdingName": "MSB Short-Term Treasury Fund", "holdingType": "MUTUALFUND"}
    | {"symbol": "MSSTX", "units": 480.0, "currentUnitPrice": 10.02, "marketValue": 4809.60},
]
_ACATS = [
    {"identifier": "BRK55501001", "identifierType": "ACCOUNT_NUMBER"}
    | {"institutionName": BANK["name"], "institutionId": "0999", "type": "US_ACATS"}
    | {"jointAccount": False}
]


def _accounts() -> Iterator[tuple[Account, list[dict[str, Any]]]]:
    deposit, loan = "DEPOSIT_ACCOUNT", "LOAN_ACCOUNT"
    specs: list[tuple[Any, ...]] = [
        ("acc-chk-1001", "cust-1001", deposit, "CHECKING", "6012", "Everyday Checking|Household",
         {"currentBalance": 4823.17, "availableBalance": 4698.17, "openingDayBalance": 4901.02,
          "interestRate": 0.01, "lastActivityDate": "2025-03-28"},
         ("jordan:PRIMARY_JOINT", "sam:SECONDARY_JOINT"), _ach("770001236012"),
         ("chk1001", CHECKING)),
        ("acc-sav-1001", "cust-1001", deposit, "SAVINGS", "8842", "High-Yield Savings|Rainy day",
         {"currentBalance": 18250.00, "availableBalance": 18250.00, "interestRate": 4.1},
         ("jordan:PRIMARY",), _ach("770001238842"), ("sav1001", SAVINGS)),
        ("acc-loan-1001", "cust-1001", loan, "AUTOLOAN", "3307", "Auto Loan 60|Car",
         {"principalBalance": 14210.55, "originalPrincipal": 24000.00, "interestRate": 5.49,
          "interestRateType": "FIXED", "loanTerm": 60, "originatingDate": "2023-07-15",
          "maturityDate": "2028-07-15", "nextPaymentAmount": 458.12,
          "nextPaymentDate": "2025-04-15"},
         ("jordan:PRIMARY_BORROWER",), _ach("880043303307", transfer_out=False),
         ("loan1001", LOAN)),
        ("acc-inv-1001", "cust-1001", "INVESTMENT_ACCOUNT", "TAXABLE", "1050",
         "Self-Directed Brokerage|Long term",
         {"currentValue": 31204.51, "availableCashBalance": 1236.12, "holdings": _HOLDINGS},
         ("jordan:PRIMARY",), [], ("inv1001", BROKERAGE)),
        ("acc-chk-1002", "cust-1002", deposit, "CHECKING", "2290", "Everyday Checking|Main",
         {"currentBalance": 2311.09, "availableBalance": 2311.09, "interestRate": 0.01,
          "lastActivityDate": "2025-03-17"},
         ("priya:PRIMARY",), _ach("770001252290"), ("chk1002", CHECKING_2)),
        ("acc-mtg-1002", "cust-1002", loan, "MORTGAGE", "7714", "30-Year Fixed Mortgage|Home",
         {"principalBalance": 286400.12, "originalPrincipal": 320000.00, "interestRate": 6.125,
          "interestRateType": "FIXED", "loanTerm": 360, "originatingDate": "2022-05-01",
          "maturityDate": "2052-05-01", "nextPaymentAmount": 1944.35,
          "nextPaymentDate": "2025-04-01"},
         ("priya:PRIMARY_BORROWER",), _ach("880043307714", transfer_out=False), None),
    ]  # fmt: skip
    for account_id, customer, category, kind, last4, names, detail, holders, ach, txns in specs:
        data = {
            "basic": _basic(account_id, category, kind, last4, names),
            "detail": {"balanceAsOf": AS_OF, **detail},
            "contact": _contact(customer, *holders),
            "paymentNetworks": ach,
            "assetTransferNetworks": _ACATS if category == "INVESTMENT_ACCOUNT" else [],
        }
        history = transactions(txns[0], category, txns[1]) if txns else []
        yield Account(account_id, customer, data), history


def party(client_id: str) -> dict[str, Any]:
    """The FDX ConsentGrantParty of a data recipient."""
    name, entity = RECIPIENTS.get(client_id, (client_id, client_id))
    return {
        "name": name,
        "type": "DATA_RECIPIENT",
        "homeUri": f"https://{client_id}.example",
        "logoUri": f"https://{client_id}.example/logo.png",
        "registry": "FDX",
        "registeredEntityName": entity,
        "registeredEntityId": client_id,
    }


def account_resources(account_ids: Sequence[str], clusters: Sequence[str]) -> list[Any]:
    return [
        {"resourceType": "ACCOUNT", "resourceId": a, "dataClusters": list(clusters)}
        for a in account_ids
    ]


def grant(client_id: str, now: float, resources: list[Any]) -> dict[str, Any]:
    """A one-year consent (FDX ConsentGrant without ``id`` / ``status``), granted ``now``."""
    return {
        "parties": [party(client_id), BANK],
        "createdTime": fdx_time(now),
        "expirationTime": fdx_time(now + 365 * DAY),
        "durationType": "TIME_BOUND",
        "durationPeriod": 365,
        "lookbackPeriod": 365,
        "resources": resources,
    }


def _consents(now: float) -> Iterator[Consent]:
    full = ("ACCOUNT_DETAILED", "TRANSACTIONS", "PAYMENT_SUPPORT")
    jordan = account_resources(("acc-chk-1001", "acc-sav-1001", "acc-loan-1001"), full)
    jordan += account_resources(("acc-inv-1001",), ("ACCOUNT_DETAILED", "INVESTMENTS"))
    jordan.append(
        {"resourceType": "CUSTOMER", "resourceId": "cust-1001"}
        | {"dataClusters": ["CUSTOMER_CONTACT", "CUSTOMER_PERSONAL"]}
    )
    since = now - 30 * DAY
    yield Consent(
        "cns-1001-agg",
        "fdx-aggregator",
        "cust-1001",
        "ACTIVE",
        grant("fdx-aggregator", since, jordan),
    )
    basic = account_resources(("acc-sav-1001",), ("ACCOUNT_BASIC",))
    yield Consent(
        "cns-1001-coinjar", "coinjar-app", "cust-1001", "ACTIVE", grant("coinjar-app", since, basic)
    )
    priya = account_resources(("acc-chk-1002",), full)
    yield Consent(
        "cns-1002-agg",
        "fdx-aggregator",
        "cust-1002",
        "ACTIVE",
        grant("fdx-aggregator", since, priya),
    )


PENDING_RESOURCE = {
    "resourceId": "res-2001",
    "consentId": "cns-1002-mtg",
    "clientId": "fdx-aggregator",
    "customerId": "cust-1002",
    "status": "AWAITING_AUTHORIZATION",
    "dataClusters": ["ACCOUNT_DETAILED", "TRANSACTIONS"],
    "accountIds": [],
}


def seed_demo(store: FDXStore) -> None:
    """Load the demo data into an empty store (consents are dated from its clock)."""
    store.add_customer("cust-1001", "demo-user", {"name": PEOPLE["jordan"]["name"]})
    store.add_customer("cust-1002", "demo-user-2", {"name": PEOPLE["priya"]["name"]})
    for account, history in _accounts():
        store.add_account(account, history)
    for consent in _consents(store.clock()):
        store.add_consent(consent)
    store.add_resource(PENDING_RESOURCE)
