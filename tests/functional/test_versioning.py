"""Versioning: bucket state, version ids, delete markers, versionId on GET/HEAD/DELETE/Copy,
and ListObjectVersions pagination checked against a model."""

from __future__ import annotations

import uuid

import pytest
from botocore.exceptions import ClientError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.server import code


@pytest.fixture
def vbucket(s3, bucket):
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    yield bucket
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        for v in page.get("Versions", []) + page.get("DeleteMarkers", []):
            s3.delete_object(Bucket=bucket, Key=v["Key"], VersionId=v["VersionId"])


def test_versioning_state_transitions(s3, bucket):
    assert "Status" not in s3.get_bucket_versioning(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Suspended"})
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Suspended"


def test_bad_versioning_document_changes_nothing(s3, bucket):
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    with pytest.raises(ClientError) as exc:
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Off"})
    assert code(exc) == "MalformedXML"
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"


def test_versions_get_head_delete(s3, vbucket):
    v1 = s3.put_object(Bucket=vbucket, Key="k", Body=b"one")["VersionId"]
    v2 = s3.put_object(Bucket=vbucket, Key="k", Body=b"two")["VersionId"]
    assert v1 != v2 and len(v1) == 32
    assert s3.get_object(Bucket=vbucket, Key="k")["Body"].read() == b"two"
    got = s3.get_object(Bucket=vbucket, Key="k", VersionId=v1)
    assert got["Body"].read() == b"one" and got["VersionId"] == v1
    assert s3.head_object(Bucket=vbucket, Key="k", VersionId=v2)["ContentLength"] == 3
    marker = s3.delete_object(Bucket=vbucket, Key="k")
    assert marker["DeleteMarker"] is True
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=vbucket, Key="k")
    assert code(exc) == "NoSuchKey"
    assert exc.value.response["ResponseMetadata"]["HTTPHeaders"]["x-amz-delete-marker"] == "true"
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=vbucket, Key="k", VersionId=marker["VersionId"])
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 405
    # Removing the marker brings the object back.
    out = s3.delete_object(Bucket=vbucket, Key="k", VersionId=marker["VersionId"])
    assert out["DeleteMarker"] is True and out["VersionId"] == marker["VersionId"]
    assert s3.get_object(Bucket=vbucket, Key="k")["Body"].read() == b"two"
    s3.delete_object(Bucket=vbucket, Key="k", VersionId=v2)
    assert s3.get_object(Bucket=vbucket, Key="k")["Body"].read() == b"one"


def test_invalid_and_missing_version_ids(s3, vbucket):
    s3.put_object(Bucket=vbucket, Key="k", Body=b"x")
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=vbucket, Key="k", VersionId="not-a-version")
    assert code(exc) == "InvalidArgument"
    with pytest.raises(ClientError) as exc:
        s3.delete_object(Bucket=vbucket, Key="k", VersionId="bad")
    assert code(exc) == "InvalidArgument"
    missing = "A" * 32
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=vbucket, Key="k", VersionId=missing)
    assert code(exc) == "NoSuchVersion"
    assert len(s3.list_object_versions(Bucket=vbucket)["Versions"]) == 1


def test_null_version_and_suspended(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"pre")
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    v1 = s3.put_object(Bucket=bucket, Key="k", Body=b"v1")["VersionId"]
    assert s3.get_object(Bucket=bucket, Key="k", VersionId="null")["Body"].read() == b"pre"
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Suspended"})
    assert s3.put_object(Bucket=bucket, Key="k", Body=b"s")["VersionId"] == "null"
    versions = s3.list_object_versions(Bucket=bucket)["Versions"]
    assert [(v["VersionId"], v["IsLatest"]) for v in versions] == [("null", True), (v1, False)]
    out = s3.delete_object(Bucket=bucket, Key="k")
    assert out["DeleteMarker"] is True and out["VersionId"] == "null"
    listing = s3.list_object_versions(Bucket=bucket)
    assert [v["VersionId"] for v in listing["Versions"]] == [v1]
    assert [m["VersionId"] for m in listing["DeleteMarkers"]] == ["null"]
    for v in listing["Versions"] + listing["DeleteMarkers"]:
        s3.delete_object(Bucket=bucket, Key="k", VersionId=v["VersionId"])


def test_copy_from_version(s3, vbucket):
    v1 = s3.put_object(Bucket=vbucket, Key="src", Body=b"first")["VersionId"]
    s3.put_object(Bucket=vbucket, Key="src", Body=b"second")
    out = s3.copy_object(Bucket=vbucket, Key="dst", CopySource={"Bucket": vbucket, "Key": "src", "VersionId": v1})
    assert out["CopySourceVersionId"] == v1 and out["VersionId"]
    assert s3.get_object(Bucket=vbucket, Key="dst")["Body"].read() == b"first"
    with pytest.raises(ClientError) as exc:
        s3.copy_object(Bucket=vbucket, Key="dst", CopySource={"Bucket": vbucket, "Key": "src", "VersionId": "B" * 32})
    assert code(exc) == "NoSuchVersion"


def test_multidelete_versions(s3, vbucket):
    v1 = s3.put_object(Bucket=vbucket, Key="a", Body=b"1")["VersionId"]
    out = s3.delete_objects(Bucket=vbucket, Delete={"Objects": [{"Key": "a"}, {"Key": "a", "VersionId": v1}]})
    assert len(out["Deleted"]) == 2
    listing = s3.list_object_versions(Bucket=vbucket)
    assert "Versions" not in listing and len(listing["DeleteMarkers"]) == 1


def test_list_versions_delimiter_and_marker_errors(s3, vbucket):
    for key in ("a/1", "a/2", "b", "c/x"):
        s3.put_object(Bucket=vbucket, Key=key, Body=b"x")
    out = s3.list_object_versions(Bucket=vbucket, Delimiter="/")
    assert [p["Prefix"] for p in out["CommonPrefixes"]] == ["a/", "c/"]
    assert [v["Key"] for v in out["Versions"]] == ["b"]
    with pytest.raises(ClientError) as exc:
        s3.list_object_versions(Bucket=vbucket, VersionIdMarker="A" * 32)
    assert code(exc) == "InvalidArgument"


# -- pagination against a model ------------------------------------------------------
KEYS = ["a", "a/b", "b", "b/c/d", "c"]
ops = st.lists(st.tuples(st.sampled_from(["put", "delete"]), st.sampled_from(KEYS)), min_size=1, max_size=12)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=ops, page=st.integers(1, 4), delimiter=st.sampled_from(["", "/"]))
def test_versions_pagination_matches_model(s3, ops, page, delimiter):
    name = "t-" + uuid.uuid4().hex[:20]
    s3.create_bucket(Bucket=name)
    s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    model: dict[str, list[str]] = {}          # key -> version ids, newest first
    try:
        for op, key in ops:
            if op == "put":
                vid = s3.put_object(Bucket=name, Key=key, Body=b"x")["VersionId"]
            else:
                vid = s3.delete_object(Bucket=name, Key=key)["VersionId"]
            model.setdefault(key, []).insert(0, vid)
        expected: list[tuple[str, str]] = []
        prefixes: list[str] = []
        for key in sorted(model):
            if delimiter and delimiter in key:
                p = key[:key.index(delimiter) + 1]
                if p not in prefixes:
                    prefixes.append(p)
                continue
            expected += [(key, v) for v in model[key]]
        got: list[tuple[str, str]] = []
        got_prefixes: list[str] = []
        kwargs = {"Bucket": name, "MaxKeys": page, "Delimiter": delimiter}
        for _ in range(100):
            out = s3.list_object_versions(**kwargs)
            entries = out.get("Versions", []) + out.get("DeleteMarkers", [])
            got += [(e["Key"], e["VersionId"]) for e in sorted(entries, key=lambda e: (e["Key"], model[e["Key"]].index(e["VersionId"])))]
            got_prefixes += [p["Prefix"] for p in out.get("CommonPrefixes", [])]
            assert len(entries) + len(out.get("CommonPrefixes", [])) <= page
            if not out["IsTruncated"]:
                break
            kwargs["KeyMarker"] = out["NextKeyMarker"]
            if out.get("NextVersionIdMarker"):
                kwargs["VersionIdMarker"] = out["NextVersionIdMarker"]
            else:
                kwargs.pop("VersionIdMarker", None)
        assert got == expected
        assert got_prefixes == prefixes
    finally:
        for key, vids in model.items():
            for vid in vids:
                s3.delete_object(Bucket=name, Key=key, VersionId=vid)
        s3.delete_bucket(Bucket=name)
