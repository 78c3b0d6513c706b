"""Every quick start in README.md runs as written.

Each ``python`` block that follows a ``<!-- quickstart: NAME -->`` marker is executed with
only its placeholders swapped (the authorization server and registry URLs for a local server
on 127.0.0.1, key and database file names for files under tmp_path; the plain-WSGI block
also gets the user's own ``app``), and the app it builds then answers one good request (the
view ran) and bad ones (the exact 4xx). A block that is missing, renamed, no longer holds a
placeholder, or does not run fails its test.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from werkzeug.test import Client

from flask_apisec.testing import APISecClient, TestIssuer, make_client_cert
from sample_apps import registry
from sample_apps.config import DemoConfig, make_demo_config
from tests.samples import serve
from wsgi_apisec.errors import SignatureError
from wsgi_apisec.keys import PrivateKey
from wsgi_apisec.message import Body, Headers, Message
from wsgi_apisec.profiles import OCEN, OPENG2P
from wsgi_apisec.resolvers import StaticKeyResolver
from wsgi_apisec.signatures import RequestVerifier, ResponseSigner

README = Path(__file__).resolve().parents[1] / "README.md"
MARKER = re.compile(r"<!-- quickstart: ([a-z0-9-]+) -->\n```python\n(.*?)\n```", re.S)
NETWORKS = {"ocen", "fapi", "g2p", "wsgi"}
AUTH, REGISTRY = "https://auth.example", "https://registry.example"


def quick_starts() -> dict[str, str]:
    found: dict[str, str] = {}
    for name, code in MARKER.findall(README.read_text(encoding="utf-8")):
        assert name not in found, f"two quick starts named {name!r}"
        found[name] = code
    return found


def test_one_minimal_quick_start_per_network() -> None:
    found = quick_starts()
    assert set(found) == NETWORKS
    for name, code in found.items():
        lines = [line for line in code.splitlines() if line.strip()]
        assert 10 <= len(lines) <= 25, f"{name}: {len(lines)} lines"


@dataclass(frozen=True)
class Network:
    """An authorization server's JWKS and the sample participant registry on one port."""

    base: str
    issuer: TestIssuer
    demo: DemoConfig


@pytest.fixture(scope="module")
def network() -> Iterator[Network]:
    demo, issuer = make_demo_config(), TestIssuer("ES256")
    participants = registry.create_app(demo.registry)
    jwks = json.dumps(issuer.jwks).encode()

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        if environ["PATH_INFO"] in ("/jwks", "/realms/ocen/protocol/openid-connect/certs"):
            start_response("200 OK", [("Content-Type", "application/json")])
            return [jwks]
        return participants(environ, start_response)

    with serve(lambda _: app) as base:
        yield Network(base, issuer, demo)


def run(name: str, swaps: dict[str, str], **names: Any) -> dict[str, Any]:
    """Execute quick start ``name`` with ``swaps`` applied; its global names afterwards."""
    code = quick_starts()[name]
    for placeholder, value in swaps.items():
        assert placeholder in code, f"{name}: placeholder {placeholder!r} is gone"
        code = code.replace(placeholder, value)
    namespace: dict[str, Any] = {"__name__": f"quickstart_{name}", **names}
    exec(compile(code, f"README.md <quickstart: {name}>", "exec"), namespace)
    return namespace


def pem_file(path: Path, key: PrivateKey) -> str:
    path.write_bytes(key.to_pem())
    return repr(str(path))


def flask_client(app: Any) -> APISecClient:
    assert isinstance(app, Flask)
    app.test_client_class = APISecClient
    client = app.test_client()
    assert isinstance(client, APISecClient)
    return client


def signed_by(resp: Any, key: PrivateKey) -> bool:
    """The answer's OCEN ``x-jws-signature`` verifies with ``key`` over the bytes received."""
    verifier = RequestVerifier(
        OCEN.replace(key_owner=None, replay=None), StaticKeyResolver([key.public_key()])
    )
    message = Message(status=resp.status_code, headers=Headers(list(resp.headers.items())))
    message.body = Body(resp.get_data())
    try:
        verifier.verify(message)
    except SignatureError:
        return False
    return True


def ocen_signature(key: PrivateKey, path: str, body: bytes) -> dict[str, str]:
    message = Message(method="POST", target_uri="http://localhost" + path, body=Body(body))
    return dict(ResponseSigner(OCEN, key).sign(message))


def problem(resp: Any) -> tuple[int, str | None]:
    return resp.status_code, json.loads(resp.get_data() or b"{}").get("code")


# --- OCEN -----------------------------------------------------------------------------------


def test_ocen_quick_start(network: Network, tmp_path: Path) -> None:
    lender = PrivateKey.generate("RS256")
    ns = run(
        "ocen",
        {
            AUTH: network.base,
            REGISTRY + "/v4": network.base,
            '"lender.pem"': pem_file(tmp_path / "lender.pem", lender),
            "/var/lib/lender/replay.db": str(tmp_path / "replay.db"),
        },
    )
    client, lsp = flask_client(ns["app"]), network.demo.keys["lsp-1"]
    token = network.issuer.token(
        "ocen:loan-applications",
        iss=network.base + "/realms/ocen",
        aud=None,
        participantId="lsp-1",
        header={"typ": "JWT"},
    )
    path, body = "/ocen/v4/loan-applications", b'{"loanApplications":[{"amount":"5000.00"}]}'
    good = client.post(path, data=body, token=token, signature=(OCEN, lsp))
    assert good.status_code == 201, good.get_data(as_text=True)
    assert good.get_json() == {"originatorParticipantId": "lsp-1", "status": "CREATED"}
    assert signed_by(good, lender)

    other = body.replace(b"5000.00", b"9000.00")
    tampered = client.post(path, data=other, token=token, headers=ocen_signature(lsp, path, body))
    assert problem(tampered) == (401, "signature.invalid")
    replayed = client.post(path, data=body, token=token, signature=(OCEN, lsp))
    assert problem(replayed) == (401, "signature.replayed")


# --- FDX / FAPI -----------------------------------------------------------------------------


def test_fapi_quick_start(network: Network) -> None:
    client = flask_client(run("fapi", {AUTH: network.base})["app"])
    cert, interaction = make_client_cert("tpp"), str(uuid.uuid4())
    scopes = "fdx:customercontact:read fdx:customerpersonal:read"
    claims: dict[str, Any] = {"iss": network.base, "aud": "https://api.bank.example"}
    bound = network.issuer.token(scopes, cert=cert, **claims)
    good = client.get(
        "/fdx/v6/core/accounts/a-1/contact",
        token=bound,
        client_cert=cert,
        headers={"x-fapi-interaction-id": interaction},
    )
    assert good.status_code == 200, good.get_data(as_text=True)
    assert good.get_json() == {"accountId": "a-1", "holders": [{"name": "A. Holder"}]}
    assert good.headers["x-fapi-interaction-id"] == interaction

    unbound = network.issuer.token("fdx:accountbasic:read", **claims)
    resp = client.get("/fdx/v6/core/accounts", token=unbound)
    assert problem(resp) == (401, "token.unbound")
    uuid.UUID(resp.headers["x-fapi-interaction-id"])  # a fresh one, on errors too
    other_cert = client.get(
        "/fdx/v6/core/accounts/a-1/contact", token=bound, client_cert=make_client_cert("x")
    )
    assert problem(other_cert) == (401, "token.cert_mismatch")


# --- G2P Connect / OpenG2P ------------------------------------------------------------------


def link_request(sender: str) -> dict[str, Any]:
    return {
        "header": {"version": "1.0.0", "message_id": str(uuid.uuid4()), "sender_id": sender},
        "message": {"link_request": [{"reference_id": "r-1", "id": "ID-1", "fa": "fa-1"}]},
    }


def test_g2p_quick_start(network: Network) -> None:
    client = flask_client(run("g2p", {AUTH: network.base, REGISTRY: network.base})["app"])
    cert, keys = make_client_cert("partner"), network.demo.keys
    claims: dict[str, Any] = {"iss": network.base, "aud": "https://mapper.example"}
    token = network.issuer.token("mapper:link", cert=cert, **claims)
    envelope = link_request("g2p-partner")
    good = client.post(
        "/mapper/sync/link",
        json=envelope,
        token=token,
        client_cert=cert,
        signature=(OPENG2P, keys["g2p-partner"]),
    )
    assert good.status_code == 200, good.get_data(as_text=True)
    assert good.get_json() == {
        "header": {"message_id": envelope["header"]["message_id"], "receiver_id": "g2p-partner"},
        "message": {"link_response": [{"reference_id": "r-1", "status": "succ"}]},
    }

    # Another participant's key, under the partner's kid.
    partner_kid = keys["g2p-partner"].kid
    stranger = PrivateKey.from_key(keys["g2p-mapper"].key, kid=partner_kid, algorithms=["RS256"])
    forged = client.post(
        "/mapper/sync/link",
        json=link_request("g2p-partner"),
        token=token,
        client_cert=cert,
        signature=(OPENG2P, stranger),
    )
    assert problem(forged) == (401, "signature.invalid")
    unbound = network.issuer.token("mapper:link", **claims)
    resp = client.post("/mapper/sync/link", json=link_request("g2p-partner"), token=unbound)
    assert problem(resp) == (401, "token.cert_required")


# --- plain WSGI -----------------------------------------------------------------------------


def your_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    body = environ["wsgi.input"].read()
    token = environ.get("wsgi_apisec.token")
    answer = {"path": environ["PATH_INFO"], "bytes": len(body), "sub": token and token.subject}
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(answer).encode()]


def test_wsgi_quick_start(network: Network, tmp_path: Path) -> None:
    provider = PrivateKey.generate("RS256")
    swaps = {AUTH: network.base, REGISTRY: network.base}
    swaps['"provider.pem"'] = pem_file(tmp_path / "provider.pem", provider)
    client = Client(run("wsgi", swaps, app=your_app)["app"])
    claims: dict[str, Any] = {"iss": network.base, "aud": "https://api.example"}

    def bearer(scopes: str, **extra: Any) -> dict[str, str]:
        return {"Authorization": "Bearer " + network.issuer.token(scopes, **claims, **extra)}

    good = client.get("/payments/p-1", headers=bearer("payments:read"))
    assert good.status_code == 200
    assert json.loads(good.get_data())["path"] == "/payments/p-1"
    body = b'{"loan":"la-1"}'
    headers = bearer("ocen:loans", participantId="lsp-1")
    headers |= ocen_signature(network.demo.keys["lsp-1"], "/ocen/loans", body)
    signed = client.post("/ocen/loans", data=body, headers=headers)
    assert signed.status_code == 200, signed.get_data(as_text=True)
    assert json.loads(signed.get_data())["bytes"] == len(body)
    assert signed_by(signed, provider)
    assert client.get("/health").status_code == 200

    wrong_scope = client.get("/payments/p-1", headers=bearer("ocen:loans"))
    assert problem(wrong_scope) == (403, "token.insufficient_scope")
    assert problem(client.get("/anything-else")) == (401, "token.missing")
    unsigned = client.post("/ocen/loans", data=body, headers=bearer("ocen:loans"))
    assert problem(unsigned) == (401, "signature.missing")
