"""Object lock (WORM): bucket configuration, retention on every write path, legal hold,
and the delete matrix mode x bypass header x permission x expiry.

Runs its own server with --test-clock so "expiry" is reached by moving the
server's clock, not by sleeping.
"""

from __future__ import annotations

import base64
import hashlib
import time
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from botocore.exceptions import ClientError

from tests.support.server import code

DAY = 86400


def set_offset(server, seconds: float) -> None:
    path = server.data_dir / "test-clock-offset"
    path.write_text(str(seconds))
    # The clock re-reads the file when its mtime changes; make sure a rewrite is noticed.
    time.sleep(0.02)


@pytest.fixture
def offset(clocked):
    set_offset(clocked, 0)
    yield lambda s: set_offset(clocked, s)
    set_offset(clocked, 0)


@pytest.fixture
def lbucket(c3):
    name = "l-" + uuid.uuid4().hex[:20]
    c3.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    return name


def until(days: float) -> datetime:
    return datetime.now(timezone.utc) + timedelta(days=days)


def test_lock_bucket_configuration(c3, lbucket):
    assert c3.get_bucket_versioning(Bucket=lbucket)["Status"] == "Enabled"
    got = c3.get_object_lock_configuration(Bucket=lbucket)["ObjectLockConfiguration"]
    assert got == {"ObjectLockEnabled": "Enabled"}
    c3.put_object_lock_configuration(Bucket=lbucket, ObjectLockConfiguration={
        "ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 2}}})
    rule = c3.get_object_lock_configuration(Bucket=lbucket)["ObjectLockConfiguration"]["Rule"]
    assert rule == {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 2}}
    c3.put_object(Bucket=lbucket, Key="d", Body=b"x")
    head = c3.head_object(Bucket=lbucket, Key="d")
    assert head["ObjectLockMode"] == "GOVERNANCE"
    remaining = head["ObjectLockRetainUntilDate"] - datetime.now(timezone.utc)
    assert timedelta(days=1.99) < remaining <= timedelta(days=2)
    with pytest.raises(ClientError) as exc:
        c3.put_bucket_versioning(Bucket=lbucket, VersioningConfiguration={"Status": "Suspended"})
    assert code(exc) == "InvalidBucketState"


def test_lock_configuration_bad_input(c3, s3, lbucket, bucket):
    for bad, want in [({"ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 0}}},
                       "InvalidArgument"),
                      ({"ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "BOGUS", "Days": 1}}},
                       "MalformedXML"),
                      ({"ObjectLockEnabled": "Enabled",
                        "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": 1, "Years": 1}}}, "MalformedXML")]:
        with pytest.raises(ClientError) as exc:
            c3.put_object_lock_configuration(Bucket=lbucket, ObjectLockConfiguration=bad)
        assert code(exc) == want
    assert "Rule" not in c3.get_object_lock_configuration(Bucket=lbucket)["ObjectLockConfiguration"]
    # A bucket without object lock: not found; enabling needs versioning first.
    with pytest.raises(ClientError) as exc:
        s3.get_object_lock_configuration(Bucket=bucket)
    assert code(exc) == "ObjectLockConfigurationNotFoundError"
    with pytest.raises(ClientError) as exc:
        s3.put_object_lock_configuration(Bucket=bucket, ObjectLockConfiguration={"ObjectLockEnabled": "Enabled"})
    assert code(exc) == "InvalidBucketState"
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="k", Body=b"x", ObjectLockMode="GOVERNANCE",
                      ObjectLockRetainUntilDate=until(1))
    assert code(exc) == "InvalidRequest"


def test_put_retention_headers_bad_input(c3, lbucket):
    cases = [({"ObjectLockMode": "FOREVER", "ObjectLockRetainUntilDate": until(1)}, "InvalidArgument"),
             ({"ObjectLockMode": "GOVERNANCE", "ObjectLockRetainUntilDate": until(-1)}, "InvalidArgument"),
             ({"ObjectLockMode": "GOVERNANCE"}, "InvalidArgument"),
             ({"ObjectLockLegalHoldStatus": "MAYBE"}, "InvalidArgument")]
    for kwargs, want in cases:
        with pytest.raises(ClientError) as exc:
            c3.put_object(Bucket=lbucket, Key="bad", Body=b"x", **kwargs)
        assert code(exc) == want, kwargs
    assert "Versions" not in c3.list_object_versions(Bucket=lbucket)


def test_lock_headers_need_an_integrity_header(clocked, lbucket):
    plain = clocked.client(request_checksum_calculation="when_required")
    with pytest.raises(ClientError) as exc:
        plain.put_object(Bucket=lbucket, Key="k", Body=b"x", ObjectLockMode="GOVERNANCE",
                         ObjectLockRetainUntilDate=until(1))
    assert code(exc) == "InvalidRequest"
    md5 = base64.b64encode(hashlib.md5(b"x").digest()).decode()
    plain.put_object(Bucket=lbucket, Key="k", Body=b"x", ContentMD5=md5, ObjectLockMode="GOVERNANCE",
                     ObjectLockRetainUntilDate=until(1))


# -- the delete matrix -------------------------------------------------------------
@pytest.mark.parametrize("mode", ["GOVERNANCE", "COMPLIANCE"])
@pytest.mark.parametrize("bypass", [False, True])
@pytest.mark.parametrize("expired", [False, True])
def test_delete_matrix(c3, lbucket, offset, mode, bypass, expired):
    vid = c3.put_object(Bucket=lbucket, Key="m", Body=b"x", ObjectLockMode=mode,
                        ObjectLockRetainUntilDate=until(1))["VersionId"]
    if expired:
        offset(DAY + 60)
    kwargs = {"BypassGovernanceRetention": True} if bypass else {}
    allowed = expired or (mode == "GOVERNANCE" and bypass)   # the caller is root: permitted to bypass
    if allowed:
        c3.delete_object(Bucket=lbucket, Key="m", VersionId=vid, **kwargs)
        assert "Versions" not in c3.list_object_versions(Bucket=lbucket)
    else:
        with pytest.raises(ClientError) as exc:
            c3.delete_object(Bucket=lbucket, Key="m", VersionId=vid, **kwargs)
        assert code(exc) == "AccessDenied"
        assert c3.get_object(Bucket=lbucket, Key="m", VersionId=vid)["Body"].read() == b"x"
        out = c3.delete_objects(Bucket=lbucket, Delete={"Objects": [{"Key": "m", "VersionId": vid}]}, **kwargs)
        assert out["Errors"][0]["Code"] == "AccessDenied"
    # A plain DELETE only adds a delete marker, which object lock allows.
    c3.put_object(Bucket=lbucket, Key="n", Body=b"y", ObjectLockMode=mode, ObjectLockRetainUntilDate=until(3))
    assert c3.delete_object(Bucket=lbucket, Key="n")["DeleteMarker"] is True


def test_legal_hold(c3, lbucket, offset):
    vid = c3.put_object(Bucket=lbucket, Key="h", Body=b"x", ObjectLockLegalHoldStatus="ON")["VersionId"]
    assert c3.get_object_legal_hold(Bucket=lbucket, Key="h")["LegalHold"]["Status"] == "ON"
    assert c3.head_object(Bucket=lbucket, Key="h")["ObjectLockLegalHoldStatus"] == "ON"
    offset(10 * 365 * DAY)
    with pytest.raises(ClientError) as exc:
        c3.delete_object(Bucket=lbucket, Key="h", VersionId=vid, BypassGovernanceRetention=True)
    assert code(exc) == "AccessDenied"
    c3.put_object_legal_hold(Bucket=lbucket, Key="h", VersionId=vid, LegalHold={"Status": "OFF"})
    assert c3.get_object_legal_hold(Bucket=lbucket, Key="h", VersionId=vid)["LegalHold"]["Status"] == "OFF"
    c3.delete_object(Bucket=lbucket, Key="h", VersionId=vid)


def test_retention_extend_never_shorten(c3, lbucket):
    vid = c3.put_object(Bucket=lbucket, Key="r", Body=b"x")["VersionId"]
    with pytest.raises(ClientError) as exc:
        c3.get_object_retention(Bucket=lbucket, Key="r")
    assert code(exc) == "NoSuchObjectLockConfiguration"
    t1 = until(2).replace(microsecond=0)
    c3.put_object_retention(Bucket=lbucket, Key="r", VersionId=vid, Retention={"Mode": "COMPLIANCE", "RetainUntilDate": t1})
    got = c3.get_object_retention(Bucket=lbucket, Key="r", VersionId=vid)["Retention"]
    assert got["Mode"] == "COMPLIANCE" and got["RetainUntilDate"] == t1
    for mode, when in [("COMPLIANCE", until(1)), ("GOVERNANCE", until(5))]:
        with pytest.raises(ClientError) as exc:
            c3.put_object_retention(Bucket=lbucket, Key="r", VersionId=vid, BypassGovernanceRetention=True,
                                    Retention={"Mode": mode, "RetainUntilDate": when})
        assert code(exc) == "AccessDenied"
    with pytest.raises(ClientError) as exc:
        c3.put_object_retention(Bucket=lbucket, Key="r", VersionId=vid, Retention={})
    assert code(exc) == "AccessDenied"
    t2 = until(3).replace(microsecond=0)
    c3.put_object_retention(Bucket=lbucket, Key="r", VersionId=vid, Retention={"Mode": "COMPLIANCE", "RetainUntilDate": t2})
    assert c3.get_object_retention(Bucket=lbucket, Key="r", VersionId=vid)["Retention"]["RetainUntilDate"] == t2
    with pytest.raises(ClientError) as exc:
        c3.put_object_retention(Bucket=lbucket, Key="r", VersionId=vid,
                                Retention={"Mode": "COMPLIANCE", "RetainUntilDate": until(-1)})
    assert code(exc) == "InvalidArgument"
    # GOVERNANCE: shortening needs the bypass header (root holds the permission).
    g = c3.put_object(Bucket=lbucket, Key="g", Body=b"x", ObjectLockMode="GOVERNANCE",
                      ObjectLockRetainUntilDate=until(3))["VersionId"]
    with pytest.raises(ClientError) as exc:
        c3.put_object_retention(Bucket=lbucket, Key="g", VersionId=g, Retention={"Mode": "GOVERNANCE", "RetainUntilDate": until(1)})
    assert code(exc) == "AccessDenied"
    c3.put_object_retention(Bucket=lbucket, Key="g", VersionId=g, BypassGovernanceRetention=True,
                            Retention={"Mode": "GOVERNANCE", "RetainUntilDate": until(1)})
    c3.delete_object(Bucket=lbucket, Key="g", VersionId=g, BypassGovernanceRetention=True)


def test_retention_on_copy_and_multipart(c3, lbucket):
    c3.put_object(Bucket=lbucket, Key="src", Body=b"data", ObjectLockMode="COMPLIANCE", ObjectLockRetainUntilDate=until(1))
    c3.copy_object(Bucket=lbucket, Key="copy", CopySource={"Bucket": lbucket, "Key": "src"})
    assert "ObjectLockMode" not in c3.head_object(Bucket=lbucket, Key="copy")     # not inherited
    c3.copy_object(Bucket=lbucket, Key="copy2", CopySource={"Bucket": lbucket, "Key": "src"},
                   ObjectLockMode="GOVERNANCE", ObjectLockRetainUntilDate=until(1), ObjectLockLegalHoldStatus="ON")
    head = c3.head_object(Bucket=lbucket, Key="copy2")
    assert head["ObjectLockMode"] == "GOVERNANCE" and head["ObjectLockLegalHoldStatus"] == "ON"
    up = c3.create_multipart_upload(Bucket=lbucket, Key="mp", ObjectLockMode="COMPLIANCE",
                                    ObjectLockRetainUntilDate=until(1))
    part = c3.upload_part(Bucket=lbucket, Key="mp", UploadId=up["UploadId"], PartNumber=1, Body=b"p")
    done = c3.complete_multipart_upload(Bucket=lbucket, Key="mp", UploadId=up["UploadId"],
                                        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]})
    assert c3.get_object_retention(Bucket=lbucket, Key="mp")["Retention"]["Mode"] == "COMPLIANCE"
    with pytest.raises(ClientError) as exc:
        c3.delete_object(Bucket=lbucket, Key="mp", VersionId=done["VersionId"], BypassGovernanceRetention=True)
    assert code(exc) == "AccessDenied"


def test_retention_on_delete_marker_and_missing(c3, lbucket):
    with pytest.raises(ClientError) as exc:
        c3.get_object_retention(Bucket=lbucket, Key="nope")
    assert code(exc) == "NoSuchKey"
    with pytest.raises(ClientError) as exc:
        c3.put_object_legal_hold(Bucket=lbucket, Key="nope", VersionId="A" * 32, LegalHold={"Status": "ON"})
    assert code(exc) == "NoSuchVersion"
