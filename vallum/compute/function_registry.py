"""An account's functions: define (validated and authorized at a level), look up, delete,
and invoke them, synchronously in a warm worker or as a durable job; the scheduler runs
a function job's attempt through ``run_task``."""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vallum.compute import access, jobstore, levels, metrics, notifications, triggers
from vallum.compute import sandbox as sbx
from vallum.compute.credentials import principal_doc
from vallum.compute.db import ComputeStore
from vallum.compute.functions import FunctionError, FunctionPool, FunctionSpec, parse_function
from vallum.compute.resource_limits import CallerLimits
from vallum.compute.revocations import Revocations
from vallum.compute.runner import TaskResult, _io, _stage, gateway_tls
from vallum.compute.runtimes import Registry
from vallum.compute.scheduler import Gateway, Scheduler
from vallum.compute.spec import Hidden, SpecError


class FunctionRegistry:
    def __init__(self, db: ComputeStore, meta: Any, limits: CallerLimits, box: sbx.Sandbox,
                 scratch_base: Path, minter: Any, revocations: Revocations, gateway: Gateway,
                 scheduler: Scheduler, job_doc: Callable[[str], dict[str, Any]],
                 runtimes: Registry) -> None:
        self.db = db
        self.runtimes = runtimes
        self.meta = meta
        self.limits = limits
        self.minter = minter
        self.revocations = revocations
        self.gateway = gateway
        self.scheduler = scheduler
        self.job_doc = job_doc
        self.triggers_changed: Callable[[], None] = lambda: None   # set by the dispatcher
        self.pool = FunctionPool(box, scratch_base, self._stage_code, minter.mint,
                                 revocations.revoke, runtimes.resolve)

    def row(self, account: str, name: str) -> Any:
        rows = self.db.query("SELECT * FROM compute_functions WHERE account=? AND name=?",
                             (account, name))
        if not rows:
            raise SpecError(f"no such function {name!r}", "NoSuchFunction", 404)
        return rows[0]

    async def _stage_code(self, spec: FunctionSpec, code_dir, principal) -> None:
        if spec.code is not None:
            (code_dir / "main.py").write_text(spec.code)
            os.chmod(code_dir / "main.py", 0o644)
        if spec.code_uri:
            from vallum.client import Client
            creds = self.minter.mint(principal, spec.as_job(), 900)
            gw = self.gateway
            client = Client(gw.endpoint, creds.access_key_id, creds.secret_access_key,
                            session_token=creds.session_token, region=gw.region,
                            verify=gateway_tls(gw.ca_bundle) if gw.ca_bundle else True)
            try:
                await _io(_stage, client, spec.code_uri, code_dir)
            finally:
                await self.revocations.revoke(creds)

    async def run_task(self, c: jobstore.Claimed) -> TaskResult:
        row = self.row(c.account, c.spec.function or "")
        spec = FunctionSpec.from_json(json.loads(row["spec"]))
        ctx = {"invocation_id": f"{c.job_id}/{c.attempt}", "attempt": c.attempt}
        try:
            value, log_text = await self.pool.invoke(
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
        if not function_name_ok(name):
            raise SpecError("function names are 1-64 of [A-Za-z0-9_-]")
        spec = parse_function(doc, self.limits.for_account(principal.account))
        spec.level = levels.job_level(principal, spec.level or level)
        if spec.venv is not None:
            self.runtimes.resolve(spec.venv)          # UnknownRuntime (400) before anything
        meta = self.meta
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
            conn.execute("INSERT INTO compute_functions (account, name, owner, principal, spec, "
                         "revision, created) VALUES (?,?,?,?,?,?,?) ON CONFLICT (account, name) "
                         "DO UPDATE SET owner=excluded.owner, principal=excluded.principal, "
                         "spec=excluded.spec, revision=excluded.revision, "
                         "created=excluded.created",
                         (principal.account, name, principal.arn, who,
                          json.dumps(spec.to_json()), rev, time.time()))
            return rev

        await self.db.write(tx)
        self.pool.retire(principal.account, name)
        return _function_doc(self.row(principal.account, name))

    def _seen(self, principal: Any, name: str, level: str | None) -> Any:
        """The function row, when made at a level the caller's session level dominates;
        one above it does not exist for the caller (NoSuchFunction)."""
        row = self.row(principal.account, name)
        if not levels.sees(levels.reader_level(principal, level), _level_of(row)):
            raise Hidden(f"no such function {name!r}", "NoSuchFunction")
        return row

    def invocable(self, principal: Any, name: str, level: str | None) -> Any:
        """An invocation carries the payload in and the result out, so the caller's session
        level must equal the function's: above it would write down, below it read up."""
        row = self._seen(principal, name, level)
        mine = levels.label(levels.job_level(principal, level))
        theirs = levels.label(_level_of(row))
        if not theirs.dominates(mine):
            raise SpecError(f"function {name!r} runs at {theirs.banner()}, below your session "
                            f"level {mine.banner()} (no write down)", "AccessDenied", 403)
        if not mine.dominates(theirs):
            raise Hidden(f"no such function {name!r}", "NoSuchFunction")
        return row

    def function(self, principal: Any, name: str, level: str | None = None) -> dict[str, Any]:
        return _function_doc(self._seen(principal, name, level))

    def list_functions(self, principal: Any, level: str | None = None) -> list[dict[str, Any]]:
        reader = levels.reader_level(principal, level)
        rows = self.db.query("SELECT * FROM compute_functions WHERE account=? ORDER BY name",
                             (principal.account,))
        return [_function_doc(r) for r in rows if levels.sees(reader, _level_of(r))]

    async def delete_function(self, principal: Any, name: str,
                              level: str | None = None) -> list[str]:
        """Delete the function, its object triggers and the bucket-notification entries
        that target it (notifications.py says in which order); returns the trigger ids."""
        self._seen(principal, name, level)
        account = principal.account
        await notifications.strip_function(self.db, self.meta, account, name)
        removed = await self.db.write(lambda c: notifications.delete_function(c, account, name))
        self.triggers_changed()
        self.pool.retire(account, name)
        return removed

    async def invoke(self, principal: Any, name: str, payload: Any,
                     level: str | None = None) -> tuple[Any, str]:
        """(the result, what the call printed)."""
        row = self.invocable(principal, name, level)
        spec = FunctionSpec.from_json(json.loads(row["spec"]))
        t0 = time.perf_counter()
        outcome = "ok"
        try:
            return await self.pool.invoke(principal.account, name, row["revision"], spec,
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
        row = self.invocable(principal, name, level)
        spec = triggers.invocation_spec(name, payload, idempotency_key)
        spec.level = _level_of(row)
        item = jobstore.NewJob("job", spec, "function", [("", None)])
        ids = await self.db.write(lambda c: jobstore.insert_jobs(
            c, principal.account, principal.arn, [item], time.time(), principal_doc(principal)))
        metrics.SUBMITTED.labels("function").inc()
        self.scheduler.wake.set()
        return self.job_doc(ids["job"])


def _level_of(function_row: Any) -> str | None:
    """The session level a function runs at (None: the lowest)."""
    return json.loads(function_row["principal"]).get("level")


def _function_doc(row: Any) -> dict[str, Any]:
    return {"name": row["name"], "account": row["account"], "owner": row["owner"],
            "revision": row["revision"], "created": row["created"],
            "level": _level_of(row), "spec": json.loads(row["spec"])}


def function_name_ok(name: str) -> bool:
    return 1 <= len(name) <= 64 and all(ch.isalnum() or ch in "_-" for ch in name)
