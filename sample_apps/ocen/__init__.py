"""An OCEN 4.0 lender: a few loan-application APIs a loan agent (LSP) calls, behind
flask_apisec with the OCEN profile.

Routes (JSON; each needs a bearer token with scope ``ocen:loan-applications`` and a request
signature; every answer of the app is signed with the lender's key)::

    POST /ocen/v4/loan-applications                          CreateLoanApplicationRequest
    GET  /ocen/v4/loan-applications/{id}                     LoanApplicationStatus
    POST /ocen/v4/loan-applications/{id}/offers              GenerateOffersRequest
    PUT  /ocen/v4/loan-applications/{id}/selected-offer      SetOfferRequest
    GET  /health                                             unprotected

What flask_apisec checks before a view runs, in this order: the access token (a JWT of the
configured issuer; OCEN's Keycloak sends ``typ: JWT``, so the issuer accepts it; claims
``exp iat iss sub participantId``, and ``aud`` when an audience is configured), the scope,
then the ``x-jws-signature`` (detached JWS, RS256, ``b64: false``) with the key the
participant registry lists for the *verified* token's ``participantId``; GET requests sign
their path and query. A signed request with a body is accepted once (replay store).

Config, with defaults::

    {
      "issuer": ...,                      # required: the auth server's exact "iss"
      "jwks_uri": issuer + "/jwks",       # its JWKS (or give "jwks": an inline JWKS)
      "audience": "urn:flask-apisec:sample-api",   # None: no aud check (OCEN documents none)
      "registry_url": ...,                # OCEN registry base URL (this or key_resolver)
      "key_resolver": None,               # a KeyResolver for callers' keys instead of the
                                          #   registry (a StaticKeyResolver, a test double)
      "ca_file": None,                    # CA bundle (PEM path) trusted instead of the
                                          #   system store for jwks_uri and registry_url
      "signing_key": ...,                 # required: the lender's RS256 private key
                                          #   (PrivateKey, private JWK, PEM or PEM path)
      "signing_kid": None,                # kid put on response signatures (default: the key's)
      "participant_id": "lender-1",       # this lender, in response metadata
      "database": ":memory:",             # SQLite path for applications
      "replay_store": "memory",           # APISEC_REPLAY_STORE URL (sqlite:///, redis://)
    }
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from flask import Flask

from flask_apisec import APISec
from sample_apps.config import DEMO_AUDIENCE
from wsgi_apisec.errors import ConfigurationError
from wsgi_apisec.fetch import Fetcher, UrlFetcher
from wsgi_apisec.registry import RegistryResolver
from wsgi_apisec.resolvers import KeyResolver

from .store import LoanStore
from .views import LenderState, blueprint

__all__ = ["DEFAULTS", "create_app"]

#: Every config key and its default (``None`` under a required key: it must be given).
DEFAULTS: Mapping[str, Any] = {
    "issuer": None,
    "jwks_uri": None,
    "jwks": None,
    "audience": DEMO_AUDIENCE,
    "registry_url": None,
    "key_resolver": None,
    "ca_file": None,
    "signing_key": None,
    "signing_kid": None,
    "participant_id": "lender-1",
    "database": ":memory:",
    "replay_store": "memory",
}
_REQUIRED = ("issuer", "signing_key")
#: OCEN tokens (PROTOCOLS.md): exp iat iss sub, plus participantId, which names the signer.
_OCEN_CLAIMS = ("exp", "iat", "iss", "sub", "participantId")


def create_app(config: Mapping[str, Any]) -> Flask:
    """The lender app for ``config`` (see the module docstring for the keys)."""
    settings = _settings(config)
    fetcher = _fetcher(settings["ca_file"])
    app = Flask(__name__)
    app.config.update(
        APISEC_ISSUERS=[_issuer(settings, fetcher)],
        APISEC_SIGNATURE_PROFILE="ocen",
        APISEC_SIGNATURE_KEYS=_key_resolver(settings, fetcher),
        APISEC_SIGNING_KEY=settings["signing_key"],
        APISEC_SIGNING_KID=settings["signing_kid"],
        APISEC_REPLAY_STORE=settings["replay_store"],
    )
    APISec(app)
    store = LoanStore(str(settings["database"]))
    app.extensions["ocen"] = LenderState(store, str(settings["participant_id"]))
    app.register_blueprint(blueprint)

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    return app


def _settings(config: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(config) - set(DEFAULTS))
    if unknown:
        raise ConfigurationError(f"ocen lender: unknown config key(s) {', '.join(unknown)}")
    settings = {**DEFAULTS, **config}
    missing = [name for name in _REQUIRED if not settings[name]]
    if missing:
        raise ConfigurationError(f"ocen lender: config needs {', '.join(missing)}")
    if settings["jwks"] is not None and settings["jwks_uri"] is not None:
        raise ConfigurationError("ocen lender: give jwks_uri or jwks, not both")
    if (settings["registry_url"] is None) == (settings["key_resolver"] is None):
        raise ConfigurationError("ocen lender: give registry_url or key_resolver (one of them)")
    fetches = settings["registry_url"] is not None or settings["jwks"] is None
    if settings["ca_file"] is not None and not fetches:  # a CA for nothing: surely a mistake
        raise ConfigurationError("ocen lender: ca_file is set but nothing is fetched")
    return settings


def _fetcher(ca_file: Any) -> Fetcher | None:
    """Key documents fetched over TLS trusting ``ca_file`` only (``None``: the system store)."""
    if ca_file is None:
        return None
    if not isinstance(ca_file, str | os.PathLike):
        raise ConfigurationError("ocen lender: ca_file must be a path")
    try:
        return UrlFetcher.trusting(ca_file)
    except ConfigurationError as exc:
        raise ConfigurationError(f"ocen lender: {exc.description}") from exc


def _key_resolver(settings: Mapping[str, Any], fetcher: Fetcher | None) -> KeyResolver:
    injected = settings["key_resolver"]
    if injected is not None:
        if not callable(getattr(injected, "resolve", None)):
            raise ConfigurationError("ocen lender: key_resolver must be a KeyResolver")
        resolver: KeyResolver = injected
        return resolver
    # The caller's key: GET {registry}/participant-roles/{participantId}, cached.
    return RegistryResolver.ocen(str(settings["registry_url"]), fetcher=fetcher)


def _issuer(settings: Mapping[str, Any], fetcher: Fetcher | None) -> dict[str, Any]:
    """The ``APISEC_ISSUERS`` entry for the network's auth server."""
    audience = settings["audience"]
    entry: dict[str, Any] = {
        "issuer": settings["issuer"],
        # OCEN's auth service (Keycloak) sends typ "JWT", not RFC 9068's "at+jwt".
        "allow_jwt_typ": True,
        "required_claims": _OCEN_CLAIMS + (("aud",) if audience else ()),
        "audience": audience,
    }
    if settings["jwks"] is not None:
        entry["jwks"] = settings["jwks"]
    else:
        entry["jwks_uri"] = settings["jwks_uri"] or str(settings["issuer"]).rstrip("/") + "/jwks"
        if fetcher is not None:
            entry["jwks_options"] = {"fetcher": fetcher}
    return entry
