"""One thread that commits, in batches, the items event loops hand it.

Why: a durable commit (an fsync) costs far more than the work it protects, so the
metadata writer (meta/groupcommit.py) and the audit log (security/audit/log.py) both
commit everything that queued while the previous commit was syncing. The event loop
hands its items over once per loop iteration, so a burst of requests wakes the thread
once; the thread drains the queue, calls ``commit`` on the batch and wakes every
waiter of the batch with one ``call_soon_threadsafe`` per loop. Each caller awaits
only its own item's outcome.

Inline when the disk is fast: with ``inline_below`` set, a batch is committed on the
event loop itself, in the loop iteration after the one that queued it, while commits
take less than that many seconds on average (they move to the thread at twice the bar
and return at the bar). Why: on a disk that syncs in ~0.1 ms the hand-over costs more
than the sync it hides (waking the thread, its share of the GIL, the thread-safe wake-up
of the loop): for the audit record of a small GET, about a fifth of the gateway's CPU per
request. On a slow disk the loop must not wait, so the thread takes over.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any, Generic, TypeVar

P = TypeVar("P")
Outcome = tuple[bool, Any]                    # (True, result) or (False, exception)
_Waiter = tuple["asyncio.Future[Any]", bool, Any]


class _Item(Generic[P]):
    __slots__ = ("payload", "loop", "future")

    def __init__(self, payload: P, loop: asyncio.AbstractEventLoop, future: asyncio.Future[Any]) -> None:
        self.payload, self.loop, self.future = payload, loop, future


class BatchThread(Generic[P]):
    """``commit(payloads) -> outcomes`` runs on the thread, one outcome per payload.

    If ``commit`` raises, every item of that batch gets the exception. Items queued
    after ``stop`` are answered ``closed_error(closed_message)``."""

    def __init__(self, name: str, commit: Callable[[list[P]], list[Outcome]], *,
                 max_batch: int | None = None, closed_message: str = "closed",
                 closed_error: type[Exception] = RuntimeError,
                 inline_below: float | None = None) -> None:
        self.name = name
        self.pace = CommitPace(inline_below) if inline_below else None
        self.max_batch = max_batch
        self.closed_message = closed_message
        self.closed_error = closed_error
        self._commit = commit
        self._queue: queue.SimpleQueue[list[_Item[P]] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._pending: dict[asyncio.AbstractEventLoop, list[_Item[P]]] = {}
        self._pending_lock = threading.Lock()
        self._commit_lock = threading.Lock()    # one batch at a time, inline or on the thread
        self.inline_batches = 0

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Commit what is queued, then end the thread (blocking; call from a thread)."""
        thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join()

    async def submit(self, payload: P) -> Any:
        """Queue ``payload``; returns its outcome once its batch is committed."""
        if self._thread is None:
            raise self.closed_error(self.closed_message)
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        with self._pending_lock:
            items = self._pending.get(loop)
            if items is None:               # the first item of this loop iteration
                items = self._pending[loop] = []
                loop.call_soon(self._hand_over, loop)
            items.append(_Item(payload, loop, fut))
        return await fut

    def _hand_over(self, loop: asyncio.AbstractEventLoop) -> None:
        with self._pending_lock:
            items = self._pending.pop(loop, None)
        if not items:
            return
        if self.pace is not None and self.pace.inline and self._thread is not None:
            outcomes = self._timed_commit(items)
            self.inline_batches += 1
            _settle([(item.future, ok, value) for item, (ok, value) in zip(items, outcomes, strict=True)])
        else:
            self._queue.put(items)

    def _timed_commit(self, batch: list[_Item[P]]) -> list[Outcome]:
        with self._commit_lock:
            started = time.perf_counter()
            try:
                outcomes = self._commit([item.payload for item in batch])
            except BaseException as exc:    # noqa: BLE001 - never leave a caller waiting
                outcomes = [(False, exc)] * len(batch)
            if self.pace is not None:
                self.pace.observe(time.perf_counter() - started)
        return outcomes

    # -- the thread ----------------------------------------------------------------
    def _run(self) -> None:
        stop = False
        while not stop:
            first = self._queue.get()
            if first is None:
                break
            batch = list(first)
            while self.max_batch is None or len(batch) < self.max_batch:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                batch.extend(more)
            _resolve(batch, self._timed_commit(batch))
        late: list[_Item[P]] = []
        while True:
            try:
                more = self._queue.get_nowait()
            except queue.Empty:
                break
            if more is not None:
                late.extend(more)
        _resolve(late, [(False, self.closed_error(self.closed_message))] * len(late))


class CommitPace:
    """Whether commits are fast enough to run on the event loop: a moving average of
    their duration against ``bar`` seconds, with hysteresis (leave at 2x, return at 1x)
    so a disk near the bar does not flap between the two paths."""

    WEIGHT = 0.1

    def __init__(self, bar: float) -> None:
        self.bar = bar
        self.average = 0.0
        self.inline = True

    def observe(self, seconds: float) -> None:
        self.average += (seconds - self.average) * self.WEIGHT
        if self.inline and self.average > 2 * self.bar:
            self.inline = False
        elif not self.inline and self.average <= self.bar:
            self.inline = True


def _settle(waiters: list[_Waiter]) -> None:
    for fut, ok, value in waiters:
        if fut.done():                      # the caller was cancelled; the commit still happened
            continue
        if ok:
            fut.set_result(value)
        else:
            fut.set_exception(value)


def _resolve(batch: list[_Item[Any]], outcomes: list[Outcome]) -> None:
    """Wake the callers: one thread-safe callback per event loop, not per item."""
    by_loop: dict[asyncio.AbstractEventLoop, list[_Waiter]] = defaultdict(list)
    for item, (ok, value) in zip(batch, outcomes, strict=True):
        by_loop[item.loop].append((item.future, ok, value))
    for loop, waiters in by_loop.items():
        try:
            loop.call_soon_threadsafe(_settle, waiters)
        except RuntimeError:                # that event loop is closed: nobody is waiting
            pass
