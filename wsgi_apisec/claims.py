"""Claims of an access token (RFC 7519 §4.1, RFC 9068 §2.2, RFC 7662 §2.2): typed readers,
the time window, and the cache that keeps validated answers while that window is open;
shared by JWT validation and introspection.

Every reader refuses a claim of the wrong JSON type with :class:`InvalidToken` rather than
coercing it, so two parsers can never read the same token differently.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from .errors import ConfigurationError, InvalidToken

#: 9999-12-31T23:59:59Z: later NumericDates are refused as nonsense.
MAX_NUMERIC_DATE = 253402300799
_EMPTY = frozenset({""})
#: The exact types a JSON number parses to (``bool`` is left out on purpose).
_NUMBERS = (int, float)


def _invalid(
    description: str, code: str = "token.claims", detail: str | None = None
) -> InvalidToken:
    return InvalidToken(description, code=code, detail=detail)


def numeric_date(claims: Mapping[str, Any], name: str) -> float | None:
    """The claim as a NumericDate, or None when absent.

    RFC 7519 §2: a JSON number of seconds; non-integer values are allowed, so finite floats
    are. ``true`` is a JSON literal, not a number (Python's ``bool`` is an ``int``: the exact
    type is tested, which refuses it).
    """
    value = claims.get(name)
    if value is None:
        if name in claims:  # JSON null
            raise _invalid(f"the {name!r} claim is not a NumericDate")
        return None
    if value.__class__ not in _NUMBERS:
        raise _invalid(f"the {name!r} claim is not a NumericDate")
    if not 0 <= value <= MAX_NUMERIC_DATE:  # NaN fails this too
        raise _invalid(f"the {name!r} claim is out of range")
    return float(value)


def scopes_of(claims: Mapping[str, Any], *, accept_scp: bool = False) -> frozenset[str]:
    """RFC 9068 §2.2.3 / RFC 8693 §4.2: ``scope`` is one space-separated string.
    ``scp`` (Okta: array, Azure AD: string) is read only when the issuer opts in."""
    if "scope" in claims:
        value = claims["scope"]
        if not isinstance(value, str):
            raise _invalid("the 'scope' claim must be a space-separated string")
        return _split_scopes(value)
    if accept_scp and "scp" in claims:
        value = claims["scp"]
        if isinstance(value, str):
            return _split_scopes(value)
        if isinstance(value, list) and all(isinstance(s, str) for s in value):
            return frozenset(s for s in value if s)
        raise _invalid("the 'scp' claim must be a string or an array of strings")
    return frozenset()


def _split_scopes(value: str) -> frozenset[str]:
    scopes = frozenset(value.split(" "))
    return scopes - _EMPTY if "" in scopes else scopes


def audience_of(claims: Mapping[str, Any]) -> tuple[str, ...]:
    """RFC 7519 §4.1.3: ``aud`` is one string or an array of strings."""
    if "aud" not in claims:
        return ()
    value = claims["aud"]
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and value and all(isinstance(a, str) for a in value):
        return tuple(value)
    raise _invalid("the 'aud' claim must be a string or a non-empty array of strings")


def string_claim(claims: Mapping[str, Any], name: str) -> str | None:
    value = claims.get(name)
    if value is not None and value.__class__ is not str:
        raise _invalid(f"the {name!r} claim must be a string")
    return value


@dataclass(frozen=True)
class TimeWindow:
    """The time claims of a token, checked again on every use of a cached answer."""

    exp: float | None
    nbf: float | None = None
    iat: float | None = None
    leeway: float = 0.0
    max_age: float | None = None

    @classmethod
    def from_claims(
        cls, claims: Mapping[str, Any], *, leeway: float, max_age: float | None = None
    ) -> TimeWindow:
        iat = numeric_date(claims, "iat")
        if max_age is not None and iat is None:
            raise _invalid("the token lacks the 'iat' claim")
        # Once per token: skip the frozen __init__'s per-field object.__setattr__.
        window = object.__new__(cls)
        fields = {
            "exp": numeric_date(claims, "exp"),
            "nbf": numeric_date(claims, "nbf"),
            "iat": iat,
            "leeway": leeway,
            "max_age": max_age,
        }
        object.__setattr__(window, "__dict__", fields)
        return window

    @property
    def expires(self) -> float:
        return float("inf") if self.exp is None else self.exp + self.leeway

    def check(self, now: float) -> None:
        # RFC 7519 §4.1.4: MUST NOT be accepted on or after exp (plus a small leeway).
        if self.exp is not None and now >= self.exp + self.leeway:
            raise _invalid("the token has expired", "token.expired")
        # RFC 7519 §4.1.5: MUST NOT be accepted before nbf.
        if self.nbf is not None and now + self.leeway < self.nbf:
            raise _invalid("the token is not valid yet", "token.not_yet_valid")
        # An iat in the future means a wrong clock or a forged token.
        if self.iat is not None and self.iat > now + self.leeway:
            raise _invalid("the token was issued in the future", "token.not_yet_valid")
        if self.max_age is not None and now - (self.iat or 0.0) > self.max_age + self.leeway:
            raise _invalid("the token is older than allowed", "token.expired")


K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class ExpiringLRU(Generic[K, V]):
    """A bounded, thread-safe LRU whose entries each expire at their own time (writes take a
    lock; a read is single ``OrderedDict`` calls, each atomic under the GIL)."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ConfigurationError("a cache needs room for at least one entry")
        self.size = size
        self._items: OrderedDict[K, tuple[float, V]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K, now: float) -> V | None:
        # No lock: each OrderedDict call is atomic under the GIL, and a key another thread
        # removed in between is simply not moved (recency is a hint; put() bounds the size).
        items = self._items
        item = items.get(key)
        if item is None:
            return None
        if now >= item[0]:
            items.pop(key, None)
            return None
        try:  # noqa: SIM105 -- contextlib.suppress builds an object on every hit
            items.move_to_end(key)
        except KeyError:
            pass
        return item[1]

    def put(self, key: K, value: V, expires: float) -> None:
        with self._lock:
            self._items[key] = (expires, value)
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)
