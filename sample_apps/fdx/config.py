"""The FDX sample's settings: a plain dict checked once at start, and the ``APISEC_*`` keys
it turns into.

Every key, with its default::

    {
      "issuer": "https://127.0.0.1:8443",     # the authorization server (iss of tokens)
      "jwks_uri": null,                        # null: issuer + "/jwks" (the sample AS)
      "jwks": null,                            # inline JWKS instead of jwks_uri
      "ca_file": null,                         # CA bundle (PEM path) trusted instead of the
                                               # system store when fetching jwks_uri
      "audience": "urn:flask-apisec:sample-api",
      "algorithms": ["PS256", "ES256"],        # FAPI 1.0 Advanced §8.6
      "trusted_proxies": [],                   # peers whose Client-Cert header is trusted
      "database": ":memory:",                  # SQLite path
      "seed": true,                            # load the demo data into an empty database
      "sign_responses": false,                 # FAPI 2.0 (RFC 9421) response signatures
      "signing_key": null,                     # PrivateKey, private JWK, PEM or PEM path;
                                               # null + sign_responses: a fresh ES256 key
      "resource": null                         # RFC 9728 resource id (metadata document)
    }
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sample_apps.config import DEMO_AUDIENCE
from wsgi_apisec.errors import ConfigurationError
from wsgi_apisec.fetch import UrlFetcher
from wsgi_apisec.keys import PrivateKey

__all__ = ["DEFAULTS", "FDXConfig", "apisec_config", "load_config"]

DEFAULTS: Mapping[str, Any] = {
    "issuer": "https://127.0.0.1:8443",
    "jwks_uri": None,
    "jwks": None,
    "ca_file": None,
    "audience": DEMO_AUDIENCE,
    "algorithms": ("PS256", "ES256"),
    "trusted_proxies": (),
    "database": ":memory:",
    "seed": True,
    "sign_responses": False,
    "signing_key": None,
    "resource": None,
}
#: FAPI 1.0 Advanced §8.6: PS256 or ES256 only (no RS256, no "none").
_FAPI1_ALGORITHMS = frozenset({"PS256", "ES256"})


@dataclass(frozen=True)
class FDXConfig:
    issuer: str
    jwks_uri: str | None
    jwks: Mapping[str, Any] | None = field(repr=False)
    ca_file: str | None
    audience: str
    algorithms: tuple[str, ...]
    trusted_proxies: tuple[str, ...]
    database: str
    seed: bool
    sign_responses: bool
    signing_key: Any = field(repr=False)
    resource: str | None


def load_config(source: Mapping[str, Any] | str | Path | None = None) -> FDXConfig:
    """Settings from a dict or a JSON file; :class:`ConfigurationError` when they are wrong."""
    raw: Mapping[str, Any]
    if source is None:
        raw = {}
    elif isinstance(source, str | Path):
        raw = json.loads(Path(source).read_text())
    else:
        raw = source
    unknown = sorted(set(raw) - set(DEFAULTS))
    if unknown:
        raise ConfigurationError(f"fdx: unknown setting(s) {', '.join(map(str, unknown))}")
    values = {**DEFAULTS, **raw}
    algorithms = _strings(values["algorithms"], "algorithms")
    if not algorithms or not set(algorithms) <= _FAPI1_ALGORITHMS:
        raise ConfigurationError("fdx: algorithms must be PS256 and/or ES256 (FAPI 1.0 §8.6)")
    if values["jwks"] is not None and values["jwks_uri"] is not None:
        raise ConfigurationError("fdx: give jwks or jwks_uri, not both")
    if values["ca_file"] is not None and values["jwks"] is not None:
        raise ConfigurationError("fdx: ca_file is set but the JWKS is inline (nothing is fetched)")
    for flag in ("seed", "sign_responses"):
        if not isinstance(values[flag], bool):
            raise ConfigurationError(f"fdx: {flag} must be true or false")
    if values["signing_key"] is not None and not values["sign_responses"]:
        raise ConfigurationError("fdx: signing_key is set but sign_responses is false")
    issuer = _text(values["issuer"], "issuer")
    return FDXConfig(
        issuer=issuer,
        jwks_uri=values["jwks_uri"],
        jwks=values["jwks"],
        ca_file=_ca_file(values["ca_file"]),
        audience=_text(values["audience"], "audience"),
        algorithms=algorithms,
        trusted_proxies=_strings(values["trusted_proxies"], "trusted_proxies"),
        database=_text(values["database"], "database"),
        seed=values["seed"],
        sign_responses=values["sign_responses"],
        signing_key=values["signing_key"],
        resource=values["resource"],
    )


def apisec_config(config: FDXConfig) -> dict[str, Any]:
    """The ``APISEC_*`` keys for ``config``: FAPI on, tokens bound to the client certificate."""
    issuer: dict[str, Any] = {
        "issuer": config.issuer,
        "audience": config.audience,
        "algorithms": list(config.algorithms),
    }
    if config.jwks is not None:
        issuer["jwks"] = config.jwks
    else:
        issuer["jwks_uri"] = config.jwks_uri or config.issuer.rstrip("/") + "/jwks"
        if config.ca_file is not None:
            issuer["jwks_options"] = {"fetcher": _ca_fetcher(config.ca_file)}
    settings: dict[str, Any] = {
        "APISEC_ISSUERS": [issuer],
        # FAPI 1.0 Advanced §6.2.1: header-only tokens, sender-constrained tokens, and
        # x-fapi-interaction-id on every response (Baseline §6.2.1-11).
        "APISEC_FAPI": True,
        "APISEC_REQUIRE_BOUND_TOKENS": True,
        "APISEC_TRUSTED_PROXIES": list(config.trusted_proxies),
    }
    if config.sign_responses:
        # The extension publishes the public half at /.well-known/jwks.json.
        settings["APISEC_SIGNING_KEY"] = config.signing_key or _fresh_key()
    if config.resource is not None:
        settings["APISEC_RESOURCE"] = config.resource
    return settings


def _fresh_key() -> PrivateKey:
    key = PrivateKey.generate("ES256")
    return PrivateKey.from_key(key.key, kid=key.thumbprint(), algorithms=["ES256"])


def _ca_file(value: Any) -> str | None:
    """A readable CA bundle's path (checked now, so a wrong path fails at start)."""
    if value is None:
        return None
    if not isinstance(value, str | os.PathLike):
        raise ConfigurationError("fdx: ca_file must be a path")
    _ca_fetcher(os.fspath(value))
    return os.fspath(value)


def _ca_fetcher(ca_file: str) -> UrlFetcher:
    """Fetch over TLS trusting ``ca_file`` only (it replaces the system store)."""
    try:
        return UrlFetcher.trusting(ca_file)
    except ConfigurationError as exc:
        raise ConfigurationError(f"fdx: {exc.description}") from exc


def _text(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigurationError(f"fdx: {name} must be a non-empty string")
    return value


def _strings(value: Any, name: str) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise ConfigurationError(f"fdx: {name} must be a list of strings")
    if not all(isinstance(item, str) and item for item in value):
        raise ConfigurationError(f"fdx: {name} must be a list of strings")
    return tuple(value)
