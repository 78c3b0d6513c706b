"""Interop with the peer library ``http-message-signatures`` (v3): requests it signs pass our
verifier and :class:`SignatureMiddleware`; responses we sign (with ``;req`` links) verify with
it; the same for the FAPI 2.0 profile."""

from __future__ import annotations

import datetime
import time
from dataclasses import dataclass, field
from typing import Any

import pytest
from http_message_signatures import (
    HTTPMessageSigner,
    HTTPMessageVerifier,
    InvalidSignature,
    MappingKeyResolver,
    algorithms,
)
from werkzeug.test import Client

from wsgi_apisec.errors import SignatureError
from wsgi_apisec.fapi2 import FAPI2, HTTPSIG
from wsgi_apisec.httpsig import VerificationPolicy, sign_message, verify_message
from wsgi_apisec.keys import PrivateKey
from wsgi_apisec.message import Body, Headers, Message
from wsgi_apisec.middleware import Rule, SignatureMiddleware
from wsgi_apisec.replay import MemoryReplayStore
from wsgi_apisec.resolvers import StaticKeyResolver
from wsgi_apisec.signatures import RequestVerifier, ResponseSigner

URL = "https://api.example.com/accounts/1?fields=a,b"
BODY = b'{"transfer":{"amount":"10.00"}}'

PEER = {
    "ed25519": algorithms.ED25519,
    "ecdsa-p256-sha256": algorithms.ECDSA_P256_SHA256,
    "ecdsa-p384-sha384": algorithms.ECDSA_P384_SHA384,
    "rsa-pss-sha512": algorithms.RSA_PSS_SHA512,
    "rsa-v1_5-sha256": algorithms.RSA_V1_5_SHA256,
    "hmac-sha256": algorithms.HMAC_SHA256,
}


@dataclass
class PeerRequest:
    """The peer's message interface: method, url, headers (no status_code: a request)."""

    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class PeerResponse:
    status_code: int
    headers: dict[str, str]
    request: PeerRequest


@pytest.fixture(scope="module")
def keys() -> dict[str, PrivateKey]:
    return {alg: PrivateKey.generate(alg, kid=f"key-{alg}") for alg in PEER}


def peer_keys(key: PrivateKey) -> MappingKeyResolver:
    assert key.kid is not None
    return MappingKeyResolver(
        public_keys={key.kid: key.public_key().key}, private_keys={key.kid: key.key}
    )


def peer_signed(key: PrivateKey, alg: str, url: str = URL, **kw: Any) -> PeerRequest:
    request = PeerRequest(
        "POST", url, {"Content-Type": "application/json", **kw.pop("headers", {})}
    )
    signer = HTTPMessageSigner(signature_algorithm=PEER[alg], key_resolver=peer_keys(key))
    assert key.kid is not None
    signer.sign(
        request,
        key_id=key.kid,
        created=datetime.datetime.now(datetime.UTC),
        covered_component_ids=kw.pop(
            "covered", ("@method", "@target-uri", "@authority", "content-type")
        ),
        body=BODY,
        **kw,
    )
    return request


def ours(request: PeerRequest, body: bytes = BODY) -> Message:
    return Message(request.method, request.url, Headers(list(request.headers.items())), Body(body))


@pytest.mark.parametrize("alg", list(PEER))
def test_peer_signed_request_passes_our_verifier(keys: dict[str, PrivateKey], alg: str) -> None:
    request = peer_signed(keys[alg], alg)
    policy = VerificationPolicy(required=("@method", "@target-uri"))
    resolver = StaticKeyResolver([keys[alg].public_key()])
    result = verify_message(ours(request), resolver, policy, time.time())
    assert result.alg == alg and result.kid == f"key-{alg}" and result.label == "pyhms"
    assert result.covered == (
        '"@method"',
        '"@target-uri"',
        '"@authority"',
        '"content-type"',
        '"content-digest"',
    )
    with pytest.raises(SignatureError) as info:  # and the body is bound by the digest
        verify_message(ours(request, b"{}"), resolver, policy, time.time())
    assert info.value.code == "digest.invalid"


def test_peer_query_param_and_tag(keys: dict[str, PrivateKey]) -> None:
    covered = ("@method", '"@query-param";name="fields"', "@path", "@query", "@request-target")
    request = peer_signed(keys["ed25519"], "ed25519", covered=covered, tag="app-1", nonce="n1")
    policy = VerificationPolicy(tag="app-1", require_nonce=True)
    result = verify_message(
        ours(request), StaticKeyResolver([keys["ed25519"].public_key()]), policy, time.time()
    )
    assert result.covered[1] == '"@query-param";name="fields"'
    assert result.params["nonce"] == "n1"


@pytest.mark.parametrize("alg", list(PEER))
def test_our_signed_response_passes_the_peer(keys: dict[str, PrivateKey], alg: str) -> None:
    peer_request = peer_signed(keys[alg], alg, headers={"Want-Content-Digest": "sha-512=5"})
    request = ours(peer_request)
    verify_message(
        request, StaticKeyResolver([keys[alg].public_key()]), VerificationPolicy(), time.time()
    )
    body = b'{"status":"ACCEPTED"}'
    response = Message(
        status=201,
        headers=Headers([("Content-Type", "application/json")]),
        body=Body(body),
        request=request,
    )
    covered = [
        "@status",
        "content-type",
        "content-digest",
        '"@method";req',
        '"@target-uri";req',
        '"content-digest";req',
        '"signature";key="pyhms";req',
    ]
    fields = sign_message(response, keys[alg], covered, now=time.time(), label="resp", tag="r")
    headers = {"Content-Type": "application/json", **dict(fields)}
    assert headers["Content-Digest"].startswith("sha-512=")
    peer = HTTPMessageVerifier(signature_algorithm=PEER[alg], key_resolver=peer_keys(keys[alg]))
    [result] = peer.verify(PeerResponse(201, headers, peer_request), expect_tag="r", body=body)
    assert result.label == "resp" and result.body == body
    assert '"signature";key="pyhms";req' in result.covered_components
    with pytest.raises(InvalidSignature):  # linked to that request only
        other = PeerRequest("PUT", peer_request.url, peer_request.headers)
        peer.verify(PeerResponse(201, headers, other), expect_tag="r")


def test_fapi2_interop(keys: dict[str, PrivateKey]) -> None:
    """A FAPI 2.0 request signed by the peer (no alg: the key says ES256) passes FAPI2; the
    response FAPI2 signs passes the peer with the FAPI 2.0 client checks."""
    client = PrivateKey.generate("ES256", kid="client")
    server = keys["ecdsa-p256-sha256"]
    peer_request = peer_signed(
        client,
        "ecdsa-p256-sha256",
        covered=("@method", "@target-uri", "authorization"),
        headers={"Authorization": "DPoP abc"},
        tag="fapi-2-request",
        include_alg=False,
    )
    request = ours(peer_request)
    result = RequestVerifier(FAPI2, StaticKeyResolver([client.public_key()])).verify(request)
    assert result.covered == ('"@method"', '"@target-uri"', '"authorization"', '"content-digest"')
    body = b'{"accounts":[]}'
    response = Message(status=200, body=Body(body), request=request)
    headers = dict(ResponseSigner(FAPI2, server).sign(response))
    peer = HTTPMessageVerifier(
        signature_algorithm=PEER["ecdsa-p256-sha256"], key_resolver=peer_keys(server)
    )
    [checked] = peer.verify(
        PeerResponse(200, headers, peer_request),
        expect_tag="fapi-2-response",
        max_age=datetime.timedelta(seconds=60),
        require_components=(
            "@status",
            '"@method";req',
            '"@target-uri";req',
            '"signature";key="pyhms";req',
        ),
        body=body,
    )
    assert checked.parameters["tag"] == "fapi-2-response" and "alg" not in checked.parameters


def echo(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "application/json")])
    return [environ["wsgi.input"].read()]


@pytest.mark.parametrize("alg", ["ed25519", "rsa-pss-sha512", "hmac-sha256"])
def test_peer_signed_request_through_the_middleware(keys: dict[str, PrivateKey], alg: str) -> None:
    server = keys["ecdsa-p256-sha256"]
    middleware = SignatureMiddleware(
        echo,
        [Rule("/accounts/**", profile=HTTPSIG)],
        resolver=StaticKeyResolver([keys[alg].public_key()]),
        signing_key=server,
        replay_store=MemoryReplayStore(),
    )
    url = "http://localhost/accounts/1?fields=a,b"
    peer_request = peer_signed(keys[alg], alg, url=url)
    headers = [(n, v) for n, v in peer_request.headers.items() if n != "Content-Type"]
    reply = Client(middleware).post(
        "/accounts/1?fields=a,b", headers=headers, data=BODY, content_type="application/json"
    )
    assert reply.status_code == 200 and reply.data == BODY
    peer = HTTPMessageVerifier(
        signature_algorithm=PEER["ecdsa-p256-sha256"], key_resolver=peer_keys(server)
    )
    response = PeerResponse(200, dict(reply.headers.items()), peer_request)
    [result] = peer.verify(
        response, require_components=("@status", '"@method";req'), body=reply.data
    )
    assert result.label == "sig1"
    again = Client(middleware).post(
        "/accounts/1?fields=a,b", headers=headers, data=BODY, content_type="application/json"
    )
    assert again.status_code == 401  # the same signature twice is a replay
