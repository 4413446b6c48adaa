"""Logs per job, task and attempt, kept apart and outside the output prefix; a function's
print() output in its invocation's log."""

from __future__ import annotations

import uuid

import pytest

from tests.functional.compute_util import client_of


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
