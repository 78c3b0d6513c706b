"""Project Wycheproof (C2SP/wycheproof ``testvectors_v1``) through our verifiers.

JWS file (``json_web_signature_test.json``): each case goes through ``jws.parse_compact``,
``jws.check_header`` (a policy allowing every JOSE algorithm, so the *key* is what limits the
algorithm) and ``jws.verify`` with the group's key: its public JWK, or for ``oct`` groups the
private JWK through ``PublicKey.from_jwk(..., allow_symmetric=True)``. Every ``valid`` case must
be accepted and every ``invalid`` one rejected with an :class:`APISecError` (any other
exception fails the test). A JWK we refuse to import counts as a rejection.

Harness decision: a compact JWS whose payload part is empty is, on the wire, a detached JWS
(RFC 7515 App. F). ``jws.verify`` refuses to guess that missing content is empty, so the
harness states it (``payload=b""``); that is how the ``emptyPayload`` cases verify.

Deviations, each asserted with its exact error (see ``POLICY`` and ``CONTRADICTORY``):

* tc 346, 350 (RFC 7520 Figure 20, valid): the JWK says ``"alg": "PS256"`` but the JWS uses
  PS384. A JWK ``alg`` binds the key to that algorithm (RFC 7517 §4.4) -> ``SignatureError``.
* tc 347, 351 (RFC 7520 Figure 27, valid): the JWK says ``"alg": "ES521"``, which is no
  registered algorithm -> the JWK is refused (``ConfigurationError``). For these four,
  :func:`test_rfc7520_refusals_are_policy_only` shows the signature verifies once the JWK's
  ``alg`` is removed: the refusal is policy, not broken crypto.
* tc 372, 373 (valid in the file): a ``?`` inside base64url. Our decoder accepts only
  canonical base64url (RFC 7515 §2), since a lenient one gives one signature two spellings ->
  ``MalformedSignature`` (400).
* tc 367, 370 (``invalidBase64Padding*``, invalid): in this copy the JWS is byte-identical to
  tc 357 (valid); the padding the comment names is missing, so the case contradicts itself.
  We assert the identity and test the intent instead: the same JWS with ``=`` padding is
  rejected.

``acceptable``: the JWS file has none. Of the primitive files only
``rsa_signature_2048_sha256`` tc 8 (``MissingNull``: DigestInfo without the NULL parameter)
is ``acceptable``; we **reject** acceptable cases and assert it, so that a backend change
that starts accepting them is noticed.

Primitive files: ``algorithms.ALGORITHMS[name].verify(key, msg, sig)`` with a
``cryptography`` key from the group's ``publicKeyPem``; valid -> ``True``, invalid ->
``False``, no exception. Deviations for ``hmac_sha256`` (JOSE HS256, RFC 7518 §3.2):
groups with 128-bit tags expect ``False`` even for valid cases (HS256 is the full 32-byte MAC;
a truncated tag is refused), and groups with 16-byte keys expect ``SignatureError`` (a key
shorter than the hash output MUST NOT be used).
"""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from tests.vectors import load
from wsgi_apisec import jws
from wsgi_apisec.algorithms import ALGORITHMS, JOSE_ALGORITHMS, VerifyKey
from wsgi_apisec.errors import APISecError, ConfigurationError, MalformedSignature, SignatureError
from wsgi_apisec.keys import PublicKey

ANY_JOSE = jws.JWSPolicy(algorithms=JOSE_ALGORITHMS)
JWS_FILE = "wycheproof/json_web_signature_test.json"

#: tcId -> (exact error class, fragment of its description) for documented policy refusals.
POLICY: dict[int, tuple[type[APISecError], str]] = {
    346: (SignatureError, "may not be used with PS384"),
    350: (SignatureError, "may not be used with PS384"),
    347: (ConfigurationError, "'ES521'"),
    351: (ConfigurationError, "'ES521'"),
    372: (MalformedSignature, "JWS header is not base64url"),
    373: (MalformedSignature, "JWS payload is not base64url"),
}
#: tcId -> (the tcId it duplicates, which part the named padding belongs to).
CONTRADICTORY = {367: (357, 2), 370: (357, 1)}


@dataclass(frozen=True)
class JWSCase:
    group: int
    tc: int
    jws: str
    result: str


@functools.cache
def vector(relpath: str) -> dict[str, Any]:
    data: dict[str, Any] = load(relpath)
    return data


@functools.cache
def jws_by_tc() -> dict[int, JWSCase]:
    return {
        test["tcId"]: JWSCase(index, test["tcId"], test["jws"], test["result"])
        for index, group in enumerate(vector(JWS_FILE)["testGroups"])
        for test in group["tests"]
    }


def jws_cases() -> list[Any]:
    groups = vector(JWS_FILE)["testGroups"]
    return [
        pytest.param(
            case, id=f"json_web_signature-{groups[case.group]['comment']}-tc{tc}-{case.result}"
        )
        for tc, case in jws_by_tc().items()
    ]


def group_jwk(index: int) -> dict[str, Any]:
    group = vector(JWS_FILE)["testGroups"][index]
    jwk: dict[str, Any] = group.get("public") or group["private"]
    return jwk


def run_jws(jwk: dict[str, Any], text: str) -> APISecError | None:
    """None when accepted; the APISecError when rejected; anything else propagates."""
    try:
        key = PublicKey.from_jwk(jwk, allow_symmetric=True)
        parsed = jws.parse_compact(text)
        jws.check_header(parsed, ANY_JOSE)
        jws.verify(parsed, key, b"" if parsed.detached else None)
    except APISecError as exc:
        return exc
    return None


@pytest.mark.parametrize("case", jws_cases())
def test_json_web_signature(case: JWSCase) -> None:
    if case.tc in CONTRADICTORY:
        twin, part = CONTRADICTORY[case.tc]
        assert case.jws == jws_by_tc()[twin].jws and jws_by_tc()[twin].result == "valid"
        pieces = case.jws.split(".")
        pieces[part] += "="
        outcome = run_jws(group_jwk(case.group), ".".join(pieces))
        assert type(outcome) is MalformedSignature
        return
    outcome = run_jws(group_jwk(case.group), case.jws)
    if case.tc in POLICY:
        cls, fragment = POLICY[case.tc]
        assert type(outcome) is cls and fragment in outcome.description
    elif case.result == "valid":
        assert outcome is None, repr(outcome)
    else:
        assert case.result == "invalid"
        assert isinstance(outcome, APISecError)
        assert 400 <= outcome.status < 600


@pytest.mark.parametrize(
    "tc", [pytest.param(tc, id=f"RFC7520-tc{tc}") for tc in (346, 347, 350, 351)]
)
def test_rfc7520_refusals_are_policy_only(tc: int) -> None:
    case = jws_by_tc()[tc]
    jwk = {k: v for k, v in group_jwk(case.group).items() if k != "alg"}
    assert run_jws(jwk, case.jws) is None


def test_json_web_signature_file_shape() -> None:
    data = vector(JWS_FILE)
    results = [t["result"] for g in data["testGroups"] for t in g["tests"]]
    assert len(results) == data["numberOfTests"] == 401
    assert set(results) == {"valid", "invalid"}  # no "acceptable" here


# --- raw primitives ------------------------------------------------------------------------

PRIMITIVES = {
    "ecdsa_secp256r1_sha256_p1363_test.json": "ES256",
    "ecdsa_secp384r1_sha384_p1363_test.json": "ES384",
    "ed25519_test.json": "EdDSA",
    "rsa_signature_2048_sha256_test.json": "RS256",
    "rsa_pss_2048_sha256_mgf1_32_test.json": "PS256",
    "hmac_sha256_test.json": "HS256",
}


PublicPrimitiveKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey


@dataclass(frozen=True)
class PrimitiveCase:
    file: str
    group: int
    test: dict[str, Any]


def primitive_file(name: str) -> dict[str, Any]:
    return vector(f"wycheproof/{name}")


def primitive_cases() -> list[Any]:
    params = []
    for name in PRIMITIVES:
        for index, group in enumerate(primitive_file(name)["testGroups"]):
            for test in group["tests"]:
                stem = name.removesuffix("_test.json")
                case_id = f"{stem}-tc{test['tcId']}-{test['result']}"
                params.append(pytest.param(PrimitiveCase(name, index, test), id=case_id))
    return params


@functools.cache
def group_key(name: str, index: int) -> PublicPrimitiveKey:
    pem = primitive_file(name)["testGroups"][index]["publicKeyPem"].encode("ascii")
    key = serialization.load_pem_public_key(pem)
    assert isinstance(key, PublicPrimitiveKey)
    return key


def expected(case: PrimitiveCase) -> bool | type[APISecError]:
    group = primitive_file(case.file)["testGroups"][case.group]
    if case.file.startswith("hmac"):
        if group["keySize"] < 256:
            return SignatureError  # RFC 7518 §3.2: key shorter than the hash output
        if group["tagSize"] != 256:
            return False  # HS256 is the untruncated MAC
    result: str = case.test["result"]
    return result == "valid"  # "acceptable" is rejected


@pytest.mark.parametrize("case", primitive_cases())
def test_primitive(case: PrimitiveCase) -> None:
    alg = ALGORITHMS[PRIMITIVES[case.file]]
    test = case.test
    msg = bytes.fromhex(test["msg"])
    if case.file.startswith("hmac"):
        key: VerifyKey = bytes.fromhex(test["key"])
        sig = bytes.fromhex(test["tag"])
    else:
        key, sig = group_key(case.file, case.group), bytes.fromhex(test["sig"])
    want = expected(case)
    if want is SignatureError:
        with pytest.raises(SignatureError, match="cannot be used with HS256"):
            alg.verify(key, msg, sig)
        return
    assert alg.verify(key, msg, sig) is want


def jwk_groups() -> list[Any]:
    params = []
    for name in PRIMITIVES:
        for index, group in enumerate(primitive_file(name)["testGroups"]):
            jwk = group.get("publicKeyJwk") or group.get("keyJwk")
            if jwk is not None:
                stem = name.removesuffix("_test.json")
                params.append(pytest.param(name, index, jwk, id=f"{stem}-group{index}-jwk"))
    return params


@pytest.mark.parametrize(("name", "index", "jwk"), jwk_groups())
def test_group_jwk_imports_as_the_pem_key(name: str, index: int, jwk: dict[str, Any]) -> None:
    key = PublicKey.from_jwk(copy.deepcopy(jwk))
    pem = group_key(name, index)
    raw = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    assert not isinstance(key.key, bytes)
    assert key.key.public_bytes(der, raw) == pem.public_bytes(der, raw)
    assert key.allows(PRIMITIVES[name])
