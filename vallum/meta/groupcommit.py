"""Group commit for SQLite: one writer thread commits everything queued meanwhile at once.

Why: every durable commit is an fsync (``synchronous=FULL``), far slower than the
statements it protects. Callers queue a function; the writer thread (vallum/batching.py)
takes all that queued while the previous commit was syncing, runs each in its own
savepoint (one failing rolls back alone and its caller gets the exception), and commits
the lot with one fsync. Each caller is answered only after that commit; if BEGIN or
COMMIT itself fails the batch is retried one by one, so one bad write cannot fail others.
Used by the metadata store (vallum/meta/sqlite.py) and the compute tables
(vallum/compute/db.py).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from vallum.batching import BatchThread, Outcome

T = TypeVar("T")
MAX_BATCH = 256

WriteFn = Callable[[sqlite3.Connection], Any]


class GroupCommitWriter:
    """Owns one write connection and the thread that commits on it."""

    def __init__(self, name: str, *, begin: str = "BEGIN IMMEDIATE",
                 closed_message: str = "database closed",
                 lock: threading.Lock | None = None, max_batch: int = MAX_BATCH) -> None:
        self.begin = begin
        # Held around each batch when other code also writes on the same connection.
        self._conn_lock = lock
        self._conn: sqlite3.Connection | None = None
        self._thread: BatchThread[WriteFn] = BatchThread(
            name, self._commit, max_batch=max_batch, closed_message=closed_message)
        # Counters (read by tests and metrics): transactions committed, writes applied.
        self.commits = 0
        self.ops = 0

    @property
    def running(self) -> bool:
        return self._thread.running

    def start(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._thread.start()

    def stop(self) -> None:
        """Commit what is queued, then end the thread (blocking; call from a thread)."""
        self._thread.stop()

    async def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` in a durable transaction shared with the writes queued meanwhile."""
        return await self._thread.submit(fn)

    # -- on the writer thread ------------------------------------------------------
    def _commit(self, batch: list[WriteFn]) -> list[Outcome]:
        conn = self._conn
        assert conn is not None
        try:
            return self._apply(conn, batch)
        except Exception as exc:            # BEGIN/COMMIT failed (rolled back): isolate the ops
            if len(batch) > 1:
                return [outcome for fn in batch for outcome in self._commit([fn])]
            return [(False, exc)]

    def _apply(self, conn: sqlite3.Connection, batch: list[WriteFn]) -> list[Outcome]:
        if self._conn_lock is None:
            return self._apply_locked(conn, batch)
        with self._conn_lock:
            return self._apply_locked(conn, batch)

    def _apply_locked(self, conn: sqlite3.Connection, batch: list[WriteFn]) -> list[Outcome]:
        outcomes: list[Outcome] = []
        try:
            conn.execute(self.begin)
            for fn in batch:
                conn.execute("SAVEPOINT op")
                try:
                    outcomes.append((True, fn(conn)))
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
