"""``python -m sample_apps.g2p_mapper [port] [--profile g2p_connect|openg2p]
[--callback-prefix URL]``: the mapper on https://127.0.0.1:{port} (default 8445), inside a
throwaway demo network run in this process:

* the sample authorization server on https://127.0.0.1:{port+1}, where ``g2p-partner`` gets
  certificate-bound tokens by ``tls_client_auth`` with the printed client certificate;
* the sample registry on http://127.0.0.1:{port+2}, which the mapper asks for keys;
* a fresh PKI and the partner's private signing keys, written to a temporary directory
  that is deleted when you stop it with Ctrl-C.

Callbacks go only under ``--callback-prefix`` (default ``https://127.0.0.1:8000/``).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
from pathlib import Path

from werkzeug.serving import BaseWSGIServer, make_server

from sample_apps import authserver, registry
from sample_apps.config import DEMO_AUDIENCE, make_demo_config
from sample_apps.pki import make_pki

from . import create_app


def _write_key(path: Path, pem: bytes) -> Path:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(pem)
    return path


def _background(server: BaseWSGIServer) -> None:
    threading.Thread(target=server.serve_forever, daemon=True).start()


def main(port: int, profile: str, callback_prefix: str) -> None:
    with tempfile.TemporaryDirectory(prefix="g2p-mapper-") as tmp:
        pki = make_pki(Path(tmp), clients=("client", "g2p-mapper"))
        as_url, registry_url = f"https://127.0.0.1:{port + 1}", f"http://127.0.0.1:{port + 2}"
        demo = make_demo_config(as_url)
        as_app = authserver.create_app(demo.authserver)
        jwks = as_app.test_client().get("/jwks").get_json()
        _background(make_server("127.0.0.1", port + 1, as_app, ssl_context=pki.server_context()))
        _background(make_server("127.0.0.1", port + 2, registry.create_app(demo.registry)))
        keys = demo.ed25519_keys if profile == "g2p_connect" else demo.keys
        mapper_cert = pki.clients["g2p-mapper"]
        app = create_app(
            {
                "signature_profile": profile,
                "issuers": [{"issuer": as_url, "jwks": jwks, "audience": DEMO_AUDIENCE}],
                "registry_url": registry_url,
                "signing_key": keys["g2p-mapper"],
                "callback_prefixes": {"g2p-partner": [callback_prefix]},
                "client_cert": [str(mapper_cert.cert_path), str(mapper_cert.key_path)],
                "ca_file": str(pki.ca_cert_path),
            }
        )
        partner_key = _write_key(Path(tmp) / "g2p-partner-sign.pem", keys["g2p-partner"].to_pem())
        partner = pki.clients["client"]
        print(
            f"mapper      https://127.0.0.1:{port}/mapper/{{sync/,}}{{link,resolve,update,unlink}}"
        )
        print(f"            signature profile {profile}; callbacks under {callback_prefix}")
        print(f"tokens      {as_url}/token  (grant_type=client_credentials, client_id=g2p-partner)")
        print(f"registry    {registry_url}/participants/g2p-partner/jwks")
        print(f"CA          {pki.ca_cert_path}")
        print(f"g2p-partner --cert {partner.cert_path} --key {partner.key_path}")
        print(f"            signing key ({keys['g2p-partner'].kid}) {partner_key}")
        server = make_server("127.0.0.1", port, app, ssl_context=pki.server_context())
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()
            app.extensions["g2p_mapper"].close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m sample_apps.g2p_mapper")
    parser.add_argument("port", nargs="?", type=int, default=8445)
    parser.add_argument("--profile", choices=("g2p_connect", "openg2p"), default="g2p_connect")
    parser.add_argument("--callback-prefix", default="https://127.0.0.1:8000/")
    args = parser.parse_args()
    main(args.port, args.profile, args.callback_prefix)
