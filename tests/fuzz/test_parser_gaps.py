"""Properties for the parsers that had none: RFC 9530 digest fields, RFC 6750 token
transport and challenges, and the WSGI body reader (the others have ``tests/test_*_properties``,
``test_sfv``, ``test_beckn``, ``test_certs`` and ``test_dpop``)."""

from __future__ import annotations

import io
import re
from itertools import pairwise
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wsgi_apisec import digest
from wsgi_apisec.bearer import challenge, extract_token
from wsgi_apisec.environ import hand_body_to_app, read_body
from wsgi_apisec.errors import (
    APISecError,
    BodyTooLarge,
    InvalidDigest,
    InvalidRequest,
    InvalidToken,
    MissingCredentials,
    ParseError,
)
from wsgi_apisec.message import Headers, Message

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
latin1 = st.text(st.characters(min_codepoint=0, max_codepoint=255), max_size=80)
SF_CHARS = st.sampled_from(list('sha-256512md5=:,; ?10AZaz+/"()\t'))
digest_like = st.text(SF_CHARS, max_size=60) | latin1
B64TOKEN = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/"
HEADER_SAFE = re.compile(r"[\x20-\x7e]*")

# --- RFC 9530 ------------------------------------------------------------------------------


@SETTINGS
@given(digest_like, st.binary(max_size=64), st.booleans())
def test_any_digest_field_verifies_or_fails_as_400_or_401(
    value: str, body: bytes, signed: bool
) -> None:
    try:
        checked = digest.verify_content_digest(value, body, signed=signed)
    except ParseError as exc:
        assert exc.status == 400
    except InvalidDigest as exc:
        assert exc.status == 401
    else:
        assert checked and set(checked) <= set(digest.SUPPORTED)


@SETTINGS
@given(st.binary(max_size=300), st.lists(st.integers(0, 300), max_size=4), st.binary(max_size=8))
def test_our_digest_verifies_however_the_body_is_chunked(
    body: bytes, cuts: list[int], other: bytes
) -> None:
    value = digest.content_digest(body, digest.SUPPORTED)
    points = sorted({0, len(body), *(c % (len(body) + 1) for c in cuts)})
    chunks = [body[a:b] for a, b in pairwise(points)]
    assert digest.verify_content_digest(value, chunks) == digest.SUPPORTED
    if other != body:  # RFC 9530 §2: a digest of other content never matches
        with pytest.raises(InvalidDigest, match="does not match"):
            digest.verify_content_digest(value, other)


@SETTINGS
@given(st.dictionaries(st.sampled_from(["sha-256", "sha-512", "md5", "x"]), st.integers(0, 10)))
def test_want_digest_orders_by_weight_and_drops_zero(weights: dict[str, int]) -> None:
    value = ", ".join(f"{name}={weight}" for name, weight in weights.items())
    wanted = digest.parse_want_digest(value)
    # RFC 9530 §4: 0 is "not acceptable"; higher is preferred; ties keep field order.
    assert wanted == sorted((n for n, w in weights.items() if w), key=lambda n: -weights[n])
    chosen = digest.choose_digest_algorithm(value)
    assert chosen == next((n for n in wanted if n in digest.SUPPORTED), None)


# --- RFC 6750 ------------------------------------------------------------------------------


def _message(authorization: str | None = None, query: str = "") -> Message:
    headers = Headers({"Authorization": authorization} if authorization is not None else {})
    return Message("GET", f"https://api.test/r{'?' + query if query else ''}", headers)


@SETTINGS
@given(latin1)
def test_any_authorization_gives_a_token_none_or_400(value: str) -> None:
    try:
        found = extract_token(_message(value))
    except InvalidRequest as exc:
        assert exc.status == 400 and type(exc) is InvalidRequest
        return
    if found is not None:
        scheme, token = found
        assert scheme in ("Bearer", "DPoP") and token and token in value


@SETTINGS
@given(
    st.sampled_from(["Bearer", "bearer", "BEARER", "DPoP", "dpop"]),
    st.text(B64TOKEN, min_size=1, max_size=40),
    st.text("=", max_size=2),
    st.integers(1, 3),
)
def test_a_b64token_is_extracted_exactly(scheme: str, token: str, pad: str, spaces: int) -> None:
    # RFC 6750 §2.1: credentials = "Bearer" 1*SP b64token; the scheme is case-insensitive.
    found = extract_token(_message(scheme + " " * spaces + token + pad))
    assert found == ("Bearer" if scheme.lower() == "bearer" else "DPoP", token + pad)


@SETTINGS
@given(st.text(B64TOKEN, min_size=1, max_size=20), st.booleans())
def test_a_query_token_is_refused_unless_allowed(token: str, allowed: bool) -> None:
    message = _message(query="access_token=" + quote(token, safe=""))  # RFC 6750 §2.3
    if allowed:
        assert extract_token(message, allow_query=True) == ("Bearer", token)
    else:
        with pytest.raises(InvalidRequest, match="URI query"):
            extract_token(message)


@SETTINGS
@given(latin1, latin1, latin1, st.dictionaries(latin1, latin1, max_size=3), st.booleans())
def test_a_challenge_is_always_one_safe_header_value(
    description: str, realm: str, scope: str, params: dict[str, str], missing: bool
) -> None:
    kind: type[APISecError] = MissingCredentials if missing else InvalidToken
    error = kind(description, challenge=params)
    value = challenge(error, realm=realm, scope=scope, algs=["ES256", scope], scheme="DPoP")
    # RFC 6750 §3: quoted values of visible ASCII; nothing sent can add a header or a line.
    assert HEADER_SAFE.fullmatch(value) and value.startswith("DPoP")
    assert ('error="invalid_token"' in value) != missing


# --- the WSGI body ---------------------------------------------------------------------------


class Trickle(io.RawIOBase):
    """A wsgi.input that hands out the body in the given piece sizes."""

    def __init__(self, data: bytes, sizes: list[int]) -> None:
        self.data, self.sizes = data, sizes or [1]

    def read(self, n: int = -1) -> bytes:
        size = self.sizes[0] if len(self.sizes) == 1 else self.sizes.pop(0)
        piece, self.data = self.data[: min(size, n if n >= 0 else size)], self.data[size:]
        return piece


@SETTINGS
@given(
    st.binary(max_size=2000),
    st.lists(st.integers(1, 700), min_size=1, max_size=5),
    st.sampled_from(["exact", "chunked", "short", "long", "junk"]),
    st.sampled_from([64, 900, 5000]),
)
def test_the_body_is_read_exactly_or_refused(
    body: bytes, sizes: list[int], framing: str, max_bytes: int
) -> None:
    environ: dict[str, object] = {"wsgi.input": Trickle(body, list(sizes))}
    expected = body
    if framing == "chunked":
        environ.update(HTTP_TRANSFER_ENCODING="chunked", **{"wsgi.input_terminated": True})
    else:
        lengths = {"exact": len(body), "short": len(body) // 2, "long": len(body) + 1}
        environ["CONTENT_LENGTH"] = str(lengths[framing]) if framing in lengths else "1, 1"
        expected = body[: lengths.get(framing, 0)]
    try:
        read = read_body(environ, max_bytes=max_bytes, spool_threshold=100)
    except BodyTooLarge:
        assert len(expected) > max_bytes or (framing == "long" and len(body) + 1 > max_bytes)
        return
    except InvalidRequest as exc:
        assert framing in ("junk", "long") and exc.status == 400
        return
    assert read.read() == expected and len(read) == len(expected)
    hand_body_to_app(environ, read)
    assert environ["CONTENT_LENGTH"] == str(len(expected))
    assert environ["wsgi.input"].read() == expected  # type: ignore[attr-defined]
    read.close()
