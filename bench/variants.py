"""Variant costs: what a Vallum feature costs, measured by interleaving, not by one run each.

One run per target, in sequence, swings by +-10% on a 2-core box: more than the
5% (operator hook, issue 6) and 25%/30% (encryption + labels + audit, issue 7)
budgets it should check. So vallum, vallum-plain and vallum-plain-noscan run *at the
same time* (an idle server uses no CPU) and take turns: R rounds, each running
every small-object op against every variant back to back, in an order rotated
each round so no variant always goes first. A cost is then 1 - the median of the
per-round ratios variant / base, whose min-max shows the spread; the server's CPU
seconds per request, which a CPU-bound gateway's throughput follows, gives a
second, steadier estimate of the same cost.

The PUTs of this stage carry plain English text (``workloads.prose``), not random bytes:
random bytes look binary and the spill scanner skips them, so only text measures the scan,
which is always on in the other variants. Its cost is vallum-plain against
vallum-plain-noscan (``VALLUM_SPILL_SCAN=off``), for PUT, the one op it touches.

Servers are restarted every epoch (one rotation: as many rounds as variants). Why: one
server process differs from another of the very same configuration by 2-4% for its whole
life (two identical vallum-plain servers side by side, 6 rounds, /work-side
``stagerep.py``, 14:55 UTC: the second 2.2-3.6% slower in every op), so with one process
per variant for the whole stage, that difference became part of a feature's "cost". Fresh
processes every epoch sample it several times.

The operator hook's 5% budget (issue 6) is finer than this stage can resolve: a
variant's CPU per request moved by +-10-25% from one batch to the next in the 16:25 UTC
run. It is measured in the paired stage (paired.py), with both servers loaded at once.

The arithmetic (rotate, summarize, comparisons) is pure and unit tested; `run`
does the I/O and always stops the servers it started.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench import servers, workloads

BUCKET = "bench-variants"
SMALL_OPS = ("PUT", "GET", "HEAD", "DELETE")   # in this order: each op needs the one before
BIG_OPS = ("PUT_BIG", "GET_BIG")
SMALL_SIZE = 4096


@dataclass(frozen=True)
class Comparison:
    """One feature's cost: `variant` (feature on) against `base` (feature off)."""

    variant: str
    base: str
    what: str
    targets: dict[str, float]          # op -> budget in % (the "at most")
    ops: tuple[str, ...]

    @property
    def key(self) -> str:
        return f"{self.variant}/{self.base}"


COMPARISONS = (
    Comparison("vallum", "vallum-plain", "encryption + labels + audit (issue 7)",
               {"PUT": 25.0, "GET": 25.0, "PUT_BIG": 30.0, "GET_BIG": 30.0},
               SMALL_OPS + BIG_OPS),
    Comparison("vallum-plain", "vallum-plain-noscan", "spill scan of text (issue 7)",
               {"PUT": 15.0}, ("PUT",)),
)
VARIANTS = ("vallum", "vallum-plain", "vallum-plain-noscan")
BIG_VARIANTS = ("vallum", "vallum-plain")


@dataclass(frozen=True)
class Sample:
    """One timed batch: its throughput (ops/s or MiB/s) and server CPU seconds per request."""

    rate: float
    cpu_per_req: float | None


def rotate(names: Sequence[str], round_no: int) -> list[str]:
    """`names` rotated left by `round_no`: round 0 keeps the order, round 1 starts with the
    second, ...; over len(names) rounds every variant takes every position once."""
    if not names:
        return []
    k = round_no % len(names)
    return [*names[k:], *names[:k]]


def cost_pct(ratio: float | None) -> float | None:
    """A throughput ratio variant/base as the feature's cost in %: 0.8 -> 20.0."""
    return None if ratio is None else 100.0 * (1.0 - ratio)


def _pairs(variant: Sequence[float | None], base: Sequence[float | None]) -> list[float]:
    """Per-round ratios variant/base; a round where either side failed (None) or the base is
    not positive is left out rather than counted as 0 or inf."""
    return [v / b for v, b in zip(variant, base, strict=True)
            if v is not None and b is not None and b > 0]


def summarize(variant: Sequence[Sample | None], base: Sequence[Sample | None]) -> dict | None:
    """Per-round throughput and CPU-per-request ratios of one op, reduced to medians.

    `ratio` is variant/base throughput (median of the rounds, with min and max);
    `cpu_ratio` is variant/base server CPU seconds per request (median of the rounds) and
    `cpu_cost_pct` the throughput cost it implies for a CPU-bound server, 1 - 1/cpu_ratio.
    None when no round has both sides.
    """
    ratios = _pairs([s.rate if s else None for s in variant], [s.rate if s else None for s in base])
    if not ratios:
        return None
    med = statistics.median(ratios)
    out = {
        "rounds": len(ratios), "ratios": ratios, "ratio": med,
        "ratio_min": min(ratios), "ratio_max": max(ratios), "cost_pct": cost_pct(med),
        "variant_rate": statistics.median(s.rate for s in variant if s),
        "base_rate": statistics.median(s.rate for s in base if s),
        "cpu_ratios": [], "cpu_ratio": None, "cpu_cost_pct": None,
        "variant_cpu_per_req": None, "base_cpu_per_req": None,
    }
    cpu = _pairs([s.cpu_per_req if s else None for s in variant],
                 [s.cpu_per_req if s else None for s in base])
    if cpu:
        cpu_med = statistics.median(cpu)
        out |= {"cpu_ratios": cpu, "cpu_ratio": cpu_med,
                "cpu_cost_pct": cost_pct(1.0 / cpu_med) if cpu_med > 0 else None,
                "variant_cpu_per_req": statistics.median(
                    s.cpu_per_req for s in variant if s and s.cpu_per_req is not None),
                "base_cpu_per_req": statistics.median(
                    s.cpu_per_req for s in base if s and s.cpu_per_req is not None)}
    return out


def compare(samples: dict[str, dict[str, list[Sample | None]]],
            comparisons: Sequence[Comparison] = COMPARISONS) -> dict[str, dict]:
    """{'vallum/vallum-plain': {'what', 'ops': {op: summary + 'target_pct'}}} from the
    per-variant, per-op lists of round samples (index = round)."""
    out = {}
    for c in comparisons:
        ops = {}
        for op in c.ops:
            v = samples.get(c.variant, {}).get(op)
            b = samples.get(c.base, {}).get(op)
            if not v or not b:
                continue
            n = min(len(v), len(b))
            summary = summarize(v[:n], b[:n])
            if summary is not None:
                ops[op] = {**summary, "target_pct": c.targets.get(op)}
        out[c.key] = {"what": c.what, "variant": c.variant, "base": c.base, "ops": ops}
    return out


# ---------------------------------------------------------------- I/O


@dataclass(frozen=True)
class Settings:
    """How much to run; --quick shrinks these numbers only."""

    rounds: int
    big_rounds: int
    ops: int
    concurrency: int
    procs: int
    big_size: int
    warmup_ops: int


def _small(ep: workloads.Endpoint, pid: int, op: str, s: Settings) -> tuple[Sample | None, str]:
    """One 4 KiB batch; a batch with any failed request counts as a missing sample."""
    b = workloads.small_ops(ep, BUCKET, op, "v/", s.ops, SMALL_SIZE, s.concurrency, s.procs, pid,
                            text=True)
    if b.errors:
        return None, f"{b.errors}/{b.count} failed; first: {b.first_error}"
    return Sample(b.ops_per_s, b.server_cpu_per_request), f"{b.ops_per_s:7.0f} ops/s"


def _big(ep: workloads.Endpoint, pid: int, size: int, block: bytes) -> dict[str, Sample]:
    """One single PUT and GET of `size` bytes, each with the server CPU it used; then delete."""
    out = {}
    try:
        for op, call in (("PUT_BIG", lambda: workloads.put_stream(ep, BUCKET, "big", size, block)),
                         ("GET_BIG", lambda: workloads.get_stream(ep, BUCKET, "big", size))):
            cpu0 = servers.tree_cpu_seconds(pid)
            mibs = call()
            out[op] = Sample(mibs, servers.tree_cpu_seconds(pid) - cpu0)
    finally:
        workloads.delete_object(ep, BUCKET, "big")
    return out


def run(base_dir: Path, s: Settings, block: bytes, log: Callable[[str], None],
        workers: int | None = None, keep_files: bool = False) -> dict:
    """Start the variants together (afresh every epoch), run the interleaved rounds, stop them (always).

    Returns the JSON-ready section: settings, per-round samples, comparisons, errors.
    """
    started = time.monotonic()
    running: dict[str, servers.Server] = {}
    eps: dict[str, workloads.Endpoint] = {}
    samples: dict[str, dict[str, list[Sample | None]]] = {
        v: {op: [] for op in SMALL_OPS + BIG_OPS} for v in VARIANTS}
    errors: dict[str, str] = {}
    orders: list[list[str]] = []

    def start_all(epoch: int) -> None:
        """Fresh servers for every variant (stopping the previous ones), warmed up."""
        for server in running.values():
            server.stop()
        running.clear()
        for name in VARIANTS:
            server = servers.start(name, base_dir, workers=workers, keep_files=keep_files)
            running[name] = server
            log(f"  variants: epoch {epoch + 1}: {name} ready at {server.endpoint} (pid {server.pid})")
        eps.clear()
        eps.update({n: workloads.Endpoint(srv.endpoint, srv.access_key, srv.secret_key)
                    for n, srv in running.items()})
        for ep in eps.values():
            workloads.create_bucket(ep, BUCKET)
            # Warm-up (discarded): first requests pay for imports, caches and file creation.
            for op in SMALL_OPS:
                workloads.small_ops(ep, BUCKET, op, "warm/", s.warmup_ops, SMALL_SIZE,
                                    s.concurrency, s.procs, None, text=True)

    try:
        for r in range(s.rounds):
            if r % len(VARIANTS) == 0:
                start_all(r // len(VARIANTS))
            order = rotate(VARIANTS, r)
            orders.append(order)
            for op in SMALL_OPS:
                line = []
                for name in order:
                    sample, note = _small(eps[name], running[name].pid, op, s)
                    samples[name][op].append(sample)
                    if sample is None:
                        errors[f"{name} {op} round {r + 1}"] = note
                    line.append(f"{name} {note}")
                log(f"  variants round {r + 1}/{s.rounds} {op:<6}: " + ", ".join(line))
        if s.big_rounds and not running:
            start_all(0)
        for r in range(s.big_rounds):
            order = rotate(BIG_VARIANTS, r)
            for name in order:
                try:
                    got = _big(eps[name], running[name].pid, s.big_size, block)
                except Exception as exc:  # recorded as a missing round, like a failed batch
                    got = {}
                    errors[f"{name} big round {r + 1}"] = f"{type(exc).__name__}: {exc}"
                for op in BIG_OPS:
                    samples[name][op].append(got.get(op))
            log(f"  variants big round {r + 1}/{s.big_rounds}: " + ", ".join(
                f"{n} PUT {_rate(samples[n]['PUT_BIG'][-1])} GET {_rate(samples[n]['GET_BIG'][-1])} MiB/s"
                for n in order))
    except Exception as exc:  # a variant that cannot start or a broken bucket ends the stage
        errors["stage"] = f"{type(exc).__name__}: {exc}"
        log(f"  variants: FAILED: {errors['stage']}")
    finally:
        for server in running.values():
            server.stop()
    return {
        "settings": {"rounds": s.rounds, "big_rounds": s.big_rounds, "ops": s.ops,
                     "concurrency": s.concurrency, "client_procs": s.procs,
                     "big_size": s.big_size, "warmup_ops": s.warmup_ops, "workers": workers},
        "orders": orders,
        "samples": {v: {op: [None if x is None else {"rate": x.rate, "cpu_per_req": x.cpu_per_req}
                             for x in lst] for op, lst in ops.items() if lst}
                    for v, ops in samples.items()},
        "comparisons": compare(samples),
        "errors": errors,
        "seconds": time.monotonic() - started,
    }


def _rate(sample: Sample | None) -> str:
    return "-" if sample is None else f"{sample.rate:.0f}"
