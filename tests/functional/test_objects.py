"""Single-object round trips: PUT/GET/HEAD/DELETE, awkward keys, metadata, errors.

Raw signed requests (botocore's signer + its HTTP session) are used where boto3
hides what we must check, e.g. the RequestId inside an error body.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import os
import xml.etree.ElementTree as ET
from urllib.parse import quote

import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError
from botocore.httpsession import URLLib3Session

EMPTY_MD5 = "d41d8cd98f00b204e9800998ecf8427e"


def raw(server, method: str, path: str, *, query: str = "", headers=None, body: bytes = b""):
    """Send one SigV4-signed request built by hand; returns botocore's AWSResponse."""
    url = server.endpoint + path + ("?" + query if query else "")
    req = AWSRequest(method=method, url=url, data=body, headers=dict(headers or {}))
    S3SigV4Auth(Credentials(server.access_key, server.secret_key), "s3", server.region).add_auth(req)
    return URLLib3Session(timeout=10).send(req.prepare())


def error_fields(resp) -> dict[str, str]:
    root = ET.fromstring(resp.content)
    assert root.tag == "Error"
    return {child.tag: child.text or "" for child in root}


def _err(e: pytest.ExceptionInfo) -> tuple[str, int]:
    r = e.value.response
    return r["Error"]["Code"], r["ResponseMetadata"]["HTTPStatusCode"]


def _etag(data: bytes) -> str:
    return '"%s"' % hashlib.md5(data).hexdigest()


# ---------------------------------------------------------------- round trips

def test_put_get_head_delete_round_trip(s3, bucket):
    data = os.urandom(256 * 1024 + 7)
    put = s3.put_object(Bucket=bucket, Key="obj", Body=data)
    assert put["ETag"] == _etag(data)

    got = s3.get_object(Bucket=bucket, Key="obj")
    assert got["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert got["Body"].read() == data
    assert got["ContentLength"] == len(data)
    assert got["ETag"] == _etag(data)
    assert got["ContentType"] == "binary/octet-stream"
    assert isinstance(got["LastModified"], dt.datetime)

    head = s3.head_object(Bucket=bucket, Key="obj")
    assert head["ContentLength"] == len(data)
    assert head["ETag"] == _etag(data)
    assert head["LastModified"] == got["LastModified"]
    assert head["ResponseMetadata"]["HTTPHeaders"].get("accept-ranges") == "bytes"

    listed = s3.list_objects_v2(Bucket=bucket)["Contents"]
    assert [(o["Key"], o["Size"], o["ETag"]) for o in listed] == [("obj", len(data), _etag(data))]

    deleted = s3.delete_object(Bucket=bucket, Key="obj")
    assert deleted["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="obj")
    assert _err(e) == ("NoSuchKey", 404)
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def test_overwrite_replaces_content_and_etag(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"first", Metadata={"v": "1"})
    s3.put_object(Bucket=bucket, Key="k", Body=b"second!")
    got = s3.get_object(Bucket=bucket, Key="k")
    assert got["Body"].read() == b"second!"
    assert got["ETag"] == _etag(b"second!")
    assert got["Metadata"] == {}, "an overwrite does not inherit the old metadata"
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 1


def test_empty_object(s3, bucket):
    put = s3.put_object(Bucket=bucket, Key="empty", Body=b"")
    assert put["ETag"] == f'"{EMPTY_MD5}"'
    got = s3.get_object(Bucket=bucket, Key="empty")
    assert got["Body"].read() == b""
    assert got["ContentLength"] == 0
    assert got["ETag"] == f'"{EMPTY_MD5}"'
    head = s3.head_object(Bucket=bucket, Key="empty")
    assert head["ContentLength"] == 0
    [obj] = s3.list_objects_v2(Bucket=bucket)["Contents"]
    assert obj["Size"] == 0


AWKWARD_KEYS = [
    "ünïcödé/日本語/emoji-😀",
    "with space/and  two  spaces ",
    "percent%20literal%",
    "plus+sign+",
    "../dotdot/../escape",
    "./dot/./segment",
    "a//double//slash",
    "trailing/",
    "question?mark&amp=eq#hash",
    "tilde~star*quote'paren()!$,;:@",
    "back\\slash",
    "tab\tand-newline\nin-key",
]


@pytest.mark.parametrize("key", AWKWARD_KEYS)
def test_awkward_keys_round_trip(s3, bucket, key):
    body = ("body of " + key).encode()
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == body
    assert s3.head_object(Bucket=bucket, Key=key)["ContentLength"] == len(body)
    listed = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert listed == [key], "the key is stored verbatim, not normalised"
    s3.delete_object(Bucket=bucket, Key=key)
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def test_keys_differing_only_in_normalisation_are_distinct(s3, bucket):
    keys = ["a/b", "a//b", "a/./b", "a/../a/b", "caf\u00e9", "cafe\u0301"]
    for i, k in enumerate(keys):
        s3.put_object(Bucket=bucket, Key=k, Body=str(i).encode())
    for i, k in enumerate(keys):
        assert s3.get_object(Bucket=bucket, Key=k)["Body"].read() == str(i).encode()
    listed = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert sorted(listed) == sorted(keys)


@pytest.mark.parametrize("key", ["k" * 1024, "\u00e9" * 512, "x/" * 512])
def test_key_of_exactly_1024_utf8_bytes_is_accepted(s3, bucket, key):
    assert len(key.encode()) == 1024
    s3.put_object(Bucket=bucket, Key=key, Body=b"long")
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"long"
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == [key]


@pytest.mark.parametrize("key", ["k" * 1025, "\u00e9" * 512 + "a", "\u00e9" * 600])
def test_key_longer_than_1024_utf8_bytes_is_rejected(s3, bucket, key):
    assert len(key.encode()) > 1024
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key=key, Body=b"too long")
    assert _err(e) == ("KeyTooLongError", 400)
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


# ---------------------------------------------------------------- metadata and headers

def test_user_metadata_round_trip(s3, bucket):
    meta = {"color": "blue", "Mixed-Case": "Value Kept", "empty": "", "n": "42"}
    s3.put_object(Bucket=bucket, Key="m", Body=b"x", Metadata=meta)
    expected = {k.lower(): v for k, v in meta.items()}
    assert s3.get_object(Bucket=bucket, Key="m")["Metadata"] == expected
    assert s3.head_object(Bucket=bucket, Key="m")["Metadata"] == expected


def test_standard_headers_stored_and_returned(s3, bucket):
    expires = dt.datetime(2031, 5, 17, 8, 30, 0, tzinfo=dt.timezone.utc)
    s3.put_object(
        Bucket=bucket, Key="h", Body=b"<p>hi</p>",
        ContentType="text/html; charset=utf-8",
        ContentEncoding="identity",
        ContentDisposition='attachment; filename="hi.html"',
        ContentLanguage="de-DE",
        CacheControl="max-age=3600, private",
        Expires=expires,
    )
    for resp in (s3.get_object(Bucket=bucket, Key="h"), s3.head_object(Bucket=bucket, Key="h")):
        h = resp["ResponseMetadata"]["HTTPHeaders"]
        assert resp["ContentType"] == "text/html; charset=utf-8"
        assert resp["ContentEncoding"] == "identity"
        assert resp["ContentDisposition"] == 'attachment; filename="hi.html"'
        assert resp["ContentLanguage"] == "de-DE"
        assert resp["CacheControl"] == "max-age=3600, private"
        assert h["expires"] == "Sat, 17 May 2031 08:30:00 GMT"


def test_response_overrides_on_get(s3, bucket):
    s3.put_object(Bucket=bucket, Key="o", Body=b"data", ContentType="text/plain",
                  CacheControl="max-age=1")
    resp = s3.get_object(
        Bucket=bucket, Key="o",
        ResponseContentType="application/x-override",
        ResponseContentLanguage="fr",
        ResponseCacheControl="no-cache",
        ResponseContentDisposition='inline; filename="o.bin"',
        ResponseContentEncoding="identity",
        ResponseExpires=dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc),
    )
    h = resp["ResponseMetadata"]["HTTPHeaders"]
    assert resp["Body"].read() == b"data"
    assert h["content-type"] == "application/x-override"
    assert h["content-language"] == "fr"
    assert h["cache-control"] == "no-cache"
    assert h["content-disposition"] == 'inline; filename="o.bin"'
    assert h["content-encoding"] == "identity"
    assert h["expires"] == "Tue, 01 Jan 2030 00:00:00 GMT"
    # The overrides affect that one response only.
    plain = s3.head_object(Bucket=bucket, Key="o")
    assert plain["ContentType"] == "text/plain"
    assert plain["CacheControl"] == "max-age=1"
    assert "ContentLanguage" not in plain


def test_content_md5_mismatch_is_bad_digest(s3, bucket):
    wrong = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="d", Body=b"data", ContentMD5=wrong)
    assert _err(e) == ("BadDigest", 400)
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def test_content_md5_correct_is_accepted(s3, bucket):
    good = base64.b64encode(hashlib.md5(b"data").digest()).decode()
    put = s3.put_object(Bucket=bucket, Key="d", Body=b"data", ContentMD5=good)
    assert put["ETag"] == _etag(b"data")


# ---------------------------------------------------------------- delete and errors

def test_delete_missing_key_is_204(s3, bucket):
    resp = s3.delete_object(Bucket=bucket, Key="never-existed")
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 204


def test_delete_object_in_missing_bucket(s3):
    with pytest.raises(ClientError) as e:
        s3.delete_object(Bucket="t-missing-bucket-0000000000", Key="k")
    assert _err(e) == ("NoSuchBucket", 404)


def test_get_missing_key_no_such_key(s3, bucket):
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="nope")
    assert _err(e) == ("NoSuchKey", 404)


def test_head_missing_key_is_bodyless_404(s3, bucket, server):
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key="nope")
    assert _err(e)[1] == 404
    resp = raw(server, "HEAD", f"/{bucket}/nope")
    assert resp.status_code == 404
    assert resp.content == b""
    assert resp.headers.get("x-amz-request-id")


def test_get_in_missing_bucket_no_such_bucket(s3):
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket="t-missing-bucket-0000000000", Key="k")
    assert _err(e) == ("NoSuchBucket", 404)
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket="t-missing-bucket-0000000000", Key="k", Body=b"x")
    assert _err(e) == ("NoSuchBucket", 404)


def test_no_such_key_body_request_id_matches_header(server, bucket):
    key = "missing key/ü"
    resp = raw(server, "GET", f"/{bucket}/{quote(key, safe='/')}")
    assert resp.status_code == 404
    assert resp.headers["content-type"].startswith(("application/xml", "text/xml"))
    f = error_fields(resp)
    assert f["Code"] == "NoSuchKey"
    assert f["Message"]
    assert f["Key"] == key
    assert f["RequestId"] == resp.headers["x-amz-request-id"]


def test_no_such_bucket_body_request_id_matches_header(server):
    name = "t-missing-bucket-1111111111"
    resp = raw(server, "GET", f"/{name}/some-key")
    assert resp.status_code == 404
    f = error_fields(resp)
    assert f["Code"] == "NoSuchBucket"
    assert f["Message"]
    assert f["BucketName"] == name
    assert f["RequestId"] == resp.headers["x-amz-request-id"]


def test_request_ids_are_unique(server, bucket):
    ids = {raw(server, "GET", f"/{bucket}/nope").headers["x-amz-request-id"] for _ in range(5)}
    assert len(ids) == 5


# ---------------------------------------------------------------- partNumber on a single-part object

def test_get_part_number_1_of_single_part_object(s3, bucket):
    data = b"0123456789"
    s3.put_object(Bucket=bucket, Key="p", Body=data)
    got = s3.get_object(Bucket=bucket, Key="p", PartNumber=1)
    assert got["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert got["Body"].read() == data
    assert got["ContentLength"] == len(data)
    assert got["ContentRange"] == f"bytes 0-{len(data) - 1}/{len(data)}"
    assert got["ETag"] == _etag(data)


def test_head_part_number_1_of_single_part_object(s3, bucket):
    data = b"0123456789abc"
    s3.put_object(Bucket=bucket, Key="p", Body=data)
    head = s3.head_object(Bucket=bucket, Key="p", PartNumber=1)
    assert head["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert head["ContentLength"] == len(data)


def test_part_number_2_of_single_part_object_is_unsatisfiable(s3, bucket):
    s3.put_object(Bucket=bucket, Key="p", Body=b"0123456789")
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="p", PartNumber=2)
    assert _err(e) == ("InvalidPartNumber", 416)
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key="p", PartNumber=2)
    assert _err(e)[1] == 416
