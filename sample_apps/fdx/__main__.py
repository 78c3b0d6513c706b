"""``python -m sample_apps.fdx [port] [--sign]``: the FDX API on ``https://127.0.0.1:{port+1}``
(client certificate required) next to the sample authorization server on
``https://127.0.0.1:{port}`` (default 8443), both with one fresh throwaway PKI and demo
config. ``--sign`` turns on signed responses. Prints what a client needs; the PKI is
deleted when you stop it with Ctrl-C.
"""

from __future__ import annotations

import sys
import tempfile
import threading
from pathlib import Path
from urllib.parse import urlencode

from werkzeug.serving import make_server

from sample_apps import authserver
from sample_apps.config import make_demo_config
from sample_apps.pki import PKI, make_pki

from . import create_app

REDIRECT = "http://127.0.0.1:8000/callback"


def main(port: int = 8443, sign: bool = False) -> None:
    with tempfile.TemporaryDirectory(prefix="fdx-") as tmp:
        pki = make_pki(Path(tmp), clients=("client",))
        issuer, api_url = f"https://127.0.0.1:{port}", f"https://127.0.0.1:{port + 1}"
        demo = make_demo_config(issuer, redirect_uri=REDIRECT)
        as_app = authserver.create_app(demo.authserver)
        # The API trusts the AS's key as of now (inline JWKS): no https trust set-up needed.
        jwks = as_app.test_client().get("/jwks").get_json()
        config = {"issuer": issuer, "jwks": jwks, "algorithms": ["ES256"], "sign_responses": sign}
        as_server = make_server(
            "127.0.0.1", port, as_app, threaded=True, ssl_context=pki.server_context()
        )
        api_server = make_server(
            "127.0.0.1", port + 1, create_app(config), threaded=True,
            ssl_context=pki.server_context("required"),
        )  # fmt: skip
        threading.Thread(target=as_server.serve_forever, daemon=True).start()
        _explain(pki, issuer, api_url, demo.secrets["fdx-aggregator"])
        try:
            api_server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            as_server.shutdown()


def _explain(pki: PKI, issuer: str, api_url: str, secret: str) -> None:
    client = pki.clients["client"]
    tls = f"--cacert {pki.ca_cert_path} --cert {client.cert_path} --key {client.key_path}"
    query = urlencode(
        {
            "response_type": "code",
            "client_id": "fdx-aggregator",
            "redirect_uri": REDIRECT,
            "scope": "fdx:accountdetailed:read fdx:transactions:read fdx:customercontact:read",
            "state": "demo",
            "code_challenge": "<S256 of your verifier>",
            "code_challenge_method": "S256",
        }
    )
    print(f"authorization server {issuer}   FDX API {api_url}   CA {pki.ca_cert_path}")
    print(f"fdx-aggregator client_secret: {secret}")
    print("1. a user token: open (trust the CA first), log in as demo-user, take the code from")
    print(f"   the redirect: {issuer}/authorize?{query}")
    print(f"2. exchange it over mTLS: curl {tls} -u fdx-aggregator:{secret} \\")
    print(f"     -d grant_type=authorization_code -d code=CODE -d redirect_uri={REDIRECT} \\")
    print(f"     -d code_verifier=VERIFIER {issuer}/token")
    print(f"3. call the API with the same certificate: curl {tls} \\")
    print(f'     -H "Authorization: Bearer TOKEN" {api_url}/fdx/v6/core/accounts')


if __name__ == "__main__":
    arguments = [a for a in sys.argv[1:] if a != "--sign"]
    main(int(arguments[0]) if arguments else 8443, sign="--sign" in sys.argv[1:])
