"""The demo network, started in this process: a throwaway PKI, the sample authorization
server, registry, FDX API, G2P mapper and OCEN lender, and the G2P partner's callback
receiver, each on a free port of 127.0.0.1 in a thread. Everything is registered on an
``ExitStack``: closing it shuts the servers down, stops the mapper's callback worker and
closes its database (the temporary directory is the caller's).

TLS: the authorization server and the lender ask for a client certificate, the FDX API and
the receiver require one, the mapper asks for one and binds tokens to it (as each sample's
``__main__`` does); the registry serves public keys over TLS without asking for one. Every
key source is fetched over TLS trusting the demo CA only: the lender (``ca_file``), the FDX
API (``ca_file``), the mapper and the receiver (a resolver and an ``issuers`` entry with
that CA's fetcher) fetch the AS's JWKS at its ``jwks_uri`` and participants' keys from the
registry; the clients check answers with registry keys through :meth:`Network.fetcher`.
"""

from __future__ import annotations

import queue
import ssl
import threading
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from flask import Flask, request
from werkzeug.serving import BaseWSGIServer, make_server

from flask_apisec import APISec, current_signature
from sample_apps import authserver, fdx, g2p_mapper, ocen, registry
from sample_apps.config import DEMO_AUDIENCE, DemoConfig, make_demo_config
from sample_apps.pki import PKI, make_pki
from wsgi_apisec import jws
from wsgi_apisec.encoding import json_object
from wsgi_apisec.fetch import UrlFetcher
from wsgi_apisec.keys import PrivateKey
from wsgi_apisec.registry import RegistryResolver

__all__ = [
    "CERTIFICATES",
    "REDIRECT_URI",
    "TAMPERING",
    "Callback",
    "Network",
    "start_network",
    "unverified_claims",
]

WSGIApp = Callable[[dict[str, Any], Any], Any]
#: Who holds a client certificate; ``intruder`` has a good one, issued by the same CA.
CERTIFICATES = ("lsp-1", "fdx-aggregator", "g2p-partner", "g2p-mapper", "intruder")
#: fdx-aggregator's registered redirect URI: the demo reads the code from the redirect's
#: ``Location``, so nothing is ever fetched there.
REDIRECT_URI = "http://127.0.0.1:8000/callback"


@dataclass(frozen=True)
class Callback:
    """A callback the partner's receiver accepted (its signature verified)."""

    path: str
    signer: str | None
    alg: str
    kid: str | None
    body: Any
    client_cert: bool


@dataclass(frozen=True)
class Network:
    """Where everything runs and what each party holds. Tests ``dataclasses.replace`` it
    (another key, another certificate, no tampering) to prove that a step can fail."""

    pki: PKI
    demo: DemoConfig
    #: party -> (certificate path, key path) it presents.
    certs: Mapping[str, tuple[str, str]]
    #: party -> the key it signs requests with (lsp-1: RS256, g2p-partner: Ed25519).
    signing_keys: Mapping[str, PrivateKey]
    auth: str
    registry: str
    lender: str
    fdx: str
    mapper: str
    receiver: str
    callbacks: queue.Queue[Callback]
    #: What the "tampered body" steps change in a body after it was signed (old -> new).
    tampering: Mapping[bytes, bytes]

    @property
    def ca(self) -> str:
        return str(self.pki.ca_cert_path)

    def thumbprint(self, party: str) -> str:
        """RFC 8705 §3.1 thumbprint of the certificate ``party`` was issued."""
        return self.pki.clients[party].x5t_s256

    def tls_context(self, party: str) -> ssl.SSLContext:
        """Trust the demo CA only, present ``party``'s certificate."""
        context = ssl.create_default_context(cafile=self.ca)
        context.load_cert_chain(*self.certs[party])
        return context

    def fetcher(self) -> UrlFetcher:
        """A key-document fetcher that trusts the demo CA only (registry, JWKS)."""
        return ca_fetcher(self.pki)


def unverified_claims(access_token: str) -> dict[str, Any]:
    """A JWT's claims, read (not trusted) to show what the AS put in it: the resource
    servers verify it."""
    return json_object(jws.payload_of(jws.parse_compact(access_token)), "JWT payload")


#: An OCEN amount and a G2P financial address, changed after the signature was made.
TAMPERING = {b'"50000.00"': b'"90000.00"', b'"account:777@bank"': b'"account:666@evil"'}


def ca_fetcher(pki: PKI) -> UrlFetcher:
    """Fetch key documents over TLS trusting the demo CA only."""
    return UrlFetcher.trusting(pki.ca_cert_path)


def start_network(workdir: Path, stack: ExitStack) -> Network:
    """Start every server; each is stopped when ``stack`` closes."""
    pki = make_pki(workdir / "pki", clients=CERTIFICATES)
    ca = str(pki.ca_cert_path)
    auth, demo = _authserver(stack, pki)
    reg = serve(stack, lambda _: registry.create_app(demo.registry), pki.server_context("none"))
    # The resource servers fetch the AS's keys from its jwks_uri (issuer + "/jwks") over TLS.
    issuer = {"issuer": auth, "audience": DEMO_AUDIENCE}
    lender = serve(
        stack,
        lambda _: ocen.create_app(
            {**issuer, "registry_url": reg, "ca_file": ca, "signing_key": demo.keys["lender-1"]}
        ),
        pki.server_context("optional"),
    )
    api = serve(
        stack,
        lambda _: fdx.create_app(
            {**issuer, "ca_file": ca, "algorithms": ["ES256"], "sign_responses": True}
        ),
        pki.server_context("required"),
    )
    inbox: queue.Queue[Callback] = queue.Queue()
    receiver = serve(stack, lambda _: _receiver(reg, pki, inbox), pki.server_context("required"))
    mapper_issuer = {
        **issuer,
        "jwks_uri": auth + "/jwks",
        "jwks_options": {"fetcher": ca_fetcher(pki)},
    }
    mapper = serve(
        stack,
        lambda _: _mapper(stack, pki, demo, mapper_issuer, reg, receiver),
        pki.server_context("optional"),
    )
    return Network(
        pki=pki,
        demo=demo,
        certs={n: (str(c.cert_path), str(c.key_path)) for n, c in pki.clients.items()},
        signing_keys={"lsp-1": demo.keys["lsp-1"], "g2p-partner": demo.ed25519_keys["g2p-partner"]},
        auth=auth,
        registry=reg,
        lender=lender,
        fdx=api,
        mapper=mapper,
        receiver=receiver,
        callbacks=inbox,
        tampering=TAMPERING,
    )


def _authserver(stack: ExitStack, pki: PKI) -> tuple[str, DemoConfig]:
    """The AS, and the demo network's config made for its URL (the issuer names its port)."""
    made: list[DemoConfig] = []

    def build(url: str) -> Flask:
        partner = x509.load_pem_x509_certificate(pki.clients["g2p-partner"].cert_pem)
        made.append(
            make_demo_config(
                url,
                redirect_uri=REDIRECT_URI,
                # RFC 8705 §2.1.2: g2p-partner is registered by its certificate's subject DN.
                mtls_subject_dn=partner.subject.rfc4514_string(),
            )
        )
        return authserver.create_app(made[0].authserver)

    return serve(stack, build, pki.server_context("optional")), made[0]


def _mapper(
    stack: ExitStack,
    pki: PKI,
    demo: DemoConfig,
    issuer: Mapping[str, Any],
    registry_url: str,
    receiver: str,
) -> Flask:
    own = pki.clients["g2p-mapper"]
    app = g2p_mapper.create_app(
        {
            "signature_profile": "g2p_connect",
            "issuers": [dict(issuer)],
            # G2P Connect: the sender's whole JWKS, where its Ed25519 key sits next to others.
            "key_resolver": RegistryResolver.g2p_connect(registry_url, fetcher=ca_fetcher(pki)),
            "signing_key": demo.ed25519_keys["g2p-mapper"],
            # Callbacks only under the partner's receiver (SSRF guard of the sample).
            "callback_prefixes": {"g2p-partner": [receiver + "/g2p/"]},
            "client_cert": [str(own.cert_path), str(own.key_path)],
            "ca_file": str(pki.ca_cert_path),
        }
    )
    state: g2p_mapper.MapperState = app.extensions["g2p_mapper"]
    # Registered before the server's own stop, so it runs after it (the stack is LIFO).
    stack.callback(state.close)
    return app


def _receiver(registry_url: str, pki: PKI, inbox: queue.Queue[Callback]) -> Flask:
    """The G2P partner's callback endpoint: accepts only callbacks whose G2P Connect
    signature verifies with the sender's key from the registry."""
    app = Flask("sample_apps.demo_receiver")
    app.config["APISEC_SIGNATURE_KEYS"] = RegistryResolver.g2p_connect(
        registry_url, fetcher=ca_fetcher(pki)
    )
    apisec = APISec(app)

    @app.post("/g2p/<name>")
    @apisec.require_signature(profile="g2p_connect")
    def callback(name: str) -> dict[str, Any]:
        sig = current_signature
        cert = bool(request.environ.get("SSL_CLIENT_CERT"))
        inbox.put(Callback(name, sig.owner, sig.alg, sig.kid, request.get_json(), cert))
        return {"message": {"ack_status": "ACK"}}

    return app


def serve(
    stack: ExitStack, build: Callable[[str], WSGIApp], ssl_context: ssl.SSLContext | None
) -> str:
    """Bind a free port of 127.0.0.1, build the app for its base URL (an issuer must name
    its own port), serve it in a thread until ``stack`` closes; the base URL."""
    holder: dict[str, WSGIApp] = {}
    server = make_server(
        "127.0.0.1",
        0,
        lambda environ, start_response: holder["app"](environ, start_response),
        threaded=True,
        ssl_context=ssl_context,
    )
    scheme = "https" if ssl_context is not None else "http"
    url = f"{scheme}://127.0.0.1:{server.server_port}"
    try:
        holder["app"] = build(url)
    except BaseException:
        server.server_close()
        raise
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name=url, daemon=True
    )
    thread.start()
    stack.callback(_stop, server, thread)
    return url


def _stop(server: BaseWSGIServer, thread: threading.Thread) -> None:
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)
