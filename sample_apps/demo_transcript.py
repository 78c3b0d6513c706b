"""The demo's transcript: one numbered line per step with what was checked and ✓ or ✗, a
heading per story, and the summary. A step is a function that returns the evidence (a
short text) or raises; any exception is the step failing, and the demo goes on."""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

import requests

__all__ = ["FAIL", "PASS", "Transcript", "challenge", "error_code", "expect", "refusal"]

PASS, FAIL = "✓", "✗"


def expect(condition: bool, message: str) -> None:
    """A step's check: ``AssertionError(message)`` when ``condition`` does not hold."""
    if not condition:
        raise AssertionError(message)


def error_code(response: requests.Response) -> str:
    """The refusal's code in the body: problem+json ``code``, or a G2P ``errors[0].code``."""
    try:
        doc: Any = response.json()
    except ValueError:
        return "-"
    if isinstance(doc, dict) and isinstance(doc.get("code"), str):
        return str(doc["code"])
    errors = doc.get("errors") if isinstance(doc, dict) else None
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        return str(errors[0].get("code"))
    return "-"


def challenge(response: requests.Response) -> dict[str, str]:
    """The auth-params of an RFC 6750 ``WWW-Authenticate: Bearer`` challenge."""
    header = response.headers.get("WWW-Authenticate", "")
    return dict(re.findall(r'(\w+)="([^"]*)"', header))


def refusal(response: requests.Response, status: int, code: str) -> str:
    """Check that ``response`` is the refusal expected, ``code`` being the body's code or
    the challenge's ``error``; the evidence if so."""
    body, error = error_code(response), challenge(response).get("error", "-")
    got = f"{response.status_code} {error if code == error else body}"
    expect(got == f"{status} {code}", f"expected {status} {code}, got {got}")
    return f"{got} ({body})" if code == error and body != "-" else got


@dataclass
class Transcript:
    """Prints as it goes; ``results`` keeps each step's outcome."""

    out: TextIO = field(default_factory=lambda: sys.stdout)
    results: list[bool] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def say(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    def story(self, title: str) -> None:
        self.say()
        self.say(f"── {title}")

    def step(self, label: str, title: str, check: Callable[[], str]) -> bool:
        try:
            detail, ok = check(), True
        except Exception as exc:  # a failed step is reported, and the demo goes on
            detail, ok = _failure(exc), False
        self.results.append(ok)
        mark = PASS if ok else FAIL
        self.say(f"{mark} {len(self.results):>2}. {label:<5} {title} — {detail}")
        return ok

    @property
    def passed(self) -> bool:
        return bool(self.results) and all(self.results)

    def summary(self) -> str:
        done, total = sum(self.results), len(self.results)
        took = time.monotonic() - self.started
        verdict = "steps passed" if self.passed else "steps passed — FAILED"
        return f"{done}/{total} {verdict} in {took:.1f} s"


def _failure(exc: Exception) -> str:
    if isinstance(exc, AssertionError):
        return str(exc)
    description = getattr(exc, "description", None)  # APISecError: its safe description
    text = description if isinstance(description, str) else str(exc)
    code = getattr(exc, "code", None)
    where = f" [{code}]" if isinstance(code, str) else ""
    return f"{type(exc).__name__}{where}: {text[:300]}"
