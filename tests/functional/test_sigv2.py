"""AWS Signature V2 on the wire: boto3's default presigned URLs and a V2-signing client.

boto3 presigns S3 URLs with SigV2 unless told otherwise, and ``Config(signature_version='s3')``
signs every request with V2 (as older tools do); both must work unchanged.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from email.message import Message
from urllib.parse import parse_qs, urlsplit

import pytest
from botocore.exceptions import ClientError


def _urlopen(req) -> tuple[int, bytes, Message]:
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read(), r.headers
    except urllib.error.HTTPError as e:
        return e.code, e.read(), e.headers


@pytest.fixture(scope="module")
def v2(server):
    return server.client(signature_version="s3")


def _is_v2(url: str) -> bool:
    query = parse_qs(urlsplit(url).query)
    return {"AWSAccessKeyId", "Signature", "Expires"} <= set(query)


def test_default_presigned_get_is_v2_and_works(s3, bucket):
    s3.put_object(Bucket=bucket, Key="dir/hello world.txt", Body=b"hello v2")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket,
                                                         "Key": "dir/hello world.txt"},
                                    ExpiresIn=300)
    assert _is_v2(url), url
    status, body, _ = _urlopen(url)
    assert (status, body) == (200, b"hello v2")


def test_presigned_get_with_response_override(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    url = s3.generate_presigned_url(
        "get_object", ExpiresIn=300, Params={
            "Bucket": bucket, "Key": "k",
            "ResponseContentDisposition": "attachment; filename=\"a b.txt\""})
    assert _is_v2(url)
    status, body, headers = _urlopen(url)
    assert status == 200, body
    assert headers.get("Content-Disposition") == "attachment; filename=\"a b.txt\""
    # The override is signed: changing it breaks the signature.
    status, body, _ = _urlopen(url.replace("a%20b.txt", "c%20d.txt"))
    assert status == 403 and b"SignatureDoesNotMatch" in body


def test_presigned_put_v2(s3, bucket):
    url = s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "up",
                                                         "ContentType": "text/plain"},
                                    ExpiresIn=300)
    assert _is_v2(url)
    data = b"uploaded through a SigV2 URL\n" * 100
    status, body, _ = _urlopen(urllib.request.Request(
        url, data=data, method="PUT", headers={"Content-Type": "text/plain"}))
    assert status == 200, body
    got = s3.get_object(Bucket=bucket, Key="up")
    assert got["Body"].read() == data and got["ContentType"] == "text/plain"
    # A different Content-Type than the one signed is refused.
    status, body, _ = _urlopen(urllib.request.Request(
        url, data=b"x", method="PUT", headers={"Content-Type": "text/html"}))
    assert status == 403 and b"SignatureDoesNotMatch" in body


def test_expired_presigned_url_refused(s3, bucket):
    s3.put_object(Bucket=bucket, Key="old", Body=b"x")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "old"},
                                    ExpiresIn=-10)
    assert _is_v2(url)
    status, body, _ = _urlopen(url)
    assert status == 403, body
    assert b"<Code>AccessDenied</Code>" in body and b"Request has expired" in body


def test_tampered_presigned_url_refused(s3, bucket):
    s3.put_object(Bucket=bucket, Key="a", Body=b"a")
    s3.put_object(Bucket=bucket, Key="b", Body=b"b")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "a"},
                                    ExpiresIn=300)
    parts = urlsplit(url)
    other = url.replace(parts.path, parts.path[:-1] + "b")
    status, body, _ = _urlopen(other)
    assert status == 403 and b"SignatureDoesNotMatch" in body and b"StringToSign" in body
    # Appending a sub-resource the URL did not sign turns it into another operation: refused.
    status, body, _ = _urlopen(url + "&tagging")
    assert status == 403 and b"SignatureDoesNotMatch" in body


def test_v2_client_object_lifecycle(v2, bucket):
    v2.put_object(Bucket=bucket, Key="one", Body=b"first", Metadata={"color": "blue"},
                  ContentType="text/plain")
    v2.put_object(Bucket=bucket, Key="sub/two", Body=b"second")
    got = v2.get_object(Bucket=bucket, Key="one")
    assert got["Body"].read() == b"first" and got["Metadata"] == {"color": "blue"}
    assert v2.head_object(Bucket=bucket, Key="sub/two")["ContentLength"] == 6
    listed = v2.list_objects(Bucket=bucket)
    assert [o["Key"] for o in listed["Contents"]] == ["one", "sub/two"]
    listed = v2.list_objects_v2(Bucket=bucket, Prefix="sub/")
    assert [o["Key"] for o in listed["Contents"]] == ["sub/two"]
    v2.delete_object(Bucket=bucket, Key="one")
    deleted = v2.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "sub/two"}]})
    assert [d["Key"] for d in deleted["Deleted"]] == ["sub/two"]
    assert v2.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def test_v2_client_multipart(v2, bucket):
    up = v2.create_multipart_upload(Bucket=bucket, Key="big")
    part1 = b"a" * (5 * 1024 * 1024)
    part2 = b"tail"
    etags = [v2.upload_part(Bucket=bucket, Key="big", UploadId=up["UploadId"], PartNumber=n,
                            Body=body)["ETag"] for n, body in ((1, part1), (2, part2))]
    parts = v2.list_parts(Bucket=bucket, Key="big", UploadId=up["UploadId"])["Parts"]
    assert [p["PartNumber"] for p in parts] == [1, 2]
    v2.complete_multipart_upload(
        Bucket=bucket, Key="big", UploadId=up["UploadId"],
        MultipartUpload={"Parts": [{"PartNumber": n, "ETag": e}
                                   for n, e in enumerate(etags, start=1)]})
    assert v2.get_object(Bucket=bucket, Key="big")["Body"].read() == part1 + part2
    aborted = v2.create_multipart_upload(Bucket=bucket, Key="gone")
    v2.abort_multipart_upload(Bucket=bucket, Key="gone", UploadId=aborted["UploadId"])
    assert "Uploads" not in v2.list_multipart_uploads(Bucket=bucket)


def test_v2_client_bucket_operations(v2, s3):
    name = "t-v2-bucket-ops"
    v2.create_bucket(Bucket=name)
    try:
        assert name in [b["Name"] for b in v2.list_buckets()["Buckets"]]
        v2.head_bucket(Bucket=name)
    finally:
        v2.delete_bucket(Bucket=name)
    assert name not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


def test_v2_wrong_secret_refused(server, bucket):
    bad = server.client(signature_version="s3")
    bad._request_signer._credentials = bad._request_signer._credentials.__class__(
        server.access_key, "wrong-secret")
    with pytest.raises(ClientError) as exc:
        bad.list_objects(Bucket=bucket)
    assert exc.value.response["Error"]["Code"] == "SignatureDoesNotMatch"


def test_v2_unknown_key_refused(server, bucket):
    import boto3
    from botocore.config import Config

    client = boto3.client("s3", endpoint_url=server.endpoint, aws_access_key_id="NOSUCHKEY",
                          aws_secret_access_key="x", region_name=server.region,
                          config=Config(signature_version="s3", s3={"addressing_style": "path"},
                                        retries={"max_attempts": 1}))
    with pytest.raises(ClientError) as exc:
        client.list_objects(Bucket=bucket)
    assert exc.value.response["Error"]["Code"] == "InvalidAccessKeyId"
