"""Slow or greedy clients cannot exhaust the gateway: timeouts, connection caps, open files.

- Header timeout: a new connection has ``header_timeout`` seconds to complete its first
  request's line and headers, and each later request as many from its first byte, else
  the connection is closed (uvicorn times out idle keep-alive connections, not slow
  headers).
- Connection caps: at most ``max_connections`` open connections per gateway process,
  and ``max_connections_per_source`` per client address; one over is closed at once.
- Body timeout: a request body that stalls for ``body_timeout`` seconds fails the
  request with ``400 RequestTimeout`` (the upload is aborted, nothing is stored).
- Open files: the soft RLIMIT_NOFILE is raised to the hard limit at start; below what
  the connection cap needs, the cap is lowered (warning), and below MIN_OPEN_FILES
  `vallum serve` refuses to start.
"""

from __future__ import annotations

import asyncio
import logging
import resource
from collections import Counter
from typing import Any

from prometheus_client import Counter as PromCounter

from vallum import metrics
from vallum.s3 import errors
from vallum.server.config import Config, from_env
from vallum.server.protocol import ClientCertProtocol

log = logging.getLogger("vallum.limits")

# Files a gateway keeps open besides its connections: SQLite, audit, blobs being
# read or written, compute pipes. The documented minimum is one cap's worth more.
FILES_BESIDES_CONNECTIONS = 512
MIN_OPEN_FILES = 1024

DROPPED = PromCounter("vallum_connections_dropped_total", "Connections closed by the gateway's "
                      "limits, by reason", ["reason"], registry=metrics.REGISTRY)


def raise_open_files(cfg: Config) -> str | None:
    """Raise the soft open-files limit to the hard one; lower the connection cap to fit.
    Returns a warning to print, or raises ValueError when the limit is below MIN_OPEN_FILES."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    if soft < MIN_OPEN_FILES:
        raise ValueError(f"the open-files limit is {soft} (hard {hard}); Vallum needs at least "
                         f"{MIN_OPEN_FILES}: raise it (systemd LimitNOFILE=, ulimit -n)")
    needed = cfg.max_connections + FILES_BESIDES_CONNECTIONS
    if soft < needed:
        cfg.max_connections = soft - FILES_BESIDES_CONNECTIONS
        cfg.max_connections_per_source = min(cfg.max_connections_per_source, cfg.max_connections)
        return (f"open-files limit {soft} is below the {needed} that max_connections needs; "
                f"serving at most {cfg.max_connections} connections (raise LimitNOFILE=)")
    return None


class _Limits:
    """This process's limits (from the environment `vallum serve` exported) and counts."""

    def __init__(self, cfg: Config) -> None:
        self.header_timeout = cfg.header_timeout
        self.body_timeout = cfg.body_timeout
        self.total = cfg.max_connections
        self.per_source = cfg.max_connections_per_source
        self.open = 0
        self.by_source: Counter[str] = Counter()


_limits: _Limits | None = None


def current() -> _Limits:
    global _limits
    if _limits is None:
        _limits = _Limits(from_env())
    return _limits


class GuardedHttpProtocol(ClientCertProtocol):
    """The gateway's HTTP protocol with connection caps and a header timeout."""

    _source = ""
    _counted = False
    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: Any) -> None:  # type: ignore[override]
        super().connection_made(transport)
        limits = current()
        peer = transport.get_extra_info("peername")
        self._source = peer[0] if isinstance(peer, tuple) and peer else ""
        reason = ("total" if limits.open >= limits.total else
                  "per_source" if limits.by_source[self._source] >= limits.per_source else None)
        if reason is not None:
            DROPPED.labels(reason).inc()
            transport.abort()
            return
        self._counted = True
        limits.open += 1
        limits.by_source[self._source] += 1
        self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_timer()
        if self._counted:
            self._counted = False
            limits = current()
            limits.open -= 1
            limits.by_source[self._source] -= 1
            if limits.by_source[self._source] <= 0:
                del limits.by_source[self._source]
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        # The next request's first byte: its headers get the same deadline. (The wait for
        # that byte is uvicorn's keep-alive timeout; a new connection's, the timer above.)
        if self._header_timer is None:
            self._arm_header_timer()
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._disarm_header_timer()
        super().on_headers_complete()

    def _arm_header_timer(self) -> None:
        self._disarm_header_timer()
        self._header_timer = self.loop.call_later(current().header_timeout, self._header_timed_out)

    def _disarm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_timed_out(self) -> None:
        self._header_timer = None
        if self.cycle is not None and not self.cycle.response_complete:
            return                       # a request is being answered: not a header wait
        DROPPED.labels("header_timeout").inc()
        self.transport.close()


def timed_receive(receive: Any, timeout: float) -> Any:
    """``receive`` with a deadline on each part of the request body: a stall raises
    RequestTimeout. After the body's last part, later calls (a disconnect wait) pass on."""
    done = False

    async def receive_with_deadline() -> Any:
        nonlocal done
        if done:
            return await receive()
        try:
            message = await asyncio.wait_for(receive(), timeout)
        except TimeoutError:
            DROPPED.labels("body_timeout").inc()
            raise errors.RequestTimeout() from None
        if message.get("type") != "http.request" or not message.get("more_body", False):
            done = True
        return message

    return receive_with_deadline
