"""Keys: PEM / JWK / X.509 in, JWK out, thumbprints, algorithm binding, generation."""

from __future__ import annotations

import base64
import datetime
import functools
import json
from collections.abc import Callable
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from tests.vectors import load, text
from wsgi_apisec import jws
from wsgi_apisec.algorithms import JOSE_ALGORITHMS, equivalents
from wsgi_apisec.encoding import b64url_decode, b64url_encode
from wsgi_apisec.errors import ConfigurationError, ParseError, SignatureError
from wsgi_apisec.keys import (
    KeySet,
    PrivateKey,
    PublicKey,
    load_private_key,
    load_public_keys,
    x5t_s256,
)

PEM = serialization.Encoding.PEM
DER = serialization.Encoding.DER
PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "k"}
STRICT = jws.JWSPolicy(algorithms=JOSE_ALGORITHMS)


@functools.cache
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@functools.cache
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@functools.cache
def generated(alg: str) -> PrivateKey:
    return PrivateKey.generate(alg, kid=f"{alg}-1")


def jose_names(alg: str) -> frozenset[str]:
    """``alg`` and its other JOSE names (RFC 9864: ``Ed25519`` is ``EdDSA``)."""
    return equivalents({alg}) & JOSE_ALGORITHMS


def self_signed(key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "client.test")])
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )


def pub_pem(key: Any, fmt: serialization.PublicFormat) -> bytes:
    return bytes(key.public_key().public_bytes(PEM, fmt))


def priv_pem(key: Any, fmt: serialization.PrivateFormat, password: bytes | None = None) -> bytes:
    enc: serialization.KeySerializationEncryption = serialization.NoEncryption()
    if password is not None:
        enc = serialization.BestAvailableEncryption(password)
    return bytes(key.private_bytes(PEM, fmt, enc))


SPKI = serialization.PublicFormat.SubjectPublicKeyInfo
PKCS8 = serialization.PrivateFormat.PKCS8
TRADITIONAL = serialization.PrivateFormat.TraditionalOpenSSL

TRADITIONAL = serialization.PrivateFormat.TraditionalOpenSSL  # PKCS#1 for RSA, SEC1 for EC
PKCS1_PUBLIC = serialization.PublicFormat.PKCS1


@functools.cache
def ed_key() -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.generate()


def cert_pem(key: Any) -> bytes:
    return self_signed(key).public_bytes(PEM)


# (the private key, how it is written as PEM, the kty we expect)
PEM_FORMS: list[Any] = [
    pytest.param(rsa_key, lambda k: pub_pem(k, SPKI), "RSA", id="SPKI-RSA"),
    pytest.param(rsa_key, lambda k: pub_pem(k, PKCS1_PUBLIC), "RSA", id="PKCS1-RSA-public"),
    pytest.param(ec_key, lambda k: pub_pem(k, SPKI), "EC", id="SPKI-EC"),
    pytest.param(ed_key, lambda k: pub_pem(k, SPKI), "OKP", id="SPKI-Ed25519"),
    pytest.param(rsa_key, lambda k: priv_pem(k, PKCS8), "RSA", id="PKCS8-RSA-private"),
    pytest.param(rsa_key, lambda k: priv_pem(k, TRADITIONAL), "RSA", id="PKCS1-RSA-private"),
    pytest.param(ec_key, lambda k: priv_pem(k, TRADITIONAL), "EC", id="SEC1-EC-private"),
    pytest.param(ec_key, lambda k: priv_pem(k, PKCS8), "EC", id="PKCS8-EC-private"),
    pytest.param(ed_key, lambda k: priv_pem(k, PKCS8), "OKP", id="PKCS8-Ed25519-private"),
    pytest.param(ec_key, cert_pem, "EC", id="X509-self-signed-EC"),
]


@pytest.mark.parametrize(("source", "encode", "kty"), PEM_FORMS)
def test_key_from_pem(source: Callable[[], Any], encode: Callable[[Any], bytes], kty: str) -> None:
    original = source()
    data = encode(original)
    want = PublicKey.from_key(original.public_key()).thumbprint()
    key = PublicKey.from_pem(data, kid="k")
    assert (key.kty, key.kid, key.thumbprint()) == (kty, "k", want)
    if b"PRIVATE KEY" in data:
        assert PrivateKey.from_pem(data).thumbprint() == want


def test_encrypted_pkcs8_needs_its_password() -> None:
    data = priv_pem(ec_key(), PKCS8, password=b"s3cret")
    assert PrivateKey.from_pem(data, password=b"s3cret").kty == "EC"
    for password in (None, b"wrong"):
        with pytest.raises(ConfigurationError):
            PrivateKey.from_pem(data, password=password)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", id="junk"),
        pytest.param(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", id="cert"),
        pytest.param(
            b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", id="private"
        ),
    ],
)
def test_bad_pem_is_a_configuration_error(data: bytes) -> None:
    with pytest.raises(ConfigurationError):
        PublicKey.from_pem(data)


def test_certificate_key_carries_x5t_s256() -> None:
    cert = self_signed(ec_key())
    der = cert.public_bytes(DER)
    for key in (PublicKey.from_pem(cert.public_bytes(PEM)), PublicKey.from_certificate(der)):
        assert key.certificate is not None
        assert key.x5t_s256 == x5t_s256(der)
        assert len(key.x5t_s256) == 43
    assert PublicKey.from_pem(pub_pem(ec_key(), SPKI)).x5t_s256 is None


@pytest.mark.parametrize("section", ["RFC8705-3.1-x5t#S256-of-RFC9440-3-cert"])
def test_x5t_s256_of_rfc9440_certificate(section: str) -> None:
    vector = load("rfc8705/derived_x5t_s256_rfc9440_cert.json")
    key = PublicKey.from_pem(text("rfc9440/client_end_entity.pem"))
    assert key.x5t_s256 == vector["x5t#S256"] == vector["cnf"]["x5t#S256"]
    header_der = base64.b64decode(vector["Client-Cert_header"].split(":")[2])
    assert x5t_s256(header_der) == vector["x5t#S256"]
    assert b64url_decode(vector["x5t#S256"]).hex() == vector["sha256_hex"]


# --- JWK ------------------------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["RS256", "PS256", "ES256", "ES384", "EdDSA"])
def test_jwk_round_trip_public_by_default(alg: str) -> None:
    key = generated(alg)
    jwk = key.to_jwk()
    assert not PRIVATE_MEMBERS & jwk.keys()
    assert (jwk["use"], jwk["kid"]) == ("sig", key.kid)
    assert jwk["alg"] in jose_names(alg)
    public = PublicKey.from_jwk(jwk)
    assert public.thumbprint() == key.thumbprint()
    assert public.jose_algorithms == jose_names(alg)
    assert public.to_jwk() == jwk


@pytest.mark.parametrize("alg", ["RS256", "ES384", "EdDSA"])
def test_jwk_round_trip_private_when_asked(alg: str) -> None:
    key = generated(alg)
    jwk = key.to_jwk(private=True)
    assert "d" in jwk
    again = PrivateKey.from_jwk(jwk)
    wire = jws.sign_detached(again, b"round trip", alg)
    jws.verify(jws.parse_compact(wire), key.public_key(), b"round trip")


def test_shared_secret_is_never_exported_as_public_jwk() -> None:
    with pytest.raises(ConfigurationError):
        generated("HS256").to_jwk()
    with pytest.raises(ConfigurationError):
        PublicKey.from_secret(b"k" * 32).to_jwk()
    assert generated("HS256").to_jwk(private=True)["kty"] == "oct"


@pytest.mark.parametrize("section", ["RFC7638-3.1"])
def test_rfc7638_thumbprint_example(section: str) -> None:
    # The RSA key printed in RFC 7638 §3.1 and its thumbprint.
    jwk = {
        "kty": "RSA",
        "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6"
        "tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-6"
        "5YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyr"
        "dkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKn"
        "qDKgw",
        "e": "AQAB",
        "alg": "RS256",
        "kid": "2011-04-29",
    }
    key = PublicKey.from_jwk(jwk)
    assert key.thumbprint() == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def test_rsa_below_2048_bits_is_refused() -> None:
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    nums = small.public_key().public_numbers()
    jwk = {"kty": "RSA", "n": b64url_encode(nums.n.to_bytes(128, "big")), "e": "AQAB"}
    with pytest.raises(ConfigurationError, match="at least 2048"):
        PublicKey.from_key(small.public_key())
    with pytest.raises(ConfigurationError, match="at least 2048"):
        PublicKey.from_pem(pub_pem(small, SPKI))
    with pytest.raises(ConfigurationError, match="at least 2048"):
        PrivateKey.from_pem(priv_pem(small, PKCS8))
    with pytest.raises(ConfigurationError, match="at least 2048"):
        PublicKey.from_jwk(jwk)
    assert len(KeySet.from_jwks({"keys": [jwk]})) == 0
    assert PrivateKey.generate("RS256", rsa_bits=1024).key.key_size == 2048  # type: ignore[union-attr]


def rsa_jwk(n: int, e: int) -> dict[str, str]:
    size = (n.bit_length() + 7) // 8
    return {
        "kty": "RSA",
        "n": b64url_encode(n.to_bytes(size, "big")),
        "e": b64url_encode(e.to_bytes((e.bit_length() + 7) // 8, "big")),
    }


def test_rsa_above_16384_bits_is_refused() -> None:
    # Public-key construction does not check primality: an odd number of the right size will do.
    huge = rsa.RSAPublicNumbers(65537, (1 << 16384) | 1).public_key()  # 16385 bits
    with pytest.raises(ConfigurationError, match="at most 16384 bits"):
        PublicKey.from_key(huge)
    with pytest.raises(ConfigurationError, match="at most 16384 bits"):
        PublicKey.from_pem(huge.public_bytes(PEM, SPKI))
    with pytest.raises(ConfigurationError, match="at most 16384 bits"):
        PublicKey.from_jwk(rsa_jwk((1 << 16384) | 1, 65537))
    assert len(KeySet.from_jwks({"keys": [rsa_jwk((1 << 16384) | 1, 65537)]})) == 0
    with pytest.raises(ConfigurationError, match="at most 16384 bits"):
        PrivateKey.generate("RS256", rsa_bits=16392)  # refused before any prime is sought
    largest = PublicKey.from_jwk(rsa_jwk((1 << 16383) | 1, 65537))  # exactly 16384 bits
    assert largest.kty == "RSA" and largest.allows("PS256")


def test_rsa_public_exponent_above_32_bits_is_refused() -> None:
    n = rsa_key().public_key().public_numbers().n
    big_e = rsa.RSAPublicNumbers(2**32 + 1, n).public_key()
    with pytest.raises(ConfigurationError, match="exponent"):
        PublicKey.from_key(big_e)
    with pytest.raises(ConfigurationError, match="exponent"):
        PublicKey.from_pem(big_e.public_bytes(PEM, SPKI))
    with pytest.raises(ConfigurationError, match="exponent"):
        PublicKey.from_jwk(rsa_jwk(n, 2**64 + 1))
    assert len(KeySet.from_jwks({"keys": [rsa_jwk(n, 2**32 + 1)]})) == 0
    assert PublicKey.from_jwk(rsa_jwk(n, 2**32 - 1)).kty == "RSA"  # the largest accepted
    with pytest.raises(ParseError, match="exponent is not valid"):
        PublicKey.from_jwk(rsa_jwk(n, 2**32))  # even: malformed, not merely too large


def ec_jwk() -> dict[str, str]:
    nums = ec_key().public_key().public_numbers()
    return {
        "kty": "EC",
        "crv": "P-256",
        "x": b64url_encode(nums.x.to_bytes(32, "big")),
        "y": b64url_encode(nums.y.to_bytes(32, "big")),
    }


def test_ec_point_not_on_curve_is_refused() -> None:
    jwk = ec_jwk()
    y = int.from_bytes(b64url_decode(jwk["y"]), "big")
    jwk["y"] = b64url_encode(((y + 1) % 2**256).to_bytes(32, "big"))
    with pytest.raises(ParseError, match="not a valid EC key") as exc:
        PublicKey.from_jwk(jwk)
    assert exc.value.status == 400


@pytest.mark.parametrize(
    ("member", "change"),
    [
        pytest.param("x", lambda raw: raw[1:], id="EC-x-31-bytes"),
        pytest.param("y", lambda raw: b"\x00" + raw, id="EC-y-33-bytes"),
        pytest.param("x", lambda raw: b"", id="EC-x-empty"),
    ],
)
def test_ec_wrong_length_coordinates_are_refused(
    member: str, change: Callable[[bytes], bytes]
) -> None:
    # RFC 7518 §6.2.1.2: coordinates are the full length of the field size.
    jwk = ec_jwk()
    jwk[member] = b64url_encode(change(b64url_decode(jwk[member])))
    with pytest.raises(ParseError):
        PublicKey.from_jwk(jwk)


def test_ed25519_wrong_length_is_refused() -> None:
    x = b64url_encode(b"\x01" * 31)
    with pytest.raises(ParseError, match="must be 32 bytes"):
        PublicKey.from_jwk({"kty": "OKP", "crv": "Ed25519", "x": x})


# --- algorithm binding ------------------------------------------------------------------------


def forge_alg(wire: str, alg: str) -> jws.CompactJWS:
    """The same detached JWS with the header's ``alg`` replaced."""
    header = b64url_encode(f'{{"alg":"{alg}"}}'.encode())
    return jws.parse_compact(header + "." + wire.split(".", 1)[1])


def test_es256_key_refuses_other_algorithms() -> None:
    key = PublicKey.from_key(ec_key().public_key())
    assert key.allows("ES256")
    for alg in ("ES384", "ES512", "RS256", "PS256", "HS256", "EdDSA"):
        assert not key.allows(alg)
    with pytest.raises(ConfigurationError):
        PublicKey.from_key(ec_key().public_key(), algorithms=["ES384"])
    signer = PrivateKey.from_key(ec_key())
    wire = jws.sign_detached(signer, b"body", "ES256")
    for alg in ("ES384", "RS256"):
        with pytest.raises(SignatureError, match=f"may not be used with {alg}"):
            jws.verify(forge_alg(wire, alg), key, b"body")


def test_jwk_alg_rs256_refuses_ps256() -> None:
    signer = PrivateKey.from_key(rsa_key())
    jwk = {**signer.to_jwk(), "alg": "RS256"}
    key = PublicKey.from_jwk(jwk)
    assert key.allows("RS256") and not key.allows("PS256")
    wire = jws.sign_detached(signer, b"body", "PS256")
    with pytest.raises(SignatureError, match="may not be used with PS256"):
        jws.verify(jws.parse_compact(wire), key, b"body")
    with pytest.raises(ConfigurationError, match="do not fit a RSA key"):
        PublicKey.from_jwk({**jwk, "alg": "ES256"})


def test_oct_jwk_needs_allow_symmetric() -> None:
    jwk = {"kty": "oct", "k": b64url_encode(b"s" * 32), "alg": "HS256"}
    with pytest.raises(ConfigurationError, match="symmetric"):
        PublicKey.from_jwk(jwk)
    key = PublicKey.from_jwk(jwk, allow_symmetric=True)
    assert key.allows("HS256") and not key.allows("HS384")
    bare = PublicKey.from_jwk({"kty": "oct", "k": jwk["k"]}, allow_symmetric=True)
    assert bare.jose_algorithms == {"HS256", "HS384", "HS512"}


@pytest.mark.parametrize(
    ("member", "value"),
    [
        pytest.param("use", "enc", id="RFC7517-4.2-use-enc"),
        pytest.param("key_ops", ["encrypt"], id="RFC7517-4.3-key_ops-encrypt"),
        pytest.param("key_ops", ["sign"], id="RFC7517-4.3-key_ops-sign-only"),
    ],
)
def test_jwk_not_for_verifying_is_refused(member: str, value: Any) -> None:
    with pytest.raises(ConfigurationError):
        PublicKey.from_jwk({**ec_jwk(), member: value})
    assert PublicKey.from_jwk({**ec_jwk(), "use": "sig", "key_ops": ["verify"]}).kty == "EC"


# --- KeySet -----------------------------------------------------------------------------------


def test_keyset_skips_unusable_keys() -> None:
    good_ec = {**ec_jwk(), "kid": "ec"}
    good_rsa = {**PrivateKey.from_key(rsa_key()).to_jwk(), "kid": "rsa"}
    jwks = {
        "keys": [
            good_rsa,
            {**good_rsa, "kid": "rsa-enc", "use": "enc"},
            {"kty": "OKP", "crv": "X25519", "x": b64url_encode(b"\x09" * 32), "kid": "x"},
            {"kty": "PQC", "kid": "future"},
            {"kty": "oct", "k": b64url_encode(b"s" * 32), "kid": "secret"},
            "not-an-object",
            good_ec,
        ]
    }
    keys = KeySet.from_jwks(jwks)
    assert [k.kid for k in keys] == ["rsa", "ec"]
    assert keys.skipped == 5
    assert keys.get("rsa-enc") is None and keys.get("ec") is not None
    assert keys.candidates("ec", "ES256") == [keys.get("ec")]
    assert keys.candidates("ec", "RS256") == []
    assert [k.kid for k in keys.candidates(None, "PS256")] == ["rsa"]
    assert {k["kid"] for k in keys.to_jwks()["keys"]} == {"rsa", "ec"}


def test_keyset_enforces_max_keys() -> None:
    jwks = {"keys": [{**ec_jwk(), "kid": str(i)} for i in range(3)]}
    assert len(KeySet.from_jwks(jwks, max_keys=3)) == 3
    with pytest.raises(ParseError, match="more than 2 keys") as exc:
        KeySet.from_jwks(jwks, max_keys=2)
    assert exc.value.status == 400
    with pytest.raises(ParseError, match="no 'keys' array"):
        KeySet.from_jwks({"keys": {}})


def test_repr_never_shows_secret_material() -> None:
    secret = b"\x8a" * 16 + b"super-secret-val"
    rsa_private = PrivateKey.from_key(rsa_key(), kid="r")
    d = rsa_private.to_jwk(private=True)["d"]
    ec_private = PrivateKey.from_key(ec_key(), kid="e")
    ec_d = ec_private.to_jwk(private=True)["d"]
    hmac_private = PrivateKey.from_key(secret, kid="h")
    shown = " ".join(
        f(k)
        for f in (repr, str)
        for k in (rsa_private, ec_private, hmac_private, hmac_private.public_key())
    )
    for needle in (d, ec_d, b64url_encode(secret), secret.hex(), repr(secret), "super-secret"):
        assert needle not in shown
    assert "kid='h'" in shown


# --- generation and round trips ---------------------------------------------------------------


@pytest.mark.parametrize("alg", ["RS256", "PS256", "ES256", "ES384", "EdDSA", "HS256"])
@pytest.mark.parametrize("b64", [True, False], ids=["b64", "unencoded"])
@pytest.mark.parametrize("detached", [True, False], ids=["detached", "attached"])
def test_generate_sign_verify_round_trip(alg: str, b64: bool, detached: bool) -> None:
    key = generated(alg)
    assert key.jose_algorithms == jose_names(alg)
    body = b'{"amount":"10.00","note":"a.b"}'
    header = jws.build_header(key, alg, b64=b64)
    if not detached and not b64:
        with pytest.raises(SignatureError, match="cannot be attached"):
            jws.sign(key, body, header, detached=False)
        return
    wire = jws.sign(key, body, header, detached=detached)
    parsed = jws.parse_compact(wire)
    jws.check_header(parsed, STRICT)
    result = jws.verify(parsed, key.public_key(), body if detached else None)
    assert (result.alg, result.kid, result.b64) == (alg, key.kid, b64)
    if detached:
        with pytest.raises(SignatureError, match="does not verify"):
            jws.verify(parsed, key.public_key(), body + b" ")
    else:
        assert jws.payload_of(parsed) == body
    other = PrivateKey.generate(alg) if alg in {"ES256", "EdDSA", "HS256"} else None
    if other is not None:
        with pytest.raises(SignatureError, match="does not verify"):
            jws.verify(parsed, other.public_key(), body if detached else None)


# --- key files --------------------------------------------------------------------------------


def test_load_public_keys_reads_pem_jwk_jwks_and_private_halves() -> None:
    private = PrivateKey.from_key(ec_key(), kid="e1")
    jwk = json.dumps(private.to_jwk()).encode()
    jwks = json.dumps({"keys": [private.to_jwk(), PrivateKey.generate("EdDSA").to_jwk()]})
    assert [k.kty for k in load_public_keys(pub_pem(ec_key(), SPKI))] == ["EC"]
    assert [k.kty for k in load_public_keys(b"\n" + priv_pem(ec_key(), PKCS8))] == ["EC"]
    assert [k.kty for k in load_public_keys(cert_pem(ec_key()))] == ["EC"]
    assert [k.kid for k in load_public_keys(jwk)] == ["e1"]
    (half,) = load_public_keys(json.dumps(private.to_jwk(private=True)).encode())
    assert isinstance(half, PublicKey) and half.thumbprint() == private.thumbprint()
    assert [k.kty for k in load_public_keys(jwks.encode())] == ["EC", "OKP"]


@pytest.mark.parametrize(
    ("data", "error", "reason"),
    [
        (json.dumps({"kty": "oct", "k": "c2VjcmV0"}).encode(), ConfigurationError, "symmetric"),
        (
            json.dumps({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}).encode(),
            ConfigurationError,
            "no usable signing key",
        ),
        (b"\x00\xffnot a key", ParseError, "not valid JSON"),
        (
            b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
            ConfigurationError,
            "cannot load PEM",
        ),
    ],
    ids=["oct-jwk", "jwks-without-usable-key", "garbage", "bad-pem"],
)
def test_load_public_keys_refuses(data: bytes, error: type[Exception], reason: str) -> None:
    with pytest.raises(error, match=reason):
        load_public_keys(data)


def test_load_private_key_reads_pem_and_private_jwk_only() -> None:
    key = PrivateKey.from_key(ec_key(), kid="e1")
    assert load_private_key(priv_pem(ec_key(), PKCS8)).thumbprint() == key.thumbprint()
    loaded = load_private_key(json.dumps(key.to_jwk(private=True)).encode())
    assert loaded.kid == "e1" and loaded.allows("ES256")
    with pytest.raises(ConfigurationError, match="no private key"):
        load_private_key(json.dumps(key.to_jwk()).encode())
    with pytest.raises(ConfigurationError, match="symmetric"):
        load_private_key(json.dumps({"kty": "oct", "k": "c2VjcmV0"}).encode())
    with pytest.raises(ConfigurationError, match="cannot load PEM private key"):
        load_private_key(pub_pem(ec_key(), SPKI))
