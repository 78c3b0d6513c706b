"""The mapper's configuration: every key, its default, and the checks made at start-up.

A misspelt key, a value of the wrong type, a signing key that cannot sign under the chosen
profile or a callback prefix that would let a sender reach another host is a
:class:`~wsgi_apisec.errors.ConfigurationError` when the app is built, never while serving.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from flask_apisec.config import load_signing_key
from wsgi_apisec import profiles
from wsgi_apisec.errors import ConfigurationError
from wsgi_apisec.fetch import check_url
from wsgi_apisec.keys import PrivateKey
from wsgi_apisec.registry import RegistryResolver
from wsgi_apisec.resolvers import KeyResolver
from wsgi_apisec.signatures import Profile

from .callbacks import CallbackSender, RequestsSender

__all__ = ["DEFAULTS", "MapperSettings", "load_settings", "mapper_profile"]

#: Every key and its default (``None`` for the required ones: ``issuers``, ``signing_key``
#: and one of ``registry_url`` / ``key_resolver``).
DEFAULTS: Mapping[str, Any] = {
    "mapper_id": "g2p-mapper",
    "signature_profile": "g2p_connect",
    "issuers": None,
    "audience": None,
    "cert_bound": True,
    "registry_url": None,
    "key_resolver": None,
    "signing_key": None,
    "database": ":memory:",
    "replay_store": "memory",
    "versions": ("1.0.0",),
    "message_ts_max_age": 600.0,
    "clock_skew": 30.0,
    "max_items": 100,
    "callback_prefixes": {},
    "callback_sender": None,
    "client_cert": None,
    "ca_file": None,
    "callback_timeout": 5.0,
    "callback_retries": 2,
    "callback_backoff": 0.5,
    "callback_queue_size": 100,
    "clock": time.time,
    "apisec": {},
}

_SIGNING_ALG = {"g2p_connect": "ed25519", "openg2p": "RS256"}


@dataclass(frozen=True)
class MapperSettings:
    mapper_id: str
    profile: Profile
    issuers: tuple[Mapping[str, Any], ...]
    audience: str | None
    cert_bound: bool
    key_resolver: KeyResolver
    signing_key: PrivateKey
    database: str
    replay_store: Any
    versions: frozenset[str]
    message_ts_max_age: float
    clock_skew: float
    max_items: int
    callback_prefixes: Mapping[str, tuple[str, ...]]
    callback_sender: CallbackSender
    callback_retries: int
    callback_backoff: float
    callback_queue_size: int
    clock: Callable[[], float]
    apisec: Mapping[str, Any]

    def apisec_config(self) -> dict[str, Any]:
        """The ``APISEC_*`` keys the mapper runs flask_apisec with."""
        base = {
            "APISEC_ISSUERS": list(self.issuers),
            "APISEC_AUDIENCE": self.audience,
            "APISEC_SIGNATURE_PROFILE": self.profile,
            "APISEC_SIGNATURE_KEYS": self.key_resolver,
            "APISEC_SIGNING_KEY": self.signing_key,
            "APISEC_REPLAY_STORE": self.replay_store,
        }
        return {**base, **self.apisec}


def mapper_profile(name: str, mapper_id: str) -> Profile:
    """The request profile, set up so the mapper can also sign with it (responses and
    callbacks) and so every refusal is a G2P ``{"errors": [...]}`` envelope."""
    if name == "g2p_connect":
        options = {**profiles.G2P_CONNECT.options, "sender_id": mapper_id}
        return profiles.G2P_CONNECT.replace(options=options)
    if name == "openg2p":
        return profiles.OPENG2P.replace(envelope=profiles.g2p_envelope)
    raise ConfigurationError("signature_profile must be 'g2p_connect' or 'openg2p'")


def load_settings(config: Mapping[str, Any]) -> MapperSettings:
    unknown = sorted(set(config) - set(DEFAULTS))
    if unknown:
        raise ConfigurationError(f"g2p_mapper: unknown config key(s) {', '.join(unknown)}")
    raw = {**DEFAULTS, **config}
    mapper_id = _text(raw, "mapper_id")
    name = _text(raw, "signature_profile")
    profile = mapper_profile(name, mapper_id)
    return MapperSettings(
        mapper_id=mapper_id,
        profile=profile,
        issuers=_issuers(raw["issuers"]),
        audience=raw["audience"],
        cert_bound=_flag(raw, "cert_bound"),
        key_resolver=_resolver(raw, name),
        signing_key=_signing_key(raw["signing_key"], name),
        database=_text(raw, "database"),
        replay_store=raw["replay_store"],
        versions=frozenset(_strings(raw["versions"], "versions")),
        message_ts_max_age=_number(raw, "message_ts_max_age"),
        clock_skew=_number(raw, "clock_skew"),
        max_items=int(_number(raw, "max_items", integer=True)),
        callback_prefixes=_prefixes(raw["callback_prefixes"]),
        callback_sender=_sender(raw),
        callback_retries=int(_number(raw, "callback_retries", integer=True)),
        callback_backoff=_number(raw, "callback_backoff"),
        callback_queue_size=max(1, int(_number(raw, "callback_queue_size", integer=True))),
        clock=_callable(raw, "clock"),
        apisec=_mapping(raw["apisec"], "apisec"),
    )


def _text(raw: Mapping[str, Any], name: str) -> str:
    value = raw[name]
    if not isinstance(value, str) or not value:
        raise ConfigurationError(f"g2p_mapper: {name} must be a non-empty string")
    return value


def _flag(raw: Mapping[str, Any], name: str) -> bool:
    if not isinstance(raw[name], bool):
        raise ConfigurationError(f"g2p_mapper: {name} must be True or False")
    return bool(raw[name])


def _number(raw: Mapping[str, Any], name: str, *, integer: bool = False) -> float:
    value = raw[name]
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or value < 0:
        raise ConfigurationError(f"g2p_mapper: {name} must be a number >= 0")
    return float(value)


def _callable(raw: Mapping[str, Any], name: str) -> Callable[[], float]:
    value = raw[name]
    if not callable(value):
        raise ConfigurationError(f"g2p_mapper: {name} must be callable")
    clock: Callable[[], float] = value
    return clock


def _mapping(value: Any, name: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigurationError(f"g2p_mapper: {name} must be a dict")
    return dict(value)


def _strings(value: Any, name: str) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise ConfigurationError(f"g2p_mapper: {name} must be a list of strings")
    if not value or not all(isinstance(v, str) and v for v in value):
        raise ConfigurationError(f"g2p_mapper: {name} must be a list of strings")
    return tuple(value)


def _issuers(value: Any) -> tuple[Mapping[str, Any], ...]:
    # Partner tokens are always required: without an issuer every route would be refused.
    if not isinstance(value, list | tuple) or not value:
        raise ConfigurationError("g2p_mapper: issuers must list the APISEC_ISSUERS entries")
    return tuple(_mapping(entry, "issuers[]") for entry in value)


def _resolver(raw: Mapping[str, Any], profile: str) -> KeyResolver:
    injected = raw["key_resolver"]
    if injected is not None:
        if not callable(getattr(injected, "resolve", None)):
            raise ConfigurationError("g2p_mapper: key_resolver must be a KeyResolver")
        resolver: KeyResolver = injected
        return resolver
    url = raw["registry_url"]
    if not isinstance(url, str) or not url:
        raise ConfigurationError("g2p_mapper: set registry_url (or key_resolver)")
    if profile == "openg2p":
        return RegistryResolver.openg2p(url)
    # G2P Connect: the sender's whole JWKS, where its Ed25519 key sits next to others.
    return RegistryResolver.g2p_connect(url)


def _signing_key(value: Any, profile: str) -> PrivateKey:
    if value is None:
        raise ConfigurationError("g2p_mapper: signing_key (the mapper's private key) is required")
    key = load_signing_key(value, None)
    if key is None or not key.allows(_SIGNING_ALG[profile]):
        raise ConfigurationError(
            f"g2p_mapper: signing_key cannot sign {profile} messages ({_SIGNING_ALG[profile]})"
        )
    return key


def _prefixes(value: Any) -> Mapping[str, tuple[str, ...]]:
    table = _mapping(value, "callback_prefixes")
    return {str(sender): tuple(map(_prefix, _strings(p, sender))) for sender, p in table.items()}


def _prefix(prefix: str) -> str:
    """An https URL (http only on loopback) ending in ``/``, without query or fragment."""
    try:
        check_url(prefix)
    except ConfigurationError as exc:
        raise ConfigurationError(f"g2p_mapper: callback prefix: {exc.description}") from exc
    parts = urlsplit(prefix)
    # Without the final "/", "https://a.example" would also let "https://a.example.evil.test"
    # through: only whole path segments may follow a prefix.
    if not prefix.endswith("/") or parts.query or parts.fragment:
        raise ConfigurationError(
            f"g2p_mapper: callback prefix {prefix!r} must end in '/' (no query or fragment)"
        )
    return prefix


def _sender(raw: Mapping[str, Any]) -> CallbackSender:
    injected = raw["callback_sender"]
    if injected is not None:
        if not callable(getattr(injected, "send", None)):
            raise ConfigurationError("g2p_mapper: callback_sender must be a CallbackSender")
        sender: CallbackSender = injected
        return sender
    cert = raw["client_cert"]
    if cert is not None and not (
        isinstance(cert, list | tuple) and len(cert) == 2 and all(isinstance(p, str) for p in cert)
    ):
        raise ConfigurationError("g2p_mapper: client_cert must be [cert_path, key_path]")
    ca_file = raw["ca_file"]
    if ca_file is not None and not isinstance(ca_file, str):
        raise ConfigurationError("g2p_mapper: ca_file must be a path")
    return RequestsSender(
        client_cert=(cert[0], cert[1]) if cert is not None else None,
        ca_file=ca_file,
        timeout=_number(raw, "callback_timeout"),
    )
