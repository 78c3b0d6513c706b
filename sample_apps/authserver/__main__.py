"""``python -m sample_apps.authserver [port]``: the authorization server on 127.0.0.1 over
TLS (client certificates asked for, not required), with a fresh throwaway PKI and demo
config. Prints what a client needs; the PKI is deleted when you stop it with Ctrl-C."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from werkzeug.serving import run_simple

from sample_apps.config import make_demo_config
from sample_apps.pki import make_pki

from . import create_app


def main(port: int = 8443) -> None:
    with tempfile.TemporaryDirectory(prefix="authserver-") as tmp:
        pki = make_pki(Path(tmp), clients=("client",))
        issuer = f"https://127.0.0.1:{port}"
        demo = make_demo_config(issuer)
        print(f"issuer      {issuer}  (metadata: /.well-known/oauth-authorization-server)")
        print(f"CA          {pki.ca_cert_path}")
        client = pki.clients["client"]
        print(f"g2p-partner tls_client_auth: --cert {client.cert_path} --key {client.key_path}")
        for client_id, secret in demo.secrets.items():
            print(f"{client_id:<16} client_secret_basic: {secret}")
        run_simple("127.0.0.1", port, create_app(demo.authserver), ssl_context=pki.server_context())


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 8443)
