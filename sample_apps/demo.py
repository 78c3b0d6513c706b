"""``make demo``: one OCEN-style signed round trip on 127.0.0.1 over real TLS, step by step.

A lender (the API client) calls a loan-application endpoint of a provider. Every request is
signed with a detached JWS in ``x-jws-signature`` (RS256, ``b64: false``, as OCEN's
reference code sends it); the provider's :class:`~wsgi_apisec.SignatureMiddleware` finds the
lender's key by the ``participantId`` of its (already validated) access token, verifies the
signature before the app runs, and signs the response. Then a tampered request and a replay
are sent, and both must be refused.

Everything is throwaway: a fresh CA, server and client certificate, fresh keys, a free
port, a temporary directory removed on exit (also on Ctrl-C). Exit status 0 only when every
step is ✓.

    python -m sample_apps.demo
"""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import ssl
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from werkzeug.serving import make_server

from sample_apps.pki import PKI, make_pki
from wsgi_apisec.environ import ENV_SIGNATURE, ENV_TOKEN, client_cert
from wsgi_apisec.keys import PrivateKey
from wsgi_apisec.message import Body, Headers, Message
from wsgi_apisec.middleware import Rule, SignatureMiddleware
from wsgi_apisec.profiles import OCEN
from wsgi_apisec.resolvers import StaticKeyResolver
from wsgi_apisec.signatures import RequestVerifier
from wsgi_apisec.tokens import AccessToken

PATH = "/ocen/v4/loan-applications"
PARTICIPANT = "lender-1"
#: Stand-in credentials: the token layer does not exist yet (see StandInTokenLayer).
DEMO_TOKEN = "demo-access-token-for-lender-1"


# --- the provider -------------------------------------------------------------------------------


@dataclass
class LoanApp:
    """The provider's app: records what reached it and answers with an acknowledgement."""

    calls: int = 0

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        self.calls += 1
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length)
        cert = client_cert(environ)
        answer = {
            "status": "ACCEPTED",
            "participant": environ[ENV_SIGNATURE].owner,
            "body_sha256": hashlib.sha256(body).hexdigest(),
            "client_cert_sha256": hashlib.sha256(cert).hexdigest() if cert else None,
        }
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps(answer).encode()]


class StandInTokenLayer:
    """STAND-IN until the bearer-token layer exists: accepts one fixed demo token and puts
    the AccessToken it stands for into ``environ["wsgi_apisec.token"]``, as the real token
    layer will after validating a JWT. Anything else is a 401. Not a security control."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("HTTP_AUTHORIZATION") != f"Bearer {DEMO_TOKEN}":
            start_response("401 Unauthorized", [("WWW-Authenticate", "Bearer")])
            return [b""]
        environ[ENV_TOKEN] = AccessToken(
            raw=DEMO_TOKEN,
            claims={"participantId": PARTICIPANT, "sub": PARTICIPANT},
            issuer="https://auth.demo.invalid",
            subject=PARTICIPANT,
            client_id=PARTICIPANT,
            scopes=frozenset(),
        )
        return self.app(environ, start_response)


@contextmanager
def serving(app: Any, pki: PKI) -> Iterator[int]:
    """The app on a free port of 127.0.0.1 over TLS (client certificates requested)."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    httpd = make_server("127.0.0.1", 0, app, threaded=True, ssl_context=pki.server_context())
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield httpd.port
    finally:
        httpd.shutdown()
        httpd.server_close()


# --- the lender and the transcript --------------------------------------------------------------


@dataclass
class Reply:
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    tls: str | None

    @property
    def code(self) -> str:
        try:
            return str(json.loads(self.body).get("code"))
        except ValueError:
            return "-"


@dataclass
class Lender:
    pki: PKI
    port: int
    key: PrivateKey

    def sign(self, body: bytes) -> str:
        request = Message(method="POST", target_uri=f"https://127.0.0.1{PATH}", body=Body(body))
        ((_, value),) = OCEN.mechanism.sign(OCEN, request, self.key, time.time())
        return value

    def post(self, body: bytes, signature: str | None) -> Reply:
        conn = http.client.HTTPSConnection(
            "127.0.0.1", self.port, context=self.pki.client_context("lender"), timeout=10
        )
        headers = {"Authorization": f"Bearer {DEMO_TOKEN}", "Content-Type": "application/json"}
        if signature is not None:
            headers["x-jws-signature"] = signature
        try:
            conn.request("POST", PATH, body=body, headers=headers)
            tls = conn.sock.version() if isinstance(conn.sock, ssl.SSLSocket) else None
            resp = conn.getresponse()
            return Reply(resp.status, resp.getheaders(), resp.read(), tls)
        finally:
            conn.close()


@dataclass
class Transcript:
    results: list[bool] = field(default_factory=list)

    def step(self, title: str, check: Callable[[], str]) -> bool:
        try:
            detail, ok = check(), True
        except Exception as exc:  # a failed step is reported, and the demo goes on
            detail, ok = f"{type(exc).__name__}: {exc}", False
        self.results.append(ok)
        print(f"{'✓' if ok else '✗'} {len(self.results)}. {title}: {detail}", flush=True)
        return ok


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)


# --- the steps ----------------------------------------------------------------------------------


def run(workdir: Path) -> Transcript:
    out = Transcript()
    pki = make_pki(workdir, clients=("lender",))
    out.step("throwaway PKI", lambda: f"CA, server cert for 127.0.0.1, lender cert in {workdir}")
    lender_key = PrivateKey.generate("RS256", kid="lender-1-sig")
    provider_key = PrivateKey.generate("RS256", kid="provider-sig")
    app = LoanApp()
    guarded = SignatureMiddleware(
        app,
        [Rule("/ocen/**", profile=OCEN)],
        # Stand-in for the OCEN registry: participantId -> the participant's public key.
        resolver=StaticKeyResolver(owners={PARTICIPANT: [lender_key.public_key()]}),
        signing_key=provider_key,
    )
    with serving(StandInTokenLayer(guarded), pki) as port:
        lender = Lender(pki, port, lender_key)
        body = json.dumps({"loanApplicationId": "LA-1001", "amount": "50000.00"}).encode()
        signature = lender.sign(body)
        first: list[Reply] = []

        def signed_request() -> str:
            first.append(lender.post(body, signature))
            reply = first[0]
            expect(reply.status == 200, f"HTTP {reply.status} {reply.body[:200]!r}")
            seen = json.loads(reply.body)
            expect(seen["body_sha256"] == hashlib.sha256(body).hexdigest(), "body changed")
            expect(seen["participant"] == PARTICIPANT, "wrong signer")
            expect(reply.tls is not None, "not over TLS")
            return f"HTTP 200 over {reply.tls}, signer {PARTICIPANT}, body byte-for-byte"

        def signed_response() -> str:
            reply = first[0]
            response = Message(status=reply.status, headers=Headers(reply.headers))
            response.body = Body(reply.body)
            provider = StaticKeyResolver([provider_key.public_key()])
            result = RequestVerifier(OCEN.replace(key_owner=None, replay=None), provider).verify(
                response
            )
            return f"x-jws-signature {result.alg} kid={result.kid} covers the {len(reply.body)} B"

        def client_certificate() -> str:
            seen = json.loads(first[0].body)
            der = pki.clients["lender"].cert_der
            expect(seen["client_cert_sha256"] == hashlib.sha256(der).hexdigest(), "no cert")
            return "the provider saw the lender's TLS client certificate"

        def refused(reply_of: Callable[[], Reply], code: str) -> Callable[[], str]:
            def check() -> str:
                before = app.calls
                reply = reply_of()
                expect((reply.status, reply.code) == (401, code), f"{reply.status} {reply.code}")
                expect(app.calls == before, "the app ran")
                return f"HTTP 401 {code}, the app never ran"

            return check

        tampered = body.replace(b"50000.00", b"90000.00")
        out.step("signed request verified before the app", signed_request)
        out.step("signed response verified by the lender", signed_response)
        out.step("mutual TLS", client_certificate)
        out.step(
            "tampered body, same signature",
            refused(lambda: lender.post(tampered, signature), "signature.invalid"),
        )
        out.step(
            "replay of the first request",
            refused(lambda: lender.post(body, signature), "signature.replayed"),
        )
        out.step(
            "request without a signature",
            refused(lambda: lender.post(body, None), "signature.missing"),
        )
    return out


def main() -> int:
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(errors="replace")
    print("flask-apisec demo: OCEN-style signed request/response over TLS on 127.0.0.1")
    try:
        with tempfile.TemporaryDirectory(prefix="apisec-demo-") as tmp:
            transcript = run(Path(tmp))
    except KeyboardInterrupt:
        print("interrupted; server stopped and temporary files removed")
        return 130
    passed = sum(transcript.results)
    total = len(transcript.results)
    print(f"{passed}/{total} steps passed" if passed == total else f"FAILED: {passed}/{total}")
    return 0 if passed == total else 1


if __name__ == "__main__":
    sys.exit(main())
