"""Server CPU per request, per thread: where a Vallum variant spends its time.

    python -m bench.threadcpu [TARGET] [OP]      # default: vallum GET

Starts TARGET (a bench/servers.py Vallum variant, or ``vallum-noaudit`` =
``VALLUM_AUDIT=off``), fills a bucket with 5,000 4 KiB objects, runs 5,000 OPs at
concurrency 16 and prints each server thread's user and system CPU per request, read
from ``/proc/PID/task/*/stat`` before and after. Why: the total CPU per request says
*that* a feature costs; per thread it says which thread (the event loop, the audit
writer, the metadata writer) pays and whether in user or kernel time.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

from bench import servers, workloads

COUNT = 5000
_TICKS = os.sysconf("SC_CLK_TCK")


def thread_ticks(pid: int) -> dict[str, tuple[int, int]]:
    """Thread id -> (user, system) clock ticks, for every thread of ``pid``."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        out[tid] = (int(fields[11]), int(fields[12]))
    return out


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    target = args[0] if args else "vallum"
    op = (args[1] if len(args) > 1 else "GET").upper()
    servers.VALLUM_VARIANTS.setdefault("vallum-noaudit", {"VALLUM_AUDIT": "off"})
    base = Path(tempfile.mkdtemp(prefix="vallum-threadcpu-"))
    srv = servers.start(target, base)
    try:
        ep = workloads.Endpoint(srv.endpoint, srv.access_key, srv.secret_key)
        workloads.create_bucket(ep, "threadcpu")
        workloads.small_ops(ep, "threadcpu", "PUT", "k", COUNT, 4096, 16, 2, srv.pid)
        before = thread_ticks(srv.pid)
        batch = workloads.small_ops(ep, "threadcpu", op, "k", COUNT, 4096, 16, 2, srv.pid)
        after = thread_ticks(srv.pid)
    finally:
        servers.stop_all()
        shutil.rmtree(base, ignore_errors=True)
    done = max(1, COUNT - batch.errors)
    print(f"{target} {op}: {batch.ops_per_s:,.0f} ops/s, {batch.errors} errors")
    rows = []
    for tid, (user, system) in after.items():
        u0, s0 = before.get(tid, (0, 0))
        if user - u0 or system - s0:
            rows.append(((user - u0) * 1e6 / _TICKS / done, (system - s0) * 1e6 / _TICKS / done, tid))
    for user, system, tid in sorted(rows, reverse=True):
        print(f"  thread {tid:>8}: user {user:6.1f} us/request, system {system:6.1f} us/request")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
