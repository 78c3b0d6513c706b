"""gunicorn settings for the flask-apisec deployment (``gunicorn -c deploy/gunicorn.conf.py
'deploy.app:create_app()'``). Every value can be changed from the environment (defaults in
brackets); ``deploy/stack.py`` and ``deploy/README.md`` use the same names.

Two ways to run it:

- **Behind nginx** (the default): plain HTTP on 127.0.0.1 only, ``sync`` workers (nginx
  buffers whole requests and responses, so a slow client never holds a worker), and the
  ``X-Forwarded-Proto`` header trusted only from nginx's address.
- **Terminating TLS itself** (``DEPLOY_CERTFILE`` set): ``gthread`` workers with keep-alive
  are the better choice (``DEPLOY_WORKER_CLASS=gthread``); the client certificate is asked
  for (optional) and reaches the app through ``gunicorn.socket``.
"""

from __future__ import annotations

import os
import ssl

_env = os.environ.get

#: [127.0.0.1:8000] Never a public address: only nginx talks to gunicorn.
bind = [_env("DEPLOY_BIND", "127.0.0.1:8000")]
#: [2] At least 2 in production (one per core, more for I/O-bound apps). All workers share
#: the replay store, which is why APISEC_REPLAY_STORE must name Redis (or SQLite on one host).
workers = int(_env("WEB_CONCURRENCY", "2"))
#: [sync] sync behind a buffering proxy; gthread when gunicorn faces clients itself.
worker_class = _env("DEPLOY_WORKER_CLASS", "sync")
#: [1] Threads per gthread worker.
threads = int(_env("DEPLOY_THREADS", "1"))
#: [5] Seconds an idle keep-alive connection is kept (gthread; sync always closes).
keepalive = int(_env("DEPLOY_KEEPALIVE", "5"))
#: [30] Seconds before a silent worker is killed and replaced.
timeout = int(_env("DEPLOY_TIMEOUT", "30"))
graceful_timeout = int(_env("DEPLOY_GRACEFUL_TIMEOUT", "10"))
#: Each worker builds the app (and its Redis connection) after the fork.
preload_app = False

#: [127.0.0.1] The only peers whose X-Forwarded-Proto is believed: nginx's address as
#: gunicorn sees it (deploy/stack.py binds nginx's upstream side to 127.0.0.2). The
#: client-certificate header is *not* trusted here: the app's APISEC_TRUSTED_PROXIES is.
forwarded_allow_ips = _env("DEPLOY_FORWARDED_ALLOW_IPS", "127.0.0.1")
#: Only the header nginx sets (and overwrites); with gunicorn's default three, a client could
#: send a contradicting X-Forwarded-Ssl through nginx and get a 400.
secure_scheme_headers = {"X-FORWARDED-PROTO": "https"}
#: No header may set SCRIPT_NAME / PATH_INFO (nginx drops underscore headers anyway).
forwarder_headers = ""
#: Headers with "_" are dropped (gunicorn's default; "X-SSL_Client_Cert" cannot stand in for
#: "X-SSL-Client-Cert").
header_map = "drop"
#: A URL-escaped PEM client certificate can be a few KiB; wsgi_apisec.certs caps it at 16 KiB.
limit_request_field_size = 16 * 1024 + 64

#: TLS, only when gunicorn faces clients itself.
certfile = _env("DEPLOY_CERTFILE") or None
keyfile = _env("DEPLOY_KEYFILE") or None
ca_certs = _env("DEPLOY_CA_CERTS") or None
#: Ask for a client certificate, as nginx's "ssl_verify_client optional" does: RFC 8705
#: binding needs it, routes that do not can still be reached without one.
cert_reqs = ssl.CERT_OPTIONAL if ca_certs else ssl.CERT_NONE

accesslog = _env("DEPLOY_ACCESS_LOG") or None
errorlog = "-"
loglevel = _env("DEPLOY_LOG_LEVEL", "warning")


def post_worker_init(worker: object) -> None:
    """With ``DEPLOY_READY_DIR`` set (deploy/stack.py), note that this worker has loaded the
    app and serves, so the launcher knows when every worker is up."""
    ready = os.environ.get("DEPLOY_READY_DIR")
    if ready:
        with open(os.path.join(ready, str(os.getpid())), "w"):
            pass
