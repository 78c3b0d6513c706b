"""SignatureMiddleware under werkzeug's test client: bodies byte-for-byte, each built-in
profile's good request and one named test per attack, replay, key-source outage, response
signing over exactly the bytes sent, PEP 3333 close()/write()/exc_info, and error rendering."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import logging
import re
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from werkzeug.test import Client, EnvironBuilder
from werkzeug.wrappers import Request

from wsgi_apisec import jws
from wsgi_apisec.encoding import b64url_encode, canonical_json, json_dumps
from wsgi_apisec.environ import ENV_SIGNATURE, ENV_TOKEN
from wsgi_apisec.errors import (
    APISecError,
    ConfigurationError,
    InsufficientScope,
    InvalidToken,
    KeySourceError,
    MissingCredentials,
    SignatureError,
)
from wsgi_apisec.keys import PrivateKey
from wsgi_apisec.message import Body, Headers, Message
from wsgi_apisec.middleware import Rule, SignatureMiddleware
from wsgi_apisec.profiles import OCEN, OPENG2P, UKOB, Profile, ukob_header
from wsgi_apisec.replay import MemoryReplayStore
from wsgi_apisec.resolvers import KeyQuery, StaticKeyResolver
from wsgi_apisec.responses import error_response
from wsgi_apisec.signatures import RequestVerifier
from wsgi_apisec.tokens import AccessToken

MiB = 1024 * 1024


# --- keys, apps, clients -------------------------------------------------------------------------


def rsa_key(kid: str, *algs: str) -> PrivateKey:
    raw = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return PrivateKey.from_key(raw, kid=kid, algorithms=list(algs))


@pytest.fixture(scope="module")
def keys() -> dict[str, PrivateKey]:
    return {
        "ocen": rsa_key("p1-key", "RS256"),
        "ukob": rsa_key("ukob-kid", "PS256"),
        "openg2p": rsa_key("partner-key", "RS256"),
        "attacker": rsa_key("p1-key", "RS256", "PS256"),
        "server": rsa_key("server", "RS256", "PS256"),
    }


def token(participant: str = "p1") -> AccessToken:
    return AccessToken(
        raw="stand-in",
        claims={"participantId": participant},
        issuer="https://auth.example",
        subject="client",
        client_id="client",
        scopes=frozenset(),
    )


@dataclass
class Echo:
    """Returns what it received: SHA-256 and length of the body, and what was verified."""

    calls: int = 0
    seen: list[dict[str, Any]] = field(default_factory=list)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        self.calls += 1
        data = Request(environ).get_data()
        result = environ.get(ENV_SIGNATURE)
        info = {
            "sha256": hashlib.sha256(data).hexdigest(),
            "length": len(data),
            "content_length": environ.get("CONTENT_LENGTH"),
            "transfer_encoding": environ.get("HTTP_TRANSFER_ENCODING"),
            "profile": result.profile if result else None,
            "owner": result.owner if result else None,
        }
        self.seen.append(info)
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps(info).encode()]


def with_token(app: Any, tok: AccessToken | None) -> Any:
    """Stand-in for the token layer: an outer layer that validated a token puts it here."""

    def outer(environ: dict[str, Any], start_response: Any) -> Any:
        if tok is not None:
            environ[ENV_TOKEN] = tok
        return app(environ, start_response)

    return outer


@dataclass
class Case:
    """One built-in profile, set up as a provider (server) and a participant (client)."""

    name: str
    server: Profile
    client: Profile
    key: PrivateKey
    resolver: StaticKeyResolver
    body: bytes
    tampered: bytes
    tok: AccessToken | None = None

    def header(self, key: PrivateKey | None = None, **changes: Any) -> dict[str, Any]:
        p = self.client
        extra = p.sign_header(Message(), time.time()) if p.sign_header else None
        header = jws.build_header(
            key or self.key,
            p.sign_alg,
            b64=p.sign_b64,
            b64_in_crit=p.sign_b64_in_crit,
            extra=extra,
            crit=p.sign_crit,
        )
        header.update(changes)
        return {k: v for k, v in header.items() if v is not None}

    def payload(self, body: bytes) -> bytes:
        if self.client.payload == "canonical_json":
            return canonical_json(json.loads(body))
        return body

    def sign(self, body: bytes, key: PrivateKey | None = None, **changes: Any) -> str:
        return jws.sign(key or self.key, self.payload(body), self.header(key, **changes))


@pytest.fixture(scope="module")
def cases(keys: dict[str, PrivateKey]) -> dict[str, Case]:
    g2p_body = json.dumps(
        {"header": {"sender_id": "partner-x", "action": "link"}, "message": {"fa": "ü"}}
    ).encode()
    return {
        "ocen": Case(
            "ocen",
            OCEN,
            OCEN,
            keys["ocen"],
            StaticKeyResolver(owners={"p1": [keys["ocen"].public_key()]}),
            b'{"loanApplicationId":"la-1"}',
            b'{"loanApplicationId":"la-2"}',
            token(),
        ),
        "ukob": Case(
            "ukob",
            UKOB.replace(sign_header=ukob_header("aspsp-1/server")),
            UKOB.replace(sign_header=ukob_header("tpp-1/client")),
            keys["ukob"],
            StaticKeyResolver([keys["ukob"].public_key()]),
            b'{"Data":{"Initiation":{"Amount":"10.00"}}}',
            b'{"Data":{"Initiation":{"Amount":"99.00"}}}',
        ),
        "openg2p": Case(
            "openg2p",
            OPENG2P,
            OPENG2P,
            keys["openg2p"],
            StaticKeyResolver(owners={"partner-x": [keys["openg2p"].public_key()]}),
            g2p_body,
            g2p_body.replace(b"link", b"unlink"),
        ),
    }


@dataclass
class Setup:
    mw: SignatureMiddleware
    echo: Echo
    client: Client
    case: Case

    def post(self, body: bytes, headers: Any = None, path: str = "/api/x", **kw: Any) -> Any:
        return self.client.post(path, data=body, headers=headers, **kw)


def make(case: Case, keys: dict[str, PrivateKey], **kw: Any) -> Setup:
    echo = Echo()
    kw.setdefault("signing_key", keys["server"])
    kw.setdefault("replay_store", MemoryReplayStore())
    mw = SignatureMiddleware(
        echo, [Rule("/api/**", profile=case.server)], resolver=case.resolver, **kw
    )
    return Setup(mw, echo, Client(with_token(mw, case.tok)), case)


def verify_response(profile: Profile, resp: Any, server: PrivateKey) -> None:
    """The client's side: the response signature covers exactly the bytes received."""
    verifier = RequestVerifier(
        profile.replace(key_owner=None, replay=None), StaticKeyResolver([server.public_key()])
    )
    message = Message(status=resp.status_code, headers=Headers(list(resp.headers.items())))
    message.body = Body(resp.get_data())
    verifier.verify(message)


def problem(resp: Any) -> dict[str, Any]:
    assert resp.headers["Content-Type"] == "application/problem+json"
    assert resp.headers["Cache-Control"] == "no-store"
    doc: dict[str, Any] = json.loads(resp.get_data())
    assert doc["status"] == resp.status_code
    return doc


PROFILES = ["ocen", "ukob", "openg2p"]


# --- each profile: the good request, then one test per attack ------------------------------------


@pytest.mark.parametrize("name", PROFILES)
def test_good_request_passes_and_response_is_signed(name: str, cases: Any, keys: Any) -> None:
    case = cases[name]
    s = make(case, keys)
    resp = s.post(case.body, {case.server.emit_header: case.sign(case.body)})
    assert resp.status_code == 200, resp.get_data()
    seen = json.loads(resp.get_data())
    assert seen["sha256"] == hashlib.sha256(case.body).hexdigest()
    assert seen["profile"] == case.server.name
    assert seen["owner"] == {"ocen": "p1", "ukob": None, "openg2p": "partner-x"}[name]
    verify_response(case.server, resp, keys["server"])


def rejected(s: Setup, resp: Any, status: int, code: str) -> None:
    doc = problem(resp)
    assert (resp.status_code, doc["code"]) == (status, code), doc
    assert s.echo.calls == 0, "the app ran for a rejected request"


@pytest.mark.parametrize("name", PROFILES)
def test_tampered_body_is_401(name: str, cases: Any, keys: Any) -> None:
    case = cases[name]
    s = make(case, keys)
    resp = s.post(case.tampered, {case.server.emit_header: case.sign(case.body)})
    rejected(s, resp, 401, "signature.invalid")


@pytest.mark.parametrize("name", PROFILES)
def test_tampered_header_alg_changed_is_401(name: str, cases: Any, keys: Any) -> None:
    case = cases[name]
    s = make(case, keys)
    good = case.sign(case.body)
    other = "PS256" if case.key.allows("RS256") else "RS256"
    header = {**jws.parse_compact(good).header, "alg": other}
    forged = b64url_encode(json_dumps(header)) + ".." + good.split("..")[1]
    rejected(s, s.post(case.body, {case.server.emit_header: forged}), 401, "signature.invalid")


@pytest.mark.parametrize("name", PROFILES)
def test_tampered_header_extra_member_is_401(name: str, cases: Any, keys: Any) -> None:
    case = cases[name]
    s = make(case, keys)
    good = case.sign(case.body)
    header = {**jws.parse_compact(good).header, "typ": "JOSE"}
    forged = b64url_encode(json_dumps(header)) + ".." + good.split("..")[1]
    rejected(s, s.post(case.body, {case.server.emit_header: forged}), 401, "signature.invalid")


@pytest.mark.parametrize("name", PROFILES)
def test_wrong_key_is_401(name: str, cases: Any, keys: Any) -> None:
    case = cases[name]
    s = make(case, keys)
    attacker = rsa_key(case.key.kid or "", *sorted(case.key.jose_algorithms))
    value = case.sign(case.body, key=attacker)
    rejected(s, s.post(case.body, {case.server.emit_header: value}), 401, "signature.invalid")


@pytest.mark.parametrize("name", PROFILES)
def test_unknown_kid_is_401(name: str, cases: Any, keys: Any) -> None:
    case = cases[name]
    s = make(case, keys)
    value = case.sign(case.body, kid="no-such-key")
    resp = s.post(case.body, {case.server.emit_header: value})
    if not case.server.match_kid:
        # OCEN finds the key by participantId alone; the JWS kid plays no part (PROTOCOLS.md).
        assert resp.status_code == 200
        return
    rejected(s, resp, 401, "signature.unknown_key")


@pytest.mark.parametrize("name", PROFILES)
def test_alg_none_is_401(name: str, cases: Any, keys: Any) -> None:
    case = cases[name]
    s = make(case, keys)
    header = {**case.header(), "alg": "none"}
    value = b64url_encode(json_dumps(header)) + ".."
    rejected(s, s.post(case.body, {case.server.emit_header: value}), 401, "signature.invalid")


@pytest.mark.parametrize("name", PROFILES)
def test_key_confusion_hs256_with_public_pem_as_secret_is_401(
    name: str, cases: Any, keys: Any
) -> None:
    case = cases[name]
    s = make(case, keys)
    pem = case.key.public_key().key.public_bytes(  # type: ignore[union-attr]
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = {**case.header(), "alg": "HS256"}
    header_b64 = b64url_encode(json_dumps(header))
    payload = case.payload(case.body)
    data = payload if header.get("b64") is False else b64url_encode(payload).encode()
    mac = hmac.new(pem, header_b64.encode() + b"." + data, hashlib.sha256).digest()
    value = f"{header_b64}..{b64url_encode(mac)}"
    rejected(s, s.post(case.body, {case.server.emit_header: value}), 401, "signature.invalid")


@pytest.mark.parametrize("name", PROFILES)
def test_embedded_jwk_is_401(name: str, cases: Any, keys: Any) -> None:
    case = cases[name]
    s = make(case, keys)
    attacker = keys["attacker"]
    alg = case.client.sign_alg
    value = case.sign(case.body, key=attacker, jwk=attacker.public_key().to_jwk(), alg=alg)
    rejected(s, s.post(case.body, {case.server.emit_header: value}), 401, "signature.invalid")


@pytest.mark.parametrize("name", PROFILES)
def test_malformed_signature_is_400(name: str, cases: Any, keys: Any) -> None:
    case = cases[name]
    s = make(case, keys)
    resp = s.post(case.body, {case.server.emit_header: "not-a-jws"})
    rejected(s, resp, 400, "signature.malformed")


@pytest.mark.parametrize("name", PROFILES)
def test_missing_signature_is_401(name: str, cases: Any, keys: Any) -> None:
    case = cases[name]
    s = make(case, keys)
    rejected(s, s.post(case.body), 401, "signature.missing")


@pytest.mark.parametrize("name", PROFILES)
def test_two_signature_headers_are_400(name: str, cases: Any, keys: Any) -> None:
    case = cases[name]
    s = make(case, keys)
    value = case.sign(case.body)
    headers = [(case.server.emit_header, value), (case.server.emit_header, value)]
    rejected(s, s.post(case.body, headers), 400, "signature.malformed")


def test_ocen_signature_and_x_jws_signature_together_are_400(cases: Any, keys: Any) -> None:
    case = cases["ocen"]
    s = make(case, keys)
    value = case.sign(case.body)
    resp = s.post(case.body, {"x-jws-signature": value, "Signature": value})
    rejected(s, resp, 400, "signature.malformed")


@pytest.mark.parametrize("name", ["ocen", "ukob"])
def test_replayed_request_is_401(name: str, cases: Any, keys: Any) -> None:
    case = cases[name]
    s = make(case, keys)
    headers = {case.server.emit_header: case.sign(case.body)}
    assert s.post(case.body, headers).status_code == 200
    resp = s.post(case.body, headers)
    doc = problem(resp)
    assert (resp.status_code, doc["code"]) == (401, "signature.replayed")
    assert s.echo.calls == 1


@pytest.mark.parametrize("name", PROFILES)
def test_key_source_down_is_503(name: str, cases: Any, keys: Any) -> None:
    class Down:
        def resolve(self, query: KeyQuery) -> list[Any]:
            raise KeySourceError("registry unavailable", detail="connect timeout")

    case = cases[name]
    echo = Echo()
    mw = SignatureMiddleware(echo, [Rule("/**", profile=case.server)], resolver=Down())
    resp = Client(with_token(mw, case.tok)).post(
        "/x", data=case.body, headers={case.server.emit_header: case.sign(case.body)}
    )
    doc = problem(resp)
    assert (resp.status_code, doc["code"], doc["error"]) == (
        503,
        "keys.unavailable",
        "temporarily_unavailable",
    )
    assert echo.calls == 0


def test_ocen_without_a_verified_token_is_400(cases: Any, keys: Any) -> None:
    case = cases["ocen"]
    echo = Echo()
    mw = SignatureMiddleware(echo, [Rule("/**", profile=OCEN)], resolver=case.resolver)
    resp = Client(mw).post("/x", data=case.body, headers={"x-jws-signature": case.sign(case.body)})
    assert (resp.status_code, problem(resp)["code"]) == (400, "token.missing")
    assert echo.calls == 0


def test_ocen_token_of_another_participant_is_401(cases: Any, keys: Any) -> None:
    case = cases["ocen"]
    echo = Echo()
    mw = SignatureMiddleware(echo, [Rule("/**", profile=OCEN)], resolver=case.resolver)
    client = Client(with_token(mw, token("p2")))
    resp = client.post("/x", data=case.body, headers={"x-jws-signature": case.sign(case.body)})
    assert (resp.status_code, problem(resp)["code"]) == (401, "signature.unknown_key")


# --- bodies reach the app byte for byte ----------------------------------------------------------


def body_of(size: int) -> bytes:
    block = hashlib.sha256(str(size).encode()).digest() * 2048  # 64 KiB, not all one byte
    return (block * (size // len(block) + 1))[:size]


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
@pytest.mark.parametrize("size", [0, 1, MiB, 32 * MiB], ids=["0B", "1B", "1MiB", "32MiB"])
def test_body_reaches_app_identical(size: int, framing: str, cases: Any, keys: Any) -> None:
    case = cases["ocen"]
    s = make(case, keys, max_body=64 * MiB)
    data = body_of(size)
    path = "/api/upload?part=1"
    value = case.sign(data if size else path.encode())
    headers = {"x-jws-signature": value}
    if framing == "chunked":
        headers["Transfer-Encoding"] = "chunked"
        overrides = {"wsgi.input_terminated": True, "CONTENT_LENGTH": ""}
        resp = s.client.post(
            path, input_stream=io.BytesIO(data), headers=headers, environ_overrides=overrides
        )
    else:
        resp = s.client.post(path, data=data, headers=headers)
    assert resp.status_code == 200, resp.get_data()
    seen = json.loads(resp.get_data())
    assert (seen["length"], seen["sha256"]) == (size, hashlib.sha256(data).hexdigest())
    # Re-framed by length, so a reader of CONTENT_LENGTH (Django, PEP 3333) stops right too.
    assert (seen["content_length"], seen["transfer_encoding"]) == (str(size), None)
    verify_response(OCEN, resp, keys["server"])


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_body_over_limit_is_413_and_app_never_runs(framing: str, cases: Any, keys: Any) -> None:
    case = cases["ocen"]
    s = make(case, keys, max_body=MiB)
    data = body_of(MiB + 1)
    headers = {"x-jws-signature": case.sign(data)}
    if framing == "chunked":
        headers["Transfer-Encoding"] = "chunked"
        overrides = {"wsgi.input_terminated": True, "CONTENT_LENGTH": ""}
        resp = s.client.post(
            "/api/x", input_stream=io.BytesIO(data), headers=headers, environ_overrides=overrides
        )
    else:
        resp = s.post(data, headers)
    rejected(s, resp, 413, "request.too_large")


def test_body_exactly_at_limit_passes(cases: Any, keys: Any) -> None:
    case = cases["ocen"]
    s = make(case, keys, max_body=MiB)
    data = body_of(MiB)
    assert s.post(data, {"x-jws-signature": case.sign(data)}).status_code == 200


# --- rules ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "path", "hit"),
    [
        ("/api/**", "/api", True),
        ("/api/**", "/api/a/b", True),
        ("/api/**", "/apix", False),
        ("/api/*", "/api/a", True),
        ("/api/*", "/api/a/b", False),
        ("/a/?/c", "/a/b/c", True),
        ("/a/?/c", "/a/bb/c", False),
        ("/a.b", "/aXb", False),
        ("/x/**/z", "/x/y/w/z", True),
        (re.compile(r"/v\d+/items"), "/v2/items", True),
        (re.compile(r"/v\d+/items"), "/v2/items/1", False),
    ],
)
def test_rule_patterns(pattern: Any, path: str, hit: bool) -> None:
    assert Rule(pattern, exempt=True).matches("GET", path) is hit


def test_rule_methods_and_first_match_wins(cases: Any, keys: Any) -> None:
    case = cases["ocen"]
    echo = Echo()
    rules = [
        Rule("/api/health", methods=["get"], exempt=True),
        Rule("/api/**", profile=OCEN),
    ]
    mw = SignatureMiddleware(echo, rules, resolver=case.resolver)
    client = Client(with_token(mw, case.tok))
    assert client.get("/api/health").status_code == 200
    assert client.post("/api/health").status_code == 401  # POST is not exempt
    assert client.get("/elsewhere").status_code == 200  # no rule, no default: passed through
    assert echo.calls == 2


def test_no_rule_matched_uses_default_profile(cases: Any, keys: Any) -> None:
    case = cases["ocen"]
    echo = Echo()
    mw = SignatureMiddleware(
        echo, [Rule("/public/**", exempt=True)], resolver=case.resolver, default_profile=OCEN
    )
    client = Client(with_token(mw, case.tok))
    assert client.get("/public/x").status_code == 200
    resp = client.get("/anything")
    assert (resp.status_code, problem(resp)["code"]) == (401, "signature.missing")
    # Percent-encoding cannot route around a rule: rules see the decoded path.
    assert client.get("/%70ublic/x").status_code == 200
    assert echo.calls == 2


@pytest.mark.parametrize("path", ["/public/../admin", "/public/./x", "/public/.."])
def test_exempt_rule_never_matches_dot_segments(path: str, cases: Any) -> None:
    # A proxy or framework that resolves ".." would route these outside /public.
    echo = Echo()
    mw = SignatureMiddleware(
        echo,
        [Rule("/public/**", exempt=True)],
        resolver=cases["ocen"].resolver,
        default_profile=OCEN,
    )
    client = Client(with_token(mw, cases["ocen"].tok))
    assert client.get("/public/.well-known/x").status_code == 200
    resp = client.get(path)
    assert (resp.status_code, problem(resp)["code"]) == (401, "signature.missing")
    assert echo.calls == 1


@pytest.mark.parametrize("kw", [{}, {"exempt": True, "profile": OCEN}], ids=["neither", "both"])
def test_rule_needs_exactly_one_of_profile_or_exempt(kw: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        Rule("/x", **kw)


def test_middleware_without_rules_or_default_is_a_configuration_error(cases: Any) -> None:
    with pytest.raises(ConfigurationError):
        SignatureMiddleware(Echo(), [], resolver=cases["ocen"].resolver)


def test_profile_that_cannot_sign_fails_at_start_up(cases: Any, keys: Any) -> None:
    # UK OB's crit names iat/iss/tan: without sign_header there is nothing to put there.
    with pytest.raises(ConfigurationError, match="ukob"):
        SignatureMiddleware(
            Echo(),
            [Rule("/**", profile=UKOB)],
            resolver=cases["ukob"].resolver,
            signing_key=keys["server"],
        )


# --- response signing and PEP 3333 ---------------------------------------------------------------


@dataclass
class Tracked:
    """An app iterable that records close() (PEP 3333: the server must call it)."""

    chunks: list[bytes]
    closed: bool = False

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.chunks)

    def close(self) -> None:
        self.closed = True


def signed_setup(app: Any, cases: Any, keys: Any, **kw: Any) -> tuple[Client, Case]:
    case = cases["ocen"]
    kw.setdefault("signing_key", keys["server"])
    mw = SignatureMiddleware(app, [Rule("/**", profile=OCEN)], resolver=case.resolver, **kw)
    return Client(with_token(mw, case.tok)), case


def call(client_case: tuple[Client, Case], body: bytes = b"{}") -> Any:
    client, case = client_case
    return client.post("/x", data=body, headers={"x-jws-signature": case.sign(body)})


def test_streamed_generator_response_is_signed_over_the_bytes_sent(cases: Any, keys: Any) -> None:
    state = {"closed": False}

    def app(environ: Any, start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain"), ("X-JWS-Signature", "app's")])
        try:
            for i in range(200):
                yield f"line {i}\n".encode() * 100
        finally:
            state["closed"] = True

    resp = call(signed_setup(app, cases, keys, spool_threshold=64 * 1024))
    data = resp.get_data()
    assert resp.status_code == 200 and len(data) > 64 * 1024
    assert resp.headers["Content-Length"] == str(len(data))
    assert resp.headers.getlist("x-jws-signature") != ["app's"]
    parsed = jws.parse_compact(resp.headers["x-jws-signature"])
    jws.verify(parsed, keys["server"].public_key(), data)
    assert state["closed"]


def test_write_callable_response_is_signed_in_order(cases: Any, keys: Any) -> None:
    def app(environ: Any, start_response: Any) -> Tracked:
        write = start_response("201 Created", [("Content-Type", "text/plain")])
        write(b"first,")
        write(b"second,")
        return tracked

    tracked = Tracked([b"third"])
    resp = call(signed_setup(app, cases, keys))
    assert (resp.status_code, resp.get_data()) == (201, b"first,second,third")
    parsed = jws.parse_compact(resp.headers["x-jws-signature"])
    jws.verify(parsed, keys["server"].public_key(), resp.get_data())
    assert tracked.closed


def wsgi_call(
    mw: Any, case: Case, body: bytes = b"{}"
) -> tuple[Iterable[bytes], list[Any], dict[str, Any]]:
    env = EnvironBuilder(
        method="POST", path="/x", data=body, headers={"x-jws-signature": case.sign(body)}
    ).get_environ()
    env[ENV_TOKEN] = case.tok
    started: list[Any] = []

    def start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
        started.append((status, headers, exc_info))
        return lambda data: None

    return mw(env, start_response), started, env


@pytest.mark.parametrize("sign", [True, False], ids=["signed", "unsigned"])
def test_close_is_called_when_the_consumer_stops_early(sign: bool, cases: Any, keys: Any) -> None:
    case = cases["ocen"]
    tracked = Tracked([b"a" * 100_000] * 30)

    def app(environ: Any, start_response: Any) -> Tracked:
        start_response("200 OK", [])
        return tracked

    mw = SignatureMiddleware(
        app,
        [Rule("/**", profile=OCEN, sign_response=sign)],
        resolver=case.resolver,
        signing_key=keys["server"],
        spool_threshold=1000,
    )
    body = body_of(5000)  # spooled to a file on the way in, too
    result, _, env = wsgi_call(mw, case, body)
    next(iter(result))
    result.close()  # type: ignore[attr-defined]
    assert tracked.closed
    assert env["wsgi.input"].closed, "the request body's spool file was left open"


def test_exempt_passthrough_keeps_the_app_iterable(cases: Any) -> None:
    tracked = Tracked([b"x"])

    def app(environ: Any, start_response: Any) -> Tracked:
        start_response("200 OK", [])
        return tracked

    mw = SignatureMiddleware(app, [Rule("/**", exempt=True)], resolver=cases["ocen"].resolver)
    result, _, _ = wsgi_call(mw, cases["ocen"])
    assert result is tracked


def test_exc_info_is_passed_through_and_error_body_signed(cases: Any, keys: Any) -> None:
    case = cases["ocen"]

    def app(environ: Any, start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        try:
            raise ValueError("boom")
        except ValueError:
            start_response("500 Internal Server Error", [], sys.exc_info())
        return [b"went wrong"]

    mw = SignatureMiddleware(
        app, [Rule("/**", profile=OCEN)], resolver=case.resolver, signing_key=keys["server"]
    )
    result, started, _ = wsgi_call(mw, case)
    ((status, headers, exc_info),) = started
    assert status.startswith("500") and exc_info is not None and exc_info[0] is ValueError
    data = b"".join(result)
    sig = dict(headers)["x-jws-signature"]
    jws.verify(jws.parse_compact(sig), keys["server"].public_key(), data)


def test_start_response_twice_without_exc_info_is_a_bug_that_surfaces(
    cases: Any, keys: Any
) -> None:
    def app(environ: Any, start_response: Any) -> list[bytes]:
        start_response("200 OK", [])
        start_response("200 OK", [])
        return []

    mw = SignatureMiddleware(
        app,
        [Rule("/**", profile=OCEN)],
        resolver=cases["ocen"].resolver,
        signing_key=keys["server"],
    )
    with pytest.raises(RuntimeError, match="twice"):
        wsgi_call(mw, cases["ocen"])


def test_response_over_cap_is_500_never_unsigned(cases: Any, keys: Any) -> None:
    tracked = Tracked([b"z" * 1000] * 10)

    def app(environ: Any, start_response: Any) -> Tracked:
        start_response("200 OK", [])
        return tracked

    resp = call(signed_setup(app, cases, keys, max_response_body=5000))
    assert (resp.status_code, problem(resp)["code"]) == (500, "response.too_large")
    assert "x-jws-signature" not in resp.headers
    assert tracked.closed


def test_response_the_profile_cannot_sign_is_500(cases: Any, keys: Any) -> None:
    case = cases["openg2p"]

    def app(environ: Any, start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"not json"]

    mw = SignatureMiddleware(
        app, [Rule("/**", profile=OPENG2P)], resolver=case.resolver, signing_key=keys["server"]
    )
    resp = Client(mw).post("/x", data=case.body, headers={"Signature": case.sign(case.body)})
    assert (resp.status_code, problem(resp)["code"]) == (500, "response.unsigned")
    assert "Signature" not in resp.headers


@pytest.mark.parametrize(
    ("method", "status", "length"),
    [("HEAD", "200 OK", "42"), ("POST", "204 No Content", None), ("POST", "200 OK", "0")],
)
def test_content_length_is_exact_except_head_and_204(
    method: str, status: str, length: str | None, cases: Any, keys: Any
) -> None:
    def app(environ: Any, start_response: Any) -> list[bytes]:
        headers = [("Content-Length", "42")] if method == "HEAD" else []
        start_response(status, headers)
        return []

    client, case = signed_setup(app, cases, keys)
    path = "/x"
    resp = client.open(path, method=method, headers={"x-jws-signature": case.sign(path.encode())})
    assert resp.headers.get("Content-Length") == length
    assert "x-jws-signature" in resp.headers


def test_sign_response_false_leaves_the_response_alone(cases: Any, keys: Any) -> None:
    case = cases["ocen"]
    echo = Echo()
    mw = SignatureMiddleware(
        echo,
        [Rule("/**", profile=OCEN, sign_response=False)],
        resolver=case.resolver,
        signing_key=keys["server"],
    )
    resp = Client(with_token(mw, case.tok)).post(
        "/x", data=case.body, headers={"x-jws-signature": case.sign(case.body)}
    )
    assert resp.status_code == 200 and "x-jws-signature" not in resp.headers


# --- error rendering (responses.py) --------------------------------------------------------------


def test_problem_details_shape() -> None:
    status, headers, body = error_response(SignatureError("signature does not verify"))
    assert status == "401 Unauthorized"
    assert json.loads(body) == {
        "type": "about:blank",
        "title": "Unauthorized",
        "status": 401,
        "detail": "signature does not verify",
        "error": "invalid_signature",
        "code": "signature.invalid",
    }
    names = dict(headers)
    assert names["Content-Type"] == "application/problem+json"
    assert names["Content-Length"] == str(len(body))
    assert names["Cache-Control"] == "no-store"
    assert "WWW-Authenticate" not in names  # signature errors: left to the profile


def test_profile_envelope_replaces_problem_json() -> None:
    g2p = OPENG2P.replace(
        envelope=lambda err: {"errors": [{"code": f"err.{err.code}", "message": err.description}]}
    )
    _, headers, body = error_response(SignatureError("bad"), g2p)
    assert dict(headers)["Content-Type"] == "application/json"
    assert json.loads(body) == {"errors": [{"code": "err.signature.invalid", "message": "bad"}]}


@pytest.mark.parametrize(
    ("err", "challenge"),
    [
        (MissingCredentials("no token"), "Bearer"),  # RFC 6750 §3.1: no error code
        (InvalidToken("expired"), 'Bearer error="invalid_token", error_description="expired"'),
        (
            InsufficientScope("needs more", challenge={"scope": "a b"}),
            'Bearer error="insufficient_scope", error_description="needs more", scope="a b"',
        ),
    ],
    ids=["missing", "invalid_token", "insufficient_scope"],
)
def test_www_authenticate_rfc6750_3(err: APISecError, challenge: str) -> None:
    _, headers, _ = error_response(err)
    assert dict(headers)["WWW-Authenticate"] == challenge


def test_challenge_hook_overrides_the_default() -> None:
    _, headers, _ = error_response(
        SignatureError("x"), challenge=lambda err: f'Signature error="{err.code}"'
    )
    assert dict(headers)["WWW-Authenticate"] == 'Signature error="signature.invalid"'


def test_error_headers_cannot_inject_or_change_framing() -> None:
    err = InvalidToken(
        "x",
        headers={"DPoP-Nonce": "abc\r\nSet-Cookie: a=b", "Content-Length": "0", "Bad Name": "v"},
    )
    _, headers, body = error_response(err)
    names = dict(headers)
    assert names["DPoP-Nonce"] == "abcSet-Cookie: a=b"
    assert names["Content-Length"] == str(len(body))
    assert "Bad Name" not in names
    assert all("\r" not in v and "\n" not in v for _, v in headers)


def test_one_log_line_per_rejection_without_the_signature(
    cases: Any, keys: Any, caplog: pytest.LogCaptureFixture
) -> None:
    case = cases["ocen"]
    s = make(case, keys)
    value = case.sign(case.body)
    with caplog.at_level(logging.INFO, logger="wsgi_apisec"):
        s.post(case.tampered, {"x-jws-signature": value})
    records = [r for r in caplog.records if r.name == "wsgi_apisec"]
    assert len(records) == 1 and records[0].levelno == logging.INFO
    line = records[0].getMessage()
    assert "POST /api/x" in line and "401 signature.invalid" in line
    assert value.split("..")[1] not in caplog.text and value not in caplog.text


def test_server_side_failures_log_at_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="wsgi_apisec"):
        error_response(KeySourceError("down", detail="jwks\r\nforged line"), where="GET /x")
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    assert "\n" not in record.getMessage() and "503 keys.unavailable" in record.getMessage()
