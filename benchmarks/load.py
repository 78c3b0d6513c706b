"""Load test of the deployment in ``deploy/``: many concurrent TLS clients against nginx +
gunicorn, and against gunicorn terminating TLS itself, for a bounded time per mode.

Run: ``python -m benchmarks.load`` (``--seconds 10`` per mode, ``--processes 2 --threads 8``
clients, ``--modes nginx direct``, ``--workers 2``). It starts the stack (``deploy.stack``:
redis-server, gunicorn, nginx), then per mode spends a quarter of the time on:

- **mixed**: FAPI 2.0 signed ``POST /signed`` with certificate-bound tokens: valid requests
  (bodies of 256 B to 64 KiB, 2 % of 1 MiB), invalid ones (body changed after signing; token
  bound to another certificate) and replays of accepted ones, sent on a second connection
  (behind nginx every request may reach either worker);
- and the rest on **throughput**: ``GET /open`` (unprotected), ``GET /token`` (flask-apisec,
  cert-bound token, default token cache) and ``GET /authlib`` (Authlib ``ResourceProtector``,
  RFC 9068 validator), in rounds of 0.25 s slices (shuffled), same clients, one kept-alive
  connection per client thread and route, and the same request on every route (``/open``
  gets the token too, and ignores it). *x /open* is the median over rounds of
  a route's rate divided by ``/open``'s in the same round. *Server CPU µs/req* is the user +
  system time of every server process (nginx, gunicorn, redis-server, from ``/proc``) per
  request, and *capacity x /open* its inverse relative to ``/open``: what a server fleet
  would see with its clients elsewhere, and much less disturbed by other load on the host.

Exit status 1 unless: no 5xx, no accepted replay or invalid request, every valid request
accepted with its body echoed intact (SHA-256), no connection error. Clients run in separate
processes (keep-alive ``http.client`` connections, one per thread and purpose); on a small
machine they compete with the servers for the CPU, so read the ratios, not the absolutes.
"""

from __future__ import annotations

import argparse
import hashlib
import multiprocessing
import os
import platform
import random
import ssl
import statistics
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from deploy.client import Client, Reply, sign_request
from deploy.stack import Stack, missing_binaries, running
from wsgi_apisec.keys import PrivateKey

ROUTES = {"open": "GET /open (unprotected)", "token": "GET /token (flask-apisec, bound)"}
ROUTES["authlib"] = "GET /authlib (Authlib ResourceProtector)"
MODES = {
    "nginx": "nginx (TLS, client certificates) -> gunicorn (sync workers)",
    "direct": "gunicorn terminating TLS (gthread workers)",
}
TARGET_RATIO = 0.9
MIXED_SHARE = 0.25
SLICE = 0.25
SIZES = (256, 4096, 16384, 65536)
POOL = os.urandom(1024 * 1024 + 65536)


@dataclass(frozen=True)
class Plan:
    """What a client process needs (picklable: paths, strings, a JWK)."""

    ports: dict[str, int]
    ca: str
    alice: tuple[str, str]
    token: str
    foreign_token: str  # bound to bob's certificate, sent over alice's connection
    signing_jwk: dict[str, Any]


@dataclass
class Tally:
    """What one job saw: requests by outcome, latencies (s), failures worth an exit 1."""

    counts: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    failures: Counter[str] = field(default_factory=Counter)

    def add(self, other: Tally) -> None:
        self.counts.update(other.counts)
        self.latencies += other.latencies
        self.failures.update(other.failures)


def _context(plan: Plan) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=plan.ca)
    context.load_cert_chain(*plan.alice)
    return context


class MixedClient:
    """One thread of the mixed workload: valid, invalid and replayed signed requests."""

    def __init__(self, plan: Plan, port: int, seed: int, tally: Tally) -> None:
        self.plan, self.rng, self.tally = plan, random.Random(seed), tally
        self.key = PrivateKey.from_jwk(plan.signing_jwk)
        self.main, self.other = Client(port, _context(plan)), Client(port, _context(plan))
        self.accepted: list[tuple[bytes, list[tuple[str, str]], int]] = []

    def _body(self) -> bytes:
        size = 1024 * 1024 if self.rng.random() < 0.02 else self.rng.choice(SIZES)
        start = self.rng.randrange(len(POOL) - size)
        return POOL[start : start + size]

    def _send(self, client: Client, body: bytes, headers: list[tuple[str, str]]) -> Reply:
        started = time.perf_counter()
        reply = client.request("POST", "/signed", body, headers)
        self.tally.latencies.append(time.perf_counter() - started)
        if reply.status >= 500:
            self.tally.failures["5xx"] += 1
        return reply

    def step(self) -> None:
        kind = self.rng.choices(("valid", "invalid", "replay"), (70, 15, 15))[0]
        if kind == "replay" and not self.accepted:
            kind = "valid"
        if kind == "replay":
            body, headers, pid = self.accepted.pop(self.rng.randrange(len(self.accepted)))
            reply = self._send(self.other, body, headers)
            self.tally.counts[f"replay {reply.status} {reply.code}"] += 1
            self.tally.counts["replay on another worker"] += reply.pid not in (0, pid)
            if reply.status < 400:
                self.tally.failures["accepted replay"] += 1
            return
        body = self._body()
        foreign = kind == "invalid" and self.rng.random() < 0.5
        token = self.plan.foreign_token if foreign else self.plan.token
        auth = [("Authorization", f"Bearer {token}")]
        headers = sign_request(self.key, "POST", self.main.url("/signed"), body, auth)
        sent = body[:-1] + bytes([body[-1] ^ 1]) if kind == "invalid" and not foreign else body
        reply = self._send(self.main, sent, headers)
        self.tally.counts[f"{kind} {reply.status} {reply.code or ''}".strip()] += 1
        if kind == "invalid":
            if reply.status < 400:
                self.tally.failures["accepted invalid"] += 1
        elif reply.status != 200:
            self.tally.failures["valid refused"] += 1
        elif reply.json()["sha256"] != hashlib.sha256(body).hexdigest():
            self.tally.failures["body altered"] += 1
        else:
            self.accepted.append((body, headers, reply.pid))
            del self.accepted[:-50]


#: This process's route connections, one per (thread, port, route), kept across slices.
_CONNECTIONS: dict[tuple[int, int, str], Client] = {}


def _route_loop(plan: Plan, port: int, route: str, index: int, until: float, tally: Tally) -> None:
    key = (index, port, route)
    if key not in _CONNECTIONS:
        _CONNECTIONS[key] = Client(port, _context(plan))
    client = _CONNECTIONS[key]
    # The same request to every route: /open gets the token too (it ignores it), so a ratio
    # is the cost of checking the token, not of carrying a 1 KiB header over TLS.
    headers = [("Authorization", f"Bearer {plan.token}")]
    while time.monotonic() < until:
        started = time.perf_counter()
        reply = client.request("GET", f"/{route}", headers=headers)
        tally.latencies.append(time.perf_counter() - started)
        if reply.status != 200:
            tally.failures["5xx" if reply.status >= 500 else f"{route} {reply.status}"] += 1


def _mixed_loop(plan: Plan, port: int, seed: int, until: float, tally: Tally) -> None:
    client = MixedClient(plan, port, seed, tally)
    with client.main, client.other:
        while time.monotonic() < until:
            client.step()


def _guard(loop: Any, tally: Tally, *args: Any) -> None:
    try:
        loop(*args, tally)
    except Exception as exc:  # a reset, a timeout: a lost request
        tally.failures[f"{loop.__name__.strip('_')}: {type(exc).__name__}"] += 1


def run_job(plan: Plan, mode: str, job: str, seconds: float, threads: int, seed: int) -> Tally:
    """One client process's part of a job: ``threads`` threads for ``seconds``."""
    until = time.monotonic() + seconds
    port = plan.ports[mode]
    tallies = [Tally() for _ in range(threads)]
    workers = []
    for i, tally in enumerate(tallies):
        if job == "mixed":
            args: tuple[Any, ...] = (_mixed_loop, tally, plan, port, seed * 100 + i, until)
        else:
            args = (_route_loop, tally, plan, port, job, i, until)
        workers.append(threading.Thread(target=_guard, args=args))
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    total = Tally()
    for tally in tallies:
        total.add(tally)
    return total


def _plan(stack: Stack) -> Plan:
    alice = stack.pki.clients["alice"]
    ports = {"nginx": stack.nginx_port, "direct": stack.direct_port}
    return Plan(
        ports=ports,
        ca=str(stack.pki.ca_cert_path),
        alice=(str(alice.cert_path), str(alice.key_path)),
        token=stack.token("alice"),
        foreign_token=stack.token("bob"),
        signing_jwk=stack.signing_key.to_jwk(private=True),
    )


@dataclass
class Result:
    tally: Tally
    seconds: float
    #: Requests per second in each round (throughput routes).
    rounds: list[float] = field(default_factory=list)
    #: Server CPU seconds spent on this workload.
    cpu: float = 0.0

    def add_round(self, tally: Tally, seconds: float, cpu: float) -> None:
        self.tally.add(tally)
        self.seconds += seconds
        self.cpu += cpu
        self.rounds.append(len(tally.latencies) / seconds)

    @property
    def cpu_per_request(self) -> float:
        """Server CPU µs per request."""
        return self.cpu / len(self.tally.latencies) * 1e6 if self.tally.latencies else 0.0

    @property
    def rate(self) -> float:
        return len(self.tally.latencies) / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        data = sorted(self.tally.latencies) or [0.0]
        return data[min(len(data) - 1, int(q * len(data)))] * 1000

    def ratio(self, base: Result) -> float:
        """Median over rounds of this route's rate / the base route's rate."""
        pairs = [
            ours / theirs for ours, theirs in zip(self.rounds, base.rounds, strict=True) if theirs
        ]
        return statistics.median(pairs) if pairs else 0.0


def _serve(conn: Any, plan: Plan, index: int) -> None:
    """A client process: runs each job it is sent, answers with its tally."""
    while (job := conn.recv()) is not None:
        mode, name, seconds, threads = job
        conn.send(run_job(plan, mode, name, seconds, threads, index))
    for client in _CONNECTIONS.values():
        client.close()


class Clients:
    """Client processes that run every job at the same time."""

    def __init__(self, plan: Plan, processes: int, threads: int) -> None:
        context = multiprocessing.get_context("spawn")
        self.threads, self.conns, self.procs = threads, [], []
        for index in range(processes):
            ours, theirs = context.Pipe()
            proc = context.Process(target=_serve, args=(theirs, plan, index), daemon=True)
            proc.start()
            self.conns.append(ours)
            self.procs.append(proc)

    def run(self, mode: str, job: str, seconds: float) -> Tally:
        for conn in self.conns:
            conn.send((mode, job, seconds, self.threads))
        total = Tally()
        for conn in self.conns:
            total.add(conn.recv())
        return total

    def close(self) -> None:
        for conn in self.conns:
            conn.send(None)
        for proc in self.procs:
            proc.join(timeout=10)


def measure_mode(clients: Clients, stack: Stack, mode: str, seconds: float) -> dict[str, Result]:
    """A quarter of ``seconds`` for the mixed workload; the rest for the routes, in rounds
    of short slices in a shuffled order, so each round compares the routes under the
    same background load."""
    mixed = seconds * MIXED_SHARE
    before = stack.cpu_seconds()
    results = {"mixed": Result(clients.run(mode, "mixed", mixed), mixed)}
    results["mixed"].cpu = stack.cpu_seconds() - before
    for route in ROUTES:
        results[route] = Result(Tally(), 0.0)
    rounds = max(1, round((seconds - mixed) / len(ROUTES) / SLICE))
    order = random.Random(9440)
    for _ in range(rounds):
        routes = list(ROUTES)
        order.shuffle(routes)
        for route in routes:
            before = stack.cpu_seconds()
            tally = clients.run(mode, route, SLICE)
            results[route].add_round(tally, SLICE, stack.cpu_seconds() - before)
    return results


def _mixed_notes(tally: Tally) -> str:
    counts = tally.counts
    valid = sum(n for k, n in counts.items() if k.startswith("valid"))
    invalid = sum(n for k, n in counts.items() if k.startswith("invalid"))
    replays = sum(n for k, n in counts.items() if k.startswith("replay ") and "worker" not in k)
    return (
        f"valid {valid}, invalid {invalid} refused, replays {replays} refused "
        f"({counts['replay on another worker']} on another worker)"
    )


def _capacity(result: Result, base: Result) -> float:
    """Requests the servers can answer per CPU second, relative to ``/open``."""
    return base.cpu_per_request / result.cpu_per_request if result.cpu_per_request else 0.0


def report(mode: str, results: dict[str, Result]) -> str:
    lines = [
        f"### {MODES[mode]}",
        "",
        "| workload | requests | req/s | p50 ms | p99 ms | x /open | server CPU µs/req "
        "| capacity x /open | notes |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    base = results["open"]
    names = {"mixed": "POST /signed mixed (FAPI 2.0 + bound token)", **ROUTES}
    for key, result in results.items():
        shown = f"{result.ratio(base):.2f}" if key in ROUTES else "-"
        capacity = f"{_capacity(result, base):.2f}" if key in ROUTES else "-"
        notes = _mixed_notes(result.tally) if key == "mixed" else ""
        lines.append(
            f"| {names[key]} | {len(result.tally.latencies)} | {result.rate:.0f} "
            f"| {result.percentile(0.5):.1f} | {result.percentile(0.99):.1f} | {shown} "
            f"| {result.cpu_per_request:.0f} | {capacity} | {notes} |"
        )
    lines.append("")
    for label, pick in (("throughput", Result.ratio), ("server capacity", _capacity)):
        ours, authlib = (pick(results[k], base) for k in ("token", "authlib"))
        verdict = "met" if ours >= TARGET_RATIO else "NOT met"
        lines.append(
            f"{label}: flask-apisec / unprotected = {ours:.2f} (target >= {TARGET_RATIO}): "
            f"{verdict}; Authlib / unprotected = {authlib:.2f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="per mode")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--modes", nargs="+", choices=list(MODES), default=list(MODES))
    args = parser.parse_args(argv)
    if missing_binaries():
        sys.exit(f"not installed: {', '.join(missing_binaries())}")
    print(
        f"python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs; "
        f"{args.processes} client processes x {args.threads} threads; {args.workers} gunicorn "
        f"workers; {args.seconds:g} s per mode\n"
    )
    failures: Counter[str] = Counter()
    with running(direct="direct" in args.modes, workers=args.workers) as stack:
        clients = Clients(_plan(stack), args.processes, args.threads)
        try:
            for mode in args.modes:
                results = measure_mode(clients, stack, mode, args.seconds)
                print(report(mode, results), end="\n\n", flush=True)
                for result in results.values():
                    failures.update(result.tally.failures)
        finally:
            clients.close()
    if failures:
        print("FAILED:", ", ".join(f"{k}: {n}" for k, n in sorted(failures.items())))
        return 1
    print("no 5xx, no accepted replay or invalid request, every body echoed intact")
    return 0


if __name__ == "__main__":
    sys.exit(main())
