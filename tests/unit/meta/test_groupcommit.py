"""The shared group-commit writer: one commit per burst, failures isolated, nothing lost."""

from __future__ import annotations

import asyncio
import sqlite3
import threading

import pytest

from vallum.meta.groupcommit import GroupCommitWriter


def _db(path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER)")
    return conn


def test_a_burst_of_writes_shares_one_commit_and_a_failing_write_fails_alone(tmp_path):
    conn = _db(tmp_path / "db")
    w = GroupCommitWriter("test-writer")
    w.start(conn)

    def insert(k: str):
        return lambda c: c.execute("INSERT INTO t VALUES (?, 1)", (k,)).rowcount

    async def main():
        ops = [w.write(insert(f"k{i}")) for i in range(50)] + [w.write(insert("k0"))]
        return await asyncio.gather(*ops, return_exceptions=True)

    try:
        results = asyncio.run(main())
    finally:
        w.stop()
    assert results[:50] == [1] * 50
    assert isinstance(results[50], sqlite3.IntegrityError)       # duplicate key: that op only
    assert w.ops == 51 and w.commits <= 2                        # one hand-over per loop turn
    assert conn.execute("SELECT COUNT(*) FROM t").fetchone()[0] == 50


def test_a_failed_commit_is_retried_one_by_one_and_the_lock_is_honoured(tmp_path):
    conn = _db(tmp_path / "db")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("CREATE TABLE child (k TEXT REFERENCES t(k) DEFERRABLE INITIALLY DEFERRED)")
    lock = threading.Lock()
    w = GroupCommitWriter("test-writer", lock=lock)
    w.start(conn)

    def orphan(c):      # fine inside the transaction; the deferred check fails the COMMIT
        return c.execute("INSERT INTO child VALUES ('nobody')").rowcount

    async def main():
        good = [w.write(lambda c, i=i: c.execute("INSERT INTO t VALUES (?, 2)", (f"g{i}",)).rowcount)
                for i in range(5)]
        return await asyncio.gather(*good, w.write(orphan), return_exceptions=True)

    try:
        results = asyncio.run(main())
    finally:
        w.stop()
    assert results[:5] == [1] * 5                                # retried alone: committed
    assert isinstance(results[5], sqlite3.IntegrityError)
    assert conn.execute("SELECT COUNT(*) FROM t").fetchone()[0] == 5
    assert conn.execute("SELECT COUNT(*) FROM child").fetchone()[0] == 0
    assert not conn.in_transaction and lock.acquire(blocking=False)


def test_writes_after_stop_are_refused(tmp_path):
    w = GroupCommitWriter("test-writer", closed_message="closed for the test")
    w.start(_db(tmp_path / "db"))
    w.stop()
    with pytest.raises(RuntimeError, match="closed for the test"):
        asyncio.run(w.write(lambda c: None))
