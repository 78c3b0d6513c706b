"""Tests of ``wsgi_apisec.client`` against real servers on 127.0.0.1 over TLS: the sample
authorization server, a small DPoP authorization server, and a resource server built from
``wsgi_apisec.middleware.protect`` that checks tokens and request signatures and signs its
responses under each profile."""

from __future__ import annotations

import base64
import io
import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from wsgi_apisec import profiles
from wsgi_apisec.binding import Binding
from wsgi_apisec.dpop import DPoPVerifier, HMACNonceSource
from wsgi_apisec.environ import ENV_BINDING, ENV_SIGNATURE, ENV_TOKEN, message_from_environ
from wsgi_apisec.errors import APISecError
from wsgi_apisec.keys import PrivateKey, PublicKey
from wsgi_apisec.message import Body
from wsgi_apisec.middleware import Rule, TokenRequirement, protect
from wsgi_apisec.resolvers import StaticKeyResolver
from wsgi_apisec.signatures import Profile, SignatureResult
from wsgi_apisec.tokens import AccessToken, TokenValidator

WSGIApp = Callable[[dict[str, Any], Any], Iterable[bytes]]
JSON = [("Content-Type", "application/json")]


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Counting:
    """A WSGI wrapper that counts requests per first path segment, keeps the last body it
    was sent, and can slow requests down."""

    app: WSGIApp
    hits: Counter[str] = field(default_factory=Counter)
    delay: float = 0.0
    last_body: bytes = b""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        body = _read_body(environ)
        environ["wsgi.input"] = io.BytesIO(body)
        with self.lock:
            self.hits[environ["PATH_INFO"].split("/")[1]] += 1
            self.last_body = body
        if self.delay:
            time.sleep(self.delay)
        return self.app(environ, start_response)


# --- the resource server ------------------------------------------------------------------


def _read_body(environ: Mapping[str, Any]) -> bytes:
    return environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))


def echo(sender: str) -> WSGIApp:
    """Answers what it received: the exact body (base64), the verified token's client, the
    binding and the verified signature, in a G2P-style envelope from ``sender``."""

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        token: AccessToken | None = environ.get(ENV_TOKEN)
        binding: Binding | None = environ.get(ENV_BINDING)
        sig: SignatureResult | None = environ.get(ENV_SIGNATURE)
        doc = {
            "header": {"sender_id": sender, "message_id": environ["PATH_INFO"]},
            "received": base64.b64encode(_read_body(environ)).decode(),
            "client_id": token.client_id if token else None,
            "jkt": binding.dpop.jkt if binding and binding.dpop else None,
            "x5t": binding.x5t_s256 if binding else None,
            "profile": sig.profile if sig else None,
            "owner": sig.owner if sig else None,
            "covered": list(sig.covered) if sig else [],
        }
        start_response("200 OK", JSON)
        return [json.dumps(doc).encode()]

    return app


def tamper(app: WSGIApp) -> WSGIApp:
    """``X-Test-Tamper: body`` flips a byte of the (signed) response body; ``signature``
    flips a character of every signature field; ``strip`` removes them."""
    names = ("x-jws-signature", "signature")

    def wrapped(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        how = environ.get("HTTP_X_TEST_TAMPER")
        if not how:
            return app(environ, start_response)
        seen: dict[str, Any] = {}

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            seen.update(status=status, headers=headers)
            return lambda data: None

        body = b"".join(app(environ, capture))
        headers = list(seen["headers"])
        if how == "body":
            body = body.replace(b'"header"', b'"Header"', 1)
        elif how == "signature":
            headers = [(n, _flip(v) if n.lower() in names else v) for n, v in headers]
        elif how == "strip":
            headers = [(n, v) for n, v in headers if n.lower() not in names]
        start_response(seen["status"], headers)
        return [body]

    return wrapped


def _flip(value: str) -> str:
    # Change one character well inside the value (the signature part, not the header).
    i = len(value) - 12
    return value[:i] + ("A" if value[i] != "A" else "B") + value[i + 1 :]


@dataclass
class Parties:
    """Every key the tests' parties hold."""

    ocen_client: PrivateKey  # lender-1, RS256 (the demo's ocen-lender key)
    ocen_provider: PrivateKey  # the lender API's response key, RS256
    g2p_partner_rs256: PrivateKey  # OpenG2P
    g2p_partner_ed25519: PrivateKey  # G2P Connect
    mapper_rs256: PrivateKey
    mapper_ed25519: PrivateKey
    fapi_client: PrivateKey  # ES256, kid "fapi-client"
    fapi_server: PrivateKey  # ES256, kid "fapi-server"


def g2p_connect(sender: str) -> Profile:
    return profiles.G2P_CONNECT.replace(
        options={**profiles.G2P_CONNECT.options, "sender_id": sender}
    )


def resource_server(validator: TokenValidator, keys: Parties) -> WSGIApp:
    """One app per profile, chosen by the first path segment:

    - ``/ocen``: OCEN signatures, token with ``ocen:loan-applications`` (participantId);
    - ``/openg2p`` and ``/g2p``: OpenG2P / G2P Connect signatures, certificate-bound token;
    - ``/fapi``: FAPI 2.0 signatures, DPoP-bound token, DPoP nonces required;
    - ``/fapi-mtls``: FAPI 2.0 signatures, certificate-bound token;
    - ``/unsigned``: any token, nothing signed either way.
    """
    dpop = DPoPVerifier(nonce=HMACNonceSource())
    cert_bound = TokenRequirement(cert_bound=True)

    def one(
        name: str,
        profile: Profile | None,
        token: TokenRequirement,
        resolver: StaticKeyResolver | None,
        signing_key: PrivateKey | None,
        sender: str = "server",
    ) -> WSGIApp:
        rule = Rule(f"/{name}/**", profile=profile, token=token)
        return protect(
            echo(sender),
            [rule],
            validator=validator,
            resolver=resolver,
            signing_key=signing_key,
            dpop_verifier=dpop,
        )

    def owned(party: str, key: PrivateKey) -> StaticKeyResolver:
        return StaticKeyResolver(owners={party: [key.public_key()]})

    fapi_keys = StaticKeyResolver([keys.fapi_client.public_key()])
    mounts = {
        "ocen": one(
            "ocen",
            profiles.OCEN,
            TokenRequirement(scopes=("ocen:loan-applications",)),
            owned("lender-1", keys.ocen_client),
            keys.ocen_provider,
        ),
        "openg2p": one(
            "openg2p",
            profiles.OPENG2P,
            cert_bound,
            owned("g2p-partner", keys.g2p_partner_rs256),
            keys.mapper_rs256,
            "g2p-mapper",
        ),
        "g2p": one(
            "g2p",
            g2p_connect("g2p-mapper"),
            cert_bound,
            owned("g2p-partner", keys.g2p_partner_ed25519),
            keys.mapper_ed25519,
            "g2p-mapper",
        ),
        "fapi": one(
            "fapi", profiles.FAPI2, TokenRequirement(dpop=True), fapi_keys, keys.fapi_server
        ),
        "fapi-mtls": one("fapi-mtls", profiles.FAPI2, cert_bound, fapi_keys, keys.fapi_server),
        "unsigned": one("unsigned", None, TokenRequirement(), None, None),
    }

    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        mount = mounts.get(environ["PATH_INFO"].split("/")[1])
        if mount is None:
            start_response("404 Not Found", JSON)
            return [b"{}"]
        return mount(environ, start_response)

    return tamper(app)


# --- a DPoP authorization server ------------------------------------------------------------


def dpop_token_endpoint(mint: Callable[[PublicKey], str], client_id: str, secret: str) -> WSGIApp:
    """A token endpoint for DPoP-bound tokens (RFC 9449 §5) that wants a nonce (§8): a
    request without a current one gets 400 ``use_dpop_nonce`` and a ``DPoP-Nonce``."""
    verifier = DPoPVerifier(nonce=HMACNonceSource())
    expected = "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        body = _read_body(environ)
        if environ.get("HTTP_AUTHORIZATION") != expected:
            return _oauth_error(start_response, "401 Unauthorized", "invalid_client")
        try:
            proof = verifier.verify(message_from_environ(environ, Body(body)))
        except APISecError as err:
            return _oauth_error(start_response, "400 Bad Request", err.error, err.headers)
        answer = {"access_token": mint(proof.key), "token_type": "DPoP", "expires_in": 300}
        start_response("200 OK", [*JSON, ("Cache-Control", "no-store")])
        return [json.dumps(answer).encode()]

    return app


def _oauth_error(
    start_response: Any, status: str, error: str, headers: Mapping[str, str] | None = None
) -> list[bytes]:
    start_response(status, [*JSON, *(headers or {}).items()])
    return [json.dumps({"error": error, "error_description": "refused"}).encode()]
