"""Where alerts go besides the journal: a webhook and syslog.

Why a background thread with a bounded queue for the webhook: the gateway calls
``submit`` on its request path, so it must never wait on a slow or dead receiver.
``submit`` only enqueues (dropping, and counting the drop, when the queue is full);
one daemon thread POSTs each alert as JSON with a few bounded, backed-off retries.
Syslog goes through ``logging.handlers.SysLogHandler`` (UDP or a local socket: a
datagram send that does not wait for the receiver).
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import queue
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any, Protocol
from urllib.parse import urlsplit

log = logging.getLogger("vallum.operator")

WEBHOOK_ENV = "VALLUM_OPERATOR_WEBHOOK"
SYSLOG_ENV = "VALLUM_OPERATOR_SYSLOG"


class Sink(Protocol):
    def submit(self, record: dict[str, Any]) -> bool: ...
    def close(self, timeout: float = 5.0) -> None: ...


class WebhookSink:
    """POST each record as a JSON body to ``url`` from a background thread."""

    def __init__(self, url: str, *, queue_size: int = 1000, retries: int = 3,
                 backoff: float = 0.5, timeout: float = 5.0) -> None:
        if urlsplit(url).scheme not in ("http", "https"):
            raise ValueError(f"webhook URL must be http(s): {url!r}")
        self.url = url
        self.retries, self.backoff, self.timeout = retries, backoff, timeout
        self.queue: queue.Queue[dict[str, Any] | None] = queue.Queue(maxsize=queue_size)
        self.sent = self.failed = self.dropped = 0
        self._thread = threading.Thread(target=self._run, name="operator-webhook", daemon=True)
        self._thread.start()

    def submit(self, record: dict[str, Any]) -> bool:
        """Enqueue without waiting; False (and counted) when the queue is full."""
        try:
            self.queue.put_nowait(record)
            return True
        except queue.Full:
            self.dropped += 1
            return False

    def _post(self, body: bytes) -> None:
        req = urllib.request.Request(self.url, data=body, method="POST",  # noqa: S310 - http(s) only
                                     headers={"content-type": "application/json",
                                              "user-agent": "vallum-operator"})
        with urllib.request.urlopen(req, timeout=self.timeout) as resp:   # noqa: S310 - http(s) only
            resp.read()

    def _run(self) -> None:
        while True:
            record = self.queue.get()
            if record is None:
                return
            body = json.dumps(record, sort_keys=True, default=str).encode()
            for attempt in range(self.retries + 1):
                try:
                    self._post(body)
                    self.sent += 1
                    break
                except (urllib.error.URLError, OSError, ValueError) as exc:
                    if attempt == self.retries:
                        self.failed += 1
                        log.warning("operator webhook gave up on an alert after %d attempts: %s",
                                    attempt + 1, exc)
                    else:
                        time.sleep(self.backoff * 2 ** attempt)

    def close(self, timeout: float = 5.0) -> None:
        """Deliver what is queued (up to ``timeout``), then stop the thread."""
        try:
            self.queue.put(None, timeout=timeout)
        except queue.Full:
            return
        self._thread.join(timeout)


class SyslogSink:
    """One JSON line per record to syslog (``udp://host:port`` or a unix socket path)."""

    def __init__(self, address: str, facility: int = logging.handlers.SysLogHandler.LOG_AUTH) -> None:
        self.handler = logging.handlers.SysLogHandler(address=parse_syslog_address(address),
                                                      facility=facility)
        self.handler.setFormatter(logging.Formatter("vallum-operator: %(message)s"))

    def submit(self, record: dict[str, Any]) -> bool:
        level = logging.WARNING
        rec = logging.LogRecord("vallum.operator", level, __file__, 0,
                                json.dumps(record, sort_keys=True, default=str), None, None)
        self.handler.emit(rec)      # SysLogHandler.emit reports its own errors, never raises
        return True

    def close(self, timeout: float = 5.0) -> None:
        self.handler.close()


def parse_syslog_address(address: str) -> tuple[str, int] | str:
    """'udp://127.0.0.1:514' or '127.0.0.1:514' -> (host, port); '/dev/log' -> the path."""
    if address.startswith("/"):
        return address
    rest = address.removeprefix("udp://")
    host, sep, port = rest.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"syslog address must be udp://HOST:PORT or a socket path: {address!r}")
    return host.strip("[]"), int(port)


def from_env(env: Mapping[str, str]) -> list[Sink]:
    """The sinks configured by VALLUM_OPERATOR_WEBHOOK and VALLUM_OPERATOR_SYSLOG."""
    sinks: list[Sink] = []
    if env.get(WEBHOOK_ENV):
        sinks.append(WebhookSink(env[WEBHOOK_ENV]))
    if env.get(SYSLOG_ENV):
        sinks.append(SyslogSink(env[SYSLOG_ENV]))
    return sinks
