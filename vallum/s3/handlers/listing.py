"""ListObjects (v1) and ListObjectsV2."""

from __future__ import annotations

import base64
import binascii

from vallum.meta.records import ListPage, ObjectRecord
from vallum.s3 import errors, xml
from vallum.s3.conditions import iso8601
from vallum.s3.handlers import labels
from vallum.s3.handlers.buckets import owner_element
from vallum.s3.handlers.common import get_bucket, int_param, quote_etag, url_encoder
from vallum.server.http import Request, Response, xml_response

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


def _contents(entries: list[ObjectRecord], encode, owner: dict[str, str] | None) -> list[dict]:
    out = []
    for rec in entries:
        item = {"Key": encode(rec.key), "LastModified": iso8601(rec.last_modified),
                "ETag": quote_etag(rec.etag)}
        alg = next((a for a in rec.checksums if a != "type"), None)
        if alg:
            item["ChecksumAlgorithm"] = alg
            item["ChecksumType"] = rec.checksums.get("type", "FULL_OBJECT")
        item["Size"] = rec.size
        if owner is not None:
            item["Owner"] = owner
        item["StorageClass"] = rec.storage_class
        out.append(item)
    return out


async def _page(request: Request, start_after: str, max_keys: int) -> ListPage:
    """One page of keys the caller may read (objects above its level are absent)."""
    bucket = await get_bucket(request)
    meta = request.services.meta

    def fetch(prefix: str, delimiter: str):
        return lambda m, n: meta.list_objects(bucket.name, prefix=prefix, delimiter=delimiter,
                                              start_after=m[0], max_keys=n)

    return await labels.visible_page(
        request, fetch(request.query.get("prefix", ""), request.query.get("delimiter", "")),
        (start_after, ""), max_keys, lambda p: labels.any_visible(request, fetch(p, "")))


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
    owner = owner_element(request) if q.get("fetch-owner", "").lower() == "true" else None
    body = [
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
        ("Contents", _contents(page.entries, encode, owner)),
        ("CommonPrefixes", [{"Prefix": encode(p)} for p in page.common_prefixes]),
    ]
    return xml_response(xml.render("ListBucketResult", body))


async def list_objects_v1(request: Request) -> Response:
    q = request.query
    encode = url_encoder(request)
    max_keys = int_param(request, "max-keys", 1000)
    marker = q.get("marker", "")
    page = await _page(request, marker, max_keys)
    delimiter = q.get("delimiter", "")
    body = [
        ("Name", request.bucket),
        ("Prefix", encode(q.get("prefix", ""))),
        ("Marker", encode(marker)),
        ("NextMarker", encode(page.next_marker) if page.is_truncated and delimiter else None),
        ("MaxKeys", max_keys),
        ("Delimiter", encode(delimiter) if "delimiter" in q else None),
        ("EncodingType", q.get("encoding-type")),
        ("IsTruncated", page.is_truncated),
        ("Contents", _contents(page.entries, encode, owner_element(request))),
        ("CommonPrefixes", [{"Prefix": encode(p)} for p in page.common_prefixes]),
    ]
    return xml_response(xml.render("ListBucketResult", body))
