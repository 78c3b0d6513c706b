"""RFC 6750 transport (§2), challenges (§3), RFC 9457 bodies and scope checks."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wsgi_apisec.bearer import challenge, extract_token, problem_body, require_scopes
from wsgi_apisec.encoding import is_b64token
from wsgi_apisec.errors import (
    APISecError,
    InsufficientScope,
    InvalidDPoPProof,
    InvalidRequest,
    InvalidToken,
    KeySourceError,
    MissingCredentials,
    UseDPoPNonce,
)
from wsgi_apisec.message import Body, Headers, Message
from wsgi_apisec.tokens import AccessToken

URL = "https://api.example.com/resource"


def request(
    *headers: tuple[str, str], method: str = "GET", target: str = URL, body: bytes = b""
) -> Message:
    return Message(method, target, Headers(list(headers)), Body(body))


def form(
    body: bytes, method: str = "POST", ctype: str = "application/x-www-form-urlencoded"
) -> Message:
    return request(("Content-Type", ctype), method=method, body=body)


# --- §2.1 Authorization header ------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Bearer mF_9.B5f-4.1JqM", ("Bearer", "mF_9.B5f-4.1JqM")),
        ("bearer abc", ("Bearer", "abc")),
        ("BEARER abc", ("Bearer", "abc")),
        ("Bearer   abc", ("Bearer", "abc")),
        ("Bearer abc+/~==", ("Bearer", "abc+/~==")),
        (
            "DPoP Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU",
            ("DPoP", "Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"),
        ),
        ("dpop abc", ("DPoP", "abc")),
    ],
    ids=[
        "rfc6750-s2.1-example",
        "lower",
        "upper",
        "spaces",
        "token68-padding",
        "rfc9449-s7.1",
        "dpop-lower",
    ],
)
def test_authorization_header(value: str, expected: tuple[str, str]) -> None:
    assert extract_token(request(("Authorization", value))) == expected


@pytest.mark.parametrize("value", ["Basic dXNlcjpwYXNz", "Negotiate abc", "Bearerabc"])
def test_other_schemes_are_not_access_tokens(value: str) -> None:
    assert extract_token(request(("Authorization", value))) is None


@pytest.mark.parametrize(
    "value",
    [
        "Bearer",
        "Bearer ",
        "Bearer a b",
        "Bearer a,b",
        'Bearer "abc"',
        "Bearer a=b",
        "Bearer é",
        "DPoP a\tb",
    ],
    ids=["empty", "blank", "space", "comma", "quoted", "inner-equals", "non-ascii", "tab"],
)
def test_malformed_credentials_are_400(value: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        extract_token(request(("Authorization", value)))
    assert (info.value.status, info.value.error) == (400, "invalid_request")


def test_no_credentials() -> None:
    assert extract_token(request()) is None


# --- §2.2 form body -----------------------------------------------------------------------


def test_rfc6750_s2_2_form_body_when_allowed() -> None:
    message = form(b"access_token=mF_9.B5f-4.1JqM&other=1")
    assert extract_token(message, allow_form=True) == ("Bearer", "mF_9.B5f-4.1JqM")


def test_form_body_ignored_unless_allowed() -> None:
    assert extract_token(form(b"access_token=abc")) is None


@pytest.mark.parametrize(
    "message",
    [
        form(b"access_token=abc", method="GET"),
        form(b"access_token=abc", ctype="application/json"),
        form(b"access_token=abc", ctype="multipart/form-data; boundary=x"),
    ],
    ids=["GET", "json", "multipart"],
)
def test_rfc6750_s2_2_form_body_conditions(message: Message) -> None:
    assert extract_token(message, allow_form=True) is None


def test_form_content_type_with_charset() -> None:
    message = form(b"access_token=abc", ctype="Application/X-WWW-Form-Urlencoded; charset=utf-8")
    assert extract_token(message, allow_form=True) == ("Bearer", "abc")


@pytest.mark.parametrize(
    "body",
    [b"access_token=a&access_token=b", "access_token=abc&n=é".encode(), b"access_token=a%20b"],
    ids=["twice", "non-ascii", "bad-token"],
)
def test_bad_form_body_is_400(body: bytes) -> None:
    with pytest.raises(InvalidRequest):
        extract_token(form(body), allow_form=True)


def test_header_and_form_is_400() -> None:
    message = request(
        ("Authorization", "Bearer abc"),
        ("Content-Type", "application/x-www-form-urlencoded"),
        method="POST",
        body=b"access_token=xyz",
    )
    with pytest.raises(InvalidRequest):
        extract_token(message, allow_form=True)


# --- §2.3 query ---------------------------------------------------------------------------


def test_rfc6750_s2_3_query_when_allowed() -> None:
    message = request(target=URL + "?access_token=mF_9.B5f-4.1JqM&p=q")
    assert extract_token(message, allow_query=True) == ("Bearer", "mF_9.B5f-4.1JqM")


def test_other_query_parameters_are_fine() -> None:
    assert extract_token(request(target=URL + "?token=abc&access=1")) is None


def test_query_token_twice_is_400() -> None:
    message = request(target=URL + "?access_token=a&access_token=b")
    with pytest.raises(InvalidRequest):
        extract_token(message, allow_query=True)


# --- §3 challenges ----------------------------------------------------------------------------


def test_rfc6750_s3_missing_credentials() -> None:
    exc = MissingCredentials("an access token is required")
    assert challenge(exc, realm="example") == 'Bearer realm="example"'
    assert challenge(exc) == "Bearer"


def test_rfc6750_s3_invalid_token() -> None:
    exc = InvalidToken("The access token expired")
    assert challenge(exc, realm="example") == (
        'Bearer realm="example", error="invalid_token", '
        'error_description="The access token expired"'
    )


def test_rfc6750_s3_1_invalid_request() -> None:
    exc = InvalidRequest("the request carries more than one access token")
    assert challenge(exc) == (
        'Bearer error="invalid_request", '
        'error_description="the request carries more than one access token"'
    )


def test_insufficient_scope_challenge_from_require_scopes() -> None:
    token = AccessToken("t", {}, "iss", "sub", "cid", frozenset({"read"}))
    with pytest.raises(InsufficientScope) as info:
        require_scopes(token, scopes=["read", "write"])
    exc = info.value
    assert (exc.status, exc.error) == (403, "insufficient_scope")
    assert challenge(exc, realm="api") == (
        'Bearer realm="api", error="insufficient_scope", '
        'error_description="the token lacks the scope write", scope="read write"'
    )


def test_rfc9728_resource_metadata() -> None:
    value = challenge(
        MissingCredentials("x"),
        resource_metadata="https://api.example.com/.well-known/oauth-protected-resource",
    )
    assert value == (
        'Bearer resource_metadata="https://api.example.com/.well-known/oauth-protected-resource"'
    )


def test_rfc9449_s7_1_dpop_challenge_with_algs() -> None:
    exc = InvalidDPoPProof("the DPoP proof is invalid")
    assert challenge(exc, algs=["ES256", "EdDSA"]) == (
        'DPoP error="invalid_dpop_proof", error_description="the DPoP proof is invalid", '
        'algs="ES256 EdDSA"'
    )
    assert challenge(UseDPoPNonce("nonce required"), algs="ES256").startswith(
        'DPoP error="use_dpop_nonce"'
    )


def test_algs_only_on_dpop_challenges() -> None:
    assert "algs" not in challenge(InvalidToken("x"), algs="ES256")
    assert challenge(MissingCredentials("x"), scheme="DPoP", algs="ES256") == 'DPoP algs="ES256"'


@pytest.mark.parametrize(
    ("description", "expected"),
    [
        ('a "quoted" word', "a quoted word"),
        ("line\r\nbreak", "linebreak"),
        ("back\\slash", "backslash"),
        ("naïve ☃", "nave "),
        ("tab\there", "tabhere"),
    ],
    ids=["quote", "crlf", "backslash", "non-ascii", "tab"],
)
def test_rfc6750_s3_error_description_charset(description: str, expected: str) -> None:
    value = challenge(InvalidToken(description))
    assert value == f'Bearer error="invalid_token", error_description="{expected}"'


def test_every_value_sanitised() -> None:
    exc = InsufficientScope("x", challenge={"scope": 'a"\r\nb', "bad name": "v"})
    value = challenge(exc, realm='r"\n', resource_metadata='https://x/"y')
    assert value == (
        'Bearer realm="r", error="insufficient_scope", error_description="x", '
        'scope="ab", resource_metadata="https://x/y"'
    )


def test_long_description_truncated() -> None:
    value = challenge(InvalidToken("x" * 1000))
    assert value.count("x") == 200


# --- RFC 9457 bodies ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (
            InvalidToken("the token has expired"),
            {
                "type": "about:blank",
                "title": "Unauthorized",
                "status": 401,
                "detail": "the token has expired",
                "error": "invalid_token",
                "code": "token.invalid",
            },
        ),
        (
            MissingCredentials("an access token is required"),
            {
                "type": "about:blank",
                "title": "Unauthorized",
                "status": 401,
                "detail": "an access token is required",
                "code": "token.missing",
            },
        ),
        (
            InsufficientScope("needs write"),
            {
                "type": "about:blank",
                "title": "Forbidden",
                "status": 403,
                "detail": "needs write",
                "error": "insufficient_scope",
                "code": "token.insufficient_scope",
            },
        ),
        (
            KeySourceError("the key source is unavailable"),
            {
                "type": "about:blank",
                "title": "Service Unavailable",
                "status": 503,
                "detail": "the key source is unavailable",
                "error": "temporarily_unavailable",
                "code": "keys.unavailable",
            },
        ),
    ],
    ids=["invalid_token", "missing", "scope", "503"],
)
def test_rfc9457_problem_body(exc: APISecError, expected: dict[str, object]) -> None:
    assert json.loads(problem_body(exc)) == expected


def test_problem_body_odd_status() -> None:
    class Odd(APISecError):
        status = 499

    assert json.loads(problem_body(Odd("x")))["title"] == "Error"


# --- scopes ----------------------------------------------------------------------------------


def _token(*scopes: str) -> AccessToken:
    return AccessToken("t", {}, "iss", "sub", "cid", frozenset(scopes))


def test_require_scopes_passes() -> None:
    require_scopes(_token("a", "b"), scopes=["a", "b"])
    require_scopes(_token("x"), any_of=["fdx:accountbasic:read", "x"])
    require_scopes(_token("a"))


def test_require_any_of() -> None:
    with pytest.raises(InsufficientScope) as info:
        require_scopes(
            _token("other"), any_of=["fdx:accountbasic:read", "fdx:accountdetailed:read"]
        )
    assert info.value.challenge == {"scope": "fdx:accountbasic:read fdx:accountdetailed:read"}
    assert info.value.description.startswith("the token needs one of the scopes")


def test_require_scopes_and_any_of() -> None:
    with pytest.raises(InsufficientScope) as info:
        require_scopes(_token("b"), scopes=["a"], any_of=["b", "c"])
    assert info.value.challenge == {"scope": "a b c"}
    with pytest.raises(InsufficientScope):
        require_scopes(_token("a"), scopes=["a"], any_of=["b", "c"])


# --- RFC 6750 §2.1 b64token syntax --------------------------------------------------------

_B64TOKEN_GRAMMAR = re.compile(r"[A-Za-z0-9\-._~+/]+=*")


@given(st.text(alphabet=st.characters(max_codepoint=0x17F), max_size=40))
@settings(max_examples=600, deadline=None)
def test_rfc6750_s2_1_is_b64token_is_the_grammar(value: str) -> None:
    assert is_b64token(value) == (_B64TOKEN_GRAMMAR.fullmatch(value) is not None)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("a", True), ("a==", True), ("mF_9.B5f-4.1JqM", True), ("a~+/", True), ("", False),
     ("=", False), ("a=b", False), ("a b", False), ("a\x00", False), ("é", False)],
)  # fmt: skip
def test_rfc6750_s2_1_b64token_examples(value: str, expected: bool) -> None:
    assert is_b64token(value) is expected
