"""Named runtimes through the real server: a runtime built offline from a wheelhouse gives
python jobs, command jobs and functions its libraries; without it they are absent."""

from __future__ import annotations

import pytest

from tests.support.compute import client_of
from tests.support.runtimes import built_runtime, vallum
from vallum.client import VallumError
from vallum.compute import runtimes, sandbox

pytestmark = pytest.mark.skipif(sandbox.detect_mode() != "bwrap",
                                reason="bubblewrap cannot create namespaces here")

USE = "import vallum_tiny_lib; print('magic', vallum_tiny_lib.MAGIC)\n"


@pytest.fixture(scope="module")
def runtime(server):
    with built_runtime(server.data_dir, "tiny", "vallum_tiny_lib", "MAGIC = 42\n") as path:
        yield path


@pytest.fixture(scope="module")
def api(server):
    return client_of(server)


def _run(api, bucket, **spec):
    job = api.submit({"output": f"s3://{bucket}/o/", **spec})
    done = api.wait(job["id"], timeout=60)
    return done, api.logs(job["id"])["data"]


def test_cli_lists_the_built_runtime(server, runtime):
    listed = vallum("runtime", "list", "--data-dir", server.data_dir)
    assert listed.returncode == 0 and f"tiny\t{runtime}" in listed.stdout


@pytest.mark.parametrize("network", [False, True], ids=["warm", "cold-network"])
def test_job_in_the_runtime_imports_its_library(api, bucket, runtime, network):
    done, log = _run(api, bucket, runtime="python", venv="tiny", code=USE, network=network)
    assert done["state"] == "SUCCEEDED", log
    assert "magic 42" in log


def test_the_runtime_job_then_a_plain_one_of_the_same_owner(api, bucket, runtime):
    """A warm sandbox of the runtime is never handed a task without it (nor the reverse)."""
    for venv, expect in (("tiny", "magic 42"), (None, "No module named"), ("tiny", "magic 42")):
        done, log = _run(api, bucket, runtime="python", code=USE,
                         **({"venv": venv} if venv else {}))
        assert expect in log, (venv, done, log)


def test_command_job_finds_the_runtime_first_on_path(api, bucket, runtime):
    done, log = _run(api, bucket, runtime="command", venv="tiny",
                     command=["sh", "-c", "command -v python; python -c "
                              "'import vallum_tiny_lib as m; print(m.MAGIC)'"])
    assert done["state"] == "SUCCEEDED", log
    assert log.split() == [f"{sandbox.RUNTIME_MOUNT}/bin/python", "42"]


def test_function_in_the_runtime_and_without(api, runtime):
    code = ("import vallum_tiny_lib\n"
            "def handler(event, context):\n"
            "    return vallum_tiny_lib.MAGIC + event\n")
    api.create_function("tinyfn", {"handler": "main.handler", "venv": "tiny", "code": code})
    api.create_function("plainfn", {"handler": "main.handler", "code": code})
    try:
        assert api.invoke("tinyfn", 1) == {"result": 43}
        assert api.function("tinyfn")["spec"]["venv"] == "tiny"
        with pytest.raises(VallumError) as failed:
            api.invoke("plainfn", 1)
        assert "vallum_tiny_lib" in failed.value.message
    finally:
        api.delete_function("tinyfn")
        api.delete_function("plainfn")


def test_a_runtime_removed_after_submit_fails_its_task_by_name(server, api, bucket, runtime):
    registry = runtimes.Registry(server.data_dir)     # in-process: removed within ms
    registry.add("gone", runtime)
    out = f"s3://{bucket}/o/"
    try:
        ids = api.submit_batch({
            "first": {"runtime": "python", "code": "import time; time.sleep(6)", "output": out},
            "then": {"runtime": "python", "venv": "gone", "code": "print(1)", "output": out,
                     "depends_on": ["first"]}})["jobs"]
    finally:
        registry.remove("gone")
    done = api.wait(ids["then"]["id"], timeout=60)
    assert done["state"] == "FAILED", done
    assert done["reason"].startswith("unknown runtime 'gone' (venv)"), done
    with pytest.raises(VallumError) as refused:
        api.submit({"runtime": "python", "venv": "gone", "code": "print(1)", "output": out})
    assert refused.value.status == 400 and refused.value.code == "UnknownRuntime"
