"""ListObjectVersions: every version and delete marker, key ascending, newest first.

Pagination is by (key-marker, version-id-marker): the next page starts after
that version of that key, or after every version of the key when no version
marker is given.
"""

from __future__ import annotations

from vallum.http import Request, Response, xml_response
from vallum.meta.records import ObjectRecord
from vallum.s3 import errors, xml
from vallum.s3.conditions import iso8601
from vallum.s3.handlers import visibility
from vallum.s3.handlers.buckets import owner_element
from vallum.s3.handlers.common import (
    check_version_id,
    get_bucket,
    int_param,
    url_encoder,
)


def _entries(records: list[ObjectRecord], encode, owner: str) -> str:
    """Every Version / DeleteMarker element of a page as one string, in S3's element order.

    Why not ``xml.render`` per element: a version has ~10 elements, each escaped through
    str.translate and emitted recursively, which made a 1000-version page cost more to
    render than to read (13.9 ms). Here the page's text is probed once and escaped only
    if needed, the Owner element is rendered once, and each entry is one f-string (2.7 ms)."""
    # Keys are probed unencoded: URL-encoding (encoding-type=url) never adds a character
    # that needs escaping. Checksum names are escaped by xml.checksum_fragment (rare).
    text = xml.escaper(v for r in records for v in (r.key, r.version_id, r.etag, r.storage_class))
    out = []
    for rec in records:
        head = (f"<Key>{text(encode(rec.key))}</Key><VersionId>{text(rec.version_id)}</VersionId>"
                f"<IsLatest>{'true' if rec.is_latest else 'false'}</IsLatest>"
                f"<LastModified>{iso8601(rec.last_modified)}</LastModified>")
        if rec.delete_marker:
            out.append(f"<DeleteMarker>{head}{owner}</DeleteMarker>")
            continue
        checksum = xml.checksum_fragment(rec.checksums)
        out.append(f"<Version>{head}<ETag>&quot;{text(rec.etag)}&quot;</ETag>{checksum}"
                   f"<Size>{rec.size}</Size><StorageClass>{text(rec.storage_class)}</StorageClass>"
                   f"{owner}</Version>")
    return "".join(out)


async def list_object_versions(request: Request) -> Response:
    bucket = await get_bucket(request)
    q = request.query
    encode = url_encoder(request)
    max_keys = int_param(request, "max-keys", 1000)
    key_marker = q.get("key-marker", "")
    version_marker = q.get("version-id-marker", "")
    if version_marker and not key_marker:
        raise errors.InvalidArgument("A version-id marker cannot be specified without a key marker.",
                                     ArgumentName="version-id-marker", ArgumentValue=version_marker)
    if version_marker:
        check_version_id(version_marker)
    prefix, delimiter = q.get("prefix", ""), q.get("delimiter", "")
    meta = request.services.meta

    def fetch(prefix: str, delimiter: str):
        return lambda m, n: meta.list_versions(bucket.name, prefix=prefix, delimiter=delimiter,
                                               key_marker=m[0], version_id_marker=m[1], max_keys=n)

    who = visibility.restricted(request)
    if who is None:
        page = await fetch(prefix, delimiter)((key_marker, version_marker), max_keys)
    else:   # versions above the caller's level are absent (visibility.py)
        async def newer_visible(key: str, version: str) -> bool:
            return await visibility.newest_readable(request, who, bucket.name, key, version) is not None

        page = await visibility.versions_page(who, fetch(prefix, delimiter), lambda p: fetch(p, ""),
                                              (key_marker, version_marker), max_keys, newer_visible)
    owner = xml.fragment("Owner", owner_element(request))
    next_key = next_version = None
    if page.is_truncated:
        next_key = page.next_marker
        # A page ending on a common prefix resumes after the whole prefix: no version marker.
        next_version = page.next_version_marker if page.next_version_marker else None
    head: list[tuple[str, object]] = [
        ("Name", bucket.name), ("Prefix", encode(prefix)), ("KeyMarker", encode(key_marker)),
        ("VersionIdMarker", version_marker),
        ("NextKeyMarker", encode(next_key) if next_key is not None else None),
        ("NextVersionIdMarker", next_version),
        ("MaxKeys", max_keys), ("Delimiter", encode(delimiter) if "delimiter" in q else None),
        ("EncodingType", q.get("encoding-type")), ("IsTruncated", page.is_truncated),
    ]
    tail = [("CommonPrefixes", [{"Prefix": encode(p)} for p in page.common_prefixes])]
    return xml_response(xml.render_around("ListVersionsResult", head,
                                          _entries(page.entries, encode, owner), tail))
