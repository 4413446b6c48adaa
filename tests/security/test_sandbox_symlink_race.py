"""The host's output upload and input staging against a concurrent symlink swapper.

A separate process (as a task's leftover would) swaps a folder the task owns for a
symlink to a host folder, as fast as it can, while the gateway's own upload and staging
code runs against the real server many times over. Not once may the host read a byte
of the host folder or write a file into it.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

from tests.support import fixtures as functional
from tests.support.compute import client_of
from vallum.compute import runner
from vallum.compute import sandbox as sbx
from vallum.compute.spec import JobSpec

server, s3, bucket = functional.server, functional.s3, functional.bucket
ROUNDS = 100

SWAPPER = textwrap.dedent("""
    import ctypes, os, random, sys, time
    folder, target = sys.argv[1], sys.argv[2]
    twin = folder + ".twin"
    os.symlink(target, twin)
    exchange = ctypes.CDLL(None, use_errno=True).renameat2   # RENAME_EXCHANGE: at every
    end = time.time() + float(sys.argv[3])                   # instant one name is the real
    while time.time() < end:                                 # folder, the other a symlink
        exchange(-100, folder.encode(), -100, twin.encode(), 2)
        until = time.perf_counter() + random.random() * 2e-4
        while time.perf_counter() < until:
            pass
""")


def _swapping(folder: Path, target: Path, seconds: float) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", SWAPPER, str(folder), str(target),
                             str(seconds)])
    time.sleep(0.2)
    return proc


def _stop(proc: subprocess.Popen) -> None:
    proc.kill()
    proc.wait()


def _bundle(bucket: str, inputs: list[str], output: str) -> runner.TaskBundle:
    spec = JobSpec.from_json({"runtime": "python", "code": "pass", "inputs": inputs,
                              "output": output}).to_json()
    return runner.TaskBundle("job-race", 0, "", 1, spec, None, "", "", {})


def test_output_upload_never_follows_a_swapped_folder(server, bucket, tmp_path):
    client = client_of(server)
    secret = tmp_path / "hostdir"
    secret.mkdir()
    scratch = sbx.make_scratch(tmp_path / "scratch", "race")
    (scratch.outputs / "d").mkdir()
    for i in range(10):                  # same names: every open is a chance to be fooled
        (secret / f"f{i}").write_text("host-only bytes")
        (scratch.outputs / "d" / f"f{i}").write_text("mine")
    spec = _bundle(bucket, [], f"s3://{bucket}/race/").job_spec()
    swapper = _swapping(scratch.outputs / "d", secret, 60)
    try:
        leaked = 0
        for _ in range(ROUNDS // 10):
            for key in runner.upload_outputs(client, spec, "", scratch):
                if client.get_object(bucket, key) != b"mine":
                    leaked += 1
        assert leaked == 0, f"the host uploaded a host file {leaked} times"
    finally:
        _stop(swapper)


def test_input_staging_never_writes_through_a_swapped_folder(server, s3, bucket, tmp_path):
    client = client_of(server)
    s3.put_object(Bucket=bucket, Key="stage/sub/x.txt", Body=b"tenant bytes")
    victim = tmp_path / "victim"
    (victim / "in" / "sub").mkdir(parents=True)     # shaped like a task folder: in/sub/
    scratch = sbx.make_scratch(tmp_path / "scratch", "race")
    task = sbx.Scratch(scratch.work / "tdir", scratch.work / "tdir" / "task.log",
                       scratch.work / "tdir" / "gw.sock")
    (task.root / "in").mkdir(parents=True)
    bundle = _bundle(bucket, [f"s3://{bucket}/stage/"], f"s3://{bucket}/o/")
    swapper = _swapping(task.root, victim, 60)
    try:
        refused = 0
        for _ in range(ROUNDS):
            try:
                runner.stage_inputs(client, bundle, task)
            except OSError:
                refused += 1                 # a swapped folder is refused, never followed
            written = [p for p in victim.rglob("*") if p.is_file()]
            assert written == [], f"the host wrote {written} outside the task's folder"
    finally:
        _stop(swapper)
    assert refused > 0, "the swapper never won a round: the test proved nothing"
