"""Group commit for SQLite: one writer thread commits everything queued meanwhile at once.

Why: every durable commit is an fsync (``synchronous=FULL``), far slower than the
statements it protects. Callers queue a function; the writer thread takes all that
queued while the previous commit was syncing, runs each in its own savepoint (one
failing rolls back alone and its caller gets the exception), and commits the lot
with one fsync. Each caller is answered only after that commit; if BEGIN or COMMIT
itself fails the batch is retried one by one, so one bad write cannot fail others.

The event loop hands its writes over once per loop iteration (not once per write),
so a burst of requests wakes the writer thread once. Used by the metadata store
(vallum/meta/sqlite.py) and the compute tables (vallum/compute/db.py).
"""

from __future__ import annotations

import asyncio
import queue
import sqlite3
import threading
from collections import defaultdict
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")
MAX_BATCH = 256

WriteFn = Callable[[sqlite3.Connection], Any]
_Waiter = tuple["asyncio.Future[Any]", bool, Any]


class _Op:
    """A queued write: ``fn`` runs on the writer thread inside the batch transaction."""

    __slots__ = ("fn", "loop", "future")

    def __init__(self, fn: WriteFn, loop: asyncio.AbstractEventLoop, future: asyncio.Future[Any]) -> None:
        self.fn, self.loop, self.future = fn, loop, future


class GroupCommitWriter:
    """Owns one write connection and the thread that commits on it."""

    def __init__(self, name: str, *, begin: str = "BEGIN IMMEDIATE",
                 closed_message: str = "database closed",
                 lock: threading.Lock | None = None, max_batch: int = MAX_BATCH) -> None:
        self.name = name
        self.max_batch = max_batch
        self.begin = begin
        # Held around each batch when other code also writes on the same connection.
        self._conn_lock = lock
        self.closed_message = closed_message
        self._queue: queue.SimpleQueue[list[_Op] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._conn: sqlite3.Connection | None = None
        self._pending: dict[asyncio.AbstractEventLoop, list[_Op]] = {}
        self._pending_lock = threading.Lock()
        # Counters (read by tests and metrics): transactions committed, writes applied.
        self.commits = 0
        self.ops = 0

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Commit what is queued, then end the thread (blocking; call from a thread)."""
        thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join()

    async def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` in a durable transaction shared with the writes queued meanwhile."""
        if self._thread is None:
            raise RuntimeError(self.closed_message)
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[T] = loop.create_future()
        with self._pending_lock:
            ops = self._pending.get(loop)
            if ops is None:                 # the first write of this loop iteration
                ops = self._pending[loop] = []
                loop.call_soon(self._hand_over, loop)
            ops.append(_Op(fn, loop, fut))
        return await fut

    def _hand_over(self, loop: asyncio.AbstractEventLoop) -> None:
        with self._pending_lock:
            ops = self._pending.pop(loop, None)
        if ops:
            self._queue.put(ops)

    # -- the writer thread ---------------------------------------------------------
    def _loop(self) -> None:
        stop = False
        while not stop:
            first = self._queue.get()
            if first is None:
                break
            batch = list(first)
            while len(batch) < self.max_batch:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                batch.extend(more)
            try:
                self._run_batch(batch)
            except BaseException as exc:    # never leave a caller waiting forever
                _resolve(batch, [(False, exc)] * len(batch))
        late: list[_Op] = []                # queued after the close: will never run
        while True:
            try:
                more = self._queue.get_nowait()
            except queue.Empty:
                break
            if more is not None:
                late.extend(more)
        _resolve(late, [(False, RuntimeError(self.closed_message))] * len(late))

    def _run_batch(self, batch: list[_Op]) -> None:
        conn = self._conn
        assert conn is not None
        try:
            outcomes = self._apply(conn, batch)
        except Exception as exc:            # BEGIN/COMMIT failed (rolled back): isolate the ops
            if len(batch) > 1:
                for op in batch:
                    self._run_batch([op])
                return
            outcomes = [(False, exc)]
        _resolve(batch, outcomes)

    def _apply(self, conn: sqlite3.Connection, batch: list[_Op]) -> list[tuple[bool, Any]]:
        if self._conn_lock is None:
            return self._apply_locked(conn, batch)
        with self._conn_lock:
            return self._apply_locked(conn, batch)

    def _apply_locked(self, conn: sqlite3.Connection, batch: list[_Op]) -> list[tuple[bool, Any]]:
        outcomes: list[tuple[bool, Any]] = []
        try:
            conn.execute(self.begin)
            for op in batch:
                conn.execute("SAVEPOINT op")
                try:
                    outcomes.append((True, op.fn(conn)))
                except Exception as exc:    # noqa: BLE001 - handed to that op's caller
                    conn.execute("ROLLBACK TO op")
                    outcomes.append((False, exc))
                conn.execute("RELEASE op")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:         # still under the lock: never another's transaction
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
            raise
        self.commits += 1
        self.ops += len(batch)
        return outcomes


def _settle(items: list[_Waiter]) -> None:
    for fut, ok, value in items:
        if fut.done():                      # the caller was cancelled; the write still happened
            continue
        if ok:
            fut.set_result(value)
        else:
            fut.set_exception(value)


def _resolve(batch: list[_Op], outcomes: list[tuple[bool, Any]]) -> None:
    """Wake the callers: one thread-safe callback per event loop, not per op."""
    by_loop: dict[asyncio.AbstractEventLoop, list[_Waiter]] = defaultdict(list)
    for op, (ok, value) in zip(batch, outcomes, strict=True):
        by_loop[op.loop].append((op.future, ok, value))
    for loop, items in by_loop.items():
        try:
            loop.call_soon_threadsafe(_settle, items)
        except RuntimeError:                # that event loop is closed: nobody is waiting
            pass
