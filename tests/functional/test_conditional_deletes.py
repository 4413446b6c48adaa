"""Conditional deletes (AWS, 2025): If-Match, x-amz-if-match-last-modified-time and
x-amz-if-match-size on DeleteObject, and ETag / LastModifiedTime / Size per object in
DeleteObjects. A condition that does not hold is 412 PreconditionFailed (a per-key
error entry in DeleteObjects) and deletes nothing; an If-Match on a key with no
current object is 404 NoSuchKey; a malformed condition is 400 and deletes nothing."""

from __future__ import annotations

import datetime as dt

import pytest
from botocore.exceptions import ClientError

OTHER = '"00000000000000000000000000000000"'
BODY = b"delete me carefully"


def _status(exc) -> tuple[int, str]:
    r = exc.value.response
    return r["ResponseMetadata"]["HTTPStatusCode"], r["Error"]["Code"]


def _exists(s3, bucket: str, key: str) -> bool:
    try:
        s3.head_object(Bucket=bucket, Key=key)
    except ClientError:
        return False
    return True


def _put(s3, bucket: str, key: str = "k") -> dict:
    s3.put_object(Bucket=bucket, Key=key, Body=BODY)
    return s3.head_object(Bucket=bucket, Key=key)


def _versioned(s3, bucket: str, status: str = "Enabled") -> None:
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": status})


def _with_header(s3, name: str, value: str):
    """A DeleteObject that carries a header boto3 would refuse to send (signed normally)."""
    def add(request, **_):
        request.headers[name] = value
    s3.meta.events.register_first("before-sign.s3.DeleteObject", add)
    return add


@pytest.mark.parametrize("versioning", [None, "Enabled", "Suspended"])
def test_wrong_if_match_is_412_and_deletes_nothing(s3, bucket, versioning):
    if versioning:
        _versioned(s3, bucket, versioning)
    head = _put(s3, bucket)
    before = s3.list_object_versions(Bucket=bucket)
    with pytest.raises(ClientError) as exc:
        s3.delete_object(Bucket=bucket, Key="k", IfMatch=OTHER)
    assert _status(exc) == (412, "PreconditionFailed")
    after = s3.list_object_versions(Bucket=bucket)
    assert after.get("Versions") == before.get("Versions") and not after.get("DeleteMarkers")
    resp = s3.delete_object(Bucket=bucket, Key="k", IfMatch=head["ETag"])
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert not _exists(s3, bucket, "k")


def test_if_match_star_and_unquoted_etag(s3, bucket):
    head = _put(s3, bucket)
    s3.delete_object(Bucket=bucket, Key="k", IfMatch="*")
    assert not _exists(s3, bucket, "k")
    _put(s3, bucket)
    s3.delete_object(Bucket=bucket, Key="k", IfMatch=head["ETag"].strip('"'))
    assert not _exists(s3, bucket, "k")


@pytest.mark.parametrize("versioning", [None, "Enabled"])
def test_if_match_on_a_missing_key_or_delete_marker_is_404(s3, bucket, versioning):
    if versioning:
        _versioned(s3, bucket, versioning)
    for value in (OTHER, "*"):
        with pytest.raises(ClientError) as exc:
            s3.delete_object(Bucket=bucket, Key="absent", IfMatch=value)
        assert _status(exc) == (404, "NoSuchKey")
    if versioning:
        _put(s3, bucket)
        s3.delete_object(Bucket=bucket, Key="k")          # the current version is a marker
        with pytest.raises(ClientError) as exc:
            s3.delete_object(Bucket=bucket, Key="k", IfMatch="*")
        assert _status(exc) == (404, "NoSuchKey")
        assert len(s3.list_object_versions(Bucket=bucket)["DeleteMarkers"]) == 1


def test_size_and_last_modified_conditions(s3, bucket):
    head = _put(s3, bucket)
    mtime = head["LastModified"]
    for kw in ({"IfMatchSize": len(BODY) + 1},
               {"IfMatchLastModifiedTime": mtime - dt.timedelta(seconds=5)},
               {"IfMatch": head["ETag"], "IfMatchSize": 0}):
        with pytest.raises(ClientError) as exc:
            s3.delete_object(Bucket=bucket, Key="k", **kw)
        assert _status(exc) == (412, "PreconditionFailed")
        assert _exists(s3, bucket, "k")
    s3.delete_object(Bucket=bucket, Key="k", IfMatch=head["ETag"], IfMatchSize=len(BODY),
                     IfMatchLastModifiedTime=mtime)
    assert not _exists(s3, bucket, "k")
    # Without If-Match, the size and date alone pass on a missing key, as on AWS.
    resp = s3.delete_object(Bucket=bucket, Key="k", IfMatchSize=1)
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 204


@pytest.mark.parametrize("header,value", [
    ("x-amz-if-match-size", "-1"), ("x-amz-if-match-size", "ten"),
    ("x-amz-if-match-last-modified-time", "yesterday"),
], ids=["negative-size", "word-size", "bad-date"])
def test_malformed_conditions_are_400_and_delete_nothing(s3, bucket, header, value):
    _put(s3, bucket)
    add = _with_header(s3, header, value)
    try:
        with pytest.raises(ClientError) as exc:
            s3.delete_object(Bucket=bucket, Key="k")
    finally:
        s3.meta.events.unregister("before-sign.s3.DeleteObject", add)
    assert _status(exc) == (400, "InvalidArgument")
    assert _exists(s3, bucket, "k")


def test_named_version_is_tested_against_that_version(s3, bucket):
    _versioned(s3, bucket)
    old = _put(s3, bucket)
    new = s3.put_object(Bucket=bucket, Key="k", Body=b"newer")
    with pytest.raises(ClientError) as exc:
        s3.delete_object(Bucket=bucket, Key="k", VersionId=old["VersionId"], IfMatch=new["ETag"])
    assert _status(exc) == (412, "PreconditionFailed")
    s3.delete_object(Bucket=bucket, Key="k", VersionId=old["VersionId"], IfMatch=old["ETag"])
    versions = s3.list_object_versions(Bucket=bucket)["Versions"]
    assert [v["VersionId"] for v in versions] == [new["VersionId"]]


@pytest.mark.parametrize("versioning", [None, "Enabled"])
def test_delete_objects_checks_each_object(s3, bucket, versioning):
    if versioning:
        _versioned(s3, bucket, versioning)
    heads = {k: _put(s3, bucket, k) for k in ("a", "b", "c", "d", "e")}
    out = s3.delete_objects(Bucket=bucket, Delete={"Objects": [
        {"Key": "a", "ETag": heads["a"]["ETag"]},                      # holds
        {"Key": "b", "ETag": OTHER},                                    # wrong ETag
        {"Key": "c", "Size": len(BODY) + 1},                            # wrong size
        {"Key": "d", "LastModifiedTime": heads["d"]["LastModified"] - dt.timedelta(seconds=5)},
        {"Key": "e", "ETag": heads["e"]["ETag"], "Size": len(BODY),
         "LastModifiedTime": heads["e"]["LastModified"]},               # all hold
        {"Key": "absent", "ETag": OTHER},                               # no such key
    ]})
    assert sorted(d["Key"] for d in out["Deleted"]) == ["a", "e"]
    errors = {e["Key"]: e["Code"] for e in out["Errors"]}
    assert errors == {"b": "PreconditionFailed", "c": "PreconditionFailed",
                      "d": "PreconditionFailed", "absent": "NoSuchKey"}
    assert [k for k in "abcde" if _exists(s3, bucket, k)] == ["b", "c", "d"]
    if versioning:      # the refused keys got no delete marker
        markers = s3.list_object_versions(Bucket=bucket).get("DeleteMarkers", [])
        assert sorted(m["Key"] for m in markers) == ["a", "e"]
