"""Properties of the RFC 9421 parsers: any input gives a result or an APISecError (never another
exception), failures are 400 or 401, and what we serialize parses back to the same thing."""

from __future__ import annotations

import dataclasses

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wsgi_apisec import sfv
from wsgi_apisec.errors import APISecError
from wsgi_apisec.httpsig import (
    VerificationPolicy,
    parse_signature_input,
    sign_message,
    verify_message,
)
from wsgi_apisec.httpsig_components import component_value, identifier, serialize
from wsgi_apisec.keys import PrivateKey
from wsgi_apisec.message import Body, Headers, Message
from wsgi_apisec.resolvers import StaticKeyResolver

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NOW = 1_700_000_000.0

#: Characters that matter to Structured Fields and to RFC 9421 identifiers, plus a few others.
SF_CHARS = st.sampled_from(list('()";=:,?*@-_.+/ \tabcsigkeyreqnamebtr0123456789%AZ\\\x7f\xe9'))
sf_text = st.text(SF_CHARS, max_size=80)
any_text = st.one_of(st.text(max_size=80), sf_text)

NAMES = [
    "@method",
    "@target-uri",
    "@authority",
    "@scheme",
    "@request-target",
    "@path",
    "@query",
    "@status",
    "content-type",
    "x-a",
    "content-digest",
]
identifiers = st.builds(
    sfv.Item,
    st.sampled_from(NAMES),
    st.dictionaries(st.sampled_from(["req", "sf", "bs"]), st.just(True), max_size=2),
)


@SETTINGS
@given(any_text)
def test_signature_input_parser_never_crashes(text: str) -> None:
    try:
        parsed = parse_signature_input(text)
    except APISecError as exc:
        assert exc.status in (400, 401)
        return
    for label, sig in parsed.items():
        assert sig.label == label
        # What parsed serializes, and parses back to the same covered components.
        again = parse_signature_input(f"{label}={sig.value}")[label]
        assert again.identifiers == sig.identifiers and dict(again.params) == dict(sig.params)


@SETTINGS
@given(any_text)
def test_identifier_parser_never_crashes(text: str) -> None:
    try:
        item = identifier(text)
    except APISecError as exc:
        assert exc.status in (400, 401)
        return
    assert identifier(serialize(item)) == item


@SETTINGS
@given(identifiers)
def test_identifiers_round_trip_or_fail_cleanly(item: sfv.Item) -> None:
    try:
        checked = identifier(item)
    except APISecError as exc:
        assert exc.status in (400, 401)
        return
    assert identifier(serialize(checked)).params == checked.params


@SETTINGS
@given(any_text, any_text)
def test_verifier_never_crashes_on_any_signature_fields(
    signature_input: str, signature: str
) -> None:
    headers = Headers([("Signature-Input", signature_input), ("Signature", signature)])
    message = Message("POST", "https://e.com/p?q=1", headers, Body(b"{}"))
    policy = VerificationPolicy(max_age=None, require_created=False, content_digest=False)
    try:
        verify_message(message, StaticKeyResolver([]), policy, NOW)
    except APISecError as exc:
        assert exc.status in (400, 401)
        assert "Accept-Signature" in exc.headers
    else:  # pragma: no cover - nothing can verify with no keys
        raise AssertionError("verified without a key")


@SETTINGS
@given(identifiers, st.text(max_size=40), st.text(max_size=40), st.integers(100, 599))
def test_component_values_never_crash(
    item: sfv.Item, uri_tail: str, header: str, status: int
) -> None:
    request = Message(
        "GET", "https://e.com/" + uri_tail, Headers([("X-A", header), ("Content-Type", header)])
    )
    response = Message(status=status, headers=Headers([("X-A", header)]), request=request)
    for message in (request, response):
        try:
            value = component_value(message, identifier(item))
        except APISecError as exc:
            assert exc.status in (400, 401)
        else:
            assert "\n" not in value and value.isascii()


KEY = PrivateKey.generate("ed25519", kid="k")


@SETTINGS
@given(st.binary(max_size=200), st.sampled_from(["@method", "@path", "@query", "@authority"]))
def test_signed_messages_verify_and_changed_bodies_do_not(body: bytes, component: str) -> None:
    message = Message("PUT", "https://e.com/a/b?c=d", Headers([("X-A", "1")]), Body(body))
    fields = sign_message(message, KEY, [component, "x-a", "content-digest"], now=NOW)
    signed = dataclasses.replace(message, headers=Headers([*message.headers.items(), *fields]))
    resolver = StaticKeyResolver([KEY.public_key()])
    assert verify_message(signed, resolver, VerificationPolicy(), NOW).alg == "ed25519"
    try:
        verify_message(
            dataclasses.replace(signed, body=Body(body + b"!")), resolver, VerificationPolicy(), NOW
        )
    except APISecError as exc:
        assert exc.code == "digest.invalid"
    else:
        raise AssertionError("a changed body verified")
