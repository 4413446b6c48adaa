"""Account quotas: the platform root lowers, per account, any compute resource limit.

Why two layers: the operator's platform limits (VALLUM_COMPUTE_MAX_*) protect the host
(e.g. its pid limit); an account quota shares the host between tenants. A caller gets
the smaller of the two for every knob (spec.LIMITS), and a refusal names which bound it.
"""

from __future__ import annotations

import json
import sqlite3
import time
from typing import Any

from vallum.compute.spec import LIMITS, Quota, SpecError


def parse(doc: Any) -> dict[str, Any]:
    """{knob: positive number} from a PutQuota body; SpecError naming what is wrong."""
    if not isinstance(doc, dict):
        raise SpecError("a quota must be a JSON object of limit -> number")
    unknown = set(doc) - set(LIMITS)
    if unknown:
        raise SpecError(f"unknown quota field(s): {', '.join(sorted(unknown))}; "
                        f"known: {', '.join(LIMITS)}")
    out: dict[str, Any] = {}
    for name, value in doc.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise SpecError(f"quota {name} must be a positive number")
        out[name] = LIMITS[name][0](value)
    return out


def put(conn: sqlite3.Connection, account: str, limits: dict[str, Any]) -> None:
    if limits:
        conn.execute("INSERT INTO compute_quotas (account, limits, updated) VALUES (?, ?, ?) "
                     "ON CONFLICT (account) DO UPDATE SET limits=excluded.limits, "
                     "updated=excluded.updated", (account, json.dumps(limits), time.time()))
    else:
        conn.execute("DELETE FROM compute_quotas WHERE account=?", (account,))


def account_limits(conn: sqlite3.Connection, account: str) -> dict[str, Any]:
    row = conn.execute("SELECT limits FROM compute_quotas WHERE account=?",
                       (account,)).fetchone()
    return json.loads(row[0]) if row else {}


def effective(conn: sqlite3.Connection, platform: Quota, account: str) -> Quota:
    return platform.narrowed(account, account_limits(conn, account))


def concurrency(conn: sqlite3.Connection, platform: Quota) -> tuple[int, dict[str, int]]:
    """(the platform's running-task limit per account, the accounts that have a lower one)."""
    lower = {}
    for account, limits in conn.execute("SELECT account, limits FROM compute_quotas"):
        value = json.loads(limits).get("concurrency")
        if value is not None and value < platform.concurrency:
            lower[account] = int(value)
    return platform.concurrency, lower
