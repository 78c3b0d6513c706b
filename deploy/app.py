"""The protected app that ``deploy/`` runs behind gunicorn and nginx (and that the
integration tests and ``benchmarks/load.py`` drive). Serve it with
``gunicorn -c deploy/gunicorn.conf.py 'deploy.app:create_app()'``.

Configuration is the environment: every ``APISEC_*`` variable becomes the flask-apisec
setting of that name, its value read as JSON when it parses (lists, dicts, numbers,
``true``) and as text otherwise (URLs). ``APISEC_REPLAY_STORE`` must be set: with several
workers a per-process ``memory`` store would accept a captured request once per worker, so
name a shared one (``redis://host:port/db``). Behind nginx also set
``APISEC_TRUSTED_PROXIES`` (nginx's address, as gunicorn sees it) and
``APISEC_CLIENT_CERT_HEADERS`` (the header forms nginx sets *and overwrites*).

Routes; each answers ``{"pid", "sha256", "length", "x5t", "scheme", "host", "remote"}``:
the worker's pid, the SHA-256 and length of the body it received, the thumbprint of the
certificate the token was bound to, and what it saw of the forwarded request.

- ``GET|POST /open``: unprotected (the baseline for throughput ratios);
- ``GET|POST /token``: a certificate-bound access token with scope :data:`SCOPE`;
- ``POST /signed``: the same token plus an RFC 9421 request signature (FAPI 2.0 Message
  Signing), key by ``keyid`` from ``APISEC_SIGNATURE_KEYS``; replays refused via the store;
- ``GET|POST /authlib``: Authlib's ``ResourceProtector`` with its RFC 9068 validator, for a
  like-for-like comparison (bearer only: Authlib does not check ``cnf``); present only when
  Authlib is installed and the first issuer has an inline ``jwks``.

Every response, including refusals made before Flask runs, carries ``X-Worker-Pid``. A
refusal made before the body is read drains the rest of it (``wsgi_apisec.middleware``), so
gunicorn does not reset the connection under nginx.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from flask import Flask, Response, jsonify, request

from flask_apisec import APISec, current_binding
from wsgi_apisec.environ import DEFAULT_MAX_BODY
from wsgi_apisec.errors import ConfigurationError

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = ["PID_HEADER", "SCOPE", "WorkerPid", "create_app", "settings_from_env"]

SCOPE = "deploy:echo"
PID_HEADER = "X-Worker-Pid"
_PREFIX = "APISEC_"
_READ_SIZE = 64 * 1024


def settings_from_env(environ: Mapping[str, str]) -> dict[str, Any]:
    """Every ``APISEC_*`` variable of ``environ``, its value JSON-decoded when it parses."""
    settings: dict[str, Any] = {}
    for name, text in environ.items():
        if not name.startswith(_PREFIX):
            continue
        try:
            settings[name] = json.loads(text)
        except ValueError:
            settings[name] = text
    if not settings.get("APISEC_REPLAY_STORE"):
        raise ConfigurationError(
            "APISEC_REPLAY_STORE must be set: several workers need one shared replay store"
        )
    return settings


class WorkerPid:
    """Adds ``X-Worker-Pid`` to every response, so a client can tell which worker answered
    (also for a refusal the flask-apisec layers made before the view ran)."""

    def __init__(self, app: WSGIApplication) -> None:
        self.app = app

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            return start_response(status, [*headers, (PID_HEADER, str(os.getpid()))], exc_info)

        return self.app(environ, start)


def _echo() -> Response:
    digest, length = hashlib.sha256(), 0
    # Content-Length bytes when it is given: Werkzeug's stream under a server that sets
    # wsgi.input_terminated (gunicorn) answers 413 to a read past a body of exactly
    # MAX_CONTENT_LENGTH bytes, even when that read would only have seen the end.
    remaining = request.content_length
    while remaining is None or remaining > 0:
        want = _READ_SIZE if remaining is None else min(_READ_SIZE, remaining)
        chunk = request.stream.read(want)
        if not chunk:
            break
        digest.update(chunk)
        length += len(chunk)
        remaining = None if remaining is None else remaining - len(chunk)
    return jsonify(
        pid=os.getpid(),
        sha256=digest.hexdigest(),
        length=length,
        x5t=getattr(current_binding, "x5t_s256", None),  # the proxy stands for None too
        scheme=request.scheme,
        host=request.host,
        remote=request.remote_addr,
    )


def _view() -> Callable[[], Response]:
    """A fresh view function per route: a decorator marks the function it wraps."""

    def view() -> Response:
        return _echo()

    return view


def _authlib(settings: Mapping[str, Any]) -> Callable[[Callable[[], Response]], Any] | None:
    """Authlib's ``ResourceProtector`` for the first issuer, when it can be built."""
    issuers = settings.get("APISEC_ISSUERS") or []
    if not issuers or "jwks" not in issuers[0]:
        return None
    try:
        from authlib.integrations.flask_oauth2 import (  # type: ignore[import-untyped]
            ResourceProtector,
        )
        from authlib.oauth2.rfc9068 import JWTBearerTokenValidator  # type: ignore[import-untyped]
        from joserfc.jwk import KeySet
    except ImportError:
        return None
    issuer = issuers[0]
    keys = KeySet.import_key_set(issuer["jwks"])

    class Validator(JWTBearerTokenValidator):  # type: ignore[misc]
        def get_jwks(self) -> KeySet:
            return keys

    protector = ResourceProtector()
    protector.register_token_validator(Validator(issuer["issuer"], issuer.get("audience")))
    decorate: Callable[[Callable[[], Response]], Any] = protector(SCOPE)
    return decorate


def create_app(environ: Mapping[str, str] | None = None) -> Flask:
    """The app, configured from ``environ`` (default ``os.environ``)."""
    settings = settings_from_env(os.environ if environ is None else environ)
    app = Flask("deploy")
    app.config.update(settings)
    # The unprotected routes get the same body limit as the protected ones.
    app.config["MAX_CONTENT_LENGTH"] = settings.get("APISEC_MAX_BODY", DEFAULT_MAX_BODY)
    apisec = APISec(app)
    both = ["GET", "POST"]
    app.add_url_rule("/open", "open", _view(), methods=both)
    token = apisec.require_token(scopes=SCOPE, cert_bound=True)
    app.add_url_rule("/token", "token", token(_view()), methods=both)
    signed = apisec.require_signature(profile="fapi2")(_view())
    app.add_url_rule("/signed", "signed", token(signed), methods=["POST"])
    authlib = _authlib(settings)
    if authlib is not None:
        app.add_url_rule("/authlib", "authlib", authlib(_view()), methods=both)
    app.wsgi_app = WorkerPid(app.wsgi_app)  # type: ignore[method-assign]
    return app
