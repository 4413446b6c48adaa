"""Requests and transfer per caller's account and bucket, counted in memory, flushed in batches.

Why in memory: a counter per request must not cost a disk write. Each gateway process adds
what it counted to the metadata store's ``request_usage`` rows of the current UTC day (one
transaction) every FLUSH_EVERY seconds, before it answers GetUsage, and at shutdown; a
process killed hard loses at most its last FLUSH_EVERY seconds of counts.

What counts: every authenticated request of any API (S3, admin, STS, compute) by the
caller's account ("" for anonymous callers), under the bucket it names ("" for none), in
one class (read, write, list, other); ``bytes_in`` is the request body the gateway read,
``bytes_out`` the response body bytes handed to the connection (a HEAD sends none; a
ranged GET sends its range). ``cpu_ms``: the CPU time of the account's compute tasks, as
their cgroups counted it (compute/scheduler.py adds it when a task ends; bucket "").
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from vallum.meta.base import MetaStore
from vallum.meta.usage_sql import COUNTERS

log = logging.getLogger("vallum.usage")
FLUSH_EVERY = 10.0
CLASSES = ("reads", "writes", "lists", "others")
_WRITE_PREFIXES = ("Put", "Delete", "Create", "Upload", "Complete", "Abort", "Copy", "Restore",
                   "Post", "Write")
_class_of: dict[str, int] = {}


def request_class(operation: str) -> int:
    """0 read, 1 write, 2 list, 3 other (an S3 operation name; the admin, STS and compute
    APIs' requests are 'other')."""
    found = _class_of.get(operation)
    if found is None:
        if operation.startswith("List"):
            found = 2
        elif operation.startswith(("Get", "Head", "Select")):
            found = 0
        elif operation.startswith(_WRITE_PREFIXES):
            found = 1
        else:
            found = 3
        _class_of[operation] = found
    return found


class Sent:
    """The ASGI ``send`` that counts the response body bytes passed through it."""

    __slots__ = ("bytes", "send")

    def __init__(self, send: Any) -> None:
        self.send = send
        self.bytes = 0

    async def __call__(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body":
            self.bytes += len(message.get("body", b""))
        await self.send(message)


class Meter:
    """This process's counts since its last flush: (day, account, bucket) -> COUNTERS."""

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str, str], list[int]] = {}
        self.meta: MetaStore | None = None
        self._day = ""
        self._day_ends = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._flushing: asyncio.Future[None] | None = None
        self._lock = asyncio.Lock()

    def day(self, now: float) -> str:
        if now >= self._day_ends:
            self._day = time.strftime("%Y-%m-%d", time.gmtime(now))
            self._day_ends = (now // 86400 + 1) * 86400
        return self._day

    def add(self, account: str, bucket: str, cls: int, bytes_in: int, bytes_out: int,
            now: float | None = None) -> None:
        key = (self.day(time.time() if now is None else now), account, bucket)
        row = self.counts.get(key)
        if row is None:
            row = self.counts[key] = [0] * len(COUNTERS)
        row[cls] += 1
        row[4] += bytes_in
        row[5] += bytes_out

    def add_cpu(self, account: str, seconds: float) -> None:
        key = (self.day(time.time()), account, "")
        row = self.counts.get(key)
        if row is None:
            row = self.counts[key] = [0] * len(COUNTERS)
        row[6] += round(seconds * 1000)
        self._schedule()

    def observe(self, meta: MetaStore | None, request: Any, operation: str, bytes_out: int) -> None:
        """Count one answered request (the gateway's frame calls this for every one)."""
        if request is None or request.api == "reserved" or meta is None:
            return
        caller = request.caller
        account = "" if caller is None or caller.anonymous else caller.account
        body = request.body
        bytes_in = (body.length or 0) if body.done else 0
        cls = request_class(operation) if request.api == "s3" else 3
        self.add(account, request.endpoint.bucket or "", cls, bytes_in, bytes_out)
        self.meta = meta
        self._schedule()

    def _schedule(self) -> None:
        """A flush FLUSH_EVERY seconds after the first count since the last one."""
        if self._timer is None and self.meta is not None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return
            self._timer = loop.call_later(FLUSH_EVERY, self._flush_later)

    def _flush_later(self) -> None:
        self._timer = None
        if self.meta is not None:       # (the task is kept: the loop holds only a weak one)
            self._flushing = asyncio.ensure_future(self.flush(self.meta))

    async def flush(self, meta: MetaStore) -> None:
        """Add the counts to the store in one transaction; kept for the next flush when the
        store refuses them."""
        async with self._lock:
            counts, self.counts = self.counts, {}
            if not counts:
                return
            rows = [{"day": d, "account": a, "bucket": b, **dict(zip(COUNTERS, c, strict=True))}
                    for (d, a, b), c in counts.items()]
            try:
                await meta.add_request_usage(rows)
            except Exception:  # noqa: BLE001 - counts are kept, the request path is not broken
                log.exception("usage: could not flush %d rows; kept for the next flush", len(rows))
                for key, c in counts.items():
                    have = self.counts.setdefault(key, [0] * len(COUNTERS))
                    for i, n in enumerate(c):
                        have[i] += n

    async def close(self, meta: MetaStore) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        await self.flush(meta)


METER = Meter()
