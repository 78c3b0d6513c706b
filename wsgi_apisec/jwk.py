"""JWK members (RFC 7517, RFC 7518 §6): key objects to members and back.

Only the encoding lives here; the key classes and the algorithms each key may serve live in
:mod:`wsgi_apisec.keys`. Decoding is strict: full-length EC coordinates, points on the curve,
RSA modulus and exponent within bounds, and no key marked for another use.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from .algorithms import MIN_RSA_BITS, SignKey, VerifyKey
from .encoding import b64url_decode, b64url_encode, json_dumps
from .errors import ConfigurationError, ParseError

#: RFC 7518 §6.2.1.1 curve names.
CURVES: dict[str, type[ec.EllipticCurve]] = {
    "P-256": ec.SECP256R1,
    "P-384": ec.SECP384R1,
    "P-521": ec.SECP521R1,
}
CURVE_NAMES = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}

#: Larger moduli add no security worth having and make each verification (and a hostile
#: JWKS) slow; OpenSSL refuses them as well (``OPENSSL_RSA_MAX_MODULUS_BITS``).
MAX_RSA_BITS = 16384
#: Real keys use 65537; a huge exponent only makes verification slow. OpenSSL caps it at 64
#: bits for large moduli, Go at 31 bits: 32 bits keeps every key those peers accept.
MAX_RSA_EXPONENT = 2**32 - 1


def check_rsa(bits: int, e: int) -> None:
    """Refuse an RSA key outside the bounds, whatever it was read from (PEM, X.509, JWK)."""
    if bits < MIN_RSA_BITS:
        raise ConfigurationError(f"RSA keys must be at least {MIN_RSA_BITS} bits")
    if bits > MAX_RSA_BITS:
        raise ConfigurationError(f"RSA keys must be at most {MAX_RSA_BITS} bits")
    if e > MAX_RSA_EXPONENT:
        raise ConfigurationError("RSA public exponent must be at most 2**32 - 1")


def check_verify_use(jwk: Mapping[str, Any]) -> None:
    """RFC 7517 §4.2/§4.3: a key marked for encryption, or whose ``key_ops`` omit
    ``verify``, must not verify signatures (stops cross-purpose key reuse)."""
    use, ops = jwk.get("use"), jwk.get("key_ops")
    if use is not None and use != "sig":
        raise ConfigurationError(f"JWK use {str(use)[:16]!r} is not 'sig'")
    if ops is not None:
        if not isinstance(ops, list) or not all(isinstance(op, str) for op in ops):
            raise ParseError("JWK key_ops must be an array of strings")
        if "verify" not in ops:
            raise ConfigurationError("JWK key_ops does not include 'verify'")


def key_type(key: Any) -> tuple[str, str]:
    """``(kty, shape)`` of a key we accept: shape is the curve, ``RSA`` or ``oct`` (it selects
    the algorithms the key may serve). RSA keys are bounded by :func:`check_rsa`."""
    if isinstance(key, rsa.RSAPublicKey | rsa.RSAPrivateKey):
        pub = key if isinstance(key, rsa.RSAPublicKey) else key.public_key()
        check_rsa(key.key_size, pub.public_numbers().e)
        return "RSA", "RSA"
    if isinstance(key, ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey):
        crv = CURVE_NAMES.get(key.curve.name)
        if crv is None:
            raise ConfigurationError(f"curve {key.curve.name} is not supported")
        return "EC", crv
    if isinstance(key, ed25519.Ed25519PublicKey | ed25519.Ed25519PrivateKey):
        return "OKP", "Ed25519"
    if isinstance(key, bytes):
        return "oct", "oct"
    raise ConfigurationError(f"unsupported key type {type(key).__name__}")


def thumbprint(members: Mapping[str, str]) -> str:
    """RFC 7638 §3: SHA-256 over the required public members, sorted, no whitespace."""
    return b64url_encode(hashlib.sha256(json_dumps(dict(sorted(members.items())))).digest())


def extra_members(kid: str | None, jose_algorithms: frozenset[str]) -> dict[str, Any]:
    """``use``, ``kid`` and (when it is one) ``alg`` for a key we export."""
    extra: dict[str, Any] = {"use": "sig"}
    if kid is not None:
        extra["kid"] = kid
    if len(jose_algorithms) == 1:
        extra["alg"] = next(iter(jose_algorithms))
    elif jose_algorithms == {"EdDSA", "Ed25519"}:
        extra["alg"] = "EdDSA"  # the name FAPI 2.0 peers expect; RFC 9864 calls it Ed25519
    return extra


# --- key -> members -------------------------------------------------------------------------


def _int_b64(value: int, length: int | None = None) -> str:
    size = length or max(1, (value.bit_length() + 7) // 8)
    return b64url_encode(value.to_bytes(size, "big"))


def public_members(key: VerifyKey) -> dict[str, str]:
    """The public members of ``key`` (RFC 7518 §6.2.1, §6.3.1; RFC 8037 §2)."""
    if isinstance(key, rsa.RSAPublicKey):
        nums = key.public_numbers()
        return {"e": _int_b64(nums.e), "kty": "RSA", "n": _int_b64(nums.n)}
    if isinstance(key, ec.EllipticCurvePublicKey):
        crv = CURVE_NAMES[key.curve.name]
        size = (key.curve.key_size + 7) // 8
        pn = key.public_numbers()
        return {"crv": crv, "kty": "EC", "x": _int_b64(pn.x, size), "y": _int_b64(pn.y, size)}
    if isinstance(key, ed25519.Ed25519PublicKey):
        raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return {"crv": "Ed25519", "kty": "OKP", "x": b64url_encode(raw)}
    raise ConfigurationError("a shared secret has no public members")


def private_members(key: SignKey) -> dict[str, str]:
    """Every member of ``key``, private ones included (RFC 7518 §6.2.2, §6.3.2, §6.4)."""
    if isinstance(key, bytes):
        return {"kty": "oct", "k": b64url_encode(key)}
    out = public_members(key.public_key())
    if isinstance(key, rsa.RSAPrivateKey):
        n = key.private_numbers()
        out.update(
            d=_int_b64(n.d),
            p=_int_b64(n.p),
            q=_int_b64(n.q),
            dp=_int_b64(n.dmp1),
            dq=_int_b64(n.dmq1),
            qi=_int_b64(n.iqmp),
        )
    elif isinstance(key, ec.EllipticCurvePrivateKey):
        size = (key.curve.key_size + 7) // 8
        out["d"] = _int_b64(key.private_numbers().private_value, size)
    else:
        raw = key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        out["d"] = b64url_encode(raw)
    return out


# --- members -> key -------------------------------------------------------------------------


def _b64_int(jwk: Mapping[str, Any], name: str) -> int:
    value = jwk.get(name)
    if not isinstance(value, str) or not value:
        raise ParseError(f"JWK member {name!r} is missing")
    return int.from_bytes(b64url_decode(value, f"JWK {name!r}"), "big")


def _fixed(jwk: Mapping[str, Any], name: str, size: int) -> bytes:
    raw = b64url_decode(str(jwk.get(name, "")), f"JWK {name!r}")
    if len(raw) != size:  # RFC 7518 §6.2.1.2: full-length coordinates
        raise ParseError(f"JWK {name!r} must be {size} bytes")
    return raw


def public_from_jwk(jwk: Mapping[str, Any]) -> VerifyKey:
    """The public key of an RSA, EC or Ed25519 JWK; malformed members are :class:`ParseError`."""
    kty = jwk.get("kty")
    try:
        if kty == "RSA":
            e, n = _b64_int(jwk, "e"), _b64_int(jwk, "n")
            if e < 3 or e % 2 == 0:
                raise ParseError("RSA exponent is not valid")
            check_rsa(n.bit_length(), e)  # before the key is built: a huge one never is
            return rsa.RSAPublicNumbers(e, n).public_key()
        if kty == "EC":
            crv = jwk.get("crv")
            if not isinstance(crv, str) or crv not in CURVES:
                raise ParseError(f"EC curve {str(crv)[:16]!r} is not supported")
            curve = CURVES[crv]()
            size = (curve.key_size + 7) // 8
            x = int.from_bytes(_fixed(jwk, "x", size), "big")
            y = int.from_bytes(_fixed(jwk, "y", size), "big")
            return ec.EllipticCurvePublicNumbers(x, y, curve).public_key()
        if kty == "OKP" and jwk.get("crv") == "Ed25519":
            return ed25519.Ed25519PublicKey.from_public_bytes(_fixed(jwk, "x", 32))
    except (ValueError, UnsupportedAlgorithm) as exc:  # e.g. a point not on the curve
        raise ParseError(f"JWK is not a valid {kty} key: {exc}") from exc
    raise ParseError(f"JWK key type {str(kty)[:16]!r} is not supported")


def private_from_jwk(jwk: Mapping[str, Any]) -> SignKey:
    """The private key of an RSA, EC or Ed25519 JWK (RSA primes recovered when absent)."""
    pub = public_from_jwk(jwk)
    try:
        if isinstance(pub, rsa.RSAPublicKey):
            d = _b64_int(jwk, "d")
            pn = pub.public_numbers()
            if "p" in jwk and "q" in jwk:
                p, q = _b64_int(jwk, "p"), _b64_int(jwk, "q")
            else:
                p, q = rsa.rsa_recover_prime_factors(pn.n, pn.e, d)
            return rsa.RSAPrivateNumbers(
                p, q, d, rsa.rsa_crt_dmp1(d, p), rsa.rsa_crt_dmq1(d, q), rsa.rsa_crt_iqmp(p, q), pn
            ).private_key()
        if isinstance(pub, ec.EllipticCurvePublicKey):
            return ec.derive_private_key(_b64_int(jwk, "d"), pub.curve)
        return ed25519.Ed25519PrivateKey.from_private_bytes(_fixed(jwk, "d", 32))
    except ValueError as exc:
        raise ParseError(f"JWK private key is not valid: {exc}") from exc
