"""RFC 9530 digest fields (wsgi_apisec.digest): Appendix D vectors first, then each way a
digest field can be wrong, then the preference fields."""

from __future__ import annotations

import base64
import hashlib
import json
import zlib
from pathlib import Path
from typing import Any

import pytest

from wsgi_apisec.digest import (
    DigestHasher,
    choose_digest_algorithm,
    content_digest,
    parse_content_digest,
    parse_want_digest,
    verify_content_digest,
)
from wsgi_apisec.errors import InvalidDigest, ParseError

VECTORS = Path(__file__).resolve().parents[1].parent / "shared" / "vectors"
SAMPLE = VECTORS / "rfc9530" / "appendix_d_sample_digests.json"


@pytest.fixture(scope="module")
def sample() -> dict[str, Any]:
    if not VECTORS.is_dir():
        pytest.skip("shared vectors absent")
    data: dict[str, Any] = json.loads(SAMPLE.read_text())
    return data


@pytest.fixture(scope="module")
def body(sample: dict[str, Any]) -> bytes:
    return str(sample["input_utf8"]).encode("utf-8")


def field(sample: dict[str, Any], *algorithms: str) -> str:
    return ", ".join(f"{name}={sample['values'][name]}" for name in algorithms)


# --- RFC 9530 Appendix D --------------------------------------------------------------------

ACTIVE = [pytest.param(name, id=f"RFC9530-D-{name}") for name in ("sha-256", "sha-512")]
DEPRECATED = [
    pytest.param(name, id=f"RFC9530-D-{name}-deprecated")
    for name in ("md5", "sha", "unixsum", "unixcksum", "adler", "crc32c")
]


@pytest.mark.parametrize("algorithm", ACTIVE)
def test_appendix_d_digest_is_computed(sample: dict[str, Any], body: bytes, algorithm: str) -> None:
    assert content_digest(body, (algorithm,)) == field(sample, algorithm)


@pytest.mark.parametrize("algorithm", ACTIVE)
def test_appendix_d_digest_verifies(sample: dict[str, Any], body: bytes, algorithm: str) -> None:
    assert verify_content_digest(field(sample, algorithm), body) == (algorithm,)


def test_appendix_d_both_active_digests_verify(sample: dict[str, Any], body: bytes) -> None:
    value = field(sample, "sha-512", "sha-256")
    assert verify_content_digest(value, body) == ("sha-256", "sha-512")
    assert content_digest(body, ("sha-512", "sha-256")) == value


@pytest.mark.parametrize(
    ("algorithm", "compute"),
    [
        pytest.param("md5", lambda data: hashlib.md5(data).digest(), id="RFC9530-D-md5"),
        pytest.param("sha", lambda data: hashlib.sha1(data).digest(), id="RFC9530-D-sha"),
        pytest.param(
            "adler", lambda data: zlib.adler32(data).to_bytes(4, "big"), id="RFC9530-D-adler"
        ),
    ],
)
def test_deprecated_vectors_are_right(
    sample: dict[str, Any], body: bytes, algorithm: str, compute: Any
) -> None:
    # The rejections below are about policy, not about a wrong value: check the values.
    assert base64.b64decode(sample["values"][algorithm].strip(":")) == compute(body)


@pytest.mark.parametrize("algorithm", DEPRECATED)
def test_deprecated_only_is_rejected_when_signed(
    sample: dict[str, Any], body: bytes, algorithm: str
) -> None:
    # RFC 9530 §5: deprecated algorithms MUST NOT be used in an adversarial setting.
    with pytest.raises(InvalidDigest, match=f"uses {algorithm}: deprecated by RFC 9530") as caught:
        verify_content_digest(field(sample, algorithm), body)
    assert caught.value.status == 401
    assert caught.value.code == "digest.invalid"


@pytest.mark.parametrize("algorithm", DEPRECATED)
def test_deprecated_only_has_nothing_to_check_when_unsigned(
    sample: dict[str, Any], body: bytes, algorithm: str
) -> None:
    with pytest.raises(InvalidDigest, match="has no sha-256 or sha-512 digest"):
        verify_content_digest(field(sample, algorithm), body, signed=False)


def test_deprecated_next_to_active_is_rejected_when_signed(
    sample: dict[str, Any], body: bytes
) -> None:
    value = field(sample, *sample["values"])
    with pytest.raises(InvalidDigest, match="uses md5, sha, unixsum, unixcksum, adler, crc32c"):
        verify_content_digest(value, body)
    assert verify_content_digest(value, body, signed=False) == ("sha-256", "sha-512")


@pytest.mark.parametrize("name", ["id-sha-256", "id-sha-512"])
def test_rfc3230_id_algorithms_are_deprecated(
    sample: dict[str, Any], body: bytes, name: str
) -> None:
    value = f"{field(sample, 'sha-256')}, {name}=:AAAA:"
    with pytest.raises(InvalidDigest, match=f"uses {name}"):
        verify_content_digest(value, body)


# --- streaming ------------------------------------------------------------------------------


def test_hasher_fed_in_chunks_matches_one_shot(sample: dict[str, Any], body: bytes) -> None:
    hasher = DigestHasher()
    for start in range(0, len(body), 5):
        hasher.update(memoryview(body)[start : start + 5])
    assert hasher.algorithms == ("sha-256", "sha-512")
    assert hasher.header_value() == field(sample, "sha-256", "sha-512")
    assert verify_content_digest(field(sample, "sha-512"), hasher) == ("sha-512",)


def test_chunks_verify_without_joining(sample: dict[str, Any], body: bytes) -> None:
    chunks = iter([body[:3], b"", body[3:]])
    assert verify_content_digest(field(sample, "sha-256"), chunks) == ("sha-256",)


def test_hasher_rejects_unsupported_algorithms() -> None:
    with pytest.raises(ValueError, match="must be among"):
        DigestHasher(["md5"])
    with pytest.raises(ValueError, match="must be among"):
        DigestHasher([])
    with pytest.raises(ValueError, match="does not compute sha-512"):
        DigestHasher(["sha-256"]).digest("sha-512")


def test_empty_body() -> None:
    value = content_digest(b"")
    assert value == "sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:"
    assert verify_content_digest(value, []) == ("sha-256",)


# --- wrong digests ----------------------------------------------------------------------------


def test_mismatch_is_rejected(sample: dict[str, Any], body: bytes) -> None:
    with pytest.raises(InvalidDigest, match="Content-Digest sha-256 does not match the content"):
        verify_content_digest(field(sample, "sha-256"), body + b" ")


def test_one_mismatch_among_two_is_rejected(sample: dict[str, Any], body: bytes) -> None:
    wrong_512 = content_digest(b"other", ("sha-512",))
    with pytest.raises(InvalidDigest, match="sha-512 does not match"):
        verify_content_digest(f"{field(sample, 'sha-256')}, {wrong_512}", body)


def test_truncated_digest_is_a_mismatch(sample: dict[str, Any], body: bytes) -> None:
    short = base64.b64encode(hashlib.sha256(body).digest()[:16]).decode()
    with pytest.raises(InvalidDigest, match="does not match"):
        verify_content_digest(f"sha-256=:{short}:", body)


@pytest.mark.parametrize("value", [None, ""], ids=["RFC9530-2-absent", "RFC9530-2-empty"])
def test_missing_digest_is_rejected(body: bytes, value: str | None) -> None:
    with pytest.raises(InvalidDigest, match="Content-Digest"):
        verify_content_digest(value, body)


def test_unknown_algorithm_next_to_a_good_one_is_ignored(
    sample: dict[str, Any], body: bytes
) -> None:
    # RFC 9530 §2: a recipient MAY ignore any digest; the one we support still must match.
    value = f"blake3=:AAAA:, {field(sample, 'sha-256')}, sha3-256=:AAAA:;x=1"
    assert verify_content_digest(value, body) == ("sha-256",)


def test_unknown_algorithm_alone_is_rejected(body: bytes) -> None:
    with pytest.raises(InvalidDigest, match="has no sha-256 or sha-512 digest"):
        verify_content_digest("blake3=:AAAA:", body)


def test_repr_digest_uses_its_own_name(sample: dict[str, Any], body: bytes) -> None:
    # RFC 9530 §3: Repr-Digest has the same syntax; errors name the field.
    assert verify_content_digest(field(sample, "sha-256"), body, name="Repr-Digest")
    with pytest.raises(InvalidDigest, match="Repr-Digest sha-256 does not match"):
        verify_content_digest(field(sample, "sha-256"), b"", name="Repr-Digest")


MALFORMED = [
    pytest.param(
        "sha-256=X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE",
        "not a Byte Sequence",
        id="RFC9530-2-token",
    ),
    pytest.param(
        'sha-256="X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE="',
        "not a Byte Sequence",
        id="RFC9530-2-string",
    ),
    pytest.param("sha-256", "not a Byte Sequence", id="RFC9530-2-no-value"),
    pytest.param("sha-256=(:AAAA:)", "not a Byte Sequence", id="RFC9530-2-inner-list"),
    pytest.param(
        "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE:",
        "not valid base64",
        id="RFC9530-2-unpadded",
    ),
    pytest.param(
        "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=",
        "not closed",
        id="RFC9530-2-unclosed",
    ),
    pytest.param("SHA-256=:AAAA:", "expected a key", id="RFC9530-2-uppercase-key"),
    pytest.param("sha-256=:AAAA:,", "trailing comma", id="RFC9530-2-trailing-comma"),
    pytest.param(
        "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=: junk",
        "expected ','",
        id="RFC9530-2-junk",
    ),
]


@pytest.mark.parametrize(("value", "message"), MALFORMED)
def test_malformed_field_is_a_parse_error(body: bytes, value: str, message: str) -> None:
    with pytest.raises(ParseError, match=message) as caught:
        verify_content_digest(value, body)
    assert caught.value.status == 400
    assert caught.value.description.startswith("Content-Digest: ")


def test_parse_keeps_order_and_ignores_parameters() -> None:
    assert parse_content_digest("sha-512=:AA==:;p=1, sha-256=:AQ==:") == {
        "sha-512": b"\x00",
        "sha-256": b"\x01",
    }


# --- RFC 9530 §4 preference fields ------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("sha-256=1", ["sha-256"], id="RFC9530-4-example-1"),
        pytest.param(
            "sha-512=3, sha-256=10, unixsum=0", ["sha-256", "sha-512"], id="RFC9530-4-example-2"
        ),
        pytest.param("a=5, b=7, c=5", ["b", "a", "c"], id="RFC9530-4-ties-keep-order"),
        pytest.param("sha-256=0", [], id="RFC9530-4-zero-not-acceptable"),
        pytest.param("", [], id="RFC9530-4-empty"),
    ],
)
def test_parse_want_digest(value: str, expected: list[str]) -> None:
    assert parse_want_digest(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("sha-256=11", id="RFC9530-4-above-10"),
        pytest.param("sha-256=-1", id="RFC9530-4-negative"),
        pytest.param("sha-256=1.5", id="RFC9530-4-decimal"),
        pytest.param("sha-256", id="RFC9530-4-boolean"),
        pytest.param("sha-256=?0", id="RFC9530-4-false"),
        pytest.param('sha-256="1"', id="RFC9530-4-string"),
        pytest.param("sha-256=(1)", id="RFC9530-4-inner-list"),
    ],
)
def test_parse_want_digest_rejects_bad_weights(value: str) -> None:
    with pytest.raises(ParseError, match="weight is not an Integer from 0 to 10"):
        parse_want_digest(value, name="Want-Repr-Digest")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("sha-512=3, sha-256=10, unixsum=0", "sha-256", id="RFC9530-4-example-2"),
        pytest.param("sha-512=3, sha-256=1", "sha-512", id="RFC9530-4-weight-wins"),
        pytest.param("md5=10, sha-512=1", "sha-512", id="RFC9530-4-skips-unsupported"),
        pytest.param("md5=10, unixsum=9", None, id="RFC9530-4-nothing-supported"),
        pytest.param("sha-256=0, sha-512=0", None, id="RFC9530-4-all-refused"),
        pytest.param("sha-256=42", None, id="RFC9530-4-malformed-is-only-a-hint"),
        pytest.param(None, None, id="RFC9530-4-absent"),
    ],
)
def test_choose_digest_algorithm(value: str | None, expected: str | None) -> None:
    assert choose_digest_algorithm(value) == expected
