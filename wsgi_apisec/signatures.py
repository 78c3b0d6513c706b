"""The shared shape of every message-signature mechanism, and the two entry points.

A *mechanism* (detached JWS, RFC 9421, the Beckn-style G2P Connect header) knows how to read,
verify and produce one kind of signature. A *profile* (:mod:`wsgi_apisec.profiles`) is data
that picks a mechanism and sets its knobs. :class:`RequestVerifier` and :class:`ResponseSigner`
tie a profile to keys, a replay store and a clock; the middleware, the Flask decorators and the
client all use them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from .errors import APISecError, ReplayDetected
from .jws import JWSPolicy
from .keys import PrivateKey, PublicKey
from .message import Message
from .resolvers import KeyResolver

if TYPE_CHECKING:
    from .replay import ReplayStore

Clock = Callable[[], float]


@dataclass(frozen=True)
class SignatureResult:
    """What was verified, and exactly what the signature covered."""

    profile: str
    alg: str
    kid: str | None
    key: PublicKey = field(repr=False)
    #: Whose key it was (participant / sender id), when the profile looks keys up per party.
    owner: str | None = None
    #: What the signature covered: ``("body",)``, ``("path_query",)`` or RFC 9421 components.
    covered: tuple[str, ...] = ()
    created: int | None = None
    #: The raw signature bytes (replay detection keys on a digest of them).
    signature: bytes = field(default=b"", repr=False)
    #: Header / signature parameters as received.
    params: Mapping[str, Any] = field(default_factory=dict)
    label: str | None = None


KeyOwner = Callable[[Message], str | None]
HeaderCheck = Callable[[Mapping[str, Any], Message, float], None]
ReplayRule = Callable[[SignatureResult, Message], tuple[str, float] | None]
Envelope = Callable[[APISecError], Mapping[str, Any]]
#: Signs one message with what a mechanism prepared for one profile and key.
PreparedSign = Callable[[Message, float], list[tuple[str, str]]]


@dataclass(frozen=True)
class Profile:
    """Everything that makes one network's signatures differ from another's."""

    name: str
    mechanism: Mechanism
    #: Header fields the signature is read from, in order of preference.
    header_names: tuple[str, ...]
    #: The header field our own signatures are sent in.
    emit_header: str
    algorithms: frozenset[str]
    jws_policy: JWSPolicy | None = None
    #: What a detached JWS signs: the raw body, or canonical JSON of the parsed body.
    payload: Literal["raw", "canonical_json"] = "raw"
    #: What is signed when a request has no body.
    bodiless: Literal["empty", "path_query"] = "empty"
    #: Who signed: a participant / sender id taken from the (verified) request context.
    key_owner: KeyOwner | None = None
    #: Whether the signature's ``kid`` selects among the signer's keys (OCEN: it does not).
    match_kid: bool = True
    header_check: HeaderCheck | None = None
    #: Header parameter holding the signing time, when the profile has one.
    created_param: str | None = None
    replay: ReplayRule | None = None
    #: Response signing.
    sign_alg: str | None = None
    sign_b64: bool = True
    sign_b64_in_crit: bool = True
    sign_crit: tuple[str, ...] = ()
    sign_header: Callable[[Message, float], Mapping[str, Any]] | None = None
    #: Error body in the network's own shape; ``None`` means RFC 9457 problem JSON.
    envelope: Envelope | None = None
    #: Free-form settings a mechanism reads (RFC 9421 policy, G2P options, ...).
    options: Mapping[str, Any] = field(default_factory=dict)

    def replace(self, **changes: Any) -> Profile:
        return dataclasses.replace(self, **changes)


class Mechanism(Protocol):
    """One way of carrying a signature in an HTTP message."""

    def verify(
        self, profile: Profile, message: Message, resolver: KeyResolver, now: float
    ) -> SignatureResult: ...

    def sign(
        self, profile: Profile, message: Message, key: PrivateKey, now: float
    ) -> list[tuple[str, str]]:
        """Header fields to add to ``message`` (a response, or a request for clients)."""
        ...


class RequestVerifier:
    """Verify incoming messages under one profile."""

    def __init__(
        self,
        profile: Profile,
        resolver: KeyResolver,
        *,
        replay_store: ReplayStore | None = None,
        clock: Clock = time.time,
    ) -> None:
        self.profile = profile
        self.resolver = resolver
        self.replay_store = replay_store
        self.clock = clock

    def verify(self, message: Message) -> SignatureResult:
        now = self.clock()
        result = self.profile.mechanism.verify(self.profile, message, self.resolver, now)
        self._check_replay(result, message)
        return result

    def _check_replay(self, result: SignatureResult, message: Message) -> None:
        rule = self.profile.replay
        if rule is None or self.replay_store is None:
            return
        found = rule(result, message)
        if found is None:
            return
        key, ttl = found
        digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
        if not self.replay_store.add(f"{self.profile.name}:{digest}", ttl):
            raise ReplayDetected("this signed message was already received")


class ResponseSigner:
    """Sign outgoing messages under one profile with one key.

    A mechanism may offer ``prepare(profile, key)``: a :data:`PreparedSign` that does once
    what is the same for every message (a detached JWS header without per-message members).
    Whatever cannot be prepared is done per message, failing there as it would anyway."""

    def __init__(self, profile: Profile, key: PrivateKey, *, clock: Clock = time.time) -> None:
        self.profile = profile
        self.key = key
        self.clock = clock
        prepare = getattr(profile.mechanism, "prepare", None)
        try:
            self._prepared: PreparedSign | None = prepare(profile, key) if prepare else None
        except APISecError:
            self._prepared = None  # the same error is raised by sign(), for each message

    def sign(self, message: Message) -> list[tuple[str, str]]:
        if self._prepared is not None:
            return self._prepared(message, self.clock())
        return self.profile.mechanism.sign(self.profile, message, self.key, self.clock())
