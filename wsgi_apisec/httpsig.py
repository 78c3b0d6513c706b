"""RFC 9421 HTTP Message Signatures over a :class:`~wsgi_apisec.message.Message`.

:func:`verify_message` reads ``Signature-Input`` / ``Signature``, picks one signature by label
or ``tag``, checks it against a :class:`VerificationPolicy` (covered components, times,
algorithm), rebuilds the signature base (:mod:`wsgi_apisec.httpsig_components`), verifies it
with a key from a :class:`~wsgi_apisec.resolvers.KeyResolver` and checks a covered
``Content-Digest`` against the body (RFC 9530). :func:`sign_message` does the reverse.

Algorithms (§3.3): the six RFC 9421 names, and JOSE algorithms as §3.3.7 allows (``PS256``,
``ES256``, ``EdDSA``). A JOSE algorithm is signalled by the key, never by ``alg``: we never
send a JOSE name in ``alg``, but accept one (a common leniency) when the policy allows it.
Without ``alg`` the key's bound algorithms must name exactly one primitive.

Every failure is :class:`~wsgi_apisec.errors.MalformedSignature` (400) or
:class:`~wsgi_apisec.errors.SignatureError` (401) and carries an ``Accept-Signature``
header (§5.1) saying what a good signature would look like.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence

from . import sfv
from .algorithms import ALGORITHMS, HTTPSIG_ALGORITHMS, equivalents
from .digest import DigestHasher, choose_digest_algorithm, verify_content_digest
from .errors import (
    APISecError,
    ConfigurationError,
    MalformedSignature,
    MissingSignature,
    ParseError,
    SignatureError,
    UnknownKey,
)
from .httpsig_components import covers_field, identifier, signature_base
from .httpsig_policy import (
    DEFAULT_ALGORITHMS,
    SignatureInput,
    VerificationPolicy,
    parameters,
    parse_dictionary,
    parse_signature_input,
    preferred,
    signature_input,
)
from .keys import PrivateKey, PublicKey
from .message import Headers, Message
from .resolvers import KeyQuery, KeyResolver
from .signatures import SignatureResult

__all__ = [
    "ACCEPT_SIGNATURE",
    "DEFAULT_ALGORITHMS",
    "SIGNATURE",
    "SIGNATURE_INPUT",
    "SignatureInput",
    "VerificationPolicy",
    "create_signature",
    "parse_signature_input",
    "sign_message",
    "signature_headers",
    "signing_algorithm",
    "verify_message",
]

SIGNATURE_INPUT = "Signature-Input"
SIGNATURE = "Signature"
ACCEPT_SIGNATURE = "Accept-Signature"


# --- verification ----------------------------------------------------------------------------


def verify_message(
    message: Message,
    resolver: KeyResolver,
    policy: VerificationPolicy,
    now: float,
    *,
    profile: str = "rfc9421",
    owner: str | None = None,
) -> SignatureResult:
    """Verify one signature of ``message`` under ``policy`` (RFC 9421 §3.2)."""
    try:
        return _verify(message, resolver, policy, now, profile, owner)
    except APISecError as err:
        if err.status in (400, 401):
            err.headers.setdefault(ACCEPT_SIGNATURE, policy.accept_signature(message))
        raise


def _verify(
    message: Message,
    resolver: KeyResolver,
    policy: VerificationPolicy,
    now: float,
    profile: str,
    owner: str | None,
) -> SignatureResult:
    inputs = _dictionary_field(message, SIGNATURE_INPUT)
    signatures = _dictionary_field(message, SIGNATURE)
    labels = [label for label, member in inputs.items() if policy.selects(label, member)]
    failure = SignatureError(
        "no signature has the expected label or tag", code="signature.no_match"
    )
    for label in labels[: 1 if policy.select == "first" else policy.max_candidates]:
        try:
            sig = signature_input(label, inputs[label])
            value = _signature_value(label, signatures.get(label))
            policy.check(sig, message, now)
            base = signature_base(message, sig.covered, sig.value)
            key, alg = _verify_signature(sig, value, base, resolver, policy, owner)
            if covers_field(sig.covered, "content-digest"):
                _check_digest(message)
        except SignatureError as exc:
            failure = exc
            continue
        return SignatureResult(
            profile=profile,
            alg=alg,
            kid=sig.keyid,
            key=key,
            owner=owner,
            covered=sig.identifiers,
            created=sig.created,
            signature=value,
            params=dict(sig.params),
            label=label,
        )
    raise failure


def _dictionary_field(message: Message, name: str) -> sfv.Dictionary:
    lines = message.headers.get_all(name)
    if not lines:
        raise MissingSignature(f"the message has no {name} field")
    members = parse_dictionary(sfv.join_field_lines(lines), name)
    if not members:
        raise MissingSignature(f"the {name} field is empty")
    return members


def _signature_value(label: str, member: sfv.Member | None) -> bytes:
    # §4.2: each Signature member is a Byte Sequence, under the same label.
    if not isinstance(member, sfv.Item) or not isinstance(member.value, bytes) or not member.value:
        raise MalformedSignature(f"Signature has no Byte Sequence labelled {label!r}")
    return member.value


def _verify_signature(
    sig: SignatureInput,
    value: bytes,
    base: bytes,
    resolver: KeyResolver,
    policy: VerificationPolicy,
    owner: str | None,
) -> tuple[PublicKey, str]:
    failure: SignatureError = SignatureError("the signature does not verify")
    for key, alg in _candidate_keys(sig, resolver, policy, owner):
        try:
            if ALGORITHMS[alg].verify(key.key, base, value):
                return key, alg
        except SignatureError as exc:  # this key cannot be used with alg
            failure = exc
    raise failure


def _candidate_keys(
    sig: SignatureInput, resolver: KeyResolver, policy: VerificationPolicy, owner: str | None
) -> list[tuple[PublicKey, str]]:
    """(key, algorithm) pairs to try: ``alg`` when given, else the key's one algorithm."""
    kid = sig.keyid
    if sig.alg is not None:
        keys = resolver.resolve(KeyQuery(alg=sig.alg, kid=kid, owner=owner))
        pairs = [(key, sig.alg) for key in keys if key.allows(sig.alg)]
        if not pairs:  # a resolver that ignored alg: its keys are not for this one
            raise UnknownKey(f"no key for {sig.alg}")
        return pairs
    found: dict[int, PublicKey] = {}
    failure: APISecError = UnknownKey(f"no key{f' with kid {kid[:64]!r}' if kid else ''}")
    for name in policy.primitives:
        try:
            found.update((id(key), key) for key in resolver.resolve(KeyQuery(name, kid, owner)))
        except UnknownKey as exc:
            failure = exc
        if found and kid is not None:  # a keyid names one key: no need to ask again
            break
    usable = [
        (key, alg) for key in found.values() if (alg := _only_algorithm(key, policy.algorithms))
    ]
    if not usable and found:
        # §3.3.7 / §7.3.6: without alg, the key must determine exactly one algorithm.
        failure = SignatureError(
            "the signature names no alg and the key allows more than one algorithm",
            code="signature.alg_ambiguous",
        )
    if not usable:
        raise failure
    return usable


def _check_digest(message: Message) -> None:
    """RFC 9530: a covered Content-Digest must match the body; deprecated algorithms fail."""
    try:
        verify_content_digest(message.headers.get("content-digest"), message.body.chunks())
    except ParseError as exc:
        raise MalformedSignature(
            exc.description, detail=exc.detail, code="digest.malformed"
        ) from exc


def _only_algorithm(key: PublicKey | PrivateKey, allowed: frozenset[str]) -> str | None:
    names = key.algorithms & allowed
    if len({equivalents({name}) for name in names}) != 1:
        return None
    return preferred(names)


# --- signing ---------------------------------------------------------------------------------


def signing_algorithm(key: PrivateKey, allowed: Iterable[str] | None = None) -> str:
    """The one algorithm ``key`` signs with (within ``allowed``), or :class:`ConfigurationError`."""
    names = frozenset(allowed) if allowed is not None else key.algorithms
    alg = _only_algorithm(key, equivalents(names))
    if alg is None:
        raise ConfigurationError(
            f"key {key.kid!r} allows {sorted(key.algorithms & equivalents(names))}: bind it to "
            "one algorithm or pass alg"
        )
    return alg


def create_signature(
    message: Message,
    key: PrivateKey,
    covered: Sequence[str | sfv.Item],
    params: Mapping[str, int | str],
    *,
    alg: str,
    label: str = "sig1",
) -> tuple[SignatureInput, bytes]:
    """Sign ``covered`` of ``message`` with exactly these parameters (in this order)."""
    if alg not in ALGORITHMS or not key.allows(alg):
        raise ConfigurationError(f"key {key.kid!r} cannot sign with {alg!r}")
    items = tuple(identifier(item) for item in covered)
    sig = SignatureInput(label, items, parameters(params, ConfigurationError))
    try:
        value = sig.value
    except ValueError as exc:
        raise ConfigurationError(f"signature parameters cannot be serialized: {exc}") from exc
    return sig, ALGORITHMS[alg].sign(key.key, signature_base(message, sig.covered, value))


def signature_headers(sig: SignatureInput, signature: bytes) -> list[tuple[str, str]]:
    """The ``Signature-Input`` and ``Signature`` field lines carrying one signature (§4)."""
    try:
        label_input = sfv.serialize_dictionary({sig.label: sfv.InnerList(sig.covered, sig.params)})
    except ValueError as exc:
        raise ConfigurationError(f"bad signature label {sig.label!r}") from exc
    return [
        (SIGNATURE_INPUT, label_input),
        (SIGNATURE, sfv.serialize_dictionary({sig.label: sfv.Item(signature)})),
    ]


def sign_message(
    message: Message,
    key: PrivateKey,
    covered: Sequence[str | sfv.Item],
    *,
    now: float,
    label: str = "sig1",
    alg: str | None = None,
    algorithms: Iterable[str] | None = None,
    include_alg: bool = True,
    tag: str | None = None,
    nonce: str | None = None,
    expires_in: int | None = None,
    digest_algorithm: str = "sha-256",
) -> list[tuple[str, str]]:
    """Field lines to add to ``message``: a ``Content-Digest`` when ``content-digest`` is
    covered and absent (for a response, in the algorithm the request's
    ``Want-Content-Digest`` prefers), then ``Signature-Input`` and ``Signature``."""
    name = signing_algorithm(key, algorithms) if alg is None else alg
    if name in ALGORITHMS and key.allows(name):
        name = preferred(equivalents({name}) & key.algorithms)
    items = [identifier(item) for item in covered]
    extra = _digest_field(message, items, digest_algorithm)
    if extra:
        message = dataclasses.replace(message, headers=Headers([*message.headers.items(), *extra]))
    if label in _labels(message):
        raise ConfigurationError(f"the message already has a signature labelled {label!r}")
    params: dict[str, int | str] = {"created": int(now)}
    if expires_in is not None:
        params["expires"] = int(now) + expires_in
    if nonce is not None:
        params["nonce"] = nonce
    if include_alg and name in HTTPSIG_ALGORITHMS:  # §3.3.7: never a JOSE name in alg
        params["alg"] = name
    if key.kid is not None:
        params["keyid"] = key.kid
    if tag is not None:
        params["tag"] = tag
    sig, value = create_signature(message, key, items, params, alg=name, label=label)
    return [*extra, *signature_headers(sig, value)]


def _digest_field(message: Message, items: list[sfv.Item], default: str) -> list[tuple[str, str]]:
    if not covers_field(items, "content-digest") or "content-digest" in message.headers:
        return []
    wanted = None
    if message.status is not None and message.request is not None:
        # RFC 9530 §4: the request's preference, when we support one it names.
        wanted = choose_digest_algorithm(message.request.headers.get("want-content-digest"))
    hasher = DigestHasher([wanted or default])
    for chunk in message.body.chunks():
        hasher.update(chunk)
    return [("Content-Digest", hasher.header_value())]


def _labels(message: Message) -> set[str]:
    lines = message.headers.get_all(SIGNATURE_INPUT)
    try:
        return set(sfv.parse_dictionary(sfv.join_field_lines(lines))) if lines else set()
    except ParseError:
        return set()
