"""One cgroup per sandbox: memory (tmpfs pages included), process count, CPU and I/O.

Why: rlimits count per process (or per uid) and never see tmpfs, so a task's /tmp,
/dev/shm and its many processes together could hold far more than its ``memory_mb``.
A cgroup bounds the whole tree, and is the one handle that reaches every process of
it, whatever they did to their sessions and parents: a sandbox is killed through its
group (``kill``). Hosts differ, so this uses what is really there, detected at run
time: cgroup v2 when its controllers are available in the gateway's own cgroup, else
the v1 hierarchies (memory, pids, cpu, blkio) that are mounted and writable; on a
hybrid host (v1 controllers, an empty v2 hierarchy beside them) the group also gets a
v2 directory, only for ``cgroup.kill``. What cannot be set is returned as
``unenforced`` for the job's log; nothing pretends.

The sandbox's first process enters the group before anything else runs (sandbox.gate),
so every later process is born inside. Each group's name carries its creator's pid and
start time. When the creator dies (a Ray worker killed by a cancel, a gateway killed
with -9) its groups are killed at once by its watchdog (a small process started with
the first group, which waits for the end of a pipe only the creator holds), and in any
case by the next ``create`` on the host: bubblewrap's ``--die-with-parent`` alone
leaves a window while bubblewrap sets up, in which its inner process outlives it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

V1 = ("memory", "pids", "cpu", "blkio")
V2 = ("memory", "pids", "cpu", "io")
PERIOD_US = 100_000
PARENT = "vallum-sandboxes"       # v2: the groups' parent under the gateway's own cgroup
LEAF = "vallum-gateway"           # v2: where the gateway moves itself (no internal processes)


@dataclass
class Spec:
    memory_bytes: int
    max_procs: int
    cpu: float | None = None
    io_device: str | None = None      # "MAJ:MIN" of the scratch disk (None: not a block device)
    io_bps: int | None = None         # read and write bytes/s on it (None: unbounded)


@dataclass
class Group:
    """The directories of one sandbox's cgroup (one per hierarchy) and what they enforce."""

    dirs: dict[str, Path] = field(default_factory=dict)      # controller -> directory
    unenforced: list[str] = field(default_factory=list)
    v2: bool = False
    track: Path | None = None       # a v2 directory holding the same processes (cgroup.kill)

    def _all(self) -> list[Path]:
        return list(dict.fromkeys([*self.dirs.values(), *([self.track] if self.track else [])]))

    def add(self, pid: int) -> None:
        """Move ``pid`` in; a hierarchy that refuses it is dropped and reported unenforced."""
        for d in self._all():
            try:
                (d / "cgroup.procs").write_text(str(pid))
            except OSError:
                if d == self.track and d not in self.dirs.values():
                    self.track = None
                for other in [k for k, v in self.dirs.items() if v == d]:
                    del self.dirs[other]
                    if _LABEL[other] not in self.unenforced:
                        self.unenforced.append(_LABEL[other])
                with contextlib.suppress(OSError):
                    d.rmdir()

    def members(self) -> int | None:
        """How many processes are in the group (None when it has no directory)."""
        for d in self._all():
            try:
                return len((d / "cgroup.procs").read_text().split())
            except OSError:
                return None
        return None

    def kill(self) -> None:
        """SIGKILL every process in the group: atomically with v2's ``cgroup.kill``, else
        by rounds over ``cgroup.procs`` until it is empty (a forking tree is caught by
        the next round; its pids limit bounds how many rounds)."""
        kill(self._all())

    def oom_kills(self) -> int:
        """How many processes of this group the kernel has killed for memory."""
        d = self.dirs.get("memory")
        if d is None:
            return 0
        name = "memory.events" if self.v2 else "memory.oom_control"
        try:
            for line in (d / name).read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
        except (OSError, ValueError):
            pass
        return 0

    def cpu_seconds(self) -> float | None:
        """CPU time the group's processes used (user + system), for usage accounting:
        v2's ``cpu.stat`` (there whether or not the cpu controller is on), else v1's
        ``cpuacct.usage``; None when neither can be read."""
        for d in self._all():
            try:
                if self.v2 or d == self.track:
                    for line in (d / "cpu.stat").read_text().splitlines():
                        key, _, value = line.partition(" ")
                        if key == "usage_usec":
                            return int(value) / 1e6
                else:
                    return int((d / "cpuacct.usage").read_text()) / 1e9
            except (OSError, ValueError):
                continue
        return None

    def remove(self) -> bool:
        """Remove the group once its processes are gone (False: some still run)."""
        left = []
        for d in self._all():
            try:
                d.rmdir()
            except FileNotFoundError:
                pass
            except OSError:
                left.append(d)
        self.dirs = {c: d for c, d in self.dirs.items() if d in left}
        self.track = self.track if self.track in left else None
        return not left


def kill(dirs: list[Path], rounds: int = 50) -> None:
    """SIGKILL everything in ``dirs`` (cgroup directories); see Group.kill."""
    for d in dirs:
        with contextlib.suppress(OSError):
            (d / "cgroup.kill").write_text("1")
    for _ in range(rounds):
        alive = False
        for d in dirs:
            try:
                pids = [int(p) for p in (d / "cgroup.procs").read_text().split()]
            except (OSError, ValueError):
                continue
            for pid in pids:
                alive = True
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
        if not alive:
            return


@dataclass
class Host:
    """Where this process's cgroups are: the cgroup2 mount, the v1 controllers' mounts
    and this process's path in each hierarchy ("" for v2). Read from /proc by ``probe``;
    a test may point it at a directory laid out like a cgroupfs."""

    v2: Path | None
    v1: dict[str, Path]
    own: dict[str, str]


def probe() -> Host:
    v2, v1 = None, {}
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        lines = []
    for line in lines:
        left, _, right = line.partition(" - ")
        fields, rest = left.split(), right.split()
        if len(fields) < 5 or len(rest) < 3:
            continue
        if rest[0] == "cgroup2":
            v2 = Path(fields[4])
        elif rest[0] == "cgroup":
            for opt in rest[2].split(","):
                if opt in V1:
                    v1[opt] = Path(fields[4])
    own = {}
    try:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, ctrls, path = line.split(":", 2)
            for c in (ctrls.split(",") if ctrls else [""]):
                own[c] = path
    except (OSError, ValueError):
        pass
    return Host(v2, v1, own)


def _write(path: Path, value: str) -> bool:
    try:
        path.write_text(value)
        return True
    except OSError:
        return False


def _parent_v2(host: Host) -> tuple[Path, set[str]] | None:
    """Where the gateway may make v2 groups with memory and pids, and which controllers
    their children get: a parent under its own cgroup. A cgroup with processes may not
    enable controllers for its children (no internal processes), so when enabling fails
    the gateway first moves itself into a leaf beside the parent (what a systemd unit
    with ``Delegate=yes`` allows)."""
    assert host.v2 is not None
    base = host.v2 / host.own[""].lstrip("/")
    available = set((base / "cgroup.controllers").read_text().split())
    if not {"memory", "pids"} <= available:
        return None
    wanted = [c for c in V2 if c in available]
    if not {"memory", "pids"} <= _enable(base, wanted):
        leaf = base / LEAF
        leaf.mkdir(exist_ok=True)
        if (not _write(leaf / "cgroup.procs", str(os.getpid()))
                or not {"memory", "pids"} <= _enable(base, wanted)):
            return None
    parent = base / PARENT
    parent.mkdir(exist_ok=True)
    enabled = _enable(parent, wanted)
    return (parent, enabled) if {"memory", "pids"} <= enabled else None


def _enable(d: Path, controllers: list[str]) -> set[str]:
    """Enable ``controllers`` for ``d``'s children; those that are (the kernel refuses
    the write of one it cannot enable, so success is the answer)."""
    return {c for c in controllers if _write(d / "cgroup.subtree_control", f"+{c}")}


def _track_v2(host: Host, name: str) -> Path | None:
    """A v2 directory for ``cgroup.kill`` on a hybrid host (no controllers needed)."""
    if host.v2 is None or "" not in host.own:
        return None
    try:
        parent = host.v2 / host.own[""].lstrip("/") / PARENT
        parent.mkdir(exist_ok=True)
        (parent / name).mkdir()
    except OSError:
        return None
    return parent / name


_LIVE: list[Group] = []


def sweep() -> None:
    """Remove the groups whose sandboxes have ended, whoever forgot to (a crash path)."""
    _LIVE[:] = [g for g in _LIVE if not g.remove()]


def _started(pid: int) -> str | None:
    """A process's start time (clock ticks since boot): with the pid, who it is."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


_ME = f"{os.getpid()}.{_started(os.getpid())}"


def _creator_gone(name: str) -> bool:
    """Does the group ``name`` (vallum-PID.START-HEX, or vallum-PID-HEX) belong to a
    process that no longer runs?"""
    parts = name.split("-")
    if len(parts) != 3 or parts[0] != "vallum":
        return False
    pid, _, start = parts[1].partition(".")
    if not pid.isdigit():
        return False
    now = _started(int(pid))
    return now is None or (bool(start) and now != start)


def _stale(parent: Path) -> None:
    """Kill and remove the groups of creators that are gone (a Ray worker killed with its
    sandbox still starting, a gateway killed with -9): nothing of theirs runs on."""
    try:
        entries = list(parent.iterdir())
    except OSError:
        return
    for d in entries:
        if d.is_dir() and _creator_gone(d.name):
            kill([d], rounds=5)
            for _ in range(20):             # the killed take a moment to leave it (rare)
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.005)


_WATCH = r"""
import os, sys, time
sys.stdin.buffer.read()                     # returns when the creator is gone
prefix = "vallum-" + sys.argv[1] + "-"
for parent in sys.argv[2:]:
    try:
        names = [n for n in os.listdir(parent) if n.startswith(prefix)]
    except OSError:
        continue
    for n in names:
        d = os.path.join(parent, n)
        try:
            with open(os.path.join(d, "cgroup.kill"), "w") as f:
                f.write("1")
        except OSError:
            pass
        for _ in range(100):
            try:
                with open(os.path.join(d, "cgroup.procs")) as f:
                    pids = f.read().split()
            except OSError:
                break
            for p in pids:
                try:
                    os.kill(int(p), 9)
                except OSError:
                    pass
            try:
                os.rmdir(d)
                break
            except OSError:
                time.sleep(0.02)
"""
_WATCHED: dict[str, tuple[subprocess.Popen, int]] = {}


def _watch(parents: set[Path]) -> None:
    """Start this process's watchdog for ``parents`` (once per creator and set of parents)."""
    key = f"{_ME}|{'|'.join(sorted(map(str, parents)))}"
    if key in _WATCHED or not parents:
        return
    r, w = os.pipe()                       # the write end stays here only (O_CLOEXEC)
    try:
        proc = subprocess.Popen([sys.executable, "-I", "-S", "-c", _WATCH, _ME, *map(str, parents)],
                                stdin=r, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                close_fds=True, pass_fds=(), start_new_session=True)
    except OSError:
        os.close(w)
        return
    finally:
        os.close(r)
    _WATCHED[key] = (proc, w)


def create(spec: Spec, host: Host | None = None) -> Group:
    """A fresh cgroup for one sandbox with ``spec``'s limits (as many as this host allows)."""
    global _ME
    sweep()
    if not _ME.startswith(f"{os.getpid()}."):          # a forked child (a Ray worker)
        _ME = f"{os.getpid()}.{_started(os.getpid())}"
    group = _create(spec, host or probe(), f"vallum-{_ME}-{secrets.token_hex(8)}")
    parents = {d.parent for d in group._all()}
    for parent in parents:
        _stale(parent)
    _watch(parents)
    _LIVE.append(group)
    return group


def _create(spec: Spec, host: Host, name: str) -> Group:
    group = Group()
    if host.v2 is not None and "" in host.own:
        try:
            found = _parent_v2(host)
            if found is not None:
                (found[0] / name).mkdir()
        except OSError:
            found = None
        if found is not None:
            d = found[0] / name
            group.v2 = True
            group.dirs = {c: d for c in V2 if c in found[1]}
            group.track = d
            _set(group, spec, {"memory": ("memory.max", str(spec.memory_bytes)),
                               "pids": ("pids.max", str(spec.max_procs)),
                               "cpu": ("cpu.max", _quota(spec)),
                               "io": ("io.max", f"{spec.io_device} rbps={spec.io_bps} "
                                                f"wbps={spec.io_bps}")})
            _write(d / "memory.swap.max", "0")      # absent without swap: nothing to bound
            return group
    for c in V1:
        mount = host.v1.get(c)
        if mount is None or c not in host.own or (c == "blkio" and not spec.io_bps):
            continue
        d = mount / host.own[c].lstrip("/") / name
        try:
            d.mkdir()
        except OSError:
            continue
        group.dirs[c] = d
    throttle = f"{spec.io_device} {spec.io_bps}"
    _set(group, spec, {"memory": ("memory.limit_in_bytes", str(spec.memory_bytes)),
                       "pids": ("pids.max", str(spec.max_procs)),
                       "cpu": ("cpu.cfs_quota_us", _quota(spec).split()[0]),
                       "blkio": ("blkio.throttle.read_bps_device", throttle)})
    if "memory" in group.dirs:       # swap too, where swap accounting exists (else absent)
        _write(group.dirs["memory"] / "memory.memsw.limit_in_bytes", str(spec.memory_bytes))
    if "blkio" in group.dirs and spec.io_bps and spec.io_device:
        _write(group.dirs["blkio"] / "blkio.throttle.write_bps_device", throttle)
    if group.dirs:
        group.track = _track_v2(host, name)
    return group


def _quota(spec: Spec) -> str:
    return f"{max(1000, int((spec.cpu or 0) * PERIOD_US))} {PERIOD_US}"


def _set(group: Group, spec: Spec, files: dict[str, tuple[str, str]]) -> None:
    for what, (fname, value) in files.items():
        if what == "cpu" and spec.cpu is None:
            continue
        if what in ("io", "blkio"):
            if not spec.io_bps:
                continue                    # not asked for
            if not spec.io_device:          # scratch is not on a block device (tmpfs, ...)
                group.unenforced.append(_LABEL[what])
                continue
        d = group.dirs.get(what)
        if d is None or not _write(d / fname, value):
            group.unenforced.append(_LABEL[what])


_LABEL = {"memory": "memory (including /tmp and /dev/shm)", "pids": "process count",
          "cpu": "CPU share", "io": "disk bandwidth", "blkio": "disk bandwidth"}
