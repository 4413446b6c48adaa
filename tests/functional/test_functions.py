"""Functions through the real server: register, invoke sync and async, errors, warm reuse."""

from __future__ import annotations

import time
import uuid

import pytest

from tests.support.compute import client_of
from vallum.client import VallumError

HANDLER = """
import os, time
COUNT = {"n": 0}
STARTED = time.time()

def handler(event, context):
    COUNT["n"] += 1
    if event.get("fail"):
        raise ValueError("asked to fail")
    if event.get("sleep"):
        time.sleep(event["sleep"])
    return {"echo": event, "calls": COUNT["n"], "pid": os.getpid(), "started": STARTED,
            "name": context["function_name"]}
"""


@pytest.fixture(scope="module")
def api(server):
    return client_of(server)


@pytest.fixture
def fn(api):
    name = "f" + uuid.uuid4().hex[:10]
    api.create_function(name, {"handler": "main.handler", "code": HANDLER, "max_workers": 1,
                               "timeout_s": 5})
    yield name
    try:
        api.delete_function(name)
    except VallumError:
        pass


def test_sync_invoke_returns_the_result_and_reuses_a_warm_worker(api, fn):
    first = api.invoke(fn, {"x": 1})["result"]
    assert first["echo"] == {"x": 1} and first["name"] == fn
    t0 = time.perf_counter()
    second = api.invoke(fn, {"x": 2})["result"]
    warm = time.perf_counter() - t0
    assert second["calls"] == 2 and second["started"] == first["started"]   # same interpreter
    assert warm < 1.0


def test_handler_errors_come_back_and_the_worker_survives(api, fn):
    with pytest.raises(VallumError) as exc:
        api.invoke(fn, {"fail": True})
    assert exc.value.code == "FunctionError"
    assert "ValueError: asked to fail" in exc.value.message
    assert api.invoke(fn, {"ok": 1})["result"]["echo"] == {"ok": 1}


def test_timeout_kills_the_worker(api, fn):
    with pytest.raises(VallumError) as exc:
        api.invoke(fn, {"sleep": 30})
    assert "TimedOut" in exc.value.message
    # A fresh worker serves the next call.
    assert api.invoke(fn, {"n": 1})["result"]["calls"] == 1


def test_async_invoke_is_a_durable_job_with_the_result(api, fn):
    job = api.invoke(fn, {"a": 1}, asynchronous=True)
    assert job["kind"] == "function"
    done = api.wait(job["id"], timeout=30)
    assert done["state"] == "SUCCEEDED"
    assert done["result"]["result"]["echo"] == {"a": 1}
    failed = api.wait(api.invoke(fn, {"fail": True}, asynchronous=True)["id"], timeout=60)
    assert failed["state"] == "FAILED" and "asked to fail" in failed["reason"]
    assert api.tasks(failed["id"])[0]["attempts"] == 3          # async: two retries


def test_update_replaces_the_code(api, fn):
    api.create_function(fn, {"handler": "main.handler",
                             "code": "def handler(e, c):\n    return 'v2'\n"})
    assert api.invoke(fn)["result"] == "v2"
    assert api.function(fn)["revision"] == 2
    assert fn in {f["name"] for f in api.functions()}


def test_code_from_an_object_prefix(api, s3, bucket):
    s3.put_object(Bucket=bucket, Key="fn/pkg/__init__.py", Body=b"")
    s3.put_object(Bucket=bucket, Key="fn/pkg/mod.py", Body=b"def run(e, c):\n    return e * 2\n")
    name = "obj" + uuid.uuid4().hex[:8]
    api.create_function(name, {"handler": "pkg.mod.run", "code_uri": f"s3://{bucket}/fn/"})
    assert api.invoke(name, 21)["result"] == 42
    api.delete_function(name)


@pytest.mark.parametrize("spec, words", [
    ({"handler": "main", "code": ""}, "module.func"),
    ({"handler": "main.h"}, "exactly one of"),
    ({"handler": "main.h", "code": "", "runtime": "ruby"}, "unknown runtime"),
    ({"handler": "main.h", "code": "", "timeout_s": -1}, "timeout_s"),
])
def test_bad_function_specs_are_refused(api, spec, words):
    with pytest.raises(VallumError) as exc:
        api.create_function("bad", spec)
    assert exc.value.status == 400 and words in exc.value.message.lower()


def test_unknown_and_deleted_functions(api, fn):
    api.delete_function(fn)
    with pytest.raises(VallumError) as exc:
        api.invoke(fn)
    assert exc.value.status == 404 and exc.value.code == "NoSuchFunction"
