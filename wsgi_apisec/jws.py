"""Compact JWS (RFC 7515), detached content (App. F) and unencoded payloads (RFC 7797).

Parsing is strict and separate from verification: :func:`parse_compact` turns a string into
a :class:`CompactJWS` or raises :class:`MalformedSignature`; :func:`check_header` applies a
:class:`JWSPolicy`; :func:`verify` checks the signature with a key the *caller* found (never
one named by the message) over a payload fed in chunks, so a large body is hashed as it
streams without a base64 copy.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .algorithms import get_algorithm
from .encoding import b64url_decode, b64url_encode, b64url_encode_bytes, json_dumps, json_object
from .errors import APISecError, ConfigurationError, MalformedSignature, ParseError, SignatureError
from .keys import PrivateKey, PublicKey
from .message import Body, Chunk

#: Header parameters defined by RFC 7515 §4.1 and RFC 7797; §4.1.11: ``crit`` MUST NOT
#: name these.
REGISTERED = frozenset(
    {"alg", "jku", "jwk", "kid", "x5u", "x5c", "x5t", "x5t#S256", "typ", "cty", "crit"}
)
#: Parameters that would let the message choose its own key: never honoured, always refused.
KEY_CARRYING = frozenset({"jku", "jwk", "x5u", "x5c"})

MAX_JWS_LENGTH = 16 * 1024
MAX_HEADER_LENGTH = 4 * 1024


@dataclass(frozen=True)
class CompactJWS:
    """A parsed compact JWS. ``payload_b64`` is empty when the content is detached."""

    header_b64: str
    header: dict[str, Any]
    payload_b64: str
    signature: bytes

    @property
    def alg(self) -> str:
        return str(self.header["alg"])

    @property
    def kid(self) -> str | None:
        kid = self.header.get("kid")
        return kid if isinstance(kid, str) else None

    @property
    def b64(self) -> bool:
        return self.header.get("b64", True) is not False

    @property
    def detached(self) -> bool:
        return self.payload_b64 == ""


@dataclass(frozen=True)
class JWSPolicy:
    """What a verifier accepts. Defaults are strict RFC 7515 + RFC 7797."""

    algorithms: frozenset[str]
    #: ``crit`` names this verifier processes (RFC 7515 §4.1.11: any other -> reject).
    understood_crit: frozenset[str] = frozenset({"b64"})
    #: Which payload encodings are accepted (True = base64url, False = RFC 7797 unencoded).
    b64: frozenset[bool] = frozenset({True, False})
    #: Accept ``b64: false`` without ``crit: ["b64"]`` (OCEN's reference code; RFC 7797 §6
    #: says it MUST be in ``crit``: only a profile that documents the leniency sets this).
    b64_without_crit: bool = False
    required: frozenset[str] = frozenset()


@dataclass(frozen=True)
class VerifiedJWS:
    """What was verified: the header as sent, the algorithm and the key that matched."""

    header: Mapping[str, Any]
    alg: str
    kid: str | None
    key: PublicKey
    b64: bool


def parse_compact(value: str | bytes, *, max_length: int = MAX_JWS_LENGTH) -> CompactJWS:
    """Split and decode a compact JWS; every failure is :class:`MalformedSignature` (400)."""
    try:
        text = value.decode("ascii") if isinstance(value, bytes) else value
        return _parse(text.strip(" \t"), max_length)
    except MalformedSignature:
        raise
    except (APISecError, UnicodeDecodeError) as exc:
        msg = exc.description if isinstance(exc, APISecError) else "JWS is not ASCII"
        raise MalformedSignature(msg) from exc


def _parse(text: str, max_length: int) -> CompactJWS:
    if len(text) > max_length:
        raise MalformedSignature("JWS is too long")
    if text.startswith("{"):
        raise MalformedSignature("JSON-serialised JWS is not accepted; use compact")
    parts = text.split(".")
    if len(parts) != 3:
        raise MalformedSignature("JWS must have three dot-separated parts")
    header_b64, payload_b64, sig_b64 = parts
    if len(header_b64) > MAX_HEADER_LENGTH:
        raise MalformedSignature("JWS header is too long")
    header = json_object(b64url_decode(header_b64, "JWS header"), "JWS header")
    signature = b64url_decode(sig_b64, "JWS signature")
    if payload_b64:
        b64url_decode(payload_b64, "JWS payload")  # validate; decoded on demand
    if not isinstance(header.get("alg"), str):
        raise MalformedSignature("JWS header has no 'alg'")
    if "b64" in header and not isinstance(header["b64"], bool):
        raise MalformedSignature("'b64' must be a boolean")
    _check_crit_shape(header)
    return CompactJWS(header_b64, header, payload_b64, signature)


def _check_crit_shape(header: Mapping[str, Any]) -> None:
    if "crit" not in header:
        return
    crit = header["crit"]
    # RFC 7515 §4.1.11: a non-empty array of unique names, none registered by the spec,
    # each present in the header.
    if not isinstance(crit, list) or not crit or not all(isinstance(c, str) for c in crit):
        raise MalformedSignature("'crit' must be a non-empty array of strings")
    if len(set(crit)) != len(crit):
        raise MalformedSignature("'crit' names a parameter twice")
    for name in crit:
        if name in REGISTERED:
            raise MalformedSignature(f"'crit' must not name {name!r}")
        if name not in header:
            raise MalformedSignature(f"'crit' names {name[:64]!r} but the header lacks it")


def check_header(jws: CompactJWS, policy: JWSPolicy) -> None:
    """Apply the policy to the header; failures are :class:`SignatureError` (401)."""
    header = jws.header
    get_algorithm(jws.alg, policy.algorithms)
    for name in KEY_CARRYING & header.keys():
        raise SignatureError(f"header parameter {name!r} is not accepted")
    for name in header.get("crit", ()):
        if name not in policy.understood_crit:
            raise SignatureError(f"critical header parameter {name[:64]!r} is not understood")
    if jws.b64 not in policy.b64:
        raise SignatureError(f"b64={str(jws.b64).lower()} is not accepted here")
    # RFC 7797 §6: b64 MUST be listed in crit when used.
    if "b64" in header and "b64" not in header.get("crit", ()) and not policy.b64_without_crit:
        raise SignatureError("'b64' must be listed in 'crit'")
    for name in policy.required:
        if name not in header:
            raise SignatureError(f"JWS header lacks {name!r}")


def signing_input(header_b64: str, payload: Iterable[Chunk], b64: bool) -> Iterator[Chunk]:
    """The JWS Signing Input, in pieces: ``ASCII(header) || '.' || payload`` (RFC 7515 §5.1,
    RFC 7797 §3), base64url-encoding the payload on the fly when ``b64`` is true."""
    yield header_b64.encode("ascii") + b"."
    if not b64:
        yield from payload
        return
    rest = b""
    for chunk in payload:
        data = rest + bytes(chunk) if rest else chunk
        # Encode whole 3-byte groups only, so no piece but the last has padding.
        cut = len(data) - len(data) % 3
        yield b64url_encode_bytes(data[:cut] if cut < len(data) else data)
        rest = bytes(data[cut:])
    if rest:
        yield b64url_encode_bytes(rest)


def verify(jws: CompactJWS, key: PublicKey, payload: Body | bytes | None = None) -> VerifiedJWS:
    """Verify ``jws`` with ``key``. ``payload`` is the detached content (required when the
    JWS is detached; refused when it is not). Raises :class:`SignatureError`."""
    name = jws.alg
    if not key.allows(name):
        raise SignatureError(f"key {key.kid or ''!s} may not be used with {name}")
    ctx = get_algorithm(name).context(key.key)
    b64 = jws.b64
    if jws.detached:
        if payload is None:
            raise SignatureError("detached JWS needs its payload")
        if isinstance(payload, Body) and (b64 or not payload.in_memory):
            for piece in signing_input(jws.header_b64, payload.chunks(), b64):
                ctx.update(piece)
        else:  # bytes in memory: hashed in one call, base64url-encoded in one call
            data = payload.read() if isinstance(payload, Body) else payload
            ctx.update(jws.header_b64.encode("ascii") + b".")
            ctx.update(b64url_encode_bytes(data) if b64 else data)
    else:
        if payload is not None:
            raise SignatureError("JWS carries a payload but a detached one was expected")
        ctx.update(f"{jws.header_b64}.{jws.payload_b64}".encode("ascii"))
    if not ctx.verify(jws.signature):
        raise SignatureError("signature does not verify")
    return VerifiedJWS(jws.header, name, jws.kid, key, b64)


def payload_of(jws: CompactJWS) -> bytes:
    """The decoded attached payload of a (verified) JWS."""
    if not jws.b64:
        raise ParseError("an unencoded payload cannot be attached in compact form")
    return b64url_decode(jws.payload_b64, "JWS payload")


def build_header(
    key: PrivateKey,
    alg: str | None = None,
    *,
    b64: bool = True,
    b64_in_crit: bool = True,
    extra: Mapping[str, Any] | None = None,
    crit: Sequence[str] = (),
) -> dict[str, Any]:
    """A protected header for ``key``: ``alg``, ``kid`` when the key has one, ``extra``."""
    alg = alg or _default_alg(key)
    if not key.allows(alg):
        raise SignatureError(f"key cannot sign with {alg}")
    header: dict[str, Any] = {"alg": alg}
    if key.kid is not None:
        header["kid"] = key.kid
    if not b64:
        header["b64"] = False
    header.update(extra or {})
    missing = [name for name in crit if name not in header]
    if missing:
        raise ConfigurationError(f"crit names {missing[0]!r} but the header lacks it")
    names = list(crit) + (["b64"] if not b64 and b64_in_crit else [])
    if names:
        header["crit"] = names
    return header


class Signer:
    """One key and one protected header, checked and serialised once, signing any number
    of payloads (a server signing each response the same way)."""

    def __init__(self, key: PrivateKey, header: Mapping[str, Any]) -> None:
        self.header = dict(header)
        self.algorithm = get_algorithm(self.header["alg"])
        if not key.allows(self.algorithm.name):
            raise SignatureError(f"key cannot sign with {self.algorithm.name}")
        self.key = key
        self._sign = self.algorithm.signer(key.key)  # the key's type is checked here, once
        self.b64 = self.header.get("b64", True) is not False
        self.header_b64 = b64url_encode(json_dumps(self.header))
        self._prefix = self.header_b64.encode("ascii") + b"."

    def sign(self, payload: Body | bytes | Iterable[Chunk], *, detached: bool = True) -> str:
        """The JWS over ``payload``: ``header..signature`` when detached."""
        b64, header_b64 = self.b64, self.header_b64
        if not detached and not b64:
            raise SignatureError("an unencoded payload cannot be attached in compact form")
        data = payload.read() if type(payload) is Body and payload.in_memory else payload
        if type(data) is bytes:  # in memory: encoded and signed in one call each
            if b64:
                data = b64url_encode_bytes(data)
            signature = b64url_encode(self._sign(self._prefix + data))
            if detached:
                return f"{header_b64}..{signature}"
            return f"{header_b64}.{data.decode('ascii')}.{signature}"
        ctx = self.algorithm.context(self.key.key)
        if isinstance(payload, Body):
            chunks: Iterable[Chunk] = payload.chunks()
        else:
            chunks = (payload,) if isinstance(payload, bytes) else payload
        pieces: list[bytes] = []
        for piece in signing_input(header_b64, chunks, b64):
            ctx.update(piece)
            if not detached:
                pieces.append(bytes(piece))
        signature = b64url_encode(ctx.sign())
        if detached:
            return f"{header_b64}..{signature}"
        return f"{b''.join(pieces).decode('ascii')}.{signature}"


def sign(
    key: PrivateKey,
    payload: Body | bytes | Iterable[Chunk],
    header: Mapping[str, Any],
    *,
    detached: bool = True,
) -> str:
    """Sign ``payload`` under ``header``; returns ``header..signature`` when detached."""
    return Signer(key, header).sign(payload, detached=detached)


def sign_detached(
    key: PrivateKey,
    payload: Body | bytes | Iterable[Chunk],
    alg: str | None = None,
    *,
    b64: bool = True,
    b64_in_crit: bool = True,
    extra: Mapping[str, Any] | None = None,
    crit: Sequence[str] = (),
) -> str:
    header = build_header(key, alg, b64=b64, b64_in_crit=b64_in_crit, extra=extra, crit=crit)
    return sign(key, payload, header)


def _default_alg(key: PrivateKey) -> str:
    for preferred in ("PS256", "ES256", "ES384", "ES512", "EdDSA", "RS256", "HS256"):
        if key.allows(preferred):
            return preferred
    return sorted(key.jose_algorithms)[0]
