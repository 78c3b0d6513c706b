"""The request flow behind the eight routes, once the WSGI layers have checked the partner's
token (scope ``mapper:<action>``, certificate binding) and the request signature.

sync: read the envelope -> the signer is the token's party -> header codes -> the items ->
``{"header": ..., "message": {"<action>_response": [...]}}``.

async: the same checks, then the callback URL guard, then queue the work and answer
``ACK`` at once; the worker performs the action and POSTs the signed result to
``{sender_uri}/on-<action>``.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flask import Response, current_app, request

from flask_apisec import current_signature, current_token
from wsgi_apisec.encoding import json_dumps, json_loads
from wsgi_apisec.errors import SignatureError

from .actions import Context, run
from .callbacks import CallbackDispatcher, Delivery, callback_url
from .envelope import (
    MESSAGE_ID_DUPLICATE,
    SENDER_URI_INVALID,
    Header,
    HeaderPolicy,
    Rejection,
    ack,
    check_counts,
    check_header,
    parse_header,
    parse_items,
    response_header,
)
from .settings import MapperSettings
from .store import MapperStore

__all__ = ["MapperService"]


@dataclass(frozen=True)
class _Accepted:
    header: Header
    transaction_id: str
    items: list[Any]


class MapperService:
    def __init__(
        self, settings: MapperSettings, store: MapperStore, dispatcher: CallbackDispatcher
    ) -> None:
        self.settings = settings
        self.store = store
        self.dispatcher = dispatcher
        self.policy = HeaderPolicy(
            versions=settings.versions,
            max_age=settings.message_ts_max_age,
            clock_skew=settings.clock_skew,
            max_items=settings.max_items,
        )

    # --- the two kinds of route ------------------------------------------------------------

    def sync(self, action: str) -> Response:
        doc, header = self._read()
        now = self.settings.clock()
        correlation_id = str(uuid.uuid4())
        accepted = self._accept(doc, header, action, now)
        if isinstance(accepted, Rejection):
            head = response_header(header, self.settings.mapper_id, now, rejection=accepted)
            return _json({"header": head, "message": {"correlation_id": correlation_id}})
        return _json(self._result(action, accepted, correlation_id))

    def async_(self, action: str) -> Response:
        doc, header = self._read()
        now = self.settings.clock()
        correlation_id = str(uuid.uuid4())
        rejection = self._check_header(header, action, now)
        if rejection is not None:
            return _json(ack("ERR", now, correlation_id, rejection))
        prefixes = self.settings.callback_prefixes
        url = callback_url(header.sender_id, header.sender_uri, action, prefixes)
        if url is None:
            # NACK: the request is understood but no answer will follow, so nothing is done.
            refused = Rejection(SENDER_URI_INVALID, "sender_uri is not a callback URL of yours")
            return _json(ack("NACK", now, correlation_id, refused))
        accepted = self._accept(doc, header, action, now, header_checked=True)
        if isinstance(accepted, Rejection):
            return _json(ack("ERR", now, correlation_id, accepted))
        build = functools.partial(self._callback_body, action, accepted, correlation_id)
        label = f"{header.sender_id}/{header.message_id[:64]}"
        if not self.dispatcher.submit(Delivery(url, build, label)):
            return _overloaded()
        return _json(ack("ACK", now, correlation_id))

    # --- steps ------------------------------------------------------------------------------

    def _read(self) -> tuple[dict[str, Any], Header]:
        doc = json_loads(request.get_data(cache=True), "body")
        header = parse_header(doc, self.settings.mapper_id)
        _check_sender(header)
        return doc, header

    def _check_header(self, header: Header, action: str, now: float) -> Rejection | None:
        rejection = check_header(header, action, self.policy, now)
        if rejection is not None:
            return rejection
        # The replay store remembers message ids for the signature's window, per process
        # unless configured otherwise; this table is shared by every process on the database
        # and keeps them for as long as message_ts is acceptable.
        keep = self.policy.max_age + 2 * self.policy.clock_skew
        if not self.store.first_sight(header.sender_id, header.message_id, now, keep):
            return Rejection(MESSAGE_ID_DUPLICATE, "this message_id was already received")
        return None

    def _accept(
        self,
        doc: dict[str, Any],
        header: Header,
        action: str,
        now: float,
        *,
        header_checked: bool = False,
    ) -> _Accepted | Rejection:
        rejection = None if header_checked else self._check_header(header, action, now)
        if rejection is not None:
            return rejection
        transaction_id, items = parse_items(doc, action)
        rejection = check_counts(header, items, self.policy)
        return rejection or _Accepted(header, transaction_id, items)

    def _result(self, action: str, accepted: _Accepted, correlation_id: str) -> dict[str, Any]:
        now = self.settings.clock()
        ctx = Context(self.store, accepted.header.sender_id, now)
        results = run(action, accepted.items, ctx)
        head = response_header(
            accepted.header, self.settings.mapper_id, now, completed=len(results)
        )
        message = {
            "transaction_id": accepted.transaction_id,
            "correlation_id": correlation_id,
            f"{action}_response": results,
        }
        return {"header": head, "message": message}

    def _callback_body(self, action: str, accepted: _Accepted, correlation_id: str) -> bytes:
        return json_dumps(self._result(action, accepted, correlation_id))


def _check_sender(header: Header) -> None:
    """The envelope's ``sender_id`` must be the party that signed it and the party the
    access token was issued to (its ``client_id`` or OCEN-style ``participantId``): a
    partner may not send, with its own token, a message signed by another."""
    parties: set[object] = set()
    if current_token:  # the proxies are falsy when the layer set nothing
        parties = {current_token.client_id, current_token.claims.get("participantId")} - {None}
    signer = current_signature.owner if current_signature else None
    if signer != header.sender_id or header.sender_id not in parties:
        raise SignatureError(
            "header.sender_id is not the caller",
            code="signature.sender_invalid",
            detail=f"sender_id {header.sender_id!r:.80}, signer {signer!r:.80}, "
            f"token parties {sorted(map(str, parties))!r:.160}",
        )


def _json(body: Mapping[str, Any], status: int = 200, **headers: str) -> Response:
    return current_app.response_class(
        json_dumps(dict(body)), status=status, headers=headers, mimetype="application/json"
    )


def _overloaded() -> Response:
    error = {"code": "err.service.unavailable", "message": "callback queue is full; retry later"}
    return _json({"errors": [error]}, 503, **{"Retry-After": "1", "Cache-Control": "no-store"})
