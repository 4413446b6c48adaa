"""A cgroup's CPU time as the usage meter reads it: v2's cpu.stat, v1's cpuacct.usage, and
None when the group has no readable counter."""

from __future__ import annotations

from vallum.compute.cgroups import Group


def test_v2_cpu_stat(tmp_path):
    (tmp_path / "cpu.stat").write_text("usage_usec 1500000\nuser_usec 1000000\nsystem_usec 500000\n")
    assert Group(dirs={"memory": tmp_path}, v2=True).cpu_seconds() == 1.5


def test_v1_cpuacct_and_a_v2_tracking_directory(tmp_path):
    v1, track = tmp_path / "cpu", tmp_path / "track"
    v1.mkdir()
    track.mkdir()
    (v1 / "cpuacct.usage").write_text("2500000000\n")
    assert Group(dirs={"cpu": v1}).cpu_seconds() == 2.5
    (track / "cpu.stat").write_text("usage_usec 42\n")
    assert Group(dirs={}, track=track).cpu_seconds() == 42e-6


def test_no_counter(tmp_path):
    assert Group(dirs={"memory": tmp_path}).cpu_seconds() is None
    assert Group().cpu_seconds() is None
