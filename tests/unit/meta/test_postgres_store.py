"""What the PostgreSQL store adds to the shared contract: several gateways (store instances)
on one database stay consistent under concurrent writes, quotas hold across them, and text
PostgreSQL cannot store is refused precisely, changing nothing."""

from __future__ import annotations

import asyncio

import pytest

from tests.support.postgres import fresh_url
from vallum.meta.base import QuotaExceeded
from vallum.meta.postgres import PostgresMetaStore, UnstorableText, redacted
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
