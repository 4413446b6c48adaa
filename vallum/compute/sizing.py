"""Predictive sizing of the local pool: once per interval, queue and load in, a size out.

Why here and not in the operator: the operator's ``scaling.Predictive`` only computes a
size (pure, simulated in docs/operator.md); the pool that applies it must observe its
own queue, running tasks, arrivals and service times, and resize within the bounds
the administrator gave (``vallum serve --compute local:MIN-MAX``).
Interval: VALLUM_COMPUTE_SCALE_INTERVAL seconds (default 60; tests use less).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger("vallum.compute.sizing")
INTERVAL_ENV = "VALLUM_COMPUTE_SCALE_INTERVAL"


@dataclass
class Observation:
    """What the compute service sees at one tick."""

    queued: int           # runnable tasks waiting
    busy: int             # tasks running in this process
    arrivals: int         # tasks submitted since the previous tick
    mean_service: float   # seconds per task attempt, recent average


def parse_bounds(text: str) -> tuple[int, int] | None:
    """"MIN-MAX" -> (MIN, MAX); None when ``text`` is not a range."""
    lo, sep, hi = text.partition("-")
    if not sep or not lo.isdigit() or not hi.isdigit():
        return None
    lo_n, hi_n = int(lo), int(hi)
    if not 1 <= lo_n <= hi_n:
        raise ValueError(f"--compute local:MIN-MAX needs 1 <= MIN <= MAX, not {text!r}")
    return lo_n, hi_n


class PoolSizer:
    """Drives ``resize`` of a pool from ``operator.scaling.Predictive`` once per interval."""

    def __init__(self, min_size: int, max_size: int, resize: Callable[[int], None],
                 current: Callable[[], int], interval: float | None = None) -> None:
        from vallum.operator.scaling import Predictive  # pure module; imported only when used

        self.min_size, self.max_size = min_size, max_size
        self.interval = interval if interval is not None else float(
            os.environ.get(INTERVAL_ENV, "60"))
        # A local sandbox is useful at once: forecast one interval ahead, and shrink only
        # after a few quiet intervals (the reactive floor's cool-down).
        self.controller = Predictive(min_size=min_size, max_size=max_size,
                                     warmup=self.interval)
        self.controller.fallback.cooldown = 5 * self.interval
        self.resize, self.current = resize, current
        self.observe: Callable[[], Observation] | None = None
        self.ticks = 0

    def tick(self, now: float | None = None) -> int:
        """One decision: observe, ask the controller, resize; returns the new size."""
        from vallum.operator.scaling import PoolState

        assert self.observe is not None, "the compute service sets observe()"
        o = self.observe()
        state = PoolState(now=time.time() if now is None else now, queued=o.queued,
                          busy=o.busy, size=self.current(), arrivals=o.arrivals,
                          interval=self.interval, mean_service=max(o.mean_service, 0.001))
        want = max(self.min_size, min(self.max_size, self.controller.target(state)))
        if want != state.size:
            log.info("compute pool: %d -> %d slots (queued %d, running %d, %d arrivals)",
                     state.size, want, o.queued, o.busy, o.arrivals)
            self.resize(want)
        self.ticks += 1
        return want

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("pool sizing failed")
