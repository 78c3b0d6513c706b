"""Detached JWS interop between ``apisec`` and two peer libraries, joserfc and jwcrypto:
each way, for RFC 7515 App. F (b64 true) and RFC 7797 (b64 false, with ``crit``), and for
RS256, PS256, ES256, EdDSA and its RFC 9864 name Ed25519. Where a peer documents a
limitation (OCEN's ``b64: false`` without ``crit``, UK OB ``crit`` names, the deprecated
``EdDSA`` name) the test states it."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from joserfc import jws as joserfc_jws
from joserfc.errors import (
    BadSignatureError,
    MissingCritHeaderError,
    SecurityWarning,
    UnsupportedAlgorithmError,
    UnsupportedHeaderError,
)
from joserfc.jwk import KeySet, import_key
from joserfc.registry import HeaderParameter
from jwcrypto.common import JWSEHeaderParameter
from jwcrypto.jwk import JWK, JWKSet
from jwcrypto.jws import JWS, InvalidJWSObject, InvalidJWSSignature

from wsgi_apisec.cli import UKOB_IAT, UKOB_ISS, UKOB_TAN, main
from wsgi_apisec.encoding import canonical_json

BODY = b'{"loanApplications":[{"id":"LA-1","amount":"5000.00"}],"note":"a.b ~ \\u00e9"}'
#: (JOSE alg, keygen alg, joserfc key type)
ALGS = [
    ("RS256", "RS256", "RSA"),
    ("PS256", "PS256", "RSA"),
    ("ES256", "ES256", "EC"),
    ("EdDSA", "EdDSA", "OKP"),
    ("Ed25519", "EdDSA", "OKP"),
]
B64 = [pytest.param(True, id="b64-rfc7515-appF"), pytest.param(False, id="unencoded-rfc7797")]


@dataclass(frozen=True)
class KeyFiles:
    private: Path
    public_pem: bytes
    jwks: Path
    kty: str


def cli(*argv: str, stdin: bytes = b"") -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), stdin=io.BytesIO(stdin), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, KeyFiles]:
    """One key per keygen algorithm, made with ``apisec keygen``; its JWKS via ``apisec jwks``."""
    path = tmp_path_factory.mktemp("interop")
    out: dict[str, KeyFiles] = {}
    for _, keygen_alg, kty in ALGS:
        if keygen_alg in out:
            continue
        private = path / f"{keygen_alg}.pem"
        assert cli("keygen", "--alg", keygen_alg, "--out", str(private))[0] == 0
        jwks = path / f"{keygen_alg}.jwks.json"
        code, text, _ = cli("jwks", str(private), "--kid", "peer")
        assert code == 0
        jwks.write_text(text)
        loaded = serialization.load_pem_private_key(private.read_bytes(), password=None)
        public_pem = loaded.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        out[keygen_alg] = KeyFiles(private, public_pem, jwks, kty)
    return out


def apisec_sign(key: KeyFiles, *argv: str, body: bytes = BODY) -> str:
    code, out, err = cli("sign", "--key", str(key.private), "--kid", "peer", *argv, stdin=body)
    assert code == 0, err
    return out.strip()


def apisec_verify(key: KeyFiles, signature: str, *argv: str, body: bytes = BODY) -> int:
    code, out, err = cli(
        "verify", "--key", str(key.jwks), "--signature", signature, *argv, stdin=body
    )
    assert (code == 0) == out.startswith("valid "), (out, err)
    return code


def peer_header(alg: str, b64: bool) -> dict[str, Any]:
    header: dict[str, Any] = {"alg": alg, "kid": "peer"}
    if not b64:
        header.update(b64=False, crit=["b64"])  # RFC 7797 §6: b64 MUST be critical
    return header


@contextlib.contextmanager
def joserfc_warnings(alg: str) -> Iterator[None]:
    """joserfc marks ``EdDSA`` deprecated (RFC 9864) and warns on each use; others are silent."""
    if alg == "EdDSA":
        with pytest.warns(SecurityWarning, match="RFC 9864"):
            yield
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("error", SecurityWarning)
            yield


def b64_flag(b64: bool) -> str:
    return "--b64" if b64 else "--no-b64"


# --- apisec signs, the peer verifies ---------------------------------------------------------


@pytest.mark.parametrize("b64", B64)
@pytest.mark.parametrize(("alg", "keygen_alg", "kty"), ALGS)
def test_apisec_signature_verifies_with_joserfc(
    keys: dict[str, KeyFiles], alg: str, keygen_alg: str, kty: str, b64: bool
) -> None:
    key = keys[keygen_alg]
    signature = apisec_sign(key, "--alg", alg, b64_flag(b64))
    public = import_key(key.public_pem, kty)
    with joserfc_warnings(alg):
        obj = joserfc_jws.deserialize_compact(signature, public, algorithms=[alg], payload=BODY)
    assert obj.headers() == peer_header(alg, b64)
    with joserfc_warnings(alg), pytest.raises(BadSignatureError):
        joserfc_jws.deserialize_compact(signature, public, algorithms=[alg], payload=BODY + b" ")


@pytest.mark.parametrize("b64", B64)
@pytest.mark.parametrize(("alg", "keygen_alg", "kty"), ALGS)
def test_apisec_signature_verifies_with_jwcrypto(
    keys: dict[str, KeyFiles], alg: str, keygen_alg: str, kty: str, b64: bool
) -> None:
    key = keys[keygen_alg]
    signature = apisec_sign(key, "--alg", alg, b64_flag(b64))
    public = JWK.from_pem(key.public_pem)
    token = JWS()
    token.deserialize(signature)
    token.verify(public, detached_payload=BODY)
    assert token.jose_header == peer_header(alg, b64)
    tampered = JWS()
    tampered.deserialize(signature)
    with pytest.raises(InvalidJWSSignature):
        tampered.verify(public, detached_payload=BODY + b" ")


@pytest.mark.parametrize(("alg", "keygen_alg", "kty"), ALGS)
def test_apisec_jwks_is_read_by_both_peers(
    keys: dict[str, KeyFiles], alg: str, keygen_alg: str, kty: str
) -> None:
    key = keys[keygen_alg]
    signature = apisec_sign(key, "--alg", alg)
    jwks_text = key.jwks.read_text()
    token = JWS()
    token.deserialize(signature)
    token.verify(JWKSet.from_json(jwks_text), detached_payload=BODY)  # found by kid
    key_set = KeySet.import_key_set(json.loads(jwks_text))
    with joserfc_warnings(alg):
        joserfc_jws.deserialize_compact(signature, key_set, algorithms=[alg], payload=BODY)


# --- the peer signs, apisec verifies ---------------------------------------------------------


@pytest.mark.parametrize("b64", B64)
@pytest.mark.parametrize(("alg", "keygen_alg", "kty"), ALGS)
def test_joserfc_signature_verifies_with_apisec(
    keys: dict[str, KeyFiles], alg: str, keygen_alg: str, kty: str, b64: bool
) -> None:
    key = keys[keygen_alg]
    private = import_key(key.private.read_bytes(), kty)
    with joserfc_warnings(alg):
        compact = joserfc_jws.serialize_compact(
            peer_header(alg, b64), BODY, private, algorithms=[alg]
        )
    detached = joserfc_jws.detach_content(compact)
    assert detached.split(".")[1] == ""
    assert apisec_verify(key, detached) == 0
    assert apisec_verify(key, detached, body=BODY + b" ") == 1


@pytest.mark.parametrize("b64", B64)
@pytest.mark.parametrize(("alg", "keygen_alg", "kty"), ALGS)
def test_jwcrypto_signature_verifies_with_apisec(
    keys: dict[str, KeyFiles], alg: str, keygen_alg: str, kty: str, b64: bool
) -> None:
    key = keys[keygen_alg]
    token = JWS(BODY)
    token.add_signature(
        JWK.from_pem(key.private.read_bytes()), None, protected=json.dumps(peer_header(alg, b64))
    )
    token.detach_payload()
    detached = token.serialize(compact=True)
    assert detached.split(".")[1] == ""
    assert apisec_verify(key, detached) == 0
    assert apisec_verify(key, detached, body=BODY + b" ") == 1


# --- documented differences ------------------------------------------------------------------


def test_ocen_b64_false_without_crit_joserfc_refuses_jwcrypto_verifies(
    keys: dict[str, KeyFiles],
) -> None:
    """OCEN's reference code omits ``crit`` (against RFC 7797 §6). joserfc enforces §6 both
    ways; jwcrypto enforces it only when signing and verifies such a JWS as if it were
    critical. apisec accepts it under ``--profile ocen`` only."""
    key = keys["RS256"]
    signature = apisec_sign(key, "--profile", "ocen")
    header = json.loads(base64.urlsafe_b64decode(signature.split(".")[0] + "=="))
    assert "crit" not in header and header["b64"] is False
    public, private = key.public_pem, key.private.read_bytes()
    with pytest.raises(MissingCritHeaderError):
        joserfc_jws.deserialize_compact(signature, import_key(public, "RSA"), ["RS256"], None, BODY)
    with pytest.raises(MissingCritHeaderError):
        joserfc_jws.serialize_compact(
            {"alg": "RS256", "b64": False}, BODY, import_key(private, "RSA"), ["RS256"]
        )
    token = JWS()
    token.deserialize(signature)
    token.verify(JWK.from_pem(public), detached_payload=BODY)  # lenient
    with pytest.raises(InvalidJWSObject, match="must always be critical"):
        JWS(BODY).add_signature(
            JWK.from_pem(private), None, protected=json.dumps({"alg": "RS256", "b64": False})
        )
    assert apisec_verify(key, signature) == 1
    assert apisec_verify(key, signature, "--profile", "ocen") == 0


def test_ukob_crit_names_must_be_registered_with_both_peers(keys: dict[str, KeyFiles]) -> None:
    """RFC 7515 §4.1.11: a verifier rejects ``crit`` names it does not understand; the UK OB
    names verify with each peer only once they are declared to it."""
    key = keys["PS256"]
    signature = apisec_sign(key, "--profile", "ukob", "--ukob-iss", "me")
    public = import_key(key.public_pem, "RSA")
    with pytest.raises(UnsupportedHeaderError):
        joserfc_jws.deserialize_compact(signature, public, ["PS256"], payload=BODY)
    registry = joserfc_jws.JWSRegistry(
        header_registry={
            UKOB_IAT: HeaderParameter("UK OB iat", "int"),
            UKOB_ISS: HeaderParameter("UK OB iss", "str"),
            UKOB_TAN: HeaderParameter("UK OB tan", "str"),
        },
        algorithms=["PS256"],
    )
    joserfc_jws.deserialize_compact(signature, public, registry=registry, payload=BODY)
    plain = JWS()
    plain.deserialize(signature)
    with pytest.raises(InvalidJWSSignature):
        plain.verify(JWK.from_pem(key.public_pem), detached_payload=BODY)
    declared = JWS(
        header_registry={
            name: JWSEHeaderParameter(name, True, True, None) for name in (UKOB_IAT, UKOB_ISS)
        }
        | {UKOB_TAN: JWSEHeaderParameter(UKOB_TAN, True, True, None)}
    )
    declared.deserialize(signature)
    declared.verify(JWK.from_pem(key.public_pem), detached_payload=BODY)


def test_joserfc_needs_eddsa_allowed_explicitly(keys: dict[str, KeyFiles]) -> None:
    """joserfc's default algorithms are HS256, RS256 and ES256 only."""
    signature = apisec_sign(keys["EdDSA"], "--alg", "EdDSA")
    public = import_key(keys["EdDSA"].public_pem, "OKP")
    with pytest.raises(UnsupportedAlgorithmError, match="not recommended"):
        joserfc_jws.deserialize_compact(signature, public, payload=BODY)


@pytest.mark.parametrize("peer", ["joserfc", "jwcrypto"])
def test_openg2p_signature_verifies_with_peer_over_canonical_json(
    keys: dict[str, KeyFiles], peer: str
) -> None:
    """OpenG2P signs the canonical JSON of the body; a peer verifies given that payload."""
    key = keys["RS256"]
    wire = b'{ "message": {"b": 1, "a": [true, null]},\n "header": {"sender_id": "x"} }'
    signature = apisec_sign(key, "--profile", "openg2p", body=wire)
    payload = canonical_json(json.loads(wire))
    if peer == "joserfc":
        public = import_key(key.public_pem, "RSA")
        obj = joserfc_jws.deserialize_compact(signature, public, ["RS256"], payload=payload)
        assert obj.headers()["typ"] == "JWT"
    else:
        token = JWS()
        token.deserialize(signature)
        token.verify(JWK.from_pem(key.public_pem), detached_payload=payload)
        with pytest.raises(InvalidJWSSignature):
            token.verify(JWK.from_pem(key.public_pem), detached_payload=wire)
