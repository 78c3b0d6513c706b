"""Crashes the fuzzers have found in code this fuzzing work does not own, until they are fixed.

Each entry names the exception type, the :mod:`wsgi_apisec` file it escapes from (the
innermost library frame) and the strict-``xfail`` regression test that shows it. While an
entry is listed the targets tolerate exactly that crash, so a run can go on to find others.
When the owner fixes it, the regression test passes, strict ``xfail`` fails the suite, and
the entry (and the marker) must be removed. ``python -m fuzz --strict ...`` tolerates none.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from typing import NamedTuple


class KnownBug(NamedTuple):
    exception: str
    file: str
    test: str


KNOWN_BUGS: tuple[KnownBug, ...] = ()


def is_known(exc: BaseException) -> bool:
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if "wsgi_apisec/" in f.filename]
    if not frames:
        return False
    where = frames[-1].filename
    return any(
        type(exc).__name__ == bug.exception and where.endswith(bug.file) for bug in KNOWN_BUGS
    )


def tolerant(one: Callable[[bytes], None]) -> Callable[[bytes], None]:
    """``one``, except that a :data:`KNOWN_BUGS` crash counts as a handled input."""

    def run(data: bytes) -> None:
        try:
            one(data)
        except Exception as exc:
            if not is_known(exc):
                raise

    return run
