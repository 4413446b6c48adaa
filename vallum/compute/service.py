"""The compute service one gateway process runs: it builds the parts, starts and stops
their loops, and is what the API, the S3 handlers and the gate call.

The parts, each in its own module:
- scheduler.py: claims tasks up to the executor's capacity, runs and records them, and
  keeps this process's leases fresh (heartbeat, recovery of dead processes' tasks);
- jobs.py: submit, status, tasks, cancel and logs as callers see them;
- function_registry.py: define, look up, delete and invoke functions;
- dispatcher.py: triggers, the event outbox and cron, turned into jobs;
- resource_limits.py: the platform limits and account quotas every path checks.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from vallum.compute import metrics
from vallum.compute import sandbox as sbx
from vallum.compute.credentials import StaticMinter, STSMinter
from vallum.compute.db import ComputeDB, ComputeStore
from vallum.compute.dispatcher import Dispatcher
from vallum.compute.event_delivery import Deliverer
from vallum.compute.event_target_store import EventTargetStore
from vallum.compute.executors import make_executor
from vallum.compute.function_registry import FunctionRegistry
from vallum.compute.jobs import Jobs
from vallum.compute.pgdb import PostgresComputeDB
from vallum.compute.resource_limits import CallerLimits
from vallum.compute.revocations import Revocations
from vallum.compute.runtimes import Registry
from vallum.compute.scheduler import Gateway, Scheduler
from vallum.compute.spec import Quota
from vallum.meta.leader import AdvisoryLeader

log = logging.getLogger("vallum.compute")


class ComputeService:
    def __init__(self, services: Any, executor_url: str | None = None) -> None:
        self.services = services
        cfg = services.config
        # The compute tables live with the object metadata: in its PostgreSQL database when
        # there is one (every gateway then claims from one queue), else in meta.sqlite3.
        url = cfg.meta_url
        self.db: ComputeStore = PostgresComputeDB(url) if url else ComputeDB(cfg.meta_path)
        self.box = sbx.Sandbox()
        self.scratch_root = scratch_dir(cfg.data_dir)
        self.scratch_base = self.scratch_root / str(os.getpid())
        gateway = Gateway(cfg.endpoint, cfg.region, str(cfg.tls_cert) if cfg.tls_cert else None)
        minter = STSMinter(services.iam) if services.iam is not None else StaticMinter(
            services.root.access_key, services.root.secret_key)
        self.executor = make_executor(executor_url, self.box, self.scratch_base)
        self.revocations = Revocations(self.db)
        self.limits = CallerLimits(self.db, Quota.from_env())
        self.runtimes = Registry(cfg.data_dir)
        self.scheduler = Scheduler(self.db, self.executor, minter, self.revocations,
                                   self.limits.platform, gateway, self.runtimes,
                                   self._run_function)
        self.jobs = Jobs(self.db, services.meta, self.limits, self.scheduler, self.runtimes)
        self.functions = FunctionRegistry(self.db, services.meta, self.limits, self.box,
                                          self.scratch_base, minter, self.revocations, gateway,
                                          self.scheduler, self.jobs.job_doc, self.runtimes)
        self.triggers = Dispatcher(self.db, services, self.limits, self.jobs, self.functions,
                                   self.scheduler)
        self.functions.triggers_changed = self.triggers.reload
        # Cron runs on one gateway of those sharing the database (SQLite: every process of
        # the one host may; start_cron's check lets one submit each run).
        self.triggers.leader = AdvisoryLeader(url, "cron") if url else None
        self._loops: list[asyncio.Task] = []

        # What the API (compute/api.py), the S3 handlers and the gate call.
        self.submit = self.jobs.submit
        self.job = self.jobs.job
        self.list_jobs = self.jobs.list_jobs
        self.tasks = self.jobs.tasks
        self.cancel = self.jobs.cancel
        self.logs = self.jobs.logs
        self.quota_doc = self.limits.doc
        self.put_quota = self.limits.put
        self.put_function = self.functions.put_function
        self.function = self.functions.function
        self.list_functions = self.functions.list_functions
        self.delete_function = self.functions.delete_function
        self.invoke = self.functions.invoke
        self.invoke_async = self.functions.invoke_async
        self.has_triggers = self.triggers.has_triggers
        self.enqueue_event = self.triggers.enqueue_event
        self.add_trigger = self.triggers.add_trigger
        self.list_triggers = self.triggers.list_triggers
        self.delete_trigger = self.triggers.delete_trigger
        self.set_notifications = self.triggers.set_notifications

        # Event targets (docs/events.md): the dispatcher fans events out to them.
        self.event_targets = EventTargetStore(self.db, services)
        self.triggers.targets = self.event_targets
        self.deliverer = Deliverer(self.db, self.event_targets)
        self.triggers.sent = self.deliverer.wake

    async def _run_function(self, c: Any) -> Any:
        return await self.functions.run_task(c)

    async def start(self) -> None:
        await asyncio.to_thread(self.db.open)
        await asyncio.to_thread(self._sweep_scratch)
        await self.executor.start()
        self.functions.pool.start()
        await self.scheduler.recover()
        self.triggers.reload()
        log.info("compute: executor %s, capacity %d, sandbox %s", self.executor.name,
                 self.executor.capacity, self.box.mode)
        for loop in (self.scheduler.schedule_loop, self.triggers.dispatch_loop,
                     self.triggers.cron_loop, self.scheduler.heartbeat_loop,
                     self.deliverer.loop):
            self._loops.append(asyncio.ensure_future(loop()))
        metrics.POOL_SIZE.set(self.executor.capacity)
        sizer = getattr(self.executor, "sizer", None)
        if sizer is not None:
            sizer.observe = self.scheduler.observe
            self._loops.append(asyncio.ensure_future(sizer.run()))

    async def stop(self) -> None:
        live = self.scheduler.halt()
        for t in self._loops:
            t.cancel()
        await asyncio.gather(*self._loops, *self.scheduler.tasks, return_exceptions=True)
        await self.functions.pool.close()
        if live:              # the killed tasks' keys die with them (a retry mints new ones)
            await self.revocations.revoke(*live)
        await self.executor.close()
        if self.triggers.leader is not None:
            await asyncio.to_thread(self.triggers.leader.release)
        await asyncio.to_thread(self.db.close)
        shutil.rmtree(self.scratch_base, ignore_errors=True)
        try:
            self.scratch_root.rmdir()           # only when no other gateway process uses it
        except OSError:
            pass

    def revoked(self, akid: str) -> bool:
        """Has this temporary key's task ended (gate.py asks on every signed request)?"""
        return self.revocations.revoked(akid)

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
