"""Where the shared spec vectors live, and one way to read them.

The vectors sit next to the repository (``<repo>/../shared/vectors``) and are never copied
into it. When that folder is absent, every test that needs it is skipped, at collection
time as well as inside a test.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

VECTORS = Path(__file__).resolve().parents[1].parent / "shared" / "vectors"


def path(relpath: str) -> Path:
    """The path of one vector file; skips the caller when the shared folder is absent."""
    if not VECTORS.is_dir():
        pytest.skip(f"shared vectors not found at {VECTORS}", allow_module_level=True)
    return VECTORS / relpath


def load(relpath: str) -> Any:
    """The parsed JSON of ``relpath`` (relative to :data:`VECTORS`)."""
    return json.loads(path(relpath).read_text(encoding="utf-8"))


def text(relpath: str) -> str:
    """The text of a non-JSON vector (a PEM, a signature base)."""
    return path(relpath).read_text(encoding="utf-8")
