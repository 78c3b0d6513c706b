"""The sample authorization server: grants, client authentication, tokens, metadata,
introspection. Tokens are checked with the library's own TokenValidator / Introspection."""

from __future__ import annotations

import base64
import datetime
import hashlib
import http.client
import json
import secrets
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from flask import Flask
from flask.testing import FlaskClient

from sample_apps.authserver import create_app
from sample_apps.config import DEMO_AUDIENCE, MAPPER_SCOPES, DemoConfig, make_demo_config
from sample_apps.pki import PKI, make_pki
from wsgi_apisec import jws
from wsgi_apisec.encoding import b64url_decode, json_dumps
from wsgi_apisec.errors import InvalidToken
from wsgi_apisec.introspection import Introspection
from wsgi_apisec.keys import KeySet, PrivateKey, x5t_s256
from wsgi_apisec.tokens import AccessToken, Issuer, TokenValidator

from . import serve

ISSUER = "http://127.0.0.1:8443"
REDIRECT = "http://127.0.0.1:8000/callback"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture(scope="module")
def demo() -> DemoConfig:
    return make_demo_config(ISSUER, redirect_uri=REDIRECT)


@pytest.fixture
def app(demo: DemoConfig) -> Flask:
    return create_app(demo.authserver)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def basic(client_id: str, secret: str) -> dict[str, str]:
    raw = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


def token_request(
    client: FlaskClient, data: Mapping[str, str], headers: Mapping[str, str] | None = None
) -> tuple[int, dict[str, Any], Mapping[str, str]]:
    resp = client.post("/token", data=urlencode(data), headers={**FORM, **(headers or {})})
    return resp.status_code, resp.get_json(), resp.headers


def validator(client: FlaskClient, issuer: str = ISSUER, algs: tuple[str, ...] = ("ES256",)):
    jwks = client.get("/jwks").get_json()
    return TokenValidator(
        Issuer(issuer=issuer, jwks=jwks, audience=DEMO_AUDIENCE, algorithms=list(algs))
    )


def header_of(token: str) -> dict[str, Any]:
    return json.loads(b64url_decode(token.split(".")[0]))


def claims_of(token: str) -> dict[str, Any]:
    return json.loads(b64url_decode(token.split(".")[1]))


# --- client credentials + client_secret_basic -----------------------------------------------


def test_client_credentials_basic_gives_rfc9068_jwt(demo: DemoConfig, client: FlaskClient):
    status, body, headers = token_request(
        client,
        {"grant_type": "client_credentials", "scope": "fdx:accountbasic:read"},
        basic("fdx-aggregator", demo.secrets["fdx-aggregator"]),
    )
    assert status == 200, body
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert body["scope"] == "fdx:accountbasic:read"
    assert headers["Cache-Control"] == "no-store"  # RFC 6749 §5.1
    token = body["access_token"]
    jwk = client.get("/jwks").get_json()["keys"][0]
    assert header_of(token) == {"alg": "ES256", "kid": jwk["kid"], "typ": "at+jwt"}
    checked = validator(client).validate(token)
    assert isinstance(checked, AccessToken)
    assert checked.client_id == "fdx-aggregator"
    assert checked.subject == "fdx-aggregator"  # RFC 9068 §2.2: no resource owner
    assert checked.scopes == {"fdx:accountbasic:read"}
    assert checked.audience == (DEMO_AUDIENCE,)
    assert checked.cnf is None
    claims = claims_of(token)
    assert set(claims) == {"iss", "sub", "aud", "client_id", "iat", "exp", "jti", "scope"}
    assert claims["exp"] - claims["iat"] == 3600


def test_no_scope_asked_gets_all_client_scopes_rfc6749_s3_3(demo: DemoConfig, client):
    status, body, _ = token_request(
        client,
        {"grant_type": "client_credentials"},
        basic("fdx-aggregator", demo.secrets["fdx-aggregator"]),
    )
    assert status == 200
    assert body["scope"].split() == demo.authserver["clients"][0]["scopes"]


def test_ps256_signing_is_configurable(demo: DemoConfig):
    client = create_app({**demo.authserver, "signing_alg": "PS256"}).test_client()
    _, body, _ = token_request(
        client,
        {"grant_type": "client_credentials"},
        basic("fdx-aggregator", demo.secrets["fdx-aggregator"]),
    )
    assert header_of(body["access_token"])["alg"] == "PS256"
    assert validator(client, algs=("PS256",)).validate(body["access_token"]).client_id
    # An ES256-only resource server refuses it: the key is bound to its algorithm.
    with pytest.raises(InvalidToken):
        validator(client).validate(body["access_token"])


@pytest.mark.parametrize(
    "who",
    [("fdx-aggregator", "wrong-secret"), ("nobody", "whatever"), ("g2p-partner", "x")],
    ids=["wrong-secret", "unknown-client", "client-without-secret"],
)
def test_bad_client_credentials_are_401_invalid_client_rfc6749_s5_2(client, who):
    status, body, headers = token_request(client, {"grant_type": "client_credentials"}, basic(*who))
    assert status == 401
    assert body["error"] == "invalid_client"
    # RFC 6749 §5.2: a client that used the Authorization header gets a Basic challenge.
    assert headers["WWW-Authenticate"].startswith("Basic ")


def test_no_client_authentication_is_401(client):
    status, body, _ = token_request(client, {"grant_type": "client_credentials"})
    assert (status, body["error"]) == (401, "invalid_client")


@pytest.mark.parametrize("scope", ["payments:read", "fdx:accountbasic:read no-such-scope"])
def test_scope_not_allowed_to_client_is_invalid_scope_rfc6749_s5_2(demo, client, scope):
    status, body, _ = token_request(
        client,
        {"grant_type": "client_credentials", "scope": scope},
        basic("fdx-aggregator", demo.secrets["fdx-aggregator"]),
    )
    assert (status, body["error"]) == (400, "invalid_scope")


def test_grant_type_not_registered_is_unauthorized_client(demo, client):
    status, body, _ = token_request(
        client,
        {"grant_type": "client_credentials"},
        basic("resource-server", demo.secrets["resource-server"]),
    )
    assert (status, body["error"]) == (400, "unauthorized_client")


# --- private_key_jwt (RFC 7523 §2.2) --------------------------------------------------------


def assertion(key: PrivateKey, client_id: str = "ocen-lender", **over: Any) -> str:
    now = int(time.time())
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": ISSUER + "/token",
        "jti": secrets.token_urlsafe(12),
        "iat": now,
        "exp": now + 60,
        **over,
    }
    return jws.sign(key, json_dumps(claims), jws.build_header(key, "RS256"), detached=False)


def jwt_auth(value: str) -> dict[str, str]:
    return {
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": value,
    }


def test_private_key_jwt_gives_token_with_participant_id(demo: DemoConfig, client):
    signed = assertion(demo.keys["ocen-lender"])
    status, body, _ = token_request(
        client, {"grant_type": "client_credentials", **jwt_auth(signed)}
    )
    assert status == 200, body
    checked = validator(client).validate(body["access_token"])
    assert checked.client_id == "ocen-lender"
    assert checked.claims["participantId"] == "lender-1"
    assert checked.scopes == {"ocen:loan-applications"}


def test_private_key_jwt_audience_may_be_the_issuer_rfc7523_s3(demo, client):
    signed = assertion(demo.keys["ocen-lender"], aud=ISSUER)
    status, _, _ = token_request(client, {"grant_type": "client_credentials", **jwt_auth(signed)})
    assert status == 200


def test_private_key_jwt_replayed_assertion_is_refused_rfc7523_s3(demo, client):
    signed = assertion(demo.keys["ocen-lender"])
    first, _, _ = token_request(client, {"grant_type": "client_credentials", **jwt_auth(signed)})
    again, body, _ = token_request(client, {"grant_type": "client_credentials", **jwt_auth(signed)})
    # RFC 6749 §5.2: 400 (no Authorization header was used, so 401 is not required).
    assert (first, again, body["error"]) == (200, 400, "invalid_client")


@pytest.mark.parametrize(
    "mutation",
    ["other-key", "wrong-aud", "expired", "iss-differs"],
)
def test_private_key_jwt_bad_assertion_is_invalid_client(demo, client, mutation):
    key = demo.keys["ocen-lender"]
    now = int(time.time())
    signed = {
        "other-key": lambda: assertion(demo.keys["lsp-1"]),
        "wrong-aud": lambda: assertion(key, aud="https://elsewhere.example/token"),
        "expired": lambda: assertion(key, iat=now - 600, exp=now - 300),
        "iss-differs": lambda: assertion(key, iss="lsp-1"),
    }[mutation]()
    status, body, _ = token_request(
        client, {"grant_type": "client_credentials", **jwt_auth(signed)}
    )
    assert (status, body["error"]) == (400, "invalid_client")


# --- tls_client_auth (RFC 8705 §2.1) over real TLS --------------------------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return make_pki(tmp_path_factory.mktemp("pki"), clients=("client", "other"))


@pytest.fixture(scope="module")
def live(demo: DemoConfig, pki: PKI):
    """The server on 127.0.0.1 over TLS, asking for (not requiring) client certificates."""
    with serve(
        lambda url: create_app({**demo.authserver, "issuer": url}), pki.server_context()
    ) as url:
        yield url


def tls_call(
    base_url: str,
    pki: PKI,
    who: str | None,
    path: str,
    data: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
) -> tuple[int, dict[str, Any]]:
    conn = http.client.HTTPSConnection(
        "127.0.0.1", urlsplit(base_url).port, context=pki.client_context(who), timeout=10
    )
    try:
        if data is None:
            conn.request("GET", path)
        else:
            conn.request("POST", path, urlencode(data), {**FORM, **(headers or {})})
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


def live_validator(live: str, pki: PKI) -> TokenValidator:
    _, jwks = tls_call(live, pki, None, "/jwks")
    return TokenValidator(
        Issuer(issuer=live, jwks=jwks, audience=DEMO_AUDIENCE, algorithms=["ES256"])
    )


@pytest.mark.server
def test_tls_client_auth_gives_certificate_bound_token_rfc8705_s3_1(live: str, pki: PKI):
    form = {"grant_type": "client_credentials", "client_id": "g2p-partner"}
    status, body = tls_call(live, pki, "client", "/token", form)
    assert status == 200, body
    checked = live_validator(live, pki).validate(body["access_token"])
    expected = x5t_s256(pki.clients["client"].cert_der)
    assert checked.cnf == {"x5t#S256": expected}
    assert len(expected) == 43  # RFC 8705 §3.1: unpadded base64url of a SHA-256
    assert checked.client_id == "g2p-partner"
    assert checked.scopes == set(MAPPER_SCOPES)


@pytest.mark.server
@pytest.mark.parametrize("who", ["other", None], ids=["other-subject-dn", "no-certificate"])
def test_tls_client_auth_without_the_registered_certificate_is_401(live, pki, who):
    form = {"grant_type": "client_credentials", "client_id": "g2p-partner"}
    status, body = tls_call(live, pki, who, "/token", form)
    assert (status, body["error"]) == (401, "invalid_client")


@pytest.mark.server
def test_any_client_on_mtls_gets_a_bound_token_rfc8705_s3(live, pki, demo: DemoConfig):
    status, body = tls_call(
        live,
        pki,
        "other",
        "/token",
        {"grant_type": "client_credentials"},
        basic("fdx-aggregator", demo.secrets["fdx-aggregator"]),
    )
    assert status == 200, body
    cnf = claims_of(body["access_token"])["cnf"]
    assert cnf == {"x5t#S256": x5t_s256(pki.clients["other"].cert_der)}


def san_certificate(pki: PKI, dns: str) -> str:
    """A client certificate from the same throwaway CA, naming the client by a SAN."""
    ca_key = serialization.load_pem_private_key((pki.directory / "ca.key").read_bytes(), None)
    ca = x509.load_pem_x509_certificate(pki.ca_cert_pem)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(dns)]), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


@pytest.mark.parametrize(
    ("san", "status"), [("mapper.example", 200), ("evil.example", 401)], ids=["match", "other"]
)
def test_tls_client_auth_by_san_dns_rfc8705_s2_1_2(demo: DemoConfig, pki: PKI, san, status):
    config = json.loads(json.dumps(demo.authserver))
    mapper = next(c for c in config["clients"] if c["client_id"] == "g2p-partner")
    del mapper["tls_client_auth_subject_dn"]
    mapper["tls_client_auth_san_dns"] = "mapper.example"
    client = create_app(config).test_client()
    pem = san_certificate(pki, san)
    resp = client.post(
        "/token",
        data={"grant_type": "client_credentials", "client_id": "g2p-partner"},
        environ_base={"SSL_CLIENT_CERT": pem},  # as the WSGI server's TLS layer sets it
    )
    assert resp.status_code == status
    if status == 200:
        der = x509.load_pem_x509_certificate(pem.encode()).public_bytes(serialization.Encoding.DER)
        assert claims_of(resp.get_json()["access_token"])["cnf"]["x5t#S256"] == x5t_s256(der)


def test_a_client_cert_header_is_not_a_tls_certificate(demo: DemoConfig, pki: PKI, client):
    """Only the TLS layer's environ key counts; a request header claiming one does not."""
    pem = pki.clients["client"].cert_pem.decode()
    resp = client.post(
        "/token",
        data={"grant_type": "client_credentials", "client_id": "g2p-partner"},
        headers={"SSL-Client-Cert": pem.replace("\n", " ")},
    )
    assert (resp.status_code, resp.get_json()["error"]) == (401, "invalid_client")


# --- authorization code + PKCE (RFC 6749 §4.1, RFC 7636) --------------------------------------


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    return verifier, challenge.rstrip(b"=").decode()


def authorize_url(challenge: str | None, method: str = "S256", **over: str) -> str:
    query = {
        "response_type": "code",
        "client_id": "fdx-aggregator",
        "redirect_uri": REDIRECT,
        "scope": "fdx:accountbasic:read fdx:customercontact:read",
        "state": "xyz-state",
        **over,
    }
    if challenge is not None:
        query |= {"code_challenge": challenge, "code_challenge_method": method}
    return "/authorize?" + urlencode(query)


def redirect_params(location: str) -> dict[str, str]:
    assert location.startswith(REDIRECT + "?"), location
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def approve(client: FlaskClient, url: str, user: str = "demo-user") -> dict[str, str]:
    resp = client.post(url, data={"username": user, "decision": "approve"})
    assert resp.status_code == 302, resp.get_data(as_text=True)
    return redirect_params(resp.headers["Location"])


def exchange(demo: DemoConfig, client: FlaskClient, code: str, verifier: str):
    return token_request(
        client,
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "code_verifier": verifier,
        },
        basic("fdx-aggregator", demo.secrets["fdx-aggregator"]),
    )


def test_authorization_code_with_pkce_approved(demo: DemoConfig, client: FlaskClient):
    verifier, challenge = pkce()
    page = client.get(authorize_url(challenge))
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "fdx-aggregator" in html and "fdx:customercontact:read" in html
    assert page.headers["X-Frame-Options"] == "DENY"
    params = approve(client, authorize_url(challenge))
    assert params["state"] == "xyz-state"
    status, body, _ = exchange(demo, client, params["code"], verifier)
    assert status == 200, body
    checked = validator(client).validate(body["access_token"])
    assert checked.subject == "demo-user"  # RFC 9068 §2.2: the resource owner
    assert checked.client_id == "fdx-aggregator"
    assert checked.scopes == {"fdx:accountbasic:read", "fdx:customercontact:read"}
    # RFC 6749 §4.1.2: a code is used once.
    again, body, _ = exchange(demo, client, params["code"], verifier)
    assert (again, body["error"]) == (400, "invalid_grant")


def test_authorization_code_denied_rfc6749_s4_1_2_1(client: FlaskClient):
    _, challenge = pkce()
    resp = client.post(authorize_url(challenge), data={"username": "demo-user", "decision": "deny"})
    assert resp.status_code == 302
    params = redirect_params(resp.headers["Location"])
    assert (params["error"], params["state"]) == ("access_denied", "xyz-state")
    assert "code" not in params


def test_wrong_code_verifier_is_invalid_grant_and_burns_the_code_rfc7636_s4_6(demo, client):
    verifier, challenge = pkce()
    code = approve(client, authorize_url(challenge))["code"]
    status, body, _ = exchange(demo, client, code, pkce()[0])
    assert (status, body["error"]) == (400, "invalid_grant")
    status, body, _ = exchange(demo, client, code, verifier)
    assert (status, body["error"]) == (400, "invalid_grant")


@pytest.mark.parametrize(
    ("challenge", "method"), [(None, "S256"), ("x" * 43, "plain")], ids=["no-pkce", "plain"]
)
def test_pkce_s256_is_required_rfc7636_s4_4_1(client, challenge, method):
    resp = client.get(authorize_url(challenge, method))
    assert resp.status_code == 302
    params = redirect_params(resp.headers["Location"])
    assert (params["error"], params["state"]) == ("invalid_request", "xyz-state")


def test_unregistered_redirect_uri_is_not_followed_rfc6749_s4_1_2_1(client):
    _, challenge = pkce()
    resp = client.get(authorize_url(challenge, redirect_uri="https://evil.example/cb"))
    assert resp.status_code == 400
    assert "Location" not in resp.headers
    assert resp.get_json()["error"] == "invalid_request"


def test_scope_beyond_the_client_is_redirected_as_invalid_scope(client):
    _, challenge = pkce()
    resp = client.get(authorize_url(challenge, scope="payments:read"))
    assert redirect_params(resp.headers["Location"])["error"] == "invalid_scope"


def test_unknown_demo_user_gets_the_page_again(client):
    _, challenge = pkce()
    resp = client.post(
        authorize_url(challenge), data={"username": "mallory", "decision": "approve"}
    )
    assert resp.status_code == 400
    assert "unknown demo user" in resp.get_data(as_text=True)


# --- metadata, JWKS -------------------------------------------------------------------------


def test_metadata_rfc8414_s2(client: FlaskClient):
    meta = client.get("/.well-known/oauth-authorization-server").get_json()
    AuthorizationServerMetadata(meta).validate()  # Authlib's RFC 8414 checker
    assert meta["issuer"] == ISSUER
    assert meta["token_endpoint"] == ISSUER + "/token"
    assert meta["jwks_uri"] == ISSUER + "/jwks"
    assert meta["introspection_endpoint"] == ISSUER + "/introspect"
    assert meta["grant_types_supported"] == ["client_credentials", "authorization_code"]
    assert meta["token_endpoint_auth_methods_supported"] == [
        "client_secret_basic",
        "private_key_jwt",
        "tls_client_auth",
    ]
    assert meta["code_challenge_methods_supported"] == ["S256"]
    assert meta["tls_client_certificate_bound_access_tokens"] is True  # RFC 8705 §3.3
    assert "fdx:accountbasic:read" in meta["scopes_supported"]


def test_jwks_holds_one_public_signing_key(client: FlaskClient):
    jwks = client.get("/jwks").get_json()
    assert len(jwks["keys"]) == 1
    jwk = jwks["keys"][0]
    assert (jwk["kty"], jwk["crv"], jwk["alg"], jwk["use"]) == ("EC", "P-256", "ES256", "sig")
    assert "d" not in jwk
    key = KeySet.from_jwks(jwks).keys[0]
    assert jwk["kid"] == key.thumbprint()  # RFC 7638 thumbprint as kid


def test_configured_signing_key_is_used(demo: DemoConfig):
    key = PrivateKey.generate("ES256")
    client = create_app({**demo.authserver, "signing_key_pem": key.to_pem().decode()}).test_client()
    assert client.get("/jwks").get_json()["keys"][0]["kid"] == key.thumbprint()


# --- opaque tokens and introspection (RFC 7662) ----------------------------------------------


def opaque_token(demo: DemoConfig, client: FlaskClient) -> str:
    status, body, _ = token_request(
        client,
        {"grant_type": "client_credentials"},
        basic("legacy-merchant", demo.secrets["legacy-merchant"]),
    )
    assert status == 200, body
    assert body["access_token"].count(".") == 0  # not a JWT
    return str(body["access_token"])


def introspect(demo: DemoConfig, client: FlaskClient, token: str, who: str = "resource-server"):
    resp = client.post("/introspect", data={"token": token}, headers=basic(who, demo.secrets[who]))
    return resp.status_code, resp.get_json()


def test_introspection_of_an_active_opaque_token_rfc7662_s2_2(demo: DemoConfig, client):
    token = opaque_token(demo, client)
    status, body = introspect(demo, client, token)
    assert status == 200
    assert body["active"] is True
    assert body["client_id"] == "legacy-merchant"
    assert body["scope"] == "payments:read"
    assert body["token_type"] == "Bearer"
    assert (body["iss"], body["sub"], body["aud"]) == (ISSUER, "legacy-merchant", DEMO_AUDIENCE)
    assert body["exp"] > time.time()


def test_revoked_unknown_and_jwt_tokens_are_inactive_rfc7662_s2_2(demo: DemoConfig, client):
    token = opaque_token(demo, client)
    revoke = client.post(
        "/revoke",
        data={"token": token},
        headers=basic("legacy-merchant", demo.secrets["legacy-merchant"]),
    )
    assert revoke.status_code == 200  # RFC 7009 §2.2
    assert introspect(demo, client, token) == (200, {"active": False})
    assert introspect(demo, client, "no-such-token") == (200, {"active": False})
    _, body, _ = token_request(
        client,
        {"grant_type": "client_credentials"},
        basic("fdx-aggregator", demo.secrets["fdx-aggregator"]),
    )
    # JWTs are self-contained and not kept: this server does not introspect them.
    assert introspect(demo, client, body["access_token"]) == (200, {"active": False})


def test_introspection_needs_an_allowed_client_rfc7662_s2_1(demo: DemoConfig, client):
    token = opaque_token(demo, client)
    # A client that is not a resource server learns nothing.
    assert introspect(demo, client, token, who="fdx-aggregator") == (200, {"active": False})
    resp = client.post("/introspect", data={"token": token})
    assert (resp.status_code, resp.get_json()["error"]) == (401, "invalid_client")


class FlaskTestPoster:
    """wsgi_apisec's introspection Poster over Flask's test client (no sockets needed)."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client

    def post(self, url, *, data, headers, timeout):
        resp = self.client.post(urlsplit(url).path, data=dict(data), headers=dict(headers))
        return resp.status_code, dict(resp.headers), resp.get_data()


def test_library_introspection_client_reads_the_answer(demo: DemoConfig, client):
    token = opaque_token(demo, client)
    remote = Introspection(
        ISSUER + "/introspect",
        client_id="resource-server",
        client_secret=demo.secrets["resource-server"],
        poster=FlaskTestPoster(client),
    )
    checked = TokenValidator(remote).validate(token)
    assert (checked.client_id, checked.scopes) == ("legacy-merchant", {"payments:read"})
    client.post(
        "/revoke",
        data={"token": token},
        headers=basic("legacy-merchant", demo.secrets["legacy-merchant"]),
    )
    fresh = Introspection(
        ISSUER + "/introspect",
        client_id="resource-server",
        client_secret=demo.secrets["resource-server"],
        poster=FlaskTestPoster(client),
    )
    with pytest.raises(InvalidToken):
        fresh.introspect(token)


def test_config_from_a_json_file(demo: DemoConfig, tmp_path: Path):
    path = tmp_path / "authserver.json"
    path.write_text(json.dumps(demo.authserver))
    meta = create_app(path).test_client().get("/.well-known/oauth-authorization-server")
    assert meta.get_json()["issuer"] == ISSUER
