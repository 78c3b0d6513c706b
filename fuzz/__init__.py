"""Coverage-guided fuzzing of every parser family and of a whole WSGI request (atheris).

``python -m fuzz TARGET [libFuzzer options] [CORPUS_DIR ...]`` runs one target; see
``fuzz/README.md``. Nothing here imports :mod:`wsgi_apisec` at import time: the driver must
import it under ``atheris.instrument_imports()`` so that its code is coverage-instrumented.
"""

from __future__ import annotations

import pkgutil
from pathlib import Path
from typing import NamedTuple


class Spec(NamedTuple):
    """Where a target is defined, and the :mod:`wsgi_apisec` modules it is about: only those
    are coverage-instrumented (instrumenting all of them costs seconds at start-up); an empty
    ``focus`` means the whole package."""

    module: str
    focus: tuple[str, ...] = ()


_JOSE = ("jws", "encoding", "keys", "jwk", "algorithms")
MODULES: dict[str, Spec] = {
    "jws": Spec("fuzz.targets.jose", (*_JOSE, "detached", "profiles")),
    "jwk": Spec("fuzz.targets.jose", ("keys", "jwk", "encoding")),
    "encoding": Spec("fuzz.targets.jose", ("encoding",)),
    "sfv": Spec("fuzz.targets.fields", ("sfv",)),
    "digest": Spec("fuzz.targets.fields", ("digest", "sfv")),
    "beckn": Spec("fuzz.targets.fields", ("beckn", "encoding")),
    "certs": Spec("fuzz.targets.fields", ("certs", "sfv")),
    "bearer": Spec(
        "fuzz.targets.tokens", ("bearer", "tokens", "claims", "binding", "certs", "problem", "jws")
    ),
    "dpop": Spec("fuzz.targets.tokens", ("dpop", *_JOSE)),
    "httpsig": Spec(
        "fuzz.targets.httpsig",
        ("httpsig", "httpsig_components", "httpsig_policy", "sfv", "digest", "fapi2"),
    ),
    "wsgi": Spec("fuzz.targets.wsgi"),
}


def uninstrumented(name: str) -> list[str]:
    """The :mod:`wsgi_apisec` modules outside target ``name``'s focus."""
    focus = MODULES[name].focus
    if not focus:
        return []
    package = Path(__file__).resolve().parent.parent / "wsgi_apisec"
    modules = [m.name for m in pkgutil.iter_modules([str(package)])]
    return [f"wsgi_apisec.{m}" for m in modules if m not in focus]


#: Where ``python -m fuzz`` keeps each target's growing corpus (git-ignored).
CORPUS_ROOT = Path(__file__).resolve().parent / "corpus"
