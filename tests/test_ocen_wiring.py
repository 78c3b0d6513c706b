"""OCEN end to end through ``protect()``: the caller's signature key is found by the
``participantId`` claim of the *verified* access token (PROTOCOLS.md, OCEN: the reference
code reads the claim before verifying the token; here the token layer runs first).
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from werkzeug.test import Client
from werkzeug.wrappers import Request

from tests.test_tokens import ISS, NOW, claims, mint, signing_key
from wsgi_apisec import jws, profiles
from wsgi_apisec.environ import ENV_SIGNATURE, ENV_TOKEN
from wsgi_apisec.keys import KeySet, PrivateKey, PublicKey
from wsgi_apisec.middleware import Rule, TokenRequirement, protect
from wsgi_apisec.resolvers import KeyQuery, StaticKeyResolver
from wsgi_apisec.tokens import Issuer, TokenValidator

BODY = b'{"loanApplicationId":"la-1","amount":"50000.00"}'
TOKEN_ALG = "RS256"


@dataclass
class Recorder:
    calls: int = 0
    seen: list[dict[str, Any]] = field(default_factory=list)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        self.calls += 1
        data = Request(environ).get_data()
        result = environ[ENV_SIGNATURE]
        info = {
            "participant": environ[ENV_TOKEN].claims["participantId"],
            "owner": result.owner,
            "sha256": hashlib.sha256(data).hexdigest(),
        }
        self.seen.append(info)
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps(info).encode()]


class CountingResolver:
    """The participant registry stand-in: records every lookup."""

    def __init__(self, inner: StaticKeyResolver) -> None:
        self.inner = inner
        self.queries: list[KeyQuery] = []

    def resolve(self, query: KeyQuery) -> list[PublicKey]:
        self.queries.append(query)
        return self.inner.resolve(query)


class Unread(io.BytesIO):
    reads = 0

    def read(self, size: int | None = -1) -> bytes:
        self.reads += 1
        return super().read(size)


@pytest.fixture(scope="module")
def participants() -> dict[str, PrivateKey]:
    return {
        "A": PrivateKey.generate("RS256", kid="a-1"),
        "B": PrivateKey.generate("RS256", kid="b-1"),
    }


@dataclass
class Setup:
    app: Recorder
    resolver: CountingResolver
    client: Client


def make(participants: dict[str, PrivateKey]) -> Setup:
    owners = {name: [key.public_key()] for name, key in participants.items()}
    resolver = CountingResolver(StaticKeyResolver(owners=owners))
    # OCEN Auth Service: Keycloak, typ JWT, no audience rule documented.
    issuer = Issuer(
        ISS,
        jwks=KeySet([signing_key(TOKEN_ALG).public_key()]),
        allow_jwt_typ=True,
        required_claims=("exp", "iat", "iss", "sub"),
    )
    app = Recorder()
    wrapped = protect(
        app,
        [Rule("/ocen/**", profile=profiles.OCEN, token=TokenRequirement())],
        validator=TokenValidator(issuer, clock=lambda: NOW),
        resolver=resolver,
    )
    return Setup(app, resolver, Client(wrapped))


def ocen_token(participant: str, key: PrivateKey | None = None) -> str:
    return mint(key or signing_key(TOKEN_ALG), claims(participantId=participant), typ="JWT")


def ocen_signature(key: PrivateKey, body: bytes = BODY) -> str:
    """As the reference code signs: RS256, ``b64: false`` without ``crit``, detached."""
    header = jws.build_header(key, "RS256", b64=False, b64_in_crit=False)
    return jws.sign(key, body, header)


def post(s: Setup, token: str, signature: str, **kw: Any) -> Any:
    headers = {"Authorization": f"Bearer {token}", "x-jws-signature": signature}
    return s.client.post("/ocen/loans", data=BODY, headers=headers, **kw)


def test_valid_token_and_signature_pass(participants: dict[str, PrivateKey]) -> None:
    s = make(participants)
    resp = post(s, ocen_token("A"), ocen_signature(participants["A"]))
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert json.loads(resp.get_data()) == {
        "participant": "A",
        "owner": "A",
        "sha256": hashlib.sha256(BODY).hexdigest(),
    }
    assert [q.owner for q in s.resolver.queries] == ["A"]


def test_forged_token_naming_another_participant_refused_before_key_lookup(
    participants: dict[str, PrivateKey],
) -> None:
    s = make(participants)
    attacker = PrivateKey.generate(TOKEN_ALG, kid=signing_key(TOKEN_ALG).kid)
    stream = Unread(BODY)
    resp = post(
        s,
        ocen_token("B", key=attacker),
        ocen_signature(participants["A"]),
        environ_overrides={"wsgi.input": stream},
    )
    assert resp.status_code == 401
    doc = json.loads(resp.get_data())
    assert (doc["error"], doc["code"]) == ("invalid_token", "token.signature")
    assert resp.headers["WWW-Authenticate"] == (
        'Bearer error="invalid_token", error_description="the token signature does not verify"'
    )
    assert s.resolver.queries == []  # the registry was never asked about "B"
    assert stream.reads == 0  # refused before the body was read
    assert s.app.calls == 0


def test_token_for_a_with_body_signed_by_b_is_a_signature_error(
    participants: dict[str, PrivateKey],
) -> None:
    s = make(participants)
    resp = post(s, ocen_token("A"), ocen_signature(participants["B"]))
    assert resp.status_code == 401
    doc = json.loads(resp.get_data())
    assert (doc["error"], doc["code"]) == ("invalid_signature", "signature.invalid")
    assert "WWW-Authenticate" not in resp.headers
    assert [q.owner for q in s.resolver.queries] == ["A"]
    assert s.app.calls == 0


def test_no_token_is_401_before_any_key_lookup(participants: dict[str, PrivateKey]) -> None:
    s = make(participants)
    resp = s.client.post(
        "/ocen/loans", data=BODY, headers={"x-jws-signature": ocen_signature(participants["A"])}
    )
    assert (resp.status_code, resp.headers["WWW-Authenticate"]) == (401, "Bearer")
    assert json.loads(resp.get_data())["code"] == "token.missing"
    assert s.resolver.queries == [] and s.app.calls == 0


def test_token_of_an_unknown_participant_is_unknown_key(
    participants: dict[str, PrivateKey],
) -> None:
    s = make(participants)
    resp = post(s, ocen_token("Z"), ocen_signature(participants["A"]))
    assert resp.status_code == 401
    assert json.loads(resp.get_data())["code"] == "signature.unknown_key"
    assert [q.owner for q in s.resolver.queries] == ["Z"]
    assert s.app.calls == 0
