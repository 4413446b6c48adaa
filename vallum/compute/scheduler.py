"""The scheduler: claim runnable tasks up to the executor's capacity, run each attempt with
its own credentials, record the outcome (retry with backoff, roll up the job, settle
dependents), and keep this process's leases fresh.

All of it is driven by the database, so several gateway processes share one queue:
- the schedule loop claims tasks and starts one slot per claim;
- a slot records a task's end in the transaction that claims its next task;
- the heartbeat loop renews leases, requeues the tasks of dead processes and stops tasks
  whose job was cancelled elsewhere.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from vallum.compute import jobstore, metrics, quotas, revocations, tasklog
from vallum.compute import sandbox as sbx
from vallum.compute.db import ComputeStore
from vallum.compute.revocations import Revocations
from vallum.compute.runner import TaskBundle, TaskResult
from vallum.compute.runtimes import Registry
from vallum.compute.spec import Quota, SpecError, backoff

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


@dataclass(frozen=True)
class Gateway:
    """Where a task's client reaches this gateway (written into its bundle)."""

    endpoint: str
    region: str
    ca_bundle: str | None


class Scheduler:
    def __init__(self, db: ComputeStore, executor: Any, minter: Any, revocations: Revocations,
                 platform: Quota, gateway: Gateway, runtimes: Registry,
                 run_function: Callable[[jobstore.Claimed], Awaitable[TaskResult]]) -> None:
        self.db = db
        self.runtimes = runtimes
        self.executor = executor
        self.minter = minter
        self.revocations = revocations
        self.platform = platform
        self.gateway = gateway
        self.run_function = run_function
        # (account, CPU seconds) of each finished attempt: the gateway's usage meter
        self.on_cpu: Callable[[str, float], None] | None = None
        self.lease = f"{socket.gethostname()}|{os.getpid()}|{uuid.uuid4().hex[:8]}"
        self.running: dict[int, Running] = {}
        self._mean_service = 1.0                  # seconds per attempt (moving average)
        self._observed_at = time.time()
        self.wake = asyncio.Event()
        self.tasks: set[asyncio.Task] = set()
        self._stopping = False

    async def recover(self) -> None:
        """At start: requeue what dead processes (and this pid's previous life) held."""
        await self.db.write(lambda c: jobstore.recover(c, time.time(), time.time() + 1,
                                                       self.live_leases(c)))

    def halt(self) -> list[Any]:
        """Stop claiming and kill the running sandboxes (their tasks stay RUNNING and are
        requeued on start); returns their credentials, to be revoked (a retry mints new)."""
        self._stopping = True
        live = [r.creds for r in self.running.values() if r.creds is not None]
        for t in list(self.tasks):
            t.cancel()
        return live

    def live_leases(self, conn) -> set[str]:
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

    async def schedule_loop(self) -> None:
        while True:
            self.wake.clear()
            try:
                free = self.executor.capacity - len(self.running)
                claimed: list[jobstore.Claimed] = []
                if free > 0:
                    claimed = await self.db.write(
                        lambda c, n=free: jobstore.claim(c, self.lease, time.time(), n,  # type: ignore[misc]  # mypy cannot infer a lambda with default args
                                                         quotas.concurrency(c, self.platform)))
                for c in claimed:
                    self._track(c)
                    t = asyncio.ensure_future(self._execute(c))
                    self.tasks.add(t)
                    t.add_done_callback(self.tasks.discard)
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

    def observe(self):
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
            if result.cpu_seconds and self.on_cpu is not None:
                self.on_cpu(c.account, result.cpu_seconds)      # the account's compute usage
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
                                      quotas.concurrency(conn, self.platform))

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
                return await self.run_function(c)
            try:       # the registry's path for the name the job gave (never the tenant's)
                runtime = str(self.runtimes.resolve(c.spec.venv)) if c.spec.venv else None
            except SpecError as exc:           # unregistered since the job was submitted
                return TaskResult("FAILED", None, exc.message, log=f"vallum: {exc.message}\n")
            # Minted per attempt and revoked when it ends (_execute): never shared, never
            # outliving the task (the expiry is only a backstop).
            creds = self.minter.mint(c.principal, c.spec, int(c.spec.resources.wall_time_s) + 120)
            run.creds = creds
            run.secrets = creds.secrets()
            gw = self.gateway
            bundle = TaskBundle(c.job_id, c.idx, c.name, c.attempt, c.spec.to_json(), c.input,
                                gw.endpoint, gw.region, creds.__dict__,
                                f"{c.account}|{c.principal.get('arn')}",
                                c.principal.get("out_label"), gw.ca_bundle, runtime)

            def on_scratch(scratch: sbx.Scratch) -> None:
                run.scratch = scratch

            return await self.executor.run(bundle, run.cancel, on_scratch)
        except asyncio.CancelledError:
            self.running.pop(c.seq, None)
            raise
        except Exception as exc:  # noqa: BLE001 - recorded as the task's failure
            log.exception("task %s/%s failed internally", c.job_id, c.idx)
            return TaskResult("FAILED", None, f"internal error: {exc}")

    async def stop_tasks(self, seqs: list[int]) -> None:
        """Cancel running tasks of this process: their keys are refused from now on (before
        the sandbox is even gone), then the sandboxes are stopped."""
        creds = [self.running[s].creds for s in seqs if self.running[s].creds is not None]
        if creds:
            await self.revocations.revoke(*creds)
        for seq in seqs:
            self.running[seq].cancel.set()

    async def heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT)
            try:
                now = time.time()

                def tx(conn, now=now) -> list[tuple[int, str]]:
                    jobstore.heartbeat(conn, self.lease, now)
                    revocations.purge(conn, now)
                    tasklog.purge(conn, now)
                    return jobstore.recover(conn, now, now - LEASE_TTL, self.live_leases(conn))

                if await self.db.write(tx):
                    self.wake.set()
                if self.running:
                    await self.stop_tasks([seq for (seq,) in self.db.reader().execute(
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
