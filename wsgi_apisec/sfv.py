"""RFC 8941 Structured Field Values: a strict parser and a canonical serialiser.

For RFC 9421 ``Signature-Input`` / ``Signature`` / ``Accept-Signature`` and RFC 9530 digest
fields. A parse failure is a :class:`ParseError` (400) naming the field and the offset; the
offending text goes only to ``detail`` (the log line). Deliberate choices:

- Decimals are :class:`decimal.Decimal`, exact for RFC 8941's 12 + 3 digits (float is not).
- :class:`Token` is not a ``str``: a Token never equals a String (RFC 9421 tells ``alg="x"``
  from ``alg=x``). Test ``bool`` before ``int``.
- Byte Sequences must be canonical padded base64, stricter than §4.2.7's SHOULD NOT
  (serialisers always pad, §4.1.8): a signature cannot be re-spelt past a replay cache.
- :class:`Limits`: 16 KiB per field (below §3.3.5's 16384-octet Byte Sequence minimum;
  raise it where needed), 1024 members per List, Dictionary, Inner List or Parameters.
- RFC 9651 Dates (``@``) and Display Strings (``%"``) are not RFC 8941: they fail.

Serialising what cannot be serialised is a programming error (``ValueError`` /
``TypeError``); everything the parsers return serialises.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Context, Decimal
from types import MappingProxyType
from typing import TypeAlias, TypeVar

from .errors import ParseError

_T = TypeVar("_T")
_MAX_INT = 999_999_999_999_999
_DECIMAL_LIMIT = Decimal(10) ** 12
_MILLI = Decimal("0.001")
_DECIMAL_CONTEXT = Context(prec=34)

_SP = re.compile(r" *")
_OWS = re.compile(r"[ \t]*")
_KEY = re.compile(r"[a-z*][a-z0-9_\-.*]*")
_TOKEN = re.compile(r"[A-Za-z*][!#$%&'*+\-.^_`|~0-9A-Za-z:/]*")
_NUMBER = re.compile(r"-?([0-9]+)(?:\.([0-9]*))?")
_STRING = re.compile(r'"((?:[ !#-\[\]-~]|\\["\\])*)')
_UNESCAPE = re.compile(r'\\(["\\])')
_PRINTABLE = re.compile(r"[ -~]*")


@dataclass(frozen=True)
class Limits:
    """Caps that keep hostile fields cheap to reject."""

    max_length: int = 16 * 1024
    max_members: int = 1024


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True)
class Token:
    """A Token (§3.3.4): ``sha-256``, ``foo123/456``."""

    value: str

    def __post_init__(self) -> None:
        if _TOKEN.fullmatch(self.value) is None:
            raise ValueError(f"not a valid Token: {self.value!r}")

    def __str__(self) -> str:
        return self.value


BareItem: TypeAlias = int | Decimal | str | Token | bytes | bool
Parameters: TypeAlias = Mapping[str, BareItem]


@dataclass(frozen=True)
class Item:
    """A Bare Item with its Parameters (§3.3), in field order and read-only."""

    value: BareItem
    params: Parameters = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))

    def __hash__(self) -> int:  # params compare as a mapping, so hash them as one
        return hash((self.value, frozenset(self.params.items())))


@dataclass(frozen=True)
class InnerList:
    """An Inner List (§3.1.1): Items in parentheses, with Parameters."""

    items: tuple[Item, ...]
    params: Parameters = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "items", tuple(self.items))
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))

    def __hash__(self) -> int:
        return hash((self.items, frozenset(self.params.items())))


Member: TypeAlias = Item | InnerList
List: TypeAlias = list[Member]
Dictionary: TypeAlias = dict[str, Member]


# --- parsing (§4.2) ---------------------------------------------------------------------


class _Parser:
    """One pass over an ASCII string; each method is the §4.2 algorithm of that name."""

    def __init__(self, text: str, name: str, max_members: int) -> None:
        self.text, self.pos, self.name, self.max_members = text, 0, name, max_members

    def fail(self, reason: str) -> ParseError:
        where = f"{self.name}: {reason} at offset {self.pos}"
        near = self.text[max(0, self.pos - 16) : self.pos + 16]
        return ParseError(where, detail=f"{where}, near {near!r}")

    def peek(self) -> str:
        return self.text[self.pos : self.pos + 1]

    def skip(self, pattern: re.Pattern[str]) -> None:
        match = pattern.match(self.text, self.pos)
        self.pos = match.end() if match else self.pos

    def counted(self, count: int) -> None:
        if count > self.max_members:
            raise self.fail(f"more than {self.max_members} members")

    def separator(self) -> bool:
        """After a member (§4.2.1 steps 2.2-2.6, §4.2.2 2.6-2.10): does another follow?"""
        self.skip(_OWS)
        if self.pos == len(self.text):
            return False
        if self.peek() != ",":
            raise self.fail("expected ',' between members")
        self.pos += 1
        self.skip(_OWS)
        if self.pos == len(self.text):
            raise self.fail("trailing comma")
        return True

    def list_(self) -> List:
        members: List = []
        more = self.pos < len(self.text)
        while more:
            members.append(self.inner_list() if self.peek() == "(" else self.item())
            self.counted(len(members))
            more = self.separator()
        return members

    def dictionary(self) -> Dictionary:
        members: Dictionary = {}
        more = self.pos < len(self.text)
        while more:
            key = self.key()
            if self.peek() != "=":
                member: Member = Item(True, self.parameters())
            else:
                self.pos += 1
                member = self.inner_list() if self.peek() == "(" else self.item()
            members[key] = member  # §4.2.2 steps 2.4-2.5: a repeated key overwrites.
            self.counted(len(members))
            more = self.separator()
        return members

    def inner_list(self) -> InnerList:
        self.pos += 1
        items: list[Item] = []
        while True:
            self.skip(_SP)
            if self.pos == len(self.text):
                raise self.fail("inner list is not closed")
            if self.peek() == ")":
                self.pos += 1
                return InnerList(tuple(items), self.parameters())
            items.append(self.item())
            self.counted(len(items))
            if self.peek() not in (" ", ")", ""):  # §4.2.1.2 step 3.4
                raise self.fail("expected ' ' or ')' in inner list")

    def item(self) -> Item:
        value = self.bare_item()
        return Item(value, self.parameters())

    def parameters(self) -> dict[str, BareItem]:
        params: dict[str, BareItem] = {}
        while self.text.startswith(";", self.pos):
            self.pos += 1
            self.skip(_SP)
            key = self.key()
            value: BareItem = True
            if self.text.startswith("=", self.pos):
                self.pos += 1
                value = self.bare_item()
            params[key] = value  # §4.2.3.2 step 2.7: a repeated key overwrites.
            self.counted(len(params))
        return params

    def key(self) -> str:
        match = _KEY.match(self.text, self.pos)
        if match is None:
            raise self.fail("expected a key (lowercase letter or '*')")
        self.pos = match.end()
        return match.group()

    def bare_item(self) -> BareItem:
        char = self.peek()
        if char == "-" or char.isdigit():
            return self.number()
        if char == '"':
            return self.string()
        if char == ":":
            return self.byte_sequence()
        if char == "?":
            return self.boolean()
        match = _TOKEN.match(self.text, self.pos)
        if match is None:
            raise self.fail("expected an item")
        self.pos = match.end()
        return Token(match.group())

    def number(self) -> int | Decimal:
        match = _NUMBER.match(self.text, self.pos)
        if match is None:
            raise self.fail("expected a digit")
        whole, fraction = match.groups()
        # §4.2.4 step 7: an Integer has at most 15 digits, a Decimal 12 before the '.'.
        if len(whole) > (15 if fraction is None else 12):
            raise self.fail("number has too many digits")
        if fraction is not None and not 1 <= len(fraction) <= 3:  # §4.2.4 step 9
            raise self.fail("decimal must have 1 to 3 digits after '.'")
        self.pos = match.end()
        return int(match.group()) if fraction is None else Decimal(match.group())

    def string(self) -> str:
        match = _STRING.match(self.text, self.pos)
        self.pos = match.end() if match else self.pos
        char = self.peek()
        if match is None or char != '"':
            # §4.2.5: only \" and \\ escapes, only printable ASCII, closing DQUOTE required.
            reasons = {"": "string is not closed", "\\": 'only \\" and \\\\ may be escaped'}
            raise self.fail(reasons.get(char, "string has a character outside printable ASCII"))
        self.pos += 1
        content = match.group(1)
        return _UNESCAPE.sub(r"\1", content) if "\\" in content else content

    def byte_sequence(self) -> bytes:
        end = self.text.find(":", self.pos + 1)
        if end < 0:
            raise self.fail("byte sequence is not closed")
        content = self.text[self.pos + 1 : end]
        try:
            # §4.2.7: characters outside the base64 alphabet MUST fail (validate=True).
            value = base64.b64decode(content, validate=True)
        except (binascii.Error, ValueError):
            raise self.fail("byte sequence is not valid base64") from None
        if base64.b64encode(value).decode("ascii") != content:
            raise self.fail("byte sequence is not canonical padded base64")
        self.pos = end + 1
        return value

    def boolean(self) -> bool:
        digit = self.text[self.pos + 1 : self.pos + 2]
        if digit not in ("0", "1"):
            raise self.fail("boolean must be ?0 or ?1")
        self.pos += 2
        return digit == "1"


def _run(value: str | bytes, name: str, limits: Limits, rule: Callable[[_Parser], _T]) -> _T:
    if len(value) > limits.max_length:
        raise ParseError(f"{name}: longer than {limits.max_length} characters")
    if not value.isascii():  # §4.2 step 1: input that is not ASCII fails.
        raise ParseError(f"{name}: contains a non-ASCII character")
    text = value.decode("ascii") if isinstance(value, bytes) else value
    parser = _Parser(text, name, limits.max_members)
    parser.skip(_SP)  # §4.2 step 2: leading SP is discarded.
    result = rule(parser)
    parser.skip(_SP)  # §4.2 steps 6-7: trailing SP is discarded; anything else fails.
    if parser.pos != len(text):
        raise parser.fail("unexpected characters after the value")
    return result


_FIELD = "structured field"


def parse_list(value: str | bytes, *, name: str = _FIELD, limits: Limits = DEFAULT_LIMITS) -> List:
    """Parse a List field (§4.2.1); an empty field is an empty List."""
    return _run(value, name, limits, _Parser.list_)


def parse_dictionary(
    value: str | bytes, *, name: str = _FIELD, limits: Limits = DEFAULT_LIMITS
) -> Dictionary:
    """Parse a Dictionary field (§4.2.2); an empty field is an empty Dictionary."""
    return _run(value, name, limits, _Parser.dictionary)


def parse_item(value: str | bytes, *, name: str = _FIELD, limits: Limits = DEFAULT_LIMITS) -> Item:
    """Parse an Item field (§4.2.3)."""
    return _run(value, name, limits, _Parser.item)


def join_field_lines(lines: Iterable[str]) -> str:
    """§4.2: the field lines of one section are combined, in order, comma-separated."""
    return ", ".join(lines)


# --- serialising (§4.1) -----------------------------------------------------------------


def serialize_list(members: Iterable[Member]) -> str:
    """§4.1.1. An empty List gives ``""``: §4.1 says not to send the field at all."""
    return ", ".join(serialize_member(member) for member in members)


def serialize_dictionary(members: Mapping[str, Member]) -> str:
    """§4.1.2. An empty Dictionary gives ``""`` (omit the field)."""
    return ", ".join(
        # §4.1.2 step 2.3: a Boolean true member value is left out; its parameters stay.
        _key(key) + serialize_parameters(member.params)
        if isinstance(member, Item) and member.value is True
        else f"{_key(key)}={serialize_member(member)}"
        for key, member in members.items()
    )


def serialize_member(member: Member) -> str:
    return serialize_inner_list(member) if isinstance(member, InnerList) else serialize_item(member)


def serialize_inner_list(inner: InnerList) -> str:
    """§4.1.1.1, e.g. RFC 9421 ``@signature-params``."""
    items = " ".join(serialize_item(item) for item in inner.items)
    return f"({items}){serialize_parameters(inner.params)}"


def serialize_item(item: Item) -> str:
    """§4.1.3, e.g. an RFC 9421 component identifier."""
    return serialize_bare_item(item.value) + serialize_parameters(item.params)


def serialize_parameters(params: Parameters) -> str:
    """§4.1.1.2: Boolean true values are left out."""
    return "".join(
        f";{_key(key)}" if value is True else f";{_key(key)}={serialize_bare_item(value)}"
        for key, value in params.items()
    )


def serialize_bare_item(value: BareItem) -> str:
    """§4.1.3.1."""
    if isinstance(value, bool):
        return "?1" if value else "?0"
    if isinstance(value, int):
        if not -_MAX_INT <= value <= _MAX_INT:  # §4.1.4 step 1
            raise ValueError(f"integer out of range: {value}")
        return str(value)
    if isinstance(value, Decimal):
        return _decimal(value)
    if isinstance(value, str):
        if _PRINTABLE.fullmatch(value) is None:  # §4.1.6 step 2
            raise ValueError("string has a character outside printable ASCII")
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, Token):
        return value.value
    if isinstance(value, bytes):
        return ":" + base64.b64encode(value).decode("ascii") + ":"
    raise TypeError(f"not a structured field item: {type(value).__name__}")


def _decimal(value: Decimal) -> str:
    """§4.1.5: round half to even at 3 fractional digits; at most 12 integer digits."""
    if not value.is_finite() or value.copy_abs() >= _DECIMAL_LIMIT:
        raise ValueError(f"decimal out of range: {value}")
    rounded = value.quantize(_MILLI, rounding=ROUND_HALF_EVEN, context=_DECIMAL_CONTEXT)
    if rounded.copy_abs() >= _DECIMAL_LIMIT:
        raise ValueError(f"decimal out of range: {value}")
    whole, _, fraction = f"{rounded.copy_abs():f}".partition(".")
    return f"{'-' if rounded < 0 else ''}{whole}.{fraction.rstrip('0') or '0'}"


def _key(key: str) -> str:
    if _KEY.fullmatch(key) is None:  # §4.1.1.3 steps 1-2
        raise ValueError(f"not a valid key: {key!r}")
    return key
