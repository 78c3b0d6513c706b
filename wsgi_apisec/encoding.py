"""Strict base64url and JSON, as JOSE needs them.

RFC 7515 §2 defines base64url *without* padding; §7.1 serialisations must not carry
whitespace or other characters. A lenient decoder lets two different strings verify as
the same signature, so we accept exactly the canonical form.
"""

from __future__ import annotations

import binascii
import json
import re
from collections.abc import Callable
from typing import Any

from .errors import ParseError


def _simd_base64() -> Any:
    """``pybase64`` (the optional ``speed`` extra) when its C extension is active: SIMD
    base64, several times faster on large inputs. The same strings are accepted and
    refused either way (``tests/test_encoding_fast.py``)."""
    try:
        import pybase64  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return None
    # Its pure-Python fallback is slower than binascii: only the C extension is worth it.
    return pybase64 if "C extension active" in pybase64.get_version() else None


_pybase64: Any = _simd_base64()
#: Whether large base64 work goes through SIMD code (``pip install flask-apisec[speed]``).
SIMD_BASE64 = _pybase64 is not None

_SURROGATE = re.compile("[\ud800-\udfff]")
#: Cheap pre-check: a surrogate escape, or a raw surrogate in ``str`` input.
_MAYBE_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]|[\ud800-\udfff]")

#: Caps that keep hostile headers and claims cheap to reject.
MAX_JSON_DEPTH = 32
MAX_INT_DIGITS = 20

#: base64url -> base64, and ``+``, ``/`` and ``=`` (not base64url) -> ``!``, which no
#: strict base64 decoder accepts: one translation both maps the alphabet and rejects them.
_FROM_URL = bytes.maketrans(b"-_+/=", b"+/!!!")
_TO_URL = bytes.maketrans(b"+/", b"-_")
_PAD = (b"", b"", b"==", b"=")
_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
#: Last characters whose unused low bits are zero, by ``len % 4`` (2: four unused bits,
#: 3: two). Any other last character is a second spelling of the same bytes.
_CLEAN_LAST: tuple[frozenset[int], ...] = (
    frozenset(_ALPHABET),
    frozenset(),
    frozenset(c for i, c in enumerate(_ALPHABET) if i % 16 == 0),
    frozenset(c for i, c in enumerate(_ALPHABET) if i % 4 == 0),
)
#: Below this many bytes ``binascii`` is faster than ``pybase64`` (call overhead).
_SIMD_MIN = 192


def b64url_encode(data: bytes | memoryview) -> str:
    return b64url_encode_bytes(data).decode("ascii")


def b64url_encode_bytes(data: bytes | memoryview) -> bytes:
    """Unpadded base64url, as bytes (a JWS Signing Input is bytes)."""
    if _pybase64 is not None and len(data) >= _SIMD_MIN:
        encoded: bytes = _pybase64.urlsafe_b64encode(data)
    else:
        encoded = binascii.b2a_base64(data, newline=False).translate(_TO_URL)
    return encoded.rstrip(b"=")


#: RFC 6750 §2.1: ``b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="``
_B64TOKEN_CHARS = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/"


def is_b64token(value: str) -> bool:
    """RFC 6750 §2.1 ``b64token``: one or more token characters, then any ``=`` padding.
    A table lookup per byte (``bytes.translate``): a regex walks a 1 KiB JWT a character
    at a time."""
    body = value.rstrip("=")
    # Deleting every allowed byte leaves nothing exactly when all of them are allowed.
    return bool(body) and body.isascii() and not body.encode().translate(None, _B64TOKEN_CHARS)


def b64url_decode(data: str | bytes, what: str = "value") -> bytes:
    """Decode canonical unpadded base64url; anything else is a :class:`ParseError`."""
    raw = data.encode("ascii", "replace") if isinstance(data, str) else data
    rest = len(raw) % 4
    if rest == 1:
        raise ParseError(f"{what} is not base64url")
    # RFC 7515 §2: no padding, no whitespace, only the URL-safe alphabet.
    std = raw.translate(_FROM_URL) + _PAD[rest]
    try:
        if _pybase64 is not None and len(std) >= _SIMD_MIN:
            out: bytes = _pybase64.b64decode(std, validate=True)
        else:
            out = binascii.a2b_base64(std, strict_mode=True)
    except (binascii.Error, ValueError) as exc:
        raise ParseError(f"{what} is not base64url") from exc
    # Non-zero trailing bits give a second spelling of the same bytes: refuse it.
    if rest and raw[-1] not in _CLEAN_LAST[rest]:
        raise ParseError(f"{what} is not canonical base64url")
    return out


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)  # built in C; the names are only walked when two collide
    if len(out) != len(pairs):
        # RFC 7515 §5.2 step 4 / RFC 7519 §4: duplicate names MUST be rejected (or last
        # wins); rejecting stops parsers that disagree from seeing different claims.
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise ParseError(f"duplicate member {key!r}")
            seen.add(key)
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


#: Built once: ``json.loads`` with hooks builds a new decoder on every call.
_DECODER = json.JSONDecoder(
    object_pairs_hook=_no_duplicates,
    parse_constant=_bad_constant,
    parse_int=_int,
    parse_float=_float,
)

_SCAN: Callable[[str, int], tuple[Any, int]] = _DECODER.scan_once  # type: ignore[attr-defined]


def _decode(text: str) -> Any:
    """``JSONDecoder.decode`` without its two regex passes: JSON whitespace around the value
    is never part of it, so stripping it first is the same test."""
    stripped = text.strip(" \t\n\r")
    try:
        value, end = _SCAN(stripped, 0)
    except StopIteration as exc:
        raise ValueError("no JSON value") from exc
    if end != len(stripped):
        raise ValueError("extra data after the JSON value")
    return value


def json_loads(data: bytes | str, what: str = "JSON", max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Parse JSON strictly: UTF-8, no duplicate names, no NaN/Infinity, bounded numbers and
    nesting. Every failure is a :class:`ParseError`."""
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        value = _decode(text)
    except ParseError as exc:
        raise ParseError(f"{what}: {exc.description}") from exc
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ParseError(f"{what} is not valid JSON") from exc
    # Deep nesting needs that many brackets; count them before walking the value.
    if text.count("[") + text.count("{") > max_depth and depth(value) > max_depth:
        raise ParseError(f"{what} is nested too deeply")
    # RFC 7493 §2.1 (I-JSON): strings MUST NOT hold lone surrogates. They cannot be encoded
    # as UTF-8, so they would fail later (a replay store, a log line) instead of here.
    # UTF-8 bytes never decode to a surrogate: only an escape can make one.
    maybe = "\\u" in text or not isinstance(data, bytes)
    if maybe and _MAYBE_SURROGATE.search(text) is not None and _has_surrogate(value):
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


_CANONICAL = {
    ascii_only: json.JSONEncoder(
        sort_keys=True, separators=(",", ":"), ensure_ascii=ascii_only, allow_nan=False
    )
    for ascii_only in (True, False)
}
_COMPACT = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def canonical_json(value: Any, ascii_only: bool = True) -> bytes:
    """Compact JSON with sorted keys (OpenG2P's signing form of a body).

    OpenG2P signs from Python, whose ``json.dumps`` escapes non-ASCII as ``\\uXXXX`` by
    default; ``ascii_only=False`` gives the raw UTF-8 spelling instead.
    """
    return _CANONICAL[ascii_only].encode(value).encode("utf-8")


def json_dumps(value: Any) -> bytes:
    """Compact JSON in insertion order, as we emit JOSE headers."""
    return _COMPACT.encode(value).encode("utf-8")
