"""``requests`` and ``authlib`` are the ``client`` extra: only ``wsgi_apisec.client`` imports
them, the rest of the core loads without them, and the client says what to install."""

from __future__ import annotations

import subprocess
import sys

from tests.test_layering import REPO_ROOT, _imports, _modules, _path

CLIENT_ONLY = {"requests", "authlib"}


def test_only_the_client_package_imports_requests_or_authlib() -> None:
    modules = _modules("wsgi_apisec")
    client = [m for m in modules if m.startswith("wsgi_apisec.client")]
    assert len(client) >= 5
    outside = {m: _imports(_path(m)) & CLIENT_ONLY for m in modules if m not in client}
    assert {m: used for m, used in outside.items() if used} == {}
    assert set().union(*(_imports(_path(m)) for m in client)) >= CLIENT_ONLY


def _run(script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60
    )


def test_the_core_loads_without_the_client_extra() -> None:
    blocked = "import sys\nsys.modules['requests'] = None\nsys.modules['authlib'] = None\n"
    core = [m for m in _modules("wsgi_apisec") if not m.startswith("wsgi_apisec.client")]
    proc = _run(blocked + f"import importlib\nfor m in {core!r}: importlib.import_module(m)\n")
    assert proc.returncode == 0, proc.stderr
    proc = _run(blocked + "import wsgi_apisec.client\n")
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last == (
        "ImportError: wsgi_apisec.client needs requests and authlib: "
        "pip install 'flask-apisec[client]'"
    )
