"""A single-node Ray head on 127.0.0.1 for the benchmark and the Ray job tests.

Why one module: the benchmark (bench/compute.py, Ray's job submission as the peer) and
tests/functional/test_jobs_ray.py (Vallum's Ray executor) both need a Ray head that
listens on loopback only and leaves no process behind whatever happens; they had two
copies of the start-up and the clean-up. Loopback: ``--node-ip-address=127.0.0.1`` is
not enough, because Ray swaps a loopback node address for a routable one (and then binds
on all interfaces); RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 keeps 127.0.0.1.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

RAY = Path(sys.executable).parent / "ray"
RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}


def free_ports(count: int, avoid: range) -> list[int]:
    """``count`` distinct free loopback ports outside ``avoid``, held open together while
    chosen (so none repeats). Why: Ray refuses to start when a component's port falls in its
    worker-port range, and two components given one port collide."""
    import socket
    held: list[socket.socket] = []
    ports: list[int] = []
    try:
        while len(ports) < count:
            s = socket.socket()
            held.append(s)
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
            if port not in avoid:
                ports.append(port)
    finally:
        for s in held:
            s.close()
    return ports


def family(root: int) -> set[int]:
    """Live pids in ``root``'s session or process group, or descending from it: everything
    `ray start --head --block` started, even a process that moved to a session of its own."""
    parent: dict[int, int] = {}
    mine: set[int] = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parent[pid] = int(fields[1])
        if root in (int(fields[2]), int(fields[3])):       # pgrp, session
            mine.add(pid)
    grew = True
    while grew:
        grew = False
        for pid, ppid in parent.items():
            if ppid in mine and pid not in mine:
                mine.add(pid)
                grew = True
    return mine


class RayHead:
    """A single-node Ray cluster on 127.0.0.1 in a temp dir, with its job server (the
    dashboard) when ``dashboard``; stopped, with every process it started, on exit,
    whatever happened. ``address`` is the dashboard's URL (job submission), ``gcs`` the
    cluster address (``ray://``-style clients and `vallum serve --compute ray://...`)."""

    def __init__(self, cpus: int, *, dashboard: bool = True) -> None:
        self.cpus = cpus
        self.dashboard = dashboard
        self.proc: subprocess.Popen | None = None
        self.tmp = Path(tempfile.mkdtemp(prefix="vbray", dir="/tmp"))  # short: socket paths
        self.address = ""
        self.gcs = ""

    def __enter__(self) -> RayHead:
        if not RAY.exists():
            raise RuntimeError(f"{RAY} not found (pip install 'ray[default]')")
        lo = 20000 + (os.getpid() % 200) * 200      # worker ports: apart per test worker
        (dash, gcs_port, client, agent, agent_grpc, metrics, runtime_env, node_manager,
         object_manager) = free_ports(9, range(lo, lo + 151))
        log = open(self.tmp / "ray.log", "wb")
        self.proc = subprocess.Popen(
            [str(RAY), "start", "--head", "--block", "--node-ip-address=127.0.0.1",
             f"--port={gcs_port}", f"--ray-client-server-port={client}",
             f"--include-dashboard={'true' if self.dashboard else 'false'}",
             "--dashboard-host=127.0.0.1", f"--dashboard-port={dash}",
             f"--dashboard-agent-listen-port={agent}",
             f"--dashboard-agent-grpc-port={agent_grpc}", f"--metrics-export-port={metrics}",
             f"--runtime-env-agent-port={runtime_env}", f"--node-manager-port={node_manager}",
             f"--object-manager-port={object_manager}", f"--num-cpus={self.cpus}",
             "--disable-usage-stats", f"--min-worker-port={lo}", f"--max-worker-port={lo + 150}",
             f"--temp-dir={self.tmp / 'r'}"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            env=dict(os.environ, **RAY_ENV))
        self.address = f"http://127.0.0.1:{dash}" if self.dashboard else ""
        self.gcs = f"127.0.0.1:{gcs_port}"
        deadline = time.monotonic() + 120
        try:
            while not self._ready():
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("ray start --head failed: "
                                       + (self.tmp / "ray.log").read_text()[-400:])
                time.sleep(0.5)
            return self
        except BaseException:
            self.__exit__()
            raise

    def _ready(self) -> bool:
        if not self.dashboard:
            return b"Ray runtime started" in (self.tmp / "ray.log").read_bytes()
        try:
            with urllib.request.urlopen(self.address + "/api/version", timeout=1) as r:
                return r.status == 200
        except OSError:
            return False

    def __exit__(self, *_exc: Any) -> None:
        proc = self.proc
        if proc is not None:
            pids = family(proc.pid)
            try:
                os.killpg(proc.pid, signal.SIGTERM)   # --block: ray stops what it started
                proc.wait(timeout=5)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
            pids |= family(proc.pid)
            for pid in pids:                          # ... and the rest, now
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
            deadline = time.monotonic() + 10
            while any(os.path.exists(f"/proc/{p}") and _alive(p) for p in pids) \
                    and time.monotonic() < deadline:
                time.sleep(0.1)
            self.proc = None
        shutil.rmtree(self.tmp, ignore_errors=True)


def _alive(pid: int) -> bool:
    """Not yet reaped counts as gone (a zombie holds no port or memory)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
