"""Task logs: one per job, task and attempt, held by the gateway (never in the output prefix).

Why here and not in the output bucket: jobs sharing an output prefix overwrote each
other's ``_logs/``, a retry overwrote the failed attempt's log, and the logs mixed
with the outputs a later job reads. The runner hands each attempt's log (bounded,
secrets redacted) back with its result; the service stores it in the compute database
in the same transaction that records the attempt's end, so the log exists exactly
when the attempt does, and the jobs API (with the job's MAC and IAM checks) serves it.
Logs older than VALLUM_COMPUTE_LOG_DAYS (30) are purged.
"""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

from vallum.compute import safeio

REDACTED = "[REDACTED]"
HEAD = 64 * 1024                       # kept from the start of a long log, the rest from its end


def max_bytes() -> int:
    return max(HEAD * 2, int(os.environ.get("VALLUM_COMPUTE_LOG_MAX_BYTES", 4 << 20)))


def retention_s() -> float:
    return float(os.environ.get("VALLUM_COMPUTE_LOG_DAYS", 30)) * 86400


def read_bounded(path: Path, limit: int | None = None, offset: int = 0) -> bytes:
    """At most ``limit`` bytes of a task's log from ``offset``. The folders on the way may be
    the task's own (it can swap one for a symlink at any time), so the path is walked with
    ``safeio`` (no link followed in any component) and only a regular file is read."""
    try:
        fd = safeio.open_file(path)
    except (OSError, ValueError):
        return b""
    return _read_fd(fd, max_bytes() if limit is None else limit, offset)


def _read_fd(fd: int, limit: int, offset: int) -> bytes:
    """The head and the tail of a longer log, with a line saying what was left out (a
    task can write gigabytes; the gateway holds only this much). Closes ``fd``."""
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return b""
        size = st.st_size - offset
        if size <= limit:
            return os.pread(fd, max(0, size), offset)
        head = os.pread(fd, HEAD, offset)
        tail_len = limit - HEAD
        tail = os.pread(fd, tail_len, offset + size - tail_len)
        return head + f"\n[vallum] {size - HEAD - tail_len} bytes left out\n".encode() + tail
    finally:
        os.close(fd)


def text(data: bytes, secrets: list[str], trailer: str = "") -> str:
    """The log as stored: credentials redacted, decoded, with the gateway's trailer."""
    for s in secrets:
        if s:
            data = data.replace(s.encode(), REDACTED.encode())
    return data.decode("utf-8", "replace") + trailer


def capture(path: Path, secrets: list[str], trailer: str = "") -> str:
    return text(read_bounded(path), secrets, trailer)


def ended(base: Path, parts: list[str], secrets: list[str], state: str, reason: str) -> str:
    """The log of a task that ended without its runner's finish (a warm task cancelled,
    timed out or lost): read beneath ``base`` (read_bounded), with the gateway's trailer."""
    return text(read_bounded(base.joinpath(*parts)), secrets, f"\n[vallum] {state}: {reason}\n")


def store(conn: sqlite3.Connection, job_id: str, idx: int, attempt: int, log: str,
          now: float) -> None:
    conn.execute("INSERT INTO compute_logs (job_id, idx, attempt, data, created) "
                 "VALUES (?, ?, ?, ?, ?) ON CONFLICT (job_id, idx, attempt) DO UPDATE SET "
                 "data=excluded.data, created=excluded.created", (job_id, idx, attempt, log, now))


def attempts(conn: sqlite3.Connection, job_id: str, idx: int) -> list[int]:
    return [r[0] for r in conn.execute("SELECT attempt FROM compute_logs WHERE job_id=? AND "
                                       "idx=? ORDER BY attempt", (job_id, idx))]


def read(conn: sqlite3.Connection, job_id: str, idx: int, attempt: int) -> str | None:
    row = conn.execute("SELECT data FROM compute_logs WHERE job_id=? AND idx=? AND attempt=?",
                       (job_id, idx, attempt)).fetchone()
    return row[0] if row else None


def purge(conn: sqlite3.Connection, now: float) -> None:
    conn.execute("DELETE FROM compute_logs WHERE created < ?", (now - retention_s(),))
