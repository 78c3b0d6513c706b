"""Building the malformed and forged JWTs, JWSs and DPoP proofs the attacks send."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from typing import Any

from cryptography.hazmat.primitives import serialization

from flask_apisec.testing import TestIssuer
from wsgi_apisec import jws
from wsgi_apisec.algorithms import get_algorithm
from wsgi_apisec.dpop import access_token_hash
from wsgi_apisec.encoding import b64url_decode, b64url_encode
from wsgi_apisec.keys import PrivateKey


def b64json(obj: Any) -> str:
    return b64url_encode(obj if isinstance(obj, bytes) else json.dumps(obj).encode())


def unb64json(text: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(b64url_decode(text, "JSON"))
    return doc


def parts(token: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    """Header, claims and encoded signature of a compact JWS (no checks)."""
    head, payload, signature = token.split(".")
    decode = b64url_decode
    return json.loads(decode(head, "header")), json.loads(decode(payload, "payload")), signature


def claims(issuer: TestIssuer, **changes: Any) -> dict[str, Any]:
    """The claims ``issuer.token()`` would mint; a change to ``None`` drops the claim."""
    now = int(time.time())
    base: dict[str, Any] = {
        "iss": issuer.issuer,
        "sub": "client-1",
        "aud": issuer.audience,
        "client_id": "client-1",
        "iat": now,
        "exp": now + 300,
        "jti": secrets.token_urlsafe(12),
        "scope": "read",
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def header(issuer: TestIssuer, **changes: Any) -> dict[str, Any]:
    base = {"alg": issuer.alg, "typ": "at+jwt", "kid": issuer.key.kid, **changes}
    return {k: v for k, v in base.items() if v is not None}


def signed(key: PrivateKey, head: dict[str, Any], payload: dict[str, Any] | bytes) -> str:
    """``head`` and ``payload`` (an object, or exact bytes) signed with ``key``."""
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return jws.sign(key, data, head, detached=False)


def signed_raw(key: PrivateKey, head: bytes, payload: bytes) -> str:
    """A compact JWS over exactly these header and payload bytes (duplicate members and
    all, which no JSON encoder would write)."""
    signing_input = f"{b64url_encode(head)}.{b64url_encode(payload)}"
    signature = get_algorithm(json.loads(head)["alg"]).sign(key.key, signing_input.encode())
    return f"{signing_input}.{b64url_encode(signature)}"


def unsigned(head: dict[str, Any], payload: dict[str, Any], signature: bytes = b"") -> str:
    return f"{b64json(head)}.{b64json(payload)}.{b64url_encode(signature)}"


def public_pem(key: PrivateKey) -> bytes:
    public = key.public_key().key
    assert not isinstance(public, bytes)
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def hs256(secret: bytes, head: dict[str, Any], payload: dict[str, Any] | bytes) -> str:
    """RFC 7518 §3.2 by hand: what an attacker makes with a public key as the HMAC secret."""
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    signing_input = f"{b64json(head)}.{b64url_encode(data)}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url_encode(mac)}"


def detached_hs256(secret: bytes, head: dict[str, Any], body: bytes) -> str:
    token = hs256(secret, head, body)
    head_b64, _, signature = token.split(".")
    return f"{head_b64}..{signature}"


def proof(
    key: PrivateKey,
    method: str,
    url: str,
    *,
    token: str | None,
    head: dict[str, Any] | None = None,
    drop: tuple[str, ...] = (),
    **claim_changes: Any,
) -> str:
    """A DPoP proof (RFC 9449 §4.2) with header members and claims changed or dropped."""
    jwk = key.public_key().to_jwk()
    base_head = {
        "typ": "dpop+jwt",
        "alg": "ES256",
        "jwk": {k: jwk[k] for k in ("kty", "crv", "x", "y")},
    }
    base_claims: dict[str, Any] = {
        "jti": secrets.token_urlsafe(16),
        "htm": method,
        "htu": url,
        "iat": int(time.time()),
    }
    if token is not None:
        base_claims["ath"] = access_token_hash(token)
    base_head.update(head or {})
    base_claims.update(claim_changes)
    for name in drop:
        base_head.pop(name, None)
        base_claims.pop(name, None)
    return signed(key, base_head, base_claims)
