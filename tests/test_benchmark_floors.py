"""The hand-written floors of ``benchmarks/tokens.py`` do what their docstrings say: both
accept the benchmark's token and refuse a bad signature; only the RFC 9068 one refuses an
ID token of the same issuer (``typ`` ``JWT``), as ``require_token`` does."""

from __future__ import annotations

import pytest
from flask import Flask

from benchmarks import tokens as bench
from flask_apisec.testing import TestIssuer


@pytest.fixture(scope="module")
def issuer() -> TestIssuer:
    return TestIssuer("ES256")


def _status(app: Flask, token: str) -> str:
    return bench._request(app, bench._environ(token))[:3]


@pytest.mark.parametrize(
    ("variant", "id_token_status"),
    [(bench.floor, "200"), (bench.floor_rfc9068, "401")],
    ids=["floor-skips-typ", "rfc9068-s4-floor-checks-typ"],
)
def test_floor_variants(issuer: TestIssuer, variant: object, id_token_status: str) -> None:
    app = variant(issuer)  # type: ignore[operator]
    good = issuer.token(bench.SCOPE)
    assert _status(app, good) == "200"
    assert _status(app, good[:-4] + ("AAAA" if good[-4:] != "AAAA" else "BBBB")) == "401"
    id_token = issuer.token(bench.SCOPE, header={"typ": "JWT"})
    assert _status(app, id_token) == id_token_status


def test_require_token_refuses_the_id_token(issuer: TestIssuer) -> None:
    app = bench.flask_apisec(issuer, cache=False)
    assert _status(app, issuer.token(bench.SCOPE, header={"typ": "JWT"})) == "401"
