"""Bearer access tokens: what a validated token looks like.

(The validator itself — ``TokenValidator``, ``Issuer`` — is built in this module too.)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class AccessToken:
    """A token that passed validation. ``claims`` are the JWT claims or the RFC 7662
    introspection response; the other fields are normalised views of them."""

    raw: str = field(repr=False)
    claims: Mapping[str, Any]
    issuer: str | None
    subject: str | None
    client_id: str | None
    scopes: frozenset[str]
    audience: tuple[str, ...] = ()
    expires_at: int | None = None
    #: RFC 7800 / RFC 8705 / RFC 9449 confirmation: ``{"x5t#S256": ...}`` or ``{"jkt": ...}``.
    cnf: Mapping[str, Any] | None = None
    #: ``"Bearer"`` or ``"DPoP"``: the scheme the token was presented with.
    scheme: str = "Bearer"

    def has_scope(self, *scopes: str) -> bool:
        """True when the token carries every scope named."""
        return all(s in self.scopes for s in scopes)

    def has_any_scope(self, scopes: Iterable[str]) -> bool:
        return any(s in self.scopes for s in scopes)

    @property
    def bound(self) -> bool:
        return bool(self.cnf) and ("x5t#S256" in (self.cnf or {}) or "jkt" in (self.cnf or {}))
