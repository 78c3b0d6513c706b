"""Keys: PEM / JWK / X.509 in, JWK / JWKS out, thumbprints; each key bound to its algorithms.

A key knows which algorithms it may be used with (from its type, curve and size, narrowed by
its JWK ``alg`` and by configuration). A verifier asks the key, never the message, so an RSA
public key can never be used as an HMAC secret and an ES256 key never verifies ES384.
JWK member encoding is in :mod:`wsgi_apisec.jwk`; :func:`load_public_keys` and
:func:`load_private_key` read a key file in any of the accepted forms.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from .algorithms import ALGORITHMS, JOSE_ALGORITHMS, SignKey, VerifyKey, equivalents
from .encoding import b64url_decode, b64url_encode, json_object
from .errors import ConfigurationError, ParseError
from .jwk import (
    CURVES,
    MAX_RSA_BITS,
    check_verify_use,
    extra_members,
    key_type,
    private_from_jwk,
    private_members,
    public_from_jwk,
    public_members,
    thumbprint,
)

#: The algorithms a key of each shape may be used with, absent other limits.
_DEFAULT_ALGS = {
    "RSA": frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}),
    "P-256": frozenset({"ES256"}),
    "P-384": frozenset({"ES384"}),
    "P-521": frozenset({"ES512"}),
    "Ed25519": frozenset({"EdDSA", "Ed25519"}),
    "oct": frozenset({"HS256", "HS384", "HS512"}),
}
#: RFC 9421 §6.2 names per key shape (``rsa-pss-sha512`` and ``rsa-v1_5-sha256`` both RSA).
_HTTPSIG_ALGS = {
    "RSA": frozenset({"rsa-pss-sha512", "rsa-v1_5-sha256"}),
    "P-256": frozenset({"ecdsa-p256-sha256"}),
    "P-384": frozenset({"ecdsa-p384-sha384"}),
    "P-521": frozenset(),
    "Ed25519": frozenset({"ed25519"}),
    "oct": frozenset({"hmac-sha256"}),
}


def x5t_s256(cert_der: bytes) -> str:
    """RFC 8705 §3.1 ``x5t#S256``: base64url SHA-256 of the DER certificate."""
    return b64url_encode(hashlib.sha256(cert_der).digest())


def _names(value: object) -> set[str]:
    if isinstance(value, list | tuple | set | frozenset):
        return {v for v in value if isinstance(v, str)}
    return set()


def _bind_algorithms(
    shape: str, jwk_alg: object, algorithms: Iterable[str] | None
) -> frozenset[str]:
    """The algorithms a key may be used with: all that fit its shape, narrowed to the JWK's
    ``alg`` (RFC 7517 §4.4) and to the configured ones, each with its other names."""
    allowed = _DEFAULT_ALGS[shape] | _HTTPSIG_ALGS[shape]
    for limit, what in ((jwk_alg, "JWK alg"), (algorithms, "configured algorithms")):
        if limit is None:
            continue
        wanted = {limit} if isinstance(limit, str) else _names(limit)
        if not wanted or not wanted <= allowed:
            raise ConfigurationError(f"{what} {sorted(map(str, wanted))} do not fit a {shape} key")
        allowed &= equivalents(wanted)
    return frozenset(allowed)


@dataclass(frozen=True, eq=False)
class _Key:
    kid: str | None
    kty: str
    algorithms: frozenset[str]
    certificate: x509.Certificate | None

    @property
    def jose_algorithms(self) -> frozenset[str]:
        return self.algorithms & JOSE_ALGORITHMS

    def allows(self, alg: str) -> bool:
        return alg in self.algorithms

    def _public_members(self) -> dict[str, str]:
        raise NotImplementedError

    def thumbprint(self) -> str:
        """RFC 7638 §3: SHA-256 over the required members, sorted, no whitespace."""
        return thumbprint(self._public_members())

    @property
    def x5t_s256(self) -> str | None:
        if self.certificate is None:
            return None
        return x5t_s256(self.certificate.public_bytes(serialization.Encoding.DER))

    def _jwk_extras(self) -> dict[str, Any]:
        return extra_members(self.kid, self.jose_algorithms)


@dataclass(frozen=True, eq=False)
class PublicKey(_Key):
    """A key that verifies. Holds a shared secret only when built with :meth:`from_secret`."""

    key: VerifyKey = field(repr=False)

    @classmethod
    def from_key(
        cls,
        key: VerifyKey,
        *,
        kid: str | None = None,
        algorithms: Iterable[str] | None = None,
        certificate: x509.Certificate | None = None,
        jwk_alg: object = None,
    ) -> PublicKey:
        kty, shape = key_type(key)
        algs = _bind_algorithms(shape, jwk_alg, algorithms)
        return cls(kid=kid, kty=kty, algorithms=algs, certificate=certificate, key=key)

    @classmethod
    def from_secret(
        cls, secret: bytes, *, kid: str | None = None, algorithms: Iterable[str] = ("HS256",)
    ) -> PublicKey:
        """An explicitly configured HMAC secret; the only way HS* is ever enabled."""
        return cls.from_key(secret, kid=kid, algorithms=algorithms)

    @classmethod
    def from_pem(
        cls, data: bytes | str, *, kid: str | None = None, algorithms: Iterable[str] | None = None
    ) -> PublicKey:
        """SPKI, PKCS#1 ``RSA PUBLIC KEY``, an X.509 certificate, or a private key's public half."""
        raw = data.encode() if isinstance(data, str) else data
        try:
            if b"CERTIFICATE-----" in raw:
                return cls.from_certificate(
                    x509.load_pem_x509_certificate(raw), kid=kid, algorithms=algorithms
                )
            if b"PRIVATE KEY-----" in raw:
                return PrivateKey.from_pem(raw, kid=kid, algorithms=algorithms).public_key()
            key = serialization.load_pem_public_key(raw)
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            raise ConfigurationError(f"cannot load PEM key: {exc}") from exc
        return cls.from_key(_verify_key(key), kid=kid, algorithms=algorithms)

    @classmethod
    def from_certificate(
        cls,
        cert: x509.Certificate | bytes,
        *,
        kid: str | None = None,
        algorithms: Iterable[str] | None = None,
    ) -> PublicKey:
        if isinstance(cert, bytes):
            try:
                cert = x509.load_der_x509_certificate(cert)
            except (ValueError, x509.InvalidVersion) as exc:
                raise ConfigurationError("cannot load DER certificate") from exc
        try:
            public = cert.public_key()
        except (ValueError, UnsupportedAlgorithm) as exc:  # a key type cryptography lacks
            raise ConfigurationError("the certificate's key type is not supported") from exc
        key = _verify_key(public)
        return cls.from_key(key, kid=kid, algorithms=algorithms, certificate=cert)

    @classmethod
    def from_jwk(
        cls,
        jwk: Mapping[str, Any] | str | bytes,
        *,
        algorithms: Iterable[str] | None = None,
        allow_symmetric: bool = False,
    ) -> PublicKey:
        """A public JWK (RFC 7517/7518 §6). ``oct`` keys only with ``allow_symmetric``."""
        obj = json_object(jwk, "JWK") if isinstance(jwk, str | bytes) else jwk
        kid = obj.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise ParseError("JWK kid must be a string")
        check_verify_use(obj)
        if obj.get("kty") == "oct":
            if not allow_symmetric:
                raise ConfigurationError("symmetric JWKs are only accepted when configured")
            secret = b64url_decode(str(obj.get("k", "")), "JWK 'k'")
            jwk_alg = obj.get("alg")
            # Without a JWK "alg" the key serves every JOSE HS*; with one, that one only.
            default = _DEFAULT_ALGS["oct"] if jwk_alg is None else None
            return cls.from_key(secret, kid=kid, algorithms=algorithms or default, jwk_alg=jwk_alg)
        key = public_from_jwk(obj)
        return cls.from_key(key, kid=kid, algorithms=algorithms, jwk_alg=obj.get("alg"))

    def _public_members(self) -> dict[str, str]:
        return public_members(self.key)

    def to_jwk(self) -> dict[str, Any]:
        if isinstance(self.key, bytes):
            raise ConfigurationError("a shared secret is never exported")
        return {**self._public_members(), **self._jwk_extras()}


@dataclass(frozen=True, eq=False)
class PrivateKey(_Key):
    """A key that signs. Exports only its public half unless asked."""

    key: SignKey = field(repr=False)

    @classmethod
    def from_key(
        cls,
        key: SignKey,
        *,
        kid: str | None = None,
        algorithms: Iterable[str] | None = None,
        certificate: x509.Certificate | None = None,
        jwk_alg: object = None,
    ) -> PrivateKey:
        kty, shape = key_type(key)
        algs = _bind_algorithms(shape, jwk_alg, algorithms)
        return cls(kid=kid, kty=kty, algorithms=algs, certificate=certificate, key=key)

    @classmethod
    def generate(cls, alg: str, *, kid: str | None = None, rsa_bits: int = 2048) -> PrivateKey:
        """A fresh key for ``alg`` (RS*/PS* RSA >= 2048, ES256/384/512, EdDSA/Ed25519, HS*)."""
        key: SignKey
        if alg not in ALGORITHMS:
            raise ConfigurationError(f"unknown algorithm {alg!r}")
        family = ALGORITHMS[alg]
        if family.kty == "RSA":
            if rsa_bits > MAX_RSA_BITS:
                raise ConfigurationError(f"RSA keys must be at most {MAX_RSA_BITS} bits")
            key = rsa.generate_private_key(public_exponent=65537, key_size=max(rsa_bits, 2048))
        elif family.kty == "EC":
            key = ec.generate_private_key(CURVES[str(family.crv)]())
        elif family.kty == "OKP":
            key = ed25519.Ed25519PrivateKey.generate()
        else:
            key = secrets.token_bytes(64)
        return cls.from_key(key, kid=kid, algorithms=[alg])

    @classmethod
    def from_pem(
        cls,
        data: bytes | str,
        *,
        password: bytes | None = None,
        kid: str | None = None,
        algorithms: Iterable[str] | None = None,
    ) -> PrivateKey:
        """PKCS#8, PKCS#1 ``RSA PRIVATE KEY`` or SEC1 ``EC PRIVATE KEY``."""
        raw = data.encode() if isinstance(data, str) else data
        try:
            key = serialization.load_pem_private_key(raw, password=password)
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            raise ConfigurationError(f"cannot load PEM private key: {exc}") from exc
        if not isinstance(
            key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
        ):
            raise ConfigurationError(f"unsupported private key {type(key).__name__}")
        return cls.from_key(key, kid=kid, algorithms=algorithms)

    @classmethod
    def from_jwk(
        cls, jwk: Mapping[str, Any] | str | bytes, *, algorithms: Iterable[str] | None = None
    ) -> PrivateKey:
        obj = json_object(jwk, "JWK") if isinstance(jwk, str | bytes) else jwk
        kid = obj.get("kid") if isinstance(obj.get("kid"), str) else None
        if obj.get("kty") == "oct":
            secret = b64url_decode(str(obj.get("k", "")), "JWK 'k'")
            return cls.from_key(secret, kid=kid, algorithms=algorithms or _DEFAULT_ALGS["oct"])
        return cls.from_key(
            private_from_jwk(obj), kid=kid, algorithms=algorithms, jwk_alg=obj.get("alg")
        )

    def public_key(self) -> PublicKey:
        pub: VerifyKey = self.key if isinstance(self.key, bytes) else self.key.public_key()
        return PublicKey(
            kid=self.kid,
            kty=self.kty,
            algorithms=self.algorithms,
            certificate=self.certificate,
            key=pub,
        )

    def _public_members(self) -> dict[str, str]:
        return self.public_key()._public_members()

    def to_jwk(self, private: bool = False) -> dict[str, Any]:
        if not private:
            return self.public_key().to_jwk()
        return {**private_members(self.key), **self._jwk_extras()}

    def to_pem(self) -> bytes:
        if isinstance(self.key, bytes):
            raise ConfigurationError("a shared secret has no PEM form")
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


class KeySet:
    """An ordered set of public keys (a JWKS), oldest to newest, looked up by ``kid``."""

    def __init__(self, keys: Iterable[PublicKey] = (), skipped: int = 0) -> None:
        self.keys: tuple[PublicKey, ...] = tuple(keys)
        self.skipped = skipped
        self._by_kid = {k.kid: k for k in self.keys if k.kid is not None}

    @classmethod
    def from_jwks(
        cls,
        jwks: Mapping[str, Any] | str | bytes,
        *,
        max_keys: int = 100,
        allow_symmetric: bool = False,
    ) -> KeySet:
        """RFC 7517 §5. Keys we cannot use (unknown ``kty``, ``use: enc``, weak RSA) are
        skipped, as §5 says they SHOULD be; a malformed document is a :class:`ParseError`."""
        obj = json_object(jwks, "JWKS") if isinstance(jwks, str | bytes) else jwks
        members = obj.get("keys")
        if not isinstance(members, list):
            raise ParseError("JWKS has no 'keys' array")
        if len(members) > max_keys:
            raise ParseError(f"JWKS has more than {max_keys} keys")
        keys, skipped = [], 0
        for jwk in members:
            if not isinstance(jwk, dict) or jwk.get("use", "sig") != "sig":
                skipped += 1
                continue
            try:
                keys.append(PublicKey.from_jwk(jwk, allow_symmetric=allow_symmetric))
            except (ParseError, ConfigurationError):
                skipped += 1
        return cls(keys, skipped)

    def __iter__(self) -> Iterator[PublicKey]:
        return iter(self.keys)

    def __len__(self) -> int:
        return len(self.keys)

    def get(self, kid: str) -> PublicKey | None:
        return self._by_kid.get(kid)

    def candidates(self, kid: str | None, alg: str) -> list[PublicKey]:
        """Keys that may verify a signature naming ``kid`` (or none) made with ``alg``."""
        if kid is not None:
            key = self._by_kid.get(kid)
            return [key] if key is not None and key.allows(alg) else []
        return [k for k in self.keys if k.allows(alg)]

    def to_jwks(self) -> dict[str, Any]:
        return {"keys": [k.to_jwk() for k in self.keys if not isinstance(k.key, bytes)]}


def _verify_key(key: Any) -> VerifyKey:
    if isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey):
        return key
    raise ConfigurationError(f"unsupported public key {type(key).__name__}")


# --- key files ------------------------------------------------------------------------------


def _is_pem(data: bytes) -> bool:
    return data.lstrip().startswith(b"-----BEGIN ")


def load_public_keys(data: bytes) -> list[PublicKey]:
    """Verification keys from a key file: PEM (public key, certificate, or a private key's
    public half), a JWK (public or private) or a JWKS. Shared secrets are refused."""
    if _is_pem(data):
        return [PublicKey.from_pem(data)]
    obj = json_object(data, "key file")
    if "keys" in obj:
        keys = list(KeySet.from_jwks(obj))
        if not keys:
            raise ConfigurationError("the JWKS holds no usable signing key")
        return keys
    if "d" in obj and obj.get("kty") != "oct":
        return [PrivateKey.from_jwk(obj).public_key()]
    return [PublicKey.from_jwk(obj)]


def load_private_key(data: bytes) -> PrivateKey:
    """A signing key from a key file: PEM (PKCS#8, PKCS#1, SEC1) or a private JWK. Shared
    secrets are refused."""
    if _is_pem(data):
        return PrivateKey.from_pem(data)
    obj = json_object(data, "key file")
    if obj.get("kty") == "oct":
        raise ConfigurationError("symmetric keys are not accepted here")
    if "d" not in obj:
        raise ConfigurationError("the JWK holds no private key")
    return PrivateKey.from_jwk(obj)
