"""A real ``redis-server`` for the tests, started once per session (once per xdist worker).

Import from ``tests/conftest.py``: ``pytest_plugins = ["tests.redis_server"]``.
The server listens on 127.0.0.1 on a free port, keeps nothing on disk
(``--save "" --appendonly no``) and is killed when the session ends. A missing
``redis-server`` is a failure, not a skip: CI installs it.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

_START_ATTEMPTS = 3
_START_TIMEOUT = 10.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def _start(exe: str, workdir: Path) -> tuple[subprocess.Popen[bytes], int, Path]:
    port = free_port()
    log = workdir / f"redis-{port}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                exe,
                "--bind",
                "127.0.0.1",
                "--port",
                str(port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(workdir),
                "--daemonize",
                "no",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return proc, port, log


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``redis://127.0.0.1:<port>/0`` of a redis-server private to this session."""
    exe = shutil.which("redis-server")
    if exe is None:
        pytest.fail(
            "redis-server is not on PATH; the Redis tests need a real server "
            "(Debian/Ubuntu: apt-get install redis-server)",
            pytrace=False,
        )
    workdir = tmp_path_factory.mktemp("redis")
    logs = []
    for _ in range(_START_ATTEMPTS):  # the free port may be taken before redis binds it
        proc, port, log = _start(exe, workdir)
        deadline = time.monotonic() + _START_TIMEOUT
        while proc.poll() is None and time.monotonic() < deadline:
            if _answers_ping(port):
                try:
                    yield f"redis://127.0.0.1:{port}/0"
                finally:
                    _stop(proc)
                return
            time.sleep(0.05)
        _stop(proc)
        logs.append(log.read_text(errors="replace"))
    pytest.fail("redis-server did not start:\n" + "\n---\n".join(logs), pytrace=False)
