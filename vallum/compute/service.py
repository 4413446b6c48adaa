"""The compute service one gateway process runs: scheduler, event dispatcher, cron, recovery.

Loops (all on the gateway's event loop, all driven by the database so several
gateway processes can share one queue):
- scheduler: claim runnable tasks up to the executor's capacity, run them, record
  the outcome (retry with backoff, roll up the job, settle dependents);
- dispatcher: turn outbox events into function invocations (durable jobs);
- cron: submit the jobs of schedules that came due;
- heartbeat: keep this process's leases fresh, requeue tasks of dead processes,
  stop tasks whose job was cancelled elsewhere.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import shutil
import socket
import sqlite3
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vallum import authz
from vallum.compute import (
    access,
    jobstore,
    levels,
    metrics,
    notifications,
    quotas,
    revocations,
    tasklog,
    triggers,
    viewer,
)
from vallum.compute import sandbox as sbx
from vallum.compute.credentials import StaticMinter, STSMinter, principal_doc
from vallum.compute.db import ComputeDB
from vallum.compute.executors import make_executor
from vallum.compute.functions import FunctionError, FunctionPool, FunctionSpec, parse_function
from vallum.compute.revocations import Revocations
from vallum.compute.runner import (
    TaskBundle,
    TaskResult,
    _io,
    _stage,
    gateway_tls,
    redact,
)
from vallum.compute.spec import Hidden, JobSpec, Quota, SpecError, backoff, parse_job

log = logging.getLogger("vallum.compute")
LEASE_TTL = 15.0
HEARTBEAT = 3.0


@dataclass
class Running:
    job_id: str
    idx: int
    cancel: asyncio.Event = field(default_factory=asyncio.Event)
    started: float = field(default_factory=time.time)
    scratch: sbx.Scratch | None = None
    secrets: list[str] = field(default_factory=list)
    creds: Any = None            # this attempt's TaskCredentials, revoked when it ends


class ComputeService:
    def __init__(self, services: Any, executor_url: str | None = None) -> None:
        self.services = services
        cfg = services.config
        self.db = ComputeDB(cfg.meta_path)
        self.quota = Quota.from_env()
        self.box = sbx.Sandbox()
        self.scratch_root = scratch_dir(cfg.data_dir)
        self.scratch_base = self.scratch_root / str(os.getpid())
        self.endpoint = cfg.endpoint
        self.ca_bundle = str(cfg.tls_cert) if cfg.tls_cert else None
        self.region = cfg.region
        self.minter = STSMinter(services.iam) if services.iam is not None else StaticMinter(
            services.root.access_key, services.root.secret_key)
        self.executor = make_executor(executor_url, self.box, self.scratch_base)
        self.revocations = Revocations(self.db)
        self.functions = FunctionPool(self.box, self.scratch_base, self._stage_function_code,
                                      self.minter.mint, self.revocations.revoke)
        self.lease = f"{socket.gethostname()}|{os.getpid()}|{uuid.uuid4().hex[:8]}"
        self.running: dict[int, Running] = {}
        self._mean_service = 1.0                  # seconds per attempt (moving average)
        self._observed_at = time.time()
        self.wake = asyncio.Event()
        self.events_wake = asyncio.Event()
        self.trigger_buckets: set[str] = set()
        self._loops: list[asyncio.Task] = []
        self._tasks: set[asyncio.Task] = set()
        self._stopping = False

    # ------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        await asyncio.to_thread(self.db.open)
        await asyncio.to_thread(self._sweep_scratch)
        await self.executor.start()
        self.functions.start()
        await self.db.write(lambda c: jobstore.recover(c, time.time(), time.time() + 1,
                                                       self._live_leases(c)))
        self.reload_triggers()
        log.info("compute: executor %s, capacity %d, sandbox %s", self.executor.name,
                 self.executor.capacity, self.box.mode)
        for loop in (self._schedule_loop, self._dispatch_loop, self._cron_loop,
                     self._heartbeat_loop):
            self._loops.append(asyncio.ensure_future(loop()))
        metrics.POOL_SIZE.set(self.executor.capacity)
        sizer = getattr(self.executor, "sizer", None)
        if sizer is not None:
            sizer.observe = self._observe
            self._loops.append(asyncio.ensure_future(sizer.run()))

    async def stop(self) -> None:
        self._stopping = True
        live = [r.creds for r in self.running.values() if r.creds is not None]
        for t in self._loops:
            t.cancel()
        for t in list(self._tasks):
            t.cancel()        # kills the sandboxes; tasks stay RUNNING and are requeued on start
        await asyncio.gather(*self._loops, *self._tasks, return_exceptions=True)
        await self.functions.close()
        if live:              # the killed tasks' keys die with them (a retry mints new ones)
            await self.revocations.revoke(*live)
        await self.executor.close()
        await asyncio.to_thread(self.db.close)
        shutil.rmtree(self.scratch_base, ignore_errors=True)
        try:
            self.scratch_root.rmdir()           # only when no other gateway process uses it
        except OSError:
            pass

    def _sweep_scratch(self) -> None:
        """Create the scratch root (traversable by the sandbox uids, whatever the umask) and
        remove scratch folders left by gateway processes that died (kill -9, crash)."""
        self.scratch_root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.scratch_root, 0o711)  # noqa: S103 - traversable, not listable
        for entry in self.scratch_root.iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                os.kill(int(entry.name), 0)
                continue
            except ProcessLookupError:
                shutil.rmtree(entry, ignore_errors=True)
            except PermissionError:
                continue

    def _live_leases(self, conn) -> set[str]:
        """Leases whose process is alive on this host (anything else may be dead)."""
        live = {self.lease}
        host = socket.gethostname()
        for (lease,) in conn.execute("SELECT DISTINCT lease FROM compute_tasks WHERE "
                                     "state='RUNNING' AND lease IS NOT NULL").fetchall():
            parts = lease.split("|")
            if len(parts) == 3 and parts[0] == host:
                try:
                    os.kill(int(parts[1]), 0)
                    if int(parts[1]) != os.getpid():
                        live.add(lease)
                except (ProcessLookupError, ValueError):
                    pass
                except PermissionError:
                    live.add(lease)
            elif len(parts) == 3:
                live.add(lease)          # another host: trust its heartbeat
        return live

    # ------------------------------------------------------------ jobs
    async def submit(self, principal: Any, doc: Any, level: str | None = None) -> dict[str, Any]:
        """Validate, authorize and enqueue one job ({...}) or a batch ({"jobs": {ref: {...}}}).
        ``level``: the session level the request asked for (a spec's own ``level`` wins)."""
        batch = isinstance(doc, dict) and set(doc) == {"jobs"}
        docs = doc["jobs"] if batch else {"job": doc}
        if not isinstance(docs, dict) or not docs:
            raise SpecError("jobs must be a non-empty object of name -> job spec")
        items: list[jobstore.NewJob] = []
        quota = self.quota_for(principal.account)
        for ref, d in docs.items():
            spec = parse_job(d, quota)
            for dep in spec.depends_on:      # a job above the caller's level does not exist
                if dep not in docs:
                    try:
                        self.job(principal, dep, level)
                    except Hidden:
                        raise Hidden(f"depends_on: no such job {dep!r}", "InvalidSpec",
                                     400) from None
                    except SpecError:
                        raise SpecError(f"depends_on: no such job {dep!r}") from None
            items.append(await self._prepare(principal, ref, spec, level))
        jobstore.check_refs(items)
        now = time.time()
        who = principal_doc(principal)
        ids = await self.db.write(lambda c: jobstore.insert_jobs(
            c, principal.account, principal.arn, items, now, who))
        for it in items:
            metrics.SUBMITTED.labels(it.kind).inc()
        self.wake.set()
        if batch:
            return {"jobs": {ref: self._job_doc(jid) for ref, jid in ids.items()}}
        return self._job_doc(ids["job"])

    async def _prepare(self, principal: Any, ref: str, spec: JobSpec,
                       level: str | None = None) -> jobstore.NewJob:
        """Fix the job's session level, check its inputs and output at that level, and
        remember who it runs as (with the label its outputs get)."""
        spec.level = levels.job_level(principal, spec.level or level)
        meta = self.services.meta
        uri: str | None
        for uri in spec.inputs:
            await access.check_read(meta, principal, uri, "inputs", spec.level)
        for what, uri in (("script", spec.script), ("code_uri", spec.code_uri)):
            if uri:
                await access.check_read(meta, principal, uri, what, spec.level)
        if spec.output is None:      # parse_job requires it of every runtime that gets here
            raise SpecError("output is required: an s3://bucket/prefix/ for outputs and logs")
        out_label = await access.check_write(meta, principal, spec.output, "output", spec.level)
        who = principal_doc(principal, spec.level, out_label)
        if spec.array:
            await access.check_read(meta, principal, spec.array, "array", spec.level)
            arr = spec.array[5:].split("/", 1)
            prefix = arr[1] if len(arr) > 1 else ""
            keys = await access.list_prefix(meta, spec.array,
                                            self.quota_for(principal.account).tasks, spec.level,
                                            principal)
            tasks: list[tuple[str, str | None]] = [(k[len(prefix):] or k, k) for k in keys]
            if not tasks:
                raise SpecError(f"array: no objects under {spec.array}")
            return jobstore.NewJob(ref, spec, "array", tasks, who)
        return jobstore.NewJob(ref, spec, "job", [("", None)], who)

    def _visible(self, principal: Any, row: Any, reader: Any) -> bool:
        """Same account (or the root), and made at a level the caller's session level
        dominates: a job above it, its tasks' names, counts and logs do not exist for it."""
        return ((principal.is_root or principal.account == row["account"])
                and levels.sees(reader, json.loads(row["spec"]).get("level")))

    def job(self, principal: Any, job_id: str, level: str | None = None) -> dict[str, Any]:
        """A job's status as ``principal`` at session ``level`` may see it (else NoSuchJob)."""
        rows = self.db.query("SELECT * FROM compute_jobs WHERE id=?", (job_id,))
        if not rows or not (principal.is_root or principal.account == rows[0]["account"]):
            raise SpecError(f"no such job {job_id}", "NoSuchJob", 404)
        if not self._visible(principal, rows[0], levels.reader_level(principal, level)):
            raise Hidden(f"no such job {job_id}", "NoSuchJob")
        return self._job_doc(job_id)

    def _job_doc(self, job_id: str) -> dict[str, Any]:
        rows = self.db.query("SELECT * FROM compute_jobs WHERE id=?", (job_id,))
        doc = jobstore.job_doc(rows[0])
        counts = dict(self.db.reader().execute(
            "SELECT state, count(*) FROM compute_tasks WHERE job_id=? GROUP BY state",
            (job_id,)).fetchall())
        doc["tasks"] = {k: counts.get(k, 0) for k in
                        ("QUEUED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED", "TIMED_OUT")}
        return doc

    def list_jobs(self, principal: Any, state: str | None, limit: int,
                  level: str | None = None) -> list[dict[str, Any]]:
        reader = levels.reader_level(principal, level)
        sql, params = "SELECT * FROM compute_jobs WHERE 1=1", []
        if not principal.is_root:
            sql += " AND account=?"
            params.append(principal.account)
        if state:
            sql += " AND state=?"
            params.append(state)
        sql += " ORDER BY seq DESC"
        limit = max(1, min(limit, 1000))
        out: list[dict[str, Any]] = []
        conn = self.db.reader()
        conn.row_factory = sqlite3.Row
        for row in conn.execute(sql, params):
            if self._visible(principal, row, reader):
                out.append(jobstore.job_doc(row))
                if len(out) == limit:
                    break
        return out

    def tasks(self, principal: Any, job_id: str, level: str | None = None) -> list[dict[str, Any]]:
        self.job(principal, job_id, level)
        rows = self.db.query("SELECT idx, name, input, state, attempts, started, finished, "
                             "exit_code, reason FROM compute_tasks WHERE job_id=? ORDER BY idx",
                             (job_id,))
        return [dict(r) for r in rows]

    async def cancel(self, principal: Any, job_id: str, level: str | None = None) -> dict[str, Any]:
        self.job(principal, job_id, level)
        ok, running, _ = await self.db.write(lambda c: jobstore.cancel_job(c, job_id, time.time()))
        await self._stop_tasks([seq for seq in running if seq in self.running])
        self.wake.set()
        doc = self._job_doc(job_id)
        doc["cancelled"] = ok
        return doc

    async def logs(self, principal: Any, job_id: str, idx: int, offset: int,
                   level: str | None = None, attempt: int | None = None) -> dict[str, Any]:
        """One attempt's log (default: the latest) from ``offset``: live from the running
        attempt's log file, else as stored when the attempt ended (tasklog.py)."""
        job = self.job(principal, job_id, level)
        row = self.db.query("SELECT seq, state, attempts FROM compute_tasks WHERE job_id=? AND "
                            "idx=?", (job_id, idx))
        if not row:
            raise SpecError(f"job {job_id} has no task {idx}", "NoSuchTask", 404)
        seq, state, latest = row[0]["seq"], row[0]["state"], row[0]["attempts"]
        stored = tasklog.attempts(self.db.reader(), job_id, idx)
        attempt = latest if attempt is None else attempt
        page = {"state": state, "task": idx, "attempt": attempt,
                "attempts": sorted({*stored, *([latest] if state == "RUNNING" else [])})}
        running = self.running.get(seq)
        if running is not None and running.scratch is not None and attempt == latest:
            # Live until the attempt's end is recorded (a cancelled job says CANCELLED first).
            data = redact(tasklog.read_bounded(running.scratch.log_path, 1 << 20, offset),
                          running.secrets)
            return {**page, "data": data.decode("utf-8", "replace"),
                    "offset": offset + len(data), "done": False}
        # Offsets count bytes, live or stored, so a follower crosses over without a gap.
        data = (tasklog.read(self.db.reader(), job_id, idx, attempt) or "").encode()[offset:]
        done = state in jobstore.TERMINAL or job["state"] in jobstore.TERMINAL or (
            attempt < latest)
        return {**page, "data": data.decode("utf-8", "replace"), "offset": offset + len(data),
                "done": done and not (state == "RUNNING" and attempt == latest)}

    # ------------------------------------------------------------ scheduler
    async def _schedule_loop(self) -> None:
        while True:
            self.wake.clear()
            try:
                free = self.executor.capacity - len(self.running)
                claimed: list[jobstore.Claimed] = []
                if free > 0:
                    claimed = await self.db.write(
                        lambda c, n=free: jobstore.claim(c, self.lease, time.time(), n,  # type: ignore[misc]  # mypy cannot infer a lambda with default args
                                                         quotas.concurrency(c, self.quota)))
                for c in claimed:
                    self._track(c)
                    t = asyncio.ensure_future(self._execute(c))
                    self._tasks.add(t)
                    t.add_done_callback(self._tasks.discard)
                metrics.RUNNING.set(len(self.running))
                if claimed and len(claimed) == free:
                    continue
                timeout = self._next_due()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("scheduler pass failed")
                timeout = 1.0
            try:
                await asyncio.wait_for(self.wake.wait(), timeout)
            except asyncio.TimeoutError:
                pass

    def _observe(self):
        """What the pool sizer needs at each tick (queue, running, arrivals, service time)."""
        from vallum.compute.sizing import Observation

        now = time.time()
        conn = self.db.reader()
        queued = conn.execute("SELECT count(*) FROM compute_tasks WHERE state='QUEUED' AND "
                              "not_before<=?", (now,)).fetchone()[0]
        arrivals = conn.execute("SELECT coalesce(sum(tasks_total), 0) FROM compute_jobs WHERE "
                                "created > ? AND created <= ?",
                                (self._observed_at, now)).fetchone()[0]
        self._observed_at = now
        self.wake.set()                      # a new size may let the scheduler claim more
        return Observation(queued, len(self.running), int(arrivals), self._mean_service)

    def _next_due(self) -> float:
        row = self.db.reader().execute(
            "SELECT min(not_before) FROM compute_tasks WHERE state='QUEUED'").fetchone()
        if row is None or row[0] is None:
            return 1.0
        return max(0.01, min(1.0, row[0] - time.time()))

    async def _execute(self, c: jobstore.Claimed | None) -> None:
        """Run claimed tasks in one slot: each outcome is recorded in the same transaction
        that claims the slot's next task (one commit per task instead of two)."""
        while c is not None:
            result = await self._attempt(c)
            now = time.time()
            retry_at = None
            if result.state in ("FAILED", "TIMED_OUT") and c.attempt <= c.spec.retries:
                retry_at = now + backoff(c.spec, c.attempt)
            runtime = c.spec.runtime
            took = now - self.running[c.seq].started
            self._mean_service += 0.1 * (took - self._mean_service)
            metrics.RUN.labels(runtime, result.state).observe(took)
            metrics.FINISHED.labels(runtime, result.state).inc()
            if result.state in ("FAILED", "TIMED_OUT"):
                metrics.FAILURES.labels(runtime, result.state.lower()).inc()
            payload = getattr(result, "payload", None)
            creds = self.running[c.seq].creds
            self.revocations.note(creds)        # the attempt is over: so are its credentials

            def tx(conn, c=c, result=result, now=now, retry_at=retry_at, payload=payload,
                   creds=creds):
                revocations.insert(conn, creds)
                if result.log:           # kept per attempt, in the transaction ending it
                    tasklog.store(conn, c.job_id, c.idx, c.attempt, result.log, now)
                jobstore.finish_task(conn, c.seq, result.state, result.exit_code, result.reason,
                                     now, retry_at, payload)
                if self._stopping:
                    return []
                return jobstore.claim(conn, self.lease, time.time(), 1,
                                      quotas.concurrency(conn, self.quota))

            try:
                nxt = await self.db.write(tx)
            except Exception:
                log.exception("recording the end of task %s/%s failed", c.job_id, c.idx)
                nxt = []
            finally:
                self.running.pop(c.seq, None)
            c = nxt[0] if nxt else None
            if c is not None:
                self._track(c)
        self.wake.set()

    def _track(self, c: jobstore.Claimed) -> None:
        self.running[c.seq] = Running(c.job_id, c.idx)
        metrics.WAIT.labels(c.spec.runtime).observe(max(0.0, time.time() - c.ready))
        metrics.RUNNING.set(len(self.running))

    async def _attempt(self, c: jobstore.Claimed) -> TaskResult:
        run = self.running[c.seq]
        try:
            if c.spec.runtime == "function":
                return await self._run_function_task(c)
            # Minted per attempt and revoked when it ends (_execute): never shared, never
            # outliving the task (the expiry is only a backstop).
            creds = self.minter.mint(c.principal, c.spec, int(c.spec.resources.wall_time_s) + 120)
            run.creds = creds
            run.secrets = creds.secrets()
            bundle = TaskBundle(c.job_id, c.idx, c.name, c.attempt, c.spec.to_json(), c.input,
                                self.endpoint, self.region, creds.__dict__,
                                f"{c.account}|{c.principal.get('arn')}",
                                c.principal.get("out_label"), self.ca_bundle)

            def on_scratch(scratch: sbx.Scratch) -> None:
                run.scratch = scratch

            return await self.executor.run(bundle, run.cancel, on_scratch)
        except asyncio.CancelledError:
            self.running.pop(c.seq, None)
            raise
        except Exception as exc:  # noqa: BLE001 - recorded as the task's failure
            log.exception("task %s/%s failed internally", c.job_id, c.idx)
            return TaskResult("FAILED", None, f"internal error: {exc}")

    async def _stop_tasks(self, seqs: list[int]) -> None:
        """Cancel running tasks of this process: their keys are refused from now on (before
        the sandbox is even gone), then the sandboxes are stopped."""
        creds = [self.running[s].creds for s in seqs if self.running[s].creds is not None]
        if creds:
            await self.revocations.revoke(*creds)
        for seq in seqs:
            self.running[seq].cancel.set()

    def quota_for(self, account: str) -> Quota:
        """The platform limits lowered by the account's quota (what its callers may ask)."""
        return quotas.effective(self.db.reader(), self.quota, account)

    def quota_doc(self, principal: Any, account: str) -> dict[str, Any]:
        if not (principal.is_root or principal.account == account):
            raise SpecError(f"no quota for account {account}", "NoSuchAccount", 404)
        conn = self.db.reader()
        return {"account": account, "platform": self.quota.doc(),
                "quota": quotas.account_limits(conn, account),
                "effective": quotas.effective(conn, self.quota, account).doc()}

    async def put_quota(self, principal: Any, account: str, doc: Any) -> dict[str, Any]:
        """Set an account's quota (the platform root only: tenants share the host)."""
        if not principal.is_root:
            raise SpecError("only the platform root sets account quotas", "AccessDenied", 403)
        limits = quotas.parse(doc)
        await self.db.write(lambda c: quotas.put(c, account, limits))
        return self.quota_doc(principal, account)

    def revoked(self, akid: str) -> bool:
        """Has this temporary key's task ended (gate.py asks on every signed request)?"""
        return self.revocations.revoked(akid)

    # ------------------------------------------------------------ functions
    def _function_row(self, account: str, name: str) -> Any:
        rows = self.db.query("SELECT * FROM compute_functions WHERE account=? AND name=?",
                             (account, name))
        if not rows:
            raise SpecError(f"no such function {name!r}", "NoSuchFunction", 404)
        return rows[0]

    async def _stage_function_code(self, spec: FunctionSpec, code_dir, principal) -> None:
        if spec.code is not None:
            (code_dir / "main.py").write_text(spec.code)
            os.chmod(code_dir / "main.py", 0o644)
        if spec.code_uri:
            from vallum.client import Client
            creds = self.minter.mint(principal, spec.as_job(), 900)
            client = Client(self.endpoint, creds.access_key_id, creds.secret_access_key,
                            session_token=creds.session_token, region=self.region,
                            verify=gateway_tls(self.ca_bundle) if self.ca_bundle else True)
            try:
                await _io(_stage, client, spec.code_uri, code_dir)
            finally:
                await self.revocations.revoke(creds)

    async def _run_function_task(self, c: jobstore.Claimed) -> TaskResult:
        row = self._function_row(c.account, c.spec.function or "")
        spec = FunctionSpec.from_json(json.loads(row["spec"]))
        ctx = {"invocation_id": f"{c.job_id}/{c.attempt}", "attempt": c.attempt}
        try:
            value, log_text = await self.functions.invoke(
                c.account, row["name"], row["revision"], spec, json.loads(row["principal"]),
                c.spec.payload, ctx)
            result = TaskResult("SUCCEEDED", 0, log=log_text)   # print() output: the job's log
            result.payload = {"result": value}          # type: ignore[attr-defined]
        except FunctionError as exc:
            timed_out = exc.error.get("type") == "TimedOut"
            reason = f"{exc.error.get('type')}: {exc.error.get('message')}"
            result = TaskResult("TIMED_OUT" if timed_out else "FAILED", None, reason,
                                log=exc.log + f"\n[vallum] FAILED: {reason}\n")
            result.payload = {"error": exc.error}       # type: ignore[attr-defined]
        return result

    async def put_function(self, principal: Any, name: str, doc: Any,
                           level: str | None = None) -> dict[str, Any]:
        if not jobstore_name_ok(name):
            raise SpecError("function names are 1-64 of [A-Za-z0-9_-]")
        spec = parse_function(doc, self.quota_for(principal.account))
        spec.level = levels.job_level(principal, spec.level or level)
        meta = self.services.meta
        for what, uri in (("code_uri", spec.code_uri), *(("inputs", u) for u in spec.inputs)):
            if uri:
                await access.check_read(meta, principal, uri, what, spec.level)
        out_label = None
        if spec.output:
            out_label = await access.check_write(meta, principal, spec.output, "output",
                                                 spec.level)
        who = json.dumps(principal_doc(principal, spec.level, out_label))

        def tx(conn) -> int:
            row = conn.execute("SELECT revision FROM compute_functions WHERE account=? AND name=?",
                               (principal.account, name)).fetchone()
            rev = (row[0] + 1) if row else 1
            conn.execute("INSERT OR REPLACE INTO compute_functions (account, name, owner, "
                         "principal, spec, revision, created) VALUES (?,?,?,?,?,?,?)",
                         (principal.account, name, principal.arn, who,
                          json.dumps(spec.to_json()), rev, time.time()))
            return rev

        await self.db.write(tx)
        self.functions.retire(principal.account, name)
        return _function_doc(self._function_row(principal.account, name))

    def _seen_function(self, principal: Any, name: str, level: str | None) -> Any:
        """The function row, when made at a level the caller's session level dominates;
        one above it does not exist for the caller (NoSuchFunction)."""
        row = self._function_row(principal.account, name)
        if not levels.sees(levels.reader_level(principal, level), _level_of(row)):
            raise Hidden(f"no such function {name!r}", "NoSuchFunction")
        return row

    def _invocable(self, principal: Any, name: str, level: str | None) -> Any:
        """An invocation carries the payload in and the result out, so the caller's session
        level must equal the function's: above it would write down, below it read up."""
        row = self._seen_function(principal, name, level)
        mine = levels.label(levels.job_level(principal, level))
        theirs = levels.label(_level_of(row))
        if not theirs.dominates(mine):
            raise SpecError(f"function {name!r} runs at {theirs.banner()}, below your session "
                            f"level {mine.banner()} (no write down)", "AccessDenied", 403)
        if not mine.dominates(theirs):
            raise Hidden(f"no such function {name!r}", "NoSuchFunction")
        return row

    def function(self, principal: Any, name: str, level: str | None = None) -> dict[str, Any]:
        return _function_doc(self._seen_function(principal, name, level))

    def list_functions(self, principal: Any, level: str | None = None) -> list[dict[str, Any]]:
        reader = levels.reader_level(principal, level)
        rows = self.db.query("SELECT * FROM compute_functions WHERE account=? ORDER BY name",
                             (principal.account,))
        return [_function_doc(r) for r in rows if levels.sees(reader, _level_of(r))]

    async def delete_function(self, principal: Any, name: str,
                              level: str | None = None) -> list[str]:
        """Delete the function, its object triggers and the bucket-notification entries
        that target it, in one transaction; returns the ids of the triggers removed."""
        self._seen_function(principal, name, level)
        account = principal.account
        try:
            removed = await self.db.write(lambda c: notifications.delete_function(c, account, name))
        finally:       # bucket notification configs were rewritten: drop cached bucket records
            self.services.meta.buckets_changed()
        self.reload_triggers()
        self.functions.retire(account, name)
        return removed

    async def invoke(self, principal: Any, name: str, payload: Any,
                     level: str | None = None) -> tuple[Any, str]:
        """(the result, what the call printed)."""
        row = self._invocable(principal, name, level)
        spec = FunctionSpec.from_json(json.loads(row["spec"]))
        t0 = time.perf_counter()
        outcome = "ok"
        try:
            return await self.functions.invoke(principal.account, name, row["revision"], spec,
                                               json.loads(row["principal"]), payload,
                                               {"invocation_id": uuid.uuid4().hex, "attempt": 1})
        except FunctionError:
            outcome = "error"
            raise
        finally:
            metrics.INVOKE.labels(outcome).observe(time.perf_counter() - t0)

    async def invoke_async(self, principal: Any, name: str, payload: Any,
                           idempotency_key: str | None = None,
                           level: str | None = None) -> dict[str, Any]:
        row = self._invocable(principal, name, level)
        spec = triggers.invocation_spec(name, payload, idempotency_key)
        spec.level = _level_of(row)
        item = jobstore.NewJob("job", spec, "function", [("", None)])
        ids = await self.db.write(lambda c: jobstore.insert_jobs(
            c, principal.account, principal.arn, [item], time.time(), principal_doc(principal)))
        metrics.SUBMITTED.labels("function").inc()
        self.wake.set()
        return self._job_doc(ids["job"])

    # ------------------------------------------------------------ triggers and events
    def reload_triggers(self) -> None:
        rows = self.db.query("SELECT DISTINCT bucket FROM compute_triggers WHERE kind='object'")
        self.trigger_buckets = {r["bucket"] for r in rows}

    def has_triggers(self, bucket: str) -> bool:
        return bucket in self.trigger_buckets

    async def enqueue_event(self, bucket: str, record: dict[str, Any], label: str) -> None:
        """Durable before the write is acknowledged (the caller awaits this). ``label``: the
        object's, so only triggers whose principal may read it receive the event."""
        text = json.dumps(record)
        await self.db.write(lambda c: c.execute(
            "INSERT INTO compute_outbox (bucket, event, label, created, done) VALUES (?,?,?,?,0)",
            (bucket, text, label, time.time())))
        metrics.EVENTS.labels(record["eventName"]).inc()
        self.events_wake.set()

    async def add_trigger(self, principal: Any, doc: Any, level: str | None = None) -> dict[str, Any]:
        row = await triggers.validate(self, principal, doc, level)
        await self.db.write(lambda c: triggers.insert(c, row))
        self.reload_triggers()
        return triggers.doc(row)

    def list_triggers(self, principal: Any, level: str | None = None) -> list[dict[str, Any]]:
        reader = levels.reader_level(principal, level)
        rows = self.db.query("SELECT * FROM compute_triggers WHERE account=? ORDER BY created",
                             (principal.account,))
        return [triggers.doc(dict(r)) for r in rows
                if levels.sees(reader, triggers.level_of(dict(r)))]

    async def delete_trigger(self, principal: Any, trigger_id: str,
                             level: str | None = None) -> None:
        rows = self.db.query("SELECT * FROM compute_triggers WHERE id=? AND account=?",
                             (trigger_id, principal.account))
        seen = bool(rows) and levels.sees(levels.reader_level(principal, level),
                                          triggers.level_of(dict(rows[0])))
        if rows and not seen:
            raise Hidden(f"no such trigger {trigger_id}", "NoSuchTrigger")
        n: int = seen and await self.db.write(lambda c: c.execute(
            "DELETE FROM compute_triggers WHERE id=? AND account=?",
            (trigger_id, principal.account)).rowcount)
        if not n:
            raise SpecError(f"no such trigger {trigger_id}", "NoSuchTrigger", 404)
        self.reload_triggers()

    async def set_notifications(self, principal: Any, bucket: str, wanted: list[dict]) -> None:
        """Replace a bucket's notification-configured triggers (PutBucketNotificationConfiguration)."""
        if wanted and not authz.decide(principal, "vallum:CreateTrigger",
                                       f"arn:vallum:compute::{principal.account}:trigger/*").allowed:
            raise SpecError("not authorized to perform vallum:CreateTrigger", "AccessDenied", 403)
        rows = []
        for w in wanted:
            row = await triggers.validate(self, principal, {
                "kind": "object", "source": "notification", "bucket": bucket,
                "prefix": w["prefix"], "suffix": w["suffix"], "events": w["events"],
                "function": w["function"]})
            if w.get("id"):
                row["id"] = f"n-{bucket}-{w['id']}"[:200]
            rows.append(row)

        def tx(conn) -> None:
            conn.execute("DELETE FROM compute_triggers WHERE bucket=? AND source='notification'",
                         (bucket,))
            for row in rows:
                triggers.insert(conn, row)

        await self.db.write(tx)
        self.reload_triggers()

    async def _dispatch_loop(self) -> None:
        while True:
            self.events_wake.clear()
            try:
                n = await self._dispatch_once()
                if n:
                    self.wake.set()
                    continue
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("event dispatch failed")
            try:
                await asyncio.wait_for(self.events_wake.wait(), 1.0)
            except asyncio.TimeoutError:
                pass
            self.reload_triggers()

    async def _cron_loop(self) -> None:
        while True:
            try:
                n = await self._run_due_crons()
                if n:
                    self.wake.set()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("cron pass failed")
            await asyncio.sleep(1.0)

    async def _dispatch_once(self) -> int:
        """One batch of outbox events: each trigger match is delivered only when both the
        trigger's principal and the function's may read the object (MAC, then IAM)."""
        seqs, found = triggers.pending(self.db.reader())
        if not seqs:
            return 0
        viewers: dict[str, viewer.Viewer] = {}
        allowed = []
        for d in found:
            ok = True
            for doc in (d.trigger["principal"], d.trigger["fn_principal"]):
                if doc not in viewers:
                    viewers[doc] = viewer.Viewer(self.services, json.loads(doc))
                ok = ok and await viewers[doc].may_read(d.bucket, d.key, d.label)
            if ok:
                allowed.append(d)
        return await self.db.write(lambda c: triggers.deliver(c, seqs, allowed, time.time()))

    async def _run_due_crons(self) -> int:
        """Submit the due scheduled jobs; an array job expands its prefix as its principal
        (at its level, through IAM), so hidden keys never become task names."""
        n = 0
        for row in triggers.due_crons(self.db.reader(), time.time()):
            quota = self.quota_for(row["account"])
            tasks: list[tuple[str, str | None]] | None = None
            try:
                spec = triggers.cron_spec(row, quota)
            except SpecError as exc:         # e.g. the account's quota was lowered since
                log.warning("cron %s: run skipped: %s", row["id"], exc.message)
                spec, tasks = None, []
            if spec is not None and spec.array:
                who = viewer.Viewer(self.services, json.loads(row["principal"]))
                prefix = spec.array[5:].partition("/")[2]
                keys: list[str] = []
                if who.principal is not None:
                    try:
                        keys = await access.list_prefix(self.services.meta, spec.array,
                                                        quota.tasks, spec.level,
                                                        who.principal)
                    except SpecError as exc:
                        log.warning("cron %s: run skipped: %s", row["id"], exc.message)
                tasks = [(k[len(prefix):] or k, k) for k in keys]
            now = time.time()
            n += await self.db.write(lambda c, row=row, spec=spec, tasks=tasks, now=now:  # type: ignore[misc]  # mypy cannot infer a lambda with default args
                                     triggers.start_cron(c, row, spec, tasks, now))
        return n

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT)
            try:
                now = time.time()

                def tx(conn, now=now) -> list[tuple[int, str]]:
                    jobstore.heartbeat(conn, self.lease, now)
                    revocations.purge(conn, now)
                    tasklog.purge(conn, now)
                    return jobstore.recover(conn, now, now - LEASE_TTL, self._live_leases(conn))

                if await self.db.write(tx):
                    self.wake.set()
                if self.running:
                    await self._stop_tasks([seq for (seq,) in self.db.reader().execute(
                        "SELECT t.seq FROM compute_tasks t JOIN compute_jobs j ON "
                        "j.id=t.job_id WHERE t.lease=? AND t.state='RUNNING' AND "
                        "j.state='CANCELLED'", (self.lease,)).fetchall()
                        if seq in self.running and not self.running[seq].cancel.is_set()])
                queued = self.db.reader().execute(
                    "SELECT count(*) FROM compute_tasks WHERE state='QUEUED'").fetchone()[0]
                metrics.QUEUE_LENGTH.set(queued)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("heartbeat failed")


def _level_of(function_row: Any) -> str | None:
    """The session level a function runs at (None: the lowest)."""
    return json.loads(function_row["principal"]).get("level")


def _function_doc(row: Any) -> dict[str, Any]:
    return {"name": row["name"], "account": row["account"], "owner": row["owner"],
            "revision": row["revision"], "created": row["created"],
            "level": _level_of(row), "spec": json.loads(row["spec"])}


def scratch_dir(data_dir: Path) -> Path:
    """Task scratch space: VALLUM_SCRATCH_DIR, else a per-data-dir folder in the temp dir.

    Not inside the data directory: that stays 0700 to its owner, while sandboxes running
    as ``nobody`` must be able to reach their own (0700, nobody-owned) scratch folder.
    """
    env = os.environ.get("VALLUM_SCRATCH_DIR")
    if env:
        return Path(env)
    tag = hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"vallum-scratch-{tag}"


def jobstore_name_ok(name: str) -> bool:
    return 1 <= len(name) <= 64 and all(ch.isalnum() or ch in "_-" for ch in name)
