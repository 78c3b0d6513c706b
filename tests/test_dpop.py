"""RFC 9449 DPoP proofs at the resource server: the RFC's examples, then one test per check."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.vectors import load
from wsgi_apisec.dpop import (
    DPoPProof,
    DPoPVerifier,
    HMACNonceSource,
    access_token_hash,
    make_proof,
    normalize_htu,
)
from wsgi_apisec.encoding import b64url_encode, json_dumps
from wsgi_apisec.errors import (
    APISecError,
    ConfigurationError,
    InvalidDPoPProof,
    InvalidToken,
    ReplayDetected,
    UseDPoPNonce,
)
from wsgi_apisec.jws import sign
from wsgi_apisec.keys import PrivateKey, PublicKey
from wsgi_apisec.message import Headers, Message
from wsgi_apisec.replay import MemoryReplayStore
from wsgi_apisec.tokens import AccessToken

NOW = 1_700_000_000
URL = "https://api.example.com/fdx/v6/core/accounts"
TOKEN = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ0ZXN0In0.sig"


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def es256() -> PrivateKey:
    return PrivateKey.generate("ES256")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def verifier(clock: Clock) -> DPoPVerifier:
    return DPoPVerifier(clock=clock)


def bound_token(key: PrivateKey | PublicKey | str, raw: str = TOKEN) -> AccessToken:
    jkt = key if isinstance(key, str) else key.thumbprint()
    return AccessToken(
        raw=raw,
        claims={"cnf": {"jkt": jkt}},
        issuer="https://as.example.com",
        subject="s",
        client_id="c",
        scopes=frozenset(),
        cnf={"jkt": jkt},
        scheme="DPoP",
    )


def request(proof: str | list[str] | None, method: str = "GET", url: str = URL) -> Message:
    proofs = [] if proof is None else [proof] if isinstance(proof, str) else proof
    return Message(method=method, target_uri=url, headers=Headers([("DPoP", p) for p in proofs]))


def proof_for(key: PrivateKey, **kw: Any) -> str:
    kw.setdefault("access_token", TOKEN)
    kw.setdefault("iat", NOW)
    return make_proof(key, kw.pop("method", "GET"), kw.pop("url", URL), **kw)


def forge(header: dict[str, Any], claims: dict[str, Any], key: PrivateKey | None = None) -> str:
    """A proof with any header and claims; signed with ``key`` (or an empty signature)."""
    payload = json.dumps(claims, separators=(",", ":")).encode()  # ASCII: \ud800 survives
    if key is not None:
        return sign(key, payload, header, detached=False)
    return f"{b64url_encode(json_dumps(header))}.{b64url_encode(payload)}."


def good_parts(key: PrivateKey, alg: str = "ES256") -> tuple[dict[str, Any], dict[str, Any]]:
    jwk = {k: v for k, v in key.to_jwk().items() if k in ("kty", "crv", "x", "y", "n", "e")}
    header = {"typ": "dpop+jwt", "alg": alg, "jwk": jwk}
    claims = {"jti": "j-1", "htm": "GET", "htu": URL, "iat": NOW, "ath": access_token_hash(TOKEN)}
    return header, claims


def rejects(verifier: DPoPVerifier, message: Message, token: AccessToken | None = None) -> Any:
    with pytest.raises(InvalidDPoPProof) as info:
        verifier.verify(message, token)
    err = info.value
    assert err.status == 401
    assert err.scheme == "DPoP"
    assert err.challenge["algs"] == "ES256 PS256 EdDSA RS256"
    return err


# --- RFC 9449 examples ----------------------------------------------------------------


@pytest.fixture(scope="module")
def rfc() -> Any:
    return load("rfc9449/examples.json")


def test_rfc9449_s7_1_resource_request_proof_verifies(rfc: Any) -> None:
    example = rfc["s7_1_resource_request"]
    verifier = DPoPVerifier(clock=lambda: example["expect"]["iat"] + 10)
    token = bound_token(rfc["jkt_of_example_key"], raw=example["access_token"])
    message = request(example["DPoP"], "GET", example["expect"]["htu"])
    proof = verifier.verify(message, token)
    assert proof.jkt == rfc["jkt_of_example_key"]
    assert (proof.jti, proof.htm, proof.htu, proof.iat) == (
        example["expect"]["jti"],
        "GET",
        "https://resource.example.org/protectedresource",
        1562262618,
    )
    assert example["Authorization"] == f"DPoP {example['access_token']}"


def test_rfc9449_s4_1_token_request_proof_verifies_without_token(rfc: Any) -> None:
    example = rfc["s4_1_token_request_proof"]
    verifier = DPoPVerifier(clock=lambda: example["expect"]["iat"])
    proof = verifier.verify(request(example["DPoP"], "POST", example["expect"]["htu"]))
    assert proof.jti == "-BwC3ESc6acc2lTc"
    assert proof.jkt == rfc["jkt_of_example_key"]


def test_rfc9449_s4_1_proof_is_too_old_at_real_time(rfc: Any) -> None:
    example = rfc["s4_1_token_request_proof"]
    err = rejects(DPoPVerifier(), request(example["DPoP"], "POST", example["expect"]["htu"]))
    assert err.description == "DPoP proof is too old"


def test_rfc9449_s6_1_rfc7638_thumbprint_of_example_key(rfc: Any) -> None:
    header_b64 = rfc["s4_1_token_request_proof"]["DPoP"].split(".")[0]
    header = json.loads(_b64(header_b64))
    assert PublicKey.from_jwk(header["jwk"]).thumbprint() == rfc["jkt_of_example_key"]
    # The §6.1 access token is bound to that same key.
    claims = json.loads(_b64(rfc["s6_1_access_token_with_cnf_jkt"]["jwt"].split(".")[1]))
    assert claims["cnf"]["jkt"] == rfc["jkt_of_example_key"]


def test_rfc9449_s7_1_ath_is_hash_of_access_token(rfc: Any) -> None:
    example = rfc["s7_1_resource_request"]
    assert access_token_hash(example["access_token"]) == example["expect"]["ath"]
    assert access_token_hash(example["access_token"]) != access_token_hash(TOKEN)


def test_rfc9449_s7_1_proof_for_another_token_is_refused(rfc: Any) -> None:
    example = rfc["s7_1_resource_request"]
    verifier = DPoPVerifier(clock=lambda: example["expect"]["iat"])
    message = request(example["DPoP"], "GET", example["expect"]["htu"])
    err = rejects(verifier, message, bound_token(rfc["jkt_of_example_key"], raw=TOKEN))
    assert err.description == "DPoP proof ath does not match the access token"


def _b64(part: str) -> bytes:
    from wsgi_apisec.encoding import b64url_decode

    return b64url_decode(part)


# --- a good proof, each algorithm -----------------------------------------------------


@pytest.mark.parametrize("alg", ["ES256", "PS256", "EdDSA", "RS256"])
def test_make_proof_round_trip(alg: str, clock: Clock) -> None:
    key = PrivateKey.generate(alg)
    verifier = DPoPVerifier(clock=clock)
    proof = verifier.verify(request(proof_for(key, jti=f"id-{alg}")), bound_token(key))
    assert isinstance(proof, DPoPProof)
    assert proof.jkt == key.thumbprint()
    assert proof.key.thumbprint() == key.thumbprint()
    assert (proof.jti, proof.htm, proof.htu, proof.iat) == (f"id-{alg}", "GET", URL, NOW)


def test_make_proof_leaves_out_query_fragment_and_private_members(es256: PrivateKey) -> None:
    proof = make_proof(es256, "POST", URL + "?a=1#frag", access_token=TOKEN, nonce="n")
    header = json.loads(_b64(proof.split(".")[0]))
    claims = json.loads(_b64(proof.split(".")[1]))
    assert header["typ"] == "dpop+jwt" and header["alg"] == "ES256"
    assert set(header["jwk"]) == {"kty", "crv", "x", "y"}
    assert claims["htu"] == URL and claims["htm"] == "POST" and claims["nonce"] == "n"
    assert claims["ath"] == access_token_hash(TOKEN)
    assert len(claims["jti"]) >= 16


# --- §4.3, one test per check ---------------------------------------------------------


def test_s4_3_step1_two_dpop_headers(verifier: DPoPVerifier, es256: PrivateKey) -> None:
    message = request([proof_for(es256, jti="a"), proof_for(es256, jti="b")])
    err = rejects(verifier, message, bound_token(es256))
    assert err.description == "expected one DPoP header, got 2"


def test_s4_3_step1_no_dpop_header(verifier: DPoPVerifier, es256: PrivateKey) -> None:
    err = rejects(verifier, request(None), bound_token(es256))
    assert err.description == "expected one DPoP header, got 0"


@pytest.mark.parametrize(
    "value",
    ["not-a-jwt", "a.b", "e30.e30.e30.e30", "", "{}", "eyJ0eXAiOiJkcG9wK2p3dCJ9.e30.AA"],
    ids=["garbage", "two-parts", "four-parts", "empty", "json", "no-alg"],
)
def test_s4_3_step2_malformed_jwt(verifier: DPoPVerifier, value: str) -> None:
    err = rejects(verifier, request(value))
    assert err.error == "invalid_dpop_proof"
    assert err.description == "DPoP proof is not a well-formed JWS"


def test_s4_3_step2_detached_payload_refused(verifier: DPoPVerifier, es256: PrivateKey) -> None:
    header, claims = good_parts(es256)
    whole = forge(header, claims, es256).split(".")
    err = rejects(verifier, request(f"{whole[0]}..{whole[2]}"))
    assert err.description == "DPoP proof must be a plain compact JWT"


def test_s4_3_step3_claims_not_json(verifier: DPoPVerifier, es256: PrivateKey) -> None:
    header, _ = good_parts(es256)
    header_b64 = b64url_encode(json_dumps(header))
    err = rejects(verifier, request(f"{header_b64}.{b64url_encode(b'[1]')}.AAAA"))
    assert err.description == "DPoP proof signature does not verify"
    proof = sign(es256, b"[1]", header, detached=False)
    err = rejects(verifier, request(proof))
    assert err.description == "DPoP proof claims are not a JSON object"


@pytest.mark.parametrize("typ", ["JWT", "at+jwt", None, 1])
def test_s4_3_step4_typ_must_be_dpop_jwt(
    verifier: DPoPVerifier, es256: PrivateKey, typ: Any
) -> None:
    header, claims = good_parts(es256)
    if typ is None:
        del header["typ"]
    else:
        header["typ"] = typ
    err = rejects(verifier, request(forge(header, claims, es256)), bound_token(es256))
    assert err.description == "DPoP proof typ must be dpop+jwt"


def test_s4_3_step4_typ_compares_case_insensitively(
    verifier: DPoPVerifier, es256: PrivateKey
) -> None:
    header, claims = good_parts(es256)
    header["typ"] = "DPoP+JWT"
    assert verifier.verify(request(forge(header, claims, es256)), bound_token(es256))


def test_s4_3_step5_alg_none(verifier: DPoPVerifier, es256: PrivateKey) -> None:
    header, claims = good_parts(es256, alg="none")
    err = rejects(verifier, request(forge(header, claims)), bound_token(es256))
    assert err.description == "DPoP proof alg 'none' is not accepted"


def test_s4_3_step5_alg_hs256_with_oct_jwk(verifier: DPoPVerifier) -> None:
    secret = PrivateKey.generate("HS256")
    header = {"typ": "dpop+jwt", "alg": "HS256", "jwk": secret.to_jwk(private=True)}
    claims = good_parts(PrivateKey.generate("ES256"))[1]
    err = rejects(verifier, request(forge(header, claims, secret)))
    assert err.description == "DPoP proof alg 'HS256' is not accepted"


def test_s4_3_step5_alg_not_configured(clock: Clock, es256: PrivateKey) -> None:
    only_ps = DPoPVerifier(algorithms=["PS256"], clock=clock)
    with pytest.raises(InvalidDPoPProof) as info:
        only_ps.verify(request(proof_for(es256)), bound_token(es256))
    assert info.value.description == "DPoP proof alg 'ES256' is not accepted"
    assert info.value.challenge == {"algs": "PS256"}


def test_s4_3_step5_alg_must_fit_jwk(verifier: DPoPVerifier, es256: PrivateKey) -> None:
    rsa = PrivateKey.generate("RS256")
    header, claims = good_parts(es256, alg="RS256")  # EC jwk, RSA signature
    err = rejects(verifier, request(forge(header, claims, rsa)), bound_token(es256))
    assert err.description == "DPoP proof jwk cannot be used with RS256"


def test_s4_3_step6_bad_signature(verifier: DPoPVerifier, es256: PrivateKey) -> None:
    head, body, sig = proof_for(es256).split(".")
    tampered = sig[:-2] + ("AA" if sig[-2:] != "AA" else "AQ")
    err = rejects(verifier, request(f"{head}.{body}.{tampered}"), bound_token(es256))
    assert err.description == "DPoP proof signature does not verify"


def test_s4_3_step6_signed_by_other_key(verifier: DPoPVerifier, es256: PrivateKey) -> None:
    header, claims = good_parts(es256)
    other = PrivateKey.generate("ES256")
    err = rejects(verifier, request(forge(header, claims, other)), bound_token(es256))
    assert err.description == "DPoP proof signature does not verify"


def test_s4_3_step6_claims_changed_after_signing(verifier: DPoPVerifier, es256: PrivateKey) -> None:
    head, _, sig = proof_for(es256).split(".")
    _, claims = good_parts(es256)
    claims["htm"] = "DELETE"
    body = b64url_encode(json_dumps(claims))
    err = rejects(verifier, request(f"{head}.{body}.{sig}", method="DELETE"), bound_token(es256))
    assert err.description == "DPoP proof signature does not verify"


@pytest.mark.parametrize("alg", ["ES256", "RS256"])
def test_s4_3_step7_private_key_in_jwk(verifier: DPoPVerifier, alg: str) -> None:
    key = PrivateKey.generate(alg)
    header, claims = good_parts(key, alg=alg)
    header["jwk"] = key.to_jwk(private=True)
    err = rejects(verifier, request(forge(header, claims, key)), bound_token(key))
    assert err.description == "DPoP proof jwk must not contain private key material"


def test_s4_3_step7_missing_jwk(verifier: DPoPVerifier, es256: PrivateKey) -> None:
    header, claims = good_parts(es256)
    del header["jwk"]
    err = rejects(verifier, request(forge(header, claims, es256)), bound_token(es256))
    assert err.description == "DPoP proof has no jwk header"


@pytest.mark.parametrize(
    "jwk",
    [{"kty": "oct"}, {"kty": "OKP", "crv": "X25519", "x": "AA"}, {"kty": "EC", "crv": "P-256"}],
    ids=["oct", "x25519", "ec-without-point"],
)
def test_s4_3_step7_unusable_jwk(verifier: DPoPVerifier, es256: PrivateKey, jwk: Any) -> None:
    header, claims = good_parts(es256)
    header["jwk"] = jwk
    err = rejects(verifier, request(forge(header, claims, es256)))
    assert err.description in (
        "DPoP proof jwk key type is not supported",
        "DPoP proof jwk is not a usable public key",
    )


def test_s4_3_step7_weak_rsa_jwk(verifier: DPoPVerifier) -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa

    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    nums = weak.public_key().public_numbers()
    jwk = {
        "kty": "RSA",
        "n": b64url_encode(nums.n.to_bytes(128, "big")),
        "e": b64url_encode(nums.e.to_bytes(3, "big")),
    }
    header = {"typ": "dpop+jwt", "alg": "RS256", "jwk": jwk}
    err = rejects(verifier, request(forge(header, good_parts(PrivateKey.generate("ES256"))[1])))
    assert err.description == "DPoP proof jwk is not a usable public key"


@pytest.mark.parametrize("claim", ["jti", "htm", "htu", "iat"])
def test_s4_3_step3_required_claim_missing(
    verifier: DPoPVerifier, es256: PrivateKey, claim: str
) -> None:
    header, claims = good_parts(es256)
    del claims[claim]
    err = rejects(verifier, request(forge(header, claims, es256)), bound_token(es256))
    assert claim in err.description


def test_s4_3_jti_too_long(verifier: DPoPVerifier, es256: PrivateKey) -> None:
    err = rejects(verifier, request(proof_for(es256, jti="x" * 257)), bound_token(es256))
    assert err.description == "DPoP proof jti is missing or too long"


@pytest.mark.parametrize("htm", ["POST", "get", "GET "])
def test_s4_3_step8_htm_mismatch(verifier: DPoPVerifier, es256: PrivateKey, htm: str) -> None:
    err = rejects(verifier, request(proof_for(es256, method=htm)), bound_token(es256))
    assert err.description == "DPoP proof htm does not match the request method"


@pytest.mark.parametrize(
    "htu",
    [
        "https://api.example.com/fdx/v6/core/accounts/1",
        "https://api.example.com/fdx/v6/core/Accounts",
        "http://api.example.com/fdx/v6/core/accounts",
        "https://evil.example.com/fdx/v6/core/accounts",
        "https://api.example.com:8443/fdx/v6/core/accounts",
        "https://user@api.example.com/fdx/v6/core/accounts",
        "/fdx/v6/core/accounts",
        "https://api.example.com:99999/fdx/v6/core/accounts",
    ],
    ids=["path", "path-case", "scheme", "host", "port", "userinfo", "relative", "bad-port"],
)
def test_s4_3_step9_htu_mismatch(verifier: DPoPVerifier, es256: PrivateKey, htu: str) -> None:
    header, claims = good_parts(es256)
    claims["htu"] = htu
    err = rejects(verifier, request(forge(header, claims, es256)), bound_token(es256))
    assert err.description == "DPoP proof htu does not match the request URI"


def test_s4_3_step9_htu_query_and_fragment_ignored(
    verifier: DPoPVerifier, es256: PrivateKey
) -> None:
    message = request(proof_for(es256), url=URL + "?limit=10&offset=20")
    assert verifier.verify(message, bound_token(es256)).htu == URL


@pytest.mark.parametrize(
    ("htu", "target"),
    [
        ("HTTPS://API.Example.COM/fdx/v6/core/accounts", URL),
        ("https://api.example.com:443/fdx/v6/core/accounts", URL),
        ("https://api.example.com/fdx/v6/core/%61ccounts", URL),
        ("https://api.example.com/fdx/v6/./core/x/../accounts", URL),
        ("https://api.example.com/a%2fb%7E", "https://api.example.com/a%2Fb~"),
        ("http://api.example.com:80", "http://api.example.com/"),
        ("https://[::1]:443/x", "https://[::1]/x"),
    ],
    ids=[
        "case",
        "default-port",
        "pct-unreserved",
        "dot-segments",
        "pct-case",
        "empty-path",
        "ipv6",
    ],
)
def test_s4_3_step9_htu_rfc3986_s6_normalisation(
    verifier: DPoPVerifier, es256: PrivateKey, htu: str, target: str
) -> None:
    header, claims = good_parts(es256)
    claims["htu"] = htu
    message = request(forge(header, claims, es256), url=target)
    assert verifier.verify(message, bound_token(es256)).jkt == es256.thumbprint()


def test_normalize_htu_refuses_non_http() -> None:
    assert normalize_htu("ftp://example.com/x") is None
    assert normalize_htu("https:///nohost") is None
    assert normalize_htu("https://a.example/%7e/") == "https://a.example/~/"


@pytest.mark.parametrize(("offset", "ok"), [(-65, True), (5, True), (-66, False), (6, False)])
def test_s4_3_step11_iat_window_with_leeway(
    verifier: DPoPVerifier, es256: PrivateKey, offset: int, ok: bool
) -> None:
    message = request(proof_for(es256, iat=NOW + offset))
    if ok:
        assert verifier.verify(message, bound_token(es256)).iat == NOW + offset
    else:
        err = rejects(verifier, message, bound_token(es256))
        assert err.description == (
            "DPoP proof is too old" if offset < 0 else "DPoP proof iat is in the future"
        )


@pytest.mark.parametrize("iat", ["1700000000", True, None, [NOW]])
def test_s4_3_step11_iat_not_a_number(verifier: DPoPVerifier, es256: PrivateKey, iat: Any) -> None:
    header, claims = good_parts(es256)
    claims["iat"] = iat
    err = rejects(verifier, request(forge(header, claims, es256)), bound_token(es256))
    assert err.description == "DPoP proof iat is missing"


def test_s4_3_step11_iat_far_future_float(verifier: DPoPVerifier, es256: PrivateKey) -> None:
    header, claims = good_parts(es256)
    claims["iat"] = 1e300
    err = rejects(verifier, request(forge(header, claims, es256)), bound_token(es256))
    assert err.description == "DPoP proof iat is in the future"


def test_s4_3_step12_ath_missing(verifier: DPoPVerifier, es256: PrivateKey) -> None:
    message = request(proof_for(es256, access_token=None))
    err = rejects(verifier, message, bound_token(es256))
    assert err.description == "DPoP proof ath does not match the access token"
    # Without an access token (a token request) ath is not needed.
    assert verifier.verify(request(proof_for(es256, access_token=None, jti="t")))


def test_s4_3_step12_ath_wrong(verifier: DPoPVerifier, es256: PrivateKey) -> None:
    message = request(proof_for(es256, access_token=TOKEN + "x"))
    err = rejects(verifier, message, bound_token(es256))
    assert err.description == "DPoP proof ath does not match the access token"


def test_s4_3_step12_ath_with_lone_surrogate(verifier: DPoPVerifier, es256: PrivateKey) -> None:
    header, claims = good_parts(es256)
    claims["ath"] = "\ud800"
    err = rejects(verifier, request(forge(header, claims, es256)), bound_token(es256))
    # encoding.json_loads may refuse lone surrogates itself; either way a 401, never a 500.
    assert err.code == "dpop.invalid"
    assert err.description in (
        "DPoP proof claims are not a JSON object",
        "DPoP proof ath does not match the access token",
    )


def test_s6_1_jkt_mismatch_is_invalid_token(verifier: DPoPVerifier, es256: PrivateKey) -> None:
    other = PrivateKey.generate("ES256")
    with pytest.raises(InvalidToken) as info:
        verifier.verify(request(proof_for(es256)), bound_token(other))
    err = info.value
    assert (err.status, err.error, err.scheme) == (401, "invalid_token", "DPoP")
    assert err.description == "Invalid DPoP key binding"
    assert err.code == "token.dpop_key_mismatch"
    assert err.challenge == {"algs": "ES256 PS256 EdDSA RS256"}


def test_s11_1_replayed_jti(verifier: DPoPVerifier, es256: PrivateKey) -> None:
    proof = proof_for(es256, jti="once")
    assert verifier.verify(request(proof), bound_token(es256)).jti == "once"
    err = rejects(verifier, request(proof), bound_token(es256))
    assert err.description == "DPoP proof has been used before"
    assert err.code == "dpop.replayed"
    assert not isinstance(err, ReplayDetected)
    # A new jti from the same key is fine; the same jti from another key is too.
    assert verifier.verify(request(proof_for(es256, jti="twice")), bound_token(es256))
    other = PrivateKey.generate("ES256")
    assert verifier.verify(request(proof_for(other, jti="once")), bound_token(other))


def test_s11_1_jti_remembered_for_whole_iat_window(es256: PrivateKey, clock: Clock) -> None:
    store = MemoryReplayStore(clock=clock)
    verifier = DPoPVerifier(replay_store=store, clock=clock)
    proof = proof_for(es256, iat=NOW + 5)  # future edge: acceptable up to NOW + 70 inclusive
    assert verifier.verify(request(proof), bound_token(es256))
    clock.now = NOW + 70
    err = rejects(verifier, request(proof), bound_token(es256))
    assert err.code == "dpop.replayed"
    clock.now = NOW + 70.5
    assert rejects(verifier, request(proof), bound_token(es256)).description == (
        "DPoP proof is too old"
    )


def test_rejected_proof_does_not_spend_its_jti(verifier: DPoPVerifier, es256: PrivateKey) -> None:
    proof = proof_for(es256, jti="keep")
    with pytest.raises(InvalidToken):
        verifier.verify(request(proof), bound_token(PrivateKey.generate("ES256")))
    assert verifier.verify(request(proof), bound_token(es256)).jti == "keep"


# --- §8 / §9 nonces -------------------------------------------------------------------


@pytest.fixture
def nonces(clock: Clock) -> HMACNonceSource:
    return HMACNonceSource(b"k" * 32, window=300, clock=clock)


def test_s8_nonce_required(es256: PrivateKey, clock: Clock, nonces: HMACNonceSource) -> None:
    verifier = DPoPVerifier(nonce=nonces, clock=clock)
    with pytest.raises(UseDPoPNonce) as info:
        verifier.verify(request(proof_for(es256, jti="1")), bound_token(es256))
    err = info.value
    assert (err.status, err.error, err.scheme) == (401, "use_dpop_nonce", "DPoP")
    assert err.description == "Resource server requires nonce in DPoP proof"
    fresh = err.headers["DPoP-Nonce"]
    assert nonces.validate(fresh)
    # The client retries with the nonce it was given (and the same jti, never accepted).
    proof = proof_for(es256, jti="1", nonce=fresh)
    assert verifier.verify(request(proof), bound_token(es256)).jti == "1"


def test_s8_stale_nonce(es256: PrivateKey, clock: Clock, nonces: HMACNonceSource) -> None:
    verifier = DPoPVerifier(nonce=nonces, clock=clock)
    old = nonces.issue()
    clock.now += 600
    with pytest.raises(UseDPoPNonce) as info:
        verifier.verify(request(proof_for(es256, nonce=old, iat=clock.now)), bound_token(es256))
    assert info.value.headers["DPoP-Nonce"] != old
    assert info.value.headers["DPoP-Nonce"] == nonces.issue()


@pytest.mark.parametrize("bad", ["", "x", "A" * 24, 5, None])
def test_s8_bad_nonce(es256: PrivateKey, clock: Clock, nonces: HMACNonceSource, bad: Any) -> None:
    verifier = DPoPVerifier(nonce=nonces, clock=clock)
    header, claims = good_parts(es256)
    claims["nonce"] = bad
    with pytest.raises(UseDPoPNonce):
        verifier.verify(request(forge(header, claims, es256)), bound_token(es256))


def test_hmac_nonce_source_time_steps(clock: Clock) -> None:
    source = HMACNonceSource(b"s" * 32, window=100, clock=clock)
    clock.now = 1000  # step 10
    nonce = source.issue()
    assert source.issue() == nonce and source.validate(nonce)
    clock.now = 1199.9  # step 11: previous step still accepted
    assert source.validate(nonce) and source.issue() != nonce
    clock.now = 1200  # step 12: gone
    assert not source.validate(nonce)
    other = HMACNonceSource(b"t" * 32, window=100, clock=clock)
    assert not other.validate(source.issue())
    shared = HMACNonceSource(b"s" * 32, window=100, clock=clock)
    assert shared.validate(source.issue())
    expected = hmac.new(b"s" * 32, b"dpop-nonce" + (12).to_bytes(8, "big"), hashlib.sha256)
    assert source.issue() == b64url_encode(expected.digest()[:18])


# --- configuration --------------------------------------------------------------------


@pytest.mark.parametrize(
    "algorithms", [["HS256"], ["none"], ["ES256", "hmac-sha256"], [], ["ed25519"]]
)
def test_config_refuses_symmetric_or_unknown_algorithms(algorithms: list[str]) -> None:
    with pytest.raises(ConfigurationError):
        DPoPVerifier(algorithms=algorithms)


def test_config_refuses_short_nonce_secret() -> None:
    with pytest.raises(ConfigurationError):
        HMACNonceSource(b"short")


def test_make_proof_refuses_symmetric_key() -> None:
    with pytest.raises(ConfigurationError):
        make_proof(PrivateKey.generate("HS256"), "GET", URL)


# --- never a 500 ----------------------------------------------------------------------

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=8,
)


@settings(max_examples=200, deadline=None)
@given(value=st.text(max_size=400))
def test_any_dpop_header_text_is_a_401(value: str) -> None:
    with pytest.raises(InvalidDPoPProof):
        DPoPVerifier(clock=Clock()).verify(request(value))


@settings(max_examples=200, deadline=None)
@given(
    claims=st.dictionaries(st.sampled_from(["jti", "htm", "htu", "iat", "ath", "nonce"]), _json),
    jwk_extra=st.dictionaries(st.sampled_from(["kid", "alg", "use", "crv", "x"]), _json),
)
def test_any_signed_claims_or_jwk_members_give_an_apisec_error(
    es256: PrivateKey, claims: dict[str, Any], jwk_extra: dict[str, Any]
) -> None:
    header, _ = good_parts(es256)
    header["jwk"] = {**header["jwk"], **jwk_extra}
    verifier = DPoPVerifier(clock=Clock(), nonce=HMACNonceSource(b"n" * 32))
    with pytest.raises(APISecError):
        verifier.verify(request(forge(header, claims, es256)), bound_token(es256))
