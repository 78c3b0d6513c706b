"""What every fuzz target shares: fixed keys and clock, a certificate, token minting, the
text form of a request that seeds are written in, and stand-ins for the plug points.

Keys are derived from fixed labels (never generated at random), the certificate is signed
with Ed25519 (deterministic) and the clock is fixed, so a seed written by one process still
verifies in another: signatures, tokens and proofs in a saved corpus stay valid.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import NameOID

from wsgi_apisec import jws
from wsgi_apisec.algorithms import ALGORITHMS
from wsgi_apisec.encoding import b64url_encode, json_dumps
from wsgi_apisec.errors import KeySourceError
from wsgi_apisec.keys import PrivateKey, PublicKey
from wsgi_apisec.message import Body, Headers, Message
from wsgi_apisec.resolvers import KeyQuery, KeyResolver

NOW = 1_700_000_000.0
ISS = "https://as.example.com"
AUD = "https://api.example.com"
HOST = "api.example.com"
ORIGIN = f"https://{HOST}"
TRUSTED_PROXY = "10.0.0.7"
UNTRUSTED_PEER = "203.0.113.9"
SENDER = "sender.example"  # G2P Connect sender id
PARTICIPANT = "p1"  # OCEN participantId


def clock() -> float:
    return NOW


class Target(NamedTuple):
    """One fuzz target: ``one`` runs an input; ``seeds`` are the inputs to start from."""

    one: Callable[[bytes], None]
    seeds: Callable[[], Iterable[bytes]]


# --- keys ---------------------------------------------------------------------------------


def _scalar(label: str) -> bytes:
    return hashlib.sha256(b"wsgi-apisec fuzz " + label.encode()).digest()


def ec_key(label: str, kid: str | None = None) -> PrivateKey:
    order = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551  # P-256 n
    value = int.from_bytes(_scalar(label), "big") % (order - 1) + 1
    return PrivateKey.from_key(ec.derive_private_key(value, ec.SECP256R1()), kid=kid)


def ed_key(label: str, kid: str | None = None) -> PrivateKey:
    raw = Ed25519PrivateKey.from_private_bytes(_scalar(label))
    return PrivateKey.from_key(raw, kid=kid)


@dataclass(frozen=True)
class Keys:
    es256: PrivateKey = field(default_factory=lambda: ec_key("es256", "es-1"))
    ed25519: PrivateKey = field(default_factory=lambda: ed_key("ed25519", "ed-1"))
    hmac: PublicKey = field(
        default_factory=lambda: PublicKey.from_secret(_scalar("hmac") * 2, kid="hs-1")
    )
    issuer: PrivateKey = field(default_factory=lambda: ec_key("issuer", "as-1"))
    dpop: PrivateKey = field(default_factory=lambda: ec_key("dpop"))
    server: PrivateKey = field(default_factory=lambda: ec_key("server", "server-1"))
    client_cert_key: Ed25519PrivateKey = field(
        default_factory=lambda: Ed25519PrivateKey.from_private_bytes(_scalar("client"))
    )

    @property
    def verifying(self) -> list[PublicKey]:
        return [self.es256.public_key(), self.ed25519.public_key(), self.hmac]


KEYS = Keys()


def client_certificate() -> x509.Certificate:
    """A self-signed Ed25519 client certificate: the same DER in every process."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fuzz client")])
    start = datetime.datetime(2023, 1, 1, tzinfo=datetime.UTC)
    key = KEYS.client_cert_key
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(4242)
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=3650))
        .sign(key, None)
    )


CERT = client_certificate()
CERT_DER = CERT.public_bytes(serialization.Encoding.DER)
CERT_PEM = CERT.public_bytes(serialization.Encoding.PEM).decode("ascii")


# --- tokens ---------------------------------------------------------------------------------


def claims(**changes: Any) -> dict[str, Any]:
    """RFC 9068 claims for :data:`ISS` / :data:`AUD` valid at :data:`NOW`, with ``changes``."""
    base: dict[str, Any] = {
        "iss": ISS,
        "sub": "user-1",
        "aud": AUD,
        "client_id": "client-1",
        "iat": int(NOW) - 10,
        "exp": int(NOW) + 300,
        "jti": str(uuid.UUID(int=len(changes))),
        "scope": "accounts:read payments:write",
        "participantId": PARTICIPANT,
    }
    base.update(changes)
    return base


def mint(payload: dict[str, Any], key: PrivateKey | None = None, typ: str = "at+jwt") -> str:
    key = key or KEYS.issuer
    header = jws.build_header(key, extra={"typ": typ})
    return jws.sign(key, json_dumps(payload), header, detached=False)


# --- the text form of a request -------------------------------------------------------------


@dataclass(frozen=True)
class RawRequest:
    """``METHOD TARGET``, ``Name: value`` lines, a blank line, the body (all latin-1), as
    seeds are written. A first line ``HTTP <status>`` makes it a response instead."""

    method: str
    target: str
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def encode(self) -> bytes:
        lines = [f"{self.method} {self.target}", *(f"{n}: {v}" for n, v in self.headers)]
        return "\n".join(lines).encode("latin-1") + b"\n\n" + self.body

    @property
    def uri(self) -> str:
        return ORIGIN + self.target if self.target.startswith("/") else self.target

    @property
    def status(self) -> int | None:
        if self.method != "HTTP" or not self.target[:3].isdigit() or not self.target.isascii():
            return None
        return int(self.target[:3])

    def message(self, request: Message | None = None, remote: str | None = None) -> Message:
        body = Body(self.body) if self.body else Body.EMPTY
        if self.status is not None:
            headers = Headers(self.headers)
            return Message(status=self.status, headers=headers, body=body, request=request)
        return Message(self.method, self.uri, Headers(self.headers), body, remote_addr=remote)


def parse_request(data: bytes) -> RawRequest:
    """Any bytes as a :class:`RawRequest` (never fails: a missing part is empty), with the
    :data:`MACROS` in header values expanded."""
    head, _, body = data.partition(b"\n\n")
    lines = head.decode("latin-1").split("\n")
    method, _, target = lines[0].partition(" ")
    headers = []
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if colon:
            headers.append((name, value.lstrip(" ")))
    return expand(RawRequest(method, target or "/", tuple(headers), body))


def request(method: str, target: str, headers: Iterable[tuple[str, str]], body: bytes) -> bytes:
    return RawRequest(method, target, tuple(headers), body).encode()


def sign_parts(key: PrivateKey, header: bytes, payload: bytes) -> str:
    """A compact ES256 JWS over exactly these header and payload bytes (whatever they say)."""
    signing_input = f"{b64url_encode(header)}.{b64url_encode(payload)}"
    signature = ALGORITHMS["ES256"].sign(key.key, signing_input.encode("ascii"))
    return f"{signing_input}.{b64url_encode(signature)}"


#: In a header value, ``!jwt:<header JSON><TAB><claims JSON>`` (to the end of the value)
#: becomes a JWS signed by the token issuer's key, ``!dpop:`` one signed by the DPoP key,
#: ``!jws:`` a detached one (payload part emptied) signed by the ES256 key: the fuzzer
#: mutates the JSON a token carries, not its base64, and the signature holds.
MACROS = {"!jwt:": "issuer", "!dpop:": "dpop", "!jws:": "es256"}


def expand(raw: RawRequest) -> RawRequest:
    headers = []
    for name, value in raw.headers:
        for mark, key_name in MACROS.items():
            at = value.find(mark)
            if at >= 0:
                header, _, payload = value[at + len(mark) :].partition("\t")
                key = getattr(KEYS, key_name)
                signed = sign_parts(key, header.encode("latin-1"), payload.encode("latin-1"))
                if mark == "!jws:":
                    head, _, sig = signed.split(".")
                    signed = f"{head}..{sig}"
                value = value[:at] + signed
        headers.append((name, value))
    return dataclasses.replace(raw, headers=tuple(headers))


def macro(mark: str, header: dict[str, Any], payload: dict[str, Any]) -> str:
    """The macro text for a token (for seeds): ``macro("!jwt:", header, claims)``."""
    text = json_dumps(header) + b"\t" + json_dumps(payload)
    return mark + text.decode("latin-1")


# --- plug-point stand-ins ------------------------------------------------------------------


class ResettableStore:
    """A replay store emptied before each input, so a seed is fresh on every run (and the
    fixed clock never lets a real store fill up)."""

    def __init__(self) -> None:
        self._seen: set[str] = set()

    def add(self, key: str, ttl: float) -> bool:
        if not ttl > 0:
            raise ValueError(f"replay TTL must be > 0, got {ttl!r}")
        if key in self._seen:
            return False
        self._seen.add(key)
        return True

    def reset(self) -> None:
        self._seen.clear()


class Outage:
    """A resolver that can be switched to "key source down" (:class:`KeySourceError`)."""

    def __init__(self, inner: KeyResolver) -> None:
        self.inner = inner
        self.down = False

    def resolve(self, query: KeyQuery) -> list[PublicKey]:
        if self.down:
            raise KeySourceError("the key source is down", detail="fuzz outage")
        return self.inner.resolve(query)
