"""Object and bucket tagging, x-amz-tagging on writes (and the copy directive), limits."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from tests.support.server import code


def tagset(d: dict[str, str]) -> dict:
    return {"TagSet": [{"Key": k, "Value": v} for k, v in d.items()]}


def test_object_tagging_roundtrip(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    assert s3.get_object_tagging(Bucket=bucket, Key="k")["TagSet"] == []
    assert "TagCount" not in s3.get_object(Bucket=bucket, Key="k")
    s3.put_object_tagging(Bucket=bucket, Key="k", Tagging=tagset({"a": "1", "b c": "x/y@z"}))
    assert s3.get_object_tagging(Bucket=bucket, Key="k")["TagSet"] == tagset({"a": "1", "b c": "x/y@z"})["TagSet"]
    assert s3.head_object(Bucket=bucket, Key="k")["ResponseMetadata"]["HTTPHeaders"]["x-amz-tagging-count"] == "2"
    assert s3.get_object(Bucket=bucket, Key="k")["TagCount"] == 2
    s3.delete_object_tagging(Bucket=bucket, Key="k")
    assert s3.get_object_tagging(Bucket=bucket, Key="k")["TagSet"] == []


def test_tagging_header_on_put_copy_and_multipart(s3, bucket):
    s3.put_object(Bucket=bucket, Key="src", Body=b"x", Tagging="team=red&env=prod%20eu")
    assert s3.get_object_tagging(Bucket=bucket, Key="src")["TagSet"] == tagset({"team": "red", "env": "prod eu"})["TagSet"]
    s3.copy_object(Bucket=bucket, Key="c1", CopySource={"Bucket": bucket, "Key": "src"})
    assert len(s3.get_object_tagging(Bucket=bucket, Key="c1")["TagSet"]) == 2
    s3.copy_object(Bucket=bucket, Key="c2", CopySource={"Bucket": bucket, "Key": "src"},
                   TaggingDirective="REPLACE", Tagging="only=one")
    assert s3.get_object_tagging(Bucket=bucket, Key="c2")["TagSet"] == tagset({"only": "one"})["TagSet"]
    s3.copy_object(Bucket=bucket, Key="c3", CopySource={"Bucket": bucket, "Key": "src"}, TaggingDirective="REPLACE")
    assert s3.get_object_tagging(Bucket=bucket, Key="c3")["TagSet"] == []
    up = s3.create_multipart_upload(Bucket=bucket, Key="mp", Tagging="m=1")
    part = s3.upload_part(Bucket=bucket, Key="mp", UploadId=up["UploadId"], PartNumber=1, Body=b"p")
    s3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=up["UploadId"],
                                 MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]})
    assert s3.get_object_tagging(Bucket=bucket, Key="mp")["TagSet"] == tagset({"m": "1"})["TagSet"]


def test_tagging_per_version(s3, bucket):
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    v1 = s3.put_object(Bucket=bucket, Key="k", Body=b"1", Tagging="v=1")["VersionId"]
    v2 = s3.put_object(Bucket=bucket, Key="k", Body=b"2")["VersionId"]
    s3.put_object_tagging(Bucket=bucket, Key="k", VersionId=v2, Tagging=tagset({"v": "2"}))
    assert s3.get_object_tagging(Bucket=bucket, Key="k", VersionId=v1)["TagSet"] == tagset({"v": "1"})["TagSet"]
    out = s3.get_object_tagging(Bucket=bucket, Key="k")
    assert out["VersionId"] == v2 and out["TagSet"] == tagset({"v": "2"})["TagSet"]
    with pytest.raises(ClientError) as exc:
        s3.get_object_tagging(Bucket=bucket, Key="k", VersionId="x")
    assert code(exc) == "InvalidArgument"
    for v in (v1, v2):
        s3.delete_object(Bucket=bucket, Key="k", VersionId=v)


@pytest.mark.parametrize("tags, want", [
    ({f"k{i}": "v" for i in range(11)}, "BadRequest"),
    ({"k" * 129: "v"}, "InvalidTag"),
    ({"k": "v" * 257}, "InvalidTag"),
    ({"aws:reserved": "v"}, "InvalidTag"),
    ({"bad<char": "v"}, "InvalidTag"),
])
def test_object_tag_limits_change_nothing(s3, bucket, tags, want):
    s3.put_object(Bucket=bucket, Key="k", Body=b"x", Tagging="keep=me")
    with pytest.raises(ClientError) as exc:
        s3.put_object_tagging(Bucket=bucket, Key="k", Tagging=tagset(tags))
    assert code(exc) == want
    assert s3.get_object_tagging(Bucket=bucket, Key="k")["TagSet"] == tagset({"keep": "me"})["TagSet"]


def test_duplicate_keys_and_bad_header(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    with pytest.raises(ClientError) as exc:
        s3.put_object_tagging(Bucket=bucket, Key="k", Tagging={"TagSet": [{"Key": "a", "Value": "1"},
                                                                         {"Key": "a", "Value": "2"}]})
    assert code(exc) == "InvalidTag"
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="h", Body=b"x", Tagging="&".join(f"k{i}=v" for i in range(11)))
    assert code(exc) == "BadRequest"
    with pytest.raises(ClientError) as exc:
        s3.head_object(Bucket=bucket, Key="h")
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    with pytest.raises(ClientError) as exc:
        s3.put_object_tagging(Bucket=bucket, Key="missing", Tagging=tagset({"a": "b"}))
    assert code(exc) == "NoSuchKey"


def test_bucket_tagging(s3, bucket):
    with pytest.raises(ClientError) as exc:
        s3.get_bucket_tagging(Bucket=bucket)
    assert code(exc) == "NoSuchTagSet"
    s3.put_bucket_tagging(Bucket=bucket, Tagging=tagset({"cost": "ops", "owner": "me"}))
    assert s3.get_bucket_tagging(Bucket=bucket)["TagSet"] == tagset({"cost": "ops", "owner": "me"})["TagSet"]
    with pytest.raises(ClientError) as exc:
        s3.put_bucket_tagging(Bucket=bucket, Tagging=tagset({f"k{i}": "v" for i in range(51)}))
    assert code(exc) == "InvalidTag"
    assert len(s3.get_bucket_tagging(Bucket=bucket)["TagSet"]) == 2
    s3.put_bucket_tagging(Bucket=bucket, Tagging=tagset({f"k{i}": "v" for i in range(50)}))
    s3.delete_bucket_tagging(Bucket=bucket)
    with pytest.raises(ClientError) as exc:
        s3.get_bucket_tagging(Bucket=bucket)
    assert code(exc) == "NoSuchTagSet"
