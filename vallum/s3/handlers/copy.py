"""CopyObject, and the copy-source parsing UploadPartCopy shares.

SSE-C: the source is read with the x-amz-copy-source-server-side-encryption-customer-* key,
the copy is written under the plain x-amz-server-side-encryption-customer-* key (or none), so
a copy onto itself with a new key is how a customer rotates its key, as on AWS."""

from __future__ import annotations

import time
from dataclasses import dataclass

from vallum.compute import object_events as events
from vallum.http import Request, Response, xml_response
from vallum.meta.records import BucketRecord, ObjectRecord
from vallum.s3 import errors, sse, xml
from vallum.s3.conditions import check_copy_source_conditions, iso8601
from vallum.s3.copy_source import HEADER, parse_copy_source
from vallum.s3.handlers import bucket_settings, labels, lock, tagging, visibility
from vallum.s3.handlers.common import (
    encryption_headers,
    get_bucket,
    new_object_key,
    new_version_id,
    system_meta_from,
    unlock,
    user_meta_from,
)
from vallum.s3.handlers.objects import (
    commit_version,
    refuse_hidden_null,
    spill_refused,
    spill_stored,
    version_headers,
    write_precondition,
)
from vallum.s3.names import validate_key
from vallum.security.spill import guard as spill
from vallum.security.spill.guard import SpillDetected, SpillGuard
from vallum.service import storage_quotas as quotas
from vallum.service.ingest import MAX_SINGLE_PUT, store
from vallum.service.reader import read_object


@dataclass
class CopySource:
    bucket: BucketRecord
    record: ObjectRecord
    version_id: str | None


async def resolve_copy_source(request: Request) -> CopySource:
    """The object named by x-amz-copy-source ('/bucket/key?versionId=v', URL-encoded)."""
    ref = parse_copy_source(request.headers[HEADER])
    bucket_name, key, version_id = ref.bucket, ref.key, ref.version_id
    meta = request.services.meta
    bucket = await meta.get_bucket(bucket_name)
    if bucket is None:
        raise errors.NoSuchBucket(BucketName=bucket_name)
    record = (await visibility.latest_version(request, bucket_name, key) if version_id is None
              else await meta.get_object(bucket_name, key, version_id))
    if record is None or (record.delete_marker and version_id is None):
        if version_id is not None:
            raise errors.NoSuchVersion(Key=key, VersionId=version_id)
        raise errors.NoSuchKey(Key=key)
    labels.hide_marker(request, record, labels.missing_error(key, version_id))
    if record.delete_marker:
        raise errors.InvalidRequest("The source of a copy request may not specifically refer to a delete marker by version id.")
    # No read up: a source above the caller's level is answered as missing.
    labels.require_read(request, record, labels.missing_error(key, version_id))
    check_copy_source_conditions(request.headers.mapping(), record.etag, record.last_modified)
    return CopySource(bucket, record, version_id)


async def copy_object(request: Request) -> Response:
    services = request.services
    encryption = sse.write_encryption(request.headers, secure=request.secure)
    source_customer = sse.customer_key(request.headers, secure=request.secure, copy_source=True)
    bucket = await get_bucket(request)
    validate_key(request.key)
    source = await resolve_copy_source(request)
    src = source.record
    headers = request.headers
    source_key = unlock(request, src.extra, source_customer)
    directive = headers.get("x-amz-metadata-directive", "COPY").upper()
    if directive not in ("COPY", "REPLACE"):
        raise errors.InvalidArgument("Unknown metadata directive.", ArgumentName="x-amz-metadata-directive",
                                     ArgumentValue=directive)
    storage_class = headers.get("x-amz-storage-class", src.storage_class)
    same = source.bucket.name == bucket.name and src.key == request.key
    reencrypts = (encryption.customer is not None or encryption.sse is not None
                  or source_key is not None)
    if same and directive == "COPY" and storage_class == src.storage_class and source.version_id is None \
            and bucket.versioning != "Enabled" and not reencrypts:
        raise errors.InvalidRequest(
            "This copy request is illegal because it is trying to copy an object to itself without changing "
            "the object's metadata, storage class, website redirect location or encryption attributes.")
    if src.size > MAX_SINGLE_PUT:
        raise errors.InvalidRequest("The specified copy source is larger than the maximum allowable size "
                                    "for a copy source: 5368709120")
    bucket_settings.check_canned_acl(request, for_object=True, bucket=bucket)
    extra = lock.lock_extra(request, bucket, has_digest=None)
    extra.update(tagging.copy_tags(request, src))
    lock.apply_default(extra, bucket)
    # The copy keeps the highest label: the least upper bound of the source's label and
    # the requested one (or the bucket floor); checked against no write down and the range.
    label, rng = labels.write_label(request, bucket, labels.requested(headers),
                                    [labels.record_label(src.extra)])
    extra["label"] = label.banner()
    await refuse_hidden_null(request, bucket, request.key)
    if directive == "REPLACE":
        system_meta, user_meta = system_meta_from(headers), user_meta_from(headers)
    else:
        system_meta, user_meta = dict(src.system_meta), dict(src.user_meta)
    guard = SpillGuard(label, rng, f"{request.request_id} {bucket.name}/{request.key} copy",
                       spill.mode_of(bucket.config))
    try:      # the new name, metadata and tags are as readable as the body
        guard.check_fields(spill.fields(request.key, user_meta, extra.get(tagging.TAGS_KEY), system_meta))
    except SpillDetected as exc:
        raise spill_refused(request, exc) from None
    extra["label"] = guard.label.banner()
    spill_stored(request, guard)
    record = ObjectRecord(
        bucket=bucket.name, key=request.key, version_id=new_version_id(bucket), size=src.size,
        etag=src.etag, last_modified=time.time(), system_meta=system_meta, user_meta=user_meta,
        checksums=dict(src.checksums), storage_class=storage_class, owner=services.owner_id, extra=extra)
    object_key = new_object_key(encryption.customer, extra)
    if same and source.version_id is None and src.version_id == record.version_id and source_key is None \
            and object_key is None:
        # Rewriting the null version's metadata in place: the body is shared, not copied.
        record.blob_id, record.inline, record.parts = src.blob_id, src.inline, src.parts
    else:
        await quotas.precheck(services.meta, bucket, src.size)
        algorithms = [a for a in src.checksums if a != "type" and src.checksums.get("type") != "COMPOSITE"]
        stored = await store(services.blobs, read_object(services.blobs, src, 0, src.size - 1, source_key),
                             algorithms, customer=object_key)
        record.blob_id, record.inline = stored.blob_id, stored.inline
        if src.parts or source_key is not None or object_key is not None:
            record.etag = stored.etag      # the source's ETag says nothing of the new body
        if src.parts:
            record.checksums = dict(stored.checksums, type="FULL_OBJECT") if stored.checksums else {}
    await commit_version(request, record, await write_precondition(request, bucket))
    await events.object_event(request, events.CREATED_COPY, record)
    out = version_headers(bucket, record, checksums=False)
    out.pop("etag")
    if source.bucket.versioning:
        out["x-amz-copy-source-version-id"] = src.version_id
    out.update(encryption_headers(request, record.extra, encryption.customer))
    body = [("ETag", f'"{record.etag}"'), ("LastModified", iso8601(record.last_modified))]
    for alg, value in record.checksums.items():
        if alg != "type":
            body.append(("Checksum" + alg, value))
    return xml_response(xml.render("CopyObjectResult", body), headers=out)
