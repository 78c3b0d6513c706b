"""A JWKS endpoint on 127.0.0.1 whose behaviour each test sets: good, down, slow, dripping,
malformed, oversized, redirecting. It counts every request it gets."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

#: How long a "slow" answer waits unless the test ends first.
HANG = 30.0


@dataclass(frozen=True)
class Answer:
    status: int = 200
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = (("Content-Type", "application/json"),)
    #: Seconds to wait before answering at all.
    delay: float = 0.0
    #: Send the headers, then one body byte every ``drip`` seconds, forever.
    drip: float = 0.0
    #: Send the status line, then one header byte every ``drip_headers`` seconds, forever.
    drip_headers: float = 0.0
    #: Close the connection without an answer.
    hang_up: bool = False


@dataclass
class KeyServer:
    url: str
    answer: Answer = field(default_factory=Answer)
    #: Answers for particular paths; every other path gets ``answer``.
    routes: dict[str, Answer] = field(default_factory=dict)
    paths: list[str] = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def hits(self) -> int:
        with self._lock:
            return len(self.paths)

    def record(self, path: str) -> Answer:
        with self._lock:
            self.paths.append(path)
            return self.routes.get(path, self.answer)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.do_GET()

    def do_GET(self) -> None:
        answer = self.server.keys.record(self.path)
        done = self.server.keys.done
        if answer.delay and done.wait(answer.delay):
            return
        if answer.hang_up:
            self.close_connection = True
            return
        if answer.drip_headers:
            self.wfile.write(b"HTTP/1.0 200 OK\r\nX-Pad: ")
            self._drip(answer.drip_headers)
            return
        self.send_response(answer.status)
        for name, value in answer.headers:
            self.send_header(name, value)
        if answer.drip:
            self.send_header("Content-Length", "100000")
            self.end_headers()
            self._drip(answer.drip)
            return
        self.send_header("Content-Length", str(len(answer.body)))
        self.end_headers()
        self.wfile.write(answer.body)

    def _drip(self, interval: float) -> None:
        """One byte per ``interval`` until the test ends (or :data:`HANG` passes, so that a
        client without a deadline fails its test rather than hanging it)."""
        end = time.monotonic() + HANG
        while not self.server.keys.done.wait(interval) and time.monotonic() < end:
            self.wfile.write(b"a")
            self.wfile.flush()

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    keys: KeyServer


@contextmanager
def key_server(body: bytes) -> Iterator[KeyServer]:
    """Serve ``body`` (a good JWKS) at every path until a test says otherwise."""
    server = _Server(("127.0.0.1", 0), _Handler)
    keys = KeyServer(f"http://127.0.0.1:{server.server_port}/jwks", Answer(body=body))
    server.keys = keys
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield keys
    finally:
        keys.done.set()  # releases slow and dripping answers
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
