"""One configuration, two targets: the Flask extension and the bare WSGI middleware.

A :class:`Setup` says what the API trusts (issuer, signature keys, proxies, transports,
limits). :func:`build` turns it into a :class:`Target` of either kind over the same
:data:`ROUTES`:

- ``"flask"``: a Flask app with ``APISec`` configured through ``APISEC_*`` keys and one view
  per route carrying ``@require_token`` / ``@require_signature``;
- ``"wsgi"``: a plain WSGI app behind :func:`wsgi_apisec.middleware.protect` with
  :class:`~wsgi_apisec.middleware.Rule` s. Its test client is an ``APISecClient`` on a Flask
  object whose ``wsgi_app`` *is* that stack, so Flask's routing never runs for it (the
  client only needs a Flask object to build requests).

Both count the requests that reach the app, record their log lines, and count the key
lookups of signed requests, so a test can assert that an attack never got that far.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from flask import Flask, request
from werkzeug.test import TestResponse

from flask_apisec import APISec, current_token
from flask_apisec.testing import APISecClient, TestIssuer
from wsgi_apisec import profiles
from wsgi_apisec.certs import ClientCertSource
from wsgi_apisec.dpop import DPoPVerifier, HMACNonceSource
from wsgi_apisec.environ import ENV_TOKEN
from wsgi_apisec.introspection import Introspection
from wsgi_apisec.keys import PrivateKey, PublicKey
from wsgi_apisec.middleware import Rule, TokenRequirement, protect
from wsgi_apisec.replay import MemoryReplayStore
from wsgi_apisec.resolvers import KeyQuery, KeyResolver, StaticKeyResolver
from wsgi_apisec.signatures import Profile
from wsgi_apisec.tokens import Issuer, TokenValidator

WSGIApp = Callable[[dict[str, Any], Any], Any]

KINDS = ("flask", "wsgi")
REALM = "api"
PROXY = "10.0.0.7"
MAX_BODY = 64 * 1024
G2P_SENDER = "spar-partner-1"
PROBLEM = "application/problem+json"


@dataclass(frozen=True)
class Route:
    path: str
    methods: tuple[str, ...]
    token: TokenRequirement | None = None
    profile: Profile | None = None


ROUTES = (
    Route("/read", ("GET", "POST"), token=TokenRequirement(scopes=("read",))),
    Route("/mtls", ("GET",), token=TokenRequirement(cert_bound=True)),
    Route("/dpop", ("GET", "POST"), token=TokenRequirement(dpop=True)),
    Route("/jws", ("POST",), profile=profiles.JWS),
    Route("/ocen", ("POST",), token=TokenRequirement(), profile=profiles.OCEN),
    Route("/g2p", ("POST",), profile=profiles.G2P_CONNECT),
    Route("/fapi", ("GET", "POST"), token=TokenRequirement(), profile=profiles.FAPI2),
)


@dataclass(frozen=True)
class Parties:
    """The signers the API knows: by ``kid`` (JWS, FAPI 2.0) or by party (OCEN, G2P)."""

    jws: PrivateKey
    fapi: PrivateKey
    ocen: Mapping[str, PrivateKey]
    g2p: PrivateKey

    def resolver(self) -> StaticKeyResolver:
        owners = {name: [key.public_key()] for name, key in self.ocen.items()}
        owners[G2P_SENDER] = [self.g2p.public_key()]
        by_kid = [self.jws.public_key(), self.fapi.public_key()]
        return StaticKeyResolver(by_kid, owners=owners)


@dataclass(frozen=True)
class Setup:
    """What the API trusts and allows; the same values feed both targets."""

    issuer: TestIssuer
    parties: Parties
    #: Extra ``Issuer`` / ``APISEC_ISSUERS`` entries; a ``jwks_uri`` replaces the inline set.
    issuer_options: Mapping[str, Any] = field(default_factory=dict)
    #: ``Introspection`` / ``APISEC_INTROSPECTION`` options, for opaque tokens.
    introspection: Mapping[str, Any] | None = None
    #: The signature key source (default: :meth:`Parties.resolver`).
    signature_keys: Callable[[], KeyResolver] | None = None
    token_in_query: bool = False
    require_bound: bool = False
    dpop_nonce: bytes | None = None
    trusted_proxies: tuple[str, ...] = (PROXY,)
    max_body: int = MAX_BODY

    def replace(self, **changes: Any) -> Setup:
        return replace(self, **changes)

    def issuer_config(self) -> dict[str, Any]:
        config = {**self.issuer.issuer_config(), **self.issuer_options}
        if "jwks_uri" in self.issuer_options:
            del config["jwks"]
        return config


class Counter:
    """The app behind the checks: counts what reaches it, echoes body hash and subject."""

    def __init__(self) -> None:
        self.calls = 0
        self.bodies: list[bytes] = []

    def answer(self, path: str, body: bytes, subject: str | None) -> bytes:
        self.calls += 1
        self.bodies.append(body)
        doc = {"path": path, "sha256": hashlib.sha256(body).hexdigest(), "sub": subject}
        return json.dumps(doc).encode()

    def wsgi(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        token = environ.get(ENV_TOKEN)
        payload = self.answer(environ["PATH_INFO"], body, token.subject if token else None)
        start_response("200 OK", [("Content-Type", "application/json")])
        return [payload]


class CountingResolver:
    """The signature key source, recording every lookup."""

    def __init__(self, inner: KeyResolver) -> None:
        self.inner = inner
        self.queries: list[KeyQuery] = []

    def resolve(self, query: KeyQuery) -> list[PublicKey]:
        self.queries.append(query)
        return self.inner.resolve(query)


@dataclass
class Target:
    kind: str
    setup: Setup
    #: What a WSGI server runs.
    wsgi: WSGIApp
    client: APISecClient
    app: Counter
    resolver: CountingResolver
    logs: list[logging.LogRecord]


def build(kind: str, setup: Setup, logs: list[logging.LogRecord]) -> Target:
    counter = Counter()
    keys = setup.signature_keys() if setup.signature_keys else setup.parties.resolver()
    resolver = CountingResolver(keys)
    if kind == "flask":
        app = _flask_app(setup, counter, resolver)
        carrier = app
    else:
        stack = _wsgi_stack(setup, counter, resolver)
        carrier = Flask(f"attack-{kind}")
        carrier.wsgi_app = stack  # type: ignore[method-assign,assignment]
    carrier.test_client_class = APISecClient
    client = carrier.test_client()
    assert isinstance(client, APISecClient)
    wsgi = carrier if kind == "flask" else carrier.wsgi_app
    return Target(kind, setup, wsgi, client, counter, resolver, logs)


def _flask_app(setup: Setup, counter: Counter, resolver: CountingResolver) -> Flask:
    app = Flask(f"attack-flask-{id(setup)}")
    app.config.update(
        APISEC_ISSUERS=[setup.issuer_config()],
        APISEC_INTROSPECTION=setup.introspection,
        APISEC_REALM=REALM,
        APISEC_TRUSTED_PROXIES=list(setup.trusted_proxies),
        APISEC_TOKEN_IN_QUERY=setup.token_in_query,
        APISEC_REQUIRE_BOUND_TOKENS=setup.require_bound,
        APISEC_DPOP_NONCE=setup.dpop_nonce or False,
        APISEC_SIGNATURE_KEYS=resolver,
        APISEC_REPLAY_STORE=MemoryReplayStore(),
        APISEC_MAX_BODY=setup.max_body,
    )
    apisec = APISec(app)
    for route in ROUTES:
        view = _view(route, counter)
        if route.profile is not None:
            view = apisec.require_signature(profile=route.profile)(view)
        if route.token is not None:
            t = route.token
            view = apisec.require_token(
                scopes=t.scopes, any_of=t.any_of, cert_bound=t.cert_bound, dpop=t.dpop
            )(view)
        app.add_url_rule(route.path, route.path.strip("/"), view, methods=list(route.methods))
    return app


def _view(route: Route, counter: Counter) -> Callable[[], Any]:
    def view() -> Any:
        subject = current_token.subject if current_token else None
        payload = counter.answer(request.path, request.get_data(), subject)
        return payload, 200, {"Content-Type": "application/json"}

    view.__name__ = "view_" + route.path.strip("/")
    return view


def _wsgi_stack(setup: Setup, counter: Counter, resolver: CountingResolver) -> WSGIApp:
    store = MemoryReplayStore()
    nonce = HMACNonceSource(setup.dpop_nonce) if setup.dpop_nonce else None
    rules = [
        Rule(route.path, methods=route.methods, token=route.token, profile=route.profile)
        for route in ROUTES
    ]
    sources: list[Any] = [Issuer(**setup.issuer_config())]
    if setup.introspection is not None:
        sources.append(Introspection(**setup.introspection))
    return protect(
        counter.wsgi,
        rules,
        validator=TokenValidator(sources, cache=True),
        resolver=resolver,
        cert_source=ClientCertSource(trusted_proxies=setup.trusted_proxies),
        dpop_verifier=DPoPVerifier(replay_store=store, nonce=nonce),
        require_bound=setup.require_bound,
        allow_query=setup.token_in_query,
        realm=REALM,
        replay_store=store,
        max_body=setup.max_body,
    )


# --- what a refusal must look like ----------------------------------------------------------


def challenge(
    error: str | None = None, description: str | None = None, scheme: str = "Bearer", **extra: str
) -> str:
    """The exact ``WWW-Authenticate`` value both targets send (RFC 6750 §3, RFC 9449 §7.1)."""
    params = [f'realm="{REALM}"']
    if error is not None:
        params += [f'error="{error}"', f'error_description="{description}"']
    params += [f'{name}="{value}"' for name, value in extra.items()]
    return f"{scheme} " + ", ".join(params)


DPOP_ALGS = "ES256 PS256 EdDSA RS256"


def dpop_challenge(error: str, description: str) -> str:
    return challenge(error, description, scheme="DPoP", algs=DPOP_ALGS)


def refused(
    resp: TestResponse,
    target: Target,
    status: int,
    code: str,
    *,
    error: str | None = None,
    www_authenticate: str | None = None,
    envelope: str | None = None,
    detail: str | None = None,
) -> dict[str, Any]:
    """Exact status, body (RFC 9457 problem with ``error`` and ``code``, or the profile's
    ``{"errors": [...]}`` envelope with G2P code ``envelope``; ``detail``: the safe
    description, when the code alone does not name the reason), ``WWW-Authenticate``
    (``None``: absent), ``Cache-Control: no-store``, a log line naming the reason, and an app
    that never ran."""
    text = resp.get_data(as_text=True)
    assert resp.status_code == status, f"{target.kind}: {resp.status_code} {text}"
    assert status < 500 or status == 503, "no 5xx other than a key source that is down"
    assert target.app.calls == 0, f"{target.kind}: the app ran"
    sent = resp.headers.get("WWW-Authenticate")
    assert sent == www_authenticate, f"{target.kind}: {sent!r}"
    assert resp.headers["Cache-Control"] == "no-store"
    doc: dict[str, Any] = json.loads(text)
    if envelope is not None:
        assert resp.mimetype == "application/json"
        assert [e["code"] for e in doc["errors"]] == [envelope], doc
    else:
        assert resp.mimetype == PROBLEM
        assert (doc["status"], doc["code"], doc.get("error")) == (status, code, error), doc
        assert detail is None or doc["detail"] == detail, doc
    lines = [r.getMessage() for r in target.logs]
    assert any(f"{status} {code}" in line for line in lines), lines
    return doc


def passed(resp: TestResponse, target: Target, path: str, body: bytes = b"") -> dict[str, Any]:
    """The positive control: 200 from the app, with the body byte for byte."""
    text = resp.get_data(as_text=True)
    assert resp.status_code == 200, f"{target.kind}: {resp.status_code} {text}"
    doc: dict[str, Any] = json.loads(text)
    assert doc["path"] == path and doc["sha256"] == hashlib.sha256(body).hexdigest()
    assert target.app.calls >= 1
    return doc


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
