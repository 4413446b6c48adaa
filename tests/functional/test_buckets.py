"""Bucket lifecycle against the real server: list, create, head, delete, location.

Each test makes its own uniquely named buckets so the file can run in parallel
with the rest of the suite; listing assertions filter by that unique prefix.
"""

from __future__ import annotations

import os
import uuid

import pytest
from botocore.exceptions import ClientError

from tests.support.server import start_server, stop_server


def _prefix() -> str:
    return "lb-" + uuid.uuid4().hex[:12] + "-"


def _delete_quietly(s3, name: str) -> None:
    try:
        s3.delete_bucket(Bucket=name)
    except ClientError:
        pass


@pytest.fixture
def three_buckets(s3):
    """Three buckets sharing a fresh prefix, so listings can be checked exactly."""
    prefix = _prefix()
    names = [prefix + s for s in ("c", "a", "b")]
    for n in names:
        s3.create_bucket(Bucket=n)
    yield prefix, sorted(names)
    for n in names:
        _delete_quietly(s3, n)


def _status(exc: pytest.ExceptionInfo) -> int:
    return exc.value.response["ResponseMetadata"]["HTTPStatusCode"]


def _code(exc: pytest.ExceptionInfo) -> str:
    return exc.value.response["Error"]["Code"]


# ---------------------------------------------------------------- ListBuckets

def test_list_buckets_contains_new_buckets_with_dates(s3, three_buckets):
    prefix, names = three_buckets
    resp = s3.list_buckets()
    listed = [b["Name"] for b in resp["Buckets"]]
    mine = [n for n in listed if n.startswith(prefix)]
    assert sorted(mine) == names
    for b in resp["Buckets"]:
        assert b["CreationDate"] is not None
    assert "Owner" in resp and resp["Owner"].get("ID")


def test_list_buckets_prefix_filters(s3, three_buckets):
    prefix, names = three_buckets
    resp = s3.list_buckets(Prefix=prefix)
    assert sorted(b["Name"] for b in resp["Buckets"]) == names
    assert resp["Prefix"] == prefix
    assert "ContinuationToken" not in resp
    resp = s3.list_buckets(Prefix=prefix + "b")
    assert [b["Name"] for b in resp["Buckets"]] == [prefix + "b"]
    resp = s3.list_buckets(Prefix=_prefix())
    assert resp.get("Buckets", []) == []


def test_list_buckets_max_buckets_and_continuation(s3, three_buckets):
    prefix, names = three_buckets
    first = s3.list_buckets(Prefix=prefix, MaxBuckets=2)
    page1 = [b["Name"] for b in first["Buckets"]]
    assert len(page1) == 2
    token = first.get("ContinuationToken")
    assert token, "a truncated ListBuckets page carries a ContinuationToken"
    second = s3.list_buckets(Prefix=prefix, MaxBuckets=2, ContinuationToken=token)
    page2 = [b["Name"] for b in second["Buckets"]]
    assert sorted(page1 + page2) == names, "pages partition the listing"
    assert "ContinuationToken" not in second


def test_list_buckets_exact_page_boundary_is_not_truncated(s3, three_buckets):
    prefix, names = three_buckets
    resp = s3.list_buckets(Prefix=prefix, MaxBuckets=3)
    assert sorted(b["Name"] for b in resp["Buckets"]) == names
    assert "ContinuationToken" not in resp


def test_list_buckets_paginator(s3, three_buckets):
    prefix, names = three_buckets
    pages = s3.get_paginator("list_buckets").paginate(
        Prefix=prefix, PaginationConfig={"PageSize": 1})
    seen = [b["Name"] for page in pages for b in page.get("Buckets", [])]
    assert sorted(seen) == names


# ---------------------------------------------------------------- CreateBucket

def test_create_bucket_without_location_constraint(s3):
    name = _prefix() + "plain"
    try:
        resp = s3.create_bucket(Bucket=name)
        assert resp["ResponseMetadata"]["HTTPStatusCode"] == 200
        assert resp["Location"] == "/" + name
        assert s3.get_bucket_location(Bucket=name)["LocationConstraint"] is None
    finally:
        _delete_quietly(s3, name)


def test_create_bucket_with_explicit_us_east_1_constraint_is_accepted(s3):
    """AWS refuses LocationConstraint=us-east-1 (omitting it says that region); s3fs sends it
    and MinIO, Ceph and SeaweedFS accept it, so Vallum does, on a us-east-1 endpoint."""
    name = _prefix() + "east"
    try:
        resp = s3.create_bucket(Bucket=name,
                                CreateBucketConfiguration={"LocationConstraint": "us-east-1"})
        assert resp["ResponseMetadata"]["HTTPStatusCode"] == 200
        assert s3.get_bucket_location(Bucket=name)["LocationConstraint"] is None
    finally:
        _delete_quietly(s3, name)


def test_create_bucket_with_unknown_location_constraint_is_invalid(s3):
    name = _prefix() + "nowhere"
    try:
        with pytest.raises(ClientError) as e:
            s3.create_bucket(Bucket=name,
                             CreateBucketConfiguration={"LocationConstraint": "mars-north-9"})
        assert _code(e) == "InvalidLocationConstraint"
        assert _status(e) == 400
    finally:
        _delete_quietly(s3, name)


@pytest.mark.skipif(bool(os.environ.get("VALLUM_TEST_ENDPOINT")),
                    reason="needs its own Vallum process started with --region")
def test_create_bucket_with_location_constraint_on_regional_server(request, tmp_path):
    """A server configured for eu-west-1 accepts that constraint and refuses any other."""
    srv = start_server(tmp_path / "data", "--region", "eu-west-1")
    try:
        srv.region = "eu-west-1"
        s3 = srv.client()
        s3.create_bucket(Bucket="regional-ok",
                         CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        assert s3.get_bucket_location(Bucket="regional-ok")["LocationConstraint"] == "eu-west-1"
        with pytest.raises(ClientError) as e:
            s3.create_bucket(Bucket="regional-bad",
                             CreateBucketConfiguration={"LocationConstraint": "ap-south-1"})
        assert _code(e) == "IllegalLocationConstraintException"
        assert _status(e) == 400
        names = [b["Name"] for b in s3.list_buckets()["Buckets"]]
        assert names == ["regional-ok"]
    finally:
        stop_server(srv)


def test_create_existing_own_bucket_is_already_owned_by_you(s3, bucket):
    s3.put_object(Bucket=bucket, Key="keep", Body=b"x")
    with pytest.raises(ClientError) as e:
        s3.create_bucket(Bucket=bucket)
    assert _code(e) == "BucketAlreadyOwnedByYou"
    assert _status(e) == 409
    # The existing bucket and its content are untouched.
    assert s3.get_object(Bucket=bucket, Key="keep")["Body"].read() == b"x"


INVALID_NAMES = [
    "ab",                      # too short
    "a" * 64,                  # too long
    "UpperCaseName",
    "under_score_name",
    "trailing-dash-",
    ".leading-dot",
    "trailing-dot.",
    "two..dots",
    "192.168.5.4",             # formatted as an IP address
    "xn--reserved-prefix",
    "sthree-reserved",
    "reserved-suffix-s3alias",
    "reserved-suffix--ol-s3",
]


@pytest.mark.parametrize("name", INVALID_NAMES)
def test_create_bucket_invalid_name(s3, name):
    try:
        with pytest.raises(ClientError) as e:
            s3.create_bucket(Bucket=name)
        assert _code(e) == "InvalidBucketName"
        assert _status(e) == 400
        assert name not in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    finally:
        _delete_quietly(s3, name)


@pytest.mark.parametrize("name", ["abc", "a" * 63, "with.dots.ok", "digits-0123", "9starts-digit"])
def test_create_bucket_valid_edge_names(s3, name):
    name = name if len(name) >= 40 else name + "-" + uuid.uuid4().hex[:8]
    name = name[:63]
    try:
        s3.create_bucket(Bucket=name)
        s3.head_bucket(Bucket=name)
    finally:
        _delete_quietly(s3, name)


# ---------------------------------------------------------------- HeadBucket

def test_head_bucket_existing(s3, bucket):
    resp = s3.head_bucket(Bucket=bucket)
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert resp["ResponseMetadata"]["HTTPHeaders"]["x-amz-bucket-region"] == "us-east-1"


def test_head_bucket_missing(s3):
    with pytest.raises(ClientError) as e:
        s3.head_bucket(Bucket=_prefix() + "missing")
    assert _status(e) == 404
    assert _code(e) in ("404", "NoSuchBucket", "NotFound")


# ---------------------------------------------------------------- DeleteBucket

def test_delete_bucket_not_empty(s3, bucket):
    s3.put_object(Bucket=bucket, Key="a/b", Body=b"data")
    with pytest.raises(ClientError) as e:
        s3.delete_bucket(Bucket=bucket)
    assert _code(e) == "BucketNotEmpty"
    assert _status(e) == 409
    s3.head_bucket(Bucket=bucket)
    assert s3.get_object(Bucket=bucket, Key="a/b")["Body"].read() == b"data"


def test_delete_bucket_missing(s3):
    with pytest.raises(ClientError) as e:
        s3.delete_bucket(Bucket=_prefix() + "missing")
    assert _code(e) == "NoSuchBucket"
    assert _status(e) == 404


def test_delete_empty_bucket_then_it_is_gone(s3):
    name = _prefix() + "gone"
    s3.create_bucket(Bucket=name)
    s3.put_object(Bucket=name, Key="k", Body=b"1")
    s3.delete_object(Bucket=name, Key="k")
    resp = s3.delete_bucket(Bucket=name)
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(ClientError) as e:
        s3.head_bucket(Bucket=name)
    assert _status(e) == 404
    assert name not in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    # The name is free again.
    s3.create_bucket(Bucket=name)
    assert s3.list_objects_v2(Bucket=name)["KeyCount"] == 0
    s3.delete_bucket(Bucket=name)


# ---------------------------------------------------------------- GetBucketLocation

def test_get_bucket_location_us_east_1_is_null(s3, bucket):
    resp = s3.get_bucket_location(Bucket=bucket)
    assert resp["LocationConstraint"] is None


def test_get_bucket_location_missing_bucket(s3):
    with pytest.raises(ClientError) as e:
        s3.get_bucket_location(Bucket=_prefix() + "missing")
    assert _code(e) == "NoSuchBucket"
    assert _status(e) == 404
