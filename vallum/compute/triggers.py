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
from typing import Any

from vallum.compute import access, cron, jobstore
from vallum.compute.credentials import principal_doc
from vallum.compute.events import KNOWN_PATTERNS, event_matches
from vallum.compute.spec import JobSpec, SpecError, parse_job

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
        if await service.services.meta.get_bucket(bucket) is None:
            raise SpecError(f"no such bucket {bucket!r}", "NoSuchBucket", 404)
        if not isinstance(function, str):
            raise SpecError("an object trigger needs function (the name of a function)")
        service._function_row(principal.account, function)
        events = doc.get("events") or ["s3:ObjectCreated:*"]
        if not isinstance(events, list) or any(e not in KNOWN_PATTERNS for e in events):
            raise SpecError(f"events must be a list of: {', '.join(KNOWN_PATTERNS)}")
        for name in ("prefix", "suffix"):
            if not isinstance(doc.get(name, ""), str):
                raise SpecError(f"{name} must be a string")
        await access.check_read(service.services.meta, principal,
                                f"s3://{bucket}/{doc.get('prefix', '')}", "bucket")
        row.update(bucket=bucket, prefix=doc.get("prefix", ""), suffix=doc.get("suffix", ""),
                   events=json.dumps(events), function=function)
    elif kind == "cron":
        unknown = set(doc) - {"kind", "schedule", "job", "source"}
        if unknown:
            raise SpecError(f"unknown field(s): {', '.join(sorted(unknown))}")
        try:
            schedule = cron.parse(str(doc.get("schedule", "")))
        except cron.CronError as exc:
            raise SpecError(f"schedule: {exc}", "InvalidSchedule") from None
        spec = parse_job(doc.get("job"), service.quota)
        if spec.depends_on or spec.idempotency_key:
            raise SpecError("a scheduled job cannot carry depends_on or idempotency_key")
        item = await service._prepare(principal, "job", spec, level)   # as a submit checks
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


def doc(row: dict[str, Any]) -> dict[str, Any]:
    out = {k: row[k] for k in ("id", "kind", "source", "owner", "created")}
    if row["kind"] == "object":
        out.update(bucket=row["bucket"], prefix=row["prefix"], suffix=row["suffix"],
                   events=json.loads(row["events"]), function=row["function"])
    else:
        out.update(schedule=row["cron"], job=json.loads(row["job"]), next_run=row["next_run"])
    return out


def dispatch(conn: sqlite3.Connection, now: float, batch: int = 200) -> int:
    """Turn pending outbox events into invocation jobs; returns events handled."""
    rows = conn.execute("SELECT seq, bucket, event FROM compute_outbox WHERE done=0 ORDER BY seq "
                        "LIMIT ?", (batch,)).fetchall()
    if not rows:
        return 0
    by_bucket: dict[str, list[sqlite3.Row]] = {}
    for seq, bucket, event in rows:
        if bucket not in by_bucket:
            by_bucket[bucket] = conn.execute(
                "SELECT id, account, owner, principal, prefix, suffix, events, function FROM "
                "compute_triggers WHERE kind='object' AND bucket=?", (bucket,)).fetchall()
        record = json.loads(event)
        key = _unquote_key(record["s3"]["object"]["key"])
        for tid, account, owner, who, prefix, suffix, events, function in by_bucket[bucket]:
            if not (key.startswith(prefix) and key.endswith(suffix)
                    and event_matches(json.loads(events), record["eventName"])):
                continue
            rec = json.loads(event)
            rec["s3"]["configurationId"] = tid
            spec = invocation_spec(function, {"Records": [rec]}, f"evt:{seq}:{tid}")
            jobstore.insert_jobs(conn, account, owner,
                                 [jobstore.NewJob("e", spec, "function", [("", None)])], now,
                                 json.loads(who))
        conn.execute("UPDATE compute_outbox SET done=1 WHERE seq=?", (seq,))
    conn.execute("DELETE FROM compute_outbox WHERE done=1 AND created < ?", (now - 86400,))
    return len(rows)


def _unquote_key(key: str) -> str:
    from urllib.parse import unquote_plus
    return unquote_plus(key)


def run_due_crons(conn: sqlite3.Connection, now: float) -> int:
    rows = conn.execute("SELECT id, account, owner, principal, cron, job, next_run FROM "
                        "compute_triggers WHERE kind='cron' AND next_run<=?", (now,)).fetchall()
    for tid, account, owner, who, expr, job, next_run in rows:
        from vallum.compute.spec import Quota
        spec = parse_job(json.loads(job), Quota.from_env())
        spec.idempotency_key = f"cron:{tid}:{int(next_run)}"
        arr_tasks: list[tuple[str, str | None]] = [("", None)]
        kind = "job"
        if spec.array:          # expand against the bucket as it is now
            bucket, _, prefix = spec.array[5:].partition("/")
            keys = [r[0] for r in conn.execute(
                "SELECT key FROM versions WHERE bucket=? AND key>=? AND key<? AND is_latest=1 "
                "AND delete_marker=0 ORDER BY key", (bucket, prefix, prefix + "\U0010ffff"))]
            arr_tasks = [(k[len(prefix):] or k, k) for k in keys]
            kind = "array"
        if arr_tasks:
            jobstore.insert_jobs(conn, account, owner, [jobstore.NewJob("c", spec, kind, arr_tasks)],
                                 now, json.loads(who))
        conn.execute("UPDATE compute_triggers SET next_run=? WHERE id=?",
                     (cron.parse(expr).next_after(now), tid))
    return len(rows)
