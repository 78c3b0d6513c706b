"""Signed responses (config ``sign_responses``): every answer the app gives carries an
RFC 9421 signature under the FAPI 2.0 Message Signing profile (``tag="fapi-2-response"``,
covering ``@status``, ``content-digest`` and the request it answers with ``;req``).

flask_apisec signs responses only on routes that also verify a signed request
(``@require_signature``); these routes take plain bearer requests, so the sample signs with
:class:`~wsgi_apisec.signatures.ResponseSigner` in an ``after_request`` hook, over exactly
the body Flask is about to send. The public key is served by the extension at
``/.well-known/jwks.json`` (``APISEC_SIGNING_KEY``). Refusals made by the token layer
itself (401 / 403 before any view ran) are not signed, as the extension's own are not.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from flask import Response, request

from wsgi_apisec.environ import message_from_environ
from wsgi_apisec.fapi2 import FAPI2
from wsgi_apisec.keys import PrivateKey
from wsgi_apisec.message import Body, Headers, Message
from wsgi_apisec.signatures import ResponseSigner

__all__ = ["ResponseSigning"]


class ResponseSigning:
    """``app.after_request(ResponseSigning(key))``."""

    def __init__(self, key: PrivateKey, clock: Callable[[], float] = time.time) -> None:
        self.signer = ResponseSigner(FAPI2, key, clock=clock)

    def __call__(self, response: Response) -> Response:
        sent = message_from_environ(request.environ, Body(request.get_data()))
        answer = Message(
            status=response.status_code,
            headers=Headers(list(response.headers.items())),
            # get_data() buffers a streamed body first: what is signed is what is sent.
            body=Body(response.get_data()),
            request=sent,
        )
        # A response that cannot be signed raises here and becomes a 500, never unsigned.
        for name, value in self.signer.sign(answer):
            response.headers[name] = value
        return response
