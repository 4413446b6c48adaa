"""Compute benchmark: `python -m bench.compute [--jobs N] [--array N]`
(also `python -m bench.run --compute`, as an optional section).

Figures (the issue's `make bench` list): submit-to-start latency p50/p99 on an
idle (warm) pool, object-event latency (PUT acknowledged -> function start),
tiny jobs per second, and an array job's tasks per second.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from vallum.client import Client

KEY, SECRET = "BENCHCOMPUTEROOT0000", "bench-compute-secret-key-000000000000000"


def start(data: Path, *extra: str) -> tuple[subprocess.Popen, str]:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, VALLUM_ROOT_ACCESS_KEY=KEY, VALLUM_ROOT_SECRET_KEY=SECRET)
    proc = subprocess.Popen([sys.executable, "-m", "vallum", "serve", "--data-dir", str(data),
                             "--address", f"127.0.0.1:{port}", *extra], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    endpoint = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            urllib.request.urlopen(endpoint + "/-/health/ready", timeout=1)
            return proc, endpoint
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("vallum serve did not start")


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def run(jobs: int = 100, array: int = 300, log=print) -> dict[str, float]:
    """Start a server, measure, stop it; the figures (also printed through ``log``)."""
    figs: dict[str, float] = {}
    tmp = Path(tempfile.mkdtemp(prefix="vallum-bench-compute-"))
    proc, endpoint = start(tmp / "data")
    try:
        c = Client(endpoint, KEY, SECRET)
        c.request("PUT", "/bench")
        out = "s3://bench/out/"
        # 1. submit-to-start on an idle pool, one job at a time
        lat = []
        for _ in range(20):
            j = c.submit({"runtime": "command", "command": ["true"], "output": out})
            d = c.wait(j["id"], poll=0.01)
            lat.append(d["started"] - d["created"])
        figs["submit_to_start_p50_ms"] = pct(lat, .5) * 1e3
        figs["submit_to_start_p99_ms"] = pct(lat, .99) * 1e3
        log(f"submit-to-start (idle pool): p50 {figs['submit_to_start_p50_ms']:.1f} ms, "
            f"p99 {figs['submit_to_start_p99_ms']:.1f} ms")
        # 2. tiny jobs per second (command `true`; warm sandboxes reused per owner)
        t0 = time.perf_counter()
        with ThreadPoolExecutor(8) as pool:
            ids = list(pool.map(lambda _: c.submit({"runtime": "command", "command": ["true"],
                                                    "output": out})["id"], range(jobs)))
        for i in ids:
            c.wait(i, poll=0.02)
        el = time.perf_counter() - t0
        figs["tiny_jobs_per_s"] = jobs / el
        log(f"tiny jobs: {jobs} in {el:.1f} s = {jobs / el:.1f} jobs/s")
        # 3. array job throughput (python word count, warm sandboxes)
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(lambda i: c.put_object("bench", f"docs/{i:05d}", b"a b c"),
                          range(array)))
        t0 = time.perf_counter()
        j = c.submit({"runtime": "python", "array": "s3://bench/docs/", "output": out,
                      "code": "import os\nd = os.environ['VALLUM_INPUT']\n"
                              "n = sum(len(open(os.path.join(d, f)).read().split()) for f in os.listdir(d))\n"
                              "open(os.environ['VALLUM_OUTPUT'] + '/n', 'w').write(str(n))\n"})
        d = c.wait(j["id"], timeout=3600, poll=0.1)
        el = time.perf_counter() - t0
        figs["array_tasks_per_s"] = array / el
        log(f"array word count: {array} tasks in {el:.1f} s = {array / el:.1f} tasks/s "
            f"({d['state']})")
        # 4. event latency: PUT acknowledged -> handler start
        c.create_function("rec", {"handler": "main.h", "code": "import time\n"
                                  "def h(e, c):\n    return time.time()\n"})
        c.add_trigger({"bucket": "bench", "prefix": "ev/", "function": "rec"})
        acked = {}
        for i in range(30):
            c.put_object("bench", f"ev/{i}", b"x")
            acked[i] = time.time()
            time.sleep(0.05)
        time.sleep(2)
        fn = [c.job(x["id"]) for x in c.jobs(limit=1000) if x["kind"] == "function"]
        starts = sorted(x["result"]["result"] for x in fn if x["state"] == "SUCCEEDED")
        ev = [s - a for s, a in zip(starts, sorted(acked.values()), strict=False)]
        if ev:
            figs["event_latency_p50_ms"] = pct(ev, .5) * 1e3
            figs["event_latency_p99_ms"] = pct(ev, .99) * 1e3
            log(f"event latency (PUT ack -> function start): p50 "
                f"{figs['event_latency_p50_ms']:.1f} ms, p99 {figs['event_latency_p99_ms']:.1f} ms "
                f"({len(ev)} events)")
        figs["load_average"] = os.getloadavg()[0]
        log(f"machine: {os.cpu_count()} cores, load average {figs['load_average']:.1f}")
        return figs
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=100)
    ap.add_argument("--array", type=int, default=300)
    args = ap.parse_args()
    run(args.jobs, args.array)


if __name__ == "__main__":
    main()
