"""The known-header path of ``TokenValidator``: a token whose encoded header its issuer's
verified tokens already had skips decoding and checking that header again. It must give the
answer the full path gives for every token, remember only headers of tokens that verified,
stay bounded, and still ask the resolver for the key of every token (keys rotate)."""

from __future__ import annotations

import base64
import dataclasses
import json
import sys
import threading
from collections.abc import Callable
from typing import Any

import pytest

from flask_apisec.testing import TestIssuer
from tests.test_tokens import DROP, ISS, NOW, claims, kit, mint, signing_key
from wsgi_apisec import tokens
from wsgi_apisec.claims import ExpiringLRU
from wsgi_apisec.errors import InvalidToken
from wsgi_apisec.keys import KeySet, PrivateKey
from wsgi_apisec.resolvers import StaticKeyResolver
from wsgi_apisec.tokens import MAX_KNOWN_HEADERS, Issuer, TokenValidator


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _swap_payload(token: str, payload: dict[str, Any] | bytes) -> str:
    head, _, sig = token.split(".")
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return f"{head}.{_b64(body)}.{sig}"


def _flip_last(token: str) -> str:
    # Another canonical last character (RSA/PSS signatures leave 4 zero bits: A, Q, g, w).
    return token[:-1] + ("Q" if token[-1] != "Q" else "g")


def _outcome(validate: Callable[[], Any]) -> tuple[str, object]:
    try:
        token = validate()
    except InvalidToken as exc:
        return "refused", (exc.status, exc.error, exc.code)
    return "accepted", dict(token.claims)


def _non_canonical(token: str) -> str:
    # The same signature bytes, spelt with non-zero trailing bits (RFC 7515 §2 forbids it).
    return token[:-1] + {"A": "B", "Q": "R", "g": "h", "w": "x"}[token[-1]]


MUTATIONS: dict[str, Callable[[PrivateKey], str]] = {
    "another-valid-token": lambda key: mint(key, claims(jti="other")),
    "signature-changed": lambda key: _flip_last(mint(key)),
    "signature-not-canonical": lambda key: _non_canonical(mint(key)),
    "claims-changed-after-signing": lambda key: _swap_payload(mint(key), claims(scope="admin")),
    "expired": lambda key: mint(key, claims(exp=int(NOW) - 3600)),
    "not-for-this-audience": lambda key: mint(key, claims(aud="https://other.example")),
    "missing-required-claim": lambda key: mint(key, claims(client_id=DROP)),
    "claim-of-the-wrong-type": lambda key: mint(key, claims(sub=1)),
    "issuer-not-configured": lambda key: mint(key, claims(iss="https://evil.example")),
    "payload-not-json": lambda key: _swap_payload(mint(key), b"not json"),
    "payload-not-base64url": lambda key: mint(key).replace(".", ".*", 1),
    "four-segments": lambda key: mint(key) + ".AAAA",
    "leading-blank": lambda key: " " + mint(key),
    "trailing-tab": lambda key: mint(key) + "\t",
}


@pytest.mark.parametrize("mutation", list(MUTATIONS))
def test_known_header_path_answers_as_the_full_path(mutation: str) -> None:
    fresh, warm = kit(), kit()
    warm.validator.validate(mint(warm.key))  # its header is now known
    assert warm.validator._headers, "the known-header path is not in use"
    token = MUTATIONS[mutation](fresh.key)
    assert _outcome(lambda: warm.validator.validate(token)) == _outcome(
        lambda: fresh.validator.validate(token)
    )


def test_known_header_is_not_parsed_again(monkeypatch: pytest.MonkeyPatch) -> None:
    k = kit()
    k.validator.validate(mint(k.key))
    parsed: list[object] = []
    original = tokens.jws.parse_compact

    def counting(*args: Any, **kwargs: Any) -> Any:
        parsed.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(tokens.jws, "parse_compact", counting)
    assert k.validator.validate(mint(k.key, claims(jti="second"))).jti == "second"
    assert parsed == []


def test_tokens_that_do_not_verify_are_never_remembered() -> None:
    k = kit()
    forger = PrivateKey.generate("PS256", kid=k.key.kid)
    for jti in ("a", "b", "c"):
        with pytest.raises(InvalidToken) as info:
            k.validator.validate(mint(forger, claims(jti=jti)))
        assert info.value.code == "token.signature"
    assert k.validator._headers == {}


def test_the_key_is_resolved_for_every_token_with_a_known_header() -> None:
    k = kit()
    k.validator.validate(mint(k.key))
    k.validator.validate(mint(k.key, claims(jti="second")))
    assert len(k.resolver.queries) == 2
    # The issuer rotates its key away: a token with the very same header is refused.
    k.resolver.inner = StaticKeyResolver([PrivateKey.generate("PS256", kid="new").public_key()])
    with pytest.raises(InvalidToken) as info:
        k.validator.validate(mint(k.key, claims(jti="third")))
    assert (info.value.status, info.value.code) == (401, "token.key")


def test_known_headers_are_bounded() -> None:
    keys = [signing_key("EdDSA", f"k{n}") for n in range(MAX_KNOWN_HEADERS + 8)]
    issuer = Issuer(ISS, jwks=KeySet([k.public_key() for k in keys]), audience=claims()["aud"])
    validator = TokenValidator([issuer], clock=lambda: NOW)
    for key in keys:
        assert validator.validate(mint(key)).issuer == ISS
    assert len(validator._headers) == MAX_KNOWN_HEADERS
    assert validator.validate(mint(keys[0])).issuer == ISS  # pushed out: the full path


def test_built_token_has_every_field_the_class_declares() -> None:
    # AccessToken.built skips __init__: a field added to the class but not to the validator
    # would be missing. dataclasses.replace() re-runs __init__ with every field it reads.
    issuer = TestIssuer("ES256")
    validator = TokenValidator(Issuer(issuer.issuer, jwks=issuer.jwks, audience=issuer.audience))
    token = validator.validate(issuer.token("a b"))
    assert set(vars(token)) == {f.name for f in dataclasses.fields(token)}
    assert dataclasses.replace(token) == token


def test_time_window_from_claims_has_every_field() -> None:
    from wsgi_apisec.claims import TimeWindow

    window = TimeWindow.from_claims({"exp": 10, "iat": 1}, leeway=5.0, max_age=60.0)
    assert set(vars(window)) == {f.name for f in dataclasses.fields(window)}
    assert window == TimeWindow(10.0, None, 1.0, 5.0, 60.0)


def test_lru_reads_without_the_lock_stay_correct_under_threads() -> None:
    """``ExpiringLRU.get`` takes no lock: with writers evicting and replacing entries in
    other threads, a read returns the value put for that key or None, never raises, and the
    size bound holds."""
    lru: ExpiringLRU[int, int] = ExpiringLRU(8)
    errors: list[BaseException] = []
    stop = threading.Event()

    def writer(offset: int) -> None:
        n = 0
        while not stop.is_set():
            key = (n + offset) % 32
            lru.put(key, key * 10, expires=2.0 if n % 3 else 0.5)  # some expire at now=1
            n += 1

    def reader() -> None:
        try:
            for n in range(20_000):
                found = lru.get(n % 32, now=1.0)
                assert found is None or found == (n % 32) * 10
        except BaseException as exc:  # handed to the main thread
            errors.append(exc)

    writers = [threading.Thread(target=writer, args=(k,)) for k in (0, 7)]
    readers = [threading.Thread(target=reader) for _ in range(3)]
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible
    try:
        for t in writers + readers:
            t.start()
        for t in readers:
            t.join()
    finally:
        stop.set()
        for t in writers:
            t.join()
        sys.setswitchinterval(previous)
    assert errors == []
    assert len(lru) <= 8
