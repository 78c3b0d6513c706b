"""JOSE: compact and detached JWS parse + verify, JWK / JWKS, strict JSON and base64url.

Beyond "only :class:`APISecError` escapes", each target checks a property of strictness:
whatever parses re-encodes to exactly the text that was given (so no second spelling of a
signature or key is accepted), and whatever verifies was verified by a key bound to its alg.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import suppress

from cryptography.hazmat.primitives.asymmetric import rsa

from fuzz.fixtures import KEYS, NOW, Target, mint, sign_parts
from wsgi_apisec import jws, profiles
from wsgi_apisec.algorithms import JOSE_ALGORITHMS
from wsgi_apisec.encoding import (
    b64url_decode,
    b64url_encode,
    canonical_json,
    json_dumps,
    json_loads,
)
from wsgi_apisec.errors import APISecError
from wsgi_apisec.keys import KeySet, PrivateKey, PublicKey, load_public_keys
from wsgi_apisec.message import Message

#: Random (so no seed verifies with it): RSA parse and verify paths still run.
RSA = PrivateKey.from_key(
    rsa.generate_private_key(public_exponent=65537, key_size=2048), kid="rs-1"
)
VERIFY_KEYS = [*KEYS.verifying, RSA.public_key()]
ANY_JOSE = jws.JWSPolicy(
    algorithms=JOSE_ALGORITHMS, understood_crit=frozenset({"b64", *profiles.UKOB_CRIT})
)
HEADER_CHECKS = [p.header_check for p in profiles.REGISTRY.values() if p.header_check]


# --- jws --------------------------------------------------------------------------------------


def jws_one(data: bytes) -> None:
    """First line: a compact JWS, or ``<header JSON><TAB><payload>`` that is signed here with
    the ES256 key (detached when the payload is empty); the rest: a detached payload."""
    text, _, payload = data.partition(b"\n")
    if text.startswith(b"{"):
        header, _, claims = text.partition(b"\t")
        head, body, sig = sign_parts(KEYS.es256, header, claims).split(".")
        text = f"{head}.{body if claims else ''}.{sig}".encode()
    try:
        parsed = jws.parse_compact(text)
    except APISecError:
        return
    # Strict parsing: every part is canonical, so it re-encodes to the text as sent.
    parts = text.decode("ascii").strip(" \t").split(".")
    assert b64url_encode(parsed.signature) == parts[2], "non-canonical signature accepted"
    assert parsed.header_b64 == parts[0]
    for check in HEADER_CHECKS:
        _guard(lambda check=check: check(parsed.header, Message(), NOW))
    _guard(lambda: jws.check_header(parsed, ANY_JOSE))
    for key in VERIFY_KEYS:
        detached = payload if parsed.detached else None
        try:
            done = jws.verify(parsed, key, detached)
        except APISecError:
            continue
        assert key.allows(done.alg), "verified with a key not bound to the alg"
    if not parsed.detached:
        _guard(lambda: jws.payload_of(parsed))


def _guard(call: object) -> None:
    with suppress(APISecError):
        call()  # type: ignore[operator]


def jws_seeds() -> Iterable[bytes]:
    body = b'{"amount":"10.00"}'
    es, ed = KEYS.es256, KEYS.ed25519
    yield jws.sign_detached(es, body).encode() + b"\n" + body
    yield jws.sign_detached(ed, body, b64=False).encode() + b"\n" + body
    yield jws.sign_detached(es, body, b64=False, b64_in_crit=False).encode() + b"\n" + body
    yield jws.sign(es, body, jws.build_header(es), detached=False).encode()
    yield jws.sign_detached(RSA, body, "PS256").encode() + b"\n" + body
    yield mint({"iss": "x", "exp": 1}).encode()
    ukob = profiles.ukob_header("0015800001041REAAY/abc")(Message(), NOW)
    header = jws.build_header(es, extra=ukob, crit=profiles.UKOB_CRIT)
    yield jws.sign(es, body, header).encode() + b"\n" + body
    yield json_dumps(header) + b"\t" + body
    yield json_dumps({"alg": "ES256", "b64": False, "crit": ["b64"]}) + b"\t\n" + body
    yield json_dumps({"alg": "ES256", "typ": "at+jwt"}) + b"\t" + json_dumps({"iss": "x"})


# --- jwk ----------------------------------------------------------------------------------------


def jwk_one(data: bytes) -> None:
    """The bytes as a JWK, a JWKS and a key file; a key that loads must round-trip."""
    loaded: list[PublicKey] = []
    loaders: tuple[Callable[[], list[PublicKey]], ...] = (
        lambda: [PublicKey.from_jwk(data)],
        lambda: [PublicKey.from_jwk(data, allow_symmetric=True)],
        lambda: list(KeySet.from_jwks(data, allow_symmetric=True)),
        lambda: load_public_keys(data),
    )
    for load in loaders:
        with suppress(APISecError):
            loaded.extend(load())
    for key in loaded:
        thumbprint = key.thumbprint() if not isinstance(key.key, bytes) else None
        if thumbprint is None:
            continue
        again = PublicKey.from_jwk(key.to_jwk())
        assert again.thumbprint() == thumbprint, "JWK does not round-trip"


def jwk_seeds() -> Iterable[bytes]:
    for key in (KEYS.es256, KEYS.ed25519, RSA):
        yield json_dumps(key.to_jwk())
        yield json_dumps({"keys": [key.to_jwk()]})
    yield json_dumps({"kty": "oct", "k": b64url_encode(b"k" * 32), "alg": "HS256"})
    yield json_dumps({"keys": [KEYS.es256.to_jwk(), {"kty": "EC", "use": "enc"}]})
    yield json_dumps(KEYS.es256.to_jwk(private=True))
    yield json_dumps(KEYS.ed25519.to_jwk(private=True))


# --- encoding ---------------------------------------------------------------------------------


def encoding_one(data: bytes) -> None:
    try:
        raw = b64url_decode(data)
    except APISecError:
        raw = None
    if raw is not None:  # only the canonical spelling decodes
        assert b64url_encode(raw).encode() == data, "non-canonical base64url accepted"
    try:
        value = json_loads(data)
    except APISecError:
        return
    for spelling in (canonical_json(value), canonical_json(value, False), json_dumps(value)):
        assert json_loads(spelling) == value, "JSON does not round-trip"


def encoding_seeds() -> Iterable[bytes]:
    yield b"eyJhbGciOiJFUzI1NiJ9"
    yield b"AQAB"
    yield b'{"a":[1,2.5e3,-0.0,true,null,"\\u00e9\\ud83d\\ude00"],"b":{"c":"d"}}'
    yield b"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]"
    yield b'{"n":123456789012345678901,"f":1e400}'


TARGETS = {
    "jws": Target(jws_one, jws_seeds),
    "jwk": Target(jwk_one, jwk_seeds),
    "encoding": Target(encoding_one, encoding_seeds),
}
