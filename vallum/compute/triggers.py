"""Triggers: object events -> function invocations, and cron schedules -> jobs.

Both turn into ordinary durable jobs with idempotency keys derived from what
fired them (outbox sequence + trigger, or schedule time), so a crash between
"job created" and "event marked done" delivers the event again without running
the function twice for it.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from dataclasses import dataclass
from typing import Any

from vallum.compute import access, cron, jobstore, levels
from vallum.compute.credentials import principal_doc
from vallum.compute.object_events import KNOWN_PATTERNS, event_matches
from vallum.compute.spec import JobSpec, Quota, SpecError, parse_job

ASYNC_RETRIES = 2          # like Lambda's asynchronous invocations


def invocation_spec(function: str, payload: Any, idempotency_key: str | None) -> JobSpec:
    return JobSpec(runtime="function", name=function[:128], function=function, payload=payload,
                   retries=ASYNC_RETRIES, backoff_s=1.0, idempotency_key=idempotency_key)


async def validate(service: Any, principal: Any, doc: Any,
                   level: str | None = None) -> dict[str, Any]:
    """A trigger row from {"kind": "object", "bucket", "prefix", "suffix", "events",
    "function"} or {"kind": "cron", "schedule", "job"}."""
    if not isinstance(doc, dict):
        raise SpecError("a trigger must be a JSON object")
    kind = doc.get("kind", "object" if "bucket" in doc else "cron")
    row: dict[str, Any] = {"id": "t-" + uuid.uuid4().hex[:16], "account": principal.account,
                           "owner": principal.arn, "principal": json.dumps(principal_doc(principal)),
                           "kind": kind, "source": doc.get("source", "api"), "bucket": None,
                           "prefix": "", "suffix": "", "events": "[]", "function": None,
                           "cron": None, "job": None, "next_run": None, "created": time.time()}
    if kind == "object":
        unknown = set(doc) - {"kind", "bucket", "prefix", "suffix", "events", "function", "source"}
        if unknown:
            raise SpecError(f"unknown field(s): {', '.join(sorted(unknown))}")
        bucket, function = doc.get("bucket"), doc.get("function")
        if not isinstance(bucket, str) or not bucket:
            raise SpecError("an object trigger needs bucket")
        if await service.meta.get_bucket(bucket) is None:
            raise SpecError(f"no such bucket {bucket!r}", "NoSuchBucket", 404)
        if not isinstance(function, str):
            raise SpecError("an object trigger needs function (the name of a function)")
        service.invocable(principal, function, level)    # at the function's own level
        events = doc.get("events") or ["s3:ObjectCreated:*"]
        if not isinstance(events, list) or any(e not in KNOWN_PATTERNS for e in events):
            raise SpecError(f"events must be a list of: {', '.join(KNOWN_PATTERNS)}")
        for name in ("prefix", "suffix"):
            if not isinstance(doc.get(name, ""), str):
                raise SpecError(f"{name} must be a string")
        await access.check_read(service.meta, principal,
                                f"s3://{bucket}/{doc.get('prefix', '')}", "bucket")
        # Events reach it only for objects its owner may read at this level (viewer.py).
        row.update(bucket=bucket, prefix=doc.get("prefix", ""), suffix=doc.get("suffix", ""),
                   events=json.dumps(events), function=function,
                   principal=json.dumps(principal_doc(principal, levels.job_level(principal,
                                                                                   level))))
    elif kind == "cron":
        unknown = set(doc) - {"kind", "schedule", "job", "source"}
        if unknown:
            raise SpecError(f"unknown field(s): {', '.join(sorted(unknown))}")
        try:
            schedule = cron.parse(str(doc.get("schedule", "")))
        except cron.CronError as exc:
            raise SpecError(f"schedule: {exc}", "InvalidSchedule") from None
        spec = parse_job(doc.get("job"), service.limits.for_account(principal.account))
        if spec.depends_on or spec.idempotency_key:
            raise SpecError("a scheduled job cannot carry depends_on or idempotency_key")
        item = await service.prepare(principal, "job", spec, level)   # as a submit checks
        row.update(cron=doc["schedule"], job=json.dumps({**doc["job"], "level": spec.level}),
                   principal=json.dumps(item.principal),
                   next_run=schedule.next_after(time.time()))
    else:
        raise SpecError("kind must be object or cron")
    return row


def insert(conn: sqlite3.Connection, row: dict[str, Any]) -> None:
    cols = ", ".join(row)
    # Column names come from validate(), never from the caller; values are bound.
    conn.execute(f"INSERT INTO compute_triggers ({cols}) VALUES ({', '.join('?' * len(row))})",  # noqa: S608
                 list(row.values()))


def level_of(row: dict[str, Any]) -> str | None:
    """The session level a trigger was made at (None: the lowest)."""
    return json.loads(row["principal"] or "{}").get("level")


def doc(row: dict[str, Any]) -> dict[str, Any]:
    out = {k: row[k] for k in ("id", "kind", "source", "owner", "created")}
    out["level"] = level_of(row)
    if row["kind"] == "object":
        out.update(bucket=row["bucket"], prefix=row["prefix"], suffix=row["suffix"],
                   events=json.loads(row["events"]), function=row["function"])
    else:
        out.update(schedule=row["cron"], job=json.loads(row["job"]), next_run=row["next_run"])
    return out


@dataclass
class Delivery:
    """One outbox event matched to one object trigger, waiting for the visibility check."""

    seq: int
    bucket: str
    key: str
    label: str | None            # the object's label (None: unknown, never delivered)
    record: dict[str, Any]
    trigger: dict[str, Any]      # id, account, owner, principal (JSON), function, fn_principal


def pending(conn: sqlite3.Connection, batch: int = 200) -> tuple[list[int], list[Delivery]]:
    """(outbox seqs to settle, the trigger matches among them) of the oldest pending events."""
    rows = conn.execute("SELECT seq, bucket, event, label FROM compute_outbox WHERE done=0 "
                        "ORDER BY seq LIMIT ?", (batch,)).fetchall()
    by_bucket: dict[str, list[Any]] = {}
    out: list[Delivery] = []
    for seq, bucket, event, label in rows:
        if bucket not in by_bucket:
            by_bucket[bucket] = conn.execute(
                "SELECT t.id, t.account, t.owner, t.principal, t.prefix, t.suffix, t.events, "
                "t.function, f.principal FROM compute_triggers t JOIN compute_functions f ON "
                "f.account=t.account AND f.name=t.function WHERE t.kind='object' AND t.bucket=?",
                (bucket,)).fetchall()
        record = json.loads(event)
        key = _unquote_key(record["s3"]["object"]["key"])
        for tid, account, owner, who, prefix, suffix, events, function, fn_who in by_bucket[bucket]:
            if (key.startswith(prefix) and key.endswith(suffix)
                    and event_matches(json.loads(events), record["eventName"])):
                out.append(Delivery(seq, bucket, key, label, record, {
                    "id": tid, "account": account, "owner": owner, "principal": who,
                    "function": function, "fn_principal": fn_who}))
    return [r[0] for r in rows], out


def deliver(conn: sqlite3.Connection, seqs: list[int], allowed: list[Delivery],
            now: float) -> int:
    """Turn the deliveries that passed the visibility check into invocation jobs (run as
    the function's principal, at its level) and mark the events done; returns events."""
    for d in allowed:
        rec = json.loads(json.dumps(d.record))
        rec["s3"]["configurationId"] = d.trigger["id"]
        runs_as = json.loads(d.trigger["fn_principal"])
        spec = invocation_spec(d.trigger["function"], {"Records": [rec]},
                               f"evt:{d.seq}:{d.trigger['id']}")
        spec.level = runs_as.get("level")
        jobstore.insert_jobs(conn, d.trigger["account"], d.trigger["owner"],
                             [jobstore.NewJob("e", spec, "function", [("", None)])], now, runs_as)
    conn.executemany("UPDATE compute_outbox SET done=1 WHERE seq=?", [(s,) for s in seqs])
    conn.execute("DELETE FROM compute_outbox WHERE done=1 AND created < ?", (now - 86400,))
    return len(seqs)


def _unquote_key(key: str) -> str:
    from urllib.parse import unquote_plus
    return unquote_plus(key)


def due_crons(conn: sqlite3.Connection, now: float) -> list[dict[str, Any]]:
    """Cron triggers whose next run has come (each: id, account, owner, principal, cron,
    job, next_run)."""
    rows = conn.execute("SELECT id, account, owner, principal, cron, job, next_run FROM "
                        "compute_triggers WHERE kind='cron' AND next_run<=?", (now,)).fetchall()
    names = ("id", "account", "owner", "principal", "cron", "job", "next_run")
    return [dict(zip(names, r, strict=True)) for r in rows]


def cron_spec(row: dict[str, Any], quota: Quota) -> JobSpec:
    """The job a due run submits, checked against the account's quota as it is now."""
    spec = parse_job(json.loads(row["job"]), quota)
    spec.idempotency_key = f"cron:{row['id']}:{int(row['next_run'])}"
    return spec


def start_cron(conn: sqlite3.Connection, row: dict[str, Any], spec: JobSpec | None,
               tasks: list[tuple[str, str | None]] | None, now: float) -> bool:
    """Submit one due run (``tasks``: an array job's, expanded by the caller as the
    principal it runs as; None: a plain job; []: nothing to run) and schedule the next;
    False when another gateway took this run first."""
    if conn.execute(jobstore.locking(conn, "SELECT next_run FROM compute_triggers WHERE id=?"),
                    (row["id"],)).fetchone() != (row["next_run"],):
        return False
    if tasks is None:
        tasks, kind = [("", None)], "job"
    else:
        kind = "array"
    if tasks and spec is not None:
        jobstore.insert_jobs(conn, row["account"], row["owner"],
                             [jobstore.NewJob("c", spec, kind, tasks)], now,
                             json.loads(row["principal"]))
    conn.execute("UPDATE compute_triggers SET next_run=? WHERE id=?",
                 (cron.parse(row["cron"]).next_after(now), row["id"]))
    return True
