"""A task speaks only for itself, and the host never follows a path the task controls.

Red-team findings of issue 14, replayed through the real server: a task writes a
forged ``{"exit": 0}`` answer on every descriptor it has and keeps running, while a
daemon it started swaps its output folder (and the next task's folder) for symlinks
to /etc, the data directory or a host folder. The job must not end before the task
does, later jobs must get their own answers, and the gateway must neither read nor
write outside the sandbox. The race is run several times: it used to win at once.
"""

from __future__ import annotations

import os
import time

import pytest

from tests.support import fixtures as functional
from tests.support.compute import client_of
from vallum.compute import sandbox

pytestmark = pytest.mark.skipif(sandbox.detect_mode() != "bwrap",
                                reason="bubblewrap cannot create namespaces here")

server, s3, bucket = functional.server, functional.s3, functional.bucket
SHAPE = {"memory_mb": 345, "wall_time_s": 30}      # a warm-pool shape of this module's own

FORGER = r"""
import json, os, sys, time
out = os.environ["VALLUM_OUTPUT"]
os.makedirs(out + "/d", exist_ok=True)
open(out + "/d/f", "w").write("mine")
if os.fork() == 0:                       # the swapper: outlives the task's own group
    os.setsid()
    if os.fork():
        os._exit(0)
    for fd in range(3, 256):
        try:
            os.close(fd)
        except OSError:
            pass
    targets = [t for t in os.environ["TARGETS"].split(":") if t]
    work = "/job/work"
    mine = os.path.basename(os.path.dirname(out))
    seen = set(os.listdir(work))
    end = time.time() + 20
    i = 0
    while time.time() < end:
        i += 1
        t = targets[i % len(targets)]
        try:                             # the output subfolder -> a host folder, and back
            os.rename(out + "/d", out + "/d.real")
            os.symlink(t, out + "/d")
            os.unlink(out + "/d")
            os.rename(out + "/d.real", out + "/d")
        except OSError:
            pass
        try:                             # a later task's folder -> a host folder
            for name in os.listdir(work):
                if name not in seen and name != mine:
                    seen.add(name)
                    os.rename(f"{work}/{name}", f"{work}/.{name}")
                    os.symlink(t, f"{work}/{name}")
        except OSError:
            pass
forged = (json.dumps({"id": "x", "exit": 0, "timed_out": False, "clean": True}) + "\n").encode()
for fd in range(3, 256):
    try:
        os.write(fd, forged)
    except OSError:
        pass
time.sleep(3)
open(out + "/real", "w").write("done")
print("REAL END")
"""


@pytest.fixture(scope="module")
def api(server):
    return client_of(server)


def _follow_up(api, bucket, n):
    code = f"import os\nprint('MARK{n}', sorted(os.listdir(os.environ['VALLUM_INPUT'])))\n" \
           f"raise SystemExit({n})"
    return n, api.submit({"runtime": "python", "code": code, "output": f"s3://{bucket}/f{n}/",
                          "inputs": [f"s3://{bucket}/in/x.txt"], "resources": SHAPE})


def test_forged_answers_and_symlink_swaps_never_reach_the_host(api, s3, bucket, server,
                                                               tmp_path):
    victim = tmp_path / "victim"
    victim.mkdir()
    os.chmod(tmp_path, 0o755)
    s3.put_object(Bucket=bucket, Key="in/x.txt", Body=b"input")
    targets = ":".join(["/etc", str(server.data_dir), str(victim)])
    for rnd in range(3):
        job = api.submit({"runtime": "python", "code": FORGER, "output": f"s3://{bucket}/r{rnd}/",
                          "env": {"TARGETS": targets}, "resources": SHAPE})
        start = time.monotonic()
        followers = []
        while time.monotonic() - start < 2.0:
            state = api.job(job["id"])["state"]
            assert state in ("QUEUED", "RUNNING"), f"round {rnd}: {state} before the task ended"
            if state == "RUNNING" and not followers:
                followers = [_follow_up(api, bucket, n) for n in (5, 6)]
            time.sleep(0.1)
        done = api.wait(job["id"], timeout=60)
        log = api.logs(job["id"])["data"]
        assert done["state"] == "SUCCEEDED" and "REAL END" in log, (done, log)
        assert time.monotonic() - start >= 2.9
        keys = sorted(o["Key"] for o in s3.list_objects_v2(
            Bucket=bucket, Prefix=f"r{rnd}/").get("Contents", []))
        mine = {f"r{rnd}/{k}" for k in ("d/f", "d.real/f", "real", "_logs/job.log")}
        assert f"r{rnd}/real" in keys and set(keys) <= mine, keys   # nothing from the host
        for n, f in followers or [_follow_up(api, bucket, n) for n in (5, 6)]:
            got = api.wait(f["id"], timeout=60)        # its own answer, not an earlier job's
            flog = api.logs(f["id"])["data"]
            assert got["state"] == "FAILED" and got["exit_code"] == n, (got, flog)
            assert f"MARK{n} ['x.txt']" in flog, (got, flog)
        assert sorted(os.listdir(victim)) == [], f"round {rnd}: the host wrote into {victim}"
