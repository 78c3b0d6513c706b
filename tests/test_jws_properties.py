"""Hostile input: every parser gives a result or an APISecError, never another exception;
then one named test per known attack on JOSE parsing and verification."""

from __future__ import annotations

import base64
import functools
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wsgi_apisec import encoding, jws
from wsgi_apisec.algorithms import ALGORITHMS, JOSE_ALGORITHMS
from wsgi_apisec.encoding import b64url_encode, json_dumps
from wsgi_apisec.errors import APISecError, MalformedSignature, ParseError, SignatureError
from wsgi_apisec.keys import KeySet, PrivateKey, PublicKey

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ANY_JOSE = jws.JWSPolicy(algorithms=JOSE_ALGORITHMS)
SECRET = b"k" * 32
HMAC_SIGNER = PrivateKey.from_key(SECRET, algorithms=["HS256"])
HMAC_KEY = PublicKey.from_secret(SECRET)
B64_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
#: A member of the wrong JSON type: unhashable containers, numbers, null.
wrong_type = (
    st.lists(st.text(max_size=3), max_size=2)
    | st.dictionaries(st.text(max_size=3), st.integers(), max_size=2)
    | st.integers()
    | st.none()
)
b64ish = st.binary(max_size=70).map(b64url_encode) | st.text(B64_CHARS + "=+/ .", max_size=90)
jwk_member = b64ish | wrong_type | json_values
jwk_optional = {
    "crv": st.sampled_from(["P-256", "P-384", "P-521", "Ed25519", "X25519"]) | wrong_type,
    "alg": st.sampled_from([*sorted(ALGORITHMS), "none", "ES521"]) | wrong_type,
    "use": st.sampled_from(["sig", "enc"]) | wrong_type,
    "key_ops": st.lists(st.sampled_from(["sign", "verify", "encrypt"])) | wrong_type,
    "kid": st.text(max_size=10) | wrong_type,
    **{name: jwk_member for name in ("x", "y", "n", "e", "k", "d")},
}
#: Half the time a known ``kty`` (so the type-specific code runs), else anything.
jwk_dicts = st.sampled_from(["RSA", "EC", "OKP", "oct"]).flatmap(
    lambda kty: st.fixed_dictionaries({"kty": st.just(kty)}, optional=jwk_optional)
) | st.fixed_dictionaries({}, optional={"kty": wrong_type | json_values, **jwk_optional})
headers = st.dictionaries(
    st.sampled_from(["alg", "kid", "b64", "crit", "typ", "jwk", "x5c", "zip", "x"]),
    st.sampled_from(["HS256", "ES256", "none", "b64", "x", "alg"])
    | st.lists(st.sampled_from(["b64", "alg", "x", "kid"]), max_size=3)
    | json_values,
)
compact = st.tuples(
    headers.map(lambda h: b64url_encode(json_dumps(h))) | b64ish, b64ish, b64ish
).map(".".join)


# --- never another exception -----------------------------------------------------------------


@FUZZ
@given(st.text() | st.binary() | compact)
def test_parse_compact_gives_jws_or_malformed(value: str | bytes) -> None:
    try:
        parsed = jws.parse_compact(value)
    except APISecError as exc:
        assert type(exc) is MalformedSignature and exc.status == 400
        return
    try:
        jws.check_header(parsed, ANY_JOSE)
        jws.verify(parsed, HMAC_KEY, b"body" if parsed.detached else None)
    except APISecError as exc:
        assert exc.status in (400, 401)


@FUZZ
@given(st.text() | st.binary() | b64ish)
def test_b64url_decode_gives_bytes_or_parse_error(value: str | bytes) -> None:
    try:
        out = encoding.b64url_decode(value)
    except APISecError as exc:
        assert type(exc) is ParseError
        return
    # Canonical: the one spelling that decodes to these bytes is the one we were given.
    given_text = value.decode("ascii") if isinstance(value, bytes) else value
    assert b64url_encode(out) == given_text


@FUZZ
@given(st.binary(max_size=200))
def test_b64url_round_trip(data: bytes) -> None:
    assert encoding.b64url_decode(b64url_encode(data)) == data


@FUZZ
@given(st.text() | st.binary() | json_values.map(lambda v: json_dumps(v)))
def test_json_loads_gives_value_or_parse_error(value: str | bytes) -> None:
    try:
        out = encoding.json_loads(value)
    except APISecError as exc:
        assert type(exc) is ParseError
        return
    # Whatever is accepted can be written out again as UTF-8 (no lone surrogates).
    encoding.canonical_json(out, ascii_only=False)


@FUZZ
@given(jwk_dicts, st.booleans())
def test_public_key_from_jwk_gives_key_or_apisec_error(jwk: dict[str, Any], sym: bool) -> None:
    try:
        key = PublicKey.from_jwk(jwk, allow_symmetric=sym)
    except APISecError:
        return
    assert key.algorithms
    assert key.kty in {"RSA", "EC", "OKP", "oct"}


@FUZZ
@given(
    st.fixed_dictionaries({"keys": st.lists(jwk_dicts | json_values, max_size=5)})
    | st.dictionaries(st.text(max_size=5), json_values, max_size=3),
    st.integers(min_value=0, max_value=5),
)
def test_keyset_from_jwks_gives_set_or_apisec_error(jwks: dict[str, Any], max_keys: int) -> None:
    try:
        keys = KeySet.from_jwks(jwks, max_keys=max_keys)
    except APISecError as exc:
        assert type(exc) is ParseError
        return
    assert len(keys) + keys.skipped == len(jwks["keys"]) <= max_keys


@pytest.mark.parametrize(
    "jwk",
    [
        pytest.param({"kty": "EC", "crv": ["P-256"]}, id="EC-crv-list"),
        pytest.param({"kty": "EC", "crv": {"P-256": 1}}, id="EC-crv-object"),
        pytest.param({"kty": "RSA", "n": 7, "e": "AQAB"}, id="RSA-n-number"),
        pytest.param({"kty": "OKP", "crv": "Ed25519", "x": None}, id="OKP-x-null"),
        pytest.param({"kty": "EC", "crv": "P-256", "key_ops": "verify"}, id="key_ops-string"),
    ],
)
def test_malformed_jwk_member_is_parse_error(jwk: dict[str, Any]) -> None:
    with pytest.raises(ParseError):
        PublicKey.from_jwk(jwk)


# --- strict JSON ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        pytest.param('{"alg":"HS256","alg":"none"}', "duplicate member", id="duplicate-keys"),
        pytest.param('{"a":NaN}', "NaN", id="NaN"),
        pytest.param('{"a":Infinity}', "Infinity", id="Infinity"),
        pytest.param('{"a":-Infinity}', "Infinity", id="minus-Infinity"),
        pytest.param('{"a":1' + "0" * 400 + "}", "number too large", id="10^400-int"),
        pytest.param('{"a":1e400}', "out of range", id="10^400-float"),
        pytest.param("[" * 10_000 + "]" * 10_000, "not valid JSON", id="nesting-10000"),
        pytest.param("[" * 33 + "]" * 33, "nested too deeply", id="nesting-33"),
        pytest.param(b'{"a":"\xff"}', "not valid JSON", id="invalid-utf8"),
        pytest.param(b'{"a":"\xed\xa0\x80"}', "not valid JSON", id="utf8-encoded-surrogate"),
        pytest.param(b'\xef\xbb\xbf{"a":1}', "not valid JSON", id="BOM"),
        pytest.param('{"a":"\\ud800"}', "lone surrogate", id="RFC7493-2.1-lone-surrogate"),
    ],
)
def test_strict_json_rejects(data: str | bytes, reason: str) -> None:
    with pytest.raises(ParseError) as exc:
        encoding.json_loads(data)
    assert reason in exc.value.description and exc.value.status == 400
    # The same bytes as a JWS header are a malformed signature (400), not a 500.
    raw = data.encode() if isinstance(data, str) else data
    with pytest.raises(MalformedSignature) as exc2:
        jws.parse_compact(f"{b64url_encode(raw)}..{b64url_encode(b'sig')}")
    assert (exc2.value.status, exc2.value.code) == (400, "signature.malformed")


def test_strict_json_accepts_a_valid_surrogate_pair() -> None:
    assert encoding.json_loads('"\\ud83d\\ude00"') == "\U0001f600"


# --- canonical base64url ----------------------------------------------------------------------

PAYLOAD = bytes([0xFB, 0xFF, 0xFE, 0x54, 0x65])  # base64url "-__-VGU": has - and _


@functools.cache
def good_jws() -> str:
    return jws.sign(HMAC_SIGNER, PAYLOAD, {"alg": "HS256"}, detached=False)


def spellings(part: str) -> dict[str, str]:
    """Other spellings a lenient decoder maps to the same bytes as ``part``."""
    raw = base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
    last = B64_CHARS.index(part[-1])
    return {
        "trailing-bits": part[:-1] + B64_CHARS[last | 1 if not last & 1 else last & ~1],
        "padding": part + "=" * (-len(part) % 4),
        "std-alphabet": base64.b64encode(raw).decode().rstrip("="),
        "inner-space": part[:2] + " " + part[2:],
        "trailing-newline": part + "\n",
        "inner-tab": part[:3] + "\t" + part[3:],
    }


@pytest.mark.parametrize("index", [1, 2], ids=["payload", "signature"])
@pytest.mark.parametrize(
    "kind",
    ["trailing-bits", "padding", "std-alphabet", "inner-space", "trailing-newline", "inner-tab"],
)
def test_non_canonical_base64url_is_rejected(index: int, kind: str) -> None:
    parts = good_jws().split(".")
    jws.verify(jws.parse_compact(good_jws()), HMAC_KEY)
    variant = spellings(parts[index])[kind]
    if kind in {"trailing-bits", "padding", "std-alphabet"}:  # same bytes for a lenient decoder
        lenient = base64.b64decode(
            variant.replace("-", "+").replace("_", "/") + "==", altchars=None
        )
        assert lenient == base64.urlsafe_b64decode(parts[index] + "==")
    assert variant != parts[index]
    parts[index] = variant
    with pytest.raises(MalformedSignature):
        jws.parse_compact(".".join(parts))


def test_whitespace_inside_header_is_rejected() -> None:
    header, payload, signature = good_jws().split(".")
    for bad in (header[:4] + " " + header[4:], header + "\r\n", "\n" + header):
        with pytest.raises(MalformedSignature):
            jws.parse_compact(".".join([bad, payload, signature]))


# --- JWS structure ----------------------------------------------------------------------------


def hs256(header: dict[str, Any], payload: bytes = b"body", detached: bool = True) -> str:
    return jws.sign(HMAC_SIGNER, payload, header, detached=detached)


@pytest.mark.parametrize(
    "value",
    [
        pytest.param('{"payload":"Ym9keQ","protected":"eyJ9","signature":"AA"}', id="flattened"),
        pytest.param('{"payload":"Ym9keQ","signatures":[{"signature":"AA"}]}', id="general"),
        pytest.param('  {"payload":"Ym9keQ","protected":"eyJ9","signature":"AA"}', id="leading-ws"),
    ],
)
def test_json_serialised_jws_is_rejected(value: str) -> None:
    with pytest.raises(MalformedSignature):
        jws.parse_compact(value)


@pytest.mark.parametrize(
    ("crit", "fragment"),
    [
        pytest.param(["alg"], "must not name 'alg'", id="RFC7515-4.1.11-crit-names-alg"),
        pytest.param(["kid"], "must not name 'kid'", id="RFC7515-4.1.11-crit-names-kid"),
        pytest.param(["exp"], "lacks it", id="RFC7515-4.1.11-crit-names-missing"),
        pytest.param([], "non-empty array", id="RFC7515-4.1.11-crit-empty"),
        pytest.param("b64", "non-empty array", id="RFC7515-4.1.11-crit-not-array"),
        pytest.param(["b64", "b64"], "twice", id="RFC7515-4.1.11-crit-duplicate"),
    ],
)
def test_bad_crit_is_rejected(crit: Any, fragment: str) -> None:
    wire = hs256({"alg": "HS256", "kid": "k", "b64": False, "crit": crit})
    with pytest.raises(MalformedSignature) as exc:
        jws.parse_compact(wire)
    assert fragment in exc.value.description


def test_unknown_crit_extension_is_rejected() -> None:
    parsed = jws.parse_compact(hs256({"alg": "HS256", "exp": 1, "crit": ["exp"]}))
    with pytest.raises(SignatureError, match="not understood"):
        jws.check_header(parsed, ANY_JOSE)


@pytest.mark.parametrize("name", ["jwk", "jku", "x5u", "x5c"])
def test_key_carrying_header_is_rejected(name: str) -> None:
    value: Any = {"kty": "oct", "k": b64url_encode(SECRET)} if name == "jwk" else "https://x"
    if name == "x5c":
        value = ["MIIB"]
    parsed = jws.parse_compact(hs256({"alg": "HS256", name: value}))
    jws.verify(parsed, HMAC_KEY, b"body")  # the signature is fine ...
    with pytest.raises(SignatureError, match=f"'{name}' is not accepted") as exc:
        jws.check_header(parsed, ANY_JOSE)  # ... the header is not
    assert exc.value.status == 401


@functools.cache
def rsa_private() -> PrivateKey:
    return PrivateKey.from_key(rsa.generate_private_key(public_exponent=65537, key_size=2048))


def test_key_confusion_hs256_with_rsa_public_pem_is_rejected() -> None:
    public = rsa_private().public_key()
    pem = public.key.public_bytes(  # type: ignore[union-attr]
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    attacker = PrivateKey.from_key(pem, algorithms=["HS256"])
    parsed = jws.parse_compact(jws.sign(attacker, b"body", {"alg": "HS256"}))
    jws.check_header(parsed, jws.JWSPolicy(algorithms=frozenset({"RS256", "HS256"})))
    for key in (public, PublicKey.from_pem(pem)):
        assert not key.allows("HS256")
        with pytest.raises(SignatureError, match="may not be used with HS256"):
            jws.verify(parsed, key, b"body")
    with pytest.raises(SignatureError, match="cannot be used with HS256"):
        ALGORITHMS["HS256"].context(public.key)


@pytest.mark.parametrize(("r", "s"), [(0, 0), (0, 1), (1, 0)], ids=["r=s=0", "r=0", "s=0"])
def test_ecdsa_zero_signature_is_rejected(r: int, s: int) -> None:
    key = PublicKey.from_key(ec.generate_private_key(ec.SECP256R1()).public_key())
    header = b64url_encode(b'{"alg":"ES256"}')
    sig = b64url_encode(r.to_bytes(32, "big") + s.to_bytes(32, "big"))
    with pytest.raises(SignatureError, match="does not verify"):
        jws.verify(jws.parse_compact(f"{header}..{sig}"), key, b"body")


@functools.cache
def signer(alg: str) -> PrivateKey:
    return rsa_private() if alg in {"RS256", "PS256"} else PrivateKey.generate(alg)


@pytest.mark.parametrize("alg", ["RS256", "PS256", "ES256", "EdDSA", "HS256"])
@pytest.mark.parametrize("change", ["truncated", "extended", "prefixed"])
def test_signature_of_wrong_length_is_rejected(alg: str, change: str) -> None:
    key = signer(alg)
    header_b64, _, sig_b64 = jws.sign_detached(key, b"body", alg).split(".")
    sig = encoding.b64url_decode(sig_b64)
    bad = {"truncated": sig[:-1], "extended": sig + b"\x00", "prefixed": b"\x00" + sig}[change]
    jws.verify(jws.parse_compact(f"{header_b64}..{sig_b64}"), key.public_key(), b"body")
    with pytest.raises(SignatureError, match="does not verify"):
        jws.verify(
            jws.parse_compact(f"{header_b64}..{b64url_encode(bad)}"), key.public_key(), b"body"
        )


def test_detached_jws_without_its_payload_is_rejected() -> None:
    parsed = jws.parse_compact(hs256({"alg": "HS256"}))
    with pytest.raises(SignatureError, match="needs its payload"):
        jws.verify(parsed, HMAC_KEY)


def test_attached_jws_given_a_detached_payload_is_rejected() -> None:
    parsed = jws.parse_compact(hs256({"alg": "HS256"}, detached=False))
    jws.verify(parsed, HMAC_KEY)
    with pytest.raises(SignatureError, match="carries a payload"):
        jws.verify(parsed, HMAC_KEY, b"body")


def test_unencoded_detached_payload_spliced_in_is_rejected() -> None:
    header_b64, _, sig_b64 = hs256({"alg": "HS256", "b64": False, "crit": ["b64"]}, b"{}").split(
        "."
    )
    with pytest.raises(MalformedSignature, match="payload is not base64url"):
        jws.parse_compact(f"{header_b64}.{{}}.{sig_b64}")
