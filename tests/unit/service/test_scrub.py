"""The scrubber over the in-memory twins: rate limit, cursor file, resume, races with
deletes, SSE-C length checks (a real data directory: tests/functional/test_scrub.py)."""

from __future__ import annotations

import asyncio

import pytest

from vallum.meta.memory import MemoryMetaStore
from vallum.meta.records import BucketRecord, ObjectRecord
from vallum.security.crypto import ssec
from vallum.service import scrub
from vallum.storage.memory import MemoryBlobStore


def test_rate_limit_sleeps_to_keep_the_average(monkeypatch):
    now = [0.0]
    slept = []

    async def fake_sleep(seconds):
        slept.append(seconds)
        now[0] += seconds

    monkeypatch.setattr(scrub.asyncio, "sleep", fake_sleep)
    limit = scrub.RateLimit(1000, clock=lambda: now[0])

    async def main():
        await limit.spend(500)          # 0.5 s of budget used at t=0: wait it out
        now[0] += 2.0                   # a slow read: the budget is already spent
        await limit.spend(500)
        await limit.spend(3000)

    asyncio.run(main())
    assert slept == pytest.approx([0.5, 1.5])
    assert limit.done == 4000


def test_unlimited_rate_never_sleeps(monkeypatch):
    monkeypatch.setattr(scrub.asyncio, "sleep", lambda s: pytest.fail("slept"))
    asyncio.run(scrub.RateLimit(0).spend(10 ** 12))


def test_cursor_round_trip_and_refusals(tmp_path):
    path = tmp_path / "cursor.json"
    assert scrub.load_cursor(path) == scrub.Progress()
    p = scrub.Progress(bucket="b", key="k", version_id="v", versions=3, bytes=10,
                       findings=[scrub.Finding("b", "k", "v", "corrupt", "0" * 32, "bad tag")])
    scrub.save_cursor(path, p)
    assert path.stat().st_mode & 0o777 == 0o600
    assert scrub.load_cursor(path) == p
    p.complete = True
    scrub.save_cursor(path, p)
    assert scrub.load_cursor(path) == scrub.Progress()      # a finished pass: start anew
    path.write_text('{"not": "a cursor"}')
    with pytest.raises(ValueError):
        scrub.load_cursor(path)
    path.write_text("{")
    with pytest.raises(ValueError):
        scrub.load_cursor(path)


# --- the walk over the in-memory twins ------------------------------------------------------

async def stores(n: int, *, sse_c: int | None = None):
    meta, blobs = MemoryMetaStore(), MemoryBlobStore()
    await meta.open()
    await blobs.open()
    await meta.create_bucket(BucketRecord(name="b", created=0.0))
    for i in range(n):
        body = bytes([i]) * 1000
        extra = {ssec.EXTRA: {}} if i == sse_c else {}
        await meta.put_object(ObjectRecord(bucket="b", key=f"k{i}", size=len(body),
                                           blob_id=await blobs.put(body), extra=extra))
    return meta, blobs


def test_a_blob_deleted_with_its_version_mid_scrub_is_not_reported():
    """Beside a running server a version can go between the listing and the read."""
    async def main():
        meta, blobs = await stores(3)
        victim = await meta.get_object("b", "k1")
        real_get = meta.get_object
        calls = []

        async def racing_get(bucket, key, version_id=None):
            rec = await real_get(bucket, key, version_id)
            if key == "k1" and not calls:      # the scrubber's read: the delete lands right after
                calls.append(key)
                await meta.delete_version("b", "k1", victim.version_id)
                await blobs.delete([victim.blob_id])
            return rec

        meta.get_object = racing_get
        done = await scrub.scrub(meta, blobs, scrub.Progress())
        assert done.complete and done.findings == [] and done.versions == 3
        # Rot in a version that stays is reported.
        rec = await real_get("b", "k2")
        blobs._blobs[rec.blob_id] = blobs._blobs[rec.blob_id][:-1]
        again = await scrub.scrub(meta, blobs, scrub.Progress())
        assert [(f.key, f.problem) for f in again.findings] == [("k2", "corrupt")]

    asyncio.run(main())


def test_sse_c_versions_are_checked_for_presence_and_length_only():
    async def main():
        meta, blobs = await stores(2, sse_c=1)
        done = await scrub.scrub(meta, blobs, scrub.Progress())
        assert done.length_only == 1 and done.findings == []
        rec = await meta.get_object("b", "k1")
        blobs._blobs[rec.blob_id] = b"short"
        found = await scrub.scrub(meta, blobs, scrub.Progress())
        assert [(f.key, f.problem) for f in found.findings] == [("k1", "corrupt")]
        await blobs.delete([rec.blob_id])
        found = await scrub.scrub(meta, blobs, scrub.Progress())
        assert [(f.key, f.problem) for f in found.findings] == [("k1", "missing")]

    asyncio.run(main())


def test_resume_continues_after_the_last_checked_version():
    async def main():
        meta, blobs = await stores(5)
        first = await scrub.scrub(meta, blobs, scrub.Progress(), stop=lambda p: p.versions == 2)
        assert not first.complete and first.key == "k1"
        rest = await scrub.scrub(meta, blobs, first, page=2)
        assert rest.complete and rest.versions == 5

    asyncio.run(main())
