"""The compute tables on PostgreSQL (``--meta postgresql://``): ComputeDB's interface, so
jobstore, triggers, quotas, revocations and tasklog run the same SQL on either store.

Why an adapter and not a second copy of the SQL: the compute statements are written once,
in the subset both dialects accept (``ON CONFLICT`` upserts, no ``INSERT OR``), with
``?`` placeholders; the adapter turns them into psycopg's ``%s``. What differs is said
where it matters: jobstore asks ``locking(conn, sql)`` for ``FOR UPDATE SKIP LOCKED`` so
several gateways claim disjoint tasks.

Every ``write`` is its own READ COMMITTED transaction on a pooled connection (no group
commit: the server syncs its WAL for all sessions at once), retried on a serialisation
failure or deadlock. Reads run in autocommit, one statement each.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.schema import CreateIndex, CreateTable

from vallum.compute import schema

log = logging.getLogger("vallum.compute")
T = TypeVar("T")
_DIALECT = pg_dialect.dialect()
DDL: list[str] = [str(CreateTable(t, if_not_exists=True).compile(dialect=_DIALECT))
                  for t in schema.metadata.sorted_tables]
DDL += [str(CreateIndex(i, if_not_exists=True).compile(dialect=_DIALECT))
        for t in schema.metadata.sorted_tables for i in sorted(t.indexes, key=lambda i: str(i.name))]
DDL += [f"ALTER TABLE {t} ADD COLUMN IF NOT EXISTS {c} {k}" for t, c, k in schema.ADDED_COLUMNS]
_DDL_LOCK = 0x56414C4C5543   # advisory lock id: one gateway creates the compute tables at a time
_RETRIES = 5
POOL_SIZE = 8


class Row(tuple):
    """A result row readable by position and by column name, like ``sqlite3.Row``."""

    _index: dict[str, int]

    def __new__(cls, values: Sequence[Any], index: dict[str, int]) -> Row:
        row = super().__new__(cls, values)
        row._index = index
        return row

    def __getitem__(self, key: Any) -> Any:       # type: ignore[override]
        if isinstance(key, str):
            return tuple.__getitem__(self, self._index[key])
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._index)


def _row_factory(cursor: Any) -> Callable[[Sequence[Any]], Row]:
    index = {d.name: i for i, d in enumerate(cursor.description or ())}
    return lambda values: Row(values, index)


def to_pyformat(sql: str) -> str:
    """``?`` placeholders as psycopg's ``%s`` (a literal ``%`` doubled). The compute SQL
    never puts ``?`` inside a string literal."""
    return sql.replace("%", "%%").replace("?", "%s")


class Result:
    """What a read returns once its connection went back to the pool."""

    def __init__(self, rows: list[Row], rowcount: int) -> None:
        self._rows = rows
        self.rowcount = rowcount

    def fetchone(self) -> Row | None:
        return self._rows[0] if self._rows else None

    def fetchall(self) -> list[Row]:
        return self._rows

    def __iter__(self) -> Iterator[Row]:
        return iter(self._rows)


class Conn:
    """A psycopg connection inside one transaction, called like a ``sqlite3.Connection``."""

    dialect = "postgresql"

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def execute(self, sql: str, params: Any = ()) -> Any:
        cur = self._conn.cursor(row_factory=_row_factory)
        return cur.execute(to_pyformat(sql), tuple(params))

    def executemany(self, sql: str, seq: Any) -> Any:
        rows = [tuple(p) for p in seq]
        cur = self._conn.cursor()
        if rows:
            cur.executemany(to_pyformat(sql), rows)
        return cur


class Reader:
    """``ComputeDB.reader()``'s counterpart: each statement on a pooled connection."""

    dialect = "postgresql"

    def __init__(self, pool: Any) -> None:
        self._pool = pool

    def execute(self, sql: str, params: Any = ()) -> Result:
        with self._pool.connection() as conn:
            cur = conn.cursor(row_factory=_row_factory)
            cur.execute(to_pyformat(sql), tuple(params))
            rows = cur.fetchall() if cur.description else []
            return Result(rows, cur.rowcount)


class PostgresComputeDB:
    """The compute tables in the metadata database: same methods as ComputeDB."""

    dialect = "postgresql"

    def __init__(self, url: str, *, pool_size: int = POOL_SIZE) -> None:
        self.url = url
        self.pool_size = pool_size
        self._pool: Any = None
        self._threads: ThreadPoolExecutor | None = None

    def open(self) -> None:
        from psycopg_pool import ConnectionPool

        pool = ConnectionPool(self.url, min_size=1, max_size=self.pool_size, open=False,
                              kwargs={"autocommit": True}, name="vallum-compute", timeout=10.0)
        pool.open(True, 15.0)
        try:
            with pool.connection() as conn, conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_DDL_LOCK,))
                for statement in DDL:
                    conn.execute(statement)
        except BaseException:
            pool.close()
            raise
        self._pool = pool
        self._threads = ThreadPoolExecutor(self.pool_size, thread_name_prefix="vallum-compute-pg")

    def close(self) -> None:
        pool, threads = self._pool, self._threads
        self._pool = self._threads = None
        if threads is not None:
            threads.shutdown(True)
        if pool is not None:
            pool.close()

    def _need_pool(self) -> Any:
        if self._pool is None:
            raise RuntimeError("compute database is closed")
        return self._pool

    def reader(self) -> Reader:
        return Reader(self._need_pool())

    def run_write(self, fn: Callable[[Any], T]) -> T:
        """``fn`` in one transaction, run again on a serialisation failure or deadlock
        (its effects rolled back first, so a body must only touch the database)."""
        from psycopg import errors as pg_errors

        pool = self._need_pool()
        for attempt in range(_RETRIES):
            try:
                with pool.connection() as conn, conn.transaction():
                    out = fn(Conn(conn))
                return out
            except (pg_errors.SerializationFailure, pg_errors.DeadlockDetected):
                if attempt == _RETRIES - 1:
                    raise
                log.info("compute write retried after a serialisation failure or deadlock")
        raise AssertionError("unreachable")

    async def write(self, fn: Callable[[Any], T]) -> T:
        if self._threads is None:
            raise RuntimeError("compute database is closed")
        return await asyncio.get_running_loop().run_in_executor(
            self._threads, lambda: self.run_write(fn))

    def query(self, sql: str, params: Any = ()) -> list[Row]:
        return self.reader().execute(sql, params).fetchall()
