"""DeleteObjects (POST ?delete): results per key, quiet mode, body validation."""

from __future__ import annotations

import base64
import hashlib
import xml.etree.ElementTree as ET

import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError
from botocore.httpsession import URLLib3Session

NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"


def raw(server, method: str, path: str, *, query: str = "", headers=None, body: bytes = b""):
    """Send one SigV4-signed request built by hand; returns botocore's AWSResponse."""
    url = server.endpoint + path + ("?" + query if query else "")
    req = AWSRequest(method=method, url=url, data=body, headers=dict(headers or {}))
    S3SigV4Auth(Credentials(server.access_key, server.secret_key), "s3", server.region).add_auth(req)
    return URLLib3Session(timeout=10).send(req.prepare())


def post_delete(server, bucket: str, body: bytes):
    """POST ?delete with a correct Content-MD5, so only the XML itself can be at fault."""
    md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
    return raw(server, "POST", f"/{bucket}", query="delete", body=body,
               headers={"Content-MD5": md5, "Content-Type": "application/xml"})


def remaining(s3, bucket: str) -> list[str]:
    return [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]


def _objects(keys):
    return {"Objects": [{"Key": k} for k in keys]}


def test_delete_objects_reports_each_key(s3, bucket):
    keys = ["a", "b/c", "ü d+e%f"]
    for k in keys:
        s3.put_object(Bucket=bucket, Key=k, Body=b"x")
    s3.put_object(Bucket=bucket, Key="keep", Body=b"x")
    resp = s3.delete_objects(Bucket=bucket, Delete=_objects(keys))
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert sorted(d["Key"] for d in resp["Deleted"]) == sorted(keys)
    assert "Errors" not in resp
    assert remaining(s3, bucket) == ["keep"]


def test_missing_keys_are_reported_deleted(s3, bucket):
    s3.put_object(Bucket=bucket, Key="present", Body=b"x")
    resp = s3.delete_objects(Bucket=bucket, Delete=_objects(["present", "absent", "also/absent"]))
    assert sorted(d["Key"] for d in resp["Deleted"]) == ["absent", "also/absent", "present"]
    assert "Errors" not in resp
    assert remaining(s3, bucket) == []


def test_quiet_mode_returns_no_successes(s3, bucket):
    for k in ("q1", "q2"):
        s3.put_object(Bucket=bucket, Key=k, Body=b"x")
    resp = s3.delete_objects(Bucket=bucket, Delete={**_objects(["q1", "q2", "q3"]), "Quiet": True})
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert "Deleted" not in resp
    assert "Errors" not in resp
    assert remaining(s3, bucket) == []


def test_duplicate_keys_in_one_request(s3, bucket):
    s3.put_object(Bucket=bucket, Key="dup", Body=b"x")
    resp = s3.delete_objects(Bucket=bucket, Delete=_objects(["dup", "dup"]))
    assert {d["Key"] for d in resp["Deleted"]} == {"dup"}
    assert remaining(s3, bucket) == []


def test_exactly_1000_keys_is_accepted(s3, bucket):
    keys = [f"k{i:04d}" for i in range(1000)]
    resp = s3.delete_objects(Bucket=bucket, Delete={**_objects(keys), "Quiet": True})
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert "Errors" not in resp


def test_more_than_1000_keys_is_malformed(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k0000", Body=b"x")
    keys = [f"k{i:04d}" for i in range(1001)]
    with pytest.raises(ClientError) as e:
        s3.delete_objects(Bucket=bucket, Delete=_objects(keys))
    assert e.value.response["Error"]["Code"] == "MalformedXML"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert remaining(s3, bucket) == ["k0000"], "a refused request deletes nothing"


@pytest.mark.parametrize("body", [
    b"this is not xml",
    b"<Delete><Object><Key>unterminated</Key></Object>",
    b"<Delete></Delete>",                                   # no Object at all
    b"<Delete><Object></Object></Delete>",                  # Object without Key
    b"<NotDelete><Object><Key>x</Key></Object></NotDelete>",
    b"",
])
def test_malformed_body_is_malformed_xml(server, s3, bucket, body):
    s3.put_object(Bucket=bucket, Key="x", Body=b"x")
    resp = post_delete(server, bucket, body)
    assert resp.status_code == 400, resp.content
    err = ET.fromstring(resp.content)
    if body:
        assert err.findtext("Code") == "MalformedXML"
    else:
        assert err.findtext("Code") in ("MalformedXML", "MissingRequestBodyError")
    assert err.findtext("RequestId") == resp.headers["x-amz-request-id"]
    assert remaining(s3, bucket) == ["x"]


def test_raw_well_formed_request_with_namespace(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="n s", Body=b"x")
    body = (b'<?xml version="1.0" encoding="UTF-8"?>'
            b'<Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
            b"<Object><Key>n s</Key></Object><Quiet>false</Quiet></Delete>")
    resp = post_delete(server, bucket, body)
    assert resp.status_code == 200, resp.content
    root = ET.fromstring(resp.content)
    assert root.tag == NS + "DeleteResult"
    assert [e.text for e in root.iterfind(f"{NS}Deleted/{NS}Key")] == ["n s"]
    assert remaining(s3, bucket) == []


def test_raw_request_without_namespace_is_accepted(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="plain", Body=b"x")
    resp = post_delete(server, bucket, b"<Delete><Object><Key>plain</Key></Object></Delete>")
    assert resp.status_code == 200, resp.content
    assert remaining(s3, bucket) == []


def test_bad_content_md5_is_rejected(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="x", Body=b"x")
    body = b"<Delete><Object><Key>x</Key></Object></Delete>"
    wrong = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    resp = raw(server, "POST", f"/{bucket}", query="delete", body=body,
               headers={"Content-MD5": wrong})
    assert resp.status_code == 400
    assert ET.fromstring(resp.content).findtext("Code") == "BadDigest"
    assert remaining(s3, bucket) == ["x"]


def test_delete_objects_missing_bucket(s3):
    with pytest.raises(ClientError) as e:
        s3.delete_objects(Bucket="t-no-such-bucket-multidel", Delete=_objects(["a"]))
    assert e.value.response["Error"]["Code"] == "NoSuchBucket"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
