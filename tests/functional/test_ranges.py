"""Ranged GETs (RFC 7233 as S3 applies it): 206 + Content-Range, 416, ignored bad ranges."""

from __future__ import annotations

import hashlib

import pytest
from botocore.exceptions import ClientError

DATA = bytes(range(256)) * 4 + b"tail"  # 1028 bytes, every offset distinguishable
SIZE = len(DATA)


@pytest.fixture
def obj(s3, bucket):
    s3.put_object(Bucket=bucket, Key="r", Body=DATA)
    return bucket, "r"


def _get(s3, obj, rng):
    bucket, key = obj
    return s3.get_object(Bucket=bucket, Key=key, Range=rng)


@pytest.mark.parametrize(("rng", "first", "last"), [
    ("bytes=0-0", 0, 0),
    ("bytes=0-9", 0, 9),
    ("bytes=10-19", 10, 19),
    ("bytes=1000-1027", 1000, SIZE - 1),
    ("bytes=1000-99999", 1000, SIZE - 1),     # end past the object is clamped
    ("bytes=0-", 0, SIZE - 1),
    ("bytes=1027-", SIZE - 1, SIZE - 1),
    ("bytes=500-", 500, SIZE - 1),
    ("bytes=-1", SIZE - 1, SIZE - 1),
    ("bytes=-4", SIZE - 4, SIZE - 1),
    ("bytes=-5000", 0, SIZE - 1),             # suffix longer than the object: whole object
])
def test_satisfiable_range(s3, obj, rng, first, last):
    resp = _get(s3, obj, rng)
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 206
    body = resp["Body"].read()
    assert body == DATA[first:last + 1]
    assert resp["ContentLength"] == last - first + 1
    assert resp["ContentRange"] == f"bytes {first}-{last}/{SIZE}"
    # The ETag is the whole object's, not the slice's.
    assert resp["ETag"] == '"%s"' % hashlib.md5(DATA).hexdigest()
    assert resp["ResponseMetadata"]["HTTPHeaders"].get("accept-ranges") == "bytes"


def test_head_with_range(s3, obj):
    bucket, key = obj
    resp = s3.head_object(Bucket=bucket, Key=key, Range="bytes=10-19")
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert resp["ContentLength"] == 10
    assert resp["ContentRange"] == f"bytes 10-19/{SIZE}"


@pytest.mark.parametrize("rng", [f"bytes={SIZE}-", f"bytes={SIZE}-{SIZE + 10}", "bytes=5000-6000"])
def test_unsatisfiable_range_is_416(s3, obj, rng):
    with pytest.raises(ClientError) as e:
        _get(s3, obj, rng)
    err = e.value.response
    assert err["Error"]["Code"] == "InvalidRange"
    assert err["ResponseMetadata"]["HTTPStatusCode"] == 416


def test_range_on_empty_object_is_416(s3, bucket):
    s3.put_object(Bucket=bucket, Key="e", Body=b"")
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="e", Range="bytes=0-10")
    assert e.value.response["Error"]["Code"] == "InvalidRange"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 416


@pytest.mark.parametrize("rng", [
    "bytes=abc",
    "bytes=5-2",          # last < first: syntactically invalid, so ignored
    "bytes=",
    "bytes=-",
    "bytes=1-2-3",
    "bites=0-9",          # unknown unit
    "0-9",
    "bytes=0x10-20",
])
def test_malformed_range_is_ignored(s3, obj, rng):
    resp = _get(s3, obj, rng)
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert resp["Body"].read() == DATA
    assert resp["ContentLength"] == SIZE
    assert "ContentRange" not in resp


def test_range_over_large_object_streams_exact_slice(s3, bucket):
    data = hashlib.sha256(b"seed").digest() * (3 * 1024 * 1024 // 32 + 5)  # > 3 MiB
    s3.put_object(Bucket=bucket, Key="big", Body=data)
    first, last = 1024 * 1024 - 3, 2 * 1024 * 1024 + 17   # straddles 1 MiB chunk edges
    resp = s3.get_object(Bucket=bucket, Key="big", Range=f"bytes={first}-{last}")
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert resp["Body"].read() == data[first:last + 1]
    assert resp["ContentRange"] == f"bytes {first}-{last}/{len(data)}"
