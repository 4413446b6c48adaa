"""Triggers through the real server: functions fired by uploads and deletes (AWS S3 event
JSON, prefix/suffix filters), bucket notification configuration, and cron schedules."""

from __future__ import annotations

import hashlib
import os
import statistics
import subprocess
import sys
import time
import uuid

import pytest

from tests.support.compute import client_of
from vallum.client import VallumError

RECORDER = """
import time
def handler(event, context):
    return {"event": event, "started": time.time()}
"""


@pytest.fixture(scope="module")
def api(server):
    return client_of(server)


@pytest.fixture
def fn(api):
    name = "rec" + uuid.uuid4().hex[:8]
    api.create_function(name, {"handler": "main.handler", "code": RECORDER})
    yield name
    api.delete_function(name)


def invocations(api, fn, n, timeout=30.0):
    deadline = time.monotonic() + timeout
    while True:
        jobs = [j for j in api.jobs(limit=1000) if j["name"] == fn]
        done = [j for j in jobs if j["state"] == "SUCCEEDED"]
        if len(done) >= n or time.monotonic() > deadline:
            return [api.job(j["id"]) for j in done]
        time.sleep(0.05)


def test_uploads_fire_the_function_with_the_s3_event(api, s3, bucket, fn):
    trig = api.add_trigger({"bucket": bucket, "prefix": "incoming/", "suffix": ".csv",
                            "events": ["s3:ObjectCreated:*"], "function": fn})
    assert trig["id"] in {t["id"] for t in api.triggers()}
    s3.put_object(Bucket=bucket, Key="incoming/a b.csv", Body=b"1,2,3")
    s3.put_object(Bucket=bucket, Key="incoming/skip.txt", Body=b"x")       # suffix filter
    s3.put_object(Bucket=bucket, Key="other/b.csv", Body=b"x")             # prefix filter
    (job,) = invocations(api, fn, 1)
    time.sleep(0.5)
    assert len(invocations(api, fn, 1)) == 1
    (rec,) = job["result"]["result"]["event"]["Records"]
    assert rec["eventSource"] == "aws:s3" and rec["eventVersion"] == "2.1"
    assert rec["eventName"] == "ObjectCreated:Put"
    assert rec["s3"]["bucket"]["name"] == bucket
    assert rec["s3"]["bucket"]["arn"] == f"arn:aws:s3:::{bucket}"
    assert rec["s3"]["object"]["key"] == "incoming/a+b.csv"              # URL-encoded, as AWS
    assert rec["s3"]["object"]["size"] == 5
    assert rec["s3"]["object"]["eTag"] == hashlib.md5(b"1,2,3").hexdigest()
    assert rec["s3"]["configurationId"] == trig["id"]
    assert rec["eventTime"].endswith("Z")
    api.delete_trigger(trig["id"])
    s3.put_object(Bucket=bucket, Key="incoming/late.csv", Body=b"x")
    time.sleep(0.5)
    assert len(invocations(api, fn, 1, timeout=0.5)) == 1


def test_removal_events(api, s3, bucket, fn):
    s3.put_object(Bucket=bucket, Key="gone.txt", Body=b"x")
    trig = api.add_trigger({"bucket": bucket, "events": ["s3:ObjectRemoved:*"], "function": fn})
    s3.delete_object(Bucket=bucket, Key="gone.txt")
    (job,) = invocations(api, fn, 1)
    rec = job["result"]["result"]["event"]["Records"][0]
    assert rec["eventName"] == "ObjectRemoved:Delete" and "size" not in rec["s3"]["object"]
    api.delete_trigger(trig["id"])


def test_copy_multipart_and_multi_delete_events(api, s3, bucket, fn):
    s3.put_object(Bucket=bucket, Key="src.bin", Body=b"copied")
    for k in ("d1", "d2"):
        s3.put_object(Bucket=bucket, Key=f"ev/{k}", Body=b"x")
    trig = api.add_trigger({"bucket": bucket, "prefix": "ev/", "function": fn,
                            "events": ["s3:ObjectCreated:Copy",
                                       "s3:ObjectCreated:CompleteMultipartUpload",
                                       "s3:ObjectRemoved:*"]})
    s3.copy_object(Bucket=bucket, Key="ev/copy.bin", CopySource=f"{bucket}/src.bin")
    up = s3.create_multipart_upload(Bucket=bucket, Key="ev/big.bin")
    part = s3.upload_part(Bucket=bucket, Key="ev/big.bin", UploadId=up["UploadId"],
                          PartNumber=1, Body=b"part")
    s3.complete_multipart_upload(Bucket=bucket, Key="ev/big.bin", UploadId=up["UploadId"],
                                 MultipartUpload={"Parts": [{"PartNumber": 1,
                                                             "ETag": part["ETag"]}]})
    s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "ev/d1"}, {"Key": "ev/d2"},
                                                         {"Key": "ev/never-existed"}]})
    s3.put_object(Bucket=bucket, Key="ev/plain-put", Body=b"x")          # not subscribed
    invocations(api, fn, 4)
    time.sleep(0.5)                                    # and nothing more arrives
    jobs = invocations(api, fn, 5, timeout=0.3)
    seen = sorted((r["eventName"], r["s3"]["object"]["key"]) for j in jobs
                  for r in j["result"]["result"]["event"]["Records"])
    # Unversioned bucket: deleting a key removes its null version (one event per key that
    # existed; none for a key that never did).
    assert seen == [("ObjectCreated:CompleteMultipartUpload", "ev/big.bin"),
                    ("ObjectCreated:Copy", "ev/copy.bin"),
                    ("ObjectRemoved:Delete", "ev/d1"), ("ObjectRemoved:Delete", "ev/d2")]
    copy = next(r for j in jobs for r in j["result"]["result"]["event"]["Records"]
                if r["eventName"] == "ObjectCreated:Copy")
    assert copy["s3"]["object"]["size"] == 6
    api.delete_trigger(trig["id"])


def test_no_event_for_a_refused_write(api, s3, bucket, fn):
    s3.put_object(Bucket=bucket, Key="k", Body=b"v1")
    trig = api.add_trigger({"bucket": bucket, "function": fn})
    with pytest.raises(Exception):
        s3.put_object(Bucket=bucket, Key="k", Body=b"v2", IfNoneMatch="*")   # 412: not written
    time.sleep(0.7)
    assert invocations(api, fn, 1, timeout=0.3) == []
    api.delete_trigger(trig["id"])


def test_bucket_notification_configuration_targets_a_function(api, s3, bucket, fn):
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={
        "LambdaFunctionConfigurations": [{
            "Id": "n1", "LambdaFunctionArn": f"arn:aws:lambda:us-east-1:000000000000:function:{fn}",
            "Events": ["s3:ObjectCreated:Put"],
            "Filter": {"Key": {"FilterRules": [{"Name": "suffix", "Value": ".jpg"}]}}}]})
    got = s3.get_bucket_notification_configuration(Bucket=bucket)
    assert got["LambdaFunctionConfigurations"][0]["Events"] == ["s3:ObjectCreated:Put"]
    s3.put_object(Bucket=bucket, Key="pic.jpg", Body=b"jpeg")
    (job,) = invocations(api, fn, 1)
    assert job["result"]["result"]["event"]["Records"][0]["s3"]["configurationId"] == f"n-{bucket}-n1"
    # Replacing the configuration with an empty one removes the trigger.
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={})
    assert "LambdaFunctionConfigurations" not in s3.get_bucket_notification_configuration(Bucket=bucket)
    assert not [t for t in api.triggers() if t.get("bucket") == bucket]


def test_notification_to_unknown_function_or_sqs_is_refused(s3, bucket):
    with pytest.raises(Exception) as exc:
        s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={
            "LambdaFunctionConfigurations": [{"LambdaFunctionArn": "no-such-fn",
                                              "Events": ["s3:ObjectCreated:*"]}]})
    assert "InvalidArgument" in str(exc.value)
    with pytest.raises(Exception) as exc:
        s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={
            "QueueConfigurations": [{"QueueArn": "arn:aws:sqs:us-east-1:1:q",
                                     "Events": ["s3:ObjectCreated:*"]}]})
    assert "InvalidArgument" in str(exc.value)


def test_trigger_latency(api, s3, bucket, fn):
    api.add_trigger({"bucket": bucket, "prefix": "lat/", "function": fn})
    acked = {}
    for i in range(15):
        key = f"lat/{i}"
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
        acked[key] = time.time()
        time.sleep(0.05)
    jobs = invocations(api, fn, 15)
    lat = sorted(j["result"]["result"]["started"] - acked[j["result"]["result"]["event"]["Records"]
                 [0]["s3"]["object"]["key"]] for j in jobs)
    p50 = statistics.median(lat)
    print(f"\ntrigger latency (PUT acknowledged -> handler start): p50 {p50 * 1000:.0f} ms, "
          f"max {lat[-1] * 1000:.0f} ms")
    assert p50 < 1.0


def test_cron_schedule_starts_jobs(api, bucket):
    trig = api.add_trigger({"kind": "cron", "schedule": "* * * * *",
                            "job": {"runtime": "python", "code": "print('tick')",
                                    "output": f"s3://{bucket}/cron/"}})
    assert trig["next_run"] > time.time()
    with pytest.raises(VallumError):
        api.add_trigger({"kind": "cron", "schedule": "61 * * * *",
                         "job": {"runtime": "python", "code": "", "output": f"s3://{bucket}/c/"}})
    api.delete_trigger(trig["id"])


@pytest.mark.parametrize("doc, words", [
    ({"bucket": "no-such-bucket-zz", "function": "x"}, "no such bucket"),
    ({"bucket": "BUCKET", "function": "no-such-function"}, "no such function"),
    ({"bucket": "BUCKET", "function": "FN", "events": ["s3:Nope"]}, "events"),
])
def test_bad_triggers_are_refused(api, bucket, fn, doc, words):
    doc = {k: (v.replace("BUCKET", bucket).replace("FN", fn) if isinstance(v, str) else v)
           for k, v in doc.items()}
    with pytest.raises(VallumError) as exc:
        api.add_trigger(doc)
    assert words in exc.value.message.lower()


def _fn_rm(server, name: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, VALLUM_ENDPOINT=server.endpoint, AWS_ACCESS_KEY_ID=server.access_key,
               AWS_SECRET_ACCESS_KEY=server.secret_key)
    return subprocess.run([sys.executable, "-m", "vallum", "fn", "rm", name], env=env,
                          capture_output=True, text=True, timeout=60)


def test_deleting_a_function_deletes_its_triggers_and_notification_entries(server, api, s3, s3b):
    bucket, solo = s3b
    victim, kept = "gone" + uuid.uuid4().hex[:8], "kept" + uuid.uuid4().hex[:8]
    for name in (victim, kept):
        api.create_function(name, {"handler": "main.handler", "code": RECORDER})
    arn = f"arn:aws:lambda:us-east-1:000000000000:function:{victim}"
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={
        "LambdaFunctionConfigurations": [
            {"Id": "to-victim", "LambdaFunctionArn": arn, "Events": ["s3:ObjectCreated:*"]},
            {"Id": "to-kept", "LambdaFunctionArn": kept, "Events": ["s3:ObjectCreated:Put"],
             "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "n/"}]}}}]})
    s3.put_bucket_notification_configuration(Bucket=solo, NotificationConfiguration={
        "LambdaFunctionConfigurations": [{"Id": "only", "LambdaFunctionArn": f"arn:vallum:function:{victim}",
                                          "Events": ["s3:ObjectRemoved:*"]}]})
    by_api = api.add_trigger({"bucket": bucket, "prefix": "a/", "function": victim})
    other = api.add_trigger({"bucket": bucket, "prefix": "a/", "function": kept})
    cron = api.add_trigger({"kind": "cron", "schedule": "0 0 1 1 *",
                            "job": {"runtime": "python", "code": "", "output": f"s3://{bucket}/c/"}})
    before = {t["id"] for t in api.triggers()}
    victims = {by_api["id"], f"n-{bucket}-to-victim", f"n-{solo}-only"}
    assert victims | {other["id"], f"n-{bucket}-to-kept", cron["id"]} <= before

    done = _fn_rm(server, victim)                       # the CLI, through the real server
    assert done.returncode == 0, done.stderr
    assert f"deleted function {victim} and 3 trigger(s)" in done.stdout
    after = {t["id"] for t in api.triggers()}
    assert not victims & after
    assert {other["id"], f"n-{bucket}-to-kept", cron["id"]} <= after
    assert not [t for t in api.triggers() if t.get("function") == victim]
    # The bucket documents lost exactly the entries that targeted the function.
    (left,) = s3.get_bucket_notification_configuration(Bucket=bucket)["LambdaFunctionConfigurations"]
    assert left["Id"] == "to-kept" and left["LambdaFunctionArn"] == kept
    assert left["Events"] == ["s3:ObjectCreated:Put"]
    assert [(r["Name"].lower(), r["Value"]) for r in left["Filter"]["Key"]["FilterRules"]] \
        == [("prefix", "n/")]
    assert "LambdaFunctionConfigurations" not in s3.get_bucket_notification_configuration(Bucket=solo)
    # A new function under the old name inherits none of the old routes.
    api.create_function(victim, {"handler": "main.handler", "code": RECORDER})
    s3.put_object(Bucket=bucket, Key="a/x", Body=b"1")
    s3.put_object(Bucket=bucket, Key="n/y", Body=b"2")
    s3.put_object(Bucket=solo, Key="z", Body=b"3")
    s3.delete_object(Bucket=solo, Key="z")
    assert len(invocations(api, kept, 2)) == 2
    time.sleep(1.0)
    assert invocations(api, victim, 1, timeout=0.2) == []
    out = api.delete_function(victim)
    assert out == {"deleted": victim, "triggers_deleted": []}
    assert _fn_rm(server, victim).returncode == 1           # already gone: NoSuchFunction
    api.delete_function(kept)
    api.delete_trigger(cron["id"])
    assert "LambdaFunctionConfigurations" not in s3.get_bucket_notification_configuration(Bucket=bucket)


@pytest.fixture
def s3b(s3):
    names = ["t-" + uuid.uuid4().hex[:20] for _ in range(2)]
    for n in names:
        s3.create_bucket(Bucket=n)
    yield names
    from tests.support.server import empty_and_delete
    for n in names:
        empty_and_delete(s3, n)
