"""Start and stop the stack's processes (redis-server, gunicorn, nginx) on free ports of
127.0.0.1, each with its log in the work directory. Used by :mod:`deploy.stack`.

A free port is found by binding port 0 and closing the socket; another process may take it
before the server binds it, so each start is retried on new ports when the server exits.
"""

from __future__ import annotations

import ctypes
import http.client
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from flask_apisec.testing import PKI

__all__ = [
    "BINARIES",
    "Gunicorn",
    "Service",
    "StackError",
    "can_bind",
    "cpu_seconds",
    "free_port",
    "render",
    "start_gunicorns",
    "start_nginx",
    "start_redis",
]

REPO = Path(__file__).resolve().parents[1]
GUNICORN_CONF = REPO / "deploy" / "gunicorn.conf.py"
BINARIES = {"nginx": "/usr/sbin/nginx", "redis-server": "redis-server"}
START_ATTEMPTS = 3
START_TIMEOUT = 30.0  # only a server that never starts waits this long
_PR_SET_PDEATHSIG = 1


class StackError(RuntimeError):
    """A server did not start; the message holds the end of its log."""


@dataclass(frozen=True)
class Service:
    name: str
    proc: subprocess.Popen[bytes]
    port: int
    log: Path
    extra_port: int = 0


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def can_bind(host: str) -> bool:
    try:
        free_port(host)
    except OSError:
        return False
    return True


def cpu_seconds(roots: tuple[int, ...]) -> float:
    """User + system CPU seconds of the ``roots`` and every descendant (Linux ``/proc``):
    what the servers spent, whatever the clients and the rest of the machine did."""
    parents: dict[int, int] = {}
    used: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process has just exited
            continue
        pid = int(stat.parent.name)
        parents[pid], used[pid] = int(fields[1]), int(fields[11]) + int(fields[12])
    total, todo = 0, list(roots)
    while todo:
        pid = todo.pop()
        total += used.get(pid, 0)
        todo += [child for child, parent in parents.items() if parent == pid]
    return total / os.sysconf("SC_CLK_TCK")


def _die_with_parent() -> None:
    """Runs in the child before exec: SIGTERM when the starting thread dies (Linux only),
    so a test run killed before its teardown leaves no servers behind."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _spawn(
    name: str, argv: list[str], workdir: Path, env: Mapping[str, str] | None = None
) -> tuple[subprocess.Popen[bytes], Path]:
    log = workdir / f"{name}.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(  # noqa: S603 -- argv is ours: fixed programs, our paths
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=None if env is None else dict(env),
            cwd=REPO,
            preexec_fn=_die_with_parent,
        )
    return proc, log


def _stop(proc: subprocess.Popen[bytes], how: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        proc.send_signal(how)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _tail(log: Path, lines: int = 30) -> str:
    text = log.read_text(errors="replace") if log.exists() else ""
    return "\n".join(text.splitlines()[-lines:])


def _wait(
    proc: subprocess.Popen[bytes], ready: Callable[[], bool], timeout: float = START_TIMEOUT
) -> bool:
    """Poll ``ready()`` until it is true (True), or the process exits / time runs out."""
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        if ready():
            return True
        time.sleep(0.05)
    return False


@contextmanager
def _service(name: str, start: Callable[[], Service | Path]) -> Iterator[Service]:
    """Try ``start()`` a few times: it returns a ready :class:`Service`, or the log of a
    server that did not start (and was stopped)."""
    log = None
    for _ in range(START_ATTEMPTS):
        service = start()
        if isinstance(service, Path):
            log = service
            continue
        try:
            yield service
        finally:
            _stop(service.proc)
        return
    tail = _tail(log) if log is not None else ""
    raise StackError(f"{name} did not start; the end of {log}:\n{tail}")


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


@contextmanager
def start_redis(workdir: Path) -> Iterator[Service]:
    """redis-server on 127.0.0.1, nothing kept on disk."""

    def start() -> Service | Path:
        port = free_port()
        argv = [BINARIES["redis-server"], "--bind", "127.0.0.1", "--port", str(port)]
        argv += ["--save", "", "--appendonly", "no", "--dir", str(workdir)]
        proc, log = _spawn("redis", argv, workdir)
        if _wait(proc, lambda: _answers_ping(port)):
            return Service("redis", proc, port, log)
        _stop(proc)
        return log

    with _service("redis-server", start) as service:
        yield service


def _answers_http(port: int, context: ssl.SSLContext | None) -> bool:
    if context is not None:
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(
            "127.0.0.1", port, context=context, timeout=2
        )
    else:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", "/open")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


@dataclass(frozen=True)
class Gunicorn:
    """One gunicorn to start: its name (and log name), environment and worker count;
    ``tls`` when it terminates TLS itself (the readiness probe then uses the CA)."""

    name: str
    env: Mapping[str, str]
    workers: int = 2
    tls: PKI | None = None


def _spawn_gunicorn(workdir: Path, spec: Gunicorn) -> tuple[Service, Callable[[], bool]]:
    port = free_port()
    ready_dir = workdir / f"{spec.name}-ready-{port}"
    ready_dir.mkdir()
    path = os.pathsep.join(p for p in (str(REPO), spec.env.get("PYTHONPATH", "")) if p)
    env = {**spec.env, "PYTHONPATH": path, "WEB_CONCURRENCY": str(spec.workers)}
    env |= {"DEPLOY_BIND": f"127.0.0.1:{port}", "DEPLOY_READY_DIR": str(ready_dir)}
    argv = [sys.executable, "-m", "gunicorn", "-c", str(GUNICORN_CONF), "deploy.app:create_app()"]
    proc, log = _spawn(spec.name, argv, workdir, env)
    context = spec.tls.client_context() if spec.tls is not None else None

    def ready() -> bool:
        booted = len(list(ready_dir.iterdir())) >= spec.workers
        return booted and _answers_http(port, context)

    return Service(spec.name, proc, port, log), ready


@contextmanager
def start_gunicorns(workdir: Path, specs: Sequence[Gunicorn]) -> Iterator[dict[str, Service]]:
    """Each gunicorn of ``specs`` with ``deploy/gunicorn.conf.py`` serving
    ``deploy.app:create_app()``, started side by side; ready when every worker has loaded
    the app and ``GET /open`` answers. Stopped with ``SIGQUIT`` (gunicorn's quick exit)."""
    started: dict[str, Service] = {}
    try:
        todo, log = list(specs), None
        for _ in range(START_ATTEMPTS):
            spawned = [(spec, *_spawn_gunicorn(workdir, spec)) for spec in todo]
            todo = []
            for spec, service, ready in spawned:
                if _wait(service.proc, ready):
                    started[spec.name] = service
                else:
                    _stop(service.proc)
                    todo.append(spec)
                    log = service.log
            if not todo:
                break
        if todo:
            tail = _tail(log) if log is not None else ""
            raise StackError(f"gunicorn {todo[0].name} did not start; the end of {log}:\n{tail}")
        yield started
    finally:
        for service in started.values():  # all at once: each takes a second to exit
            if service.proc.poll() is None:
                service.proc.send_signal(signal.SIGQUIT)
        for service in started.values():
            _stop(service.proc, signal.SIGQUIT)


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def render(template: Path, values: Mapping[str, str]) -> str:
    """``template`` with every ``{{name}}`` replaced; an unknown or missing name is an error."""
    text = template.read_text()
    for name, value in values.items():
        text = text.replace("{{" + name + "}}", value)
    if "{{" in text:
        left = text[text.index("{{") :].split("}}", 1)[0]
        raise StackError(f"{template.name}: no value for {left}}}}}")
    return text


@contextmanager
def start_nginx(workdir: Path, template: Path, values: Mapping[str, str]) -> Iterator[Service]:
    """nginx from ``template`` (rendered with ``values`` plus prefix, host and two ports),
    in the foreground, with its pid file and logs under ``workdir/nginx``."""
    prefix = workdir / "nginx"
    (prefix / "tmp").mkdir(parents=True, exist_ok=True)

    def start() -> Service | Path:
        port, extra = free_port(), free_port()
        conf = prefix / "nginx.conf"
        rendered = {"prefix": str(prefix), "host": "127.0.0.1", "port": str(port)}
        conf.write_text(render(template, {**values, **rendered, "port_escaped": str(extra)}))
        argv = [BINARIES["nginx"], "-p", str(prefix), "-c", str(conf)]
        argv += ["-g", f"daemon off; pid {prefix / 'nginx.pid'};"]
        proc, log = _spawn("nginx", argv, workdir)
        if _wait(proc, lambda: _listening(port) and _listening(extra)):
            return Service("nginx", proc, port, log, extra_port=extra)
        _stop(proc)
        return log

    with _service("nginx", start) as service:
        yield service
