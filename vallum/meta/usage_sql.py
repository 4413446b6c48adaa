"""Usage bookkeeping and quota checks for the SQLite metadata store.

Triggers keep the ``usage`` table (meta/schema.py) in step with ``versions`` and ``parts``
inside every write transaction, so no write path (PUT, copy, Complete, delete, lifecycle,
relabel) can forget it. A data directory made before the table existed is backfilled once,
when the table is still empty. The quota check runs inside the write's savepoint: it
compares usage before and after the write, so a write that shrinks usage is never refused
and two concurrent writes cannot both pass (the writer thread serialises them).
"""

from __future__ import annotations

import re
import sqlite3

from vallum.meta.base import QuotaExceeded
from vallum.meta.records import Quota, Usage

_LABEL = "COALESCE(json_extract({row}.extra, '$.label'), '')"
_UPSERT = ("INSERT INTO usage (bucket, label, bytes, objects, pending) VALUES ({values}) "
           "ON CONFLICT (bucket, label) DO UPDATE SET bytes = bytes + excluded.bytes, "
           "objects = objects + excluded.objects, pending = pending + excluded.pending;")
_UPLOAD_BUCKET = "(SELECT bucket FROM uploads WHERE upload_id = {row}.upload_id)"
_UPLOAD_LABEL = ("(SELECT COALESCE(json_extract(extra, '$.label'), '') FROM uploads "
                 "WHERE upload_id = {row}.upload_id)")

TRIGGERS = [
    "CREATE TRIGGER IF NOT EXISTS usage_version_added AFTER INSERT ON versions "
    "WHEN NEW.delete_marker = 0 BEGIN "
    + _UPSERT.format(values=f"NEW.bucket, {_LABEL.format(row='NEW')}, NEW.size, 1, 0") + " END",
    "CREATE TRIGGER IF NOT EXISTS usage_version_dropped AFTER DELETE ON versions "
    "WHEN OLD.delete_marker = 0 BEGIN "
    + _UPSERT.format(values=f"OLD.bucket, {_LABEL.format(row='OLD')}, -OLD.size, -1, 0") + " END",
    "CREATE TRIGGER IF NOT EXISTS usage_version_relabelled AFTER UPDATE OF extra ON versions "
    f"WHEN OLD.delete_marker = 0 AND {_LABEL.format(row='OLD')} != {_LABEL.format(row='NEW')} BEGIN "
    + _UPSERT.format(values=f"OLD.bucket, {_LABEL.format(row='OLD')}, -OLD.size, -1, 0")
    + _UPSERT.format(values=f"NEW.bucket, {_LABEL.format(row='NEW')}, NEW.size, 1, 0") + " END",
    "CREATE TRIGGER IF NOT EXISTS usage_part_added AFTER INSERT ON parts BEGIN "
    + _UPSERT.format(values=f"{_UPLOAD_BUCKET.format(row='NEW')}, {_UPLOAD_LABEL.format(row='NEW')}, "
                            "0, 0, NEW.size") + " END",
    "CREATE TRIGGER IF NOT EXISTS usage_part_dropped AFTER DELETE ON parts "
    f"WHEN {_UPLOAD_BUCKET.format(row='OLD')} IS NOT NULL BEGIN "
    + _UPSERT.format(values=f"{_UPLOAD_BUCKET.format(row='OLD')}, {_UPLOAD_LABEL.format(row='OLD')}, "
                            "0, 0, -OLD.size") + " END",
    "CREATE TRIGGER IF NOT EXISTS usage_bucket_dropped AFTER DELETE ON buckets BEGIN "
    "DELETE FROM usage WHERE bucket = OLD.name; "
    "DELETE FROM quotas WHERE scope = 'bucket:' || OLD.name; END",
]

BACKFILL = (
    "INSERT INTO usage (bucket, label, bytes, objects, pending) "
    "SELECT bucket, label, SUM(b), SUM(o), SUM(p) FROM ("
    " SELECT bucket, COALESCE(json_extract(extra, '$.label'), '') AS label, size AS b, 1 AS o, 0 AS p"
    "  FROM versions WHERE delete_marker = 0"
    " UNION ALL SELECT u.bucket, COALESCE(json_extract(u.extra, '$.label'), ''), 0, 0, p.size"
    "  FROM parts p"
    "  JOIN uploads u ON u.upload_id = p.upload_id"
    ") WHERE NOT EXISTS (SELECT 1 FROM usage) GROUP BY bucket, label"
)

_QUOTAS_OF = ("SELECT scope, max_bytes, max_objects FROM quotas WHERE scope = 'bucket:' || :b "
              "OR scope = 'account:' || (SELECT owner FROM buckets WHERE name = :b)")
_BUCKET_TOTAL = ("SELECT COALESCE(SUM(bytes + pending), 0), COALESCE(SUM(objects), 0) "
                 "FROM usage WHERE bucket = :b")
_ACCOUNT_TOTAL = ("SELECT COALESCE(SUM(bytes + pending), 0), COALESCE(SUM(objects), 0) FROM usage "
                  "WHERE bucket IN (SELECT name FROM buckets WHERE owner = "
                  "(SELECT owner FROM buckets WHERE name = :b))")


class QuotaGuard:
    """Usage of the scopes with a quota, read before a write; ``check`` after it."""

    def __init__(self, conn: sqlite3.Connection, bucket: str) -> None:
        self.conn, self.bucket = conn, bucket
        self.limits = [(scope, Quota(mb, mo)) for scope, mb, mo
                       in conn.execute(_QUOTAS_OF, {"b": bucket}).fetchall()]
        self.before = [self._total(scope) for scope, _ in self.limits]

    def _total(self, scope: str) -> tuple[int, int]:
        sql = _BUCKET_TOTAL if scope.startswith("bucket:") else _ACCOUNT_TOTAL
        row = self.conn.execute(sql, {"b": self.bucket}).fetchone()
        return int(row[0]), int(row[1])

    def check(self) -> None:
        """Raise QuotaExceeded if the write grew a scope past its limit (the caller's
        savepoint then rolls the write back)."""
        for (scope, quota), (bytes0, objects0) in zip(self.limits, self.before, strict=True):
            size, count = self._total(scope)
            if quota.max_bytes is not None and size > quota.max_bytes and size > bytes0:
                raise QuotaExceeded(scope, "storage")
            if quota.max_objects is not None and count > quota.max_objects and count > objects0:
                raise QuotaExceeded(scope, "object count")


def bucket_usage(conn: sqlite3.Connection, bucket: str) -> Usage:
    usage = Usage()
    for label, size, count, pending in conn.execute(
            "SELECT label, bytes, objects, pending FROM usage WHERE bucket = ?", (bucket,)):
        usage.count(label, size, count, pending)
    return usage


def get_quota(conn: sqlite3.Connection, scope: str) -> Quota | None:
    row = conn.execute("SELECT max_bytes, max_objects FROM quotas WHERE scope = ?", (scope,)).fetchone()
    return Quota(row[0], row[1]) if row else None


def set_quota(conn: sqlite3.Connection, scope: str, quota: Quota | None) -> None:
    conn.execute("DELETE FROM quotas WHERE scope = ?", (scope,))
    if quota is not None and (quota.max_bytes is not None or quota.max_objects is not None):
        conn.execute("INSERT INTO quotas (scope, max_bytes, max_objects) VALUES (?, ?, ?)",
                     (scope, quota.max_bytes, quota.max_objects))


# -- requests and transfer (table ``request_usage``): one statement text for SQLite and,
# through ``pg``, PostgreSQL ----------------------------------------------------------
COUNTERS = ("reads", "writes", "lists", "others", "bytes_in", "bytes_out", "cpu_ms")
ADD_REQUESTS = (
    "INSERT INTO request_usage (day, account, bucket, reads, writes, lists, others, bytes_in, "
    "bytes_out, cpu_ms) VALUES (:day, :account, :bucket, :reads, :writes, :lists, :others, "
    ":bytes_in, :bytes_out, :cpu_ms) ON CONFLICT (day, account, bucket) DO UPDATE SET "
    "reads = request_usage.reads + excluded.reads, writes = request_usage.writes + excluded.writes, "
    "lists = request_usage.lists + excluded.lists, others = request_usage.others + excluded.others, "
    "bytes_in = request_usage.bytes_in + excluded.bytes_in, "
    "bytes_out = request_usage.bytes_out + excluded.bytes_out, "
    "cpu_ms = request_usage.cpu_ms + excluded.cpu_ms")
_SUMS = ", ".join(f"SUM({c})" for c in COUNTERS)


def request_query(accounts: list[str] | None, day: str | None) -> tuple[str, dict[str, object]]:
    """Rows (day or '', account, bucket, *COUNTERS): one day's rows, or the totals over
    every day; of ``accounts`` only (None: every account)."""
    params: dict[str, object] = {}
    where = []
    if accounts is not None:
        names = [f"a{i}" for i in range(len(accounts))]
        params.update(zip(names, accounts, strict=True))
        where.append("account IN (" + ", ".join(f":{n}" for n in names) + ")" if names else "1 = 0")
    if day is not None:
        where.append("day = :day")
        params["day"] = day
    cond = (" WHERE " + " AND ".join(where)) if where else ""
    if day is not None:
        # (constant column names; every value is a bound parameter)
        sql = "SELECT day, account, bucket, " + ", ".join(COUNTERS) + " FROM request_usage" + cond  # noqa: S608
    else:
        sql = f"SELECT '', account, bucket, {_SUMS} FROM request_usage{cond} GROUP BY account, bucket"  # noqa: S608
    return sql + " ORDER BY account, bucket", params


def pg(sql: str) -> str:
    """The same statement with psycopg's named parameters."""
    return re.sub(r"(?<!:):(\w+)", r"%(\1)s", sql)


def add_requests(conn: sqlite3.Connection, rows: list[dict[str, object]]) -> None:
    conn.executemany(ADD_REQUESTS, rows)


def requests(conn: sqlite3.Connection, accounts: list[str] | None,
             day: str | None) -> list[tuple]:
    sql, params = request_query(accounts, day)
    return [tuple(r) for r in conn.execute(sql, params).fetchall()]
