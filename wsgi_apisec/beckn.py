"""The Beckn-style ``Signature`` header that G2P Connect adopted.

G2P Connect copies Beckn's header but never defines the signing string, so we follow Beckn:

    (created): <created>
    (expires): <expires>
    digest: BLAKE-512=<base64(BLAKE2b-512(body))>

signed with Ed25519, sent as ``Signature: keyId="{sender_id}|{key_id}|{algorithm}",
algorithm="ed25519",created="…",expires="…",headers="(created) (expires) digest",
signature="…"`` (the value may also start with ``Signature `` and be carried in
``Authorization``). When the signature travels inside the JSON envelope's ``signature``
member instead, the digest covers the canonical JSON of the envelope without that member.
"""

from __future__ import annotations

import base64
import hashlib
import re
from typing import TYPE_CHECKING

from .algorithms import ALGORITHMS
from .encoding import canonical_json
from .errors import (
    ConfigurationError,
    MalformedSignature,
    MissingSignature,
    ParseError,
    SignatureError,
)
from .keys import PrivateKey
from .message import Body, Message
from .resolvers import KeyQuery, KeyResolver
from .signatures import SignatureResult

if TYPE_CHECKING:
    from .signatures import Profile

HEADERS = "(created) (expires) digest"
_PARAM = re.compile(r'\s*([A-Za-z]+)="([^"\\]{0,1024})"\s*(?:,|$)')
_PARAMS = frozenset({"keyId", "algorithm", "created", "expires", "headers", "signature"})
MAX_HEADER = 4096
_UNIX_TIME = re.compile(r"[0-9]{1,12}")


def parse_header(value: str) -> dict[str, str]:
    """The auth-params of a Beckn ``Signature`` value; every failure is 400."""
    text = value.strip()
    if len(text) > MAX_HEADER:
        raise MalformedSignature("signature header is too long")
    if text[:10].lower() == "signature ":
        text = text[10:].lstrip()
    params: dict[str, str] = {}
    pos = 0
    while pos < len(text):
        match = _PARAM.match(text, pos)
        if match is None:
            raise MalformedSignature('signature header is not a list of name="value" pairs')
        name, val = match.groups()
        if name in params:
            raise MalformedSignature(f"signature parameter {name!r} appears twice")
        params[name] = val
        pos = match.end()
    missing = _PARAMS - params.keys()
    if missing:
        raise MalformedSignature(f"signature header lacks {sorted(missing)[0]!r}")
    return params


def body_digest(body: Body | bytes) -> str:
    """``BLAKE-512=`` + standard base64 of BLAKE2b-512 over the body, fed in chunks."""
    hasher = hashlib.blake2b(digest_size=64)
    for chunk in body.chunks() if isinstance(body, Body) else (body,):
        hasher.update(chunk)
    return "BLAKE-512=" + base64.b64encode(hasher.digest()).decode("ascii")


def signing_string(created: int, expires: int, digest: str) -> bytes:
    return f"(created): {created}\n(expires): {expires}\ndigest: {digest}".encode("ascii")


def _int(params: dict[str, str], name: str) -> int:
    # ASCII digits only: str.isdigit() also accepts "²" and other digits int() refuses.
    if _UNIX_TIME.fullmatch(params[name]) is None:
        raise MalformedSignature(f"{name} must be a Unix time")
    return int(params[name])


class BecknSignature:
    """G2P Connect / Beckn ``Signature`` verification and signing."""

    def verify(
        self, profile: Profile, message: Message, resolver: KeyResolver, now: float
    ) -> SignatureResult:
        doc = _envelope(message)
        value, in_envelope = _find(profile, message, doc)
        params = parse_header(value)
        sender, key_id, algorithm = _key_id(params["keyId"])
        if algorithm != "ed25519" or params["algorithm"].lower() != "ed25519":
            raise SignatureError("only ed25519 signatures are accepted")
        if params["headers"].split() != HEADERS.split():
            raise SignatureError(f'headers must be "{HEADERS}"')
        created, expires = _int(params, "created"), _int(params, "expires")
        _check_times(created, expires, now, profile)
        _check_sender(doc, sender)
        try:
            signature = base64.b64decode(params["signature"], validate=True)
        except ValueError as exc:  # binascii.Error, or a non-ASCII character
            raise MalformedSignature("signature is not base64") from exc
        payload = _signed_body(message, doc if in_envelope else None)
        data = signing_string(created, expires, body_digest(payload))
        keys = resolver.resolve(KeyQuery(alg="ed25519", kid=key_id or None, owner=sender))
        for key in keys:
            if ALGORITHMS["ed25519"].verify(key.key, data, signature):
                return SignatureResult(
                    profile=profile.name,
                    alg="ed25519",
                    kid=key_id or None,
                    key=key,
                    owner=sender,
                    covered=tuple(HEADERS.split()),
                    created=created,
                    signature=signature,
                    params=dict(params),
                )
        raise SignatureError("signature does not verify")

    def sign(
        self, profile: Profile, message: Message, key: PrivateKey, now: float
    ) -> list[tuple[str, str]]:
        sender = str(profile.options.get("sender_id", ""))
        if not sender:
            raise ConfigurationError("G2P Connect signing needs options['sender_id']")
        created = int(now)
        expires = created + int(profile.options.get("ttl", 300))
        data = signing_string(created, expires, body_digest(message.body))
        signature = base64.b64encode(ALGORITHMS["ed25519"].sign(key.key, data)).decode()
        value = (
            f'keyId="{sender}|{key.kid or ""}|ed25519",algorithm="ed25519",'
            f'created="{created}",expires="{expires}",headers="{HEADERS}",'
            f'signature="{signature}"'
        )
        return [(profile.emit_header, value)]


def _find(profile: Profile, message: Message, doc: object) -> tuple[str, bool]:
    for name in profile.header_names:
        values = message.headers.get_all(name)
        if name.lower() == "authorization":  # shared with bearer tokens: only our scheme
            values = [v for v in values if v[:10].lower() == "signature "]
        if len(values) > 1:
            raise MalformedSignature(f"more than one {name} header was sent")
        if values:
            return values[0], False
    if profile.options.get("envelope_signature", True) and isinstance(doc, dict):
        sig = doc.get("signature")
        if isinstance(sig, str) and sig:
            return sig, True
    raise MissingSignature("the request carries no signature")


def _envelope(message: Message) -> object:
    """The parsed JSON envelope, or ``None`` for an empty or non-JSON body."""
    if not len(message.body):
        return None
    try:
        return message.json()
    except ParseError:
        return None


def _signed_body(message: Message, doc: object) -> Body | bytes:
    if not isinstance(doc, dict):
        return message.body
    return canonical_json({k: v for k, v in doc.items() if k != "signature"})


def _key_id(value: str) -> tuple[str, str, str]:
    parts = value.split("|")
    if len(parts) != 3 or not parts[0]:
        raise MalformedSignature('keyId must be "{sender_id}|{key_id}|{algorithm}"')
    return parts[0], parts[1], parts[2].lower()


def _check_times(created: int, expires: int, now: float, profile: Profile) -> None:
    skew = float(profile.options.get("clock_skew", 30))
    max_window = float(profile.options.get("max_window", 3600))
    if created > now + skew:
        raise SignatureError("signature is created in the future", code="signature.expired")
    if expires < now - skew:
        raise SignatureError("signature has expired", code="signature.expired")
    if expires <= created or expires - created > max_window:
        raise SignatureError(
            "signature validity window is not acceptable", code="signature.expired"
        )


def _check_sender(doc: object, sender: str) -> None:
    """The keyId's sender must be the envelope's ``header.sender_id`` when there is one."""
    header = doc.get("header") if isinstance(doc, dict) else None
    claimed = header.get("sender_id") if isinstance(header, dict) else None
    if claimed is not None and claimed != sender:
        raise SignatureError(
            "keyId does not name the envelope's sender", code="signature.sender_invalid"
        )
