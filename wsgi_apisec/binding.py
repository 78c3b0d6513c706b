"""Sender-constrained tokens: is the caller the party the token was issued to?

:func:`check_binding` is the one entry point. It reads the token's ``cnf`` (RFC 7800) and
the scheme it was presented with, then checks

- RFC 8705 §3: ``cnf["x5t#S256"]`` -> the client certificate of this request (see
  :mod:`wsgi_apisec.certs`) must hash to it;
- RFC 9449 §7: ``cnf["jkt"]`` -> the request must use the ``DPoP`` scheme and carry a valid
  proof signed by that key (:class:`~wsgi_apisec.dpop.DPoPVerifier`).

A token bound by both is checked for both. Every failure is ``invalid_token`` (401), or the
proof's own ``invalid_dpop_proof`` / ``use_dpop_nonce``.
"""

from __future__ import annotations

import functools
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from .certs import ClientCertSource
from .dpop import DPoPProof, DPoPVerifier, dpop_invalid_token
from .errors import InvalidToken
from .keys import x5t_s256
from .message import Message
from .tokens import AccessToken

__all__ = ["Binding", "check_binding", "check_certificate_binding"]

#: Confirmation methods this library can check.
SUPPORTED_CNF = frozenset({"x5t#S256", "jkt"})

_TLS_ONLY = ClientCertSource()
#: The schemes as the validator spells them, already lower-cased (no new string per call).
_LOWER = {"Bearer": "bearer", "DPoP": "dpop"}
#: x5t#S256 of the certificates seen lately: a client sends the same one on every request.
_thumbprint = functools.lru_cache(maxsize=256)(x5t_s256)


@dataclass(frozen=True)
class Binding:
    """How the token was tied to this request: the certificate thumbprint that matched,
    the DPoP proof that verified, both, or neither (an unbound bearer token)."""

    x5t_s256: str | None = None
    dpop: DPoPProof | None = None

    @property
    def bound(self) -> bool:
        return self.x5t_s256 is not None or self.dpop is not None


def _confirmation(token: AccessToken) -> Mapping[str, Any]:
    cnf = token.cnf
    if cnf is None:
        return {}
    # A validated token's cnf is a MappingProxyType: skip the (slow) ABC check for it.
    mapping = cnf.__class__ is MappingProxyType or isinstance(cnf, Mapping)
    if not mapping or not all(
        isinstance(cnf[name], str) and cnf[name] for name in SUPPORTED_CNF & cnf.keys()
    ):
        raise InvalidToken("token confirmation claim is malformed", code="token.cnf_invalid")
    return cnf


def check_certificate_binding(token: AccessToken, cert_der: bytes | None) -> str | None:
    """RFC 8705 §3: the thumbprint that matched, or ``None`` when the token is not
    certificate-bound. Raises :class:`InvalidToken` when it is bound and does not match."""
    return _certificate_binding(_confirmation(token), cert_der)


def _certificate_binding(cnf: Mapping[str, Any], cert_der: bytes | None) -> str | None:
    expected = cnf.get("x5t#S256")
    if expected is None:
        return None
    # §3: a certificate-bound token is only honoured over mTLS with the same certificate.
    if cert_der is None:
        raise InvalidToken(
            "token is certificate-bound but no client certificate was presented",
            code="token.cert_missing",
        )
    actual = _thumbprint(cert_der)
    wanted = str(expected).encode("utf-8", "surrogatepass")
    if not hmac.compare_digest(actual.encode("ascii"), wanted):
        raise InvalidToken(
            "certificate does not match the token",
            detail=f"client certificate x5t#S256 {actual} != token cnf",
            code="token.cert_mismatch",
        )
    return actual


def check_binding(
    token: AccessToken,
    message: Message,
    *,
    require_bound: bool = False,
    dpop_verifier: DPoPVerifier | None = None,
    cert_source: ClientCertSource | None = None,
) -> Binding:
    """Check every confirmation the token carries against this request.

    ``require_bound`` (FAPI): refuse tokens that are not sender-constrained at all.
    ``dpop_verifier``: needed to accept DPoP; without one a DPoP request is refused.
    ``cert_source``: where the client certificate comes from (default: the TLS layer only).
    """
    scheme = _LOWER.get(token.scheme) or token.scheme.lower()  # RFC 9110 §11.1
    if token.cnf is None and scheme == "bearer" and not require_bound:
        return _UNBOUND  # the common case, kept cheap: an unbound bearer token, allowed here
    cnf = _confirmation(token)
    if scheme not in ("bearer", "dpop"):
        raise InvalidToken(f"unsupported authorization scheme {token.scheme[:16]!r}")
    # Stateless checks first, so a request refused anyway does not spend a DPoP jti.
    thumbprint = None
    if "x5t#S256" in cnf:
        source = cert_source or _TLS_ONLY
        thumbprint = _certificate_binding(cnf, source.client_certificate(message))
    proof = _check_dpop(token, message, cnf, scheme, dpop_verifier)
    binding = Binding(thumbprint, proof)
    if not binding.bound:
        if cnf:
            # RFC 7800 §3: a confirmation we cannot check must not be treated as bearer.
            raise InvalidToken(
                "token is bound by an unsupported confirmation method",
                detail=f"cnf members {sorted(cnf)[:4]}",
                code="token.cnf_unsupported",
            )
        if require_bound:
            raise InvalidToken("token is not sender-constrained", code="token.unbound")
    return binding


def _check_dpop(
    token: AccessToken,
    message: Message,
    cnf: Mapping[str, Any],
    scheme: str,
    verifier: DPoPVerifier | None,
) -> DPoPProof | None:
    if scheme == "bearer":
        if "jkt" in cnf:
            # RFC 9449 §7.2: a DPoP-bound token presented as a bearer token is refused.
            raise dpop_invalid_token(
                "DPoP-bound token must be presented with the DPoP scheme",
                code="token.dpop_scheme_required",
                challenge=_algs(verifier),
            )
        return None
    # RFC 9449 §7.1: the DPoP scheme is only for tokens bound to a DPoP key.
    if "jkt" not in cnf:
        raise dpop_invalid_token(
            "token is not DPoP-bound", code="token.not_dpop_bound", challenge=_algs(verifier)
        )
    if verifier is None:
        raise dpop_invalid_token("DPoP is not accepted here", code="token.dpop_unsupported")
    return verifier.verify(message, token)


def _algs(verifier: DPoPVerifier | None) -> dict[str, str] | None:
    """The DPoP challenge's ``algs``, built only when a refusal needs it."""
    return verifier.challenge() if verifier is not None else None


_UNBOUND = Binding()
