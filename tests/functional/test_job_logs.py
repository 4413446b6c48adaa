"""Logs per job, task and attempt, kept apart and outside the output prefix; a function's
print() output in its invocation's log."""

from __future__ import annotations

import time
import uuid

import pytest

from tests.support.compute import client_of


@pytest.fixture(scope="module")
def api(server):
    return client_of(server)


def test_jobs_sharing_an_output_prefix_keep_their_own_logs(api, bucket):
    spec = {"runtime": "python", "output": f"s3://{bucket}/shared/"}
    a = api.submit({**spec, "code": "print('I am A')"})
    b = api.submit({**spec, "code": "print('I am B')"})
    for j in (a, b):
        assert api.wait(j["id"], timeout=30)["state"] == "SUCCEEDED"
    assert api.logs(a["id"])["data"] == "I am A\n"
    assert api.logs(b["id"])["data"] == "I am B\n"


def test_every_attempt_keeps_its_log(api, s3, bucket):
    code = ("import os\nn = int(os.environ['VALLUM_ATTEMPT'])\nprint('attempt', n)\n"
            "raise SystemExit(0 if n == 3 else 1)\n")
    job = api.submit({"runtime": "python", "code": code, "retries": 2, "backoff_s": 0,
                      "output": f"s3://{bucket}/r/"})
    assert api.wait(job["id"], timeout=60)["state"] == "SUCCEEDED"
    latest = api.logs(job["id"])
    assert (latest["attempt"], latest["attempts"], latest["data"]) == (3, [1, 2, 3],
                                                                      "attempt 3\n")
    for n in (1, 2):
        page = api.call("GET", f"/-/jobs/v1/jobs/{job['id']}/logs",
                        query={"task": "0", "attempt": str(n)})
        assert page["data"].startswith(f"attempt {n}\n") and "[vallum] FAILED" in page["data"]
        assert page["done"] is True
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket, Prefix="r/")


def test_a_functions_print_output_is_in_its_logs(api):
    name = "printer" + uuid.uuid4().hex[:6]
    api.create_function(name, {"handler": "main.handler", "code":
                               "def handler(event, context):\n"
                               "    print('handling', event)\n"
                               "    return event * 2\n"})
    try:
        job = api.invoke(name, 21, asynchronous=True)
        assert api.wait(job["id"], timeout=60)["state"] == "SUCCEEDED"
        assert api.logs(job["id"])["data"] == "handling 21\n"
        # A synchronous call's own output, on request (as Lambda's LogType=Tail).
        got = api.call("POST", f"/-/functions/v1/functions/{name}/invoke", {"payload": 5},
                       query={"log": "tail"})
        assert got == {"result": 10, "log": "handling 5\n"}
    finally:
        api.delete_function(name)


def test_a_cancelled_warm_task_keeps_its_log(api, bucket):
    job = api.submit({"runtime": "python", "output": f"s3://{bucket}/c/",
                      "code": "import time\nprint('started', flush=True)\ntime.sleep(60)\n"})
    for _ in range(300):
        if "started" in api.logs(job["id"])["data"]:
            break
        time.sleep(0.1)
    api.cancel(job["id"])
    assert api.wait(job["id"], timeout=30)["state"] == "CANCELLED"
    for _ in range(300):                 # the job says CANCELLED before its log is stored
        page = api.logs(job["id"])
        if page["done"]:
            break
        time.sleep(0.1)
    assert page["data"] == "started\n\n[vallum] CANCELLED: cancelled\n", page
