"""Write the seed corpus: ``python -m fuzz.corpus [DIR] [TARGET ...]``.

Each target's seeds are made by its module (signed with the fixed keys, at the fixed time of
:mod:`fuzz.fixtures`) and written as ``DIR/<target>/seed-<n>``. ``DIR`` defaults to
``fuzz/corpus``; existing seed files are overwritten, files libFuzzer added are kept.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

from fuzz import CORPUS_ROOT, MODULES
from fuzz.fixtures import Target


def target(name: str) -> Target:
    module = importlib.import_module(MODULES[name].module)
    found: Target = module.TARGETS[name]
    return found


def write_seeds(name: str, directory: Path) -> int:
    """Write ``name``'s seeds into ``directory``; returns how many."""
    directory.mkdir(parents=True, exist_ok=True)
    count = 0
    for count, seed in enumerate(target(name).seeds(), start=1):
        (directory / f"seed-{count:03d}").write_bytes(seed)
    return count


def main(argv: list[str]) -> int:
    root = Path(argv[0]) if argv and argv[0] not in MODULES else CORPUS_ROOT
    names = [a for a in argv if a in MODULES] or list(MODULES)
    for name in names:
        count = write_seeds(name, root / name)
        print(f"{name}: {count} seeds in {root / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
