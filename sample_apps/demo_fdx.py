"""Story 2, FDX: the data recipient ``fdx-aggregator`` gets a user token for ``demo-user``
(authorization code + PKCE, the code exchanged over mTLS, so the token is bound to its
certificate), reads accounts and transactions and checks the API's signed responses; the
same token over another certificate's connection and a token without the needed scope are
refused."""

from __future__ import annotations

import secrets
from contextlib import ExitStack
from dataclasses import dataclass

import requests
from authlib.integrations.requests_client import OAuth2Session  # type: ignore[import-untyped]

from wsgi_apisec import profiles
from wsgi_apisec.client import (
    APISecSession,
    ClientCredentials,
    ResponseVerification,
    StaticToken,
    TokenProvider,
    signature_of,
)
from wsgi_apisec.fetch import UrlFetcher
from wsgi_apisec.jwks import JWKSResolver

from .demo_network import REDIRECT_URI, Network, unverified_claims
from .demo_transcript import PASS, Transcript, challenge, error_code, expect, refusal

__all__ = ["fdx_story"]

LABEL = "FDX"
CLIENT = "fdx-aggregator"
ACCOUNTS = "/fdx/v6/core/accounts"
CHECKING = "acc-chk-1001"
USER_SCOPES = "fdx:accountdetailed:read fdx:transactions:read"


def user_token(net: Network) -> str:
    """Authorization code + PKCE (RFC 7636, S256) for demo-user, through Authlib's client."""
    secret = net.demo.secrets[CLIENT]
    oauth = OAuth2Session(
        CLIENT,
        secret,
        token_endpoint_auth_method="client_secret_basic",
        scope=USER_SCOPES,
        redirect_uri=REDIRECT_URI,
        code_challenge_method="S256",
    )
    with oauth:
        verifier = secrets.token_urlsafe(48)
        url, _state = oauth.create_authorization_url(
            net.auth + "/authorize", code_verifier=verifier
        )
        # The browser's part: demo-user approves on the consent page; the AS redirects back.
        consent = {"username": "demo-user", "decision": "approve"}
        answer = requests.post(url, data=consent, verify=net.ca, allow_redirects=False, timeout=10)
        expect(answer.status_code == 302, f"consent answered {answer.status_code}")
        token = oauth.fetch_token(
            net.auth + "/token",
            authorization_response=answer.headers["Location"],
            code_verifier=verifier,
            # RFC 8705 §3: the code is exchanged over mTLS, so the token is bound to the cert.
            cert=net.certs[CLIENT],
            verify=net.ca,
            timeout=10,
        )
    return str(token["access_token"])


@dataclass
class FdxClient:
    """fdx-aggregator's sessions to the API; each response's signature is checked."""

    net: Network
    stack: ExitStack
    verification: ResponseVerification
    user_token: str | None = None
    user: APISecSession | None = None

    def session(self, tokens: TokenProvider, party: str = CLIENT) -> APISecSession:
        made = APISecSession(
            tokens,
            verify_responses=self.verification,
            cert=self.net.certs[party],
            verify=self.net.ca,
            timeout=10,
        )
        self.stack.enter_context(made)
        return made

    def get(self, path: str, session: APISecSession | None = None) -> requests.Response:
        session = session if session is not None else self.user
        expect(session is not None, "no user token to call with")
        assert session is not None
        return session.get(self.net.fdx + path)


def signed(response: requests.Response) -> str:
    expect(response.status_code == 200, f"{response.status_code} {error_code(response)}")
    expect(bool(response.headers.get("x-fapi-interaction-id")), "no x-fapi-interaction-id")
    expect(signature_of(response) is not None, "the response is not signed")
    return f"response signed (RFC 9421, fapi-2-response) {PASS}"


def fdx_story(net: Network, out: Transcript, stack: ExitStack) -> None:
    out.story("2. FDX — data recipient fdx-aggregator reads demo-user's accounts (FAPI, mTLS)")
    # The API's response-signing key, from its JWKS (over mTLS: the API requires a cert).
    api_keys = JWKSResolver(
        net.fdx + "/.well-known/jwks.json", fetcher=UrlFetcher(ssl_context=net.tls_context(CLIENT))
    )
    client = FdxClient(net, stack, ResponseVerification(profiles.FAPI2, api_keys))
    transactions_path = f"{ACCOUNTS}/{CHECKING}/transactions"

    def token() -> str:
        access_token = user_token(net)
        claims = unverified_claims(access_token)
        bound = claims.get("cnf", {}).get("x5t#S256")
        expect(bound == net.thumbprint(CLIENT), "the token is not bound to the certificate")
        client.user_token = access_token
        client.user = client.session(StaticToken(access_token))
        return f"sub {claims.get('sub')}, cnf.x5t#S256 = fdx-aggregator's certificate"

    def accounts() -> str:
        response = client.get(ACCOUNTS)
        evidence = signed(response)
        ids = [a["accountId"] for a in response.json()["accounts"]]
        return f"200, {len(ids)} accounts ({', '.join(ids[:2])}, …), {evidence}"

    def transactions() -> str:
        response = client.get(transactions_path)
        evidence = signed(response)
        return f"200, {len(response.json()['transactions'])} transactions, {evidence}"

    def other_certificate() -> str:
        expect(client.user_token is not None, "no user token to present")
        # The very same token, over a connection that presents intruder's certificate.
        session = client.session(StaticToken(str(client.user_token)), party="intruder")
        return refusal(client.get(ACCOUNTS, session), 401, "invalid_token")

    def narrow_scope() -> str:
        tokens = ClientCredentials(
            net.auth + "/token",
            CLIENT,
            client_secret=net.demo.secrets[CLIENT],
            scope="fdx:accountbasic:read",
            cert=net.certs[CLIENT],
            verify=net.ca,
        )
        response = client.get(transactions_path, client.session(tokens))
        evidence = refusal(response, 403, "insufficient_scope")
        wanted = challenge(response).get("scope")
        expect(wanted == "fdx:transactions:read", f"challenge scope={wanted!r}")
        return f'{evidence} scope="{wanted}"'

    out.step(LABEL, "token for demo-user: code + PKCE, exchanged over mTLS", token)
    out.step(LABEL, "GET accounts with the certificate-bound token", accounts)
    out.step(LABEL, f"GET {CHECKING}/transactions", transactions)
    out.step(LABEL, "the same token over intruder's certificate", other_certificate)
    out.step(LABEL, "client-credentials token without fdx:transactions:read", narrow_scope)
