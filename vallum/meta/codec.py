"""Records <-> table rows: dict fields as compact JSON text, parts as a JSON list.

Row tuples are in the column order of the tables in ``schema`` (the SQL
backends select ``*``-equivalent column lists built from those tables). The
in-memory backend round-trips records through here too, so both backends
store exactly what survives JSON (and share no mutable state with callers).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from vallum.meta.records import BucketRecord, ObjectRecord, PartRecord, UploadRecord

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_loads = json.loads


def dump(value: dict[str, Any]) -> str:
    return _dumps(value) if value else "{}"


def load(text: str | None) -> dict[str, Any]:
    """A dict column; None (a column a listing does not select) reads as empty."""
    return {} if text is None or text == "{}" else _loads(text)


# -- buckets ---------------------------------------------------------------
def bucket_params(b: BucketRecord) -> dict[str, Any]:
    return {"name": b.name, "created": b.created, "region": b.region, "owner": b.owner,
            "versioning": b.versioning, "object_lock": int(b.object_lock),
            "config": dump(b.config)}


def bucket_from_row(r: Sequence[Any]) -> BucketRecord:
    return BucketRecord(name=r[0], created=r[1], region=r[2], owner=r[3], versioning=r[4],
                        object_lock=bool(r[5]), config=load(r[6]))


# -- parts -----------------------------------------------------------------
def part_params(upload_id: str, p: PartRecord) -> dict[str, Any]:
    return {"upload_id": upload_id, "part_number": p.part_number, "size": p.size,
            "etag": p.etag, "blob_id": p.blob_id, "last_modified": p.last_modified,
            "checksums": dump(p.checksums)}


def part_from_row(r: Sequence[Any]) -> PartRecord:
    """Row of the ``parts`` table without its leading upload_id."""
    return PartRecord(part_number=r[0], size=r[1], etag=r[2], blob_id=r[3],
                      last_modified=r[4], checksums=load(r[5]))


def dump_manifest(parts: list[PartRecord] | None) -> str | None:
    if parts is None:
        return None
    return _dumps([[p.part_number, p.size, p.etag, p.blob_id, p.last_modified, p.checksums]
                   for p in parts])


def load_manifest(text: str | None) -> list[PartRecord] | None:
    if text is None:
        return None
    return [PartRecord(n, size, etag, blob, lm, cs) for n, size, etag, blob, lm, cs in _loads(text)]


def manifest_blob_ids(text: str | None) -> list[str]:
    return [] if text is None else [item[3] for item in _loads(text)]


# -- object versions ---------------------------------------------------------
def object_params(o: ObjectRecord, is_latest: bool = True) -> dict[str, Any]:
    return {"bucket": o.bucket, "key": o.key, "version_id": o.version_id, "size": o.size,
            "etag": o.etag, "last_modified": o.last_modified,
            "system_meta": dump(o.system_meta), "user_meta": dump(o.user_meta),
            "checksums": dump(o.checksums), "blob_id": o.blob_id, "inline": o.inline,
            "parts": dump_manifest(o.parts), "delete_marker": int(o.delete_marker),
            "is_latest": int(is_latest), "storage_class": o.storage_class, "owner": o.owner,
            "extra": dump(o.extra)}


def object_from_row(r: Sequence[Any]) -> ObjectRecord:
    """Row of the ``versions`` table, seq first."""
    return ObjectRecord(bucket=r[1], key=r[2], version_id=r[3], size=r[4], etag=r[5],
                        last_modified=r[6], system_meta=load(r[7]), user_meta=load(r[8]),
                        checksums=load(r[9]), blob_id=r[10],
                        inline=None if r[11] is None else bytes(r[11]),
                        parts=load_manifest(r[12]), delete_marker=bool(r[13]),
                        is_latest=bool(r[14]), storage_class=r[15], owner=r[16],
                        extra=load(r[17]))


def row_blob_ids(blob_id: str | None, manifest: str | None) -> list[str]:
    """Blob ids of a stored version, from its blob_id and parts columns."""
    if manifest is not None:
        ids = manifest_blob_ids(manifest)
        if ids:
            return ids
    return [blob_id] if blob_id else []


# -- uploads -----------------------------------------------------------------
def upload_params(u: UploadRecord) -> dict[str, Any]:
    return {"upload_id": u.upload_id, "bucket": u.bucket, "key": u.key, "initiated": u.initiated,
            "system_meta": dump(u.system_meta), "user_meta": dump(u.user_meta),
            "checksum_algorithm": u.checksum_algorithm, "checksum_type": u.checksum_type,
            "storage_class": u.storage_class, "owner": u.owner, "extra": dump(u.extra)}


def upload_from_row(r: Sequence[Any]) -> UploadRecord:
    """Row of the ``uploads`` table, seq first."""
    return UploadRecord(upload_id=r[1], bucket=r[2], key=r[3], initiated=r[4],
                        system_meta=load(r[5]), user_meta=load(r[6]),
                        checksum_algorithm=r[7], checksum_type=r[8], storage_class=r[9],
                        owner=r[10], extra=load(r[11]))


# -- whole-record copies for the in-memory backend ---------------------------
def listed_object(o: ObjectRecord) -> ObjectRecord:
    """A copy as listings return it: no inline body, no HTTP or user metadata."""
    copy = clone_object(o)
    copy.inline, copy.system_meta, copy.user_meta = None, {}, {}
    return copy


def clone_object(o: ObjectRecord, is_latest: bool | None = None) -> ObjectRecord:
    p = object_params(o, o.is_latest if is_latest is None else is_latest)
    return object_from_row([0, *p.values()])


def clone_bucket(b: BucketRecord) -> BucketRecord:
    return bucket_from_row(list(bucket_params(b).values()))


def clone_upload(u: UploadRecord) -> UploadRecord:
    return upload_from_row([0, *upload_params(u).values()])


def clone_part(p: PartRecord) -> PartRecord:
    return part_from_row(list(part_params("", p).values())[1:])
