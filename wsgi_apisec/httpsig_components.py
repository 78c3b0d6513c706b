"""RFC 9421 §2: component identifiers, their values in a :class:`~wsgi_apisec.message.Message`,
and the signature base (§2.5).

A component identifier is an :class:`~wsgi_apisec.sfv.Item` whose value is the component name
(a String) and whose parameters say how the value is taken: ``sf``, ``key``, ``bs``, ``req``
and ``tr`` for fields (§2.1, §2.4), ``name`` for ``@query-param`` (§2.2.8). Identifiers that
cannot be understood are a :class:`MalformedSignature` (400); a component the message does not
have, or one we do not support (trailers), is a :class:`SignatureError` (401).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import TypeVar
from urllib.parse import parse_qsl, quote, unquote

from . import sfv
from .errors import InvalidRequest, MalformedSignature, ParseError, SignatureError
from .message import Message

__all__ = [
    "DERIVED",
    "STRUCTURED_FIELDS",
    "check_identifier",
    "component_value",
    "covers_field",
    "identifier",
    "identity",
    "serialize",
    "signature_base",
]

#: §2.2 derived component names (``@signature-params`` is §2.3's, never covered).
DERIVED = frozenset(
    {
        "@method",
        "@target-uri",
        "@authority",
        "@scheme",
        "@request-target",
        "@path",
        "@query",
        "@query-param",
        "@status",
    }
)

#: The structured type of the fields ``;sf`` may be used with (§2.1.1 needs the type).
STRUCTURED_FIELDS: Mapping[str, str] = MappingProxyType(
    {
        "accept-signature": "dictionary",
        "cache-status": "list",
        "cdn-cache-control": "dictionary",
        "client-cert": "item",
        "client-cert-chain": "list",
        "content-digest": "dictionary",
        "priority": "dictionary",
        "proxy-status": "list",
        "repr-digest": "dictionary",
        "signature": "dictionary",
        "signature-input": "dictionary",
        "want-content-digest": "dictionary",
        "want-repr-digest": "dictionary",
    }
)

_PARAM_TYPES: Mapping[str, type] = MappingProxyType(
    {"sf": bool, "key": str, "bs": bool, "req": bool, "tr": bool, "name": str}
)
_FIELD_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9a-z]+")  # RFC 9110 §5.1 token, lowercased
_OBS_FOLD = re.compile(r"[ \t]*\r\n[ \t]+")
_VISIBLE = re.compile(r"[\t -~]*")
_URI = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*)://([^/?#]*)([^?#]*)(?:\?([^#]*))?(?:#.*)?", re.S)
_HOST_PORT = re.compile(r"(\[[^\]]*\]|[^:]*)(?::([0-9]*))?")
_DEFAULT_PORTS = {"http": "80", "https": "443"}
_MAX_QUERY_FIELDS = 1000

Identifier = sfv.Item


def serialize(item: Identifier) -> str:
    """The identifier as it appears in the signature base and ``Signature-Input``."""
    return sfv.serialize_item(item)


def identity(item: Identifier) -> tuple[object, frozenset[tuple[str, object]]]:
    """What makes two identifiers the same component: name and parameters, in any order."""
    return item.value, frozenset(item.params.items())


def identifier(text: str | Identifier) -> Identifier:
    """``"@method"``, ``"content-digest"`` or a serialized identifier such as
    ``'"@query-param";name="id"'`` / ``'"@method";req'``, checked."""
    if isinstance(text, sfv.Item):
        return check_identifier(text)
    if text.startswith('"'):
        try:
            return check_identifier(sfv.parse_item(text, name="component identifier"))
        except ParseError as exc:
            raise MalformedSignature(exc.description, detail=exc.detail) from exc
    return check_identifier(sfv.Item(text))


def check_identifier(item: Identifier) -> Identifier:
    """The identifier if it is one we understand (§2, §2.1, §2.2); else an error."""
    name = item.value
    if not isinstance(name, str) or not name:
        raise MalformedSignature("a component identifier must be a non-empty String")
    for key, value in item.params.items():
        kind = _PARAM_TYPES.get(key)
        if kind is None:  # §2.5 step 1: an unknown parameter is an error
            raise MalformedSignature(f"component parameter {key!r} is not supported")
        if type(value) is not kind or value is False:
            raise MalformedSignature(f"component parameter {key!r} has the wrong type")
    if name.startswith("@"):
        _check_derived(name, item.params)
    else:
        _check_field(name, item.params)
    return item


def _check_derived(name: str, params: sfv.Parameters) -> None:
    if name == "@signature-params":  # §2.3: never listed among the covered components
        raise MalformedSignature('"@signature-params" cannot be a covered component')
    if name not in DERIVED:
        raise SignatureError(
            f"derived component {name[:32]!r} is not supported", code="signature.unsupported"
        )
    allowed = {"req", "name"} if name == "@query-param" else {"req"}
    if set(params) - allowed:  # §2.2: field parameters do not apply to derived components
        raise MalformedSignature(f"{name} takes no parameter other than {sorted(allowed)}")
    if name == "@query-param" and "name" not in params:  # §2.2.8
        raise MalformedSignature('"@query-param" needs a name parameter')


def _check_field(name: str, params: sfv.Parameters) -> None:
    if _FIELD_NAME.fullmatch(name) is None:  # §2.1: field names are lowercased
        raise MalformedSignature(f"component name {name[:32]!r} is not a lowercase field name")
    if "name" in params:
        raise MalformedSignature("only @query-param takes a name parameter")
    if "bs" in params and ("sf" in params or "key" in params):  # §2.1.3
        raise MalformedSignature("bs cannot be combined with sf or key")
    if "tr" in params:
        raise SignatureError(
            "trailer fields (;tr) are not supported: this server never sees trailers",
            code="signature.unsupported",
        )


def covers_field(items: Sequence[Identifier], name: str) -> bool:
    """Does one of ``items`` cover the whole field ``name`` of this message (not ``;req``,
    not one ``;key`` member)?"""
    return any(
        item.value == name and "req" not in item.params and "key" not in item.params
        for item in items
    )


# --- component values ------------------------------------------------------------------------


def component_value(message: Message, item: Identifier) -> str:
    """The value of ``item`` in ``message`` (§2.1, §2.2, §2.4)."""
    if "req" in item.params:
        # §2.4: the component is taken from the request this response answers.
        if message.status is None or message.request is None:
            raise SignatureError(
                f"{serialize(item)} names the request, but this is not a response to one",
                code="signature.component_missing",
            )
        message = message.request
    name = str(item.value)
    value = _derived(message, name, item.params) if name.startswith("@") else _field(message, item)
    if _VISIBLE.fullmatch(value) is None:
        raise MalformedSignature(
            f"the value of {serialize(item)} is not visible ASCII (cover a field with ;bs)"
        )
    return value


def _missing(what: str) -> SignatureError:
    return SignatureError(what, code="signature.component_missing")


def _derived(message: Message, name: str, params: sfv.Parameters) -> str:
    if name == "@status":  # §2.2.9: responses only
        if message.status is None or not 100 <= message.status <= 999:
            raise _missing("@status applies only to a response")
        return str(message.status)
    if message.status is not None:
        raise _missing(f"{name} applies to the request: cover it with ;req")
    if name == "@method":  # §2.2.1: as sent, case-sensitive
        return message.method
    if name == "@target-uri":  # §2.2.2
        return message.target_uri
    scheme, authority, path, query = _split(message.target_uri)
    if name == "@query-param":
        return _query_param(query, str(params["name"]))
    derived: dict[str, Callable[[], str]] = {
        "@scheme": scheme.lower,
        "@authority": lambda: _authority(scheme, authority),
        # §2.2.5: origin-form, as it was in the request line.
        "@request-target": lambda: (path or "/") + ("" if query is None else f"?{query}"),
        "@path": lambda: path or "/",  # §2.2.6: an empty path is "/"
        "@query": lambda: f"?{query or ''}",  # §2.2.7: no query is a lone "?"
    }
    return derived[name]()


def _split(uri: str) -> tuple[str, str, str, str | None]:
    match = _URI.fullmatch(uri)
    if match is None:
        raise InvalidRequest("the target URI is not absolute", detail=f"target URI {uri[:128]!r}")
    scheme, authority, path, query = match.groups()
    return scheme, authority, path, query


def _authority(scheme: str, authority: str) -> str:
    """§2.2.3: host lower-cased, default port dropped (RFC 9110 §4.2.3)."""
    match = _HOST_PORT.fullmatch(authority.rpartition("@")[2])
    if match is None:
        raise InvalidRequest("the request authority is not valid")
    host, port = match.groups()
    host = host.lower()
    if not port or port == _DEFAULT_PORTS.get(scheme.lower()):
        return host
    return f"{host}:{port}"


def _form_encode(text: str) -> str:
    """WHATWG application/x-www-form-urlencoded percent-encoding, space as %20 (§2.2.8)."""
    return quote(text, safe="*").replace("~", "%7E")


def _query_param(query: str | None, name: str) -> str:
    wanted = _form_encode(unquote(name))
    try:
        pairs = parse_qsl(query or "", keep_blank_values=True, max_num_fields=_MAX_QUERY_FIELDS)
    except ValueError as exc:
        raise InvalidRequest("the query has too many parameters") from exc
    values = [value for key, value in pairs if _form_encode(key) == wanted]
    if not values:
        raise _missing(f"the query has no parameter {wanted[:64]!r}")
    if len(values) > 1:  # §2.2.8: a repeated parameter cannot be covered by name
        raise SignatureError(
            f"query parameter {wanted[:64]!r} occurs more than once",
            code="signature.component_ambiguous",
        )
    return _form_encode(values[0])


def _field(message: Message, item: Identifier) -> str:
    name, params = str(item.value), item.params
    lines = message.headers.get_all(name)
    if not lines:
        raise _missing(f"the covered field {name!r} is not in the message")
    if "bs" in params:
        return _byte_sequences(name, lines)
    # §2.1: each line trimmed and unfolded, lines joined with ", ".
    value = ", ".join(_OBS_FOLD.sub(" ", line).strip(" \t") for line in lines)
    if "key" in params:
        return _member(name, value, str(params["key"]))
    if "sf" in params:
        return _structured(name, value)
    return value


def _byte_sequences(name: str, lines: list[str]) -> str:
    """§2.1.3: each field line (trimmed) as a Byte Sequence; the List of them."""
    try:
        raw = [line.strip(" \t").encode("latin-1") for line in lines]
    except UnicodeEncodeError as exc:
        raise MalformedSignature(f"field {name!r} is not made of octets") from exc
    return sfv.serialize_list([sfv.Item(value) for value in raw])


def _member(name: str, value: str, key: str) -> str:
    """§2.1.2: the serialized member ``key`` of the Dictionary field ``name``."""
    members = _parsed(name, lambda: sfv.parse_dictionary(value, name=name))
    if key not in members:
        raise _missing(f"field {name!r} has no member {key[:32]!r}")
    return sfv.serialize_member(members[key])


def _structured(name: str, value: str) -> str:
    """§2.1.1: the field parsed as its structured type and serialized again."""
    kind = STRUCTURED_FIELDS.get(name)
    if kind == "dictionary":
        return sfv.serialize_dictionary(
            _parsed(name, lambda: sfv.parse_dictionary(value, name=name))
        )
    if kind == "list":
        return sfv.serialize_list(_parsed(name, lambda: sfv.parse_list(value, name=name)))
    if kind == "item":
        return sfv.serialize_item(_parsed(name, lambda: sfv.parse_item(value, name=name)))
    raise SignatureError(
        f"{name!r} is not a known structured field (;sf)", code="signature.unsupported"
    )


_T = TypeVar("_T")


def _parsed(name: str, parse: Callable[[], _T]) -> _T:
    try:
        return parse()
    except ParseError as exc:
        raise MalformedSignature(exc.description, detail=exc.detail) from exc


# --- the signature base ----------------------------------------------------------------------


def signature_base(message: Message, covered: Sequence[Identifier], params_value: str) -> bytes:
    """§2.5: one ``identifier: value`` line per covered component, in order, then the
    ``"@signature-params"`` line; lines joined by LF with no trailing newline."""
    seen: set[tuple[object, frozenset[tuple[str, object]]]] = set()
    lines = []
    for item in covered:
        key = identity(item)
        if key in seen:  # §2.5 step 1: a component may be covered only once
            raise MalformedSignature(f"{serialize(item)} is covered twice")
        seen.add(key)
        lines.append(f"{serialize(item)}: {component_value(message, item)}")
    lines.append(f'"@signature-params": {params_value}')
    return "\n".join(lines).encode("ascii")
