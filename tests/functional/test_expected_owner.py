"""x-amz-expected-bucket-owner on every operation, x-amz-source-expected-bucket-owner on
copies: 403 AccessDenied when the bucket's owner account differs, the normal answer when
it matches. Another tenant's bucket (or a missing one) answers exactly as without the
header, so the header tells nobody anything about a bucket they may not use."""

from __future__ import annotations

import uuid

import pytest
from botocore.exceptions import ClientError

from tests.support.iam import Tenant

WRONG = "111122223333"


def _code(exc) -> tuple[int, str]:
    r = exc.value.response
    return r["ResponseMetadata"]["HTTPStatusCode"], r["Error"]["Code"]


def _calls(bucket: str):
    """One call of each kind: bucket reads, bucket settings, object reads and writes."""
    return {
        "HeadBucket": lambda c, **o: c.head_bucket(Bucket=bucket, **o),
        "ListObjectsV2": lambda c, **o: c.list_objects_v2(Bucket=bucket, **o),
        "ListObjectVersions": lambda c, **o: c.list_object_versions(Bucket=bucket, **o),
        "GetBucketVersioning": lambda c, **o: c.get_bucket_versioning(Bucket=bucket, **o),
        "PutBucketTagging": lambda c, **o: c.put_bucket_tagging(
            Bucket=bucket, Tagging={"TagSet": [{"Key": "a", "Value": "b"}]}, **o),
        "GetObject": lambda c, **o: c.get_object(Bucket=bucket, Key="o", **o),
        "HeadObject": lambda c, **o: c.head_object(Bucket=bucket, Key="o", **o),
        "PutObject": lambda c, **o: c.put_object(Bucket=bucket, Key="o", Body=b"changed", **o),
        "CreateMultipartUpload": lambda c, **o: c.create_multipart_upload(Bucket=bucket, Key="m", **o),
        "DeleteObjects": lambda c, **o: c.delete_objects(
            Bucket=bucket, Delete={"Objects": [{"Key": "nothing"}]}, **o),
        "DeleteObject": lambda c, **o: c.delete_object(Bucket=bucket, Key="nothing", **o),
    }


OPS = list(_calls("b"))


def _owner(s3) -> str:
    return s3.list_buckets()["Owner"]["ID"]


@pytest.mark.parametrize("op", OPS)
def test_wrong_owner_is_403_right_owner_is_served(s3, bucket, op):
    s3.put_object(Bucket=bucket, Key="o", Body=b"x")
    call = _calls(bucket)[op]
    with pytest.raises(ClientError) as exc:
        call(s3, ExpectedBucketOwner=WRONG)
    # A HEAD answer has no body: botocore names its error by the status.
    assert _code(exc) == (403, "403" if op.startswith("Head") else "AccessDenied")
    assert s3.get_object(Bucket=bucket, Key="o")["Body"].read() == b"x"   # nothing changed
    call(s3, ExpectedBucketOwner=_owner(s3))
    s3.delete_bucket_tagging(Bucket=bucket)


def test_copy_checks_both_owners(s3, bucket):
    s3.put_object(Bucket=bucket, Key="src", Body=b"copy me")
    me = _owner(s3)
    source = {"Bucket": bucket, "Key": "src"}
    for kw in ({"ExpectedSourceBucketOwner": WRONG}, {"ExpectedBucketOwner": WRONG},
               {"ExpectedSourceBucketOwner": WRONG, "ExpectedBucketOwner": me}):
        with pytest.raises(ClientError) as exc:
            s3.copy_object(Bucket=bucket, Key="dst", CopySource=source, **kw)
        assert _code(exc) == (403, "AccessDenied")
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="dst")
    s3.copy_object(Bucket=bucket, Key="dst", CopySource=source, ExpectedBucketOwner=me,
                   ExpectedSourceBucketOwner=me)
    assert s3.get_object(Bucket=bucket, Key="dst")["Body"].read() == b"copy me"


def test_tenant_owner_and_other_tenants_buckets(server, root):
    a, b = Tenant(server, root), Tenant(server, root)
    mine = "eo-" + uuid.uuid4().hex[:12]
    a.s3.create_bucket(Bucket=mine)
    a.s3.put_object(Bucket=mine, Key="o", Body=b"x")
    assert a.s3.get_object(Bucket=mine, Key="o", ExpectedBucketOwner=a.id)["Body"].read() == b"x"
    with pytest.raises(ClientError) as exc:
        a.s3.get_object(Bucket=mine, Key="o", ExpectedBucketOwner=b.id)
    assert _code(exc) == (403, "AccessDenied")
    # The other tenant: the same answer with any header as without, for a bucket that
    # exists and for one that does not.
    missing = "eo-" + uuid.uuid4().hex[:12]
    for name in (mine, missing):
        answers = set()
        for kw in ({}, {"ExpectedBucketOwner": a.id}, {"ExpectedBucketOwner": b.id}):
            with pytest.raises(ClientError) as exc:
                b.s3.get_object(Bucket=name, Key="o", **kw)
            answers.add(_code(exc))
        assert len(answers) == 1, (name, answers)
    a.s3.delete_object(Bucket=mine, Key="o")
    a.s3.delete_bucket(Bucket=mine)
