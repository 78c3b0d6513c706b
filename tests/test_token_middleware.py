"""TokenMiddleware under werkzeug's test client: RFC 6750 transport and challenges, scopes,
optional routes, RFC 8705 certificate-bound and RFC 9449 DPoP-bound tokens, FAPI's
``require_bound``, key-source outage, and the rules that pick a route's requirement.

Every rejection asserts the exact status, RFC 6750 error, dotted code and
``WWW-Authenticate`` value, and that the app never ran.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from cryptography import x509
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.test import Client
from werkzeug.wrappers import Request

from tests.certs import der, make_cert, pem, sf_bytes
from tests.test_tokens import AUD, ISS, NOW, claims, mint, signing_key
from wsgi_apisec import profiles
from wsgi_apisec.certs import ClientCertSource
from wsgi_apisec.dpop import DPoPVerifier, make_proof
from wsgi_apisec.environ import ENV_BINDING, ENV_TOKEN
from wsgi_apisec.errors import ConfigurationError, KeySourceError
from wsgi_apisec.fetch import FetchResult
from wsgi_apisec.keys import KeySet, PrivateKey, x5t_s256
from wsgi_apisec.middleware import (
    Rule,
    SignatureMiddleware,
    TokenMiddleware,
    TokenRequirement,
    protect,
)
from wsgi_apisec.resolvers import StaticKeyResolver
from wsgi_apisec.tokens import AccessToken, Issuer, TokenValidator

ALG = "ES256"
REALM = "api"
PROXY = "10.0.0.7"
METADATA = "https://api.example.com/.well-known/oauth-protected-resource"
ACCOUNTS_ANY = ("fdx:accountbasic:read", "fdx:accountdetailed:read")


# --- the app, the validator, the middleware -------------------------------------------------


@dataclass
class Recorder:
    """Records whether it ran; echoes the verified token's claims, binding and body."""

    calls: int = 0
    seen: list[dict[str, Any]] = field(default_factory=list)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        self.calls += 1
        token = environ.get(ENV_TOKEN)
        binding = environ.get(ENV_BINDING)
        data = Request(environ).get_data()
        info = {
            "claims": dict(token.claims) if token is not None else None,
            "scheme": token.scheme if token is not None else None,
            "x5t": binding.x5t_s256 if binding is not None else None,
            "jkt": binding.dpop.jkt if binding is not None and binding.dpop else None,
            "sha256": hashlib.sha256(data).hexdigest(),
        }
        self.seen.append(info)
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps(info).encode()]


def validator(**kw: Any) -> TokenValidator:
    key = signing_key(ALG)
    issuer = Issuer(ISS, jwks=KeySet([key.public_key()]), audience=AUD, **kw)
    return TokenValidator(issuer, clock=lambda: NOW)


def token(**changes: Any) -> str:
    return mint(signing_key(ALG), claims(**changes))


RULES = [
    Rule("/health", exempt=True),
    Rule("/accounts/**", token=TokenRequirement(scopes=("accounts:read",))),
    Rule("/fdx/accounts", token=TokenRequirement(any_of=ACCOUNTS_ANY)),
    Rule("/public/**", token=TokenRequirement(optional=True)),
    Rule("/mtls/**", token=TokenRequirement(cert_bound=True)),
    Rule("/dpop/**", token=TokenRequirement(dpop=True)),
]


@dataclass
class Setup:
    app: Recorder
    mw: TokenMiddleware
    client: Client


def make(rules: Any = RULES, *, wrap: Any = None, **kw: Any) -> Setup:
    app = Recorder()
    kw.setdefault("validator", validator())
    kw.setdefault("realm", REALM)
    kw.setdefault("dpop_verifier", dpop_verifier())
    mw = TokenMiddleware(app, rules, **kw)
    return Setup(app, mw, Client(wrap(mw) if wrap else mw))


def dpop_verifier() -> DPoPVerifier:
    return DPoPVerifier(algorithms=["ES256"], clock=lambda: NOW)


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


def ok(resp: Any, s: Setup) -> dict[str, Any]:
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert "WWW-Authenticate" not in resp.headers
    doc: dict[str, Any] = json.loads(resp.get_data())
    assert doc == s.app.seen[-1]
    return doc


def refused(
    resp: Any, s: Setup, status: int, code: str, challenge: str | None, error: str | None = None
) -> dict[str, Any]:
    """Exact status, problem body, dotted code, RFC 6750 error and challenge; app not run."""
    assert resp.status_code == status, resp.get_data(as_text=True)
    assert resp.headers["Content-Type"] == "application/problem+json"
    assert resp.headers["Cache-Control"] == "no-store"
    doc: dict[str, Any] = json.loads(resp.get_data())
    assert (doc["status"], doc["code"], doc.get("error")) == (status, code, error)
    assert resp.headers.get("WWW-Authenticate") == challenge
    assert s.app.calls == 0
    return doc


def invalid_token(description: str, scheme: str = "Bearer", extra: str = "") -> str:
    return (
        f'{scheme} realm="{REALM}", error="invalid_token", error_description="{description}"{extra}'
    )


# --- RFC 6750: transport, challenges, scopes ------------------------------------------------


def test_valid_token_reaches_the_app_with_its_claims() -> None:
    s = make()
    raw = token()
    doc = ok(s.client.get("/accounts/1", headers=bearer(raw)), s)
    assert doc["claims"]["sub"] == "user-1" and doc["claims"]["iss"] == ISS
    assert (doc["scheme"], doc["x5t"], doc["jkt"]) == ("Bearer", None, None)


def test_rfc6750_s3_1_no_token_is_401_without_error() -> None:
    s = make()
    resp = s.client.get("/accounts/1")
    doc = refused(resp, s, 401, "token.missing", f'Bearer realm="{REALM}"')
    assert doc["detail"] == "an access token is required"


def test_rfc9728_s5_1_resource_metadata_in_the_challenge() -> None:
    s = make(resource_metadata=METADATA)
    resp = s.client.get("/accounts/1")
    refused(
        resp, s, 401, "token.missing", f'Bearer realm="{REALM}", resource_metadata="{METADATA}"'
    )


def test_rfc6750_s3_1_bad_token_is_invalid_token() -> None:
    s = make()
    forged = mint(PrivateKey.generate(ALG, kid=signing_key(ALG).kid), claims())
    resp = s.client.get("/accounts/1", headers=bearer(forged))
    challenge = invalid_token("the token signature does not verify")
    refused(resp, s, 401, "token.signature", challenge, "invalid_token")


def test_rfc6750_s3_1_expired_token_is_invalid_token() -> None:
    s = make()
    resp = s.client.get("/accounts/1", headers=bearer(token(exp=int(NOW) - 3600)))
    assert resp.status_code == 401
    assert resp.headers["WWW-Authenticate"].startswith(
        f'Bearer realm="{REALM}", error="invalid_token"'
    )
    assert s.app.calls == 0


def test_rfc6750_s3_1_missing_scope_is_403_with_scope() -> None:
    s = make()
    resp = s.client.get("/accounts/1", headers=bearer(token(scope="payments:write")))
    challenge = (
        f'Bearer realm="{REALM}", error="insufficient_scope", '
        'error_description="the token lacks the scope accounts:read", scope="accounts:read"'
    )
    refused(resp, s, 403, "token.insufficient_scope", challenge, "insufficient_scope")


@pytest.mark.parametrize("scope", ["fdx:accountbasic:read", "other fdx:accountdetailed:read"])
def test_any_of_one_scope_is_enough(scope: str) -> None:
    s = make()
    ok(s.client.get("/fdx/accounts", headers=bearer(token(scope=scope))), s)


def test_any_of_none_of_the_scopes_is_403() -> None:
    s = make()
    resp = s.client.get("/fdx/accounts", headers=bearer(token(scope="accounts:read")))
    challenge = (
        f'Bearer realm="{REALM}", error="insufficient_scope", error_description="the token '
        'needs one of the scopes fdx:accountbasic:read fdx:accountdetailed:read", '
        'scope="fdx:accountbasic:read fdx:accountdetailed:read"'
    )
    refused(resp, s, 403, "token.insufficient_scope", challenge, "insufficient_scope")


def test_optional_route_runs_without_a_token() -> None:
    s = make()
    doc = ok(s.client.get("/public/x"), s)
    assert doc["claims"] is None


def test_optional_route_still_checks_a_token_that_is_sent() -> None:
    s = make()
    assert ok(s.client.get("/public/x", headers=bearer(token())), s)["claims"]["sub"] == "user-1"
    s = make()
    resp = s.client.get("/public/x", headers=bearer(token(aud="https://other.example")))
    challenge = invalid_token("the token is not meant for this audience")
    refused(resp, s, 401, "token.audience", challenge, "invalid_token")


def test_optional_route_drops_a_token_an_outer_layer_put_in_environ() -> None:
    s = make()
    planted = AccessToken("x", {"sub": "admin"}, ISS, "admin", "c", frozenset({"accounts:read"}))
    doc = ok(s.client.get("/public/x", environ_overrides={ENV_TOKEN: planted}), s)
    assert doc["claims"] is None


def test_rfc6750_s2_3_query_token_refused_by_default() -> None:
    s = make()
    resp = s.client.get("/accounts/1", query_string={"access_token": token()})
    challenge = (
        f'Bearer realm="{REALM}", error="invalid_request", '
        'error_description="access tokens are not accepted in the URI query"'
    )
    refused(resp, s, 400, "request.invalid", challenge, "invalid_request")


def test_rfc6750_s2_3_query_token_when_allowed() -> None:
    s = make(allow_query=True)
    ok(s.client.get("/accounts/1", query_string={"access_token": token()}), s)


def test_rfc6750_s2_two_tokens_are_400() -> None:
    s = make(allow_query=True)
    resp = s.client.get(
        "/accounts/1", headers=bearer(token()), query_string={"access_token": token()}
    )
    challenge = (
        f'Bearer realm="{REALM}", error="invalid_request", '
        'error_description="the request carries more than one access token"'
    )
    refused(resp, s, 400, "request.invalid", challenge, "invalid_request")


def test_rfc6750_s2_2_form_token_when_allowed_and_body_handed_on_exactly() -> None:
    s = make(allow_form=True)
    body = f"access_token={token()}&amount=10.00&note=caf%C3%A9".encode()
    resp = s.client.post("/accounts/1", data=body, content_type="application/x-www-form-urlencoded")
    assert ok(resp, s)["sha256"] == hashlib.sha256(body).hexdigest()


def test_rfc6750_s2_2_form_token_ignored_unless_allowed() -> None:
    s = make()
    body = f"access_token={token()}".encode()
    resp = s.client.post("/accounts/1", data=body, content_type="application/x-www-form-urlencoded")
    refused(resp, s, 401, "token.missing", f'Bearer realm="{REALM}"')


def test_rfc6750_s2_2_form_and_header_token_are_two_tokens() -> None:
    s = make(allow_form=True)
    resp = s.client.post(
        "/accounts/1",
        data=f"access_token={token()}",
        content_type="application/x-www-form-urlencoded",
        headers=bearer(token()),
    )
    challenge = (
        f'Bearer realm="{REALM}", error="invalid_request", '
        'error_description="the request carries more than one access token"'
    )
    refused(resp, s, 400, "request.invalid", challenge, "invalid_request")


class Unread(io.BytesIO):
    """A request body that records whether anyone read it."""

    reads = 0

    def read(self, size: int | None = -1) -> bytes:
        self.reads += 1
        return super().read(size)


def test_body_not_read_when_no_form_token_is_possible() -> None:
    s = make(allow_form=True)
    stream = Unread(b'{"a": 1}')
    resp = s.client.post(
        "/accounts/1",
        data=b'{"a": 1}',
        content_type="application/json",
        environ_overrides={"wsgi.input": stream},
    )
    refused(resp, s, 401, "token.missing", f'Bearer realm="{REALM}"')
    assert stream.reads == 0


def test_form_body_over_max_body_is_413_without_challenge() -> None:
    s = make(allow_form=True, max_body=16)
    resp = s.client.post(
        "/accounts/1",
        data="access_token=" + token(),
        content_type="application/x-www-form-urlencoded",
    )
    refused(resp, s, 413, "request.too_large", None, "invalid_request")


# --- RFC 8705: certificate-bound tokens -----------------------------------------------------


@pytest.fixture(scope="module")
def certs() -> tuple[x509.Certificate, x509.Certificate]:
    return make_cert("client"), make_cert("other")


def bound_to(cert: x509.Certificate) -> str:
    return token(cnf={"x5t#S256": x5t_s256(der(cert))})


def test_rfc8705_s3_right_certificate_passes(certs: Any) -> None:
    client, _ = certs
    s = make()
    resp = s.client.get(
        "/mtls/x",
        headers=bearer(bound_to(client)),
        environ_overrides={"SSL_CLIENT_CERT": pem(client)},
    )
    assert ok(resp, s)["x5t"] == x5t_s256(der(client))


def test_rfc8705_s3_other_certificate_is_invalid_token(certs: Any) -> None:
    client, other = certs
    s = make()
    resp = s.client.get(
        "/mtls/x",
        headers=bearer(bound_to(client)),
        environ_overrides={"SSL_CLIENT_CERT": pem(other)},
    )
    challenge = invalid_token("certificate does not match the token")
    refused(resp, s, 401, "token.cert_mismatch", challenge, "invalid_token")


def test_rfc8705_s3_no_certificate_is_invalid_token(certs: Any) -> None:
    client, _ = certs
    s = make()
    resp = s.client.get("/mtls/x", headers=bearer(bound_to(client)))
    challenge = invalid_token("token is certificate-bound but no client certificate was presented")
    refused(resp, s, 401, "token.cert_missing", challenge, "invalid_token")


def test_cert_bound_route_refuses_an_unbound_token() -> None:
    s = make()
    resp = s.client.get("/mtls/x", headers=bearer(token()))
    challenge = invalid_token("the token must be bound to a client certificate")
    refused(resp, s, 401, "token.cert_required", challenge, "invalid_token")


def test_rfc9440_client_cert_header_from_a_trusted_proxy(certs: Any) -> None:
    client, _ = certs
    s = make(cert_source=ClientCertSource(trusted_proxies=[PROXY]))
    resp = s.client.get(
        "/mtls/x",
        headers={**bearer(bound_to(client)), "Client-Cert": sf_bytes(der(client))},
        environ_overrides={"REMOTE_ADDR": PROXY},
    )
    assert ok(resp, s)["x5t"] == x5t_s256(der(client))


def test_rfc9440_client_cert_header_from_an_untrusted_peer_is_ignored(certs: Any) -> None:
    client, _ = certs
    s = make(cert_source=ClientCertSource(trusted_proxies=[PROXY]))
    resp = s.client.get(
        "/mtls/x",
        headers={**bearer(bound_to(client)), "Client-Cert": sf_bytes(der(client))},
        environ_overrides={"REMOTE_ADDR": "192.0.2.66"},
    )
    challenge = invalid_token("token is certificate-bound but no client certificate was presented")
    refused(resp, s, 401, "token.cert_missing", challenge, "invalid_token")


# --- RFC 9449: DPoP-bound tokens ------------------------------------------------------------

DPOP_URL = "http://localhost/dpop/x"


@pytest.fixture(scope="module")
def dpop_key() -> PrivateKey:
    return PrivateKey.generate("ES256")


def dpop_headers(key: PrivateKey, raw: str, url: str = DPOP_URL, jti: str = "j1") -> dict[str, str]:
    proof = make_proof(key, "GET", url, access_token=raw, iat=NOW, jti=jti)
    return {"Authorization": f"DPoP {raw}", "DPoP": proof}


def test_rfc9449_s7_1_dpop_bound_token_with_proof_passes(dpop_key: PrivateKey) -> None:
    s = make()
    raw = token(cnf={"jkt": dpop_key.public_key().thumbprint()})
    doc = ok(s.client.get("/dpop/x", headers=dpop_headers(dpop_key, raw)), s)
    assert (doc["scheme"], doc["jkt"]) == ("DPoP", dpop_key.public_key().thumbprint())


def test_rfc9449_s7_2_dpop_bound_token_as_bearer_gets_a_dpop_challenge(
    dpop_key: PrivateKey,
) -> None:
    s = make()
    raw = token(cnf={"jkt": dpop_key.public_key().thumbprint()})
    resp = s.client.get("/dpop/x", headers=bearer(raw))
    challenge = invalid_token(
        "DPoP-bound token must be presented with the DPoP scheme", "DPoP", ', algs="ES256"'
    )
    refused(resp, s, 401, "token.dpop_scheme_required", challenge, "invalid_token")


def test_rfc9449_s7_1_dpop_route_refuses_an_unbound_bearer_token() -> None:
    s = make()
    resp = s.client.get("/dpop/x", headers=bearer(token()))
    challenge = invalid_token("the token must be DPoP-bound", "DPoP", ', algs="ES256"')
    refused(resp, s, 401, "token.dpop_required", challenge, "invalid_token")


def test_rfc9449_s7_1_dpop_route_without_credentials_challenges_dpop() -> None:
    s = make()
    refused(s.client.get("/dpop/x"), s, 401, "token.missing", f'DPoP realm="{REALM}", algs="ES256"')


def test_rfc9449_s11_1_replayed_proof_is_invalid_dpop_proof(dpop_key: PrivateKey) -> None:
    s = make()
    raw = token(cnf={"jkt": dpop_key.public_key().thumbprint()})
    headers = dpop_headers(dpop_key, raw)
    ok(s.client.get("/dpop/x", headers=headers), s)
    s.app.calls = 0
    resp = s.client.get("/dpop/x", headers=headers)
    challenge = (
        f'DPoP realm="{REALM}", error="invalid_dpop_proof", '
        'error_description="DPoP proof has been used before", algs="ES256"'
    )
    refused(resp, s, 401, "dpop.replayed", challenge, "invalid_dpop_proof")


def test_rfc9449_s4_3_htu_behind_a_proxy_needs_proxy_fix(dpop_key: PrivateKey) -> None:
    raw = token(cnf={"jkt": dpop_key.public_key().thumbprint()})
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "api.example"}
    url = "https://api.example/dpop/x"
    # Without ProxyFix the middleware sees the proxy's hop (http://localhost), not the
    # URI the client signed.
    s = make()
    resp = s.client.get("/dpop/x", headers={**dpop_headers(dpop_key, raw, url), **forwarded})
    challenge = (
        f'DPoP realm="{REALM}", error="invalid_dpop_proof", '
        'error_description="DPoP proof htu does not match the request URI", algs="ES256"'
    )
    refused(resp, s, 401, "dpop.invalid", challenge, "invalid_dpop_proof")
    s = make(wrap=lambda app: ProxyFix(app, x_proto=1, x_host=1))
    headers = {**dpop_headers(dpop_key, raw, url, jti="j2"), **forwarded}
    assert ok(s.client.get("/dpop/x", headers=headers), s)["scheme"] == "DPoP"


# --- FAPI, key sources, rules ---------------------------------------------------------------


def test_require_bound_refuses_an_unbound_token(certs: Any) -> None:
    s = make(require_bound=True)
    resp = s.client.get("/accounts/1", headers=bearer(token()))
    challenge = invalid_token("token is not sender-constrained")
    refused(resp, s, 401, "token.unbound", challenge, "invalid_token")
    client, _ = certs
    s = make(require_bound=True)
    resp = s.client.get(
        "/accounts/1",
        headers=bearer(bound_to(client)),
        environ_overrides={"SSL_CLIENT_CERT": pem(client)},
    )
    ok(resp, s)


def test_jwks_down_with_nothing_cached_is_503() -> None:
    class Down:
        def fetch(self, url: str, *, timeout: float, max_bytes: int) -> FetchResult:
            raise KeySourceError("the key source is unavailable", detail="connection refused")

    issuer = Issuer(
        ISS, jwks_uri="https://as.example.com/jwks", audience=AUD, jwks_options={"fetcher": Down()}
    )
    s = make(validator=TokenValidator(issuer, clock=lambda: NOW))
    resp = s.client.get("/accounts/1", headers=bearer(token()))
    refused(resp, s, 503, "keys.unavailable", None, "temporarily_unavailable")


def test_exempt_and_unmatched_routes_pass_through_without_default() -> None:
    s = make()
    assert s.client.get("/health").status_code == 200
    assert s.client.get("/elsewhere").status_code == 200
    assert s.app.calls == 2


def test_default_requirement_for_unmatched_routes() -> None:
    s = make(default=TokenRequirement())
    refused(s.client.get("/elsewhere"), s, 401, "token.missing", f'Bearer realm="{REALM}"')
    s = make(default=TokenRequirement())
    ok(s.client.get("/elsewhere", headers=bearer(token())), s)


@pytest.mark.parametrize("path", ["/health/../accounts/1", "/health/./x"])
def test_exempt_rule_never_matches_dot_segments(path: str) -> None:
    s = make(default=TokenRequirement())
    refused(s.client.get(path), s, 401, "token.missing", f'Bearer realm="{REALM}"')


def test_callable_rule_source_gets_method_and_path() -> None:
    asked: list[tuple[str, str]] = []
    write = Rule("/", token=TokenRequirement(scopes=("payments:write",)))

    def source(method: str, path: str) -> Rule | None:
        asked.append((method, path))
        return write if method == "POST" else None

    s = make(source)
    assert s.client.get("/anything").status_code == 200
    resp = s.client.post("/anything")
    assert resp.status_code == 401
    assert asked == [("GET", "/anything"), ("POST", "/anything")]


# --- configuration --------------------------------------------------------------------------


def test_token_middleware_needs_a_token_rule_or_default() -> None:
    with pytest.raises(ConfigurationError):
        TokenMiddleware(Recorder(), [Rule("/x", exempt=True)], validator=validator())


@pytest.mark.parametrize(
    "kw",
    [{"token": TokenRequirement(), "exempt": True}, {}],
    ids=["token-and-exempt", "neither"],
)
def test_rule_needs_a_check_or_exempt(kw: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        Rule("/x", **kw)


@pytest.mark.parametrize("scopes", [("a b",), ("",), ('a"b',)])
def test_rfc6749_s3_3_each_scope_is_one_scope_token(scopes: tuple[str, ...]) -> None:
    with pytest.raises(ConfigurationError):
        TokenRequirement(scopes=scopes)


def test_a_lone_scope_string_is_one_scope() -> None:
    assert TokenRequirement(scopes="accounts:read").scopes == ("accounts:read",)  # type: ignore[arg-type]


def test_protect_needs_a_validator_for_token_rules() -> None:
    with pytest.raises(ConfigurationError):
        protect(Recorder(), RULES)
    with pytest.raises(ConfigurationError):
        protect(Recorder(), RULES, validator=validator(), colour="blue")


def test_protect_with_token_rules_only_is_the_token_middleware() -> None:
    wrapped = protect(
        Recorder(), RULES, validator=validator(), dpop_verifier=dpop_verifier(), realm=REALM
    )
    assert isinstance(wrapped, TokenMiddleware)
    assert wrapped.guard.realm == REALM


def test_protect_hands_each_option_to_the_middleware_that_takes_it() -> None:
    rule = Rule("/x/**", profile=profiles.OCEN, token=TokenRequirement())
    resolver = StaticKeyResolver([signing_key(ALG).public_key()])
    wrapped = protect(
        Recorder(),
        [rule],
        validator=validator(),
        resolver=resolver,
        realm=REALM,
        max_body=1024,
        max_response_body=2048,
    )
    assert isinstance(wrapped, TokenMiddleware)
    assert (wrapped.guard.realm, wrapped.max_body) == (REALM, 1024)
    inner = wrapped.app
    assert isinstance(inner, SignatureMiddleware)
    assert (inner.max_body, inner.max_response_body) == (1024, 2048)
    assert isinstance(inner.app, Recorder)


def test_a_dpop_rule_needs_a_dpop_verifier() -> None:
    with pytest.raises(ConfigurationError):
        TokenMiddleware(Recorder(), RULES, validator=validator())
