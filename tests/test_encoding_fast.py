"""The fast paths of :mod:`wsgi_apisec.encoding` and the JWS signing input give exactly what
the plain ones give: the SIMD base64 path (``pybase64``) and the standard-library fallback
accept and refuse the same strings (RFC 7515 §2: unpadded base64url, canonical trailing
bits), the signing input is the same however the payload is cut into chunks, and the JSON
decoder shortcut keeps every strictness rule."""

from __future__ import annotations

import base64
import io
import itertools
import re
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wsgi_apisec import encoding, jws
from wsgi_apisec.errors import ParseError, SignatureError
from wsgi_apisec.keys import PrivateKey
from wsgi_apisec.message import Body

ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
#: Characters a lenient decoder would take: other alphabet, padding, whitespace, junk.
NEAR_MISSES = "+/= \t\n\r!.\x00\x7f\xff\u00e9"
MODES = ["stdlib", "simd", "simd-always"]


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test with the standard library only, with SIMD above its threshold, and with
    SIMD for every size (so short strings take that path too)."""
    if request.param == "stdlib":
        monkeypatch.setattr(encoding, "_pybase64", None)
    elif encoding._pybase64 is None:
        pytest.skip("pybase64 with its C extension is not installed")
    if request.param == "simd-always":
        monkeypatch.setattr(encoding, "_SIMD_MIN", 0)
    return str(request.param)


def reference_decode(value: str | bytes) -> bytes:
    """RFC 7515 §2 the slow, obvious way: alphabet, no padding, re-encodes to itself."""
    text = value if isinstance(value, str) else value.decode("latin-1")
    if re.fullmatch(f"[{re.escape(ALPHABET)}]*", text) is None or len(text) % 4 == 1:
        raise ParseError("not base64url")
    out = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if base64.urlsafe_b64encode(out).decode().rstrip("=") != text:
        raise ParseError("not canonical")
    return out


def outcome(decode: object, value: str | bytes) -> bytes | str:
    try:
        return decode(value)  # type: ignore[operator,no-any-return]
    except ParseError:
        return "refused"


def test_rfc7515_s2_every_string_up_to_three_characters(mode: str) -> None:
    chars = ALPHABET + NEAR_MISSES
    for size in range(4):
        pool = chars if size < 3 else "AQgwBh-_+/= \n\xff"
        for combo in itertools.product(pool, repeat=size):
            text = "".join(combo)
            want = outcome(reference_decode, text)
            assert outcome(encoding.b64url_decode, text) == want, (mode, text)
            raw = text.encode("latin-1")
            assert outcome(encoding.b64url_decode, raw) == outcome(reference_decode, raw), text


@pytest.mark.parametrize("size", [1, 2, 5, 100, 190, 191, 192, 193, 1000])
@pytest.mark.parametrize(
    "kind", ["trailing-bits", "padding", "std-alphabet", "space", "newline", "tab", "non-ascii"]
)
def test_rfc7515_s2_near_misses_are_refused_above_and_below_the_simd_threshold(
    mode: str, size: int, kind: str
) -> None:
    data = bytes(range(251, 256)) * (size // 5 + 1)
    good = encoding.b64url_encode(data[:size])
    assert encoding.b64url_decode(good) == data[:size]
    if len(good) % 4 == 0 and kind in ("trailing-bits", "padding"):
        good = encoding.b64url_encode(data[: size + 1])  # these need a partial last group
    last = ALPHABET.index(good[-1])
    variant = {
        "trailing-bits": good[:-1] + ALPHABET[last | 1 if not last & 1 else last & ~1],
        "padding": good + "=" * (-len(good) % 4),
        "std-alphabet": good.replace("-", "+").replace("_", "/") + "+",
        "space": good[:2] + " " + good[2:],
        "newline": good + "\n",
        "tab": good[:1] + "\t" + good[1:],
        "non-ascii": good[:-1] + "\u00e9",
    }[kind]
    assert variant != good
    with pytest.raises(ParseError):
        encoding.b64url_decode(variant)
    with pytest.raises(ParseError):
        encoding.b64url_decode(variant.encode("utf-8"))


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.binary(max_size=700)
    | st.text(alphabet=ALPHABET + NEAR_MISSES, max_size=700)
    | st.binary(max_size=600).map(lambda b: encoding.b64url_encode(b))
)
def test_decode_agrees_with_the_reference(mode: str, value: str | bytes) -> None:
    assert outcome(encoding.b64url_decode, value) == outcome(reference_decode, value)


@pytest.mark.parametrize("size", [*range(0, 12), 191, 192, 193, 194, 4096, 4097])
def test_encode_is_unpadded_base64url_for_bytes_and_views(mode: str, size: int) -> None:
    data = bytes((i * 37) % 256 for i in range(size))
    want = base64.urlsafe_b64encode(data).decode().rstrip("=")
    assert encoding.b64url_encode(data) == want
    assert encoding.b64url_encode(memoryview(data)) == want
    assert encoding.b64url_encode_bytes(data) == want.encode()


# --- the JWS Signing Input, chunk by chunk ----------------------------------------------------

HEADER_B64 = "eyJhbGciOiJFUzI1NiJ9"


def pieces(data: bytes, cuts: list[int]) -> Iterator[bytes | memoryview]:
    view, start = memoryview(data), 0
    for index, cut in enumerate([*cuts, len(data)]):
        piece = view[start:cut]
        yield piece if index % 2 else bytes(piece)  # both kinds of chunk
        start = cut


def one_shot(data: bytes) -> bytes:
    return HEADER_B64.encode() + b"." + base64.urlsafe_b64encode(data).rstrip(b"=")


@pytest.mark.parametrize("size", [0, 1, 2, 3, 4, 7, 12, 13])
def test_rfc7515_s5_1_b64_signing_input_for_every_cut_mod_3(mode: str, size: int) -> None:
    """Chunk boundaries at every offset (so at every offset mod 3 and mod 4 of the encoded
    text), one and two cuts: the pieces join to the one-shot encoding."""
    data = bytes(range(100, 100 + size))
    for first in range(size + 1):
        for second in range(first, size + 1):
            got = b"".join(
                bytes(p) for p in jws.signing_input(HEADER_B64, pieces(data, [first, second]), True)
            )
            assert got == one_shot(data), (first, second)


@pytest.mark.parametrize("chunk", [1, 2, 3, 4, 5, 64 * 1024 + 1])
def test_rfc7515_s5_1_b64_signing_input_for_irregular_chunks(mode: str, chunk: int) -> None:
    data = bytes((i * 7) % 256 for i in range(200_003))
    cuts = list(range(chunk, len(data), chunk))[:50_000]
    got = b"".join(bytes(p) for p in jws.signing_input(HEADER_B64, pieces(data, cuts), True))
    assert got == one_shot(data)


def test_rfc7797_s3_unencoded_signing_input_is_the_bytes(mode: str) -> None:
    data = b"$.02 \x00\xff"
    got = b"".join(bytes(p) for p in jws.signing_input(HEADER_B64, pieces(data, [1, 5]), False))
    assert got == HEADER_B64.encode() + b"." + data


def spooled(data: bytes) -> Body:
    return Body(file=io.BytesIO(data), length=len(data))


@pytest.mark.parametrize("b64", [True, False], ids=["b64", "rfc7797-unencoded"])
@pytest.mark.parametrize("size", [0, 1, 2, 3, 1000, 3 * 64 * 1024 + 1, 600_001])
def test_one_signature_for_bytes_memory_body_and_spooled_body(
    mode: str, b64: bool, size: int
) -> None:
    key = PrivateKey.generate("ES256", kid="k")
    data = bytes((i * 13) % 256 for i in range(size))
    header = jws.build_header(key, "ES256", b64=b64)
    public = key.public_key()
    for signed_over in (data, Body(data), spooled(data), iter([data[:5], data[5:]])):
        token = jws.sign(key, signed_over, header)
        for verified_over in (data, Body(data), spooled(data)):
            jws.verify(jws.parse_compact(token), public, verified_over)
        changed = bytes([data[0] ^ 1]) + data[1:] if data else b"x"
        with pytest.raises(SignatureError):
            jws.verify(jws.parse_compact(token), public, spooled(changed))


def test_attached_compact_jws_is_header_payload_signature(mode: str) -> None:
    key = PrivateKey.generate("ES256")
    for payload in (b"abc" * 100, Body(b"abc" * 100), iter([b"ab", b"c" * 299])):
        token = jws.sign(key, payload, {"alg": "ES256"}, detached=False)
        parsed = jws.parse_compact(token)
        assert jws.payload_of(parsed) in (b"abc" * 100, b"ab" + b"c" * 299)
        jws.verify(parsed, key.public_key())
    with pytest.raises(SignatureError, match="unencoded payload cannot be attached"):
        jws.sign(key, b"x", {"alg": "ES256", "b64": False, "crit": ["b64"]}, detached=False)


# --- strict JSON without json.loads' per-call decoder ---------------------------------------


@pytest.mark.parametrize("text", [' {"a":1}', '{"a":1}\n', '\t\r\n{"a":1} \n'])
def test_rfc8259_s2_insignificant_whitespace_is_accepted(text: str) -> None:
    assert encoding.json_loads(text) == {"a": 1}
    assert encoding.json_loads(text.encode()) == {"a": 1}


@pytest.mark.parametrize(
    "text",
    ["", " ", '\ufeff{"a":1}', '\x0b{"a":1}', '{"a":1}\x0c', '{"a":1}\u00a0', '{"a":1} x', "1 2"],
)
def test_rfc8259_s2_other_whitespace_extra_data_and_empty_input_are_refused(text: str) -> None:
    with pytest.raises(ParseError, match="is not valid JSON"):
        encoding.json_loads(text)
    with pytest.raises(ParseError, match="is not valid JSON"):
        encoding.json_loads(text.encode())


def test_rfc7515_s5_2_duplicate_member_names_the_first_repeated_name() -> None:
    with pytest.raises(ParseError, match="duplicate member 'b'"):
        encoding.json_loads('{"a":1,"b":2,"b":3,"a":4}')
    with pytest.raises(ParseError, match="duplicate member 'x'"):
        encoding.json_loads(b'{"o":{"x":1,"x":1}}')


def test_rfc7493_s2_1_escaped_lone_surrogate_in_bytes_is_refused() -> None:
    with pytest.raises(ParseError, match="lone surrogate"):
        encoding.json_loads(b'{"a":"\\ud800"}')
    assert encoding.json_loads(b'{"a":"\\ud83d\\ude00"}') == {"a": "\U0001f600"}


def test_compact_and_canonical_json_are_unchanged() -> None:
    value = {"b": [1, 2.5, None, True], "a": "\u00e9"}
    assert encoding.json_dumps(value) == '{"b":[1,2.5,null,true],"a":"é"}'.encode()
    assert encoding.canonical_json(value) == b'{"a":"\\u00e9","b":[1,2.5,null,true]}'
    assert (
        encoding.canonical_json(value, ascii_only=False)
        == '{"a":"é","b":[1,2.5,null,true]}'.encode()
    )
    with pytest.raises(ValueError):
        encoding.canonical_json({"a": float("nan")})
