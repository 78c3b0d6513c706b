"""flask_apisec: the Flask extension on top of wsgi_apisec.

::

    apisec = APISec(app)

    @app.get("/fdx/v6/core/accounts")
    @apisec.require_token(any_of=["fdx:accountbasic:read", "fdx:accountdetailed:read"])
    def accounts(): ...
"""

from .context import current_binding, current_signature, current_token, interaction_id
from .decorators import require_signature, require_token, sign_response
from .extension import APISec, APISecState

__all__ = [
    "APISec",
    "APISecState",
    "current_binding",
    "current_signature",
    "current_token",
    "interaction_id",
    "require_signature",
    "require_token",
    "sign_response",
]
