"""ListObjects(V2)' fast Contents renderer must emit exactly what the generic renderer does.

The reference is the handler's former code: one dict per Contents element through
``xml.render``. Pages mix clean text (no escaping at all) with keys, ETags, storage
classes and checksum names that need escaping, with and without the Owner element.
"""

from __future__ import annotations

import random
from urllib.parse import quote

import pytest

from vallum.meta.records import ObjectRecord
from vallum.s3 import xml
from vallum.s3.conditions import iso8601
from vallum.s3.handlers.listing import _contents

OWNER = {"ID": "0b206deb&<owner>"}
HEAD = [("Name", "bkt"), ("Prefix", "a&b"), ("Delimiter", None), ("MaxKeys", 1000),
        ("KeyCount", 3), ("IsTruncated", False), ("StartAfter", "s<")]


def _reference(rec: ObjectRecord, encode, owner) -> dict:
    item = {"Key": encode(rec.key), "LastModified": iso8601(rec.last_modified),
            "ETag": f'"{rec.etag}"'}
    alg = next((a for a in rec.checksums if a != "type"), None)
    if alg:
        item["ChecksumAlgorithm"] = alg
        item["ChecksumType"] = rec.checksums.get("type", "FULL_OBJECT")
    item["Size"] = rec.size
    if owner is not None:
        item["Owner"] = owner
    item["StorageClass"] = rec.storage_class
    return item


def _page(rnd: random.Random, alphabet: str) -> list[ObjectRecord]:
    def text(n: int) -> str:
        return "".join(rnd.choice(alphabet) for _ in range(rnd.randint(1, n)))
    checksums = [{}, {"type": "COMPOSITE"}, {"CRC32": "AAAA==", "type": "COMPOSITE"},
                 {"SHA256": "x&y"}, {"type": "FULL_OBJECT", "CRC32C": "q"}]
    return [ObjectRecord("bkt", text(10), size=rnd.randint(0, 10**12), etag=text(8),
                         last_modified=rnd.uniform(0, 2e9), checksums=rnd.choice(checksums),
                         storage_class=rnd.choice(["STANDARD", "GLACIER", text(3)]))
            for _ in range(rnd.randint(0, 8))]


@pytest.mark.parametrize("alphabet", ["abc019/-_.", "ab/ é中😀%+", "ab/&<>\"'\r\n\t é😀"])
@pytest.mark.parametrize("url", [False, True])
@pytest.mark.parametrize("with_owner", [False, True])
def test_contents_match_generic_renderer(alphabet, url, with_owner):
    encode = (lambda k: quote(k, safe="/")) if url else (lambda k: k)
    owner = OWNER if with_owner else None
    rnd = random.Random(f"{alphabet}{url}{with_owner}")
    for _ in range(300):
        records = _page(rnd, alphabet)
        prefixes = [{"Prefix": "p&/"}] if rnd.random() < 0.5 else []
        want = xml.render("ListBucketResult", [*HEAD, ("Contents", [_reference(r, encode, owner)
                                                                    for r in records]),
                                               ("CommonPrefixes", prefixes)])
        fast_owner = xml.fragment("Owner", owner) if with_owner else ""
        got = xml.render_around("ListBucketResult", HEAD, _contents(records, encode, fast_owner),
                                [("CommonPrefixes", prefixes)])
        assert got == want
