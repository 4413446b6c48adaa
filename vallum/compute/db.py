"""The compute tables' connections: one serialized writer, one reader per thread.

Why not the metadata store's writer: that store's contract is objects and
buckets; compute owns its own schema and connections in the same file (WAL lets
both write with ``BEGIN IMMEDIATE`` + ``busy_timeout``, readers never block).

Why group commit (as vallum/meta/sqlite.py): every durable commit is an fsync, and a
busy pool records a task's end, claims the next, accepts submits and events all at
once. ``write`` queues its function; one writer thread takes everything queued
meanwhile, runs each in its own savepoint (one failing rolls back alone) and commits
the lot with one fsync. Each caller is answered only after that commit.
"""

from __future__ import annotations

import asyncio
import queue
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.schema import CreateIndex, CreateTable

from vallum.compute import schema

T = TypeVar("T")
_MAX_BATCH = 256
_DIALECT = sqlite_dialect.dialect()
DDL: list[str] = [str(CreateTable(t, if_not_exists=True).compile(dialect=_DIALECT))
                  for t in schema.metadata.sorted_tables]
DDL += [str(CreateIndex(i, if_not_exists=True).compile(dialect=_DIALECT))
        for t in schema.metadata.sorted_tables for i in sorted(t.indexes, key=lambda i: i.name)]


class ComputeDB:
    def __init__(self, path: Path, *, busy_timeout: float = 30.0) -> None:
        self.path = Path(path)
        self.busy_timeout = busy_timeout
        self._wlock = threading.Lock()
        self._writer: sqlite3.Connection | None = None
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._queue: queue.SimpleQueue[_Op | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self.commits = 0          # group-commit counters: transactions, queued writes applied
        self.ops = 0

    def _connect(self, readonly: bool) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None,
                               check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout={int(self.busy_timeout * 1000)}")
        conn.execute("PRAGMA synchronous=FULL")
        if readonly:
            conn.execute("PRAGMA query_only=1")
        self._conns.append(conn)
        return conn

    def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = self._connect(False)
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode.lower() != "wal":
            raise RuntimeError(f"{self.path}: cannot enable WAL (journal_mode={mode})")
        with self._wlock:
            conn.execute("BEGIN IMMEDIATE")
            try:
                for ddl in DDL:
                    conn.execute(ddl)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        self._writer = conn
        self._thread = threading.Thread(target=self._write_loop, name="vallum-compute-db",
                                        daemon=True)
        self._thread.start()

    def close(self) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join()
        with self._wlock:
            for conn in self._conns:
                conn.close()
            self._conns = []
            self._writer = None

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """One durable write transaction (commit = fsync), serialized in this process."""
        with self._wlock:
            conn = self._writer
            if conn is None:
                raise RuntimeError("compute database is closed")
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    def reader(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect(True)
        return conn

    def run_write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        with self.tx() as conn:
            return fn(conn)

    async def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` in a durable transaction shared with the writes queued meanwhile."""
        if self._thread is None:
            raise RuntimeError("compute database is closed")
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[T] = loop.create_future()
        self._queue.put(_Op(fn, loop, fut))
        return await fut

    def query(self, sql: str, params: Any = ()) -> list[sqlite3.Row]:
        conn = self.reader()
        conn.row_factory = sqlite3.Row
        return conn.execute(sql, params).fetchall()

    # -- the writer thread ---------------------------------------------------
    def _write_loop(self) -> None:
        stop = False
        while not stop:
            op = self._queue.get()
            if op is None:
                break
            batch = [op]
            while len(batch) < _MAX_BATCH:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                batch.append(nxt)
            self._run_batch(batch)
        late = []
        while True:
            try:
                op = self._queue.get_nowait()
            except queue.Empty:
                break
            if op is not None:
                late.append(op)
        _resolve(late, [(False, RuntimeError("compute database closed"))] * len(late))

    def _run_batch(self, batch: list[_Op]) -> None:
        try:
            with self.tx() as conn:
                outcomes: list[tuple[bool, Any]] = []
                for op in batch:
                    conn.execute("SAVEPOINT op")
                    try:
                        outcomes.append((True, op.fn(conn)))
                    except Exception as exc:  # noqa: BLE001 - handed to that op's caller
                        conn.execute("ROLLBACK TO op")
                        outcomes.append((False, exc))
                    conn.execute("RELEASE op")
            self.commits += 1
            self.ops += len(batch)
        except BaseException as exc:  # noqa: BLE001 - BEGIN/COMMIT failed: retry one by one
            if len(batch) > 1:
                for op in batch:
                    self._run_batch([op])
                return
            outcomes = [(False, exc)]
        _resolve(batch, outcomes)


class _Op:
    __slots__ = ("fn", "loop", "future")

    def __init__(self, fn: Callable[[sqlite3.Connection], Any], loop: asyncio.AbstractEventLoop,
                 future: asyncio.Future) -> None:
        self.fn, self.loop, self.future = fn, loop, future


def _resolve(batch: list[_Op], outcomes: list[tuple[bool, Any]]) -> None:
    """Answer the callers on their event loops (a cancelled caller's write still happened)."""
    for op, (ok, value) in zip(batch, outcomes, strict=True):
        def settle(fut=op.future, ok=ok, value=value) -> None:
            if fut.done():
                return
            if ok:
                fut.set_result(value)
            else:
                fut.set_exception(value)
        try:
            op.loop.call_soon_threadsafe(settle)
        except RuntimeError:          # that loop is closed: nobody is waiting
            pass
