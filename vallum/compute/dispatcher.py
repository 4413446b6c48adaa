"""The trigger dispatcher: which buckets have object triggers, the durable event outbox,
trigger and notification definitions, and the two loops that turn events into function
jobs and due schedules into jobs (the matching and job shapes are in triggers.py)."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

from vallum import authz
from vallum.compute import access, levels, metrics, triggers, viewer
from vallum.compute.db import ComputeStore
from vallum.compute.function_registry import FunctionRegistry
from vallum.compute.jobs import Jobs
from vallum.compute.resource_limits import CallerLimits
from vallum.compute.scheduler import Scheduler
from vallum.compute.spec import Hidden, SpecError

log = logging.getLogger("vallum.compute")


class Dispatcher:
    def __init__(self, db: ComputeStore, services: Any, limits: CallerLimits, jobs: Jobs,
                 functions: FunctionRegistry, scheduler: Scheduler) -> None:
        self.db = db
        self.services = services          # the viewers of events ask IAM and MAC
        self.meta = services.meta
        self.limits = limits
        self.scheduler = scheduler
        self.invocable = functions.invocable
        self.prepare = jobs.prepare
        self.targets: Any = None           # event_target_store.EventTargetStore
        self.sent = asyncio.Event()        # set when deliveries to event targets were made
        self.buckets: set[str] = set()
        self.wake = asyncio.Event()
        self.leader: Any = None          # meta.leader.AdvisoryLeader on PostgreSQL

    def reload(self) -> None:
        rows = self.db.query("SELECT DISTINCT bucket FROM compute_triggers WHERE kind='object'")
        self.buckets = {r["bucket"] for r in rows}
        if self.targets is not None:       # buckets whose events go to external targets
            self.buckets |= self.targets.route_buckets()

    def has_triggers(self, bucket: str) -> bool:
        return bucket in self.buckets

    async def enqueue_event(self, bucket: str, record: dict[str, Any], label: str) -> None:
        """Durable before the write is acknowledged (the caller awaits this). ``label``: the
        object's, so only triggers whose principal may read it receive the event."""
        text = json.dumps(record)
        await self.db.write(lambda c: c.execute(
            "INSERT INTO compute_outbox (bucket, event, label, created, done) VALUES (?,?,?,?,0)",
            (bucket, text, label, time.time())))
        metrics.EVENTS.labels(record["eventName"]).inc()
        self.wake.set()

    async def add_trigger(self, principal: Any, doc: Any, level: str | None = None) -> dict[str, Any]:
        row = await triggers.validate(self, principal, doc, level)
        await self.db.write(lambda c: triggers.insert(c, row))
        self.reload()
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
        self.reload()

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
        self.reload()

    async def dispatch_loop(self) -> None:
        while True:
            self.wake.clear()
            try:
                n = await self._dispatch_once()
                if n:
                    self.scheduler.wake.set()
                    continue
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("event dispatch failed")
            try:
                await asyncio.wait_for(self.wake.wait(), 1.0)
            except asyncio.TimeoutError:
                pass
            self.reload()

    async def cron_loop(self) -> None:
        while True:
            try:
                lead = self.leader is None or await asyncio.to_thread(self.leader.held)
                n = await self._run_due_crons() if lead else 0
                if n:
                    self.scheduler.wake.set()
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
        targets = self.targets
        owners = await targets.owners(seqs) if targets is not None else {}

        def tx(conn: Any) -> tuple[int, int]:
            # Deliveries to event targets commit with the events' settlement (at least once).
            made = targets.fan_out(conn, seqs, owners) if targets is not None else 0
            return triggers.deliver(conn, seqs, allowed, time.time()), made

        n, made = await self.db.write(tx)
        if made:
            self.sent.set()
        return n

    async def _run_due_crons(self) -> int:
        """Submit the due scheduled jobs; an array job expands its prefix as its principal
        (at its level, through IAM), so hidden keys never become task names."""
        n = 0
        for row in triggers.due_crons(self.db.reader(), time.time()):
            quota = self.limits.for_account(row["account"])
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
                        keys = await access.list_prefix(self.meta, spec.array,
                                                        quota.tasks, spec.level,
                                                        who.principal)
                    except SpecError as exc:
                        log.warning("cron %s: run skipped: %s", row["id"], exc.message)
                tasks = [(k[len(prefix):] or k, k) for k in keys]
            now = time.time()
            n += await self.db.write(lambda c, row=row, spec=spec, tasks=tasks, now=now:  # type: ignore[misc]  # mypy cannot infer a lambda with default args
                                     triggers.start_cron(c, row, spec, tasks, now))
        return n
