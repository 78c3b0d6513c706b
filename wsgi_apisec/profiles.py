"""Network profiles: data over the shared mechanisms.

A :class:`Profile` names a mechanism and fixes its knobs. The built-ins follow
``PROTOCOLS.md``; a custom network is a new ``Profile(...)`` or ``OCEN.replace(...)``, never
a new verifier. ``FAPI2`` and ``HTTPSIG`` are defined next to their RFC 9421 mechanism in
:mod:`wsgi_apisec.fapi2` and registered here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from typing import Any

from .algorithms import JOSE_ALGORITHMS, SYMMETRIC
from .beckn import BecknSignature
from .detached import DetachedJWS
from .errors import (
    APISecError,
    ConfigurationError,
    InvalidRequest,
    ParseError,
    SignatureError,
    UnknownKey,
)
from .fapi2 import FAPI2 as FAPI2
from .fapi2 import HTTPSIG as HTTPSIG
from .jws import JWSPolicy
from .message import Message
from .signatures import (
    HeaderCheck,
    KeyOwner,
    Profile,
    ReplayRule,
    SignatureResult,
)

# --- key owners ---------------------------------------------------------------------------

#: ``Message.context`` key naming the party a verifier expects to have signed a *response*:
#: a client knows whom it called (``ResponseVerification(owner=...)`` sets it), and a
#: response carries no verified token or sender field of the caller to name one.
EXPECTED_SIGNER = "expected_signer"


def expected_signer(message: Message) -> str | None:
    """The party the verifier was told to expect (``context[EXPECTED_SIGNER]``), or ``None``
    when it was told none (the resolver is then asked without an owner)."""
    value = message.context.get(EXPECTED_SIGNER)
    return value if isinstance(value, str) and value else None


def per_direction(
    request: KeyOwner | None, response: KeyOwner | None = expected_signer
) -> KeyOwner:
    """A key-owner rule that names the signer of a request with ``request`` and of a
    response (a message with a status) with ``response``, by default the party the
    verifier expects. Token claims and body fields name the *caller*, so they are rules for
    requests only: ``OCEN.replace(key_owner=per_direction(token_claim("sub")))``."""

    def owner(message: Message) -> str | None:
        rule = request if message.status is None else response
        return rule(message) if rule is not None else None

    return owner


def token_claim(claim: str) -> KeyOwner:
    """The signer is named by a claim of the *verified* access token in ``context["token"]``.

    OCEN's reference code reads ``participantId`` before verifying the token; we only ever
    read it from a token the token check has already accepted.
    """

    def owner(message: Message) -> str | None:
        token = message.context.get("token")
        if token is None:
            raise InvalidRequest(
                "a verified access token is needed to find the signer's key", code="token.missing"
            )
        value = token.claims.get(claim)
        if not isinstance(value, str) or not value:
            raise UnknownKey(f"the access token has no {claim!r} claim")
        return value

    return owner


def body_field(*paths: tuple[str, ...]) -> KeyOwner:
    """The signer is named inside the JSON body (OpenG2P ``header.sender_id``); the first
    path that resolves to a string wins."""

    def owner(message: Message) -> str | None:
        try:
            doc = message.json()
        except ParseError as exc:
            raise InvalidRequest(f"the body is not JSON: {exc.description}") from exc
        for path in paths:
            node: Any = doc
            for step in path:
                node = node.get(step) if isinstance(node, dict) else None
            if isinstance(node, str) and node:
                return node
        raise UnknownKey("the body does not name its sender")

    return owner


# --- replay rules -------------------------------------------------------------------------


def signature_digest(window: float) -> ReplayRule:
    """Remember each signature of a request with a body for ``window`` seconds (OCEN has no
    timestamp to bound it). Bodiless requests (GET) sign only their path, so two honest
    identical reads would collide; they are safe to repeat and are not remembered."""

    def rule(result: SignatureResult, message: Message) -> tuple[str, float] | None:
        if len(message.body) == 0:
            return None
        return hashlib.sha256(result.signature).hexdigest(), window

    return rule


def envelope_message_id(window: float) -> ReplayRule:
    """G2P-style envelopes: a ``header.message_id`` (or 2.x ``request_header.message_id``)
    is accepted once per sender within ``window`` seconds."""

    def rule(result: SignatureResult, message: Message) -> tuple[str, float] | None:
        return f"{result.owner}|{_message_id(message, result)}", window

    return rule


def _message_id(message: Message, result: SignatureResult) -> str:
    try:
        doc = message.json() if len(message.body) else None
    except ParseError:
        doc = None
    for name in ("header", "request_header"):
        header = doc.get(name) if isinstance(doc, dict) else None
        value = header.get("message_id") if isinstance(header, dict) else None
        if isinstance(value, str) and value:
            return value
    # No message id: fall back to the signature itself.
    return "sig:" + hashlib.sha256(result.signature).hexdigest()


# --- UK Open Banking ----------------------------------------------------------------------

UKOB_IAT = "http://openbanking.org.uk/iat"
UKOB_ISS = "http://openbanking.org.uk/iss"
UKOB_TAN = "http://openbanking.org.uk/tan"
UKOB_CRIT = (UKOB_IAT, UKOB_ISS, UKOB_TAN)


def ukob_checks(
    trusted_anchors: frozenset[str] = frozenset({"openbanking.org.uk"}),
    expected_iss: Callable[[Message], str | None] | None = None,
    leeway: float = 30.0,
) -> HeaderCheck:
    """UK OB message signing: ``crit`` carries exactly iat/iss/tan; iat is in the past; tan
    is a trusted anchor; iss is the expected party when one is known."""

    def check(header: Mapping[str, Any], message: Message, now: float) -> None:
        crit = [c for c in header.get("crit", ()) if c != "b64"]
        if sorted(crit) != sorted(UKOB_CRIT):
            raise SignatureError("crit must list iat, iss and tan (and nothing else but b64)")
        if "kid" not in header:
            raise SignatureError("UK OB signatures must carry a kid")
        iat = header.get(UKOB_IAT)
        if isinstance(iat, bool) or not isinstance(iat, int):
            raise SignatureError(f"{UKOB_IAT} must be a number (integer seconds)")
        if iat > now + leeway:
            raise SignatureError(f"{UKOB_IAT} is in the future")
        tan = header.get(UKOB_TAN)
        # A list or object is unhashable: test the type first, or `in` raises TypeError.
        if not isinstance(tan, str) or tan not in trusted_anchors:
            raise SignatureError(f"{UKOB_TAN} is not the trusted anchor")
        iss = header.get(UKOB_ISS)
        if not isinstance(iss, str) or not iss:
            raise SignatureError("http://openbanking.org.uk/iss is missing")
        wanted = expected_iss(message) if expected_iss is not None else None
        if wanted is not None and iss != wanted:
            raise SignatureError("http://openbanking.org.uk/iss is not the expected party")

    return check


def ukob_header(
    iss: str, tan: str = "openbanking.org.uk"
) -> Callable[[Message, float], Mapping[str, Any]]:
    """The iat/iss/tan header members for signing as party ``iss``:
    ``UKOB.replace(sign_header=ukob_header("0015800001041REAAY/abcdef"))``."""

    def header(message: Message, now: float) -> Mapping[str, Any]:
        return {UKOB_IAT: int(now), UKOB_ISS: iss, UKOB_TAN: tan}

    return header


def _ukob_replay(result: SignatureResult, message: Message) -> tuple[str, float]:
    iat = result.params.get(UKOB_IAT, 0)
    return f"{iat}:{hashlib.sha256(result.signature).hexdigest()}", 24 * 3600.0


# --- the built-in profiles ------------------------------------------------------------------

_DETACHED = DetachedJWS()

#: A generic detached JWS (RFC 7515 App. F) in ``x-jws-signature``: any asymmetric JOSE
#: algorithm, the key picked by ``kid``, strict RFC 7797 (``b64: false`` only when critical).
JWS = Profile(
    name="jws",
    mechanism=_DETACHED,
    header_names=("x-jws-signature",),
    emit_header="x-jws-signature",
    algorithms=JOSE_ALGORITHMS - SYMMETRIC,
    jws_policy=JWSPolicy(algorithms=JOSE_ALGORITHMS - SYMMETRIC),
)

#: OCEN 4.0: ``x-jws-signature`` (docs: ``Signature``), RS256, ``b64:false`` as the reference
#: code sends it (without ``crit``: a documented leniency of this profile only), key from the
#: registry by the verified token's ``participantId`` (of a response: by the party the
#: verifier expects, :data:`EXPECTED_SIGNER`). Bodiless requests sign path + query.
OCEN = Profile(
    name="ocen",
    mechanism=_DETACHED,
    header_names=("x-jws-signature", "Signature"),
    emit_header="x-jws-signature",
    algorithms=frozenset({"RS256"}),
    jws_policy=JWSPolicy(algorithms=frozenset({"RS256"}), b64_without_crit=True),
    bodiless="path_query",
    # Requests: the verified token's participantId; responses: the lender the client called.
    key_owner=per_direction(token_claim("participantId")),
    match_kid=False,
    replay=signature_digest(24 * 3600.0),
    sign_alg="RS256",
    sign_b64=False,
    sign_b64_in_crit=False,
)

#: UK Open Banking: ``x-jws-signature``, PS256, ``kid`` required, ``crit`` iat/iss/tan; both
#: the ≤3.1.3 ``b64:false`` form and the later encoded form, always over the raw body.
UKOB = Profile(
    name="ukob",
    mechanism=_DETACHED,
    header_names=("x-jws-signature",),
    emit_header="x-jws-signature",
    algorithms=frozenset({"PS256"}),
    jws_policy=JWSPolicy(
        algorithms=frozenset({"PS256"}),
        understood_crit=frozenset({"b64", *UKOB_CRIT}),
        required=frozenset({"kid"}),
    ),
    header_check=ukob_checks(),
    created_param=UKOB_IAT,
    replay=_ukob_replay,
    sign_alg="PS256",
    sign_crit=UKOB_CRIT,
)

#: OpenG2P SPAR: ``Signature`` header, RS256, signs canonical JSON of the parsed body; the
#: partner key is ``PARTNER_<SENDER_ID>`` from ``header.sender_id`` (or the 2.x
#: ``request_header.sender_app_mnemonic``); of a response, the party the verifier expects.
OPENG2P = Profile(
    name="openg2p",
    mechanism=_DETACHED,
    header_names=("Signature",),
    emit_header="Signature",
    algorithms=frozenset({"RS256"}),
    jws_policy=JWSPolicy(algorithms=frozenset({"RS256"}), b64=frozenset({True})),
    payload="canonical_json",
    key_owner=per_direction(
        body_field(("header", "sender_id"), ("request_header", "sender_app_mnemonic"))
    ),
    replay=envelope_message_id(3600.0),
    sign_alg="RS256",
    sign_header=lambda message, now: {"typ": "JWT"},
)

#: G2P Connect error codes for our reasons (the spec's ``errors[].code`` values).
G2P_CODES = {
    "signature.missing": "err.signature.missing",
    "signature.sender_invalid": "err.sender_id.invalid",
    "signature.replayed": "rjct.message_id.duplicate",
}


def g2p_envelope(err: APISecError) -> Mapping[str, Any]:
    """G2P Connect renders 401/403 as ``{"errors":[{"code","message"}]}``."""
    if err.code in G2P_CODES:
        code = G2P_CODES[err.code]
    elif err.code.startswith(("signature.", "digest.")):
        code = "err.signature.invalid"
    else:
        code = "err." + err.code
    return {"errors": [{"code": code, "message": err.description}]}


def g2p_message_id(result: SignatureResult, message: Message) -> tuple[str, float] | None:
    """G2P Connect: a ``message_id`` is used once per sender while the signature is valid."""
    expires = str(result.params.get("expires", ""))
    window = float(expires) - float(result.created or 0) if expires.isdigit() else 3600.0
    return envelope_message_id(max(window, 1.0))(result, message)


#: G2P Connect: the Beckn-style ``Signature`` header (also in ``Authorization`` and in the
#: envelope's ``signature`` member), Ed25519 over ``(created) (expires) digest`` with a
#: BLAKE2b-512 body digest; key by ``sender_id`` + key id. Set ``options["sender_id"]`` to
#: sign responses and callbacks.
G2P_CONNECT = Profile(
    name="g2p_connect",
    mechanism=BecknSignature(),
    header_names=("Signature", "Authorization"),
    emit_header="Signature",
    algorithms=frozenset({"ed25519"}),
    replay=g2p_message_id,
    envelope=g2p_envelope,
    options={"clock_skew": 30, "max_window": 3600, "ttl": 300, "envelope_signature": True},
)

REGISTRY: dict[str, Profile] = {
    p.name: p for p in (JWS, OCEN, UKOB, OPENG2P, G2P_CONNECT, FAPI2, HTTPSIG)
}


def register(profile: Profile) -> Profile:
    """Make a profile available by name (``APISEC_SIGNATURE_PROFILE``, the CLI)."""
    REGISTRY[profile.name] = profile
    return profile


def get(name: str) -> Profile:
    try:
        return REGISTRY[name]
    except KeyError:
        raise ConfigurationError(f"unknown signature profile {name!r}") from None
