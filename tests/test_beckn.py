"""G2P Connect / Beckn-style signatures: round trips and each rejection with its G2P code."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wsgi_apisec import profiles
from wsgi_apisec.beckn import body_digest, parse_header, signing_string
from wsgi_apisec.errors import APISecError, MalformedSignature, MissingSignature, SignatureError
from wsgi_apisec.keys import PrivateKey
from wsgi_apisec.message import Body, Headers, Message
from wsgi_apisec.replay import MemoryReplayStore
from wsgi_apisec.resolvers import StaticKeyResolver
from wsgi_apisec.signatures import RequestVerifier, ResponseSigner

NOW = 1_700_000_000.0
SENDER = "spar-partner-1"


def envelope(message_id: str = "m-1", sender: str = SENDER) -> bytes:
    doc = {
        "signature": None,
        "header": {
            "version": "1.0.0",
            "message_id": message_id,
            "message_ts": "2024-01-01T00:00:00Z",
            "action": "link",
            "sender_id": sender,
            "total_count": 1,
        },
        "message": {"transaction_id": "t-1", "link_request": []},
    }
    return json.dumps(doc).encode()


@pytest.fixture(scope="module")
def key() -> PrivateKey:
    return PrivateKey.generate("EdDSA", kid="k1")


def signed(key: PrivateKey, body: bytes, now: float = NOW, sender: str = SENDER) -> Message:
    profile = profiles.G2P_CONNECT.replace(
        options={**profiles.G2P_CONNECT.options, "sender_id": sender}
    )
    msg = Message("POST", "https://mapper.test/mapper/link", body=Body(body))
    headers = ResponseSigner(profile, key, clock=lambda: now).sign(msg)
    return Message("POST", msg.target_uri, Headers(headers), Body(body))


def verifier(
    key: PrivateKey, now: float = NOW, store: MemoryReplayStore | None = None
) -> RequestVerifier:
    resolver = StaticKeyResolver(owners={SENDER: [key.public_key()]})
    return RequestVerifier(profiles.G2P_CONNECT, resolver, replay_store=store, clock=lambda: now)


def g2p_code(exc: APISecError) -> str:
    return str(profiles.g2p_envelope(exc)["errors"][0]["code"])


def test_round_trip(key: PrivateKey) -> None:
    result = verifier(key).verify(signed(key, envelope()))
    assert (result.owner, result.kid, result.alg) == (SENDER, "k1", "ed25519")
    assert result.covered == ("(created)", "(expires)", "digest")


def test_signing_string_follows_beckn() -> None:
    digest = body_digest(b"{}")
    assert digest.startswith("BLAKE-512=") and len(digest) == len("BLAKE-512=") + 88
    assert signing_string(1, 2, digest) == f"(created): 1\n(expires): 2\ndigest: {digest}".encode()


def test_signature_in_authorization_header(key: PrivateKey) -> None:
    msg = signed(key, envelope())
    value = "Signature " + str(msg.headers.get("Signature"))
    moved = Message("POST", msg.target_uri, Headers([("Authorization", value)]), msg.body)
    assert verifier(key).verify(moved).owner == SENDER


def test_bearer_authorization_is_not_taken_for_a_signature(key: PrivateKey) -> None:
    msg = Message(
        "POST", "https://m/", Headers([("Authorization", "Bearer abc")]), Body(envelope())
    )
    with pytest.raises(MissingSignature) as err:
        verifier(key).verify(msg)
    assert g2p_code(err.value) == "err.signature.missing"


def test_tampered_body_is_invalid(key: PrivateKey) -> None:
    msg = signed(key, envelope())
    tampered = Message(
        "POST", msg.target_uri, msg.headers, Body(envelope().replace(b"t-1", b"t-2"))
    )
    with pytest.raises(SignatureError) as err:
        verifier(key).verify(tampered)
    assert err.value.status == 401 and g2p_code(err.value) == "err.signature.invalid"


@pytest.mark.parametrize("age", [3600.0 * 2, -120.0], ids=["expired", "created-in-future"])
def test_outside_validity_window(key: PrivateKey, age: float) -> None:
    msg = signed(key, envelope(), now=NOW - age)
    with pytest.raises(SignatureError) as err:
        verifier(key).verify(msg)
    assert err.value.code == "signature.expired" and g2p_code(err.value) == "err.signature.invalid"


def test_wrong_sender(key: PrivateKey) -> None:
    msg = signed(key, envelope(sender="someone-else"))
    with pytest.raises(SignatureError) as err:
        verifier(key).verify(msg)
    assert g2p_code(err.value) == "err.sender_id.invalid"


def test_unknown_sender_key(key: PrivateKey) -> None:
    msg = signed(key, envelope(sender="stranger"), sender="stranger")
    with pytest.raises(SignatureError) as err:
        verifier(key).verify(msg)
    assert err.value.code == "signature.unknown_key"


def test_missing_signature(key: PrivateKey) -> None:
    with pytest.raises(MissingSignature) as err:
        verifier(key).verify(Message("POST", "https://m/", body=Body(envelope())))
    assert err.value.status == 401 and g2p_code(err.value) == "err.signature.missing"


def test_replayed_message_id(key: PrivateKey) -> None:
    store = MemoryReplayStore()
    v = verifier(key, store=store)
    v.verify(signed(key, envelope("m-9")))
    with pytest.raises(SignatureError) as err:
        v.verify(signed(key, envelope("m-9"), now=NOW + 1))
    assert g2p_code(err.value) == "rjct.message_id.duplicate"
    assert v.verify(signed(key, envelope("m-10"))).owner == SENDER


def test_signature_in_envelope(key: PrivateKey) -> None:
    doc = json.loads(envelope())
    inner = signed(
        key,
        json.dumps(
            {k: v for k, v in doc.items() if k != "signature"},
            sort_keys=True,
            separators=(",", ":"),
        ).encode(),
    )
    doc["signature"] = inner.headers.get("Signature")
    msg = Message("POST", "https://m/", body=Body(json.dumps(doc, indent=2).encode()))
    assert verifier(key).verify(msg).owner == SENDER


@pytest.mark.parametrize(
    "value",
    [
        "",
        'keyId="a|b|ed25519"',
        'keyId="a|b|ed25519",keyId="c|d|ed25519",algorithm="ed25519",created="1",expires="2",'
        'headers="(created) (expires) digest",signature="AA=="',
        "garbage,,,",
        'keyId="a",algorithm="ed25519",created="1",expires="2",headers="x",signature="AA=="',
    ],
    ids=["empty", "missing-params", "duplicate-param", "garbage", "bad-keyid"],
)
def test_malformed_header(key: PrivateKey, value: str) -> None:
    msg = Message("POST", "https://m/", Headers([("Signature", value)]), Body(envelope()))
    with pytest.raises(MalformedSignature) as err:
        verifier(key).verify(msg)
    assert err.value.status == 400


def test_parse_header_strips_scheme() -> None:
    params = parse_header(
        'Signature keyId="s|k|ed25519",algorithm="ed25519",created="1",expires="2",'
        'headers="(created) (expires) digest",signature="AA=="'
    )
    assert params["keyId"] == "s|k|ed25519" and params["created"] == "1"


# --- property tests: the header parser never fails with anything but APISecError ---------

_PARAM_NAMES = st.sampled_from(
    ["keyId", "algorithm", "created", "expires", "headers", "signature", "x"]
)
_VALUES = st.text(alphabet=st.characters(codec="ascii"), max_size=40)
_HEADERS = st.lists(st.tuples(_PARAM_NAMES, _VALUES), max_size=8).map(
    lambda pairs: ",".join(f'{name}="{value}"' for name, value in pairs)
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=200), _HEADERS, _HEADERS.map(lambda h: "Signature " + h)))
def test_parse_header_yields_params_or_apisec_error(value: str) -> None:
    try:
        params = parse_header(value)
    except APISecError as exc:
        assert exc.status == 400
    else:
        assert {"keyId", "algorithm", "created", "expires", "headers", "signature"} <= params.keys()


@settings(max_examples=200, deadline=None)
@given(value=st.one_of(st.text(max_size=200), _HEADERS), body=st.binary(max_size=64))
def test_verify_never_raises_anything_but_apisec_error(
    key: PrivateKey, value: str, body: bytes
) -> None:
    msg = Message("POST", "https://m/", Headers([("Signature", value)]), Body(body))
    with pytest.raises(APISecError) as err:
        verifier(key).verify(msg)
    assert 400 <= err.value.status < 500


class CountingBody(Body):
    """A body that counts how often it is read whole."""

    reads = 0

    def read(self) -> bytes:
        CountingBody.reads += 1
        return super().read()


def test_envelope_is_parsed_once_per_request(key: PrivateKey) -> None:
    msg = signed(key, envelope("m-once"))
    counted = Message("POST", msg.target_uri, msg.headers, CountingBody(envelope("m-once")))
    CountingBody.reads = 0
    verifier(key, store=MemoryReplayStore()).verify(counted)
    assert CountingBody.reads == 1  # envelope, sender check and replay rule share one parse
