"""A task's credentials live exactly as long as the task.

A hostile task leaks its own AWS_* variables (reversed, so log redaction does not catch
them). The leaked key must work while the task runs and be refused as soon as the job
has ended, or has been cancelled, long before the credentials would expire.
"""

from __future__ import annotations

import os
import time
import uuid

import pytest
from botocore.exceptions import ClientError

from tests.support import fixtures as functional
from tests.support.compute import client_of
from tests.support.iam import s3_for

pytestmark = pytest.mark.skipif(bool(os.environ.get("VALLUM_TEST_ENDPOINT")),
                                reason="needs the compute service")

server, s3, bucket = functional.server, functional.s3, functional.bucket

LEAK = r'''
import os, sys, time
for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
    print("leak", name, os.environ[name][::-1], flush=True)
time.sleep(float(sys.argv[1]) if len(sys.argv) > 1 else 0)
'''


@pytest.fixture(scope="module")
def api(server):
    return client_of(server)


def _leaked(api, job_id: str, timeout: float = 30.0) -> tuple[str, str, str]:
    deadline = time.monotonic() + timeout
    while True:
        got = {}
        for line in api.logs(job_id)["data"].splitlines():
            parts = line.split(" ")
            if len(parts) == 3 and parts[0] == "leak":
                got[parts[1]] = parts[2][::-1]
        if len(got) == 3:
            return got["AWS_ACCESS_KEY_ID"], got["AWS_SECRET_ACCESS_KEY"], got["AWS_SESSION_TOKEN"]
        assert time.monotonic() < deadline, "the task never printed its credentials"
        time.sleep(0.1)


def _refused(server, creds, bucket: str) -> str:
    with pytest.raises(ClientError) as exc:
        s3_for(server, *creds).get_object(Bucket=bucket, Key="in/x.txt")
    return exc.value.response["Error"]["Code"]


def _job(api, bucket: str, seconds: float) -> dict:
    return api.submit({"runtime": "python", "code": LEAK, "network": True,
                       "args": [str(seconds)], "inputs": [f"s3://{bucket}/in/"],
                       "output": f"s3://{bucket}/out-{uuid.uuid4().hex[:6]}/"})


def test_a_tasks_key_is_refused_right_after_its_job_ends(server, api, s3, bucket):
    s3.put_object(Bucket=bucket, Key="in/x.txt", Body=b"x")
    job = _job(api, bucket, 0)
    assert api.wait(job["id"], timeout=60)["state"] == "SUCCEEDED"
    assert _refused(server, _leaked(api, job["id"]), bucket) == "ExpiredToken"


def test_a_tasks_key_is_refused_right_after_cancel(server, api, s3, bucket):
    s3.put_object(Bucket=bucket, Key="in/x.txt", Body=b"x")
    job = _job(api, bucket, 60)
    creds = _leaked(api, job["id"])
    got = s3_for(server, *creds).get_object(Bucket=bucket, Key="in/x.txt")["Body"].read()
    assert got == b"x"                                 # valid while the task runs
    api.cancel(job["id"])
    assert _refused(server, creds, bucket) == "ExpiredToken"
    assert api.wait(job["id"], timeout=30)["state"] == "CANCELLED"
