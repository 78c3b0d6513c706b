"""Asynchronous answers: where a callback may go, and a worker that signs and delivers it.

G2P Connect answers an async request at once with an ACK and later POSTs the result to the
sender's ``header.sender_uri`` as ``{sender_uri}/on-{action}``. That URL comes from the
request, so it is a server-side request forgery vector: the mapper only calls URLs under a
prefix configured for that sender (:func:`callback_url`).

:class:`CallbackDispatcher` runs the work (the action itself, then the delivery) on one
background thread fed by a bounded queue; a full queue is refused at submit time, so the
caller hears about overload before anything is changed. The HTTP client is a
:class:`CallbackSender` (default :class:`RequestsSender`: ``requests`` with the mapper's
client certificate and CA), injectable so tests can count, fail or really deliver.
"""

from __future__ import annotations

import logging
import queue
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import requests

from wsgi_apisec.message import Body, Headers, Message
from wsgi_apisec.signatures import ResponseSigner

__all__ = [
    "CallbackDispatcher",
    "CallbackSender",
    "Delivery",
    "RequestsSender",
    "callback_url",
]

LOG = logging.getLogger("sample_apps.g2p_mapper")

#: A sender_uri must not smuggle anything a URL parser could resolve differently from the
#: plain prefix comparison: dot segments, backslashes, encoded dots or slashes, userinfo,
#: query, fragment, whitespace or controls.
_UNSAFE = re.compile(r"(?:^|/)\.{1,2}(?:/|$)|[\\@?#\s\x00-\x1f\x7f]|%2[eEfF]|%5[cC]")
_MAX_URI = 2048


def callback_url(
    sender_id: str, sender_uri: object, action: str, prefixes: Mapping[str, Sequence[str]]
) -> str | None:
    """``{sender_uri}/on-{action}`` when it lies under one of ``sender_id``'s configured
    prefixes (each an http(s) URL ending in ``/``, checked at start-up), else ``None``."""
    if not isinstance(sender_uri, str) or not sender_uri or len(sender_uri) > _MAX_URI:
        return None
    if _UNSAFE.search(sender_uri.split("://", 1)[-1]):
        return None
    url = f"{sender_uri.rstrip('/')}/on-{action}"
    allowed = prefixes.get(sender_id, ())
    return url if any(url.startswith(prefix) for prefix in allowed) else None


class CallbackSender(Protocol):
    """POSTs one signed callback; returns the HTTP status, raises ``OSError`` (or a
    ``requests`` error) when no answer came."""

    def send(self, url: str, body: bytes, headers: Mapping[str, str]) -> int: ...


class RequestsSender:
    """The default sender: ``requests`` over TLS, presenting the mapper's client certificate
    (``client_cert=(cert_path, key_path)``) and trusting ``ca_file`` (default: the system
    store). Redirects are never followed: they would lead past the prefix check."""

    def __init__(
        self,
        *,
        client_cert: tuple[str, str] | None = None,
        ca_file: str | None = None,
        timeout: float = 5.0,
    ) -> None:
        self.client_cert = client_cert
        self.verify: str | bool = ca_file if ca_file is not None else True
        self.timeout = timeout

    def send(self, url: str, body: bytes, headers: Mapping[str, str]) -> int:
        response = requests.post(
            url,
            data=body,
            headers=dict(headers),
            cert=self.client_cert,
            verify=self.verify,
            timeout=self.timeout,
            allow_redirects=False,
        )
        response.close()
        return response.status_code


@dataclass(frozen=True)
class Delivery:
    """One piece of async work: ``build()`` performs the action and returns the callback
    envelope's bytes; they are signed and POSTed to ``url``."""

    url: str
    build: Callable[[], bytes]
    label: str = ""


class CallbackDispatcher:
    """A bounded queue of :class:`Delivery` and one worker thread.

    Each delivery is tried ``1 + retries`` times, waiting ``backoff * 2**n`` seconds between
    tries, while the receiver cannot be reached or answers 429 / 5xx; any other status is
    final (a 4xx will not get better by resending the same bytes). ``delivered`` and
    ``failed`` count the outcomes; :meth:`close` stops the worker after the queue drains.
    """

    def __init__(
        self,
        sender: CallbackSender,
        signer: ResponseSigner,
        *,
        queue_size: int = 100,
        retries: int = 2,
        backoff: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.sender = sender
        self.signer = signer
        self.retries = retries
        self.backoff = backoff
        self.sleep = sleep
        self.delivered = 0
        self.failed = 0
        self._queue: queue.Queue[Delivery | None] = queue.Queue(maxsize=queue_size)
        self._idle = threading.Condition()
        self._pending = 0
        self._thread = threading.Thread(target=self._run, name="g2p-mapper-callbacks", daemon=True)
        self._thread.start()

    def submit(self, delivery: Delivery) -> bool:
        """Queue ``delivery``; ``False`` (and nothing queued) when the queue is full."""
        with self._idle:
            try:
                self._queue.put_nowait(delivery)
            except queue.Full:
                return False
            self._pending += 1
        return True

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Block until every submitted delivery has finished (for tests and shutdown)."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)

    def close(self, timeout: float = 10.0) -> None:
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            LOG.warning("callback queue still full at shutdown; pending callbacks are dropped")
            return
        self._thread.join(timeout)

    def _run(self) -> None:
        while (delivery := self._queue.get()) is not None:
            try:
                ok = self._deliver(delivery)
            except Exception:  # the worker must survive any one bad job
                LOG.exception("callback %s could not be built", delivery.label)
                ok = False
            with self._idle:
                self.delivered += ok
                self.failed += not ok
                self._pending -= 1
                self._idle.notify_all()

    def _deliver(self, delivery: Delivery) -> bool:
        body = delivery.build()
        headers = {"Content-Type": "application/json"}
        request = Message("POST", delivery.url, Headers(headers), Body(body))
        headers.update(self.signer.sign(request))
        for attempt in range(self.retries + 1):
            if attempt:
                self.sleep(self.backoff * 2 ** (attempt - 1))
            try:
                status = self.sender.send(delivery.url, body, headers)
            except (OSError, requests.RequestException) as exc:
                LOG.info("callback %s: attempt %d failed: %s", delivery.label, attempt + 1, exc)
                continue
            if 200 <= status < 300:
                return True
            LOG.info("callback %s: attempt %d answered %d", delivery.label, attempt + 1, status)
            if status != 429 and status < 500:
                return False
        return False
