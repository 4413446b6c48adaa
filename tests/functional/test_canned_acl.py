"""Canned ACLs on writes (PutObject, CopyObject, CreateMultipartUpload, CreateBucket) and
x-amz-object-ownership on CreateBucket, as AWS answers them."""

from __future__ import annotations

import uuid

import pytest
from botocore.exceptions import ClientError

from tests.support.server import code


def _name() -> str:
    return "acl-" + uuid.uuid4().hex[:16]


def _drop(s3, name: str) -> None:
    for v in s3.list_object_versions(Bucket=name).get("Versions", []):
        s3.delete_object(Bucket=name, Key=v["Key"], VersionId=v["VersionId"])
    for up in s3.list_multipart_uploads(Bucket=name).get("Uploads", []):
        s3.abort_multipart_upload(Bucket=name, Key=up["Key"], UploadId=up["UploadId"])
    s3.delete_bucket(Bucket=name)


def test_object_writes_refuse_public_acls_when_acls_are_disabled(s3, bucket):
    s3.put_object(Bucket=bucket, Key="src", Body=b"x")
    writes = {
        "put": lambda acl: s3.put_object(Bucket=bucket, Key="k", Body=b"x", ACL=acl),
        "copy": lambda acl: s3.copy_object(Bucket=bucket, Key="k2", CopySource={"Bucket": bucket, "Key": "src"},
                                           ACL=acl),
        "mpu": lambda acl: s3.create_multipart_upload(Bucket=bucket, Key="k3", ACL=acl),
    }
    for name, write in writes.items():
        for acl in ("public-read", "public-read-write", "authenticated-read"):
            with pytest.raises(ClientError) as exc:
                write(acl)
            assert code(exc) == "AccessControlListNotSupported", (name, acl)
            assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
        with pytest.raises(ClientError) as exc:          # grants are ACLs too
            s3.put_object(Bucket=bucket, Key="k", Body=b"x", GrantRead='uri="http://acs.amazonaws.com/groups/global/AllUsers"')
        assert code(exc) == "AccessControlListNotSupported"
        for acl in ("private", "bucket-owner-full-control"):   # owner-only ACLs are accepted
            write(acl)
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["k", "k2", "src"]


def test_create_bucket_acl_and_object_ownership(s3):
    name = _name()
    with pytest.raises(ClientError) as exc:              # default ownership: BucketOwnerEnforced
        s3.create_bucket(Bucket=name, ACL="public-read")
    assert code(exc) == "InvalidBucketAclWithObjectOwnership"
    with pytest.raises(ClientError) as exc:
        s3.create_bucket(Bucket=name, ACL="public-read", ObjectOwnership="BucketOwnerEnforced")
    assert code(exc) == "InvalidBucketAclWithObjectOwnership"
    with pytest.raises(ClientError) as exc:
        s3.head_bucket(Bucket=name)                      # nothing was created
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    s3.create_bucket(Bucket=name, ACL="private")
    try:
        rule = s3.get_bucket_ownership_controls(Bucket=name)["OwnershipControls"]["Rules"][0]
        assert rule["ObjectOwnership"] == "BucketOwnerEnforced"
    finally:
        _drop(s3, name)


@pytest.mark.parametrize("ownership", ["ObjectWriter", "BucketOwnerPreferred"])
def test_acls_enabled_ownership_is_stored_and_public_acls_still_refused(s3, ownership):
    name = _name()
    s3.create_bucket(Bucket=name, ObjectOwnership=ownership)
    try:
        rule = s3.get_bucket_ownership_controls(Bucket=name)["OwnershipControls"]["Rules"][0]
        assert rule["ObjectOwnership"] == ownership
        s3.put_object(Bucket=name, Key="k", Body=b"x", ACL="bucket-owner-read")
        # ACLs are enabled, but Vallum never evaluates them: a grant to anyone else is
        # refused as AWS's Block Public Access refuses it.
        with pytest.raises(ClientError) as exc:
            s3.put_object(Bucket=name, Key="k", Body=b"x", ACL="public-read")
        assert code(exc) == "AccessDenied"
    finally:
        _drop(s3, name)


def test_bad_object_ownership_is_refused(s3):
    name = _name()
    with pytest.raises(ClientError) as exc:
        s3.create_bucket(Bucket=name, ObjectOwnership="Nobody")  # type: ignore[arg-type]
    assert code(exc) == "InvalidArgument"
