"""A throwaway PKI for the demo and the tests: never for production.

The generator is part of the library's test helpers (:mod:`flask_apisec.testing`); this
module re-exports it for ``sample_apps.demo`` and ``tests/tls.py``::

    pki = make_pki(tmp_path, clients=("lender",))
    server_ctx = pki.server_context(client_auth="optional")
    client_ctx = pki.client_context("lender")
"""

from __future__ import annotations

from flask_apisec.testing import PKI, ClientAuth, Identity, make_pki

__all__ = ["PKI", "ClientAuth", "Identity", "make_pki"]
