"""link / resolve / update / unlink, item by item, with the spec's per-item reason codes.

Every item of ``message.<action>_request`` gets one entry in ``<action>_response``:
``status`` ``succ`` or ``rjct``, a ``status_reason_code`` (always for ``rjct`` and for
resolve, which answers with ``succ.*`` codes) and a ``status_reason_message``. One bad
item never spoils the others; items run in order, so a message may link an ID and then
update it.

IDs and financial addresses use the G2P Connect form ``<type>:<value>@<provider>``
(``token:12345@nid``, ``account:123@bank``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .envelope import parse_time, rfc3339
from .store import DETAILS, Link, MapperStore

__all__ = ["Context", "ItemRejected", "run"]

REFERENCE_ID_INVALID = "rjct.reference_id.invalid"
REFERENCE_ID_DUPLICATE = "rjct.reference_id.duplicate"
TIMESTAMP_INVALID = "rjct.timestamp.invalid"
ID_INVALID = "rjct.id.invalid"
FA_INVALID = "rjct.fa.invalid"
NAME_INVALID = "rjct.beneficiary_name.invalid"
PHONE_INVALID = "rjct.mobile_number.invalid"
OTHER_ERROR = "rjct.other.error"
RESOLVE_TYPE_NOT_SUPPORTED = "rjct.resolve_type.not_supported"
FA_ACTIVE = "succ.fa.active"
FA_NOT_FOUND = "succ.fa.not_found"
FA_NOT_LINKED_TO_ID = "succ.fa.not_linked_to_id"
ID_ACTIVE = "succ.id.active"
ID_NOT_FOUND = "succ.id.not_found"

_ADDRESS = re.compile(
    r"[A-Za-z][A-Za-z0-9_-]{0,31}:[A-Za-z0-9._+-]{1,128}@[A-Za-z0-9][A-Za-z0-9._-]{0,127}",
    re.ASCII,
)
_REFERENCE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}", re.ASCII)
_PHONE = re.compile(r"\+?[0-9]{4,20}", re.ASCII)
_LOCALE = re.compile(r"[A-Za-z]{2,3}(?:-[A-Za-z0-9]{1,8})?", re.ASCII)
_MAX_NAME = 256
_MAX_INFO = 4096
#: G2P Connect ResolveRequest: ``scope`` defaults to ``yes_no`` (the least disclosed).
_SCOPES = ("yes_no", "details")


class ItemRejected(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Context:
    store: MapperStore
    sender_id: str
    now: float


Handler = Callable[[Mapping[str, Any], Context], dict[str, Any]]


def run(action: str, items: list[Any], ctx: Context) -> list[dict[str, Any]]:
    """The ``<action>_response`` list for ``items``."""
    seen: set[str] = set()
    return [_one(HANDLERS[action], item, seen, ctx) for item in items]


def _one(handler: Handler, item: Any, seen: set[str], ctx: Context) -> dict[str, Any]:
    fields: Mapping[str, Any] = item if isinstance(item, dict) else {}
    ref = fields.get("reference_id")
    answer: dict[str, Any] = {
        "reference_id": ref if isinstance(ref, str) else None,
        "timestamp": rfc3339(ctx.now),
    }
    try:
        if not isinstance(ref, str) or _REFERENCE.fullmatch(ref) is None:
            raise ItemRejected(REFERENCE_ID_INVALID, "reference_id is missing or malformed")
        if ref in seen:
            raise ItemRejected(REFERENCE_ID_DUPLICATE, "reference_id repeats in this message")
        seen.add(ref)
        if parse_time(fields.get("timestamp")) is None:
            raise ItemRejected(TIMESTAMP_INVALID, "timestamp is not an RFC 3339 date-time")
        answer.update(handler(fields, ctx))
    except ItemRejected as rejected:
        answer.update(
            status="rjct", status_reason_code=rejected.code, status_reason_message=rejected.message
        )
    locale = fields.get("locale")
    answer["locale"] = locale if isinstance(locale, str) and _LOCALE.fullmatch(locale) else "en"
    return {k: v for k, v in answer.items() if v is not None or k == "reference_id"}


# --- fields ---------------------------------------------------------------------------------


def _address(item: Mapping[str, Any], name: str, code: str) -> str:
    value = item.get(name)
    if not isinstance(value, str) or _ADDRESS.fullmatch(value) is None:
        raise ItemRejected(code, f"{name} must look like <type>:<value>@<provider>")
    return value


def _id(item: Mapping[str, Any]) -> str:
    return _address(item, "id", ID_INVALID)


def _fa(item: Mapping[str, Any]) -> str:
    return _address(item, "fa", FA_INVALID)


def _details(item: Mapping[str, Any]) -> dict[str, Any]:
    """The optional details present in ``item``, checked (``None`` clears one)."""
    found = {name: item[name] for name in DETAILS if name in item}
    name = found.get("name")
    if name is not None and (
        not isinstance(name, str) or not 0 < len(name) <= _MAX_NAME or not name.isprintable()
    ):
        raise ItemRejected(NAME_INVALID, f"name must be printable text of at most {_MAX_NAME}")
    phone = found.get("phone_number")
    if phone is not None and (not isinstance(phone, str) or _PHONE.fullmatch(phone) is None):
        raise ItemRejected(PHONE_INVALID, "phone_number must be 4 to 20 digits, optional '+'")
    info = found.get("additional_info")
    if info is not None and (
        not isinstance(info, list | dict) or len(json.dumps(info)) > _MAX_INFO
    ):
        raise ItemRejected(
            OTHER_ERROR, f"additional_info must be a list or object of <= {_MAX_INFO}"
        )
    return found


def _provider(fa: str) -> dict[str, str]:
    return {"name": fa.rsplit("@", 1)[1]}


# --- the actions ------------------------------------------------------------------------------


def link(item: Mapping[str, Any], ctx: Context) -> dict[str, Any]:
    id, fa, details = _id(item), _fa(item), _details(item)
    if not ctx.store.link(Link(id, fa, **details, updated_by=ctx.sender_id), ctx.now):
        raise ItemRejected(ID_INVALID, "the id is already linked; use update")
    return {"fa": fa, "status": "succ", "status_reason_message": "linked"}


def update(item: Mapping[str, Any], ctx: Context) -> dict[str, Any]:
    id, fa, details = _id(item), _fa(item), _details(item)
    if not ctx.store.update(id, fa, details, ctx.sender_id, ctx.now):
        raise ItemRejected(ID_INVALID, "the id is not linked")
    return {"id": id, "status": "succ", "status_reason_message": "updated"}


def unlink(item: Mapping[str, Any], ctx: Context) -> dict[str, Any]:
    id = _id(item)
    fa = _fa(item) if item.get("fa") not in (None, "") else None
    if not ctx.store.unlink(id, fa):
        if ctx.store.get(id) is None:
            raise ItemRejected(ID_INVALID, "the id is not linked")
        raise ItemRejected(FA_INVALID, "the fa is not the one linked to this id")
    return {"id": id, "status": "succ", "status_reason_message": "unlinked"}


def resolve(item: Mapping[str, Any], ctx: Context) -> dict[str, Any]:
    scope = item.get("scope", "yes_no")
    if scope not in _SCOPES:
        raise ItemRejected(RESOLVE_TYPE_NOT_SUPPORTED, "scope must be yes_no or details")
    if item.get("fa") in (None, "") and item.get("id") in (None, ""):
        raise ItemRejected(FA_INVALID, "give fa, id, or both")
    fa = _fa(item) if item.get("fa") not in (None, "") else None
    id = _id(item) if item.get("id") not in (None, "") else None
    answer: dict[str, Any] = {"status": "succ", "fa": fa, "id": id}
    found = ctx.store.get(id) if id is not None else None
    if id is None:
        assert fa is not None
        code = FA_ACTIVE if ctx.store.fa_linked(fa) else FA_NOT_FOUND
    elif found is None:
        code = ID_NOT_FOUND
    elif fa is None or found.fa == fa:
        code = ID_ACTIVE if fa is None else FA_ACTIVE
    else:
        code, found = FA_NOT_LINKED_TO_ID, None  # say no more about someone else's link
    answer["status_reason_code"] = code
    if scope == "details":
        answer.update(_disclosed(found, fa, code))
    return answer


def _disclosed(found: Link | None, fa: str | None, code: str) -> dict[str, Any]:
    """``details``: for a resolved ID, its FA, name, provider and additional_info; for an FA
    alone, only its provider (the spec: an FA-only resolve verifies the FA, it does not tell
    whose it is). A phone number is never disclosed."""
    if found is not None:
        return {
            "fa": found.fa,
            "name": found.name,
            "account_provider_info": _provider(found.fa),
            "additional_info": found.additional_info,
        }
    if fa is not None and code == FA_ACTIVE:
        return {"account_provider_info": _provider(fa)}
    return {}


HANDLERS: dict[str, Handler] = {
    "link": link,
    "resolve": resolve,
    "update": update,
    "unlink": unlink,
}
