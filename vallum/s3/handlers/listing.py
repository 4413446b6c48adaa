"""ListObjects (v1) and ListObjectsV2."""

from __future__ import annotations

import base64
import binascii

from vallum.http import Request, Response, xml_response
from vallum.meta.records import ListPage, ObjectRecord
from vallum.s3 import errors, xml
from vallum.s3.conditions import iso8601
from vallum.s3.handlers import visibility
from vallum.s3.handlers.buckets import owner_element
from vallum.s3.handlers.common import get_bucket, int_param, url_encoder

_TOKEN_TAG = "v1:"  # noqa: S105 - a format tag, not a secret


def encode_token(marker: str) -> str:
    return base64.urlsafe_b64encode((_TOKEN_TAG + marker).encode()).decode()


def decode_token(token: str) -> str:
    try:
        text = base64.urlsafe_b64decode(token.encode("ascii")).decode()
    except (binascii.Error, UnicodeError, ValueError):
        text = ""
    if not text.startswith(_TOKEN_TAG):
        raise errors.InvalidArgument("The continuation token provided is incorrect",
                                     ArgumentName="continuation-token", ArgumentValue=token)
    return text[len(_TOKEN_TAG):]


def _contents(entries: list[ObjectRecord], encode, owner: str) -> str:
    """Every Contents element of a page as one string, in S3's element order.

    Why not ``xml.render``: it escapes each value through str.translate and emits each
    element recursively, which cost more than reading the page. The page's text is probed
    once and escaped only if something needs it (as ListObjectVersions does); ``owner`` is
    the Owner element rendered once ("" when not asked for)."""
    # URL-encoding (encoding-type=url) never adds a character that needs escaping.
    text = xml.escaper(v for r in entries for v in (r.key, r.etag, r.storage_class))
    out = []
    for rec in entries:
        checksum = xml.checksum_fragment(rec.checksums)
        out.append(f"<Contents><Key>{text(encode(rec.key))}</Key>"
                   f"<LastModified>{iso8601(rec.last_modified)}</LastModified>"
                   f"<ETag>&quot;{text(rec.etag)}&quot;</ETag>{checksum}<Size>{rec.size}</Size>"
                   f"{owner}<StorageClass>{text(rec.storage_class)}</StorageClass></Contents>")
    return "".join(out)


async def _page(request: Request, start_after: str, max_keys: int) -> ListPage:
    """One page of keys as the caller sees them (visibility.py: what it may not read is
    absent, including from truncation, markers and common prefixes)."""
    bucket = await get_bucket(request)
    meta = request.services.meta
    prefix, delimiter = request.query.get("prefix", ""), request.query.get("delimiter", "")
    who = visibility.restricted(request)
    if who is None:
        return await meta.list_objects(bucket.name, prefix=prefix, delimiter=delimiter,
                                       start_after=start_after, max_keys=max_keys)

    def versions(prefix: str, delimiter: str):
        return lambda m, n: meta.list_versions(bucket.name, prefix=prefix, delimiter=delimiter,
                                               key_marker=m[0], version_id_marker=m[1], max_keys=n)

    return await visibility.objects_page(who, versions(prefix, delimiter),
                                         lambda p: versions(p, ""), start_after, max_keys)


async def list_objects_v2(request: Request) -> Response:
    q = request.query
    encode = url_encoder(request)
    max_keys = int_param(request, "max-keys", 1000)
    token = q.get("continuation-token")
    if token == "":
        raise errors.InvalidArgument("The continuation token provided is incorrect",
                                     ArgumentName="continuation-token", ArgumentValue="")
    start = decode_token(token) if token is not None else q.get("start-after", "")
    page = await _page(request, start, max_keys)
    fetch_owner = q.get("fetch-owner", "").lower() == "true"
    owner = xml.fragment("Owner", owner_element(request)) if fetch_owner else ""
    head = [
        ("Name", request.bucket),
        ("Prefix", encode(q.get("prefix", ""))),
        ("Delimiter", encode(q.get("delimiter")) if "delimiter" in q else None),
        ("MaxKeys", max_keys),
        ("EncodingType", q.get("encoding-type")),
        ("KeyCount", len(page.entries) + len(page.common_prefixes)),
        ("IsTruncated", page.is_truncated),
        ("ContinuationToken", token),
        ("NextContinuationToken", encode_token(page.next_marker) if page.is_truncated and page.next_marker else None),
        ("StartAfter", encode(q["start-after"]) if "start-after" in q else None),
    ]
    tail = [("CommonPrefixes", [{"Prefix": encode(p)} for p in page.common_prefixes])]
    return xml_response(xml.render_around("ListBucketResult", head,
                                          _contents(page.entries, encode, owner), tail))


async def list_objects_v1(request: Request) -> Response:
    q = request.query
    encode = url_encoder(request)
    max_keys = int_param(request, "max-keys", 1000)
    marker = q.get("marker", "")
    page = await _page(request, marker, max_keys)
    delimiter = q.get("delimiter", "")
    head = [
        ("Name", request.bucket),
        ("Prefix", encode(q.get("prefix", ""))),
        ("Marker", encode(marker)),
        ("NextMarker", encode(page.next_marker) if page.is_truncated and delimiter else None),
        ("MaxKeys", max_keys),
        ("Delimiter", encode(delimiter) if "delimiter" in q else None),
        ("EncodingType", q.get("encoding-type")),
        ("IsTruncated", page.is_truncated),
    ]
    tail = [("CommonPrefixes", [{"Prefix": encode(p)} for p in page.common_prefixes])]
    owner = xml.fragment("Owner", owner_element(request))
    return xml_response(xml.render_around("ListBucketResult", head,
                                          _contents(page.entries, encode, owner), tail))
