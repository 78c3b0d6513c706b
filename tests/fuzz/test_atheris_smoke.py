"""CI smoke run of every atheris target: a few hundred inputs from the generated seed corpus,
each target in its own process (``python -m fuzz``), which must exit 0.

The seeds are valid, signed requests (fixed keys, fixed clock), so every target first runs
its accepting path, then libFuzzer's mutations of it. Two targets run at a time.
"""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from fuzz import MODULES

pytest.importorskip("atheris")

ROOT = Path(__file__).resolve().parents[2]
RUNS = 500
#: Per target: a guard well above what ``RUNS`` takes, so a hang fails instead of blocking.
TIMEOUT = 60


def fuzz(name: str, workdir: Path) -> subprocess.CompletedProcess[str]:
    corpus, artifacts = workdir / "corpus" / name, workdir / "artifacts" / name
    artifacts.mkdir(parents=True)
    command = [
        sys.executable,
        "-m",
        "fuzz",
        name,
        f"-runs={RUNS}",
        "-max_total_time=5",
        "-timeout=10",
        f"-artifact_prefix={artifacts}/",
        str(corpus),
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=TIMEOUT, check=False
    )


def test_every_target_runs_from_its_seeds_without_a_crash(tmp_path: Path) -> None:
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = dict(zip(MODULES, pool.map(lambda n: fuzz(n, tmp_path), MODULES)))
    for name, result in results.items():
        tail = "\n".join(result.stderr.splitlines()[-40:])
        assert result.returncode == 0, f"{name} exited {result.returncode}:\n{tail}"
        # libFuzzer read the seeds and reached the run count ("Done N runs").
        assert f"Done {RUNS} runs" in result.stderr or "DONE" in result.stderr, f"{name}:\n{tail}"
        assert list((tmp_path / "corpus" / name).glob("seed-*")), f"{name} wrote no seeds"
        assert not list((tmp_path / "artifacts" / name).iterdir()), f"{name} left a crash"
