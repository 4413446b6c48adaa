"""The durable job queue: submit, claim, finish, cancel and recover, as SQL on one connection.

Every function here runs inside one write transaction (ComputeDB.tx) so each
state change is atomic and durable before anyone is told about it. Task states
roll up into the job state; a job that ends wakes (or fails) its dependents.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from dataclasses import dataclass
from typing import Any

from vallum.compute.graph import CycleError, topo_order
from vallum.compute.spec import JobSpec, SpecError

QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED, TIMED_OUT = (
    "QUEUED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED", "TIMED_OUT")
TERMINAL = (SUCCEEDED, FAILED, CANCELLED, TIMED_OUT)


def new_job_id() -> str:
    return "j-" + uuid.uuid4().hex[:24]


@dataclass
class NewJob:
    """One job to insert: its spec and its tasks as (name, input key or None)."""

    ref: str                     # caller's name for it inside a batch (deps may use it)
    spec: JobSpec
    kind: str
    tasks: list[tuple[str, str | None]]
    principal: dict[str, Any] | None = None   # this job's minting doc (else the batch's)


@dataclass
class Claimed:
    seq: int
    job_id: str
    idx: int
    name: str
    input: str | None
    attempt: int
    account: str
    owner: str
    kind: str
    spec: JobSpec
    total: int
    principal: dict[str, Any]
    ready: float                 # when it became runnable (wait-time metric)


def insert_jobs(conn: sqlite3.Connection, account: str, owner: str, items: list[NewJob],
                now: float, principal: dict[str, Any] | None = None) -> dict[str, str]:
    """Insert a batch (deps by ref or existing id); returns ref -> job id. Idempotency keys
    already used by this account return the existing job instead of a new one."""
    refs = {it.ref for it in items}
    order = topo_order({it.ref: list(it.spec.depends_on) for it in items})
    by_ref = {it.ref: it for it in items}
    ids: dict[str, str] = {}
    for ref in order:
        it = by_ref[ref]
        key = scoped_key(it.spec.idempotency_key, it.spec.level)
        if key is not None:
            row = conn.execute("SELECT id FROM compute_jobs WHERE account=? AND idem_key=?",
                               (account, key)).fetchone()
            if row is not None:
                ids[ref] = row[0]
                continue
        job_id = new_job_id()
        blocked = 0
        dep_ids = []
        for dep in it.spec.depends_on:
            if dep in refs:
                dep_id = ids[dep]
            else:
                dep_id = dep
            row = conn.execute("SELECT state, account FROM compute_jobs WHERE id=?",
                               (dep_id,)).fetchone()
            if row is None or row[1] != account:
                raise SpecError(f"depends_on: no such job {dep!r}")
            if row[0] in (FAILED, CANCELLED, TIMED_OUT):
                raise SpecError(f"depends_on: job {dep_id} already ended {row[0]}")
            if row[0] != SUCCEEDED:
                blocked += 1
            dep_ids.append(dep_id)
        spec = it.spec
        spec.depends_on = dep_ids
        made = conn.execute(
            "INSERT INTO compute_jobs (id, account, owner, principal, name, kind, spec, state, "
            "idem_key, blocked, parallelism, tasks_total, created) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?) "
            "ON CONFLICT (account, idem_key) DO NOTHING RETURNING id",
            (job_id, account, owner, json.dumps(it.principal or principal or {}), spec.name, it.kind, json.dumps(spec.to_json()), QUEUED, key,
             blocked, spec.parallelism, len(it.tasks), now)).fetchone()
        if made is None:        # PostgreSQL: another gateway made it since the check above
            ids[ref] = conn.execute("SELECT id FROM compute_jobs WHERE account=? AND idem_key=?",
                                    (account, key)).fetchone()[0]
            continue
        conn.executemany("INSERT INTO compute_deps (job_id, dep_id) VALUES (?, ?)",
                         [(job_id, d) for d in dep_ids])
        conn.executemany(
            "INSERT INTO compute_tasks (job_id, idx, name, input, state, attempts, not_before) "
            "VALUES (?,?,?,?,?,0,?)",
            [(job_id, i, name, inp, QUEUED, now) for i, (name, inp) in enumerate(it.tasks)])
        ids[ref] = job_id
    return ids


_SEP = "\x1f"


def scoped_key(key: str | None, level: str | None) -> str | None:
    """An idempotency key as stored: within the job's level, so a key reused at another
    level makes a new job instead of answering with (and revealing) that level's job."""
    return None if key is None else f"{level or ''}{_SEP}{key}"


def check_refs(items: list[NewJob]) -> None:
    """Cycle check without a connection (so it can run before any I/O)."""
    try:
        topo_order({it.ref: list(it.spec.depends_on) for it in items})
    except CycleError as exc:
        raise SpecError(str(exc), "CyclicDependency") from None


def is_postgres(conn: Any) -> bool:
    return getattr(conn, "dialect", "sqlite") == "postgresql"


def locking(conn: Any, select: str, skip: bool = False, of: str = "") -> str:
    """``select`` with the row locks it needs on PostgreSQL, where several gateways write
    at once (``skip``: rows another transaction holds are passed over, so concurrent
    claimers take disjoint tasks); as is on SQLite, whose single writer serialises writes."""
    if not is_postgres(conn):
        return select
    clause = " FOR UPDATE" + (f" OF {of}" if of else "")
    return select + clause + (" SKIP LOCKED" if skip else "")


def claim(conn: sqlite3.Connection, lease: str, now: float, free: int,
          concurrency: tuple[int, dict[str, int]] | None = None) -> list[Claimed]:
    """Move up to ``free`` runnable tasks to RUNNING under ``lease``; FIFO by job, bounded
    by each job's parallelism and by each account's running-task limit (``concurrency``:
    the platform's, and the accounts with a lower quota; quotas.concurrency)."""
    if free <= 0:
        return []
    out: list[Claimed] = []
    running_by: dict[str, int] = {}
    if concurrency is not None:
        running_by = dict(conn.execute(
            "SELECT j.account, count(*) FROM compute_tasks t JOIN compute_jobs j ON "
            "j.id=t.job_id WHERE t.state='RUNNING' GROUP BY j.account").fetchall())
    jobs = conn.execute(
        "SELECT id, spec, parallelism, account, owner, kind, state, tasks_total, principal "
        "FROM compute_jobs "
        "WHERE state IN ('QUEUED','RUNNING') AND blocked=0 ORDER BY seq").fetchall()
    for job_id, spec_json, parallelism, account, owner, kind, state, total, who in jobs:
        n = free - len(out)
        if n <= 0:
            break
        if parallelism:
            if is_postgres(conn):     # count this job's running tasks alone
                conn.execute(locking(conn, "SELECT 1 FROM compute_jobs WHERE id=?"), (job_id,))
            running = conn.execute("SELECT count(*) FROM compute_tasks WHERE job_id=? AND "
                                   "state='RUNNING'", (job_id,)).fetchone()[0]
            n = min(n, parallelism - running)
            if n <= 0:
                continue
        if concurrency is not None:
            limit = concurrency[1].get(account, concurrency[0])
            n = min(n, limit - running_by.get(account, 0))
            if n <= 0:
                continue
        rows = conn.execute(locking(
            conn, "SELECT seq, idx, name, input, attempts, not_before FROM compute_tasks WHERE "
            "job_id=? AND state='QUEUED' AND not_before<=? ORDER BY idx LIMIT ?", skip=True),
            (job_id, now, n)).fetchall()
        if not rows:
            continue
        spec = JobSpec.from_json(json.loads(spec_json))
        conn.executemany(
            "UPDATE compute_tasks SET state='RUNNING', lease=?, heartbeat=?, started=?, "
            "attempts=attempts+1, reason=NULL WHERE seq=? AND state='QUEUED'",
            [(lease, now, now, r[0]) for r in rows])
        if state == QUEUED:
            conn.execute("UPDATE compute_jobs SET state='RUNNING', started=? WHERE id=? AND "
                         "state='QUEUED'",
                         (now, job_id))
        running_by[account] = running_by.get(account, 0) + len(rows)
        for seq, idx, name, inp, attempts, ready in rows:
            out.append(Claimed(seq, job_id, idx, name, inp, attempts + 1, account, owner, kind,
                               spec, total, json.loads(who), ready))
    return out


def heartbeat(conn: sqlite3.Connection, lease: str, now: float) -> None:
    conn.execute("UPDATE compute_tasks SET heartbeat=? WHERE lease=? AND state='RUNNING'",
                 (now, lease))


def finish_task(conn: sqlite3.Connection, seq: int, state: str, exit_code: int | None,
                reason: str | None, now: float, retry_at: float | None = None,
                result: Any = None) -> list[str]:
    """Record one attempt's end. With ``retry_at`` the task goes back to QUEUED. Returns the
    ids of jobs that reached a terminal state (this one and failed dependents)."""
    row = conn.execute("SELECT job_id FROM compute_tasks WHERE seq=?", (seq,)).fetchone()
    if row is None:
        return []
    job_id = row[0]
    # The job row first (PostgreSQL: locked), so two tasks of one job ending at once on two
    # gateways roll up one after the other and the later one sees the earlier's end.
    job_state = conn.execute(locking(conn, "SELECT state FROM compute_jobs WHERE id=?"),
                             (job_id,)).fetchone()[0]
    if conn.execute("SELECT state FROM compute_tasks WHERE seq=?", (seq,)).fetchone()[0] != RUNNING:
        return []                       # already settled (cancelled, or recovered elsewhere)
    if job_state == CANCELLED:
        state, retry_at = CANCELLED, None
    if retry_at is not None:
        conn.execute("UPDATE compute_tasks SET state='QUEUED', not_before=?, lease=NULL, "
                     "exit_code=?, reason=? WHERE seq=?", (retry_at, exit_code, reason, seq))
        return []
    conn.execute("UPDATE compute_tasks SET state=?, finished=?, exit_code=?, reason=?, lease=NULL "
                 "WHERE seq=?", (state, now, exit_code, reason, seq))
    if result is not None:
        conn.execute("UPDATE compute_jobs SET result=? WHERE id=?", (json.dumps(result), job_id))
    return _roll_up(conn, job_id, now)


def _roll_up(conn: sqlite3.Connection, job_id: str, now: float) -> list[str]:
    counts = dict(conn.execute("SELECT state, count(*) FROM compute_tasks WHERE job_id=? "
                               "GROUP BY state", (job_id,)).fetchall())
    if counts.get(QUEUED) or counts.get(RUNNING):
        return []
    current = conn.execute("SELECT state FROM compute_jobs WHERE id=?", (job_id,)).fetchone()[0]
    if current in TERMINAL and current != CANCELLED:
        return []
    if current == CANCELLED:
        final = CANCELLED
    elif counts.get(TIMED_OUT):
        final = TIMED_OUT
    elif counts.get(FAILED):
        final = FAILED
    elif counts.get(CANCELLED):
        final = CANCELLED
    else:
        final = SUCCEEDED
    bad = conn.execute("SELECT exit_code, reason, name FROM compute_tasks WHERE job_id=? AND "
                       "state NOT IN ('SUCCEEDED') ORDER BY idx LIMIT 1", (job_id,)).fetchone()
    if final == SUCCEEDED:
        code, reason = 0, None
    elif bad is not None:
        n_bad = sum(v for k, v in counts.items() if k != SUCCEEDED)
        code = bad[0]
        reason = bad[1] or final.lower()
        if sum(counts.values()) > 1:
            reason = f"{n_bad} of {sum(counts.values())} tasks did not succeed; first ({bad[2]}): {reason}"
    else:
        code, reason = None, "cancelled"
    conn.execute("UPDATE compute_jobs SET state=?, finished=?, exit_code=?, reason=? WHERE id=?",
                 (final, now, code, reason, job_id))
    return [job_id] + _settle_dependents(conn, job_id, final, now)


def _settle_dependents(conn: sqlite3.Connection, job_id: str, final: str, now: float) -> list[str]:
    ended: list[str] = []
    for (dep_job,) in conn.execute("SELECT job_id FROM compute_deps WHERE dep_id=?",
                                   (job_id,)).fetchall():
        if final == SUCCEEDED:
            conn.execute("UPDATE compute_jobs SET blocked=blocked-1 WHERE id=? AND blocked>0",
                         (dep_job,))
            continue
        state = conn.execute("SELECT state FROM compute_jobs WHERE id=?", (dep_job,)).fetchone()
        if state is None or state[0] in TERMINAL:
            continue
        reason = f"dependency {job_id} ended {final}"
        conn.execute("UPDATE compute_tasks SET state='FAILED', finished=?, reason=? WHERE "
                     "job_id=? AND state='QUEUED'", (now, reason, dep_job))
        conn.execute("UPDATE compute_jobs SET state='FAILED', finished=?, reason=? WHERE id=?",
                     (now, reason, dep_job))
        ended.append(dep_job)
        ended += _settle_dependents(conn, dep_job, FAILED, now)
    return ended


def cancel_job(conn: sqlite3.Connection, job_id: str, now: float) -> tuple[bool, list[int], list[str]]:
    """(was it cancellable, seqs of its running tasks to kill, jobs that ended)."""
    row = conn.execute(locking(conn, "SELECT state FROM compute_jobs WHERE id=?"),
                       (job_id,)).fetchone()
    if row is None or row[0] in TERMINAL:
        return False, [], []
    conn.execute("UPDATE compute_tasks SET state='CANCELLED', finished=?, reason='cancelled' "
                 "WHERE job_id=? AND state='QUEUED'", (now, job_id))
    # After the update: a task another gateway claimed meanwhile is RUNNING now.
    running = [r[0] for r in conn.execute("SELECT seq FROM compute_tasks WHERE job_id=? AND "
                                          "state='RUNNING'", (job_id,)).fetchall()]
    conn.execute("UPDATE compute_jobs SET state='CANCELLED', reason='cancelled by request' "
                 "WHERE id=?", (job_id,))
    ended: list[str] = []
    if not running:
        conn.execute("UPDATE compute_jobs SET finished=? WHERE id=?", (now, job_id))
        ended = [job_id] + _settle_dependents(conn, job_id, CANCELLED, now)
    return True, running, ended


def recover(conn: sqlite3.Connection, now: float, stale_before: float,
            live_leases: set[str]) -> list[tuple[int, str]]:
    """Tasks RUNNING under a lease that is neither live nor heartbeating (its server died):
    retry them (at-least-once) or fail them, by their job's retry policy. Returns
    (seq, outcome) for each task touched."""
    rows = conn.execute(locking(
        conn, "SELECT t.seq, t.attempts, j.spec, t.lease FROM compute_tasks t JOIN compute_jobs j "
        "ON j.id=t.job_id WHERE t.state='RUNNING' AND t.heartbeat < ?", skip=True, of="t"),
        (stale_before,)).fetchall()
    out = []
    for seq, attempts, spec_json, lease in rows:
        if lease in live_leases:
            continue
        spec = JobSpec.from_json(json.loads(spec_json))
        reason = "lost: the server running it stopped"
        if attempts <= spec.retries or spec.runtime == "function":
            conn.execute("UPDATE compute_tasks SET state='QUEUED', lease=NULL, not_before=?, "
                         "reason=? WHERE seq=? AND state='RUNNING'", (now, reason, seq))
            out.append((seq, "requeued"))
        else:
            finish_task(conn, seq, FAILED, None, reason, now)
            out.append((seq, "failed"))
    return out


def job_doc(row: Any) -> dict[str, Any]:
    spec = json.loads(row["spec"])
    doc = {k: row[k] for k in ("id", "account", "owner", "name", "kind", "state", "created",
                               "started", "finished", "exit_code", "reason", "tasks_total")}
    doc["idempotency_key"] = row["idem_key"].split(_SEP, 1)[-1] if row["idem_key"] else None
    doc["depends_on"] = spec.get("depends_on", [])
    doc["output"] = spec.get("output")
    doc["runtime"] = spec.get("runtime")
    doc["level"] = spec.get("level")
    if row["result"] is not None:
        doc["result"] = json.loads(row["result"])
    return doc
