"""``APISEC_*`` configuration: read once at ``init_app``, checked, turned into :class:`Settings`.

Every key has a default (:data:`DEFAULTS`); a key that is misspelt, of the wrong type or
that contradicts another is a :class:`~wsgi_apisec.errors.ConfigurationError` at start-up,
never a surprise while serving. Overrides given to ``APISec(app, **overrides)`` use the
key without its prefix, in lower case (``fapi=True`` for ``APISEC_FAPI``), and win.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from wsgi_apisec import profiles
from wsgi_apisec.certs import CLIENT_CERT, ClientCertSource
from wsgi_apisec.dpop import DEFAULT_ALGORITHMS as DPOP_ALGORITHMS
from wsgi_apisec.dpop import HMACNonceSource, NonceSource
from wsgi_apisec.environ import DEFAULT_MAX_BODY
from wsgi_apisec.errors import APISecError, ConfigurationError, ParseError
from wsgi_apisec.fetch import check_url
from wsgi_apisec.introspection import Introspection
from wsgi_apisec.jwks import JWKSResolver
from wsgi_apisec.keys import KeySet, PrivateKey
from wsgi_apisec.registry import RegistryResolver
from wsgi_apisec.replay import ReplayStore, replay_store_from_url
from wsgi_apisec.resolvers import KeyResolver, StaticKeyResolver
from wsgi_apisec.signatures import Profile
from wsgi_apisec.tokens import Issuer

__all__ = ["DEFAULTS", "FAPI_ALGORITHMS", "PREFIX", "Settings", "load_settings"]

PREFIX = "APISEC_"

#: FAPI 1.0 Advanced §8.6 allows PS256 and ES256; FAPI 2.0 Security Profile §5.4 adds EdDSA.
FAPI_ALGORITHMS = frozenset({"PS256", "ES256", "EdDSA", "Ed25519"})

#: Every key (without the prefix) and its default.
DEFAULTS: Mapping[str, Any] = {
    "ISSUERS": (),
    "INTROSPECTION": None,
    "AUDIENCE": None,
    "LEEWAY": 30.0,
    "TOKEN_CACHE": True,
    "REQUIRE_BOUND_TOKENS": False,
    "FAPI": False,
    "TOKEN_IN_QUERY": False,
    "TOKEN_IN_FORM": False,
    "TRUSTED_PROXIES": (),
    "CLIENT_CERT_HEADERS": (CLIENT_CERT,),
    "DPOP_ALGORITHMS": DPOP_ALGORITHMS,
    "DPOP_NONCE": False,
    "SIGNATURE_PROFILE": None,
    "SIGNATURE_KEYS": None,
    "SIGNING_KEY": None,
    "SIGNING_KID": None,
    "SIGN_RESPONSES": False,
    "REPLAY_STORE": "memory",
    "MAX_BODY": DEFAULT_MAX_BODY,
    "REALM": None,
    "RESOURCE": None,
    "AUTHORIZATION_SERVERS": None,
    "JWKS_PATH": "/.well-known/jwks.json",
}

_ISSUER_KEYS = frozenset(
    {"issuer", "jwks_uri", "jwks", "audience", "algorithms", "typ", "allow_jwt_typ"}
    | {"required_claims", "leeway", "max_age", "accept_scp", "jwks_options"}
)
_INTROSPECTION_KEYS = frozenset(
    {"endpoint", "client_id", "client_secret", "auth_method", "issuer", "audience", "leeway"}
    | {"ttl", "negative_ttl", "cache_size", "timeout", "allow_http"}
)


@dataclass(frozen=True)
class Settings:
    """The checked configuration one app runs with."""

    issuers: tuple[Issuer, ...]
    introspection: Introspection | None
    token_cache: bool | int
    require_bound: bool
    fapi: bool
    allow_query: bool
    allow_form: bool
    cert_source: ClientCertSource
    dpop_algorithms: tuple[str, ...]
    dpop_nonce: NonceSource | None
    signature_profile: Profile | None
    signature_keys: KeyResolver | None
    signing_key: PrivateKey | None
    #: ``APISEC_SIGN_RESPONSES``: the profile that signs the responses of every protected
    #: view without a ``@require_signature`` of its own (``None``: off).
    response_profile: Profile | None
    replay_store: ReplayStore
    max_body: int
    realm: str | None
    resource: str | None
    authorization_servers: tuple[str, ...]
    jwks_path: str


def _merge(config: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    unknown = [k for k in config if k.startswith(PREFIX) and k[len(PREFIX) :] not in DEFAULTS]
    unknown += [f"{k}=" for k in overrides if k.upper() not in DEFAULTS]
    if unknown:
        raise ConfigurationError(f"unknown flask-apisec setting(s): {', '.join(sorted(unknown))}")
    values = {name: config.get(PREFIX + name, default) for name, default in DEFAULTS.items()}
    values.update({k.upper(): v for k, v in overrides.items()})
    return values


def _bool(values: Mapping[str, Any], name: str) -> bool:
    value = values[name]
    if not isinstance(value, bool):
        raise ConfigurationError(f"{PREFIX}{name} must be True or False, not {value!r}")
    return value


def _number(values: Mapping[str, Any], name: str, *, integer: bool = False) -> float:
    value = values[name]
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or value < 0:
        kind = "an integer" if integer else "a number"
        raise ConfigurationError(f"{PREFIX}{name} must be {kind} >= 0, not {value!r}")
    return float(value)


def _optional_str(values: Mapping[str, Any], name: str) -> str | None:
    value = values[name]
    if value is not None and (not isinstance(value, str) or not value):
        raise ConfigurationError(f"{PREFIX}{name} must be a non-empty string")
    return value


def _strings(value: Any, what: str) -> tuple[str, ...]:
    # A lone string would otherwise be read letter by letter.
    if isinstance(value, str):
        value = (value,)
    if not isinstance(value, Sequence) or not all(isinstance(v, str) and v for v in value):
        raise ConfigurationError(f"{what} must be a list of strings")
    return tuple(value)


def _table(value: Any, allowed: frozenset[str], what: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigurationError(f"{what} must be a dict, not {type(value).__name__}")
    extra = sorted(set(value) - allowed)
    if extra:
        raise ConfigurationError(f"{what}: unknown key(s) {', '.join(map(str, extra))}")
    return dict(value)


def _issuers(values: Mapping[str, Any], fapi: bool) -> tuple[Issuer, ...]:
    raw = values["ISSUERS"]
    if isinstance(raw, Mapping) or not isinstance(raw, Sequence):
        raise ConfigurationError(f"{PREFIX}ISSUERS must be a list of dicts")
    issuers, leeway = [], _number(values, "LEEWAY")
    for index, entry in enumerate(raw):
        what = f"{PREFIX}ISSUERS[{index}]"
        options = _table(entry, _ISSUER_KEYS, what)
        options.setdefault("audience", values["AUDIENCE"])
        options.setdefault("leeway", leeway)
        if fapi:
            options.setdefault("algorithms", ("PS256", "ES256", "EdDSA"))
            if not set(_strings(options["algorithms"], f"{what} algorithms")) <= FAPI_ALGORITHMS:
                raise ConfigurationError(f"{what}: FAPI allows only PS256, ES256 and EdDSA")
        try:
            issuers.append(Issuer(**options))
        except APISecError as exc:
            raise ConfigurationError(f"{what}: {exc.description}") from exc
        except TypeError as exc:  # e.g. a missing 'issuer'
            raise ConfigurationError(f"{what}: {exc}") from exc
    return tuple(issuers)


def _introspection(values: Mapping[str, Any]) -> Introspection | None:
    raw = values["INTROSPECTION"]
    if raw is None:
        return None
    options = _table(raw, _INTROSPECTION_KEYS, f"{PREFIX}INTROSPECTION")
    options.setdefault("audience", values["AUDIENCE"])
    options.setdefault("leeway", values["LEEWAY"])
    try:
        return Introspection(**options)
    except TypeError as exc:
        raise ConfigurationError(f"{PREFIX}INTROSPECTION: {exc}") from exc


def _dpop_nonce(value: Any) -> NonceSource | None:
    """``False``: no nonces; ``True``: nonces from a random per-process secret; a str or
    bytes of at least 32 bytes: a secret shared by every worker (RFC 9449 §9)."""
    if value is False or value is None:
        return None
    if value is True:
        return HMACNonceSource()
    if isinstance(value, str):
        value = value.encode("utf-8")
    if isinstance(value, bytes):
        return HMACNonceSource(value)
    raise ConfigurationError(f"{PREFIX}DPOP_NONCE must be a bool or a secret of >= 32 bytes")


def _profile(value: Any) -> Profile | None:
    if value is None or isinstance(value, Profile):
        return value
    if not isinstance(value, str):
        raise ConfigurationError(f"{PREFIX}SIGNATURE_PROFILE must be a profile name")
    return profiles.get(value)


def _response_profile(
    value: Any, signature_profile: Profile | None, signing_key: PrivateKey | None
) -> Profile | None:
    """``APISEC_SIGN_RESPONSES``: ``False``; ``True`` (``APISEC_SIGNATURE_PROFILE``); or a
    profile (name) of its own, such as ``"fapi2"`` for FAPI 2.0 response signing."""
    if value is False or value is None:
        return None
    what = f"{PREFIX}SIGN_RESPONSES"
    if value is True and signature_profile is None:
        raise ConfigurationError(f"{what}=True signs with {PREFIX}SIGNATURE_PROFILE: set it")
    if not isinstance(value, bool | str | Profile):
        raise ConfigurationError(f"{what} must be True, False, a profile name or a Profile")
    found = signature_profile if value is True else _profile(value)
    if signing_key is None:
        raise ConfigurationError(f"{what} needs {PREFIX}SIGNING_KEY")
    return found


def _check_signing_key(profile: Profile | None, key: PrivateKey | None) -> None:
    """Refuse at start-up a signing key that cannot sign ``profile``'s responses."""
    if profile and key and profile.sign_alg and not key.allows(profile.sign_alg):
        raise ConfigurationError(
            f"{PREFIX}SIGNING_KEY cannot sign {profile.name} responses ({profile.sign_alg})"
        )


def _replay_store(value: Any) -> ReplayStore:
    if isinstance(value, str):
        return replay_store_from_url(value)
    if callable(getattr(value, "add", None)):
        store: ReplayStore = value
        return store
    raise ConfigurationError(f"{PREFIX}REPLAY_STORE must be a URL or a ReplayStore")


def _resource(value: str | None) -> str | None:
    if value is None:
        return None
    # RFC 9728 §1.2: an https URL without fragment (and here, without query).
    check_url(value)
    parts = urlsplit(value)
    if parts.query or parts.fragment:
        raise ConfigurationError(f"{PREFIX}RESOURCE must have no query or fragment")
    return value


def _path(value: Any) -> str:
    if not isinstance(value, str) or not value.startswith("/") or "?" in value:
        raise ConfigurationError(f"{PREFIX}JWKS_PATH must be a path starting with '/'")
    return value


def _transport(values: Mapping[str, Any], explicit: set[str]) -> tuple[bool, bool, bool, bool]:
    """(fapi, require_bound, allow_query, allow_form) and the rules that tie them."""
    fapi = _bool(values, "FAPI")
    query, form = _bool(values, "TOKEN_IN_QUERY"), _bool(values, "TOKEN_IN_FORM")
    bound = _bool(values, "REQUIRE_BOUND_TOKENS")
    if fapi and (query or form):
        # FAPI 1.0 Baseline §6.2.1-1: access tokens only in the Authorization header
        # (RFC 6750 §2.1), never in the query or the body.
        raise ConfigurationError("APISEC_FAPI accepts tokens in the Authorization header only")
    if fapi and "REQUIRE_BOUND_TOKENS" in explicit and not bound:
        # FAPI 1.0 Advanced §6.2.1-1 / FAPI 2.0 §5.3.4: only sender-constrained tokens.
        raise ConfigurationError("APISEC_FAPI requires sender-constrained tokens")
    return fapi, bound or fapi, query, form


def load_settings(config: Mapping[str, Any], overrides: Mapping[str, Any]) -> Settings:
    """Read every ``APISEC_*`` key of ``config`` (a Flask ``app.config``) once."""
    values = _merge(config, overrides)
    explicit = {k.upper() for k in overrides} | {
        k[len(PREFIX) :] for k in config if k.startswith(PREFIX)
    }
    fapi, bound, query, form = _transport(values, explicit)
    proxies = _strings(values["TRUSTED_PROXIES"], f"{PREFIX}TRUSTED_PROXIES")
    forms = _strings(values["CLIENT_CERT_HEADERS"], f"{PREFIX}CLIENT_CERT_HEADERS")
    issuers = _issuers(values, fapi)
    servers = values["AUTHORIZATION_SERVERS"]
    profile = _profile(values["SIGNATURE_PROFILE"])
    signing_key = load_signing_key(values["SIGNING_KEY"], _optional_str(values, "SIGNING_KID"))
    responses = _response_profile(values["SIGN_RESPONSES"], profile, signing_key)
    for signs in (profile, responses):
        _check_signing_key(signs, signing_key)
    return Settings(
        issuers=issuers,
        introspection=_introspection(values),
        token_cache=_token_cache(values["TOKEN_CACHE"]),
        require_bound=bound,
        fapi=fapi,
        allow_query=query,
        allow_form=form,
        cert_source=ClientCertSource(trusted_proxies=proxies, header_forms=forms),
        dpop_algorithms=_strings(values["DPOP_ALGORITHMS"], f"{PREFIX}DPOP_ALGORITHMS"),
        dpop_nonce=_dpop_nonce(values["DPOP_NONCE"]),
        signature_profile=profile,
        signature_keys=load_resolver(values["SIGNATURE_KEYS"]),
        signing_key=signing_key,
        response_profile=responses,
        replay_store=_replay_store(values["REPLAY_STORE"]),
        max_body=int(_number(values, "MAX_BODY", integer=True)),
        realm=_optional_str(values, "REALM"),
        resource=_resource(_optional_str(values, "RESOURCE")),
        authorization_servers=(
            tuple(i.issuer for i in issuers)
            if servers is None
            else _strings(servers, f"{PREFIX}AUTHORIZATION_SERVERS")
        ),
        jwks_path=_path(values["JWKS_PATH"]),
    )


def _token_cache(value: Any) -> bool | int:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value >= 0:
        return value
    raise ConfigurationError(f"{PREFIX}TOKEN_CACHE must be a bool or a size >= 0")


# --- keys ------------------------------------------------------------------------------------


def load_resolver(value: Any) -> KeyResolver | None:
    """``APISEC_SIGNATURE_KEYS``: where the keys of signed requests come from.

    - a JWKS URI (``"https://..."``), or ``{"jwks_uri": ..., **JWKSResolver options}``;
    - an inline JWKS ``{"keys": [...]}``; or ``{"owners": {party_id: jwks}}`` for a fixed
      key per participant (what a registry would answer);
    - ``{"registry": base_url, "kind": "ocen" | "openg2p" | "g2p_connect", **options}``;
    - any :class:`~wsgi_apisec.resolvers.KeyResolver` object.
    """
    if value is None or callable(getattr(value, "resolve", None)):
        resolver: KeyResolver | None = value
        return resolver
    what = f"{PREFIX}SIGNATURE_KEYS"
    try:
        if isinstance(value, str):
            return JWKSResolver(value)
        if not isinstance(value, Mapping):
            raise ConfigurationError(f"{what} must be a URL, a dict or a KeyResolver")
        options = dict(value)
        if "keys" in options:
            return StaticKeyResolver(KeySet.from_jwks(options))
        if "owners" in options:
            owners = _table(options, frozenset({"owners"}), what)["owners"]
            return StaticKeyResolver(
                owners={str(k): KeySet.from_jwks(v) for k, v in owners.items()}
            )
        if "jwks_uri" in options:
            return JWKSResolver(options.pop("jwks_uri"), **options)
        if "registry" in options:
            base, kind = options.pop("registry"), options.pop("kind", "ocen")
            factories = {
                "ocen": RegistryResolver.ocen,
                "openg2p": RegistryResolver.openg2p,
                "g2p_connect": RegistryResolver.g2p_connect,
            }
            if kind not in factories:
                raise ConfigurationError(f"{what}: kind must be one of {sorted(factories)}")
            factory = factories[kind]
            return factory(base, **options)
    except TypeError as exc:
        raise ConfigurationError(f"{what}: {exc}") from exc
    except ParseError as exc:
        raise ConfigurationError(f"{what}: {exc.description}") from exc
    raise ConfigurationError(f"{what} needs one of keys, owners, jwks_uri or registry")


def load_signing_key(value: Any, kid: str | None) -> PrivateKey | None:
    """``APISEC_SIGNING_KEY``: a :class:`PrivateKey`, a private JWK (dict or JSON text),
    PEM text or bytes, or the path of a PEM file. ``APISEC_SIGNING_KID`` names it."""
    if value is None:
        if kid is not None:
            raise ConfigurationError(f"{PREFIX}SIGNING_KID is set but there is no signing key")
        return None
    try:
        key = _private_key(value)
    except ParseError as exc:
        raise ConfigurationError(f"{PREFIX}SIGNING_KEY: {exc.description}") from exc
    if key.kty == "oct":
        # The public half is published at the JWKS endpoint: a shared secret has none.
        raise ConfigurationError(f"{PREFIX}SIGNING_KEY must be an asymmetric key")
    return dataclasses.replace(key, kid=kid) if kid is not None else key


def _private_key(value: Any) -> PrivateKey:
    if isinstance(value, PrivateKey):
        return value
    if isinstance(value, Mapping):
        return PrivateKey.from_jwk(value)
    if isinstance(value, bytes):
        return PrivateKey.from_pem(value)
    if not isinstance(value, str | os.PathLike):
        raise ConfigurationError(f"{PREFIX}SIGNING_KEY must be a key, a JWK, PEM or a path")
    text = os.fspath(value)
    if text.lstrip().startswith("{"):
        return PrivateKey.from_jwk(text)
    if text.lstrip().startswith("-----BEGIN"):
        return PrivateKey.from_pem(text)
    try:
        with open(text, "rb") as pem:
            return PrivateKey.from_pem(pem.read())
    except OSError as exc:
        raise ConfigurationError(f"{PREFIX}SIGNING_KEY: cannot read {text!r}: {exc}") from exc
