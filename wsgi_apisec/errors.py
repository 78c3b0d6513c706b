"""The one exception hierarchy.

Every failure the library can meet while handling a request is an :class:`APISecError`.
Each class carries, as data, what an HTTP layer needs to answer: the status, the RFC 6750
(or RFC 9449 / profile) error code, a description that is safe to show to the caller, a
``detail`` for the log line only, and the challenge to put in ``WWW-Authenticate``.

Parsers and crypto backends raise their own exceptions; they are converted at the
boundary (``raise X(...) from exc``) so nothing else escapes as a 500.
"""

from __future__ import annotations

from collections.abc import Mapping


class APISecError(Exception):
    """Root of every error this library raises.

    ``code`` is a stable, dotted, profile-neutral reason (``signature.invalid``); profiles
    map it onto their own envelope codes (G2P Connect ``err.signature.invalid``).
    """

    status: int = 400
    error: str = "invalid_request"
    code: str = "request.invalid"
    #: The auth scheme of the challenge; ``None`` means no ``WWW-Authenticate`` header.
    scheme: str | None = None

    def __init__(
        self,
        description: str,
        *,
        detail: str | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
        challenge: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(description)
        self.description = description
        self.detail = detail or description
        if code is not None:
            self.code = code
        self.headers: dict[str, str] = dict(headers or {})
        #: Extra auth-params for the challenge (``scope``, ``algs``, ...), besides ``error``.
        self.challenge: dict[str, str] = dict(challenge or {})

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code!r}, {self.description!r})"


class ConfigurationError(APISecError):
    """The library was set up wrongly; raised at start-up, never while serving."""

    status = 500
    error = "server_error"
    code = "config.invalid"


# --- request shape -------------------------------------------------------------------


class InvalidRequest(APISecError):
    """RFC 6750 §3.1 ``invalid_request``: malformed, missing a parameter, or ambiguous."""

    status = 400
    error = "invalid_request"
    code = "request.invalid"


class BodyTooLarge(InvalidRequest):
    status = 413
    code = "request.too_large"


class ParseError(InvalidRequest):
    """Bad base64url, bad JSON, bad structured field: the input is not well formed."""

    code = "request.malformed"


# --- bearer tokens (RFC 6750) ----------------------------------------------------------


class MissingCredentials(APISecError):
    """RFC 6750 §3.1: no credentials at all -> 401 challenge *without* an error code."""

    status = 401
    error = ""
    code = "token.missing"
    scheme = "Bearer"


class InvalidToken(APISecError):
    """RFC 6750 §3.1 ``invalid_token``: expired, revoked, malformed, or wrongly bound."""

    status = 401
    error = "invalid_token"
    code = "token.invalid"
    scheme = "Bearer"


class InsufficientScope(APISecError):
    """RFC 6750 §3.1 ``insufficient_scope`` (403, challenge carries ``scope``)."""

    status = 403
    error = "insufficient_scope"
    code = "token.insufficient_scope"
    scheme = "Bearer"


class InvalidDPoPProof(APISecError):
    """RFC 9449 §7.1 ``invalid_dpop_proof``."""

    status = 401
    error = "invalid_dpop_proof"
    code = "dpop.invalid"
    scheme = "DPoP"


class UseDPoPNonce(InvalidDPoPProof):
    """RFC 9449 §8 ``use_dpop_nonce``; the response carries a fresh ``DPoP-Nonce``."""

    error = "use_dpop_nonce"
    code = "dpop.nonce_required"


# --- message signatures ----------------------------------------------------------------


class SignatureError(APISecError):
    """A signature that is present but does not verify (401)."""

    status = 401
    error = "invalid_signature"
    code = "signature.invalid"


class MissingSignature(SignatureError):
    code = "signature.missing"


class MalformedSignature(SignatureError):
    """A signature header that cannot be parsed: a malformed request (400)."""

    status = 400
    error = "invalid_request"
    code = "signature.malformed"


class UnknownKey(SignatureError):
    """No key for the ``kid`` / participant named by the message."""

    code = "signature.unknown_key"


class ReplayDetected(SignatureError):
    code = "signature.replayed"


class InvalidDigest(SignatureError):
    """RFC 9530: ``Content-Digest`` absent, unsupported or not matching the body."""

    code = "digest.invalid"


# --- key sources ------------------------------------------------------------------------


class KeySourceError(APISecError):
    """A JWKS / registry / introspection endpoint is down and nothing usable is cached."""

    status = 503
    error = "temporarily_unavailable"
    code = "keys.unavailable"


# --- our own responses -------------------------------------------------------------------


class ResponseSigningError(APISecError):
    """A response that must be signed could not be (its body is not what the profile signs,
    or it is larger than the cap). It is never sent unsigned: the client gets a 500."""

    status = 500
    error = "server_error"
    code = "response.unsigned"


class ResponseTooLarge(ResponseSigningError):
    code = "response.too_large"


# --- replay stores -----------------------------------------------------------------------


class ReplayStoreUnavailable(APISecError):
    """The replay store cannot answer, so freshness cannot be proven: 503, never "fresh"."""

    status = 503
    error = "temporarily_unavailable"
    code = "replay.unavailable"


class ReplayStoreFull(ReplayStoreUnavailable):
    """The memory store holds ``max_entries`` live keys and none may be dropped."""

    code = "replay.store_full"


# --- client side: what a server we called answered ------------------------------------------


class UpstreamError(APISecError):
    """The client (:mod:`wsgi_apisec.client`) refuses what a server it called answered.

    Nothing here is a refusal *by* us, so ``status`` is not a status we received: it is what a
    service of ours should answer if the error escapes one of its request handlers while it
    acts for its own caller -- 502 Bad Gateway (RFC 9110 §15.6.3: an invalid response from an
    inbound server), never 401, since that caller's credentials were not at fault. The status
    the other server actually sent is ``upstream_status`` (``None`` when it sent none).
    """

    status = 502
    error = "server_error"
    code = "upstream.invalid"

    def __init__(
        self,
        description: str,
        *,
        upstream_status: int | None = None,
        detail: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(description, detail=detail, code=code)
        self.upstream_status = upstream_status


class TokenRequestError(UpstreamError):
    """No access token: the token endpoint refused the request (``oauth_error`` holds its
    RFC 6749 §5.2 ``error``, e.g. ``invalid_client``), answered something that is not a token
    response, or could not be reached."""

    code = "upstream.token_request"

    def __init__(
        self,
        description: str,
        *,
        oauth_error: str | None = None,
        upstream_status: int | None = None,
        detail: str | None = None,
    ) -> None:
        super().__init__(description, upstream_status=upstream_status, detail=detail)
        self.oauth_error = oauth_error


class ResponseSignatureError(UpstreamError):
    """A response whose signature is missing or does not verify. ``code`` is
    ``upstream.`` + the verifier's own reason (``upstream.signature.missing``,
    ``upstream.signature.invalid``, ``upstream.digest.invalid``, ...)."""

    code = "upstream.signature.invalid"
