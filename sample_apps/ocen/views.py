"""The lender's OCEN 4.0 loan-application routes (a synchronous reading of OCEN's
request / async-response pairs: the answer comes in the HTTP response).

The security is all declared here and enforced by flask_apisec before a view runs: a valid
access token with the ``ocen:loan-applications`` scope, and a request signature that
verifies with the registry key of the token's ``participantId``. The views add the
business rules: the body's ``metadata.originatorParticipantId`` must be the caller, an
application is visible only to the agent that created it, and every POST / PUT is idempotent
on ``metadata.requestId``.
"""

from __future__ import annotations

import datetime
import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from flask_apisec import current_signature, require_signature, require_token
from wsgi_apisec.errors import ConfigurationError

from .store import CREATED, OFFERED, Application, LoanStore, Offer, StoredAnswer

__all__ = ["OCEN_VERSION", "LenderState", "blueprint"]

OCEN_VERSION = "4.0.0"
SCOPE = "ocen:loan-applications"
MAX_APPLICATIONS = 10
MAX_AMOUNT = Decimal("10000000.00")
CENT = Decimal("0.01")
#: The offers this sample lender makes: (share of the requested amount, annual rate in %).
OFFER_TERMS = ((Decimal("1.00"), Decimal("14.00")), (Decimal("0.80"), Decimal("12.50")))

blueprint = Blueprint("ocen", __name__, url_prefix="/ocen/v4")


@dataclass(frozen=True)
class LenderState:
    """``app.extensions["ocen"]``: the store and who this lender is."""

    store: LoanStore
    participant_id: str


class ApiError(Exception):
    """A business rejection, answered as RFC 9457 problem JSON (and signed, like every
    answer of the app)."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail


@blueprint.errorhandler(ApiError)
def _problem(err: ApiError) -> tuple[Response, int]:
    title = {400: "Bad Request", 403: "Forbidden", 404: "Not Found", 409: "Conflict"}
    body = {"type": "about:blank", "title": title.get(err.status, "Error")}
    response = jsonify({**body, "status": err.status, "detail": err.detail, "code": err.code})
    response.mimetype = "application/problem+json"
    return response, err.status


def _state() -> LenderState:
    state: LenderState = current_app.extensions["ocen"]
    return state


def _caller() -> str:
    # The participant whose registry key verified the request signature: the profile found
    # it from the participantId of the *verified* access token.
    owner = current_signature.owner
    if not owner:  # cannot happen behind the OCEN profile; never serve an unnamed caller
        raise ConfigurationError("the request signature names no participant")
    return owner


# --- request parsing ----------------------------------------------------------------------


def _object(value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ApiError(400, "request.invalid", f"{what} must be a JSON object")
    return value


def _text(doc: Mapping[str, Any], name: str, what: str, *, required: bool = True) -> str:
    value = doc.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or not 0 < len(value) <= 64:
        raise ApiError(400, "request.invalid", f"{what}.{name} must be a string of 1-64 chars")
    return value


@dataclass(frozen=True)
class Metadata:
    request_id: str
    trace_id: str


def _metadata(doc: Mapping[str, Any]) -> Metadata:
    meta = _object(doc.get("metadata"), "metadata")
    originator = _text(meta, "originatorParticipantId", "metadata")
    if originator != _caller():
        # The body names who sends it; it must be the party that signed it.
        raise ApiError(403, "participant.mismatch", "originatorParticipantId is not the caller")
    return Metadata(
        _text(meta, "requestId", "metadata"),
        _text(meta, "traceId", "metadata", required=False),
    )


def _amount(value: Any, what: str) -> str:
    try:
        amount = Decimal(value) if isinstance(value, str) else None
    except InvalidOperation:
        amount = None
    if amount is None or not amount.is_finite() or not 0 < amount <= MAX_AMOUNT:
        raise ApiError(400, "request.invalid", f"{what} must be a decimal string in (0, 1e7]")
    if amount != amount.quantize(CENT):
        raise ApiError(400, "request.invalid", f"{what} has more than two decimals")
    return str(amount.quantize(CENT))


@dataclass(frozen=True)
class NewApplication:
    borrower: Mapping[str, Any]
    amount: str
    currency: str
    tenure_months: int


def _new_application(value: Any, index: int) -> NewApplication:
    what = f"loanApplications[{index}]"
    item = _object(value, what)
    borrower = _object(item.get("borrower"), f"{what}.borrower")
    kept = {
        name: _text(borrower, name, f"{what}.borrower", required=name == "primaryId")
        for name in ("primaryId", "primaryIdType", "name")
    }
    tenure = item.get("tenureMonths")
    if isinstance(tenure, bool) or not isinstance(tenure, int) or not 1 <= tenure <= 360:
        raise ApiError(400, "request.invalid", f"{what}.tenureMonths must be 1-360")
    currency = item.get("currency", "INR")
    if currency != "INR":
        raise ApiError(400, "request.invalid", f"{what}.currency: this lender lends in INR")
    amount = _amount(item.get("requestedAmount"), f"{what}.requestedAmount")
    return NewApplication({k: v for k, v in kept.items() if v}, amount, currency, tenure)


def _json_body() -> Mapping[str, Any]:
    doc = request.get_json(silent=True)
    return _object(doc, "the body")


# --- answers --------------------------------------------------------------------------------


def _envelope(meta: Metadata | None, **members: Any) -> dict[str, Any]:
    metadata = {
        "version": OCEN_VERSION,
        "originatorParticipantId": _state().participant_id,
        "timestamp": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    if meta is not None:
        metadata["requestId"] = meta.request_id
        if meta.trace_id:
            metadata["traceId"] = meta.trace_id
    return {"metadata": metadata, **members, "response": {"status": "SUCCESS"}}


def _idempotent(
    meta: Metadata, work: Callable[[sqlite3.Connection], StoredAnswer]
) -> tuple[Response, int]:
    """Run ``work`` once per caller, operation and ``requestId``; a repeat gets the first
    answer."""
    store, caller = _state().store, _caller()
    key = f"{request.method} {request.path} {meta.request_id}"
    answer = store.answer_for(caller, key)
    if answer is None:
        try:
            with store.transaction() as db:
                answer = work(db)
                store.remember(db, caller, key, answer)
        except sqlite3.IntegrityError:  # the same requestId won a race: answer as it was
            answer = store.answer_for(caller, key)
            if answer is None:
                raise
    return jsonify(answer.body), answer.status


def _application(db: sqlite3.Connection, application_id: str) -> Application:
    found = _state().store.get_for_update(db, _caller(), application_id)
    if found is None:
        # Also for another agent's application: its existence is not disclosed.
        raise ApiError(404, "application.not_found", "no such loan application")
    return found


def _offers(app: Application) -> list[Offer]:
    """Fixed terms for the sample: the installment is the usual annuity formula."""
    made = []
    for number, (share, rate) in enumerate(OFFER_TERMS, start=1):
        principal = (Decimal(app.requested_amount) * share).quantize(CENT)
        monthly, n = rate / 1200, app.tenure_months
        factor = (1 + monthly) ** n
        installment = (principal * monthly * factor / (factor - 1)).quantize(CENT, ROUND_HALF_UP)
        offer_id = f"{app.application_id}-offer-{number}"
        made.append(Offer(offer_id, str(principal), str(rate), n, str(installment)))
    return made


# --- routes ---------------------------------------------------------------------------------


@blueprint.post("/loan-applications")
@require_token(scopes=SCOPE)
@require_signature
def create_loan_applications() -> tuple[Response, int]:
    """CreateLoanApplicationRequest: one or more applications for one borrower."""
    doc = _json_body()
    meta = _metadata(doc)
    items = doc.get("loanApplications")
    if not isinstance(items, list) or not 0 < len(items) <= MAX_APPLICATIONS:
        raise ApiError(400, "request.invalid", "loanApplications must hold 1-10 applications")
    wanted = [_new_application(item, i) for i, item in enumerate(items)]

    def create(db: sqlite3.Connection) -> StoredAnswer:
        store, caller = _state().store, _caller()
        made = [
            store.create(db, caller, w.borrower, w.amount, w.currency, w.tenure_months)
            for w in wanted
        ]
        listed = [{"loanApplicationId": a.application_id, "status": a.status} for a in made]
        return StoredAnswer(201, _envelope(meta, loanApplications=listed))

    return _idempotent(meta, create)


@blueprint.get("/loan-applications/<application_id>")
@require_token(scopes=SCOPE)
@require_signature
def loan_application_status(application_id: str) -> Response:
    """LoanApplicationStatus: the application, its offers and the one chosen."""
    found = _state().store.get(_caller(), application_id)
    if found is None:
        raise ApiError(404, "application.not_found", "no such loan application")
    return jsonify(_envelope(None, loanApplication=found.to_json()))


@blueprint.post("/loan-applications/<application_id>/offers")
@require_token(scopes=SCOPE)
@require_signature
def generate_offers(application_id: str) -> tuple[Response, int]:
    """GenerateOffersRequest: the lender underwrites and answers with its offers."""
    meta = _metadata(_json_body())

    def generate(db: sqlite3.Connection) -> StoredAnswer:
        app = _application(db, application_id)
        if app.status != CREATED:
            raise ApiError(409, "application.state", f"offers were already made ({app.status})")
        offers = _offers(app)
        _state().store.add_offers(db, application_id, offers)
        listed = [offer.to_json() for offer in offers]
        return StoredAnswer(
            200, _envelope(meta, loanApplicationId=app.application_id, offers=listed)
        )

    return _idempotent(meta, generate)


@blueprint.put("/loan-applications/<application_id>/selected-offer")
@require_token(scopes=SCOPE)
@require_signature
def set_offer(application_id: str) -> tuple[Response, int]:
    """SetOfferRequest: the borrower's choice among the offers."""
    doc = _json_body()
    meta = _metadata(doc)
    offer_id = _text(doc, "offerId", "the body")

    def select(db: sqlite3.Connection) -> StoredAnswer:
        app = _application(db, application_id)
        if app.status != OFFERED:
            raise ApiError(409, "application.state", f"no offer can be chosen ({app.status})")
        if offer_id not in {offer.offer_id for offer in app.offers}:
            raise ApiError(400, "offer.unknown", "offerId is not an offer of this application")
        _state().store.select_offer(db, application_id, offer_id)
        chosen = _application(db, application_id)
        return StoredAnswer(200, _envelope(meta, loanApplication=chosen.to_json()))

    return _idempotent(meta, select)
