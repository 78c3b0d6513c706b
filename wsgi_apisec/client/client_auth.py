"""Client authentication at the token endpoint, on Authlib's OAuth 2.0 ``requests`` client:
``client_secret_basic`` (RFC 6749 §2.3.1), ``private_key_jwt`` (RFC 7523 §2.2, the assertion
signed by our :class:`~wsgi_apisec.keys.PrivateKey`) and ``tls_client_auth`` (RFC 8705 §2.1).
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any

from authlib.integrations.requests_client import OAuth2Session  # type: ignore[import-untyped]
from authlib.oauth2.auth import encode_none  # type: ignore[import-untyped]
from authlib.oauth2.rfc7523 import PrivateKeyJWT  # type: ignore[import-untyped]

from .. import jws
from ..encoding import json_dumps
from ..errors import ConfigurationError
from ..keys import PrivateKey

__all__ = ["AUTH_METHODS", "CertFiles", "ClientAuthentication", "PrivateKeyAssertion"]

#: A client certificate for ``requests``: ``(cert_path, key_path)`` or one combined PEM file.
CertFiles = tuple[str, str] | str
AUTH_METHODS = ("client_secret_basic", "private_key_jwt", "tls_client_auth")
_CREDENTIAL = {
    "client_secret_basic": "client_secret",
    "private_key_jwt": "private_key",
    "tls_client_auth": "cert",
}


class PrivateKeyAssertion(PrivateKeyJWT):  # type: ignore[misc]
    """Authlib's ``private_key_jwt``, with the assertion signed by our key (``alg``: the
    key's preferred algorithm unless given) and valid for ``lifetime`` seconds."""

    def __init__(self, key: PrivateKey, alg: str | None = None, lifetime: int = 60) -> None:
        header = jws.build_header(key, alg)
        super().__init__(alg=header["alg"])
        self.key, self.header, self.lifetime = key, header, lifetime
        self._signer = jws.Signer(key, header)  # checked and serialised once

    def sign(self, auth: Any, token_endpoint: str) -> str:
        now = int(time.time())
        # RFC 7523 §3: iss and sub are the client_id, aud names the AS (its token endpoint),
        # exp is required; a fresh jti lets the AS refuse a replayed assertion.
        claims = {
            "iss": auth.client_id,
            "sub": auth.client_id,
            "aud": token_endpoint,
            "jti": secrets.token_urlsafe(16),
            "iat": now,
            "exp": now + self.lifetime,
        }
        return self._signer.sign(json_dumps(claims), detached=False)


@dataclass(frozen=True)
class ClientAuthentication:
    """How the client proves who it is to the token endpoint."""

    method: str
    client_secret: str | None = None
    private_key: PrivateKey | None = None
    assertion_alg: str | None = None
    assertion_lifetime: int = 60

    @classmethod
    def choose(
        cls,
        method: str | None,
        *,
        client_secret: str | None = None,
        private_key: PrivateKey | None = None,
        cert: CertFiles | None = None,
        assertion_alg: str | None = None,
        assertion_lifetime: int = 60,
    ) -> ClientAuthentication:
        """``method``, or when ``None`` the one the credential given implies
        (``private_key`` > ``client_secret`` > ``cert``); each needs its credential."""
        if method is None:
            method = (
                "private_key_jwt"
                if private_key
                else "client_secret_basic"
                if client_secret
                else "tls_client_auth"
            )
        if method not in AUTH_METHODS:
            raise ConfigurationError(f"auth_method must be one of {AUTH_METHODS}, not {method!r}")
        given = {"client_secret": client_secret, "private_key": private_key, "cert": cert}
        if not given[_CREDENTIAL[method]]:
            raise ConfigurationError(f"{method} needs {_CREDENTIAL[method]}=...")
        return cls(
            method,
            client_secret if method == "client_secret_basic" else None,
            private_key if method == "private_key_jwt" else None,
            assertion_alg,
            assertion_lifetime,
        )

    def session(self, client_id: str, scope: str | None) -> Any:
        """Authlib's ``OAuth2Session`` that authenticates this way."""
        oauth = OAuth2Session(
            client_id,
            client_secret=self.client_secret,
            token_endpoint_auth_method=self.method,
            scope=scope,
        )
        if self.method == "tls_client_auth":
            # RFC 8705 §2: the TLS certificate authenticates; client_id goes in the body.
            oauth.register_client_auth_method((self.method, encode_none))
        if self.private_key is not None:
            oauth.register_client_auth_method(
                PrivateKeyAssertion(self.private_key, self.assertion_alg, self.assertion_lifetime)
            )
        return oauth
