"""Query parameters of the FDX list endpoints: paging (``offset`` / ``limit``, answered with
an FDX ``page`` and HATEOAS ``links``) and the ``startTime`` / ``endTime`` date range.

FDX leaves ``offset`` opaque to the client; here it is the index of the first element, as a
decimal string, so ``nextOffset`` / ``prevOffset`` can be sent back as they are.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from flask import request

from .errors import INVALID_DATE, INVALID_DATE_RANGE, INVALID_INPUT, FDXError

__all__ = [
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "PageRequest",
    "choice",
    "date_range",
    "json_body",
    "paged",
    "parse_date",
]

DEFAULT_LIMIT = 25
#: A larger ``limit`` is served as this many: FDX lets the provider return fewer.
MAX_LIMIT = 100
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


@dataclass(frozen=True)
class PageRequest:
    offset: int
    limit: int

    @classmethod
    def from_args(cls, args: Mapping[str, str]) -> PageRequest:
        offset = _natural(args.get("offset", "0"), "offset")
        limit = _natural(args.get("limit", str(DEFAULT_LIMIT)), "limit")
        if limit == 0:
            raise FDXError(INVALID_INPUT, "limit must be at least 1")
        return cls(offset, min(limit, MAX_LIMIT))


def _natural(value: str, name: str) -> int:
    # ASCII digits only: int() would also take " 7", "+7", other scripts' digits, "1_000".
    if not (value.isascii() and value.isdigit()) or len(value) > 9:
        raise FDXError(INVALID_INPUT, f"{name} must be a non-negative integer")
    return int(value)


def paged(items: Sequence[Any], key: str) -> dict[str, Any]:
    """One page of ``items`` under ``key``, for the offset and limit of this request."""
    wanted = PageRequest.from_args(request.args)
    total = len(items)
    if wanted.offset > total:
        raise FDXError(INVALID_INPUT, "offset is past the last element")
    end = wanted.offset + wanted.limit
    page: dict[str, Any] = {"totalElements": total}
    links: dict[str, Any] = {}
    if end < total:
        page["nextOffset"] = str(end)
        links["next"] = {"href": _href(end, wanted.limit)}
    if wanted.offset > 0:
        previous = max(0, wanted.offset - wanted.limit)
        page["prevOffset"] = str(previous)
        links["prev"] = {"href": _href(previous, wanted.limit)}
    body: dict[str, Any] = {"page": page}
    if links:
        body["links"] = links
    body[key] = list(items[wanted.offset : end])
    return body


def _href(offset: int, limit: int) -> str:
    """This request's path and query with another page: relative, so a proxy in front
    does not change what it points at."""
    query = {k: v for k, v in request.args.items() if k not in ("offset", "limit")}
    query |= {"offset": str(offset), "limit": str(limit)}
    return f"{request.script_root}{request.path}?{urlencode(query)}"


def date_range(args: Mapping[str, str]) -> tuple[datetime.date | None, datetime.date | None]:
    """``startTime`` / ``endTime`` as FDX ``DateString`` (``YYYY-MM-DD``), both optional and
    inclusive: 702 when one is not a date, 703 when the start is after the end."""
    start, end = _date(args, "startTime"), _date(args, "endTime")
    if start is not None and end is not None and start > end:
        raise FDXError(INVALID_DATE_RANGE, "startTime is after endTime")
    return start, end


def _date(args: Mapping[str, str], name: str) -> datetime.date | None:
    value = args.get(name)
    return None if value is None else parse_date(value, name)


def parse_date(value: str, name: str) -> datetime.date:
    """An FDX ``DateString``; anything else is 400 (FDX 702)."""
    try:
        if not _DATE.fullmatch(value):
            raise ValueError(value)
        return datetime.date.fromisoformat(value)
    except ValueError as exc:
        raise FDXError(INVALID_DATE, f"{name} must be a date, YYYY-MM-DD") from exc


def json_body() -> dict[str, Any]:
    """The request body as a JSON object; anything else is 400 (FDX 901)."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise FDXError(INVALID_INPUT, "the body must be a JSON object")
    return body


def choice(body: Mapping[str, Any], name: str, allowed: Sequence[str]) -> str:
    value = body.get(name)
    if value not in allowed:
        raise FDXError(INVALID_INPUT, f"{name} must be one of {', '.join(allowed)}")
    return str(value)
