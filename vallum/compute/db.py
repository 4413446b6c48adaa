"""The compute tables' connections: one serialized writer, one reader per thread.

Why not the metadata store's writer: that store's contract is objects and
buckets; compute owns its own schema and connections in the same file (WAL lets
both write with ``BEGIN IMMEDIATE`` + ``busy_timeout``, readers never block).

Why group commit (vallum/meta/groupcommit.py, shared with the metadata store): every
durable commit is an fsync, and a busy pool records a task's end, claims the next,
accepts submits and events all at once; ``write`` shares one commit with the writes
queued meanwhile. ``tx``/``run_write`` (synchronous callers) take the same lock as the
group-commit batches, so the two never interleave on the write connection.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol, TypeVar

from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.schema import CreateIndex, CreateTable

from vallum.compute import schema
from vallum.meta.groupcommit import GroupCommitWriter
from vallum.sqlite_open import create_schema, opening

T = TypeVar("T")
_DIALECT = sqlite_dialect.dialect()
DDL: list[str] = [str(CreateTable(t, if_not_exists=True).compile(dialect=_DIALECT))
                  for t in schema.metadata.sorted_tables]
DDL += [str(CreateIndex(i, if_not_exists=True).compile(dialect=_DIALECT))
        for t in schema.metadata.sorted_tables for i in sorted(t.indexes, key=lambda i: str(i.name))]


class ComputeStore(Protocol):
    """What the compute parts use: ComputeDB here, or pgdb.PostgresComputeDB."""

    def open(self) -> None: ...
    def close(self) -> None: ...
    def reader(self) -> Any: ...
    def run_write(self, fn: Callable[[Any], T]) -> T: ...
    async def write(self, fn: Callable[[Any], T]) -> T: ...
    def query(self, sql: str, params: Any = ()) -> list[Any]: ...


class ComputeDB:
    def __init__(self, path: Path, *, busy_timeout: float = 30.0) -> None:
        self.path = Path(path)
        self.busy_timeout = busy_timeout
        self._wlock = threading.Lock()
        self._writer: sqlite3.Connection | None = None
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._group = GroupCommitWriter("vallum-compute-db", lock=self._wlock,
                                        closed_message="compute database closed")

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
        with opening(self.path), self._wlock:
            conn = self._connect(False)
            create_schema(conn, self.path, DDL)
            _add_columns(conn)
        self._writer = conn
        self._group.start(conn)

    def close(self) -> None:
        self._group.stop()
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
        if not self._group.running:
            raise RuntimeError("compute database is closed")
        return await self._group.write(fn)

    @property
    def commits(self) -> int:
        """Group-commit counters: transactions committed, queued writes applied."""
        return self._group.commits

    @property
    def ops(self) -> int:
        return self._group.ops

    def query(self, sql: str, params: Any = ()) -> list[sqlite3.Row]:
        conn = self.reader()
        conn.row_factory = sqlite3.Row
        return conn.execute(sql, params).fetchall()


def _add_columns(conn: sqlite3.Connection) -> None:
    """Bring tables created by an older release up to schema.ADDED_COLUMNS."""
    for table, column, kind in schema.ADDED_COLUMNS:
        have = {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}
        if column not in have:
            # Names and types come from schema.py, never from input.
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
