"""The authorization server's settings: a plain dict (or a JSON file) checked once at start.

Every key, with its default::

    {
      "issuer": "https://as.example",        # required; scheme://host[:port], no path
      "signing_alg": "ES256",                # or "PS256"
      "signing_key_pem": null,               # PEM private key; null = generate at start
      "token_lifetime": 3600,                # seconds, access tokens
      "code_lifetime": 60,                   # seconds, authorization codes
      "default_audience": "urn:flask-apisec:sample-api",
      "users": ["demo-user"],                # who may approve on the consent page
      "database": ":memory:",                # SQLite path for codes and opaque tokens
      "clients": [ ... ]                     # required, see ClientConfig
    }
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509

from wsgi_apisec.errors import ConfigurationError

AUTH_METHODS = ("client_secret_basic", "private_key_jwt", "tls_client_auth")
GRANT_TYPES = ("client_credentials", "authorization_code")
SIGNING_ALGS = ("ES256", "PS256")
#: RFC 8705 §2.1.2: a client registers exactly one of these to name its certificate.
TLS_IDENTITIES = (
    "tls_client_auth_subject_dn",
    "tls_client_auth_san_dns",
    "tls_client_auth_san_uri",
    "tls_client_auth_san_ip",
    "tls_client_auth_san_email",
)


@dataclass(frozen=True)
class ClientConfig:
    """One registered client. ``client_id`` and ``auth_method`` are required, plus the
    credential its method needs: ``client_secret``, ``jwks`` (public keys for
    ``private_key_jwt``) or one ``tls_client_auth_*`` value."""

    client_id: str
    auth_method: str
    client_secret: str | None = None
    jwks: Mapping[str, Any] | None = None
    tls_identity: tuple[str, str] | None = None  # (one of TLS_IDENTITIES, value)
    grant_types: tuple[str, ...] = ("client_credentials",)
    scopes: tuple[str, ...] = ()
    redirect_uris: tuple[str, ...] = ()
    audience: tuple[str, ...] = ()
    token_format: str = "jwt"  # or "opaque"
    participant_id: str | None = None  # OCEN: becomes the participantId claim
    can_introspect: bool = False  # may call /introspect (resource servers)


@dataclass(frozen=True)
class ServerConfig:
    issuer: str
    clients: Mapping[str, ClientConfig]
    signing_alg: str = "ES256"
    signing_key_pem: str | None = None
    token_lifetime: int = 3600
    code_lifetime: int = 60
    default_audience: str = "urn:flask-apisec:sample-api"
    users: tuple[str, ...] = ("demo-user",)
    database: str = ":memory:"

    def endpoint(self, path: str) -> str:
        return self.issuer + path


def load_config(source: Mapping[str, Any] | str | Path) -> ServerConfig:
    """Settings from a dict or a JSON file; :class:`ConfigurationError` when they are wrong."""
    raw: Mapping[str, Any]
    raw = json.loads(Path(source).read_text()) if isinstance(source, str | Path) else source
    issuer = _issuer(raw.get("issuer"))
    default_audience = str(raw.get("default_audience", ServerConfig.default_audience))
    clients = [_client(c, default_audience) for c in _list(raw, "clients", required=True)]
    if len({c.client_id for c in clients}) != len(clients):
        raise ConfigurationError("client_id values must be unique")
    alg = raw.get("signing_alg", "ES256")
    if alg not in SIGNING_ALGS:
        raise ConfigurationError(f"signing_alg must be one of {SIGNING_ALGS}")
    return ServerConfig(
        issuer=issuer,
        clients={c.client_id: c for c in clients},
        signing_alg=alg,
        signing_key_pem=raw.get("signing_key_pem"),
        token_lifetime=_positive(raw, "token_lifetime", 3600),
        code_lifetime=_positive(raw, "code_lifetime", 60),
        default_audience=default_audience,
        users=tuple(_list(raw, "users")) if "users" in raw else ("demo-user",),
        database=str(raw.get("database", ":memory:")),
    )


def _issuer(value: object) -> str:
    # RFC 8414 §2: https, no query or fragment. A path would move the metadata URL (§3),
    # which this sample does not do, so it is refused too.
    if not isinstance(value, str):
        raise ConfigurationError("issuer is required")
    parts = urlsplit(value)
    loopback = parts.scheme == "http" and _is_loopback(parts.hostname or "")
    if (parts.scheme != "https" and not loopback) or parts.path not in ("", "/"):
        raise ConfigurationError(f"issuer {value!r} must be https://host[:port] (http: loopback)")
    if parts.query or parts.fragment:
        raise ConfigurationError("issuer must not carry a query or fragment")
    return value.rstrip("/")


def _is_loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _client(raw: Mapping[str, Any], default_audience: str) -> ClientConfig:
    client_id, method = raw.get("client_id"), raw.get("auth_method")
    if not isinstance(client_id, str) or not client_id:
        raise ConfigurationError("every client needs a client_id")
    if method not in AUTH_METHODS:
        raise ConfigurationError(f"{client_id}: auth_method must be one of {AUTH_METHODS}")
    grants = tuple(_list(raw, "grant_types")) if "grant_types" in raw else ("client_credentials",)
    if not set(grants) <= set(GRANT_TYPES):
        raise ConfigurationError(f"{client_id}: grant_types must be within {GRANT_TYPES}")
    audience = raw.get("audience", default_audience)
    config = ClientConfig(
        client_id=client_id,
        auth_method=method,
        client_secret=raw.get("client_secret"),
        jwks=raw.get("jwks"),
        tls_identity=_tls_identity(raw),
        grant_types=grants,
        scopes=tuple(_list(raw, "scopes")),
        redirect_uris=tuple(_list(raw, "redirect_uris")),
        audience=(audience,) if isinstance(audience, str) else tuple(audience),
        token_format=raw.get("token_format", "jwt"),
        participant_id=raw.get("participant_id"),
        can_introspect=bool(raw.get("can_introspect", False)),
    )
    _check_credential(config)
    return config


def _check_credential(c: ClientConfig) -> None:
    needs = {
        "client_secret_basic": c.client_secret,
        "private_key_jwt": c.jwks,
        "tls_client_auth": c.tls_identity,
    }
    if not needs[c.auth_method]:
        raise ConfigurationError(f"{c.client_id}: {c.auth_method} needs its credential")
    if c.token_format not in ("jwt", "opaque"):
        raise ConfigurationError(f"{c.client_id}: token_format must be 'jwt' or 'opaque'")
    if "authorization_code" in c.grant_types and not c.redirect_uris:
        raise ConfigurationError(f"{c.client_id}: authorization_code needs redirect_uris")
    if not c.audience:
        raise ConfigurationError(f"{c.client_id}: RFC 9068 tokens need an audience")


def _tls_identity(raw: Mapping[str, Any]) -> tuple[str, str] | None:
    given = [(name, str(raw[name])) for name in TLS_IDENTITIES if raw.get(name)]
    if len(given) > 1:
        raise ConfigurationError("RFC 8705 §2.1.2: register one tls_client_auth_* value")
    if not given:
        return None
    kind, value = given[0]
    try:
        if kind == "tls_client_auth_subject_dn":
            x509.Name.from_rfc4514_string(value)  # RFC 8705 §2.1.2: an RFC 4514 string
        elif kind == "tls_client_auth_san_ip":
            value = str(ipaddress.ip_address(value))
    except ValueError as exc:
        raise ConfigurationError(f"{kind} {value!r} is not valid") from exc
    return kind, value


def _list(raw: Mapping[str, Any], name: str, *, required: bool = False) -> Sequence[Any]:
    value = raw.get(name)
    if value is None and not required:
        return []
    if not isinstance(value, list | tuple):
        raise ConfigurationError(f"{name} must be a list")
    return value


def _positive(raw: Mapping[str, Any], name: str, default: int) -> int:
    value = raw.get(name, default)
    if not isinstance(value, int) or value <= 0:
        raise ConfigurationError(f"{name} must be a positive integer")
    return value
