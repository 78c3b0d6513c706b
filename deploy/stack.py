"""Start the whole deployment on 127.0.0.1 in a temporary directory, and stop it again:
``redis-server`` (the shared replay store), gunicorn with 2+ workers serving
``deploy.app:create_app()`` behind nginx, nginx terminating TLS with client certificates
from a throwaway CA, and optionally a second gunicorn terminating TLS itself ("direct").

From Python (tests, ``benchmarks/load.py``)::

    with running(direct=True) as stack:
        token = stack.issuer.token(SCOPE, cert=stack.pki.clients["alice"])
        ...

From a shell: ``python -m deploy.stack`` prints the addresses and a ``curl`` line, and
runs until interrupted. Every port is a free one; every key and certificate is generated.
Child processes get ``SIGTERM`` if the process that started them dies (Linux).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from deploy.app import SCOPE
from deploy.processes import (
    BINARIES,
    Gunicorn,
    Service,
    can_bind,
    cpu_seconds,
    start_gunicorns,
    start_nginx,
    start_redis,
)
from flask_apisec.testing import PKI, TestIssuer, make_pki
from wsgi_apisec.environ import DEFAULT_MAX_BODY
from wsgi_apisec.keys import PrivateKey

__all__ = ["BINARIES", "Stack", "missing_binaries", "running"]

DEPLOY = Path(__file__).resolve().parent
#: Where nginx connects to gunicorn from: its own loopback address, so the app can trust
#: nginx's headers without trusting every local client. Falls back to 127.0.0.1 where the
#: system cannot bind it (only Linux routes all of 127/8 to the loopback interface).
PROXY_ADDRESS = "127.0.0.2"
CLIENTS = ("alice", "bob")


def missing_binaries() -> list[str]:
    """The programs the stack needs that are not installed."""
    return [name for name, path in BINARIES.items() if shutil.which(path) is None]


@dataclass(frozen=True)
class Stack:
    """A running stack: where each part listens and the credentials to talk to it."""

    workdir: Path
    pki: PKI
    issuer: TestIssuer
    #: The client key for signed requests (its public JWK is in APISEC_SIGNATURE_KEYS).
    signing_key: PrivateKey
    redis_url: str
    #: gunicorn behind nginx (plain HTTP, 127.0.0.1).
    app_port: int
    #: nginx, sending the certificate as RFC 9440 ``Client-Cert``.
    nginx_port: int
    #: nginx, sending the certificate as the URL-escaped PEM in ``X-SSL-Client-Cert``.
    nginx_escaped_port: int
    #: gunicorn terminating TLS itself (gthread workers), or 0.
    direct_port: int
    proxy_address: str
    workers: int
    max_body: int
    #: Process ids of the servers (redis-server, each gunicorn master, the nginx master).
    server_pids: tuple[int, ...] = ()

    def token(self, client: str = "alice", scopes: str = SCOPE) -> str:
        """An access token bound to ``client``'s certificate (RFC 8705 ``cnf.x5t#S256``)."""
        return self.issuer.token(scopes, cert=self.pki.clients[client])

    def cpu_seconds(self) -> float:
        """User + system CPU seconds the servers have used so far (Linux ``/proc``)."""
        return cpu_seconds(self.server_pids)

    def log(self, name: str) -> str:
        """The text of one service's log (``nginx``, ``gunicorn``, ``direct``, ``redis``)."""
        path = self.workdir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""


def _app_env(
    stack_env: dict[str, str], *, proxy: str, redis_url: str, max_body: int
) -> dict[str, str]:
    env = {k: v for k, v in stack_env.items() if not k.startswith(("APISEC_", "DEPLOY_"))}
    return env | {
        "APISEC_REPLAY_STORE": redis_url,
        "APISEC_TRUSTED_PROXIES": json.dumps([proxy]),
        # nginx sets *and overwrites* both headers on every request (nginx-apisec.conf).
        "APISEC_CLIENT_CERT_HEADERS": json.dumps(["client-cert", "ssl-client-cert"]),
        "APISEC_MAX_BODY": str(max_body),
        "DEPLOY_FORWARDED_ALLOW_IPS": proxy,
    }


@contextmanager
def running(
    workdir: Path | None = None,
    *,
    workers: int = 2,
    direct: bool = False,
    max_body: int = DEFAULT_MAX_BODY,
    nginx_max_body: int | None = None,
) -> Iterator[Stack]:
    """Start the stack (in ``workdir``, default a new temporary directory, removed after);
    stop every process on exit. ``nginx_max_body`` defaults to ``max_body`` (the app's
    ``APISEC_MAX_BODY``): nginx refuses a too-large body before gunicorn sees it."""
    with ExitStack() as stack:
        if workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="apisec-")))
        workdir.mkdir(parents=True, exist_ok=True)
        pki = make_pki(workdir / "pki", clients=CLIENTS)
        issuer = TestIssuer("ES256", lifetime=3600)  # tokens for a manual session, too
        signing_key = PrivateKey.generate("ES256", kid="deploy-client")
        proxy = PROXY_ADDRESS if can_bind(PROXY_ADDRESS) else "127.0.0.1"
        redis: Service = stack.enter_context(start_redis(workdir))
        redis_url = f"redis://127.0.0.1:{redis.port}/0"
        env = _app_env(dict(os.environ), proxy=proxy, redis_url=redis_url, max_body=max_body)
        env["APISEC_ISSUERS"] = json.dumps([issuer.issuer_config()])
        env["APISEC_SIGNATURE_KEYS"] = json.dumps({"keys": [signing_key.public_key().to_jwk()]})
        specs = [Gunicorn("gunicorn", env, workers)]
        if direct:
            tls = {
                "DEPLOY_CERTFILE": str(pki.server.cert_path),
                "DEPLOY_KEYFILE": str(pki.server.key_path),
                "DEPLOY_CA_CERTS": str(pki.ca_cert_path),
                "DEPLOY_WORKER_CLASS": "gthread",
                "DEPLOY_THREADS": "4",
            }
            specs.append(Gunicorn("direct", env | tls, workers, tls=pki))
        apps = stack.enter_context(start_gunicorns(workdir, specs))
        app = apps["gunicorn"]
        direct_port = apps["direct"].port if direct else 0
        values = {
            "user": "user root;" if os.geteuid() == 0 else "",
            "deploy": str(DEPLOY),
            "server_cert": str(pki.server.cert_path),
            "server_key": str(pki.server.key_path),
            "ca_cert": str(pki.ca_cert_path),
            "upstream": f"127.0.0.1:{app.port}",
            "proxy_bind": proxy,
            "app_max_body": str(max_body),
            "max_body": str(max_body if nginx_max_body is None else nginx_max_body),
        }
        nginx = stack.enter_context(start_nginx(workdir, DEPLOY / "nginx.conf", values))
        yield Stack(
            workdir=workdir,
            pki=pki,
            issuer=issuer,
            signing_key=signing_key,
            redis_url=redis_url,
            app_port=app.port,
            nginx_port=nginx.port,
            nginx_escaped_port=nginx.extra_port,
            direct_port=direct_port,
            proxy_address=proxy,
            workers=workers,
            max_body=max_body,
            server_pids=tuple(s.proc.pid for s in (redis, *apps.values(), nginx)),
        )


def _describe(stack: Stack) -> str:
    alice = stack.pki.clients["alice"]
    token = stack.token("alice")
    lines = [
        f"workdir            {stack.workdir}",
        f"redis              {stack.redis_url}",
        f"gunicorn (app)     http://127.0.0.1:{stack.app_port}  ({stack.workers} sync workers)",
        f"nginx, Client-Cert https://127.0.0.1:{stack.nginx_port}",
        f"nginx, escaped PEM https://127.0.0.1:{stack.nginx_escaped_port}",
    ]
    if stack.direct_port:
        lines.append(f"gunicorn, TLS      https://127.0.0.1:{stack.direct_port}")
    lines += [
        f"trusted proxy      {stack.proxy_address}",
        "",
        "try:",
        f"  curl --cacert {stack.pki.ca_cert_path} --cert {alice.cert_path} "
        f"--key {alice.key_path} \\\n    -H 'Authorization: Bearer {token}' \\\n"
        f"    https://127.0.0.1:{stack.nginx_port}/token",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--direct", action="store_true", help="also run gunicorn with TLS")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args(argv)
    missing = missing_binaries()
    if missing:
        sys.exit(
            f"not installed: {', '.join(missing)} (Debian: apt-get install nginx-light "
            "redis-server; gunicorn: pip install gunicorn)"
        )
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with running(args.workdir, workers=args.workers, direct=args.direct) as stack:
        print(_describe(stack), flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
