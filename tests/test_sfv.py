"""RFC 8941 Structured Field Values (wsgi_apisec.sfv).

The RFC's own examples first, then every failure the §4.2 algorithms define, the §4.1
serialisation rules, the RFC 9421 Appendix B fields byte for byte, and finally hypothesis:
a differential test against ``http_sfv`` (a test-only oracle) and round trips.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import FrozenInstanceError
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wsgi_apisec import sfv
from wsgi_apisec.errors import ParseError
from wsgi_apisec.sfv import InnerList, Item, Limits, Token

try:
    import http_sfv
except ImportError:  # pragma: no cover - the oracle is a test-only dependency
    http_sfv = None  # type: ignore[assignment]

VECTORS = Path(__file__).resolve().parents[1].parent / "shared" / "vectors"
needs_oracle = pytest.mark.skipif(http_sfv is None, reason="http_sfv oracle not installed")
needs_vectors = pytest.mark.skipif(not VECTORS.is_dir(), reason="shared vectors absent")

PARSE: dict[str, Callable[..., Any]] = {
    "list": sfv.parse_list,
    "dictionary": sfv.parse_dictionary,
    "item": sfv.parse_item,
}
SERIALIZE: dict[str, Callable[[Any], str]] = {
    "list": sfv.serialize_list,
    "dictionary": sfv.serialize_dictionary,
    "item": sfv.serialize_item,
}


def tok(value: str) -> Token:
    return Token(value)


def it(value: Any, params: dict[str, Any] | None = None) -> Item:
    return Item(value, params or {})


def inner(*members: Item, params: dict[str, Any] | None = None) -> InnerList:
    return InnerList(members, params or {})


def shape(value: Any) -> Any:
    """Order- and type-exact view of a parse result (True is not 1, a Token not a str)."""
    if isinstance(value, Item):
        return ("item", shape(value.value), shape(dict(value.params)))
    if isinstance(value, InnerList):
        return ("inner", [shape(i) for i in value.items], shape(dict(value.params)))
    if isinstance(value, dict):
        return [(key, shape(member)) for key, member in value.items()]
    if isinstance(value, list):
        return [shape(member) for member in value]
    return (type(value).__name__, value)


# --- RFC 8941 examples ------------------------------------------------------------------

EXAMPLES = [
    # (id, kind, raw, expected, canonical or None when raw is canonical)
    (
        "3.1-list",
        "list",
        "sugar, tea, rum",
        [it(tok("sugar")), it(tok("tea")), it(tok("rum"))],
        None,
    ),
    (
        "3.1.1-inner-lists",
        "list",
        '("foo" "bar"), ("baz"), ("bat" "one"), ()',
        [inner(it("foo"), it("bar")), inner(it("baz")), inner(it("bat"), it("one")), inner()],
        None,
    ),
    (
        "3.1.1-inner-list-params",
        "list",
        '("foo"; a=1;b=2);lvl=5, ("bar" "baz");lvl=1',
        [
            inner(it("foo", {"a": 1, "b": 2}), params={"lvl": 5}),
            inner(it("bar"), it("baz"), params={"lvl": 1}),
        ],
        '("foo";a=1;b=2);lvl=5, ("bar" "baz");lvl=1',
    ),
    (
        "3.1.2-parameters",
        "list",
        'abc;a=1;b=2; cde_456, (ghi;jk=4 l);q="9";r=w',
        [
            it(tok("abc"), {"a": 1, "b": 2, "cde_456": True}),
            inner(it(tok("ghi"), {"jk": 4}), it(tok("l")), params={"q": "9", "r": tok("w")}),
        ],
        'abc;a=1;b=2;cde_456, (ghi;jk=4 l);q="9";r=w',
    ),
    ("3.1.2-boolean-params", "item", "1; a; b=?0", it(1, {"a": True, "b": False}), "1;a;b=?0"),
    (
        "3.2-dictionary",
        "dictionary",
        'en="Applepie", da=:w4ZibGV0w6ZydGU=:',
        {"en": it("Applepie"), "da": it("Æbletærte".encode())},
        None,
    ),
    (
        "3.2-true-values",
        "dictionary",
        "a=?0, b, c; foo=bar",
        {"a": it(False), "b": it(True), "c": it(True, {"foo": tok("bar")})},
        "a=?0, b, c;foo=bar",
    ),
    (
        "3.2-inner-list-value",
        "dictionary",
        "rating=1.5, feelings=(joy sadness)",
        {"rating": it(Decimal("1.5")), "feelings": inner(it(tok("joy")), it(tok("sadness")))},
        None,
    ),
    (
        "3.2-mixed",
        "dictionary",
        "a=(1 2), b=3, c=4;aa=bb, d=(5 6);valid",
        {
            "a": inner(it(1), it(2)),
            "b": it(3),
            "c": it(4, {"aa": tok("bb")}),
            "d": inner(it(5), it(6), params={"valid": True}),
        },
        None,
    ),
    ("3.3-item", "item", "5", it(5), None),
    ("3.3-item-params", "item", "5; foo=bar", it(5, {"foo": tok("bar")}), "5;foo=bar"),
    ("3.3.1-integer", "item", "42", it(42), None),
    ("3.3.2-decimal", "item", "4.5", it(Decimal("4.5")), None),
    ("3.3.3-string", "item", '"hello world"', it("hello world"), None),
    ("3.3.4-token", "item", "foo123/456", it(tok("foo123/456")), None),
    (
        "3.3.5-byte-sequence",
        "item",
        ":cHJldGVuZCB0aGlzIGlzIGJpbmFyeSBjb250ZW50Lg==:",
        it(b"pretend this is binary content."),
        None,
    ),
    ("3.3.6-boolean", "item", "?1", it(True), None),
    # §4.2 and its sub-algorithms, case by case.
    ("4.2-leading-trailing-sp", "list", "  a, b  ", [it(tok("a")), it(tok("b"))], "a, b"),
    ("4.2-empty-list", "list", "", [], None),
    ("4.2-empty-dictionary", "dictionary", "   ", {}, ""),
    ("4.2.1-ows-around-comma", "list", "a \t,\t b", [it(tok("a")), it(tok("b"))], "a, b"),
    (
        "4.2.1.2-spaces-in-inner-list",
        "list",
        "(  a   b  )",
        [inner(it(tok("a")), it(tok("b")))],
        "(a b)",
    ),
    ("4.2.2-last-key-wins", "dictionary", "a=1, b=2, a=3", {"a": it(3), "b": it(2)}, "a=3, b=2"),
    ("4.2.2-star-key", "dictionary", "*k_-.*9=1", {"*k_-.*9": it(1)}, None),
    ("4.2.3.2-last-param-wins", "item", "1;a=1;b;a=2", it(1, {"a": 2, "b": True}), "1;a=2;b"),
    ("4.2.3.2-sp-after-semicolon", "item", "1;  a=1", it(1, {"a": 1}), "1;a=1"),
    ("4.2.4-negative-zero", "item", "-0", it(0), "0"),
    ("4.2.4-leading-zeros", "item", "007", it(7), "7"),
    ("4.2.4-integer-bounds", "item", "-999999999999999", it(-999999999999999), None),
    ("4.2.4-decimal-bounds", "item", "999999999999.999", it(Decimal("999999999999.999")), None),
    ("4.2.4-decimal-zeros", "item", "1.500", it(Decimal("1.5")), "1.5"),
    ("4.2.4-negative-zero-decimal", "item", "-0.0", it(Decimal(0)), "0.0"),
    ("4.2.5-escapes", "item", r'"a\"b\\c"', it('a"b\\c'), None),
    ("4.2.5-empty-string", "item", '""', it(""), None),
    (
        "4.2.6-token-chars",
        "item",
        "*a:b/c!#$%&'*+-.^_`|~9",
        it(tok("*a:b/c!#$%&'*+-.^_`|~9")),
        None,
    ),
    ("4.2.7-empty-byte-sequence", "item", "::", it(b""), None),
    ("4.2.8-false", "item", "?0", it(False), None),
]


@pytest.mark.parametrize(
    ("kind", "raw", "expected", "canonical"),
    [pytest.param(*case[1:], id=f"RFC8941-{case[0]}") for case in EXAMPLES],
)
def test_rfc8941_examples(kind: str, raw: str, expected: Any, canonical: str | None) -> None:
    parsed = PARSE[kind](raw)
    assert shape(parsed) == shape(expected)
    assert SERIALIZE[kind](parsed) == (raw if canonical is None else canonical)
    assert shape(PARSE[kind](raw.encode("ascii"))) == shape(expected)


@pytest.mark.parametrize(
    ("kind", "lines", "expected"),
    [
        pytest.param("list", ["sugar, tea", "rum"], "sugar, tea, rum", id="RFC8941-4.2-list-lines"),
        pytest.param("dictionary", ["foo=1", "bar=2"], "foo=1, bar=2", id="RFC8941-3.2-dict-lines"),
    ],
)
def test_field_lines_are_combined(kind: str, lines: list[str], expected: str) -> None:
    assert SERIALIZE[kind](PARSE[kind](sfv.join_field_lines(lines))) == expected


def test_item_on_two_lines_fails() -> None:
    # §4.2: combining lines of an Item field makes a List-like value, which must fail.
    with pytest.raises(ParseError, match="unexpected characters"):
        sfv.parse_item(sfv.join_field_lines(["1", "2"]))


# --- parse failures ----------------------------------------------------------------------

FAILURES = [
    # (id, kind, raw, message)
    ("4.2-non-ascii", "dictionary", "a=\u00e9", "non-ASCII"),
    ("4.2-trailing-garbage", "item", "a b", "unexpected characters after the value at offset 2"),
    ("4.2-leading-tab", "item", "\ta", "expected an item at offset 0"),
    ("4.2-trailing-tab-item", "item", "a\t", "unexpected characters"),
    ("4.2.1-trailing-comma", "list", "a, b, ", "trailing comma"),
    ("4.2.1-leading-comma", "list", ", a", "expected an item"),
    ("4.2.1-missing-comma", "list", "a b", "expected ',' between members at offset 2"),
    ("4.2.1-double-comma", "list", "a,,b", "expected an item at offset 2"),
    ("4.2.1.2-not-closed", "list", "(a b", "inner list is not closed"),
    ("4.2.1.2-open-paren", "list", "(", "inner list is not closed"),
    ("4.2.1.2-comma-inside", "list", "(a,b)", "expected ' ' or ')' in inner list"),
    ("4.2.1.2-no-space", "list", '("a""b")', "expected ' ' or ')' in inner list"),
    ("4.2.1.2-tab-inside", "list", "(a\tb)", "expected ' ' or ')' in inner list"),
    ("4.2.1.2-nested", "list", "((a))", "expected an item"),
    ("4.2.2-uppercase-key", "dictionary", "A=1", "expected a key"),
    ("4.2.2-digit-key", "dictionary", "1=1", "expected a key"),
    ("4.2.2-second-key", "dictionary", "a=1, B=2", "expected a key (lowercase letter or '*') at"),
    ("4.2.2-empty-value", "dictionary", "a=", "expected an item"),
    ("4.2.2-trailing-comma", "dictionary", "a=1,", "trailing comma"),
    ("4.2.2-space-before-equals", "dictionary", "a =1", "expected ','"),
    ("4.2.3.2-bad-param-key", "item", "1;A=1", "expected a key"),
    ("4.2.3.2-empty-param", "item", "1;", "expected a key"),
    ("4.2.3.2-space-before-semicolon-item", "item", "1 ;a", "unexpected characters"),
    ("4.2.3.2-param-inner-list", "item", "1;a=(1)", "expected an item"),
    ("4.2.3.1-rfc9651-date", "item", "@1659578233", "expected an item at offset 0"),
    ("4.2.3.1-rfc9651-display-string", "item", '%"caf%c3%a9"', "expected an item"),
    ("4.2.3.1-leading-dot", "item", ".5", "expected an item"),
    ("4.2.3.1-plus-sign", "item", "+1", "expected an item"),
    ("4.2.4-lone-minus", "item", "-", "expected a digit"),
    ("4.2.4-minus-letter", "item", "-a", "expected a digit"),
    ("4.2.4-16-digit-integer", "item", "1234567890123456", "number has too many digits"),
    ("4.2.4-16-digit-zeros", "item", "0000000000000001", "number has too many digits"),
    ("4.2.4-13-digit-decimal", "item", "1234567890123.5", "number has too many digits"),
    ("4.2.4-trailing-dot", "item", "1.", "1 to 3 digits after '.'"),
    ("4.2.4-4-fraction-digits", "item", "1.1234", "1 to 3 digits after '.'"),
    ("4.2.4-two-dots", "item", "1.2.3", "unexpected characters"),
    ("4.2.5-not-closed", "item", '"abc', "string is not closed at offset 4"),
    ("4.2.5-bad-escape", "item", r'"a\x"', "may be escaped at offset 2"),
    ("4.2.5-escape-at-end", "item", '"a\\', "may be escaped"),
    ("4.2.5-control-char", "item", '"a\x01"', "outside printable ASCII"),
    ("4.2.5-del", "item", '"\x7f"', "outside printable ASCII"),
    ("4.2.5-tab", "item", '"\t"', "outside printable ASCII"),
    ("4.2.6-token-bad-char", "item", "a@b", "unexpected characters"),
    ("4.2.7-not-closed", "item", ":YQ==", "byte sequence is not closed"),
    ("4.2.7-outside-alphabet", "item", ":aGVsbG!8=:", "not valid base64"),
    ("4.2.7-base64url", "item", ":-_8=:", "not valid base64"),
    ("4.2.7-space", "item", ":aGVs bG8=:", "not valid base64"),
    ("4.2.7-missing-padding", "item", ":aGVsbG8:", "not valid base64"),
    ("4.2.7-partial-padding", "item", ":YQ=:", "not valid base64"),
    ("4.2.7-padding-in-middle", "item", ":YQ==YQ==:", "not valid base64"),
    ("4.2.7-padding-only", "item", ":====:", "not valid base64"),
    ("4.2.7-non-zero-pad-bits", "item", ":iZ==:", "not canonical padded base64"),
    ("4.2.8-bad-boolean", "item", "?2", "boolean must be ?0 or ?1"),
    ("4.2.8-lone-question-mark", "item", "?", "boolean must be ?0 or ?1"),
    ("4.2.8-boolean-word", "item", "?true", "boolean must be ?0 or ?1"),
]


@pytest.mark.parametrize(
    ("kind", "raw", "message"),
    [pytest.param(*case[1:], id=f"RFC8941-{case[0]}") for case in FAILURES],
)
def test_rfc8941_parse_failures(kind: str, raw: str, message: str) -> None:
    with pytest.raises(ParseError, match=re.escape(message)) as caught:
        PARSE[kind](raw, name="Example-Field")
    assert caught.value.status == 400
    assert caught.value.description.startswith("Example-Field: ")


def test_error_description_does_not_echo_the_input() -> None:
    with pytest.raises(ParseError) as caught:
        sfv.parse_item('"<script>\x01"', name="Signature")
    assert "<script>" not in caught.value.description
    assert "<script>" in caught.value.detail


def test_non_ascii_bytes_fail() -> None:
    with pytest.raises(ParseError, match="non-ASCII"):
        sfv.parse_dictionary(b"a=\xff")


# --- bounds ------------------------------------------------------------------------------


def test_field_longer_than_the_limit_fails() -> None:
    value = "a=" + '"' + "x" * 16 * 1024 + '"'
    with pytest.raises(ParseError, match="longer than 16384 characters"):
        sfv.parse_dictionary(value)
    assert sfv.parse_dictionary(value, limits=Limits(max_length=20_000))["a"] == it("x" * 16384)


@pytest.mark.parametrize(
    ("kind", "raw"),
    [
        pytest.param("list", "a, b, c, d", id="list-members"),
        pytest.param("dictionary", "a, b, c, d", id="dictionary-members"),
        pytest.param("list", "(a b c d)", id="inner-list-items"),
        pytest.param("item", "1;a;b;c;d", id="parameters"),
    ],
)
def test_too_many_members_fail(kind: str, raw: str) -> None:
    with pytest.raises(ParseError, match="more than 3 members"):
        PARSE[kind](raw, limits=Limits(max_members=3))
    PARSE[kind](raw, limits=Limits(max_members=4))


def test_default_member_limit_meets_rfc8941_minimum() -> None:
    # §3.1 / §3.2: parsers MUST support at least 1024 members.
    assert len(sfv.parse_list(", ".join(["a"] * 1024))) == 1024
    with pytest.raises(ParseError, match="more than 1024 members"):
        sfv.parse_list(", ".join(["a"] * 1025))


# --- serialisation (§4.1) ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(Decimal("1.0005"), "1.0", id="RFC8941-4.1.5-half-even-down"),
        pytest.param(Decimal("1.0015"), "1.002", id="RFC8941-4.1.5-half-even-up"),
        pytest.param(Decimal("-1.0025"), "-1.002", id="RFC8941-4.1.5-negative"),
        pytest.param(Decimal("-0.0004"), "0.0", id="RFC8941-4.1.5-no-negative-zero"),
        pytest.param(Decimal("123.450"), "123.45", id="RFC8941-4.1.5-trailing-zeros"),
        pytest.param(Decimal(5), "5.0", id="RFC8941-4.1.5-whole"),
        pytest.param(Decimal("999999999999.9994"), "999999999999.999", id="RFC8941-4.1.5-max"),
        pytest.param(999_999_999_999_999, "999999999999999", id="RFC8941-4.1.4-max"),
        pytest.param(-999_999_999_999_999, "-999999999999999", id="RFC8941-4.1.4-min"),
        pytest.param('a"b\\', '"a\\"b\\\\"', id="RFC8941-4.1.6-escapes"),
        pytest.param(b"\x00\xff", ":AP8=:", id="RFC8941-4.1.8-padded"),
        pytest.param(True, "?1", id="RFC8941-4.1.9-true"),
        pytest.param(Token("a:b/c"), "a:b/c", id="RFC8941-4.1.7-token"),
    ],
)
def test_serialize_bare_items(value: Any, expected: str) -> None:
    assert sfv.serialize_bare_item(value) == expected


@pytest.mark.parametrize(
    ("value", "error"),
    [
        pytest.param(Decimal("999999999999.9995"), ValueError, id="RFC8941-4.1.5-rounds-over"),
        pytest.param(Decimal("1E+12"), ValueError, id="RFC8941-4.1.5-13-digits"),
        pytest.param(Decimal("NaN"), ValueError, id="RFC8941-4.1.5-nan"),
        pytest.param(10**15, ValueError, id="RFC8941-4.1.4-too-big"),
        pytest.param(-(10**15), ValueError, id="RFC8941-4.1.4-too-small"),
        pytest.param("caf\u00e9", ValueError, id="RFC8941-4.1.6-non-ascii"),
        pytest.param("a\nb", ValueError, id="RFC8941-4.1.6-control"),
        pytest.param(1.5, TypeError, id="RFC8941-4.1.3.1-float"),
        pytest.param(None, TypeError, id="RFC8941-4.1.3.1-none"),
    ],
)
def test_serialize_rejects(value: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        sfv.serialize_bare_item(value)


@pytest.mark.parametrize("key", ["A", "", "1a", "a b", "a=b"])
def test_serialize_rejects_bad_keys(key: str) -> None:
    with pytest.raises(ValueError, match="not a valid key"):
        sfv.serialize_dictionary({key: it(1)})
    with pytest.raises(ValueError, match="not a valid key"):
        sfv.serialize_item(it(1, {key: 1}))


@pytest.mark.parametrize("text", ["", "1a", "a b", "a,b", "é"])
def test_token_rejects_invalid_text(text: str) -> None:
    with pytest.raises(ValueError, match="not a valid Token"):
        Token(text)


def test_serialize_structures() -> None:
    assert sfv.serialize_list([]) == ""  # §4.1: an empty List is not sent at all
    assert sfv.serialize_dictionary({}) == ""
    assert sfv.serialize_list([it(True), inner(it(True), params={"a": True})]) == "?1, (?1);a"
    members: sfv.Dictionary = {"a": it(True, {"p": False}), "b": it(False), "c": inner()}
    assert sfv.serialize_dictionary(members) == "a;p=?0, b=?0, c=()"


def test_token_is_not_a_string() -> None:
    # RFC 9421 tells alg="ed25519" (String) from alg=ed25519 (Token): they must differ.
    assert sfv.parse_item('"ed25519"') != sfv.parse_item("ed25519")
    assert sfv.parse_item("ed25519").value != "ed25519"
    assert str(Token("ed25519")) == "ed25519"


def test_results_are_read_only() -> None:
    item = sfv.parse_item("1;a=2")
    with pytest.raises(TypeError):
        item.params["a"] = 3  # type: ignore[index]
    with pytest.raises(FrozenInstanceError):
        item.value = 2  # type: ignore[misc]


# --- RFC 9421 Appendix B fields, byte for byte -------------------------------------------


def _rfc9421_cases() -> Iterator[Any]:
    if not VECTORS.is_dir():
        return
    data = json.loads((VECTORS / "rfc9421" / "rfc9421_extracted.json").read_text())
    for name, case in data["cases"].items():
        for field in ("signature_input", "signature"):
            if field in case:
                yield pytest.param(case[field], id=f"{case['rfc']}-{field}-{name}")


@needs_vectors
@pytest.mark.parametrize("value", list(_rfc9421_cases()))
def test_rfc9421_signature_fields_round_trip(value: str) -> None:
    parsed = sfv.parse_dictionary(value, name="Signature-Input")
    assert sfv.serialize_dictionary(parsed) == value


def _signature_params() -> Iterator[Any]:
    if not VECTORS.is_dir():
        return
    for path in sorted((VECTORS / "rfc9421" / "bases").glob("*.txt")):
        for line in path.read_text().splitlines():
            if line.startswith('"@signature-params": '):
                yield pytest.param(line.split(": ", 1)[1], id=f"RFC9421-{path.stem}")


@needs_vectors
@pytest.mark.parametrize("value", list(_signature_params()))
def test_rfc9421_signature_params_reserialise(value: str) -> None:
    # RFC 9421 §2.3: @signature-params is the serialised Inner List, byte for byte.
    (inner,) = sfv.parse_list(value)
    assert isinstance(inner, InnerList)
    assert sfv.serialize_inner_list(inner) == value
    assert all(isinstance(item.value, str) for item in inner.items)


# --- hypothesis: differential against http_sfv, and round trips --------------------------

SF_CHARS = ' \t,;=()"\\:?*-._/%@!abczAZ0189+'
MAX_INT = 999_999_999_999_999

keys = st.from_regex(r"[a-z*][a-z0-9_\-.*]{0,5}", fullmatch=True)
bare_items = st.one_of(
    st.integers(-MAX_INT, MAX_INT),
    st.decimals(
        min_value=Decimal("-999999999999.999"),
        max_value=Decimal("999999999999.999"),
        places=3,
        allow_nan=False,
        allow_infinity=False,
    ),
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=10),
    st.from_regex(r"[A-Za-z*][!#$%&'*+\-.^_`|~0-9A-Za-z:/]{0,5}", fullmatch=True).map(Token),
    st.binary(max_size=16),
    st.booleans(),
)
params = st.dictionaries(keys, bare_items, max_size=3)
items = st.builds(Item, bare_items, params)
members = st.one_of(items, st.builds(InnerList, st.lists(items, max_size=3).map(tuple), params))
STRUCTURES = {
    "list": st.lists(members, max_size=4),
    "dictionary": st.dictionaries(keys, members, max_size=4),
    "item": items,
}
kinds = st.sampled_from(sorted(PARSE))


@st.composite
def kind_and_structure(draw: st.DrawFn) -> tuple[str, Any]:
    kind = draw(kinds)
    return kind, draw(STRUCTURES[kind])


# Pieces of fields, right and wrong, so that random joins are often almost valid.
FRAGMENTS = [
    *("a", "b", "*", "A", "k-1", "t/k:n", "1", "-2", "1.5", "1.", "1.2345", "-", "?0", "?1"),
    *('"s"', r'"a\"b"', r'"\x"', ":YQ==:", ":YQ:", ":YR==:", ":YQ==YQ==:", "::", "?"),
    *("1234567890123456", "0000000000000001", "123456789012.5", "1234567890123.5"),
    *("(", ")", "()", ",", ", ", " ,", ",\t", "\t", " ", "  ", ";", "; ", "=", "@1", '%"x"'),
]


@st.composite
def field_texts(draw: st.DrawFn) -> tuple[str, str]:
    """Valid members joined with every allowed (and some disallowed) spacing."""
    kind = draw(kinds)
    values = draw(st.lists(members, min_size=1, max_size=4))
    parts = [sfv.serialize_member(value) for value in values]
    if kind == "dictionary":  # few keys, so that duplicates are common (§4.2.2)
        names = draw(st.lists(st.sampled_from(["a", "b", "*"]), min_size=len(parts)))
        parts = [f"{name}={part}" for name, part in zip(names, parts, strict=False)]
    text = parts[0]
    for part in parts[1:]:
        text += draw(st.sampled_from([",", ", ", " ,", ",\t", "\t , ", " ,  ", " "])) + part
    edges = st.sampled_from(["", " ", "  ", "\t"])
    return kind, draw(edges) + text + draw(edges)


@st.composite
def mutated_fields(draw: st.DrawFn) -> tuple[str, str]:
    """A near-valid field with up to three characters inserted, deleted or replaced."""
    kind, text = draw(field_texts())
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, len(text)))
        char = draw(st.sampled_from(SF_CHARS))
        text = draw(
            st.sampled_from(
                [
                    text[:at] + char + text[at:],
                    text[:at] + text[at + 1 :],
                    text[:at] + char + text[at + 1 :],
                ]
            )
        )
    return kind, text


def ours(kind: str, data: str | bytes) -> str | None:
    """Our canonical reading of ``data``, or None if it is rejected (ParseError only)."""
    try:
        parsed = PARSE[kind](data)
    except ParseError:
        return None
    return SERIALIZE[kind](parsed)


def theirs(kind: str, data: bytes) -> str | None:
    value = http_sfv.structures[kind]()
    try:
        value.parse(data)
    except Exception:
        return None
    return str(value)


@pytest.fixture(scope="module")
def oracle() -> Iterator[None]:
    """http_sfv 0.9.9 brought to RFC 8941 where it knowingly differs from it (and from us):

    - it also parses RFC 9651 Dates and Display Strings: removed;
    - it accepts "1." (checks for '-' where RFC 8941 §4.2.4 9.1 says '.') and a 16-digit
      Integer at the very end of the input (§4.2.4 7.5): both rejected;
    - its base64 decoder ignores data after padding and non-zero pad bits; we require
      canonical base64 (see the sfv docstring): non-canonical input rejected.
    It still parses everything itself; the wrappers only add a refusal.
    """
    from http_sfv import item as oracle_items

    table: dict[int, Any] = dict(oracle_items._parse_map)
    del table[ord("@")], table[ord("%")]
    number, byteseq = table[ord("0")], table[ord(":")]

    def strict_number(data: bytes) -> tuple[int, Any]:
        consumed, value = number(data)
        digits = consumed - (data[:1] == b"-")
        if data[consumed - 1 : consumed] == b"." or (isinstance(value, int) and digits > 15):
            raise ValueError("not an RFC 8941 number")
        return consumed, value

    def canonical_byteseq(data: bytes) -> tuple[int, bytes]:
        consumed, value = byteseq(data)
        if data[:consumed] != b":" + base64.b64encode(value) + b":":
            raise ValueError("not canonical base64")
        return consumed, value

    table.update(dict.fromkeys(b"-0123456789", strict_number))
    table[ord(":")] = canonical_byteseq
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(oracle_items, "_parse_map", table)
        yield


def assert_agrees(kind: str, data: bytes) -> None:
    mine = ours(kind, data)
    if kind != "item" and not data.strip(b" "):
        # §4.2.1 / §4.2.2: an empty field is an empty List or Dictionary (http_sfv refuses).
        assert mine == ""
        return
    assert mine == theirs(kind, data)


DIFFERENTIAL = settings(max_examples=400, deadline=None)


@needs_oracle
@DIFFERENTIAL
@given(kind=kinds, text=st.text(SF_CHARS, max_size=30))
def test_differential_on_structured_looking_text(oracle: None, kind: str, text: str) -> None:
    assert ours(kind, text) == ours(kind, text.encode("ascii"))
    assert_agrees(kind, text.encode("ascii"))


@needs_oracle
@DIFFERENTIAL
@given(kind=kinds, text=st.lists(st.sampled_from(FRAGMENTS), max_size=10).map("".join))
def test_differential_on_fragment_soup(oracle: None, kind: str, text: str) -> None:
    assert_agrees(kind, text.encode("ascii"))


@needs_oracle
@DIFFERENTIAL
@given(kind=kinds, text=st.text(max_size=30))
def test_differential_on_any_text(oracle: None, kind: str, text: str) -> None:
    assert_agrees(kind, text.encode("utf-8", "surrogatepass"))
    if not text.isascii():
        assert ours(kind, text) is None


@needs_oracle
@DIFFERENTIAL
@given(kind=kinds, data=st.binary(max_size=30))
def test_differential_on_bytes(oracle: None, kind: str, data: bytes) -> None:
    assert_agrees(kind, data)


@needs_oracle
@DIFFERENTIAL
@given(case=mutated_fields())
def test_differential_on_mutated_fields(oracle: None, case: tuple[str, str]) -> None:
    kind, text = case
    assert_agrees(kind, text.encode("ascii"))


@settings(max_examples=300, deadline=None)
@given(case=kind_and_structure())
def test_serialise_parse_round_trip(case: tuple[str, Any]) -> None:
    kind, value = case
    text = SERIALIZE[kind](value)
    parsed = PARSE[kind](text)
    assert shape(parsed) == shape(value)
    assert SERIALIZE[kind](parsed) == text
    if http_sfv is not None and text:
        assert theirs(kind, text.encode("ascii")) == text


@settings(max_examples=300, deadline=None)
@given(kind=kinds, data=st.one_of(st.text(max_size=40), st.binary(max_size=40)))
def test_any_input_gives_a_result_or_a_parse_error(kind: str, data: str | bytes) -> None:
    limits = Limits(max_length=30, max_members=2)
    try:
        PARSE[kind](data, limits=limits)
    except ParseError as exc:
        assert exc.status == 400
