"""RFC 9449 DPoP on the resource server: checking a proof, and making one (clients, tests).

:meth:`DPoPVerifier.verify` runs every check of RFC 9449 §4.3 (and §7.1 for an access
token), then remembers the proof's ``jti`` in a
:class:`~wsgi_apisec.replay.ReplayStore` for as long as its ``iat`` keeps it acceptable.
This is the only place in the library where a key named by the message (the proof's ``jwk``
header) is used: a DPoP proof is, by design, signed by the key it carries (§4.2); the key is
then tied to the token by ``cnf.jkt``.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
import secrets
import struct
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

from .algorithms import JOSE_ALGORITHMS, SYMMETRIC
from .encoding import b64url_encode, json_dumps, json_object
from .errors import APISecError, ConfigurationError, InvalidDPoPProof, InvalidToken, UseDPoPNonce
from .jws import CompactJWS, Signer, parse_compact, payload_of
from .jws import verify as verify_jws
from .keys import PrivateKey, PublicKey
from .message import Message
from .replay import MemoryReplayStore, ReplayStore
from .tokens import AccessToken

__all__ = [
    "DEFAULT_ALGORITHMS",
    "DPoPProof",
    "DPoPVerifier",
    "HMACNonceSource",
    "NonceSource",
    "ProofSigner",
    "access_token_hash",
    "dpop_invalid_token",
    "make_proof",
    "normalize_htu",
]

Clock = Callable[[], float]

DEFAULT_ALGORITHMS = ("ES256", "PS256", "EdDSA", "RS256")
MAX_PROOF_LENGTH = 8 * 1024
MAX_JTI_LENGTH = 256
#: JWK members that only a private (or symmetric) key has (RFC 7518 §6.2.2, §6.3.2, §6.4).
PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
_PUBLIC_MEMBERS = ("kty", "crv", "x", "y", "n", "e")


def _utf8(text: str) -> bytes:
    # Claims may hold lone surrogates (valid JSON escapes); they must compare unequal, not raise.
    return text.encode("utf-8", "surrogatepass")


class NonceSource(Protocol):
    """Server-provided nonces (RFC 9449 §8, §9): issue a fresh one, check one sent back."""

    def issue(self) -> str: ...
    def validate(self, nonce: str) -> bool: ...


class HMACNonceSource:
    """Stateless nonces: the HMAC of the current time step, valid for that step and the next.

    A nonce lives between ``window`` and ``2 * window`` seconds, and every worker that shares
    ``secret`` accepts every other worker's nonces. Without a ``secret`` a random one is made:
    right for one process only.
    """

    def __init__(
        self, secret: bytes | None = None, *, window: int = 300, clock: Clock = time.time
    ) -> None:
        if secret is not None and len(secret) < 32:
            raise ConfigurationError("DPoP nonce secret must be at least 32 bytes")
        if window < 1:
            raise ConfigurationError("DPoP nonce window must be >= 1 second")
        self._secret = secret or secrets.token_bytes(32)
        self.window = window
        self._clock = clock

    def _nonce(self, step: int) -> str:
        mac = hmac.new(self._secret, b"dpop-nonce" + struct.pack(">q", step), "sha256")
        return b64url_encode(mac.digest()[:18])

    def _step(self) -> int:
        return int(self._clock() // self.window)

    def issue(self) -> str:
        return self._nonce(self._step())

    def validate(self, nonce: str) -> bool:
        step = self._step()
        given = _utf8(nonce)
        ok = False
        for candidate in (step, step - 1):  # no short-circuit: constant work per call
            ok |= hmac.compare_digest(given, self._nonce(candidate).encode("ascii"))
        return ok


def dpop_invalid_token(
    description: str,
    *,
    detail: str | None = None,
    code: str = "token.dpop_binding",
    challenge: Mapping[str, str] | None = None,
) -> InvalidToken:
    """``invalid_token`` with a ``DPoP`` challenge (RFC 9449 §7.1): the token, not the proof,
    is what is wrong for this request."""
    err = InvalidToken(description, detail=detail, code=code, challenge=challenge)
    err.scheme = "DPoP"
    return err


@dataclass(frozen=True)
class DPoPProof:
    """A proof that passed every check: who signed it (``jkt``) and for which request."""

    jkt: str
    jti: str
    htm: str
    htu: str
    iat: float
    key: PublicKey


def access_token_hash(access_token: str) -> str:
    """RFC 9449 §4.2 ``ath``: base64url SHA-256 of the ASCII access token."""
    return b64url_encode(hashlib.sha256(_utf8(access_token)).digest())


class DPoPVerifier:
    """Checks the ``DPoP`` proof of a request (RFC 9449 §4.3, §7.1).

    ``algorithms``: accepted asymmetric JWS algorithms. ``iat_window``: how old a proof may
    be, in seconds; ``leeway``: clock skew allowed both ways. ``replay_store``: where ``jti``
    values are remembered (default: this process's memory). ``nonce``: when set, every proof
    must carry a current server nonce (§8/§9).
    """

    def __init__(
        self,
        *,
        algorithms: Iterable[str] = DEFAULT_ALGORITHMS,
        iat_window: float = 60,
        leeway: float = 5,
        replay_store: ReplayStore | None = None,
        nonce: NonceSource | None = None,
        clock: Clock = time.time,
    ) -> None:
        self.algorithms = tuple(algorithms)
        for alg in self.algorithms:
            # §4.2: alg MUST NOT be none or a symmetric (MAC) algorithm.
            if alg not in JOSE_ALGORITHMS or alg in SYMMETRIC:
                raise ConfigurationError(f"DPoP algorithms must be asymmetric JOSE ones: {alg!r}")
        if not self.algorithms or iat_window <= 0 or leeway < 0:
            raise ConfigurationError("DPoP needs algorithms, iat_window > 0 and leeway >= 0")
        self.iat_window = iat_window
        self.leeway = leeway
        self.clock = clock
        self.replay_store = replay_store or MemoryReplayStore(clock=clock)
        self.nonce = nonce

    def challenge(self) -> dict[str, str]:
        """§7.1 challenge parameters: the algorithms this server accepts."""
        return {"algs": " ".join(self.algorithms)}

    def verify(self, message: Message, token: AccessToken | None = None) -> DPoPProof:
        jws = self._parse(message)
        key = self._key(jws)
        try:
            verify_jws(jws, key)
        except APISecError as exc:
            raise self._error("DPoP proof signature does not verify", exc.detail) from exc
        claims = self._claims(jws)
        proof = self._check_request(claims, message, key)
        if token is not None:
            self._check_token(claims, token, proof.jkt)
        self._check_nonce(claims)
        self._check_replay(proof)
        return proof

    def _error(
        self, description: str, detail: str | None = None, code: str | None = None
    ) -> InvalidDPoPProof:
        return InvalidDPoPProof(description, detail=detail, code=code, challenge=self.challenge())

    def _parse(self, message: Message) -> CompactJWS:
        values = message.headers.get_all("DPoP")
        # §4.3 step 1: not more than one DPoP header field.
        if len(values) != 1:
            raise self._error(f"expected one DPoP header, got {len(values)}")
        try:
            jws = parse_compact(values[0], max_length=MAX_PROOF_LENGTH)
        except APISecError as exc:
            # §4.3 step 2/3: a well-formed JWT.
            raise self._error("DPoP proof is not a well-formed JWS", exc.detail) from exc
        header = jws.header
        if jws.detached or not jws.b64 or "crit" in header:
            raise self._error("DPoP proof must be a plain compact JWT")
        # §4.3 step 4: typ is dpop+jwt (media type names compare case-insensitively).
        typ = header.get("typ")
        if not isinstance(typ, str) or typ.lower() != "dpop+jwt":
            raise self._error("DPoP proof typ must be dpop+jwt")
        # §4.3 step 5: alg is asymmetric, not none, and one this server supports.
        if jws.alg not in self.algorithms:
            raise self._error(f"DPoP proof alg {jws.alg[:32]!r} is not accepted")
        return jws

    def _key(self, jws: CompactJWS) -> PublicKey:
        jwk = jws.header.get("jwk")
        # §4.3 step 7: jwk is a public key; a private or symmetric key is refused outright.
        if not isinstance(jwk, Mapping):
            raise self._error("DPoP proof has no jwk header")
        if PRIVATE_MEMBERS & jwk.keys():
            raise self._error("DPoP proof jwk must not contain private key material")
        if jwk.get("kty") not in ("RSA", "EC", "OKP"):
            raise self._error("DPoP proof jwk key type is not supported")
        try:
            key = PublicKey.from_jwk(jwk, allow_symmetric=False)
        except APISecError as exc:
            raise self._error("DPoP proof jwk is not a usable public key", exc.detail) from exc
        if not key.allows(jws.alg):
            raise self._error(f"DPoP proof jwk cannot be used with {jws.alg}")
        return key

    def _claims(self, jws: CompactJWS) -> dict[str, Any]:
        try:
            return json_object(payload_of(jws), "DPoP proof claims")
        except APISecError as exc:
            raise self._error("DPoP proof claims are not a JSON object", exc.detail) from exc

    def _check_request(
        self, claims: Mapping[str, Any], message: Message, key: PublicKey
    ) -> DPoPProof:
        jti, htm, htu, iat = (claims.get(n) for n in ("jti", "htm", "htu", "iat"))
        # §4.3 step 6: the required claims are present (and of the right type).
        if not isinstance(jti, str) or not 0 < len(jti) <= MAX_JTI_LENGTH:
            raise self._error("DPoP proof jti is missing or too long")
        # §4.3 step 8: htm matches the request method (methods are case-sensitive).
        if htm != message.method:
            raise self._error("DPoP proof htm does not match the request method")
        # §4.3 step 9: htu matches the request URI, ignoring query and fragment, after
        # RFC 3986 §6 normalisation.
        target = normalize_htu(message.target_uri)
        if not isinstance(htu, str) or target is None or normalize_htu(htu) != target:
            raise self._error("DPoP proof htu does not match the request URI")
        if isinstance(iat, bool) or not isinstance(iat, int | float) or not math.isfinite(iat):
            raise self._error("DPoP proof iat is missing")
        # §4.3 step 11: created within an acceptable window, allowing for clock skew.
        now = self.clock()
        if iat > now + self.leeway:
            raise self._error("DPoP proof iat is in the future")
        if iat < now - self.iat_window - self.leeway:
            raise self._error("DPoP proof is too old")
        return DPoPProof(key.thumbprint(), jti, htm, htu, iat, key)

    def _check_token(self, claims: Mapping[str, Any], token: AccessToken, jkt: str) -> None:
        # §4.3 step 12 / §7.1: ath is the hash of exactly the access token presented.
        ath = claims.get("ath")
        expected = access_token_hash(token.raw)
        if not isinstance(ath, str) or not hmac.compare_digest(_utf8(ath), expected.encode()):
            raise self._error("DPoP proof ath does not match the access token")
        # §6.1 / §7.1: the proof key is the one the token is bound to (cnf.jkt).
        bound = (token.cnf or {}).get("jkt")
        if not isinstance(bound, str) or not hmac.compare_digest(_utf8(bound), jkt.encode()):
            raise dpop_invalid_token(
                "Invalid DPoP key binding",
                detail="DPoP proof key thumbprint does not match the token's cnf.jkt",
                code="token.dpop_key_mismatch",
                challenge=self.challenge(),
            )

    def _check_nonce(self, claims: Mapping[str, Any]) -> None:
        if self.nonce is None:
            return
        # §8 / §9: when the server requires a nonce, a proof without a current one is
        # answered with use_dpop_nonce and a fresh nonce in DPoP-Nonce.
        nonce = claims.get("nonce")
        if not isinstance(nonce, str) or not self.nonce.validate(nonce):
            raise UseDPoPNonce(
                "Resource server requires nonce in DPoP proof",
                detail="DPoP nonce missing" if nonce is None else "DPoP nonce is stale or bad",
                headers={"DPoP-Nonce": self.nonce.issue()},
                challenge=self.challenge(),
            )

    def _check_replay(self, proof: DPoPProof) -> None:
        # §11.1: a proof is used once. It stays acceptable for at most iat_window plus the
        # skew at both ends (both ends inclusive: + 1 s), so its jti is remembered that long.
        ttl = self.iat_window + 2 * self.leeway + 1
        if not self.replay_store.add(f"dpop:{proof.jkt}:{proof.jti}", ttl):
            raise self._error(
                "DPoP proof has been used before", f"replayed jti {proof.jti!r}", "dpop.replayed"
            )


_PCT = re.compile(r"%([0-9A-Fa-f]{2})")
_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def _pct(match: re.Match[str]) -> str:
    # RFC 3986 §6.2.2.1 / §6.2.2.2: upper-case hex; decode octets of unreserved characters.
    octet = int(match.group(1), 16)
    return chr(octet) if octet in _UNRESERVED else "%" + match.group(1).upper()


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 §5.2.4 for an absolute path."""
    segments = path.split("/")[1:]
    out: list[str] = []
    for i, seg in enumerate(segments):
        last = i == len(segments) - 1
        if seg in (".", ".."):
            if seg == ".." and out:
                out.pop()
            if last:
                out.append("")
        else:
            out.append(seg)
    return "/" + "/".join(out)


def normalize_htu(uri: str) -> str | None:
    """``scheme://authority/path`` of an http(s) URI, normalised per RFC 3986 §6.2.2 and
    §6.2.3 (RFC 9449 §4.3 step 9), without query and fragment; ``None`` when not usable."""
    try:
        parts = urlsplit(uri)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = parts.hostname
    if scheme not in ("http", "https") or not host or "@" in parts.netloc:
        return None
    if ":" in host:
        host = f"[{host}]"
    default_port = 443 if scheme == "https" else 80
    netloc = host if port in (None, default_port) else f"{host}:{port}"
    path = _remove_dot_segments(_PCT.sub(_pct, parts.path or "/"))
    return f"{scheme}://{netloc}{path}"


class ProofSigner:
    """Signs the DPoP proofs (RFC 9449 §4.2) of one key: the algorithm (``alg``, else the
    key's first of :data:`DEFAULT_ALGORITHMS`), the public ``jwk`` and the protected header
    are worked out and serialised once; each proof only adds its claims."""

    def __init__(self, private_key: PrivateKey, alg: str | None = None) -> None:
        if alg is None:
            alg = next((a for a in DEFAULT_ALGORITHMS if private_key.allows(a)), None)
            if alg is None:
                raise ConfigurationError("the key cannot sign any DPoP algorithm")
        if alg in SYMMETRIC:
            raise ConfigurationError("DPoP proofs must use an asymmetric algorithm")
        public = private_key.public_key().to_jwk()
        jwk = {name: public[name] for name in _PUBLIC_MEMBERS if name in public}
        self.alg = alg
        self._signer = Signer(private_key, {"typ": "dpop+jwt", "alg": alg, "jwk": jwk})

    def proof(
        self,
        method: str,
        url: str,
        *,
        access_token: str | None = None,
        nonce: str | None = None,
        iat: float | None = None,
        jti: str | None = None,
    ) -> str:
        """The proof for one ``method url`` request."""
        claims: dict[str, Any] = {
            "jti": jti or secrets.token_urlsafe(16),
            "htm": method,
            "htu": url.split("#", 1)[0].split("?", 1)[0],  # §4.2: without query and fragment
            "iat": int(time.time()) if iat is None else iat,
        }
        if access_token is not None:
            claims["ath"] = access_token_hash(access_token)
        if nonce is not None:
            claims["nonce"] = nonce
        return self._signer.sign(json_dumps(claims), detached=False)


def make_proof(
    private_key: PrivateKey,
    method: str,
    url: str,
    *,
    access_token: str | None = None,
    nonce: str | None = None,
    iat: float | None = None,
    jti: str | None = None,
    alg: str | None = None,
) -> str:
    """A DPoP proof JWT (RFC 9449 §4.2) for one request, signed with ``private_key``."""
    return ProofSigner(private_key, alg).proof(
        method, url, access_token=access_token, nonce=nonce, iat=iat, jti=jti
    )
