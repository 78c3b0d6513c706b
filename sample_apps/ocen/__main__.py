"""``python -m sample_apps.ocen [config.json]``: the lender over HTTPS on 127.0.0.1.

With a config file (the keys of :func:`sample_apps.ocen.create_app`, plus ``"port"``,
default 8445) it serves that lender. Without one it starts a whole demo network in this
process, all over TLS with one throwaway CA: the participant registry and the authorization
server on free ports of 127.0.0.1, and the lender, which fetches the registry's keys and the
AS's JWKS trusting that CA (``ca_file``). It prints the URLs, the CA, the key of the loan
agent ``lsp-1`` and an access token for it, so a request can be signed with
``apisec sign --profile ocen --key ...``. Everything is deleted on Ctrl-C.
"""

from __future__ import annotations

import json
import secrets
import ssl
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from werkzeug.serving import BaseWSGIServer, make_server

from sample_apps import authserver, registry
from sample_apps.config import DemoConfig, make_demo_config
from sample_apps.pki import PKI, make_pki
from wsgi_apisec import jws
from wsgi_apisec.encoding import json_dumps

from . import create_app

DEFAULT_PORT = 8445


def _background(app: Any, context: ssl.SSLContext) -> str:
    """Serve ``app`` over TLS on a free port of 127.0.0.1 in a daemon thread; its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True, ssl_context=context)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"https://127.0.0.1:{server.server_port}"


def _lsp_token(demo: DemoConfig, issuer_app: Any, issuer: str) -> str:
    """An access token for ``ocen-lsp`` (private_key_jwt, RFC 7523 §2.2)."""
    key, now = demo.keys["ocen-lsp"], int(time.time())
    claims: dict[str, Any] = {"iss": "ocen-lsp", "sub": "ocen-lsp", "aud": issuer + "/token"}
    claims |= {"jti": secrets.token_urlsafe(12), "iat": now, "exp": now + 60}
    assertion = jws.sign(key, json_dumps(claims), jws.build_header(key, "RS256"), detached=False)
    form = {
        "grant_type": "client_credentials",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": assertion,
    }
    answer = issuer_app.test_client().post("/token", data=form).get_json()
    return str(answer["access_token"])


def _demo_network(tmp: Path, pki: PKI) -> dict[str, Any]:
    """Registry + authorization server in the background; the lender's config."""
    # The auth server's issuer must name its own port, so it is bound before it is built.
    holder: dict[str, Any] = {}
    issuer = _background(lambda environ, start: holder["app"](environ, start), pki.server_context())
    demo = make_demo_config(issuer)
    holder["app"] = authserver.create_app(demo.authserver)
    registry_url = _background(registry.create_app(demo.registry), pki.server_context("none"))
    lsp_pem = tmp / "lsp-1.pem"
    lsp_pem.touch(mode=0o600)  # a private key: readable by its owner only
    lsp_pem.write_bytes(demo.keys["lsp-1"].to_pem())
    print(f"issuer       {issuer}   (client ocen-lsp, private_key_jwt)")
    print(f"registry     {registry_url}/participant-roles/lsp-1")
    print(f"lsp-1 key    {lsp_pem}")
    print(f"lsp-1 token  {_lsp_token(demo, holder['app'], issuer)}")
    return {
        "issuer": issuer,
        "registry_url": registry_url,
        "ca_file": str(pki.ca_cert_path),
        "signing_key": demo.keys["lender-1"],
    }


def _serve(config: dict[str, Any], port: int, pki: PKI) -> BaseWSGIServer:
    server = make_server(
        "127.0.0.1", port, create_app(config), threaded=True, ssl_context=pki.server_context()
    )
    print(f"lender       https://127.0.0.1:{port}/ocen/v4/loan-applications")
    print(f"CA           {pki.ca_cert_path}   (client cert: {pki.clients['lsp'].cert_path})")
    return server


def main(argv: list[str]) -> None:
    with tempfile.TemporaryDirectory(prefix="ocen-lender-") as tmp:
        pki = make_pki(Path(tmp) / "pki", clients=("lsp",))
        if argv:
            config = json.loads(Path(argv[0]).read_text())
            port = int(config.pop("port", DEFAULT_PORT))
        else:
            config, port = _demo_network(Path(tmp), pki), DEFAULT_PORT
        server = _serve(config, port, pki)
        print(
            "sign a body  python -m wsgi_apisec.cli sign --profile ocen --key <lsp-1 key> body.json"
        )
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()


if __name__ == "__main__":
    main(sys.argv[1:])
