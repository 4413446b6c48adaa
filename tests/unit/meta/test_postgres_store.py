"""What the PostgreSQL store adds to the shared contract: several gateways (store instances)
on one database stay consistent under concurrent writes, quotas hold across them, and text
PostgreSQL cannot store is refused precisely, changing nothing."""

from __future__ import annotations

import asyncio

import psycopg
import pytest

from tests.support.postgres import fresh_url, shared
from tests.support.postgres import halt as pg_halt
from tests.support.postgres import resume as pg_resume
from tests.support.postgres import start as pg_start
from tests.support.postgres import stop as pg_stop
from vallum.meta.base import QuotaExceeded
from vallum.meta.postgres import (
    OPEN_TIMEOUT_ENV,
    DatabaseUnavailable,
    MetaUnavailable,
    PostgresMetaStore,
    UnstorableText,
    redacted,
)
from vallum.meta.records import ObjectRecord, PartRecord, Quota, UploadRecord

from . import bucket, obj


def on_gateways(n: int, body):
    """Run ``body(stores)`` with ``n`` stores opened on one fresh schema (n gateways)."""
    url = fresh_url()

    async def main():
        stores = [PostgresMetaStore(url, max_connections=4) for _ in range(n)]
        await asyncio.gather(*(s.open() for s in stores))     # racing schema creation
        try:
            return await body(stores)
        finally:
            for s in stores:
                await s.close()

    return asyncio.run(main())


def test_nul_in_keys_prefixes_and_markers_is_refused_and_changes_nothing():
    async def body(stores):
        (s,) = stores
        await s.create_bucket(bucket())
        await s.put_object(obj("k"))
        refused = [
            s.put_object(obj("bad\x00key")),
            s.get_object("bkt", "k\x00"),
            s.list_objects("bkt", prefix="k\x00"),
            s.list_objects("bkt", delimiter="\x00"),
            s.list_versions("bkt", key_marker="\x00"),
            s.list_uploads("bkt", prefix="\x00"),
            s.create_upload(UploadRecord("u1", "bkt", "up\x00", 1.0)),
            s.delete_version("bkt", "k\x00", "null"),
        ]
        for call in refused:
            with pytest.raises(UnstorableText) as err:
                await call
            assert (err.value.code, err.value.status) == ("InvalidArgument", 400)
            assert "NUL" in err.value.message
        assert [e.key for e in (await s.list_versions("bkt")).entries] == ["k"]
        assert (await s.list_uploads("bkt")).entries == []
        assert (await s.bucket_usage("bkt")).objects == 1
    on_gateways(1, body)


def test_concurrent_writers_on_two_gateways_leave_one_latest_version_per_key():
    async def body(stores):
        a, b = stores
        await a.create_bucket(bucket(versioning="Enabled"))
        puts = [(a if i % 2 else b).put_object(obj("hot", f"v{i:03d}")) for i in range(40)]
        await asyncio.gather(*puts)
        page = await a.list_versions("bkt", max_keys=1000)
        assert len(page.entries) == 40
        assert [e.is_latest for e in page.entries].count(True) == 1
        assert (await b.get_object("bkt", "hot")).version_id == page.entries[0].version_id
        assert (await a.bucket_usage("bkt")).objects == 40
    on_gateways(2, body)


def test_bucket_quota_holds_against_concurrent_writes_from_two_gateways():
    async def body(stores):
        a, b = stores
        await a.create_bucket(bucket())
        await a.set_quota("bucket:bkt", Quota(max_objects=5))

        async def put(i: int):
            try:
                await (a if i % 2 else b).put_object(obj(f"k{i:02d}", size=1))
                return True
            except QuotaExceeded:
                return False

        done = await asyncio.gather(*(put(i) for i in range(30)))
        assert done.count(True) == 5
        assert (await b.bucket_usage("bkt")).objects == 5
        assert len((await a.list_objects("bkt")).entries) == 5
    on_gateways(2, body)


def test_account_quota_holds_across_buckets_written_on_two_gateways():
    async def body(stores):
        a, b = stores
        await a.create_bucket(bucket("b1", owner="acct"))
        await b.create_bucket(bucket("b2", owner="acct"))
        await b.create_bucket(bucket("other", owner="someone-else"))
        await a.set_quota("account:acct", Quota(max_bytes=100))

        async def put(i: int):
            store, name = (a, "b1") if i % 2 else (b, "b2")
            try:
                await store.put_object(obj(f"k{i:02d}", b=name, size=10))
                return True
            except QuotaExceeded as exc:
                assert exc.scope == "account:acct"
                return False

        done = await asyncio.gather(*(put(i) for i in range(30)))
        assert done.count(True) == 10
        usage = await a.account_usage("acct")
        assert sum(u.bytes for u in usage.values()) == 100
        # The other tenant is not held to this account's quota.
        await b.put_object(obj("big", b="other", size=1000))
    on_gateways(2, body)


def test_multipart_parts_count_against_the_quota_and_complete_moves_them():
    async def body(stores):
        a, b = stores
        await a.create_bucket(bucket())
        await a.set_quota("bucket:bkt", Quota(max_bytes=10))
        await a.create_upload(UploadRecord("u1", "bkt", "big", 1.0))
        await b.put_part("u1", PartRecord(1, 6, "e", "p1", 1.0))
        with pytest.raises(QuotaExceeded):
            await a.put_part("u1", PartRecord(2, 6, "e", "p2", 1.0))
        assert (await a.bucket_usage("bkt")).pending == 6
        parts, _ = await b.list_parts("u1")
        await b.complete_upload("u1", ObjectRecord("bkt", "big", "null", size=6, parts=parts))
        usage = await a.bucket_usage("bkt")
        assert (usage.bytes, usage.objects, usage.pending) == (6, 1, 0)
    on_gateways(2, body)


def test_urls_are_checked_and_passwords_never_shown():
    with pytest.raises(ValueError):
        PostgresMetaStore("sqlite:///tmp/x.db")
    shown = redacted("postgresql://vallum:s3cret-pw@db.example:5432/vallum?sslmode=require")
    assert "s3cret-pw" not in shown and shown.startswith("postgresql://vallum:***@db.example:5432/")
    assert redacted("postgresql://db/vallum") == "postgresql://db/vallum"


def test_lost_connections_answer_503_then_the_store_recovers_by_itself():
    async def body(stores):
        (s,) = stores
        await s.create_bucket(bucket())
        await s.put_object(obj("before"))
        # What a restart or failover does to the gateway's connections.
        with psycopg.connect(shared().url(), autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          "WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()")
        with pytest.raises(DatabaseUnavailable) as err:
            await s.put_object(obj("during"))
        assert (err.value.code, err.value.status) == ("ServiceUnavailable", 503)
        assert err.value.headers == {"Retry-After": "1"}
        await s.put_object(obj("after"))            # the pool replaced its connections
        assert [e.key for e in (await s.list_objects("bkt")).entries] == ["after", "before"]
    on_gateways(1, body)


def test_a_write_cut_off_at_commit_is_looked_up_by_transaction_id():
    async def body(stores):
        (s,) = stores
        with psycopg.connect(s.url, autocommit=True) as conn:
            with conn.transaction():
                committed = conn.execute("SELECT txid_current()").fetchone()[0]
            with pytest.raises(psycopg.errors.DivisionByZero), conn.transaction():
                aborted = conn.execute("SELECT txid_current()").fetchone()[0]
                conn.execute("SELECT 1 / 0")
        assert await asyncio.to_thread(s._committed, committed) is True
        assert await asyncio.to_thread(s._committed, aborted) is False
    on_gateways(1, body)


def test_an_unreachable_database_fails_open_precisely(monkeypatch):
    monkeypatch.setenv(OPEN_TIMEOUT_ENV, "0.5")
    store = PostgresMetaStore("postgresql://vallum:pw-abc@127.0.0.1:1/vallum")
    with pytest.raises(MetaUnavailable) as err:
        asyncio.run(store.open())
    assert "postgresql://vallum:***@127.0.0.1:1/vallum" in str(err.value)
    assert "pw-abc" not in str(err.value)


def test_database_restart_answers_503_meanwhile_and_the_store_recovers_by_itself():
    server = pg_start()                  # a server of its own: this test restarts it
    try:
        async def main():
            store = PostgresMetaStore(server.url(), pool_wait=1.0)
            await store.open()
            try:
                await store.create_bucket(bucket())
                await store.put_object(obj("before"))
                assert await store.reachable() is True
                pg_halt(server)
                assert await store.reachable() is False
                with pytest.raises(DatabaseUnavailable):
                    await store.put_object(obj("while-down"))
                pg_resume(server)
                for _ in range(50):
                    if await store.reachable():
                        break
                    await asyncio.sleep(0.1)
                await store.put_object(obj("after"))
                keys = [e.key for e in (await store.list_objects("bkt")).entries]
                assert keys == ["after", "before"]
                assert (await store.bucket_usage("bkt")).objects == 2
            finally:
                await store.close()

        asyncio.run(main())
    finally:
        pg_stop(server)
