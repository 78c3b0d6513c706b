"""Whole requests through ``TokenMiddleware`` + ``SignatureMiddleware`` (the stack of
``fuzz/stack.py``): every good request for every route is accepted with its body intact;
then valid requests mutated, and requests made up from nothing, keep every promise of
``fuzz.stack.check``: nothing escapes, never a 5xx (but a 503 when a key source is down),
each refusal a 4xx with a JSON body (and a challenge when the token layer refused), and an
accepted body reaches the app byte for byte. Changed bodies and tokens are always refused.
"""

from __future__ import annotations

import dataclasses
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fuzz.fixtures import HOST, RawRequest, expand
from fuzz.known import is_known
from fuzz.stack import CHUNKED, LENIENT, OUTAGE, TLS_CERT, TRUSTED, Outcome, Stack, check
from fuzz.targets.wsgi import Case, signed_cases, token_cases

SETTINGS = settings(
    max_examples=200, deadline=None, suppress_health_check=list(HealthCheck), database=None
)
WIDE = settings(SETTINGS, max_examples=400)
STACKS = (Stack(), Stack(lenient=True))
CASES = [*signed_cases(), *token_cases()]
GOOD = [case for case in CASES if case.accepted]
SIGNED_WITH_BODY = [c for c in signed_cases() if c.accepted and c.raw.body]
TOKEN_HEADERS = ("authorization", "dpop")


def run(raw: RawRequest, flags: int) -> Outcome | None:
    """The checked outcome; ``None`` for a crash already listed in ``fuzz/known.py``."""
    try:
        outcome = STACKS[bool(flags & LENIENT)].run(expand(raw), flags)
    except Exception as exc:
        if is_known(exc):
            return None
        raise
    check(outcome)
    return outcome


# --- the positive cases first ------------------------------------------------------------------


@pytest.mark.parametrize("case", GOOD, ids=[case.name for case in GOOD])
def test_good_request_is_accepted_with_its_body(case: Case) -> None:
    outcome = run(case.raw, case.flags)
    assert outcome is not None and outcome.app_ran and outcome.status == 200
    assert outcome.app_body == case.raw.body[: len(outcome.expected_body)] == outcome.expected_body
    if case in signed_cases() and not case.name.startswith("g2p"):
        # Signed routes sign the answer (G2P's rule does not).
        names = {"signature", "x-jws-signature"}
        assert names & outcome.headers.keys(), f"unsigned response: {outcome.headers}"


@pytest.mark.parametrize("case", [c for c in CASES if not c.accepted], ids=lambda c: c.name)
def test_near_miss_is_refused_cleanly(case: Case) -> None:
    outcome = run(case.raw, case.flags)
    assert outcome is None or (not outcome.app_ran and 400 <= outcome.status < 600)
    if outcome is not None and case.flags & OUTAGE:
        assert (outcome.status, json.loads(outcome.body)["code"]) == (503, "keys.unavailable")


# --- valid, then mutated -------------------------------------------------------------------------

flags = st.integers(0, 31)
text = st.text(st.characters(min_codepoint=0, max_codepoint=255), max_size=60)


@st.composite
def mutated(draw: st.DrawFn) -> tuple[RawRequest, int]:
    case = draw(st.sampled_from(CASES))
    raw, flag = case.raw, case.flags
    for _ in range(draw(st.integers(1, 3))):
        raw, flag = draw(st.sampled_from(MUTATIONS))(draw, raw, flag)
    return raw, flag


def _flip_header(draw: st.DrawFn, raw: RawRequest, flag: int) -> tuple[RawRequest, int]:
    if not raw.headers:
        return raw, flag
    i = draw(st.integers(0, len(raw.headers) - 1))
    name, value = raw.headers[i]
    at = draw(st.integers(0, max(len(value) - 1, 0)))
    new = value[:at] + draw(text) + value[at + 1 :]
    headers = (*raw.headers[:i], (name, new), *raw.headers[i + 1 :])
    return dataclasses.replace(raw, headers=headers), flag


def _drop_or_repeat_header(draw: st.DrawFn, raw: RawRequest, flag: int) -> tuple[RawRequest, int]:
    if not raw.headers:
        return raw, flag
    i = draw(st.integers(0, len(raw.headers) - 1))
    repeat = (raw.headers[i],) if draw(st.booleans()) else ()
    headers = (*raw.headers[:i], *repeat, *raw.headers[i + 1 :])
    return dataclasses.replace(raw, headers=headers), flag


def _add_header(draw: st.DrawFn, raw: RawRequest, flag: int) -> tuple[RawRequest, int]:
    names = [
        "Authorization",
        "DPoP",
        "Signature",
        "Signature-Input",
        "Content-Digest",
        "Client-Cert",
        "X-SSL-Client-Cert",
        "X-Forwarded-Client-Cert",
        "x-jws-signature",
        "Content-Length",
        "Transfer-Encoding",
        "Content-Type",
        "Host",
    ]
    header = (draw(st.sampled_from(names)), draw(text))
    return dataclasses.replace(raw, headers=(*raw.headers, header)), flag


def _body(draw: st.DrawFn, raw: RawRequest, flag: int) -> tuple[RawRequest, int]:
    return dataclasses.replace(raw, body=draw(st.binary(max_size=300))), flag


def _line(draw: st.DrawFn, raw: RawRequest, flag: int) -> tuple[RawRequest, int]:
    method = draw(st.sampled_from([raw.method, raw.method.lower(), "GET", "PATCH", "HEAD"]))
    target = draw(
        st.sampled_from(
            [
                raw.target,
                raw.target.upper(),
                raw.target + "/",
                raw.target + "?a=1",
                "/" + raw.target,
                "/%2e%2e" + raw.target,
            ]
        )
    )
    return dataclasses.replace(raw, method=method, target=target), flag


def _flags(draw: st.DrawFn, raw: RawRequest, flag: int) -> tuple[RawRequest, int]:
    return raw, flag ^ draw(st.sampled_from([CHUNKED, TRUSTED, OUTAGE, LENIENT, TLS_CERT]))


MUTATIONS = [_flip_header, _drop_or_repeat_header, _add_header, _body, _line, _flags]


@WIDE
@given(mutated())
def test_mutated_valid_requests_keep_every_promise(request: tuple[RawRequest, int]) -> None:
    run(*request)


@SETTINGS
@given(st.sampled_from(SIGNED_WITH_BODY), st.binary(max_size=200), st.integers(0, 31))
def test_a_changed_body_is_never_accepted_on_a_signed_route(
    case: Case, body: bytes, flag: int
) -> None:
    if body == case.raw.body:
        return
    outcome = run(dataclasses.replace(case.raw, body=body), case.flags | (flag & ~OUTAGE))
    assert outcome is None or (not outcome.app_ran and outcome.status in (400, 401, 413))


@SETTINGS
@given(
    st.sampled_from(
        [c for c in GOOD if "authorization" in dict((n.lower(), v) for n, v in c.raw.headers)]
    ),
    st.data(),
)
def test_a_changed_token_is_always_refused(case: Case, data: st.DataObject) -> None:
    headers = list(case.raw.headers)
    i = next(i for i, (n, _) in enumerate(headers) if n.lower() == "authorization")
    scheme, _, token = headers[i][1].partition(" ")
    if token.startswith("!jwt:"):
        return  # a macro: any change is signed again, so it may well be valid
    at = data.draw(st.integers(0, len(token) - 1))
    new = data.draw(st.sampled_from("ABCxyz019-_.~+/=").filter(lambda c: c != token[at]))
    headers[i] = ("Authorization", f"{scheme} {token[:at]}{new}{token[at + 1 :]}")
    outcome = run(dataclasses.replace(case.raw, headers=tuple(headers)), case.flags)
    assert outcome is not None and not outcome.app_ran
    assert outcome.status in (400, 401) and "www-authenticate" in outcome.headers


# --- made up from nothing ------------------------------------------------------------------------

methods = st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "post", "X"])
prefixes = st.sampled_from(
    [
        "/fapi",
        "/sig",
        "/g2p",
        "/ocen",
        "/jws",
        "/ukob",
        "/mtls",
        "/dpop",
        "/public",
        "/accounts",
        "/health",
        "/",
        "",
    ]
)
header_names = st.sampled_from(
    [
        "Authorization",
        "DPoP",
        "Signature",
        "Signature-Input",
        "Content-Digest",
        "Client-Cert",
        "X-SSL-Client-Cert",
        "X-Forwarded-Client-Cert",
        "x-jws-signature",
        "Content-Type",
        "Content-Length",
        "Transfer-Encoding",
        "Host",
        "Want-Content-Digest",
    ]
) | st.text("abcxyz-_ABC", min_size=1, max_size=8)
header_values = text | st.sampled_from(
    [
        "Bearer ",
        "DPoP a.b.c",
        "Bearer a.b.c",
        "sig1=()",
        'sig1=("@method");created=1',
        "sig1=:AAAA:",
        "sha-256=:AAAA:",
        ":AAAA:",
        "-----BEGIN%20CERTIFICATE-----",
        'Cert="x"',
        "e30..AA",
        "chunked",
        "application/x-www-form-urlencoded",
        HOST,
        "0",
        "99999999999",
    ]
)


@WIDE
@given(
    methods,
    prefixes,
    text,
    st.lists(st.tuples(header_names, header_values), max_size=6),
    st.binary(max_size=200),
    flags,
)
def test_made_up_requests_keep_every_promise(
    method: str, prefix: str, rest: str, headers: list[tuple[str, str]], body: bytes, flag: int
) -> None:
    target = prefix + "/" + rest.replace("\n", "").replace(" ", "")
    run(RawRequest(method, target, (("Host", HOST), *headers), body), flag)
