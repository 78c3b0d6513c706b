"""The sans-IO view of an HTTP message that every verifier and signer works on.

The middleware, the Flask decorators and the client all build a :class:`Message`; the
verifiers never see WSGI, Flask or ``requests``. A :class:`Body` is held in memory when small
and spooled to a temporary file when large, and can be read again and again in chunks, so a
signature can be checked over it and the app can still be given every byte.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import IO, Any
from urllib.parse import SplitResult, urlsplit

from .encoding import json_loads
from .errors import InvalidRequest


def _split(uri: str) -> SplitResult:
    """``urlsplit``, whose ``ValueError`` (an unbalanced ``[`` in the authority) becomes
    the 400 it is: a Message built outside the WSGI adapter is not checked there."""
    try:
        return urlsplit(uri)
    except ValueError as exc:
        raise InvalidRequest("the target URI cannot be parsed") from exc


CHUNK = 3 * 64 * 1024  # a multiple of 3, so base64 of a chunk never needs padding

_UNPARSED = object()

#: A piece of a body: bytes, or a zero-copy view into an in-memory body.
Chunk = bytes | memoryview


class Body:
    """A message body that may be read many times, whole or in chunks."""

    __slots__ = ("_data", "_file", "length")

    def __init__(
        self, data: bytes | None = None, *, file: IO[bytes] | None = None, length: int | None = None
    ) -> None:
        if (data is None) == (file is None):
            raise ValueError("give exactly one of data or file")
        self._data = data
        self._file = file
        self.length = len(data) if data is not None else int(length or 0)

    EMPTY: Body

    def __len__(self) -> int:
        return self.length

    @property
    def in_memory(self) -> bool:
        return self._data is not None

    def chunks(self, size: int = CHUNK) -> Iterator[Chunk]:
        """The body in pieces; in-memory pieces are zero-copy views."""
        if self._data is not None:
            if len(self._data) <= size:
                yield self._data
                return
            view = memoryview(self._data)
            for start in range(0, len(view), size):
                yield view[start : start + size]
            return
        assert self._file is not None
        self._file.seek(0)
        while chunk := self._file.read(size):
            yield chunk

    def read(self) -> bytes:
        """The whole body as one bytes object (a copy when spooled: use sparingly)."""
        if self._data is not None:
            return self._data
        return b"".join(self.chunks())

    def stream(self) -> IO[bytes]:
        """A fresh readable stream over the body, positioned at the start."""
        if self._data is not None:
            return io.BytesIO(self._data)
        assert self._file is not None
        self._file.seek(0)
        return self._file

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


Body.EMPTY = Body(b"")


class Headers:
    """Case-insensitive, multi-valued header fields, in the order received."""

    __slots__ = ("_index", "_items")

    def __init__(self, items: Iterable[tuple[str, str]] | Mapping[str, str] = ()) -> None:
        pairs = items.items() if isinstance(items, Mapping) else items
        self._items: list[tuple[str, str]] = [(k, v) for k, v in pairs]
        self._index: dict[str, list[str]] = {}
        for name, value in self._items:
            self._index.setdefault(name.lower(), []).append(value)

    def get(self, name: str, default: str | None = None) -> str | None:
        """The field value, several lines combined with ``", "`` (RFC 9110 §5.3)."""
        values = self._index.get(name.lower())
        return ", ".join(values) if values else default

    def get_all(self, name: str) -> list[str]:
        return list(self._index.get(name.lower(), ()))

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._index

    def items(self) -> list[tuple[str, str]]:
        return list(self._items)

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"


@dataclass
class Message:
    """An HTTP request (``status is None``) or response (``request`` links back to it)."""

    method: str = "GET"
    target_uri: str = "http://localhost/"
    headers: Headers = field(default_factory=Headers)
    body: Body = field(default_factory=lambda: Body.EMPTY)
    status: int | None = None
    request: Message | None = None
    remote_addr: str | None = None
    #: What earlier checks established (verified token claims, the client certificate, ...).
    context: dict[str, Any] = field(default_factory=dict)

    def json(self) -> Any:
        """The body parsed as strict JSON, once per message however many checks ask
        (the key owner, the signed payload and the replay rule of one profile may all need
        it). Raises :class:`~wsgi_apisec.errors.ParseError` when the body is not JSON."""
        cached = self.__dict__.get("_json", _UNPARSED)
        if cached is _UNPARSED:
            cached = self.__dict__["_json"] = json_loads(self.body.read(), "body")
        return cached

    @property
    def path(self) -> str:
        return _split(self.target_uri).path or "/"

    @property
    def query(self) -> str:
        return _split(self.target_uri).query

    @property
    def path_and_query(self) -> str:
        parts = _split(self.target_uri)
        return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
