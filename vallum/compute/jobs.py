"""Jobs as their callers see them: submit (validate, authorize, enqueue), status, tasks,
cancel and logs, each answered only to the owning account at a level that dominates the
job's (a job above the caller's session level does not exist for it)."""

from __future__ import annotations

import json
import time
from typing import Any

from vallum.compute import access, jobstore, levels, metrics, tasklog
from vallum.compute.credentials import principal_doc
from vallum.compute.db import ComputeStore
from vallum.compute.resource_limits import CallerLimits
from vallum.compute.runner import redact
from vallum.compute.runtimes import Registry
from vallum.compute.scheduler import Scheduler
from vallum.compute.spec import Hidden, JobSpec, SpecError, parse_job


class Jobs:
    def __init__(self, db: ComputeStore, meta: Any, limits: CallerLimits, scheduler: Scheduler,
                 runtimes: Registry) -> None:
        self.db = db
        self.runtimes = runtimes
        self.meta = meta
        self.limits = limits
        self.scheduler = scheduler

    async def submit(self, principal: Any, doc: Any, level: str | None = None) -> dict[str, Any]:
        """Validate, authorize and enqueue one job ({...}) or a batch ({"jobs": {ref: {...}}}).
        ``level``: the session level the request asked for (a spec's own ``level`` wins)."""
        batch = isinstance(doc, dict) and set(doc) == {"jobs"}
        docs = doc["jobs"] if batch else {"job": doc}
        if not isinstance(docs, dict) or not docs:
            raise SpecError("jobs must be a non-empty object of name -> job spec")
        items: list[jobstore.NewJob] = []
        quota = self.limits.for_account(principal.account)
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
            items.append(await self.prepare(principal, ref, spec, level))
        jobstore.check_refs(items)
        now = time.time()
        who = principal_doc(principal)
        ids = await self.db.write(lambda c: jobstore.insert_jobs(
            c, principal.account, principal.arn, items, now, who))
        for it in items:
            metrics.SUBMITTED.labels(it.kind).inc()
        self.scheduler.wake.set()
        if batch:
            return {"jobs": {ref: self.job_doc(jid) for ref, jid in ids.items()}}
        return self.job_doc(ids["job"])

    async def prepare(self, principal: Any, ref: str, spec: JobSpec,
                       level: str | None = None) -> jobstore.NewJob:
        """Fix the job's session level, check its inputs and output at that level, and
        remember who it runs as (with the label its outputs get)."""
        spec.level = levels.job_level(principal, spec.level or level)
        if spec.venv is not None:
            self.runtimes.resolve(spec.venv)          # UnknownRuntime (400) before anything
        meta = self.meta
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
                                            self.limits.for_account(principal.account).tasks, spec.level,
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
        return self.job_doc(job_id)

    def job_doc(self, job_id: str) -> dict[str, Any]:
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
        for row in self.db.query(sql, params):
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
        await self.scheduler.stop_tasks([seq for seq in running if seq in self.scheduler.running])
        self.scheduler.wake.set()
        doc = self.job_doc(job_id)
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
        running = self.scheduler.running.get(seq)
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
