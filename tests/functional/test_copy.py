"""CopyObject: metadata directives, copy-source conditions, self-copy rules, odd keys."""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from urllib.parse import quote

import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError, ParamValidationError
from botocore.httpsession import URLLib3Session

PAST = dt.datetime(1999, 1, 1, tzinfo=dt.timezone.utc)
OTHER_ETAG = '"00000000000000000000000000000000"'
BODY = b"copy me " * 100


def raw(server, method: str, path: str, *, query: str = "", headers=None, body: bytes = b""):
    """Send one SigV4-signed request built by hand; returns botocore's AWSResponse."""
    url = server.endpoint + path + ("?" + query if query else "")
    req = AWSRequest(method=method, url=url, data=body, headers=dict(headers or {}))
    S3SigV4Auth(Credentials(server.access_key, server.secret_key), "s3", server.region).add_auth(req)
    return URLLib3Session(timeout=10).send(req.prepare())


def _err(e: pytest.ExceptionInfo) -> tuple[str, int]:
    r = e.value.response
    return r["Error"]["Code"], r["ResponseMetadata"]["HTTPStatusCode"]


@pytest.fixture
def src(s3, bucket):
    s3.put_object(
        Bucket=bucket, Key="src", Body=BODY, Metadata={"origin": "source", "n": "1"},
        ContentType="text/x-source", CacheControl="max-age=60",
        ContentDisposition="attachment", ContentLanguage="en",
    )
    head = s3.head_object(Bucket=bucket, Key="src")
    return {"Bucket": bucket, "Key": "src", "etag": head["ETag"], "mtime": head["LastModified"]}


def _copy(s3, src, dest_key="dst", **kw):
    return s3.copy_object(Bucket=src["Bucket"], Key=dest_key,
                          CopySource={"Bucket": src["Bucket"], "Key": src["Key"]}, **kw)


# ---------------------------------------------------------------- directives

def test_copy_default_directive_copies_metadata(s3, src):
    resp = _copy(s3, src)
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 200
    result = resp["CopyObjectResult"]
    assert result["ETag"] == '"%s"' % hashlib.md5(BODY).hexdigest()
    assert isinstance(result["LastModified"], dt.datetime)
    got = s3.get_object(Bucket=src["Bucket"], Key="dst")
    assert got["Body"].read() == BODY
    assert got["Metadata"] == {"origin": "source", "n": "1"}
    assert got["ContentType"] == "text/x-source"
    assert got["CacheControl"] == "max-age=60"
    assert got["ContentDisposition"] == "attachment"
    assert got["ContentLanguage"] == "en"


def test_copy_directive_copy_ignores_request_metadata(s3, src):
    _copy(s3, src, MetadataDirective="COPY", Metadata={"origin": "request"})
    got = s3.head_object(Bucket=src["Bucket"], Key="dst")
    assert got["Metadata"] == {"origin": "source", "n": "1"}


def test_copy_directive_replace_uses_request_metadata(s3, src):
    _copy(s3, src, MetadataDirective="REPLACE", Metadata={"fresh": "yes"},
          ContentType="application/x-new")
    got = s3.get_object(Bucket=src["Bucket"], Key="dst")
    assert got["Body"].read() == BODY
    assert got["Metadata"] == {"fresh": "yes"}
    assert got["ContentType"] == "application/x-new"
    assert "CacheControl" not in got
    # The source is untouched.
    head = s3.head_object(Bucket=src["Bucket"], Key="src")
    assert head["Metadata"] == {"origin": "source", "n": "1"}
    assert head["ContentType"] == "text/x-source"


def test_copy_overwrites_existing_destination(s3, src):
    s3.put_object(Bucket=src["Bucket"], Key="dst", Body=b"old", Metadata={"old": "1"})
    _copy(s3, src)
    got = s3.get_object(Bucket=src["Bucket"], Key="dst")
    assert got["Body"].read() == BODY
    assert got["Metadata"] == {"origin": "source", "n": "1"}


def test_copy_between_buckets(s3, src):
    other = "t-" + uuid.uuid4().hex[:20]
    s3.create_bucket(Bucket=other)
    try:
        s3.copy_object(Bucket=other, Key="x", CopySource={"Bucket": src["Bucket"], "Key": "src"})
        assert s3.get_object(Bucket=other, Key="x")["Body"].read() == BODY
    finally:
        s3.delete_object(Bucket=other, Key="x")
        s3.delete_bucket(Bucket=other)


# ---------------------------------------------------------------- self-copy

def test_copy_onto_itself_without_replace_is_invalid_request(s3, src):
    with pytest.raises(ClientError) as e:
        _copy(s3, src, dest_key="src")
    assert _err(e) == ("InvalidRequest", 400)
    head = s3.head_object(Bucket=src["Bucket"], Key="src")
    assert head["LastModified"] == src["mtime"]
    assert head["Metadata"] == {"origin": "source", "n": "1"}


def test_copy_onto_itself_with_replace_changes_metadata(s3, src):
    _copy(s3, src, dest_key="src", MetadataDirective="REPLACE",
          Metadata={"origin": "rewritten"}, ContentType="text/x-rewritten")
    got = s3.get_object(Bucket=src["Bucket"], Key="src")
    assert got["Body"].read() == BODY
    assert got["Metadata"] == {"origin": "rewritten"}
    assert got["ContentType"] == "text/x-rewritten"
    assert got["ETag"] == src["etag"]


# ---------------------------------------------------------------- copy-source conditions

def test_copy_source_if_match_true(s3, src):
    _copy(s3, src, CopySourceIfMatch=src["etag"])
    assert s3.get_object(Bucket=src["Bucket"], Key="dst")["Body"].read() == BODY


@pytest.mark.parametrize("cond", [
    {"CopySourceIfMatch": OTHER_ETAG},
    {"CopySourceIfNoneMatch": "MATCHES"},
    {"CopySourceIfModifiedSince": "MTIME"},
    {"CopySourceIfUnmodifiedSince": PAST},
    # AWS: If-None-Match false + If-Modified-Since true -> 412.
    {"CopySourceIfNoneMatch": "MATCHES", "CopySourceIfModifiedSince": PAST},
])
def test_copy_source_condition_fails_with_412(s3, src, cond):
    cond = {k: src["etag"] if v == "MATCHES" else src["mtime"] if v == "MTIME" else v
            for k, v in cond.items()}
    with pytest.raises(ClientError) as e:
        _copy(s3, src, **cond)
    assert _err(e) == ("PreconditionFailed", 412)
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=src["Bucket"], Key="dst")
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


@pytest.mark.parametrize("cond", [
    {"CopySourceIfNoneMatch": OTHER_ETAG},
    {"CopySourceIfModifiedSince": PAST},
    {"CopySourceIfUnmodifiedSince": "MTIME"},
    # AWS: If-Match true + If-Unmodified-Since false -> the copy happens.
    {"CopySourceIfMatch": "MATCHES", "CopySourceIfUnmodifiedSince": PAST},
])
def test_copy_source_condition_holds(s3, src, cond):
    cond = {k: src["etag"] if v == "MATCHES" else src["mtime"] if v == "MTIME" else v
            for k, v in cond.items()}
    resp = _copy(s3, src, **cond)
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert s3.get_object(Bucket=src["Bucket"], Key="dst")["Body"].read() == BODY


# ---------------------------------------------------------------- keys and errors

@pytest.mark.parametrize(("source_key", "dest_key"), [
    ("src dir/ü+%?#&=.txt", "dst ü/+%20/x"),
    ("日本語/😀", "a//b/../c"),
    ("plus+plus", "space space"),
])
def test_copy_keys_needing_url_encoding(s3, bucket, source_key, dest_key):
    s3.put_object(Bucket=bucket, Key=source_key, Body=b"encoded")
    s3.copy_object(Bucket=bucket, Key=dest_key, CopySource={"Bucket": bucket, "Key": source_key})
    assert s3.get_object(Bucket=bucket, Key=dest_key)["Body"].read() == b"encoded"
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"])
    assert keys == sorted([source_key, dest_key])


def test_copy_source_header_without_leading_slash(server, s3, src):
    """x-amz-copy-source may be 'bucket/key' or '/bucket/key'; both name the same object."""
    resp = raw(server, "PUT", f"/{src['Bucket']}/dst2",
               headers={"x-amz-copy-source": f"{src['Bucket']}/src"})
    assert resp.status_code == 200, resp.content
    assert s3.get_object(Bucket=src["Bucket"], Key="dst2")["Body"].read() == BODY


def test_copy_missing_source_key(s3, bucket):
    with pytest.raises(ClientError) as e:
        s3.copy_object(Bucket=bucket, Key="d", CopySource={"Bucket": bucket, "Key": "absent"})
    assert _err(e) == ("NoSuchKey", 404)


def test_copy_missing_source_bucket(s3, bucket):
    with pytest.raises(ClientError) as e:
        s3.copy_object(Bucket=bucket, Key="d",
                       CopySource={"Bucket": "t-no-such-bucket-000000", "Key": "k"})
    assert _err(e) == ("NoSuchBucket", 404)


def test_copy_to_missing_destination_bucket(s3, src):
    with pytest.raises(ClientError) as e:
        s3.copy_object(Bucket="t-no-such-bucket-000000", Key="d",
                       CopySource={"Bucket": src["Bucket"], "Key": "src"})
    assert _err(e) == ("NoSuchBucket", 404)


def test_copy_source_range_is_not_a_copy_object_parameter(s3, server, src):
    """CopySourceRange belongs to UploadPartCopy; CopyObject never makes a partial copy."""
    with pytest.raises(ParamValidationError):
        _copy(s3, src, CopySourceRange="bytes=0-9")
    resp = raw(server, "PUT", f"/{src['Bucket']}/ranged",
               headers={"x-amz-copy-source": f"/{src['Bucket']}/src",
                        "x-amz-copy-source-range": "bytes=0-9"})
    if resp.status_code == 200:
        got = s3.get_object(Bucket=src["Bucket"], Key="ranged")["Body"].read()
        assert got == BODY, "CopyObject ignored the range header or refused it; never a slice"
    else:
        assert 400 <= resp.status_code < 500
        assert b"<Code>" in resp.content


def test_copy_url_encoded_source_header(server, s3, bucket):
    key = "enc ü+/x"
    s3.put_object(Bucket=bucket, Key=key, Body=b"raw-encoded")
    resp = raw(server, "PUT", f"/{bucket}/out",
               headers={"x-amz-copy-source": quote(f"/{bucket}/{key}", safe="/")})
    assert resp.status_code == 200, resp.content
    assert s3.get_object(Bucket=bucket, Key="out")["Body"].read() == b"raw-encoded"
