"""Discovery documents the extension serves: the JWKS of the response-signing key, and
OAuth 2.0 Protected Resource Metadata (RFC 9728).

- ``APISEC_JWKS_PATH`` (default ``/.well-known/jwks.json``), only when ``APISEC_SIGNING_KEY``
  is set: ``{"keys": [<public JWK>]}``, so peers can verify the signed responses.
- ``/.well-known/oauth-protected-resource`` + the path of ``APISEC_RESOURCE`` (RFC 9728
  §3.1), only when ``APISEC_RESOURCE`` is set (``resource`` is REQUIRED, §2, and must be the
  identifier the metadata URL was formed from, §3.3: it is never guessed from the request).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from flask import Blueprint, Flask, Response, current_app, json, request

from wsgi_apisec.keys import PrivateKey
from wsgi_apisec.rules import TokenRequirement

from .decorators import token_requirement

if TYPE_CHECKING:
    from .config import Settings

__all__ = [
    "METADATA_PATH",
    "metadata_document",
    "metadata_path",
    "metadata_url",
    "register",
    "token_requirements",
]

#: RFC 9728 §3: the well-known URI suffix.
METADATA_PATH = "/.well-known/oauth-protected-resource"
_CACHE = "public, max-age=300"


def metadata_path(resource: str) -> str:
    """RFC 9728 §3.1: the well-known suffix goes between the host and the path of the
    resource identifier; a terminating ``/`` of that path is dropped."""
    return METADATA_PATH + urlsplit(resource).path.rstrip("/")


def metadata_url(resource: str) -> str:
    """The absolute metadata URL for ``resource``, for ``resource_metadata=`` (§5.1)."""
    parts = urlsplit(resource)
    return f"{parts.scheme}://{parts.netloc}{metadata_path(resource)}"


def token_requirements(app: Flask) -> list[TokenRequirement]:
    """The token requirement of every view that has one."""
    found = (token_requirement(view) for view in app.view_functions.values())
    return [requirement for requirement in found if requirement is not None]


def _scopes(requirements: Iterable[TokenRequirement]) -> list[str]:
    scopes: set[str] = set()
    for requirement in requirements:
        scopes.update(requirement.scopes, requirement.any_of)
    return sorted(scopes)


def metadata_document(app: Flask, settings: Settings, jwks_uri: str | None) -> dict[str, Any]:
    """The RFC 9728 §2 document for ``app``; ``scopes_supported`` is every scope the
    decorators name (``scopes`` and ``any_of``)."""
    assert settings.resource is not None
    requirements = token_requirements(app)
    methods = ["header"]
    if settings.allow_form:
        methods.append("body")
    if settings.allow_query:
        methods.append("query")
    document: dict[str, Any] = {"resource": settings.resource}
    if settings.authorization_servers:
        document["authorization_servers"] = list(settings.authorization_servers)
    if jwks_uri is not None:
        document["jwks_uri"] = jwks_uri
    document["scopes_supported"] = _scopes(requirements)
    document["bearer_methods_supported"] = methods
    # Certificate-bound tokens are always checked (RFC 8705 §3), on every route.
    document["tls_client_certificate_bound_access_tokens"] = True
    # §2: true only when *every* protected route insists on DPoP.
    document["dpop_bound_access_tokens_required"] = bool(requirements) and all(
        requirement.dpop for requirement in requirements
    )
    document["dpop_signing_alg_values_supported"] = list(settings.dpop_algorithms)
    return document


def _json(document: Any) -> Response:
    response = current_app.response_class(json.dumps(document), mimetype="application/json")
    response.headers["Cache-Control"] = _CACHE
    return response


def register(app: Flask, settings: Settings) -> None:
    """Add the ``apisec`` blueprint with the documents ``settings`` call for."""
    blueprint = Blueprint("apisec", __name__)
    key: PrivateKey | None = settings.signing_key
    if key is not None:
        jwks = {"keys": [key.public_key().to_jwk()]}
        blueprint.add_url_rule(settings.jwks_path, "jwks", lambda: _json(jwks), methods=["GET"])
    resource = settings.resource
    if resource is not None:
        origin = "{0.scheme}://{0.netloc}".format(urlsplit(resource))

        def protected_resource() -> Response:
            jwks_uri = origin + request.script_root + settings.jwks_path if key else None
            return _json(metadata_document(current_app, settings, jwks_uri))

        blueprint.add_url_rule(
            metadata_path(resource), "protected_resource", protected_resource, methods=["GET"]
        )
    app.register_blueprint(blueprint)
