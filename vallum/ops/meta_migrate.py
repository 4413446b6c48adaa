"""`vallum meta migrate`: copy a stopped embedded install's ``meta.sqlite3`` into PostgreSQL.

Why a copy tool: growing from one box to several gateways means moving the metadata the
SQLite file holds (buckets, versions, uploads, parts, quotas, compute) into the database
``--meta`` names, while blobs, the keyring and the audit log stay in the data directory
(the gateway then starts on the same one). The copy is one PostgreSQL transaction: the
rows are copied, each table is counted and checksummed on both sides, and only when every
table matches is it committed, so a failed or mismatched copy leaves the target empty.

- The target must be empty (every table this tool writes): a second run, or a target a
  gateway already uses, is refused.
- The source must be stopped: SQLite's own lock (the WAL index's DMS byte, held shared by
  every open connection) is tried exclusively first, so a running gateway is refused.
- ``usage`` is not copied: PostgreSQL's triggers derive it while versions and parts are
  inserted; it is then checked against the source's like every copied table.
- Any other table of the file (IAM, lockouts) is copied as is when the target has a table
  of that name with its columns (a store that keeps it in PostgreSQL made it), and reported
  as left in SQLite otherwise. ``vallum_schema`` (the SQLite file's versions) stays.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import json
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vallum.compute import schema as compute_schema
from vallum.compute.pgdb import PostgresComputeDB
from vallum.meta import schema as meta_schema
from vallum.meta.postgres import PostgresMetaStore

# A part's usage trigger looks up its upload, an upload's its bucket: parents first.
FIRST = ("buckets", "versions", "uploads", "parts")
DERIVED = {"usage"}                            # kept by triggers on the target
STAYS = {"vallum_schema", "sqlite_sequence"}   # the SQLite file's own bookkeeping
_DMS_BYTE = 128             # SQLite WAL index: 120 (lock bytes) + 8 = the "DMS" byte
_BATCH = 5000


class MigrateError(Exception):
    """Refused or failed; nothing was committed to the target."""


@dataclass
class TableReport:
    table: str
    action: str                    # copied | derived | left in SQLite (why)
    source_rows: int = 0
    target_rows: int = 0
    source_sum: str = ""
    target_sum: str = ""

    @property
    def ok(self) -> bool:
        return self.action.startswith("left") or (
            self.source_rows == self.target_rows and self.source_sum == self.target_sum)


def source_file(spec: str) -> Path:
    """``sqlite:PATH``: the data directory or its meta.sqlite3."""
    if not spec.startswith("sqlite:"):
        raise MigrateError("--from must be sqlite:PATH (a data directory or its meta.sqlite3)")
    path = Path(spec[len("sqlite:"):]).expanduser()
    if path.is_dir():
        path = path / "meta.sqlite3"
    if not path.is_file():
        raise MigrateError(f"no SQLite metadata file at {path}")
    return path


def held_open(path: Path) -> bool:
    """Does any process have this SQLite database open (a running gateway)? Every WAL-mode
    connection holds a shared lock on its index's DMS byte for as long as it is open."""
    shm = path.with_name(path.name + "-shm")
    try:
        fd = os.open(shm, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, _DMS_BYTE)
    except OSError:
        return True
    finally:
        os.close(fd)            # closing drops this process's lock too
    return False


def _value(v: Any) -> Any:
    if isinstance(v, bytes | memoryview):
        return {"b": bytes(v).hex()}
    if isinstance(v, float):
        return repr(v)
    return v


def _checksum(rows: Iterator[tuple[Any, ...]]) -> tuple[int, str]:
    """(rows, an order-free digest of their values), streaming: the sum modulo 2**256 of
    each row's SHA-256 (both sides sort text differently; a sum, unlike XOR, does not let
    two equal rows cancel out)."""
    count = total = 0
    for row in rows:
        digest = hashlib.sha256(json.dumps([_value(v) for v in row]).encode()).digest()
        total = (total + int.from_bytes(digest, "big")) % (1 << 256)
        count += 1
    return count, hashlib.sha256(total.to_bytes(32, "big")).hexdigest()[:16]


def _usage_rows(rows: Iterator[tuple[Any, ...]]) -> Iterator[tuple[Any, ...]]:
    """Usage rows that count something (a store may keep or drop all-zero rows)."""
    return (r for r in rows if any(r[2:]))


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _sqlite_tables(src: sqlite3.Connection) -> dict[str, list[str]]:
    names = [r[0] for r in src.execute(
        "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%' "
        "ORDER BY name")]
    return {n: [r[1] for r in src.execute(f"PRAGMA table_info({_quoted(n)})")] for n in names}


def _pg_tables(pg: Any) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for table, column in pg.execute(
            "SELECT table_name, column_name FROM information_schema.columns WHERE "
            "table_schema = current_schema() ORDER BY table_name, ordinal_position"):
        out.setdefault(table, []).append(column)
    return out


def plan(source: dict[str, list[str]], target: dict[str, list[str]]) -> list[TableReport]:
    """What happens to each source table, in an order that satisfies the usage triggers."""
    known = [*FIRST, *(t.name for t in meta_schema.metadata.sorted_tables),
             *(t.name for t in compute_schema.metadata.sorted_tables)]
    known = list(dict.fromkeys(known))
    order = [n for n in known if n in source] + sorted(set(source) - set(known))
    out = []
    for name in order:
        if name in STAYS:
            continue
        if name in DERIVED:
            out.append(TableReport(name, "derived"))
        elif name not in target:
            out.append(TableReport(name, "left in SQLite (no such table on the target: its "
                                         "store is not on PostgreSQL in this release)"))
        elif not set(source[name]) <= set(target[name]):
            missing = ", ".join(sorted(set(source[name]) - set(target[name])))
            out.append(TableReport(name, f"left in SQLite (the target table lacks {missing})"))
        else:
            out.append(TableReport(name, "copied"))
    return out


def create_tables(url: str) -> None:
    """Create the metadata and compute tables (as a gateway's first start would)."""
    asyncio.run(_open_meta(url))
    db = PostgresComputeDB(url, pool_size=1)
    db.open()
    db.close()


async def _open_meta(url: str) -> None:
    store = PostgresMetaStore(url, max_connections=1)
    await store.open()
    await store.close()


def migrate(spec: str, url: str) -> list[TableReport]:
    """Copy, verify and commit; MigrateError (target untouched) when refused or mismatched."""
    import psycopg

    path = source_file(spec)
    if held_open(path):
        raise MigrateError(f"{path} is open in another process (a running gateway?): stop "
                           "`vallum serve` and every command using this data directory first")
    create_tables(url)
    src = sqlite3.connect(path)                  # only read; recovers a crashed WAL first
    try:
        src.execute("BEGIN")                     # one snapshot of the source
        with psycopg.connect(url) as pg:         # one transaction; commits on a clean exit
            reports = plan(_sqlite_tables(src), _pg_tables(pg))
            columns = _sqlite_tables(src)
            busy = [r.table for r in reports
                    if not r.action.startswith("left") and _has_rows(pg, r.table)]
            if busy:
                raise MigrateError("the target is not empty (" + ", ".join(busy) + "): "
                                   "migrate into a new database or schema")
            for r in reports:
                if r.action == "copied":
                    _copy(src, pg, r.table, columns[r.table])
            _reset_sequences(pg, [r.table for r in reports if r.action == "copied"])
            for r in reports:
                if not r.action.startswith("left"):
                    _verify(src, pg, r, columns[r.table])
            bad = [r.table for r in reports if not r.ok]
            if bad:
                pg.rollback()
                raise MigrateError("verification failed for " + ", ".join(bad)
                                   + "; nothing was committed\n" + format_report(reports))
        return reports
    except psycopg.Error as exc:
        raise MigrateError(f"PostgreSQL refused the copy ({type(exc).__name__}: {exc}); "
                           "nothing was committed") from None
    finally:
        src.close()


def _has_rows(pg: Any, table: str) -> bool:
    row = pg.execute(f"SELECT EXISTS (SELECT 1 FROM {_quoted(table)})").fetchone()  # noqa: S608 - catalogue names
    return bool(row and row[0])


def _copy(src: sqlite3.Connection, pg: Any, table: str, cols: list[str]) -> None:
    names = ", ".join(_quoted(c) for c in cols)
    rows = src.execute(f"SELECT {names} FROM {_quoted(table)}")  # noqa: S608 - names from the catalogue
    with pg.cursor().copy(f"COPY {_quoted(table)} ({names}) FROM STDIN") as copy:
        while batch := rows.fetchmany(_BATCH):
            for row in batch:
                copy.write_row(row)


def _reset_sequences(pg: Any, tables: list[str]) -> None:
    """Rows came with their ids: each serial column's sequence goes on from the largest."""
    for table in tables:
        for (column,) in pg.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = "
                "current_schema() AND table_name = %s AND column_default LIKE 'nextval(%%'",
                (table,)).fetchall():
            pg.execute(f"SELECT setval(pg_get_serial_sequence(%s, %s), COALESCE(MAX({_quoted(column)}), 0) + 1, false) "  # noqa: S608 - catalogue names
                       f"FROM {_quoted(table)}", (_quoted(table), column))


def _verify(src: sqlite3.Connection, pg: Any, r: TableReport, cols: list[str]) -> None:
    names = ", ".join(_quoted(c) for c in cols)
    sql = f"SELECT {names} FROM {_quoted(table := r.table)}"  # noqa: S608 - catalogue names
    a: Iterator[tuple[Any, ...]] = iter(src.execute(sql))
    if table in DERIVED:
        a = _usage_rows(a)
    r.source_rows, r.source_sum = _checksum(a)
    with pg.cursor(name="vallum_verify") as cur:      # server-side: rows stream in batches
        cur.itersize = _BATCH
        cur.execute(sql)
        b: Iterator[tuple[Any, ...]] = iter(cur)
        if table in DERIVED:
            b = _usage_rows(b)
        r.target_rows, r.target_sum = _checksum(b)


def format_report(reports: list[TableReport]) -> str:
    lines = [f"{'table':<22} {'action':<8} {'source':>9} {'target':>9}  checksum"]
    for r in reports:
        if r.action.startswith("left"):
            lines.append(f"{r.table:<22} {r.action}")
            continue
        same = "match" if r.ok else "MISMATCH"
        lines.append(f"{r.table:<22} {r.action:<8} {r.source_rows:>9} {r.target_rows:>9}  "
                     f"{r.target_sum} {same}")
    return "\n".join(lines)
