"""State shared by gateway processes on one database: the change word, the IAM generation
read without a query per request, and the failed-authentication limits."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vallum.iam import lockouts, sqlstore
from vallum.iam.lockouts import SharedFailureLimiter
from vallum.iam.sqlstore import SQLiteIAMStore
from vallum.iam.store import KeyRow, Op
from vallum.meta.changes import ChangeSignal


def _count_sql(conn: sqlite3.Connection) -> list[str]:
    seen: list[str] = []
    conn.set_trace_callback(seen.append)
    return seen


def test_change_signal_is_seen_through_another_mapping(tmp_path):
    a, b = ChangeSignal(tmp_path / "w"), ChangeSignal(tmp_path / "w")
    assert a.value() == b.value() == 0
    v = a.bump()
    assert b.value() == v != 0
    assert b.bump() > v and a.value() == b.value()
    a.close()
    b.close()


def test_generation_needs_no_query_until_a_change_is_signalled(tmp_path):
    a, b = SQLiteIAMStore(tmp_path / "m.db"), SQLiteIAMStore(tmp_path / "m.db")
    a.open()
    b.open()
    try:
        g0 = b.generation()
        sql = _count_sql(b._conn)
        for _ in range(1000):
            assert b.generation() == g0
        assert sql == []                         # a load of the change word, no query
        g1 = a.apply([Op("put_key", value=KeyRow("AK", "1", "u", "Active", b"w", 1.0))])
        assert b.generation() == g1 > g0         # at once: the writer signalled
        assert len(sql) == 1
    finally:
        a.close()
        b.close()


def test_an_unsignalled_change_is_seen_within_the_poll_interval(tmp_path):
    """A writer killed between its commit and its signal (or on another host)."""
    store = SQLiteIAMStore(tmp_path / "m.db")
    store.open()
    try:
        g0 = store.generation()
        raw = sqlite3.connect(tmp_path / "m.db", isolation_level=None)
        raw.execute("UPDATE iam_generation SET gen = gen + 1 WHERE id = 1")
        raw.close()
        deadline = time.monotonic() + sqlstore.POLL_EVERY + 0.5
        while store.generation() == g0:
            assert time.monotonic() < deadline, "the change was never seen"
            time.sleep(0.02)
    finally:
        store.close()


@pytest.fixture
def db(tmp_path) -> Path:
    path = tmp_path / "meta.sqlite3"
    store = SQLiteIAMStore(path)
    store.open()            # creates the tables, as the gateway does
    store.close()
    return path


def test_limits_are_shared_between_limiters(db):
    one = SharedFailureLimiter(db, max_per_key=4, max_per_address=100, window=60.0)
    two = SharedFailureLimiter(db, max_per_key=4, max_per_address=100, window=60.0)
    try:
        now = time.time()
        for i in range(3):
            (one if i % 2 else two).failed("AKIABRUTE", "10.0.0.1", now=now + i)
        assert one.blocked("AKIABRUTE", "10.0.0.1", now=now + 3) is None
        assert two.blocked("AKIABRUTE", "10.0.0.1", now=now + 3) is None
        one.failed("AKIABRUTE", "10.0.0.1", now=now + 3)     # the 4th, counted across both
        assert two.blocked("AKIABRUTE", "10.0.0.1", now=now + 4) == "key"
        assert one.blocked("AKIABRUTE", "10.0.0.1", now=now + 4) == "key"
        assert two.blocked("AKIAOTHER", "10.0.0.1", now=now + 4) is None
        # Per (key, address): the same key from another address is not locked out.
        assert two.blocked("AKIABRUTE", "10.0.0.2", now=now + 4) is None
        # The lockout lasts until the oldest of the 4 failures leaves the window.
        assert two.blocked("AKIABRUTE", "10.0.0.1", now=now + 59.5) == "key"
        assert two.blocked("AKIABRUTE", "10.0.0.1", now=now + 60.5) is None
    finally:
        one.close()
        two.close()


def test_address_limit_and_no_query_on_the_success_path(db):
    lim = SharedFailureLimiter(db, max_per_key=100, max_per_address=3, window=60.0)
    try:
        now = time.time()
        lim.blocked("AKIAOK", "10.0.0.9", now=now)          # first call reads the lockouts
        sql = _count_sql(lim._conn)
        for _ in range(1000):
            assert lim.blocked("AKIAOK", "10.0.0.9", now=now) is None
        assert sql == []
        for k in ("A1", "A2", "A3"):
            lim.failed("AKIA" + k, "10.0.0.9", now=now)
        assert lim.blocked("AKIAOK", "10.0.0.9", now=now + 1) == "address"
        assert lim.blocked("AKIAOK", "10.0.0.8", now=now + 1) is None
    finally:
        lim.close()


def test_a_busy_database_falls_back_to_counting_here(db, monkeypatch):
    monkeypatch.setattr(lockouts, "BUSY_MS", 50)
    lim = SharedFailureLimiter(db, max_per_key=2, max_per_address=100, window=60.0)
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")               # another writer holds the lock
    try:
        started = time.monotonic()
        now = time.time()
        lim.failed("AKIAB", "10.0.0.1", now=now)
        lim.failed("AKIAB", "10.0.0.1", now=now)
        assert time.monotonic() - started < 2.0    # bounded wait, not the 30 s store timeout
        assert lim.blocked("AKIAB", "10.0.0.1", now=now + 1) == "key"
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        lim.close()


_CHILD = """
import sys, time
from pathlib import Path
from vallum.iam.lockouts import SharedFailureLimiter
lim = SharedFailureLimiter(Path(sys.argv[1]), max_per_key=3, max_per_address=100, window=60.0)
for _ in range(3):
    lim.failed("AKIACHILD", "10.0.0.7")
lim.close()
"""


def test_a_lockout_in_another_process_is_seen_at_once(db, monkeypatch):
    monkeypatch.setattr(lockouts, "POLL_EVERY", 3600.0)     # only the signal can tell
    lim = SharedFailureLimiter(db, max_per_key=3, max_per_address=100, window=60.0)
    try:
        assert lim.blocked("AKIACHILD", "10.0.0.7") is None       # view loaded, poll not due
        subprocess.run([sys.executable, "-c", _CHILD, str(db)], check=True, timeout=60)
        assert lim.blocked("AKIACHILD", "10.0.0.7") == "key"      # signalled, not polled
    finally:
        lim.close()
