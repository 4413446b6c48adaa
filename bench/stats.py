"""Pure arithmetic for benchmark figures: percentiles, rates and peer ratios.

Kept apart from the I/O code so the numbers printed in the report can be unit
tested without starting any server.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

MIB = 1024 * 1024


def percentile(values: Sequence[float], pct: float) -> float:
    """Linearly interpolated percentile (numpy's default, statistics' 'inclusive').

    Interpolation keeps p99 of a few thousand samples stable instead of jumping
    between two neighbouring samples as nearest-rank does.
    """
    if not values:
        raise ValueError("percentile of an empty sample")
    if not 0.0 <= pct <= 100.0:
        raise ValueError(f"percentile must be within [0, 100], got {pct}")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * pct / 100.0
    low = math.floor(rank)
    high = math.ceil(rank)
    if low == high:
        return float(ordered[low])
    frac = rank - low
    return ordered[low] + (ordered[high] - ordered[low]) * frac


def rate(count: float, seconds: float) -> float:
    """Units per second; refuses a zero or negative duration rather than printing inf."""
    if seconds <= 0:
        raise ValueError(f"duration must be positive, got {seconds}")
    return count / seconds


def mib_per_s(nbytes: int, seconds: float) -> float:
    """Throughput in MiB/s (binary mebibytes, as every figure in the report)."""
    return rate(nbytes / MIB, seconds)


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """Vallum / peer, or None when either side is missing or the peer is zero.

    None (printed as a dash) is more honest than 0 or inf for a failed workload.
    """
    if numerator is None or denominator is None:
        return None
    if denominator == 0:
        return None
    return numerator / denominator


def latency_summary(latencies_s: Sequence[float]) -> dict[str, float]:
    """p50/p99/max latency in milliseconds for one batch of operations."""
    return {
        "p50_ms": percentile(latencies_s, 50) * 1000.0,
        "p99_ms": percentile(latencies_s, 99) * 1000.0,
        "max_ms": max(latencies_s) * 1000.0,
    }


def split_evenly(total: int, parts: int) -> list[int]:
    """Split `total` items into `parts` counts differing by at most one.

    Used to hand every worker thread an almost equal share of the keys so the
    slowest worker does not dominate the wall time.
    """
    if parts <= 0:
        raise ValueError("parts must be positive")
    if total < 0:
        raise ValueError("total must not be negative")
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


_UNITS = {"": 1, "b": 1, "k": 1024, "kib": 1024, "m": MIB, "mib": MIB,
          "g": 1024 * MIB, "gib": 1024 * MIB}


def parse_size(text: str) -> int:
    """'1GiB', '512M', '4096' -> bytes; binary units only, so '1G' is 1 GiB like the report."""
    raw = text.strip().lower().replace(" ", "")
    digits = raw.rstrip("abcdefghijklmnopqrstuvwxyz")
    unit = raw[len(digits):]
    if not digits or unit not in _UNITS:
        raise ValueError(f"cannot read size {text!r} (try 1GiB, 512MiB or a byte count)")
    value = float(digits)
    if value <= 0:
        raise ValueError(f"size must be positive, got {text!r}")
    return int(value * _UNITS[unit])


def human_size(nbytes: int) -> str:
    """1073741824 -> '1 GiB'; used in figure labels so they name the size actually run."""
    for unit, factor in (("GiB", 1024 * MIB), ("MiB", MIB), ("KiB", 1024)):
        if nbytes >= factor and nbytes % factor == 0:
            return f"{nbytes // factor} {unit}"
    return f"{nbytes} B"
