"""kill -9 of the server loses no accepted job and no acknowledged object event."""

from __future__ import annotations

import time

import pytest

from tests.support.compute import client_of
from tests.support.server import start_server, stop_server

TERMINAL = ("SUCCEEDED", "FAILED", "CANCELLED", "TIMED_OUT")


def wait_all(api, ids, timeout=90.0):
    deadline = time.monotonic() + timeout
    while True:
        jobs = {i: api.job(i) for i in ids}
        if all(j["state"] in TERMINAL for j in jobs.values()) or time.monotonic() > deadline:
            return jobs
        time.sleep(0.2)


@pytest.mark.slow
def test_kill_9_loses_no_accepted_job(tmp_path):
    data = tmp_path / "data"
    srv = start_server(data)
    try:
        s3 = srv.client()
        s3.create_bucket(Bucket="crash-bucket")
        api = client_of(srv)
        api.create_function("recorder", {"handler": "main.h",
                                          "code": "def h(e, c):\n    return e['Records'][0]['s3']['object']['key']\n"})
        api.add_trigger({"bucket": "crash-bucket", "prefix": "ev/", "function": "recorder"})
        out = "s3://crash-bucket/out/"
        retried = [api.submit({"runtime": "python", "output": out, "retries": 2, "backoff_s": 0,
                               "code": "import time; time.sleep(1.5); print('done')"})["id"]
                   for _ in range(3)]
        queued = [api.submit({"runtime": "python", "output": out,
                              "code": f"print({i})"})["id"] for i in range(10)]
        no_retry = api.submit({"runtime": "python", "output": out, "retries": 0,
                               "code": "import time; time.sleep(30)"})["id"]
        for i in range(5):
            s3.put_object(Bucket="crash-bucket", Key=f"ev/{i}", Body=b"x")
        deadline = time.monotonic() + 20
        while api.job(no_retry)["state"] != "RUNNING" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert api.job(no_retry)["state"] == "RUNNING"
    finally:
        stop_server(srv, "kill")

    srv = start_server(data)
    try:
        api = client_of(srv)
        jobs = wait_all(api, retried + queued + [no_retry])
        for i in retried + queued:
            assert jobs[i]["state"] == "SUCCEEDED", jobs[i]
        assert jobs[no_retry]["state"] == "FAILED"
        assert "lost" in jobs[no_retry]["reason"]
        # Every acknowledged upload reached the function, exactly once per upload (idempotent).
        deadline = time.monotonic() + 30
        while True:
            fn_jobs = [j for j in api.jobs(limit=1000) if j["kind"] == "function"]
            keys = sorted(api.job(j["id"])["result"]["result"] for j in fn_jobs
                          if j["state"] == "SUCCEEDED")
            if len(keys) >= 5 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert keys == [f"ev/{i}" for i in range(5)]
    finally:
        stop_server(srv)
