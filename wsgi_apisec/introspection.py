"""OAuth 2.0 Token Introspection (RFC 7662): ask the authorization server about a token.

The resource server authenticates to the endpoint as a client (``client_secret_basic`` by
default, or ``client_secret_post``) and posts ``token=...&token_type_hint=access_token``.
Answers are cached under the SHA-256 of the token (the token itself is never kept in clear):
``active: true`` until the token's ``exp`` or ``ttl`` (whichever is first), anything
refused for ``negative_ttl`` (in a cache of their own, so a flood of made-up tokens cannot
push good answers out). An endpoint that is down, answers non-200 or sends something
that is not an RFC 7662 answer is :class:`KeySourceError` (503); a token that is not active
is :class:`InvalidToken` (401). A stale answer is never served: revocation wins over uptime.
"""

from __future__ import annotations

import base64
import hashlib
import ssl
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any, Protocol
from urllib.parse import quote_plus

from .claims import ExpiringLRU, TimeWindow, audience_of, scopes_of, string_claim
from .encoding import json_object
from .errors import ConfigurationError, InvalidToken, KeySourceError, ParseError
from .fetch import check_url, post_form
from .tokens import AccessToken

__all__ = ["Introspection", "Poster", "UrllibPoster"]

MAX_RESPONSE_BYTES = 64 * 1024
_UNAVAILABLE = "the token introspection endpoint is unavailable"


class Poster(Protocol):
    def post(
        self, url: str, *, data: Mapping[str, str], headers: Mapping[str, str], timeout: float
    ) -> tuple[int, Mapping[str, str], bytes]:
        """POST ``data`` form-encoded; (status, lower-case headers, body). Raises
        :class:`KeySourceError` when the endpoint cannot be reached or answers too much."""
        ...


class UrllibPoster:
    """The default :class:`Poster`, on :mod:`urllib.request`: one deadline for the whole
    exchange, redirects never followed, environment proxies ignored, the body capped."""

    def __init__(
        self, *, ssl_context: ssl.SSLContext | None = None, max_bytes: int = MAX_RESPONSE_BYTES
    ) -> None:
        self._context = ssl_context
        self.max_bytes = max_bytes

    def post(
        self, url: str, *, data: Mapping[str, str], headers: Mapping[str, str], timeout: float
    ) -> tuple[int, Mapping[str, str], bytes]:
        try:
            result = post_form(
                url,
                data,
                headers,
                timeout=timeout,
                max_bytes=self.max_bytes,
                ssl_context=self._context,
            )
        except KeySourceError as exc:
            raise KeySourceError(_UNAVAILABLE, detail=exc.detail) from exc
        return result.status, result.headers, result.body


@dataclass(frozen=True)
class _Answer:
    """A cached answer; ``token`` None means "not active" (or not acceptable here)."""

    token: AccessToken | None
    window: TimeWindow | None = None


class Introspection:
    """Validates opaque (or foreign) tokens at an RFC 7662 endpoint.

    ``issuer`` / ``audience``, when given, must match the answer's ``iss`` / ``aud``.
    The endpoint must be https (http only for loopback or with ``allow_http``).
    """

    def __init__(
        self,
        endpoint: str,
        *,
        client_id: str,
        client_secret: str,
        auth_method: str = "client_secret_basic",
        poster: Poster | None = None,
        clock: Callable[[], float] = time.time,
        ttl: float = 60.0,
        negative_ttl: float = 5.0,
        cache_size: int = 1024,
        timeout: float = 5.0,
        issuer: str | None = None,
        audience: str | Sequence[str] | None = None,
        leeway: float = 30.0,
        allow_http: bool = False,
    ) -> None:
        if auth_method not in ("client_secret_basic", "client_secret_post"):
            raise ConfigurationError(f"unsupported client auth method {auth_method!r}")
        if not (ttl > 0 and negative_ttl >= 0 and timeout > 0 and leeway >= 0):
            raise ConfigurationError("introspection times must be positive")
        self.endpoint = check_url(endpoint, allow_http)
        self.auth_method = auth_method
        self._client = (client_id, client_secret)
        self._poster: Poster = poster if poster is not None else UrllibPoster()
        self.clock = clock
        self.ttl, self.negative_ttl, self.timeout, self.leeway = ttl, negative_ttl, timeout, leeway
        self.issuer = issuer
        self.audiences = (audience,) if isinstance(audience, str) else tuple(audience or ())
        self._cache: ExpiringLRU[bytes, _Answer] = ExpiringLRU(cache_size)
        # Refusals apart: anyone can send made-up tokens, and their answers must never push
        # a good token's answer out of the cache.
        self._refused: ExpiringLRU[bytes, _Answer] = ExpiringLRU(cache_size)

    def introspect(self, token: str) -> AccessToken:
        key = hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
        now = self.clock()
        cached = self._cache.get(key, now) or self._refused.get(key, now)
        if cached is not None:
            if cached.token is None or cached.window is None:
                raise InvalidToken("the token is not active", code="token.inactive")
            cached.window.check(now)
            return replace(cached.token, raw=token)
        answer = self._ask(token)
        try:
            result, window = self._accept(answer, now)
        except InvalidToken:
            self._refused.put(key, _Answer(None), now + self.negative_ttl)
            raise
        until = min(window.exp if window.exp is not None else now + self.ttl, now + self.ttl)
        self._cache.put(key, _Answer(result, window), until)
        return replace(result, raw=token)

    def _ask(self, token: str) -> dict[str, Any]:
        # RFC 7662 §2.1: POST token (+ token_type_hint), authenticated as a client.
        data = {"token": token, "token_type_hint": "access_token"}
        headers = {"Accept": "application/json"}
        client_id, secret = self._client
        if self.auth_method == "client_secret_basic":
            # RFC 6749 §2.3.1: id and secret are form-urlencoded before Basic encoding.
            pair = f"{quote_plus(client_id)}:{quote_plus(secret)}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
        else:
            data.update(client_id=client_id, client_secret=secret)
        status, _, body = self._poster.post(
            self.endpoint, data=data, headers=headers, timeout=self.timeout
        )
        where = f"POST {self.endpoint}"
        if status != 200:
            raise KeySourceError(_UNAVAILABLE, detail=f"{where}: HTTP {status}")
        if len(body) > MAX_RESPONSE_BYTES:
            raise KeySourceError(_UNAVAILABLE, detail=f"{where}: answer too large")
        try:
            answer = json_object(body, "introspection answer")
        except ParseError as exc:
            raise KeySourceError(_UNAVAILABLE, detail=f"{where}: {exc.description}") from exc
        # RFC 7662 §2.2: active is REQUIRED and a boolean; anything else is not an answer.
        if not isinstance(answer.get("active"), bool):
            raise KeySourceError(_UNAVAILABLE, detail=f"{where}: no boolean 'active'")
        return answer

    def _accept(self, answer: dict[str, Any], now: float) -> tuple[AccessToken, TimeWindow]:
        if answer["active"] is not True:
            raise InvalidToken("the token is not active", code="token.inactive")
        issuer = string_claim(answer, "iss")
        if self.issuer is not None and issuer != self.issuer:
            raise InvalidToken("the token issuer is not trusted", code="token.issuer")
        window = TimeWindow.from_claims(answer, leeway=self.leeway)
        window.check(now)
        audience = audience_of(answer)
        if self.audiences and not set(audience) & set(self.audiences):
            raise InvalidToken("the token is not meant for this audience", code="token.audience")
        cnf = answer.get("cnf")
        if cnf is not None and not isinstance(cnf, dict):
            raise InvalidToken("the 'cnf' member must be an object", code="token.claims")
        token = AccessToken(
            raw="",
            claims=MappingProxyType(answer),
            issuer=issuer,
            subject=string_claim(answer, "sub"),
            client_id=string_claim(answer, "client_id"),
            scopes=scopes_of(answer),
            audience=audience,
            expires_at=int(window.exp) if window.exp is not None else None,
            cnf=MappingProxyType(cnf) if cnf is not None else None,
        )
        return token, window

    def __repr__(self) -> str:
        return f"Introspection({self.endpoint!r}, auth_method={self.auth_method!r})"
