"""One worker process for ``tests/test_replay_workers.py``: a WSGI app behind
``SignatureMiddleware`` whose replay store comes from a URL, served by werkzeug on 127.0.0.1.

Run as ``python -m tests.replay_worker_app --jwks F --runs F --port-file F [--store URL]``
(``--store`` defaults to ``$APISEC_REPLAY_STORE``, else ``memory``). The server binds port 0,
so two workers started at once never race for a port, and writes the port it got to
``--port-file`` once it is listening. Every request the app runs appends
``"<pid> <sha256 of body>"`` to ``--runs``, so the test can count how often the app ran.

Routes, each verified with its own profile and client key (by ``kid`` from the JWKS file):

- ``/ocen/**``: detached JWS, OCEN with ``key_owner=None`` (the key is fixed, no token);
- ``/fapi2/**``: RFC 9421, FAPI 2.0 Message Signing;
- ``/g2p/**``: the Beckn-style G2P Connect header, key by sender id :data:`G2P_SENDER`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from werkzeug.serving import make_server

from wsgi_apisec import profiles
from wsgi_apisec.fapi2 import FAPI2
from wsgi_apisec.keys import KeySet, PublicKey
from wsgi_apisec.middleware import Rule, SignatureMiddleware
from wsgi_apisec.replay import replay_store_from_url
from wsgi_apisec.resolvers import StaticKeyResolver

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

#: OCEN without the token lookup: the signer's key is the one fixed key.
OCEN_FIXED_KEY = profiles.OCEN.replace(key_owner=None)
G2P_SENDER = "g2p-sender"
#: The ``kid`` of each route's client key in the JWKS file.
KIDS = {"ocen": "ocen-client", "fapi2": "fapi2-client", "g2p": "g2p-k1"}
STORE_ENV = "APISEC_REPLAY_STORE"


def _key(keys: KeySet, kid: str) -> PublicKey:
    key = keys.get(kid)
    if key is None:
        raise SystemExit(f"the JWKS file has no key {kid!r}")
    return key


def rules(jwks: Path) -> list[Rule]:
    keys = KeySet.from_jwks(jwks.read_bytes())
    ocen, fapi2, g2p = (_key(keys, KIDS[name]) for name in ("ocen", "fapi2", "g2p"))
    return [
        Rule("/ocen/**", profile=OCEN_FIXED_KEY, resolver=StaticKeyResolver([ocen])),
        Rule("/fapi2/**", profile=FAPI2, resolver=StaticKeyResolver([fapi2])),
        Rule(
            "/g2p/**",
            profile=profiles.G2P_CONNECT,
            resolver=StaticKeyResolver(owners={G2P_SENDER: [g2p]}),
        ),
    ]


def recording_app(runs: Path) -> WSGIApplication:
    """Appends one line per run to ``runs`` (one ``O_APPEND`` write: lines from several
    processes never interleave) and answers with its pid and the body's digest."""

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        digest = hashlib.sha256(environ["wsgi.input"].read()).hexdigest()
        fd = os.open(runs, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, f"{os.getpid()} {digest}\n".encode())
        finally:
            os.close(fd)
        payload = json.dumps({"pid": os.getpid(), "sha256": digest}).encode()
        start_response("200 OK", [("Content-Type", "application/json")])
        return [payload]

    return app


def make_app(store_url: str, jwks: Path, runs: Path) -> WSGIApplication:
    """The recording app behind ``SignatureMiddleware`` with the store ``store_url`` names."""
    return SignatureMiddleware(
        recording_app(runs),
        rules(jwks),
        resolver=StaticKeyResolver(),
        replay_store=replay_store_from_url(store_url),
    )


def _exit_with_parent(parent: int) -> None:
    """A worker must not outlive a test run that was killed before its teardown ran."""
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(0)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default=os.environ.get(STORE_ENV, "memory"))
    parser.add_argument("--jwks", type=Path, required=True)
    parser.add_argument("--runs", type=Path, required=True)
    parser.add_argument("--port-file", type=Path, required=True)
    args = parser.parse_args(argv)
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    app = make_app(args.store, args.jwks, args.runs)
    server = make_server("127.0.0.1", 0, app, threaded=True)  # listening once this returns
    partial = args.port_file.with_suffix(".tmp")
    partial.write_text(str(server.port))
    partial.replace(args.port_file)  # the reader never sees half a number
    print(f"worker {os.getpid()} on 127.0.0.1:{server.port} store={args.store}", flush=True)
    server.serve_forever(poll_interval=0.05)


if __name__ == "__main__":
    main(sys.argv[1:])
