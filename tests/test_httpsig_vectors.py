"""RFC 9421 App. B, §2.4, §2.5 and §4.3 from the shared vectors: our signature base equals the
stored one byte for byte, the printed signatures verify, the deterministic ones (Ed25519,
HMAC, RSASSA-PKCS1-v1_5) are re-created exactly, and changing any covered component breaks
verification."""

from __future__ import annotations

import base64
import dataclasses
import functools
import json
from typing import Any

import pytest

from tests import vectors
from wsgi_apisec import digest, sfv
from wsgi_apisec.errors import InvalidDigest, SignatureError
from wsgi_apisec.httpsig import (
    VerificationPolicy,
    create_signature,
    parse_signature_input,
    verify_message,
)
from wsgi_apisec.httpsig_components import signature_base
from wsgi_apisec.keys import PrivateKey, PublicKey
from wsgi_apisec.message import Body, Headers, Message
from wsgi_apisec.resolvers import StaticKeyResolver

EXTRACTED = "rfc9421/rfc9421_extracted.json"

#: case name in the vectors -> the section it comes from (the test id).
SECTIONS = {
    "b2_1_minimal_rsa_pss": "RFC9421-B.2.1",
    "b2_2_selective_rsa_pss": "RFC9421-B.2.2",
    "b2_3_full_rsa_pss": "RFC9421-B.2.3",
    "b2_4_response_ecdsa_p256": "RFC9421-B.2.4",
    "b2_5_hmac_sha256": "RFC9421-B.2.5",
    "b2_6_ed25519": "RFC9421-B.2.6",
    "b3_ttrp_ecdsa_p256": "RFC9421-B.3",
    "b4_transform_ed25519": "RFC9421-B.4",
    "s2_4_reqres_ecdsa_p256_a": "RFC9421-2.4-reqres-a",
    "s2_4_reqres_ecdsa_p256_b": "RFC9421-2.4-reqres-b",
    "s2_4_request_sig1_rsa_pss": "RFC9421-2.4-sig1",
    "s2_5_example_rsa_pss": "RFC9421-2.5",
    "s4_3_proxy_sig_rsa_v1_5": "RFC9421-4.3-proxy_sig",
    "s4_3_client_sig1_ecdsa_p256": "RFC9421-4.3-sig1",
}
#: Deterministic algorithms: the printed signature is re-created byte for byte.
DETERMINISTIC = [
    "b2_5_hmac_sha256",
    "b2_6_ed25519",
    "b4_transform_ed25519",
    "s4_3_proxy_sig_rsa_v1_5",
]


@functools.cache
def extracted() -> dict[str, Any]:
    return vectors.load(EXTRACTED)  # type: ignore[no-any-return]


def parse_http(text: str, request: Message | None = None) -> Message:
    """An HTTP/1.1 message as printed in the RFC (LF line ends) as a :class:`Message`."""
    head, _, body = text.partition("\n\n")
    first, *lines = head.split("\n")
    pairs = [line.partition(":") for line in lines]
    headers = Headers([(name, value.strip()) for name, _, value in pairs])
    start = first.split(" ")
    if start[0].startswith("HTTP/"):
        return Message(
            status=int(start[1]), headers=headers, body=Body(body.encode()), request=request
        )
    uri = f"https://{headers.get('host')}{start[1]}"
    return Message(method=start[0], target_uri=uri, headers=headers, body=Body(body.encode()))


def with_fields(message: Message, *fields: tuple[str, str]) -> Message:
    return dataclasses.replace(message, headers=Headers([*message.headers.items(), *fields]))


def rfc_request() -> Message:
    return parse_http(extracted()["messages"]["test-request"])


def rfc_response() -> Message:
    """RFC 9421's test-response with the Content-Digest of its body (the printed one is wrong;
    see ``test_printed_test_response_digest_does_not_match_its_body``)."""
    printed = parse_http(extracted()["messages"]["test-response"], request=rfc_request())
    right = digest.content_digest(printed.body.read(), ("sha-512",))
    fields = [
        (n, right if n.lower() == "content-digest" else v) for n, v in printed.headers.items()
    ]
    return dataclasses.replace(printed, headers=Headers(fields))


def proxied_request() -> Message:
    """§4.3: the request as the proxy forwards it to the origin, with the client's sig1 and the
    proxy's proxy_sig on separate field lines."""
    cases = extracted()["cases"]
    client = parse_http(cases["s4_3_client_sig1_ecdsa_p256"]["message"])
    proxy = cases["s4_3_proxy_sig_rsa_v1_5"]
    fields = [
        (n, "origin.host.internal.example" if n.lower() == "host" else v)
        for n, v in client.headers.items()
    ]
    fields += [
        ("Forwarded", "for=192.0.2.123;host=example.com;proto=https"),
        ("Signature-Input", proxy["signature_input"]),
        ("Signature", f"proxy_sig=:{proxy['signature_b64']}:"),
    ]
    uri = client.target_uri.replace("example.com", "origin.host.internal.example")
    return dataclasses.replace(client, target_uri=uri, headers=Headers(fields))


def base_text(name: str) -> bytes:
    return vectors.path("rfc9421/" + extracted()["cases"][name]["signature_base_file"]).read_bytes()


def signature_input_of(name: str) -> str:
    case = extracted()["cases"][name]
    if "signature_input" in case:
        return str(case["signature_input"])
    # §2.5's example prints the base only: its last line is the @signature-params value.
    params = base_text(name).decode().rsplit("\n", 1)[1].split(": ", 1)[1]
    return f"sig1={params}"


def label_of(name: str) -> str:
    return signature_input_of(name).split("=", 1)[0]


def case_message(name: str) -> Message:
    """The signed message of a case, carrying its Signature-Input and Signature."""
    case = extracted()["cases"][name]
    if name == "s4_3_proxy_sig_rsa_v1_5":
        return proxied_request()
    if "message_signed" in case:
        return parse_http(case["message_signed"])
    if "response" in case:
        return parse_http(case["response"], request=rfc_request())
    if case.get("message") not in (None, "test-request", "test-response"):
        return parse_http(case["message"])
    message = rfc_response() if case.get("message") == "test-response" else rfc_request()
    label = label_of(name)
    signature = case.get("signature") or f"{label}=:{case['signature_b64']}:"
    return with_fields(
        message, ("Signature-Input", signature_input_of(name)), ("Signature", signature)
    )


def public_key(kid: str, alg: str) -> PublicKey:
    if kid == "test-shared-secret":
        secret = base64.b64decode(vectors.text("rfc9421/keys/test-shared-secret.b64"))
        return PublicKey.from_secret(secret, kid=kid, algorithms=[alg])
    jwk = json.loads(vectors.text(f"rfc9421/keys/{kid}.jwk.json"))
    return PublicKey.from_jwk(jwk, algorithms=[alg])


def private_key(kid: str, alg: str) -> PrivateKey:
    if kid == "test-shared-secret":
        secret = base64.b64decode(vectors.text("rfc9421/keys/test-shared-secret.b64"))
        return PrivateKey.from_key(secret, kid=kid, algorithms=[alg])
    jwk = json.loads(vectors.text(f"rfc9421/keys/{kid}.jwk.json"))
    return PrivateKey.from_jwk(jwk, algorithms=[alg])


def resolver() -> StaticKeyResolver:
    keys = {(c["keyid"], c["alg"]) for c in extracted()["cases"].values()}
    return StaticKeyResolver([public_key(kid, alg) for kid, alg in sorted(keys)])


def created_of(name: str) -> int:
    created = parse_signature_input(signature_input_of(name))[label_of(name)].created
    assert created is not None
    return created


def verify(name: str, message: Message) -> Any:
    # Most App. B signatures leave the body uncovered: not a policy we would deploy.
    policy = VerificationPolicy(label=label_of(name), max_age=None, content_digest=False)
    return verify_message(message, resolver(), policy, now=created_of(name) + 1.0)


CASES = [pytest.param(name, id=section) for name, section in SECTIONS.items()]


@pytest.mark.parametrize("name", CASES)
def test_signature_base_is_the_stored_base_byte_for_byte(name: str) -> None:
    message = case_message(name)
    sig = parse_signature_input(signature_input_of(name))[label_of(name)]
    assert signature_base(message, sig.covered, sig.value) == base_text(name)


@pytest.mark.parametrize("name", CASES)
def test_printed_signature_verifies(name: str) -> None:
    case = extracted()["cases"][name]
    result = verify(name, case_message(name))
    sig = parse_signature_input(signature_input_of(name))[label_of(name)]
    assert result.label == label_of(name)
    assert result.kid == case["keyid"]
    assert result.alg == case["alg"]
    assert result.covered == sig.identifiers
    assert result.created == created_of(name)
    assert result.key.kid == case["keyid"]


@pytest.mark.parametrize("name", [pytest.param(n, id=SECTIONS[n]) for n in DETERMINISTIC])
def test_deterministic_signature_is_recreated_exactly(name: str) -> None:
    case = extracted()["cases"][name]
    label = label_of(name)
    sig = parse_signature_input(signature_input_of(name))[label]
    key = private_key(case["keyid"], case["alg"])
    made, value = create_signature(
        case_message(name), key, sig.covered, sig.params, alg=case["alg"], label=label
    )
    assert made.value == sig.value
    printed = case.get("signature_b64") or case["signature"].split("=", 1)[1].strip(":")
    assert base64.b64encode(value).decode() == printed


def _tamper_request(message: Message, item: sfv.Item) -> Message:
    name = str(item.value)
    uri = message.target_uri
    changes: dict[str, Any] = {
        "@method": {"method": "PUT" if message.method != "PUT" else "POST"},
        "@target-uri": {"target_uri": uri.replace("/foo", "/foo2").replace("/demo", "/demo2")},
        "@authority": {"target_uri": uri.replace("://", "://a.")},
        "@scheme": {"target_uri": uri.replace("https://", "http://")},
        "@path": {"target_uri": uri.replace("/foo", "/bar").replace("/demo", "/bar")},
        "@request-target": {"target_uri": uri.replace("/foo", "/bar")},
        "@query": {"target_uri": uri + "&extra=1"},
        "@query-param": {"target_uri": uri.replace("Pet=dog", "Pet=cat")},
    }
    if name in changes:
        return dataclasses.replace(message, **changes[name])
    return _tamper_field(message, name)


def _tamper_field(message: Message, name: str) -> Message:
    fields = [(n, v + "0" if n.lower() == name else v) for n, v in message.headers.items()]
    return dataclasses.replace(message, headers=Headers(fields))


def tampered(message: Message, item: sfv.Item) -> Message:
    if "req" in item.params:
        assert message.request is not None
        return dataclasses.replace(message, request=_tamper_request(message.request, item))
    if item.value == "@status":
        assert message.status is not None
        return dataclasses.replace(message, status=message.status + 1)
    return _tamper_request(message, item)


def _tamper_cases() -> list[Any]:
    if not vectors.VECTORS.is_dir():
        return [pytest.param(None, None, marks=pytest.mark.skip(reason="no shared vectors"))]
    out = []
    for name, section in SECTIONS.items():
        sig = parse_signature_input(signature_input_of(name))[label_of(name)]
        for item in sig.covered:
            out.append(pytest.param(name, item, id=f"{section}-{sfv.serialize_item(item)}"))
        out.append(pytest.param(name, None, id=f"{section}-@signature-params"))
    return out


@pytest.mark.parametrize(("name", "item"), _tamper_cases())
def test_changing_a_covered_component_fails_verification(name: str, item: sfv.Item | None) -> None:
    message = case_message(name)
    verify(name, message)  # the untouched message verifies
    if item is None:
        # The parameters are covered too: a changed created time breaks the signature.
        created = created_of(name)
        fields = [
            (n, v.replace(f"created={created}", f"created={created + 1}"))
            for n, v in message.headers.items()
        ]
        bad = dataclasses.replace(message, headers=Headers(fields))
    else:
        bad = tampered(message, item)
    with pytest.raises(SignatureError) as info:
        verify(name, bad)
    assert info.value.status == 401
    assert "Accept-Signature" in info.value.headers


@pytest.mark.parametrize("index", [0, 1, 2])
def test_b4_transformed_message_still_verifies(index: int) -> None:
    """RFC 9421 B.4: changes to what the signature does not cover keep it valid."""
    text = extracted()["cases"]["b4_transform_ed25519"]["valid_variants"][index]
    result = verify("b4_transform_ed25519", parse_http(text))
    assert result.covered == ('"@method"', '"@path"', '"@authority"', '"accept"')


@pytest.mark.parametrize(("index", "code"), [(0, "signature.invalid"), (1, "signature.invalid")])
def test_b4_transformed_message_no_longer_verifies(index: int, code: str) -> None:
    """RFC 9421 B.4: a changed method/authority, or reordered Accept lines, break it."""
    text = extracted()["cases"]["b4_transform_ed25519"]["invalid_variants"][index]
    with pytest.raises(SignatureError) as info:
        verify("b4_transform_ed25519", parse_http(text))
    assert info.value.code == code


def test_printed_test_response_digest_does_not_match_its_body() -> None:
    """RFC 9421 B.2: the printed test-response's Content-Digest is not its body's; B.2.4's base
    uses the right one, which is what the verifier computes."""
    printed = parse_http(extracted()["messages"]["test-response"])
    with pytest.raises(InvalidDigest):
        digest.verify_content_digest(printed.headers.get("content-digest"), printed.body.read())
    right = rfc_response().headers.get("content-digest")
    assert right is not None and right.encode() in base_text("b2_4_response_ecdsa_p256")


def test_b2_4_with_the_printed_digest_fails() -> None:
    printed = parse_http(extracted()["messages"]["test-response"], request=rfc_request())
    case = extracted()["cases"]["b2_4_response_ecdsa_p256"]
    message = with_fields(
        printed, ("Signature-Input", case["signature_input"]), ("Signature", case["signature"])
    )
    with pytest.raises(SignatureError) as info:
        verify("b2_4_response_ecdsa_p256", message)
    assert info.value.code == "signature.invalid"


def test_b3_client_cert_is_the_rfc9440_example() -> None:
    """RFC 9421 B.3: the covered Client-Cert is an RFC 9440 Byte Sequence of a DER cert."""
    message = case_message("b3_ttrp_ecdsa_p256")
    value = sfv.parse_item(message.headers.get("client-cert") or "").value
    assert isinstance(value, bytes) and value[:1] == b"\x30"


def test_proxy_changed_authority_breaks_the_client_signature() -> None:
    """RFC 9421 §4.3: after the proxy rewrites the authority, only proxy_sig verifies."""
    message = proxied_request()
    policy = VerificationPolicy(label="sig1", max_age=None, content_digest=False)
    with pytest.raises(SignatureError) as info:
        verify_message(message, resolver(), policy, now=1618884476.0)
    assert info.value.code == "signature.invalid"
    assert verify("s4_3_proxy_sig_rsa_v1_5", message).params["expires"] == 1618884540
