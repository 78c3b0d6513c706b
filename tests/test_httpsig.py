"""RFC 9421 pieces one by one: component values (§2.1, §2.2 examples), Signature-Input
checks, the verification policy with each rejection's exact error, sign/verify round trips for
every algorithm, Content-Digest (RFC 9530) and key lookup."""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from wsgi_apisec import sfv
from wsgi_apisec.errors import (
    APISecError,
    ConfigurationError,
    InvalidDigest,
    MalformedSignature,
    MissingSignature,
    SignatureError,
    UnknownKey,
)
from wsgi_apisec.fapi2 import ClientCertificateKeys, HTTPSignatures
from wsgi_apisec.httpsig import (
    VerificationPolicy,
    create_signature,
    parse_signature_input,
    sign_message,
    signature_headers,
    signing_algorithm,
    verify_message,
)
from wsgi_apisec.httpsig_components import component_value, identifier, signature_base
from wsgi_apisec.keys import PrivateKey
from wsgi_apisec.message import Body, Headers, Message
from wsgi_apisec.profiles import Profile
from wsgi_apisec.resolvers import KeyQuery, StaticKeyResolver

NOW = 1_700_000_000.0
URI = "https://www.example.com/path?param=value"


def value(message: Message, text: str) -> str:
    return component_value(message, identifier(text))


def request(
    uri: str = URI,
    method: str = "POST",
    headers: Iterable[tuple[str, str]] = (),
    body: bytes = b"",
) -> Message:
    return Message(method, uri, Headers(list(headers)), Body(body))


# --- §2.1 field components --------------------------------------------------------------------

RFC_2_1 = request(
    headers=[
        ("Host", "www.example.com"),
        ("Date", "Tue, 20 Apr 2021 02:07:56 GMT"),
        ("X-OWS-Header", "   Leading and trailing whitespace.   "),
        ("X-Obs-Fold-Header", "Obsolete\r\n    line folding."),
        ("Cache-Control", "max-age=60"),
        ("Cache-Control", "   must-revalidate"),
        ("Example-Dict", " a=1,    b=2;x=1;y=2,   c=(a   b   c)"),
        ("X-Empty-Header", ""),
    ]
)


@pytest.mark.parametrize(
    ("component", "expected"),
    [
        pytest.param('"host"', "www.example.com", id="RFC9421-2.1-host"),
        pytest.param("x-ows-header", "Leading and trailing whitespace.", id="RFC9421-2.1-ows"),
        pytest.param("x-obs-fold-header", "Obsolete line folding.", id="RFC9421-2.1-obs-fold"),
        pytest.param("cache-control", "max-age=60, must-revalidate", id="RFC9421-2.1-lines"),
        pytest.param("example-dict", "a=1,    b=2;x=1;y=2,   c=(a   b   c)", id="RFC9421-2.1-raw"),
        pytest.param("x-empty-header", "", id="RFC9421-2.1-empty"),
        pytest.param('"example-dict";key="a"', "1", id="RFC9421-2.1.2-a"),
        pytest.param('"example-dict";key="b"', "2;x=1;y=2", id="RFC9421-2.1.2-b"),
        pytest.param('"example-dict";key="c"', "(a b c)", id="RFC9421-2.1.2-c"),
        pytest.param(
            '"cache-control";bs', ":bWF4LWFnZT02MA==:, :bXVzdC1yZXZhbGlkYXRl:", id="RFC9421-2.1.3"
        ),
    ],
)
def test_field_component_value(component: str, expected: str) -> None:
    assert value(RFC_2_1, component) == expected


def test_empty_field_makes_a_base_line_with_a_trailing_space() -> None:
    """RFC 9421 §2.1: an empty field value still gets ``"name": `` in the base."""
    base = signature_base(RFC_2_1, [identifier("x-empty-header")], "()")
    assert base == b'"x-empty-header": \n"@signature-params": ()'


def test_bs_keeps_field_lines_apart() -> None:
    """RFC 9421 §2.1.3 example: two lines vs one line give different values."""
    two = request(
        headers=[("Example-Header", "value, with, lots"), ("Example-Header", "of, commas")]
    )
    one = request(headers=[("Example-Header", "value, with, lots, of, commas")])
    assert value(two, '"example-header";bs') == ":dmFsdWUsIHdpdGgsIGxvdHM=:, :b2YsIGNvbW1hcw==:"
    assert value(one, '"example-header";bs') == ":dmFsdWUsIHdpdGgsIGxvdHMsIG9mLCBjb21tYXM=:"


def test_sf_reserializes_a_known_structured_field() -> None:
    """RFC 9421 §2.1.1: ``;sf`` is the canonical serialization."""
    message = request(headers=[("Content-Digest", "sha-256=:AAAA:  ,   sha-512=:AAAA:")])
    assert value(message, '"content-digest";sf') == "sha-256=:AAAA:, sha-512=:AAAA:"


def test_sf_on_an_unknown_field_is_unsupported() -> None:
    with pytest.raises(SignatureError) as info:
        value(RFC_2_1, '"example-dict";sf')
    assert (info.value.status, info.value.code) == (401, "signature.unsupported")


def test_key_on_a_field_that_is_not_a_dictionary_is_malformed() -> None:
    message = request(headers=[("X-List", "(a b")])
    with pytest.raises(MalformedSignature):
        value(message, '"x-list";key="a"')


# --- §2.2 derived components ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("component", "uri", "expected"),
    [
        pytest.param("@method", URI, "POST", id="RFC9421-2.2.1"),
        pytest.param("@target-uri", URI, URI, id="RFC9421-2.2.2"),
        pytest.param(
            "@authority", "https://WWW.Example.com:443/x", "www.example.com", id="RFC9421-2.2.3"
        ),
        pytest.param(
            "@authority", "http://example.com:8080/x", "example.com:8080", id="RFC9421-2.2.3-port"
        ),
        pytest.param("@authority", "https://[::1]:443/", "[::1]", id="RFC9421-2.2.3-ipv6"),
        pytest.param("@scheme", "HTTP://example.com/", "http", id="RFC9421-2.2.4"),
        pytest.param("@request-target", URI, "/path?param=value", id="RFC9421-2.2.5"),
        pytest.param("@path", URI, "/path", id="RFC9421-2.2.6"),
        pytest.param("@path", "https://example.com", "/", id="RFC9421-2.2.6-empty"),
        pytest.param("@query", URI, "?param=value", id="RFC9421-2.2.7"),
        pytest.param(
            "@query", "https://example.com/p?queryString", "?queryString", id="RFC9421-2.2.7-bare"
        ),
        pytest.param("@query", "https://example.com/path", "?", id="RFC9421-2.2.7-none"),
    ],
)
def test_derived_component_value(component: str, uri: str, expected: str) -> None:
    assert value(request(uri), component) == expected


QUERY = (
    "https://example.com/parameters?var=this%20is%20a%20big%0Amultiline%20value"
    "&bar=with+plus+whitespace&fa%C3%A7ade%22%3A%20=something&baz=batman&qux="
)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        pytest.param("var", "this%20is%20a%20big%0Amultiline%20value", id="RFC9421-2.2.8-var"),
        pytest.param("bar", "with%20plus%20whitespace", id="RFC9421-2.2.8-plus"),
        pytest.param("fa%C3%A7ade%22%3A%20", "something", id="RFC9421-2.2.8-encoded-name"),
        pytest.param("baz", "batman", id="RFC9421-2.2.8-baz"),
        pytest.param("qux", "", id="RFC9421-2.2.8-empty"),
    ],
)
def test_query_param_value(name: str, expected: str) -> None:
    assert value(request(QUERY), f'"@query-param";name="{name}"') == expected


def test_repeated_query_param_cannot_be_covered() -> None:
    """RFC 9421 §2.2.8: a name that occurs more than once is an error."""
    with pytest.raises(SignatureError) as info:
        value(request("https://e.com/?a=1&a=2"), '"@query-param";name="a"')
    assert info.value.code == "signature.component_ambiguous"


def test_status_of_a_response() -> None:
    """RFC 9421 §2.2.9."""
    assert value(Message(status=200, request=request()), "@status") == "200"


@pytest.mark.parametrize(
    ("message", "component"),
    [
        pytest.param(request(), "@status", id="status-in-request"),
        pytest.param(Message(status=200, request=request()), "@method", id="method-in-response"),
        pytest.param(request(), '"@method";req', id="req-in-request"),
        pytest.param(request(), "content-type", id="absent-field"),
        pytest.param(request("https://e.com/?a=1"), '"@query-param";name="b"', id="absent-param"),
    ],
)
def test_component_the_message_does_not_have(message: Message, component: str) -> None:
    with pytest.raises(SignatureError) as info:
        value(message, component)
    assert (info.value.status, info.value.code) == (401, "signature.component_missing")


def test_req_takes_the_component_from_the_request() -> None:
    """RFC 9421 §2.4."""
    response = Message(status=503, request=request(headers=[("Content-Type", "text/plain")]))
    assert value(response, '"@authority";req') == "www.example.com"
    assert value(response, '"content-type";req') == "text/plain"


@pytest.mark.parametrize(
    "text",
    [
        pytest.param('"Content-Type"', id="uppercase"),
        pytest.param('"@signature-params"', id="signature-params"),
        pytest.param('"@query-param"', id="query-param-without-name"),
        pytest.param('"@method";sf', id="derived-with-field-param"),
        pytest.param('"x";bs;sf', id="bs-with-sf"),
        pytest.param('"x";foo', id="unknown-param"),
        pytest.param('"x";sf=?0', id="false-flag"),
        pytest.param('"x";key=a', id="token-key"),
        pytest.param('"x";name="y"', id="name-on-field"),
        pytest.param('"a b"', id="not-a-field-name"),
        pytest.param('""', id="empty"),
    ],
)
def test_malformed_identifier_is_400(text: str) -> None:
    with pytest.raises(MalformedSignature) as info:
        identifier(text)
    assert info.value.status == 400


def test_identifier_that_is_not_a_string_is_400() -> None:
    with pytest.raises(MalformedSignature):
        identifier(sfv.Item(1))
    with pytest.raises(MalformedSignature):
        parse_signature_input("sig1=(abc);created=1")  # a Token, not a String


@pytest.mark.parametrize("text", ['"x";tr', '"@unknown"'])
def test_unsupported_identifier_is_401(text: str) -> None:
    """Trailers (§2.1 ``tr``) never reach us; unknown derived components cannot be verified."""
    with pytest.raises(SignatureError) as info:
        identifier(text)
    assert (info.value.status, info.value.code) == (401, "signature.unsupported")


def test_duplicate_component_is_malformed() -> None:
    """RFC 9421 §2.5: each component once; parameter order does not make a new one."""
    items = [identifier('"x";sf;key="a"'), identifier('"x";key="a";sf')]
    with pytest.raises(MalformedSignature):
        signature_base(request(headers=[("X", "a=1")]), items, "()")


def test_non_ascii_value_must_be_covered_as_bytes() -> None:
    message = request(headers=[("X-Name", "caf\xe9")])
    with pytest.raises(MalformedSignature):
        value(message, "x-name")
    assert value(message, '"x-name";bs') == ":Y2Fm6Q==:"


# --- signing and verifying --------------------------------------------------------------------

ALGS = [
    "rsa-pss-sha512",
    "rsa-v1_5-sha256",
    "hmac-sha256",
    "ecdsa-p256-sha256",
    "ecdsa-p384-sha384",
    "ed25519",
    "PS256",
    "ES256",
    "EdDSA",
]


@pytest.fixture(scope="module")
def keys() -> dict[str, PrivateKey]:
    return {alg: PrivateKey.generate(alg, kid=f"k-{alg}") for alg in ALGS}


def resolver_for(*keys: PrivateKey) -> StaticKeyResolver:
    return StaticKeyResolver([key.public_key() for key in keys])


def signed(message: Message, key: PrivateKey, covered: list[str], **kwargs: Any) -> Message:
    kwargs.setdefault("now", NOW)
    fields = sign_message(message, key, covered, **kwargs)
    return dataclasses.replace(message, headers=Headers([*message.headers.items(), *fields]))


POLICY = VerificationPolicy(required=("@method", "@target-uri"))


@pytest.mark.parametrize("alg", ALGS)
def test_round_trip(keys: dict[str, PrivateKey], alg: str) -> None:
    message = signed(
        request(body=b'{"a":1}'), keys[alg], ["@method", "@target-uri", "content-digest"]
    )
    policy = POLICY.replace(algorithms=frozenset(ALGS))  # PS256 is not a default: FAPI 2.0's
    result = verify_message(message, resolver_for(keys[alg]), policy, NOW + 1)
    assert result.covered == ('"@method"', '"@target-uri"', '"content-digest"')
    assert result.kid == f"k-{alg}" and result.created == int(NOW) and result.label == "sig1"
    sent = parse_signature_input(message.headers.get("signature-input") or "")["sig1"]
    # §3.3.7: a JOSE algorithm is signalled by the key, never by alg.
    assert sent.alg == (None if alg in ("PS256",) else result.alg)
    assert result.alg in keys[alg].algorithms


def test_jose_alg_name_is_accepted_leniently(keys: dict[str, PrivateKey]) -> None:
    """§3.3.7 says JOSE names are not sent in alg; some signers do: accepted when allowed."""
    key = keys["ES256"]
    params: dict[str, int | str] = {"created": int(NOW), "alg": "ES256", "keyid": "k-ES256"}
    sig, value = create_signature(request(), key, ["@method", "@target-uri"], params, alg="ES256")
    message = request(headers=signature_headers(sig, value))
    assert verify_message(message, resolver_for(key), POLICY, NOW).alg == "ES256"
    fields = sign_message(request(), key, ["@method"], now=NOW, alg="ES256")
    assert 'alg="ecdsa-p256-sha256"' in fields[0][1]  # we send the RFC 9421 name


def test_unbound_rsa_key_without_alg_is_ambiguous() -> None:
    raw = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key = PrivateKey.from_key(raw, kid="rsa")
    with pytest.raises(ConfigurationError):
        signing_algorithm(key)
    message = signed(
        request(), key, ["@method", "@target-uri"], alg="rsa-pss-sha512", include_alg=False
    )
    with pytest.raises(SignatureError) as info:
        verify_message(message, resolver_for(key), POLICY, NOW)
    assert info.value.code == "signature.alg_ambiguous"
    with_alg = signed(request(), key, ["@method", "@target-uri"], alg="rsa-pss-sha512")
    assert verify_message(with_alg, resolver_for(key), POLICY, NOW).alg == "rsa-pss-sha512"


def test_alg_outside_the_policy_is_refused(keys: dict[str, PrivateKey]) -> None:
    message = signed(request(), keys["rsa-v1_5-sha256"], ["@method", "@target-uri"])
    policy = POLICY.replace(algorithms=frozenset({"ed25519"}))
    with pytest.raises(SignatureError) as info:
        verify_message(message, resolver_for(keys["rsa-v1_5-sha256"]), policy, NOW)
    assert info.value.code == "signature.alg_not_allowed"


def test_alg_the_key_does_not_allow_finds_no_key(keys: dict[str, PrivateKey]) -> None:
    """An Ed25519 signature claiming hmac-sha256 never reaches the HMAC code with that key."""
    message = signed(request(), keys["ed25519"], ["@method", "@target-uri"])
    line = (message.headers.get("signature-input") or "").replace('"ed25519"', '"hmac-sha256"')
    fields = [(n, line if n == "Signature-Input" else v) for n, v in message.headers.items()]
    with pytest.raises(UnknownKey):
        verify_message(
            dataclasses.replace(message, headers=Headers(fields)),
            resolver_for(keys["ed25519"]),
            POLICY,
            NOW,
        )


def test_unknown_keyid(keys: dict[str, PrivateKey]) -> None:
    message = signed(request(), keys["ed25519"], ["@method", "@target-uri"])
    with pytest.raises(UnknownKey) as info:
        verify_message(message, resolver_for(keys["ES256"]), POLICY, NOW)
    assert (info.value.status, info.value.code) == (401, "signature.unknown_key")


def test_wrong_key_does_not_verify(keys: dict[str, PrivateKey]) -> None:
    other = PrivateKey.generate("ed25519", kid="k-ed25519")
    message = signed(request(), other, ["@method", "@target-uri"])
    with pytest.raises(SignatureError) as info:
        verify_message(message, resolver_for(keys["ed25519"]), POLICY, NOW)
    assert info.value.code == "signature.invalid"


# --- policy -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def good(keys: dict[str, PrivateKey]) -> Message:
    covered = ["@method", "@target-uri", "content-digest"]
    return signed(request(body=b"{}"), keys["ed25519"], covered, tag="app", nonce="n-1")


@pytest.mark.parametrize(
    ("policy", "now", "code"),
    [
        pytest.param(POLICY, NOW + 306, "signature.expired", id="older-than-max-age"),
        pytest.param(POLICY, NOW - 6, "signature.expired", id="created-in-the-future"),
        pytest.param(
            POLICY.replace(require_expires=True), NOW, "signature.expired", id="no-expires"
        ),
        pytest.param(POLICY.replace(tag="other"), NOW, "signature.no_match", id="wrong-tag"),
        pytest.param(POLICY.replace(label="sig2"), NOW, "signature.no_match", id="wrong-label"),
        pytest.param(
            POLICY.replace(required=("@authority",)),
            NOW,
            "signature.component_missing",
            id="required-component",
        ),
        pytest.param(
            POLICY.replace(require_keyid=True, required=()), NOW, None, id="keyid-present"
        ),
        pytest.param(POLICY.replace(require_nonce=True), NOW, None, id="nonce-present"),
        pytest.param(POLICY.replace(max_age=None), NOW + 10**6, None, id="no-max-age"),
        pytest.param(POLICY, NOW + 305, None, id="max-age-plus-skew"),
    ],
)
def test_policy(
    keys: dict[str, PrivateKey],
    good: Message,
    policy: VerificationPolicy,
    now: float,
    code: str | None,
) -> None:
    resolver = resolver_for(keys["ed25519"])
    if code is None:
        assert verify_message(good, resolver, policy, now).params["nonce"] == "n-1"
        return
    with pytest.raises(SignatureError) as info:
        verify_message(good, resolver, policy, now)
    assert (info.value.status, info.value.code) == (401, code)
    assert "Accept-Signature" in info.value.headers


def test_nonce_and_keyid_can_be_required(keys: dict[str, PrivateKey]) -> None:
    anonymous = PrivateKey.generate("ed25519")  # no kid: no keyid parameter
    message = signed(request(), anonymous, ["@method", "@target-uri"])
    resolver = resolver_for(anonymous)
    assert verify_message(message, resolver, POLICY, NOW).kid is None
    for policy, code in [
        (POLICY.replace(require_nonce=True), "signature.nonce_missing"),
        (POLICY.replace(require_keyid=True), "signature.keyid_missing"),
    ]:
        with pytest.raises(SignatureError) as info:
            verify_message(message, resolver, policy, NOW)
        assert info.value.code == code


def test_expired_signature(keys: dict[str, PrivateKey]) -> None:
    message = signed(request(), keys["ed25519"], ["@method", "@target-uri"], expires_in=10)
    resolver = resolver_for(keys["ed25519"])
    assert verify_message(message, resolver, POLICY, NOW + 15).params["expires"] == NOW + 10
    with pytest.raises(SignatureError) as info:
        verify_message(message, resolver, POLICY, NOW + 16)
    assert info.value.code == "signature.expired"


def test_missing_created(keys: dict[str, PrivateKey]) -> None:
    message = signed(request(), keys["ed25519"], ["@method", "@target-uri"])
    line = (message.headers.get("signature-input") or "").replace(f";created={int(NOW)}", "")
    fields = [(n, line if n == "Signature-Input" else v) for n, v in message.headers.items()]
    message = dataclasses.replace(message, headers=Headers(fields))
    with pytest.raises(SignatureError) as info:
        verify_message(message, resolver_for(keys["ed25519"]), POLICY, NOW)
    assert info.value.code == "signature.expired"


def test_accept_signature_says_what_is_wanted(keys: dict[str, PrivateKey]) -> None:
    """RFC 9421 §5.1: the rejection carries an Accept-Signature request."""
    policy = VerificationPolicy(
        required=("@method", "@target-uri"), required_if_present=("dpop",), tag="t"
    )
    message = request(headers=[("DPoP", "x")], body=b"{}")
    with pytest.raises(MissingSignature) as info:
        verify_message(message, resolver_for(keys["ed25519"]), policy, NOW)
    assert info.value.headers["Accept-Signature"] == (
        'sig1=("@method" "@target-uri" "dpop" "content-digest");created;tag="t"'
    )
    assert (
        VerificationPolicy(label="mine", max_age=None, require_created=False).accept_signature()
        == "mine=()"
    )


@pytest.mark.parametrize(
    ("signature_input", "signature", "status", "code"),
    [
        pytest.param(None, "sig1=:AAAA:", 401, "signature.missing", id="no-signature-input"),
        pytest.param(
            'sig1=("@method");created=1', None, 401, "signature.missing", id="no-signature"
        ),
        pytest.param("sig1=(", "sig1=:AAAA:", 400, "signature.malformed", id="unparsable"),
        pytest.param(
            'sig1="@method"', "sig1=:AAAA:", 400, "signature.malformed", id="not-inner-list"
        ),
        pytest.param(
            'sig1=("@method");created=1',
            "sig2=:AAAA:",
            400,
            "signature.malformed",
            id="label-mismatch",
        ),
        pytest.param(
            'sig1=("@method");created=1', "sig1=AAAA", 400, "signature.malformed", id="not-bytes"
        ),
        pytest.param(
            'sig1=("@method");created="1"',
            "sig1=:AAAA:",
            400,
            "signature.malformed",
            id="created-string",
        ),
        pytest.param(
            'sig1=("@method");created=?1',
            "sig1=:AAAA:",
            400,
            "signature.malformed",
            id="created-boolean",
        ),
        pytest.param(
            'sig1=("@method");created=-1',
            "sig1=:AAAA:",
            400,
            "signature.malformed",
            id="created-negative",
        ),
        pytest.param(
            'sig1=("@method");alg=ed25519',
            "sig1=:AAAA:",
            400,
            "signature.malformed",
            id="alg-token",
        ),
        pytest.param(
            'sig1=("@method");created=1;foo="x"',
            "sig1=:AAAA:",
            400,
            "signature.malformed",
            id="unknown-param",
        ),
        pytest.param(
            'sig1=("@method" "@method");created=1',
            "sig1=:AAAA:",
            400,
            "signature.malformed",
            id="duplicate",
        ),
        pytest.param("", "", 401, "signature.missing", id="empty-fields"),
    ],
)
def test_bad_signature_fields(
    signature_input: str | None, signature: str | None, status: int, code: str
) -> None:
    fields = [("Signature-Input", signature_input), ("Signature", signature)]
    message = request(headers=[(n, v) for n, v in fields if v is not None])
    policy = VerificationPolicy(max_age=None, require_created=False)
    with pytest.raises(APISecError) as info:
        verify_message(message, StaticKeyResolver([]), policy, 1.0)
    assert (info.value.status, info.value.code) == (status, code)
    assert info.value.headers["Accept-Signature"] == "sig1=()"


def test_select_any_tries_the_next_signature(keys: dict[str, PrivateKey]) -> None:
    first = signed(request(), keys["ES256"], ["@method", "@target-uri"], label="a", tag="t")
    both = signed(first, keys["ed25519"], ["@method", "@target-uri"], label="b", tag="t")
    resolver = resolver_for(keys["ed25519"])  # cannot verify "a"
    policy = POLICY.replace(tag="t")
    with pytest.raises(UnknownKey):
        verify_message(both, resolver, policy, NOW)
    assert verify_message(both, resolver, policy.replace(select="any"), NOW).label == "b"
    assert verify_message(both, resolver, policy.replace(label="b"), NOW).label == "b"


def test_signing_refuses_a_label_in_use(keys: dict[str, PrivateKey]) -> None:
    message = signed(request(), keys["ed25519"], ["@method"])
    with pytest.raises(ConfigurationError):
        sign_message(message, keys["ed25519"], ["@method"], now=NOW)


def test_policy_configuration_errors() -> None:
    with pytest.raises(ConfigurationError):
        VerificationPolicy(algorithms=frozenset({"none"}))
    with pytest.raises(ConfigurationError):
        VerificationPolicy(required=("Bad Name",))
    with pytest.raises(ConfigurationError):
        VerificationPolicy(tag="caf\xe9")


# --- Content-Digest (RFC 9530) ---------------------------------------------------------------


def test_signing_adds_a_covered_content_digest(keys: dict[str, PrivateKey]) -> None:
    fields = sign_message(request(body=b"{}"), keys["ed25519"], ["content-digest"], now=NOW)
    assert fields[0] == (
        "Content-Digest",
        "sha-256=:RBNvo1WzZ4oRRq0W9+hknpT7T8If536DEMBg9hyq/4o=:",
    )
    kept = request(body=b"{}", headers=[("Content-Digest", "sha-512=:AAAA:")])
    assert [n for n, _ in sign_message(kept, keys["ed25519"], ["content-digest"], now=NOW)] == [
        "Signature-Input",
        "Signature",
    ]


def test_uncovered_body_is_refused(keys: dict[str, PrivateKey]) -> None:
    message = signed(request(), keys["ed25519"], ["@method", "@target-uri"])
    with_body = dataclasses.replace(message, body=Body(b"injected"))
    with pytest.raises(SignatureError) as info:
        verify_message(with_body, resolver_for(keys["ed25519"]), POLICY, NOW)
    assert info.value.code == "signature.component_missing"
    assert '"content-digest"' in info.value.headers["Accept-Signature"]


def test_changed_body_fails_the_digest(keys: dict[str, PrivateKey]) -> None:
    covered = ["@method", "@target-uri", "content-digest"]
    message = signed(request(body=b'{"amount":1}'), keys["ed25519"], covered)
    tampered = dataclasses.replace(message, body=Body(b'{"amount":9}'))
    with pytest.raises(InvalidDigest) as info:
        verify_message(tampered, resolver_for(keys["ed25519"]), POLICY, NOW)
    assert (info.value.status, info.value.code) == (401, "digest.invalid")
    assert "Accept-Signature" in info.value.headers


def test_deprecated_digest_algorithm_is_refused_when_signed(keys: dict[str, PrivateKey]) -> None:
    """RFC 9530 §5: md5 in a signed Content-Digest is refused outright."""
    body = request(body=b"{}", headers=[("Content-Digest", "md5=:mZFLkyvTelC5g8XnyQrpOw==:")])
    message = signed(body, keys["ed25519"], ["@method", "@target-uri", "content-digest"])
    with pytest.raises(InvalidDigest):
        verify_message(message, resolver_for(keys["ed25519"]), POLICY, NOW)


def test_malformed_content_digest_is_400(keys: dict[str, PrivateKey]) -> None:
    body = request(body=b"{}", headers=[("Content-Digest", "sha-256=:not base64:")])
    message = signed(body, keys["ed25519"], ["@method", "@target-uri", "content-digest"])
    with pytest.raises(MalformedSignature) as info:
        verify_message(message, resolver_for(keys["ed25519"]), POLICY, NOW)
    assert (info.value.status, info.value.code) == (400, "digest.malformed")


def test_response_digest_honours_want_content_digest(keys: dict[str, PrivateKey]) -> None:
    """RFC 9530 §4: the response uses the algorithm the request prefers."""
    asking = request(headers=[("Want-Content-Digest", "sha-256=1, sha-512=10")])
    response = Message(status=200, body=Body(b"hello"), request=asking)
    fields = dict(sign_message(response, keys["ed25519"], ["@status", "content-digest"], now=NOW))
    assert fields["Content-Digest"].startswith("sha-512=:")
    default = Message(status=200, body=Body(b"hello"), request=request())
    fields = dict(sign_message(default, keys["ed25519"], ["@status", "content-digest"], now=NOW))
    assert fields["Content-Digest"] == "sha-256=:LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ=:"


def test_large_spooled_body_is_hashed_in_chunks(
    keys: dict[str, PrivateKey], tmp_path: Path
) -> None:
    data = b"x" * (3 * 1024 * 1024 + 7)
    path = tmp_path / "body"
    path.write_bytes(data)
    with path.open("rb") as handle:
        message = dataclasses.replace(request(), body=Body(file=handle, length=len(data)))
        message = signed(message, keys["ed25519"], ["@method", "@target-uri", "content-digest"])
        assert verify_message(message, resolver_for(keys["ed25519"]), POLICY, NOW).label == "sig1"
        truncated = dataclasses.replace(message, body=Body(data[:-1]))
        with pytest.raises(InvalidDigest):
            verify_message(truncated, resolver_for(keys["ed25519"]), POLICY, NOW)


# --- keys from the message ---------------------------------------------------------------------


def _certificate(key: ec.EllipticCurvePrivateKey) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "client")])
    start = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(Encoding.DER)


def test_client_certificate_key_verifies() -> None:
    """The mTLS certificate's key as the signing key, through a resolver reading the request."""
    raw = ec.generate_private_key(ec.SECP256R1())
    key = PrivateKey.from_key(raw, kid="client")
    profile = Profile(
        name="mtls-sig",
        mechanism=HTTPSignatures(),
        header_names=("Signature",),
        emit_header="Signature",
        algorithms=frozenset({"ES256"}),
    )
    message = signed(request(), key, ["@method", "@target-uri"])
    message.context["tls_client_cert"] = _certificate(raw)
    result = profile.mechanism.verify(profile, message, ClientCertificateKeys(), NOW)
    assert result.alg == "ecdsa-p256-sha256"
    message.context.pop("tls_client_cert")
    with pytest.raises(UnknownKey):
        profile.mechanism.verify(profile, message, ClientCertificateKeys(), NOW)
    with pytest.raises(UnknownKey):
        ClientCertificateKeys().resolve(KeyQuery("ES256"))
