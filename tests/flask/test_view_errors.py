"""An ``APISecError`` raised inside a view is answered like the middleware's own refusals on
the same route: in the envelope of the view's signature profile (G2P Connect
``{"errors": [...]}``), else RFC 9457 problem+json, with the same status and
``WWW-Authenticate`` challenge."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from flask import Flask
from werkzeug.test import TestResponse

from flask_apisec import APISec, current_token
from flask_apisec.testing import TestIssuer
from tests.flask import make_app, outcome
from wsgi_apisec import profiles
from wsgi_apisec.errors import InsufficientScope, InvalidRequest
from wsgi_apisec.keys import KeySet, PrivateKey
from wsgi_apisec.resolvers import StaticKeyResolver

PARTNER = "g2p-partner"
#: The mapper's profile, as the G2P mapper sample sets it up.
MAPPER = profiles.G2P_CONNECT.replace(
    options={**profiles.G2P_CONNECT.options, "sender_id": "mapper"}
)
#: What the partner signs its requests with.
SENDER = profiles.G2P_CONNECT.replace(
    options={**profiles.G2P_CONNECT.options, "sender_id": PARTNER}
)
_IDS = itertools.count()


@pytest.fixture(scope="module")
def issuer() -> TestIssuer:
    return TestIssuer("ES256")


@pytest.fixture(scope="module")
def partner_key() -> PrivateKey:
    return PrivateKey.generate("Ed25519", kid="partner-1")


@pytest.fixture(scope="module")
def app(issuer: TestIssuer, partner_key: PrivateKey) -> Flask:
    app = make_app(
        issuers=[issuer.issuer_config()],
        realm="mapper",
        signature_profile=MAPPER,
        signature_keys=StaticKeyResolver(owners={PARTNER: KeySet([partner_key.public_key()])}),
    )
    apisec = APISec(app)

    @app.post("/mapper/sync/link")
    @apisec.require_token(scopes="mapper:link")
    @apisec.require_signature
    def link() -> dict[str, Any]:
        _refuse_unless_admin()
        return {"linked": True}

    @app.get("/plain")
    @apisec.require_token(scopes="mapper:link")
    def plain() -> dict[str, Any]:
        _refuse_unless_admin()
        return {"plain": True}

    @app.post("/bad-envelope")
    @apisec.require_token
    @apisec.require_signature
    def bad_envelope() -> str:
        raise InvalidRequest("the envelope has no message object")

    return app


def _refuse_unless_admin() -> None:
    if not current_token.has_scope("mapper:admin"):
        raise InsufficientScope("needs mapper:admin", challenge={"scope": "mapper:admin"})


def _envelope() -> bytes:
    header = {"message_id": f"m-{next(_IDS)}", "sender_id": PARTNER}
    return json.dumps({"header": header, "message": {}}).encode()


def _signed_post(app: Flask, key: PrivateKey, path: str, token: str) -> TestResponse:
    return app.test_client().post(
        path,
        data=_envelope(),
        content_type="application/json",
        token=token,
        signature=(SENDER, key),
    )


def _g2p_error(response: TestResponse) -> str:
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert set(body) == {"errors"} and len(body["errors"]) == 1
    return str(body["errors"][0]["code"])


def test_g2p_route_in_view_error_is_a_g2p_envelope(
    app: Flask, issuer: TestIssuer, partner_key: PrivateKey
) -> None:
    good = _signed_post(app, partner_key, "/mapper/sync/link", issuer.token("mapper:link admin"))
    assert good.status_code == 403
    assert _g2p_error(good) == "err.token.insufficient_scope"
    assert good.get_json()["errors"][0]["message"] == "needs mapper:admin"
    challenge = good.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer ") and 'realm="mapper"' in challenge
    assert 'error="insufficient_scope"' in challenge and 'scope="mapper:admin"' in challenge
    assert good.headers["Cache-Control"] == "no-store"


def test_g2p_route_in_view_error_matches_the_middleware_refusal(
    app: Flask, issuer: TestIssuer, partner_key: PrivateKey
) -> None:
    refused = _signed_post(app, partner_key, "/mapper/sync/link", issuer.token("other"))
    in_view = _signed_post(app, partner_key, "/mapper/sync/link", issuer.token("mapper:link"))
    for response in (refused, in_view):
        assert response.status_code == 403
        assert _g2p_error(response) == "err.token.insufficient_scope"
        assert 'error="insufficient_scope"' in response.headers["WWW-Authenticate"]


def test_g2p_route_other_api_error_keeps_its_code(
    app: Flask, issuer: TestIssuer, partner_key: PrivateKey
) -> None:
    response = _signed_post(app, partner_key, "/bad-envelope", issuer.token("mapper:link"))
    assert response.status_code == 400
    assert _g2p_error(response) == "err.request.invalid"
    assert "WWW-Authenticate" not in response.headers


def test_plain_route_in_view_error_is_problem_json(app: Flask, issuer: TestIssuer) -> None:
    response = app.test_client().get("/plain", token=issuer.token("mapper:link"))
    assert outcome(response) == (403, "insufficient_scope", "token.insufficient_scope")
    assert response.mimetype == "application/problem+json"
    assert 'scope="mapper:admin"' in response.headers["WWW-Authenticate"]


def test_g2p_route_middleware_refusal_is_unchanged(app: Flask, issuer: TestIssuer) -> None:
    """A request without a signature never reaches the view: the signature layer refuses
    it in the same envelope."""
    response = app.test_client().post(
        "/mapper/sync/link", data=_envelope(), token=issuer.token("mapper:link")
    )
    assert response.status_code == 401
    assert _g2p_error(response) == "err.signature.missing"
