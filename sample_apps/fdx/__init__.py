"""An FDX-style open-finance API (FDX v6 paths and shapes) protected the FAPI way with
flask_apisec: mutual TLS, access tokens bound to the client certificate (RFC 8705), tokens
in the ``Authorization`` header only, PS256 / ES256 only, ``x-fapi-interaction-id`` on every
response, and optionally signed responses (FAPI 2.0 Message Signing).

Routes (every one needs a valid, certificate-bound token; scopes as listed)::

    GET    /fdx/v6/core/accounts                               accountbasic OR accountdetailed
    GET    /fdx/v6/core/accounts/{id}                          accountbasic OR accountdetailed
    GET    /fdx/v6/core/accounts/{id}/transactions             fdx:transactions:read
    GET    /fdx/v6/core/accounts/{id}/contact                  fdx:customercontact:read
                                                               (+ fdx:customerpersonal:read)
    GET    /fdx/v6/core/accounts/{id}/payment-networks         fdx:paymentsupport:read
    GET    /fdx/v6/core/accounts/{id}/asset-transfer-networks  fdx:paymentsupport:read
    (the same six under /fdx/v6/accounts..., the FDX v6 server base)
    GET    /fdx/v6/consents/{id}                               none (own consents only)
    PUT    /fdx/v6/consents/{id}/revocation                    none (own consents only)
    GET    /fdx/v6/consents/{id}/revocation                    none (own consents only)
    POST   /fdx/v6/notification-subscriptions                  fdx:notifications:subscribe
    GET    /fdx/v6/notification-subscriptions/{id}             fdx:notifications:subscribe
    DELETE /fdx/v6/notification-subscriptions/{id}             fdx:notifications:subscribe
    GET    /external/authentication/v1/resources/{id}          external:resources:read
    PATCH  /external/authentication/v1/resources/{id}          external:resources:write
    GET    /participant/user/v1/consents                       participantuser:consents:read
    GET    /participant/user/v1/consents/{id}                  participantuser:consents:read
    PATCH  /participant/user/v1/consents/{id}                  participantuser:consents:write

Configuration: see :mod:`sample_apps.fdx.config`. Run it with
``python -m sample_apps.fdx`` (with the sample authorization server, over mTLS).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Flask

from flask_apisec import APISec

from .config import FDXConfig, apisec_config, load_config
from .consents import consents, events
from .core import core
from .errors import FDXError, render
from .seed import seed_demo
from .solution import external, participant
from .storage import FDXStore

__all__ = ["FDXConfig", "FDXState", "create_app", "load_config"]


@dataclass(frozen=True)
class FDXState:
    """``app.extensions["fdx"]``."""

    config: FDXConfig
    store: FDXStore


def create_app(
    config: Mapping[str, Any] | str | Path | FDXConfig | None = None,
    *,
    clock: Callable[[], float] = time.time,
) -> Flask:
    """The FDX API for ``config`` (a dict, a JSON file path or an :class:`FDXConfig`).
    ``clock`` dates consents and revocations."""
    settings = config if isinstance(config, FDXConfig) else load_config(config)
    app = Flask(__name__)
    app.json.sort_keys = False  # type: ignore[attr-defined]  # FDX field order reads better
    app.config.update(apisec_config(settings))
    store = FDXStore(settings.database, clock)
    if settings.seed and store.is_empty():
        seed_demo(store)
    app.extensions["fdx"] = FDXState(settings, store)
    app.register_blueprint(core, url_prefix="/fdx/v6/core")
    app.register_blueprint(core, url_prefix="/fdx/v6", name="fdx_core_v6")
    app.register_blueprint(consents, url_prefix="/fdx/v6")
    app.register_blueprint(events, url_prefix="/fdx/v6")
    app.register_blueprint(external, url_prefix="/external/authentication/v1")
    app.register_blueprint(participant, url_prefix="/participant/user/v1")
    app.register_error_handler(FDXError, render)
    # sign_responses: every answer of every protected route, refusals included, carries a
    # FAPI 2.0 response signature (RFC 9421, tag "fapi-2-response", linked with ;req).
    APISec(app, sign_responses="fapi2" if settings.sign_responses else False)
    return app
