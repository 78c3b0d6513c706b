"""The detached-JWS mechanism (RFC 7515 App. F) shared by OCEN, UK OB and OpenG2P.

What differs between those networks is data on the :class:`~wsgi_apisec.profiles.Profile`:
the header names, algorithms, ``b64`` handling, what the payload is (raw bytes or canonical
JSON), how the signer's key is found, and extra header checks.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from . import jws
from .encoding import canonical_json
from .errors import APISecError, MalformedSignature, MissingSignature, ParseError, SignatureError
from .keys import PrivateKey
from .message import Body, Message
from .resolvers import KeyQuery, KeyResolver
from .signatures import PreparedSign, SignatureResult

if TYPE_CHECKING:
    from .signatures import Profile


class DetachedJWS:
    """Verify and produce a detached compact JWS carried in one header field."""

    def verify(
        self, profile: Profile, message: Message, resolver: KeyResolver, now: float
    ) -> SignatureResult:
        value, name = _find_header(profile, message)
        parsed = jws.parse_compact(value)
        if not parsed.detached:
            raise SignatureError(f"{name} must be a detached JWS (empty payload part)")
        assert profile.jws_policy is not None
        jws.check_header(parsed, profile.jws_policy)
        if profile.header_check is not None:
            profile.header_check(parsed.header, message, now)
        payload, covered = _payload(profile, message)
        owner = profile.key_owner(message) if profile.key_owner is not None else None
        kid = parsed.kid if profile.match_kid else None
        keys = resolver.resolve(KeyQuery(alg=parsed.alg, kid=kid, owner=owner))
        last: APISecError | None = None
        for key in keys:
            try:
                done = jws.verify(parsed, key, payload)
            except SignatureError as exc:
                last = exc
                continue
            created = parsed.header.get(profile.created_param) if profile.created_param else None
            return SignatureResult(
                profile=profile.name,
                alg=done.alg,
                kid=done.kid,
                key=key,
                owner=owner,
                covered=(covered,),
                signature=parsed.signature,
                params=dict(parsed.header),
                created=created if isinstance(created, int) else None,
            )
        raise last or SignatureError("signature does not verify")

    def sign(
        self, profile: Profile, message: Message, key: PrivateKey, now: float
    ) -> list[tuple[str, str]]:
        extra = profile.sign_header(message, now) if profile.sign_header is not None else None
        signer = jws.Signer(key, _header(profile, key, extra))
        payload, _ = _payload(profile, message)
        return [(profile.emit_header, signer.sign(payload))]

    def prepare(self, profile: Profile, key: PrivateKey) -> PreparedSign | None:
        """For a profile that adds nothing per message the header is the same for every
        message: build, check and serialise it once (see :class:`ResponseSigner`)."""
        if profile.sign_header is not None:
            return None
        signer, name = jws.Signer(key, _header(profile, key, None)), profile.emit_header

        def sign(message: Message, now: float) -> list[tuple[str, str]]:
            payload, _ = _payload(profile, message)
            return [(name, signer.sign(payload))]

        return sign


def _header(profile: Profile, key: PrivateKey, extra: Mapping[str, Any] | None) -> dict[str, Any]:
    return jws.build_header(
        key,
        profile.sign_alg,
        b64=profile.sign_b64,
        b64_in_crit=profile.sign_b64_in_crit,
        extra=extra,
        crit=profile.sign_crit,
    )


def _find_header(profile: Profile, message: Message) -> tuple[str, str]:
    found = [(message.headers.get_all(n), n) for n in profile.header_names]
    present = [(values, name) for values, name in found if values]
    if not present:
        raise MissingSignature(f"the request has no {profile.header_names[0]} header")
    values, name = present[0]
    if len(present) > 1 or len(values) > 1:
        # Two signatures could verify different things: refuse the ambiguity.
        raise MalformedSignature("more than one signature header was sent")
    return values[0], name


def _payload(profile: Profile, message: Message) -> tuple[Body | bytes, str]:
    """What the JWS signs for this message, and a name for it."""
    body = message.body
    if len(body) == 0 and profile.bodiless == "path_query" and message.status is None:
        return message.path_and_query.encode("utf-8"), "path_query"
    if profile.payload == "canonical_json":
        if len(body) == 0:
            return b"", "body"
        try:
            parsed = message.json()
        except ParseError as exc:
            raise MalformedSignature(f"the signed body is not JSON: {exc.description}") from exc
        return canonical_json(parsed), "canonical_json(body)"
    return body, "body"
