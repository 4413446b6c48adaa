"""Paired costs: a small per-request cost measured on two servers loaded at the same moment.

The variant stage (variants.py) runs each variant's batch after the other's; on this
2-core VM the same server's CPU per 4 KiB request then moves by +-10-25% from one batch
to the next (16:25 UTC run: vallum-plain PUT 363-587 us), which buries a cost of a few %
(the operator hook's budget is 5%, issue 6) however many rounds are taken. Here the two
servers run *together*: every client thread sends each key to one and then the other
(``workloads.paired_ops``), so both see the same requests at the same moments on the same
machine, and their server CPU per request is compared within the one window. A gateway
whose requests are CPU-bound (one event loop per worker) serves at most 1 / (CPU per
request), so the cost is 1 - 1/ratio of the CPU per request, as in variants.py; the
client-side median latency of the two is reported beside it.

Each round starts both servers afresh (which one starts first alternates): one server
process differs from another of the same configuration by a few % for its whole life
(variants.py), and fresh pairs sample that. The same two configurations as a control
pair (the base against itself) show what the method reads when there is no difference.

The arithmetic (``summarize``, ``compare``) is pure and unit tested; ``run`` does the
I/O and always stops the servers it started.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench import servers, workloads
from bench.variants import SMALL_OPS, SMALL_SIZE, cost_pct

BUCKET = "bench-paired"


@dataclass(frozen=True)
class Pair:
    """`variant` (feature on) against `base` (feature off), with the budget per op in %."""

    variant: str
    base: str
    what: str
    targets: dict[str, float]

    @property
    def key(self) -> str:
        return f"{self.variant}/{self.base}"


PAIRS = (
    Pair("vallum-plain-operator", "vallum-plain", "operator hook, observe (issue 6)",
         dict.fromkeys(SMALL_OPS, 5.0)),
    Pair("vallum-plain", "vallum-plain", "control: the same configuration twice", {}),
)


@dataclass(frozen=True)
class Sample:
    """One op of one round, for one server of the pair."""

    cpu_per_req: float            # server CPU seconds per request
    p50_ms: float                 # client-side median latency


def summarize(variant: Sequence[Sample | None], base: Sequence[Sample | None]) -> dict | None:
    """Per-round ratios variant/base of CPU per request and of median latency, reduced to
    medians; a round missing either side is left out. None when no round has both."""
    rounds = [(v, b) for v, b in zip(variant, base, strict=True)
              if v is not None and b is not None and b.cpu_per_req > 0 and b.p50_ms > 0]
    if not rounds:
        return None
    cpu = [v.cpu_per_req / b.cpu_per_req for v, b in rounds]
    lat = [v.p50_ms / b.p50_ms for v, b in rounds]
    med = statistics.median(cpu)
    return {
        "rounds": len(rounds), "cpu_ratios": cpu, "cpu_ratio": med,
        "cpu_ratio_min": min(cpu), "cpu_ratio_max": max(cpu),
        "cost_pct": cost_pct(1.0 / med) if med > 0 else None,   # as variants' CPU cost
        "p50_ratios": lat, "p50_ratio": statistics.median(lat),
        "variant_cpu_per_req": statistics.median(v.cpu_per_req for v, _ in rounds),
        "base_cpu_per_req": statistics.median(b.cpu_per_req for _, b in rounds),
    }


def compare(samples: dict[str, dict[str, list[tuple[Sample | None, Sample | None]]]],
            pairs: Sequence[Pair] = PAIRS) -> dict[str, dict]:
    """{pair key: {'what', 'ops': {op: summary + 'target_pct'}}} from, per pair and op, the
    rounds' (variant sample, base sample)."""
    out = {}
    for pair in pairs:
        ops = {}
        for op, rounds in samples.get(pair.key, {}).items():
            summary = summarize([v for v, _ in rounds], [b for _, b in rounds])
            if summary is not None:
                ops[op] = {**summary, "target_pct": pair.targets.get(op)}
        out[pair.key] = {"what": pair.what, "variant": pair.variant, "base": pair.base, "ops": ops}
    return out


# ---------------------------------------------------------------- I/O


@dataclass(frozen=True)
class Settings:
    rounds: int
    ops: int
    concurrency: int
    procs: int
    warmup_ops: int


def _sample(batch: workloads.OpBatch) -> Sample | None:
    cpu = batch.server_cpu_per_request
    return None if batch.errors or cpu is None else Sample(cpu, batch.p50_ms)


def run(base_dir: Path, s: Settings, log: Callable[[str], None], pairs: Sequence[Pair] = PAIRS,
        workers: int | None = None) -> dict:
    """Every pair for `s.rounds` rounds, each with both servers started afresh; stops them always."""
    started = time.monotonic()
    samples: dict[str, dict[str, list]] = {p.key: {op: [] for op in SMALL_OPS} for p in pairs}
    errors: dict[str, str] = {}
    try:
        for r in range(s.rounds):
            for pair in pairs:
                flip = r % 2 == 1              # which of the two starts first alternates
                started_pair: list[servers.Server] = []
                try:
                    for name in ((pair.base, pair.variant) if flip else (pair.variant, pair.base)):
                        started_pair.append(servers.start(name, base_dir, workers=workers))
                    variant, base = started_pair[::-1] if flip else started_pair
                    eps = tuple(workloads.Endpoint(x.endpoint, x.access_key, x.secret_key)
                                for x in (variant, base))
                    for ep in eps:
                        workloads.create_bucket(ep, BUCKET)
                    for op in SMALL_OPS:       # warm-up (discarded): imports, caches, files
                        workloads.paired_ops(eps, BUCKET, op, "warm/", s.warmup_ops, SMALL_SIZE,
                                             s.concurrency, s.procs, (None, None), text=True)
                    line = []
                    for op in SMALL_OPS:
                        got = workloads.paired_ops(eps, BUCKET, op, "p/", s.ops, SMALL_SIZE,
                                                   s.concurrency, s.procs, (variant.pid, base.pid),
                                                   text=True)
                        v, b = _sample(got[0]), _sample(got[1])
                        for who, batch in (("variant", got[0]), ("base", got[1])):
                            if batch.errors:
                                errors[f"{pair.key} {op} round {r + 1} {who}"] = (
                                    f"{batch.errors}/{batch.count} failed; first: {batch.first_error}")
                        samples[pair.key][op].append((v, b))
                        line.append(f"{op} " + ("-" if v is None or b is None else
                                                f"{v.cpu_per_req * 1e6:.0f}/{b.cpu_per_req * 1e6:.0f} us"))
                    log(f"  paired round {r + 1}/{s.rounds} {pair.key}: " + ", ".join(line))
                finally:
                    for server in started_pair:
                        server.stop()
    except Exception as exc:  # a server that cannot start or a broken bucket ends the stage
        errors["stage"] = f"{type(exc).__name__}: {exc}"
        log(f"  paired: FAILED: {errors['stage']}")
    return {
        "settings": {"rounds": s.rounds, "ops": s.ops, "concurrency": s.concurrency,
                     "client_procs": s.procs, "warmup_ops": s.warmup_ops, "workers": workers},
        "samples": {key: {op: [[None if x is None else {"cpu_per_req": x.cpu_per_req,
                                                       "p50_ms": x.p50_ms} for x in pair]
                                for pair in rounds] for op, rounds in ops.items()}
                    for key, ops in samples.items()},
        "comparisons": compare(samples, pairs),
        "errors": errors,
        "seconds": time.monotonic() - started,
    }
