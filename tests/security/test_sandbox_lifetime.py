"""A sandbox lives no longer than the process that owns it.

The owner (the gateway, or a Ray worker) may be killed at any moment: while the sandbox
starts, while it waits to be let into its cgroup, or while the task runs. In every case
nothing of it may run on: not bubblewrap, not the task. bubblewrap's own ``--block-fd``
went on when its owner died (the task then ran outside any cgroup with no parent to
die with), so the sandbox now waits at a gate that exits instead; bubblewrap's
``--die-with-parent`` ends a running sandbox, and when the owner dies its watchdog (or, failing
that, the next sandbox made on the host) kills whatever its cgroups still hold.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest

from tests.support import procs
from vallum.compute import cgroups, sandbox

pytestmark = pytest.mark.skipif(sandbox.detect_mode() != "bwrap",
                                reason="bubblewrap cannot create namespaces here")

GATED = """
import os, subprocess, sys
from vallum.compute import sandbox
r, w = os.pipe()
subprocess.Popen(sandbox.gate(r) + ["sh", "-c", 'touch "$0"', sys.argv[1]], pass_fds=(r,),
                 close_fds=True, start_new_session=True)
os.close(r)
if sys.argv[2] != "die":
    os.write(w, sys.argv[2].encode() + b"\\n")
os.kill(os.getpid(), 9)
"""

OWNER = """
import asyncio, os, signal, sys, threading, time
from pathlib import Path
from vallum.compute import sandbox as sbx
delay, base, marker = float(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]

def die():
    time.sleep(delay)
    os.kill(os.getpid(), signal.SIGKILL)

async def main():
    box = sbx.Sandbox()
    scratch = sbx.make_scratch(base, "t", box.acquire_uid())
    threading.Thread(target=die, daemon=True).start()
    await box.run(scratch, ["sh", "-c", f"sleep 300; true {marker}"], box.env_paths(scratch),
                  sbx.Limits(memory_mb=128, wall_time_s=600))
asyncio.run(main())
"""


def _python(*argv: str) -> None:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    subprocess.run([sys.executable, "-c", *argv], env=env, timeout=60,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.mark.parametrize("word", ["die", "x"], ids=["owner-died", "wrong-word"])
def test_the_gate_never_runs_its_command_unless_told(tmp_path, word):
    ran = tmp_path / f"ran-{uuid.uuid4().hex}"
    _python(GATED, str(ran), word)
    assert procs.gone(str(ran)) == {}
    assert not ran.exists()


def test_the_gate_runs_its_command_when_told(tmp_path):
    ran = tmp_path / f"ran-{uuid.uuid4().hex}"
    _python(GATED, str(ran), "g")
    assert procs.gone(str(ran)) == {}
    assert ran.exists()


def test_nothing_of_a_sandbox_outlives_its_owner_killed_at_any_moment(tmp_path):
    """The owner is SIGKILLed from 0 to 100 ms into starting a sandbox (before, at and
    after its gate, during bubblewrap's set-up) and once while the task runs."""
    marker = f"owner-{uuid.uuid4().hex}"
    delays = [i * 0.01 for i in range(11)] + [1.5]
    for i, delay in enumerate(delays):
        _python(OWNER, str(delay), str(tmp_path / f"s{i}"), marker)
    assert procs.gone(marker, str(tmp_path)) == {}      # the owner's watchdog killed it all


def test_the_next_sandbox_kills_what_a_dead_owner_left(tmp_path):
    """Without the watchdog (it too was killed), the next group made on the host kills
    the dead owner's groups: here a process parked in one."""
    probe = cgroups.create(cgroups.Spec(64 << 20, 8))
    parent = probe.dirs["pids"].parent
    assert probe.remove()
    gone = subprocess.Popen(["true"])
    gone.wait()
    marker = f"left-{uuid.uuid4().hex}"
    left = parent / f"vallum-{gone.pid}.1-0000000000000000"
    left.mkdir()
    parked = subprocess.Popen(["sh", "-c", f"sleep 300; true {marker}"], start_new_session=True)
    try:
        (left / "cgroup.procs").write_text(str(parked.pid))
        cgroups.create(cgroups.Spec(64 << 20, 8)).remove()
        assert parked.wait(timeout=10) == -9
        assert not left.exists()
    finally:
        parked.kill()
        parked.wait()
        if left.exists():
            left.rmdir()
