"""pytest fixtures for apps protected by flask_apisec.

Enable with ``pytest_plugins = ["flask_apisec.pytest_plugin"]`` in the root ``conftest.py``
(or ``-p flask_apisec.pytest_plugin``). Works next to pytest-flask: set
``app.test_client_class = APISecClient`` in your ``app`` fixture and its ``client`` fixture
takes ``token=``, ``client_cert=``, ``dpop=`` and ``signature=``.
"""

from __future__ import annotations

import pytest

from .testing import ClientCert, TestIssuer, make_client_cert

__all__ = ["apisec_client_cert", "apisec_issuer"]


@pytest.fixture
def apisec_issuer() -> TestIssuer:
    """An ES256 :class:`TestIssuer` (``https://issuer.test``, audience ``https://api.test``);
    put ``apisec_issuer.issuer_config()`` into ``APISEC_ISSUERS``."""
    return TestIssuer("ES256")


@pytest.fixture
def apisec_client_cert() -> ClientCert:
    """A self-signed client certificate; bind a token to it with
    ``apisec_issuer.token(cert=apisec_client_cert)``."""
    return make_client_cert("client")
