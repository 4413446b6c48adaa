"""What a task's run shows to others: no secret in any process's argv, no host path in a
job's reason, and a cold task gets the PATH it is promised."""

from __future__ import annotations

import json
import os
import shutil
import time

import pytest

from tests.support import fixtures as functional
from tests.support.compute import client_of, read
from tests.support.server import server_log, start_server, stop_server
from vallum.compute import sandbox

pytestmark = pytest.mark.skipif(sandbox.detect_mode() != "bwrap",
                                reason="bubblewrap cannot create namespaces here")

server, s3, bucket = functional.server, functional.s3, functional.bucket


@pytest.fixture(scope="module")
def api(server):
    return client_of(server)


def _cmdlines() -> list[bytes]:
    out = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    out.append(f.read())
            except OSError:
                pass
    return out


def test_network_task_secrets_never_appear_in_argv(api, s3, bucket):
    code = """
import os, time
e = os.environ
open(e["VALLUM_OUTPUT"] + "/s", "w").write(e["AWS_SECRET_ACCESS_KEY"][::-1] + "\\n"
                                           + e["AWS_SESSION_TOKEN"][::-1])
print("PATH=" + e.get("PATH", "<unset>"))
time.sleep(3)
"""
    job = api.submit({"runtime": "python", "code": code, "network": True,
                      "output": f"s3://{bucket}/o/"})
    seen: list[bytes] = []
    deadline = time.monotonic() + 60
    while api.job(job["id"])["state"] in ("QUEUED", "RUNNING") and time.monotonic() < deadline:
        seen += _cmdlines()
        time.sleep(0.2)
    done = api.wait(job["id"], timeout=60)
    log = api.logs(job["id"])["data"]
    assert done["state"] == "SUCCEEDED", log
    secret, token = (x[::-1].encode() for x in read(s3, bucket, "o/s").decode().split("\n"))
    assert len(seen) > 10
    for line in seen:
        assert secret not in line and token not in line, "a task secret was in a process's argv"
        assert b"AWS_SECRET_ACCESS_KEY" not in line
    assert "PATH=/usr/local/bin:/usr/bin:/bin" in log


def test_reasons_name_no_host_path_nor_the_gateway_pid(api, s3, bucket, server):
    s3.put_object(Bucket=bucket, Key="in/" + "n" * 300, Body=b"x")   # too long a file name
    for network in (False, True):                                      # warm and cold paths
        job = api.submit({"runtime": "python", "code": "pass", "network": network,
                          "inputs": [f"s3://{bucket}/in/"], "output": f"s3://{bucket}/o/"})
        done = api.wait(job["id"], timeout=60)
        reason = done["reason"] or ""
        assert done["state"] == "FAILED" and "staging inputs failed" in reason, done
        assert "/" not in reason.split("failed:", 1)[1], reason
        assert str(server.proc.pid) not in reason, reason


@pytest.mark.parametrize("warm", ["1", "0"], ids=["warm", "cold"])
def test_an_internal_failure_names_its_kind_not_host_paths(tmp_path, warm):
    """Vallum's own machinery fails around a task (its scratch folder is not a folder):
    the job's reason says so without the host path or the gateway's pid in it."""
    scratch = tmp_path / "scratch"
    srv = start_server(tmp_path / "data", env={"VALLUM_SCRATCH_DIR": str(scratch),
                                               "VALLUM_COMPUTE_WARM": warm})
    try:
        s3, api = srv.client(), client_of(srv)
        s3.create_bucket(Bucket="internal-" + warm)
        mine = scratch / str(srv.proc.pid)
        shutil.rmtree(mine)
        mine.write_text("not a folder")
        job = api.submit({"runtime": "python", "code": "pass",
                          "output": f"s3://internal-{warm}/o/"})
        done = api.wait(job["id"], timeout=60)
    finally:
        stop_server(srv)
    assert done["state"] == "FAILED", done
    assert done["reason"] == ("internal error (FileExistsError); the gateway's log has the "
                              "details"), done
    assert "FileExistsError" in server_log(tmp_path / "data").read_text()   # details: the log


HOST_ENV = {
    # bash (the gate): traces every command, expanding PS4 -- a command substitution
    "SHELLOPTS": "xtrace", "PS4": "$(touch {canary}-ps4)",
    "BASH_ENV": "{canary}-bashenv.sh",
    # the dynamic loader of every host-side helper (setpriv, prlimit, bwrap run as root)
    "LD_PRELOAD": "{canary}-preload.so", "LD_LIBRARY_PATH": "{canary}-libs",
}


@pytest.mark.parametrize("warm", ["1", "0"], ids=["warm", "cold"])
def test_a_tasks_environment_never_reaches_the_host_side_helpers(tmp_path, warm):
    """A job's ``env`` is for its task, inside the sandbox: none of it may steer a host
    process that starts the sandbox (as root): no shell option, no BASH_ENV, no loader
    variable. Inside the task, every variable is as the job asked."""
    canary = tmp_path / "canary"
    (tmp_path / "canary-bashenv.sh").write_text(f"touch {canary}-bashenv-ran\n")
    env = {k: v.format(canary=canary) for k, v in HOST_ENV.items()}
    srv = start_server(tmp_path / "data", env={"VALLUM_COMPUTE_WARM": warm})
    try:
        s3, api = srv.client(), client_of(srv)
        name = "hostenv-" + warm
        s3.create_bucket(Bucket=name)
        job = api.submit({"runtime": "python", "env": env, "output": f"s3://{name}/o/",
                          "code": "import os, json\nprint(json.dumps({k: os.environ.get(k) "
                                  f"for k in {sorted(env)!r}}}))\n"})
        done = api.wait(job["id"], timeout=60)
        log = api.logs(job["id"])["data"]
    finally:
        stop_server(srv)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("canary")) == \
        ["canary-bashenv.sh"], "a host-side helper ran what the job's env told it"
    assert done["state"] == "SUCCEEDED", (done, log)
    assert json.loads(log.strip().splitlines()[-1]) == env
