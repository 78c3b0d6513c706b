"""A real ``redis-server`` for the tests, started once per session (once per xdist worker).

Import from ``tests/conftest.py``: ``pytest_plugins = ["tests.redis_server"]``.
The server is the deploy stack's (:func:`deploy.processes.start_redis`): 127.0.0.1, a free
port, nothing on disk, a few start attempts, stopped when the session ends. A missing
``redis-server`` is a failure, not a skip: CI installs it.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from deploy.processes import StackError, free_port, start_redis

__all__ = ["free_port", "redis_url"]


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``redis://127.0.0.1:<port>/0`` of a redis-server private to this session."""
    if shutil.which("redis-server") is None:
        pytest.fail(
            "redis-server is not on PATH; the Redis tests need a real server "
            "(Debian/Ubuntu: apt-get install redis-server)",
            pytrace=False,
        )
    try:
        with start_redis(tmp_path_factory.mktemp("redis")) as service:
            yield f"redis://127.0.0.1:{service.port}/0"
    except StackError as exc:
        pytest.fail(str(exc), pytrace=False)
