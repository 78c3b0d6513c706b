"""RFC 9421 §4.1 ``Signature-Input`` members and the :class:`VerificationPolicy` a verifier
holds them to (covered components, ``created`` / ``expires``, ``tag``, ``nonce``, algorithms),
with the §5.1 ``Accept-Signature`` value that asks for a signature the policy accepts.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from . import sfv
from .algorithms import ALGORITHMS, HTTPSIG_ALGORITHMS, equivalents
from .errors import APISecError, ConfigurationError, MalformedSignature, ParseError, SignatureError
from .httpsig_components import covers_field, identifier, identity, serialize
from .message import Message

__all__ = [
    "DEFAULT_ALGORITHMS",
    "PARAMETERS",
    "SignatureInput",
    "VerificationPolicy",
    "parse_signature_input",
]

#: §2.3 signature parameters and their types; any other parameter is refused.
PARAMETERS: Mapping[str, type] = {
    "created": int,
    "expires": int,
    "nonce": str,
    "alg": str,
    "keyid": str,
    "tag": str,
}
#: The six §3.3 algorithms and their JOSE twins (``ES256`` = ``ecdsa-p256-sha256``, ...).
DEFAULT_ALGORITHMS = equivalents(HTTPSIG_ALGORITHMS)


@dataclass(frozen=True)
class SignatureInput:
    """One member of ``Signature-Input``: the covered components and the parameters."""

    label: str
    covered: tuple[sfv.Item, ...]
    params: Mapping[str, int | str] = field(default_factory=dict)
    created: int | None = field(init=False, repr=False)
    expires: int | None = field(init=False, repr=False)
    nonce: str | None = field(init=False, repr=False)
    alg: str | None = field(init=False, repr=False)
    keyid: str | None = field(init=False, repr=False)
    tag: str | None = field(init=False, repr=False)

    def __post_init__(self) -> None:
        for name, kind in PARAMETERS.items():
            value = self.params.get(name)
            object.__setattr__(self, name, value if type(value) is kind else None)

    @functools.cached_property
    def value(self) -> str:
        """The ``@signature-params`` value (§2.3): this Inner List, serialized."""
        return sfv.serialize_inner_list(sfv.InnerList(self.covered, self.params))

    @functools.cached_property
    def identifiers(self) -> tuple[str, ...]:
        return tuple(serialize(item) for item in self.covered)


def preferred(names: Iterable[str]) -> str:
    """The RFC 9421 name of a primitive when it has one, else its JOSE name."""
    return min(names, key=lambda name: (name not in HTTPSIG_ALGORITHMS, name))


def parse_signature_input(value: str) -> dict[str, SignatureInput]:
    """Every member of a ``Signature-Input`` value, checked."""
    members = parse_dictionary(value, "Signature-Input")
    return {label: signature_input(label, member) for label, member in members.items()}


def parse_dictionary(value: str, name: str) -> sfv.Dictionary:
    """``Signature-Input`` / ``Signature`` as an RFC 8941 Dictionary (§4.1, §4.2)."""
    try:
        return sfv.parse_dictionary(value, name=name)
    except ParseError as exc:
        raise MalformedSignature(exc.description, detail=exc.detail) from exc


def signature_input(label: str, member: sfv.Member) -> SignatureInput:
    if not isinstance(member, sfv.InnerList):  # §4.1: each member is an Inner List
        raise MalformedSignature(f"Signature-Input {label!r} is not an Inner List")
    covered = tuple(identifier(item) for item in member.items)
    return SignatureInput(label, covered, parameters(member.params, MalformedSignature))


def parameters(params: sfv.Parameters, error: type[APISecError]) -> dict[str, int | str]:
    """Signature parameters, type-checked; anything else raises ``error``."""
    out: dict[str, int | str] = {}
    for name, value in params.items():
        kind = PARAMETERS.get(name)
        # §2.3: created/expires are Integers (never Booleans), the others Strings (not Tokens).
        valid_int = kind is int and type(value) is int and value >= 0
        valid = valid_int or (kind is str and isinstance(value, str))
        if not valid or not isinstance(value, int | str):
            raise error(f"signature parameter {name!r} is unknown or has the wrong type")
        out[name] = value
    return out


@dataclass(frozen=True)
class VerificationPolicy:
    """What a verifier demands of a signature. Defaults fail closed."""

    #: Identifiers that must be covered: ``"@method"``, ``'"@query-param";name="id"'``, ...
    required: tuple[str, ...] = ()
    #: Fields that must be covered whenever the message has them (FAPI 2.0: ``dpop``).
    required_if_present: tuple[str, ...] = ()
    #: A message with a body must cover ``content-digest``; a covered one is always checked.
    content_digest: bool = True
    #: Only signatures with this ``tag`` are considered (§2.3).
    tag: str | None = None
    #: Only the signature with this label is considered (labels are not signed: prefer tag).
    label: str | None = None
    #: ``first``: verify the first matching signature only; ``any``: try up to
    #: ``max_candidates`` of them, one verification each.
    select: Literal["first", "any"] = "first"
    max_candidates: int = 4
    #: Seconds after ``created`` a signature is accepted; ``None``: no limit.
    max_age: float | None = 300.0
    clock_skew: float = 5.0
    require_created: bool = True
    require_expires: bool = False
    require_nonce: bool = False
    require_keyid: bool = False
    #: Accepted algorithms; either name of a primitive accepts both.
    algorithms: frozenset[str] = DEFAULT_ALGORITHMS
    #: The label used in ``Accept-Signature`` when ``label`` is not set.
    accept_label: str = "sig1"
    _required: tuple[sfv.Item, ...] = field(init=False, repr=False, compare=False)
    #: One name per accepted primitive (the RFC 9421 one when there is one), sorted.
    primitives: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        unknown = set(self.algorithms) - set(ALGORITHMS)
        if unknown or not self.algorithms:
            raise ConfigurationError(f"unknown or no signature algorithms: {sorted(unknown)}")
        if self.select not in ("first", "any") or self.max_candidates < 1:
            raise ConfigurationError("select must be 'first' or 'any'")
        try:
            required = tuple(identifier(text) for text in self.required)
            for name in self.required_if_present:
                identifier(name)
        except APISecError as exc:
            raise ConfigurationError(f"bad component identifier: {exc.description}") from exc
        object.__setattr__(self, "required", tuple(self.required))
        object.__setattr__(self, "required_if_present", tuple(self.required_if_present))
        algorithms = equivalents(frozenset(self.algorithms))
        names = {preferred(equivalents({name}) & algorithms) for name in algorithms}
        object.__setattr__(self, "algorithms", algorithms)
        object.__setattr__(self, "primitives", tuple(sorted(names)))
        object.__setattr__(self, "_required", required)
        try:
            self.accept_signature()
        except ValueError as exc:
            raise ConfigurationError(f"cannot express this policy: {exc}") from exc

    def replace(self, **changes: Any) -> VerificationPolicy:
        return dataclasses.replace(self, **changes)

    def accept_signature(self, message: Message | None = None) -> str:
        """§5.1 ``Accept-Signature`` value asking for a signature this policy accepts."""
        items = list(self._required)
        for name in self._conditional(message) if message is not None else ():
            if not covers_field(items, name):
                items.append(sfv.Item(name))
        params: dict[str, sfv.BareItem] = {}
        if self.require_created or self.max_age is not None:
            params["created"] = True
        if self.require_expires:
            params["expires"] = True
        if self.tag is not None:
            params["tag"] = self.tag
        inner = sfv.InnerList(tuple(items), params)
        return sfv.serialize_dictionary({self.label or self.accept_label: inner})

    def selects(self, label: str, member: sfv.Member) -> bool:
        """Is this ``Signature-Input`` member one the policy looks at?"""
        if self.label is not None and label != self.label:
            return False
        return self.tag is None or member.params.get("tag") == self.tag

    def check(self, sig: SignatureInput, message: Message, now: float) -> None:
        """Everything that can be checked before any cryptography (§3.2 steps 3-7)."""
        self._check_times(sig, now)
        if self.tag is not None and sig.tag != self.tag:
            raise SignatureError(
                f"the signature tag is not {self.tag!r}", code="signature.no_match"
            )
        if self.require_nonce and sig.nonce is None:
            raise SignatureError("the signature has no nonce", code="signature.nonce_missing")
        if self.require_keyid and sig.keyid is None:
            raise SignatureError("the signature has no keyid", code="signature.keyid_missing")
        if sig.alg is not None and sig.alg not in self.algorithms:
            raise SignatureError(
                f"algorithm {sig.alg[:32]!r} is not accepted", code="signature.alg_not_allowed"
            )
        have = {identity(item) for item in sig.covered}
        missing = [serialize(item) for item in self._required if identity(item) not in have]
        missing += [
            serialize(sfv.Item(name))
            for name in self._conditional(message)
            if not covers_field(sig.covered, name)
        ]
        if missing:
            raise SignatureError(
                f"the signature does not cover {' '.join(missing)}",
                code="signature.component_missing",
            )

    def _check_times(self, sig: SignatureInput, now: float) -> None:
        created, expires, skew = sig.created, sig.expires, self.clock_skew
        if created is None:
            if self.require_created or self.max_age is not None:
                raise SignatureError("the signature has no created time", code="signature.expired")
        elif created > now + skew:  # §3.2.1: a signature from the future is not trusted
            raise SignatureError(
                "the signature was created in the future", code="signature.expired"
            )
        elif self.max_age is not None and now - created > self.max_age + skew:
            raise SignatureError(
                f"the signature is older than {self.max_age:g} seconds", code="signature.expired"
            )
        if expires is None:
            if self.require_expires:
                raise SignatureError("the signature has no expires time", code="signature.expired")
        elif expires < now - skew:  # §3.2 step 7: an expired signature MUST NOT verify
            raise SignatureError("the signature has expired", code="signature.expired")

    def _conditional(self, message: Message) -> list[str]:
        """Fields this message must have covered because of what it carries."""
        names = [name for name in self.required_if_present if name in message.headers]
        if self.content_digest and len(message.body):
            names.append("content-digest")
        return names
