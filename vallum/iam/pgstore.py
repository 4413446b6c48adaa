"""IAM store on PostgreSQL (``--meta postgresql://…``): the SQLite store's contract on a
database every gateway, on every host, shares.

The tables are iam/schema.py's, compiled for PostgreSQL (key columns ``COLLATE "C"``, so
scans come back in the same order as on SQLite). Reads run on the caller's thread, as on
SQLite: the request path reads IAM rows only when its cache was dropped (a new generation),
and one indexed lookup on a pooled connection is cheaper than a thread hand-off.

Writes take the generation row's lock first (``UPDATE … RETURNING``), so IAM writers
serialise as SQLite's ``BEGIN IMMEDIATE`` does, and ``NOTIFY`` in the same transaction:
PostgreSQL delivers it at commit to every gateway process's follower (meta/pgshared.py),
which re-reads the generation and, once its process uses the new value, records it with a
heartbeat in ``iam_followers``. ``generation()`` is a memory load: the follower's last read, or this
process's own last write, whichever is newer; a follower silent for ``STALE`` (1 s) is
bypassed and the request reads the generation itself.

So that a change applies everywhere *before it is acknowledged*, ``apply`` returns only once
every other follower has either recorded the new generation or not beaten for ``STALE``
seconds (then its process bypasses it, so its next request reads the generation). The wait
is typically a few milliseconds (a notification and one statement); it is capped at
``STALE + WAIT_SLACK`` and when the followers' table cannot be read, after which the
guarantee is the 1 s bound alone (logged).

PostgreSQL TEXT cannot hold NUL: a lookup with NUL finds nothing (no row can hold one),
a write with NUL is refused (ValueError) before any statement runs.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.schema import CreateIndex, CreateTable

from vallum.iam import schema
from vallum.iam.schema import ENTITIES
from vallum.iam.store import IAMStore, KeyRow, Op
from vallum.meta import pgshared
from vallum.meta.postgres import DatabaseUnavailable

log = logging.getLogger("vallum.iam")
_DIALECT = pg_dialect.psycopg.dialect(paramstyle="pyformat")
CHANNEL = "vallum_iam"
WAIT_SLACK = 0.25       # seconds a writer waits for the followers past STALE, at most
POOL_WAIT = 1.0         # reads run on the request's thread: never wait long for a connection
BACKOFF = 0.5           # after a lost database, requests fail at once for this long
_FOLLOWERS = ("CREATE TABLE IF NOT EXISTS iam_followers (origin TEXT PRIMARY KEY, "
              "seen BIGINT NOT NULL, beat TIMESTAMPTZ NOT NULL)")
# After each follower read, once the process uses the value: what it saw, with a heartbeat.
_CONFIRM = ("INSERT INTO iam_followers (origin, seen, beat) VALUES (%s, %s, clock_timestamp()) "
            "ON CONFLICT (origin) DO UPDATE SET seen = excluded.seen, beat = excluded.beat")
_LAGGING = ("SELECT count(*) FROM iam_followers WHERE origin <> %s AND seen < %s AND "
            "beat > clock_timestamp() - make_interval(secs => %s)")
_FORGET = "DELETE FROM iam_followers WHERE beat < clock_timestamp() - interval '1 hour'"
_DDL_LOCK = 0x56414C4C4941   # advisory lock id: one gateway creates the IAM tables at a time


def _sql(stmt: Any) -> str:
    return str(stmt.compile(dialect=_DIALECT))


def ddl() -> list[str]:
    out = []
    for table in schema.metadata.sorted_tables:
        out.append(str(CreateTable(table, if_not_exists=True).compile(dialect=_DIALECT)))
        for index in table.indexes:
            out.append(str(CreateIndex(index, if_not_exists=True).compile(dialect=_DIALECT)))
    return [*out, _FOLLOWERS, _FORGET,
            "INSERT INTO iam_generation (id, gen) VALUES (1, 0) ON CONFLICT DO NOTHING"]


@lru_cache(maxsize=None)
def _select(kind: str, cols: tuple[str, ...]) -> str:
    table, keycols = ENTITIES[kind]
    return _sql(sa.select(table).where(*(table.c[c] == sa.bindparam(c) for c in cols))
                .order_by(*(table.c[c] for c in keycols)))


@lru_cache(maxsize=None)
def _upsert(kind: str) -> str:
    table, keycols = ENTITIES[kind]
    stmt = pg_dialect.insert(table)
    return _sql(stmt.on_conflict_do_update(index_elements=list(keycols),
                                           set_={"doc": stmt.excluded.doc}))


@lru_cache(maxsize=None)
def _delete(kind: str) -> str:
    table, keycols = ENTITIES[kind]
    return _sql(sa.delete(table).where(*(table.c[c] == sa.bindparam(c) for c in keycols)))


_K = schema.keys
_KEY_GET = _sql(sa.select(_K).where(_K.c.access_key_id == sa.bindparam("akid")))
_KEYS_OF = _sql(sa.select(_K).where(_K.c.account == sa.bindparam("account"))
                .order_by(_K.c.created))
_KEYS_OF_USER = _sql(sa.select(_K).where(_K.c.account == sa.bindparam("account"),
                                         _K.c.user_name == sa.bindparam("user"))
                     .order_by(_K.c.created))
_KEY_INSERT = pg_dialect.insert(_K)
_KEY_PUT = _sql(_KEY_INSERT.on_conflict_do_update(
    index_elements=["access_key_id"],
    set_={c.name: _KEY_INSERT.excluded[c.name] for c in _K.columns if c.name != "access_key_id"}))
_KEY_DEL = _sql(sa.delete(_K).where(_K.c.access_key_id == sa.bindparam("akid")))
_KEY_STATUS = _sql(sa.update(_K).where(_K.c.access_key_id == sa.bindparam("akid"))
                   .values(status=sa.bindparam("st")))
_KEY_TOUCH = _sql(sa.update(_K).where(_K.c.access_key_id == sa.bindparam("akid"))
                  .values(last_used=sa.bindparam("t")))
_GEN_GET = "SELECT gen FROM iam_generation WHERE id = 1"
_GEN_BUMP = "UPDATE iam_generation SET gen = gen + 1 WHERE id = 1 RETURNING gen"
_NOTIFY = f"NOTIFY {CHANNEL}"


def _row(kind: str, row: tuple[Any, ...]) -> dict[str, Any]:
    keycols = ENTITIES[kind][1]
    out = json.loads(row[-1])
    out.update(zip(keycols, row[:-1], strict=True))
    return out


def _params(kind: str, row: dict[str, Any]) -> dict[str, Any]:
    keycols = ENTITIES[kind][1]
    doc = {k: v for k, v in row.items() if k not in keycols}
    return {**{k: str(row[k]) for k in keycols}, "doc": json.dumps(doc, sort_keys=True)}


def _keyrow(r: tuple[Any, ...]) -> KeyRow:
    return KeyRow(r[0], r[1], r[2], r[3], bytes(r[4]), r[5], r[6])


def _has_nul(params: dict[str, Any]) -> bool:
    return any(type(v) is str and "\x00" in v for v in params.values())


def _read_generation(conn: Any) -> int:
    return int(conn.execute(_GEN_GET).fetchone()[0])


class PostgresIAMStore(IAMStore):
    def __init__(self, url: str, *, max_connections: int = 4) -> None:
        self.url = url
        self.max_connections = max_connections
        self._pool: Any = None
        self.follower: pgshared.Follower | None = None
        self._written = -1                  # the generation this process's last write made
        self._lock = threading.Lock()
        self.origin = secrets.token_hex(8)  # this process's follower, in iam_followers
        self._down_until = 0.0              # monotonic: the database was just found gone

    def open(self) -> None:
        if self._pool is not None:
            return
        pool = pgshared.open_pool(self.url, "vallum-iam", self.max_connections, POOL_WAIT)
        try:
            pgshared.create_schema(pool, _DDL_LOCK, ddl())
        except BaseException:
            pool.close()
            raise
        self._pool = pool
        self.follower = pgshared.Follower(self.url, CHANNEL, _read_generation, "vallum-iam-feed",
                                          confirm=self._confirm)
        self.follower.start()

    def close(self) -> None:
        with self._lock:
            follower, pool = self.follower, self._pool
            self.follower = self._pool = None
        if follower is not None:
            follower.stop()
        if pool is not None:
            try:        # writers stop waiting for this process at once, not after STALE
                with pool.connection(timeout=POOL_WAIT) as conn:
                    conn.execute("DELETE FROM iam_followers WHERE origin = %s", (self.origin,))
            except Exception as exc:  # noqa: BLE001 - the row ages out anyway
                log.debug("IAM follower row not removed: %s", exc)
            pool.close()

    def _run(self, fn: Any) -> Any:
        """``fn(conn)`` on a pooled connection; a lost database answers 503 (never a
        decision made on missing rows), and for BACKOFF seconds after that at once, so a
        gateway whose database is gone does not hold every request (on the event loop)
        for a connection."""
        import psycopg

        pool = self._pool
        if pool is None:
            raise RuntimeError("IAM store is not open")
        if time.monotonic() < self._down_until:
            raise DatabaseUnavailable()
        try:
            with pool.connection() as conn:
                return fn(conn)
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            self._down_until = time.monotonic() + BACKOFF
            pool.check()
            raise DatabaseUnavailable() from exc

    def _confirm(self, conn: Any, seen: int) -> None:
        conn.execute(_CONFIRM, (self.origin, seen))

    def _await_followers(self, gen: int) -> None:
        """Return once no live follower of another process is behind ``gen`` (see above)."""
        import psycopg

        deadline = time.monotonic() + pgshared.STALE + WAIT_SLACK
        lagging: Any = "unknown"
        try:
            while True:
                lagging = self._run(lambda conn: conn.execute(
                    _LAGGING, (self.origin, gen, pgshared.STALE)).fetchone()[0])
                if not lagging:
                    return
                if time.monotonic() > deadline:
                    break
                time.sleep(0.005)
        except (psycopg.Error, DatabaseUnavailable):
            pass
        log.warning("IAM generation %d: %s gateway process(es) not confirmed; they apply it "
                    "within %.0f s", gen, lagging, pgshared.STALE)

    def _read(self, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        if _has_nul(params):
            return []
        return self._run(lambda conn: conn.execute(sql, params).fetchall())

    def generation(self) -> int:
        """The newest of the follower's read and this process's own write; a query only
        when the follower has been silent for more than STALE seconds."""
        follower = self.follower
        if follower is not None and follower.fresh() and follower.value is not None:
            return max(follower.value, self._written)
        return max(self._run(_read_generation), self._written)

    def get(self, kind: str, /, **key: str) -> dict[str, Any] | None:
        rows = self._read(_select(kind, ENTITIES[kind][1]), key)
        return _row(kind, rows[0]) if rows else None

    def scan(self, kind: str, /, **where: str) -> list[dict[str, Any]]:
        cols = tuple(sorted(where))
        return [_row(kind, r) for r in self._read(_select(kind, cols), where)]

    def get_key(self, access_key_id: str) -> KeyRow | None:
        rows = self._read(_KEY_GET, {"akid": access_key_id})
        return _keyrow(rows[0]) if rows else None

    def keys_of(self, account: str, user_name: str | None = None) -> list[KeyRow]:
        if user_name is None:
            return [_keyrow(r) for r in self._read(_KEYS_OF, {"account": account})]
        return [_keyrow(r) for r in self._read(_KEYS_OF_USER, {"account": account, "user": user_name})]

    def apply(self, ops: list[Op]) -> int:
        statements = [self._statement(op) for op in ops]       # refused before any runs

        def write(conn: Any) -> int:
            with conn.transaction():
                gen = int(conn.execute(_GEN_BUMP).fetchone()[0])   # serialises IAM writers
                for sql, params in statements:
                    conn.execute(sql, params)
                conn.execute(_NOTIFY)               # delivered at commit, to every gateway
            return gen

        gen = self._run(write)
        with self._lock:
            self._written = max(self._written, gen)
        self._await_followers(gen)
        return gen

    @staticmethod
    def _statement(op: Op) -> tuple[str, dict[str, Any]]:
        if op.verb == "put":
            sql, params = _upsert(op.kind), _params(op.kind, op.value)
        elif op.verb == "delete":
            sql, params = _delete(op.kind), {k: str(op.value[k]) for k in ENTITIES[op.kind][1]}
        elif op.verb == "put_key":
            k: KeyRow = op.value
            sql, params = _KEY_PUT, {"access_key_id": k.access_key_id, "account": k.account,
                                     "user_name": k.user_name, "status": k.status,
                                     "secret": k.secret, "created": k.created,
                                     "last_used": k.last_used}
        elif op.verb == "delete_key":
            sql, params = _KEY_DEL, {"akid": op.value}
        elif op.verb == "key_status":
            sql, params = _KEY_STATUS, {"akid": op.value[0], "st": op.value[1]}
        else:
            raise ValueError(f"unknown op {op.verb}")
        if _has_nul(params):
            raise ValueError("IAM names cannot contain NUL")
        return sql, params

    def adopt(self, ops: list[Op]) -> bool:
        """Write ``ops`` (another store's whole content) if this store holds no account and
        no key yet; False (nothing written) otherwise. One transaction under the schema
        lock, so of several gateways starting at once exactly one adopts."""
        if not ops:
            return False
        statements = [self._statement(op) for op in ops]

        def write(conn: Any) -> bool:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_DDL_LOCK,))
                held = conn.execute("SELECT EXISTS (SELECT 1 FROM iam_accounts) OR "
                                    "EXISTS (SELECT 1 FROM iam_access_keys)").fetchone()[0]
                if held:
                    return False
                conn.execute(_GEN_BUMP)
                for sql, params in statements:
                    conn.execute(sql, params)
                conn.execute(_NOTIFY)
            return True

        return bool(self._run(write))

    def touch_key(self, access_key_id: str, when: float) -> None:
        if "\x00" in access_key_id:
            return
        self._run(lambda conn: conn.execute(_KEY_TOUCH, {"akid": access_key_id, "t": when}))
