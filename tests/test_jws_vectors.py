"""JWS against the published examples: RFC 7515 App. A, RFC 7797 §4, and the signatures
made the way OCEN, UK Open Banking and OpenG2P reference code makes them."""

from __future__ import annotations

from typing import Any

import pytest

from tests.vectors import load
from wsgi_apisec import jws
from wsgi_apisec.algorithms import ALGORITHMS, JOSE_ALGORITHMS, get_algorithm
from wsgi_apisec.encoding import b64url_decode, b64url_encode, canonical_json, json_loads
from wsgi_apisec.errors import ConfigurationError, SignatureError
from wsgi_apisec.keys import PrivateKey, PublicKey

RFC7515 = load("rfc7515/appendix_a.json")
RFC7797 = load("rfc7797/section4.json")
OCEN = load("ocen_style/detached_rs256_b64false.json")
UKOB = load("ukob_style/x_jws_signature_ps256.json")
OPENG2P = load("openg2p_style/detached_rs256_canonical_json.json")

UKOB_CRIT = frozenset(
    {
        "http://openbanking.org.uk/iat",
        "http://openbanking.org.uk/iss",
        "http://openbanking.org.uk/tan",
    }
)
STRICT = jws.JWSPolicy(algorithms=JOSE_ALGORITHMS)


def public_only(jwk: dict[str, Any]) -> dict[str, Any]:
    """The public members of an RSA/EC JWK: what a verifier is given."""
    return {k: v for k, v in jwk.items() if k in {"kty", "kid", "crv", "x", "y", "n", "e"}}


def rfc9421_key(name: str) -> dict[str, Any]:
    jwk: dict[str, Any] = load(f"rfc9421/keys/{name}.jwk.json")
    return jwk


def cites(section: str) -> pytest.MarkDecorator:
    """Give a single-case test an id naming the spec section (or derived source) it checks."""
    return pytest.mark.parametrize("section", [section], ids=[section])


def assert_signature_error(exc: pytest.ExceptionInfo[Exception], fragment: str) -> None:
    assert type(exc.value) is SignatureError
    assert exc.value.status == 401
    assert exc.value.code == "signature.invalid"
    assert fragment in exc.value.description


# --- RFC 7515 Appendix A ------------------------------------------------------------------


def a_key(case: dict[str, Any]) -> PublicKey:
    jwk = case["key_jwk"]
    if jwk["kty"] == "oct":
        return PublicKey.from_jwk(jwk, allow_symmetric=True)
    return PublicKey.from_jwk(public_only(jwk))


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("A1", id="RFC7515-A.1-HS256"),
        pytest.param("A2", id="RFC7515-A.2-RS256"),
        pytest.param("A3", id="RFC7515-A.3-ES256"),
        pytest.param("A4", id="RFC7515-A.4-ES512"),
    ],
)
def test_rfc7515_appendix_a_verifies(name: str) -> None:
    case = RFC7515[name]
    parsed = jws.parse_compact(case["jws_compact"])
    assert parsed.header_b64 == case["protected_b64u"]
    assert parsed.header == json_loads(case["protected_header_utf8"])
    jws.check_header(parsed, jws.JWSPolicy(algorithms=frozenset({case["alg"]})))
    result = jws.verify(parsed, a_key(case))
    assert result.alg == case["alg"]
    assert result.b64 is True
    assert jws.payload_of(parsed) == b64url_decode(case["payload_b64u"])


@cites("RFC7515-A.1-oct-needs-allow_symmetric")
def test_rfc7515_a1_hs256_only_with_allow_symmetric(section: str) -> None:
    jwk = RFC7515["A1"]["key_jwk"]
    with pytest.raises(ConfigurationError) as exc:
        PublicKey.from_jwk(jwk)
    assert exc.value.code == "config.invalid"


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("A1", id="RFC7515-A.1-HS256-resign"),
        pytest.param("A2", id="RFC7515-A.2-RS256-resign"),
    ],
)
def test_rfc7515_deterministic_signatures_reproduce(name: str) -> None:
    # HMAC and RSASSA-PKCS1-v1_5 are deterministic: the printed signature is reproduced.
    case = RFC7515[name]
    key = PrivateKey.from_jwk(case["key_jwk"])
    signing_input = f"{case['protected_b64u']}.{case['payload_b64u']}".encode("ascii")
    signature = ALGORITHMS[case["alg"]].sign(key.key, signing_input)
    assert b64url_encode(signature) == case["signature_b64u"]


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("A1", id="RFC7515-A.1-tampered"),
        pytest.param("A2", id="RFC7515-A.2-tampered"),
        pytest.param("A3", id="RFC7515-A.3-tampered"),
        pytest.param("A4", id="RFC7515-A.4-tampered"),
    ],
)
def test_rfc7515_appendix_a_tampered_payload_fails(name: str) -> None:
    case = RFC7515[name]
    header, _payload, signature = case["jws_compact"].split(".")
    forged = ".".join([header, b64url_encode(b'{"iss":"mallory"}'), signature])
    with pytest.raises(SignatureError) as exc:
        jws.verify(jws.parse_compact(forged), a_key(case))
    assert_signature_error(exc, "does not verify")


@cites("RFC7515-A.5")
def test_rfc7515_a5_unsecured_jws_is_rejected(section: str) -> None:
    parsed = jws.parse_compact(RFC7515["A5"]["jws_compact"])
    assert parsed.alg == "none"
    assert parsed.signature == b""
    with pytest.raises(SignatureError) as exc:
        jws.check_header(parsed, STRICT)
    assert_signature_error(exc, "not supported")


@pytest.mark.parametrize(
    "alg",
    [
        pytest.param("none", id="RFC7515-A.5-none"),
        pytest.param("None", id="RFC7515-A.5-None"),
        pytest.param("NONE", id="RFC7515-A.5-NONE"),
        pytest.param("nOnE", id="RFC7515-A.5-nOnE"),
    ],
)
def test_rfc7515_a5_none_rejected_in_every_letter_case(alg: str) -> None:
    with pytest.raises(SignatureError) as exc:
        get_algorithm(alg)
    assert_signature_error(exc, "not supported")
    # Even a policy that names it cannot enable it: there is no such algorithm.
    with pytest.raises(SignatureError):
        get_algorithm(alg, frozenset({alg}))
    payload = RFC7515["A5"]["jws_compact"].split(".")[1]
    header = b64url_encode(f'{{"alg":"{alg}"}}'.encode())
    parsed = jws.parse_compact(f"{header}.{payload}.")
    for policy in (STRICT, jws.JWSPolicy(algorithms=frozenset({alg}))):
        with pytest.raises(SignatureError) as exc:
            jws.check_header(parsed, policy)
        assert_signature_error(exc, "not supported")


# --- RFC 7797 §4 --------------------------------------------------------------------------


def rfc7797_key() -> PublicKey:
    return PublicKey.from_jwk(RFC7797["key_jwk"], allow_symmetric=True)


@cites("RFC7797-4.1")
def test_rfc7797_4_1_b64_true_verifies(section: str) -> None:
    case = RFC7797["s4_1_b64_true"]
    parsed = jws.parse_compact(case["jws_compact"])
    jws.check_header(parsed, STRICT)
    assert jws.verify(parsed, rfc7797_key()).b64 is True
    assert jws.payload_of(parsed) == RFC7797["payload_ascii"].encode("ascii")


@cites("RFC7797-4.2")
def test_rfc7797_4_2_b64_false_detached_verifies(section: str) -> None:
    case = RFC7797["s4_2_b64_false"]
    parsed = jws.parse_compact(case["jws_compact_detached"])
    assert parsed.detached and parsed.b64 is False
    assert parsed.header_b64 == case["protected_b64u"]
    jws.check_header(parsed, STRICT)
    result = jws.verify(parsed, rfc7797_key(), RFC7797["payload_ascii"].encode("ascii"))
    assert result.b64 is False
    signing_input = b"".join(
        bytes(p) for p in jws.signing_input(parsed.header_b64, [b"$.02"], b64=False)
    )
    assert signing_input == case["signing_input_ascii"].encode("ascii")


@cites("RFC7797-4.2-wrong-payload")
def test_rfc7797_4_2_wrong_payload_fails(section: str) -> None:
    parsed = jws.parse_compact(RFC7797["s4_2_b64_false"]["jws_compact_detached"])
    with pytest.raises(SignatureError) as exc:
        jws.verify(parsed, rfc7797_key(), b"$.03")
    assert_signature_error(exc, "does not verify")


@cites("RFC7797-4.2+6-b64-not-in-crit")
def test_rfc7797_4_2_without_b64_in_crit_rejected_by_default(section: str) -> None:
    # RFC 7797 §6: "b64" MUST be listed in "crit" when used.
    signer = PrivateKey.from_jwk(RFC7797["key_jwk"])
    wire = jws.sign_detached(signer, b"$.02", "HS256", b64=False, b64_in_crit=False)
    parsed = jws.parse_compact(wire)
    assert parsed.header == {"alg": "HS256", "b64": False}
    with pytest.raises(SignatureError) as exc:
        jws.check_header(parsed, STRICT)
    assert_signature_error(exc, "'b64' must be listed in 'crit'")
    # The signature itself is fine: only the header policy refuses it.
    jws.check_header(parsed, jws.JWSPolicy(algorithms=JOSE_ALGORITHMS, b64_without_crit=True))
    jws.verify(parsed, rfc7797_key(), b"$.02")


# --- OCEN (b64:false without crit, RS256, detached) -----------------------------------------


OCEN_POLICY = jws.JWSPolicy(algorithms=frozenset({"RS256"}), b64_without_crit=True)


def ocen_parts() -> tuple[jws.CompactJWS, PublicKey, bytes]:
    key = PublicKey.from_jwk(public_only(rfc9421_key("test-key-rsa")))
    return jws.parse_compact(OCEN["detached_jws"]), key, OCEN["body_utf8"].encode("utf-8")


@cites("OCEN-AuthStarter-b64-false-no-crit")
def test_ocen_style_verifies_with_lenient_policy(section: str) -> None:
    parsed, key, body = ocen_parts()
    assert parsed.header == json_loads(OCEN["protected_header_utf8"])
    jws.check_header(parsed, OCEN_POLICY)
    result = jws.verify(parsed, key, body)
    assert (result.alg, result.kid, result.b64) == ("RS256", "test-key-rsa", False)


@cites("OCEN-AuthStarter-vs-RFC7797-6")
def test_ocen_style_rejected_by_strict_default_policy(section: str) -> None:
    parsed, _key, _body = ocen_parts()
    with pytest.raises(SignatureError) as exc:
        jws.check_header(parsed, jws.JWSPolicy(algorithms=frozenset({"RS256"})))
    assert_signature_error(exc, "'b64' must be listed in 'crit'")


@cites("OCEN-AuthStarter-resign-RS256")
def test_ocen_style_resign_reproduces_byte_for_byte(section: str) -> None:
    signer = PrivateKey.from_jwk(rfc9421_key("test-key-rsa"))
    body = OCEN["body_utf8"].encode("utf-8")
    wire = jws.sign_detached(signer, body, "RS256", b64=False, b64_in_crit=False)
    assert wire == OCEN["detached_jws"]


@cites("OCEN-AuthStarter-modified-body")
def test_ocen_style_modified_body_fails(section: str) -> None:
    parsed, key, body = ocen_parts()
    with pytest.raises(SignatureError) as exc:
        jws.verify(parsed, key, body.replace(b"LA-001", b"LA-002"))
    assert_signature_error(exc, "does not verify")


# --- UK Open Banking (PS256, crit iat/iss/tan) ---------------------------------------------


UKOB_POLICY = jws.JWSPolicy(
    algorithms=frozenset({"PS256"}),
    understood_crit=frozenset({"b64"}) | UKOB_CRIT,
    required=frozenset({"kid"}) | UKOB_CRIT,
)


@pytest.mark.parametrize(
    ("variant", "b64"),
    [
        pytest.param("v3_1_4_plus", True, id="UKOB-v3.1.4+-b64-true"),
        pytest.param("v3_1_3_and_earlier_b64false", False, id="UKOB-v3.1.3-b64-false"),
    ],
)
def test_ukob_style_verifies_over_raw_body(variant: str, b64: bool) -> None:
    case = UKOB[variant]
    parsed = jws.parse_compact(case["x-jws-signature"])
    assert parsed.header == json_loads(case["protected_header_utf8"])
    jws.check_header(parsed, UKOB_POLICY)
    key = PublicKey.from_jwk(public_only(rfc9421_key("test-key-rsa-pss")))
    body = UKOB["body_utf8"].encode("utf-8")
    result = jws.verify(parsed, key, body)
    assert (result.alg, result.b64) == ("PS256", b64)
    with pytest.raises(SignatureError):
        jws.verify(parsed, key, body + b" ")


@cites("UKOB-crit-RFC7515-4.1.11")
def test_ukob_style_crit_not_understood_is_rejected(section: str) -> None:
    # RFC 7515 §4.1.11: a crit name the recipient does not understand -> invalid.
    parsed = jws.parse_compact(UKOB["v3_1_4_plus"]["x-jws-signature"])
    with pytest.raises(SignatureError) as exc:
        jws.check_header(parsed, jws.JWSPolicy(algorithms=frozenset({"PS256"})))
    assert_signature_error(exc, "is not understood")


# --- OpenG2P (RS256 over canonical JSON, b64 true) -----------------------------------------


@cites("OpenG2P-canonical-json")
def test_openg2p_style_verifies_over_canonical_json(section: str) -> None:
    wire_body = OPENG2P["wire_body_utf8"].encode("utf-8")
    canonical = canonical_json(json_loads(wire_body))
    assert canonical == OPENG2P["canonical_json_utf8"].encode("utf-8")
    parsed = jws.parse_compact(OPENG2P["Signature"])
    jws.check_header(parsed, jws.JWSPolicy(algorithms=frozenset({"RS256"})))
    key = PublicKey.from_jwk(public_only(rfc9421_key("test-key-rsa")))
    result = jws.verify(parsed, key, canonical)
    assert (result.alg, result.kid, result.b64) == ("RS256", "test-key-rsa", True)
    signing_input = b"".join(
        bytes(p) for p in jws.signing_input(parsed.header_b64, [canonical], b64=True)
    )
    assert signing_input == OPENG2P["signing_input_ascii"].encode("ascii")


@cites("OpenG2P-raw-wire-body")
def test_openg2p_style_raw_wire_body_does_not_verify(section: str) -> None:
    parsed = jws.parse_compact(OPENG2P["Signature"])
    key = PublicKey.from_jwk(public_only(rfc9421_key("test-key-rsa")))
    with pytest.raises(SignatureError):
        jws.verify(parsed, key, OPENG2P["wire_body_utf8"].encode("utf-8"))


@cites("OpenG2P-changed-value")
def test_openg2p_style_changed_value_fails(section: str) -> None:
    body = json_loads(OPENG2P["wire_body_utf8"])
    body["header"]["sender_id"] = "someone-else"
    parsed = jws.parse_compact(OPENG2P["Signature"])
    key = PublicKey.from_jwk(public_only(rfc9421_key("test-key-rsa")))
    with pytest.raises(SignatureError):
        jws.verify(parsed, key, canonical_json(body))
