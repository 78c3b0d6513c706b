"""A whole WSGI request through ``TokenMiddleware`` + ``SignatureMiddleware`` and the
invariants every answer must keep. Shared by the atheris ``wsgi`` target and the hypothesis
properties in ``tests/fuzz``.

The stack has a route per profile (RFC 9421, FAPI 2.0 with keys by ``keyid`` and from the
mTLS certificate, G2P Connect, OCEN with ES256, generic detached JWS, UK OB) and per token
requirement (scopes, optional, certificate-bound, DPoP), signs responses, reads client
certificates from a trusted proxy, and can be told that every key source is down.
:func:`check` holds an :class:`Outcome` to the library's promises.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_to_bytes

from fuzz.fixtures import (
    AUD,
    CERT_PEM,
    HOST,
    ISS,
    KEYS,
    PARTICIPANT,
    SENDER,
    TRUSTED_PROXY,
    UNTRUSTED_PEER,
    Outage,
    RawRequest,
    ResettableStore,
    clock,
)
from wsgi_apisec import profiles
from wsgi_apisec.certs import CLIENT_CERT, SSL_CLIENT_CERT, XFCC, ClientCertSource
from wsgi_apisec.dpop import DPoPVerifier
from wsgi_apisec.fapi2 import ClientCertificateKeys
from wsgi_apisec.jws import JWSPolicy
from wsgi_apisec.keys import KeySet
from wsgi_apisec.middleware import Rule, SignatureMiddleware, TokenMiddleware, TokenRequirement
from wsgi_apisec.problem import PROBLEM_JSON
from wsgi_apisec.resolvers import StaticKeyResolver
from wsgi_apisec.tokens import Issuer, TokenValidator

MAX_BODY = 64 * 1024
#: ``flags`` bits of a request.
CHUNKED, TRUSTED, OUTAGE, LENIENT, TLS_CERT = 1, 2, 4, 8, 16

G2P = profiles.G2P_CONNECT.replace(options={**profiles.G2P_CONNECT.options, "sender_id": SENDER})
OCEN_ES256 = profiles.OCEN.replace(
    name="ocen-es256",
    algorithms=frozenset({"ES256"}),
    jws_policy=JWSPolicy(algorithms=frozenset({"ES256"}), b64_without_crit=True),
    sign_alg="ES256",
)
CERT_SOURCE = ClientCertSource(
    trusted_proxies=[TRUSTED_PROXY], header_forms=[CLIENT_CERT, SSL_CLIENT_CERT, XFCC]
)
#: FAPI 2.0 with the signer's key taken from its mTLS client certificate.
CLIENT_CERT_KEYS = ClientCertificateKeys(CERT_SOURCE)
RULES = [
    Rule("/health", exempt=True),
    Rule("/fapi/**", profile=profiles.FAPI2, token=TokenRequirement()),
    Rule(
        "/fapi-mtls/**", profile=profiles.FAPI2, resolver=CLIENT_CERT_KEYS, token=TokenRequirement()
    ),
    Rule("/sig/**", profile=profiles.HTTPSIG),
    Rule("/g2p/**", profile=G2P, sign_response=False),
    Rule("/ocen/**", profile=OCEN_ES256, token=TokenRequirement()),
    Rule("/jws/**", methods=["POST", "PUT"], profile=profiles.JWS),
    Rule("/ukob/**", profile=profiles.UKOB, sign_response=False),
    Rule("/mtls/**", token=TokenRequirement(scopes=("accounts:read",), cert_bound=True)),
    Rule("/dpop/**", token=TokenRequirement(dpop=True)),
    Rule("/public/**", token=TokenRequirement(optional=True)),
    Rule("/accounts/**", token=TokenRequirement(any_of=("accounts:read", "x:y"))),
]


@dataclass
class Recorder:
    """The app: reads the body as Werkzeug does and answers 200 with JSON."""

    ran: bool = False
    body: bytes | None = None

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        self.ran = True
        stream = environ["wsgi.input"]
        if environ.get("wsgi.input_terminated"):
            self.body = stream.read()
        else:
            self.body = stream.read(_length(environ.get("CONTENT_LENGTH")) or 0)
        start_response("200 OK", [("Content-Type", "application/json")])
        return [b'{"ok": true}']


def _length(value: object) -> int | None:
    text = str(value).strip() if value is not None else ""
    return int(text) if text.isdigit() and text.isascii() else None


@dataclass
class Outcome:
    status: int
    headers: dict[str, str]
    body: bytes
    app_ran: bool
    app_body: bytes | None
    #: The request got past the token layer (refused, if at all, by the signature layer).
    token_passed: bool
    expected_body: bytes
    outage: bool


@dataclass
class Stack:
    """The middleware pair around a :class:`Recorder`; ``lenient`` adds RFC 6750 query and
    form tokens, a realm and RFC 9728 metadata."""

    lenient: bool = False
    store: ResettableStore = field(default_factory=ResettableStore)

    def __post_init__(self) -> None:
        self.keys = Outage(
            StaticKeyResolver(
                KEYS.verifying,
                owners={
                    PARTICIPANT: [KEYS.es256.public_key()],
                    SENDER: [KEYS.ed25519.public_key()],
                },
            )
        )
        self.issuer_keys = Outage(StaticKeyResolver(KeySet([KEYS.issuer.public_key()])))
        self.app = Recorder()
        self.passed = False
        inner = SignatureMiddleware(
            self.app,
            RULES,
            resolver=self.keys,
            signing_key=KEYS.server,
            replay_store=self.store,
            max_body=MAX_BODY,
            clock=clock,
        )

        def probe(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
            self.passed = True
            return inner(environ, start_response)

        validator = TokenValidator(
            Issuer(ISS, resolver=self.issuer_keys, audience=AUD), clock=clock, cache=True
        )
        dpop = DPoPVerifier(algorithms=["ES256", "EdDSA"], clock=clock, replay_store=self.store)
        extra: dict[str, Any] = {}
        if self.lenient:
            extra = {
                "allow_query": True,
                "allow_form": True,
                "realm": "api",
                "resource_metadata": f"https://{HOST}/.well-known/oauth-protected-resource",
            }
        self.wsgi = TokenMiddleware(
            probe,
            RULES,
            validator=validator,
            cert_source=CERT_SOURCE,
            dpop_verifier=dpop,
            max_body=MAX_BODY,
            **extra,
        )

    def run(self, raw: RawRequest, flags: int) -> Outcome:
        """One request; an exception from the middleware propagates (that is a crash)."""
        self.store.reset()
        self.app.ran, self.app.body, self.passed = False, None, False
        self.keys.down = self.issuer_keys.down = bool(flags & OUTAGE)
        environ, expected = environ_for(raw, flags)
        started: list[tuple[str, list[tuple[str, str]]]] = []

        def start_response(status: str, headers: list[tuple[str, str]], exc: Any = None) -> Any:
            started.append((status, headers))
            return lambda data: None

        result = self.wsgi(environ, start_response)
        try:
            body = b"".join(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        status, headers = started[-1]
        return Outcome(
            int(status.split(" ", 1)[0]),
            {k.lower(): v for k, v in headers},
            body,
            self.app.ran,
            self.app.body,
            self.passed,
            expected,
            bool(flags & OUTAGE),
        )


def environ_for(raw: RawRequest, flags: int) -> tuple[dict[str, Any], bytes]:
    """The environ a WSGI server would build for ``raw``, and the body the app must get."""
    path, _, query = raw.target.partition("?")
    environ: dict[str, Any] = {
        "REQUEST_METHOD": raw.method,
        "SCRIPT_NAME": "",
        "PATH_INFO": unquote_to_bytes(path if path.startswith("/") else "/" + path).decode(
            "latin-1"
        ),
        "QUERY_STRING": query,
        "RAW_URI": raw.target,
        "SERVER_NAME": HOST,
        "SERVER_PORT": "443",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": TRUSTED_PROXY if flags & TRUSTED else UNTRUSTED_PEER,
        "wsgi.url_scheme": "https",
        "wsgi.input": io.BytesIO(raw.body),
        "wsgi.errors": io.StringIO(),
    }
    for name, value in raw.headers:
        key = name.upper().replace("-", "_")
        key = key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else "HTTP_" + key
        environ[key] = f"{environ[key]},{value}" if key in environ else value
    if flags & TLS_CERT:
        environ["SSL_CLIENT_CERT"] = CERT_PEM
    if flags & CHUNKED:
        environ.setdefault("HTTP_TRANSFER_ENCODING", "chunked")
        environ["wsgi.input_terminated"] = True
        return environ, raw.body
    if "CONTENT_LENGTH" not in environ and raw.body:
        environ["CONTENT_LENGTH"] = str(len(raw.body))
    length = _length(environ.get("CONTENT_LENGTH"))
    return environ, raw.body[: length or 0]


def check(outcome: Outcome) -> None:
    """What every answer must be: see the module docstring of :mod:`wsgi_apisec.middleware`."""
    status = outcome.status
    # "Every rejection is a clear 4xx, never a 500"; 503 only when a key source is down.
    assert status < 500 or (status == 503 and outcome.outage), f"answered {status}"
    if outcome.app_ran:
        assert status == 200, f"the app ran but the answer is {status}"
        # "The app receives the request body byte-for-byte as sent."
        assert outcome.app_body == outcome.expected_body, "the app got another body"
        return
    assert 400 <= status < 500 or status == 503, f"refused with {status}"
    assert outcome.headers["content-length"] == str(len(outcome.body))
    doc = json.loads(outcome.body)
    if outcome.headers["content-type"] == PROBLEM_JSON:
        assert doc["status"] == status and isinstance(doc["code"], str)
    else:
        assert outcome.headers["content-type"] == "application/json"
        assert isinstance(doc["errors"][0]["code"], str)
    if not outcome.token_passed and status in (400, 401, 403):
        # RFC 6750 §3: a refused token request carries a challenge.
        assert "www-authenticate" in outcome.headers, "token refusal without a challenge"
