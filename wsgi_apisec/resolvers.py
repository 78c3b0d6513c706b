"""Where verification keys come from: the :class:`KeyResolver` plug point, and fixed keys.

A verifier never takes a key from the message. It asks a resolver with a :class:`KeyQuery`
built from what the profile trusts: the ``kid`` and ``alg`` of the signature, and an
``owner`` (participant id, sender id) taken from verified data such as token claims.
Remote sources (:class:`~wsgi_apisec.jwks.JWKSResolver`,
:class:`~wsgi_apisec.registry.RegistryResolver`) implement the same protocol.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from .errors import UnknownKey
from .keys import KeySet, PublicKey


@dataclass(frozen=True)
class KeyQuery:
    """What a verifier needs a key for."""

    alg: str
    kid: str | None = None
    #: Whose key: the participant / sender id, when the profile looks keys up per party.
    owner: str | None = None


class KeyResolver(Protocol):
    def resolve(self, query: KeyQuery) -> list[PublicKey]:
        """Keys that may verify the signature (usually one), allowed for ``query.alg``.

        Raises :class:`~wsgi_apisec.errors.UnknownKey` when there is none and
        :class:`~wsgi_apisec.errors.KeySourceError` when the source is down with nothing
        usable cached.
        """
        ...


def select(keys: KeySet, query: KeyQuery) -> list[PublicKey]:
    """The keys of ``keys`` that fit ``query``, or :class:`UnknownKey`."""
    found = keys.candidates(query.kid, query.alg)
    if not found:
        who = f" of {query.owner!r}" if query.owner else ""
        kid = f" with kid {query.kid[:64]!r}" if query.kid else ""
        raise UnknownKey(f"no key{who}{kid} for {query.alg}")
    return found


class StaticKeyResolver:
    """Fixed keys: one set for everybody, or a set per owner (participant id)."""

    def __init__(
        self,
        keys: KeySet | Iterable[PublicKey] | None = None,
        *,
        owners: Mapping[str, KeySet | Iterable[PublicKey]] | None = None,
    ) -> None:
        self._keys = _as_set(keys) if keys is not None else None
        self._owners = {name: _as_set(ks) for name, ks in (owners or {}).items()}

    def resolve(self, query: KeyQuery) -> list[PublicKey]:
        if self._owners and query.owner is not None:
            owned = self._owners.get(query.owner)
            if owned is None:
                raise UnknownKey(f"unknown party {query.owner[:64]!r}")
            return select(owned, query)
        if self._keys is None:
            raise UnknownKey("no keys are configured for this request")
        return select(self._keys, query)


def _as_set(keys: KeySet | Iterable[PublicKey]) -> KeySet:
    return keys if isinstance(keys, KeySet) else KeySet(keys)
