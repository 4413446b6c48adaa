"""PutObject, GetObject, HeadObject, DeleteObject.

Server-side encryption: s3/sse.py parses the headers, common.unlock / new_object_key hold
the SSE-C object keys (security/crypto/ssec.py); responses say how the version is encrypted."""

from __future__ import annotations

import time
from collections.abc import Callable

from vallum.compute import object_events as events
from vallum.http import Request, Response
from vallum.meta.base import QuotaExceeded
from vallum.meta.records import NULL_VERSION, BucketRecord, ObjectRecord
from vallum.s3 import errors, sse
from vallum.s3.conditions import (
    DeleteConditions,
    check_delete_conditions,
    check_read_conditions,
    check_write_conditions,
    delete_conditions,
)
from vallum.s3.handlers import bucket_settings, labels, lock, tagging, visibility
from vallum.s3.handlers.common import (
    check_version_id,
    encryption_headers,
    expectations_from,
    find_version,
    get_bucket,
    new_object_key,
    new_version_id,
    object_headers,
    quote_etag,
    system_meta_from,
    unlock,
    user_meta_from,
)
from vallum.s3.names import validate_key
from vallum.s3.ranges import content_range, parse_range
from vallum.security.spill import guard as spill
from vallum.security.spill.guard import SpillDetected
from vallum.service import storage_quotas as quotas
from vallum.service.ingest import ingest
from vallum.service.integrity import checked_body
from vallum.service.reader import inline_body, part_range, read_object

RESPONSE_OVERRIDES = {
    "response-content-type": "content-type",
    "response-content-language": "content-language",
    "response-expires": "expires",
    "response-cache-control": "cache-control",
    "response-content-disposition": "content-disposition",
    "response-content-encoding": "content-encoding",
}


# A write that would replace a null version above the writer's level is refused with the
# operator's throttling answer, which any request may get (docs/security.md, "write up").
HIDDEN_OVERWRITE = "Request rate limited by the operator; retry later."


async def write_precondition(request: Request, bucket: BucketRecord | None = None):
    """The If-None-Match / If-Match check: evaluated now (412, or 404 for If-Match on
    no object) and again inside the metadata transaction, where a condition that no
    longer holds is a concurrent change: 409 ConditionalRequestConflict, as on AWS.

    MAC: a latest version above the caller's level does not exist for the conditions;
    they see the newest version the caller may read (visibility.py, looked up before the
    transaction), so no 412 reveals it. When the write would *replace* it (the null
    version of an unversioned or suspended bucket) it is refused (SlowDown) instead of
    destroyed; a versioned bucket just gets a new, lower version on top of it."""
    headers = request.headers
    conditional = "if-none-match" in headers or "if-match" in headers
    who = labels.subject(request)
    if not conditional and who.read is None:
        return None
    replaces = bucket is None or bucket.versioning != "Enabled"
    beneath = None
    if conditional and who.read is not None and bucket is not None:
        beneath = await visibility.latest_version(request, bucket.name, request.key)

    def check(current: ObjectRecord | None) -> None:
        hidden = current is not None and not labels.readable(who, current)
        if hidden and replaces and current is not None and current.version_id == NULL_VERSION:
            labels.refused(request, "mac: write over a null version above the session level")
            raise errors.SlowDown(HIDDEN_OVERWRITE)
        if hidden:
            current = beneath
        live = current if current is not None and not current.delete_marker else None
        if conditional:
            check_write_conditions(headers.mapping(), live.etag if live else None)

    if not conditional or bucket is None:
        return check
    # Checked once before the body is received (412 / 404 without uploading it)...
    check(await request.services.meta.get_object(bucket.name, request.key))

    def recheck(current: ObjectRecord | None) -> None:
        # ...and again at commit: what changed in between is AWS's 409, retry the write.
        try:
            check(current)
        except (errors.PreconditionFailed, errors.NoSuchKey):
            raise errors.ConditionalRequestConflict() from None

    return recheck


async def refuse_hidden_null(request: Request, bucket: BucketRecord, key: str) -> None:
    """Suspended buckets: a write replaces the null version even when it is not the latest
    (the precondition sees only the latest), so look at it too."""
    if bucket.versioning != "Suspended" or labels.subject(request).read is None:
        return
    null = await request.services.meta.get_object(bucket.name, key, NULL_VERSION)
    if null is not None and not labels.readable(labels.subject(request), null):
        labels.refused(request, "mac: write over a null version above the session level")
        raise errors.SlowDown(HIDDEN_OVERWRITE)


async def put_object(request: Request) -> Response:
    return await write_object(request, events.CREATED_PUT)


async def write_object(request: Request, event: str, *, sized: bool = True) -> Response:
    """Store the request's body as a new version of its key, from its headers: PutObject,
    and PostObject (post_object.py) with its form fields as headers and the file as body
    (``sized=False``: the file's length is known only once it has streamed)."""
    services = request.services
    bucket = await get_bucket(request)
    validate_key(request.key)
    headers = request.headers
    if sized and request.body.length is None and "transfer-encoding" not in headers:
        raise errors.MissingContentLength()
    encryption = sse.write_encryption(headers, secure=request.secure)
    expect = expectations_from(headers)
    system_meta = system_meta_from(headers)
    user_meta = user_meta_from(headers)
    storage_class = headers.get("x-amz-storage-class", "STANDARD")
    if storage_class not in ("STANDARD", "REDUCED_REDUNDANCY", "STANDARD_IA", "ONEZONE_IA",
                             "INTELLIGENT_TIERING", "GLACIER", "DEEP_ARCHIVE", "GLACIER_IR"):
        raise errors.InvalidStorageClass(StorageClassRequested=storage_class)
    bucket_settings.check_canned_acl(request, for_object=True, bucket=bucket)
    extra = lock.lock_extra(request, bucket, has_digest=expect.md5 is not None or bool(expect.checksums))
    extra.update(tagging.tags_extra(request))
    lock.apply_default(extra, bucket)
    precondition = await write_precondition(request, bucket)
    await refuse_hidden_null(request, bucket, request.key)
    # Classification label: checked by MAC (no write down, bucket range), then the body
    # is spill-scanned as it streams (vallum/security).
    guard = labels.put_guard(request, bucket, labels.requested(headers))
    object_key = new_object_key(encryption.customer, extra)
    await quotas.precheck(services.meta, bucket, request.body.length)
    try:
        guard.check_fields(spill.fields(request.key, user_meta, extra.get(tagging.TAGS_KEY), system_meta))
        stored = await ingest(services.blobs, request.body, expect, scanner=guard, customer=object_key)
    except SpillDetected as exc:
        raise spill_refused(request, exc) from None
    record = ObjectRecord(
        bucket=bucket.name, key=request.key, version_id=new_version_id(bucket), size=stored.size,
        etag=stored.etag, last_modified=time.time(), system_meta=system_meta, user_meta=user_meta,
        checksums=dict(stored.checksums, type="FULL_OBJECT") if stored.checksums else {},
        blob_id=stored.blob_id, inline=stored.inline, storage_class=storage_class,
        owner=services.owner_id, extra=extra)
    record.extra["label"] = guard.label.banner()          # raised when the bucket quarantines
    spill_stored(request, guard)
    await commit_version(request, record, precondition)
    await events.object_event(request, event, record)
    out = version_headers(bucket, record, checksums=True)
    out.update(encryption_headers(request, record.extra, encryption.customer))
    return Response(200, out)


def spill_refused(request: Request, exc: SpillDetected) -> errors.S3Error:
    """The S3 error for a spill; the audit record names the spill rule, not an IAM one."""
    request.decision, request.decision_reason = "deny", str(exc)
    return errors.SpillDetected(str(exc))


def spill_stored(request: Request, guard: spill.SpillGuard) -> None:
    """A spill the bucket stores (quarantine, audit-only): the audit names it."""
    if guard.outcome is not None:
        request.decision_reason, request.audit_label = guard.outcome, guard.label.banner()


async def commit_version(request: Request, record: ObjectRecord, precondition=None) -> None:
    """Record a new version whose body is already stored; on failure drop the new body."""
    services = request.services
    try:
        obsolete = await services.meta.put_object(record, precondition=precondition)
    except BaseException as exc:
        await services.discard_blobs(record.blob_ids())
        if isinstance(exc, QuotaExceeded):
            raise quotas.refused(exc) from None
        raise
    keep = set(record.blob_ids())
    await services.discard_blobs([b for b in obsolete if b not in keep])


def version_headers(bucket: BucketRecord, record: ObjectRecord, *, checksums: bool) -> dict[str, str]:
    h = {"etag": quote_etag(record.etag)}
    if bucket.versioning:
        h["x-amz-version-id"] = record.version_id
    if checksums:
        for alg, value in record.checksums.items():
            if alg != "type":
                h["x-amz-checksum-" + alg.lower()] = value
        if "type" in record.checksums:
            h["x-amz-checksum-type"] = record.checksums["type"]
    return h


async def get_object(request: Request) -> Response:
    return await _read(request, with_body=True)


async def head_object(request: Request) -> Response:
    return await _read(request, with_body=False)


async def _read(request: Request, *, with_body: bool) -> Response:
    sse.refuse_on_read(request.headers)
    customer = sse.customer_key(request.headers, secure=request.secure)
    bucket = await get_bucket(request)
    record = await find_version(request, bucket)
    # The key is checked before any condition: no 304/412 is answered without it.
    object_key = unlock(request, record.extra, customer)
    check_read_conditions(request.headers.mapping(), record.etag, record.last_modified)
    size = record.size
    part_param = request.query.get("partNumber")
    range_header = request.headers.get("range")
    headers = object_headers(bucket, record, checksums=False)
    status = 200
    start, end = 0, size - 1
    whole = True
    if part_param is not None:
        if range_header is not None:
            raise errors.InvalidRequest("Cannot specify both Range header and partNumber query parameter")
        try:
            number = int(part_param)
        except ValueError:
            number = 0
        if not 1 <= number <= 10000:
            raise errors.InvalidArgument("Part number must be an integer between 1 and 10000, inclusive",
                                         ArgumentName="partNumber", ArgumentValue=part_param)
        found = part_range(record, number)
        if found is None:
            raise errors.InvalidPartNumber()
        if record.parts:     # AWS: PartsCount only when a part is asked for
            headers["x-amz-mp-parts-count"] = str(len(record.parts))
        if size:             # an empty object has no byte range to name: 200, whole
            start, end = found
            status = 206
            whole = False
            headers["content-range"] = content_range(start, end, size)
    elif range_header is not None:
        parsed = parse_range(range_header, size)
        if parsed is not None:
            start, end = parsed
            status = 206
            whole = False
            headers["content-range"] = content_range(start, end, size)
    if whole and request.headers.get("x-amz-checksum-mode", "").upper() == "ENABLED":
        headers = object_headers(bucket, record, checksums=True)
    headers.update(labels.label_headers(record.extra))
    headers.update(encryption_headers(request, record.extra, customer))
    for param, header in RESPONSE_OVERRIDES.items():
        if param in request.query:
            headers[header] = request.query[param]
    length = max(0, end - start + 1)
    headers["content-length"] = str(length)
    if not with_body or length == 0:
        return Response(status, headers, b"")
    blobs = request.services.blobs
    if record.inline is not None:
        return Response(status, headers, inline_body(blobs, record, object_key)[start:end + 1])
    body = await checked_body(request, read_object(blobs, record, start, end, object_key), length)
    return Response(status, headers, body, length=length)   # first chunk authenticated: status can go


DeleteGuard = Callable[[ObjectRecord | None], None]


async def delete_guard(request: Request, bucket: BucketRecord, key: str, version_id: str | None,
                       cond: DeleteConditions | None) -> DeleteGuard | None:
    """The conditional-delete check, to run inside the delete's transaction on the
    version it removes (or, for a new delete marker, the key's latest version).

    MAC: a version above the caller's level does not exist for the conditions; they
    see the newest version the caller may read (looked up before the transaction), or
    nothing for a named version, so a hidden object answers exactly as a missing one."""
    if cond is None:
        return None
    who = labels.subject(request)
    beneath = None
    if who.read is not None and version_id is None:
        beneath = await visibility.latest_version(request, bucket.name, key)

    def check(current: ObjectRecord | None) -> None:
        if current is not None and not labels.readable(who, current):
            current = beneath
        live = None if current is None or current.delete_marker else current
        check_delete_conditions(cond, None if live is None else
                                (live.etag, live.last_modified, live.size), key)

    return check


async def delete_object(request: Request) -> Response:
    services = request.services
    bucket = await get_bucket(request)
    version_id = check_version_id(request.query.get("versionId"))
    h = request.headers
    guard = await delete_guard(request, bucket, request.key, version_id, delete_conditions(
        h.get("if-match"), h.get("x-amz-if-match-last-modified-time"), h.get("x-amz-if-match-size")))
    headers: dict[str, str] = {}
    if version_id is not None or bucket.versioning != "Enabled":
        target = version_id if version_id is not None else NULL_VERSION
        suspended_marker = bucket.versioning == "Suspended" and version_id is None
        if guard is not None and suspended_marker:
            # The null version need not be the latest: the conditions test the latest.
            guard(await services.meta.get_object(bucket.name, request.key))
            guard = None
        try:
            removed, obsolete = await lock.guarded_delete_version(
                request, bucket, request.key, target, hidden_as_missing=not suspended_marker,
                named=version_id is not None, condition=guard)
        except lock.HiddenVersion:
            # The null marker would replace a null version above the caller's level: leave
            # it, and answer as for a missing key (docs/security.md).
            return Response(204, {"x-amz-delete-marker": "true", "x-amz-version-id": NULL_VERSION})
        await services.discard_blobs(obsolete)
        if removed is not None:
            await events.object_event(request, events.REMOVED_DELETE, removed)
        if version_id is not None and bucket.versioning:   # never-versioned: no version header
            headers["x-amz-version-id"] = version_id
            if removed is not None and removed.delete_marker:
                headers["x-amz-delete-marker"] = "true"
        if suspended_marker:
            marker = await add_delete_marker(request, bucket, request.key, NULL_VERSION)
            await events.object_event(request, events.REMOVED_MARKER, marker)
            headers.update({"x-amz-delete-marker": "true", "x-amz-version-id": NULL_VERSION})
        return Response(204, headers)
    marker = await add_delete_marker(request, bucket, request.key, new_version_id(bucket),
                                     precondition=guard)
    await events.object_event(request, events.REMOVED_MARKER, marker)
    return Response(204, {"x-amz-delete-marker": "true", "x-amz-version-id": marker.version_id})


async def add_delete_marker(request: Request, bucket: BucketRecord, key: str,
                            version_id: str, precondition: DeleteGuard | None = None
                            ) -> ObjectRecord:
    """Store a delete marker labelled for MAC (labels.marker_label: seen by those who saw
    what it deletes). A latest version hidden from the caller is left under the marker,
    exactly as a missing key would be; a null marker never replaces a hidden null version
    (the caller checked: guarded_delete_version)."""
    services = request.services
    current = await visibility.latest_version(request, bucket.name, key)   # as the caller sees it
    marker = ObjectRecord(bucket=bucket.name, key=key, version_id=version_id, delete_marker=True,
                          last_modified=time.time())
    marker.extra["label"] = labels.marker_label(request, bucket, current).banner()
    obsolete = await services.meta.put_object(marker, precondition=precondition)
    await services.discard_blobs(obsolete)
    return marker
