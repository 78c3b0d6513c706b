"""A ``requests`` client for APIs that ``wsgi_apisec`` protects: access tokens by client
credentials (through Authlib's OAuth 2.0 client), client certificates, DPoP proofs, request
signatures and response signature checks, under the same profiles as the server side.

::

    from wsgi_apisec import PrivateKey, StaticKeyResolver, profiles
    from wsgi_apisec.client import APISecSession, ClientCredentials, signature_of

    session = APISecSession(
        tokens=ClientCredentials("https://as.example/token", "lender-1",
                                 private_key=key, scope="ocen:loan-applications",
                                 cert=("client.crt", "client.key"), verify="ca.pem"),
        sign=(profiles.OCEN, key),
        verify_responses=(profiles.OCEN, StaticKeyResolver([provider_key])),
        cert=("client.crt", "client.key"), verify="ca.pem",
    )
    response = session.post("https://api.example/loans", json={...})
    response.raise_for_status()
    signature_of(response)            # the SignatureResult of the verified response

The session and the token provider close their connections with ``close()`` or at the end
of a ``with`` block (closing the session closes its provider too). Neither takes proxies, a
CA bundle or ``.netrc`` credentials from the environment unless ``trust_env=True``; give a
proxy with ``proxies={"https": ...}``.

``requests`` and ``authlib`` come with the ``client`` extra; only this package imports them.
"""

from __future__ import annotations

try:
    import authlib  # type: ignore[import-untyped]  # noqa: F401
    import requests  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError(
        "wsgi_apisec.client needs requests and authlib: pip install 'flask-apisec[client]'"
    ) from exc

from .client_auth import AUTH_METHODS, ClientAuthentication, PrivateKeyAssertion
from .credentials import ClientCredentials
from .dpop import DPoPProofs
from .session import APISecAuth, APISecSession
from .signing import (
    RequestSigning,
    ResponseVerification,
    request_message,
    response_message,
    signature_of,
)
from .tokens import StaticToken, Token, TokenProvider

__all__ = [
    "AUTH_METHODS",
    "APISecAuth",
    "APISecSession",
    "ClientAuthentication",
    "ClientCredentials",
    "DPoPProofs",
    "PrivateKeyAssertion",
    "RequestSigning",
    "ResponseVerification",
    "StaticToken",
    "Token",
    "TokenProvider",
    "request_message",
    "response_message",
    "signature_of",
]
