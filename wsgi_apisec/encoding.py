"""Strict base64url and JSON, as JOSE needs them.

RFC 7515 §2 defines base64url *without* padding; §7.1 serialisations must not carry
whitespace or other characters. A lenient decoder lets two different strings verify as
the same signature, so we accept exactly the canonical form.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

from .errors import ParseError

_B64URL = re.compile(rb"[A-Za-z0-9_-]*")
_SURROGATE = re.compile("[\ud800-\udfff]")
#: Cheap pre-check: a surrogate escape, or a raw surrogate in ``str`` input.
_MAYBE_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]|[\ud800-\udfff]")

#: Caps that keep hostile headers and claims cheap to reject.
MAX_JSON_DEPTH = 32
MAX_INT_DIGITS = 20


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(data: str | bytes, what: str = "value") -> bytes:
    """Decode canonical unpadded base64url; anything else is a :class:`ParseError`."""
    raw = data.encode("ascii", "replace") if isinstance(data, str) else data
    if _B64URL.fullmatch(raw) is None or len(raw) % 4 == 1:
        raise ParseError(f"{what} is not base64url")
    try:
        out = base64.urlsafe_b64decode(raw + b"=" * (-len(raw) % 4))
    except (binascii.Error, ValueError) as exc:  # pragma: no cover - regex guards this
        raise ParseError(f"{what} is not base64url") from exc
    # Non-zero trailing bits give a second spelling of the same bytes: refuse it.
    if base64.urlsafe_b64encode(out).rstrip(b"=") != raw:
        raise ParseError(f"{what} is not canonical base64url")
    return out


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        # RFC 7515 §5.2 step 4 / RFC 7519 §4: duplicate names MUST be rejected (or last
        # wins); rejecting stops parsers that disagree from seeing different claims.
        if key in out:
            raise ParseError(f"duplicate member {key!r}")
        out[key] = value
    return out


def _bad_constant(name: str) -> Any:
    raise ParseError(f"{name} is not valid JSON")


def _int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise ParseError("number too large")
    return int(text)


def _float(text: str) -> float:
    if len(text) > 40:
        raise ParseError("number too long")
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ParseError("number out of range")
    return value


def json_loads(data: bytes | str, what: str = "JSON", max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Parse JSON strictly: UTF-8, no duplicate names, no NaN/Infinity, bounded numbers and
    nesting. Every failure is a :class:`ParseError`."""
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        value = json.loads(
            text,
            object_pairs_hook=_no_duplicates,
            parse_constant=_bad_constant,
            parse_int=_int,
            parse_float=_float,
        )
    except ParseError as exc:
        raise ParseError(f"{what}: {exc.description}") from exc
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ParseError(f"{what} is not valid JSON") from exc
    # Deep nesting needs that many brackets; count them before walking the value.
    if text.count("[") + text.count("{") > max_depth and depth(value) > max_depth:
        raise ParseError(f"{what} is nested too deeply")
    # RFC 7493 §2.1 (I-JSON): strings MUST NOT hold lone surrogates. They cannot be encoded
    # as UTF-8, so they would fail later (a replay store, a log line) instead of here.
    if _MAYBE_SURROGATE.search(text) is not None and _has_surrogate(value):
        raise ParseError(f"{what} has a lone surrogate")
    return value


def _has_surrogate(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item) is not None:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def json_object(data: bytes | str, what: str) -> dict[str, Any]:
    value = json_loads(data, what)
    if not isinstance(value, dict):
        raise ParseError(f"{what} is not a JSON object")
    return value


def depth(value: Any) -> int:
    """Nesting depth of a parsed JSON value, computed without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list):
            deepest = max(deepest, level)
            stack.extend((child, level + 1) for child in item)
    return deepest


def canonical_json(value: Any, ascii_only: bool = True) -> bytes:
    """Compact JSON with sorted keys (OpenG2P's signing form of a body).

    OpenG2P signs from Python, whose ``json.dumps`` escapes non-ASCII as ``\\uXXXX`` by
    default; ``ascii_only=False`` gives the raw UTF-8 spelling instead.
    """
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=ascii_only, allow_nan=False
    ).encode("utf-8")


def json_dumps(value: Any) -> bytes:
    """Compact JSON in insertion order, as we emit JOSE headers."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
