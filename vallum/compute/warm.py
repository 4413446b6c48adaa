"""Warm sandboxes for array jobs: one sandbox per (job, slot) runs that job's tasks in turn.

The host side of taskworker.py. Each task still gets its own directories
(``/job/work/t<n>/{in,out,work}``), a fresh process, its rlimits and wall-time
kill; what is shared is the sandbox (mounts, uid, the warm interpreter), and
only between tasks of the same job. Staging and upload are the runner's.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vallum.client import Client, VallumError
from vallum.compute import runner
from vallum.compute import sandbox as sbx
from vallum.compute.spec import JobSpec

IDLE_S = 5.0


@dataclass
class _Worker:
    job_id: str
    proc: asyncio.subprocess.Process
    scratch: sbx.Scratch
    last_used: float

    def alive(self) -> bool:
        return self.proc.returncode is None


def eligible(spec: JobSpec) -> bool:
    return bool(spec.array) and not spec.network and spec.runtime in ("python", "command")


class WarmPool:
    def __init__(self, box: sbx.Sandbox, scratch_base: Path) -> None:
        self.box, self.scratch_base = box, scratch_base
        self.idle: dict[str, list[_Worker]] = {}
        self._n = itertools.count(1)
        self._reaper: asyncio.Task | None = None
        self.spawned = 0

    def start(self) -> None:
        self._reaper = asyncio.ensure_future(self._reap())

    async def close(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
        for workers in self.idle.values():
            for w in workers:
                await self._stop(w)
        self.idle.clear()

    async def _spawn(self, bundle: runner.TaskBundle, client: Client) -> _Worker:
        spec = bundle.job_spec()
        uid = self.box.acquire_uid()
        try:
            scratch = sbx.make_scratch(self.scratch_base, f"w.{bundle.job_id}.{next(self._n)}", uid)
        except BaseException:
            self.box.release_uid(uid)
            raise
        try:
            code_spec = JobSpec(runtime=spec.runtime, code=spec.code, script=spec.script,
                                code_uri=spec.code_uri, output=spec.output)
            code_bundle = runner.TaskBundle(bundle.job_id, -1, "", 1, code_spec.to_json(), None,
                                            bundle.endpoint, bundle.region, bundle.creds)
            await runner._io(runner.stage_all, client, code_bundle, scratch)
            r = spec.resources
            limits = sbx.Limits(memory_mb=max(r.memory_mb, 256), cpu_seconds=10 ** 7,
                                max_files=max(r.max_files, 64), max_procs=r.max_procs + 4,
                                max_file_mb=r.max_file_mb, wall_time_s=float("inf"))
            env = self.box.env_paths(scratch)
            argv = [sbx.python(), "-u", self.box.helper("taskworker.py")]
            cmd = self.box.command(scratch, argv, env, limits)
            with open(scratch.log_path, "ab") as logf:
                proc = await asyncio.create_subprocess_exec(
                    *cmd, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                    stderr=logf, env=env, cwd=str(scratch.work), start_new_session=True)
            w = _Worker(bundle.job_id, proc, scratch, time.monotonic())
            assert proc.stdout is not None
            hello = await asyncio.wait_for(proc.stdout.readline(), 30)
            if not hello or not json.loads(hello).get("ready"):
                await self._stop(w)
                raise RuntimeError("task worker did not start: " + runner_tail(scratch.log_path))
            self.spawned += 1
            return w
        except BaseException:
            sbx.remove_scratch(scratch)
            self.box.release_uid(uid)
            raise

    async def _stop(self, w: _Worker) -> None:
        sbx.kill_group(w.proc.pid)
        try:
            await asyncio.wait_for(w.proc.wait(), 5)
        except asyncio.TimeoutError:
            pass
        sbx.remove_scratch(w.scratch)
        self.box.release_uid(w.scratch.uid)

    async def run(self, bundle: runner.TaskBundle, cancel: asyncio.Event | None,
                  on_scratch=None) -> runner.TaskResult:
        spec = bundle.job_spec()
        creds = bundle.credentials()
        client = Client(bundle.endpoint, creds.access_key_id, creds.secret_access_key,
                        session_token=creds.session_token, region=bundle.region)
        idle = self.idle.get(bundle.job_id) or []
        w = None
        while idle:
            cand = idle.pop()
            if cand.alive():
                w = cand
                break
            await self._stop(cand)
        if w is None:
            w = await self._spawn(bundle, client)
        keep = False
        n = next(self._n)
        host_dir = w.scratch.work / f"t{n}"
        task = sbx.Scratch(host_dir, host_dir / "task.log", host_dir / "gw.sock", w.scratch.uid)
        try:
            for sub in ("", "in", "out", "work", "code"):
                (host_dir / sub).mkdir()
                os.chmod(host_dir / sub, 0o755 if sub == "in" else 0o700)  # noqa: S103 - umask 077
            if sbx.drop_privileges():
                for sub in ("", "out", "work"):
                    os.chown(host_dir / sub, w.scratch.uid, w.scratch.uid)
            if on_scratch is not None:
                on_scratch(task)
            try:
                await runner._io(runner.stage_all, client, _inputs_only(bundle), task)
            except (VallumError, OSError) as exc:
                keep = True
                return runner.TaskResult("FAILED", None, f"staging inputs failed: {exc}")
            inner = f"{self.box.env_paths_root(w.scratch)}/work/t{n}"
            code = f"{self.box.env_paths_root(w.scratch)}/code"
            env = {"VALLUM_INPUT": f"{inner}/in", "VALLUM_OUTPUT": f"{inner}/out",
                   "VALLUM_CODE": code, "HOME": f"{inner}/work", "TMPDIR": "/tmp",  # noqa: S108 - private tmpfs
                   "PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8",
                   "PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1", **spec.env,
                   "VALLUM_JOB_ID": bundle.job_id, "VALLUM_TASK_INDEX": str(bundle.idx),
                   "VALLUM_ATTEMPT": str(bundle.attempt)}
            if bundle.input_key is not None:
                env["VALLUM_INPUT_KEY"] = bundle.input_key
            if spec.module:
                env["PYTHONPATH"] = code
            r = spec.resources
            req: dict[str, Any] = {
                "id": n, "dir": inner, "env": env, "args": spec.args, "wall": r.wall_time_s,
                "limits": {"memory_mb": r.memory_mb, "cpu_seconds": r.cpu_seconds(),
                           "max_files": r.max_files, "max_file_mb": r.max_file_mb}}
            if spec.runtime == "command":
                req["argv"] = [*spec.command, *spec.args]
            elif spec.module:
                req["module"] = spec.module
            else:
                name = spec.script.rsplit("/", 1)[-1] if spec.script else "main.py"
                req["script"] = f"{code}/{name}"
            assert w.proc.stdin is not None and w.proc.stdout is not None
            w.proc.stdin.write((json.dumps(req) + "\n").encode())
            await w.proc.stdin.drain()
            reader = asyncio.ensure_future(w.proc.stdout.readline())
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
                if stopper is not None and stopper in done:
                    return runner.TaskResult("CANCELLED", None, "cancelled")
                return runner.TaskResult("TIMED_OUT", None,
                                         f"wall-time limit of {r.wall_time_s:g}s exceeded")
            raw = reader.result()
            if not raw:
                return runner.TaskResult("FAILED", None, "the task worker died")
            answer = json.loads(raw)
            keep = True
            if answer.get("timed_out"):
                outcome = sbx.Outcome(None, timed_out=True,
                                      reason=f"wall-time limit of {r.wall_time_s:g}s exceeded")
            else:
                outcome = sbx.describe(answer.get("exit"))
            return await runner.finish(client, spec, bundle.name, task, outcome, creds.secrets(),
                                       bundle.label)
        finally:
            shutil.rmtree(host_dir, ignore_errors=True)
            if keep and w.alive():
                w.last_used = time.monotonic()
                self.idle.setdefault(bundle.job_id, []).append(w)
            else:
                await self._stop(w)

    async def _reap(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            for job_id, workers in list(self.idle.items()):
                keep = [w for w in workers if w.alive() and now - w.last_used < IDLE_S]
                for w in workers:
                    if w not in keep:
                        await self._stop(w)
                if keep:
                    self.idle[job_id] = keep
                else:
                    self.idle.pop(job_id, None)


def _inputs_only(bundle: runner.TaskBundle) -> runner.TaskBundle:
    spec = dict(bundle.spec)
    spec.update(code=None, script=None, code_uri=None)
    return runner.TaskBundle(**{**bundle.__dict__, "spec": spec})


def runner_tail(path: Path) -> str:
    try:
        return path.read_bytes()[-2000:].decode("utf-8", "replace")
    except OSError:
        return ""
