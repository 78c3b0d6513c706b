"""``python -m fuzz TARGET [--strict] [libFuzzer options] [CORPUS_DIR ...]`` (``--list``:
the targets; ``--strict``: do not tolerate the crashes listed in :mod:`fuzz.known`).

Imports the target under ``atheris.instrument_imports()`` (so :mod:`wsgi_apisec` is
coverage-instrumented), seeds the corpus directory when it has no seeds yet, and hands the
rest of the command line to libFuzzer (a file instead of a directory runs just that input,
e.g. a ``crash-*``). Without a corpus directory, ``fuzz/corpus/TARGET`` is
used (and grows). A Python exception other than :class:`~wsgi_apisec.errors.APISecError`, or
a failed invariant (``AssertionError``), is a crash: libFuzzer writes the input to
``crash-*`` (see ``-artifact_prefix``) and exits non-zero.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from fuzz import CORPUS_ROOT, MODULES, uninstrumented

DICTIONARY = Path(__file__).resolve().parent / "tokens.dict"
USAGE = "usage: python -m fuzz TARGET [--strict] [libFuzzer options] [CORPUS_DIR ...]\ntargets: "


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[1] not in MODULES:
        if len(argv) > 1 and argv[1] == "--list":
            print("\n".join(MODULES))
            return 0
        print(USAGE + " ".join(MODULES), file=sys.stderr)
        return 2
    name, rest = argv[1], argv[2:]
    strict = "--strict" in rest
    rest = [arg for arg in rest if arg != "--strict"]
    # Log lines are formatted (that code runs too) but not printed.
    logging.basicConfig(stream=open(os.devnull, "w"), level=logging.DEBUG)  # noqa: SIM115
    import atheris  # type: ignore[import-untyped]

    with atheris.instrument_imports(include=["wsgi_apisec"], exclude=uninstrumented(name)):
        from fuzz.corpus import target, write_seeds

        one = target(name).one
    if not strict:
        from fuzz.known import tolerant

        one = tolerant(one)
    dirs = [arg for arg in rest if not arg.startswith("-")]
    if not dirs:
        dirs = [str(CORPUS_ROOT / name)]
        rest = [*rest, dirs[0]]
    first = Path(dirs[0])
    if not first.is_file() and not any(first.glob("seed-*")):  # a file: run that input only
        write_seeds(name, first)
    if not any(arg.startswith("-dict=") for arg in rest):
        rest = [f"-dict={DICTIONARY}", *rest]
    atheris.Setup([f"{argv[0]} {name}", *rest], one)
    atheris.Fuzz()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
