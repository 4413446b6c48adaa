"""Shapes of the usage answer: request counters, the daily report (JSON/CSV) and the
Prometheus text of the per-account totals (served only to signed admin callers)."""

from __future__ import annotations

import csv
import io
import re
import time
from collections.abc import Sequence
from typing import Any

from vallum.meta.usage_sql import COUNTERS

PROMETHEUS_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
REPORT_COLUMNS = ("day", "account", "bucket", *COUNTERS)


def zero() -> dict[str, int]:
    return dict.fromkeys(COUNTERS, 0)


def add(into: dict[str, int], counts: Sequence[int]) -> None:
    for name, n in zip(COUNTERS, counts, strict=True):
        into[name] += int(n)


def parse_day(value: Any) -> str | None:
    """A UTC day 'YYYY-MM-DD' (a real date), or None for the totals over every day."""
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not _DAY.fullmatch(value):
        raise ValueError("day must be a date YYYY-MM-DD")
    try:
        time.strptime(value, "%Y-%m-%d")
    except ValueError:
        raise ValueError(f"day {value} is not a date") from None
    return value


def previous_day(now: float | None = None) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime((time.time() if now is None else now) - 86400))


def report_rows(answer: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per account (bucket '') and per bucket of a GetUsage answer for one day."""
    day = answer.get("day", "")
    rows = []
    for account, usage in sorted(answer["accounts"].items()):
        rows.append({"day": day, "account": account, "bucket": "", **usage["requests"]})
        for bucket, entry in sorted(usage["buckets"].items()):
            if any(entry["requests"].values()):
                rows.append({"day": day, "account": account, "bucket": bucket, **entry["requests"]})
    return rows


def to_csv(rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, REPORT_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def prometheus(accounts: dict[str, Any]) -> str:
    """Per-account totals in Prometheus' text format (no bucket names)."""
    lines = [
        "# HELP vallum_account_requests_total Requests by the account's callers, by class",
        "# TYPE vallum_account_requests_total counter",
    ]
    for account, u in sorted(accounts.items()):
        for cls in COUNTERS[:4]:
            lines.append(f'vallum_account_requests_total{{account="{_esc(account)}",class="{cls}"}} '
                         f'{u["requests"][cls]}')
    for metric, help_text, kind, value in (
            ("vallum_account_bytes_in_total", "Request body bytes read", "counter",
             lambda u: u["requests"]["bytes_in"]),
            ("vallum_account_bytes_out_total", "Response body bytes sent (egress)", "counter",
             lambda u: u["requests"]["bytes_out"]),
            ("vallum_account_cpu_seconds_total", "CPU time of the account's compute tasks",
             "counter", lambda u: u["requests"]["cpu_ms"] / 1000),
            ("vallum_account_stored_bytes", "Bytes stored in the account's buckets", "gauge",
             lambda u: u["bytes"]),
            ("vallum_account_stored_objects", "Object versions stored", "gauge",
             lambda u: u["objects"])):
        lines += [f"# HELP {metric} {help_text}", f"# TYPE {metric} {kind}"]
        lines += [f'{metric}{{account="{_esc(a)}"}} {value(u)}' for a, u in sorted(accounts.items())]
    return "\n".join(lines) + "\n"


def _esc(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
