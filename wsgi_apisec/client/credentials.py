"""Access tokens by the client credentials grant (RFC 6749 §4.4), through Authlib's
``requests`` OAuth 2.0 client, each re-fetched before it expires.

The refresh schedule runs on an injected ``clock``; it is the only thing the clock drives
(client assertions and DPoP proofs carry real time, as the servers check them against theirs).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import Any, Self

import requests
from authlib.integrations.base_client import OAuthError  # type: ignore[import-untyped]
from authlib.oauth2.client import DEFAULT_HEADERS  # type: ignore[import-untyped]

from ..errors import ConfigurationError, TokenRequestError
from ..fetch import check_url
from ..keys import PrivateKey
from .client_auth import CertFiles, ClientAuthentication
from .dpop import DPoPProofs
from .tokens import DPOP, Token, checked_token

__all__ = ["ClientCredentials"]

LOG = logging.getLogger("wsgi_apisec.client")
Clock = Callable[[], float]
_ERROR_CODE = re.compile(r"[a-z_]{1,64}")


class ClientCredentials:
    """Access tokens by the client credentials grant, re-fetched ahead of expiry.

    A token is re-fetched once the time left is under ``min(refresh_margin,
    refresh_ratio * lifetime)`` (60 s, or 10 % of a short token's life); until then every
    caller shares it. Many threads needing a token at once cause one request; while a still
    valid token is being refreshed the others keep using it, and if the refresh fails they
    go on with it until it expires. A response without ``expires_in`` counts as
    ``default_lifetime`` seconds.

    Client authentication (``auth_method``, inferred when ``None``): ``client_secret_basic``
    (``client_secret``), ``private_key_jwt`` (``private_key``, assertion ``alg`` from the
    key, ``assertion_lifetime`` s) or ``tls_client_auth`` (``cert``). ``cert`` is presented
    on the token request whatever the method (certificate-bound tokens, RFC 8705 §3) and
    ``verify`` is the CA bundle (or ``True`` for the system store). ``dpop`` asks for a
    DPoP-bound token (RFC 9449 §5) and answers the AS's ``use_dpop_nonce`` (§8) once.
    ``audience`` and ``resource`` (RFC 8707) are sent when given; ``timeout`` bounds each
    token request; the endpoint must be https (http only on loopback or ``allow_http``).
    ``trust_env`` and ``proxies`` are :class:`~wsgi_apisec.client.APISecSession`'s.

    ``close()`` (or leaving a ``with`` block) closes the pooled connections of the token
    session; a later ``token()`` opens new ones.
    """

    def __init__(
        self,
        token_endpoint: str,
        client_id: str,
        *,
        auth_method: str | None = None,
        client_secret: str | None = None,
        private_key: PrivateKey | None = None,
        assertion_alg: str | None = None,
        assertion_lifetime: int = 60,
        scope: str | Iterable[str] | None = None,
        audience: str | None = None,
        resource: str | None = None,
        cert: CertFiles | None = None,
        verify: bool | str = True,
        dpop: DPoPProofs | None = None,
        refresh_margin: float = 60.0,
        refresh_ratio: float = 0.1,
        default_lifetime: float = 300.0,
        timeout: float = 10.0,
        allow_http: bool = False,
        trust_env: bool = False,
        proxies: Mapping[str, str] | None = None,
        clock: Clock = time.time,
    ) -> None:
        if refresh_margin < 0 or not 0 <= refresh_ratio < 1 or default_lifetime <= 0:
            raise ConfigurationError(
                "need refresh_margin >= 0, 0 <= refresh_ratio < 1, default_lifetime > 0"
            )
        self.token_endpoint = _endpoint(token_endpoint, allow_http)
        self.client_id = client_id
        self.auth_method = ClientAuthentication.choose(
            auth_method,
            client_secret=client_secret,
            private_key=private_key,
            cert=cert,
            assertion_alg=assertion_alg,
            assertion_lifetime=assertion_lifetime,
        )
        self.scope = scope if scope is None or isinstance(scope, str) else " ".join(scope)
        self.params = {k: v for k, v in (("audience", audience), ("resource", resource)) if v}
        self.cert, self.verify, self.dpop = cert, verify, dpop
        self.refresh_margin, self.refresh_ratio = refresh_margin, refresh_ratio
        self.default_lifetime, self.timeout, self.clock = default_lifetime, timeout, clock
        self._oauth = self.auth_method.session(client_id, self.scope)
        self._oauth.trust_env = trust_env
        self._oauth.proxies.update(proxies or {})
        self._oauth.register_compliance_hook("access_token_response", self._seen)
        self._cond = threading.Condition()
        self._current: Token | None = None
        self._fetching = False
        self._attempt = 0
        self._failure: tuple[int, TokenRequestError] | None = None
        self._nonce_sent = False
        self._status: int | None = None

    def token(self) -> Token:
        """The current token, fetched first when there is none or it is due for refresh."""
        with self._cond:
            waited_for: int | None = None
            while True:
                current, now = self._current, self.clock()
                if current is not None and _before(now, current.refresh_at):
                    return current
                if not self._fetching:
                    self._raise_failure_of(waited_for)
                    break
                if current is not None and _before(now, current.expires_at):
                    return current  # another thread refreshes; this one is still good
                waited_for = self._attempt
                self._cond.wait()
            self._fetching, self._attempt = True, self._attempt + 1
            attempt = self._attempt
        return self._refresh(attempt, current)

    def close(self) -> None:
        """Close the token session's connections (Authlib's ``OAuth2Session``)."""
        self._oauth.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def invalidate(self) -> None:
        """Forget the current token (the resource server said it is no longer valid)."""
        with self._cond:
            self._current = None

    def _raise_failure_of(self, attempt: int | None) -> None:
        """A thread that waited for a fetch that failed gets that failure, rather than
        each waiting thread asking a failing AS again in turn."""
        if attempt is not None and self._failure is not None and self._failure[0] == attempt:
            err = self._failure[1]
            raise TokenRequestError(
                err.description,
                oauth_error=err.oauth_error,
                upstream_status=err.upstream_status,
                detail=err.detail,
            ) from err

    def _refresh(self, attempt: int, current: Token | None) -> Token:
        try:
            fresh = self._fetch()
        except TokenRequestError as err:
            with self._cond:
                self._fetching, self._failure = False, (attempt, err)
                self._cond.notify_all()
            if current is not None and _before(self.clock(), current.expires_at):
                LOG.warning("token refresh failed, using the current token: %s", err.detail)
                return current
            raise
        with self._cond:
            self._current, self._fetching, self._failure = fresh, False, None
            self._cond.notify_all()
        return fresh

    def _fetch(self) -> Token:
        started = self.clock()
        data = self._request()
        lifetime = _lifetime(data.get("expires_in"), self.default_lifetime)
        margin = min(self.refresh_margin, self.refresh_ratio * lifetime)
        expires_at = started + lifetime
        token = checked_token(
            data.get("access_token"),
            data.get("token_type"),
            expires_at,
            expires_at - margin,
            data.get("scope"),
        )
        if token.token_type == DPOP and self.dpop is None:
            raise TokenRequestError("the AS issued a DPoP token to a client without a DPoP key")
        return token

    def _request(self) -> Mapping[str, Any]:
        for attempt in (1, 2):
            headers = dict(DEFAULT_HEADERS)
            if self.dpop is not None:
                headers["DPoP"] = self.dpop.proof("POST", self.token_endpoint)
            self._nonce_sent = False
            try:
                return dict(self._fetch_token(headers))
            except OAuthError as exc:
                # RFC 9449 §8: an AS that wants a nonce answers use_dpop_nonce with one in
                # DPoP-Nonce; retry once with it.
                if attempt == 1 and exc.error == "use_dpop_nonce" and self._nonce_sent:
                    continue
                raise _refused(exc, self._status) from exc
            except (requests.RequestException, ValueError, TypeError) as exc:
                status = getattr(getattr(exc, "response", None), "status_code", None)
                raise TokenRequestError(
                    "the token endpoint gave no token response",
                    upstream_status=status,
                    detail=f"token request to {self.token_endpoint} failed: {exc!r}",
                ) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def _fetch_token(self, headers: Mapping[str, str]) -> Any:
        self._status = None
        return self._oauth.fetch_token(
            self.token_endpoint,
            grant_type="client_credentials",
            headers=headers,
            timeout=self.timeout,
            # Per request: a Session's own verify loses to REQUESTS_CA_BUNDLE (requests #3829).
            verify=self.verify,
            cert=self.cert,
            **self.params,
        )

    def _seen(self, response: requests.Response) -> requests.Response:
        """Authlib's hook on every token response, before it is parsed."""
        self._status = response.status_code
        if self.dpop is not None:
            self._nonce_sent = self.dpop.remember(self.token_endpoint, response.headers)
        return response


def _endpoint(url: str, allow_http: bool) -> str:
    try:
        return check_url(url, allow_http)
    except ConfigurationError as exc:
        raise ConfigurationError(
            f"the token endpoint must be an https URL (http only on loopback or with "
            f"allow_http=True), not {url!r}"
        ) from exc


def _lifetime(expires_in: object, default: float) -> float:
    """RFC 6749 §5.1 ``expires_in`` (seconds); ``default`` when absent or not a number."""
    if isinstance(expires_in, bool) or not isinstance(expires_in, int | float):
        return default
    return float(expires_in) if expires_in > 0 else default


def _before(now: float, deadline: float | None) -> bool:
    return deadline is None or now < deadline


def _refused(exc: Any, status: int | None) -> TokenRequestError:
    error = exc.error if isinstance(exc.error, str) else ""
    code = error if _ERROR_CODE.fullmatch(error) else "invalid_response"
    # The AS's own words stay in the log: they are another party's text.
    return TokenRequestError(
        f"the token endpoint refused the request: {code}",
        oauth_error=code,
        upstream_status=status,
        detail=f"token endpoint said {code}: {str(exc.description)[:200]!r}",
    )
