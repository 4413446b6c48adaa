"""Run one task's process tree in a sandbox: bubblewrap namespaces plus rlimits.

Inside: read-only system directories, the Python install read-only, a private
/tmp, ``/job/{in,code}`` read-only and ``/job/{out,work}`` writable, no network
(a fresh network namespace with only its own loopback), a fresh PID namespace, and
the limits below applied with ``prlimit`` before ``bwrap`` starts (no Python runs
between fork and exec). When the server runs as root, the tree runs as ``nobody``
so root-owned files and other jobs' scratch directories stay closed to it.

The tree lives in its own session/process group; timeout and cancel SIGKILL the
group, and ``--die-with-parent`` plus the PID namespace take every descendant
with it. Without usable namespaces the fallback keeps the rlimits and process
group but has no filesystem or network isolation, so it is only used when the operator
asks for it (VALLUM_SANDBOX=unsafe-single-tenant); otherwise tenant code is refused.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import logging
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from vallum.compute import cgroups, safeio, seccomp
from vallum.compute import spec as spec_limits

log = logging.getLogger("vallum.compute.sandbox")

NOBODY = 65534
# When the server runs as root, every running sandbox gets its own unprivileged uid from
# this range: RLIMIT_NPROC counts per uid, so one task's fork bomb cannot starve another's,
# and even without namespaces one task cannot open another's scratch folder.
UID_BASE = int(os.environ.get("VALLUM_SANDBOX_UID_BASE", "200000"))
UID_COUNT = 4096
JOB = "/job"
# The same ceiling jobs are checked against at submission (spec.LIMITS), enforced again here.
MAX_PROCS = int(os.environ.get("VALLUM_COMPUTE_MAX_PROCS", str(spec_limits.LIMITS["max_procs"][1])))
HELPER_MB = 32
# The platform's disk bandwidth per sandbox on the scratch disk (read and write, MB/s);
# 0: unbounded. Set where the cgroup's io (v2) or blkio (v1) controller is available.
IO_MBPS = int(os.environ.get("VALLUM_COMPUTE_IO_MBPS", "0") or 0)
HELPERS = Path(__file__).parent          # relay.py and fnworker.py, bound read-only
_SYSTEM = ("/usr", "/bin", "/lib", "/lib64", "/sbin", "/etc")
RUNTIME_MOUNT = "/opt/vallum/runtime"    # a task's named runtime (runtimes.py), read-only


@dataclass
class Limits:
    memory_mb: int = 1024
    cpu_seconds: int = 600
    max_files: int = 256
    max_procs: int = 64
    max_file_mb: int = 1024
    wall_time_s: float = 600.0
    cpu: float | None = None           # cores (a cgroup CPU quota), where the host has one
    task_memory_mb: int | None = None  # the task's own memory (tmpfs caps, cgroup) when the
                                       # sandbox's processes need more address space (warm)

    def memory(self) -> int:
        return self.task_memory_mb or self.memory_mb

    def procs(self) -> int:
        """max_procs within the platform's ceiling (VALLUM_COMPUTE_MAX_PROCS)."""
        return max(1, min(self.max_procs, MAX_PROCS))

    def group_spec(self, scratch: Path | None = None) -> cgroups.Spec:
        # The sandbox's own helpers (bubblewrap, the warm worker) ride on top of the task's.
        return cgroups.Spec((self.memory() + HELPER_MB) * 1024 * 1024, self.procs() + 4,
                            self.cpu, io_device=block_device(scratch) if scratch else None,
                            io_bps=IO_MBPS * 1024 * 1024 if IO_MBPS else None)


@dataclass
class Outcome:
    exit_code: int | None
    timed_out: bool = False
    cancelled: bool = False
    reason: str | None = None
    cpu_seconds: float | None = None      # the task's CPU time, when its cgroup told it

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out and not self.cancelled


@dataclass
class Started:
    """A running sandbox: its process, its cgroup (None when none could be made) and the
    PID namespace its processes live in, as the host sees it."""

    proc: asyncio.subprocess.Process
    group: cgroups.Group | None = None
    pidns: str | None = None
    seccomp: bool = False

    def kill(self) -> None:
        """SIGKILL the sandbox: its process group, and everything in its cgroup (which no
        process can leave, whatever it did to its session or parent)."""
        kill_group(self.proc.pid)
        if self.group is not None:
            self.group.kill()

    def notes(self, limits: Limits) -> str:
        """The job-log line saying which limits this host could not enforce ("" if none)."""
        missing = (["memory (including /tmp and /dev/shm)", "process count"]
                   if self.group is None else list(self.group.unenforced))
        if not self.seccomp:
            missing.append("system-call filter (seccomp)")
        if limits.procs() < limits.max_procs:
            missing.append(f"max_procs above the platform's {limits.procs()}")
        return f"vallum: limits not enforced on this host: {', '.join(missing)}\n" if missing else ""


@dataclass
class Scratch:
    """A task's private directory on the host; ``root`` is what the sandbox sees as /job."""

    root: Path
    log_path: Path
    sock_path: Path
    uid: int = NOBODY
    runtime: Path | None = None          # the named runtime's directory (runtimes.py)

    @property
    def inputs(self) -> Path:
        return self.root / "in"

    @property
    def outputs(self) -> Path:
        return self.root / "out"

    @property
    def code(self) -> Path:
        return self.root / "code"

    @property
    def work(self) -> Path:
        return self.root / "work"


def block_device(path: Path) -> str | None:
    """"MAJ:MIN" of the block device holding ``path`` (None for tmpfs, overlay, ...)."""
    try:
        dev = os.stat(path).st_dev
    except OSError:
        return None
    return f"{os.major(dev)}:{os.minor(dev)}" if os.major(dev) else None


def drop_privileges() -> bool:
    return os.geteuid() == 0


def make_scratch(base: Path, name: str, uid: int = NOBODY) -> Scratch:
    """``base/name/`` (0700, owned by the sandbox's uid) with in, out, code, work.

    ``base`` is resolved once here, so every scratch path is canonical: the host's
    file operations (safeio) may then refuse a symlink in any component."""
    base = base.resolve()
    base.mkdir(parents=True, exist_ok=True)
    os.chmod(base, 0o711)  # noqa: S103 - traversable, not listable: each task finds only its own
    owner = uid if drop_privileges() else None
    base_fd = safeio.open_dir(base)
    try:
        holder = safeio.mkdir_at(base_fd, name, 0o700, owner)
    finally:
        os.close(base_fd)
    try:
        # Explicit modes: the gateway runs with umask 077, the sandbox uid must read in/ and code/.
        job = safeio.mkdir_at(holder, "job", 0o700, owner)
        try:
            for sub in ("in", "code", "out", "work"):
                writable = sub in ("out", "work")
                os.close(safeio.mkdir_at(job, sub, 0o700 if writable else 0o755,
                                         owner if writable else None))
        finally:
            os.close(job)
    finally:
        os.close(holder)
    holder_path = base / name
    return Scratch(holder_path / "job", holder_path / "task.log", holder_path / "gw.sock", uid)


def remove_scratch(scratch: Scratch) -> None:
    shutil.rmtree(scratch.root.parent, ignore_errors=True)


class Sandbox:
    """Builds and runs the sandboxed command line. ``mode``: "bwrap"; "unsafe-single-tenant"
    (rlimits and a process group only, by explicit request); anything else refuses to run."""

    def __init__(self, mode: str | None = None) -> None:
        self.mode = mode or detect_mode()
        self.bwrap = shutil.which("bwrap") or "bwrap"
        self.prlimit = shutil.which("prlimit")
        self.setpriv = shutil.which("setpriv")
        self._free_uids = list(range(UID_BASE + UID_COUNT - 1, UID_BASE - 1, -1))

    @property
    def usable(self) -> bool:
        return self.mode in ("bwrap", UNSAFE)

    def refusal(self) -> str:
        """Why tenant code does not run here (the job's reason, the function's error)."""
        return ROOT_REFUSAL if self.mode == ROOT_REFUSED else REFUSAL

    def acquire_uid(self) -> int:
        """A uid no other running sandbox of this process uses (NOBODY when not root)."""
        if not drop_privileges():
            return NOBODY
        return self._free_uids.pop()

    def release_uid(self, uid: int) -> None:
        if drop_privileges() and uid != NOBODY:
            self._free_uids.append(uid)

    def env_paths_root(self, scratch: Scratch | None = None) -> str:
        if self.mode == "bwrap":
            return JOB
        return str(scratch.root) if scratch is not None else "."

    def env_paths(self, scratch: Scratch) -> dict[str, str]:
        base = self.env_paths_root(scratch)
        return {"VALLUM_INPUT": f"{base}/in", "VALLUM_OUTPUT": f"{base}/out",
                "VALLUM_CODE": f"{base}/code", "HOME": f"{base}/work",
                "TMPDIR": "/tmp",  # noqa: S108 - the sandbox's private tmpfs
                "PATH": (f"{self.runtime_root(scratch)}/bin:" if scratch.runtime else "")
                + "/usr/local/bin:/usr/bin:/bin",
                "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1"}

    def runtime_root(self, scratch: Scratch) -> str:
        return RUNTIME_MOUNT if self.mode == "bwrap" else str(scratch.runtime)

    def python_for(self, scratch: Scratch) -> str:
        """The task's interpreter: its named runtime's, else python()."""
        return f"{self.runtime_root(scratch)}/bin/python" if scratch.runtime else python()

    def helper(self, name: str) -> str:
        """Path (as the task sees it) of a helper script shipped with Vallum."""
        return f"/opt/vallum/{name}" if self.mode == "bwrap" else str(helpers_dir() / name)

    def command(self, scratch: Scratch, argv: list[str], env: dict[str, str], limits: Limits,
                *, network: bool = False, fds: dict[str, int] | None = None) -> list[str]:
        """The command line. ``env`` is the task's, never in argv: with bubblewrap it
        reaches only the task, through ``fds["args"]`` (see start); in the unsafe mode it
        is the process's environment. ``fds``: "info" makes bubblewrap report its PID
        namespace, "seccomp" holds the system-call filter."""
        if not self.usable:
            raise SandboxUnavailable(self.refusal())
        cmd: list[str] = []
        if drop_privileges() and self.setpriv:
            cmd += [self.setpriv, f"--reuid={scratch.uid}", f"--regid={scratch.uid}", "--clear-groups",
                    "--inh-caps=-all", "--"]
        if self.prlimit:
            mem = limits.memory_mb * 1024 * 1024
            # CPU: SIGXCPU at the limit (reported as such), SIGKILL a second later.
            cmd += [self.prlimit, f"--as={mem}", f"--cpu={limits.cpu_seconds}:{limits.cpu_seconds + 1}",
                    f"--nofile={limits.max_files}", f"--nproc={limits.procs()}",
                    f"--fsize={limits.max_file_mb * 1024 * 1024}", "--core=0", "--"]
        if self.mode != "bwrap":
            return cmd + argv
        # The task's environment is set by bubblewrap from arguments it reads from a
        # descriptor (--args): never in argv, where ps would show a network task's secret,
        # and never the environment of the host-side helpers (see start).
        b = [self.bwrap, "--unshare-all", "--die-with-parent", "--new-session",
             "--hostname", "vallum-task", "--cap-drop", "ALL"]
        if fds and "args" in fds:
            b += ["--args", str(fds["args"])]
        for path in _SYSTEM:
            if os.path.islink(path):
                b += ["--symlink", os.readlink(path), path]
            elif os.path.isdir(path):
                b += ["--ro-bind", path, path]
        for prefix in python_binds():
            b += ["--ro-bind", prefix, prefix]
        if scratch.runtime is not None:
            b += ["--ro-bind", str(scratch.runtime), RUNTIME_MOUNT]
        tmpfs = str(limits.memory() * 1024 * 1024)   # each capped; the cgroup bounds the sum
        b += ["--proc", "/proc", "--dev", "/dev",
              "--size", tmpfs, "--tmpfs", "/dev/shm",  # noqa: S108 - the sandbox's private tmpfs
              "--size", tmpfs, "--tmpfs", "/tmp", "--dir", JOB,  # noqa: S108 - private
              "--ro-bind", str(scratch.inputs), f"{JOB}/in",
              "--ro-bind", str(scratch.code), f"{JOB}/code",
              "--bind", str(scratch.outputs), f"{JOB}/out",
              "--bind", str(scratch.work), f"{JOB}/work",
              "--ro-bind", str(helpers_dir() / "relay.py"), "/opt/vallum/relay.py",
              "--ro-bind", str(helpers_dir() / "fnworker.py"), "/opt/vallum/fnworker.py",
              "--ro-bind", str(helpers_dir() / "taskworker.py"), "/opt/vallum/taskworker.py"]
        if network:
            b += ["--bind", str(scratch.sock_path), "/run/vallum-gateway.sock"]
        for name in ("info", "seccomp"):
            if fds and name in fds:
                b += [f"--{name}-fd" if name != "seccomp" else "--seccomp", str(fds[name])]
        b += ["--remount-ro", "/", "--chdir", f"{JOB}/work", "--"]
        return cmd + b + argv

    async def start(self, scratch: Scratch, argv: list[str], env: dict[str, str],
                    limits: Limits, *, network: bool = False, stdin=subprocess.DEVNULL,
                    stdout=None, stderr=None) -> Started:
        """Start the sandbox. With bubblewrap it starts held at a gate (see ``gate``): its
        first process joins a fresh cgroup (memory, pids, cpu where available) before
        anything else runs, and every process after it is born inside. Only the
        descriptors named here cross to the child (``close_fds``, ``pass_fds``)."""
        if self.mode != "bwrap":
            proc = await asyncio.create_subprocess_exec(
                *self.command(scratch, argv, env, limits, network=network), stdin=stdin,
                stdout=stdout, stderr=stderr, env=env, cwd=str(scratch.work),
                start_new_session=True, close_fds=True, pass_fds=())
            return Started(proc)
        args = env_args(env)
        info_r, info_w = os.pipe()
        go_r, go_w = os.pipe()
        fds = {"info": info_w, "args": args}
        filt = seccomp.pipe()
        if filt is not None:
            fds["seccomp"] = filt
        try:
            cmd = gate(go_r) + self.command(scratch, argv, env, limits, network=network, fds=fds)
            proc = await asyncio.create_subprocess_exec(
                *cmd, stdin=stdin, stdout=stdout, stderr=stderr, env=HOST_ENV,
                cwd=str(scratch.work), start_new_session=True, close_fds=True,
                pass_fds=(go_r, *fds.values()))
        except BaseException:
            for fd in (info_r, go_w):
                os.close(fd)
            raise
        finally:
            for fd in (go_r, *fds.values()):
                os.close(fd)
        started = Started(proc, seccomp=filt is not None)
        try:
            group = cgroups.create(limits.group_spec(scratch.root))
            started.group = group
            group.add(proc.pid)               # the gate: all that follows is born inside
            os.write(go_w, b"g\n")
            os.close(go_w)
            go_w = -1
            info = await read_json(info_r, 30.0)
            info_r = -1
            ns = info.get("pid-namespace")
            started.pidns = f"pid:[{ns}]" if isinstance(ns, int) else None
        except BaseException:
            started.kill()
            await proc.wait()
            if started.group is not None:
                started.group.remove()
            raise
        finally:
            for fd in (go_w, info_r):
                if fd >= 0:
                    os.close(fd)
        return started

    async def run(self, scratch: Scratch, argv: list[str], env: dict[str, str], limits: Limits,
                  *, network: bool = False, cancel: asyncio.Event | None = None) -> Outcome:
        """Run to completion, timeout or cancel; stdout and stderr go to scratch.log_path."""
        with open(scratch.log_path, "ab") as logf:
            started = await self.start(scratch, argv, env, limits, network=network,
                                       stdout=logf, stderr=subprocess.STDOUT)
            if note := started.notes(limits):
                logf.write(note.encode())
        proc = started.proc
        outcome = Outcome(None)
        waiter = asyncio.ensure_future(proc.wait())
        stopper = asyncio.ensure_future(cancel.wait()) if cancel is not None else None
        try:
            done, _ = await asyncio.wait([w for w in (waiter, stopper) if w is not None],
                                         timeout=limits.wall_time_s,
                                         return_when=asyncio.FIRST_COMPLETED)
            if waiter in done:
                code = proc.returncode
                if code == 1 and _exec_failed(scratch.log_path):
                    code = NOT_FOUND
                outcome = describe(code, oom=started.group is not None
                                   and started.group.oom_kills() > 0, limits=limits)
                return outcome
            started.kill()
            await waiter
            if stopper is not None and stopper in done:
                outcome = Outcome(None, cancelled=True, reason="cancelled")
                return outcome
            outcome = Outcome(None, timed_out=True,
                              reason=f"wall-time limit of {limits.wall_time_s:g}s exceeded")
            return outcome
        finally:
            if stopper is not None:
                stopper.cancel()
            if not waiter.done():
                started.kill()
                await waiter
            if started.group is not None:
                started.group.kill()          # whatever the task left behind it
                outcome.cpu_seconds = started.group.cpu_seconds()    # usage accounting
                started.group.remove()


# The environment of the host-side processes that start a sandbox (the gate, setpriv,
# prlimit, bubblewrap), run as the gateway's user: fixed, never the job's. A job's env
# there would be a root shell's BASH_ENV or SHELLOPTS/PS4, or the loader's LD_PRELOAD.
HOST_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}


def env_args(env: dict[str, str]) -> int:
    """A descriptor holding ``--clearenv --setenv NAME VALUE ...`` for ``bwrap --args``
    (NUL-separated, in memory): the task's whole environment, which no host-side process
    sees and no process listing shows. A NUL in a name or value would split it into
    further bubblewrap options, so it is refused."""
    words = ["--clearenv"]
    for name, value in env.items():
        if "\0" in name or "\0" in value or not name or "=" in name:
            raise ValueError("an environment variable's name or value is not allowed")
        words += ["--setenv", name, value]
    fd = os.memfd_create("vallum-task-env", os.MFD_CLOEXEC)
    try:
        os.write(fd, b"".join(w.encode() + b"\0" for w in words))
        os.lseek(fd, 0, os.SEEK_SET)
    except BaseException:
        os.close(fd)
        raise
    return fd


_GATE = 'fd=$1; shift; IFS= read -r -u "$fd" go; exec {fd}<&-; [ "$go" = g ] || exit 125; exec "$@"'


def gate(fd: int) -> list[str]:
    """A prefix that holds the command until the host writes "g" on ``fd``, and otherwise
    never runs it: if the process that started it dies first (the pipe reaches EOF), the
    gate exits. Why not bubblewrap's ``--block-fd``: bubblewrap goes on at EOF, so a
    sandbox whose owner was killed while it waited ran on outside any cgroup, with no
    parent to die with. bash, because only bash reads and closes a descriptor above 9."""
    return [_bash(), "-c", _GATE, "vallum-gate", str(fd)]


@functools.cache
def _bash() -> str:
    return shutil.which("bash", path="/usr/bin:/bin") or "/bin/bash"


def _exec_failed(log_path: Path) -> bool:
    """bubblewrap could not exec the task's command (it says so and exits 1)."""
    try:
        size = os.stat(log_path).st_size
        return b"bwrap: execvp " in safeio.read_file(log_path, max(0, size - 4096))
    except OSError:
        return False


async def read_json(fd: int, timeout: float | None = None) -> dict:
    """One JSON document from a pipe (bubblewrap's --info-fd, a warm task's answer); the
    descriptor is closed. RuntimeError when the writer closes without a whole document."""
    loop = asyncio.get_running_loop()
    os.set_blocking(fd, False)
    done: asyncio.Future = loop.create_future()
    data = bytearray()

    def readable() -> None:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            return
        data.extend(chunk)
        if done.done():
            return
        try:
            done.set_result(json.loads(data))
        except ValueError:
            if not chunk:
                done.set_exception(RuntimeError("the pipe closed before a whole answer"))

    loop.add_reader(fd, readable)
    try:
        return await asyncio.wait_for(done, timeout)
    finally:
        loop.remove_reader(fd)
        os.close(fd)


def _open_to_others(path: str) -> bool:
    """Can an unprivileged user (the sandbox's ``nobody``) reach and read ``path``?"""
    parts = os.path.realpath(path).split("/")
    for i in range(2, len(parts) + 1):
        try:
            if not os.stat("/".join(parts[:i]) or "/").st_mode & 0o001:
                return False
        except OSError:
            return False
    return True


_HELPER_SCRIPTS = ("relay.py", "fnworker.py", "taskworker.py")


@functools.cache
def helpers_dir() -> Path:
    """Where the sandbox user can read the helper scripts from: the package itself when it
    can reach it, else a shared world-readable copy in the temp dir (the package may live
    under a 0700 directory, e.g. a checkout in `mktemp -d`). The copy is named by its
    content, reused by every server process, and trusted only if we own it, nobody else
    can write to it, and its files equal the package's."""
    if not drop_privileges() or (_open_to_others(str(HELPERS)) and all(
            (HELPERS / n).stat().st_mode & 0o004 for n in _HELPER_SCRIPTS)):
        return HELPERS
    sources = {n: (HELPERS / n).read_bytes() for n in _HELPER_SCRIPTS}
    digest = hashlib.sha256(b"".join(sources[n] for n in _HELPER_SCRIPTS)).hexdigest()[:16]
    target = Path(tempfile.gettempdir()) / f"vallum-helpers-{digest}"
    if not _trusted_copy(target, sources):
        staging = Path(tempfile.mkdtemp(prefix="vallum-helpers-new-"))
        for name, data in sources.items():
            (staging / name).write_bytes(data)
            os.chmod(staging / name, 0o644)
        os.chmod(staging, 0o755)  # noqa: S103 - read-only helper scripts, nothing secret
        try:
            os.rename(staging, target)
        except OSError:           # another process won the race (or a stale entry is there)
            shutil.rmtree(staging, ignore_errors=True)
        if not _trusted_copy(target, sources):
            raise RuntimeError(f"{target} exists but is not a trusted copy of Vallum's helpers")
    return target


def _trusted_copy(path: Path, sources: dict[str, bytes]) -> bool:
    try:
        st = os.lstat(path)
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o022:
            return False
        for name, data in sources.items():
            fst = os.lstat(path / name)
            if (not stat.S_ISREG(fst.st_mode) or fst.st_uid != os.geteuid() or fst.st_mode & 0o022
                    or (path / name).read_bytes() != data):
                return False
    except OSError:
        return False
    return True


def python_binds() -> list[str]:
    """The interpreter's install trees to bind read-only (none when it lives under /usr)."""
    if python() != sys.executable:
        return []
    prefixes = {sys.base_prefix, sys.prefix, os.path.dirname(os.path.realpath(sys.executable))}
    return sorted(p for p in prefixes if not p.startswith("/usr/"))


def python() -> str:
    """The interpreter tasks run: this one (with its packages), unless the sandbox user cannot
    reach it (a root-owned home) -- then the system's python3."""
    if not drop_privileges() or all(_open_to_others(p) for p in (
            sys.base_prefix, sys.prefix, os.path.realpath(sys.executable))):
        return sys.executable
    return shutil.which("python3", path="/usr/local/bin:/usr/bin:/bin") or sys.executable


def pidns_population(ns: str) -> int:
    """How many processes live in the PID namespace ``ns``, counted by the host itself
    (a task's word is never taken for it). A zombie leader whose threads still run is
    found through its threads."""
    count = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.readlink(f"/proc/{entry}/ns/pid") == ns:
                count += 1
            continue
        except OSError:
            pass
        try:
            for tid in os.listdir(f"/proc/{entry}/task"):
                try:
                    if os.readlink(f"/proc/{entry}/task/{tid}/ns/pid") == ns:
                        count += 1
                        break
                except OSError:
                    continue
        except OSError:
            continue
    return count


def kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def describe(code: int | None, *, oom: bool = False, limits: Limits | None = None) -> Outcome:
    """An exit status as the job's reason: OOM, CPU time, file size and "command not
    found" are told apart (``oom``: the sandbox's cgroup counted an OOM kill)."""
    if code is None:
        return Outcome(None, reason="no exit status")
    if oom and code != 0:
        limit = f" of {limits.memory_mb} MB" if limits is not None else ""
        return Outcome(code if code > 0 else 128 + signal.SIGKILL,
                       reason=f"out of memory: killed at the memory limit{limit}")
    if code == 0:
        return Outcome(0)
    if code < 0 or code > 128:
        sig = -code if code < 0 else code - 128
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
        why = {"SIGXCPU": "CPU-time limit exceeded", "SIGXFSZ": "file-size limit exceeded",
               "SIGKILL": "killed (SIGKILL)"}.get(name, f"killed by {name}")
        return Outcome(code if code > 0 else 128 + sig, reason=why)
    if code == NOT_FOUND:
        return Outcome(code, reason="command not found")
    return Outcome(code, reason=f"exit code {code}")


NOT_FOUND = 127


UNSAFE = "unsafe-single-tenant"
REFUSAL = ("tenant compute is refused: this host has no working bubblewrap sandbox. Install it "
           "(apt-get install bubblewrap, or scripts/install-sandbox.sh) and allow unprivileged "
           "user namespaces; only on a single-tenant machine may the gateway instead be started "
           f"with VALLUM_SANDBOX={UNSAFE}")
ROOT_REFUSED = "root-refused"
ALLOW_ROOT_ENV = "VALLUM_ALLOW_ROOT_COMPUTE"
ROOT_REFUSAL = ("tenant compute is refused: the gateway runs as root, and a sandbox escape would "
                "then be root on the host. Run `vallum serve` as an unprivileged service user "
                "(docs/sandbox.md, \"Running as a service user\": bubblewrap with unprivileged user "
                "namespaces, a delegated cgroup, the data directory owned by that user), or start "
                f"it with --allow-root-compute ({ALLOW_ROOT_ENV}=1) to run each task from root "
                "under an unprivileged uid of its own")


class SandboxUnavailable(RuntimeError):
    """No isolating sandbox and no explicit single-tenant override: tenant code never runs."""


def root_allowed() -> bool:
    """May tenant code be started by a gateway running as root (the operator said so)?"""
    return os.environ.get(ALLOW_ROOT_ENV, "") in ("1", "true", "yes")


_MODE: str | None = None


def detect_mode() -> str:
    """"bwrap" when a throw-away sandbox starts here; "unsafe-single-tenant" only when the
    operator asked for it (VALLUM_SANDBOX); "root-refused" when the gateway runs as root
    without --allow-root-compute; otherwise "unavailable": no silent downgrade."""
    global _MODE
    if _MODE is not None:
        return _MODE
    forced = os.environ.get("VALLUM_SANDBOX") or ""
    if os.geteuid() == 0 and not root_allowed():
        _MODE = ROOT_REFUSED
    elif forced in ("bwrap", UNSAFE):
        _MODE = forced
    else:
        if forced:
            log.error("VALLUM_SANDBOX=%s is not a mode (bwrap or %s): ignored", forced, UNSAFE)
        _MODE = "bwrap" if _bwrap_works() else "unavailable"
    if _MODE == UNSAFE:
        log.warning("!!! VALLUM_SANDBOX=%s: tasks run with rlimits and their own process group "
                    "ONLY: no filesystem, network or PID isolation. Never use this with more "
                    "than one tenant. !!!", UNSAFE)
    elif _MODE != "bwrap":
        log.error("!!! %s !!!", ROOT_REFUSAL if _MODE == ROOT_REFUSED else REFUSAL)
    return _MODE


def _bwrap_works() -> bool:
    bwrap = shutil.which("bwrap")
    if not bwrap:
        return False
    probe = [bwrap, "--unshare-all", "--die-with-parent", "--ro-bind", "/", "/",
             "--proc", "/proc", "--dev", "/dev", "true"]
    if drop_privileges() and (setpriv := shutil.which("setpriv")):
        probe = [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}",
                 "--clear-groups", "--", *probe]
    try:
        return subprocess.run(probe, capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False
