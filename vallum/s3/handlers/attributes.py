"""GetObjectAttributes: a version's metadata without its body (``GET /b/k?attributes``).

``x-amz-object-attributes`` names what to return: ETag, Checksum, ObjectParts (paged by
``x-amz-max-parts`` / ``x-amz-part-number-marker``), StorageClass, ObjectSize. As on
AWS the caller needs s3:GetObjectAttributes (asked by the gate) and s3:GetObject (asked
here; both become their *Version* actions with ``versionId``). The version is found as
GetObject finds it (common.find_version): MAC hides what the caller may not read, exactly
as a missing key; a delete marker answers as GetObject does; an SSE-C object needs its key.
"""

from __future__ import annotations

from vallum.http import Request, Response, xml_response
from vallum.iam import gate
from vallum.meta.records import ObjectRecord
from vallum.s3 import errors, sse, xml
from vallum.s3.conditions import http_date
from vallum.s3.handlers.common import find_version, get_bucket, unlock

ATTRIBUTES = ("ETag", "Checksum", "ObjectParts", "StorageClass", "ObjectSize")
HEADER = "x-amz-object-attributes"
_BY_LOWER = {a.lower(): a for a in ATTRIBUTES}


def requested(value: str | None) -> set[str]:
    """The attributes the header names (comma-separated); S3's InvalidRequest when it
    names none, InvalidArgument for an unknown one."""
    names = [n.strip() for n in (value or "").split(",") if n.strip()]
    if not names:
        raise errors.InvalidRequest("The x-amz-object-attributes header specifying the "
                                    "attributes to be retrieved is either missing or empty")
    out = set()
    for name in names:
        known = _BY_LOWER.get(name.lower())
        if known is None:
            raise errors.InvalidArgument("Invalid attribute name specified.",
                                         ArgumentName=HEADER, ArgumentValue=name[:64])
        out.add(known)
    return out


def _checksum(checksums: dict[str, str]) -> tuple[tuple[str, str], ...] | None:
    values = tuple(("Checksum" + alg, value) for alg, value in checksums.items() if alg != "type")
    if not values:
        return None
    return (*values, ("ChecksumType", checksums.get("type", "FULL_OBJECT")))


def _parts(request: Request, record: ObjectRecord) -> tuple[tuple[str, object], ...] | None:
    """ObjectParts of a multipart version (None for a single-part one, as AWS)."""
    if not record.parts:
        return None
    max_parts = _header_int(request, "x-amz-max-parts", 1000)
    marker = _header_int(request, "x-amz-part-number-marker", 0)
    after = [p for p in record.parts if p.part_number > marker]
    page, truncated = after[:max_parts], len(after) > max_parts
    items = [(*(("Checksum" + alg, v) for alg, v in p.checksums.items()),
              ("PartNumber", p.part_number), ("Size", p.size)) for p in page]
    return (("PartsCount", len(record.parts)), ("PartNumberMarker", marker),
            ("NextPartNumberMarker", page[-1].part_number if page else marker),
            ("MaxParts", max_parts), ("IsTruncated", truncated), ("Part", items))


def _header_int(request: Request, name: str, default: int) -> int:
    """A paging header's value; S3 ignores one that is not a number (the default applies)."""
    raw = (request.headers.get(name) or "").strip()
    if not raw.isdigit() or len(raw) > 10:
        return default
    return min(int(raw), 1000) if name == "x-amz-max-parts" else int(raw)


async def get_object_attributes(request: Request) -> Response:
    wanted = requested(request.headers.get(HEADER))
    customer = sse.customer_key(request.headers, secure=request.secure)
    version_id = request.query.get("versionId")
    try:
        await gate.authorize_object(request, "s3:GetObject", request.key, version_id)
    except errors.AccessDenied:
        request.decision = "deny"           # audited: the second permission AWS asks for
        request.decision_reason = "GetObjectAttributes also needs s3:GetObject: not allowed"
        raise
    bucket = await get_bucket(request)
    record = await find_version(request, bucket)
    unlock(request, record.extra, customer)
    body: list[tuple[str, object]] = []
    if "ETag" in wanted:
        body.append(("ETag", record.etag))
    if "Checksum" in wanted:
        body.append(("Checksum", _checksum(record.checksums)))
    if "ObjectParts" in wanted:
        body.append(("ObjectParts", _parts(request, record)))
    if "StorageClass" in wanted:
        body.append(("StorageClass", record.storage_class))
    if "ObjectSize" in wanted:
        body.append(("ObjectSize", record.size))
    headers = {"last-modified": http_date(record.last_modified)}
    if bucket.versioning:
        headers["x-amz-version-id"] = record.version_id
    return xml_response(xml.render("GetObjectAttributesResponse", body), headers=headers)
