"""Whose key verifies a message, per profile and direction: a request's signer is named by
the profile's rule (OCEN: the verified token's ``participantId``; OpenG2P: the body's
``sender_id``), a response's by the party the verifier expects (``EXPECTED_SIGNER``), so
the same profile verifies both without being rewritten."""

from __future__ import annotations

import json
from typing import Any

import pytest

from wsgi_apisec import profiles
from wsgi_apisec.errors import APISecError, InvalidRequest, UnknownKey
from wsgi_apisec.keys import PrivateKey
from wsgi_apisec.message import Body, Headers, Message
from wsgi_apisec.resolvers import StaticKeyResolver
from wsgi_apisec.signatures import Profile, RequestVerifier, ResponseSigner
from wsgi_apisec.tokens import AccessToken

LENDER, AGENT = "lender-1", "lsp-1"


@pytest.fixture(scope="module")
def keys() -> dict[str, PrivateKey]:
    return {party: PrivateKey.generate("RS256", kid=party) for party in (LENDER, AGENT)}


@pytest.fixture(scope="module")
def owned(keys: dict[str, PrivateKey]) -> StaticKeyResolver:
    """A registry double: each party's own key, and nothing for anybody else."""
    return StaticKeyResolver(owners={p: [k.public_key()] for p, k in keys.items()})


def token(participant: str) -> AccessToken:
    claims = {"participantId": participant, "sub": participant}
    return AccessToken("t", claims, "https://as.test", participant, participant, frozenset())


def signed(profile: Profile, key: PrivateKey, body: Any, **fields: Any) -> Message:
    """A message (a response when ``status`` is given) signed by ``key``."""
    unsigned = Message(method="POST", target_uri="https://lender.test/loans", **fields)
    unsigned.body = Body(json.dumps(body).encode())
    headers = ResponseSigner(profile.replace(replay=None), key).sign(unsigned)
    message = Message(
        method="POST", target_uri="https://lender.test/loans", headers=Headers(headers), **fields
    )
    message.body = Body(json.dumps(body).encode())
    return message


def verify(profile: Profile, resolver: StaticKeyResolver, message: Message) -> str | None:
    return RequestVerifier(profile.replace(replay=None), resolver).verify(message).owner


# --- OCEN -------------------------------------------------------------------------------------


def test_ocen_request_signer_is_the_verified_tokens_participant(
    keys: dict[str, PrivateKey], owned: StaticKeyResolver
) -> None:
    message = signed(profiles.OCEN, keys[AGENT], {"a": 1})
    message.context["token"] = token(AGENT)
    assert verify(profiles.OCEN, owned, message) == AGENT


def test_ocen_request_without_a_verified_token_is_400_token_missing(
    keys: dict[str, PrivateKey], owned: StaticKeyResolver
) -> None:
    message = signed(profiles.OCEN, keys[AGENT], {"a": 1})
    # The expected signer is for responses: it cannot stand in for the caller's token.
    message.context[profiles.EXPECTED_SIGNER] = AGENT
    with pytest.raises(InvalidRequest) as caught:
        verify(profiles.OCEN, owned, message)
    assert (caught.value.status, caught.value.code) == (400, "token.missing")


def test_ocen_response_signer_is_the_expected_party(
    keys: dict[str, PrivateKey], owned: StaticKeyResolver
) -> None:
    response = signed(profiles.OCEN, keys[LENDER], {"ok": True}, status=201)
    response.context[profiles.EXPECTED_SIGNER] = LENDER
    assert verify(profiles.OCEN, owned, response) == LENDER


def test_ocen_response_ignores_a_token_in_its_context(
    keys: dict[str, PrivateKey], owned: StaticKeyResolver
) -> None:
    """The token names the caller, never the server that answered."""
    response = signed(profiles.OCEN, keys[LENDER], {"ok": True}, status=201)
    response.context |= {"token": token(AGENT), profiles.EXPECTED_SIGNER: LENDER}
    assert verify(profiles.OCEN, owned, response) == LENDER


def test_ocen_response_by_another_party_than_expected_is_401(
    keys: dict[str, PrivateKey], owned: StaticKeyResolver
) -> None:
    response = signed(profiles.OCEN, keys[AGENT], {"ok": True}, status=200)
    response.context[profiles.EXPECTED_SIGNER] = LENDER
    with pytest.raises(APISecError) as caught:
        verify(profiles.OCEN, owned, response)
    assert (caught.value.status, caught.value.code) == (401, "signature.invalid")


def test_ocen_response_with_no_expected_party_asks_without_an_owner(
    keys: dict[str, PrivateKey], owned: StaticKeyResolver
) -> None:
    response = signed(profiles.OCEN, keys[LENDER], {"ok": True}, status=200)
    # A per-party source cannot answer "nobody in particular": 401, not a 400 about tokens.
    with pytest.raises(UnknownKey) as caught:
        verify(profiles.OCEN, owned, response)
    assert (caught.value.status, caught.value.code) == (401, "signature.unknown_key")
    # One fixed key needs no owner.
    fixed = StaticKeyResolver([keys[LENDER].public_key()])
    assert verify(profiles.OCEN, fixed, response) is None


# --- OpenG2P: the body names the sender of a request only ----------------------------------------


def test_openg2p_request_signer_is_the_bodys_sender_and_response_signer_the_expected(
    keys: dict[str, PrivateKey], owned: StaticKeyResolver
) -> None:
    envelope = {"header": {"sender_id": AGENT, "message_id": "m1"}, "message": {}}
    assert verify(profiles.OPENG2P, owned, signed(profiles.OPENG2P, keys[AGENT], envelope)) == AGENT
    # An answer that repeats the caller's header is still the lender's, as the client expects.
    response = signed(profiles.OPENG2P, keys[LENDER], envelope, status=200)
    response.context[profiles.EXPECTED_SIGNER] = LENDER
    assert verify(profiles.OPENG2P, owned, response) == LENDER


def test_per_direction_rules_are_data() -> None:
    rule = profiles.per_direction(lambda m: "caller", lambda m: "server")
    assert (rule(Message()), rule(Message(status=200))) == ("caller", "server")
    assert profiles.per_direction(None)(Message()) is None
    named = Message(status=200, context={profiles.EXPECTED_SIGNER: LENDER})
    assert profiles.per_direction(None)(named) == LENDER
    assert profiles.expected_signer(Message(status=200, context={"expected_signer": 7})) is None
