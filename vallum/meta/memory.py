"""In-memory twin of the metadata store, behaving exactly like the SQLite backend.

Unit tests run against it. Every write is synchronous between awaits, so it is
atomic on one event loop. Records are copied through ``codec`` on the way in
and out, so callers never share state with the store and values that would not
survive the SQL backends (non-JSON extras) fail here too.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Callable, Iterator
from typing import Any

from vallum.meta import codec
from vallum.meta.base import (
    BucketExists,
    BucketMissing,
    BucketNotEmptyError,
    MetaStore,
    Precondition,
    QuotaExceeded,
    UploadMissing,
)
from vallum.meta.listing import paginate, start_of, to_list_page
from vallum.meta.records import (
    BucketRecord,
    ListPage,
    ObjectRecord,
    PartRecord,
    Quota,
    UploadRecord,
    Usage,
)
from vallum.meta.usage_sql import COUNTERS

_Version = tuple[int, ObjectRecord]          # (seq, record)


class MemoryMetaStore(MetaStore):
    def __init__(self) -> None:
        self._seq = itertools.count(1)
        self._buckets: dict[str, BucketRecord] = {}
        self._keys: dict[str, list[str]] = {}                  # bucket -> sorted keys
        self._versions: dict[tuple[str, str], list[_Version]] = {}  # newest first
        self._uploads: dict[str, tuple[int, UploadRecord]] = {}
        self._parts: dict[str, dict[int, PartRecord]] = {}
        self._quotas: dict[str, Quota] = {}
        self._requests: dict[tuple[str, str, str], list[int]] = {}

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    # -- buckets -----------------------------------------------------------
    async def create_bucket(self, bucket: BucketRecord) -> None:
        if bucket.name in self._buckets:
            raise BucketExists(self._buckets[bucket.name].owner)
        self._buckets[bucket.name] = codec.clone_bucket(bucket)

    async def get_bucket(self, name: str) -> BucketRecord | None:
        b = self._buckets.get(name)
        return codec.clone_bucket(b) if b else None

    async def list_buckets(self, owner: str | None = None) -> list[BucketRecord]:
        return [codec.clone_bucket(b) for _, b in sorted(self._buckets.items())
                if owner is None or b.owner == owner]

    async def update_bucket(self, bucket: BucketRecord) -> None:
        b = self._buckets.get(bucket.name)
        if b is None:
            raise BucketMissing(bucket.name)
        new = codec.clone_bucket(bucket)
        b.versioning, b.object_lock, b.config = new.versioning, new.object_lock, new.config

    async def delete_bucket(self, name: str) -> list[str]:
        if name not in self._buckets:
            raise BucketMissing(name)
        if self._keys.get(name):
            raise BucketNotEmptyError(name)
        freed: list[str] = []
        for upload_id in [u for u, (_, rec) in self._uploads.items() if rec.bucket == name]:
            freed += self._drop_upload(upload_id)
        del self._buckets[name]
        self._quotas.pop(f"bucket:{name}", None)
        self._keys.pop(name, None)
        return freed

    # -- objects -----------------------------------------------------------
    async def put_object(self, record: ObjectRecord, *,
                         precondition: Precondition | None = None) -> list[str]:
        return self._put(record, precondition)

    def _put(self, record: ObjectRecord, precondition: Precondition | None,
             credit: int = 0) -> list[str]:
        if record.bucket not in self._buckets:
            raise BucketMissing(record.bucket)
        vkey = (record.bucket, record.key)
        old = self._versions.get(vkey, [])
        if precondition is not None:
            precondition(codec.clone_object(old[0][1]) if old else None)
        new = codec.clone_object(record, is_latest=True)
        replaced = [v for _, v in old if v.version_id == new.version_id]
        self._check_quota(record.bucket, _stored(new) - sum(_stored(v) for v in replaced) - credit,
                          (not new.delete_marker) - sum(not v.delete_marker for v in replaced))
        kept: list[_Version] = []
        freed: list[str] = []
        for seq, v in old:
            if v.version_id == new.version_id:
                freed += v.blob_ids()
            else:
                v.is_latest = False
                kept.append((seq, v))
        self._versions[vkey] = [(next(self._seq), new), *kept]
        if not old:
            bisect.insort(self._keys.setdefault(record.bucket, []), record.key)
        keep = set(new.blob_ids())
        return [b for b in freed if b not in keep]

    async def get_object(self, bucket: str, key: str,
                         version_id: str | None = None) -> ObjectRecord | None:
        for _, v in self._versions.get((bucket, key), []):
            if version_id is None or v.version_id == version_id:
                return codec.clone_object(v)
        return None

    async def delete_version(self, bucket: str, key: str, version_id: str, *,
                             precondition: Precondition | None = None,
                             ) -> tuple[ObjectRecord | None, list[str]]:
        vkey = (bucket, key)
        versions = self._versions.get(vkey, [])
        i = next((i for i, (_, v) in enumerate(versions) if v.version_id == version_id), None)
        if precondition is not None:
            precondition(codec.clone_object(versions[i][1]) if i is not None else None)
        if i is None:
            return None, []
        _, v = versions.pop(i)
        if versions:
            versions[0][1].is_latest = True
        else:
            del self._versions[vkey]
            keys = self._keys[bucket]
            del keys[bisect.bisect_left(keys, key)]
        return codec.clone_object(v), v.blob_ids()

    async def modify_object(self, bucket: str, key: str, version_id: str,
                            change: Callable[[ObjectRecord], None]) -> ObjectRecord | None:
        for _, v in self._versions.get((bucket, key), []):
            if v.version_id == version_id:
                new = codec.clone_object(v)
                change(new)
                v.system_meta, v.user_meta, v.extra = new.system_meta, new.user_meta, new.extra
                return codec.clone_object(v)
        return None

    def _key_stream(self, bucket: str, start: str, inclusive: bool) -> Iterator[str]:
        keys = self._keys.get(bucket, [])
        i = bisect.bisect_left(keys, start) if inclusive else bisect.bisect_right(keys, start)
        while i < len(keys):
            yield keys[i]
            i += 1

    async def list_objects(self, bucket: str, *, prefix: str = "", delimiter: str = "",
                           start_after: str = "", max_keys: int = 1000) -> ListPage:
        def stream(start: str, inclusive: bool = True) -> Iterator[ObjectRecord]:
            for key in self._key_stream(bucket, start, inclusive):
                latest = self._versions[(bucket, key)][0][1]
                if not latest.delete_marker:
                    yield latest

        page = paginate(stream(*start_of(prefix, start_after)), stream, _key,
                        prefix=prefix, delimiter=delimiter, marker=start_after, limit=max_keys)
        return to_list_page(page, _key, codec.listed_object)

    async def list_versions(self, bucket: str, *, prefix: str = "", delimiter: str = "",
                            key_marker: str = "", version_id_marker: str = "",
                            max_keys: int = 1000) -> ListPage:
        def stream(start: str, inclusive: bool = True) -> Iterator[ObjectRecord]:
            for key in self._key_stream(bucket, start, inclusive):
                for _, v in self._versions[(bucket, key)]:
                    yield v

        def first() -> Iterator[ObjectRecord]:
            if key_marker and version_id_marker:
                versions = [v for _, v in self._versions.get((bucket, key_marker), [])]
                ids = [v.version_id for v in versions]
                if version_id_marker in ids:
                    yield from versions[ids.index(version_id_marker) + 1:]
            yield from stream(*start_of(prefix, key_marker))

        page = paginate(first(), stream, _key, prefix=prefix, delimiter=delimiter,
                        marker=key_marker, limit=max_keys)
        return to_list_page(page, _key, codec.listed_object, _version)

    # -- multipart ---------------------------------------------------------
    async def create_upload(self, upload: UploadRecord) -> None:
        if upload.bucket not in self._buckets:
            raise BucketMissing(upload.bucket)
        if upload.upload_id in self._uploads:
            raise ValueError(f"duplicate upload id {upload.upload_id}")
        self._uploads[upload.upload_id] = (next(self._seq), codec.clone_upload(upload))
        self._parts[upload.upload_id] = {}

    async def get_upload(self, upload_id: str) -> UploadRecord | None:
        found = self._uploads.get(upload_id)
        return codec.clone_upload(found[1]) if found else None

    async def put_part(self, upload_id: str, part: PartRecord) -> list[str]:
        parts = self._parts.get(upload_id)
        if parts is None:
            raise UploadMissing(upload_id)
        old = parts.get(part.part_number)
        self._check_quota(self._uploads[upload_id][1].bucket,
                          part.size - (old.size if old else 0), 0)
        parts[part.part_number] = codec.clone_part(part)
        return [old.blob_id] if old and old.blob_id != part.blob_id else []

    async def list_parts(self, upload_id: str, *, part_number_marker: int = 0,
                         max_parts: int = 1000) -> tuple[list[PartRecord], bool]:
        numbers = sorted(n for n in self._parts.get(upload_id, {}) if n > part_number_marker)
        chosen = numbers[:max(max_parts, 0)]
        parts = self._parts.get(upload_id, {})
        return [codec.clone_part(parts[n]) for n in chosen], len(numbers) > len(chosen) > 0

    async def list_uploads(self, bucket: str, *, prefix: str = "", delimiter: str = "",
                           key_marker: str = "", upload_id_marker: str = "",
                           max_uploads: int = 1000) -> ListPage:
        ordered = sorted((rec.key, seq, rec) for seq, rec in self._uploads.values()
                         if rec.bucket == bucket)
        keys = [k for k, _, _ in ordered]

        def stream(start: str, inclusive: bool = True) -> Iterator[UploadRecord]:
            i = bisect.bisect_left(keys, start) if inclusive else bisect.bisect_right(keys, start)
            for _, _, rec in ordered[i:]:
                yield rec

        def first() -> Iterator[UploadRecord]:
            found = self._uploads.get(upload_id_marker) if key_marker else None
            if found and found[1].bucket == bucket and found[1].key == key_marker:
                yield from (rec for k, seq, rec in ordered if k == key_marker and seq > found[0])
            yield from stream(*start_of(prefix, key_marker))

        page = paginate(first(), stream, _key, prefix=prefix, delimiter=delimiter,
                        marker=key_marker, limit=max_uploads)
        return to_list_page(page, _key, codec.clone_upload, _upload_id)

    async def complete_upload(self, upload_id: str, record: ObjectRecord, *,
                              precondition: Precondition | None = None) -> list[str]:
        if upload_id not in self._uploads:
            raise UploadMissing(upload_id)
        pending = sum(p.size for p in self._parts.get(upload_id, {}).values())
        freed = self._put(record, precondition, credit=pending)
        used = set(record.blob_ids())
        return [b for b in self._drop_upload(upload_id) if b not in used] + freed

    async def abort_upload(self, upload_id: str) -> list[str]:
        if upload_id not in self._uploads:
            raise UploadMissing(upload_id)
        return self._drop_upload(upload_id)

    def _drop_upload(self, upload_id: str) -> list[str]:
        del self._uploads[upload_id]
        parts = self._parts.pop(upload_id, {})
        return [parts[n].blob_id for n in sorted(parts)]

    # -- usage and quotas --------------------------------------------------
    def _usage(self, bucket: str) -> Usage:
        usage = Usage()
        for key in self._keys.get(bucket, []):
            for _, v in self._versions[(bucket, key)]:
                if not v.delete_marker:
                    usage.count(str(v.extra.get("label") or ""), v.size, 1, 0)
        for upload_id, (_, rec) in self._uploads.items():
            if rec.bucket == bucket:
                usage.count(str(rec.extra.get("label") or ""), 0, 0,
                            sum(p.size for p in self._parts.get(upload_id, {}).values()))
        return usage

    def _check_quota(self, bucket: str, grow_bytes: int, grow_objects: int) -> None:
        """As the SQLite store judges it: refuse a write that grows a scope past its limit."""
        owner = self._buckets[bucket].owner
        for scope in (f"bucket:{bucket}", f"account:{owner}"):
            quota = self._quotas.get(scope)
            if quota is None:
                continue
            names = [bucket] if scope.startswith("bucket:") else [
                n for n, b in self._buckets.items() if b.owner == owner]
            total = Usage()
            for name in names:
                total.add(self._usage(name))
            size, count = total.bytes + total.pending, total.objects
            if quota.max_bytes is not None and grow_bytes > 0 and size + grow_bytes > quota.max_bytes:
                raise QuotaExceeded(scope, "storage")
            if (quota.max_objects is not None and grow_objects > 0
                    and count + grow_objects > quota.max_objects):
                raise QuotaExceeded(scope, "object count")

    async def bucket_usage(self, bucket: str) -> Usage:
        return self._usage(bucket) if bucket in self._buckets else Usage()

    async def account_usage(self, owner: str) -> dict[str, Usage]:
        return {name: self._usage(name) for name, b in sorted(self._buckets.items()) if b.owner == owner}

    async def get_quota(self, scope: str) -> Quota | None:
        found = self._quotas.get(scope)
        return Quota(found.max_bytes, found.max_objects) if found else None

    async def set_quota(self, scope: str, quota: Quota | None) -> None:
        if quota is None or (quota.max_bytes is None and quota.max_objects is None):
            self._quotas.pop(scope, None)
        else:
            self._quotas[scope] = Quota(quota.max_bytes, quota.max_objects)

    async def add_request_usage(self, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            have = self._requests.setdefault((row["day"], row["account"], row["bucket"]),
                                             [0] * len(COUNTERS))
            for i, name in enumerate(COUNTERS):
                have[i] += int(row[name])

    async def request_usage(self, accounts: list[str] | None,
                            day: str | None) -> list[tuple[Any, ...]]:
        sums: dict[tuple[str, str, str], list[int]] = {}
        for (d, account, bucket), counts in self._requests.items():
            if (accounts is None or account in accounts) and day in (None, d):
                have = sums.setdefault((day or "", account, bucket), [0] * len(COUNTERS))
                for i, n in enumerate(counts):
                    have[i] += n
        return [(*k, *v) for k, v in sorted(sums.items(), key=lambda kv: kv[0][1:])]

    # -- maintenance -------------------------------------------------------
    async def referenced_blobs(self) -> set[str]:
        found = {p.blob_id for parts in self._parts.values() for p in parts.values()}
        for versions in self._versions.values():
            for _, v in versions:
                if v.blob_id:
                    found.add(v.blob_id)
                found.update(p.blob_id for p in v.parts or [])
        return found


def _key(entry: ObjectRecord | UploadRecord) -> str:
    return entry.key


def _version(entry: ObjectRecord) -> str:
    return entry.version_id


def _upload_id(entry: UploadRecord) -> str:
    return entry.upload_id


def _stored(v: ObjectRecord) -> int:
    return 0 if v.delete_marker else v.size
