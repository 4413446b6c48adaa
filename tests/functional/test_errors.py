"""Error answers: authentication failures, malformed bodies, unsupported operations.

Every error must be a well-formed S3 XML document with Code, Message and a
RequestId equal to the x-amz-request-id header, must come back promptly, and
must leave the store exactly as it was.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import datetime as dt
import hashlib
import json
import time
import uuid
import xml.etree.ElementTree as ET
from unittest import mock
from urllib.parse import quote

import pytest
from botocore import UNSIGNED
from botocore.auth import S3SigV4Auth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError
from botocore.httpsession import URLLib3Session


def raw(server, method: str, path: str, *, query: str = "", headers=None, body: bytes = b"",
        access_key: str | None = None, secret_key: str | None = None, region: str | None = None,
        service: str = "s3", skew: dt.timedelta | None = None, sign: bool = True):
    """Send one hand-built request, SigV4-signed unless sign=False, with optional faults."""
    url = server.endpoint + path + ("?" + query if query else "")
    req = AWSRequest(method=method, url=url, data=body, headers=dict(headers or {}))
    if sign:
        creds = Credentials(access_key or server.access_key, secret_key or server.secret_key)
        signer = (S3SigV4Auth if service == "s3" else SigV4Auth)(
            creds, service, region or server.region)
        if skew is None:
            signer.add_auth(req)
        else:
            skewed = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) + skew
            with mock.patch("botocore.auth.get_current_datetime", lambda: skewed):
                signer.add_auth(req)
    return URLLib3Session(timeout=10).send(req.prepare())


def assert_s3_error(resp, code: str, status: int) -> dict[str, str]:
    """The response is a complete S3 error document for `code`; returns its fields."""
    assert resp.status_code == status, (resp.status_code, resp.content[:500])
    assert resp.headers.get("content-type", "").startswith(("application/xml", "text/xml"))
    root = ET.fromstring(resp.content)
    assert root.tag == "Error"
    fields = {child.tag: child.text or "" for child in root}
    assert fields.get("Code") == code, fields
    assert fields.get("Message"), fields
    request_id = resp.headers.get("x-amz-request-id")
    assert request_id, "every answer carries x-amz-request-id"
    assert fields.get("RequestId") == request_id
    return fields


def _err(e: pytest.ExceptionInfo) -> tuple[str, int]:
    r = e.value.response
    return r["Error"]["Code"], r["ResponseMetadata"]["HTTPStatusCode"]


def _client(server, **changes):
    return dataclasses.replace(server, **changes).client()


def snapshot(s3, *buckets: str) -> dict[str, list[tuple[str, str, str]]]:
    """The named buckets' (key, etag, last-modified) triples: to prove an error changed nothing.

    Only the test's own buckets are read, so tests running in parallel cannot interfere.
    """
    out = {}
    for name in buckets:
        objs = s3.list_objects_v2(Bucket=name).get("Contents", [])
        out[name] = [(o["Key"], o["ETag"], o["LastModified"].isoformat()) for o in objs]
    return out


def assert_no_bucket(s3, name: str) -> None:
    with pytest.raises(ClientError) as e:
        s3.head_bucket(Bucket=name)
    assert _err(e)[1] == 404


# ---------------------------------------------------------------- malformed XML bodies

BAD_XML = [b"not xml at all", b"<CreateBucketConfiguration><LocationConstraint>",
           b"<?xml version='1.0'?><Wrong><Thing/></Wrong>"]


@pytest.mark.parametrize("body", BAD_XML)
def test_create_bucket_malformed_xml(server, s3, body):
    name = "t-" + uuid.uuid4().hex[:20]
    resp = raw(server, "PUT", f"/{name}", body=body)
    assert_s3_error(resp, "MalformedXML", 400)
    assert_no_bucket(s3, name)


@pytest.mark.parametrize("body", [
    b"garbage",
    b"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber>",
    b"<CompleteMultipartUpload><Part><PartNumber>one</PartNumber><ETag>x</ETag></Part>"
    b"</CompleteMultipartUpload>",
    b"<CompleteMultipartUpload></CompleteMultipartUpload>",
])
def test_complete_multipart_malformed_xml(server, s3, bucket, body):
    up = s3.create_multipart_upload(Bucket=bucket, Key="mp")
    s3.upload_part(Bucket=bucket, Key="mp", UploadId=up["UploadId"], PartNumber=1, Body=b"part")
    resp = raw(server, "POST", f"/{bucket}/mp", query="uploadId=" + quote(up["UploadId"], safe=""), body=body)
    assert_s3_error(resp, "MalformedXML", 400)
    # The upload is still open and the object was not created.
    parts = s3.list_parts(Bucket=bucket, Key="mp", UploadId=up["UploadId"])["Parts"]
    assert [p["PartNumber"] for p in parts] == [1]
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def test_delete_objects_malformed_xml(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    body = b"<Delete><Object><Key>k</Key>"
    md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
    resp = raw(server, "POST", f"/{bucket}", query="delete", body=body,
               headers={"Content-MD5": md5})
    assert_s3_error(resp, "MalformedXML", 400)
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["k"]


# ---------------------------------------------------------------- authentication

def test_bad_signature(server, s3, bucket):
    bad = _client(server, secret_key=server.secret_key + "x")
    with pytest.raises(ClientError) as e:
        bad.put_object(Bucket=bucket, Key="forged", Body=b"x")
    assert _err(e) == ("SignatureDoesNotMatch", 403)
    with pytest.raises(ClientError) as e:
        bad.list_buckets()
    assert _err(e) == ("SignatureDoesNotMatch", 403)
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0
    resp = raw(server, "GET", f"/{bucket}", secret_key="wrong-secret")
    assert_s3_error(resp, "SignatureDoesNotMatch", 403)


def test_signature_over_altered_request(server, s3, bucket):
    """A valid signature does not transfer to a request changed after signing."""
    url = f"{server.endpoint}/{bucket}/victim"
    req = AWSRequest(method="PUT", url=url, data=b"payload", headers={"x-amz-meta-a": "1"})
    S3SigV4Auth(Credentials(server.access_key, server.secret_key), "s3", server.region).add_auth(req)
    req.headers.replace_header("x-amz-meta-a", "2")
    resp = URLLib3Session(timeout=10).send(req.prepare())
    assert_s3_error(resp, "SignatureDoesNotMatch", 403)
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def test_payload_not_matching_signed_hash(server, s3, bucket):
    url = f"{server.endpoint}/{bucket}/swapped"
    req = AWSRequest(method="PUT", url=url, data=b"signed body")
    S3SigV4Auth(Credentials(server.access_key, server.secret_key), "s3", server.region).add_auth(req)
    req.data = b"other body!"  # same length, different bytes
    resp = URLLib3Session(timeout=10).send(req.prepare())
    assert_s3_error(resp, "XAmzContentSHA256Mismatch", 400)
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def test_unknown_access_key(server, s3, bucket):
    ghost = _client(server, access_key="AKIANOSUCHKEY0000000")
    with pytest.raises(ClientError) as e:
        ghost.list_buckets()
    assert _err(e) == ("InvalidAccessKeyId", 403)
    with pytest.raises(ClientError) as e:
        ghost.put_object(Bucket=bucket, Key="ghost", Body=b"x")
    assert _err(e) == ("InvalidAccessKeyId", 403)
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0
    resp = raw(server, "GET", "/", access_key="AKIANOSUCHKEY0000000")
    assert_s3_error(resp, "InvalidAccessKeyId", 403)


def test_wrong_region_in_credential_scope(server, s3, bucket):
    resp = raw(server, "GET", f"/{bucket}", region="eu-west-3")
    assert_s3_error(resp, "AuthorizationHeaderMalformed", 400)


def test_anonymous_requests_are_denied(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="private", Body=b"secret")
    anon = server.client(signature_version=UNSIGNED)
    for call in (lambda: anon.list_buckets(),
                 lambda: anon.list_objects_v2(Bucket=bucket),
                 lambda: anon.get_object(Bucket=bucket, Key="private"),
                 lambda: anon.put_object(Bucket=bucket, Key="anon", Body=b"x"),
                 lambda: anon.delete_object(Bucket=bucket, Key="private")):
        with pytest.raises(ClientError) as e:
            call()
        assert _err(e) == ("AccessDenied", 403)
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["private"]
    assert s3.get_object(Bucket=bucket, Key="private")["Body"].read() == b"secret"
    assert_s3_error(raw(server, "GET", f"/{bucket}/private", sign=False), "AccessDenied", 403)


@pytest.mark.parametrize("minutes", [20, -20])
def test_skewed_clock(server, s3, bucket, minutes):
    resp = raw(server, "PUT", f"/{bucket}/skewed", body=b"x",
               skew=dt.timedelta(minutes=minutes))
    assert_s3_error(resp, "RequestTimeTooSkewed", 403)
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def test_skewed_clock_through_boto3(server, bucket):
    """boto3 signs with the CRT signer when awscrt is installed, so patch both clocks."""
    client = server.client()
    skewed = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=20)

    def fake_now(remove_tzinfo: bool = True) -> dt.datetime:
        return skewed.replace(tzinfo=None) if remove_tzinfo else skewed

    with contextlib.ExitStack() as stack:
        stack.enter_context(mock.patch("botocore.auth.get_current_datetime", fake_now))
        try:
            import botocore.crt.auth  # noqa: F401 - only present with awscrt
            stack.enter_context(mock.patch("botocore.crt.auth.get_current_datetime", fake_now))
        except ImportError:
            pass
        seen = []
        client.meta.events.register("before-send.s3", lambda request, **_: seen.append(
            request.headers["X-Amz-Date"]))
        with pytest.raises(ClientError) as e:
            client.list_objects_v2(Bucket=bucket)
    stamp = seen[0].decode() if isinstance(seen[0], bytes) else seen[0]
    assert stamp == skewed.strftime("%Y%m%dT%H%M%SZ"), "the skew took effect"
    assert _err(e) == ("RequestTimeTooSkewed", 403)


def test_small_clock_skew_is_tolerated(server, bucket):
    resp = raw(server, "GET", f"/{bucket}", query="list-type=2", skew=dt.timedelta(minutes=4))
    assert resp.status_code == 200, resp.content


# ---------------------------------------------------------------- unsupported operations

UNSUPPORTED = [
    ("GET", "accelerate", "get_bucket_accelerate_configuration"),
    ("GET", "requestPayment", "get_bucket_request_payment"),
    ("GET", "analytics", "list_bucket_analytics_configurations"),
    ("GET", "intelligent-tiering", "list_bucket_intelligent_tiering_configurations"),
]


@pytest.mark.parametrize(("method", "sub", "op"), UNSUPPORTED)
def test_unsupported_operation_is_not_implemented(server, s3, bucket, method, sub, op):
    with pytest.raises(ClientError) as e:
        getattr(s3, op)(Bucket=bucket)
    assert _err(e) == ("NotImplemented", 501)
    assert_s3_error(raw(server, method, f"/{bucket}", query=sub), "NotImplemented", 501)


def test_unsupported_write_changes_nothing(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    before = snapshot(s3, bucket)
    body = (b'<AccelerateConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
            b"<Status>Enabled</Status></AccelerateConfiguration>")
    assert_s3_error(raw(server, "PUT", f"/{bucket}", query="accelerate", body=body),
                    "NotImplemented", 501)
    assert snapshot(s3, bucket) == before, "PUT ?accelerate must never be mistaken for CreateBucket"


# ---------------------------------------------------------------- requests meant for other services

@pytest.mark.parametrize(("service", "target", "ctype"), [
    ("dynamodb", "DynamoDB_20120810.ListTables", "application/x-amz-json-1.0"),
    ("sqs", "AmazonSQS.ListQueues", "application/x-amz-json-1.0"),
])
def test_request_for_another_service_fails_fast(server, s3, bucket, service, target, ctype):
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    before = snapshot(s3, bucket)
    start = time.monotonic()
    resp = raw(server, "POST", "/", service=service, body=json.dumps({}).encode(),
               headers={"X-Amz-Target": target, "Content-Type": ctype})
    assert time.monotonic() - start < 5
    assert 400 <= resp.status_code < 600
    root = ET.fromstring(resp.content)
    assert root.tag == "Error"
    assert root.findtext("Code") and root.findtext("Message")
    assert root.findtext("RequestId") == resp.headers["x-amz-request-id"]
    assert snapshot(s3, bucket) == before


def test_unsigned_request_for_another_service_fails_fast(server):
    start = time.monotonic()
    resp = raw(server, "POST", "/", sign=False, body=b"Action=ListQueues&Version=2012-11-05",
               headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert time.monotonic() - start < 5
    assert 400 <= resp.status_code < 600
    root = ET.fromstring(resp.content)     # an unsigned form is STS's (web identity): its XML
    assert root.findtext(".//{*}Code") and root.findtext(".//{*}Message")
    assert root.findtext(".//{*}RequestId") == resp.headers["x-amz-request-id"]


# ---------------------------------------------------------------- the error document itself

def test_error_documents_are_complete(server, s3, bucket):
    """A sweep of error kinds: each answer is a full error document with matching ids."""
    s3.put_object(Bucket=bucket, Key="obj", Body=b"0123456789")
    etag = s3.head_object(Bucket=bucket, Key="obj")["ETag"]
    before = snapshot(s3, bucket)
    cases = [
        (raw(server, "GET", "/t-no-such-bucket-errors-0"), "NoSuchBucket", 404),
        (raw(server, "GET", f"/{bucket}/missing"), "NoSuchKey", 404),
        (raw(server, "GET", f"/{bucket}/obj", headers={"Range": "bytes=50-60"}),
         "InvalidRange", 416),
        (raw(server, "GET", f"/{bucket}/obj", headers={"If-Match": '"' + "0" * 32 + '"'}),
         "PreconditionFailed", 412),
        (raw(server, "PUT", f"/{bucket}/obj", body=b"new", headers={"If-None-Match": "*"}),
         "PreconditionFailed", 412),
        (raw(server, "DELETE", f"/{bucket}"), "BucketNotEmpty", 409),
        (raw(server, "PUT", f"/{bucket}"), "BucketAlreadyOwnedByYou", 409),
        (raw(server, "PUT", "/Bad_Name"), "InvalidBucketName", 400),
        (raw(server, "PUT", f"/{bucket}/" + "k" * 1025, body=b"x"), "KeyTooLongError", 400),
        (raw(server, "GET", f"/{bucket}", secret_key="nope"), "SignatureDoesNotMatch", 403),
        (raw(server, "GET", "/", access_key="AKIANOSUCHKEY0000000"), "InvalidAccessKeyId", 403),
        (raw(server, "GET", f"/{bucket}", sign=False), "AccessDenied", 403),
        (raw(server, "GET", "/", skew=dt.timedelta(minutes=-30)), "RequestTimeTooSkewed", 403),
        (raw(server, "GET", f"/{bucket}", query="accelerate"), "NotImplemented", 501),
    ]
    ids = set()
    for resp, code, status in cases:
        fields = assert_s3_error(resp, code, status)
        ids.add(fields["RequestId"])
    assert len(ids) == len(cases), "request ids are unique"
    assert s3.head_object(Bucket=bucket, Key="obj")["ETag"] == etag
    assert snapshot(s3, bucket) == before, "no error changed anything"
    assert_no_bucket(s3, "t-no-such-bucket-errors-0")
    assert "Bad_Name" not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


# ---------------------------------------------------------------- the connection after an error

@pytest.mark.parametrize("size", [8, 70_000], ids=["small-body", "large-body"])
def test_connection_survives_errors_answered_before_the_body(server, bucket, size):
    """An error sent before the request body is read must not desynchronise keep-alive.

    Each client has one pooled connection, so a server that answers early and
    leaves the unread body on the socket would parse that body as the next request.
    """
    s3 = server.client(max_pool_connections=1)
    forged = dataclasses.replace(server, secret_key="wrong").client(max_pool_connections=1)
    body = b"B" * size
    failing = [
        (s3, lambda: s3.put_object(Bucket=bucket, Key="k" * 1025, Body=body)),
        (s3, lambda: s3.put_object(Bucket="t-no-such-bucket-keepalive", Key="k", Body=body)),
        (s3, lambda: s3.put_object(Bucket=bucket, Key="c", Body=body, IfNoneMatch="*",
                                   IfMatch='"' + "0" * 32 + '"')),
        (forged, lambda: forged.put_object(Bucket=bucket, Key="forged", Body=body)),
    ]
    for client, call in failing:
        with pytest.raises(ClientError) as first:
            call()
        code = first.value.response["Error"]["Code"]
        # The same connection answers the next request properly.
        if client is s3:
            assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0
        else:
            with pytest.raises(ClientError) as again:
                forged.list_buckets()
            assert again.value.response["Error"]["Code"] == code == "SignatureDoesNotMatch"
    s3.put_object(Bucket=bucket, Key="ok", Body=b"fine")
    assert s3.get_object(Bucket=bucket, Key="ok")["Body"].read() == b"fine"


def test_sse_c_over_plain_http_is_refused_not_ignored(s3, bucket):
    """As AWS: customer keys only over TLS (the key would cross the wire in clear)."""
    import os as _os

    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="ssec", Body=b"x", SSECustomerAlgorithm="AES256",
                      SSECustomerKey=_os.urandom(32))
    assert e.value.response["Error"]["Code"] == "InvalidRequest"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert "secure connection" in e.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key="ssec")
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
