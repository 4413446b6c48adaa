"""Schema versions of every store, their forward migrations, and the check at start.

Each database file holds a ``vallum_schema`` table: one row per store kept in it (the
metadata, IAM and compute tables share ``meta.sqlite3``; the key table has its own file)
with the version that last wrote it. A file with tables but no row for a store predates
versioning: version 0. `vallum serve` refuses a version newer than the code knows (an
older release must not write a newer release's data) and, for an older one, asks for
`vallum upgrade` (or runs it with --auto-upgrade). Migrations of one file run in one
transaction, so a failed upgrade changes nothing.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from vallum.compute import schema as compute_schema
from vallum.iam import schema as iam_schema
from vallum.meta import schema as meta_schema
from vallum.security.crypto.keytable import KEYTABLE_FILE
from vallum.sqlite_open import create_schema, opening

META_FILE = "meta.sqlite3"
VERSION_TABLE = "vallum_schema"
_DDL = ("CREATE TABLE IF NOT EXISTS vallum_schema (store TEXT PRIMARY KEY, "
        "version INTEGER NOT NULL, updated REAL NOT NULL)")
_UPSERT = ("INSERT INTO vallum_schema (store, version, updated) VALUES (?, ?, ?) "
           "ON CONFLICT(store) DO UPDATE SET version = excluded.version, updated = excluded.updated")
_STAMP = "INSERT OR IGNORE INTO vallum_schema (store, version, updated) VALUES (?, ?, ?)"
# The key table (security/crypto/keytable.py: one ``deks`` table) is versioned here.
KEYTABLE_VERSION = 1
KEYTABLE_MIGRATIONS: dict[int, tuple[str, ...]] = {1: ()}


class SchemaError(ValueError):
    """The data directory's schema does not match this code; the message says what to do."""


@dataclass(frozen=True)
class Store:
    name: str
    file: str                                     # database file in the data directory
    version: int                                  # the version this code reads and writes
    migrations: Mapping[int, Sequence[str]]       # n: statements taking n-1 to n


STORES: tuple[Store, ...] = (
    Store("meta", META_FILE, meta_schema.SCHEMA_VERSION, meta_schema.MIGRATIONS),
    Store("iam", META_FILE, iam_schema.SCHEMA_VERSION, iam_schema.MIGRATIONS),
    Store("compute", META_FILE, compute_schema.SCHEMA_VERSION, compute_schema.MIGRATIONS),
    Store("keytable", KEYTABLE_FILE, KEYTABLE_VERSION, KEYTABLE_MIGRATIONS),
)


@dataclass(frozen=True)
class Found:
    store: Store
    version: int | None                           # None: a new file, nothing to migrate


def _read(conn: sqlite3.Connection, stores: Sequence[Store]) -> dict[str, int | None]:
    tables = {r[0] for r in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")}
    if not tables:
        return {s.name: None for s in stores}
    rows = dict(conn.execute("SELECT store, version FROM vallum_schema").fetchall()
                ) if VERSION_TABLE in tables else {}
    return {s.name: int(rows.get(s.name, 0)) for s in stores}


def _by_file(stores: Sequence[Store]) -> dict[str, list[Store]]:
    files: dict[str, list[Store]] = {}
    for s in stores:
        files.setdefault(s.file, []).append(s)
    return files


def found_versions(data_dir: Path, stores: Sequence[Store] = STORES) -> list[Found]:
    out = []
    for file, group in _by_file(stores).items():
        path = Path(data_dir) / file
        if not path.exists():
            out += [Found(s, None) for s in group]
            continue
        conn = sqlite3.connect(path, timeout=30)
        try:
            versions = _read(conn, group)
        except sqlite3.DatabaseError as exc:
            raise SchemaError(f"{path}: cannot read its schema version ({exc})") from None
        finally:
            conn.close()
        out += [Found(s, versions[s.name]) for s in group]
    return out


def _refuse_newer(data_dir: Path, found: Sequence[Found]) -> None:
    newer = [f for f in found if f.version is not None and f.version > f.store.version]
    if newer:
        what = ", ".join(f"{f.store.name} is version {f.version} (this Vallum knows {f.store.version})"
                         for f in newer)
        raise SchemaError(f"{data_dir} was written by a newer Vallum: {what}. Run that release or a "
                          "later one, or restore a backup taken before the upgrade; refusing to start")


def _stamp_new(data_dir: Path, found: Sequence[Found]) -> None:
    """Record the current versions in files that have no tables yet (a new site)."""
    for file, group in _by_file([f.store for f in found if f.version is None]).items():
        path = Path(data_dir) / file
        with opening(path):
            conn = sqlite3.connect(path, timeout=30, isolation_level=None)
            try:
                create_schema(conn, path, [])                 # WAL, like every store's file
                conn.execute("BEGIN IMMEDIATE")
                try:
                    if all(v is None for v in _read(conn, group).values()):
                        conn.execute(_DDL)
                        conn.executemany(_STAMP, [(s.name, s.version, time.time()) for s in group])
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
            finally:
                conn.close()


def prepare(data_dir: Path, *, auto_upgrade: bool = False, stores: Sequence[Store] = STORES) -> list[str]:
    """Called before a server opens its stores: stamp a new site, refuse a newer schema, and
    upgrade an older one only if ``auto_upgrade`` (else SchemaError naming the command)."""
    data_dir = Path(data_dir)
    found = found_versions(data_dir, stores)
    _refuse_newer(data_dir, found)
    older = [f for f in found if f.version is not None and f.version < f.store.version]
    if older and not auto_upgrade:
        what = ", ".join(f"{f.store.name} {f.version} -> {f.store.version}" for f in older)
        raise SchemaError(f"{data_dir} needs a schema upgrade ({what}): back it up (`vallum backup "
                          f"create`), then run `vallum upgrade --data-dir {data_dir}`, or start with "
                          "--auto-upgrade")
    _stamp_new(data_dir, found)
    return upgrade(data_dir, stores) if older else []


def upgrade(data_dir: Path, stores: Sequence[Store] = STORES) -> list[str]:
    """Run every pending migration, one transaction per database file; what was applied."""
    data_dir = Path(data_dir)
    _refuse_newer(data_dir, found_versions(data_dir, stores))
    applied: list[str] = []
    for file, group in _by_file(stores).items():
        path = data_dir / file
        if not path.exists():
            continue
        with opening(path):
            conn = sqlite3.connect(path, timeout=30, isolation_level=None)
            try:
                applied += _upgrade_file(conn, group)
            finally:
                conn.close()
    _stamp_new(data_dir, found_versions(data_dir, stores))
    return applied


def _upgrade_file(conn: sqlite3.Connection, group: Sequence[Store]) -> list[str]:
    conn.execute("BEGIN IMMEDIATE")
    applied: list[str] = []
    try:
        versions = _read(conn, group)         # again, inside the transaction
        pending = [(s, v) for s in group if (v := versions[s.name]) is not None and v < s.version]
        if pending:
            conn.execute(_DDL)
        for store, found in pending:
            for target in range(found + 1, store.version + 1):
                if target not in store.migrations:
                    raise SchemaError(f"no migration of {store.name} to version {target}")
                for statement in store.migrations[target]:
                    conn.execute(statement)
                applied.append(f"{store.name} {target - 1} -> {target}")
            conn.execute(_UPSERT, (store.name, store.version, time.time()))
        conn.execute("COMMIT")
    except BaseException as exc:
        conn.execute("ROLLBACK")
        if isinstance(exc, sqlite3.Error):
            raise SchemaError(f"migration failed, nothing changed: {exc}") from None
        raise
    return applied
