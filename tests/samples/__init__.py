"""Tests of the sample services; :func:`serve` runs one on 127.0.0.1 for real clients."""

from __future__ import annotations

import ssl
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from sample_apps import demo_network

WSGIApp = Callable[[dict[str, Any], Any], Any]


@contextmanager
def serve(
    make_app: Callable[[str], WSGIApp], ssl_context: ssl.SSLContext | None = None
) -> Iterator[str]:
    """Serve ``make_app(base_url)`` on a free port; yields the base URL. The app is built
    after the port is known, so its issuer / URLs can name the real address (the demo's
    :func:`~sample_apps.demo_network.serve`, stopped when the block ends)."""
    with ExitStack() as stack:
        yield demo_network.serve(stack, make_app, ssl_context)
