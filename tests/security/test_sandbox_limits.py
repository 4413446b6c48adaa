"""Limits that hold for the whole sandbox, and kills reported for what they are.

tmpfs (/tmp, /dev/shm) counts against a task's memory; /dev/shm does not survive into
the next warm task; max_procs cannot exceed the platform's ceiling; an OOM kill and a
missing command are named in the job's reason.
"""

from __future__ import annotations

import pytest

from tests.support import fixtures as functional
from tests.support.compute import client_of
from vallum.compute import sandbox

pytestmark = pytest.mark.skipif(sandbox.detect_mode() != "bwrap",
                                reason="bubblewrap cannot create namespaces here")

server, s3, bucket = functional.server, functional.s3, functional.bucket
CAP = 256                      # VALLUM_COMPUTE_MAX_PROCS's default: the platform's ceiling


@pytest.fixture(scope="module")
def api(server):
    return client_of(server)


def run(api, bucket, job):
    job = api.submit({"output": f"s3://{bucket}/o/", **job})
    done = api.wait(job["id"], timeout=90)
    return done, api.logs(job["id"])["data"]


FILL = """
import os
held = 0
for path in ("/dev/shm/fill", "/tmp/fill"):
    try:
        with open(path, "wb") as f:
            for _ in range(15):                   # 120 MB in each
                f.write(b"x" * (8 << 20))
                f.flush()
                held += 8
    except OSError as exc:
        print("refused", path, exc.strerror)
print("HELD", held)
"""


def test_tmpfs_counts_against_the_task_memory(api, bucket):
    done, log = run(api, bucket, {"runtime": "python", "code": FILL,
                                  "resources": {"memory_mb": 64, "wall_time_s": 60}})
    held = int(log.split("HELD ")[1].split()[0]) if "HELD " in log else 0
    assert held <= 96, f"a 64 MB task held {held} MB of tmpfs: {log}"
    if done["state"] != "SUCCEEDED":
        assert "out of memory" in (done["reason"] or ""), done


def test_dev_shm_is_not_carried_into_the_next_warm_task(api, bucket):
    shape = {"memory_mb": 347}
    probe = ("import os\nprint('sandbox', open('/proc/1/stat').read().rsplit(')', 1)[1].split()[19])\n"
             "print('shm', sorted(os.listdir('/dev/shm')))\n"
             "open('/dev/shm/leak', 'w').write('x')\n")
    first = run(api, bucket, {"runtime": "python", "code": probe, "resources": shape})[1]
    second = run(api, bucket, {"runtime": "python", "code": probe, "resources": shape})[1]
    assert first.split("shm")[0] == second.split("shm")[0], "not the same warm sandbox"
    assert "shm []" in second, second


def test_max_procs_at_the_platform_ceiling_holds_in_the_sandbox(api, bucket):
    """Asking above the ceiling is refused at submission (test_compute_quotas); at the
    ceiling, the sandbox itself stops the task's processes and threads there."""
    code = """
import threading, time
threading.stack_size(64 * 1024)
n = 0
try:
    for _ in range(400):
        threading.Thread(target=time.sleep, args=(5,), daemon=True).start()
        n += 1
except RuntimeError:
    pass
print("THREADS", n)
"""
    done, log = run(api, bucket, {"runtime": "python", "code": code, "network": True,
                                  "env": {"MALLOC_ARENA_MAX": "1"},
                                  "resources": {"max_procs": CAP, "memory_mb": 2048,
                                                "wall_time_s": 60}})
    n = int(log.split("THREADS ")[1].split()[0])
    assert 200 < n < CAP, log


@pytest.mark.parametrize("network", [False, True], ids=["warm", "cold"])
def test_a_missing_command_is_reported_as_such(api, bucket, network):
    done, log = run(api, bucket, {"runtime": "command", "command": ["no-such-command-x"],
                                  "network": network})
    assert done["state"] == "FAILED" and done["reason"] == "command not found", (done, log)


@pytest.mark.parametrize("network", [False, True], ids=["warm", "cold"])
def test_an_oom_kill_is_reported_as_such(api, bucket, network):
    """56 MB in each tmpfs fits its cap, but not the 64 MB task's memory together."""
    done, log = run(api, bucket, {"runtime": "python", "network": network,
                                  "code": FILL.replace("range(15)", "range(7)"),
                                  "resources": {"memory_mb": 64, "wall_time_s": 60}})
    assert done["state"] == "FAILED", (done, log)
    assert done["reason"] == "out of memory: killed at the memory limit of 64 MB", (done, log)
