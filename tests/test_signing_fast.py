"""The fast paths of signing: one-shot sign/verify next to the incremental context, the
fixed-width ECDSA signature sliced out of DER, the remembered key-class checks, the prepared
detached-JWS signer behind :class:`ResponseSigner`, and the response clean-ups."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa, utils

from wsgi_apisec import jws, profiles
from wsgi_apisec.algorithms import ALGORITHMS, _fixed_width
from wsgi_apisec.encoding import b64url_decode, b64url_encode
from wsgi_apisec.errors import SignatureError
from wsgi_apisec.keys import PrivateKey
from wsgi_apisec.message import Body, Headers, Message
from wsgi_apisec.resolvers import StaticKeyResolver
from wsgi_apisec.responses import ClosingIterable
from wsgi_apisec.signatures import RequestVerifier, ResponseSigner

HASHED = ["RS256", "RS512", "PS256", "PS384", "ES256", "ES384", "ES512"]
CURVES = [
    (ec.SECP256R1, hashes.SHA256, 32),
    (ec.SECP384R1, hashes.SHA384, 48),
    (ec.SECP521R1, hashes.SHA512, 66),
]


@pytest.fixture(scope="module")
def keys() -> dict[str, PrivateKey]:
    return {alg: PrivateKey.generate(alg) for alg in HASHED}


@pytest.mark.parametrize("alg", HASHED)
def test_one_shot_and_incremental_signatures_are_interchangeable(
    keys: dict[str, PrivateKey], alg: str
) -> None:
    algorithm, key = ALGORITHMS[alg], keys[alg]
    data = b"header.payload" * 50
    one_shot = algorithm.sign(key.key, data)
    ctx = algorithm.context(key.key)
    ctx.update(data[:7])
    ctx.update(memoryview(data)[7:])
    incremental = ctx.sign()
    public = key.public_key().key
    for signature in (one_shot, incremental):
        assert algorithm.verify(public, data, signature)
        check = algorithm.context(public)
        check.update(data)
        assert check.verify(signature)
        assert not algorithm.verify(public, data + b"!", signature)


@pytest.mark.parametrize(("curve", "hash_", "size"), CURVES, ids=["P-256", "P-384", "P-521"])
def test_rfc7518_s3_4_fixed_width_r_s_matches_the_der_decoder(
    curve: type, hash_: type, size: int
) -> None:
    key = ec.generate_private_key(curve())
    ders = [key.sign(i.to_bytes(4, "big"), ec.ECDSA(hash_())) for i in range(400)]
    # Short and top-bit-set integers: leading-zero removal and the 0x00 sign octet.
    top = 2 ** (8 * size - 1) if size != 66 else 2**520
    ders += [utils.encode_dss_signature(r, s) for r, s in ((1, 1), (top, 2), (255, top - 1))]
    for der in ders:
        r, s = utils.decode_dss_signature(der)
        assert _fixed_width(der, size) == r.to_bytes(size, "big") + s.to_bytes(size, "big")


@pytest.mark.parametrize("alg", ["ES256", "RS256"])
def test_keys_of_the_wrong_kind_are_refused_every_time(
    keys: dict[str, PrivateKey], alg: str
) -> None:
    algorithm = ALGORITHMS[alg]
    wrong = [
        b"secret" * 8,
        ec.generate_private_key(ec.SECP384R1()),
        rsa.generate_private_key(65537, 1024),
    ]
    wrong.append(keys["RS256"].key if alg == "ES256" else keys["ES256"].key)
    for _ in range(2):  # the second time the class check comes from memory
        assert algorithm.accepts(keys[alg].key)
        for key in wrong:
            assert not algorithm.accepts(key)
            with pytest.raises(SignatureError, match="cannot be used with"):
                algorithm.sign(key, b"x")  # type: ignore[arg-type]
            with pytest.raises(SignatureError, match="cannot be used with"):
                algorithm.verify(key, b"x", b"sig")  # type: ignore[arg-type]


def response(body: bytes) -> Message:
    request = Message("POST", "https://api.example/x", Headers(), Body(b"{}"))
    return Message(status=200, headers=Headers(), body=Body(body), request=request)


def test_prepared_signer_signs_each_body_with_one_header() -> None:
    key = PrivateKey.generate("ES256", kid="server")
    profile = profiles.JWS.replace(sign_alg="ES256")
    signer = ResponseSigner(profile, key)
    verifier = RequestVerifier(profiles.JWS, StaticKeyResolver([key.public_key()]))
    values = []
    for body in (b'{"a":1}', b"", b"x" * 5000):
        [(name, value)] = signer.sign(response(body))
        assert name == "x-jws-signature"
        message = Message(headers=Headers([(name, value)]), body=Body(body))
        assert verifier.verify(message).kid == "server"
        with pytest.raises(SignatureError):
            verifier.verify(Message(headers=Headers([(name, value)]), body=Body(body + b" ")))
        values.append(value)
    assert len({v.split(".")[0] for v in values}) == 1
    # The mechanism's own sign() gives the same header.
    [(_, direct)] = profile.mechanism.sign(profile, response(b"{}"), key, 0.0)
    assert direct.split(".")[0] == values[0].split(".")[0]


def test_per_message_header_members_are_not_prepared() -> None:
    key = PrivateKey.generate("PS256", kid="ob")
    now = [1_700_000_000.0]
    profile = profiles.UKOB.replace(sign_header=profiles.ukob_header("org/ssa"))
    signer = ResponseSigner(profile, key, clock=lambda: now[0])
    first = signer.sign(response(b"{}"))[0][1]
    now[0] += 5
    second = signer.sign(response(b"{}"))[0][1]
    iat = [jws.parse_compact(v).header[profiles.UKOB_IAT] for v in (first, second)]
    assert iat == [1_700_000_000, 1_700_000_005]


def test_a_key_that_cannot_sign_fails_on_each_message_not_at_construction() -> None:
    key = PrivateKey.generate("ES256", kid="server")
    signer = ResponseSigner(profiles.JWS.replace(sign_alg="RS256"), key)
    for _ in range(2):
        with pytest.raises(SignatureError, match="key cannot sign with RS256"):
            signer.sign(response(b"{}"))


def test_pep3333_close_runs_every_cleanup_and_raises_the_last_error() -> None:
    ran: list[str] = []

    class Closable(list[bytes]):
        def close(self) -> None:
            ran.append("iterable")

    def fail(name: str) -> None:
        ran.append(name)
        raise RuntimeError(name)

    ClosingIterable(Closable([b"a"]), lambda: ran.append("one"), lambda: ran.append("two")).close()
    assert ran == ["iterable", "one", "two"]
    ran.clear()
    closing = ClosingIterable(
        Closable(), lambda: fail("one"), lambda: ran.append("two"), lambda: fail("three")
    )
    with pytest.raises(RuntimeError, match="three") as info:
        closing.close()
    assert ran == ["iterable", "one", "two", "three"]
    assert isinstance(info.value.__context__, RuntimeError) and str(info.value.__context__) == "one"


def test_signature_of_in_memory_body_is_over_its_bytes() -> None:
    key = PrivateKey.generate("ES256")
    data = b"body bytes"
    token = jws.sign(key, Body(data), {"alg": "ES256"})
    head, _, sig = token.split(".")
    signing_input = f"{head}.{b64url_encode(data)}".encode()
    raw = b64url_decode(sig)
    der = utils.encode_dss_signature(
        int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
    )
    public: Any = key.public_key().key
    public.verify(der, signing_input, ec.ECDSA(hashes.SHA256()))
    assert hashlib.sha256(signing_input).digest()
