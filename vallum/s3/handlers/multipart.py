"""Multipart uploads: create, upload (and copy) parts, complete, abort, list.

Parts are stored as blobs; completing writes a manifest of part blobs into the
object's metadata, so no byte is copied.

Labels: the upload's label is fixed at Create (MAC-checked like a PUT); every part is
spill-scanned against it; an UploadPartCopy source must be readable and dominated by it
(the completed object keeps the least upper bound of its sources, which is then the
upload's label); uploads above the caller's level are absent (NoSuchUpload, unlisted).

SSE-C: Create makes the upload's object key (wrapped under the customer's key, in
``UploadRecord.extra``); every part must carry that same key, and each part blob is sealed
under its own key derived from it; Complete moves the key metadata to the object.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import time

from vallum.compute import object_events as events
from vallum.http import Request, Response, xml_response
from vallum.meta.base import QuotaExceeded, UploadMissing
from vallum.meta.records import ObjectRecord, PartRecord, UploadRecord
from vallum.s3 import errors, sse, xml
from vallum.s3.conditions import iso8601
from vallum.s3.handlers import bucket_settings, labels, lock, tagging, visibility
from vallum.s3.handlers.buckets import owner_element
from vallum.s3.handlers.common import (
    encryption_headers,
    expectations_from,
    get_bucket,
    int_param,
    new_object_key,
    new_version_id,
    quote_etag,
    system_meta_from,
    unlock,
    upload_key,
    url_encoder,
    user_meta_from,
)
from vallum.s3.handlers.copy import resolve_copy_source
from vallum.s3.handlers.objects import (
    refuse_hidden_null,
    spill_refused,
    spill_stored,
    version_headers,
    write_precondition,
)
from vallum.s3.names import validate_key
from vallum.security.crypto import ssec
from vallum.security.crypto.ssec import is_customer_encrypted
from vallum.security.spill import guard as spill
from vallum.security.spill.guard import SpillDetected, SpillGuard
from vallum.service import storage_quotas as quotas
from vallum.service.ingest import MAX_SINGLE_PUT, ingest, store
from vallum.service.reader import read_object
from vallum.storage.checksums import ALGORITHMS, combine_composite, combine_full_object_crc

MIN_PART_SIZE = 5 * 1024 * 1024
MAX_PARTS = 10000
_CRCS = ("CRC32", "CRC32C", "CRC64NVME")


async def create_upload(request: Request) -> Response:
    encryption = sse.write_encryption(request.headers, secure=request.secure)
    bucket = await get_bucket(request)
    validate_key(request.key)
    headers = request.headers
    algorithm = headers.get("x-amz-checksum-algorithm")
    if algorithm is not None:
        algorithm = algorithm.upper()
        if algorithm not in ALGORITHMS:
            raise errors.InvalidRequest("Checksum algorithm provided is unsupported. Please try again with any of the valid types: [CRC32, CRC32C, CRC64NVME, SHA1, SHA256]")
    checksum_type = headers.get("x-amz-checksum-type")
    if checksum_type is not None:
        checksum_type = checksum_type.upper()
        if checksum_type not in ("COMPOSITE", "FULL_OBJECT") or algorithm is None:
            raise errors.InvalidRequest("The x-amz-checksum-type header can only be used with the x-amz-checksum-algorithm header.")
        if checksum_type == "FULL_OBJECT" and algorithm not in _CRCS:
            raise errors.InvalidRequest(f"The FULL_OBJECT checksum type cannot be used with the {algorithm.lower()} checksum algorithm.")
        if checksum_type == "COMPOSITE" and algorithm == "CRC64NVME":
            raise errors.InvalidRequest("The COMPOSITE checksum type cannot be used with the crc64nvme checksum algorithm.")
    elif algorithm is not None:
        checksum_type = "FULL_OBJECT" if algorithm == "CRC64NVME" else "COMPOSITE"
    bucket_settings.check_canned_acl(request, for_object=True, bucket=bucket)
    extra = lock.lock_extra(request, bucket, has_digest=None)
    extra.update(tagging.tags_extra(request))
    label, rng = labels.write_label(request, bucket, labels.requested(headers))
    extra["label"] = label.banner()
    guard = SpillGuard(label, rng, f"{request.request_id} {bucket.name}/{request.key}",
                       spill.mode_of(bucket.config))
    try:
        guard.check_fields(spill.fields(request.key, user_meta_from(headers), extra.get(tagging.TAGS_KEY),
                                        system_meta_from(headers)))
    except SpillDetected as exc:
        raise spill_refused(request, exc) from None
    extra["label"] = guard.label.banner()              # raised when the bucket quarantines
    spill_stored(request, guard)
    new_object_key(encryption.customer, extra)      # parts derive their keys from it
    upload = UploadRecord(
        upload_id=_new_upload_id(), bucket=bucket.name, key=request.key, initiated=time.time(),
        system_meta=system_meta_from(headers), user_meta=user_meta_from(headers),
        checksum_algorithm=algorithm, checksum_type=checksum_type,
        storage_class=headers.get("x-amz-storage-class", "STANDARD"), owner=request.services.owner_id,
        extra=extra)
    await request.services.meta.create_upload(upload)
    out = encryption_headers(request, upload.extra, encryption.customer)
    if algorithm:
        out.update({"x-amz-checksum-algorithm": algorithm, "x-amz-checksum-type": checksum_type})
    body = {"Bucket": bucket.name, "Key": request.key, "UploadId": upload.upload_id}
    return xml_response(xml.render("InitiateMultipartUploadResult", body), headers=out)


def _new_upload_id() -> str:
    return os.urandom(24).hex()


async def _get_upload(request: Request) -> UploadRecord:
    upload_id = request.query.get("uploadId", "")
    upload = await request.services.meta.get_upload(upload_id)
    if upload is None or upload.bucket != request.bucket or upload.key != request.key:
        raise errors.NoSuchUpload(UploadId=upload_id)
    if not labels.readable(labels.subject(request), upload):
        labels.refused(request, "mac: no read up: upload above the session level")
        raise errors.NoSuchUpload(UploadId=upload_id)
    return upload


def _part_number(request: Request) -> int:
    raw = request.query.get("partNumber", "")
    try:
        number = int(raw)
    except ValueError:
        number = 0
    if not 1 <= number <= MAX_PARTS:
        raise errors.InvalidArgument("Part number must be an integer between 1 and 10000, inclusive",
                                     ArgumentName="partNumber", ArgumentValue=raw)
    return number


async def _save_part(request: Request, upload: UploadRecord, part: PartRecord) -> None:
    services = request.services
    try:
        obsolete = await services.meta.put_part(upload.upload_id, part)
    except UploadMissing:
        await services.discard_blobs([part.blob_id])
        raise errors.NoSuchUpload(UploadId=upload.upload_id) from None
    except QuotaExceeded as exc:
        await services.discard_blobs([part.blob_id])
        raise quotas.refused(exc) from None
    await services.discard_blobs([b for b in obsolete if b != part.blob_id])


def _part_guard(request: Request, bucket, upload: UploadRecord,
                source_label=None) -> SpillGuard:
    """A part is written at the upload's label: no write down for this caller, and a
    copied source must be dominated by it (else the part would write its data down)."""
    label, rng = labels.write_label(request, bucket, upload.extra.get("label"))
    if source_label is not None and not label.dominates(source_label):
        rule = f"mac: no write down: copy source label {source_label} above the upload label {label}"
        labels.refused(request, rule)
        raise errors.AccessDenied(labels.refusal_message(rule))
    # A stored spill is labelled at Complete, which rescans the parts; an SSE-C upload may
    # complete without its key (no rescan), so its parts refuse whatever the bucket's mode.
    mode = "refuse" if upload.extra.get(ssec.EXTRA) else spill.mode_of(bucket.config)
    return SpillGuard(label, rng, f"{request.request_id} {bucket.name}/{upload.key} "
                                  f"upload {upload.upload_id}", mode)


async def upload_part(request: Request) -> Response:
    customer = sse.customer_key(request.headers, secure=request.secure)
    bucket = await get_bucket(request)
    number = _part_number(request)
    upload = await _get_upload(request)
    if request.body.length is None and "transfer-encoding" not in request.headers:
        raise errors.MissingContentLength()
    object_key = upload_key(request, upload, customer)
    expect = expectations_from(request.headers, default_algorithm=upload.checksum_algorithm)
    guard = _part_guard(request, bucket, upload)
    await quotas.precheck(request.services.meta, bucket, request.body.length)
    try:   # parts are spill-scanned as they stream, like a PUT
        stored = await ingest(request.services.blobs, request.body, expect, max_size=MAX_SINGLE_PUT,
                              allow_inline=False, scanner=guard, customer=object_key)
    except SpillDetected as exc:
        raise spill_refused(request, exc) from None
    assert stored.blob_id is not None
    part = PartRecord(number, stored.size, stored.etag, stored.blob_id, time.time(), stored.checksums)
    await _save_part(request, upload, part)
    out = {"etag": quote_etag(part.etag), **encryption_headers(request, upload.extra, customer)}
    for alg, value in part.checksums.items():
        out["x-amz-checksum-" + alg.lower()] = value
    return Response(200, out)


async def upload_part_copy(request: Request) -> Response:
    services = request.services
    customer = sse.customer_key(request.headers, secure=request.secure)
    source_customer = sse.customer_key(request.headers, secure=request.secure, copy_source=True)
    bucket = await get_bucket(request)
    number = _part_number(request)
    upload = await _get_upload(request)
    object_key = upload_key(request, upload, customer)
    source = await resolve_copy_source(request)
    src = source.record
    source_key = unlock(request, src.extra, source_customer)
    _part_guard(request, bucket, upload, labels.record_label(src.extra))
    start, end = 0, src.size - 1
    range_header = request.headers.get("x-amz-copy-source-range")
    if range_header is not None:
        start, end = parse_copy_range(range_header, src.size)
    if end - start + 1 > MAX_SINGLE_PUT:
        raise errors.InvalidRequest("The specified copy source is larger than the maximum allowable size for a copy source: 5368709120")
    await quotas.precheck(services.meta, bucket, end - start + 1)
    algorithms = [upload.checksum_algorithm] if upload.checksum_algorithm else []
    stored = await store(services.blobs, read_object(services.blobs, src, start, end, source_key), algorithms,
                         allow_inline=False, customer=object_key)
    assert stored.blob_id is not None
    part = PartRecord(number, stored.size, stored.etag, stored.blob_id, time.time(), stored.checksums)
    await _save_part(request, upload, part)
    out = encryption_headers(request, upload.extra, customer)
    if source.bucket.versioning:
        out["x-amz-copy-source-version-id"] = src.version_id
    body = [("ETag", quote_etag(part.etag)), ("LastModified", iso8601(part.last_modified))]
    for alg, value in part.checksums.items():
        body.append(("Checksum" + alg, value))
    return xml_response(xml.render("CopyPartResult", body), headers=out)


_COPY_RANGE = re.compile(r"bytes=([0-9]{1,19})-([0-9]{1,19})")  # past 5 GiB anyway; int() has a digit limit


def parse_copy_range(header: str, size: int) -> tuple[int, int]:
    """x-amz-copy-source-range: only 'bytes=first-last', inside the source object."""
    match = _COPY_RANGE.fullmatch(header.strip())
    if match is None:
        raise errors.InvalidArgument("The x-amz-copy-source-range value must be of the form bytes=first-last where first and last are the zero-based offsets of the first and last bytes to copy",
                                     ArgumentName="x-amz-copy-source-range", ArgumentValue=header)
    start, end = int(match.group(1)), int(match.group(2))
    if start > end or end >= size:
        raise errors.InvalidArgument(f"Range specified is not valid for source object of size: {size}",
                                     ArgumentName="x-amz-copy-source-range", ArgumentValue=header)
    return start, end


def parse_complete(data: bytes) -> list[tuple[int, str, dict[str, str]]]:
    doc = xml.parse(data, "CompleteMultipartUpload")
    xml.only_known(doc, {"Part"})
    parts = []
    for elem in xml.children(doc, "Part"):
        number_text, etag = xml.text(elem, "PartNumber"), xml.text(elem, "ETag")
        if number_text is None or etag is None:
            raise errors.MalformedXML()
        try:
            number = int(number_text)
        except ValueError:
            raise errors.MalformedXML() from None
        declared = {alg: xml.text(elem, "Checksum" + alg) for alg in ALGORITHMS}
        parts.append((number, etag.strip().strip('"'), {k: v for k, v in declared.items() if v}))
    if not parts:
        raise errors.MalformedXML()
    return parts


async def _all_parts(request: Request, upload_id: str) -> dict[int, PartRecord]:
    parts: dict[int, PartRecord] = {}
    marker = 0
    while True:
        page, more = await request.services.meta.list_parts(upload_id, part_number_marker=marker, max_parts=1000)
        for p in page:
            parts[p.part_number] = p
        if not more or not page:
            return parts
        marker = page[-1].part_number


# A Complete retried after it succeeded (its answer was lost) is answered again from the
# object it made, for this long; the object's extra names the upload it completed.
RETRY_WINDOW = 15 * 60
COMPLETED_KEY = "completed-upload"
_RETRY_SCAN = 100      # versions of the key looked at in a versioned bucket


async def _completed_before(request: Request, bucket, upload_id: str,
                            wanted: list[tuple[int, str, dict[str, str]]]) -> ObjectRecord | None:
    """The version this upload became, if it was completed recently with the same part
    list and the caller may read it (MAC: else the upload is just missing)."""
    meta, key = request.services.meta, request.key
    candidates = [await meta.get_object(bucket.name, key)]
    if bucket.versioning:
        page = await meta.list_versions(bucket.name, prefix=key, max_keys=_RETRY_SCAN)
        candidates += [await meta.get_object(bucket.name, key, v.version_id)
                       for v in page.entries if v.key == key and not v.delete_marker
                       and time.time() - v.last_modified < RETRY_WINDOW]
    asked = [(number, etag) for number, etag, _ in wanted]
    who = labels.subject(request)
    for record in candidates:
        if record is not None and record.extra.get(COMPLETED_KEY) == upload_id \
                and time.time() - record.last_modified < RETRY_WINDOW \
                and [(p.part_number, p.etag) for p in record.parts] == asked \
                and labels.readable(who, record):
            return record
    return None


async def _retried(request: Request, bucket, upload_id: str, data: bytes | None,
                   customer: sse.CustomerKey | None) -> Response:
    """The answer to a Complete whose upload is gone: the first answer again when it
    is a retry of a recent success, else NoSuchUpload."""
    try:
        wanted = parse_complete(data if data is not None else await request.body.read())
    except errors.MalformedXML:
        wanted = []
    record = await _completed_before(request, bucket, upload_id, wanted) if wanted else None
    if record is None:
        raise errors.NoSuchUpload(UploadId=upload_id)
    return _completed(request, bucket, record, customer)


async def complete_upload(request: Request) -> Response:
    services = request.services
    customer = sse.customer_key(request.headers, secure=request.secure)
    bucket = await get_bucket(request)
    try:
        upload = await _get_upload(request)
    except errors.NoSuchUpload:
        return await _retried(request, bucket, request.query.get("uploadId", ""), None, customer)
    object_key = upload_key(request, upload, customer, required=False)   # a key sent must be the upload's
    data = await request.body.read()
    wanted = parse_complete(data)
    await refuse_hidden_null(request, bucket, upload.key)
    precondition = await write_precondition(request, bucket)   # 412 before the parts are read
    stored = await _all_parts(request, upload.upload_id)
    chosen: list[PartRecord] = []
    previous = 0
    for i, (number, etag, declared) in enumerate(wanted):
        if number <= previous:
            raise errors.InvalidPartOrder(UploadId=upload.upload_id)
        previous = number
        part = stored.get(number)
        if part is None or part.etag != etag:
            raise errors.InvalidPart(UploadId=upload.upload_id, PartNumber=str(number), ETag=etag)
        for alg, value in declared.items():
            if part.checksums.get(alg) not in (None, value):
                raise errors.InvalidPart(UploadId=upload.upload_id, PartNumber=str(number), ETag=etag)
        if i < len(wanted) - 1 and part.size < MIN_PART_SIZE:
            raise errors.EntityTooSmall(UploadId=upload.upload_id, PartNumber=str(number),
                                        ProposedSize=str(part.size), MinSizeAllowed=str(MIN_PART_SIZE))
        chosen.append(part)
    md5s = b"".join(bytes.fromhex(p.etag) for p in chosen)
    etag = f"{hashlib.md5(md5s, usedforsecurity=False).hexdigest()}-{len(chosen)}"
    record = ObjectRecord(
        bucket=bucket.name, key=upload.key, version_id=new_version_id(bucket),
        size=sum(p.size for p in chosen), etag=etag, last_modified=time.time(),
        system_meta=upload.system_meta, user_meta=upload.user_meta, checksums=_object_checksum(upload, chosen),
        parts=chosen, storage_class=upload.storage_class, owner=upload.owner,
        extra=lock.apply_default(dict(upload.extra), bucket))
    record.extra[COMPLETED_KEY] = upload.upload_id
    label, rng = labels.write_label(request, bucket, None, [labels.record_label(upload.extra)],
                                    session_default=False)   # the upload's label
    record.extra["label"] = label.banner()
    _check_declared_object_checksum(request, upload, record)
    guard = await _scan_whole(request, bucket, upload, record, label, rng, object_key)
    if guard is not None:
        record.extra["label"] = guard.label.banner()     # raised when the bucket quarantines
        spill_stored(request, guard)
    try:
        obsolete = await services.meta.complete_upload(upload.upload_id, record,
                                                       precondition=precondition)
    except UploadMissing:            # completed meanwhile by a concurrent retry
        return await _retried(request, bucket, upload.upload_id, data, customer)
    except QuotaExceeded as exc:
        raise quotas.refused(exc) from None
    keep = set(record.blob_ids())
    await services.discard_blobs([b for b in obsolete if b not in keep])
    await events.object_event(request, events.CREATED_MULTIPART, record)
    return _completed(request, bucket, record, customer)


def _completed(request: Request, bucket, record: ObjectRecord,
               customer: sse.CustomerKey | None) -> Response:
    """CompleteMultipartUploadResult for the version an upload became."""
    etag = record.etag
    out = version_headers(bucket, record, checksums=False)
    out.pop("etag")
    out.update(encryption_headers(request, record.extra, customer))
    location = f"{request.headers.get('host', '')}/{bucket.name}/{record.key}"
    body = [("Location", "http://" + location), ("Bucket", bucket.name), ("Key", record.key),
            ("ETag", quote_etag(etag))]
    for alg, value in record.checksums.items():
        if alg != "type":
            body.append(("Checksum" + alg, value))
    if record.checksums.get("type"):
        body.append(("ChecksumType", record.checksums["type"]))
    return xml_response(xml.render("CompleteMultipartUploadResult", body), headers=out)


async def _scan_whole(request: Request, bucket, upload: UploadRecord, record: ObjectRecord,
                      label, rng, object_key) -> SpillGuard | None:
    """Scan the parts in their final order as one stream: a marking split across a part
    boundary, or a container (gzip, zip) whose content spans parts, is read whole. The
    stream is scanned with the scanner's bounded window, never buffered. An SSE-C upload
    completed without its key cannot be read here: its parts were scanned one by one."""
    if is_customer_encrypted(record.extra) and object_key is None:
        return None
    guard = SpillGuard(label, rng, f"{request.request_id} {bucket.name}/{upload.key} "
                                   f"upload {upload.upload_id} complete", spill.mode_of(bucket.config))
    try:
        async for data in read_object(request.services.blobs, record, 0, record.size - 1, object_key):
            guard.feed(data)
        guard.check()
    except SpillDetected as exc:
        raise spill_refused(request, exc) from None
    return guard


def _check_declared_object_checksum(request: Request, upload: UploadRecord, record: ObjectRecord) -> None:
    """A whole-object checksum sent with Complete must equal the one computed from the parts."""
    for alg in ALGORITHMS:
        declared = request.headers.get(f"x-amz-checksum-{alg.lower()}")
        if declared is None:
            continue
        actual = record.checksums.get(alg)
        if actual is None:
            created = (upload.checksum_algorithm or "null").lower()
            raise errors.InvalidRequest(f"The upload was created using a {created} checksum algorithm. "
                                        f"You cannot pass a {alg.lower()} checksum in the request.")
        if declared.split("-")[0] != actual.split("-")[0]:
            raise errors.BadDigest(f"The {alg} you specified did not match the calculated checksum.")


def _object_checksum(upload: UploadRecord, parts: list[PartRecord]) -> dict[str, str]:
    alg = upload.checksum_algorithm
    if not alg or any(alg not in p.checksums for p in parts):
        return {}
    digests = [base64.b64decode(p.checksums[alg]) for p in parts]
    if upload.checksum_type == "FULL_OBJECT":
        value = combine_full_object_crc(alg, [(d, p.size) for d, p in zip(digests, parts, strict=True)])
        return {alg: value, "type": "FULL_OBJECT"}
    return {alg: combine_composite(alg, digests), "type": "COMPOSITE"}


async def abort_upload(request: Request) -> Response:
    await get_bucket(request)
    upload = await _get_upload(request)
    try:
        obsolete = await request.services.meta.abort_upload(upload.upload_id)
    except UploadMissing:
        raise errors.NoSuchUpload(UploadId=upload.upload_id) from None
    await request.services.discard_blobs(obsolete)
    return Response(204)


async def list_parts(request: Request) -> Response:
    await get_bucket(request)
    upload = await _get_upload(request)
    max_parts = int_param(request, "max-parts", 1000)
    marker = int_param(request, "part-number-marker", 0, hi=MAX_PARTS)
    parts, more = await request.services.meta.list_parts(upload.upload_id, part_number_marker=marker,
                                                         max_parts=max_parts)
    owner = owner_element(request)
    items = []
    for p in parts:
        item = {"PartNumber": p.part_number, "LastModified": iso8601(p.last_modified),
                "ETag": quote_etag(p.etag), "Size": p.size}
        for alg, value in p.checksums.items():
            item["Checksum" + alg] = value
        items.append(item)
    body = [("Bucket", upload.bucket), ("Key", upload.key), ("UploadId", upload.upload_id),
            ("Initiator", owner), ("Owner", owner), ("StorageClass", upload.storage_class),
            ("PartNumberMarker", marker),
            ("NextPartNumberMarker", parts[-1].part_number if parts else marker),
            ("MaxParts", max_parts), ("IsTruncated", more),
            ("ChecksumAlgorithm", upload.checksum_algorithm), ("ChecksumType", upload.checksum_type),
            ("Part", items)]
    return xml_response(xml.render("ListPartsResult", body))


async def list_uploads(request: Request) -> Response:
    bucket = await get_bucket(request)
    q = request.query
    encode = url_encoder(request)
    max_uploads = int_param(request, "max-uploads", 1000)
    key_marker = q.get("key-marker", "")
    upload_id_marker = q.get("upload-id-marker", "") if key_marker else ""
    meta = request.services.meta

    def fetch(prefix: str, delimiter: str):
        return lambda m, n: meta.list_uploads(bucket.name, prefix=prefix, delimiter=delimiter,
                                              key_marker=m[0], upload_id_marker=m[1], max_uploads=n)

    listed, who = fetch(q.get("prefix", ""), q.get("delimiter", "")), visibility.restricted(request)
    page = (await listed((key_marker, upload_id_marker), max_uploads) if who is None else  # uploads above
            await visibility.uploads_page(who, listed, lambda p: fetch(p, ""),  # the caller's level: absent
                                          (key_marker, upload_id_marker), max_uploads))
    owner = owner_element(request)
    uploads = [{"Key": encode(u.key), "UploadId": u.upload_id, "Initiator": owner, "Owner": owner,
                "StorageClass": u.storage_class, "Initiated": iso8601(u.initiated),
                "ChecksumAlgorithm": u.checksum_algorithm, "ChecksumType": u.checksum_type}
               for u in page.entries]
    body = [("Bucket", bucket.name), ("KeyMarker", encode(key_marker)), ("UploadIdMarker", upload_id_marker),
            ("NextKeyMarker", encode(page.next_marker) if page.is_truncated else None),
            ("NextUploadIdMarker", page.next_version_marker if page.is_truncated else None),
            ("Delimiter", encode(q["delimiter"]) if "delimiter" in q else None),
            ("Prefix", encode(q.get("prefix", ""))), ("MaxUploads", max_uploads),
            ("EncodingType", q.get("encoding-type")), ("IsTruncated", page.is_truncated),
            ("Upload", uploads), ("CommonPrefixes", [{"Prefix": encode(p)} for p in page.common_prefixes])]
    return xml_response(xml.render("ListMultipartUploadsResult", body))
