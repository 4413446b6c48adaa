"""Cost of encryption + labels/spill scan + audit on 4 KiB and 8 MiB PUT/GET (security on vs off).

Run: .venv/bin/python -m tests.security.bench_put_get  (starts two servers on loopback).
"""

from __future__ import annotations

import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.functional.conftest import start_server, stop_server


def bench(env: dict[str, str], threads: int = 8, n: int = 1500) -> dict[str, float]:
    os.environ.update(env)
    with tempfile.TemporaryDirectory() as d:
        srv = start_server(Path(d) / "data")
        try:
            s3 = srv.client(max_pool_connections=threads * 2)
            s3.create_bucket(Bucket="bench")
            body = (b"Lorem ipsum dolor sit amet. " * 147)[:4096]       # 4 KiB of text
            assert len(body) == 4096
            out = {}
            with ThreadPoolExecutor(threads) as pool:
                list(pool.map(lambda i: s3.put_object(Bucket="bench", Key=f"w{i}", Body=body), range(100)))
                t = time.perf_counter()
                list(pool.map(lambda i: s3.put_object(Bucket="bench", Key=f"k{i}", Body=body), range(n)))
                out["put_4k_ops"] = n / (time.perf_counter() - t)
                t = time.perf_counter()
                list(pool.map(lambda i: s3.get_object(Bucket="bench", Key=f"k{i}")["Body"].read(), range(n)))
                out["get_4k_ops"] = n / (time.perf_counter() - t)
            big = os.urandom(64 * 1024 * 1024)
            t = time.perf_counter()
            for i in range(4):
                s3.put_object(Bucket="bench", Key=f"big{i}", Body=big)
            out["put_64m_MBps"] = 4 * 64 / (time.perf_counter() - t)
            t = time.perf_counter()
            for i in range(4):
                s3.get_object(Bucket="bench", Key=f"big{i}")["Body"].read()
            out["get_64m_MBps"] = 4 * 64 / (time.perf_counter() - t)
            return out
        finally:
            stop_server(srv)


if __name__ == "__main__":
    off = bench({"VALLUM_ENCRYPTION": "off", "VALLUM_AUDIT": "off"})
    on = bench({"VALLUM_ENCRYPTION": "on", "VALLUM_AUDIT": "on"})
    for k in off:
        print(f"{k:14s} off {off[k]:8.1f}  on {on[k]:8.1f}  ({(on[k] / off[k] - 1) * 100:+.1f}%)")
