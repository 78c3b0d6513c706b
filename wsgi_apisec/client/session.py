"""The ``requests`` side: :class:`APISecAuth` does everything per request, in the order the
specs need, and :class:`APISecSession` is a ``requests.Session`` that uses it.

Per request, :class:`APISecAuth` (1) buffers the body, so the bytes signed are the bytes sent;
(2) puts the access token in ``Authorization`` with the scheme its type names; (3) adds a
DPoP proof for a DPoP token (RFC 9449 §7.1: ``ath`` and the server's last nonce); (4) signs
the request *last*, so an RFC 9421 signature can cover ``authorization`` and ``dpop``. On the
response it keeps any ``DPoP-Nonce``, answers a ``use_dpop_nonce`` challenge by sending the
request once more with a new proof and signature, then checks the response signature.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import requests
from requests.auth import AuthBase

from ..keys import PrivateKey
from ..resolvers import KeyResolver
from ..signatures import Profile
from .client_auth import CertFiles
from .dpop import DPoPProofs, asks_for_nonce
from .signing import RequestSigning, ResponseVerification, buffer_body
from .tokens import DPOP, TokenProvider

__all__ = ["APISecAuth", "APISecSession"]

SignWith = RequestSigning | tuple[Profile | str, PrivateKey]
VerifyWith = ResponseVerification | tuple[Profile | str, KeyResolver]


class APISecAuth(AuthBase):
    """A ``requests`` auth (``requests.post(url, auth=APISecAuth(...))``) that presents
    ``tokens``, proves possession with ``dpop`` (default: the token provider's own
    ``dpop``, so tokens bound at the AS are proven with the same key), signs with ``sign``
    and checks responses with ``verify_responses``. Every part is optional."""

    def __init__(
        self,
        tokens: TokenProvider | None = None,
        *,
        dpop: DPoPProofs | None = None,
        sign: SignWith | None = None,
        verify_responses: VerifyWith | None = None,
    ) -> None:
        self.tokens = tokens
        self.dpop = dpop if dpop is not None else getattr(tokens, "dpop", None)
        if isinstance(sign, tuple):
            sign = RequestSigning(*sign)
        if isinstance(verify_responses, tuple):
            verify_responses = ResponseVerification(*verify_responses)
        self.signing, self.verification = sign, verify_responses

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        buffer_body(request)
        if self.verification is not None:
            # The signature covers the bytes as sent; a decoded body would not verify.
            request.headers["Accept-Encoding"] = "identity"
        unsent = request.copy()
        self._authorize(request)
        request.hooks["response"].append(functools.partial(self._on_response, unsent))
        return request

    def _authorize(self, request: requests.PreparedRequest) -> None:
        token = self.tokens.token() if self.tokens is not None else None
        if token is not None:
            request.headers["Authorization"] = f"{token.token_type} {token.access_token}"
            if token.token_type == DPOP and self.dpop is not None:
                # RFC 9449 §7.1: a DPoP-bound token goes with a proof carrying its ath.
                request.headers["DPoP"] = self.dpop.proof(
                    str(request.method), str(request.url), access_token=token.access_token
                )
        # Last: RFC 9421 (FAPI 2.0) signatures cover authorization and dpop.
        if self.signing is not None:
            self.signing.sign(request)

    def _on_response(
        self, unsent: requests.PreparedRequest, response: requests.Response, **kwargs: Any
    ) -> requests.Response:
        if self.dpop is not None:
            url = str(response.request.url)
            self.dpop.remember(url, response.headers)
            proved = "DPoP" in response.request.headers
            if proved and asks_for_nonce(response.status_code, response.headers):
                response = self._resend(unsent, response, kwargs)
        if self.verification is not None:
            self.verification.verify(response)
        return response

    def _resend(
        self,
        unsent: requests.PreparedRequest,
        response: requests.Response,
        kwargs: dict[str, Any],
    ) -> requests.Response:
        """RFC 9449 §9: once, with a proof carrying the nonce the server just sent."""
        response.content  # noqa: B018 - read it all, so the connection can be reused
        response.close()
        again = unsent.copy()
        self._authorize(again)
        retried = response.connection.send(again, **kwargs)
        retried.history.append(response)
        retried.request = again
        if self.dpop is not None:
            self.dpop.remember(str(again.url), retried.headers)
        return retried


class APISecSession(requests.Session):
    """A ``requests.Session`` whose requests go through :class:`APISecAuth`, presenting
    ``cert`` (``(cert_path, key_path)``) and trusting ``verify`` (a CA bundle path, or
    ``True`` for the system store). ``timeout`` (seconds) applies when a call gives none.

    Redirects are never followed: a signed request, its DPoP proof and its token are for
    one target URI, so a 3xx is returned as it is.

    ``trust_env=False`` (unlike ``requests``): the environment's ``HTTP(S)_PROXY`` /
    ``NO_PROXY``, ``REQUESTS_CA_BUNDLE`` and ``~/.netrc`` are not used. Every call carries
    credentials (a token, a signature, a client assertion) and the configured CA and
    certificate decide whom they reach; a proxy variable set for other programs would
    otherwise route them (loopback calls included) through a proxy nobody configured for
    this client. Give a proxy with ``proxies={"https": "http://proxy:3128"}``, or
    ``trust_env=True`` for requests' behaviour; the key fetchers
    (:class:`~wsgi_apisec.fetch.UrlFetcher`) ignore the environment too.

    ``close()`` (or leaving a ``with`` block) closes the session's connections and those
    of its token provider (when it has ``close()``, as :class:`ClientCredentials` does).
    """

    def __init__(
        self,
        tokens: TokenProvider | None = None,
        *,
        dpop: DPoPProofs | None = None,
        sign: SignWith | None = None,
        verify_responses: VerifyWith | None = None,
        cert: CertFiles | None = None,
        verify: bool | str = True,
        timeout: float | None = 30.0,
        trust_env: bool = False,
        proxies: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__()
        self.auth = APISecAuth(tokens, dpop=dpop, sign=sign, verify_responses=verify_responses)
        self.cert = cert
        self.verify = verify
        self.timeout = timeout
        self.trust_env = trust_env
        self.proxies.update(proxies or {})

    @property
    def tokens(self) -> TokenProvider | None:
        return self.auth.tokens if isinstance(self.auth, APISecAuth) else None

    def request(
        self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any
    ) -> requests.Response:
        # Session.request's positional parameters after the URL: timeout is the 7th,
        # verify the 12th, cert the 13th.
        if self.timeout is not None and len(args) < 7 and kwargs.get("timeout") is None:
            kwargs["timeout"] = self.timeout
        if len(args) < 12 and kwargs.get("verify") is None:
            # Given per request, since REQUESTS_CA_BUNDLE would override the Session's own
            # (requests #3829) and trust another CA than the one configured.
            kwargs["verify"] = self.verify
        return super().request(method, url, *args, **kwargs)

    def get_redirect_target(self, resp: requests.Response) -> str | None:
        return None

    def close(self) -> None:
        super().close()
        close = getattr(self.tokens, "close", None)
        if callable(close):
            close()
