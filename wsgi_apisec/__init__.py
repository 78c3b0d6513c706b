"""wsgi_apisec: framework-agnostic API security for WSGI apps.

Signed requests and responses (detached JWS for OCEN, UK OB and OpenG2P; the Beckn-style
G2P Connect header; RFC 9421 for FAPI 2.0), bearer tokens (JWT via JWKS, opaque via RFC 7662),
certificate-bound (RFC 8705) and DPoP-bound (RFC 9449) tokens, and replay protection.
"""

from . import profiles
from .binding import check_binding
from .certs import ClientCertSource
from .dpop import DPoPVerifier
from .errors import (
    APISecError,
    ConfigurationError,
    InsufficientScope,
    InvalidRequest,
    InvalidToken,
    KeySourceError,
    SignatureError,
)
from .introspection import Introspection
from .jwks import JWKSResolver
from .keys import KeySet, PrivateKey, PublicKey
from .message import Body, Headers, Message
from .middleware import Rule, SignatureMiddleware
from .registry import RegistryResolver
from .replay import (
    MemoryReplayStore,
    RedisReplayStore,
    ReplayStore,
    SQLiteReplayStore,
    replay_store_from_url,
)
from .resolvers import KeyQuery, KeyResolver, StaticKeyResolver
from .signatures import RequestVerifier, ResponseSigner, SignatureResult
from .tokens import AccessToken, Issuer, TokenValidator

__all__ = [
    "APISecError",
    "AccessToken",
    "Body",
    "ClientCertSource",
    "ConfigurationError",
    "DPoPVerifier",
    "Headers",
    "InsufficientScope",
    "Introspection",
    "InvalidRequest",
    "InvalidToken",
    "Issuer",
    "JWKSResolver",
    "KeyQuery",
    "KeyResolver",
    "KeySet",
    "KeySourceError",
    "MemoryReplayStore",
    "Message",
    "PrivateKey",
    "PublicKey",
    "RedisReplayStore",
    "RegistryResolver",
    "ReplayStore",
    "RequestVerifier",
    "ResponseSigner",
    "Rule",
    "SQLiteReplayStore",
    "SignatureError",
    "SignatureMiddleware",
    "SignatureResult",
    "StaticKeyResolver",
    "TokenValidator",
    "check_binding",
    "profiles",
    "replay_store_from_url",
]
