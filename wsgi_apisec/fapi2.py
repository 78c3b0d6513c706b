"""RFC 9421 as a :class:`~wsgi_apisec.signatures.Mechanism`, and the FAPI 2.0 Message Signing
profile built on it.

:class:`HTTPSignatures` reads its settings from ``profile.options``:

- ``"policy"``: the :class:`~wsgi_apisec.httpsig.VerificationPolicy` for requests;
- ``"response_policy"``: the one for responses (a client verifying what a server sent);
- ``"request_signing"`` / ``"response_signing"``: :class:`SigningRules` for our own signatures.

FAPI 2.0 Message Signing, "HTTP Message Signing", as :data:`FAPI2` applies it:

- a request signature covers ``@method``, ``@target-uri``, ``authorization``, ``dpop`` when the
  request has a DPoP header and ``content-digest`` when it has a body, has ``created`` (at most
  60 s old, 5 s of clock skew) and ``tag="fapi-2-request"``; anything less is a 401 with an
  ``Accept-Signature`` header saying what is wanted;
- a response signature covers ``@status``, ``content-digest`` when there is a body (computed in
  the algorithm the request's ``Want-Content-Digest`` prefers, else sha-256), and links to the
  request with ``"@method";req``, ``"@target-uri";req``, ``"content-digest";req`` (when the
  request had one) and the request's own ``"signature";key=..;req`` and
  ``"signature-input";key=..;req`` (the spec's rule for signed requests); ``created`` and
  ``tag="fapi-2-response"``;
- algorithms PS256 (RSASSA-PSS, SHA-256, MGF1-SHA-256, 32-byte salt), ES256 and EdDSA. RFC 9421
  registers none of PS256's parameters, so per §3.3.7 the JOSE algorithm is signalled by the
  key (its JWK ``alg``), and ``alg`` is not sent: our signatures carry ``created``, ``keyid``
  and ``tag``. An ``alg`` that a client does send must name an allowed algorithm the key has;
- each accepted signature is remembered (by ``nonce`` when it has one) for as long as its
  ``created`` keeps it acceptable, so it cannot be replayed.

FAPI 2.0 leaves open how the client's key is found: by ``keyid`` through the resolver, by
party through ``Profile.key_owner`` (e.g. the verified token's ``client_id``), or from the
mTLS client certificate with :class:`ClientCertificateKeys`, a resolver that reads the request.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from typing import Protocol, cast

from . import sfv
from .algorithms import equivalents
from .certs import ClientCertSource
from .errors import ConfigurationError, MalformedSignature, UnknownKey
from .httpsig import SIGNATURE, SIGNATURE_INPUT, VerificationPolicy, sign_message, verify_message
from .httpsig_policy import DEFAULT_ALGORITHMS, parse_dictionary
from .keys import PrivateKey, PublicKey
from .message import Message
from .resolvers import KeyQuery, KeyResolver
from .signatures import Profile, ReplayRule, SignatureResult

__all__ = [
    "FAPI2",
    "FAPI2_ALGORITHMS",
    "FAPI2_REQUEST_POLICY",
    "FAPI2_RESPONSE_POLICY",
    "HTTPSIG",
    "ClientCertificateKeys",
    "HTTPSignatures",
    "MessageKeyResolver",
    "SigningRules",
    "signature_window",
]

REQUEST_TAG = "fapi-2-request"
RESPONSE_TAG = "fapi-2-response"
FAPI2_ALGORITHMS = equivalents(frozenset({"PS256", "ES256", "EdDSA"}))
#: Where a verified request keeps the label of its signature, for the response to link to.
CONTEXT_LABEL = "httpsig_label"


@dataclass(frozen=True)
class SigningRules:
    """What our own signatures cover and carry."""

    components: tuple[str, ...] = ()
    #: Fields covered whenever the message has them.
    if_present: tuple[str, ...] = ()
    #: Cover ``content-digest`` (adding the field when absent) when there is a body.
    content_digest: bool = True
    #: Response only: request components covered with ``;req`` (RFC 9421 §2.4).
    link_request: tuple[str, ...] = ()
    #: Response only: ``"content-digest";req`` when the request had one.
    link_request_digest: bool = False
    #: Response only: the request's signature and its input, with ``;key=<label>;req``.
    link_request_signature: bool = False
    tag: str | None = None
    label: str = "sig1"
    #: Send ``alg`` (only ever an RFC 9421 name; JOSE algorithms never are, §3.3.7).
    include_alg: bool = True
    expires_in: int | None = None
    digest_algorithm: str = "sha-256"

    def covered(self, message: Message) -> list[str | sfv.Item]:
        items: list[str | sfv.Item] = [*self.components]
        items += [name for name in self.if_present if name in message.headers]
        if self.content_digest and len(message.body):
            items.append("content-digest")
        request = message.request
        if message.status is None or request is None:
            return items
        items += [sfv.Item(name, {"req": True}) for name in self.link_request]
        if self.link_request_digest and "content-digest" in request.headers:
            items.append(sfv.Item("content-digest", {"req": True}))
        label = _request_label(request) if self.link_request_signature else None
        if label is not None:
            for name in ("signature", "signature-input"):
                items.append(sfv.Item(name, {"key": label, "req": True}))
        return items


def _request_label(request: Message) -> str | None:
    """The label of the request's (verified) signature, when it has exactly one we know."""
    label = request.context.get(CONTEXT_LABEL)
    if isinstance(label, str):
        return label
    inputs, values = request.headers.get_all(SIGNATURE_INPUT), request.headers.get_all(SIGNATURE)
    try:
        labels = set(parse_dictionary(", ".join(inputs), SIGNATURE_INPUT)) if inputs else set()
        labels &= set(parse_dictionary(", ".join(values), SIGNATURE)) if values else set()
    except MalformedSignature:
        return None
    return labels.pop() if len(labels) == 1 else None


class MessageKeyResolver(Protocol):
    """A key source that needs the message itself (its client certificate, say)."""

    def resolve_for(self, message: Message, query: KeyQuery) -> list[PublicKey]: ...


class _Bound:
    def __init__(self, resolver: MessageKeyResolver, message: Message) -> None:
        self._resolver, self._message = resolver, message

    def resolve(self, query: KeyQuery) -> list[PublicKey]:
        return self._resolver.resolve_for(self._message, query)


class ClientCertificateKeys:
    """The signer's key is the key of the request's mTLS client certificate.

    ``keyid`` is not used for the lookup. The certificate comes from ``source`` (TLS layer;
    proxy headers only from its trusted proxies). Use as the middleware's ``resolver``.
    """

    def __init__(self, source: ClientCertSource | None = None) -> None:
        self.source = source if source is not None else ClientCertSource()

    def resolve(self, query: KeyQuery) -> list[PublicKey]:
        raise UnknownKey("the client certificate key can only be found from the request")

    def resolve_for(self, message: Message, query: KeyQuery) -> list[PublicKey]:
        der = self.source.client_certificate(message)
        if der is None:
            raise UnknownKey("the request carries no client certificate")
        try:
            key = PublicKey.from_certificate(der)
        except ConfigurationError as exc:
            raise UnknownKey("the client certificate key cannot verify signatures") from exc
        if not key.allows(query.alg):
            raise UnknownKey(f"the client certificate key cannot verify {query.alg}")
        return [key]


class HTTPSignatures:
    """RFC 9421 ``Signature-Input`` / ``Signature`` under the settings in ``profile.options``."""

    def verify(
        self, profile: Profile, message: Message, resolver: KeyResolver, now: float
    ) -> SignatureResult:
        name = "policy" if message.status is None else "response_policy"
        policy = profile.options.get(name) or _default_policy(name, profile.algorithms)
        if not isinstance(policy, VerificationPolicy):
            raise ConfigurationError(f"{profile.name}: the policy must be a VerificationPolicy")
        if callable(getattr(resolver, "resolve_for", None)):  # cheaper than a Protocol check
            resolver = _Bound(cast(MessageKeyResolver, resolver), message)
        owner = profile.key_owner(message) if profile.key_owner is not None else None
        result = verify_message(message, resolver, policy, now, profile=profile.name, owner=owner)
        message.context[CONTEXT_LABEL] = result.label
        return result

    def sign(
        self, profile: Profile, message: Message, key: PrivateKey, now: float
    ) -> list[tuple[str, str]]:
        name = "request_signing" if message.status is None else "response_signing"
        rules = profile.options.get(name, _DEFAULT_RULES[name])
        if not isinstance(rules, SigningRules):
            raise ConfigurationError(f"{profile.name}: {name} must be SigningRules")
        return sign_message(
            message,
            key,
            rules.covered(message),
            now=now,
            label=rules.label,
            alg=profile.sign_alg,
            algorithms=profile.algorithms,
            include_alg=rules.include_alg,
            tag=rules.tag,
            expires_in=rules.expires_in,
            digest_algorithm=rules.digest_algorithm,
        )


@functools.cache
def _default_policy(name: str, algorithms: frozenset[str]) -> VerificationPolicy:
    return VerificationPolicy(
        required=("@status",) if name == "response_policy" else (), algorithms=algorithms
    )


_DEFAULT_RULES = {
    "request_signing": SigningRules(components=("@method", "@target-uri")),
    "response_signing": SigningRules(
        components=("@status",), link_request=("@method", "@target-uri"), link_request_digest=True
    ),
}


def signature_window(window: float) -> ReplayRule:
    """Remember each accepted signature for ``window`` seconds (at least as long as its
    ``created`` keeps it acceptable): by signer and ``nonce`` when it has one, else by the
    signature bytes."""

    def rule(result: SignatureResult, message: Message) -> tuple[str, float]:
        nonce = result.params.get("nonce")
        if isinstance(nonce, str):
            return f"nonce|{result.owner or ''}|{result.kid or ''}|{nonce}", window
        return "sig|" + hashlib.sha256(result.signature).hexdigest(), window

    return rule


FAPI2_REQUEST_POLICY = VerificationPolicy(
    required=("@method", "@target-uri", "authorization"),
    required_if_present=("dpop",),
    tag=REQUEST_TAG,
    max_age=60.0,
    clock_skew=5.0,
    algorithms=FAPI2_ALGORITHMS,
)
FAPI2_RESPONSE_POLICY = VerificationPolicy(
    required=("@status", '"@method";req', '"@target-uri";req'),
    tag=RESPONSE_TAG,
    max_age=60.0,
    clock_skew=5.0,
    algorithms=FAPI2_ALGORITHMS,
)

#: FAPI 2.0 Message Signing: see the module docstring.
FAPI2 = Profile(
    name="fapi2",
    mechanism=HTTPSignatures(),
    header_names=(SIGNATURE_INPUT, SIGNATURE),
    emit_header=SIGNATURE,
    algorithms=FAPI2_ALGORITHMS,
    created_param="created",
    replay=signature_window(60.0 + 2 * 5.0),
    options={
        "policy": FAPI2_REQUEST_POLICY,
        "response_policy": FAPI2_RESPONSE_POLICY,
        "request_signing": SigningRules(
            components=("@method", "@target-uri", "authorization"),
            if_present=("dpop",),
            tag=REQUEST_TAG,
            include_alg=False,
        ),
        "response_signing": SigningRules(
            components=("@status",),
            link_request=("@method", "@target-uri"),
            link_request_digest=True,
            link_request_signature=True,
            tag=RESPONSE_TAG,
            include_alg=False,
        ),
    },
)

#: Plain RFC 9421 with the library defaults: the six §3.3 algorithms (and JOSE twins), a
#: 300 s ``created`` window, ``content-digest`` required with a body; our signatures cover
#: ``@method`` / ``@target-uri`` (requests) or ``@status`` and the linked request (responses).
HTTPSIG = Profile(
    name="rfc9421",
    mechanism=HTTPSignatures(),
    header_names=(SIGNATURE_INPUT, SIGNATURE),
    emit_header=SIGNATURE,
    algorithms=DEFAULT_ALGORITHMS,
    created_param="created",
    replay=signature_window(300.0 + 2 * 5.0),
)
