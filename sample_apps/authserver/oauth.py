"""The Authlib authorization server, assembled: two grants, three client authentication
methods, PKCE with S256 required, introspection and revocation.

Every token-side endpoint accepts the same client authentication methods; each client is
registered for exactly one of them (:meth:`Client.check_endpoint_auth_method`).
"""

from __future__ import annotations

from typing import Any

from authlib.integrations.flask_oauth2 import (  # type: ignore[import-untyped]
    AuthorizationServer,
)
from authlib.oauth2.rfc6749 import (  # type: ignore[import-untyped]
    InvalidClientError,
    InvalidRequestError,
)
from authlib.oauth2.rfc6749.grants import (  # type: ignore[import-untyped]
    AuthorizationCodeGrant,
    ClientCredentialsGrant,
)
from authlib.oauth2.rfc7009 import RevocationEndpoint  # type: ignore[import-untyped]
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion  # type: ignore[import-untyped]
from authlib.oauth2.rfc7636 import CodeChallenge  # type: ignore[import-untyped]
from authlib.oauth2.rfc7662 import IntrospectionEndpoint  # type: ignore[import-untyped]
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from .config import AUTH_METHODS, ServerConfig
from .models import AuthorizationCode, Client, DemoUser, OpaqueToken
from .storage import Storage, StoredCode
from .tokens import AccessTokenIssuer, CertSource

#: Algorithms accepted on private_key_jwt client assertions (RS256 for OCEN clients).
ASSERTION_ALGS = ("ES256", "PS256", "RS256")


class SampleAuthorizationServer(AuthorizationServer):  # type: ignore[misc]
    def __init__(self, config: ServerConfig, storage: Storage) -> None:
        super().__init__(query_client=self.find_client, save_token=self.keep_nothing)
        self.config = config
        self.storage = storage
        self.clients = {cid: Client(c) for cid, c in config.clients.items()}
        self.scopes_supported = sorted({s for c in config.clients.values() for s in c.scopes})

    def find_client(self, client_id: str) -> Client | None:
        return self.clients.get(client_id)

    def keep_nothing(self, token: dict[str, Any], request: Any) -> None:
        """JWTs are self-contained; opaque tokens were stored when they were made."""

    def find_token(self, value: str) -> OpaqueToken | None:
        stored = self.storage.find_token(value)
        return OpaqueToken(value, stored, self.storage.now()) if stored is not None else None


class ClientCredentials(ClientCredentialsGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS


class AuthorizationCodeWithPKCE(AuthorizationCodeGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS

    def save_authorization_code(self, code: str, request: Any) -> None:
        data = request.payload.data
        stored = StoredCode(
            client_id=request.client.client_id,
            redirect_uri=request.payload.redirect_uri,
            scope=request.scope,
            user=request.user.get_user_id(),
            code_challenge=data["code_challenge"],
            code_challenge_method=data["code_challenge_method"],
        )
        self.server.storage.save_code(code, stored, self.server.config.code_lifetime)

    def query_authorization_code(self, code: str, client: Client) -> AuthorizationCode | None:
        stored = self.server.storage.take_code(code, client.client_id)
        return AuthorizationCode(stored) if stored is not None else None

    def delete_authorization_code(self, authorization_code: AuthorizationCode) -> None:
        """Already deleted when it was taken."""

    def authenticate_user(self, authorization_code: AuthorizationCode) -> DemoUser:
        return DemoUser(authorization_code.stored.user)


class RequireS256(CodeChallenge):  # type: ignore[misc]
    """PKCE for every client, S256 only (RFC 9700 §2.1.1; "plain" reveals the verifier)."""

    DEFAULT_CODE_CHALLENGE_METHOD = "S256"
    SUPPORTED_CODE_CHALLENGE_METHOD = ("S256",)

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        data = grant.request.payload.data
        if not data.get("code_challenge") or data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("code_challenge with code_challenge_method=S256 required")
        super().validate_code_challenge(grant, redirect_uri)


class PrivateKeyJWT(JWTBearerClientAssertion):  # type: ignore[misc]
    """RFC 7523 §2.2 client assertions, checked against the client's registered JWKS."""

    CLIENT_AUTH_METHOD = "private_key_jwt"

    def __init__(self, config: ServerConfig, storage: Storage) -> None:
        super().__init__(validate_jti=True, leeway=30)
        self.audiences = [config.issuer, config.endpoint("/token")]
        self.storage = storage

    def get_audiences(self) -> list[str]:
        # RFC 7523 §3 item 3: aud identifies this server (its issuer or token endpoint).
        return self.audiences

    def validate_jti(self, claims: dict[str, Any], jti: Any) -> bool:
        until = int(claims["exp"]) + self.leeway
        return self.storage.remember_jti(str(claims["sub"]), str(jti), until)

    def resolve_client_public_key(self, client: Client) -> KeySet:
        jwks: Any = client.config.jwks
        return KeySet.import_key_set(jwks)

    def process_assertion_claims(self, assertion: str, resolve_key: Any) -> Any:
        # As Authlib's, with an explicit algorithm allow-list instead of joserfc's default.
        try:
            token = jwt.decode(assertion, resolve_key, algorithms=list(ASSERTION_ALGS))
        except JoseError as exc:
            raise InvalidClientError(description=exc.description) from exc
        self.verify_claims(token.claims)
        return token.claims


class TLSClientAuth:
    """RFC 8705 §2.1 ``tls_client_auth``: the TLS layer verified the certificate chain; the
    client is the one whose registered subject DN or SAN the certificate carries."""

    def __init__(self, cert_source: CertSource) -> None:
        self.cert_source = cert_source

    def __call__(self, query_client: Any, request: Any) -> Client | None:
        # RFC 8705 §2: the client_id parameter is required, as no other credential names it.
        client_id = request.payload.client_id
        cert = self.cert_source()
        if not client_id or cert is None:
            return None
        client = query_client(client_id)
        if client is None or client.config.auth_method != "tls_client_auth":
            return None
        return client if client.matches_certificate(cert) else None


class Introspection(IntrospectionEndpoint):  # type: ignore[misc]
    CLIENT_AUTH_METHODS = AUTH_METHODS
    server: SampleAuthorizationServer

    def query_token(self, token_string: str, token_type_hint: str | None) -> OpaqueToken | None:
        return self.server.find_token(token_string)

    def check_permission(self, token: OpaqueToken, client: Client, request: Any) -> bool:
        # RFC 7662 §2.1: the endpoint MUST be protected; only resource servers may ask.
        return client.config.can_introspect

    def introspect_token(self, token: OpaqueToken) -> dict[str, Any]:
        # RFC 7662 §2.2 members, with cnf (RFC 8705 §3.2) and participantId when present.
        return {"active": True, "token_type": "Bearer", **token.stored.claims}


class Revocation(RevocationEndpoint):  # type: ignore[misc]
    CLIENT_AUTH_METHODS = AUTH_METHODS
    server: SampleAuthorizationServer

    def query_token(self, token_string: str, token_type_hint: str | None) -> OpaqueToken | None:
        return self.server.find_token(token_string)

    def revoke_token(self, token: OpaqueToken, request: Any) -> None:
        self.server.storage.revoke_token(token.value)


def build_server(
    config: ServerConfig, storage: Storage, issuer: AccessTokenIssuer, cert_source: CertSource
) -> SampleAuthorizationServer:
    server = SampleAuthorizationServer(config, storage)
    server.register_token_generator("default", issuer)
    server.register_client_auth_method("private_key_jwt", PrivateKeyJWT(config, storage))
    server.register_client_auth_method("tls_client_auth", TLSClientAuth(cert_source))
    server.register_grant(ClientCredentials)
    server.register_grant(AuthorizationCodeWithPKCE, [RequireS256(required=True)])
    server.register_endpoint(Introspection)
    server.register_endpoint(Revocation)
    return server
