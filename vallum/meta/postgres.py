"""PostgreSQL metadata store (``vallum serve --meta postgresql://...``): the SQLite store's
semantics on a server several gateways can share.

Tables are ``schema``'s (SQLAlchemy Core compiled for PostgreSQL: keys ``COLLATE "C"``, so
listings are in UTF-8 byte order). Statements run on psycopg 3 connections from a pool, on
worker threads, so write bodies (preconditions, ``modify_object``'s change) stay plain
functions, as on SQLite; psycopg prepares repeated statements server-side.

Every write is one transaction at READ COMMITTED. Writes to a bucket serialise on its row
(``FOR NO KEY UPDATE``): the "latest version" flag and the quota check see every earlier
write, as SQLite's single writer does; a write judged against an account quota also locks
that quota's row, so writes into two buckets of one account cannot both slip under it.
Lock order is always bucket row, then quota rows. A serialisation failure or deadlock is
retried. Usage is kept by plpgsql triggers (the equivalents of ``usage_sql.TRIGGERS``).

PostgreSQL TEXT cannot hold NUL: a key, prefix or marker containing ``\\x00`` is refused
with ``UnstorableText`` (an S3 ``InvalidArgument``) before any statement runs.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.schema import CreateIndex, CreateTable

from vallum.meta import codec, schema, statements, usage_sql
from vallum.meta.base import (
    BucketExists,
    BucketMissing,
    BucketNotEmptyError,
    MetaError,
    MetaStore,
    Precondition,
    QuotaExceeded,
    UploadMissing,
)
from vallum.meta.listing import paginate, start_of, successor, to_list_page
from vallum.meta.records import (
    BucketRecord,
    ListPage,
    ObjectRecord,
    PartRecord,
    Quota,
    UploadRecord,
    Usage,
)
from vallum.s3.errors import S3Error

log = logging.getLogger("vallum.meta.postgres")
T = TypeVar("T")
Row = tuple[Any, ...]
Conn = Any      # psycopg.Connection (imported lazily: an optional dependency)

_KEY, _VID, _BLOB, _PARTS, _LATEST = 2, 3, 10, 12, 14
_UPLOAD_ID = 1
_SCAN_FIRST, _SCAN_MAX = 32, 1024
_RETRIES = 5
_DDL_LOCK = 0x56414C4C554D   # advisory lock id: one gateway creates the schema at a time
POOL_WAIT = 10.0
OPEN_TIMEOUT_ENV = "VALLUM_META_OPEN_TIMEOUT"   # seconds to reach the database at start-up


class MetaUnavailable(MetaError, RuntimeError):
    """The database cannot be reached or set up (start-up fails with this message)."""


class DatabaseUnavailable(MetaError, S3Error):
    """The database could not answer (connection lost, restart, failover): nothing was
    committed by this call, or the commit's outcome is unknown; the client retries."""

    status = 503
    message = "The metadata database is unavailable. Please retry."

    def __init__(self) -> None:
        super().__init__(headers={"Retry-After": "1"})

    @property
    def code(self) -> str:
        return "ServiceUnavailable"


class UnstorableText(MetaError, S3Error):
    """A key (or prefix, marker) holds NUL, which PostgreSQL TEXT cannot store."""

    status = 400

    @property
    def code(self) -> str:
        return "InvalidArgument"


def is_postgres_url(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://"))


def redacted(url: str) -> str:
    """The URL without its password, for logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rpartition("@")[2]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


# -- statements: SQLAlchemy Core, compiled once for PostgreSQL ---------------------
_DIALECT = pg_dialect.psycopg.dialect(paramstyle="pyformat")


class _Stmt:
    __slots__ = ("sql", "defaults")

    def __init__(self, stmt: Any, column_keys: list[str] | None = None) -> None:
        compiled = stmt.compile(dialect=_DIALECT, column_keys=column_keys)
        self.sql = str(compiled)
        self.defaults = {k: v for k, v in compiled.params.items()
                         if type(v) in (int, float, str, bytes)}

    def run(self, conn: Conn, params: dict[str, Any]) -> Any:
        return _execute(conn, self.sql, {**self.defaults, **params} if self.defaults else params)

    def one(self, conn: Conn, **params: Any) -> Row | None:
        return self.run(conn, params).fetchone()

    def all(self, conn: Conn, **params: Any) -> list[Row]:
        return self.run(conn, params).fetchall()


def _execute(conn: Conn, sql: str, params: dict[str, Any]) -> Any:
    """Every statement goes through here: refuse NUL in text before PostgreSQL sees it."""
    _check_text(*(v for v in params.values() if type(v) is str))
    return conn.execute(sql, params)


def _check_text(*values: str) -> None:
    """Raise UnstorableText if any value holds NUL (listing arguments that never reach a
    statement, such as a delimiter, are checked too, so a listing answers alike either way)."""
    if any("\x00" in v for v in values):
        raise UnstorableText("Object keys, prefixes, delimiters and markers must not contain "
                             "NUL (U+0000) on a PostgreSQL metadata store", ArgumentName="key")


def _p(name: str) -> Any:
    return sa.bindparam(name)


def _make(stmt: Any, column_keys: list[str] | None = None, *, index: Any = None) -> _Stmt:
    return _Stmt(stmt, column_keys)       # PostgreSQL's planner needs no index hints


def _build() -> Any:
    """The shared statements, plus what only PostgreSQL does: a write locks its bucket's row
    (so quotas, preconditions and the latest flag hold across gateways), bucket creation is
    an upsert that says whether it created, and a version can be read FOR UPDATE."""
    b, v = schema.buckets, schema.versions
    ns = statements.build(_make)
    ns.bucket_lock = _Stmt(sa.select(b.c.owner).where(b.c.name == _p("name"))
                           .with_for_update(key_share=True))
    ns.bucket_insert = _Stmt(pg_dialect.insert(b).on_conflict_do_nothing().returning(b.c.name),
                             [c.name for c in b.c])
    ns.ver_get_locked = _Stmt(sa.select(v).where(v.c.bucket == _p("bucket"), v.c.key == _p("key"),
                                                 v.c.version_id == _p("version_id"))
                              .with_for_update())
    return ns


S = _build()

# -- schema: the shared tables plus the usage triggers ------------------------------
_LABEL = "COALESCE({row}.extra::json ->> 'label', '')"
_USAGE_SQL = f"""
CREATE OR REPLACE FUNCTION vallum_usage_add(b TEXT, l TEXT, db BIGINT, dobj BIGINT, dp BIGINT)
RETURNS void LANGUAGE sql SET search_path FROM CURRENT AS $$
  INSERT INTO usage (bucket, label, bytes, objects, pending) VALUES (b, l, db, dobj, dp)
  ON CONFLICT (bucket, label) DO UPDATE SET bytes = usage.bytes + excluded.bytes,
    objects = usage.objects + excluded.objects, pending = usage.pending + excluded.pending
$$;
CREATE OR REPLACE FUNCTION vallum_usage_versions() RETURNS trigger LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
BEGIN
  IF TG_OP IN ('DELETE', 'UPDATE') THEN
    PERFORM vallum_usage_add(OLD.bucket, {_LABEL.format(row='OLD')}, -OLD.size, -1, 0);
  END IF;
  IF TG_OP IN ('INSERT', 'UPDATE') THEN
    PERFORM vallum_usage_add(NEW.bucket, {_LABEL.format(row='NEW')}, NEW.size, 1, 0);
  END IF;
  RETURN NULL;
END $$;
CREATE OR REPLACE FUNCTION vallum_usage_parts() RETURNS trigger LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
DECLARE
  v_bucket TEXT;
  v_label TEXT;
  v_row parts;
BEGIN
  IF TG_OP = 'INSERT' THEN v_row := NEW; ELSE v_row := OLD; END IF;
  SELECT u.bucket, COALESCE(u.extra::json ->> 'label', '') INTO v_bucket, v_label
    FROM uploads u WHERE u.upload_id = v_row.upload_id;
  IF v_bucket IS NOT NULL THEN
    PERFORM vallum_usage_add(v_bucket, v_label, 0, 0,
                             CASE WHEN TG_OP = 'INSERT' THEN v_row.size ELSE -v_row.size END);
  END IF;
  RETURN NULL;
END $$;
CREATE OR REPLACE FUNCTION vallum_usage_bucket_dropped() RETURNS trigger LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
BEGIN
  DELETE FROM usage WHERE bucket = OLD.name;
  DELETE FROM quotas WHERE scope = 'bucket:' || OLD.name;
  RETURN NULL;
END $$;
CREATE OR REPLACE TRIGGER usage_version_added AFTER INSERT ON versions FOR EACH ROW
  WHEN (NEW.delete_marker = 0) EXECUTE FUNCTION vallum_usage_versions();
CREATE OR REPLACE TRIGGER usage_version_dropped AFTER DELETE ON versions FOR EACH ROW
  WHEN (OLD.delete_marker = 0) EXECUTE FUNCTION vallum_usage_versions();
CREATE OR REPLACE TRIGGER usage_version_relabelled AFTER UPDATE OF extra ON versions FOR EACH ROW
  WHEN (OLD.delete_marker = 0 AND {_LABEL.format(row='OLD')} <> {_LABEL.format(row='NEW')})
  EXECUTE FUNCTION vallum_usage_versions();
CREATE OR REPLACE TRIGGER usage_parts AFTER INSERT OR DELETE ON parts FOR EACH ROW
  EXECUTE FUNCTION vallum_usage_parts();
CREATE OR REPLACE TRIGGER usage_bucket_dropped AFTER DELETE ON buckets FOR EACH ROW
  EXECUTE FUNCTION vallum_usage_bucket_dropped();
"""  # noqa: S608 - constant text, no input

DDL: list[str] = [str(CreateTable(t, if_not_exists=True).compile(dialect=_DIALECT))
                  for t in schema.metadata.sorted_tables]
DDL += [str(CreateIndex(i, if_not_exists=True).compile(dialect=_DIALECT))
        for t in schema.metadata.sorted_tables for i in sorted(t.indexes, key=lambda i: str(i.name))]
DDL.append(_USAGE_SQL)

_ADD_REQUESTS = usage_sql.pg(usage_sql.ADD_REQUESTS)
_QUOTAS_OF = ("SELECT scope, max_bytes, max_objects FROM quotas WHERE scope = 'bucket:' || %(b)s "
              "OR scope = 'account:' || (SELECT owner FROM buckets WHERE name = %(b)s) "
              "ORDER BY scope FOR UPDATE")
_BUCKET_TOTAL = ("SELECT COALESCE(SUM(bytes + pending), 0), COALESCE(SUM(objects), 0) "
                 "FROM usage WHERE bucket = %(b)s")
_ACCOUNT_TOTAL = ("SELECT COALESCE(SUM(bytes + pending), 0), COALESCE(SUM(objects), 0) FROM usage "
                  "WHERE bucket IN (SELECT name FROM buckets WHERE owner = "
                  "(SELECT owner FROM buckets WHERE name = %(b)s))")


class _QuotaGuard:
    """Usage of the scopes with a quota (their rows locked), read before a write; ``check``
    after it. The caller holds the bucket's row lock."""

    def __init__(self, conn: Conn, bucket: str) -> None:
        self.conn, self.bucket = conn, bucket
        self.limits = [(scope, Quota(mb, mo)) for scope, mb, mo
                       in _execute(conn, _QUOTAS_OF, {"b": bucket}).fetchall()]
        self.before = [self._total(scope) for scope, _ in self.limits]

    def _total(self, scope: str) -> tuple[int, int]:
        sql = _BUCKET_TOTAL if scope.startswith("bucket:") else _ACCOUNT_TOTAL
        row = _execute(self.conn, sql, {"b": self.bucket}).fetchone()
        return int(row[0]), int(row[1])

    def check(self) -> None:
        for (scope, quota), (bytes0, objects0) in zip(self.limits, self.before, strict=True):
            size, count = self._total(scope)
            if quota.max_bytes is not None and size > quota.max_bytes and size > bytes0:
                raise QuotaExceeded(scope, "storage")
            if quota.max_objects is not None and count > quota.max_objects and count > objects0:
                raise QuotaExceeded(scope, "object count")


def _usage_of(conn: Conn, bucket: str) -> Usage:
    usage = Usage()
    for label, size, count, pending in _execute(
            conn, "SELECT label, bytes, objects, pending FROM usage WHERE bucket = %(b)s "
                  "ORDER BY label", {"b": bucket}):
        usage.count(label, size, count, pending)
    return usage


class PostgresMetaStore(MetaStore):
    def __init__(self, url: str, *, max_connections: int = 8, pool_wait: float = POOL_WAIT) -> None:
        if not is_postgres_url(url):
            raise ValueError("a PostgreSQL metadata URL starts with postgresql://")
        self.url = url
        self.max_connections = max_connections
        self.pool_wait = pool_wait
        self._pool: Any = None
        self._threads: ThreadPoolExecutor | None = None

    # -- lifecycle ---------------------------------------------------------
    async def open(self) -> None:
        if self._pool is not None:
            return
        try:
            import psycopg
            from psycopg_pool import ConnectionPool
        except ImportError as exc:      # the optional extra is not installed
            raise MetaUnavailable("the PostgreSQL metadata store needs psycopg and psycopg_pool: "
                                  "pip install 'vallum[postgres]'") from exc
        # A request waits at most pool_wait seconds for a connection, then answers 503.
        pool = ConnectionPool(self.url, min_size=1, max_size=self.max_connections, open=False,
                              kwargs={"autocommit": True}, name="vallum-meta", timeout=self.pool_wait)
        self._threads = ThreadPoolExecutor(self.max_connections, thread_name_prefix="vallum-meta-pg")
        try:
            await asyncio.to_thread(pool.open, True, open_timeout())
            await asyncio.to_thread(self._create_schema, pool)
        except BaseException as exc:
            await asyncio.to_thread(pool.close)
            self._threads.shutdown()
            self._threads = None
            if isinstance(exc, psycopg.Error):     # PoolTimeout included; libpq's text has no password
                raise MetaUnavailable(f"PostgreSQL metadata store {redacted(self.url)}: "
                                      f"{type(exc).__name__}: {exc}") from None
            raise
        self._pool = pool

    @staticmethod
    def _create_schema(pool: Any) -> None:
        with pool.connection() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_DDL_LOCK,))
            for statement in DDL:
                conn.execute(statement)

    async def close(self) -> None:
        pool, threads = self._pool, self._threads
        if pool is None:
            return
        self._pool = self._threads = None
        if threads is not None:
            await asyncio.to_thread(threads.shutdown, True)
        await asyncio.to_thread(pool.close)

    def _run(self, fn: Callable[[Conn], T], *, write: bool, snapshot: bool = False) -> T:
        """``fn`` on a pooled connection: a write in one transaction (retried on a
        serialisation failure or deadlock), a snapshot read in a read-only one.

        A lost connection (database restart, failover) answers 503 and has the pool drop its
        broken connections, so the next request gets a fresh one. A write whose connection
        was lost during COMMIT may have committed: its transaction id, read first, is looked
        up on a new connection, and a committed write returns its result (callers delete the
        new body of a write that failed, which must never happen to a committed one)."""
        import psycopg
        from psycopg import errors as pg_errors

        pool = self._pool
        if pool is None:
            raise RuntimeError("metadata store is not open")
        for attempt in range(_RETRIES):
            xid: int | None = None
            done: list[T] = []
            try:
                with pool.connection() as conn:
                    if write or snapshot:
                        with conn.transaction():
                            if snapshot:
                                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, "
                                             "READ ONLY")
                            else:
                                xid = conn.execute("SELECT txid_current()").fetchone()[0]
                            done.append(fn(conn))
                        return done[0]
                    return fn(conn)
            except (pg_errors.SerializationFailure, pg_errors.DeadlockDetected):
                if attempt < _RETRIES - 1:
                    continue
                raise DatabaseUnavailable() from None
            except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                log.warning("metadata database unavailable: %s: %s", type(exc).__name__, exc)
                try:
                    pool.check()
                except psycopg.Error:
                    pass
                if done and xid is not None and self._committed(xid):
                    return done[0]
                raise DatabaseUnavailable() from None
        raise AssertionError("unreachable")

    def _committed(self, xid: int) -> bool:
        """Whether transaction ``xid`` committed, asked on a new connection (False when
        it aborted; DatabaseUnavailable when that cannot be known)."""
        import psycopg

        deadline = time.monotonic() + 5.0
        while True:
            try:
                with psycopg.connect(self.url, autocommit=True, connect_timeout=5) as conn:
                    row = conn.execute("SELECT txid_status(%s)", (xid,)).fetchone()
                status = row[0] if row else None
            except psycopg.Error:
                status = None
            if status in ("committed", "aborted"):
                return status == "committed"
            if time.monotonic() > deadline:
                log.error("metadata write %s: outcome unknown (database unreachable)", xid)
                raise DatabaseUnavailable()
            time.sleep(0.1)

    async def _call(self, fn: Callable[[Conn], T], *, write: bool = False,
                    snapshot: bool = False) -> T:
        if self._threads is None:
            raise RuntimeError("metadata store is not open")
        return await asyncio.get_running_loop().run_in_executor(
            self._threads, lambda: self._run(fn, write=write, snapshot=snapshot))

    async def reachable(self) -> bool:
        """One ``SELECT 1`` (a lost connection is replaced by the pool meanwhile)."""
        try:
            await self._call(lambda conn: conn.execute("SELECT 1").fetchone())
        except DatabaseUnavailable:
            return False
        return True

    # -- buckets -----------------------------------------------------------
    async def create_bucket(self, bucket: BucketRecord) -> None:
        params = codec.bucket_params(bucket)

        def op(conn: Conn) -> None:
            if S.bucket_insert.one(conn, **params) is None:
                row = S.bucket_get.one(conn, name=bucket.name)
                raise BucketExists(row[3] if row else "")

        await self._call(op, write=True)

    async def get_bucket(self, name: str) -> BucketRecord | None:
        row = await self._call(lambda conn: S.bucket_get.one(conn, name=name))
        return codec.bucket_from_row(row) if row else None

    async def list_buckets(self, owner: str | None = None) -> list[BucketRecord]:
        def read(conn: Conn) -> list[BucketRecord]:
            rows = (S.bucket_list.all(conn) if owner is None
                    else S.bucket_list_owner.all(conn, owner=owner))
            return [codec.bucket_from_row(r) for r in rows]

        return await self._call(read)

    async def update_bucket(self, bucket: BucketRecord) -> None:
        params = codec.bucket_params(bucket)
        params["w_name"] = params.pop("name")

        def op(conn: Conn) -> None:
            if S.bucket_update.run(conn, params).rowcount == 0:
                raise BucketMissing(bucket.name)

        await self._call(op, write=True)

    async def delete_bucket(self, name: str) -> list[str]:
        def op(conn: Conn) -> list[str]:
            if S.bucket_lock.one(conn, name=name) is None:
                raise BucketMissing(name)
            if S.bucket_any_version.one(conn, bucket=name) is not None:
                raise BucketNotEmptyError(name)
            freed: list[str] = []
            for (upload_id,) in S.upload_ids_of_bucket.all(conn, bucket=name):
                freed += _drop_upload(conn, upload_id)
            S.bucket_delete.run(conn, {"name": name})
            return freed

        return await self._call(op, write=True)

    # -- objects -----------------------------------------------------------
    async def put_object(self, record: ObjectRecord, *,
                         precondition: Precondition | None = None) -> list[str]:
        params = codec.object_params(record, True)
        return await self._call(lambda conn: _put(conn, record, params, precondition), write=True)

    async def get_object(self, bucket: str, key: str,
                         version_id: str | None = None) -> ObjectRecord | None:
        def read(conn: Conn) -> Row | None:
            if version_id is None:
                return S.ver_latest.one(conn, bucket=bucket, key=key)
            return S.ver_get.one(conn, bucket=bucket, key=key, version_id=version_id)

        row = await self._call(read)
        return codec.object_from_row(row) if row else None

    async def delete_version(self, bucket: str, key: str, version_id: str, *,
                             precondition: Precondition | None = None,
                             ) -> tuple[ObjectRecord | None, list[str]]:
        def op(conn: Conn) -> tuple[ObjectRecord | None, list[str]]:
            S.bucket_lock.one(conn, name=bucket)
            row = S.ver_get.one(conn, bucket=bucket, key=key, version_id=version_id)
            if precondition is not None:
                precondition(codec.object_from_row(row) if row else None)
            if row is None:
                return None, []
            S.ver_delete.run(conn, {"seq": row[0]})
            if row[_LATEST]:
                nxt = S.ver_latest.one(conn, bucket=bucket, key=key)
                if nxt is not None:
                    S.ver_set_latest.run(conn, {"w_seq": nxt[0]})
            return codec.object_from_row(row), codec.row_blob_ids(row[_BLOB], row[_PARTS])

        return await self._call(op, write=True)

    async def modify_object(self, bucket: str, key: str, version_id: str,
                            change: Callable[[ObjectRecord], None]) -> ObjectRecord | None:
        def op(conn: Conn) -> ObjectRecord | None:
            row = S.ver_get_locked.one(conn, bucket=bucket, key=key, version_id=version_id)
            if row is None:
                return None
            record = codec.object_from_row(row)
            change(record)
            S.ver_update_meta.run(conn, {
                "system_meta": codec.dump(record.system_meta), "user_meta": codec.dump(record.user_meta),
                "extra": codec.dump(record.extra), "w_bucket": bucket, "w_key": key,
                "w_version_id": version_id})
            return record

        return await self._call(op, write=True)

    async def list_objects(self, bucket: str, *, prefix: str = "", delimiter: str = "",
                           start_after: str = "", max_keys: int = 1000) -> ListPage:
        end = successor(prefix) if prefix else None

        def read(conn: Conn) -> ListPage:
            def scan(start: str, inclusive: bool = True, first: int = _SCAN_FIRST) -> Iterator[Row]:
                n = first
                while True:
                    stmt = S.obj_scan[(inclusive, end is not None)]
                    rows = stmt.all(conn, bucket=bucket, start=start, end=end, n=n)
                    yield from rows
                    if len(rows) < n:
                        return
                    start, inclusive, n = rows[-1][_KEY], False, min(n * 2, _SCAN_MAX)

            _check_text(prefix, delimiter, start_after)
            first = scan(*start_of(prefix, start_after), first=_first_batch(max_keys, delimiter))
            page = paginate(first, scan, _row_key, prefix=prefix, delimiter=delimiter,
                            marker=start_after, limit=max_keys)
            return to_list_page(page, _row_key, codec.object_from_row)

        return await self._call(read, snapshot=True)

    async def list_versions(self, bucket: str, *, prefix: str = "", delimiter: str = "",
                            key_marker: str = "", version_id_marker: str = "",
                            max_keys: int = 1000) -> ListPage:
        end = successor(prefix) if prefix else None

        def read(conn: Conn) -> ListPage:
            def rest_of_key(key: str, seq: int, n: int | None) -> list[Row]:
                return S.ver_rest_of_key.all(conn, bucket=bucket, key=key, seq=seq, n=n)

            def scan(start: str, inclusive: bool = True, first: int = _SCAN_FIRST) -> Iterator[Row]:
                n = first
                rows = S.ver_scan[(inclusive, end is not None)].all(
                    conn, bucket=bucket, start=start, end=end, n=n)
                while True:
                    yield from rows
                    if len(rows) < n:
                        return
                    last = rows[-1]
                    n = min(n * 2, _SCAN_MAX)
                    rows = rest_of_key(last[_KEY], last[0], n)
                    if len(rows) < n:
                        rows += S.ver_scan[(False, end is not None)].all(
                            conn, bucket=bucket, start=last[_KEY], end=end, n=n - len(rows))

            def stream() -> Iterator[Row]:
                if key_marker and version_id_marker:
                    found = S.ver_seq_of.one(conn, bucket=bucket, key=key_marker,
                                             version_id=version_id_marker)
                    if found is not None:
                        yield from rest_of_key(key_marker, found[0], None)
                yield from scan(*start_of(prefix, key_marker),
                                first=_first_batch(max_keys, delimiter))

            _check_text(prefix, delimiter, key_marker, version_id_marker)
            page = paginate(stream(), scan, _row_key, prefix=prefix, delimiter=delimiter,
                            marker=key_marker, limit=max_keys)
            return to_list_page(page, _row_key, codec.object_from_row, _row_version)

        return await self._call(read, snapshot=True)

    # -- multipart ---------------------------------------------------------
    async def create_upload(self, upload: UploadRecord) -> None:
        params = codec.upload_params(upload)

        def op(conn: Conn) -> None:
            if S.bucket_lock.one(conn, name=upload.bucket) is None:
                raise BucketMissing(upload.bucket)
            S.upload_insert.run(conn, params)

        await self._call(op, write=True)

    async def get_upload(self, upload_id: str) -> UploadRecord | None:
        row = await self._call(lambda conn: S.upload_get.one(conn, upload_id=upload_id))
        return codec.upload_from_row(row) if row else None

    async def put_part(self, upload_id: str, part: PartRecord) -> list[str]:
        params = codec.part_params(upload_id, part)

        def op(conn: Conn) -> list[str]:
            upload = _locked_upload(conn, upload_id)
            guard = _QuotaGuard(conn, upload.bucket)
            old = S.part_blob.one(conn, upload_id=upload_id, part_number=part.part_number)
            if old is not None:
                S.part_delete.run(conn, {"upload_id": upload_id,
                                         "part_number": part.part_number})
            S.part_insert.run(conn, params)
            guard.check()
            return [old[0]] if old is not None and old[0] != part.blob_id else []

        return await self._call(op, write=True)

    async def list_parts(self, upload_id: str, *, part_number_marker: int = 0,
                         max_parts: int = 1000) -> tuple[list[PartRecord], bool]:
        if max_parts <= 0:
            return [], False

        def read(conn: Conn) -> tuple[list[PartRecord], bool]:
            rows = S.parts_list.all(conn, upload_id=upload_id, marker=part_number_marker,
                                    n=max_parts + 1)
            return [codec.part_from_row(r) for r in rows[:max_parts]], len(rows) > max_parts

        return await self._call(read)

    async def list_uploads(self, bucket: str, *, prefix: str = "", delimiter: str = "",
                           key_marker: str = "", upload_id_marker: str = "",
                           max_uploads: int = 1000) -> ListPage:
        end = successor(prefix) if prefix else None

        def read(conn: Conn) -> ListPage:
            def scan(start: str, inclusive: bool = True, first: int = _SCAN_FIRST) -> Iterator[Row]:
                n = first
                while True:
                    rows = S.up_scan[(inclusive, end is not None)].all(
                        conn, bucket=bucket, start=start, end=end, n=n)
                    yield from rows
                    if len(rows) < n:
                        return
                    last = rows[-1]
                    yield from S.up_rest_of_key.all(conn, bucket=bucket, key=last[3],
                                                    seq=last[0], n=None)
                    start, inclusive, n = last[3], False, min(n * 2, _SCAN_MAX)

            def stream() -> Iterator[Row]:
                if key_marker and upload_id_marker:
                    found = S.upload_get.one(conn, upload_id=upload_id_marker)
                    if found is not None and found[2] == bucket and found[3] == key_marker:
                        yield from S.up_rest_of_key.all(conn, bucket=bucket, key=key_marker,
                                                        seq=found[0], n=None)
                yield from scan(*start_of(prefix, key_marker),
                                first=_first_batch(max_uploads, delimiter))

            _check_text(prefix, delimiter, key_marker, upload_id_marker)
            page = paginate(stream(), scan, _upload_key, prefix=prefix, delimiter=delimiter,
                            marker=key_marker, limit=max_uploads)
            return to_list_page(page, _upload_key, codec.upload_from_row, _row_upload_id)

        return await self._call(read, snapshot=True)

    async def complete_upload(self, upload_id: str, record: ObjectRecord, *,
                              precondition: Precondition | None = None) -> list[str]:
        params = codec.object_params(record, True)

        def op(conn: Conn) -> list[str]:
            if S.upload_get.one(conn, upload_id=upload_id) is None:
                raise UploadMissing(upload_id)
            if S.bucket_lock.one(conn, name=record.bucket) is None:
                raise BucketMissing(record.bucket)
            if S.upload_get.one(conn, upload_id=upload_id) is None:   # aborted meanwhile
                raise UploadMissing(upload_id)
            guard = _QuotaGuard(conn, record.bucket)
            freed = _put(conn, record, params, precondition, guarded=False)
            used = set(record.blob_ids())
            freed = [b for b in _drop_upload(conn, upload_id) if b not in used] + freed
            guard.check()
            return freed

        return await self._call(op, write=True)

    async def abort_upload(self, upload_id: str) -> list[str]:
        def op(conn: Conn) -> list[str]:
            _locked_upload(conn, upload_id)
            return _drop_upload(conn, upload_id)

        return await self._call(op, write=True)

    # -- usage and quotas --------------------------------------------------
    async def bucket_usage(self, bucket: str) -> Usage:
        return await self._call(lambda conn: _usage_of(conn, bucket))

    async def account_usage(self, owner: str) -> dict[str, Usage]:
        def read(conn: Conn) -> dict[str, Usage]:
            names = [r[0] for r in _execute(
                conn, "SELECT name FROM buckets WHERE owner = %(o)s ORDER BY name", {"o": owner})]
            return {name: _usage_of(conn, name) for name in names}

        return await self._call(read, snapshot=True)

    async def get_quota(self, scope: str) -> Quota | None:
        def read(conn: Conn) -> Quota | None:
            row = _execute(conn, "SELECT max_bytes, max_objects FROM quotas WHERE scope = %(s)s",
                           {"s": scope}).fetchone()
            return Quota(row[0], row[1]) if row else None

        return await self._call(read)

    async def set_quota(self, scope: str, quota: Quota | None) -> None:
        def op(conn: Conn) -> None:
            if quota is None or (quota.max_bytes is None and quota.max_objects is None):
                _execute(conn, "DELETE FROM quotas WHERE scope = %(s)s", {"s": scope})
                return
            # An upsert, not delete + insert: a writer waiting on the row's lock then
            # re-reads the new limits instead of finding the row gone.
            _execute(conn, "INSERT INTO quotas (scope, max_bytes, max_objects) "
                           "VALUES (%(s)s, %(b)s, %(o)s) ON CONFLICT (scope) DO UPDATE "
                           "SET max_bytes = excluded.max_bytes, max_objects = excluded.max_objects",
                     {"s": scope, "b": quota.max_bytes, "o": quota.max_objects})

        await self._call(op, write=True)

    async def add_request_usage(self, rows: list[dict[str, Any]]) -> None:
        def op(conn: Conn) -> None:
            for row in rows:
                _execute(conn, _ADD_REQUESTS, row)

        await self._call(op, write=True)

    async def request_usage(self, accounts: list[str] | None,
                            day: str | None) -> list[tuple[Any, ...]]:
        sql, params = usage_sql.request_query(accounts, day)
        return await self._call(lambda conn: [tuple(r) for r in _execute(
            conn, usage_sql.pg(sql), params).fetchall()])

    # -- maintenance -------------------------------------------------------
    async def referenced_blobs(self) -> set[str]:
        def read(conn: Conn) -> set[str]:
            found: set[str] = set()
            for blob_id, manifest in S.ver_blob_refs.all(conn):
                if blob_id:
                    found.add(blob_id)
                found.update(codec.manifest_blob_ids(manifest))
            found.update(r[0] for r in S.part_blob_refs.all(conn))
            return found

        return await self._call(read, snapshot=True)


# -- write bodies (one transaction each, on a worker thread) -----------------
def _put(conn: Conn, record: ObjectRecord, params: dict[str, Any],
         precondition: Precondition | None, *, guarded: bool = True) -> list[str]:
    if S.bucket_lock.one(conn, name=record.bucket) is None:
        raise BucketMissing(record.bucket)
    guard = _QuotaGuard(conn, record.bucket) if guarded else None
    cur = S.ver_latest.one(conn, bucket=record.bucket, key=record.key)
    if precondition is not None:
        precondition(codec.object_from_row(cur) if cur else None)
    freed: list[str] = []
    if cur is not None:
        if cur[_VID] == record.version_id:
            same = cur
        else:
            same = S.ver_get.one(conn, bucket=record.bucket, key=record.key,
                                 version_id=record.version_id)
            S.ver_clear_latest.run(conn, {"w_seq": cur[0]})
        if same is not None:
            freed = codec.row_blob_ids(same[_BLOB], same[_PARTS])
            S.ver_delete.run(conn, {"seq": same[0]})
    S.ver_insert.run(conn, params)
    if guard is not None:
        guard.check()
    if freed:
        keep = set(record.blob_ids())
        freed = [b for b in freed if b not in keep]
    return freed


def _locked_upload(conn: Conn, upload_id: str) -> UploadRecord:
    """The upload, with its bucket's row locked (so a concurrent Complete or Abort has
    either finished or not started); UploadMissing if it is gone."""
    row = S.upload_get.one(conn, upload_id=upload_id)
    if row is not None:
        S.bucket_lock.one(conn, name=row[2])
        row = S.upload_get.one(conn, upload_id=upload_id)
    if row is None:
        raise UploadMissing(upload_id)
    return codec.upload_from_row(row)


def _drop_upload(conn: Conn, upload_id: str) -> list[str]:
    blobs = [r[0] for r in S.part_blobs_of_upload.all(conn, upload_id=upload_id)]
    S.parts_delete_upload.run(conn, {"upload_id": upload_id})
    S.upload_delete.run(conn, {"upload_id": upload_id})
    return blobs


def open_timeout() -> float:
    try:
        return max(0.1, float(os.environ.get(OPEN_TIMEOUT_ENV, "15")))
    except ValueError:
        return 15.0


def _first_batch(limit: int, delimiter: str) -> int:
    return _SCAN_FIRST if delimiter else min(max(limit, 0) + 1, _SCAN_MAX)


def _row_key(row: Row) -> str:
    return row[_KEY]


def _row_version(row: Row) -> str:
    return row[_VID]


def _upload_key(row: Row) -> str:
    return row[3]


def _row_upload_id(row: Row) -> str:
    return row[_UPLOAD_ID]
