"""IAM store on SQLite: its own tables in the metadata database file, WAL, busy_timeout.

Why synchronous reads on the caller's thread: each read is one primary-key lookup
(a few microseconds under WAL, where readers never block), far cheaper than handing
it to a thread pool; writes are rare (admin calls) and run in a worker thread.
Statements are SQLAlchemy Core compiled once to SQL text, as in meta/sqlite.py.
Several gateway processes may share the file: writes take ``BEGIN IMMEDIATE`` and
bump ``iam_generation`` in the same transaction, then announce the change through a
mapped change word next to the database (meta/changes.py). ``generation()`` asks the
database only when that word moved or every ``POLL_EVERY`` seconds, so a request pays a
memory load, not a query, and a missed signal (a writer killed between commit and
signal, a gateway on another host) delays a change by at most ``POLL_EVERY``.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from functools import lru_cache
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.schema import CreateIndex, CreateTable

from vallum.iam import schema
from vallum.iam.schema import ENTITIES
from vallum.iam.store import IAMStore, KeyRow, Op
from vallum.meta.changes import ChangeSignal
from vallum.sqlite_open import create_schema, opening

_DIALECT = sqlite_dialect.dialect(paramstyle="named")
POLL_EVERY = 0.5          # seconds between database reads of the generation when unsignalled


def _sql(stmt: Any, literal: bool = False) -> str:
    return str(stmt.compile(dialect=_DIALECT, compile_kwargs={"literal_binds": literal}))


def _ddl() -> list[str]:
    out = []
    for table in schema.metadata.sorted_tables:
        out.append(str(CreateTable(table, if_not_exists=True).compile(dialect=_DIALECT)))
        for index in table.indexes:
            out.append(str(CreateIndex(index, if_not_exists=True).compile(dialect=_DIALECT)))
    return out


@lru_cache(maxsize=None)
def _select(kind: str, cols: tuple[str, ...]) -> str:
    table, keycols = ENTITIES[kind]
    return _sql(sa.select(table).where(*(table.c[c] == sa.bindparam(c) for c in cols))
                .order_by(*(table.c[c] for c in keycols)))


@lru_cache(maxsize=None)
def _upsert(kind: str) -> str:
    return _sql(sa.insert(ENTITIES[kind][0]).prefix_with("OR REPLACE"))


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
_KEY_PUT = _sql(sa.insert(_K).prefix_with("OR REPLACE"))
_KEY_DEL = _sql(sa.delete(_K).where(_K.c.access_key_id == sa.bindparam("akid")))
_KEY_STATUS = _sql(sa.update(_K).where(_K.c.access_key_id == sa.bindparam("akid"))
                   .values(status=sa.bindparam("st")))
_KEY_TOUCH = _sql(sa.update(_K).where(_K.c.access_key_id == sa.bindparam("akid"))
                  .values(last_used=sa.bindparam("t")))
_G = schema.generation
_GEN_GET = _sql(sa.select(_G.c.gen).where(_G.c.id == 1), literal=True)
_GEN_INIT = "INSERT OR IGNORE INTO iam_generation (id, gen) VALUES (1, 0)"
_GEN_BUMP = _sql(sa.update(_G).where(_G.c.id == 1).values(gen=_G.c.gen + 1), literal=True)


def _row(kind: str, row: tuple[Any, ...]) -> dict[str, Any]:
    keycols = ENTITIES[kind][1]
    out = json.loads(row[-1])
    out.update(zip(keycols, row[:-1], strict=True))
    return out


def _params(kind: str, row: dict[str, Any]) -> dict[str, Any]:
    keycols = ENTITIES[kind][1]
    doc = {k: v for k, v in row.items() if k not in keycols}
    return {**{k: str(row[k]) for k in keycols}, "doc": json.dumps(doc, sort_keys=True)}


def signal_path(db_path: Path) -> Path:
    """The change word of the IAM tables in ``db_path`` (a small file beside it)."""
    return db_path.with_name(db_path.name + ".iam-changes")


def _keyrow(r: tuple[Any, ...]) -> KeyRow:
    return KeyRow(r[0], r[1], r[2], r[3], bytes(r[4]), r[5], r[6])


class SQLiteIAMStore(IAMStore):
    def __init__(self, path: Path, *, busy_timeout: float = 30.0) -> None:
        self.path = Path(path)
        self.busy_timeout = busy_timeout
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self.signal: ChangeSignal | None = None
        self._seen = (-1, -1, 0.0)          # (change word, generation, next poll time)

    def open(self) -> None:
        if self._conn is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with opening(self.path):
            conn = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None,
                                   check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout={int(self.busy_timeout * 1000)}")
            conn.execute("PRAGMA synchronous=FULL")
            create_schema(conn, self.path, [*_ddl(), _GEN_INIT])
        self._conn = conn
        self.signal = ChangeSignal(signal_path(self.path))

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            if self.signal is not None:
                self.signal.close()
                self.signal = None

    def _read(self, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        assert self._conn is not None, "IAM store is not open"
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def generation(self) -> int:
        """The IAM generation; a query only when the change word moved or a poll is due."""
        signal = self.signal
        word = signal.value() if signal is not None else -1
        seen_word, gen, next_poll = self._seen
        now = time.monotonic()
        if word == seen_word and now < next_poll:
            return gen
        # The word is read before the query: a change signalled in between is seen next time.
        gen = self._read(_GEN_GET, {})[0][0]
        self._seen = (word, gen, now + POLL_EVERY)
        return gen

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
        assert self._conn is not None, "IAM store is not open"
        with self._lock:
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                for op in ops:
                    self._one(conn, op)
                conn.execute(_GEN_BUMP)
                gen = conn.execute(_GEN_GET).fetchone()[0]
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            if self.signal is not None:
                self.signal.bump()          # after the commit: readers then see the new rows
            return gen

    @staticmethod
    def _one(conn: sqlite3.Connection, op: Op) -> None:
        if op.verb == "put":
            conn.execute(_upsert(op.kind), _params(op.kind, op.value))
        elif op.verb == "delete":
            conn.execute(_delete(op.kind), {k: str(op.value[k]) for k in ENTITIES[op.kind][1]})
        elif op.verb == "put_key":
            k: KeyRow = op.value
            conn.execute(_KEY_PUT, {"access_key_id": k.access_key_id, "account": k.account,
                                    "user_name": k.user_name, "status": k.status,
                                    "secret": k.secret, "created": k.created,
                                    "last_used": k.last_used})
        elif op.verb == "delete_key":
            conn.execute(_KEY_DEL, {"akid": op.value})
        elif op.verb == "key_status":
            conn.execute(_KEY_STATUS, {"akid": op.value[0], "st": op.value[1]})
        else:
            raise ValueError(f"unknown op {op.verb}")

    def touch_key(self, access_key_id: str, when: float) -> None:
        assert self._conn is not None
        with self._lock:
            self._conn.execute(_KEY_TOUCH, {"akid": access_key_id, "t": when})


def dump(path: Path) -> list[Op]:
    """Every IAM row of the SQLite database at ``path`` as puts (read only; none when the
    file or its IAM tables do not exist): what a PostgreSQL store adopts on its first start
    (iam/pgstore.adopt), so moving to PostgreSQL keeps every identity."""
    if not Path(path).is_file():
        return []
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        ops = []
        for kind, (table, _) in ENTITIES.items():
            if table.name in tables:
                ops += [Op("put", kind, _row(kind, r)) for r in conn.execute(_select(kind, ()))]
        if _K.name in tables:
            ops += [Op("put_key", value=_keyrow(r))
                    for r in conn.execute(_sql(sa.select(_K).order_by(_K.c.created)))]
        return ops
    finally:
        conn.close()
