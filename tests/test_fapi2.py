"""FAPI 2.0 Message Signing (RFC 9421 profile): a good request passes and its response links
to it; each missing component, a wrong tag, an old signature and a replay are 401 with an
``Accept-Signature`` header; the same through :class:`SignatureMiddleware`."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from typing import Any

import pytest
from werkzeug.test import Client

from wsgi_apisec.digest import content_digest
from wsgi_apisec.errors import ReplayDetected, SignatureError
from wsgi_apisec.fapi2 import FAPI2, REQUEST_TAG, RESPONSE_TAG
from wsgi_apisec.httpsig import parse_signature_input, sign_message
from wsgi_apisec.keys import PrivateKey
from wsgi_apisec.message import Body, Headers, Message
from wsgi_apisec.middleware import Rule, SignatureMiddleware
from wsgi_apisec.replay import MemoryReplayStore
from wsgi_apisec.resolvers import StaticKeyResolver
from wsgi_apisec.signatures import RequestVerifier, ResponseSigner, SignatureResult

NOW = 1_700_000_000.0
URI = "https://rs.example.com/fdx/v6/accounts?limit=10"
BODY = b'{"amount":"10.00"}'
TOKEN = "Bearer eyJhbGciOiJQUzI1NiJ9.e30.sig"
WANT = (
    'sig1=("@method" "@target-uri" "authorization" "content-digest");created;tag="fapi-2-request"'
)


@pytest.fixture(scope="module")
def client_key() -> PrivateKey:
    return PrivateKey.generate("ES256", kid="client-1")


@pytest.fixture(scope="module")
def server_key() -> PrivateKey:
    return PrivateKey.generate("PS256", kid="server-1")


def unsigned(body: bytes = BODY, extra: Iterable[tuple[str, str]] = ()) -> Message:
    headers = [("Authorization", TOKEN), ("Content-Type", "application/json"), *extra]
    return Message("POST", URI, Headers(headers), Body(body))


def with_fields(message: Message, fields: list[tuple[str, str]]) -> Message:
    return dataclasses.replace(message, headers=Headers([*message.headers.items(), *fields]))


def fapi_request(key: PrivateKey, message: Message | None = None, now: float = NOW) -> Message:
    """A request signed the FAPI 2.0 way, by the profile's own client-side signer."""
    message = message if message is not None else unsigned()
    return with_fields(message, ResponseSigner(FAPI2, key, clock=lambda: now).sign(message))


def custom_request(
    key: PrivateKey, covered: list[str], message: Message | None = None, **kw: Any
) -> Message:
    message = message if message is not None else unsigned()
    kw.setdefault("tag", REQUEST_TAG)
    kw.setdefault("now", NOW)
    kw.setdefault("include_alg", False)
    return with_fields(message, sign_message(message, key, covered, **kw))


def verifier(
    key: PrivateKey, store: MemoryReplayStore | None = None, now: float = NOW + 1
) -> RequestVerifier:
    resolver = StaticKeyResolver([key.public_key()])
    return RequestVerifier(FAPI2, resolver, replay_store=store, clock=lambda: now)


def test_good_request_passes(client_key: PrivateKey) -> None:
    request = fapi_request(client_key)
    sent = parse_signature_input(request.headers.get("signature-input") or "")["sig1"]
    assert sent.tag == REQUEST_TAG and sent.created == int(NOW) and sent.keyid == "client-1"
    assert sent.alg is None  # §3.3.7: the key says ES256
    result = verifier(client_key).verify(request)
    assert result.profile == "fapi2"
    assert result.covered == ('"@method"', '"@target-uri"', '"authorization"', '"content-digest"')
    assert (result.alg, result.kid, result.created) == ("ecdsa-p256-sha256", "client-1", int(NOW))
    assert result.params["tag"] == REQUEST_TAG


@pytest.mark.parametrize("alg", ["PS256", "EdDSA"])
def test_other_fapi_algorithms(alg: str) -> None:
    key = PrivateKey.generate(alg, kid="c")
    result = verifier(key).verify(fapi_request(key))
    assert result.alg == {"PS256": "PS256", "EdDSA": "ed25519"}[alg]


def test_bodiless_request_needs_no_digest(client_key: PrivateKey) -> None:
    request = fapi_request(client_key, Message("GET", URI, Headers([("Authorization", TOKEN)])))
    assert verifier(client_key).verify(request).covered == (
        '"@method"',
        '"@target-uri"',
        '"authorization"',
    )


def test_dpop_header_is_covered_when_present(client_key: PrivateKey) -> None:
    message = unsigned(extra=[("DPoP", "eyJ0eXAiOiJkcG9wK2p3dCJ9.e30.sig")])
    result = verifier(client_key).verify(fapi_request(client_key, message))
    assert '"dpop"' in result.covered


FULL = ["@method", "@target-uri", "authorization", "content-digest"]


@pytest.mark.parametrize("missing", FULL)
def test_request_missing_a_required_component_is_401(client_key: PrivateKey, missing: str) -> None:
    covered = [c for c in FULL if c != missing]
    request = custom_request(client_key, covered)
    with pytest.raises(SignatureError) as info:
        verifier(client_key).verify(request)
    assert (info.value.status, info.value.code) == (401, "signature.component_missing")
    assert f'"{missing}"' in info.value.description
    assert info.value.headers["Accept-Signature"] == WANT


def test_request_with_dpop_not_covering_it_is_401(client_key: PrivateKey) -> None:
    message = unsigned(extra=[("DPoP", "eyJ0eXAiOiJkcG9wK2p3dCJ9.e30.sig")])
    request = custom_request(client_key, FULL, message)
    with pytest.raises(SignatureError) as info:
        verifier(client_key).verify(request)
    assert info.value.code == "signature.component_missing"
    assert info.value.headers["Accept-Signature"] == (
        'sig1=("@method" "@target-uri" "authorization" "dpop" "content-digest");'
        'created;tag="fapi-2-request"'
    )


@pytest.mark.parametrize("tag", ["fapi-2-response", "other", None])
def test_request_with_a_wrong_tag_is_401(client_key: PrivateKey, tag: str | None) -> None:
    request = custom_request(client_key, FULL, tag=tag)
    with pytest.raises(SignatureError) as info:
        verifier(client_key).verify(request)
    assert (info.value.status, info.value.code) == (401, "signature.no_match")
    assert info.value.headers["Accept-Signature"] == WANT


@pytest.mark.parametrize(("age", "ok"), [(60 + 5, True), (60 + 6, False), (3600, False)])
def test_request_older_than_the_window_is_401(client_key: PrivateKey, age: int, ok: bool) -> None:
    """FAPI 2.0: created at most a minute old (plus 5 s of clock skew)."""
    request = fapi_request(client_key)
    late = verifier(client_key, now=NOW + age)
    if ok:
        assert late.verify(request).created == int(NOW)
        return
    with pytest.raises(SignatureError) as info:
        late.verify(request)
    assert (info.value.status, info.value.code) == (401, "signature.expired")
    assert info.value.headers["Accept-Signature"] == WANT


def test_request_from_the_future_is_401(client_key: PrivateKey) -> None:
    with pytest.raises(SignatureError) as info:
        verifier(client_key, now=NOW - 10).verify(fapi_request(client_key))
    assert info.value.code == "signature.expired"


def test_request_without_created_is_401(client_key: PrivateKey) -> None:
    request = fapi_request(client_key)
    line = (request.headers.get("signature-input") or "").replace(f";created={int(NOW)}", "")
    fields = [(n, line if n == "Signature-Input" else v) for n, v in request.headers.items()]
    with pytest.raises(SignatureError) as info:
        verifier(client_key).verify(dataclasses.replace(request, headers=Headers(fields)))
    assert info.value.code == "signature.expired"


def test_disallowed_algorithm_is_401() -> None:
    """RS256 (PKCS#1 v1.5) is not a FAPI 2.0 algorithm, named the RFC 9421 way or not at all."""
    key = PrivateKey.generate("RS256", kid="c")
    named = custom_request(key, FULL, alg="rsa-v1_5-sha256", include_alg=True)
    with pytest.raises(SignatureError) as info:
        verifier(key).verify(named)
    assert info.value.code == "signature.alg_not_allowed"
    with pytest.raises(SignatureError) as info:
        verifier(key).verify(custom_request(key, FULL, alg="rsa-v1_5-sha256"))
    assert (info.value.status, info.value.code) == (401, "signature.unknown_key")


def test_replayed_request_is_401(client_key: PrivateKey) -> None:
    store = MemoryReplayStore(clock=lambda: NOW)
    request = fapi_request(client_key)
    verifier(client_key, store).verify(request)
    with pytest.raises(ReplayDetected) as info:
        verifier(client_key, store).verify(request)
    assert (info.value.status, info.value.code) == (401, "signature.replayed")
    fresh = fapi_request(client_key, now=NOW + 1)  # a new signature is a new message
    assert verifier(client_key, store, now=NOW + 2).verify(fresh).created == int(NOW) + 1


def test_changed_body_is_401(client_key: PrivateKey) -> None:
    request = dataclasses.replace(fapi_request(client_key), body=Body(b'{"amount":"99.00"}'))
    with pytest.raises(SignatureError) as info:
        verifier(client_key).verify(request)
    assert info.value.code == "digest.invalid"


# --- the response links to the request -----------------------------------------------------------


def signed_response(
    server_key: PrivateKey, request: Message, body: bytes = b'{"ok":true}'
) -> Message:
    response = Message(
        status=200,
        headers=Headers([("Content-Type", "application/json")]),
        body=Body(body),
        request=request,
    )
    return with_fields(
        response, ResponseSigner(FAPI2, server_key, clock=lambda: NOW + 1).sign(response)
    )


def test_response_signature_links_to_the_request(
    client_key: PrivateKey, server_key: PrivateKey
) -> None:
    request = fapi_request(client_key)
    verifier(client_key).verify(request)  # records the verified label for the response
    response = signed_response(server_key, request)
    sent = parse_signature_input(response.headers.get("signature-input") or "")["sig1"]
    assert sent.identifiers == (
        '"@status"',
        '"content-digest"',
        '"@method";req',
        '"@target-uri";req',
        '"content-digest";req',
        '"signature";key="sig1";req',
        '"signature-input";key="sig1";req',
    )
    assert (sent.tag, sent.keyid, sent.alg) == (RESPONSE_TAG, "server-1", None)
    # The client verifies it against the request it sent.
    result = verifier(server_key, now=NOW + 2).verify(response)
    assert result.covered == sent.identifiers and result.alg == "PS256"


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"method": "PUT"}, id="method"),
        pytest.param({"target_uri": URI + "&x=1"}, id="target-uri"),
        pytest.param({"body": Body(b"{}")}, id="request-digest"),
    ],
)
def test_response_to_another_request_does_not_verify(
    client_key: PrivateKey, server_key: PrivateKey, change: dict[str, Any]
) -> None:
    request = fapi_request(client_key)
    response = signed_response(server_key, request)
    other = dataclasses.replace(request, **change)
    if "body" in change:  # a request with another body carries another digest
        value = content_digest(b"{}")
        fields = [(n, value if n == "Content-Digest" else v) for n, v in request.headers.items()]
        other = dataclasses.replace(other, headers=Headers(fields))
    with pytest.raises(SignatureError) as info:
        verifier(server_key, now=NOW + 2).verify(dataclasses.replace(response, request=other))
    assert info.value.code == "signature.invalid"


def test_unlinked_response_is_refused_by_the_client(
    client_key: PrivateKey, server_key: PrivateKey
) -> None:
    request = fapi_request(client_key)
    response = Message(status=200, body=Body(b"{}"), request=request)
    fields = sign_message(
        response, server_key, ["@status", "content-digest"], now=NOW, tag=RESPONSE_TAG
    )
    with pytest.raises(SignatureError) as info:
        verifier(server_key).verify(with_fields(response, fields))
    assert info.value.code == "signature.component_missing"
    assert info.value.headers["Accept-Signature"] == (
        'sig1=("@status" "@method";req "@target-uri";req "content-digest");'
        'created;tag="fapi-2-response"'
    )


def test_response_digest_honours_want_content_digest(
    client_key: PrivateKey, server_key: PrivateKey
) -> None:
    request = fapi_request(client_key, unsigned(extra=[("Want-Content-Digest", "sha-512=9")]))
    response = signed_response(server_key, request)
    assert (response.headers.get("content-digest") or "").startswith("sha-512=:")
    assert verifier(server_key, now=NOW + 2).verify(response).label == "sig1"


# --- through the middleware -------------------------------------------------------------------


def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    result: SignatureResult = environ["wsgi_apisec.signature"]
    body = json.dumps(
        {"covered": list(result.covered), "body": environ["wsgi.input"].read().decode()}
    ).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]


@pytest.fixture
def wsgi(client_key: PrivateKey, server_key: PrivateKey) -> Client:
    middleware = SignatureMiddleware(
        app,
        [Rule("/fdx/**", profile=FAPI2)],
        resolver=StaticKeyResolver([client_key.public_key()]),
        signing_key=server_key,
        replay_store=MemoryReplayStore(clock=lambda: NOW),
        clock=lambda: NOW + 1,
    )
    return Client(middleware)


LOCAL = "http://localhost/fdx/v6/accounts?limit=10"


def test_middleware_passes_a_good_request_and_signs_the_response(
    wsgi: Client, client_key: PrivateKey, server_key: PrivateKey
) -> None:
    request = fapi_request(client_key, dataclasses.replace(unsigned(), target_uri=LOCAL))
    headers = [(n, v) for n, v in request.headers.items() if n.lower() != "content-type"]
    reply = wsgi.post(
        "/fdx/v6/accounts?limit=10", headers=headers, data=BODY, content_type="application/json"
    )
    assert reply.status_code == 200
    assert json.loads(reply.data)["body"] == BODY.decode()
    response = Message(
        status=200,
        headers=Headers(list(reply.headers.items())),
        body=Body(reply.data),
        request=request,
    )
    result = verifier(server_key, now=NOW + 2).verify(response)
    assert '"signature";key="sig1";req' in result.covered


def test_middleware_refuses_a_bad_request_with_accept_signature(
    wsgi: Client, client_key: PrivateKey
) -> None:
    request = custom_request(
        client_key,
        ["@method", "@target-uri", "content-digest"],
        dataclasses.replace(unsigned(), target_uri=LOCAL),
    )
    headers = [(n, v) for n, v in request.headers.items() if n.lower() != "content-type"]
    reply = wsgi.post(
        "/fdx/v6/accounts?limit=10", headers=headers, data=BODY, content_type="application/json"
    )
    assert reply.status_code == 401
    assert reply.headers["Accept-Signature"] == WANT
    assert json.loads(reply.data)["code"] == "signature.component_missing"
    unsigned_reply = wsgi.post("/fdx/v6/accounts", data=BODY, headers=[("Authorization", TOKEN)])
    assert unsigned_reply.status_code == 401
    assert json.loads(unsigned_reply.data)["code"] == "signature.missing"
