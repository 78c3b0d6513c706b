"""RFC 9530 digest fields: ``Content-Digest``, ``Repr-Digest`` and their ``Want-`` fields.

``Repr-Digest`` (§3) and ``Want-Repr-Digest`` (§4) have the syntax of their ``Content-``
twins: pass ``name="Repr-Digest"`` and the representation bytes to the same functions.

Only the "Active" algorithms of §7.2, ``sha-256`` and ``sha-512``, are computed. The
"Deprecated" ones (and RFC 3230's ``id-sha-*``) are weak or not hashes at all; §5 says they
MUST NOT be used in an adversarial setting such as a signed message, so a signed field that
names one fails outright. Unknown algorithms are ignored (§2: a recipient MAY ignore any
digest) as long as one supported digest is present.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol, TypeAlias

from . import sfv
from .errors import InvalidDigest, ParseError

SUPPORTED = ("sha-256", "sha-512")
DEPRECATED = frozenset(
    {"md5", "sha", "unixsum", "unixcksum", "adler", "crc32c", "id-sha-256", "id-sha-512"}
)


Chunk: TypeAlias = bytes | bytearray | memoryview


class _Hash(Protocol):
    def update(self, data: Chunk, /) -> None: ...
    def digest(self) -> bytes: ...


_HASHES: dict[str, Callable[[], _Hash]] = {"sha-256": hashlib.sha256, "sha-512": hashlib.sha512}


class DigestHasher:
    """Hashes content chunk by chunk, for all of ``algorithms`` at once, without a copy.

    The middleware feeds it the body as it streams, then hands it to
    :func:`verify_content_digest` or puts :meth:`header_value` on a response.
    """

    def __init__(self, algorithms: Iterable[str] = SUPPORTED) -> None:
        names = tuple(dict.fromkeys(algorithms))
        unsupported = [name for name in names if name not in _HASHES]
        if unsupported or not names:
            raise ValueError(f"digest algorithms must be among {SUPPORTED}, not {unsupported}")
        self._hashes = {name: _HASHES[name]() for name in names}

    @property
    def algorithms(self) -> tuple[str, ...]:
        return tuple(self._hashes)

    def update(self, chunk: Chunk) -> None:
        for hash_ in self._hashes.values():
            hash_.update(chunk)

    def digest(self, algorithm: str) -> bytes:
        """The digest so far; more chunks may still follow."""
        if algorithm not in self._hashes:
            raise ValueError(f"this hasher does not compute {algorithm}")
        return self._hashes[algorithm].digest()

    def header_value(self) -> str:
        """E.g. ``sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:`` (§2)."""
        members = {name: sfv.Item(self.digest(name)) for name in self._hashes}
        return sfv.serialize_dictionary(members)


def content_digest(body: bytes, algorithms: Sequence[str] = ("sha-256",)) -> str:
    """The ``Content-Digest`` (or ``Repr-Digest``) value for ``body``."""
    hasher = DigestHasher(algorithms)
    hasher.update(body)
    return hasher.header_value()


def parse_content_digest(value: str | bytes, *, name: str = "Content-Digest") -> dict[str, bytes]:
    """Algorithm -> digest bytes, in field order; any malformed member is a :class:`ParseError`.

    §2: the field is a Dictionary whose values are Byte Sequences. Parameters are ignored.
    """
    digests: dict[str, bytes] = {}
    for algorithm, member in sfv.parse_dictionary(value, name=name).items():
        if not isinstance(member, sfv.Item) or not isinstance(member.value, bytes):
            raise ParseError(f"{name}: the {algorithm} value is not a Byte Sequence")
        digests[algorithm] = member.value
    return digests


def verify_content_digest(
    value: str | bytes | None,
    content: Chunk | Iterable[Chunk] | DigestHasher,
    *,
    signed: bool = True,
    name: str = "Content-Digest",
) -> tuple[str, ...]:
    """Check ``value`` against ``content`` (the body, its chunks, or a fed hasher).

    Every supported digest present must match; returns the algorithms checked. Raises
    :class:`InvalidDigest` when missing, not matching, deprecated (``signed``), or without
    a supported algorithm; :class:`ParseError` when malformed.
    """
    if value is None:
        raise InvalidDigest(f"{name} is missing")
    digests = parse_content_digest(value, name=name)
    algorithms = _algorithms_to_check(digests, signed=signed, name=name)
    hasher = content if isinstance(content, DigestHasher) else _hash(content, algorithms)
    for algorithm in algorithms:
        if not hmac.compare_digest(hasher.digest(algorithm), digests[algorithm]):
            raise InvalidDigest(f"{name} {algorithm} does not match the content")
    return algorithms


def _algorithms_to_check(digests: dict[str, bytes], *, signed: bool, name: str) -> tuple[str, ...]:
    deprecated = [algorithm for algorithm in digests if algorithm in DEPRECATED]
    if signed and deprecated:
        # §5: "Deprecated" algorithms MUST NOT be used in an adversarial setting, e.g.
        # when the Integrity field is signed.
        raise InvalidDigest(
            f"{name} uses {', '.join(deprecated)}: deprecated by RFC 9530 and not accepted "
            f"in a signed message; send {' or '.join(SUPPORTED)}"
        )
    algorithms = tuple(algorithm for algorithm in SUPPORTED if algorithm in digests)
    if not algorithms:
        raise InvalidDigest(f"{name} has no {' or '.join(SUPPORTED)} digest")
    return algorithms


def _hash(content: Chunk | Iterable[Chunk], algorithms: Iterable[str]) -> DigestHasher:
    hasher = DigestHasher(algorithms)
    for chunk in (content,) if isinstance(content, bytes | bytearray | memoryview) else content:
        hasher.update(chunk)
    return hasher


def parse_want_digest(value: str | bytes, *, name: str = "Want-Content-Digest") -> list[str]:
    """Acceptable algorithms, most preferred first; equal weights keep field order.

    §4: each value is an Integer 0-10; 10 is most preferred, 0 means "not acceptable".
    """
    weighted: list[tuple[int, str]] = []
    for algorithm, member in sfv.parse_dictionary(value, name=name).items():
        weight = member.value if isinstance(member, sfv.Item) else None
        if isinstance(weight, bool) or not isinstance(weight, int) or not 0 <= weight <= 10:
            raise ParseError(f"{name}: the {algorithm} weight is not an Integer from 0 to 10")
        if weight:
            weighted.append((weight, algorithm))
    return [algorithm for _, algorithm in sorted(weighted, key=lambda pair: -pair[0])]


def choose_digest_algorithm(want_value: str | bytes | None) -> str | None:
    """The supported algorithm the peer prefers, or ``None`` if it names none we support.

    §4: preferences are only a hint and ignoring them is not a protocol error, so a
    malformed field counts as no preference rather than failing the exchange.
    """
    if want_value is None:
        return None
    try:
        wanted = parse_want_digest(want_value)
    except ParseError:
        return None
    return next((algorithm for algorithm in wanted if algorithm in _HASHES), None)
