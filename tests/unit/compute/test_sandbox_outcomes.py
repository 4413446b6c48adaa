"""How an exit status becomes a job's reason, and what a sandbox's cgroup enforces."""

from __future__ import annotations

import os
import signal
import subprocess

import pytest

from vallum.compute import cgroups
from vallum.compute.sandbox import Limits, describe, env_args
from vallum.compute.spec import Quota, SpecError, parse_job


def test_kills_are_told_apart():
    assert describe(0).ok
    assert describe(-signal.SIGKILL, oom=True, limits=Limits(memory_mb=64)).reason == \
        "out of memory: killed at the memory limit of 64 MB"
    assert describe(128 + signal.SIGXCPU).reason == "CPU-time limit exceeded"
    assert describe(-signal.SIGXFSZ).reason == "file-size limit exceeded"
    assert describe(127).reason == "command not found"
    assert describe(3).reason == "exit code 3"
    assert describe(0, oom=True).ok               # an OOM kill of a helper, yet exit 0


def test_max_procs_is_capped_and_the_cap_is_reported():
    lim = Limits(max_procs=1 << 16)
    assert lim.procs() < lim.max_procs
    assert lim.group_spec().max_procs == lim.procs() + 4


@pytest.mark.skipif(os.geteuid() != 0, reason="making cgroups needs root or a delegation")
def test_a_cgroup_bounds_memory_and_pids_of_its_members():
    group = cgroups.create(cgroups.Spec(64 << 20, 8, 0.5))
    try:
        assert "memory" in group.dirs and "pids" in group.dirs, group.unenforced
        proc = subprocess.Popen(["sleep", "5"])
        try:
            group.add(proc.pid)
            with open(f"/proc/{proc.pid}/cgroup") as f:
                assert group.dirs["pids"].name in f.read()
        finally:
            proc.kill()
            proc.wait()
        limit = "memory.max" if group.v2 else "memory.limit_in_bytes"
        assert int((group.dirs["memory"] / limit).read_text()) == 64 << 20
        assert (group.dirs["pids"] / "pids.max").read_text().strip() == "8"
    finally:
        assert group.remove()


@pytest.mark.skipif(os.geteuid() != 0, reason="making cgroups needs root or a delegation")
def test_groups_of_a_gateway_that_is_gone_are_removed():
    probe = cgroups.create(cgroups.Spec(64 << 20, 8))
    parent = probe.dirs["pids"].parent
    assert probe.remove()
    gone = subprocess.Popen(["true"])
    gone.wait()
    stale = parent / f"vallum-{gone.pid}-0000000000000000"
    mine = parent / f"vallum-{os.getpid()}-0000000000000000"
    stale.mkdir()
    mine.mkdir()
    try:
        group = cgroups.create(cgroups.Spec(64 << 20, 8))
        assert not stale.exists()
        assert mine.exists()                          # a running gateway's groups stay
        assert group.remove()
    finally:
        for d in (stale, mine):
            if d.exists():
                d.rmdir()


def test_the_task_environment_travels_as_bubblewrap_arguments_never_split():
    fd = env_args({"A": "1", "LD_PRELOAD": "x y", "EMPTY": ""})
    try:
        words = os.read(fd, 1 << 16).split(b"\0")
    finally:
        os.close(fd)
    assert words == [b"--clearenv", b"--setenv", b"A", b"1", b"--setenv", b"LD_PRELOAD",
                     b"x y", b"--setenv", b"EMPTY", b"", b""]
    for bad in ({"A": "x\0--bind\0/\0/host"}, {"A\0B": "1"}, {"A=B": "1"}):
        with pytest.raises(ValueError):
            env_args(bad)
    with pytest.raises(SpecError, match="NUL"):
        parse_job({"runtime": "command", "command": ["x"], "output": "s3://b/o/",
                   "env": {"A": "x\0--bind\0/\0/host"}}, Quota())
