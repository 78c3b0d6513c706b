"""A G2P Connect / OpenG2P SPAR ID-account mapper: ID (``token:12345@nid``) <-> financial
address (``account:123@bank``), protected by flask_apisec.

Routes (``POST``, JSON envelopes)::

    /mapper/sync/{link,resolve,update,unlink}   answer in the response envelope
    /mapper/{link,resolve,update,unlink}        ACK at once, result POSTed, signed, to
                                                {header.sender_uri}/on-{action}

Every route needs the partner's bearer token with scope ``mapper:<action>`` (bound to its
client certificate unless ``cert_bound`` is off) and a request signature under the
configured profile: G2P Connect (Ed25519, Beckn-style ``Signature`` header; default) or
OpenG2P (detached JWS, RS256, over canonical JSON). The signer's key is looked up by
``header.sender_id``, which must also be the token's ``client_id`` (or ``participantId``).
Responses, acknowledgements and callbacks are signed with the mapper's own key.

    app = create_app({
        "issuers": [{"issuer": "https://as.example", "jwks_uri": "https://as.example/jwks"}],
        "registry_url": "https://registry.example",
        "signing_key": "mapper-ed25519.pem",
        "callback_prefixes": {"g2p-partner": ["https://partner.example/g2p/"]},
    })

Every config key and its default is in :data:`settings.DEFAULTS` and in the README section
"G2P mapper sample".
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from flask import Flask, Response

from flask_apisec import APISec
from wsgi_apisec.signatures import ResponseSigner

from .callbacks import CallbackDispatcher, CallbackSender, Delivery, RequestsSender, callback_url
from .envelope import ACTIONS
from .settings import DEFAULTS, MapperSettings, load_settings
from .store import Link, MapperStore
from .views import MapperService

__all__ = [
    "ACTIONS",
    "DEFAULTS",
    "CallbackDispatcher",
    "CallbackSender",
    "Delivery",
    "Link",
    "MapperSettings",
    "MapperState",
    "MapperStore",
    "RequestsSender",
    "callback_url",
    "create_app",
]


@dataclass(frozen=True)
class MapperState:
    """``app.extensions["g2p_mapper"]``: what one mapper app runs with."""

    settings: MapperSettings
    store: MapperStore
    dispatcher: CallbackDispatcher

    def close(self) -> None:
        """Stop the callback worker (after the queued callbacks) and close the database."""
        self.dispatcher.close()
        self.store.close()


def create_app(config: Mapping[str, Any]) -> Flask:
    settings = load_settings(config)
    app = Flask(__name__)
    app.config.update(settings.apisec_config())
    apisec = APISec(app)
    store = MapperStore(settings.database)
    signer = ResponseSigner(settings.profile, settings.signing_key, clock=settings.clock)
    dispatcher = CallbackDispatcher(
        settings.callback_sender,
        signer,
        queue_size=settings.callback_queue_size,
        retries=settings.callback_retries,
        backoff=settings.callback_backoff,
    )
    app.extensions["g2p_mapper"] = MapperState(settings, store, dispatcher)
    service = MapperService(settings, store, dispatcher)
    for action in ACTIONS:
        for path, handler in (
            (f"/mapper/sync/{action}", service.sync),
            (f"/mapper/{action}", service.async_),
        ):
            view = _view(handler, action)
            view = apisec.require_signature(view)
            view = apisec.require_token(
                scopes=[f"mapper:{action}"], cert_bound=settings.cert_bound
            )(view)
            endpoint = path.strip("/").replace("/", "_")
            app.add_url_rule(path, endpoint=endpoint, view_func=view, methods=["POST"])
    return app


def _view(handler: Callable[[str], Response], action: str) -> Callable[[], Response]:
    # A fresh function per route: each carries its own recorded requirements.
    def view() -> Response:
        return handler(action)

    view.__name__ = f"{handler.__name__.strip('_')}_{action}"
    return view
