"""``make demo`` runs ``python -m sample_apps.demo``: it must exit 0 with every step ✓."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.server


def test_demo_runs_every_step_green() -> None:
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    proc = subprocess.run(
        [sys.executable, "-m", "sample_apps.demo"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    steps = [line for line in proc.stdout.splitlines() if re.match(r"^[✓✗] \d+\. ", line)]
    assert len(steps) >= 7, proc.stdout
    assert all(line.startswith("✓") for line in steps), proc.stdout
    for what in ("signature.invalid", "signature.replayed", "signed response verified"):
        assert what in proc.stdout
    assert f"{len(steps)}/{len(steps)} steps passed" in proc.stdout
