"""Compute never turns what a principal may not read into something it can observe.

An UNCLASSIFIED user and a TOP SECRET-cleared user share an account and a bucket. The
low user's object trigger, cron array job, job listing and function calls must behave
as if the TOP SECRET objects (and the objects IAM refuses it) did not exist: no events,
no task names, no jobs, no functions.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
import uuid

import pytest

from tests.support import fixtures as functional
from tests.support.accounts import ALLOW_COMPUTE, ALLOW_S3, Account
from tests.support.iam import s3_for
from vallum.client import Client, VallumError

pytestmark = pytest.mark.skipif(bool(os.environ.get("VALLUM_TEST_ENDPOINT")),
                                reason="needs Vallum's admin API and data directory")

server = functional.server
TS, U = "TOP SECRET", "UNCLASSIFIED"
RECORDER = """
def handler(event, context):
    return [r["s3"]["object"]["key"] for r in event["Records"]]
"""


class World:
    def __init__(self, server) -> None:
        self.server = server
        self.bucket = "mac-" + uuid.uuid4().hex[:12]
        acct = Account(server)
        deny = {"Effect": "Deny", "Action": "s3:GetObject",
                "Resource": f"arn:aws:s3:::{self.bucket}/in/private/*"}
        self.low_key = acct.user("low" + uuid.uuid4().hex[:6], ALLOW_S3, ALLOW_COMPUTE, deny)
        self.high_key = acct.user("high" + uuid.uuid4().hex[:6], ALLOW_S3, ALLOW_COMPUTE,
                                  clearance=TS)
        self.low = Client(server.endpoint, *self.low_key, region=server.region)
        self.high = Client(server.endpoint, *self.high_key, region=server.region)
        self.low_s3 = s3_for(server, *self.low_key)
        self.high_s3 = s3_for(server, *self.high_key,
                              headers={"x-vallum-session-level": TS,
                                       "x-vallum-classification": TS})
        self.high_u_s3 = s3_for(server, *self.high_key,
                                headers={"x-vallum-session-level": U})
        self.low_s3.create_bucket(Bucket=self.bucket)

    def put_secret(self, key: str) -> None:
        self.high_s3.put_object(Bucket=self.bucket, Key=key, Body=b"ts")


@pytest.fixture(scope="module")
def world(server) -> World:
    return World(server)


def _keys_delivered(api: Client, fn: str, until: str, timeout: float = 30.0) -> list[str]:
    """Keys of every event ``fn`` received, once the event for ``until`` arrived (events are
    dispatched in order, so all earlier ones were settled by then)."""
    deadline = time.monotonic() + timeout
    while True:
        keys = []
        for j in api.jobs(limit=1000):
            if j["name"] == fn and j["state"] in ("SUCCEEDED", "FAILED"):
                keys += api.job(j["id"]).get("result", {}).get("result") or []
        if until in keys or time.monotonic() > deadline:
            return sorted(keys)
        time.sleep(0.1)


def test_object_triggers_hear_only_of_objects_their_principal_may_read(world):
    b = world.bucket
    low_fn, high_fn = "low" + uuid.uuid4().hex[:6], "high" + uuid.uuid4().hex[:6]
    world.low.create_function(low_fn, {"handler": "main.handler", "code": RECORDER})
    world.low.add_trigger({"bucket": b, "prefix": "in/", "function": low_fn,
                           "events": ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"]})
    high_ts = Client(world.server.endpoint, *world.high_key, region=world.server.region,
                     session_level=TS)
    high_ts.create_function(high_fn, {"handler": "main.handler", "code": RECORDER})
    high_ts.add_trigger({"bucket": b, "prefix": "in/", "function": high_fn})

    world.put_secret("in/secret.txt")                                     # MAC hides it
    world.high_u_s3.put_object(Bucket=b, Key="in/private/x.txt", Body=b"u")   # IAM hides it
    world.high_s3.delete_object(Bucket=b, Key="in/secret.txt")            # its delete too
    world.low_s3.put_object(Bucket=b, Key="in/open.txt", Body=b"u")
    world.put_secret("in/last-secret.txt")
    world.low_s3.put_object(Bucket=b, Key="in/last.txt", Body=b"u")

    assert _keys_delivered(world.low, low_fn, "in/last.txt") == ["in/last.txt", "in/open.txt"]
    # The TOP SECRET function (run at TOP SECRET) does hear of the secret objects.
    got = _keys_delivered(high_ts, high_fn, "in/last.txt")
    assert {"in/secret.txt", "in/last-secret.txt", "in/open.txt"} <= set(got), got


def test_array_jobs_and_listings_do_not_show_hidden_keys_or_jobs(world):
    b = world.bucket
    world.put_secret("arr/secret.txt")
    world.low_s3.put_object(Bucket=b, Key="arr/open.txt", Body=b"u")
    high_ts = Client(world.server.endpoint, *world.high_key, region=world.server.region,
                     session_level=TS)
    job = high_ts.submit({"runtime": "command", "command": ["true"], "name": "ts-array",
                          "array": f"s3://{b}/arr/", "output": f"s3://{b}/ts-out/"})
    assert {t["name"] for t in high_ts.tasks(job["id"])} == {"open.txt", "secret.txt"}
    # Same account, lower level: the job, its tasks and logs do not exist.
    assert job["id"] not in {j["id"] for j in world.low.jobs(limit=1000)}
    for call in (world.low.job, world.low.tasks, world.low.logs, world.low.cancel):
        with pytest.raises(VallumError) as exc:
            call(job["id"])
        assert (exc.value.status, exc.value.code) == (404, "NoSuchJob")
    with pytest.raises(VallumError) as exc:              # nor can a job depend on it
        world.low.submit({"runtime": "command", "command": ["true"], "depends_on": [job["id"]],
                          "output": f"s3://{b}/low-out/"})
    assert exc.value.message == f"depends_on: no such job {job['id']!r}"
    # An idempotency key reused at another level makes a new job, never answers with it.
    spec = {"runtime": "command", "command": ["true"], "output": f"s3://{b}/idem/",
            "idempotency_key": "nightly"}
    ts_job = high_ts.submit(spec)
    assert high_ts.submit(spec)["id"] == ts_job["id"]
    low_job = world.low.submit(spec)
    assert low_job["id"] != ts_job["id"] and low_job["idempotency_key"] == "nightly"
    # The low user's own array job over the same prefix sees only what it may read.
    mine = world.low.submit({"runtime": "command", "command": ["true"],
                             "array": f"s3://{b}/arr/", "output": f"s3://{b}/low-out/"})
    assert [t["name"] for t in world.low.tasks(mine["id"])] == ["open.txt"]
    high_ts.wait(job["id"], timeout=60)
    world.low.wait(mine["id"], timeout=60)


def test_cron_array_expansion_runs_as_its_principal(world, server):
    b = world.bucket
    world.put_secret("cron/secret.txt")
    world.high_u_s3.put_object(Bucket=b, Key="cron/private-ish.txt", Body=b"u")
    world.low_s3.put_object(Bucket=b, Key="cron/open.txt", Body=b"u")
    world.put_secret("cron/zz-secret.txt")
    name = "cron" + uuid.uuid4().hex[:6]
    trig = world.low.add_trigger({"kind": "cron", "schedule": "0 0 1 1 *", "job": {
        "runtime": "command", "command": ["true"], "name": name,
        "array": f"s3://{b}/cron/", "output": f"s3://{b}/cron-out/"}})
    with sqlite3.connect(server.data_dir / "meta.sqlite3") as conn:    # make it due now
        conn.execute("UPDATE compute_triggers SET next_run=1 WHERE id=?", (trig["id"],))
    deadline = time.monotonic() + 20
    while not (jobs := [j for j in world.low.jobs(limit=1000) if j["name"] == name]):
        assert time.monotonic() < deadline, "the cron job never started"
        time.sleep(0.2)
    assert sorted(t["name"] for t in world.low.tasks(jobs[0]["id"])) == [
        "open.txt", "private-ish.txt"]
    world.low.delete_trigger(trig["id"])
    world.low.wait(jobs[0]["id"], timeout=60)


def test_functions_above_the_session_level_do_not_exist_and_none_is_called_across_levels(world):
    high_ts = Client(world.server.endpoint, *world.high_key, region=world.server.region,
                     session_level=TS)
    ts_fn, u_fn = "tsf" + uuid.uuid4().hex[:6], "uf" + uuid.uuid4().hex[:6]
    high_ts.create_function(ts_fn, {"handler": "main.handler", "code": RECORDER})
    world.low.create_function(u_fn, {"handler": "main.handler", "code": RECORDER})
    assert ts_fn not in {f["name"] for f in world.low.functions()}
    for call in (world.low.function, world.low.invoke, world.low.delete_function):
        with pytest.raises(VallumError) as exc:
            call(ts_fn)
        assert (exc.value.status, exc.value.code) == (404, "NoSuchFunction")
    with pytest.raises(VallumError) as exc:                # TOP SECRET payload into U code
        high_ts.invoke(u_fn, {"Records": []})
    assert (exc.value.status, exc.value.code) == (403, "AccessDenied")
    with pytest.raises(VallumError) as exc:    # nor a TOP SECRET trigger firing U code
        high_ts.add_trigger({"bucket": world.bucket, "prefix": "x/", "function": u_fn})
    assert (exc.value.status, exc.value.code) == (403, "AccessDenied")
    assert high_ts.invoke(ts_fn, {"Records": [{"s3": {"object": {"key": "k"}}}]}) == {
        "result": ["k"]}
    assert json.dumps(world.low.invoke(u_fn, {"Records": []})) == '{"result": []}'
