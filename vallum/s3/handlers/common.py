"""Pieces every object handler needs: bucket lookup, metadata headers in and out,
checksum declarations, server-side encryption keys and headers, and the mapping of
metadata-store errors to S3 errors."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from collections.abc import Callable
from urllib.parse import quote
from xml.etree.ElementTree import Element  # noqa: S405 - only the type; parsing is defusedxml

from vallum.http import Headers, Request
from vallum.meta.records import NULL_VERSION, BucketRecord, ObjectRecord, UploadRecord
from vallum.s3 import errors, sse, xml
from vallum.s3.conditions import http_date, iso8601
from vallum.s3.handlers import labels, visibility
from vallum.s3.names import check_version_id  # noqa: F401 - handlers import it from here
from vallum.security.crypto import ssec
from vallum.service.ingest import Expectations, validate_checksum_value
from vallum.storage.checksums import ALGORITHMS, new_hasher
from vallum.storage.retention import lock_of

SYSTEM_HEADERS = ("content-type", "content-encoding", "content-disposition", "content-language",
                  "cache-control", "expires")
MAX_USER_META = 2048


async def get_bucket(request: Request) -> BucketRecord:
    bucket = await request.services.meta.get_bucket(request.bucket)
    if bucket is None:
        raise errors.NoSuchBucket(BucketName=request.bucket)
    return bucket


async def modify_version(request: Request, record: ObjectRecord,
                         change: Callable[[ObjectRecord], object]) -> ObjectRecord:
    """Change one version's metadata atomically (``change`` runs inside the transaction)."""
    updated = await request.services.meta.modify_object(record.bucket, record.key, record.version_id, change)
    if updated is None:
        raise errors.NoSuchVersion(Key=record.key, VersionId=record.version_id)
    return updated


def new_version_id(bucket: BucketRecord) -> str:
    """A fresh version id when versioning is on; the null version otherwise."""
    if bucket.versioning == "Enabled":
        return base64.urlsafe_b64encode(os.urandom(24)).decode().rstrip("=")
    return NULL_VERSION


def system_meta_from(headers: Headers) -> dict[str, str]:
    return {name: headers[name] for name in SYSTEM_HEADERS if name in headers}


def user_meta_from(headers: Headers) -> dict[str, str]:
    meta = {k[len("x-amz-meta-"):]: v for k, v in headers.raw if k.startswith("x-amz-meta-")}
    meta.pop(labels.META_KEY, None)          # the label, stored as the label (labels.requested)
    size = sum(len(k) + len(v) for k, v in meta.items())
    if size > MAX_USER_META:
        raise errors.MetadataTooLarge(Size=str(size), MaxSizeAllowed=str(MAX_USER_META))
    return meta


def expectations_from(headers: Headers, *, default_algorithm: str | None = None) -> Expectations:
    """Digests the client declared for the body, in headers or as trailers."""
    expect = Expectations()
    md5 = headers.get("content-md5")
    if md5 is not None:
        try:
            expect.md5 = base64.b64decode(md5, validate=True)
        except (binascii.Error, ValueError):
            expect.md5 = None
            raise errors.InvalidDigest(**{"Content-MD5": md5}) from None
        if len(expect.md5) != 16:
            raise errors.InvalidDigest(**{"Content-MD5": md5})
    for alg in ALGORITHMS:
        name = f"x-amz-checksum-{alg.lower()}"
        value = headers.get(name)
        if value is not None:
            validate_checksum_value(alg, value, name)
            expect.checksums[alg] = value
    trailer = headers.get("x-amz-trailer")
    if trailer:
        for name in (t.strip().lower() for t in trailer.split(",")):
            alg = name.removeprefix("x-amz-checksum-").upper()
            if not name.startswith("x-amz-checksum-") or alg not in ALGORITHMS:
                raise errors.InvalidRequest(f"The value specified in the x-amz-trailer header is not supported: {name}")
            expect.checksums[alg] = None
            expect.trailer_names[alg] = name
    sdk_alg = headers.get("x-amz-sdk-checksum-algorithm")
    if sdk_alg is not None:
        if sdk_alg.upper() not in ALGORITHMS:
            raise errors.InvalidRequest("Checksum algorithm provided is unsupported. Please try again with any of the valid types: [CRC32, CRC32C, CRC64NVME, SHA1, SHA256]")
        if not expect.checksums:
            raise errors.InvalidRequest("x-amz-sdk-checksum-algorithm specified, but no corresponding x-amz-checksum-* or x-amz-trailer headers were found.")
    if len(expect.checksums) > 1:
        raise errors.InvalidRequest("Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed.")
    if default_algorithm and default_algorithm not in expect.checksums:
        if expect.checksums:
            raise errors.InvalidRequest(f"Checksum Type mismatch occurred, expected checksum Type: {default_algorithm.lower()}, actual checksum Type: {next(iter(expect.checksums)).lower()}")
        expect.compute_only.add(default_algorithm)
    return expect


def quote_etag(etag: str) -> str:
    return f'"{etag}"'


def object_headers(bucket: BucketRecord, record: ObjectRecord, *, checksums: bool) -> dict[str, str]:
    """Response headers describing a stored version (GET, HEAD)."""
    h = {"etag": quote_etag(record.etag), "last-modified": http_date(record.last_modified),
         "accept-ranges": "bytes", "content-type": "binary/octet-stream"}
    h.update(record.system_meta)
    for k, v in record.user_meta.items():
        h["x-amz-meta-" + k] = v
    if bucket.versioning:
        h["x-amz-version-id"] = record.version_id
    if record.storage_class != "STANDARD":
        h["x-amz-storage-class"] = record.storage_class
    if checksums:
        for alg, value in record.checksums.items():
            if alg == "type":
                h["x-amz-checksum-type"] = value
            else:
                h["x-amz-checksum-" + alg.lower()] = value
    h.update(lock_headers(record.extra))
    tags = record.extra.get("tags")
    if tags:
        h["x-amz-tagging-count"] = str(len(tags))
    return h


def lock_headers(extra: dict) -> dict[str, str]:
    """x-amz-object-lock-* response headers for a version's stored lock state."""
    lock = lock_of(extra)
    h = {}
    if lock.mode is not None and lock.until is not None:
        h["x-amz-object-lock-mode"] = lock.mode
        h["x-amz-object-lock-retain-until-date"] = iso8601(lock.until)
    if "legal_hold" in extra:
        h["x-amz-object-lock-legal-hold"] = "ON" if lock.legal_hold else "OFF"
    return h


async def find_version(request: Request, bucket: BucketRecord) -> ObjectRecord:
    """The version a GET/HEAD addresses, or the S3 error for its absence."""
    version_id = request.query.get("versionId")
    if version_id == "":
        raise errors.InvalidArgument("Version id cannot be the empty string", ArgumentName="versionId",
                                     ArgumentValue="")
    check_version_id(version_id)
    if version_id is None:   # the newest version the caller may read (visibility.py)
        record = await visibility.latest_version(request, bucket.name, request.key)
    else:
        record = await request.services.meta.get_object(bucket.name, request.key, version_id)
    if record is None:
        if version_id is not None:
            raise errors.NoSuchVersion(Key=request.key, VersionId=version_id)
        raise errors.NoSuchKey(Key=request.key)
    labels.hide_marker(request, record, labels.missing_error(request.key, version_id))
    if record.delete_marker:
        marker_headers = {"x-amz-delete-marker": "true", "x-amz-version-id": record.version_id}
        if version_id is not None:
            raise errors.MethodNotAllowed(headers=marker_headers, Method=request.method, ResourceType="DeleteMarker")
        raise errors.NoSuchKey(headers=marker_headers, Key=request.key)
    # No read up, answered exactly as a missing key (before any condition or header).
    labels.require_read(request, record, labels.missing_error(request.key, version_id))
    return record


def check_body_digests(request: Request, data: bytes, *, required: str | None = None) -> None:
    """Verify Content-MD5 / x-amz-checksum-* of a small body already read whole.

    ``required``: the InvalidRequest message to answer when the request carries
    neither (S3 demands an integrity header on lock and some configuration calls).
    """
    expect = expectations_from(request.headers)
    if required and expect.md5 is None and not expect.checksums:
        raise errors.InvalidRequest(required)
    if expect.md5 is not None:
        actual = hashlib.md5(data, usedforsecurity=False).digest()
        if not hmac.compare_digest(actual, expect.md5):
            raise errors.BadDigest()
    for alg, declared in expect.checksums.items():
        if declared is None:
            declared = request.body.trailers.get(expect.trailer_names.get(alg, ""))
        if declared is None:
            continue
        h = new_hasher(alg)
        h.update(data)
        if not hmac.compare_digest(h.b64().encode(), declared.encode()):
            raise errors.BadDigest(f"The {alg} you specified did not match the calculated checksum.")


MD5_REQUIRED = "Missing required header for this request: Content-MD5"


async def read_xml(request: Request, root: str, *, digest_required: str | None = None) -> Element:
    """The request's XML body (root element ``root``), digests verified."""
    data = await request.body.read(xml.MAX_XML_BODY)
    check_body_digests(request, data, required=digest_required)
    return xml.parse(data, root)


def url_encoder(request: Request):
    """Identity, or URL-encoding of keys when the listing asked for encoding-type=url."""
    encoding = request.query.get("encoding-type")
    if encoding is None:
        return lambda s: s
    if encoding != "url":
        raise errors.InvalidArgument("Invalid Encoding Method specified in Request",
                                     ArgumentName="encoding-type", ArgumentValue=encoding)
    return lambda s: quote(s, safe="/") if s is not None else None


def int_param(request: Request, name: str, default: int, *, lo: int = 0, hi: int = 1000) -> int:
    """A bounded integer query parameter (values over ``hi`` are clamped, as S3 does)."""
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise errors.InvalidArgument(f"Provided {name} not an integer or within integer range",
                                     ArgumentName=name, ArgumentValue=raw) from None
    if value < lo:
        raise errors.InvalidArgument(f"Argument {name} must be an integer between {lo} and 2147483647",
                                     ArgumentName=name, ArgumentValue=raw)
    return min(value, hi)


# --- server-side encryption (s3/sse.py parses the headers, security/crypto/ssec.py holds the keys) ---
def unlock(request: Request, extra: dict, customer: sse.CustomerKey | None) -> ssec.ObjectKey | None:
    """The object key needed to read a version's body: None for a non-SSE-C object; for an
    SSE-C one the request must carry the right customer key (wrong key: AccessDenied)."""
    meta = extra.get(ssec.EXTRA)
    if meta is None:
        if customer is not None:
            raise errors.InvalidRequest(sse.NOT_APPLICABLE)
        return None
    if customer is None:
        raise errors.InvalidRequest(sse.KEY_REQUIRED)
    try:
        return ssec.open_object_key(customer.key, meta)
    except ssec.WrongKey:
        request.decision_reason = "sse-c: the customer key is not the object's key"
        raise errors.AccessDenied() from None


def upload_key(request: Request, upload: UploadRecord, customer: sse.CustomerKey | None, *,
               required: bool = True) -> ssec.ObjectKey | None:
    """The object key of a multipart upload for a part (or, ``required=False``, Complete):
    an SSE-C upload needs the key it was created with on every part."""
    meta = upload.extra.get(ssec.EXTRA)
    if meta is None:
        if customer is not None:
            raise errors.InvalidArgument(sse.PART_KEY_MISMATCH,
                                         ArgumentName=sse.PREFIX + "key")
        return None
    if customer is None:
        if required:
            raise errors.InvalidRequest(sse.PART_KEY_REQUIRED)
        return None
    try:
        return ssec.open_object_key(customer.key, meta)
    except ssec.WrongKey:
        request.decision_reason = "sse-c: the customer key is not the upload's key"
        raise errors.InvalidArgument(sse.PART_KEY_MISMATCH, ArgumentName=sse.PREFIX + "key") from None


def new_object_key(customer: sse.CustomerKey | None, extra: dict) -> ssec.ObjectKey | None:
    """A fresh object key for a write under a customer key; its metadata goes into ``extra``."""
    if customer is None:
        return None
    key, meta = ssec.new_object_key(customer.key)
    extra[ssec.EXTRA] = meta
    return key


def encryption_headers(request: Request, extra: dict, customer: sse.CustomerKey | None) -> dict[str, str]:
    """How a version is encrypted, as S3 reports it: the customer-key headers for SSE-C
    (echoing the key MD5 the request sent), else ``AES256`` when bodies are encrypted at
    rest (VALLUM_ENCRYPTION on), else nothing: Vallum does not claim what it does not do."""
    if ssec.EXTRA in extra:
        if customer is not None:
            return customer.response_headers()
        return {sse.PREFIX + "algorithm": sse.ALGORITHM}
    if ssec.at_rest_encrypted(request.services.blobs):
        return {sse.SSE_HEADER: sse.ALGORITHM}
    return {}
