"""Opening a shared SQLite file in WAL mode, one process at a time.

Why: while one connection switches a file to WAL (or rebuilds its WAL index after a
crash), ``PRAGMA journal_mode`` on another connection fails with "database is
locked" at once, without waiting for the busy timeout. Gateway workers, the compute
service and the IAM store all open their files together at start-up, so each opener
holds an exclusive ``flock`` on ``<file>.open-lock`` while it sets WAL up and creates
its tables. Ordinary reads and writes never take that lock.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def opening(db_path: Path) -> Iterator[None]:
    """Hold the file's opening lock (blocking) for the ``with`` body."""
    db_path = Path(db_path)
    fd = os.open(db_path.with_name(db_path.name + ".open-lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)                               # closing releases the flock


def _enable_wal(conn: sqlite3.Connection, db_path: Path) -> None:
    mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    if mode.lower() != "wal":
        raise RuntimeError(f"{db_path}: cannot enable WAL (journal_mode={mode})")


def create_schema(conn: sqlite3.Connection, db_path: Path, statements: Iterable[str]) -> None:
    """Switch to WAL, then run ``statements`` (CREATE ... IF NOT EXISTS and the like) in one
    write transaction, all or nothing; call inside ``opening``."""
    _enable_wal(conn, db_path)
    conn.execute("BEGIN IMMEDIATE")
    try:
        for statement in statements:
            conn.execute(statement)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
