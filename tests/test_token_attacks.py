"""One test per attack on bearer tokens, each named after what it stops.

Every rejection is checked for the exact status, RFC 6750 error, dotted code and the
``WWW-Authenticate`` challenge a client would see; where the attack aims at the key source,
the test also proves no key was looked up (or fetched).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from tests import vectors
from tests.test_tokens import (
    AUD,
    DROP,
    ISS,
    NOW,
    FakeClock,
    claims,
    kit,
    mint,
    rejected,
    signing_key,
)
from wsgi_apisec.algorithms import get_algorithm
from wsgi_apisec.bearer import challenge, extract_token
from wsgi_apisec.encoding import b64url_encode
from wsgi_apisec.errors import InvalidRequest, InvalidToken, MissingCredentials
from wsgi_apisec.keys import PrivateKey, PublicKey
from wsgi_apisec.message import Headers, Message
from wsgi_apisec.resolvers import KeyQuery
from wsgi_apisec.tokens import Issuer, TokenValidator


def assert_challenge(exc: InvalidToken) -> None:
    expected = f'Bearer error="invalid_token", error_description="{exc.description}"'
    assert challenge(exc) == expected


def _b64(obj: Any) -> str:
    return b64url_encode(obj if isinstance(obj, bytes) else json.dumps(obj).encode())


def unsigned(header: dict[str, Any], payload: dict[str, Any], signature: bytes = b"") -> str:
    return f"{_b64(header)}.{_b64(payload)}.{b64url_encode(signature)}"


# --- algorithm and key confusion ------------------------------------------------------------


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
def test_alg_none_in_any_case(alg: str) -> None:
    k = kit()
    token = unsigned({"alg": alg, "typ": "at+jwt"}, claims())
    exc = rejected(lambda: k.validator.validate(token), "token.header")
    assert_challenge(exc)
    assert k.resolver.queries == []


def test_rfc7515_A5_unsecured_jws_rejected() -> None:
    vector = vectors.load("rfc7515/appendix_a.json")["A5"]
    a2 = vectors.load("rfc7515/appendix_a.json")["A2"]
    issuer = Issuer("joe", jwks={"keys": [a2["key_jwk"]]}, allow_jwt_typ=True, required_claims=())
    validator = TokenValidator(issuer, clock=lambda: 1300819380 - 60)
    exc = rejected(lambda: validator.validate(vector["jws_compact"]), "token.header")
    assert_challenge(exc)


def _public_pem(key: PrivateKey) -> bytes:
    public = key.public_key().key
    assert not isinstance(public, bytes)
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _hs256(secret: bytes, header: dict[str, Any], payload: dict[str, Any]) -> str:
    signing_input = f"{_b64(header)}.{_b64(payload)}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url_encode(mac)}"


def test_hs256_signed_with_the_issuers_public_key_pem() -> None:
    k = kit("RS256")
    pem = _public_pem(k.key)
    token = _hs256(pem, {"alg": "HS256", "typ": "at+jwt", "kid": k.key.kid}, claims())
    exc = rejected(lambda: k.validator.validate(token), "token.header")
    assert_challenge(exc)
    assert k.resolver.queries == []


def test_hs256_with_public_pem_even_where_hs256_is_configured() -> None:
    """An issuer that also has a real shared secret: the RSA key still never acts as one."""
    rsa_key = signing_key("RS256")
    secret = PrivateKey.generate("HS256", kid="shared")
    jwks = {"keys": [rsa_key.public_key().to_jwk(), secret.to_jwk(private=True)]}
    issuer = Issuer(ISS, jwks=jwks, algorithms=("RS256", "HS256"), audience=AUD)
    validator = TokenValidator(issuer, clock=FakeClock())
    pem = _public_pem(rsa_key)
    with_kid = _hs256(pem, {"alg": "HS256", "typ": "at+jwt", "kid": rsa_key.kid}, claims())
    rejected(lambda: validator.validate(with_kid), "token.key")
    without_kid = _hs256(pem, {"alg": "HS256", "typ": "at+jwt"}, claims())
    rejected(lambda: validator.validate(without_kid), "token.signature")
    assert validator.validate(mint(secret)).subject == "user-1"


def test_embedded_jwk_naming_the_attackers_key() -> None:
    k = kit("ES256")
    attacker = PrivateKey.generate("ES256", kid=k.key.kid)
    token = mint(attacker, jwk=attacker.public_key().to_jwk())
    exc = rejected(lambda: k.validator.validate(token), "token.header")
    assert "'jwk'" in exc.description
    assert k.resolver.queries == []


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("jku", "https://attacker.example/jwks.json"),
        ("x5u", "https://attacker.example/cert.pem"),
        ("x5c", ["MIIB"]),
    ],
)
def test_key_url_or_chain_in_header(name: str, value: Any) -> None:
    k = kit()
    exc = rejected(lambda: k.validator.validate(mint(k.key, **{name: value})), "token.header")
    assert f"'{name}'" in exc.description
    assert_challenge(exc)
    assert k.resolver.queries == []


@pytest.mark.parametrize(
    "kid", ["../../etc/passwd", "keys/../../secret", "a\\b", "a b", "k\x00", "", "x" * 257]
)
def test_kid_path_traversal_and_junk(kid: str) -> None:
    k = kit()
    rejected(lambda: k.validator.validate(mint(k.key, kid=kid)), "token.header")
    assert k.resolver.queries == []


def test_kid_path_traversal_causes_no_jwks_fetch() -> None:
    pytest.importorskip("wsgi_apisec.jwks")
    from wsgi_apisec.fetch import FetchResult

    fetched: list[str] = []

    class Fetcher:
        def fetch(self, url: str, *, timeout: float, max_bytes: int) -> FetchResult:
            fetched.append(url)
            return FetchResult(200, {}, b'{"keys":[]}')

    issuer = Issuer(
        ISS,
        jwks_uri="https://as.example.com/jwks",
        audience=AUD,
        jwks_options={"fetcher": Fetcher()},
    )
    validator = TokenValidator(issuer, clock=FakeClock())
    token = mint(signing_key("PS256"), kid="../../etc/passwd")
    rejected(lambda: validator.validate(token), "token.header")
    assert fetched == []


def test_kid_that_is_not_a_string() -> None:
    k = kit()
    rejected(lambda: k.validator.validate(mint(k.key, kid=7)), "token.header")
    assert k.resolver.queries == []


def test_token_of_one_issuer_signed_with_another_issuers_key() -> None:
    k = kit("ES256")
    other_key = PrivateKey.generate("ES256", kid=k.key.kid)
    exc = rejected(lambda: k.validator.validate(mint(other_key)), "token.signature")
    assert_challenge(exc)


# --- signature mangling --------------------------------------------------------------------


def _resign(token: str, signature: bytes) -> str:
    head, payload, _ = token.split(".")
    return f"{head}.{payload}.{b64url_encode(signature)}"


def test_ecdsa_signature_r_and_s_zero() -> None:
    k = kit("ES256")
    token = _resign(mint(k.key), bytes(64))
    exc = rejected(lambda: k.validator.validate(token), "token.signature")
    assert_challenge(exc)


def test_stripped_signature() -> None:
    k = kit()
    token = _resign(mint(k.key), b"")
    rejected(lambda: k.validator.validate(token), "token.signature")
    rejected(lambda: k.validator.validate(token.rstrip(".")), "token.malformed")


def test_signature_over_other_claims() -> None:
    k = kit()
    good, forged = mint(k.key), mint(k.key, claims(sub="admin"))
    spliced = ".".join([*forged.split(".")[:2], good.split(".")[2]])
    rejected(lambda: k.validator.validate(spliced), "token.signature")


def test_json_serialised_jws() -> None:
    k = kit()
    head, payload, sig = mint(k.key).split(".")
    token = json.dumps({"protected": head, "payload": payload, "signature": sig})
    exc = rejected(lambda: k.validator.validate(token), "token.malformed")
    assert_challenge(exc)


def test_padded_or_non_canonical_base64url() -> None:
    k = kit()
    head, payload, sig = mint(k.key).split(".")
    rejected(lambda: k.validator.validate(f"{head}=.{payload}.{sig}"), "token.malformed")
    rejected(lambda: k.validator.validate(f"{head}.{payload}.{sig}+"), "token.malformed")


# --- header and claim-set tricks --------------------------------------------------------------


def test_unknown_crit_parameter() -> None:
    k = kit()
    extra: dict[str, Any] = {"urn:example:must-understand": 1}
    token = mint(k.key, crit=["urn:example:must-understand"], **extra)
    exc = rejected(lambda: k.validator.validate(token), "token.header")
    assert_challenge(exc)
    assert k.resolver.queries == []


def test_unencoded_payload_b64_false() -> None:
    k = kit()
    header = {"alg": "PS256", "typ": "at+jwt", "b64": False, "crit": ["b64"]}
    signing_input = f"{_b64(header)}.{_b64(claims())}"
    signature = get_algorithm("PS256").sign(k.key.key, signing_input.encode())
    token = f"{signing_input}.{b64url_encode(signature)}"
    rejected(lambda: k.validator.validate(token), "token.malformed")


def test_duplicate_claim_keys() -> None:
    k = kit()
    good = json.dumps(claims())
    payload = good[:-1] + ', "sub": "admin"}'
    exc = rejected(lambda: k.validator.validate(mint(k.key, payload.encode())), "token.malformed")
    assert_challenge(exc)


def test_duplicate_iss_to_confuse_issuer_selection() -> None:
    k = kit()
    payload = '{"iss": "https://evil.example", ' + json.dumps(claims())[1:]
    rejected(lambda: k.validator.validate(mint(k.key, payload.encode())), "token.malformed")
    assert k.resolver.queries == []


def test_claims_not_an_object() -> None:
    k = kit()
    rejected(lambda: k.validator.validate(mint(k.key, b"[1, 2]")), "token.malformed")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("exp", str(int(NOW) + 300)),
        ("exp", True),
        ("exp", None),
        ("exp", [int(NOW) + 300]),
        ("nbf", str(int(NOW))),
        ("nbf", False),
        ("iat", "yesterday"),
        ("iat", True),
    ],
    ids=lambda v: repr(v),
)
def test_time_claim_of_the_wrong_json_type(name: str, value: Any) -> None:
    k = kit()
    exc = rejected(
        lambda: k.validator.validate(mint(k.key, claims(**{name: value}))), "token.claims"
    )
    assert "NumericDate" in exc.description
    assert_challenge(exc)


@pytest.mark.parametrize(
    "exp",
    [-1, 253402300800, 1e300, 253402300799.5],
    ids=["negative", "year-10000", "float-1e300", "just-past-9999"],
)
def test_time_claim_out_of_range(exp: float) -> None:
    k = kit()
    rejected(lambda: k.validator.validate(mint(k.key, claims(exp=exp))), "token.claims")


def test_time_claim_with_too_many_digits() -> None:
    k = kit()
    payload = json.dumps(claims(exp=0)).replace('"exp": 0', '"exp": ' + "9" * 400)
    rejected(lambda: k.validator.validate(mint(k.key, payload.encode())), "token.malformed")


@pytest.mark.parametrize("name", ["nbf", "iat"])
def test_far_future_nbf_or_iat(name: str) -> None:
    k = kit()
    token = mint(k.key, claims(**{name: 253402300799}))
    rejected(lambda: k.validator.validate(token), "token.not_yet_valid")


def test_expired_token() -> None:
    k = kit()
    exc = rejected(
        lambda: k.validator.validate(mint(k.key, claims(exp=int(NOW) - 31))), "token.expired"
    )
    assert challenge(exc) == (
        'Bearer error="invalid_token", error_description="the token has expired"'
    )


def test_token_without_exp_even_if_not_listed_as_required() -> None:
    k = kit(required_claims=("iss", "sub"), audience=None)
    rejected(lambda: k.validator.validate(mint(k.key, claims(exp=DROP))), "token.claims")


@pytest.mark.parametrize("name", ["iss", "exp", "aud", "sub", "client_id", "iat", "jti"])
def test_rfc9068_s2_2_required_claim_missing(name: str) -> None:
    k = kit()
    code = "token.issuer" if name == "iss" else "token.claims"
    exc = rejected(lambda: k.validator.validate(mint(k.key, claims(**{name: DROP}))), code)
    if name != "iss":
        assert repr(name) in exc.description


@pytest.mark.parametrize(
    ("aud", "code"),
    [
        ("https://other.example.com", "token.audience"),
        (["https://other.example.com", "https://third.example"], "token.audience"),
        ([], "token.claims"),
        ([AUD, 7], "token.claims"),
        ({"aud": AUD}, "token.claims"),
        (AUD + "/", "token.audience"),
        (AUD.upper(), "token.audience"),
    ],
    ids=["wrong", "list-without-ours", "empty-list", "list-with-number", "object", "slash", "case"],
)
def test_rfc9068_s4_audience_not_ours(aud: Any, code: str) -> None:
    k = kit()
    exc = rejected(lambda: k.validator.validate(mint(k.key, claims(aud=aud))), code)
    assert_challenge(exc)


@pytest.mark.parametrize(
    "iss",
    [
        "https://as.example.com/realms/",
        "https://as.example.com/realms/api/",
        "https://as.example.com/realms/apis",
        "HTTPS://AS.EXAMPLE.COM/realms/api",
        "https://as.example.com/realms/API",
        " https://as.example.com/realms/api",
        "https://as.example.com:443/realms/api",
    ],
    ids=["prefix", "trailing-slash", "extended", "case-host", "case-path", "space", "port"],
)
def test_partial_issuer_match(iss: str) -> None:
    k = kit()
    exc = rejected(lambda: k.validator.validate(mint(k.key, claims(iss=iss))), "token.issuer")
    assert exc.description == "the token issuer is not trusted"
    assert k.resolver.queries == []


def test_issuer_claim_not_a_string() -> None:
    k = kit()
    rejected(lambda: k.validator.validate(mint(k.key, claims(iss=[ISS]))), "token.issuer")


@pytest.mark.parametrize(
    "typ",
    ["JWT", "jwt", None, "dpop+jwt", "secevent+jwt", "at+jwt; x=1", 1],
    ids=["JWT", "jwt", "absent", "dpop", "secevent", "params", "number"],
)
def test_rfc9068_s4_wrong_typ(typ: Any) -> None:
    k = kit()
    exc = rejected(lambda: k.validator.validate(mint(k.key, typ=typ)), "token.type")
    assert_challenge(exc)


def test_id_token_presented_as_access_token() -> None:
    """An OpenID Connect ID token of the same issuer: typ JWT, aud = the client."""
    k = kit()
    id_token = claims(aud="client-1", nonce="n-0S6_WzA2Mj", client_id=DROP, jti=DROP)
    rejected(lambda: k.validator.validate(mint(k.key, id_token, typ="JWT")), "token.type")


def test_id_token_blocked_by_audience_where_typ_jwt_is_allowed() -> None:
    k = kit(allow_jwt_typ=True)
    id_token = claims(aud="client-1", nonce="n-0S6_WzA2Mj")
    rejected(lambda: k.validator.validate(mint(k.key, id_token, typ="JWT")), "token.audience")


def test_one_megabyte_token() -> None:
    k = kit()
    token = mint(k.key, claims(pad="A" * (1024 * 1024)))
    start = time.perf_counter()
    exc = rejected(lambda: k.validator.validate(token), "token.too_large")
    assert time.perf_counter() - start < 1.0
    assert exc.description == "the token is too large"
    assert k.resolver.queries == []


def test_token_with_non_ascii_characters() -> None:
    k = kit()
    head, payload, sig = mint(k.key).split(".")
    rejected(lambda: k.validator.validate(f"{head}.{payload}é.{sig}"), "token.malformed")


def test_error_description_never_echoes_the_token() -> None:
    k = kit()
    token = mint(k.key, claims(aud="https://evil.example"))
    exc = rejected(lambda: k.validator.validate(token), "token.audience")
    for part in token.split("."):
        assert part not in challenge(exc) and part not in exc.detail


def test_cached_token_cannot_outlive_exp() -> None:
    k = kit(cache=True, leeway=0)
    token = mint(k.key, claims(exp=int(NOW) + 5))
    k.validator.validate(token)
    k.clock.now = NOW + 5
    rejected(lambda: k.validator.validate(token), "token.expired")


# --- transport (RFC 6750 §2, §3) ------------------------------------------------------------


def _request(target: str = "http://api.example.com/r", **headers: str) -> Message:
    return Message("GET", target, Headers(list(headers.items())))


def test_token_in_query_when_query_is_disabled() -> None:
    message = _request("http://api.example.com/r?access_token=abc")
    with pytest.raises(InvalidRequest) as info:
        extract_token(message)
    assert (info.value.status, info.value.error) == (400, "invalid_request")
    assert challenge(info.value).startswith('Bearer error="invalid_request", error_description=')


def test_token_in_query_hidden_by_percent_encoding() -> None:
    message = _request("http://api.example.com/r?access%5Ftoken=abc")
    with pytest.raises(InvalidRequest):
        extract_token(message)


def test_two_tokens_header_and_query() -> None:
    message = _request("http://api.example.com/r?access_token=abc", Authorization="Bearer xyz")
    with pytest.raises(InvalidRequest) as info:
        extract_token(message, allow_query=True)
    assert info.value.status == 400
    assert info.value.description == "the request carries more than one access token"


def test_two_authorization_headers() -> None:
    message = Message(
        "GET",
        "http://api.example.com/r",
        Headers([("Authorization", "Bearer abc"), ("Authorization", "Bearer xyz")]),
    )
    with pytest.raises(InvalidRequest) as info:
        extract_token(message)
    assert (info.value.status, info.value.error) == (400, "invalid_request")


def test_no_token_is_401_without_error() -> None:
    assert extract_token(_request()) is None
    exc = MissingCredentials("an access token is required")
    assert exc.status == 401
    assert challenge(exc, realm="api") == 'Bearer realm="api"'


def test_header_injection_through_error_description() -> None:
    exc = InvalidToken('bad"\r\nSet-Cookie: a=b\\')
    value = challenge(exc, realm='r", error="x')
    assert "\r" not in value and "\n" not in value and "\\" not in value
    assert value == (
        'Bearer realm="r, error=x", error="invalid_token", error_description="badSet-Cookie: a=b"'
    )


def test_public_key_pem_is_not_an_hmac_key_at_the_key_level() -> None:
    rsa_public = signing_key("RS256").public_key()
    assert not rsa_public.allows("HS256")
    with pytest.raises(InvalidToken):
        # A resolver that hands back the RSA key for an HS256 query still cannot verify.
        class Lax:
            def resolve(self, query: KeyQuery) -> list[PublicKey]:
                return [rsa_public]

        issuer = Issuer(ISS, resolver=Lax(), algorithms=("HS256",), audience=AUD)
        pem = _public_pem(signing_key("RS256"))
        TokenValidator(issuer, clock=FakeClock()).validate(
            _hs256(pem, {"alg": "HS256", "typ": "at+jwt"}, claims())
        )
