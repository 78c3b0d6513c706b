"""RFC 9421 ``Signature-Input`` / ``Signature`` verification with fixed keys, on requests and
on responses (a first line ``HTTP <status>`` links the response to a fixed signed request).

Properties beyond "only :class:`APISecError` escapes": what verifies covers what the policy
requires; and any message we can sign (every field it carries, and its derived components)
verifies again under the same key, so signer and verifier agree on every signature base.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from contextlib import suppress

from fuzz.fixtures import KEYS, NOW, ORIGIN, Target, parse_request, request
from wsgi_apisec import sfv
from wsgi_apisec.errors import APISecError
from wsgi_apisec.fapi2 import FAPI2_REQUEST_POLICY, FAPI2_RESPONSE_POLICY
from wsgi_apisec.httpsig import (
    VerificationPolicy,
    parse_signature_input,
    sign_message,
    verify_message,
)
from wsgi_apisec.httpsig_components import identifier, identity
from wsgi_apisec.keys import PrivateKey
from wsgi_apisec.message import Body, Headers, Message
from wsgi_apisec.resolvers import StaticKeyResolver

HMAC = PrivateKey.from_key(KEYS.hmac.key, kid="hs-1", algorithms=["hmac-sha256"])  # type: ignore[arg-type]
RESOLVER = StaticKeyResolver(KEYS.verifying)
LENIENT = VerificationPolicy(
    select="any", max_age=None, require_created=False, content_digest=False
)
REQUEST_POLICIES = [VerificationPolicy(), FAPI2_REQUEST_POLICY, LENIENT]
RESPONSE_POLICIES = [VerificationPolicy(required=("@status",)), FAPI2_RESPONSE_POLICY]
ROUND_TRIP = VerificationPolicy(label="fz", max_age=None, content_digest=False)
_SIGNATURE_FIELDS = frozenset({"signature", "signature-input", "content-digest"})


def _request() -> Message:
    body = Body(b'{"amount": 10}')
    base = Message("POST", ORIGIN + "/fapi/pay?x=1", Headers({"Authorization": "Bearer t"}), body)
    covered = ["@method", "@target-uri", "authorization", "content-digest"]
    added = sign_message(base, KEYS.es256, covered, now=NOW, tag="fapi-2-request")
    return dataclasses.replace(base, headers=Headers([*base.headers.items(), *added]))


REQUEST = _request()


def httpsig_one(data: bytes) -> None:
    raw = parse_request(data)
    message = raw.message(request=REQUEST)
    for name, value in raw.headers:
        if name.lower() == "signature-input":
            with suppress(APISecError):
                parse_signature_input(value)
    policies = REQUEST_POLICIES if message.status is None else RESPONSE_POLICIES
    for policy in policies:
        try:
            result = verify_message(message, RESOLVER, policy, NOW)
        except APISecError as err:
            assert err.status in (400, 401)
            continue
        covered = {identity(identifier(text)) for text in result.covered}
        assert all(identity(item) in covered for item in policy._required)
    _round_trip(message)


def _round_trip(message: Message) -> None:
    """Sign every component of ``message`` (any body), then verify it: it must pass."""
    items = [(n, v) for n, v in message.headers.items() if n.lower() not in _SIGNATURE_FIELDS]
    derived = ["@status"] if message.status is not None else ["@method", "@target-uri", "@path"]
    names = [*derived, *dict.fromkeys(n.lower() for n, _ in items)]
    if len(message.body):
        names.append("content-digest")
    unsigned = dataclasses.replace(message, headers=Headers(items))
    try:
        added = sign_message(unsigned, KEYS.ed25519, names, now=NOW, label="fz")
    except APISecError:
        return  # a component that cannot be signed (not visible ASCII, no target URI, ...)
    signed = dataclasses.replace(unsigned, headers=Headers([*items, *added]))
    result = verify_message(signed, RESOLVER, ROUND_TRIP, NOW)
    assert result.label == "fz" and result.kid == "ed-1"


def httpsig_seeds() -> Iterable[bytes]:
    yield REQUEST_RAW
    body = b"hello"
    for key, alg in ((KEYS.es256, None), (KEYS.ed25519, "ed25519"), (HMAC, "hmac-sha256")):
        message = Message("GET", ORIGIN + "/a?b=c&d", Headers({"X-A": " v ", "Accept": "*/*"}))
        covered: list[str | sfv.Item] = [
            "@method",
            "@authority",
            "@query",
            "x-a",
            "@request-target",
        ]
        covered.append(sfv.Item("@query-param", {"name": "b"}))
        covered.append(sfv.Item("x-a", {"bs": True}))
        added = sign_message(message, key, covered, now=NOW, alg=alg, nonce="n1", expires_in=60)
        yield request("GET", "/a?b=c&d", [*message.headers.items(), *added], b"")
    response = Message(
        status=200,
        headers=Headers({"Content-Type": "text/plain"}),
        body=Body(body),
        request=REQUEST,
    )
    covered = [
        "@status",
        "content-digest",
        sfv.Item("@method", {"req": True}),
        sfv.Item("signature", {"key": "sig1", "req": True}),
    ]
    added = sign_message(response, KEYS.es256, covered, now=NOW, tag="fapi-2-response")
    yield request("HTTP", "200", [*response.headers.items(), *added], body)


REQUEST_RAW = request("POST", "/fapi/pay?x=1", REQUEST.headers.items(), REQUEST.body.read())

TARGETS = {"httpsig": Target(httpsig_one, httpsig_seeds)}
