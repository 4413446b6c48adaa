"""Lifecycle: configuration calls and bad input, then the worker applying rules while
the server's injected clock is moved forward (``vallum serve --test-clock``)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pytest
from botocore.exceptions import ClientError

from tests.support.lifecycle import DAY, sweep_at
from tests.support.server import code


def state(c3, bucket: str) -> dict[str, list[tuple[str, str]]]:
    """key -> [(kind, version id)] newest first."""
    out: dict[str, list[tuple[str, str, datetime]]] = {}
    listing = c3.list_object_versions(Bucket=bucket)
    for v in listing.get("Versions", []):
        out.setdefault(v["Key"], []).append(("v", v["VersionId"], v["LastModified"]))
    for m in listing.get("DeleteMarkers", []):
        out.setdefault(m["Key"], []).append(("dm", m["VersionId"], m["LastModified"]))
    return {k: [(kind, vid) for kind, vid, _ in sorted(vs, key=lambda e: e[2], reverse=True)]
            for k, vs in out.items()}


RULES = {"Rules": [
    {"ID": "logs", "Status": "Enabled", "Filter": {"Prefix": "logs/"},
     "Expiration": {"Days": 1}, "NoncurrentVersionExpiration": {"NoncurrentDays": 1}},
    {"ID": "temp", "Status": "Enabled", "Filter": {"Tag": {"Key": "temp", "Value": "yes"}},
     "Expiration": {"Days": 2}},
    {"ID": "markers", "Status": "Enabled", "Filter": {"Prefix": "gone/"},
     "Expiration": {"ExpiredObjectDeleteMarker": True}},
    {"ID": "uploads", "Status": "Enabled", "Filter": {"Prefix": ""},
     "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1}},
    {"ID": "off", "Status": "Disabled", "Filter": {"Prefix": "keep/"}, "Expiration": {"Days": 1}},
]}


def test_lifecycle_configuration_and_bad_input(s3, bucket):
    with pytest.raises(ClientError) as exc:
        s3.get_bucket_lifecycle_configuration(Bucket=bucket)
    assert code(exc) == "NoSuchLifecycleConfiguration"
    s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration=RULES)
    got = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    assert [r["ID"] for r in got] == ["logs", "temp", "markers", "uploads", "off"]
    assert got[0]["NoncurrentVersionExpiration"] == {"NoncurrentDays": 1}
    bad_cases = [
        ({"Rules": [{"ID": "a", "Status": "Maybe", "Filter": {"Prefix": ""}, "Expiration": {"Days": 1}}]}, "MalformedXML"),
        ({"Rules": [{"ID": "a", "Status": "Enabled", "Filter": {"Prefix": ""}, "Expiration": {"Days": 0}}]}, "InvalidArgument"),
        ({"Rules": [{"ID": "a", "Status": "Enabled", "Filter": {"Prefix": ""},
                     "Expiration": {"Date": datetime(2030, 1, 1, 12, tzinfo=timezone.utc)}}]}, "InvalidArgument"),
        ({"Rules": [{"ID": "a", "Status": "Enabled", "Filter": {"Prefix": ""}, "Expiration": {"Days": 1}},
                    {"ID": "a", "Status": "Enabled", "Filter": {"Prefix": "x"}, "Expiration": {"Days": 1}}]}, "InvalidArgument"),
        ({"Rules": [{"ID": "a", "Status": "Enabled", "Filter": {"Prefix": ""}}]}, "InvalidRequest"),
        ({"Rules": [{"ID": "a", "Status": "Enabled", "Filter": {"Tag": {"Key": "k", "Value": "v"}},
                     "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1}}]}, "InvalidRequest"),
    ]
    for bad, want in bad_cases:
        with pytest.raises(ClientError) as exc:
            s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration=bad)
        assert code(exc) == want, bad
    assert len(s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]) == 5
    s3.delete_bucket_lifecycle(Bucket=bucket)
    with pytest.raises(ClientError) as exc:
        s3.get_bucket_lifecycle_configuration(Bucket=bucket)
    assert code(exc) == "NoSuchLifecycleConfiguration"


def test_worker_expires_exactly_what_is_due_and_keeps_locked(clocked, c3):
    bucket = "lc-" + uuid.uuid4().hex[:16]
    c3.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    far = datetime.now(timezone.utc) + timedelta(days=365)
    a1 = c3.put_object(Bucket=bucket, Key="logs/a", Body=b"1")["VersionId"]
    c3.put_object(Bucket=bucket, Key="logs/a", Body=b"2")
    locked = c3.put_object(Bucket=bucket, Key="logs/locked", Body=b"1", ObjectLockMode="COMPLIANCE",
                           ObjectLockRetainUntilDate=far)["VersionId"]
    c3.put_object(Bucket=bucket, Key="logs/locked", Body=b"2")
    held = c3.put_object(Bucket=bucket, Key="logs/held", Body=b"1", ObjectLockLegalHoldStatus="ON")["VersionId"]
    c3.delete_object(Bucket=bucket, Key="logs/held")
    keep = c3.put_object(Bucket=bucket, Key="keep/b", Body=b"k")["VersionId"]
    temp = c3.put_object(Bucket=bucket, Key="t", Body=b"t", Tagging="temp=yes")["VersionId"]
    t2 = c3.put_object(Bucket=bucket, Key="t2", Body=b"t", Tagging="temp=no")["VersionId"]
    g = c3.put_object(Bucket=bucket, Key="gone/x", Body=b"g")["VersionId"]
    c3.delete_object(Bucket=bucket, Key="gone/x")
    c3.delete_object(Bucket=bucket, Key="gone/x", VersionId=g)
    upload = c3.create_multipart_upload(Bucket=bucket, Key="big")["UploadId"]
    c3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration=RULES)
    before = state(c3, bucket)

    # Nothing is due yet but the expired delete marker (due at any sweep, as on AWS; whether
    # this sweep_at waits for a sweep depends on the clock the test before left behind).
    sweep_at(clocked, 0)

    def but_marker(s: dict) -> dict:
        return {k: v for k, v in s.items() if k != "gone/x"}
    assert but_marker(state(c3, bucket)) == but_marker(before)
    assert len(c3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])) == 1

    # Three days on; several sweeps so that cascades (expire, then noncurrent) settle.
    for extra in (0, 1, 2):
        sweep_at(clocked, 3 * DAY + extra)
    # logs/a: current expired behind a marker stamped with the worker's clock (day 3), so
    # the version it shadows is noncurrent only from then on; the older one is expired.
    assert [kind for kind, _ in state(c3, bucket)["logs/a"]] == ["dm", "v"]
    sweep_at(clocked, 5 * DAY + 60)            # a noncurrent day after the marker (midnight UTC)
    after = state(c3, bucket)
    # logs/a: now both old versions expired as noncurrent.
    assert [kind for kind, _ in after["logs/a"]] == ["dm"]
    assert a1 not in [vid for _, vid in after["logs/a"]]
    # logs/locked: the COMPLIANCE-locked version stays; the unlocked one went.
    assert [kind for kind, _ in after["logs/locked"]] == ["dm", "v"]
    assert after["logs/locked"][1][1] == locked
    # logs/held: under legal hold, kept behind its marker.
    assert after["logs/held"][1] == ("v", held)
    assert after["keep/b"] == [("v", keep)]                  # disabled rule
    assert after["t"][0][0] == "dm" and after["t"][1] == ("v", temp)   # tag rule: expired, no noncurrent rule
    assert after["t2"] == [("v", t2)]                        # tag does not match
    assert "gone/x" not in after                             # expired delete marker removed
    assert c3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    with pytest.raises(ClientError):
        c3.list_parts(Bucket=bucket, Key="big", UploadId=upload)
    assert c3.get_object(Bucket=bucket, Key="logs/locked", VersionId=locked)["Body"].read() == b"1"
    sweep_at(clocked, 0)
