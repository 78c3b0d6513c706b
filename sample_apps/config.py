"""The demo network, generated at start: clients of the authorization server, participants
of the registry, and the secrets and private keys each party keeps. Nothing secret is
committed; every call makes new ones.

    demo = make_demo_config(issuer="https://127.0.0.1:8443")
    authserver.create_app(demo.authserver)      # knows secrets and *public* keys only
    registry.create_app(demo.registry)          # public keys only
    demo.secrets["fdx-aggregator"]             # what that client sends with Basic auth
    demo.keys["lender-1"]                       # lender-1's private key (RS256, OCEN)

The clients (``client_id``: how it authenticates -> what it gets):

* ``fdx-aggregator``: client_secret_basic -> JWTs by client credentials, and by code + PKCE
  for ``demo-user`` (FDX scopes);
* ``ocen-lender``: private_key_jwt, RS256, with lender-1's key -> JWTs carrying
  ``participantId: lender-1``;
* ``ocen-lsp``: private_key_jwt, RS256, with lsp-1's key -> JWTs carrying
  ``participantId: lsp-1`` (the borrower agent that calls the lender);
* ``g2p-partner``: tls_client_auth (subject DN of the PKI's ``client`` certificate) -> JWTs
  bound to that certificate (``cnf.x5t#S256``), for the G2P mapper's partner;
* ``legacy-merchant``: client_secret_basic -> opaque tokens, for RFC 7662 introspection;
* ``resource-server``: client_secret_basic -> no tokens; may call ``/introspect``.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

from wsgi_apisec.keys import PrivateKey

#: Who the demo resource servers are: the ``aud`` of every token.
DEMO_AUDIENCE = "urn:flask-apisec:sample-api"
#: The subject DN of ``sample_apps.pki``'s client certificate named ``client``.
PKI_CLIENT_DN = "CN=client,O=flask-apisec throwaway PKI"
FDX_SCOPES = [
    "fdx:accountbasic:read",
    "fdx:accountdetailed:read",
    "fdx:customercontact:read",
    "fdx:customerpersonal:read",
    "fdx:transactions:read",
    "fdx:paymentsupport:read",
    "fdx:notifications:subscribe",
    "external:resources:read",
    "external:resources:write",
    "participantuser:consents:read",
    "participantuser:consents:write",
]
MAPPER_SCOPES = ["mapper:link", "mapper:resolve", "mapper:update", "mapper:unlink"]
#: participant id -> roles. OCEN: the lender and a borrower agent (LSP). G2P: the partner
#: that calls the mapper (OpenG2P name PARTNER_G2P_PARTNER) and the mapper itself.
PARTICIPANTS = {
    "lender-1": ["LENDER"],
    "lsp-1": ["LOAN_AGENT"],
    "g2p-partner": ["PARTNER"],
    "g2p-mapper": ["MAPPER"],
}
#: G2P participants also hold an Ed25519 key for the G2P Connect (Beckn-style) signature.
G2P_PARTICIPANTS = ("g2p-partner", "g2p-mapper")


@dataclass(frozen=True)
class DemoConfig:
    authserver: dict[str, Any]
    registry: dict[str, Any]
    #: client_id -> client_secret (client_secret_basic clients).
    secrets: dict[str, str] = field(repr=False)
    #: participant id or client_id -> private key (``ocen-lender`` signs as ``lender-1``).
    keys: dict[str, PrivateKey] = field(repr=False)
    #: G2P participant id -> its Ed25519 key (G2P Connect signatures).
    ed25519_keys: dict[str, PrivateKey] = field(default_factory=dict, repr=False)


def _rs256_key() -> PrivateKey:
    # OCEN and OpenG2P sign with RS256; the kid is the RFC 7638 thumbprint.
    key = PrivateKey.generate("RS256")
    return PrivateKey.from_key(key.key, kid=key.thumbprint(), algorithms=["RS256"])


def _ed25519_key() -> PrivateKey:
    key = PrivateKey.generate("EdDSA")
    return PrivateKey.from_key(key.key, kid=key.thumbprint(), algorithms=["EdDSA", "ed25519"])


def _participant_jwks(pid: str, keys: dict[str, PrivateKey], ed: dict[str, PrivateKey]) -> Any:
    # Oldest to newest: the registry's single-key routes answer with the newest, which is
    # the RS256 key (OCEN, OpenG2P); G2P Connect finds the Ed25519 key in the full JWKS.
    members = [ed[pid].public_key().to_jwk()] if pid in ed else []
    return {"keys": [*members, keys[pid].public_key().to_jwk()]}


def make_demo_config(
    issuer: str = "http://127.0.0.1:8443",
    *,
    audience: str = DEMO_AUDIENCE,
    redirect_uri: str = "http://127.0.0.1:8000/callback",
    mtls_subject_dn: str = PKI_CLIENT_DN,
    database: str = ":memory:",
) -> DemoConfig:
    keys = {pid: _rs256_key() for pid in PARTICIPANTS}
    keys["ocen-lender"] = keys["lender-1"]
    keys["ocen-lsp"] = keys["lsp-1"]
    ed = {pid: _ed25519_key() for pid in G2P_PARTICIPANTS}
    secret = {
        cid: secrets.token_urlsafe(24)
        for cid in ("fdx-aggregator", "legacy-merchant", "resource-server")
    }
    clients: list[dict[str, Any]] = [
        {
            "client_id": "fdx-aggregator",
            "auth_method": "client_secret_basic",
            "client_secret": secret["fdx-aggregator"],
            "grant_types": ["client_credentials", "authorization_code"],
            "scopes": FDX_SCOPES,
            "redirect_uris": [redirect_uri],
        },
        {
            "client_id": "ocen-lender",
            "auth_method": "private_key_jwt",
            "jwks": {"keys": [keys["lender-1"].public_key().to_jwk()]},
            "scopes": ["ocen:loan-applications"],
            "participant_id": "lender-1",
        },
        {
            "client_id": "ocen-lsp",
            "auth_method": "private_key_jwt",
            "jwks": {"keys": [keys["lsp-1"].public_key().to_jwk()]},
            "scopes": ["ocen:loan-applications"],
            "participant_id": "lsp-1",
        },
        {
            "client_id": "g2p-partner",
            "auth_method": "tls_client_auth",
            "tls_client_auth_subject_dn": mtls_subject_dn,
            "scopes": MAPPER_SCOPES,
        },
        {
            "client_id": "legacy-merchant",
            "auth_method": "client_secret_basic",
            "client_secret": secret["legacy-merchant"],
            "scopes": ["payments:read"],
            "token_format": "opaque",
        },
        {
            "client_id": "resource-server",
            "auth_method": "client_secret_basic",
            "client_secret": secret["resource-server"],
            "grant_types": [],
            "can_introspect": True,
        },
    ]
    authserver = {
        "issuer": issuer,
        "default_audience": audience,
        "database": database,
        "clients": clients,
    }
    registry = {
        "participants": [
            {"participant_id": pid, "roles": roles, "jwks": _participant_jwks(pid, keys, ed)}
            for pid, roles in PARTICIPANTS.items()
        ]
    }
    return DemoConfig(authserver, registry, secret, keys, ed)
