"""Issue 4: the same signed request sent to two worker processes is accepted exactly once.

Two separate worker processes (``tests/replay_worker_app.py``, werkzeug's threaded server on
127.0.0.1, each on its own port) serve the same app behind ``SignatureMiddleware``. For each
profile -- OCEN detached JWS, FAPI 2.0 (RFC 9421), G2P Connect -- one signed request is sent
:data:`SENDS` times at once, spread over both workers. With a shared store (SQLite file,
real redis-server) exactly one send is accepted and the app runs once; with per-process
``memory`` stores each worker accepts it once, which is why several workers need a shared one.

Why two processes on two ports rather than one gunicorn master with two workers on one port:
the kernel decides which gunicorn worker accepts a connection, so nothing guarantees both
workers see the request (the memory control could not be asserted reliably). Two ports put
half of the sends on each process, every time. Each worker binds port 0 and reports the port
it got, so parallel test runs (``pytest -n 2``) never race for a free port.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.replay_worker_app import G2P_SENDER, KIDS, OCEN_FIXED_KEY
from wsgi_apisec import profiles
from wsgi_apisec.fapi2 import FAPI2
from wsgi_apisec.keys import KeySet, PrivateKey
from wsgi_apisec.message import Body, Headers, Message
from wsgi_apisec.signatures import Profile, ResponseSigner

pytestmark = pytest.mark.server

REPO_ROOT = Path(__file__).resolve().parents[1]
SENDS = 10
#: The public name both workers sit behind (a load balancer's): RFC 9421 signs ``@target-uri``,
#: so the client signs this authority and every send carries it in ``Host``.
HOST = "api.example.test"
START_TIMEOUT = 30.0  # generous: only a worker that never starts waits this long
PROFILES = ("ocen", "fapi2", "g2p")
#: The error code of a refused replay, as each profile renders it.
REPLAY_CODES = {
    "ocen": "signature.replayed",
    "fapi2": "signature.replayed",
    "g2p": "rjct.message_id.duplicate",
}


@dataclass(frozen=True)
class Clients:
    keys: dict[str, PrivateKey]
    jwks: Path


@pytest.fixture(scope="module")
def clients(tmp_path_factory: pytest.TempPathFactory) -> Clients:
    """A fresh client key per profile; the workers get only the public halves, as a JWKS."""
    algs = {"ocen": "RS256", "fapi2": "ES256", "g2p": "EdDSA"}
    keys = {name: PrivateKey.generate(alg, kid=KIDS[name]) for name, alg in algs.items()}
    jwks = tmp_path_factory.mktemp("clients") / "clients.jwks.json"
    jwks.write_text(json.dumps(KeySet(k.public_key() for k in keys.values()).to_jwks()))
    return Clients(keys, jwks)


@dataclass(frozen=True)
class Workers:
    ports: tuple[int, int]
    runs: Path

    def runs_of(self, body: bytes) -> list[str]:
        """The pids of the app runs that handled ``body``."""
        digest = _sha256(body)
        lines = self.runs.read_text().splitlines() if self.runs.exists() else []
        return [pid for pid, seen in (line.split() for line in lines) if seen == digest]


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _wait_ready(proc: subprocess.Popen[bytes], port_file: Path, log: Path) -> int:
    """The worker's port, once it accepts connections; fails with the worker's log."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline and proc.poll() is None:
        if port_file.exists():
            port = int(port_file.read_text())
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1.0):
                    return port
            except OSError:
                pass
        time.sleep(0.02)
    pytest.fail(f"worker did not start (exit {proc.poll()}):\n{log.read_text()}", pytrace=False)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _launch(stack: ExitStack, argv: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT)
    stack.callback(_stop, proc)  # killed on teardown, whatever happens after this line
    return proc


@pytest.fixture(scope="module")
def fleet(
    clients: Clients, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Workers]]:
    """Two workers per store (``sqlite``, ``redis``, ``memory``), all six started at once so
    the module pays for one start-up; killed when the module ends."""
    root = tmp_path_factory.mktemp("workers")
    urls = {
        # replay_store_from_url: "sqlite:///" + an absolute path (which starts with "/").
        "sqlite": f"sqlite:///{root / 'replay.db'}",
        "redis": redis_url,
        "memory": "memory",
    }
    assert urls["sqlite"].startswith("sqlite:////")
    with ExitStack() as stack:
        pending = []
        for store, url in urls.items():
            for i in range(2):
                port_file, log = root / f"{store}{i}.port", root / f"{store}{i}.log"
                argv = [sys.executable, "-m", "tests.replay_worker_app", "--store", url]
                argv += ["--jwks", str(clients.jwks), "--runs", str(root / f"{store}.runs")]
                argv += ["--port-file", str(port_file)]
                pending.append((store, _launch(stack, argv, log), port_file, log))
        ports: dict[str, list[int]] = {store: [] for store in urls}
        for store, proc, port_file, log in pending:
            ports[store].append(_wait_ready(proc, port_file, log))
        yield {s: Workers((p[0], p[1]), root / f"{s}.runs") for s, p in ports.items()}


@pytest.fixture(params=["sqlite", "redis"])
def shared_workers(request: pytest.FixtureRequest, fleet: dict[str, Workers]) -> Workers:
    return fleet[str(request.param)]


@pytest.fixture
def memory_workers(fleet: dict[str, Workers]) -> Workers:
    return fleet["memory"]


# --- signed requests, one builder per profile ------------------------------------------------


@dataclass(frozen=True)
class Signed:
    path: str
    headers: list[tuple[str, str]]
    body: bytes


def _sign(
    profile: Profile, key: PrivateKey, path: str, body: bytes, *extra: tuple[str, str]
) -> Signed:
    headers = [("Content-Type", "application/json"), *extra]
    message = Message("POST", f"http://{HOST}{path}", Headers(headers), Body(body))
    return Signed(path, headers + ResponseSigner(profile, key).sign(message), body)


def ocen_request(key: PrivateKey) -> Signed:
    body = json.dumps({"loanApplicationId": str(uuid.uuid4()), "amount": "10.00"}).encode()
    return _sign(OCEN_FIXED_KEY, key, "/ocen/loan/apply", body)


def fapi2_request(key: PrivateKey) -> Signed:
    body = json.dumps({"paymentId": str(uuid.uuid4()), "amount": "10.00"}).encode()
    token = ("Authorization", f"Bearer {uuid.uuid4().hex}")
    return _sign(FAPI2, key, "/fapi2/payments", body, token)


def g2p_request(key: PrivateKey) -> Signed:
    header = {"message_id": str(uuid.uuid4()), "action": "link", "sender_id": G2P_SENDER}
    body = json.dumps({"signature": None, "header": header, "message": {}}).encode()
    options = {**profiles.G2P_CONNECT.options, "sender_id": G2P_SENDER}
    return _sign(profiles.G2P_CONNECT.replace(options=options), key, "/g2p/mapper/link", body)


BUILDERS: dict[str, Callable[[PrivateKey], Signed]] = {
    "ocen": ocen_request,
    "fapi2": fapi2_request,
    "g2p": g2p_request,
}


@dataclass(frozen=True)
class Reply:
    port: int
    status: int
    body: dict[str, Any]

    def code(self) -> str | None:
        if "errors" in self.body:  # the G2P Connect envelope
            return str(self.body["errors"][0]["code"])
        return self.body.get("code")


def _send(port: int, signed: Signed) -> Reply:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        # An explicit Host: both workers see the authority the client signed.
        conn.request("POST", signed.path, signed.body, dict([("Host", HOST), *signed.headers]))
        response = conn.getresponse()
        return Reply(port, response.status, json.loads(response.read()))
    finally:
        conn.close()


def send_at_once(workers: Workers, signed: Signed) -> list[Reply]:
    """The same request :data:`SENDS` times, half to each worker, all released together."""
    barrier = threading.Barrier(SENDS)
    replies: list[Reply | BaseException] = [RuntimeError("not sent")] * SENDS

    def one(i: int) -> None:
        try:
            barrier.wait(timeout=10)
            replies[i] = _send(workers.ports[i % 2], signed)
        except BaseException as exc:  # reported below, with the others
            replies[i] = exc

    threads = [threading.Thread(target=one, args=(i,)) for i in range(SENDS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    failed = [r for r in replies if isinstance(r, BaseException)]
    assert not failed, failed
    return [r for r in replies if isinstance(r, Reply)]


# --- the tests ---------------------------------------------------------------------------------


@pytest.mark.parametrize("profile", PROFILES)
def test_shared_store_accepts_the_request_exactly_once(
    shared_workers: Workers, clients: Clients, profile: str
) -> None:
    signed = BUILDERS[profile](clients.keys[profile])
    replies = send_at_once(shared_workers, signed)
    accepted = [r for r in replies if r.status == 200]
    refused = [r for r in replies if r.status != 200]
    assert len(accepted) == 1, replies
    assert accepted[0].body["sha256"] == _sha256(signed.body)
    assert [(r.status, r.code()) for r in refused] == [(401, REPLAY_CODES[profile])] * (SENDS - 1)
    # Both workers were asked, and each refused at least one replay.
    assert {r.port for r in refused} == set(shared_workers.ports)
    assert shared_workers.runs_of(signed.body) == [str(accepted[0].body["pid"])]


@pytest.mark.parametrize("profile", PROFILES)
def test_memory_stores_accept_the_request_once_per_worker(
    memory_workers: Workers, clients: Clients, profile: str
) -> None:
    """The control: without a shared store the replay gets through the other worker."""
    signed = BUILDERS[profile](clients.keys[profile])
    replies = send_at_once(memory_workers, signed)
    accepted = [r for r in replies if r.status == 200]
    refused = [r for r in replies if r.status != 200]
    assert sorted(r.port for r in accepted) == sorted(memory_workers.ports), replies
    assert [(r.status, r.code()) for r in refused] == [(401, REPLAY_CODES[profile])] * (SENDS - 2)
    pids = sorted(str(r.body["pid"]) for r in accepted)
    assert len(set(pids)) == 2
    assert sorted(memory_workers.runs_of(signed.body)) == pids
