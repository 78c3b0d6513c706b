"""Tests of the sample services; :func:`serve` runs one on 127.0.0.1 for real clients."""

from __future__ import annotations

import ssl
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from werkzeug.serving import make_server

WSGIApp = Callable[[dict[str, Any], Any], Any]


@contextmanager
def serve(
    make_app: Callable[[str], WSGIApp], ssl_context: ssl.SSLContext | None = None
) -> Iterator[str]:
    """Serve ``make_app(base_url)`` on a free port; yields the base URL. The app is built
    after the port is known, so its issuer / URLs can name the real address."""
    app: dict[str, WSGIApp] = {}
    server = make_server(
        "127.0.0.1",
        0,
        lambda environ, start_response: app["wsgi"](environ, start_response),
        threaded=True,
        ssl_context=ssl_context,
    )
    scheme = "https" if ssl_context is not None else "http"
    base_url = f"{scheme}://127.0.0.1:{server.server_port}"
    app["wsgi"] = make_app(base_url)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield base_url
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
