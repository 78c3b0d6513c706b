"""TLS material for tests: a throwaway CA, a server certificate for 127.0.0.1 and client
certificates, written under a pytest tmp dir (the generator lives in
:mod:`sample_apps.pki`, which the demo uses too).

Use it directly::

    from tests.tls import make_pki
    pki = make_pki(tmp_path, clients=("alice", "bob"))
    server_ctx = pki.server_context(client_auth="optional")   # or "none" / "required"
    client_ctx = pki.client_context("alice")                  # trusts only the test CA

or as fixtures, by adding ``"tests.tls"`` to ``pytest_plugins`` in ``tests/conftest.py``:
``tls_pki`` (one PKI per test module, clients ``client`` and ``other``).
"""

from __future__ import annotations

import pytest

from sample_apps.pki import PKI, Identity, make_pki

__all__ = ["PKI", "Identity", "make_pki", "tls_pki"]


@pytest.fixture(scope="module")
def tls_pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return make_pki(tmp_path_factory.mktemp("pki"), clients=("client", "other"))
