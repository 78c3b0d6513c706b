"""The ``apisec`` command line: every command, exit status 0 / 1 / 2, stdin and file bodies,
the network profiles against the shared vectors, and garbage into every command."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import stat
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.certs import make_cert, pem
from wsgi_apisec import jws, profiles
from wsgi_apisec.cli import UKOB_IAT, UKOB_ISS, UKOB_TAN, main
from wsgi_apisec.detached import DetachedJWS
from wsgi_apisec.encoding import b64url_decode, b64url_encode, json_dumps
from wsgi_apisec.errors import SignatureError
from wsgi_apisec.keys import PrivateKey, PublicKey
from wsgi_apisec.message import Body, Headers, Message
from wsgi_apisec.resolvers import StaticKeyResolver
from wsgi_apisec.signatures import RequestVerifier

REPO_ROOT = Path(__file__).resolve().parents[1]
VECTORS = REPO_ROOT.parent / "shared" / "vectors"
NOW = 1_700_000_000.0
BODY = b'{"amount": "10.00", "currency": "INR"}\n'
UKOB_ISS_VALUE = "0015800001041REAAY/abcdef"

needs_vectors = pytest.mark.skipif(not VECTORS.is_dir(), reason="shared vectors absent")


@dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str


def run(*argv: str, stdin: bytes = b"", clock: Callable[[], float] = lambda: NOW) -> Run:
    """Run ``main`` in-process with captured streams."""
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), stdin=io.BytesIO(stdin), stdout=out, stderr=err, clock=clock)
    return Run(code, out.getvalue(), err.getvalue())


def run_process(*argv: str, stdin: bytes = b"") -> Run:
    proc = subprocess.run(
        [sys.executable, "-m", "wsgi_apisec.cli", *argv],
        input=stdin,
        capture_output=True,
        cwd=REPO_ROOT,
        timeout=60,
        check=False,
    )
    return Run(proc.returncode, proc.stdout.decode(), proc.stderr.decode())


def assert_failed(result: Run, code: int, reason: str = "") -> None:
    """Exit ``code``, nothing on stdout, one line on stderr containing ``reason``."""
    assert result.code == code, result
    assert result.out == ""
    assert result.err.endswith("\n") and result.err.count("\n") == 1, result.err
    assert "Traceback" not in result.err
    assert reason in result.err


def header_of(signature: str) -> dict[str, Any]:
    value = json.loads(b64url_decode(signature.split(".")[0]))
    assert isinstance(value, dict)
    return value


@pytest.fixture(scope="module")
def keydir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One key per algorithm, made by ``apisec keygen`` itself, plus derived files."""
    path = tmp_path_factory.mktemp("keys")
    for alg in ("RS256", "PS256", "ES256", "EdDSA"):
        assert run("keygen", "--alg", alg, "--out", str(path / f"{alg}.pem")).code == 0
    result = run("keygen", "--alg", "ES256", "--format", "jwk", "--kid", "ec-1")
    (path / "ec-1.jwk").write_text(result.out)
    rsa = PrivateKey.from_pem((path / "RS256.pem").read_bytes())
    (path / "RS256.pub.pem").write_bytes(
        rsa.key.public_key().public_bytes(  # type: ignore[union-attr]
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    (path / "oct.jwk").write_text(json.dumps({"kty": "oct", "k": b64url_encode(b"s" * 32)}))
    (path / "body.json").write_bytes(BODY)
    (path / "garbage").write_bytes(b"\x00\xffnot a key\n")
    return path


@pytest.fixture(scope="module")
def cert_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cert") / "client.pem"
    path.write_text(pem(make_cert("client")))
    return path


# --- keygen -----------------------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["RS256", "PS256", "ES256", "ES384", "EdDSA"])
def test_keygen_prints_pkcs8_pem_for_alg(alg: str) -> None:
    result = run("keygen", "--alg", alg)
    assert result.code == 0 and result.err == ""
    assert result.out.startswith("-----BEGIN PRIVATE KEY-----\n")  # PKCS#8, nothing else
    assert result.out.endswith("-----END PRIVATE KEY-----\n")
    assert PrivateKey.from_pem(result.out).allows(alg)


def test_keygen_out_writes_file_mode_0600_and_nothing_on_stdout(tmp_path: Path) -> None:
    target = tmp_path / "k.pem"
    target.write_text("old")
    target.chmod(0o644)
    result = run("keygen", "--alg", "ES256", "--out", str(target))
    assert (result.code, result.out, result.err) == (0, "", "")
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert PrivateKey.from_pem(target.read_bytes()).allows("ES256")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k.pem"]  # no temporary left


def test_keygen_jwk_format_carries_kid_and_alg() -> None:
    jwk = json.loads(run("keygen", "--alg", "PS256", "--format", "jwk", "--kid", "k1").out)
    assert (jwk["kid"], jwk["alg"], jwk["use"], jwk["kty"]) == ("k1", "PS256", "sig", "RSA")
    assert "d" in jwk
    key = PrivateKey.from_jwk(jwk)
    assert key.kid == "k1" and key.allows("PS256") and not key.allows("RS256")


def test_keygen_jwk_default_kid_is_rfc7638_thumbprint() -> None:
    jwk = json.loads(run("keygen", "--alg", "EdDSA", "--format", "jwk").out)
    assert jwk["kid"] == PrivateKey.from_jwk(jwk).thumbprint()
    assert jwk["alg"] == "EdDSA"


def test_keygen_kid_with_pem_is_a_usage_error() -> None:
    assert_failed(run("keygen", "--alg", "ES256", "--kid", "x"), 2, "PEM cannot carry a kid")


@pytest.mark.parametrize("argv", [["--alg", "HS256"], ["--alg", "none"], [], ["--bits", "1024"]])
def test_keygen_bad_options_exit_2(argv: list[str]) -> None:
    result = run("keygen", *argv)
    assert result.code == 2 and result.out == "" and "usage: apisec keygen" in result.err


def test_keygen_unwritable_out_exits_2(tmp_path: Path) -> None:
    assert_failed(run("keygen", "--alg", "ES256", "--out", str(tmp_path / "no" / "k")), 2)


# --- jwks -------------------------------------------------------------------------------------


def test_jwks_of_private_pem_is_public_with_thumbprint_kid(keydir: Path) -> None:
    result = run("jwks", str(keydir / "RS256.pem"))
    assert result.code == 0 and result.err == ""
    (jwk,) = json.loads(result.out)["keys"]
    assert set(jwk) == {"kty", "n", "e", "use", "kid"}  # no private members, no alg (RSA PEM)
    key = PublicKey.from_jwk(jwk)
    assert jwk["kid"] == key.thumbprint() and jwk["use"] == "sig"


def test_jwks_kid_and_alg_per_file(keydir: Path) -> None:
    files = [str(keydir / "RS256.pem"), str(keydir / "EdDSA.pem")]
    result = run("jwks", *files, "--kid", "r", "--kid", "e", "--alg", "PS256", "--alg", "EdDSA")
    keys = json.loads(result.out)["keys"]
    assert [(k["kid"], k["alg"]) for k in keys] == [("r", "PS256"), ("e", "EdDSA")]


def test_jwks_keeps_kid_and_alg_of_a_jwk_file(keydir: Path) -> None:
    (jwk,) = json.loads(run("jwks", str(keydir / "ec-1.jwk")).out)["keys"]
    assert (jwk["kid"], jwk["alg"]) == ("ec-1", "ES256") and "d" not in jwk


def test_jwks_merges_a_jwks_file(keydir: Path, tmp_path: Path) -> None:
    first = run("jwks", str(keydir / "RS256.pem"), str(keydir / "ec-1.jwk")).out
    (tmp_path / "old.json").write_text(first)
    result = run("jwks", str(tmp_path / "old.json"), str(keydir / "EdDSA.pem"))
    assert [k["kty"] for k in json.loads(result.out)["keys"]] == ["RSA", "EC", "OKP"]


def test_jwks_of_certificate_adds_x5c_and_x5t_s256(cert_file: Path) -> None:
    (jwk,) = json.loads(run("jwks", str(cert_file)).out)["keys"]
    der = x509.load_pem_x509_certificate(cert_file.read_bytes()).public_bytes(
        serialization.Encoding.DER
    )
    assert jwk["x5c"] == [base64.b64encode(der).decode()]  # RFC 7517 §4.7: standard base64
    assert jwk["x5t#S256"] == b64url_encode(hashlib.sha256(der).digest())
    assert (jwk["kty"], jwk["crv"], jwk["alg"]) == ("EC", "P-256", "ES256")


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        (["--kid", "a"], "once per file"),
        (["--alg", "ES256"], "config.invalid"),
        (["--kid", "same", "--kid", "same"], "same kid"),
    ],
)
def test_jwks_usage_errors_exit_2(keydir: Path, extra: list[str], reason: str) -> None:
    files = [str(keydir / "RS256.pem"), str(keydir / "PS256.pem")]
    if extra[0] == "--alg":
        files = files[:1]
    assert_failed(run("jwks", *files, *extra), 2, reason)


@pytest.mark.parametrize("name", ["garbage", "oct.jwk", "missing"])
def test_jwks_unusable_file_exits_2(keydir: Path, name: str) -> None:
    assert_failed(run("jwks", str(keydir / name)), 2, "apisec jwks: error:")


def test_jwks_without_files_exits_2() -> None:
    assert run("jwks").code == 2


# --- thumbprint --------------------------------------------------------------------------------


@needs_vectors
def test_thumbprint_rfc8705_s3_1_x5t_s256_of_rfc9440_certificate() -> None:
    vector = json.loads((VECTORS / "rfc8705" / "derived_x5t_s256_rfc9440_cert.json").read_text())
    result = run("thumbprint", str(VECTORS / "rfc9440" / "client_end_entity.pem"))
    assert (result.code, result.out) == (0, vector["x5t#S256"] + "\n")


@needs_vectors
def test_thumbprint_rfc7638_s3_jkt_of_rfc9449_example_key(tmp_path: Path) -> None:
    vectors = json.loads((VECTORS / "rfc9449" / "examples.json").read_text())
    proof = vectors["s4_1_token_request_proof"]["DPoP"]
    (tmp_path / "k.jwk").write_text(json.dumps(header_of(proof)["jwk"]))
    result = run("thumbprint", str(tmp_path / "k.jwk"))
    assert (result.code, result.out) == (0, vectors["jkt_of_example_key"] + "\n")


def test_thumbprint_same_for_pem_and_jwk_of_one_key(keydir: Path, tmp_path: Path) -> None:
    (tmp_path / "k.json").write_text(run("jwks", str(keydir / "RS256.pem")).out)
    by_pem = run("thumbprint", str(keydir / "RS256.pub.pem")).out
    assert by_pem == run("thumbprint", str(keydir / "RS256.pem")).out
    assert by_pem == run("thumbprint", str(tmp_path / "k.json")).out


def test_thumbprint_rfc7638_flag_on_certificate(cert_file: Path) -> None:
    cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    expected = PublicKey.from_certificate(cert).thumbprint()
    assert run("thumbprint", "--rfc7638", str(cert_file)).out == expected + "\n"


@pytest.mark.parametrize("name", ["garbage", "oct.jwk", "missing"])
def test_thumbprint_unusable_file_exits_2(keydir: Path, name: str) -> None:
    assert_failed(run("thumbprint", str(keydir / name)), 2)


# --- sign ------------------------------------------------------------------------------------


def _verify_with_library(signature: str, key_file: Path, body: bytes) -> jws.VerifiedJWS:
    parsed = jws.parse_compact(signature)
    key = PublicKey.from_pem(key_file.read_bytes())
    return jws.verify(parsed, key, body)


def test_sign_jws_default_is_detached_b64_true(keydir: Path) -> None:
    result = run("sign", "--key", str(keydir / "PS256.pem"), str(keydir / "body.json"))
    assert result.code == 0 and result.err == ""
    signature = result.out.strip()
    assert signature.split(".")[1] == ""  # RFC 7515 App. F: detached
    assert header_of(signature) == {"alg": "PS256"}
    assert _verify_with_library(signature, keydir / "PS256.pem", BODY).b64


def test_sign_no_b64_lists_b64_in_crit_rfc7797_s6(keydir: Path) -> None:
    signature = run("sign", "--key", str(keydir / "ES256.pem"), "--no-b64", "--kid", "k9").out
    header = header_of(signature)
    assert header == {"alg": "ES256", "kid": "k9", "b64": False, "crit": ["b64"]}


def test_sign_stdin_and_file_bodies_give_the_same_signature(keydir: Path) -> None:
    key = str(keydir / "EdDSA.pem")  # Ed25519 is deterministic
    from_file = run("sign", "--key", key, str(keydir / "body.json")).out
    from_stdin = run("sign", "--key", key, stdin=BODY).out
    assert from_file == from_stdin == run("sign", "--key", key, "-", stdin=BODY).out
    assert header_of(from_file) == {"alg": "EdDSA"}


def test_sign_alg_option_and_jwk_key(keydir: Path) -> None:
    signature = run("sign", "--key", str(keydir / "RS256.pem"), "--alg", "RS256", stdin=BODY).out
    assert header_of(signature)["alg"] == "RS256"
    signature = run("sign", "--key", str(keydir / "ec-1.jwk"), stdin=BODY).out
    assert header_of(signature) == {"alg": "ES256", "kid": "ec-1"}


@needs_vectors
def test_sign_ocen_reproduces_derived_vector_byte_for_byte() -> None:
    vector = json.loads((VECTORS / "ocen_style" / "detached_rs256_b64false.json").read_text())
    key = VECTORS / "rfc9421" / "keys" / "test-key-rsa.jwk.json"
    result = run("sign", "--profile", "ocen", "--key", str(key), stdin=vector["body_utf8"].encode())
    assert result.out == vector["detached_jws"] + "\n"  # b64:false WITHOUT crit, as OCEN does


@needs_vectors
def test_sign_openg2p_reproduces_derived_vector_byte_for_byte() -> None:
    vector = json.loads(
        (VECTORS / "openg2p_style" / "detached_rs256_canonical_json.json").read_text()
    )
    key = VECTORS / "rfc9421" / "keys" / "test-key-rsa.jwk.json"
    body = vector["wire_body_utf8"].encode()
    result = run("sign", "--profile", "openg2p", "--key", str(key), stdin=body)
    assert result.out == vector["Signature"] + "\n"


def test_sign_ukob_header_has_kid_iat_iss_tan_in_crit(keydir: Path) -> None:
    argv = ["sign", "--profile", "ukob", "--key", str(keydir / "PS256.pem"), "--kid", "ob-1"]
    result = run(*argv, "--ukob-iss", UKOB_ISS_VALUE, stdin=BODY)
    header = header_of(result.out)
    assert header["alg"] == "PS256" and header["kid"] == "ob-1"
    assert (header[UKOB_IAT], header[UKOB_ISS], header[UKOB_TAN]) == (
        int(NOW),
        UKOB_ISS_VALUE,
        "openbanking.org.uk",
    )
    assert header["crit"] == [UKOB_IAT, UKOB_ISS, UKOB_TAN]
    legacy = header_of(run(*argv, "--ukob-iss", "x", "--no-b64", stdin=BODY).out)
    assert legacy["b64"] is False and set(legacy["crit"]) == {"b64", UKOB_IAT, UKOB_ISS, UKOB_TAN}


@pytest.mark.parametrize(
    ("argv", "reason"),
    [
        (["--profile", "ukob", "--ukob-iss", "x"], "needs a kid"),
        (["--profile", "ukob", "--kid", "k"], "needs --ukob-iss"),
        (["--profile", "ocen", "--alg", "PS256"], "not allowed by this profile"),
        (["--profile", "openg2p", "--no-b64"], "does not allow b64=false"),
        (["--alg", "HS256"], "not allowed by this profile"),
        (["--alg", "ES256"], "cannot sign with ES256"),
        (["--profile", "nope"], "invalid choice"),
    ],
)
def test_sign_usage_errors_exit_2(keydir: Path, argv: list[str], reason: str) -> None:
    result = run("sign", "--key", str(keydir / "PS256.pem"), *argv, stdin=BODY)
    assert result.code == 2 and result.out == "" and reason in result.err


@pytest.mark.parametrize("name", ["garbage", "oct.jwk", "missing", "RS256.pub.pem", "body.json"])
def test_sign_unusable_key_exits_2(keydir: Path, name: str) -> None:
    assert_failed(run("sign", "--key", str(keydir / name), stdin=BODY), 2, "apisec sign: error:")


def test_sign_ec_key_under_rs256_profile_exits_2(keydir: Path) -> None:
    assert_failed(run("sign", "--profile", "ocen", "--key", str(keydir / "ES256.pem")), 2)


def test_sign_missing_body_file_exits_2(keydir: Path) -> None:
    result = run("sign", "--key", str(keydir / "ES256.pem"), str(keydir / "nope"))
    assert_failed(result, 2, "No such file")


def test_sign_openg2p_body_not_json_exits_1(keydir: Path) -> None:
    result = run("sign", "--profile", "openg2p", "--key", str(keydir / "RS256.pem"), stdin=b"{x")
    assert_failed(result, 1, "request.malformed: body is not valid JSON")


# --- verify ------------------------------------------------------------------------------------


def sign(keydir: Path, key: str, *argv: str, body: bytes = BODY) -> str:
    result = run("sign", "--key", str(keydir / key), *argv, stdin=body)
    assert result.code == 0, result
    return result.out.strip()


def verify(key: Path, signature: str, *argv: str, body: bytes = BODY) -> Run:
    return run("verify", "--key", str(key), "--signature", signature, *argv, stdin=body)


@pytest.mark.parametrize("alg", ["RS256", "PS256", "ES256", "EdDSA"])
@pytest.mark.parametrize("b64", ["--b64", "--no-b64"])
def test_verify_round_trip(keydir: Path, alg: str, b64: str) -> None:
    signature = sign(keydir, f"{alg}.pem", "--alg", alg, "--kid", "k", b64)
    result = verify(keydir / f"{alg}.pem", signature)
    assert (result.code, result.out, result.err) == (0, f"valid alg={alg} kid=k\n", "")
    assert_failed(verify(keydir / f"{alg}.pem", signature, body=BODY + b" "), 1)


def test_verify_body_from_file_and_signature_from_file(keydir: Path, tmp_path: Path) -> None:
    signature = sign(keydir, "ES256.pem")
    (tmp_path / "sig").write_text(signature + "\n")
    key, body = str(keydir / "ES256.pem"), str(keydir / "body.json")
    result = run("verify", "--key", key, "--signature", f"@{tmp_path / 'sig'}", body)
    assert (result.code, result.out) == (0, "valid alg=ES256\n")
    piped = run("verify", "--key", key, "--signature", "-", body, stdin=signature.encode())
    assert piped.code == 0


def test_verify_tampered_body_exits_1_with_one_line(keydir: Path) -> None:
    signature = sign(keydir, "PS256.pem")
    result = verify(keydir / "PS256.pem", signature, body=BODY.replace(b"10", b"99"))
    assert_failed(result, 1, "apisec verify: signature.invalid: signature does not verify")


def test_verify_with_other_key_exits_1(keydir: Path) -> None:
    signature = sign(keydir, "PS256.pem")
    assert_failed(verify(keydir / "RS256.pub.pem", signature), 1, "signature does not verify")


def test_verify_with_key_of_other_type_exits_1_unknown_key(keydir: Path) -> None:
    signature = sign(keydir, "PS256.pem")
    assert_failed(verify(keydir / "ES256.pem", signature), 1, "signature.unknown_key")


def test_verify_alg_outside_allow_list_exits_1(keydir: Path) -> None:
    signature = sign(keydir, "PS256.pem")
    result = verify(keydir / "PS256.pem", signature, "--alg", "RS256")
    assert_failed(result, 1, "algorithm 'PS256' is not allowed here")
    assert verify(keydir / "PS256.pem", signature, "--alg", "RS256", "--alg", "PS256").code == 0


def test_verify_alg_outside_profile_exits_2(keydir: Path) -> None:
    signature = sign(keydir, "PS256.pem")
    result = verify(keydir / "PS256.pem", signature, "--profile", "ocen", "--alg", "PS256")
    assert_failed(result, 2, "--alg must name algorithms of profile ocen")


def test_verify_jwks_picks_key_by_kid(keydir: Path, tmp_path: Path) -> None:
    files = [str(keydir / "PS256.pem"), str(keydir / "RS256.pem")]
    (tmp_path / "jwks.json").write_text(run("jwks", *files, "--kid", "a", "--kid", "b").out)
    signature = sign(keydir, "RS256.pem", "--kid", "b")
    assert verify(tmp_path / "jwks.json", signature).out == "valid alg=PS256 kid=b\n"
    unknown = sign(keydir, "RS256.pem", "--kid", "c")
    assert_failed(verify(tmp_path / "jwks.json", unknown), 1, "no key with kid 'c' for PS256")


def test_verify_kid_on_one_side_only_still_verifies(keydir: Path) -> None:
    signature = sign(keydir, "ES256.pem", "--kid", "sender-1")
    assert verify(keydir / "ES256.pem", signature).out == "valid alg=ES256 kid=sender-1\n"


def test_verify_certificate_as_key(cert_file: Path) -> None:
    signature = b64url_encode(json_dumps({"alg": "ES256"})) + "..AAAA"
    result = verify(cert_file, signature)
    assert_failed(result, 1, "signature does not verify")  # loaded and tried, not refused


def _forge(keydir: Path, key: str, header: dict[str, Any], body: bytes = BODY) -> str:
    """A detached JWS with any header, made with the library (not the CLI's profiles)."""
    private = PrivateKey.from_pem((keydir / key).read_bytes())
    return jws.sign(private, body, header)


def test_verify_b64_false_without_crit_rejected_by_jws_rfc7797_s6(keydir: Path) -> None:
    signature = _forge(keydir, "RS256.pem", {"alg": "RS256", "b64": False})
    result = verify(keydir / "RS256.pem", signature)
    assert_failed(result, 1, "'b64' must be listed in 'crit'")
    accepted = verify(keydir / "RS256.pem", signature, "--profile", "ocen")
    assert accepted.out == "valid alg=RS256\n"


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ({"alg": "none"}, "algorithm 'none' is not supported"),
        ({"alg": "RS256", "crit": ["exp"], "exp": 1}, "'exp' is not understood"),
        ({"alg": "RS256", "jku": "https://evil.example/jwks"}, "'jku' is not accepted"),
        ({"alg": "HS256"}, "'HS256' is not allowed here"),
    ],
    ids=["rfc7518-s3.6-none", "rfc7515-s4.1.11-unknown-crit", "jku", "hs256-confusion"],
)
def test_verify_rejects_header(keydir: Path, header: dict[str, Any], reason: str) -> None:
    signature = b64url_encode(json_dumps(header)) + ".." + b64url_encode(b"x" * 256)
    assert_failed(verify(keydir / "RS256.pem", signature), 1, reason)


@needs_vectors
@pytest.mark.parametrize("profile", ["ocen", "jws"])
def test_verify_ocen_derived_vector(profile: str) -> None:
    vector = json.loads((VECTORS / "ocen_style" / "detached_rs256_b64false.json").read_text())
    key = VECTORS / "rfc9421" / "keys" / "test-key-rsa.jwk.json"
    body = vector["body_utf8"].encode()
    result = verify(key, vector["detached_jws"], "--profile", profile, body=body)
    if profile == "ocen":
        assert (result.code, result.out) == (0, "valid alg=RS256 kid=test-key-rsa\n")
    else:  # the strict profile holds RFC 7797 §6
        assert_failed(result, 1, "'b64' must be listed in 'crit'")


@needs_vectors
def test_verify_openg2p_derived_vector_and_canonicalisation() -> None:
    vector = json.loads(
        (VECTORS / "openg2p_style" / "detached_rs256_canonical_json.json").read_text()
    )
    key = VECTORS / "rfc9421" / "keys" / "test-key-rsa.pub.pem"
    body = vector["wire_body_utf8"].encode()
    sig = vector["Signature"]
    ok = verify(key, sig, "--profile", "openg2p", body=body)
    assert (ok.code, ok.out) == (0, "valid alg=RS256 kid=test-key-rsa\n")
    reordered = json.dumps(json.loads(body), indent=4, sort_keys=True).encode()
    assert verify(key, sig, "--profile", "openg2p", body=reordered).code == 0
    changed = body.replace(b"token:12345", b"token:12346")
    assert_failed(verify(key, sig, "--profile", "openg2p", body=changed), 1, "does not verify")
    assert_failed(verify(key, sig, "--profile", "openg2p", body=b"<xml/>"), 1, "not valid JSON")
    assert_failed(verify(key, sig, body=body), 1, "does not verify")  # raw bytes differ


@needs_vectors
@pytest.mark.parametrize("version", ["v3_1_4_plus", "v3_1_3_and_earlier_b64false"])
def test_verify_ukob_derived_vectors(version: str) -> None:
    vector = json.loads((VECTORS / "ukob_style" / "x_jws_signature_ps256.json").read_text())
    key = VECTORS / "rfc9421" / "keys" / "test-key-rsa-pss.jwk.json"
    sig, body = vector[version]["x-jws-signature"], vector["body_utf8"].encode()
    argv = ("--profile", "ukob", "--ukob-iss", UKOB_ISS_VALUE)
    ok = verify(key, sig, *argv, body=body)
    assert (ok.code, ok.out) == (0, "valid alg=PS256 kid=test-key-rsa-pss\n")
    assert_failed(verify(key, sig, "--profile", "ukob", "--ukob-iss", "other", body=body), 1)
    assert_failed(verify(key, sig, *argv, "--ukob-tan", "other.example", body=body), 1)
    assert_failed(verify(key, sig, body=body), 1, "is not understood")  # jws: OB crit unknown


def _ukob_header(**changes: Any) -> dict[str, Any]:
    header: dict[str, Any] = {
        "alg": "PS256",
        "kid": "ob",
        UKOB_IAT: int(NOW) - 10,
        UKOB_ISS: UKOB_ISS_VALUE,
        UKOB_TAN: "openbanking.org.uk",
        "crit": [UKOB_IAT, UKOB_ISS, UKOB_TAN],
    }
    header.update(changes)
    return {k: v for k, v in header.items() if v is not None}


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({}, ""),
        ({UKOB_IAT: int(NOW) + 61}, "iat is in the future"),
        ({UKOB_IAT: "yesterday"}, "iat must be a number"),
        ({UKOB_TAN: "evil.example"}, "tan is not the trusted anchor"),
        ({UKOB_ISS: "someone-else"}, "iss is not the expected party"),
        ({"crit": [UKOB_IAT, UKOB_ISS]}, "crit must list iat, iss and tan"),
        ({"kid": None}, "lacks 'kid'"),
        ({"alg": "RS256"}, "'RS256' is not allowed here"),
    ],
    ids=["valid", "iat-future", "iat-type", "tan", "iss", "crit", "kid", "alg"],
)
def test_verify_ukob_header_rules(keydir: Path, changes: dict[str, Any], reason: str) -> None:
    signature = _forge(keydir, "PS256.pem", _ukob_header(**changes))
    argv = ("--profile", "ukob", "--ukob-iss", UKOB_ISS_VALUE)
    result = verify(keydir / "PS256.pem", signature, *argv)
    if not reason:
        assert result.out == "valid alg=PS256 kid=ob\n"
    else:
        assert_failed(result, 1, reason)


def test_verify_ukob_round_trip_with_injected_clock(keydir: Path) -> None:
    key = str(keydir / "PS256.pem")
    signature = run(
        "sign", "--profile", "ukob", "--key", key, "--kid", "ob", "--ukob-iss", "me", stdin=BODY
    ).out.strip()
    argv = ["verify", "--profile", "ukob", "--key", key, "--signature", signature]
    assert run(*argv, stdin=BODY).code == 0
    earlier = run(*argv, stdin=BODY, clock=lambda: NOW - 3600)  # the verifier's clock is behind
    assert_failed(earlier, 1, "iat is in the future")


@pytest.mark.parametrize(
    "signature",
    ["", "garbage", "a.b", "a.b.c.d", "!!.e30.AA", "e30..AA", "W10..AA", "eyJhbGciOjF9..AA", "@"],
)
def test_verify_garbage_signature_exits_1(keydir: Path, signature: str) -> None:
    result = verify(keydir / "ES256.pem", signature)
    assert result.code in (1, 2) and "Traceback" not in result.err
    assert result.code == (2 if signature == "@" else 1)
    assert result.err.count("\n") == 1


def test_verify_attached_jws_exits_1(keydir: Path) -> None:
    private = PrivateKey.from_pem((keydir / "ES256.pem").read_bytes())
    attached = jws.sign(private, BODY, {"alg": "ES256"}, detached=False)
    assert_failed(verify(keydir / "ES256.pem", attached), 1, "a detached one was expected")


@pytest.mark.parametrize("name", ["garbage", "oct.jwk", "missing", "body.json"])
def test_verify_unusable_key_exits_2(keydir: Path, name: str) -> None:
    signature = sign(keydir, "ES256.pem")
    assert_failed(verify(keydir / name, signature), 2, "apisec verify: error:")


def test_verify_usage_errors_exit_2(keydir: Path) -> None:
    key = str(keydir / "ES256.pem")
    both_stdin = run("verify", "--key", key, "--signature", "-", "-")
    assert_failed(both_stdin, 2, "cannot both come from stdin")
    assert run("verify", "--key", key).code == 2  # --signature is required
    missing_body = run("verify", "--key", key, "--signature", "e30..AA", str(keydir / "nope"))
    assert_failed(missing_body, 2, "No such file")


# --- inspect ----------------------------------------------------------------------------------


@needs_vectors
def test_inspect_rfc9449_s4_1_dpop_proof_shows_header_and_claims() -> None:
    vector = json.loads((VECTORS / "rfc9449" / "examples.json").read_text())
    proof = vector["s4_1_token_request_proof"]
    result = run("inspect", proof["DPoP"])
    assert result.code == 0
    assert result.err == "UNVERIFIED: the signature was not checked\n"
    report = json.loads(result.out)
    assert report["verified"] is False and report["detached"] is False
    assert report["header"]["typ"] == "dpop+jwt" and report["header"]["alg"] == "ES256"
    assert report["claims"] == {k: v for k, v in proof["expect"].items() if k not in ("typ", "alg")}


def test_inspect_detached_and_non_json_payload(keydir: Path, tmp_path: Path) -> None:
    detached = sign(keydir, "ES256.pem", "--kid", "k")
    report = json.loads(run("inspect", detached).out)
    assert report == {"verified": False, "header": {"alg": "ES256", "kid": "k"}, "detached": True}
    private = PrivateKey.from_pem((keydir / "ES256.pem").read_bytes())
    attached = jws.sign(private, b"\x00binary", {"alg": "ES256"}, detached=False)
    (tmp_path / "t").write_text(attached)
    report = json.loads(run("inspect", f"@{tmp_path / 't'}").out)
    assert report["payload_bytes"] == 7 and "claims" not in report
    assert json.loads(run("inspect", "-", stdin=attached.encode() + b"\n").out) == report


@pytest.mark.parametrize(
    "token",
    [
        "",
        "not-a-jwt",
        "a.b.c.d.e",  # a JWE
        "e30.e30.",  # no alg
        "bnVsbA.e30.",  # header is JSON null
        "eyJhbGciOiJFUzI1NiIsImFsZyI6Im5vbmUifQ.e30.",  # duplicate member
        "eyJhbGciOiJFUzI1NiJ9.e30=.",  # padded base64
        '{"payload":"e30","signatures":[]}',
        "x" * 300_000,
    ],
)
def test_inspect_garbage_exits_1(token: str) -> None:
    result = run("inspect", token)
    assert_failed(result, 1, "apisec inspect: signature.malformed:")


def test_inspect_binary_garbage_on_stdin_exits_1() -> None:
    assert_failed(run("inspect", "-", stdin=os.urandom(64) + b"\xff"), 1)


def test_inspect_missing_file_exits_2(tmp_path: Path) -> None:
    assert_failed(run("inspect", f"@{tmp_path / 'nope'}"), 2, "No such file")


# --- garbage into every command ----------------------------------------------------------------


@pytest.fixture(scope="module")
def signatures(keydir: Path) -> dict[str, str]:
    return {
        "ES256": sign(keydir, "ES256.pem"),
        "openg2p": sign(keydir, "RS256.pem", "--profile", "openg2p"),
    }


@settings(max_examples=30, deadline=None)
@given(data=st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_garbage_files_never_crash_any_command(
    keydir: Path, signatures: dict[str, str], data: bytes
) -> None:
    path = keydir / "fuzz"  # the module fixture is not shared between xdist workers
    path.write_bytes(data)
    signature = data.decode("latin-1")
    results = {
        "jwks": run("jwks", str(path)),
        "thumbprint": run("thumbprint", str(path)),
        "sign-key": run("sign", "--key", str(path), stdin=BODY),
        "verify-key": run("verify", "--key", str(path), "--signature", "e30..AA", stdin=BODY),
        "verify-sig": verify(keydir / "ES256.pem", "@" + str(path)),
        "verify-body": verify(keydir / "ES256.pem", signatures["ES256"], body=data),
        "openg2p-body": verify(
            keydir / "RS256.pub.pem", signatures["openg2p"], "--profile", "openg2p", body=data
        ),
        "inspect": run("inspect", "-", stdin=data),
        "inspect-arg": run("inspect", "--", signature),
    }
    for name, result in results.items():
        assert "Traceback" not in result.err, name
        if result.code != 0:
            assert result.code in (1, 2), (name, result)
            assert result.err.count("\n") == 1 and result.out == "", (name, result)
    for name in ("jwks", "thumbprint", "sign-key", "verify-key"):
        assert results[name].code == 2, (name, results[name])  # a key file: configuration
    assert results["verify-body"].code == 1 and results["verify-sig"].code == 1


# --- the real process -------------------------------------------------------------------------


def test_process_sign_from_pipe_then_verify(keydir: Path) -> None:
    key = str(keydir / "ES256.pem")
    signed = run_process("sign", "--key", key, "--kid", "p", stdin=BODY)
    assert signed.code == 0 and signed.err == ""
    ok = run_process("verify", "--key", key, "--signature", signed.out.strip(), stdin=BODY)
    assert (ok.code, ok.out, ok.err) == (0, "valid alg=ES256 kid=p\n", "")
    bad = run_process("verify", "--key", key, "--signature", signed.out.strip(), stdin=b"x")
    assert (bad.code, bad.out) == (1, "")
    assert bad.err == "apisec verify: signature.invalid: signature does not verify\n"


def test_process_usage_and_garbage_exit_codes(keydir: Path) -> None:
    assert run_process("--help").code == 0
    assert run_process().code == 2
    assert run_process("keygen", "--alg", "none").code == 2
    garbage = run_process("inspect", "-", stdin=b"\xff\xfe garbage")
    assert garbage.code == 1 and "Traceback" not in garbage.err
    key = run_process("jwks", str(keydir / "garbage"))
    assert key.code == 2 and "Traceback" not in key.err


def test_console_script_is_declared() -> None:
    setup_cfg = (REPO_ROOT / "setup.cfg").read_text()
    assert "apisec = wsgi_apisec.cli:main" in setup_cfg


def test_jwks_ed25519_key_names_no_alg_unless_told(keydir: Path) -> None:
    (jwk,) = json.loads(run("jwks", str(keydir / "EdDSA.pem")).out)["keys"]
    assert "alg" not in jwk and (jwk["kty"], jwk["crv"]) == ("OKP", "Ed25519")


def test_verify_prints_an_odd_kid_as_one_json_word(keydir: Path) -> None:
    signature = sign(keydir, "ES256.pem", "--kid", "a b\nvalid")
    result = verify(keydir / "ES256.pem", signature)
    assert result.out == 'valid alg=ES256 kid="a b\\nvalid"\n'


def test_verify_b64_option_requires_that_encoding(keydir: Path) -> None:
    encoded, unencoded = sign(keydir, "ES256.pem"), sign(keydir, "ES256.pem", "--no-b64")
    key = keydir / "ES256.pem"
    assert verify(key, encoded, "--b64").code == 0
    assert verify(key, unencoded, "--no-b64").code == 0
    assert_failed(verify(key, encoded, "--no-b64"), 1, "b64=true is not accepted here")
    assert_failed(verify(key, unencoded, "--b64"), 1, "b64=false is not accepted here")
    result = verify(key, encoded, "--profile", "openg2p", "--no-b64")
    assert_failed(result, 2, "does not allow b64=false")


# --- the CLI runs the library's profiles --------------------------------------------------------


def test_profile_choices_are_the_registered_detached_jws_profiles() -> None:
    detached = {n for n, p in profiles.REGISTRY.items() if isinstance(p.mechanism, DetachedJWS)}
    assert {"jws", "ocen", "ukob", "openg2p"} <= detached
    assert profiles.get("jws").jws_policy == jws.JWSPolicy(algorithms=profiles.JWS.algorithms)
    result = run("sign", "--profile", "g2p_connect", "--key", "k")
    assert result.code == 2 and "invalid choice" in result.err


@pytest.mark.parametrize(
    ("name", "key", "argv", "alg"),
    [
        ("ocen", "RS256.pem", (), "RS256"),
        ("ukob", "PS256.pem", ("--ukob-iss", UKOB_ISS_VALUE), "PS256"),
        ("openg2p", "RS256.pem", (), "RS256"),
        ("jws", "EdDSA.pem", ("--no-b64",), "EdDSA"),
    ],
)
def test_cli_signature_verifies_with_the_library_profile(
    keydir: Path, name: str, key: str, argv: tuple[str, ...], alg: str
) -> None:
    # OpenG2P finds the partner's key by the sender named in the body.
    body = json.dumps({"header": {"sender_id": "p1"}, "message": {"amount": "10.00"}}).encode()
    signature = sign(keydir, key, "--profile", name, "--kid", "k1", *argv, body=body)
    public = PrivateKey.from_pem((keydir / key).read_bytes(), kid="k1").public_key()
    profile = profiles.get(name)
    if name == "ocen":  # its signer is named by a verified token, which this test has not got
        profile = profile.replace(key_owner=None)
    verifier = RequestVerifier(profile, StaticKeyResolver([public], owners={"p1": [public]}))
    headers = Headers([(profile.header_names[0], signature)])
    result = verifier.verify(Message(method="POST", headers=headers, body=Body(body)))
    assert (result.profile, result.alg) == (name, alg)
    with pytest.raises(SignatureError, match="does not verify"):
        tampered = Body(body.replace(b"10.00", b"99.00"))
        verifier.verify(Message(method="POST", headers=headers, body=tampered))
