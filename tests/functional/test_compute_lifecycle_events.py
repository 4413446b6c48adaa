"""Lifecycle expirations fire triggers under AWS's own event names, through the real server
with its clock moved forward (``vallum serve --test-clock``): LifecycleExpiration:Delete and
LifecycleExpiration:DeleteMarkerCreated reach ``s3:LifecycleExpiration:*`` triggers, and, as
in AWS, never ``s3:ObjectRemoved:*`` ones."""

from __future__ import annotations

import time
import uuid

from tests.support.compute import client_of
from tests.support.lifecycle import DAY, sweep_at

RECORDER = "def handler(event, context):\n    return event\n"
EXPIRE = {"Rules": [{"ID": "logs", "Status": "Enabled", "Filter": {"Prefix": "logs/"},
                     "Expiration": {"Days": 1},
                     "NoncurrentVersionExpiration": {"NoncurrentDays": 1}}]}


def records(api, fn: str, n: int, timeout: float = 30.0) -> list[dict]:
    """The S3 event records ``fn`` was invoked with, once at least ``n`` arrived."""
    deadline = time.monotonic() + timeout
    while True:
        done = [j for j in api.jobs(limit=1000) if j["name"] == fn and j["state"] == "SUCCEEDED"]
        if len(done) >= n or time.monotonic() > deadline:
            return [r for j in done for r in api.job(j["id"])["result"]["result"]["Records"]]
        time.sleep(0.1)


def seen(recs: list[dict]) -> set[tuple[str, str, str, str | None]]:
    return {(r["eventName"], r["s3"]["bucket"]["name"], r["s3"]["object"]["key"],
             r["s3"]["object"].get("versionId")) for r in recs}


def test_expirations_fire_lifecycle_triggers_and_not_object_removed(clocked, c3):
    api = client_of(clocked)
    plain, versioned = ("lce-" + uuid.uuid4().hex[:12] for _ in range(2))
    c3.create_bucket(Bucket=plain)
    c3.create_bucket(Bucket=versioned)
    c3.put_bucket_versioning(Bucket=versioned, VersioningConfiguration={"Status": "Enabled"})
    lc, removed = "lc" + uuid.uuid4().hex[:8], "rm" + uuid.uuid4().hex[:8]
    for fn in (lc, removed):
        api.create_function(fn, {"handler": "main.handler", "code": RECORDER})
    api.add_trigger({"bucket": plain, "function": lc, "events": ["s3:LifecycleExpiration:*"]})
    api.add_trigger({"bucket": plain, "function": removed, "events": ["s3:ObjectRemoved:*"]})
    # The same through a bucket notification configuration, with the two exact names.
    c3.put_bucket_notification_configuration(Bucket=versioned, NotificationConfiguration={
        "LambdaFunctionConfigurations": [
            {"Id": "lc", "LambdaFunctionArn": lc,
             "Events": ["s3:LifecycleExpiration:Delete", "s3:LifecycleExpiration:DeleteMarkerCreated"]},
            {"Id": "rm", "LambdaFunctionArn": removed, "Events": ["s3:ObjectRemoved:*"]}]})
    for key in ("logs/a", "logs/b", "keep/c"):
        c3.put_object(Bucket=plain, Key=key, Body=b"x")
    v1 = c3.put_object(Bucket=versioned, Key="logs/v", Body=b"1")["VersionId"]
    v2 = c3.put_object(Bucket=versioned, Key="logs/v", Body=b"2")["VersionId"]
    for bucket in (plain, versioned):
        c3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration=EXPIRE)
    # A user's delete is an ObjectRemoved event, not a lifecycle one.
    c3.delete_object(Bucket=plain, Key="keep/c")
    assert seen(records(api, removed, 1)) == {("ObjectRemoved:Delete", plain, "keep/c", None)}

    sweep_at(clocked, 0)
    assert records(api, lc, 1, timeout=1.0) == []            # nothing due, nothing announced
    sweep_at(clocked, 3 * DAY)
    sweep_at(clocked, 3 * DAY + 1)
    listing = c3.list_object_versions(Bucket=versioned, Prefix="logs/v")
    (marker,) = [m["VersionId"] for m in listing.get("DeleteMarkers", [])]
    assert [v["VersionId"] for v in listing["Versions"]] == [v2]     # v1 expired as noncurrent
    want = {("LifecycleExpiration:Delete", plain, "logs/a", None),
            ("LifecycleExpiration:Delete", plain, "logs/b", None),
            ("LifecycleExpiration:DeleteMarkerCreated", versioned, "logs/v", marker),
            ("LifecycleExpiration:Delete", versioned, "logs/v", v1)}
    got = records(api, lc, len(want))
    assert seen(got) == want and len(got) == len(want)       # each change announced once
    for rec in got:
        assert rec["eventVersion"] == "2.3" and rec["eventSource"] == "aws:s3"
        assert rec["userIdentity"]["principalId"] == "s3.amazonaws.com"
        assert rec["requestParameters"]["sourceIPAddress"] == "s3.amazonaws.com"
        assert "size" not in rec["s3"]["object"] and "eTag" not in rec["s3"]["object"]
    assert {r["s3"]["configurationId"] for r in got if r["s3"]["bucket"]["name"] == versioned} \
        == {f"n-{versioned}-lc"}
    # ObjectRemoved:* triggers heard only the user's delete.
    time.sleep(1.0)
    assert len(records(api, removed, 99, timeout=0.1)) == 1
    sweep_at(clocked, 0)
    for fn in (lc, removed):
        api.delete_function(fn)
