"""The gateway side of the disk reserve: which requests it stops, metrics and the alert.

When free space is under the reserve (storage/headroom.py) every S3 request that
adds data or settings is refused with ``507 XMinioStorageFull`` after it is
authorized (an unauthorized caller learns nothing about the disk), while reads,
listings, deletes, aborts, STS and the admin API go on: deleting through the API
is how space comes back. The Prometheus gauges read the disk when scraped; a watcher
(every few seconds, and at every write request) raises an operator alert when the
state moves to ``low`` (under twice the reserve: before anything is refused) or ``full``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from prometheus_client import Counter, Gauge

from vallum import metrics
from vallum.operator import journal
from vallum.operator.live import ALERTS
from vallum.s3 import errors
from vallum.storage.headroom import FULL, LOW, OK, Headroom

log = logging.getLogger("vallum.disk")

FREE = Gauge("vallum_disk_free_bytes", "Bytes free on the data directory's filesystem",
             registry=metrics.REGISTRY)
RESERVE = Gauge("vallum_disk_reserve_bytes", "Bytes kept back for deletes and audit; "
                "writes are refused below this", registry=metrics.REGISTRY)
STATE = Gauge("vallum_disk_state", "Disk headroom: 0 ok, 1 low (under twice the reserve), "
              "2 full (writes refused)", registry=metrics.REGISTRY)
REFUSED = Counter("vallum_disk_writes_refused_total", "Requests refused with 507 because "
                  "of the disk reserve", registry=metrics.REGISTRY)
_LEVEL = {OK: 0, LOW: 1, FULL: 2}
WATCH_EVERY = 5.0

# Operations that never add data: allowed inside the reserve. Everything else is a write.
_READ_PREFIXES = ("Get", "Head", "List", "Delete")
_ALWAYS = frozenset({"AbortMultipartUpload", "SelectObjectContent", "OptionsObject", "CreateSession"})


def is_write(operation: str) -> bool:
    return not (operation.startswith(_READ_PREFIXES) or operation in _ALWAYS)


def storage_full(request_id: str = "", detail: object = None) -> errors.S3Error:
    """Count a refusal (and log one stopped mid-write: ``detail``); the error to answer."""
    REFUSED.inc()
    if detail is not None:
        log.warning("write stopped, disk reserve reached: request %s: %s", request_id, detail)
    return errors.XMinioStorageFull()


def admit(request: Any) -> None:
    """507 for a write when the bytes it declares would leave less than the reserve free."""
    headroom: Headroom | None = getattr(request.services, "headroom", None)
    if headroom is None or not is_write(request.endpoint.name):
        return
    free, reserve = headroom.sample()
    if _watcher is not None:
        _watcher.observe(free, reserve)
    asked = max(request.body.length or 0, 0)
    if free - asked <= reserve:          # a write must leave more than the reserve
        log.warning("write refused, disk reserve reached: request %s %s: %d bytes free, "
                    "%d asked, %d reserved", request.request_id, request.endpoint.name,
                    free, asked, reserve)
        raise storage_full()


def readiness(headroom: Headroom | None) -> bytes | None:
    """The readiness answer's body when the disk is full (None when it is not)."""
    if headroom is None:
        return None
    free, reserve = headroom.sample()
    if free > reserve:
        return None
    return (f"disk full: {free} bytes free, {reserve} reserved; writes refused (507), "
            "reads and deletes served\n").encode()


_watcher: Watcher | None = None      # this process's, once started


class Watcher:
    """Samples the disk for the gauges; alerts the operator on a move to low or full."""

    def __init__(self, headroom: Headroom, data_dir: Any) -> None:
        self.headroom = headroom
        self.data_dir = data_dir
        self.state = OK
        self._task: asyncio.Task[None] | None = None

    def sample(self) -> str:
        return self.observe(*self.headroom.sample())

    def observe(self, free: int, reserve: int) -> str:
        state = FULL if free <= reserve else LOW if free < 2 * reserve else OK
        if _LEVEL[state] > _LEVEL[self.state]:
            self._alert(state, free, reserve)
        elif state == OK and self.state != OK:
            log.warning("disk headroom restored: %d bytes free, %d reserved", free, reserve)
        self.state = state
        return state

    def _alert(self, state: str, free: int, reserve: int) -> None:
        kind = "disk_full" if state == FULL else "disk_low"
        reason = (f"data directory filesystem has {free} bytes free against a reserve of "
                  f"{reserve}: " + ("new writes are refused with 507; delete objects or add space"
                                   if state == FULL else "writes will be refused below the reserve"))
        log.warning("operator alert %s: %s", kind, reason)
        ALERTS.labels(kind).inc()
        record = {"ts": time.time(), "kind": kind, "entity": str(self.data_dir),
                  "entity_type": "disk", "score": 1.0, "reason": reason, "account": "",
                  "source": "", "features": {"free": free, "reserve": reserve}, "anomaly": 0.0}
        try:
            journal.append(journal.directory(self.data_dir) / journal.ALERTS, record)
        except OSError as exc:           # the disk may be too full even for this line
            log.error("could not journal the disk alert: %s", exc)

    def start(self) -> None:
        global _watcher
        _watcher = self
        FREE.set_function(lambda: self.headroom.sample()[0])
        RESERVE.set_function(lambda: self.headroom.sample()[1])
        STATE.set_function(lambda: _LEVEL[self.headroom.state()])
        self.sample()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(WATCH_EVERY)
            try:
                self.sample()
            except OSError as exc:
                log.error("disk headroom sample failed: %s", exc)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
