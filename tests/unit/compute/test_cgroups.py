"""cgroup v2 for sandboxes: the limit files, and killing a whole tree with cgroup.kill.

This host mounts its controllers on v1, with an empty v2 hierarchy beside them: the v2
*limits* (memory.max, pids.max, cpu.max, io.max) are checked against a directory laid
out like a v2 cgroupfs (regular files: what is written, not what a kernel enforces),
while the v2 *kill* runs on the real kernel wherever a cgroup2 mount exists.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from vallum.compute import cgroups

SPEC = cgroups.Spec(96 << 20, 12, cpu=0.5, io_device="8:0", io_bps=10 << 20)


def _fake_v2(tmp_path: Path, controllers: str) -> cgroups.Host:
    own = tmp_path / "system.slice" / "vallum.service"
    own.mkdir(parents=True)
    (own / "cgroup.controllers").write_text(controllers + "\n")
    (own / "cgroup.subtree_control").write_text("")
    return cgroups.Host(tmp_path, {}, {"": "/system.slice/vallum.service"})


def test_v2_limits_are_written_for_the_whole_tree(tmp_path):
    host = _fake_v2(tmp_path, "cpuset cpu io memory pids")
    group = cgroups._create(SPEC, host, "vallum-1.2-00")
    d = tmp_path / "system.slice" / "vallum.service" / cgroups.PARENT / "vallum-1.2-00"
    assert group.v2 and group.unenforced == [] and set(group.dirs.values()) == {d}
    assert group.track == d                                   # cgroup.kill lives here
    assert (d / "memory.max").read_text() == str(96 << 20)    # tmpfs and shm pages count
    assert (d / "memory.swap.max").read_text() == "0"
    assert (d / "pids.max").read_text() == "12"
    assert (d / "cpu.max").read_text() == "50000 100000"
    assert (d / "io.max").read_text() == f"8:0 rbps={10 << 20} wbps={10 << 20}"


def test_v2_without_cpu_or_io_says_so(tmp_path):
    host = _fake_v2(tmp_path, "memory pids")
    group = cgroups._create(SPEC, host, "vallum-1.2-01")
    assert group.v2 and set(group.dirs) == {"memory", "pids"}
    assert group.unenforced == ["CPU share", "disk bandwidth"]
    d = group.dirs["memory"]
    assert (d / "memory.max").exists() and (d / "pids.max").exists()
    assert not (d / "cpu.max").exists() and not (d / "io.max").exists()


def test_v2_io_on_a_disk_that_is_not_a_block_device_is_reported(tmp_path):
    host = _fake_v2(tmp_path, "cpu io memory pids")
    spec = cgroups.Spec(96 << 20, 12, io_device=None, io_bps=10 << 20)
    group = cgroups._create(spec, host, "vallum-1.2-02")
    assert group.unenforced == ["disk bandwidth"]
    assert not (group.dirs["io"] / "io.max").exists()


def test_no_memory_or_pids_controller_on_v2_falls_back_and_reports(tmp_path):
    host = _fake_v2(tmp_path, "cpu io")
    group = cgroups._create(cgroups.Spec(96 << 20, 12), host, "vallum-1.2-03")
    assert not group.v2 and group.dirs == {}
    assert group.unenforced == ["memory (including /tmp and /dev/shm)", "process count"]


def _v2_mount() -> Path | None:
    host = cgroups.probe()
    return host.v2 if host.v2 is not None and "" in host.own else None


@pytest.mark.skipif(os.geteuid() != 0 or _v2_mount() is None,
                    reason="needs a cgroup2 mount and root (or a delegation) to make groups")
def test_cgroup_kill_on_the_real_kernel_ends_a_forking_tree():
    """A group made on this host has a v2 directory (limits or, on a hybrid host, only
    for killing); a tree that keeps forking, in a session of its own, dies with it."""
    group = cgroups.create(cgroups.Spec(64 << 20, 32))
    try:
        assert group.track is not None and (group.track / "cgroup.kill").exists()
        tree = subprocess.Popen(["sh", "-c", "while :; do sleep 30 & sleep 0.01; done"],
                                start_new_session=True)
        group.add(tree.pid)
        deadline = time.monotonic() + 10
        while (group.members() or 0) < 4 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert (group.members() or 0) >= 4
        (group.track / "cgroup.kill").write_text("1")         # what Group.kill writes first
        assert tree.wait(timeout=10) == -9
        deadline = time.monotonic() + 10
        while group.members() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert group.members() == 0
    finally:
        group.kill()
        for _ in range(100):
            if group.remove():
                break
            time.sleep(0.02)
    assert group.remove() and not group.track


def _fake_v1(tmp_path: Path) -> cgroups.Host:
    mounts = {c: tmp_path / c for c in cgroups.V1}
    for m in mounts.values():
        (m / "svc").mkdir(parents=True)
    return cgroups.Host(None, mounts, {c: "/svc" for c in cgroups.V1})


def test_v1_limits_and_io_only_when_asked(tmp_path):
    host = _fake_v1(tmp_path)
    group = cgroups._create(SPEC, host, "vallum-1.2-04")
    assert not group.v2 and set(group.dirs) == set(cgroups.V1) and group.unenforced == []
    assert (group.dirs["memory"] / "memory.limit_in_bytes").read_text() == str(96 << 20)
    assert (group.dirs["pids"] / "pids.max").read_text() == "12"
    assert (group.dirs["cpu"] / "cpu.cfs_quota_us").read_text() == "50000"
    for f in ("read", "write"):
        assert (group.dirs["blkio"] / f"blkio.throttle.{f}_bps_device").read_text() == \
            f"8:0 {10 << 20}"
    plain = cgroups._create(cgroups.Spec(96 << 20, 12), host, "vallum-1.2-05")
    assert set(plain.dirs) == {"memory", "pids", "cpu"} and plain.unenforced == []
