"""Request signatures and response checks for the client, on the server side's own pieces.

A prepared ``requests`` request becomes a sans-IO :class:`~wsgi_apisec.message.Message` and is
signed by :class:`~wsgi_apisec.signatures.ResponseSigner` (which signs any message); a
response becomes a ``Message`` linked to the request that was sent (FAPI 2.0 covers request
components with ``;req``) and is checked by :class:`~wsgi_apisec.signatures.RequestVerifier`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

import requests

from .. import profiles
from ..errors import ConfigurationError, InvalidRequest, ResponseSignatureError, SignatureError
from ..keys import PrivateKey
from ..message import Body, Headers, Message
from ..resolvers import KeyResolver
from ..signatures import Clock, Profile, RequestVerifier, ResponseSigner, SignatureResult

if TYPE_CHECKING:
    from ..replay import ReplayStore

__all__ = [
    "RequestSigning",
    "ResponseVerification",
    "buffer_body",
    "request_message",
    "response_message",
    "signature_of",
]

#: Where a verified response keeps its :class:`SignatureResult` (``signature_of`` reads it).
ATTRIBUTE = "signature"


def _profile(profile: Profile | str) -> Profile:
    return profiles.get(profile) if isinstance(profile, str) else profile


def buffer_body(request: requests.PreparedRequest) -> bytes:
    """Make the body one ``bytes`` object (text as UTF-8, files and iterables read whole)
    with a matching ``Content-Length``, so the bytes signed are the bytes sent."""
    body = request.body
    if body is None:
        return b""
    if isinstance(body, str):
        data = body.encode("utf-8")
    elif isinstance(body, bytes):
        data = body
    else:
        pieces = body.read() if hasattr(body, "read") else body
        data = _join(pieces if isinstance(pieces, Iterable) else ())
    request.body = data
    request.headers.pop("Transfer-Encoding", None)
    request.headers["Content-Length"] = str(len(data))
    return data


def _join(pieces: Iterable[bytes | str] | bytes | str) -> bytes:
    if isinstance(pieces, bytes):
        return pieces
    if isinstance(pieces, str):
        return pieces.encode("utf-8")
    return b"".join(p.encode("utf-8") if isinstance(p, str) else bytes(p) for p in pieces)


def request_message(request: requests.PreparedRequest) -> Message:
    """The sans-IO view of a prepared request whose body is bytes (see :func:`buffer_body`)."""
    body = request.body
    if body is not None and not isinstance(body, bytes):
        raise ConfigurationError("the request body must be buffered to bytes to be signed")
    return Message(
        method=str(request.method),
        target_uri=str(request.url),
        headers=Headers(list(request.headers.items())),
        body=Body(body or b""),
    )


def response_message(response: requests.Response) -> Message:
    """The sans-IO view of a response, linked to the request that was sent."""
    raw = getattr(getattr(response, "raw", None), "headers", None)
    # urllib3 keeps each field line; requests' own mapping joins repeated fields.
    pairs = list(raw.items()) if raw is not None else list(response.headers.items())
    request = request_message(response.request)
    return Message(
        method=request.method,
        target_uri=request.target_uri,
        headers=Headers(pairs),
        body=Body(response.content or b""),
        status=response.status_code,
        request=request,
    )


def signature_of(response: requests.Response) -> SignatureResult | None:
    """The :class:`SignatureResult` of a response the client verified; ``None`` when it
    was not checked (no verification set up, or an unsigned error response)."""
    found = getattr(response, ATTRIBUTE, None)
    return found if isinstance(found, SignatureResult) else None


class RequestSigning:
    """Sign every request under ``profile`` with ``key``.

    G2P Connect signs as ``profile.options["sender_id"]``:
    ``profiles.G2P_CONNECT.replace(options={**profiles.G2P_CONNECT.options, "sender_id": me})``.
    """

    def __init__(self, profile: Profile | str, key: PrivateKey, *, clock: Clock = time.time):
        self.profile = _profile(profile)
        self.signer = ResponseSigner(self.profile, key, clock=clock)

    def sign(self, request: requests.PreparedRequest) -> None:
        """Add the signature fields (and FAPI 2.0's ``Content-Digest``) to ``request``."""
        buffer_body(request)
        lines: dict[str, list[str]] = {}
        for name, value in self.signer.sign(request_message(request)):
            lines.setdefault(name, []).append(value)
        for name, values in lines.items():
            # Signature-Input / Signature are RFC 8941 dictionaries: lines join with ", ".
            request.headers[name] = ", ".join(values)


class ResponseVerification:
    """Check the signature of every response under ``profile`` with keys from ``resolver``.

    The client knows whom it called, so the signer is never taken from the response: keys
    are asked for ``owner`` (the server's participant / sender id; ``None``: any key the
    resolver has) -- the profile's key-owner rule reads it from the message context
    (:data:`~wsgi_apisec.profiles.EXPECTED_SIGNER`) -- and a signature naming another party
    (G2P Connect's ``keyId``) is refused. Error responses (status >= 400) without a
    signature are let through with ``signature_of(response) is None`` -- servers, ours
    included, do not sign their own refusals -- unless ``signed_errors=True``; a signed one
    is checked like any other.
    ``replay_store`` remembers accepted response signatures when given (default: none).
    """

    def __init__(
        self,
        profile: Profile | str,
        resolver: KeyResolver,
        *,
        owner: str | None = None,
        signed_errors: bool = False,
        replay_store: ReplayStore | None = None,
        clock: Clock = time.time,
    ) -> None:
        self.owner = owner
        self.signed_errors = signed_errors
        chosen = _profile(profile)
        # The profile's own rule names a response's signer (the built-in rules: ``owner``,
        # which goes in the message context); a profile without a rule asks for ``owner``.
        if chosen.key_owner is None:
            chosen = chosen.replace(key_owner=profiles.expected_signer)
        self.profile = chosen
        self.verifier = RequestVerifier(
            self.profile, resolver, replay_store=replay_store, clock=clock
        )

    def verify(self, response: requests.Response) -> SignatureResult | None:
        """The verified signature, ``None`` for a let-through error response, or
        :class:`ResponseSignatureError`. Sets ``signature_of(response)``."""
        status = response.status_code
        if status >= 400 and not self.signed_errors and not self._signed(response):
            return None
        encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
        if encoding != "identity":
            raise ResponseSignatureError(
                "a content-encoded response cannot be checked over the bytes sent",
                upstream_status=status,
                code="upstream.signature.encoded",
            )
        message = response_message(response)
        if self.owner is not None:
            message.context[profiles.EXPECTED_SIGNER] = self.owner
        try:
            result = self.verifier.verify(message)
        except (SignatureError, InvalidRequest) as exc:
            raise ResponseSignatureError(
                f"the response signature is not acceptable: {exc.description}",
                upstream_status=status,
                code=f"upstream.{exc.code}",
                detail=exc.detail,
            ) from exc
        if self.owner is not None and result.owner not in (None, self.owner):
            raise ResponseSignatureError(
                "the response is signed by another party", upstream_status=status
            )
        setattr(response, ATTRIBUTE, result)
        return result

    def _signed(self, response: requests.Response) -> bool:
        return any(name in response.headers for name in self.profile.header_names)
