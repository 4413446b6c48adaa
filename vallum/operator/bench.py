"""Gateway throughput with the operator off vs on (observe), on this machine.

    python -m vallum.operator.bench [--requests 3000] [--rounds 3]

Starts `vallum serve` on a free loopback port for each setting, alternating
off/observe rounds so machine noise hits both, and reports small-GET requests
per second (4 client threads) and the relative overhead.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

KEY, SECRET = "BENCHROOTKEY00000000", "bench-root-secret-key-000000000000000000"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(data: Path, mode: str) -> tuple[subprocess.Popen, str]:
    port = _port()
    env = dict(os.environ, VALLUM_ROOT_ACCESS_KEY=KEY, VALLUM_ROOT_SECRET_KEY=SECRET,
               VALLUM_OPERATOR=mode)
    proc = subprocess.Popen([sys.executable, "-m", "vallum", "serve", "--data-dir", str(data),
                             "--address", f"127.0.0.1:{port}"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            with urllib.request.urlopen(url + "/-/health/ready", timeout=1):  # noqa: S310 - loopback http
                return proc, url
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("server did not start")


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (Linux /proc): robust to a busy machine, unlike req/s."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _round(data: Path, mode: str, requests: int) -> tuple[float, float]:
    import boto3
    from botocore.config import Config
    proc, url = _serve(data, mode)
    try:
        s3 = boto3.client("s3", endpoint_url=url, aws_access_key_id=KEY, aws_secret_access_key=SECRET,
                          region_name="us-east-1", config=Config(s3={"addressing_style": "path"},
                                                                 max_pool_connections=8))
        try:
            s3.create_bucket(Bucket="bench")
            s3.put_object(Bucket="bench", Key="k", Body=b"x" * 1024)
        except s3.exceptions.BucketAlreadyOwnedByYou:
            pass
        for _ in range(50):
            s3.get_object(Bucket="bench", Key="k")["Body"].read()
        started, cpu = time.perf_counter(), _cpu_seconds(proc.pid)
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda _: s3.get_object(Bucket="bench", Key="k")["Body"].read(),
                          range(requests)))
        rate = requests / (time.perf_counter() - started)
        return rate, 1e6 * (_cpu_seconds(proc.pid) - cpu) / requests
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    results: dict[str, list[float]] = {"off": [], "observe": []}
    cpu: dict[str, list[float]] = {"off": [], "observe": []}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        for _ in range(args.rounds):
            for mode in ("off", "observe"):
                rate, us = _round(data, mode, args.requests)
                results[mode].append(rate)
                cpu[mode].append(us)
    off, on = max(results["off"]), max(results["observe"])
    coff, con = min(cpu["off"]), min(cpu["observe"])
    print(f"throughput off: {[round(r) for r in results['off']]} req/s; observe: "
          f"{[round(r) for r in results['observe']]} req/s; best-of overhead "
          f"{100 * (off - on) / off:.1f}%")
    print(f"gateway CPU per request off: {[round(c) for c in cpu['off']]} us; observe: "
          f"{[round(c) for c in cpu['observe']]} us; best-of overhead {100 * (con - coff) / coff:.1f}%")


if __name__ == "__main__":
    main()
