"""Fixtures of the attack suite: keys made once per session, and ``target`` / ``build``
parametrised over both entry points (see :mod:`tests.attacks.harness`)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

import pytest

from flask_apisec.testing import TestIssuer
from tests.attacks.harness import KINDS, Parties, Setup, Target, build
from wsgi_apisec.keys import PrivateKey


@pytest.fixture(scope="session")
def issuer() -> TestIssuer:
    return TestIssuer("ES256", kid="as-1")


@pytest.fixture(scope="session")
def parties() -> Parties:
    return Parties(
        jws=PrivateKey.generate("ES256", kid="jws-1"),
        fapi=PrivateKey.generate("ES256", kid="fapi-1"),
        ocen={
            "A": PrivateKey.generate("RS256", kid="a-1"),
            "B": PrivateKey.generate("RS256", kid="b-1"),
        },
        g2p=PrivateKey.generate("EdDSA", kid="k1"),
    )


@pytest.fixture
def setup(issuer: TestIssuer, parties: Parties) -> Setup:
    return Setup(issuer, parties)


class _Records(logging.Handler):
    def __init__(self, into: list[logging.LogRecord]) -> None:
        super().__init__(logging.INFO)
        self.into = into

    def emit(self, record: logging.LogRecord) -> None:
        self.into.append(record)


@pytest.fixture(params=KINDS)
def build_target(request: pytest.FixtureRequest) -> Iterator[Callable[[Setup], Target]]:
    """``build_target(setup)``: that configuration as the Flask extension, then as the bare
    WSGI middleware (the fixture's two parameters)."""
    logs: list[logging.LogRecord] = []
    handler = _Records(logs)
    logger = logging.getLogger("wsgi_apisec")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield lambda setup: build(request.param, setup, logs)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


@pytest.fixture
def target(build_target: Callable[[Setup], Target], setup: Setup) -> Target:
    """The default configuration, as each entry point."""
    return build_target(setup)
