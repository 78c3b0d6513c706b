"""Access tokens: RFC 9068 JWTs signed with :mod:`wsgi_apisec.jws`, or opaque strings whose
claims stay in SQLite for RFC 7662 introspection.

Signing uses the library's own :class:`~wsgi_apisec.keys.PrivateKey` and
:func:`wsgi_apisec.jws.sign` rather than Authlib's ``JWTBearerTokenGenerator``, so the
server key is one object that signs (ES256 or PS256) and publishes itself in ``/jwks``.
Authlib's :class:`BearerTokenGenerator` still shapes the token response and applies the
client's scope rules.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Any

from authlib.oauth2.rfc6750 import BearerTokenGenerator  # type: ignore[import-untyped]

from wsgi_apisec import jws
from wsgi_apisec.encoding import json_dumps
from wsgi_apisec.keys import PrivateKey, x5t_s256

from .config import ServerConfig
from .models import Client, DemoUser
from .storage import Storage

#: Where the DER client certificate of the current request comes from (None: no mTLS).
CertSource = Callable[[], bytes | None]


def load_signing_key(config: ServerConfig) -> PrivateKey:
    """The configured PEM key, or a fresh one; its ``kid`` is its RFC 7638 thumbprint."""
    alg = config.signing_alg
    if config.signing_key_pem:
        key = PrivateKey.from_pem(config.signing_key_pem, algorithms=[alg])
    else:
        key = PrivateKey.generate(alg)
    return PrivateKey.from_key(key.key, kid=key.thumbprint(), algorithms=[alg])


class AccessTokenIssuer(BearerTokenGenerator):  # type: ignore[misc]
    """Authlib's token generator (registered as ``"default"``) with our access tokens."""

    def __init__(
        self,
        config: ServerConfig,
        key: PrivateKey,
        storage: Storage,
        cert_source: CertSource,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(self.access_token, expires_generator=config.token_lifetime)
        self.config = config
        self.key = key
        self.storage = storage
        self.cert_source = cert_source
        self.clock = clock

    def claims(self, client: Client, user: DemoUser | None, scope: str) -> dict[str, Any]:
        now = int(self.clock())
        audience = client.config.audience
        claims: dict[str, Any] = {
            "iss": self.config.issuer,
            # RFC 9068 §2.2: the resource owner, or the client itself when there is none.
            "sub": user.get_user_id() if user else client.client_id,
            "aud": audience[0] if len(audience) == 1 else list(audience),
            "client_id": client.client_id,
            "iat": now,
            "exp": now + self.config.token_lifetime,
            "jti": secrets.token_urlsafe(16),
        }
        if scope:
            claims["scope"] = scope
        cert = self.cert_source()
        if cert is not None:
            # RFC 8705 §3.1: bind the token to the certificate used on this TLS connection.
            claims["cnf"] = {"x5t#S256": x5t_s256(cert)}
        if client.config.participant_id:
            claims["participantId"] = client.config.participant_id
        return claims

    def access_token(
        self, client: Client, grant_type: str, user: DemoUser | None, scope: str
    ) -> str:
        claims = self.claims(client, user, scope)
        if client.config.token_format == "opaque":
            token = secrets.token_urlsafe(32)
            self.storage.save_token(token, claims)
            return token
        # RFC 9068 §2.1: the header MUST carry typ "at+jwt".
        header = jws.build_header(self.key, self.config.signing_alg, extra={"typ": "at+jwt"})
        return jws.sign(self.key, json_dumps(claims), header, detached=False)
