"""Multipart uploads end to end through boto3: the life cycle, listings, errors, copies and reads.

ETags are checked by computing them (md5 of the concatenated part md5 digests, then ``-N``),
so a server that merely returns something ETag-shaped fails.
"""

from __future__ import annotations

import hashlib
import random

import pytest
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError

MiB = 1024 * 1024
PART = 5 * MiB


def data(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n)


def md5(b: bytes) -> str:
    return hashlib.md5(b).hexdigest()


def composite_etag(parts: list[bytes]) -> str:
    digest = hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts)).hexdigest()
    return f'"{digest}-{len(parts)}"'


def err(exc: pytest.ExceptionInfo) -> tuple[str, int]:
    r = exc.value.response
    return r["Error"]["Code"], r["ResponseMetadata"]["HTTPStatusCode"]


def upload(s3, bucket: str, key: str, parts: list[bytes]) -> tuple[str, list[dict]]:
    """Create an upload and send parts 1..n; returns (upload id, parts list for Complete)."""
    uid = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    done = []
    for i, body in enumerate(parts, start=1):
        r = s3.upload_part(Bucket=bucket, Key=key, UploadId=uid, PartNumber=i, Body=body)
        assert r["ETag"] == f'"{md5(body)}"'
        done.append({"PartNumber": i, "ETag": r["ETag"]})
    return uid, done


def complete(s3, bucket: str, key: str, uid: str, parts: list[dict], **kw) -> dict:
    return s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=uid,
                                        MultipartUpload={"Parts": parts}, **kw)


@pytest.fixture(scope="module")
def three_parts() -> list[bytes]:
    return [data(PART, 1), data(PART, 2), data(123_457, 3)]


@pytest.fixture
def mp_object(s3, bucket, three_parts):
    """A completed three-part object: (key, parts)."""
    uid, done = upload(s3, bucket, "mp/obj", three_parts)
    complete(s3, bucket, "mp/obj", uid, done)
    return "mp/obj", three_parts


def test_complete_composite_etag_and_body(s3, bucket, three_parts):
    uid, done = upload(s3, bucket, "big", three_parts)
    r = complete(s3, bucket, "big", uid, done)
    want = composite_etag(three_parts)
    assert r["ETag"] == want
    assert r["Key"] == "big"
    whole = b"".join(three_parts)
    head = s3.head_object(Bucket=bucket, Key="big")
    assert head["ETag"] == want
    assert head["ContentLength"] == len(whole)
    got = s3.get_object(Bucket=bucket, Key="big")
    assert got["ETag"] == want
    assert got["Body"].read() == whole
    listed = s3.list_objects_v2(Bucket=bucket)["Contents"]
    assert [(o["Key"], o["ETag"], o["Size"]) for o in listed] == [("big", want, len(whole))]
    # The upload is gone once completed.
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    with pytest.raises(ClientError) as e:
        s3.list_parts(Bucket=bucket, Key="big", UploadId=uid)
    assert err(e) == ("NoSuchUpload", 404)


def test_metadata_and_content_type_from_create(s3, bucket):
    uid = s3.create_multipart_upload(Bucket=bucket, Key="m", ContentType="text/plain",
                                     Metadata={"color": "blue"})["UploadId"]
    r = s3.upload_part(Bucket=bucket, Key="m", UploadId=uid, PartNumber=1, Body=b"hello")
    complete(s3, bucket, "m", uid, [{"PartNumber": 1, "ETag": r["ETag"]}])
    head = s3.head_object(Bucket=bucket, Key="m")
    assert head["ContentType"] == "text/plain"
    assert head["Metadata"] == {"color": "blue"}
    assert head["ETag"] == composite_etag([b"hello"])


def test_list_parts_paging(s3, bucket):
    bodies = [data(1000 + i, 10 + i) for i in range(5)]
    uid, _ = upload(s3, bucket, "lp", bodies)
    p1 = s3.list_parts(Bucket=bucket, Key="lp", UploadId=uid, MaxParts=2)
    assert [p["PartNumber"] for p in p1["Parts"]] == [1, 2]
    assert p1["IsTruncated"] is True
    assert p1["MaxParts"] == 2
    assert p1["NextPartNumberMarker"] == 2
    assert [p["ETag"] for p in p1["Parts"]] == [f'"{md5(b)}"' for b in bodies[:2]]
    assert [p["Size"] for p in p1["Parts"]] == [1000, 1001]
    p2 = s3.list_parts(Bucket=bucket, Key="lp", UploadId=uid, MaxParts=2,
                       PartNumberMarker=p1["NextPartNumberMarker"])
    assert [p["PartNumber"] for p in p2["Parts"]] == [3, 4]
    assert p2["IsTruncated"] is True
    assert p2["PartNumberMarker"] == 2
    p3 = s3.list_parts(Bucket=bucket, Key="lp", UploadId=uid, MaxParts=2,
                       PartNumberMarker=p2["NextPartNumberMarker"])
    assert [p["PartNumber"] for p in p3["Parts"]] == [5]
    assert p3["IsTruncated"] is False
    full = s3.list_parts(Bucket=bucket, Key="lp", UploadId=uid)
    assert [p["PartNumber"] for p in full["Parts"]] == [1, 2, 3, 4, 5]
    assert full["IsTruncated"] is False
    assert full["Key"] == "lp" and full["UploadId"] == uid


def _uploads(resp: dict) -> list[tuple[str, str]]:
    return [(u["Key"], u["UploadId"]) for u in resp.get("Uploads", [])]


def test_list_multipart_uploads_prefix_delimiter_markers(s3, bucket):
    ids: dict[str, list[str]] = {}
    for key in ["a/1", "a/1", "a/2", "b/1", "c"]:
        ids.setdefault(key, []).append(
            s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"])
    full = s3.list_multipart_uploads(Bucket=bucket)
    listed = _uploads(full)
    assert [k for k, _ in listed] == ["a/1", "a/1", "a/2", "b/1", "c"]
    assert sorted(u for k, u in listed if k == "a/1") == sorted(ids["a/1"])
    assert full["IsTruncated"] is False

    pre = s3.list_multipart_uploads(Bucket=bucket, Prefix="a/")
    assert [k for k, _ in _uploads(pre)] == ["a/1", "a/1", "a/2"]

    delim = s3.list_multipart_uploads(Bucket=bucket, Delimiter="/")
    assert [k for k, _ in _uploads(delim)] == ["c"]
    assert [p["Prefix"] for p in delim.get("CommonPrefixes", [])] == ["a/", "b/"]

    both = s3.list_multipart_uploads(Bucket=bucket, Prefix="a/", Delimiter="/")
    assert [k for k, _ in _uploads(both)] == ["a/1", "a/1", "a/2"]
    assert both.get("CommonPrefixes", []) == []

    # KeyMarker alone: uploads for keys strictly after the marker.
    after = s3.list_multipart_uploads(Bucket=bucket, KeyMarker="a/1")
    assert _uploads(after) == listed[2:]

    # Paging with MaxUploads: the Next* markers walk the same list, each upload once.
    seen: list[tuple[str, str]] = []
    kw: dict = {}
    for _ in range(10):
        page = s3.list_multipart_uploads(Bucket=bucket, MaxUploads=2, **kw)
        got = _uploads(page)
        assert len(got) <= 2
        seen += got
        if not page["IsTruncated"]:
            break
        kw = {"KeyMarker": page["NextKeyMarker"], "UploadIdMarker": page["NextUploadIdMarker"]}
        assert (page["NextKeyMarker"], page["NextUploadIdMarker"]) == got[-1]
    assert seen == listed

    # KeyMarker + UploadIdMarker inside the two "a/1" uploads: the second one comes next.
    mid = s3.list_multipart_uploads(Bucket=bucket, KeyMarker="a/1", UploadIdMarker=listed[0][1])
    assert _uploads(mid) == listed[1:]


def test_abort_then_no_such_upload(s3, bucket):
    uid, done = upload(s3, bucket, "ab", [b"x" * 100])
    r = s3.abort_multipart_upload(Bucket=bucket, Key="ab", UploadId=uid)
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 204
    for call in (
        lambda: s3.list_parts(Bucket=bucket, Key="ab", UploadId=uid),
        lambda: s3.upload_part(Bucket=bucket, Key="ab", UploadId=uid, PartNumber=2, Body=b"y"),
        lambda: complete(s3, bucket, "ab", uid, done),
    ):
        with pytest.raises(ClientError) as e:
            call()
        assert err(e) == ("NoSuchUpload", 404)
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key="ab")
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_unknown_upload_id(s3, bucket):
    with pytest.raises(ClientError) as e:
        s3.upload_part(Bucket=bucket, Key="k", UploadId="does-not-exist", PartNumber=1, Body=b"x")
    assert err(e) == ("NoSuchUpload", 404)
    with pytest.raises(ClientError) as e:
        s3.abort_multipart_upload(Bucket=bucket, Key="k", UploadId="does-not-exist")
    assert err(e) == ("NoSuchUpload", 404)


def test_upload_id_belongs_to_its_key(s3, bucket):
    uid, done = upload(s3, bucket, "owner-key", [b"abc"])
    with pytest.raises(ClientError) as e:
        complete(s3, bucket, "other-key", uid, done)
    assert err(e) == ("NoSuchUpload", 404)


def test_invalid_part_wrong_etag_or_unknown_part(s3, bucket):
    uid, done = upload(s3, bucket, "ip", [data(PART, 4), b"tail"])
    bad_etag = [done[0], {"PartNumber": 2, "ETag": f'"{md5(b"other")}"'}]
    with pytest.raises(ClientError) as e:
        complete(s3, bucket, "ip", uid, bad_etag)
    assert err(e) == ("InvalidPart", 400)
    unknown = [done[0], {"PartNumber": 7, "ETag": done[1]["ETag"]}]
    with pytest.raises(ClientError) as e:
        complete(s3, bucket, "ip", uid, unknown)
    assert err(e) == ("InvalidPart", 400)
    # A failed Complete leaves the upload usable.
    complete(s3, bucket, "ip", uid, done)
    assert s3.get_object(Bucket=bucket, Key="ip")["Body"].read() == data(PART, 4) + b"tail"


def test_invalid_part_order(s3, bucket):
    # Both parts are >= 5 MiB so that only the order is wrong.
    uid, done = upload(s3, bucket, "po", [data(PART, 5), data(PART, 13)])
    with pytest.raises(ClientError) as e:
        complete(s3, bucket, "po", uid, [done[1], done[0]])
    assert err(e) == ("InvalidPartOrder", 400)


def test_entity_too_small_for_non_last_part(s3, bucket):
    uid, done = upload(s3, bucket, "small", [b"a" * 1024, b"b" * 1024])
    with pytest.raises(ClientError) as e:
        complete(s3, bucket, "small", uid, done)
    assert err(e) == ("EntityTooSmall", 400)
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key="small")
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    # A single small part is fine: the last part has no minimum.
    complete(s3, bucket, "small", uid, done[1:])
    assert s3.get_object(Bucket=bucket, Key="small")["Body"].read() == b"b" * 1024


def test_reupload_part_replaces_it(s3, bucket):
    old, new, tail = data(PART, 6), data(PART, 7), b"end"
    uid, done = upload(s3, bucket, "re", [old, tail])
    r = s3.upload_part(Bucket=bucket, Key="re", UploadId=uid, PartNumber=1, Body=new)
    assert r["ETag"] == f'"{md5(new)}"'
    parts = s3.list_parts(Bucket=bucket, Key="re", UploadId=uid)["Parts"]
    assert [(p["PartNumber"], p["ETag"], p["Size"]) for p in parts] == [
        (1, r["ETag"], PART), (2, f'"{md5(tail)}"', 3)]
    # The replaced part's ETag no longer names a part of this upload.
    with pytest.raises(ClientError) as e:
        complete(s3, bucket, "re", uid, done)
    assert err(e) == ("InvalidPart", 400)
    out = complete(s3, bucket, "re", uid, [{"PartNumber": 1, "ETag": r["ETag"]}, done[1]])
    assert out["ETag"] == composite_etag([new, tail])
    assert s3.get_object(Bucket=bucket, Key="re")["Body"].read() == new + tail


def test_complete_with_subset_of_parts(s3, bucket):
    p1, p2, p3 = data(PART, 8), data(PART, 9), data(4096, 10)
    uid, done = upload(s3, bucket, "sub", [p1, p2, p3])
    out = complete(s3, bucket, "sub", uid, [done[0], done[2]])
    assert out["ETag"] == composite_etag([p1, p3])
    got = s3.get_object(Bucket=bucket, Key="sub")
    assert got["ContentLength"] == len(p1) + len(p3)
    assert got["Body"].read() == p1 + p3
    head = s3.head_object(Bucket=bucket, Key="sub", PartNumber=1)
    assert head["ContentLength"] == len(p1)
    assert head["PartsCount"] == 2


def test_upload_part_copy_with_range(s3, bucket):
    src = data(PART + 300_000, 11)
    s3.put_object(Bucket=bucket, Key="src", Body=src)
    uid = s3.create_multipart_upload(Bucket=bucket, Key="dst")["UploadId"]
    ranges = [(0, PART - 1), (PART, len(src) - 1)]
    parts = []
    for n, (a, b) in enumerate(ranges, start=1):
        r = s3.upload_part_copy(Bucket=bucket, Key="dst", UploadId=uid, PartNumber=n,
                                CopySource={"Bucket": bucket, "Key": "src"},
                                CopySourceRange=f"bytes={a}-{b}")
        assert r["CopyPartResult"]["ETag"] == f'"{md5(src[a:b + 1])}"'
        parts.append({"PartNumber": n, "ETag": r["CopyPartResult"]["ETag"]})
    listed = s3.list_parts(Bucket=bucket, Key="dst", UploadId=uid)["Parts"]
    assert [p["Size"] for p in listed] == [PART, len(src) - PART]
    out = complete(s3, bucket, "dst", uid, parts)
    assert out["ETag"] == composite_etag([src[:PART], src[PART:]])
    assert s3.get_object(Bucket=bucket, Key="dst")["Body"].read() == src


def test_upload_part_copy_whole_object_and_bad_range(s3, bucket):
    src = b"0123456789" * 100
    s3.put_object(Bucket=bucket, Key="src", Body=src)
    uid = s3.create_multipart_upload(Bucket=bucket, Key="dst")["UploadId"]
    r = s3.upload_part_copy(Bucket=bucket, Key="dst", UploadId=uid, PartNumber=1,
                            CopySource=f"{bucket}/src")
    assert r["CopyPartResult"]["ETag"] == f'"{md5(src)}"'
    # AWS: InvalidArgument "Range specified is not valid for source object of size: N"
    # (an out-of-bounds copy range), and InvalidArgument for a malformed one.
    for bad in ("bytes=500-5000", "0-10"):
        with pytest.raises(ClientError) as e:
            s3.upload_part_copy(Bucket=bucket, Key="dst", UploadId=uid, PartNumber=2,
                                CopySource=f"{bucket}/src", CopySourceRange=bad)
        assert err(e) == ("InvalidArgument", 400)
    with pytest.raises(ClientError) as e:
        s3.upload_part_copy(Bucket=bucket, Key="dst", UploadId=uid, PartNumber=2,
                            CopySource=f"{bucket}/missing")
    assert err(e) == ("NoSuchKey", 404)


def test_get_and_head_part_number(s3, bucket, mp_object):
    key, parts = mp_object
    total = sum(map(len, parts))
    etag = composite_etag(parts)
    offset = 0
    for n, body in enumerate(parts, start=1):
        head = s3.head_object(Bucket=bucket, Key=key, PartNumber=n)
        assert head["ResponseMetadata"]["HTTPStatusCode"] == 206
        assert head["ContentLength"] == len(body)
        assert head["PartsCount"] == 3
        assert head["ETag"] == etag
        assert head["ContentRange"] == f"bytes {offset}-{offset + len(body) - 1}/{total}"
        got = s3.get_object(Bucket=bucket, Key=key, PartNumber=n)
        assert got["ResponseMetadata"]["HTTPStatusCode"] == 206
        assert got["PartsCount"] == 3
        assert got["ContentRange"] == head["ContentRange"]
        assert got["Body"].read() == body
        offset += len(body)
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key=key, PartNumber=4)
    assert err(e) == ("InvalidPartNumber", 416)


def test_head_part_number_one_on_plain_object(s3, bucket):
    s3.put_object(Bucket=bucket, Key="plain", Body=b"abc")
    head = s3.head_object(Bucket=bucket, Key="plain", PartNumber=1)
    assert head["ContentLength"] == 3
    assert "PartsCount" not in head


def test_range_across_part_boundaries(s3, bucket, mp_object):
    key, parts = mp_object
    whole = b"".join(parts)
    total = len(whole)
    for a, b in [(PART - 10, PART + 9), (PART - 1, 2 * PART), (100, total - 100),
                 (2 * PART - 5, total - 1)]:
        r = s3.get_object(Bucket=bucket, Key=key, Range=f"bytes={a}-{b}")
        assert r["ResponseMetadata"]["HTTPStatusCode"] == 206
        assert r["ContentRange"] == f"bytes {a}-{b}/{total}"
        assert r["ContentLength"] == b - a + 1
        assert r["Body"].read() == whole[a:b + 1]
    r = s3.get_object(Bucket=bucket, Key=key, Range="bytes=-200000")
    assert r["Body"].read() == whole[-200000:]
    r = s3.get_object(Bucket=bucket, Key=key, Range=f"bytes={PART * 2 - 1}-")
    assert r["Body"].read() == whole[PART * 2 - 1:]


def test_conditional_complete_if_none_match(s3, bucket):
    uid, done = upload(s3, bucket, "cond", [b"first"])
    out = complete(s3, bucket, "cond", uid, done, IfNoneMatch="*")
    assert out["ETag"] == composite_etag([b"first"])
    uid2, done2 = upload(s3, bucket, "cond", [b"second"])
    with pytest.raises(ClientError) as e:
        complete(s3, bucket, "cond", uid2, done2, IfNoneMatch="*")
    assert err(e) == ("PreconditionFailed", 412)
    assert s3.get_object(Bucket=bucket, Key="cond")["Body"].read() == b"first"


def test_transfer_manager_round_trip(s3, bucket, tmp_path):
    cfg = TransferConfig(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB,
                         max_concurrency=4)
    src = tmp_path / "up.bin"
    body = data(20 * MiB + 12345, 12)
    src.write_bytes(body)
    s3.upload_file(str(src), bucket, "tm/file.bin", Config=cfg)
    head = s3.head_object(Bucket=bucket, Key="tm/file.bin")
    assert head["ContentLength"] == len(body)
    chunks = [body[i:i + 5 * MiB] for i in range(0, len(body), 5 * MiB)]
    assert head["ETag"] == composite_etag(chunks)
    dst = tmp_path / "down.bin"
    s3.download_file(bucket, "tm/file.bin", str(dst), Config=cfg)
    assert hashlib.sha256(dst.read_bytes()).digest() == hashlib.sha256(body).digest()


def test_conditional_complete_if_match(s3, bucket):
    etag = s3.put_object(Bucket=bucket, Key="cm", Body=b"v1")["ETag"]
    uid, done = upload(s3, bucket, "cm", [b"second"])
    with pytest.raises(ClientError) as e:
        complete(s3, bucket, "cm", uid, done, IfMatch='"0123456789abcdef0123456789abcdef"')
    assert err(e) == ("PreconditionFailed", 412)
    with pytest.raises(ClientError) as e:
        complete(s3, bucket, "cm-absent", *upload(s3, bucket, "cm-absent", [b"x"]), IfMatch=etag)
    assert err(e) == ("NoSuchKey", 404)
    complete(s3, bucket, "cm", uid, done, IfMatch=etag)     # the upload survived the 412
    assert s3.get_object(Bucket=bucket, Key="cm")["Body"].read() == b"second"


@pytest.mark.parametrize("versioning", [None, "Enabled"])
def test_complete_retried_after_success_answers_the_same(s3, bucket, versioning):
    """SDKs retry a Complete whose answer was lost: AWS answers 200 with the same ETag."""
    if versioning:
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": versioning})
    parts = [data(PART, 7), b"tail"]
    uid, done = upload(s3, bucket, "retry", parts)
    first = complete(s3, bucket, "retry", uid, done)
    again = complete(s3, bucket, "retry", uid, done)
    assert again["ETag"] == first["ETag"] == composite_etag(parts)
    assert again.get("VersionId") == first.get("VersionId")
    assert ("VersionId" in first) == bool(versioning)
    if versioning:      # a newer version on top: the retry still names its own
        s3.put_object(Bucket=bucket, Key="retry", Body=b"newer")
        assert complete(s3, bucket, "retry", uid, done)["VersionId"] == first["VersionId"]
    for other in (done[:1], [done[0], {"PartNumber": 2, "ETag": '"' + "0" * 32 + '"'}]):
        with pytest.raises(ClientError) as e:       # another part list is not a retry
            complete(s3, bucket, "retry", uid, other)
        assert err(e) == ("NoSuchUpload", 404)
    with pytest.raises(ClientError) as e:           # nor is the same id on another key
        complete(s3, bucket, "elsewhere", uid, done)
    assert err(e) == ("NoSuchUpload", 404)
    with pytest.raises(ClientError) as e:           # and the upload itself is gone
        s3.list_parts(Bucket=bucket, Key="retry", UploadId=uid)
    assert err(e) == ("NoSuchUpload", 404)
