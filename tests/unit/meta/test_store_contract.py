"""The MetaStore contract, run on the in-memory and the SQLite backend alike."""

from __future__ import annotations

import asyncio

import pytest

from vallum.meta.base import (
    BucketExists,
    BucketMissing,
    BucketNotEmptyError,
    MetaStore,
    QuotaExceeded,
    UploadMissing,
)
from vallum.meta.records import ObjectRecord, PartRecord, Quota, UploadRecord

from . import BACKENDS, HOLDS_NUL, bucket, obj, run_on


@pytest.fixture(params=BACKENDS)
def run(request, tmp_path):
    def runner(body):
        return run_on(request.param, tmp_path, body)
    runner.kind = request.param
    return runner


def keys(page) -> list[str]:
    return [e.key for e in page.entries]


# -- buckets -------------------------------------------------------------------
def test_bucket_lifecycle(run):
    async def body(s: MetaStore):
        await s.create_bucket(bucket("b2", owner="x"))
        await s.create_bucket(bucket("b1", owner="y", config={"cors": "<CORS/>"}))
        with pytest.raises(BucketExists) as err:
            await s.create_bucket(bucket("b2", owner="z"))
        assert err.value.owner == "x"
        assert [b.name for b in await s.list_buckets()] == ["b1", "b2"]
        assert [b.name for b in await s.list_buckets("y")] == ["b1"]
        got = await s.get_bucket("b1")
        assert got == bucket("b1", owner="y", config={"cors": "<CORS/>"})
        got.versioning, got.object_lock, got.config = "Enabled", True, {"policy": "{}"}
        got.owner = "ignored"
        await s.update_bucket(got)
        again = await s.get_bucket("b1")
        assert (again.versioning, again.object_lock, again.config, again.owner) == \
            ("Enabled", True, {"policy": "{}"}, "y")
        with pytest.raises(BucketMissing):
            await s.update_bucket(bucket("nope"))
        assert await s.get_bucket("nope") is None
        assert await s.delete_bucket("b2") == []
        with pytest.raises(BucketMissing):
            await s.delete_bucket("b2")
    run(body)


def test_delete_bucket_refuses_versions_and_delete_markers_and_aborts_uploads(run):
    async def body(s: MetaStore):
        await s.create_bucket(bucket())
        await s.put_object(obj("k", "v1", delete_marker=True, blob=""))
        with pytest.raises(BucketNotEmptyError):
            await s.delete_bucket("bkt")
        await s.delete_version("bkt", "k", "v1")
        await s.create_upload(UploadRecord("u1", "bkt", "big", 1.0))
        await s.put_part("u1", PartRecord(1, 5, "e", "p1", 1.0))
        await s.put_part("u1", PartRecord(2, 5, "e", "p2", 1.0))
        assert sorted(await s.delete_bucket("bkt")) == ["p1", "p2"]
        assert await s.get_upload("u1") is None
        assert await s.referenced_blobs() == set()
    run(body)


def test_writes_into_missing_bucket_fail(run):
    async def body(s: MetaStore):
        with pytest.raises(BucketMissing):
            await s.put_object(obj("k", b="ghost"))
        with pytest.raises(BucketMissing):
            await s.create_upload(UploadRecord("u", "ghost", "k", 1.0))
    run(body)


# -- objects and versions --------------------------------------------------------
def test_record_round_trip(run):
    rec = ObjectRecord(
        bucket="bkt", key="dir/ключ\x00é" if HOLDS_NUL[run.kind] else "dir/ключ\x01é",
        version_id="v1", size=3, etag="abc",
        last_modified=1700000000.123456, system_meta={"content-type": "text/plain"},
        user_meta={"a": "b"}, checksums={"CRC32": "AAAAAA==", "type": "FULL_OBJECT"},
        inline=b"\x00\x01\xff", storage_class="STANDARD_IA", owner="acct",
        extra={"tags": {"t": "1"}, "retention": [1, 2.5, None, True]})

    async def body(s: MetaStore):
        await s.create_bucket(bucket())
        await s.put_object(rec)
        assert await s.get_object("bkt", rec.key) == rec
        assert await s.get_object("bkt", rec.key, "v1") == rec
        assert await s.get_object("bkt", rec.key, "v2") is None
        assert await s.get_object("bkt", "other") is None
        parts = [PartRecord(1, 5, "e1", "b1", 2.0, {"CRC32": "x"}), PartRecord(2, 1, "e2", "b2", 3.0)]
        mp = ObjectRecord(bucket="bkt", key="mp", etag="x-2", parts=parts)
        await s.put_object(mp)
        assert await s.get_object("bkt", "mp") == mp
    run(body)


def test_null_version_replaces_and_returns_blobs(run):
    async def body(s: MetaStore):
        await s.create_bucket(bucket())
        assert await s.put_object(obj("k", blob="a")) == []
        assert await s.put_object(obj("k", blob="b")) == ["a"]
        assert await s.put_object(obj("k", "v1", blob="c")) == []
        assert await s.put_object(obj("k", blob="d")) == ["b"]     # old null is replaced
        page = await s.list_versions("bkt")
        assert [(e.version_id, e.blob_id, e.is_latest) for e in page.entries] == \
            [("null", "d", True), ("v1", "c", False)]
        # Reusing the replaced blob (copy onto itself) must not free it.
        assert await s.put_object(obj("k", blob="d", size=9)) == []
    run(body)


def test_versions_latest_and_delete_promotes_next_newest(run):
    async def body(s: MetaStore):
        await s.create_bucket(bucket())
        for i in range(1, 4):
            await s.put_object(obj("k", f"v{i}", last_modified=100.0))   # same timestamp
        assert (await s.get_object("bkt", "k")).version_id == "v3"
        assert [e.is_latest for e in (await s.list_versions("bkt")).entries] == [True, False, False]
        removed, blobs = await s.delete_version("bkt", "k", "v3")
        assert removed.version_id == "v3" and removed.is_latest and blobs == ["blob-k-v3"]
        latest = await s.get_object("bkt", "k")
        assert latest.version_id == "v2" and latest.is_latest
        removed, blobs = await s.delete_version("bkt", "k", "v1")      # not latest
        assert not removed.is_latest
        assert (await s.get_object("bkt", "k")).version_id == "v2"
        assert await s.delete_version("bkt", "k", "nope") == (None, [])
        await s.delete_version("bkt", "k", "v2")
        assert await s.get_object("bkt", "k") is None
        assert (await s.list_versions("bkt")).entries == []
    run(body)


def test_delete_marker_hides_key_from_list_objects(run):
    async def body(s: MetaStore):
        await s.create_bucket(bucket())
        await s.put_object(obj("a", "v1"))
        await s.put_object(obj("b", "v1"))
        await s.put_object(ObjectRecord("bkt", "a", "dm1", delete_marker=True))
        assert keys(await s.list_objects("bkt")) == ["b"]
        assert (await s.get_object("bkt", "a")).delete_marker
        page = await s.list_versions("bkt")
        assert [(e.key, e.version_id, e.delete_marker) for e in page.entries] == \
            [("a", "dm1", True), ("a", "v1", False), ("b", "v1", False)]
        await s.delete_version("bkt", "a", "dm1")
        assert keys(await s.list_objects("bkt")) == ["a", "b"]
    run(body)


def test_precondition_sees_latest_and_aborts_only_its_write(run):
    seen: list[ObjectRecord | None] = []

    def refuse(cur):
        seen.append(cur)
        raise PermissionError("locked")

    async def body(s: MetaStore):
        await s.create_bucket(bucket())
        await s.put_object(obj("k", "v1"), precondition=lambda cur: seen.append(cur))
        with pytest.raises(PermissionError):
            await s.put_object(obj("k", "v2"), precondition=refuse)
        with pytest.raises(PermissionError):
            await s.delete_version("bkt", "k", "v1", precondition=refuse)
        assert seen[0] is None and seen[1].version_id == "v1" and seen[2].version_id == "v1"
        assert [e.version_id for e in (await s.list_versions("bkt")).entries] == ["v1"]
    run(body)


def test_modify_object_rewrites_metadata_only(run):
    async def body(s: MetaStore):
        await s.create_bucket(bucket())
        await s.put_object(obj("k", "v1", size=5, user_meta={"a": "1"}))
        await s.put_object(obj("k", "v2"))

        def change(rec):
            rec.user_meta, rec.system_meta, rec.extra = {"b": "2"}, {"content-type": "x/y"}, {"t": 1}
            rec.size = 999

        returned = await s.modify_object("bkt", "k", "v1", change)
        got = await s.get_object("bkt", "k", "v1")
        assert (got.user_meta, got.system_meta, got.extra, got.size, got.is_latest) == \
            ({"b": "2"}, {"content-type": "x/y"}, {"t": 1}, 5, False)
        assert returned.extra == {"t": 1}
        calls = []
        assert await s.modify_object("bkt", "absent", "null", calls.append) is None
        assert calls == [] and await s.get_object("bkt", "absent") is None
    run(body)


def test_modify_object_refusal_changes_nothing(run):
    async def body(s: MetaStore):
        await s.create_bucket(bucket())
        await s.put_object(obj("k", "v1", user_meta={"a": "1"}))

        def refuse(rec):
            rec.user_meta["a"] = "changed"
            raise PermissionError("locked")

        with pytest.raises(PermissionError):
            await s.modify_object("bkt", "k", "v1", refuse)
        assert (await s.get_object("bkt", "k", "v1")).user_meta == {"a": "1"}
    run(body)


def test_concurrent_modifications_are_serialised(run):
    async def body(s: MetaStore):
        await s.create_bucket(bucket())
        await s.put_object(obj("k", "v1", extra={"n": 0}))

        def bump(rec):
            rec.extra["n"] += 1

        await asyncio.gather(*(s.modify_object("bkt", "k", "v1", bump) for _ in range(50)))
        assert (await s.get_object("bkt", "k", "v1")).extra == {"n": 50}
    run(body)


def test_returned_records_are_copies(run):
    async def body(s: MetaStore):
        await s.create_bucket(bucket())
        rec = obj("k", user_meta={"a": "1"})
        await s.put_object(rec)
        rec.user_meta["a"] = "changed"
        got = await s.get_object("bkt", "k")
        got.user_meta["a"] = "changed too"
        assert (await s.get_object("bkt", "k")).user_meta == {"a": "1"}
    run(body)


# -- listings (examples; the exhaustive checks are in test_listing_model.py) -------------
def test_list_objects_delimiter_markers_and_truncation(run):
    async def body(s: MetaStore):
        await s.create_bucket(bucket())
        for k in ["a", "b/1", "b/2", "b/c/3", "c", "d/1", "e"]:
            await s.put_object(obj(k))
        page = await s.list_objects("bkt", delimiter="/")
        assert (keys(page), page.common_prefixes, page.is_truncated) == \
            (["a", "c", "e"], ["b/", "d/"], False)
        page = await s.list_objects("bkt", delimiter="/", max_keys=2)
        assert (keys(page), page.common_prefixes, page.is_truncated, page.next_marker) == \
            (["a"], ["b/"], True, "b/")
        page = await s.list_objects("bkt", delimiter="/", start_after="b/", max_keys=2)
        assert (keys(page), page.common_prefixes, page.next_marker) == (["c"], ["d/"], "d/")
        page = await s.list_objects("bkt", delimiter="/", start_after="b/1")   # inside b/
        assert (keys(page), page.common_prefixes) == (["c", "e"], ["d/"])
        page = await s.list_objects("bkt", prefix="b/", delimiter="/")
        assert (keys(page), page.common_prefixes) == (["b/1", "b/2"], ["b/c/"])
        page = await s.list_objects("bkt", max_keys=7)
        assert len(page.entries) == 7 and not page.is_truncated and page.next_marker == "e"
        page = await s.list_objects("bkt", max_keys=0)
        assert page.entries == [] and not page.is_truncated and page.next_marker is None
        page = await s.list_objects("bkt", prefix="zz")
        assert page.entries == [] and page.common_prefixes == [] and not page.is_truncated
        assert (await s.list_objects("ghost")).entries == []
    run(body)


def test_list_objects_truncated_only_when_more_exists(run):
    async def body(s: MetaStore):
        await s.create_bucket(bucket())
        for k in ["x/1", "x/2", "y"]:
            await s.put_object(obj(k))
        await s.put_object(ObjectRecord("bkt", "z", "v", delete_marker=True))
        page = await s.list_objects("bkt", delimiter="/", max_keys=2)
        assert (page.common_prefixes, keys(page), page.is_truncated) == (["x/"], ["y"], False)
    run(body)


def test_list_versions_markers(run):
    async def body(s: MetaStore):
        await s.create_bucket(bucket())
        for k, v in [("a", "1"), ("a", "2"), ("a", "3"), ("b", "1"), ("c/x", "1"), ("c/y", "1")]:
            await s.put_object(obj(k, v))
        page = await s.list_versions("bkt", max_keys=2)
        assert [(e.key, e.version_id) for e in page.entries] == [("a", "3"), ("a", "2")]
        assert (page.is_truncated, page.next_marker, page.next_version_marker) == (True, "a", "2")
        page = await s.list_versions("bkt", key_marker="a", version_id_marker="2", delimiter="/")
        assert [(e.key, e.version_id) for e in page.entries] == [("a", "1"), ("b", "1")]
        assert page.common_prefixes == ["c/"] and page.next_marker == "c/"
        assert page.next_version_marker is None and not page.is_truncated
        page = await s.list_versions("bkt", key_marker="a")
        assert [e.key for e in page.entries] == ["b", "c/x", "c/y"]
        page = await s.list_versions("bkt", key_marker="c/", delimiter="/")
        assert page.entries == [] and page.common_prefixes == [] and not page.is_truncated
    run(body)


# -- multipart -------------------------------------------------------------------------
def test_upload_parts_complete(run):
    async def body(s: MetaStore):
        await s.create_bucket(bucket())
        up = UploadRecord("u1", "bkt", "big", 5.0, system_meta={"content-type": "a/b"},
                          checksum_algorithm="CRC32", checksum_type="COMPOSITE")
        await s.create_upload(up)
        assert await s.get_upload("u1") == up
        assert await s.get_upload("zz") is None
        for n in (3, 1, 2):
            assert await s.put_part("u1", PartRecord(n, 10, f"e{n}", f"p{n}", 1.0)) == []
        assert await s.put_part("u1", PartRecord(2, 11, "e2b", "p2b", 2.0)) == ["p2"]
        assert await s.put_part("u1", PartRecord(2, 11, "e2b", "p2b", 2.0)) == []   # same blob
        parts, more = await s.list_parts("u1", max_parts=2)
        assert [p.part_number for p in parts] == [1, 2] and more
        parts, more = await s.list_parts("u1", part_number_marker=2)
        assert [p.part_number for p in parts] == [3] and not more
        assert await s.list_parts("u1", part_number_marker=3) == ([], False)
        assert await s.referenced_blobs() == {"p1", "p2b", "p3"}
        await s.put_object(obj("big", blob="old"))
        all_parts, _ = await s.list_parts("u1")
        record = ObjectRecord("bkt", "big", etag="x-2", parts=all_parts[:2])
        freed = await s.complete_upload("u1", record)
        assert sorted(freed) == ["old", "p3"]
        assert await s.get_object("bkt", "big") == record
        assert await s.get_upload("u1") is None
        assert await s.referenced_blobs() == {"p1", "p2b"}
        with pytest.raises(UploadMissing):
            await s.complete_upload("u1", record)
        with pytest.raises(UploadMissing):
            await s.put_part("u1", PartRecord(1, 1, "e", "p", 1.0))
        with pytest.raises(UploadMissing):
            await s.abort_upload("u1")
    run(body)


def test_complete_upload_precondition_failure_keeps_upload(run):
    async def body(s: MetaStore):
        await s.create_bucket(bucket())
        await s.create_upload(UploadRecord("u1", "bkt", "k", 1.0))
        await s.put_part("u1", PartRecord(1, 1, "e", "p1", 1.0))

        def refuse(cur):
            raise FileExistsError

        with pytest.raises(FileExistsError):
            await s.complete_upload("u1", ObjectRecord("bkt", "k", parts=[]), precondition=refuse)
        assert await s.get_upload("u1") is not None
        assert await s.get_object("bkt", "k") is None
        assert await s.abort_upload("u1") == ["p1"]
    run(body)


def test_list_uploads_order_markers_and_delimiter(run):
    async def body(s: MetaStore):
        await s.create_bucket(bucket())
        await s.create_bucket(bucket("other"))
        for uid, key in [("u3", "b"), ("u1", "a"), ("u2", "a"), ("u4", "d/1"), ("u5", "d/2"),
                         ("u6", "e")]:
            await s.create_upload(UploadRecord(uid, "bkt", key, 1.0))
        await s.create_upload(UploadRecord("ux", "other", "a", 1.0))
        page = await s.list_uploads("bkt")
        assert [u.upload_id for u in page.entries] == ["u1", "u2", "u3", "u4", "u5", "u6"]
        page = await s.list_uploads("bkt", max_uploads=1)
        assert (page.next_marker, page.next_version_marker, page.is_truncated) == ("a", "u1", True)
        page = await s.list_uploads("bkt", key_marker="a", upload_id_marker="u1", delimiter="/")
        assert [u.upload_id for u in page.entries] == ["u2", "u3", "u6"]
        assert page.common_prefixes == ["d/"]
        page = await s.list_uploads("bkt", key_marker="a")
        assert [u.upload_id for u in page.entries] == ["u3", "u4", "u5", "u6"]
        page = await s.list_uploads("bkt", prefix="d/", max_uploads=1)
        assert [u.upload_id for u in page.entries] == ["u4"] and page.is_truncated
    run(body)


def test_referenced_blobs_covers_versions_manifests_and_parts(run):
    async def body(s: MetaStore):
        await s.create_bucket(bucket())
        await s.put_object(obj("a", "v1", blob="b1"))
        await s.put_object(obj("a", "v2", blob="b2"))
        await s.put_object(ObjectRecord("bkt", "m", parts=[PartRecord(1, 1, "e", "m1", 1.0)]))
        await s.put_object(ObjectRecord("bkt", "i", inline=b"x"))
        await s.create_upload(UploadRecord("u", "bkt", "k", 1.0))
        await s.put_part("u", PartRecord(1, 1, "e", "u1", 1.0))
        assert await s.referenced_blobs() == {"b1", "b2", "m1", "u1"}
    run(body)


# -- usage and quotas -------------------------------------------------------------
def test_usage_counts_versions_labels_and_parts_and_goes_with_the_bucket(run):
    async def body(s: MetaStore):
        await s.create_bucket(bucket())
        await s.create_bucket(bucket("two"))
        await s.create_bucket(bucket("theirs", owner="acct2"))
        await s.put_object(obj("a", "v1", size=10))
        await s.put_object(obj("a", "v2", size=20, extra={"label": "SECRET"}))
        await s.put_object(obj("a", "v3", delete_marker=True, blob=""))
        await s.put_object(obj("k", "null", b="two", size=5))
        await s.put_object(obj("k", "null", b="two", size=7))          # replaces: credited
        await s.put_object(obj("k", "null", b="theirs", size=1000))
        await s.create_upload(UploadRecord("u", "bkt", "m", 1.0))
        await s.put_part("u", PartRecord(1, 4, "e", "p1", 1.0))
        await s.put_part("u", PartRecord(1, 6, "e", "p2", 1.0))         # replaces part 1
        await s.create_upload(UploadRecord("s", "bkt", "n", 1.0, extra={"label": "SECRET"}))
        await s.put_part("s", PartRecord(1, 2, "e", "s1", 1.0))         # at the upload's label
        used = await s.bucket_usage("bkt")
        assert (used.bytes, used.objects, used.pending) == (30, 2, 8)
        assert used.by_label == {"": (10, 1, 6), "SECRET": (20, 1, 2)}
        await s.abort_upload("s")
        assert sorted(await s.account_usage("acct1")) == ["bkt", "two"]
        assert (await s.account_usage("acct1"))["two"].bytes == 7
        await s.modify_object("bkt", "a", "v2", lambda r: r.extra.update(label="TOP SECRET"))
        assert (await s.bucket_usage("bkt")).by_label == {"": (10, 1, 6), "TOP SECRET": (20, 1, 0)}
        await s.complete_upload("u", ObjectRecord("bkt", "m", "v9", size=6,
                                                  parts=[PartRecord(1, 6, "e", "p2", 1.0)]))
        used = await s.bucket_usage("bkt")
        assert (used.bytes, used.objects, used.pending) == (36, 3, 0)
        await s.delete_version("bkt", "a", "v1")
        assert (await s.bucket_usage("bkt")).bytes == 26
        await s.set_quota("bucket:two", Quota(max_bytes=100))
        await s.delete_version("two", "k", "null")
        await s.delete_bucket("two")
        assert await s.get_quota("bucket:two") is None            # a new "two" starts clean
        assert (await s.bucket_usage("two")).bytes == 0
    run(body)


def test_quota_refuses_growth_past_it_and_changes_nothing(run):
    async def body(s: MetaStore):
        await s.create_bucket(bucket())
        await s.create_bucket(bucket("two"))
        await s.set_quota("bucket:bkt", Quota(max_bytes=100, max_objects=3))
        assert await s.get_quota("bucket:bkt") == Quota(100, 3)
        await s.put_object(obj("a", size=60))
        with pytest.raises(QuotaExceeded) as err:
            await s.put_object(obj("b", size=41))
        assert (err.value.scope, err.value.what) == ("bucket:bkt", "storage")
        assert await s.get_object("bkt", "b") is None
        await s.put_object(obj("a", size=100))                     # an overwrite within it
        await s.put_object(obj("b", size=0))
        await s.put_object(obj("c", size=0))
        with pytest.raises(QuotaExceeded) as err:
            await s.put_object(obj("d", size=0))
        assert err.value.what == "object count"
        # Parts in flight count: a part that would pass the quota is refused.
        await s.create_upload(UploadRecord("u", "bkt", "m", 1.0))
        with pytest.raises(QuotaExceeded):
            await s.put_part("u", PartRecord(1, 1, "e", "p1", 1.0))
        # A quota lowered below usage refuses growth but never a write that shrinks usage.
        await s.set_quota("bucket:bkt", Quota(max_bytes=10))
        await s.put_object(obj("a", size=50))
        with pytest.raises(QuotaExceeded):
            await s.put_object(obj("a", size=51))
        # The account's quota covers all its buckets.
        await s.set_quota("bucket:bkt", None)
        await s.set_quota("account:acct1", Quota(max_bytes=60))
        with pytest.raises(QuotaExceeded) as err:
            await s.put_object(obj("x", b="two", size=11))
        assert err.value.scope == "account:acct1"
        await s.put_object(obj("x", b="two", size=10))
        used = await s.bucket_usage("bkt")
        assert (used.bytes, used.objects) == (50, 3)
    run(body)
