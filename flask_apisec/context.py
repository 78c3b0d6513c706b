"""What the WSGI layer established for the current request, as context-local proxies.

The middleware stack that :meth:`~flask_apisec.APISec.init_app` installs writes its results
into the WSGI environ (the contract documented in :mod:`wsgi_apisec.environ`); these proxies
only read them. Outside a request, and when nothing was established, each is ``None`` (so
``if current_token:`` is the test for an optional token).
"""

from __future__ import annotations

from typing import Any

from flask import has_request_context, request
from werkzeug.local import LocalProxy

from wsgi_apisec.binding import Binding
from wsgi_apisec.environ import ENV_BINDING, ENV_SIGNATURE, ENV_TOKEN
from wsgi_apisec.signatures import SignatureResult
from wsgi_apisec.tokens import AccessToken

__all__ = [
    "ENV_BINDING",
    "ENV_INSTALLED",
    "ENV_INTERACTION_ID",
    "ENV_SIGNED_RESPONSE",
    "current_binding",
    "current_signature",
    "current_token",
    "interaction_id",
]

#: Set by the outermost layer of the extension's stack: the stack ran for this request.
ENV_INSTALLED = "flask_apisec.installed"
#: The ``x-fapi-interaction-id`` of this request and its response (``APISEC_FAPI``).
ENV_INTERACTION_ID = "flask_apisec.interaction_id"
#: The name of the profile the response to this request is signed with (``@sign_response``,
#: ``APISEC_SIGN_RESPONSES``), set by the layer that signs it.
ENV_SIGNED_RESPONSE = "flask_apisec.signed_response"


def _environ_value(key: str, kind: type[Any]) -> Any:
    if not has_request_context():
        return None
    value = request.environ.get(key)
    return value if isinstance(value, kind) else None


def _token() -> AccessToken | None:
    token: AccessToken | None = _environ_value(ENV_TOKEN, AccessToken)
    return token


def _signature() -> SignatureResult | None:
    result: SignatureResult | None = _environ_value(ENV_SIGNATURE, SignatureResult)
    return result


def _binding() -> Binding | None:
    binding: Binding | None = _environ_value(ENV_BINDING, Binding)
    return binding


#: The :class:`~wsgi_apisec.tokens.AccessToken` the middleware validated, or ``None``.
current_token: AccessToken = LocalProxy(_token)  # type: ignore[assignment]
#: The :class:`~wsgi_apisec.signatures.SignatureResult` of the verified request signature.
current_signature: SignatureResult = LocalProxy(_signature)  # type: ignore[assignment]
#: The :class:`~wsgi_apisec.binding.Binding` (certificate thumbprint, DPoP proof) checked.
current_binding: Binding = LocalProxy(_binding)  # type: ignore[assignment]


def interaction_id() -> str | None:
    """The FAPI ``x-fapi-interaction-id`` echoed on this request's response, if any."""
    value: str | None = _environ_value(ENV_INTERACTION_ID, str)
    return value
