"""Gateway throughput with the operator off vs on (observe), on this machine.

    python -m bench.operator_hook [--requests 3000] [--rounds 3] [--in-process]

Starts `vallum serve` on a free loopback port for each setting, alternating
off/observe rounds so machine noise hits both, and reports, for 4 KiB PUT, GET,
HEAD and DELETE (4 client threads), requests per second and the gateway's own CPU
per request (from /proc: far less sensitive to other work on the machine).
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
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


OPS = ("put", "get", "head", "delete")


def _round(data: Path, mode: str, requests: int) -> dict[str, tuple[float, float]]:
    """One server run: per operation on 4 KiB objects, (requests/s, gateway CPU us/request)."""
    import boto3
    from botocore.config import Config
    proc, url = _serve(data, mode)
    try:
        s3 = boto3.client("s3", endpoint_url=url, aws_access_key_id=KEY, aws_secret_access_key=SECRET,
                          region_name="us-east-1", config=Config(s3={"addressing_style": "path"},
                                                                 max_pool_connections=8))
        try:
            s3.create_bucket(Bucket="bench")
        except s3.exceptions.BucketAlreadyOwnedByYou:
            pass
        body = b"x" * 4096
        calls = {
            "put": lambda i: s3.put_object(Bucket="bench", Key=f"o/{i:06d}", Body=body),
            "get": lambda i: s3.get_object(Bucket="bench", Key=f"o/{i:06d}")["Body"].read(),
            "head": lambda i: s3.head_object(Bucket="bench", Key=f"o/{i:06d}"),
            "delete": lambda i: s3.delete_object(Bucket="bench", Key=f"o/{i:06d}"),
        }
        for _ in range(50):                                  # warm up connections and caches
            s3.head_bucket(Bucket="bench")
        out = {}
        with ThreadPoolExecutor(4) as pool:
            for op in OPS:
                started, cpu = time.perf_counter(), _cpu_seconds(proc.pid)
                list(pool.map(calls[op], range(requests)))
                rate = requests / (time.perf_counter() - started)
                out[op] = (rate, 1e6 * (_cpu_seconds(proc.pid) - cpu) / requests)
        return out
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def in_process(requests: int = 3000, repeat: int = 5) -> None:
    """The hook alone, without a server: CPU per request of observe (queue + detector,
    amortised over its batches) on bench-like 4 KiB traffic from one key, the request
    path alone (the queue append) and admit. Far less noisy than throughput."""
    import asyncio
    import logging
    import timeit

    from vallum.http import Headers, Request, Response
    from vallum.operator import gateway
    from vallum.s3.router import Endpoint

    logging.disable(logging.WARNING)        # the bench traffic alerts once (exfiltration)

    def request(op: str, key: str, length: str) -> Request:
        headers = Headers([("host", "127.0.0.1"), ("content-length", length)])
        return Request(method="GET", endpoint=Endpoint(op, "bench", key), headers=headers,
                       body=None,  # type: ignore[arg-type]  # the hook reads no body
                       request_id="r", auth=None, principal=KEY, source_ip="127.0.0.1",
                       secure=False)

    async def run() -> None:
        with tempfile.TemporaryDirectory() as tmp:
            hook = gateway.Hook(Path(tmp), None, "observe", root_key=KEY)
            flush = getattr(hook, "flush", lambda: None)
            for op, length, body in (("PutObject", "4096", b""), ("GetObject", "0", b"x" * 4096),
                                     ("HeadObject", "0", b""), ("DeleteObject", "0", b"")):
                reqs = [request(op, f"bench/small-{i:06d}", length) for i in range(requests)]
                response = Response(200, {}, body)

                def batch(reqs: list = reqs, op: str = op, response: Response = response) -> None:
                    for r in reqs:
                        hook.observe({}, r, op, response, "")
                    flush()
                batch()
                best = min(timeit.repeat(batch, "gc.enable()", number=1, repeat=repeat))
                print(f"observe {op:12s} {1e6 * best / requests:6.2f} us/request")
            if hasattr(hook, "_pending"):
                r, response = reqs[0], Response(200, {}, b"x" * 4096)
                gateway.BATCH = 1 << 30

                def path() -> None:
                    for _ in range(requests):
                        hook.observe({}, r, "GetObject", response, "")
                    hook._pending.clear()
                best = min(timeit.repeat(path, number=1, repeat=repeat))
                print(f"request path only (queue append) {1e6 * best / requests:6.2f} us/request")
            r = reqs[0]
            def admit_all() -> None:
                for _ in range(requests):
                    hook.admit(r)
            best = min(timeit.repeat(admit_all, number=1, repeat=repeat))
            print(f"admit {1e6 * best / requests:6.2f} us/request")

    asyncio.run(run())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--in-process", action="store_true",
                    help="time the hook itself (no server): us of CPU per request")
    args = ap.parse_args()
    if args.in_process:
        in_process(args.requests)
        return
    runs: dict[str, list[dict[str, tuple[float, float]]]] = {"off": [], "observe": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for mode in ("off", "observe"):                  # alternate: machine noise hits both
                runs[mode].append(_round(Path(tmp) / f"data-{mode}-{r}", mode, args.requests))
    print("op      req/s off / observe (best)   gateway CPU us/request off / observe (median)   overhead")
    for op in OPS:
        rate = {m: max(x[op][0] for x in runs[m]) for m in runs}
        cpu = {m: statistics.median(x[op][1] for x in runs[m]) for m in runs}
        print(f"{op:7s} {rate['off']:8.0f} / {rate['observe']:8.0f}            "
              f"{cpu['off']:8.0f} / {cpu['observe']:8.0f}                          "
              f"{100 * (cpu['observe'] - cpu['off']) / cpu['off']:+5.1f}% CPU, "
              f"{100 * (rate['off'] - rate['observe']) / rate['off']:+5.1f}% req/s")
    print("per-round CPU us/request:", {m: [{op: round(x[op][1]) for op in OPS} for x in runs[m]]
                                        for m in runs})


if __name__ == "__main__":
    main()
