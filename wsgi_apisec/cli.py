"""The ``apisec`` command line: keys, JWKS, thumbprints, detached JWS sign / verify / inspect.

The exit status is a contract scripts rely on: ``0`` success; ``1`` the input (a JWS, a
body, a token) failed verification or could not be parsed, with one line on stderr;
``2`` a usage or configuration error (bad option, unreadable or unusable key file).
Key files are PEM (key or certificate), a JWK, or (where public keys are read) a JWKS.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import dataclasses
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, BinaryIO, TextIO

from cryptography.hazmat.primitives import serialization

from . import jws
from .algorithms import JOSE_ALGORITHMS, SYMMETRIC
from .encoding import canonical_json, json_loads, json_object
from .errors import (
    APISecError,
    ConfigurationError,
    MalformedSignature,
    ParseError,
    SignatureError,
    UnknownKey,
)
from .keys import KeySet, PrivateKey, PublicKey

MAX_KEY_FILE = 1024 * 1024
#: ``inspect`` reads tokens larger than a verifier would accept, to show what they hold.
MAX_INSPECT = 256 * 1024
KEYGEN_ALGORITHMS = ("RS256", "PS256", "ES256", "ES384", "EdDSA")
ASYMMETRIC = JOSE_ALGORITHMS - SYMMETRIC

UKOB_IAT = "http://openbanking.org.uk/iat"
UKOB_ISS = "http://openbanking.org.uk/iss"
UKOB_TAN = "http://openbanking.org.uk/tan"
UKOB_CRIT = (UKOB_IAT, UKOB_ISS, UKOB_TAN)
UKOB_TAN_DEFAULT = "openbanking.org.uk"
#: How far in the future a UK OB ``iat`` may be (clock skew between the parties).
UKOB_IAT_LEEWAY = 60


class UsageError(Exception):
    """A bad option or an unusable key file: exit status 2."""


# --- key files -----------------------------------------------------------------------------


def read_key_file(path: str) -> bytes:
    """The bytes of a key / certificate / JWK(S) file, at most :data:`MAX_KEY_FILE`."""
    with open(path, "rb") as fh:
        data = fh.read(MAX_KEY_FILE + 1)
    if len(data) > MAX_KEY_FILE:
        raise ConfigurationError(f"{path}: larger than {MAX_KEY_FILE} bytes")
    return data


def _is_pem(data: bytes) -> bool:
    return data.lstrip().startswith(b"-----BEGIN ")


def load_private_key(data: bytes, *, kid: str | None = None) -> PrivateKey:
    """A signing key from PEM (PKCS#8, PKCS#1, SEC1) or a private JWK; ``kid`` overrides."""
    if _is_pem(data):
        return PrivateKey.from_pem(data, kid=kid)
    obj = json_object(data, "key file")
    if obj.get("kty") == "oct":
        raise ConfigurationError("symmetric keys are not accepted here")
    if "d" not in obj:
        raise ConfigurationError("the JWK holds no private key")
    key = PrivateKey.from_jwk(obj)
    return key if kid is None else dataclasses.replace(key, kid=kid)


def load_public_keys(data: bytes) -> list[PublicKey]:
    """Verification keys from PEM (public key, certificate, or a private key's public half),
    a JWK (public or private) or a JWKS. Symmetric keys are refused."""
    if _is_pem(data):
        return [PublicKey.from_pem(data)]
    obj = json_object(data, "key file")
    if "keys" in obj:
        keys = list(KeySet.from_jwks(obj))
        if not keys:
            raise ConfigurationError("the JWKS holds no usable signing key")
        return keys
    if "d" in obj and obj.get("kty") != "oct":
        return [PrivateKey.from_jwk(obj).public_key()]
    return [PublicKey.from_jwk(obj)]


# --- profiles ------------------------------------------------------------------------------


@dataclass(frozen=True)
class CLIProfile:
    """How ``sign`` builds and ``verify`` checks a detached JWS for one network."""

    algorithms: frozenset[str]
    b64: frozenset[bool] = frozenset({True, False})
    default_b64: bool = True
    #: ``sign``: list ``b64`` in ``crit`` when it is false (RFC 7797 §6).
    b64_in_crit: bool = True
    #: ``verify``: accept ``b64: false`` without ``crit`` (OCEN's reference code only).
    b64_without_crit: bool = False
    #: The payload is the canonical JSON of the parsed body (OpenG2P), not the raw bytes.
    canonical: bool = False
    kid_required: bool = False
    #: ``verify``: a ``kid`` on both sides must match. OCEN finds the key by participant,
    #: not by ``kid``, so it ignores it.
    match_kid: bool = True
    extra: Mapping[str, Any] = field(default_factory=dict)
    crit: tuple[str, ...] = ()


PROFILES: Mapping[str, CLIProfile] = {
    "jws": CLIProfile(ASYMMETRIC),
    "ocen": CLIProfile(
        frozenset({"RS256"}),
        default_b64=False,
        b64_in_crit=False,
        b64_without_crit=True,
        match_kid=False,
    ),
    "ukob": CLIProfile(
        frozenset({"PS256"}),
        kid_required=True,
        extra={"typ": "JOSE", "cty": "application/json"},
        crit=UKOB_CRIT,
    ),
    "openg2p": CLIProfile(
        frozenset({"RS256"}), b64=frozenset({True}), canonical=True, extra={"typ": "JWT"}
    ),
}


def _ukob_check(iss: str | None, tan: str, now: float) -> Callable[[Mapping[str, Any]], None]:
    def check(header: Mapping[str, Any]) -> None:
        # UK OB JWS profile: iat, iss and tan MUST be listed in crit.
        if not set(UKOB_CRIT) <= set(header.get("crit", ())):
            raise SignatureError("UK OB crit must list iat, iss and tan")
        iat = header[UKOB_IAT]
        if isinstance(iat, bool) or not isinstance(iat, int | float):
            raise SignatureError("UK OB iat must be a number")
        # UK OB JWS profile: iat MUST NOT be in the future (beyond clock skew).
        if iat > now + UKOB_IAT_LEEWAY:
            raise SignatureError("UK OB iat is in the future")
        if not isinstance(header[UKOB_ISS], str) or (iss is not None and header[UKOB_ISS] != iss):
            raise SignatureError("UK OB iss is not the expected party")
        if header[UKOB_TAN] != tan:
            raise SignatureError("UK OB tan is not the trusted anchor")

    return check


def _policy(
    prof: CLIProfile, algs: frozenset[str], args: argparse.Namespace, now: float
) -> jws.JWSPolicy:
    checks = (_ukob_check(args.ukob_iss, args.ukob_tan, now),) if prof.crit else ()
    return jws.JWSPolicy(
        algorithms=algs,
        understood_crit=frozenset({"b64", *prof.crit}),
        b64=prof.b64 if args.b64 is None else prof.b64 & {args.b64},
        b64_without_crit=prof.b64_without_crit,
        required=frozenset(prof.crit) | ({"kid"} if prof.kid_required else frozenset()),
        header_checks=checks,
    )


# --- commands --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _IO:
    stdin: BinaryIO
    stdout: TextIO
    stderr: TextIO
    clock: Callable[[], float]


@contextlib.contextmanager
def _config() -> Iterator[None]:
    """Failures while reading configuration (key files, options) are usage errors."""
    try:
        yield
    except (APISecError, OSError) as exc:
        raise UsageError(_reason(exc)) from exc


def _reason(exc: BaseException) -> str:
    if isinstance(exc, APISecError):
        return f"{exc.code}: {exc.description}"
    if isinstance(exc, OSError):
        return f"{exc.filename}: {exc.strerror}" if exc.filename else str(exc)
    return str(exc)


def _read_body(name: str, io: _IO) -> bytes:
    with _config():
        if name == "-":
            return io.stdin.read()
        with open(name, "rb") as fh:
            return fh.read()


def _read_value(value: str, io: _IO, limit: int) -> bytes:
    """A literal, ``@FILE``, or ``-`` for stdin; surrounding whitespace removed."""
    with _config():
        if value == "-":
            data = io.stdin.read(limit + 1)
        elif value.startswith("@"):
            with open(value[1:], "rb") as fh:
                data = fh.read(limit + 1)
        else:
            data = value.encode("utf-8", "replace")
    if len(data) > limit:
        raise MalformedSignature(f"input is longer than {limit} bytes")
    return data.strip()


def _keygen(args: argparse.Namespace, io: _IO) -> int:
    if args.kid is not None and args.format == "pem":
        raise UsageError("PEM cannot carry a kid: use --format jwk, or --kid on jwks/sign")
    key = PrivateKey.generate(args.alg, kid=args.kid, rsa_bits=args.bits)
    if args.format == "jwk":
        key = dataclasses.replace(key, kid=args.kid or key.thumbprint())
        # The chosen name, not an alias the key also allows (EdDSA vs RFC 9864 Ed25519).
        jwk = {**key.to_jwk(private=True), "alg": args.alg}
        data = json.dumps(jwk, indent=2).encode() + b"\n"
    else:
        data = key.to_pem()
    if args.out is None:
        io.stdout.write(data.decode("ascii"))
    else:
        with _config():
            _write_private(args.out, data)
    return 0


def _write_private(path: str, data: bytes) -> None:
    """Write atomically, mode 0600 from the start, so the key is never world-readable."""
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), prefix=".apisec-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _jwks(args: argparse.Namespace, io: _IO) -> int:
    for name, values in (("--kid", args.kid), ("--alg", args.alg)):
        if values and len(values) != len(args.files):
            raise UsageError(f"give {name} once per file ({len(args.files)}) or not at all")
    out: list[dict[str, Any]] = []
    for i, path in enumerate(args.files):
        with _config():
            keys = load_public_keys(read_key_file(path))
            if (args.kid or args.alg) and len(keys) != 1:
                raise UsageError(f"{path}: --kid/--alg need a file with exactly one key")
            out.extend(
                _public_jwk(k, args.kid and args.kid[i], args.alg and args.alg[i]) for k in keys
            )
    kids = [jwk["kid"] for jwk in out]
    if len(set(kids)) != len(kids):
        raise UsageError("two keys have the same kid")
    io.stdout.write(json.dumps({"keys": out}, indent=2) + "\n")
    return 0


def _public_jwk(key: PublicKey, kid: str | None, alg: str | None) -> dict[str, Any]:
    if kid is not None or alg is not None:
        key = PublicKey.from_key(
            key.key,
            kid=kid or key.kid,
            algorithms=[alg] if alg else key.algorithms,
            certificate=key.certificate,
        )
    jwk = key.to_jwk()
    if alg is not None:
        jwk["alg"] = alg
    elif len(key.jose_algorithms) > 1:
        # An Ed25519 key answers to EdDSA and RFC 9864 Ed25519; naming one would stop peers
        # from using it for the other (RFC 7517 §4.4), so name neither unless told.
        jwk.pop("alg", None)
    jwk.setdefault("kid", key.thumbprint())  # RFC 7638 §1: a thumbprint makes a stable kid
    if key.certificate is not None:
        der = key.certificate.public_bytes(serialization.Encoding.DER)
        jwk["x5c"] = [base64.b64encode(der).decode("ascii")]  # RFC 7517 §4.7: not url-safe
        jwk["x5t#S256"] = key.x5t_s256
    return jwk


def _thumbprint(args: argparse.Namespace, io: _IO) -> int:
    with _config():
        keys = load_public_keys(read_key_file(args.file))
    for key in keys:
        x5t = None if args.rfc7638 else key.x5t_s256
        io.stdout.write((x5t or key.thumbprint()) + "\n")
    return 0


def _sign(args: argparse.Namespace, io: _IO) -> int:
    prof = PROFILES[args.profile]
    with _config():
        key = load_private_key(read_key_file(args.key), kid=args.kid)
    alg = _sign_alg(prof, args.alg, key)
    b64 = prof.default_b64 if args.b64 is None else args.b64
    if b64 not in prof.b64:
        raise UsageError(f"profile {args.profile} does not allow b64={str(b64).lower()}")
    if prof.kid_required and key.kid is None:
        raise UsageError(f"profile {args.profile} needs a kid: --kid, or a JWK with a kid")
    extra = dict(prof.extra)
    if prof.crit:
        if args.ukob_iss is None:
            raise UsageError("profile ukob needs --ukob-iss")
        extra.update({UKOB_IAT: int(io.clock()), UKOB_ISS: args.ukob_iss, UKOB_TAN: args.ukob_tan})
    body = _read_body(args.body, io)
    payload = canonical_json(json_loads(body, "body")) if prof.canonical else body
    header = jws.build_header(
        key, alg, b64=b64, b64_in_crit=prof.b64_in_crit, extra=extra, crit=prof.crit
    )
    io.stdout.write(jws.sign(key, payload, header) + "\n")
    return 0


def _sign_alg(prof: CLIProfile, requested: str | None, key: PrivateKey) -> str | None:
    alg = requested
    if alg is not None and alg not in prof.algorithms:
        raise UsageError(f"algorithm {alg[:32]!r} is not allowed by this profile")
    if alg is None and len(prof.algorithms) == 1:
        (alg,) = prof.algorithms
    if alg is not None and not key.allows(alg):
        raise UsageError(f"the key cannot sign with {alg}")
    if alg is None and not key.jose_algorithms & prof.algorithms:
        raise UsageError("the key fits no algorithm of this profile")
    return alg  # None: jws.build_header picks the key's preferred algorithm


def _verify(args: argparse.Namespace, io: _IO) -> int:
    prof = PROFILES[args.profile]
    algs = prof.algorithms & frozenset(args.alg or prof.algorithms)
    if not algs or (args.alg and not set(args.alg) <= prof.algorithms):
        raise UsageError(f"--alg must name algorithms of profile {args.profile}")
    if args.b64 is not None and args.b64 not in prof.b64:
        raise UsageError(f"profile {args.profile} does not allow b64={str(args.b64).lower()}")
    with _config():
        keys = load_public_keys(read_key_file(args.key))
    if args.signature == "-" and args.body == "-":
        raise UsageError("the signature and the body cannot both come from stdin")
    signature = _read_value(args.signature, io, jws.MAX_JWS_LENGTH)
    body = _read_body(args.body, io)
    parsed = jws.parse_compact(signature)
    jws.check_header(parsed, _policy(prof, algs, args, io.clock()))
    payload = canonical_json(json_loads(body, "body")) if prof.canonical else body
    error: APISecError | None = None
    for key in _candidates(keys, parsed, prof.match_kid):
        try:
            result = jws.verify(parsed, key, payload)
        except SignatureError as exc:
            error = exc
            continue
        kid = f" kid={_word(result.kid)}" if result.kid is not None else ""
        io.stdout.write(f"valid alg={result.alg}{kid}\n")
        return 0
    raise error or SignatureError("signature does not verify")


def _word(value: str) -> str:
    """``value`` as one word on the output line, JSON-quoted when it is not one already."""
    plain = value.isprintable() and value and not any(c.isspace() for c in value)
    return value if plain else json.dumps(value)


def _candidates(keys: list[PublicKey], parsed: jws.CompactJWS, match_kid: bool) -> list[PublicKey]:
    usable = [k for k in keys if k.allows(parsed.alg)]
    if match_kid and parsed.kid is not None:
        # A kid on both sides must match; a key without one may still verify.
        named = [k for k in usable if k.kid == parsed.kid]
        usable = named or [k for k in usable if k.kid is None]
    if not usable:
        kid = f" with kid {parsed.kid[:64]!r}" if parsed.kid else ""
        raise UnknownKey(f"no key{kid} for {parsed.alg}")
    return usable


def _inspect(args: argparse.Namespace, io: _IO) -> int:
    parsed = jws.parse_compact(_read_value(args.token, io, MAX_INSPECT), max_length=MAX_INSPECT)
    report: dict[str, Any] = {"verified": False, "header": parsed.header}
    report["detached"] = parsed.detached
    if not parsed.detached and parsed.b64:
        payload = jws.payload_of(parsed)
        try:
            report["claims"] = json_object(payload, "payload")
        except ParseError:
            report["payload_bytes"] = len(payload)
    elif not parsed.detached:
        report["payload_bytes"] = len(parsed.payload_b64)
    io.stderr.write("UNVERIFIED: the signature was not checked\n")
    io.stdout.write(json.dumps(report, indent=2) + "\n")
    return 0


# --- argument parsing ------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="apisec", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_key_commands(sub)
    _add_jws_commands(sub)
    return parser


def _add_key_commands(sub: Any) -> None:
    p = sub.add_parser("keygen", help="generate a private key (PKCS#8 PEM or private JWK)")
    p.add_argument("--alg", required=True, choices=KEYGEN_ALGORITHMS)
    p.add_argument("--kid", help="the key's kid (JWK format only; PEM cannot carry one)")
    p.add_argument("--format", choices=("pem", "jwk"), default="pem")
    p.add_argument("--bits", type=int, choices=(2048, 3072, 4096), default=2048, help="RSA size")
    p.add_argument("--out", help="write to this file (mode 0600) instead of stdout")
    p.set_defaults(handler=_keygen)
    p = sub.add_parser("jwks", help="public JWKS of key / certificate / JWK(S) files")
    p.add_argument("files", nargs="+", metavar="KEY_OR_CERT")
    p.add_argument("--kid", action="append", help="kid per file, in order (default: RFC 7638)")
    p.add_argument("--alg", action="append", help="alg per file, in order (binds the key)")
    p.set_defaults(handler=_jwks)
    p = sub.add_parser("thumbprint", help="x5t#S256 of a certificate, RFC 7638 of a key")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--rfc7638", action="store_true", help="key thumbprint even for a certificate")
    p.set_defaults(handler=_thumbprint)


def _add_jws_commands(sub: Any) -> None:
    p = sub.add_parser("sign", help="detached JWS over BODY (file, or - for stdin)")
    p.add_argument("--key", required=True, help="private key: PEM or private JWK")
    p.add_argument("--kid", help="kid for the header (overrides the key file's)")
    _common(p, alg_action="store")
    p.set_defaults(handler=_sign)
    p = sub.add_parser("verify", help="verify a detached JWS over BODY")
    p.add_argument("--key", required=True, help="public key, certificate, JWK or JWKS")
    p.add_argument("--signature", required=True, help="the JWS, @FILE, or - for stdin")
    _common(p, alg_action="append")
    p.set_defaults(handler=_verify)
    p = sub.add_parser("inspect", help="decode a JWS / JWT without verifying it")
    p.add_argument("token", metavar="TOKEN_OR_JWS", help="the token, @FILE, or - for stdin")
    p.set_defaults(handler=_inspect)


def _common(p: argparse.ArgumentParser, alg_action: str) -> None:
    p.add_argument("--profile", choices=sorted(PROFILES), default="jws")
    many = "allowed algorithm, repeatable" if alg_action == "append" else "algorithm"
    p.add_argument("--alg", action=alg_action, help=f"{many} (default: the profile's)")
    p.add_argument(
        "--b64",
        action=argparse.BooleanOptionalAction,
        help="base64url payload (RFC 7515) or not (RFC 7797); default: the profile's",
    )
    p.add_argument("--ukob-iss", help="UK OB iss: set when signing, required value on verify")
    p.add_argument("--ukob-tan", default=UKOB_TAN_DEFAULT, help="UK OB trusted anchor")
    p.add_argument("body", nargs="?", default="-", metavar="BODY", help="file, or - (stdin)")


def main(
    argv: list[str] | None = None,
    *,
    stdin: BinaryIO | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    clock: Callable[[], float] = time.time,
) -> int:
    """Run ``apisec`` with ``argv``; returns the exit status (0, 1 or 2). The streams and
    the clock (UK OB ``iat``) are injectable so tests run it in-process."""
    io = _IO(stdin or sys.stdin.buffer, stdout or sys.stdout, stderr or sys.stderr, clock)
    try:
        with contextlib.redirect_stdout(io.stdout), contextlib.redirect_stderr(io.stderr):
            args = _parser().parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 2
    prefix = f"apisec {args.command}"
    try:
        code: int = args.handler(args, io)
    except (UsageError, ConfigurationError) as exc:
        io.stderr.write(f"{prefix}: error: {_line(exc)}\n")
        return 2
    except APISecError as exc:
        io.stderr.write(f"{prefix}: {_line(exc)}\n")
        return 1
    return code


def _line(exc: Exception) -> str:
    return " ".join(_reason(exc).split())


if __name__ == "__main__":
    sys.exit(main())
