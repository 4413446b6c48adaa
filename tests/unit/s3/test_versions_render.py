"""ListObjectVersions' fast entry renderer must emit exactly what the generic renderer does.

The reference builds each Version / DeleteMarker as nested (tag, value) pairs through
``xml.render`` (the handler's former code); pages mix clean text (the fast path, no
escaping) with keys, ETags and checksum names that need escaping.
"""

from __future__ import annotations

import math
import random
import time
from urllib.parse import quote

import pytest

from vallum.meta.records import ObjectRecord
from vallum.s3 import xml
from vallum.s3.conditions import iso8601
from vallum.s3.handlers.versions import _entries

OWNER = {"ID": "0b206deb&<owner>"}
HEAD = [("Name", "bkt"), ("Prefix", "a&b"), ("NextVersionIdMarker", None), ("IsTruncated", True)]


def _reference(rec: ObjectRecord, encode) -> tuple[str, tuple]:
    fields: list[tuple[str, object]] = [("Key", encode(rec.key)), ("VersionId", rec.version_id),
                                        ("IsLatest", rec.is_latest),
                                        ("LastModified", iso8601(rec.last_modified))]
    if rec.delete_marker:
        return "DeleteMarker", (*fields, ("Owner", OWNER))
    fields.append(("ETag", f'"{rec.etag}"'))
    alg = next((a for a in rec.checksums if a != "type"), None)
    if alg:
        fields += [("ChecksumAlgorithm", alg), ("ChecksumType", rec.checksums.get("type", "FULL_OBJECT"))]
    fields += [("Size", rec.size), ("StorageClass", rec.storage_class), ("Owner", OWNER)]
    return "Version", tuple(fields)


def _page(rnd: random.Random, alphabet: str) -> list[ObjectRecord]:
    def text(n: int) -> str:
        return "".join(rnd.choice(alphabet) for _ in range(rnd.randint(1, n)))
    checksums = [{}, {"type": "COMPOSITE"}, {"CRC32": "AAAA==", "type": "COMPOSITE"},
                 {"SHA256": "x&y"}, {"type": "FULL_OBJECT", "CRC32C": "q"}]
    return [ObjectRecord("bkt", text(10), text(6), size=rnd.randint(0, 10**12), etag=text(8),
                         last_modified=rnd.uniform(0, 2e9), checksums=rnd.choice(checksums),
                         delete_marker=rnd.random() < 0.3, is_latest=rnd.random() < 0.5,
                         storage_class=rnd.choice(["STANDARD", "GLACIER", text(3)]))
            for _ in range(rnd.randint(0, 8))]


@pytest.mark.parametrize("alphabet", ["abc019/-_.", "ab/ é中😀%+", "ab/&<>\"'\r\n\t é😀"])
@pytest.mark.parametrize("url", [False, True])
def test_entries_match_generic_renderer(alphabet, url):
    encode = (lambda k: quote(k, safe="/")) if url else (lambda k: k)
    rnd = random.Random(f"{alphabet}{url}")
    for _ in range(300):
        records = _page(rnd, alphabet)
        tail = [("CommonPrefixes", [{"Prefix": "p&/"}])]
        want = xml.render("ListVersionsResult", [*HEAD, *(_reference(r, encode) for r in records), *tail])
        got = xml.render_around("ListVersionsResult", HEAD,
                                _entries(records, encode, xml.fragment("Owner", OWNER)), tail)
        assert got == want


def _iso8601_uncached(ts: float) -> str:
    millis = math.floor(round(ts * 1000, 3))
    secs, ms = divmod(millis, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{ms:03d}Z"


def test_cached_iso8601_matches_the_plain_formula_at_second_and_millisecond_edges():
    values = [s + d for s in (0, 59, 1_000_000_000, 1_795_772_107)
              for d in (0.0, 1e-9, 0.0005, 0.0004999, 0.9994, 0.9995, 0.9999999)]
    values += [1_795_772_107.0135 + i * 1e-4 for i in range(20_000)]   # many in one second
    assert [iso8601(v) for v in values] == [_iso8601_uncached(v) for v in values]
