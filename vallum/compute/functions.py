"""Functions: named handlers ``module.func(event, context)`` served by warm sandboxed workers.

A worker is one sandboxed interpreter that imported the handler once; it serves
invocations one at a time and stays warm for ``idle_s`` seconds, so repeated
invocations skip interpreter start and imports. Workers belong to one revision
of one function: updating or deleting the function retires them.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from vallum.compute import sandbox as sbx
from vallum.compute import tasklog
from vallum.compute.spec import (
    JobSpec,
    Quota,
    Resources,
    SpecError,
    parse_resources,
    parse_uri,
    parse_venv,
)

log = logging.getLogger("vallum.compute.functions")
_HANDLER_FIELDS = {"runtime", "code", "code_uri", "handler", "env", "resources", "network",
                   "timeout_s", "max_workers", "idle_s", "inputs", "output", "level", "venv"}


class FunctionError(Exception):
    """The handler raised (or the worker died): ``error`` is {"type", "message", "trace"}."""

    def __init__(self, error: dict[str, Any], log: str = "") -> None:
        super().__init__(f"{error.get('type')}: {error.get('message')}")
        self.error = error
        self.log = log                    # what the failed call printed


@dataclass
class FunctionSpec:
    handler: str
    runtime: str = "python"
    code: str | None = None          # inline source of module "main"
    code_uri: str | None = None      # s3:// prefix staged as the code directory
    env: dict[str, str] = field(default_factory=dict)
    resources: Resources = field(default_factory=Resources)
    network: bool = False
    timeout_s: float = 60.0
    max_workers: int = 2
    idle_s: float = 300.0
    inputs: list[str] = field(default_factory=list)
    output: str | None = None
    level: str | None = None
    venv: str | None = None          # a named runtime (runtimes.py); None: system Python

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> FunctionSpec:
        doc = dict(doc)
        doc["resources"] = Resources(**doc.get("resources") or {})
        return cls(**doc)

    def as_job(self) -> JobSpec:
        """The JobSpec view credentials are scoped from."""
        return JobSpec(runtime="function", inputs=self.inputs, output=self.output,
                       code_uri=self.code_uri, network=self.network, level=self.level)


def parse_function(doc: Any, quota: Quota) -> FunctionSpec:
    if not isinstance(doc, dict):
        raise SpecError("a function spec must be a JSON object")
    unknown = set(doc) - _HANDLER_FIELDS
    if unknown:
        raise SpecError(f"unknown field(s): {', '.join(sorted(unknown))}")
    if doc.get("runtime", "python") != "python":
        raise SpecError(f"unknown runtime {doc.get('runtime')!r}: functions use python",
                        "UnknownRuntime")
    handler = doc.get("handler")
    if not isinstance(handler, str) or "." not in handler or not all(
            p.isidentifier() for p in handler.split(".")):
        raise SpecError("handler must be module.func, e.g. main.handler")
    if (doc.get("code") is None) == (doc.get("code_uri") is None):
        raise SpecError("a function needs exactly one of code (inline, module 'main') or "
                        "code_uri (s3:// prefix)")
    spec = FunctionSpec(handler=handler)
    if doc.get("code") is not None:
        if not isinstance(doc["code"], str) or len(doc["code"]) > 1 << 20:
            raise SpecError("code must be a string of at most 1 MiB")
        spec.code = doc["code"]
    if doc.get("code_uri") is not None:
        uri = parse_uri(doc["code_uri"], "code_uri")
        if not uri.is_prefix:
            raise SpecError("code_uri must be an s3:// prefix ending with '/'")
        spec.code_uri = str(uri)
    env = doc.get("env") or {}
    if not isinstance(env, dict) or not all(isinstance(v, str) for v in env.values()):
        raise SpecError("env must be an object of string values")
    if any(k.startswith(("AWS_", "VALLUM_")) for k in env):
        raise SpecError("env names AWS_* and VALLUM_* are reserved")
    spec.env = dict(env)
    spec.resources = parse_resources(doc.get("resources"), quota)
    spec.network = bool(doc.get("network", False))
    for name, lo, hi in (("timeout_s", 0.1, 1e9), ("idle_s", 0, 86400),
                         ("max_workers", 1, 256)):
        if name in doc:
            v = doc[name]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi:
                raise SpecError(f"{name} must be a number between {lo:g} and {hi:g}")
            setattr(spec, name, type(getattr(spec, name))(v))
    quota.check("timeout_s", "wall_time_s", spec.timeout_s)
    quota.check("max_workers", "concurrency", spec.max_workers)    # each worker is a task
    for uri in doc.get("inputs") or []:
        parse_uri(uri, "inputs")
    spec.inputs = list(doc.get("inputs") or [])
    if doc.get("output") is not None:
        spec.output = str(parse_uri(doc["output"], "output"))
    spec.level = doc.get("level")
    spec.venv = parse_venv(doc.get("venv"))
    return spec


class Worker:
    """One warm sandboxed interpreter serving one function revision."""

    _ids = itertools.count(1)

    def __init__(self, key: tuple[str, str, int], proc: asyncio.subprocess.Process,
                 scratch: sbx.Scratch, secrets: list[str], box: sbx.Sandbox,
                 creds: Any = None, revoke: Any = None) -> None:
        self.key, self.proc, self.scratch, self.secrets = key, proc, scratch, secrets
        self.box = box
        self.creds, self._revoke = creds, revoke      # network: its key dies with it
        self._stopped = False
        self.last_used = time.monotonic()
        self.served = 0
        self.idle_s = 300.0

    async def call(self, event: Any, context: dict[str, Any], timeout: float) -> Any:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        req_id = next(self._ids)
        line = json.dumps({"id": req_id, "event": event, "context": context}) + "\n"
        self.proc.stdin.write(line.encode())
        await self.proc.stdin.drain()
        raw = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        if not raw:
            raise FunctionError({"type": "WorkerDied", "message": _tail(self.scratch.log_path)})
        answer = json.loads(raw)
        self.served += 1
        self.last_used = time.monotonic()
        if not answer.get("ok"):
            raise FunctionError(answer.get("error") or {"type": "Error", "message": "failed"})
        return answer.get("result")

    def alive(self) -> bool:
        return self.proc.returncode is None

    def log_size(self) -> int:
        """The worker's log (its stderr, where print() goes: fnworker.py) is a file only the
        gateway can reach (the scratch holder, outside the sandbox's mounts)."""
        try:
            return os.stat(self.scratch.log_path, follow_symlinks=False).st_size
        except OSError:
            return 0

    def log_since(self, offset: int) -> str:
        return tasklog.text(tasklog.read_bounded(self.scratch.log_path, offset=offset),
                            self.secrets)

    async def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        if self.creds is not None and self._revoke is not None:
            await self._revoke(self.creds)
        sbx.kill_group(self.proc.pid)
        try:
            await asyncio.wait_for(self.proc.wait(), 5)
        except asyncio.TimeoutError:
            pass
        sbx.remove_scratch(self.scratch)
        self.box.release_uid(self.scratch.uid)


def _tail(path: Path, n: int = 2000) -> str:
    try:
        data = path.read_bytes()[-n:]
    except OSError:
        return "the worker exited"
    return data.decode("utf-8", "replace") or "the worker exited"


class FunctionPool:
    """Warm workers by (account, name, revision); at most ``max_workers`` per function."""

    def __init__(self, box: sbx.Sandbox, scratch_base: Path, stage_code, mint,
                 revoke, runtime_dir=None) -> None:
        self.box = box
        self.runtime_dir = runtime_dir    # (name) -> Path of a named runtime, or SpecError
        self.scratch_base = scratch_base
        self.stage_code = stage_code      # async (spec, code_dir, principal) -> None
        self.mint = mint                  # (principal, JobSpec, duration) -> TaskCredentials
        self.revoke = revoke              # async (*TaskCredentials) -> None: when a worker stops
        self.idle: dict[tuple[str, str, int], list[Worker]] = {}
        self.busy: dict[tuple[str, str, int], int] = {}
        self.cond = asyncio.Condition()
        self.started = 0                  # workers started (tests read it: warm reuse)
        self._reaper: asyncio.Task | None = None

    def start(self) -> None:
        self._reaper = asyncio.ensure_future(self._reap())

    async def close(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
        for workers in self.idle.values():
            for w in workers:
                await w.stop()
        self.idle.clear()

    async def invoke(self, account: str, name: str, revision: int, spec: FunctionSpec,
                     principal: dict[str, Any], event: Any,
                     context: dict[str, Any]) -> tuple[Any, str]:
        """(the handler's result, what this call printed); a FunctionError carries the
        call's output as ``log``. A worker serves one call at a time, so the call's output
        is what its log file gained meanwhile."""
        key = (account, name, revision)
        worker = await self._acquire(key, spec, principal)
        ok = False
        start = worker.log_size()
        try:
            context = {**context, "function_name": name,
                       "deadline": time.time() + spec.timeout_s}
            result = await worker.call(event, context, spec.timeout_s)
            ok = True
            return result, worker.log_since(start)
        except asyncio.TimeoutError:
            raise FunctionError({"type": "TimedOut", "message":
                                 f"no answer within timeout_s={spec.timeout_s:g}s"},
                                worker.log_since(start)) from None
        except FunctionError as exc:
            ok = worker.alive()
            exc.log = worker.log_since(start)
            raise
        finally:
            await self._release(key, worker, ok and worker.alive())

    async def _acquire(self, key, spec: FunctionSpec, principal: dict[str, Any]) -> Worker:
        async with self.cond:
            while True:
                idle = self.idle.get(key) or []
                while idle:
                    w = idle.pop()
                    if w.alive():
                        self.busy[key] = self.busy.get(key, 0) + 1
                        return w
                    asyncio.ensure_future(w.stop())
                if self.busy.get(key, 0) < spec.max_workers:
                    self.busy[key] = self.busy.get(key, 0) + 1
                    break
                await self.cond.wait()
        try:
            return await self._spawn(key, spec, principal)
        except BaseException:
            async with self.cond:
                self.busy[key] -= 1
                self.cond.notify_all()
            raise

    async def _release(self, key, worker: Worker, keep: bool) -> None:
        async with self.cond:
            self.busy[key] -= 1
            if keep:
                self.idle.setdefault(key, []).append(worker)
            self.cond.notify_all()
        if not keep:
            await worker.stop()

    async def _spawn(self, key, spec: FunctionSpec, principal: dict[str, Any]) -> Worker:
        account, name, revision = key
        uid = self.box.acquire_uid()
        try:
            scratch = sbx.make_scratch(self.scratch_base, f"fn.{account[:12]}.{name}.{revision}."
                                                          f"{time.monotonic_ns()}", uid)
        except BaseException:
            self.box.release_uid(uid)
            raise
        creds = None
        try:
            if spec.venv is not None:
                try:
                    scratch.runtime = self.runtime_dir(spec.venv)
                except SpecError as exc:   # unregistered since the function was defined
                    raise FunctionError({"type": exc.code, "message": exc.message}) from None
            await self.stage_code(spec, scratch.code, principal)
            env = self.box.env_paths(scratch)
            env.update(spec.env)
            secrets: list[str] = []
            if spec.network:        # valid while this worker lives: revoked by Worker.stop
                creds = self.mint(principal, spec.as_job(), 43200)
                env.update(creds.env())
                secrets = creds.secrets()
            r = spec.resources
            limits = sbx.Limits(memory_mb=r.memory_mb, cpu_seconds=r.cpu_seconds() * 1000,
                                max_files=r.max_files, max_procs=r.max_procs,
                                max_file_mb=r.max_file_mb, wall_time_s=float("inf"))
            code_dir = self.box.env_paths_root(scratch) + "/code"
            argv = [self.box.python_for(scratch), "-u", self.box.helper("fnworker.py"), code_dir,
                    spec.handler]
            logf = open(scratch.log_path, "ab")
            try:            # the sandbox's cgroup and seccomp filter (sandbox.Sandbox.start)
                proc = (await self.box.start(scratch, argv, env, limits,
                                             stdin=asyncio.subprocess.PIPE,
                                             stdout=asyncio.subprocess.PIPE, stderr=logf)).proc
            except sbx.SandboxUnavailable as exc:
                raise FunctionError({"type": "SandboxUnavailable", "message": str(exc)}) from None
            finally:
                logf.close()
            worker = Worker(key, proc, scratch, secrets, self.box, creds, self.revoke)
            worker.idle_s = spec.idle_s
            self.started += 1
            assert proc.stdout is not None
            ready = await asyncio.wait_for(proc.stdout.readline(), 30)
            hello: dict[str, Any] = json.loads(ready) if ready else {"ready": False, "error": {
                "type": "WorkerDied", "message": _tail(scratch.log_path)}}
            if not hello.get("ready"):
                await worker.stop()
                raise FunctionError(hello.get("error") or {"type": "Error", "message": "?"})
            return worker
        except BaseException:
            if creds is not None:
                await self.revoke(creds)
            sbx.remove_scratch(scratch)
            self.box.release_uid(uid)
            raise

    def retire(self, account: str, name: str) -> None:
        """Stop idle workers of every revision of a function (updated or deleted)."""
        for key in [k for k in self.idle if k[0] == account and k[1] == name]:
            for w in self.idle.pop(key):
                asyncio.ensure_future(w.stop())

    async def _reap(self) -> None:
        while True:
            await asyncio.sleep(5)
            now = time.monotonic()
            async with self.cond:
                for key, workers in list(self.idle.items()):
                    keep = []
                    for w in workers:
                        if w.alive() and now - w.last_used < w.idle_s:
                            keep.append(w)
                        else:
                            asyncio.ensure_future(w.stop())
                    self.idle[key] = keep
