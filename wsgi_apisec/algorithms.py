"""Signature algorithms, by their JOSE (RFC 7518, RFC 8037, RFC 9864) and RFC 9421 §6.2 names.

Every algorithm can be fed its input in pieces (:meth:`Algorithm.verifier`), so a large body
is hashed as it streams and never copied; only pure Ed25519 has to see the whole message.
There is no ``none`` algorithm here at all: it cannot be selected by any configuration.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, utils

from .errors import SignatureError

VerifyKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | bytes
SignKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | bytes

#: RSA moduli below this are refused for signing and verifying (RFC 7518 §3.3, §3.5).
MIN_RSA_BITS = 2048

_CRYPTO_HASH: dict[str, Callable[[], hashes.HashAlgorithm]] = {
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}
#: The named constructors are faster than ``hashlib.new(name)``.
_HASHLIB: dict[str, Callable[[], Any]] = {
    "sha256": hashlib.sha256,
    "sha384": hashlib.sha384,
    "sha512": hashlib.sha512,
}


_EC_KEYS = (ec.EllipticCurvePublicKey, ec.EllipticCurvePrivateKey)
_RSA_KEYS = (rsa.RSAPublicKey, rsa.RSAPrivateKey)


class _KeyClasses(dict[type, bool]):
    """Whether instances of a concrete class are keys of the given ABCs, remembered: an
    ABC check costs more than the rest of a small signature's bookkeeping."""

    def __init__(self, kinds: tuple[type, ...]) -> None:
        super().__init__()
        self.kinds = kinds

    def __missing__(self, cls: type) -> bool:
        found = self[cls] = issubclass(cls, self.kinds)
        return found


_IS_EC = _KeyClasses(_EC_KEYS)
_IS_RSA = _KeyClasses(_RSA_KEYS)


class Incremental(Protocol):
    """The signing input, fed in pieces; then one verify or one sign."""

    def update(self, data: bytes | memoryview) -> None: ...
    def verify(self, signature: bytes) -> bool: ...
    def sign(self) -> bytes: ...


class Algorithm:
    """One signature algorithm. ``kty``/``crv`` say which keys it may be used with."""

    name: str
    kty: str
    crv: str | None = None

    def accepts(self, key: Any) -> bool:
        raise NotImplementedError

    def _require(self, key: Any) -> None:
        """A key of another type, curve or size is refused before it is used."""
        if not self.accepts(key):
            raise SignatureError(f"key cannot be used with {self.name}")

    def context(self, key: VerifyKey | SignKey) -> Incremental:
        raise NotImplementedError

    def sign(self, key: SignKey, data: bytes) -> bytes:
        ctx = self.context(key)
        ctx.update(data)
        return ctx.sign()

    def verify(self, key: VerifyKey, data: bytes, signature: bytes) -> bool:
        ctx = self.context(key)
        ctx.update(data)
        return ctx.verify(signature)

    def signer(self, key: SignKey) -> Callable[[bytes], bytes]:
        """:meth:`sign` with ``key`` checked once, for signing many messages with it."""
        self._require(key)
        return lambda data: self.sign(key, data)

    def __repr__(self) -> str:
        return f"<Algorithm {self.name}>"


class _Prehashed:
    """Hash as data arrives, then sign/verify the digest (RSA and ECDSA)."""

    __slots__ = ("_alg", "_hash", "_key")

    def __init__(self, alg: _HashedAlgorithm, key: Any) -> None:
        self._alg = alg
        self._key = key
        self._hash = alg.new_hash()

    def update(self, data: bytes | memoryview) -> None:
        self._hash.update(data)

    def verify(self, signature: bytes) -> bool:
        return self._alg.verify_digest(self._key, self._hash.digest(), signature)

    def sign(self) -> bytes:
        return self._alg.sign_digest(self._key, self._hash.digest())


class _HashedAlgorithm(Algorithm):
    """RSA and ECDSA: the input is hashed, by ``hashlib`` as it streams in (a context) or
    by the backend in the same call (the one-shot :meth:`sign` / :meth:`verify`)."""

    hash_name: str

    def __init__(self, hash_name: str) -> None:
        self.hash_name = hash_name
        self.new_hash = _HASHLIB[hash_name]
        # Immutable parameter objects, built once instead of on every call.
        self._hash = _CRYPTO_HASH[hash_name]()
        self._prehashed = utils.Prehashed(self._hash)

    def context(self, key: VerifyKey | SignKey) -> Incremental:
        self._require(key)
        return _Prehashed(self, key)

    def sign(self, key: SignKey, data: bytes) -> bytes:
        self._require(key)
        return self._sign(key, data, prehashed=False)

    def verify(self, key: VerifyKey, data: bytes, signature: bytes) -> bool:
        self._require(key)
        return self._verify(key, data, signature, prehashed=False)

    def sign_digest(self, key: Any, digest: bytes) -> bytes:
        return self._sign(key, digest, prehashed=True)

    def verify_digest(self, key: Any, digest: bytes, signature: bytes) -> bool:
        return self._verify(key, digest, signature, prehashed=True)

    def _sign(self, key: Any, data: bytes, *, prehashed: bool) -> bytes:
        raise NotImplementedError

    def _verify(self, key: Any, data: bytes, signature: bytes, *, prehashed: bool) -> bool:
        raise NotImplementedError


class RSAAlgorithm(_HashedAlgorithm):
    """RSASSA-PKCS1-v1_5 (RS*) or, with ``pss=True``, RSASSA-PSS (PS*; RFC 7518 §3.5: MGF1
    with the same hash, salt as long as the hash output)."""

    kty = "RSA"

    def __init__(self, name: str, hash_name: str, pss: bool = False) -> None:
        super().__init__(hash_name)
        self.name, self.pss = name, pss
        h = self._hash
        self._padding: padding.AsymmetricPadding = (
            padding.PSS(mgf=padding.MGF1(h), salt_length=h.digest_size)
            if pss
            else padding.PKCS1v15()
        )

    def accepts(self, key: Any) -> bool:
        return _IS_RSA[type(key)] and key.key_size >= MIN_RSA_BITS

    def _verify(self, key: Any, data: bytes, signature: bytes, *, prehashed: bool) -> bool:
        # RFC 8017 §8.2.2: the signature must be exactly k octets.
        if len(signature) != (key.key_size + 7) // 8:
            return False
        try:
            key.verify(signature, data, self._padding, self._prehashed if prehashed else self._hash)
        except InvalidSignature:
            return False
        return True

    def _sign(self, key: Any, data: bytes, *, prehashed: bool) -> bytes:
        return bytes(key.sign(data, self._padding, self._prehashed if prehashed else self._hash))


class ECDSAAlgorithm(_HashedAlgorithm):
    """ECDSA with the JOSE signature form: fixed-width big-endian ``r || s`` (RFC 7518 §3.4)."""

    kty = "EC"

    def __init__(self, name: str, hash_name: str, crv: str, curve: type[ec.EllipticCurve]) -> None:
        super().__init__(hash_name)
        self.name, self.crv, self._curve = name, crv, curve
        self.size = (curve().key_size + 7) // 8
        self._ecdsa_digest = ec.ECDSA(self._prehashed)
        self._ecdsa_data = ec.ECDSA(self._hash)

    def accepts(self, key: Any) -> bool:
        return _IS_EC[type(key)] and isinstance(key.curve, self._curve)

    def _verify(self, key: Any, data: bytes, signature: bytes, *, prehashed: bool) -> bool:
        if len(signature) != 2 * self.size:
            return False
        r = int.from_bytes(signature[: self.size], "big")
        s = int.from_bytes(signature[self.size :], "big")
        if r == 0 or s == 0:  # never valid; refuse before the backend sees it
            return False
        try:
            ecdsa = self._ecdsa_digest if prehashed else self._ecdsa_data
            key.verify(utils.encode_dss_signature(r, s), data, ecdsa)
        except InvalidSignature:
            return False
        return True

    def _sign(self, key: Any, data: bytes, *, prehashed: bool) -> bytes:
        ecdsa = self._ecdsa_digest if prehashed else self._ecdsa_data
        return _fixed_width(key.sign(data, ecdsa), self.size)

    def signer(self, key: SignKey) -> Callable[[bytes], bytes]:
        self._require(key)
        private: Any = key
        sign, ecdsa, size = private.sign, self._ecdsa_data, self.size
        return lambda data: _fixed_width(sign(data, ecdsa), size)


def _fixed_width(der: bytes, size: int) -> bytes:
    """``r || s``, each ``size`` octets, from the DER ``SEQUENCE { INTEGER r, INTEGER s }``
    our own signer just made (RFC 3279 §2.2.3): sliced out, which costs a fraction of
    decoding to integers and back. Anything unexpected goes through the full decoder."""
    at = 3 if der[1] < 0x80 else 4  # the SEQUENCE length is one octet or 0x81 + one
    r_len = der[at]
    s_at = at + r_len + 2
    if der[at - 1] != 2 or der[s_at - 1] != 2 or s_at + 1 + der[s_at] != len(der):
        r, s = utils.decode_dss_signature(der)  # pragma: no cover - never from OpenSSL
        return r.to_bytes(size, "big") + s.to_bytes(size, "big")
    r_octets, s_octets = der[at + 1 : at + 1 + r_len], der[s_at + 1 :]
    # INTEGERs carry a leading zero when the top bit is set, and no leading zeros otherwise.
    return r_octets[-size:].rjust(size, b"\0") + s_octets[-size:].rjust(size, b"\0")


class _Buffered:
    """Pure EdDSA (RFC 8032) signs the message itself, not a hash: keep the pieces."""

    def __init__(self, key: Any) -> None:
        self._key = key
        self._parts: list[bytes | memoryview] = []

    def update(self, data: bytes | memoryview) -> None:
        self._parts.append(data)

    def verify(self, signature: bytes) -> bool:
        if len(signature) != 64:
            return False
        try:
            self._key.verify(signature, b"".join(self._parts))
        except InvalidSignature:
            return False
        return True

    def sign(self) -> bytes:
        return bytes(self._key.sign(b"".join(self._parts)))


class EdDSAAlgorithm(Algorithm):
    """Ed25519 (RFC 8037 ``EdDSA``; RFC 9864 ``Ed25519``; RFC 9421 ``ed25519``)."""

    kty = "OKP"
    crv = "Ed25519"

    def __init__(self, name: str) -> None:
        self.name = name

    def accepts(self, key: Any) -> bool:
        return isinstance(key, ed25519.Ed25519PublicKey | ed25519.Ed25519PrivateKey)

    def context(self, key: VerifyKey | SignKey) -> Incremental:
        self._require(key)
        return _Buffered(key)


class _Mac:
    def __init__(self, key: bytes, hash_name: str) -> None:
        self._mac = hmac.new(key, digestmod=hash_name)

    def update(self, data: bytes | memoryview) -> None:
        self._mac.update(data)

    def verify(self, signature: bytes) -> bool:
        return hmac.compare_digest(self._mac.digest(), signature)

    def sign(self) -> bytes:
        return self._mac.digest()


class HMACAlgorithm(Algorithm):
    """HMAC (RFC 7518 §3.2). Only ever used with a key configured as a shared secret: an
    asymmetric public key is never accepted here, which is what stops key confusion."""

    kty = "oct"

    def __init__(self, name: str, hash_name: str) -> None:
        self.name, self.hash_name = name, hash_name
        self.min_key = hashlib.new(hash_name).digest_size

    def accepts(self, key: Any) -> bool:
        # RFC 7518 §3.2: a key of the same size as the hash output or larger MUST be used.
        return isinstance(key, bytes) and len(key) >= self.min_key

    def context(self, key: VerifyKey | SignKey) -> Incremental:
        if not isinstance(key, bytes) or not self.accepts(key):
            raise SignatureError(f"key cannot be used with {self.name}")
        return _Mac(key, self.hash_name)


def _registry() -> dict[str, Algorithm]:
    algs: list[Algorithm] = [
        RSAAlgorithm("RS256", "sha256"),
        RSAAlgorithm("RS384", "sha384"),
        RSAAlgorithm("RS512", "sha512"),
        RSAAlgorithm("PS256", "sha256", pss=True),
        RSAAlgorithm("PS384", "sha384", pss=True),
        RSAAlgorithm("PS512", "sha512", pss=True),
        ECDSAAlgorithm("ES256", "sha256", "P-256", ec.SECP256R1),
        ECDSAAlgorithm("ES384", "sha384", "P-384", ec.SECP384R1),
        ECDSAAlgorithm("ES512", "sha512", "P-521", ec.SECP521R1),
        EdDSAAlgorithm("EdDSA"),
        EdDSAAlgorithm("Ed25519"),
        HMACAlgorithm("HS256", "sha256"),
        HMACAlgorithm("HS384", "sha384"),
        HMACAlgorithm("HS512", "sha512"),
        # RFC 9421 §6.2 names for the same mechanisms.
        RSAAlgorithm("rsa-pss-sha512", "sha512", pss=True),
        RSAAlgorithm("rsa-v1_5-sha256", "sha256"),
        HMACAlgorithm("hmac-sha256", "sha256"),
        ECDSAAlgorithm("ecdsa-p256-sha256", "sha256", "P-256", ec.SECP256R1),
        ECDSAAlgorithm("ecdsa-p384-sha384", "sha384", "P-384", ec.SECP384R1),
        EdDSAAlgorithm("ed25519"),
    ]
    return {alg.name: alg for alg in algs}


ALGORITHMS: Mapping[str, Algorithm] = _registry()

#: JOSE names only (what a ``alg`` header may carry).
JOSE_ALGORITHMS = frozenset(name for name in ALGORITHMS if not name.islower())
#: RFC 9421 names only.
HTTPSIG_ALGORITHMS = frozenset(name for name in ALGORITHMS if name.islower())
SYMMETRIC = frozenset(name for name, alg in ALGORITHMS.items() if alg.kty == "oct")


#: Names for the same primitive under JOSE and RFC 9421 (RFC 9864 ``Ed25519`` = ``EdDSA``).
_SAME = (
    frozenset({"EdDSA", "Ed25519", "ed25519"}),
    frozenset({"PS512", "rsa-pss-sha512"}),
    frozenset({"RS256", "rsa-v1_5-sha256"}),
    frozenset({"ES256", "ecdsa-p256-sha256"}),
    frozenset({"ES384", "ecdsa-p384-sha384"}),
    frozenset({"HS256", "hmac-sha256"}),
)


def equivalents(names: frozenset[str] | set[str]) -> frozenset[str]:
    """``names`` plus every other name of the same primitive."""
    out = set(names)
    for group in _SAME:
        if group & out:
            out |= group
    return frozenset(out)


def get_algorithm(name: object, allowed: frozenset[str] | None = None) -> Algorithm:
    """The algorithm called ``name`` if it is supported and in ``allowed``.

    ``none`` (in any letter case) is never supported. Failures are :class:`SignatureError`.
    """
    if not isinstance(name, str):
        raise SignatureError("alg must be a string")
    alg = ALGORITHMS.get(name)
    if alg is None:
        raise SignatureError(f"algorithm {name[:32]!r} is not supported")
    if allowed is not None and name not in allowed:
        raise SignatureError(f"algorithm {name!r} is not allowed here")
    return alg
