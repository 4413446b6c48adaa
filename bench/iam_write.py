"""What an IAM write costs on PostgreSQL when it waits for other gateways' followers.

``python -m bench.iam_write URL [FOLLOWERS] [WRITES]``: opens FOLLOWERS extra stores on the
database (each one gateway process's follower), then times WRITES key-status changes from one
store: median and 99th percentile in milliseconds, the wait for the followers included."""

from __future__ import annotations

import statistics
import sys
import time

from vallum.iam.pgstore import PostgresIAMStore
from vallum.iam.store import KeyRow, Op


def main(url: str, followers: int = 4, writes: int = 200) -> None:
    writer = PostgresIAMStore(url)
    others = [PostgresIAMStore(url) for _ in range(followers)]
    for s in (writer, *others):
        s.open()
    try:
        while any(o.follower is None or o.follower.value is None for o in others):
            time.sleep(0.01)
        writer.apply([Op("put_key", value=KeyRow("AKBENCH", "1", "u", "Active", b"w", 1.0))])
        took = []
        for i in range(writes):
            start = time.perf_counter()
            writer.apply([Op("key_status", value=("AKBENCH", "Inactive" if i % 2 else "Active"))])
            took.append((time.perf_counter() - start) * 1000)
        took.sort()
        print(f"{followers} followers, {writes} writes: median {statistics.median(took):.2f} ms, "
              f"p99 {took[int(len(took) * 0.99) - 1]:.2f} ms")
    finally:
        for s in (writer, *others):
            s.close()


if __name__ == "__main__":
    main(sys.argv[1], *(int(a) for a in sys.argv[2:]))
