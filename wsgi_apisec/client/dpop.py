"""RFC 9449 DPoP on the client: a proof for every request, and each server's nonce.

Proofs are made by :class:`wsgi_apisec.dpop.ProofSigner`, the code behind the
:func:`~wsgi_apisec.dpop.make_proof` the server-side tests use, so the client and
:class:`~wsgi_apisec.dpop.DPoPVerifier` agree by construction.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from urllib.parse import urlsplit

from ..dpop import ProofSigner
from ..errors import ConfigurationError
from ..keys import PrivateKey

__all__ = ["DPoPProofs", "asks_for_nonce", "origin"]

#: RFC 9449 §8.1: ``nonce = 1*NQCHAR`` (``%x21 / %x23-5B / %x5D-7E``); longer ones are refused.
_NONCE = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]{1,1024}")
_USE_NONCE = re.compile(r'(?:^|[\s,])error\s*=\s*"?use_dpop_nonce"?', re.IGNORECASE)
_DPOP_SCHEME = re.compile(r"(?:^|,)\s*DPoP(?:\s|,|$)", re.IGNORECASE)
_DEFAULT_PORTS = {"http": 80, "https": 443}
#: Servers whose nonce is remembered; the oldest is forgotten past this.
MAX_ORIGINS = 256


def origin(url: str) -> str:
    """``scheme://host:port`` of ``url`` (RFC 6454 §4), the key a nonce is remembered by."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port or _DEFAULT_PORTS.get(scheme)
    return f"{scheme}://{(parts.hostname or '').lower()}:{port}"


def asks_for_nonce(status: int, headers: Mapping[str, str]) -> bool:
    """RFC 9449 §9: a resource server that wants a nonce answers 401 with a ``DPoP``
    challenge carrying ``error="use_dpop_nonce"`` and the nonce in ``DPoP-Nonce``."""
    challenge = headers.get("WWW-Authenticate") or ""
    return (
        status == 401
        and "DPoP-Nonce" in headers
        and _DPOP_SCHEME.search(challenge) is not None
        and _USE_NONCE.search(challenge) is not None
    )


class DPoPProofs:
    """The proofs of one DPoP key (``alg``: the key's first of ES256, PS256, EdDSA, RS256),
    and the latest ``DPoP-Nonce`` each server (origin) sent. Thread-safe."""

    def __init__(self, key: PrivateKey, *, alg: str | None = None) -> None:
        if alg is not None and not key.allows(alg):
            raise ConfigurationError(f"the DPoP key cannot sign with {alg}")
        self.key = key
        self.alg = alg
        self._signer = ProofSigner(key, alg)  # the header is built once, for every proof
        self._nonces: dict[str, str] = {}
        self._lock = threading.Lock()

    def proof(self, method: str, url: str, *, access_token: str | None = None) -> str:
        """A fresh proof (§4.2) for ``method url``, with ``ath`` for ``access_token`` and the
        nonce this server gave last, if any."""
        return self._signer.proof(method, url, access_token=access_token, nonce=self.nonce(url))

    def nonce(self, url: str) -> str | None:
        with self._lock:
            return self._nonces.get(origin(url))

    def remember(self, url: str, headers: Mapping[str, str]) -> bool:
        """Keep the ``DPoP-Nonce`` of a response from ``url`` (§8.2: any response may carry
        a new one); ``True`` when there was a well-formed one."""
        value = headers.get("DPoP-Nonce")
        if value is None or _NONCE.fullmatch(value) is None:
            return False
        key = origin(url)
        with self._lock:
            self._nonces.pop(key, None)
            self._nonces[key] = value
            while len(self._nonces) > MAX_ORIGINS:
                del self._nonces[next(iter(self._nonces))]
        return True
