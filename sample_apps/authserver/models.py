"""What Authlib asks about clients, users, codes and tokens (its ``*Mixin`` interfaces),
answered from the config and the SQLite rows."""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from authlib.oauth2.rfc6749 import (  # type: ignore[import-untyped]
    AuthorizationCodeMixin,
    ClientMixin,
    TokenMixin,
)
from cryptography import x509

from .config import ClientConfig
from .storage import StoredCode, StoredToken


@dataclass(frozen=True)
class DemoUser:
    """The resource owner: a name typed on the consent page, no password (a sample)."""

    name: str

    def get_user_id(self) -> str:
        return self.name


class Client(ClientMixin):  # type: ignore[misc]
    def __init__(self, config: ClientConfig) -> None:
        self.config = config
        self.client_id = config.client_id

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        uris = self.config.redirect_uris
        return uris[0] if len(uris) == 1 else None

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        # RFC 9700 §4.1.3: exact string match, no patterns.
        return redirect_uri in self.config.redirect_uris

    def get_allowed_scope(self, scope: str | None) -> str | None:
        """RFC 6749 §3.3: no scope asked means all the client's scopes; asking for one it
        does not have fails the request (``None`` becomes ``invalid_scope``)."""
        if not scope:
            return " ".join(self.config.scopes)
        asked = scope.split()
        if not set(asked) <= set(self.config.scopes):
            return None
        return " ".join(dict.fromkeys(asked))

    def check_client_secret(self, client_secret: str) -> bool:
        secret = self.config.client_secret
        if secret is None:
            return False
        return hmac.compare_digest(secret.encode(), client_secret.encode())

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        # One registered method for every endpoint (token, introspection, revocation).
        return method == self.config.auth_method

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code" and "authorization_code" in self.config.grant_types

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in self.config.grant_types

    def matches_certificate(self, cert_der: bytes) -> bool:
        """RFC 8705 §2.1.2: the certificate carries the registered subject DN or SAN."""
        if self.config.tls_identity is None:
            return False
        try:
            cert = x509.load_der_x509_certificate(cert_der)
        except ValueError:
            return False
        kind, expected = self.config.tls_identity
        if kind == "tls_client_auth_subject_dn":
            # Compared as parsed names, so spacing and escaping in the config do not matter.
            return cert.subject == x509.Name.from_rfc4514_string(expected)
        return expected in _san_values(cert, kind)


def _san_values(cert: x509.Certificate, kind: str) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    if kind == "tls_client_auth_san_ip":
        # config.py normalised the registered address the same way.
        return [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    if kind == "tls_client_auth_san_dns":
        return san.get_values_for_type(x509.DNSName)
    if kind == "tls_client_auth_san_uri":
        return san.get_values_for_type(x509.UniformResourceIdentifier)
    return san.get_values_for_type(x509.RFC822Name)


class AuthorizationCode(AuthorizationCodeMixin):  # type: ignore[misc]
    def __init__(self, stored: StoredCode) -> None:
        self.stored = stored
        self.code_challenge = stored.code_challenge
        self.code_challenge_method = stored.code_challenge_method

    def get_redirect_uri(self) -> str | None:
        return self.stored.redirect_uri

    def get_scope(self) -> str:
        return self.stored.scope


class OpaqueToken(TokenMixin):  # type: ignore[misc]
    """A row of the tokens table, for introspection and revocation."""

    def __init__(self, value: str, stored: StoredToken, now: int) -> None:
        self.value = value
        self.stored = stored
        self.now = now

    def check_client(self, client: Client) -> bool:
        return self.stored.client_id == client.client_id

    def get_scope(self) -> str:
        return str(self.stored.claims.get("scope", ""))

    def get_expires_in(self) -> int:
        return max(0, self.stored.expires_at - self.now)

    def is_expired(self) -> bool:
        return self.stored.expires_at <= self.now

    def is_revoked(self) -> bool:
        return self.stored.revoked
