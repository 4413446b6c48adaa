"""The spill scanner's own rate, in process: `python -m bench.spillscan [--size 64MiB]`.

Scans random bytes, English text, base64 of text and a gzip of text through SpillGuard
(what the gateway calls), fed in 1 MiB chunks as the ingest pipeline does, and prints
MiB/s of body per CPU-second of this process (CPU time, so other load on the box counts
less). ``--profile`` prints the top functions by own time for each body.
"""

from __future__ import annotations

import argparse
import base64
import cProfile
import gzip
import os
import pstats
import random
import time

from bench.stats import MIB, parse_size
from vallum.security.mac.labels import parse
from vallum.security.spill.guard import SpillGuard

_WORDS = ("the of and to in is that for it as was with be by on not he this are or his from at which but have "
          "an they you were her she there been one all we their has would when if so no will report operations "
          "logistics system network secure classified secretary control section figure table annex appendix "
          "paragraph review committee budget program").split()


def english(size: int) -> bytes:
    rnd = random.Random(1)
    out, n = [], 0
    while n < size:
        line = " ".join(rnd.choice(_WORDS) for _ in range(rnd.randint(6, 16))).capitalize() + ".\n"
        out.append(line)
        n += len(line)
    return "".join(out).encode()[:size]


BODIES = {
    "random bytes": lambda size: os.urandom(size),
    "English text": english,
    "base64 of text": lambda size: base64.encodebytes(english(size * 3 // 4))[:size],
    "gzip of text": lambda size: gzip.compress(english(size), 6, mtime=0),
}


def scan(body: bytes) -> None:
    guard = SpillGuard(parse("UNCLASSIFIED"), None, "bench")
    view = memoryview(body)
    for i in range(0, len(body), MIB):
        guard.feed(bytes(view[i:i + MIB]))
    guard.check()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", default="64MiB", help="body size (the gzip is of this much text)")
    p.add_argument("--profile", action="store_true", help="cProfile each scan (slower)")
    args = p.parse_args()
    size = parse_size(args.size)
    for name, make in BODIES.items():
        body = make(size)
        start = time.process_time()
        if args.profile:
            prof = cProfile.Profile()
            prof.runcall(scan, body)
            pstats.Stats(prof).sort_stats("tottime").print_stats(12)
        else:
            scan(body)
        cpu = time.process_time() - start
        print(f"{name:16} {len(body) / MIB:7.1f} MiB  {cpu:6.2f} s CPU  {len(body) / MIB / cpu:6.1f} MiB/s", flush=True)


if __name__ == "__main__":
    main()
