"""One cgroup per sandbox: memory (tmpfs pages included), process count and CPU share.

Why: rlimits count per process (or per uid) and never see tmpfs, so a task's /tmp,
/dev/shm and its many processes together could hold far more than its ``memory_mb``.
A cgroup bounds the whole tree. Hosts differ, so this uses what is really there:
cgroup v2 when the controllers are available in the gateway's own cgroup, else the
v1 hierarchies (memory, pids, cpu) that are mounted and writable. What cannot be set
is returned as ``unenforced`` for the job's log; nothing pretends.

The sandbox's processes enter the group before any task code runs (sandbox.py starts
bubblewrap blocked on a pipe, moves it here, then lets it go).
"""

from __future__ import annotations

import contextlib
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

V1 = ("memory", "pids", "cpu")
PERIOD_US = 100_000


@dataclass
class Spec:
    memory_bytes: int
    max_procs: int
    cpu: float | None = None


@dataclass
class Group:
    """The directories of one sandbox's cgroup (one per hierarchy) and what they enforce."""

    dirs: dict[str, Path] = field(default_factory=dict)      # controller -> directory
    unenforced: list[str] = field(default_factory=list)
    v2: bool = False

    def add(self, pid: int) -> None:
        """Move ``pid`` in; a hierarchy that refuses it is dropped and reported unenforced."""
        for d in list(dict.fromkeys(self.dirs.values())):     # v2: one directory for all
            try:
                (d / "cgroup.procs").write_text(str(pid))
            except OSError:
                for other in [k for k, v in self.dirs.items() if v == d]:
                    del self.dirs[other]
                    if _LABEL[other] not in self.unenforced:
                        self.unenforced.append(_LABEL[other])
                with contextlib.suppress(OSError):
                    d.rmdir()

    def members(self) -> int | None:
        """How many processes are in the group (None when it has no directory)."""
        for d in self.dirs.values():
            try:
                return len((d / "cgroup.procs").read_text().split())
            except OSError:
                return None
        return None

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

    def remove(self) -> bool:
        """Remove the group once its processes are gone (False: some still run)."""
        for c, d in list(self.dirs.items()):
            with contextlib.suppress(FileNotFoundError):
                try:
                    d.rmdir()
                except OSError:
                    continue
            del self.dirs[c]
        return not self.dirs


def _mounts() -> tuple[Path | None, dict[str, Path]]:
    """(the cgroup2 mount, {v1 controller: its mount})."""
    v2, v1 = None, {}
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return None, {}
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
    return v2, v1


def _own_paths() -> dict[str, str]:
    """This process's cgroup per hierarchy ("" for v2)."""
    out = {}
    try:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, ctrls, path = line.split(":", 2)
            for c in (ctrls.split(",") if ctrls else [""]):
                out[c] = path
    except (OSError, ValueError):
        pass
    return out


def _write(path: Path, value: str) -> bool:
    try:
        path.write_text(value)
        return True
    except OSError:
        return False


def _parent_v2(mount: Path, own: str) -> Path | None:
    """Where the gateway may make v2 groups with memory and pids: a ``vallum`` leaf-parent
    under its own cgroup (a process may not sit in a group whose controllers it enables,
    so the gateway's own group itself is never used for that)."""
    base = mount / own.lstrip("/")
    if not {"memory", "pids"} <= set((base / "cgroup.controllers").read_text().split()):
        return None
    parent = base / "vallum-sandboxes"
    parent.mkdir(exist_ok=True)
    for c in ("memory", "pids", "cpu"):
        _write(base / "cgroup.subtree_control", f"+{c}")
        _write(parent / "cgroup.subtree_control", f"+{c}")
    enabled = set((parent / "cgroup.subtree_control").read_text().split())
    return parent if {"memory", "pids"} <= enabled else None


_LIVE: list[Group] = []


def sweep() -> None:
    """Remove the groups whose sandboxes have ended, whoever forgot to (a crash path)."""
    _LIVE[:] = [g for g in _LIVE if not g.remove()]


def _stale(parent: Path) -> None:
    """Remove the empty groups of gateway processes that are gone (killed, crashed): each
    group's name carries the pid of the gateway that made it."""
    try:
        entries = list(parent.iterdir())
    except OSError:
        return
    for d in entries:
        parts = d.name.split("-")
        if len(parts) != 3 or parts[0] != "vallum" or not parts[1].isdigit():
            continue
        try:
            os.kill(int(parts[1]), 0)
            continue                         # its gateway still runs
        except ProcessLookupError:
            pass
        except OSError:
            continue
        with contextlib.suppress(OSError):
            d.rmdir()


_SWEPT: set[Path] = set()


def create(spec: Spec) -> Group:
    """A fresh cgroup for one sandbox with ``spec``'s limits (as many as this host allows)."""
    sweep()
    group = _create(spec)
    for parent in {d.parent for d in group.dirs.values()} - _SWEPT:   # once per process
        _SWEPT.add(parent)
        _stale(parent)
    _LIVE.append(group)
    return group


def _create(spec: Spec) -> Group:
    name = f"vallum-{os.getpid()}-{secrets.token_hex(8)}"
    v2mount, v1mounts = _mounts()
    own = _own_paths()
    group = Group()
    if v2mount is not None and "" in own:
        try:
            parent = _parent_v2(v2mount, own[""])
        except OSError:
            parent = None
        if parent is not None:
            d = parent / name
            try:
                d.mkdir()
            except OSError:
                parent = None
        if parent is not None:
            group.v2 = True
            group.dirs = {"memory": d, "pids": d, "cpu": d}
            _set(group, spec, {"memory": ("memory.max", str(spec.memory_bytes)),
                               "pids": ("pids.max", str(spec.max_procs)),
                               "cpu": ("cpu.max", _quota(spec))})
            _write(d / "memory.swap.max", "0")      # absent without swap: nothing to bound
            return group
    for c in V1:
        mount = v1mounts.get(c)
        if mount is None or c not in own:
            continue
        d = mount / own[c].lstrip("/") / name
        try:
            d.mkdir()
        except OSError:
            continue
        group.dirs[c] = d
    _set(group, spec, {"memory": ("memory.limit_in_bytes", str(spec.memory_bytes)),
                       "pids": ("pids.max", str(spec.max_procs)),
                       "cpu": ("cpu.cfs_quota_us", _quota(spec).split()[0])})
    if "memory" in group.dirs:       # swap too, where swap accounting exists (else absent)
        _write(group.dirs["memory"] / "memory.memsw.limit_in_bytes", str(spec.memory_bytes))
    return group


def _quota(spec: Spec) -> str:
    return f"{max(1000, int((spec.cpu or 0) * PERIOD_US))} {PERIOD_US}"


def _set(group: Group, spec: Spec, files: dict[str, tuple[str, str]]) -> None:
    for what, (fname, value) in files.items():
        if what == "cpu" and spec.cpu is None:
            continue
        d = group.dirs.get(what)
        if d is None or not _write(d / fname, value):
            group.unenforced.append(_LABEL[what])


_LABEL = {"memory": "memory (including /tmp and /dev/shm)", "pids": "process count",
          "cpu": "CPU share"}
