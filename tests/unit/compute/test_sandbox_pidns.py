"""The host's own count of a sandbox's processes (the fallback when it has no cgroup)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time

import pytest

from vallum.compute import sandbox as sbx

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None or os.geteuid() != 0,
                                reason="needs bubblewrap, run as root (no user namespace)")


def _population(ns: str, want, timeout: float = 5.0) -> int:
    deadline = time.monotonic() + timeout
    while not want(n := sbx.pidns_population(ns)) and time.monotonic() < deadline:
        time.sleep(0.02)
    return n


def test_population_counts_every_process_of_the_namespace_and_only_those():
    r, w = os.pipe()
    proc = subprocess.Popen(["bwrap", "--unshare-pid", "--die-with-parent", "--ro-bind", "/", "/",
                             "--proc", "/proc", "--dev", "/dev", "--info-fd", str(w),
                             "sh", "-c", "sleep 30 & sleep 30 & wait"], pass_fds=(w,))
    os.close(w)
    try:
        with os.fdopen(r, "rb") as f:
            ns = f"pid:[{json.loads(f.read())['pid-namespace']}]"
        assert _population(ns, lambda n: n >= 4) == 4      # init, sh and two sleeps
        assert sbx.pidns_population(os.readlink("/proc/self/ns/pid")) > 4   # the host's own
    finally:
        proc.kill()
        proc.wait()
    assert _population(ns, lambda n: n == 0) == 0
