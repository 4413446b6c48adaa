"""GetObjectAttributes through boto3 against the real server: every attribute, parts paged,
versions and delete markers, and who may ask (s3:GetObjectAttributes and s3:GetObject, as
AWS requires; MAC: an object above the caller's level is a missing key)."""

from __future__ import annotations

import base64
import hashlib
import os
import uuid
import zlib

import pytest
from botocore.exceptions import ClientError

from tests.support.iam import Tenant
from tests.support.labels import ALLOW_S3, TS, Cleared, S, U
from tests.support.server import code, start_server, stop_server
from vallum.cli.admin import AdminClient

ALL = ["ETag", "Checksum", "ObjectParts", "StorageClass", "ObjectSize"]
PART = 5 * 1024 * 1024


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    server = start_server(tmp_path_factory.mktemp("attrs") / "data")
    yield server
    stop_server(server)


@pytest.fixture(scope="module")
def s3(srv):
    return srv.client()


@pytest.fixture
def bucket(s3):
    name = "attr-" + uuid.uuid4().hex[:12]
    s3.create_bucket(Bucket=name)
    return name


def test_single_part_object(s3, bucket):
    body = b"attributes"
    put = s3.put_object(Bucket=bucket, Key="a.txt", Body=body, ChecksumAlgorithm="CRC32")
    got = s3.get_object_attributes(Bucket=bucket, Key="a.txt", ObjectAttributes=ALL)
    crc = base64.b64encode(zlib.crc32(body).to_bytes(4, "big")).decode()
    assert got["ETag"] == hashlib.md5(body).hexdigest() == put["ETag"].strip('"')
    assert got["Checksum"] == {"ChecksumCRC32": crc, "ChecksumType": "FULL_OBJECT"}
    assert got["StorageClass"] == "STANDARD" and got["ObjectSize"] == len(body)
    assert "ObjectParts" not in got and "VersionId" not in got
    assert got["LastModified"] == s3.head_object(Bucket=bucket, Key="a.txt")["LastModified"]
    only = s3.get_object_attributes(Bucket=bucket, Key="a.txt", ObjectAttributes=["ObjectSize"])
    assert only["ObjectSize"] == len(body) and "ETag" not in only and "Checksum" not in only


def test_multipart_parts_are_paged(s3, bucket):
    up = s3.create_multipart_upload(Bucket=bucket, Key="mp.bin", ChecksumAlgorithm="SHA256")
    parts = []
    for n, size in ((1, PART), (2, PART), (3, 100)):
        r = s3.upload_part(Bucket=bucket, Key="mp.bin", UploadId=up["UploadId"], PartNumber=n,
                           Body=os.urandom(size), ChecksumAlgorithm="SHA256")
        parts.append({"PartNumber": n, "ETag": r["ETag"], "ChecksumSHA256": r["ChecksumSHA256"]})
    s3.complete_multipart_upload(Bucket=bucket, Key="mp.bin", UploadId=up["UploadId"],
                                 MultipartUpload={"Parts": parts})
    got = s3.get_object_attributes(Bucket=bucket, Key="mp.bin", ObjectAttributes=ALL, MaxParts=2)
    op = got["ObjectParts"]
    assert op["TotalPartsCount"] == 3 and op["IsTruncated"] is True and op["MaxParts"] == 2
    assert [p["PartNumber"] for p in op["Parts"]] == [1, 2]
    assert op["Parts"][0]["Size"] == PART
    assert op["Parts"][0]["ChecksumSHA256"] == parts[0]["ChecksumSHA256"]
    assert got["ObjectSize"] == 2 * PART + 100 and got["ETag"].endswith("-3")
    rest = s3.get_object_attributes(Bucket=bucket, Key="mp.bin", ObjectAttributes=["ObjectParts"],
                                    PartNumberMarker=op["NextPartNumberMarker"])["ObjectParts"]
    assert [p["PartNumber"] for p in rest["Parts"]] == [3] and rest["IsTruncated"] is False


def test_versions_and_delete_markers(s3, bucket):
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    v1 = s3.put_object(Bucket=bucket, Key="v.txt", Body=b"one")["VersionId"]
    s3.put_object(Bucket=bucket, Key="v.txt", Body=b"second")
    latest = s3.get_object_attributes(Bucket=bucket, Key="v.txt", ObjectAttributes=["ObjectSize"])
    assert latest["ObjectSize"] == 6 and latest["VersionId"] != v1
    old = s3.get_object_attributes(Bucket=bucket, Key="v.txt", VersionId=v1,
                                   ObjectAttributes=["ObjectSize"])
    assert old["ObjectSize"] == 3 and old["VersionId"] == v1
    marker = s3.delete_object(Bucket=bucket, Key="v.txt")["VersionId"]
    with pytest.raises(ClientError) as exc:
        s3.get_object_attributes(Bucket=bucket, Key="v.txt", ObjectAttributes=["ETag"])
    assert code(exc) == "NoSuchKey"
    assert exc.value.response["ResponseMetadata"]["HTTPHeaders"]["x-amz-delete-marker"] == "true"
    with pytest.raises(ClientError) as exc:
        s3.get_object_attributes(Bucket=bucket, Key="v.txt", VersionId=marker,
                                 ObjectAttributes=["ETag"])
    assert code(exc) == "MethodNotAllowed"


def test_bad_requests(s3, bucket, srv):
    s3.put_object(Bucket=bucket, Key="x", Body=b"x")
    with pytest.raises(ClientError) as exc:
        s3.get_object_attributes(Bucket=bucket, Key="x", ObjectAttributes=["Colour"])
    assert code(exc) == "InvalidArgument"
    with pytest.raises(ClientError) as exc:
        s3.get_object_attributes(Bucket=bucket, Key="missing", ObjectAttributes=["ETag"])
    assert code(exc) == "NoSuchKey"
    with pytest.raises(ClientError) as exc:
        s3.get_object_attributes(Bucket=bucket, Key="x", ObjectAttributes=[])
    assert code(exc) == "InvalidRequest"
    # S3 ignores paging headers it cannot read.
    add = lambda params, **_: params["headers"].update({"x-amz-max-parts": "lots"})  # noqa: E731
    s3.meta.events.register_first("before-call.s3.GetObjectAttributes", add)
    try:
        got = s3.get_object_attributes(Bucket=bucket, Key="x", ObjectAttributes=["ObjectSize"])
        assert got["ObjectSize"] == 1
    finally:
        s3.meta.events.unregister("before-call.s3.GetObjectAttributes", add)


def test_both_permissions_are_needed(srv, s3):
    root = AdminClient(srv.endpoint, srv.access_key, srv.secret_key, srv.region)
    t = Tenant(srv, root)
    name = "attr-" + uuid.uuid4().hex[:10]
    t.s3.create_bucket(Bucket=name)
    t.s3.put_object(Bucket=name, Key="k", Body=b"data")
    only_attrs = t.user("attrs", {"Effect": "Allow", "Action": "s3:GetObjectAttributes",
                                  "Resource": "*"})
    only_get = t.user("get", {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"})
    both = t.user("both", {"Effect": "Allow", "Action": ["s3:GetObject", "s3:GetObjectAttributes"],
                           "Resource": "*"})
    from tests.support.iam import s3_for
    for key, allowed in ((only_attrs, False), (only_get, False), (both, True)):
        c = s3_for(srv, *key)
        if allowed:
            assert c.get_object_attributes(Bucket=name, Key="k",
                                           ObjectAttributes=["ObjectSize"])["ObjectSize"] == 4
        else:
            with pytest.raises(ClientError) as exc:
                c.get_object_attributes(Bucket=name, Key="k", ObjectAttributes=["ObjectSize"])
            assert code(exc) == "AccessDenied"
    # Another tenant's admin: the bucket is not its to read.
    other = Tenant(srv, root)
    with pytest.raises(ClientError) as exc:
        other.s3.get_object_attributes(Bucket=name, Key="k", ObjectAttributes=["ETag"])
    assert code(exc) in ("AccessDenied", "NoSuchBucket")


def test_an_object_above_the_callers_level_is_missing(srv):
    w = Cleared(srv)
    w.user("top", TS, ALLOW_S3)
    w.user("sec", S, ALLOW_S3)
    b = w.bucket(U, TS)
    top = w.s3(w.key("top"))
    top.put_object(Bucket=b, Key="ts.txt", Body=b"top", Metadata={"vallum-label": TS})
    assert top.get_object_attributes(Bucket=b, Key="ts.txt", ObjectAttributes=["ObjectSize"])
    sec = w.s3(w.key("sec"))
    answers = []
    for key in ("ts.txt", "never-existed.txt"):
        with pytest.raises(ClientError) as exc:
            sec.get_object_attributes(Bucket=b, Key=key, ObjectAttributes=["ObjectSize"])
        r = exc.value.response
        answers.append((r["Error"]["Code"], r["ResponseMetadata"]["HTTPStatusCode"]))
    assert answers[0] == answers[1] == ("NoSuchKey", 404)
