"""Warm sandboxes: pre-started bubblewrap sandboxes that run one owner's tasks in turn.

The host side of taskworker.py. Starting a sandbox and an interpreter costs tens of
milliseconds, most of a tiny task's life; a warm sandbox turns that into a fork.
Reuse is only ever between tasks of the same owner (account, principal and session
level) with the same resource shape, never across owners or accounts, and each task
starts clean:

- its own directories (``/job/work/<random>/{in,out,work}``), fresh process, rlimits
  and wall-time kill, exactly as a cold task;
- after it ends, the worker SIGKILLs every other process of the sandbox (its PID
  namespace) and empties the private /tmp, and the host moves everything the task could
  write (``/job/work/*``, ``/job/out/*``) into a host-only trash (deleted in the
  background) before the sandbox takes another task;
- the code directory (read-only inside) is restaged whenever the job changes.

A task never decides when it is finished: each request goes to the worker with a pipe
made for that task alone (the answer comes back on it, nowhere else), the task's process
holds no descriptor of either, an answer must repeat the request's id and per-task
nonce, and the host itself counts the sandbox's processes (its cgroup, else its PID
namespace: bubblewrap and the worker, nothing else) before it touches the task's files;
otherwise the sandbox is killed first.

Host-side file operations never follow a path the sandbox could have planted: task
directories get unpredictable names, are created by the host (which fails on anything
already there), and everything is read and written through safeio (no symlink in any
component).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import os
import secrets
import shutil
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vallum.client import Client, VallumError
from vallum.compute import runner, safeio, tasklog
from vallum.compute import sandbox as sbx
from vallum.compute.spec import JobSpec

IDLE_S = 5.0


@dataclass
class _Worker:
    key: tuple
    proc: asyncio.subprocess.Process
    scratch: sbx.Scratch
    last_used: float
    code_job: str | None = None        # the job whose code /job/code holds
    pidns: str | None = None           # the sandbox's PID namespace, as the host sees it
    group: Any = None                  # its cgroup (sandbox.Started.group)
    note: str = ""                     # the limits this host cannot enforce, for each task log
    ctl: socket.socket | None = None   # requests go out here, each with its own answer pipe
    served: int = 0
    busy: bool = field(default=False, compare=False)

    def alive(self) -> bool:
        return self.proc.returncode is None


def eligible(spec: JobSpec) -> bool:
    """Tasks a warm sandbox can run: python and command tasks without network (those get a
    relay and credentials of their own)."""
    return not spec.network and spec.runtime in ("python", "command")


def pool_key(bundle: runner.TaskBundle, spec: JobSpec) -> tuple:
    """Who may share a sandbox: one owner (account, principal, session level), one
    resource shape (the sandbox-wide limits are set when it starts) and one runtime (its
    interpreter runs the worker; last in the key)."""
    r = spec.resources
    return (bundle.owner or f"job:{bundle.job_id}", spec.level, r.memory_mb, r.max_procs,
            r.max_files, r.max_file_mb, r.cpu, bundle.runtime)


class WarmPool:
    def __init__(self, box: sbx.Sandbox, scratch_base: Path, max_idle: int = 8) -> None:
        self.box, self.scratch_base = box, scratch_base
        self.idle: dict[tuple, list[_Worker]] = {}
        self.max_idle = max_idle
        self._reaper: asyncio.Task | None = None
        self.spawned = 0
        self.reused = 0
        self.trash = Trash(scratch_base)
        self._emptying: asyncio.Future | None = None

    def _trash_later(self) -> None:
        """Delete wiped directories in the background, one sweep at a time."""
        if self._emptying is None or self._emptying.done():
            self._emptying = asyncio.ensure_future(runner._io(self.trash.empty))

    def start(self) -> None:
        self._reaper = asyncio.ensure_future(self._reap())

    async def close(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
        for workers in self.idle.values():
            for w in workers:
                await self._stop(w)
        self.idle.clear()
        if self._emptying is not None:
            await asyncio.gather(self._emptying, return_exceptions=True)
        await runner._io(self.trash.empty)

    # ------------------------------------------------------------ workers
    async def _spawn(self, key: tuple, spec: JobSpec) -> _Worker:
        uid = self.box.acquire_uid()
        try:
            scratch = sbx.make_scratch(self.scratch_base, f"w.{secrets.token_hex(8)}", uid)
        except BaseException:
            self.box.release_uid(uid)
            raise
        scratch.runtime = Path(key[-1]) if key[-1] else None      # pool_key: the runtime
        try:
            r = spec.resources
            limits = sbx.Limits(memory_mb=max(r.memory_mb, 256), cpu_seconds=10 ** 7,
                                max_files=max(r.max_files, 64), max_procs=r.max_procs + 4,
                                max_file_mb=r.max_file_mb, wall_time_s=float("inf"), cpu=r.cpu,
                                task_memory_mb=r.memory_mb)
            env = self.box.env_paths(scratch)
            env["VALLUM_WARM_PIDNS"] = "1"         # the worker may clear its PID namespace
            argv = [self.box.python_for(scratch), "-u", self.box.helper("taskworker.py")]
            ctl, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            try:
                with open(scratch.log_path, "ab") as logf:
                    started = await self.box.start(scratch, argv, env, limits,
                                                   stdin=theirs.fileno(), stdout=logf,
                                                   stderr=logf)
            except BaseException:
                ctl.close()
                raise
            finally:
                theirs.close()
            ctl.setblocking(False)
            w = _Worker(key, started.proc, scratch, time.monotonic(), pidns=started.pidns,
                        group=started.group, note=started.notes(limits), ctl=ctl)
            try:
                hello = await asyncio.wait_for(asyncio.get_running_loop().sock_recv(ctl, 4096), 30)
            except (OSError, asyncio.TimeoutError):
                hello = b""
            if not hello or not _parse(hello).get("ready"):
                await self._kill(w)
                if w.group is not None:
                    w.group.remove()
                raise RuntimeError("task worker did not start: " + runner_tail(scratch.log_path))
            self.spawned += 1
            return w
        except BaseException:
            sbx.remove_scratch(scratch)
            self.box.release_uid(uid)
            raise

    async def _kill(self, w: _Worker) -> None:
        """Kill the sandbox; once bubblewrap has exited its PID namespace is empty."""
        if w.ctl is not None:
            w.ctl.close()
        sbx.kill_group(w.proc.pid)
        if w.group is not None:
            w.group.kill()                 # all of it, whatever left the process group
        try:
            await asyncio.wait_for(w.proc.wait(), 5)
        except asyncio.TimeoutError:
            pass

    def _idle(self, w: _Worker) -> bool:
        """The host's own check that nothing but bubblewrap (outside and as the namespace's
        init) and the worker runs: the sandbox's cgroup, which no process can leave, or
        else its PID namespace counted through /proc."""
        if not w.alive():
            return False
        members = w.group.members() if w.group is not None else None
        if members is not None:
            return members == 3
        return w.pidns is not None and sbx.pidns_population(w.pidns) == 2

    async def _stop(self, w: _Worker) -> None:
        await self._kill(w)
        await runner._io(sbx.remove_scratch, w.scratch)
        if w.group is not None:
            w.group.remove()
        self.box.release_uid(w.scratch.uid)

    async def _take(self, key: tuple, spec: JobSpec) -> _Worker:
        idle = self.idle.get(key) or []
        while idle:
            w = idle.pop()
            if w.alive():
                self.reused += 1
                return w
            await self._stop(w)
        return await self._spawn(key, spec)

    def _give_back(self, w: _Worker) -> None:
        w.last_used = time.monotonic()
        self.idle.setdefault(w.key, []).append(w)
        total = sum(len(v) for v in self.idle.values())
        if total > self.max_idle:           # too many owners' sandboxes idle: stop the oldest
            oldest = min((x for v in self.idle.values() for x in v), key=lambda x: x.last_used)
            self.idle[oldest.key].remove(oldest)
            asyncio.ensure_future(self._stop(oldest))

    # ------------------------------------------------------------ one task
    async def run(self, bundle: runner.TaskBundle, cancel: asyncio.Event | None,
                  on_scratch=None) -> runner.TaskResult:
        spec = bundle.job_spec()
        creds = bundle.credentials()
        client = runner.client_for(bundle)
        w = await self._take(pool_key(bundle, spec), spec)
        keep = False
        name = "t" + secrets.token_hex(8)
        host_dir = w.scratch.work / name
        task = sbx.Scratch(host_dir, host_dir / "task.log", host_dir / "gw.sock", w.scratch.uid)
        try:
            try:
                await runner._io(_prepare_task, w, bundle, client, task)
            except (VallumError, OSError) as exc:
                keep = True
                return runner.TaskResult("FAILED", None, f"staging inputs failed: {runner.error_text(exc)}")
            if on_scratch is not None:
                on_scratch(task)
            root = self.box.env_paths_root(w.scratch)
            inner, code = f"{root}/work/{name}", f"{root}/code"
            env = {"VALLUM_INPUT": f"{inner}/in", "VALLUM_OUTPUT": f"{inner}/out",
                   "VALLUM_CODE": code, "HOME": f"{inner}/work", "TMPDIR": "/tmp",  # noqa: S108 - private tmpfs
                   "PATH": self.box.env_paths(w.scratch)["PATH"], "LANG": "C.UTF-8",
                   "PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1", **spec.env,
                   "VALLUM_JOB_ID": bundle.job_id, "VALLUM_TASK_INDEX": str(bundle.idx),
                   "VALLUM_ATTEMPT": str(bundle.attempt)}
            if bundle.input_key is not None:
                env["VALLUM_INPUT_KEY"] = bundle.input_key
            if spec.module:
                env["PYTHONPATH"] = code
            r = spec.resources
            nonce = secrets.token_hex(16)
            req: dict[str, Any] = {
                "id": name, "nonce": nonce, "dir": inner, "env": env, "args": spec.args, "wall": r.wall_time_s,
                "limits": {"memory_mb": r.memory_mb, "cpu_seconds": r.cpu_seconds(),
                           "max_files": r.max_files, "max_file_mb": r.max_file_mb}}
            if spec.runtime == "command":
                req["argv"] = [*spec.command, *spec.args]
            elif spec.module:
                req["module"] = spec.module
            else:
                script = spec.script.rsplit("/", 1)[-1] if spec.script else "main.py"
                req["script"] = f"{code}/{script}"
            ooms = w.group.oom_kills() if w.group is not None else 0
            cpu0 = w.group.cpu_seconds() if w.group is not None else None
            answers, theirs = os.pipe()            # this task's answer, and nothing else
            try:
                assert w.ctl is not None
                socket.send_fds(w.ctl, [json.dumps(req).encode()], [theirs])
            except OSError:
                os.close(answers)
                return runner.TaskResult("FAILED", None, "the task worker could not be reached")
            finally:
                os.close(theirs)
            reader = asyncio.ensure_future(sbx.read_json(answers))
            stopper = asyncio.ensure_future(cancel.wait()) if cancel is not None else None
            try:
                done, _ = await asyncio.wait([x for x in (reader, stopper) if x],
                                             timeout=r.wall_time_s + 10,
                                             return_when=asyncio.FIRST_COMPLETED)
            finally:
                if stopper is not None:
                    stopper.cancel()
            if reader not in done:
                reader.cancel()
                state, why = ("CANCELLED", "cancelled") if stopper is not None and \
                    stopper in done else ("TIMED_OUT", f"wall-time limit of {r.wall_time_s:g}s exceeded")
                return runner.TaskResult(state, None, why, log=tasklog.ended(
                    w.scratch.work, [name, "task.log"], creds.secrets(), state, why))
            try:
                answer = reader.result()
            except RuntimeError:
                answer = None
            oom = w.group is not None and w.group.oom_kills() > ooms
            if not isinstance(answer, dict):
                why = (f"out of memory: killed at the memory limit of {r.memory_mb} MB" if oom
                       else "the task worker died")
                return runner.TaskResult("FAILED", None, why, log=tasklog.ended(
                    w.scratch.work, [name, "task.log"], creds.secrets(), "FAILED", why))
            if (answer.get("id") != name
                    or not hmac.compare_digest(str(answer.get("nonce", "")), nonce)):
                await self._kill(w)
                why = "the sandbox answered for another task"
                return runner.TaskResult("FAILED", None, why, log=tasklog.ended(
                    w.scratch.work, [name, "task.log"], creds.secrets(), "FAILED", why))
            # Finished only when the host sees the task's processes gone, never on its word.
            keep = answer.get("clean") is True and await runner._io(self._idle, w)
            if not keep:
                await self._kill(w)
            cpu1 = w.group.cpu_seconds() if w.group is not None else None
            if answer.get("timed_out"):
                outcome = sbx.Outcome(None, timed_out=True,
                                      reason=f"wall-time limit of {r.wall_time_s:g}s exceeded")
            else:
                exit_code = answer.get("exit")
                outcome = sbx.describe(exit_code if isinstance(exit_code, int) else None, oom=oom,
                                       limits=sbx.Limits(memory_mb=r.memory_mb))
            if cpu0 is not None and cpu1 is not None:     # the worker's cgroup, over this task
                outcome.cpu_seconds = max(0.0, cpu1 - cpu0)
            w.served += 1
            return await runner.finish(client, spec, bundle.name, task, outcome, creds.secrets(),
                                       bundle.label)
        finally:
            if keep and w.alive():
                try:
                    await runner._io(_wipe, w, self.trash.ensure())
                except OSError:
                    keep = False
                self._trash_later()
            if keep and w.alive():
                self._give_back(w)
            else:
                await self._stop(w)

    async def _reap(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            for key, workers in list(self.idle.items()):
                keep = [w for w in workers if w.alive() and now - w.last_used < IDLE_S]
                for w in workers:
                    if w not in keep:
                        await self._stop(w)
                if keep:
                    self.idle[key] = keep
                else:
                    self.idle.pop(key, None)


def _parse(raw: bytes) -> dict:
    try:
        answer = json.loads(raw)
    except ValueError:
        return {}
    return answer if isinstance(answer, dict) else {}


def _prepare_task(w: _Worker, bundle: runner.TaskBundle, client: Client, task: sbx.Scratch) -> None:
    """(Re)stage the job's code when the job changed, make the task's directories (the
    host creates them: anything already there is refused), stage its inputs."""
    if w.code_job != bundle.job_id:
        w.code_job = None
        _empty(w.scratch.code)
        runner.stage_code(client, bundle.job_spec(), w.scratch.code)
        w.code_job = bundle.job_id
    owner = w.scratch.uid if sbx.drop_privileges() else None
    work = safeio.open_dir(w.scratch.work)
    try:                                 # root-owned, made by the host: nothing to plant
        root = safeio.mkdir_at(work, task.root.name, 0o711)  # noqa: S103 - traversable only
    finally:
        os.close(work)
    try:
        for sub, mode in (("in", 0o755), ("out", 0o700), ("work", 0o700)):
            os.close(safeio.mkdir_at(root, sub, mode, None if sub == "in" else owner))
        fd = os.open(task.log_path.name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
                     0o600, dir_fd=root)
        if owner is not None:
            os.fchown(fd, owner, owner)
        os.write(fd, w.note.encode())
        os.close(fd)
    finally:
        os.close(root)
    runner.stage_inputs(client, bundle, task)


def _empty(path: Path) -> None:
    """Remove everything inside ``path`` (never following links), keep ``path``."""
    with os.scandir(path) as it:
        for entry in it:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                try:
                    os.unlink(entry.path)
                except FileNotFoundError:
                    pass


def _wipe(w: _Worker, trash: Path) -> None:
    """Between tasks: nothing a task wrote survives for the next one. Everything it could
    write is renamed away into ``trash`` (host-only, outside every sandbox) at once; the
    slow recursive delete happens later, off the task path (Trash.empty)."""
    for folder in (w.scratch.work, w.scratch.outputs):
        with os.scandir(folder) as it:
            for entry in it:
                os.rename(entry.path, trash / secrets.token_hex(12))


class Trash:
    """Where wiped task directories wait to be deleted, in a background thread."""

    def __init__(self, base: Path) -> None:
        self.path = base / "trash"

    def ensure(self) -> Path:
        self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
        return self.path

    def empty(self) -> None:
        if self.path.exists():
            _empty(self.path)


def runner_tail(path: Path) -> str:
    try:
        return runner.read_nofollow(path)[-2000:].decode("utf-8", "replace")
    except OSError:
        return ""
