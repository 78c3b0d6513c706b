"""DESIGN.md "Layers": ``flask_apisec`` imports ``wsgi_apisec``, never the reverse, and the
core loads neither Flask nor Werkzeug (so it serves Django, Falcon and bare WSGI apps)."""

from __future__ import annotations

import ast
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
FRAMEWORKS = ("flask", "werkzeug", "flask_apisec")


def _modules(package: str) -> list[str]:
    """``package`` and every module below it, subpackages (``wsgi_apisec.client``) included."""
    found = [package]
    for info in pkgutil.walk_packages([str(REPO_ROOT / package)], prefix=f"{package}."):
        found.append(info.name)
    return found


def _path(module: str) -> Path:
    plain = REPO_ROOT / (module.replace(".", "/") + ".py")
    return plain if plain.exists() else REPO_ROOT / module.replace(".", "/") / "__init__.py"


def _imports(path: Path) -> set[str]:
    """Top-level names of every module ``path`` imports, at any depth (lazy imports too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def test_importing_every_core_module_loads_no_framework() -> None:
    modules = _modules("wsgi_apisec")
    assert len(modules) > 20  # the walk found the package
    script = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {FRAMEWORKS!r})))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == []


@pytest.mark.parametrize("module", _modules("wsgi_apisec"))
def test_core_module_never_imports_a_framework(module: str) -> None:
    assert _imports(_path(module)) & set(FRAMEWORKS) == set()


def test_flask_apisec_builds_on_wsgi_apisec() -> None:
    users = [m for m in _modules("flask_apisec") if "wsgi_apisec" in _imports(_path(m))]
    assert {"flask_apisec.extension", "flask_apisec.decorators"} <= set(users)
    import flask_apisec

    assert "wsgi_apisec" in sys.modules and flask_apisec.APISec is not None
