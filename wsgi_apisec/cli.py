"""The ``apisec`` command line: keys, JWKS, thumbprints, detached JWS sign / verify / inspect.

The exit status is a contract scripts rely on: ``0`` success; ``1`` the input (a JWS, a
body, a token) failed verification or could not be parsed, with one line on stderr;
``2`` a usage or configuration error (bad option, unreadable or unusable key file).
Key files are PEM (key or certificate), a JWK, or (where public keys are read) a JWKS.
``sign`` and ``verify`` run the library's own profiles (:mod:`wsgi_apisec.profiles`) over BODY.
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
from dataclasses import dataclass
from typing import Any, BinaryIO, TextIO

from cryptography.hazmat.primitives import serialization

from . import jws, profiles
from .detached import DetachedJWS
from .encoding import json_loads, json_object
from .errors import APISecError, ConfigurationError, MalformedSignature, ParseError, SignatureError
from .jws import JWSPolicy
from .keys import KeySet, PrivateKey, PublicKey, load_private_key, load_public_keys
from .message import Body, Headers, Message
from .profiles import UKOB_CRIT, UKOB_IAT, UKOB_ISS, UKOB_TAN, ukob_checks, ukob_header
from .resolvers import KeyQuery, select
from .signatures import Profile, RequestVerifier, ResponseSigner

__all__ = ["UKOB_IAT", "UKOB_ISS", "UKOB_TAN", "UsageError", "main", "read_key_file"]

MAX_KEY_FILE = 1024 * 1024
#: ``inspect`` reads tokens larger than a verifier would accept, to show what they hold.
MAX_INSPECT = 256 * 1024
KEYGEN_ALGORITHMS = ("RS256", "PS256", "ES256", "ES384", "EdDSA")
UKOB_TAN_DEFAULT = "openbanking.org.uk"
#: How far in the future a UK OB ``iat`` may be (clock skew between the parties).
UKOB_IAT_LEEWAY = 60
#: What ``sign --profile ukob`` puts in the header besides iat/iss/tan.
UKOB_MEDIA = {"typ": "JOSE", "cty": "application/json"}


class UsageError(Exception):
    """A bad option or an unusable key file: exit status 2."""


def read_key_file(path: str) -> bytes:
    """The bytes of a key / certificate / JWK(S) file, at most :data:`MAX_KEY_FILE`."""
    with open(path, "rb") as fh:
        data = fh.read(MAX_KEY_FILE + 1)
    if len(data) > MAX_KEY_FILE:
        raise ConfigurationError(f"{path}: larger than {MAX_KEY_FILE} bytes")
    return data


# --- profiles: the library's detached-JWS profiles, adjusted by the options ------------------


def _detached_profiles() -> Mapping[str, Profile]:
    return {n: p for n, p in profiles.REGISTRY.items() if isinstance(p.mechanism, DetachedJWS)}


def _policy(profile: Profile) -> JWSPolicy:
    if profile.jws_policy is None:
        raise ConfigurationError(f"profile {profile.name} has no JWS policy")
    return profile.jws_policy


def _is_ukob(profile: Profile) -> bool:
    return set(UKOB_CRIT) <= set(profile.sign_crit)


def _check_b64(profile: Profile, b64: bool | None) -> None:
    if b64 is not None and b64 not in _policy(profile).b64:
        raise UsageError(f"profile {profile.name} does not allow b64={str(b64).lower()}")


def _sign_profile(profile: Profile, args: argparse.Namespace, key: PrivateKey) -> Profile:
    b64 = profile.sign_b64 if args.b64 is None else args.b64
    alg = _sign_alg(profile, args.alg, key)
    _check_b64(profile, b64)
    if "kid" in _policy(profile).required and key.kid is None:
        raise UsageError(f"profile {profile.name} needs a kid: --kid, or a JWK with a kid")
    # BODY is all the CLI signs: an empty one is not replaced by the request path.
    changes: dict[str, Any] = {"sign_alg": alg, "sign_b64": b64, "bodiless": "empty"}
    if _is_ukob(profile):
        if args.ukob_iss is None:
            raise UsageError("profile ukob needs --ukob-iss")
        members = ukob_header(args.ukob_iss, args.ukob_tan)
        changes["sign_header"] = lambda msg, now: {**UKOB_MEDIA, **members(msg, now)}
    return profile.replace(**changes)


def _sign_alg(profile: Profile, requested: str | None, key: PrivateKey) -> str | None:
    alg = requested
    if alg is not None and alg not in profile.algorithms:
        raise UsageError(f"algorithm {alg[:32]!r} is not allowed by this profile")
    if alg is None and len(profile.algorithms) == 1:
        (alg,) = profile.algorithms
    if alg is not None and not key.allows(alg):
        raise UsageError(f"the key cannot sign with {alg}")
    if alg is None and not key.jose_algorithms & profile.algorithms:
        raise UsageError("the key fits no algorithm of this profile")
    return alg  # None: jws.build_header picks the key's preferred algorithm


def _verify_profile(profile: Profile, args: argparse.Namespace) -> Profile:
    algs = profile.algorithms & frozenset(args.alg or profile.algorithms)
    if not algs or (args.alg and not set(args.alg) <= profile.algorithms):
        raise UsageError(f"--alg must name algorithms of profile {profile.name}")
    _check_b64(profile, args.b64)
    policy = _policy(profile)
    b64 = policy.b64 if args.b64 is None else frozenset({args.b64})
    # The key comes from --key, not from a participant named by a token or the body.
    changes: dict[str, Any] = {
        "algorithms": algs,
        "jws_policy": dataclasses.replace(policy, algorithms=algs, b64=b64),
        "key_owner": None,
        "bodiless": "empty",
    }
    if _is_ukob(profile):
        iss = args.ukob_iss
        required = policy.required | set(UKOB_CRIT)  # names the missing member, if one is
        changes["jws_policy"] = dataclasses.replace(changes["jws_policy"], required=required)
        changes["header_check"] = ukob_checks(
            frozenset({args.ukob_tan}), lambda msg: iss, leeway=UKOB_IAT_LEEWAY
        )
    return profile.replace(**changes)


class _KeyFile:
    """The keys of one key file as a :class:`~wsgi_apisec.resolvers.KeyResolver`. A ``kid``
    on both sides must match; a key without one (PEM cannot carry one) may still verify."""

    def __init__(self, keys: list[PublicKey]) -> None:
        self.keys = KeySet(keys)
        self.unnamed = KeySet(k for k in keys if k.kid is None)

    def resolve(self, query: KeyQuery) -> list[PublicKey]:
        if query.kid is not None and not self.keys.candidates(query.kid, query.alg):
            found = self.unnamed.candidates(None, query.alg)
            if found:
                return found
        return select(self.keys, query)


def _message(profile: Profile, body: bytes, signature: str | None = None) -> Message:
    headers = Headers([(profile.header_names[0], signature)] if signature is not None else [])
    return Message(method="POST", headers=headers, body=Body(body))


def _check_json(profile: Profile, body: bytes) -> None:
    """A body that must be canonicalised must be JSON: the reason goes out as it was found."""
    if profile.payload == "canonical_json":
        json_loads(body, "body")


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
    with _config():
        key = load_private_key(read_key_file(args.key))
    if args.kid is not None:
        key = dataclasses.replace(key, kid=args.kid)
    profile = _sign_profile(_detached_profiles()[args.profile], args, key)
    body = _read_body(args.body, io)
    _check_json(profile, body)
    ((_, signature),) = ResponseSigner(profile, key, clock=io.clock).sign(_message(profile, body))
    io.stdout.write(signature + "\n")
    return 0


def _verify(args: argparse.Namespace, io: _IO) -> int:
    profile = _verify_profile(_detached_profiles()[args.profile], args)
    with _config():
        keys = load_public_keys(read_key_file(args.key))
    if args.signature == "-" and args.body == "-":
        raise UsageError("the signature and the body cannot both come from stdin")
    signature = _read_value(args.signature, io, jws.MAX_JWS_LENGTH)
    body = _read_body(args.body, io)
    if not jws.parse_compact(signature).detached:
        raise SignatureError("JWS carries a payload but a detached one was expected")
    _check_json(profile, body)
    message = _message(profile, body, signature.decode("ascii"))
    result = RequestVerifier(profile, _KeyFile(keys), clock=io.clock).verify(message)
    kid = f" kid={_word(result.kid)}" if result.kid is not None else ""
    io.stdout.write(f"valid alg={result.alg}{kid}\n")
    return 0


def _word(value: str) -> str:
    """``value`` as one word on the output line, JSON-quoted when it is not one already."""
    plain = value.isprintable() and value and not any(c.isspace() for c in value)
    return value if plain else json.dumps(value)


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
    p.add_argument("--profile", choices=sorted(_detached_profiles()), default="jws")
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
