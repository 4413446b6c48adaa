"""What only the SQLite backend has: group commit, durability settings, sharing the
file between processes, reopening, and index use."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time

import pytest

from vallum.meta import codec
from vallum.meta.records import ObjectRecord, PartRecord, UploadRecord
from vallum.meta.sqlite import S, SQLiteMetaStore

from . import bucket, obj


def run(coro_fn):
    return asyncio.run(coro_fn())


def test_group_commit_lands_every_concurrent_put(tmp_path):
    async def main():
        s = SQLiteMetaStore(tmp_path / "m.db")
        await s.open()
        await s.create_bucket(bucket())
        commits_before = s.commits
        results = await asyncio.gather(*(s.put_object(obj(f"k{i:04d}")) for i in range(500)))
        assert results == [[]] * 500
        assert s.commits - commits_before < 500          # batched: fewer fsyncs than puts
        page = await s.list_objects("bkt", max_keys=1000)
        assert [e.key for e in page.entries] == [f"k{i:04d}" for i in range(500)]
        await s.close()
    run(main)


def test_failing_precondition_or_statement_only_fails_its_own_op(tmp_path):
    def refuse(cur):
        raise PermissionError("no")

    async def main():
        s = SQLiteMetaStore(tmp_path / "m.db")
        await s.open()
        await s.create_bucket(bucket())
        await s.create_upload(UploadRecord("dup", "bkt", "k", 1.0))
        calls = []
        for i in range(200):
            if i % 10 == 3:
                calls.append(s.put_object(obj(f"k{i:03d}"), precondition=refuse))
            elif i % 10 == 7:       # violates the unique upload id mid-batch
                calls.append(s.create_upload(UploadRecord("dup", "bkt", f"k{i}", 1.0)))
            else:
                calls.append(s.put_object(obj(f"k{i:03d}")))
        results = await asyncio.gather(*calls, return_exceptions=True)
        for i, r in enumerate(results):
            if i % 10 == 3:
                assert isinstance(r, PermissionError)
            elif i % 10 == 7:
                assert isinstance(r, sqlite3.IntegrityError)
            else:
                assert r == []
        page = await s.list_objects("bkt", max_keys=1000)
        assert [e.key for e in page.entries] == \
            [f"k{i:03d}" for i in range(200) if i % 10 not in (3, 7)]
        assert [u.upload_id for u in (await s.list_uploads("bkt")).entries] == ["dup"]
        await s.close()
    run(main)


def test_durability_settings(tmp_path):
    async def main():
        s = SQLiteMetaStore(tmp_path / "m.db")
        await s.open()
        await s.create_bucket(bucket())
        assert s._reader().execute("PRAGMA synchronous").fetchone()[0] == 2     # FULL
        assert s._reader().execute("PRAGMA busy_timeout").fetchone()[0] > 0
        await s.close()
    run(main)
    conn = sqlite3.connect(tmp_path / "m.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


def test_reopen_keeps_data_and_sequence_order(tmp_path):
    async def first():
        s = SQLiteMetaStore(tmp_path / "m.db")
        await s.open()
        await s.create_bucket(bucket())
        await s.put_object(obj("k", "v1", user_meta={"n": "1"}))
        await s.put_object(obj("k", "v2"))
        await s.close()
        await s.close()                                   # idempotent

    async def second():
        s = SQLiteMetaStore(tmp_path / "m.db")
        await s.open()
        assert (await s.get_object("bkt", "k", "v1")).user_meta == {"n": "1"}
        await s.put_object(obj("k", "v0"))                # newest by sequence, not by name
        page = await s.list_versions("bkt")
        assert [e.version_id for e in page.entries] == ["v0", "v2", "v1"]
        await s.delete_version("bkt", "k", "v0")
        await s.put_object(obj("k", "v9"))
        assert (await s.get_object("bkt", "k")).version_id == "v9"
        await s.close()
        with pytest.raises(RuntimeError):
            await s.put_object(obj("x"))

    run(first)
    run(second)


def test_two_stores_on_one_file_share_state(tmp_path):
    async def main():
        a, b = SQLiteMetaStore(tmp_path / "m.db"), SQLiteMetaStore(tmp_path / "m.db")
        await asyncio.gather(a.open(), b.open())
        await a.create_bucket(bucket())
        assert await b.get_bucket("bkt") is not None
        await asyncio.gather(*(s.put_object(obj(f"{name}{i:03d}"))
                               for i in range(100) for name, s in (("a", a), ("b", b))))
        for s in (a, b):
            page = await s.list_objects("bkt", max_keys=1000)
            assert len(page.entries) == 200
        await asyncio.gather(a.close(), b.close())
    run(main)


def test_writer_waits_for_another_writers_lock(tmp_path):
    """Another process holding the write lock: wait up to busy_timeout, then fail cleanly."""
    async def main():
        hasty = SQLiteMetaStore(tmp_path / "m.db", busy_timeout=0.2)
        patient = SQLiteMetaStore(tmp_path / "m.db", busy_timeout=5.0)
        await hasty.open()
        await patient.open()
        await hasty.create_bucket(bucket())
        other = sqlite3.connect(tmp_path / "m.db", isolation_level=None, check_same_thread=False)
        other.execute("BEGIN IMMEDIATE")
        results = await asyncio.gather(hasty.put_object(obj("a")), hasty.put_object(obj("b")),
                                       return_exceptions=True)
        assert all(isinstance(r, sqlite3.OperationalError) and "locked" in str(r)
                   for r in results)
        threading.Timer(0.3, lambda: other.execute("COMMIT")).start()
        t0 = time.perf_counter()
        assert await patient.put_object(obj("c")) == []   # waited for the lock, then committed
        assert time.perf_counter() - t0 >= 0.25
        assert await hasty.put_object(obj("d")) == []     # the refused store still works
        assert [e.key for e in (await patient.list_objects("bkt")).entries] == ["c", "d"]
        other.close()
        await hasty.close()
        await patient.close()
    run(main)


def test_listing_uses_the_partial_index_and_point_reads_use_indexes(tmp_path):
    async def main():
        s = SQLiteMetaStore(tmp_path / "m.db")
        await s.open()
        conn = s._reader()
        params = {"bucket": "b", "start": "a", "end": "b", "n": 10, "key": "k", "seq": 1,
                  "version_id": "v", "param_1": 1, "param_2": 0}

        def plan(stmt):
            rows = conn.execute("EXPLAIN QUERY PLAN " + stmt.sql, params).fetchall()
            return " ".join(r[-1] for r in rows)

        assert "ix_versions_visible" in plan(S.obj_scan[(False, True)])
        assert "ix_versions_visible" in plan(S.obj_scan[(True, False)])
        for stmt in (S.ver_latest, S.ver_rest_of_key, S.ver_scan[(False, True)], S.ver_get):
            assert "USING INDEX" in plan(stmt) and "TEMP B-TREE" not in plan(stmt)
        assert "TEMP B-TREE" not in plan(S.up_scan[(True, True)])
        await s.close()
    run(main)


def test_delimiter_listing_seeks_past_a_huge_prefix(tmp_path):
    """200k keys under one prefix: the roll-up must not read them all."""
    path = tmp_path / "m.db"

    async def setup():
        s = SQLiteMetaStore(path)
        await s.open()
        await s.create_bucket(bucket())
        await s.put_object(obj("a"))
        await s.put_object(obj("z"))
        await s.close()

    run(setup)
    conn = sqlite3.connect(path)
    with conn:
        conn.executemany(S.ver_insert.sql, (
            codec.object_params(ObjectRecord("bkt", f"big/{i:07d}", "null", blob_id=str(i)))
            for i in range(200_000)))
    conn.close()

    async def listing():
        s = SQLiteMetaStore(path)
        await s.open()
        await s.list_objects("bkt", delimiter="/")       # warm up the pool
        t0 = time.perf_counter()
        page = await s.list_objects("bkt", delimiter="/")
        elapsed = time.perf_counter() - t0
        assert ([e.key for e in page.entries], page.common_prefixes) == (["a", "z"], ["big/"])
        page2 = await s.list_objects("bkt", delimiter="/", start_after="big/0100000")
        assert [e.key for e in page2.entries] == ["z"] and page2.common_prefixes == []
        await s.close()
        return elapsed

    assert run(listing) < 0.05


def test_keys_with_nul_and_astral_characters_round_trip(tmp_path):
    async def main():
        s = SQLiteMetaStore(tmp_path / "m.db")
        await s.open()
        await s.create_bucket(bucket())
        weird = ["a\x00b", "a", "a\x00", "\U0001f600", "\uffff", "\ue000"]
        for k in weird:
            await s.put_object(obj(k))
        page = await s.list_objects("bkt")
        assert [e.key for e in page.entries] == sorted(weird, key=lambda k: k.encode())
        assert (await s.get_object("bkt", "a\x00b")).key == "a\x00b"
        await s.close()
    run(main)


def test_cancelled_caller_does_not_break_the_writer(tmp_path):
    async def main():
        s = SQLiteMetaStore(tmp_path / "m.db")
        await s.open()
        await s.create_bucket(bucket())
        task = asyncio.ensure_future(s.put_object(obj("k")))
        await asyncio.sleep(0)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert await s.put_object(obj("j")) == []
        await s.close()
    run(main)


def test_failed_transaction_is_retried_op_by_op(tmp_path):
    """An op that breaks the shared transaction fails alone; its batch-mates are redone."""
    def stall(conn):
        time.sleep(0.2)                 # holds the writer so the next ops share one batch

    def sabotage(conn):
        conn.execute("ROLLBACK")        # wipes the batch's work; RELEASE then fails

    async def main():
        s = SQLiteMetaStore(tmp_path / "m.db")
        await s.open()
        await s.create_bucket(bucket())
        first = asyncio.ensure_future(s._write(stall))
        await asyncio.sleep(0.05)
        calls = [s.put_object(obj(f"k{i}")) for i in range(5)]
        calls.insert(2, s._write(sabotage))
        results = await asyncio.gather(first, *calls, return_exceptions=True)
        assert isinstance(results[3], sqlite3.OperationalError)
        assert [r for i, r in enumerate(results) if i != 3] == [None] + [[]] * 5
        assert [e.key for e in (await s.list_objects("bkt")).entries] == \
            [f"k{i}" for i in range(5)]
        await s.close()
    run(main)


def test_usage_is_backfilled_for_a_data_dir_made_before_it_existed(tmp_path):
    async def fill():
        s = SQLiteMetaStore(tmp_path / "m.db")
        await s.open()
        await s.create_bucket(bucket())
        await s.put_object(obj("a", "v1", size=10, extra={"label": "SECRET"}))
        await s.put_object(obj("b", size=5))
        await s.create_upload(UploadRecord("u", "bkt", "m", 1.0))
        await s.put_part("u", PartRecord(1, 3, "e", "p", 1.0))
        await s.close()

    async def reopen():
        s = SQLiteMetaStore(tmp_path / "m.db")
        await s.open()
        try:
            return await s.bucket_usage("bkt")
        finally:
            await s.close()

    run(fill)
    with sqlite3.connect(tmp_path / "m.db") as conn:     # what an older release left
        conn.execute("DROP TABLE usage")
        for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
            conn.execute(f"DROP TRIGGER {name}")
    used = run(reopen)
    assert (used.bytes, used.objects, used.pending, used.by_label) == (15, 2, 3, {"SECRET": (10, 1, 0), "": (5, 1, 3)})
