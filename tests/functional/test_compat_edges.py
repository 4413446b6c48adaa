"""Small AWS behaviours real clients depend on: LocationConstraint naming this region
(s3fs mkdir), no version id from never-versioned buckets, encoding-type=url on every
key and prefix of every listing, empty delimiter and continuation token, PartsCount
only for part reads, and MinIO's ListenBucketNotification refused by name (501) rather
than answered as a listing its SDK polls forever."""

from __future__ import annotations

import re
import uuid

import pytest
from botocore.exceptions import ClientError

from tests.support import signed

KEY = "a b/ü+c&d"
ENCODED = "a%20b/%C3%BC%2Bc%26d"


def test_location_constraint_naming_this_region_is_accepted(s3, server):
    name = "loc-" + uuid.uuid4().hex[:12]
    s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": server.region})
    try:
        with pytest.raises(ClientError) as exc:           # created once only
            s3.create_bucket(Bucket=name,
                             CreateBucketConfiguration={"LocationConstraint": server.region})
        assert exc.value.response["Error"]["Code"] == "BucketAlreadyOwnedByYou"
        with pytest.raises(ClientError) as exc:           # another region still is not
            s3.create_bucket(Bucket=name + "x",
                             CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        assert exc.value.response["Error"]["Code"] == "IllegalLocationConstraintException"
    finally:
        s3.delete_bucket(Bucket=name)


def test_never_versioned_bucket_sends_no_version_id(s3, bucket):
    answers = [s3.put_object(Bucket=bucket, Key="k", Body=b"x"),
               s3.head_object(Bucket=bucket, Key="k"),
               s3.get_object(Bucket=bucket, Key="k"),
               s3.copy_object(Bucket=bucket, Key="c", CopySource={"Bucket": bucket, "Key": "k"}),
               s3.delete_object(Bucket=bucket, Key="c")]
    uid = s3.create_multipart_upload(Bucket=bucket, Key="m")["UploadId"]
    etag = s3.upload_part(Bucket=bucket, Key="m", UploadId=uid, PartNumber=1, Body=b"p")["ETag"]
    answers.append(s3.complete_multipart_upload(
        Bucket=bucket, Key="m", UploadId=uid,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]}))
    for answer in answers:
        assert "x-amz-version-id" not in answer["ResponseMetadata"]["HTTPHeaders"]
        assert "x-amz-delete-marker" not in answer["ResponseMetadata"]["HTTPHeaders"]
    out = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "k"}]})
    assert out["Deleted"] == [{"Key": "k"}]


def test_never_versioned_bucket_tagging_and_null_deletes_send_no_version_id(s3, bucket):
    """Tagging answers and a DeleteObject naming versionId=null carry no version id (nor a
    delete marker) from a bucket that never had versioning."""
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    tags = {"TagSet": [{"Key": "a", "Value": "1"}]}
    answers = [s3.put_object_tagging(Bucket=bucket, Key="k", Tagging=tags),
               s3.get_object_tagging(Bucket=bucket, Key="k"),
               s3.delete_object_tagging(Bucket=bucket, Key="k"),
               s3.delete_object(Bucket=bucket, Key="k", VersionId="null"),
               s3.delete_object(Bucket=bucket, Key="never-was")]
    for answer in answers:
        headers = answer["ResponseMetadata"]["HTTPHeaders"]
        assert "x-amz-version-id" not in headers and "x-amz-delete-marker" not in headers
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)


def test_delete_markers_only_where_versioning_was_turned_on(s3, bucket):
    """Suspended: a DELETE leaves a null delete marker (x-amz-delete-marker: true, version
    null) and reads of the key say so; tagging answers name the null version."""
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Suspended"})
    tagged = s3.put_object_tagging(Bucket=bucket, Key="k", Tagging={"TagSet": []})
    assert tagged["VersionId"] == "null"
    out = s3.delete_object(Bucket=bucket, Key="k")
    assert out["DeleteMarker"] is True and out["VersionId"] == "null"
    with pytest.raises(ClientError) as exc:
        s3.head_object(Bucket=bucket, Key="k")
    headers = exc.value.response["ResponseMetadata"]["HTTPHeaders"]
    assert headers["x-amz-delete-marker"] == "true" and headers["x-amz-version-id"] == "null"


@pytest.mark.parametrize("query", [
    "encoding-type=url", "encoding-type=url&delimiter=/", "encoding-type=url&max-keys=1",
    "list-type=2&encoding-type=url&start-after=a", "list-type=2&encoding-type=url&delimiter=/",
    "list-type=2&encoding-type=url&prefix=a%20b/",
    "versions&encoding-type=url", "versions&encoding-type=url&delimiter=/",
    "versions&encoding-type=url&max-keys=1", "uploads&encoding-type=url",
    "uploads&encoding-type=url&delimiter=/", "uploads&encoding-type=url&max-uploads=1",
    "encoding-type=url&marker=a%20a", "encoding-type=url&delimiter=%C3%BC",
    "list-type=2&encoding-type=url&delimiter=%2B", "versions&encoding-type=url&key-marker=a%20a",
    "uploads&encoding-type=url&key-marker=a%20a&prefix=a%20",
], ids=lambda q: q.replace("&", "+"))
def test_encoding_type_url_applies_to_every_key_and_prefix(server, s3, bucket, query):
    for key in (KEY, KEY + "2"):
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
        s3.create_multipart_upload(Bucket=bucket, Key=key)
    status, _, body = signed.request(server, "GET", f"/{bucket}", query)
    assert status == 200, body
    text = body.decode()
    names = re.findall(r"<(Key|Prefix|Marker|NextMarker|KeyMarker|NextKeyMarker|StartAfter|"
                       r"Delimiter)>([^<]*)<", text)
    assert names and any(v for _, v in names)
    for element, value in names:
        assert " " not in value and "ü" not in value and "+" not in value, (element, value)
    assert ENCODED in text or "a%20b/" in text


@pytest.mark.parametrize("query", ["delimiter=", "list-type=2&delimiter=", "versions&delimiter="],
                         ids=["v1", "v2", "versions"])
def test_an_empty_delimiter_is_no_delimiter(server, s3, bucket, query):
    s3.put_object(Bucket=bucket, Key="dir/k", Body=b"x")
    status, _, body = signed.request(server, "GET", f"/{bucket}", query)
    assert status == 200
    assert b"<Key>dir/k</Key>" in body and b"<CommonPrefixes>" not in body


def test_an_empty_continuation_token_is_invalid(server, bucket):
    status, _, body = signed.request(server, "GET", f"/{bucket}", "list-type=2&continuation-token=")
    assert status == 400 and b"<Code>InvalidArgument</Code>" in body


def test_parts_count_only_when_a_part_is_read(s3, bucket):
    uid = s3.create_multipart_upload(Bucket=bucket, Key="m")["UploadId"]
    etag = s3.upload_part(Bucket=bucket, Key="m", UploadId=uid, PartNumber=1, Body=b"part")["ETag"]
    s3.complete_multipart_upload(Bucket=bucket, Key="m", UploadId=uid,
                                 MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]})
    assert "PartsCount" not in s3.head_object(Bucket=bucket, Key="m")
    assert "PartsCount" not in s3.get_object(Bucket=bucket, Key="m")
    assert s3.head_object(Bucket=bucket, Key="m", PartNumber=1)["PartsCount"] == 1
    s3.put_object(Bucket=bucket, Key="empty", Body=b"")
    got = s3.get_object(Bucket=bucket, Key="empty", PartNumber=1)
    assert got["ResponseMetadata"]["HTTPStatusCode"] == 200 and "ContentRange" not in got
    assert got["Body"].read() == b""


@pytest.mark.parametrize("path,query", [
    ("/{b}", "events=s3%3AObjectCreated%3A%2A&prefix=&suffix="),
    ("/{b}", "ping=10&events=s3%3AObjectCreated%3A%2A"),
    ("/{b}", "ping=10"),
    ("/", "events=s3%3AObjectCreated%3A%2A"),
], ids=["bucket-events", "bucket-ping-events", "bucket-ping", "service-events"])
def test_minio_listen_notification_is_not_implemented(server, bucket, path, query):
    status, _, body = signed.request(server, "GET", path.format(b=bucket), query)
    assert status == 501 and b"<Code>NotImplemented</Code>" in body
