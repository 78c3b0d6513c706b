"""Access tokens for the client: the :class:`TokenProvider` plug point, the :class:`Token`
it gives, and a fixed token. :class:`~wsgi_apisec.client.credentials.ClientCredentials` gets
them from an authorization server.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from ..encoding import is_b64token
from ..errors import TokenRequestError

__all__ = ["BEARER", "DPOP", "StaticToken", "Token", "TokenProvider", "checked_token"]

#: The token types we can present (RFC 6750, RFC 9449); RFC 6749 §7.1: case-insensitive.
BEARER, DPOP = "Bearer", "DPoP"
_TOKEN_TYPES = {"bearer": BEARER, "dpop": DPOP}


@dataclass(frozen=True)
class Token:
    """An access token and when to stop using it, on the provider's clock."""

    access_token: str = field(repr=False)
    #: ``"Bearer"`` or ``"DPoP"``: the ``Authorization`` scheme (RFC 9449 §7.1).
    token_type: str = BEARER
    #: When it expires, and when it is re-fetched (``None``: never).
    expires_at: float | None = None
    refresh_at: float | None = None
    scope: str | None = None


class TokenProvider(Protocol):
    """Where :class:`~wsgi_apisec.client.APISecAuth` gets the token for each request."""

    def token(self) -> Token: ...


class StaticToken:
    """One token, used as is (a token obtained elsewhere, a test token)."""

    def __init__(self, access_token: str, token_type: str = BEARER) -> None:
        self._token = checked_token(access_token, token_type, None, None, None)

    def token(self) -> Token:
        return self._token


def checked_token(
    access_token: object,
    token_type: object,
    expires_at: float | None,
    refresh_at: float | None,
    scope: object,
) -> Token:
    """A :class:`Token`, or :class:`TokenRequestError` when it cannot go in a header."""
    if not isinstance(access_token, str) or not is_b64token(access_token):
        raise TokenRequestError("the token response has no usable access_token")
    kind = _TOKEN_TYPES.get(token_type.lower()) if isinstance(token_type, str) else None
    if kind is None:
        raise TokenRequestError(f"token_type {str(token_type)[:32]!r} is not Bearer or DPoP")
    return Token(
        access_token, kind, expires_at, refresh_at, scope if isinstance(scope, str) else None
    )
