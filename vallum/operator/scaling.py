"""Sizing the compute worker pool: predictive with a reactive fallback, within bounds.

Why predictive: a new worker takes ``warmup`` seconds to become useful, so a pool
that only reacts to a queue is always one warm-up late at the morning ramp. The
predictive controller learns the arrival rate per hour of the week (an
exponentially weighted seasonal profile, blended with the last intervals' rate)
and provisions for the rate expected one warm-up ahead; when the queue still
builds up (a burst the profile did not foresee) the reactive rule takes over.

The controllers only compute a size; compute's pool (local or Ray) applies it via
``PoolSizer.target()`` once per interval. The job-trace simulator below replays the
same trace through fixed, reactive and predictive pools for the comparison in
docs/operator.md.
"""

from __future__ import annotations

import heapq
import math
import random
from collections import deque
from dataclasses import dataclass, field

WEEK = 7 * 86400


@dataclass
class PoolState:
    now: float
    queued: int
    busy: int
    size: int                 # provisioned workers (including those warming up)
    arrivals: int             # jobs arrived during the last interval
    interval: float
    mean_service: float       # seconds, observed


class Fixed:
    name = "fixed"

    def __init__(self, size: int) -> None:
        self.size = size

    def target(self, s: PoolState) -> int:
        return self.size


@dataclass
class Reactive:
    """Size for what is running and queued now, shrinking only after a cool-down."""
    min_size: int = 2
    max_size: int = 100
    utilisation: float = 0.8
    cooldown: float = 300.0
    name: str = "reactive"
    _last_up: float = -1e18

    def target(self, s: PoolState) -> int:
        want = math.ceil((s.busy + s.queued) / self.utilisation)
        if want >= s.size:
            self._last_up = s.now
            return max(self.min_size, min(self.max_size, want))
        if s.now - self._last_up < self.cooldown:
            return s.size
        return max(self.min_size, min(self.max_size, max(want, s.size - max(1, s.size // 4))))


@dataclass
class Predictive:
    """Seasonal arrival-rate forecast one warm-up ahead, with the reactive rule as a floor."""
    min_size: int = 2
    max_size: int = 100
    utilisation: float = 0.8
    warmup: float = 60.0
    alpha: float = 0.3                  # weight of a new week in the seasonal profile
    slots: int = 7 * 24 * 4             # 15-minute slots of the week
    name: str = "predictive"
    profile: list[float] = field(default_factory=list)
    seen: list[bool] = field(default_factory=list)
    recent: deque = field(default_factory=lambda: deque(maxlen=5))
    fallback: Reactive = field(default_factory=Reactive)

    def __post_init__(self) -> None:
        self.profile = [0.0] * self.slots
        self.seen = [False] * self.slots
        self.fallback = Reactive(self.min_size, self.max_size, self.utilisation)

    def _slot(self, t: float) -> int:
        return int((t % WEEK) / (WEEK / self.slots))

    def forecast_rate(self, now: float) -> float:
        """Jobs per second expected ``warmup`` seconds from now."""
        slot = self._slot(now + self.warmup)
        recent = sum(self.recent) / len(self.recent) if self.recent else 0.0
        if not self.seen[slot]:
            return recent
        cur = self._slot(now)
        # scale the seasonal shape by how this week compares with the profile right now
        ratio = recent / self.profile[cur] if self.seen[cur] and self.profile[cur] > 0 else 1.0
        ratio = min(2.0, max(0.5, ratio))
        return max(self.profile[slot] * ratio, recent if slot == cur else 0.0)

    def target(self, s: PoolState) -> int:
        rate = s.arrivals / s.interval
        slot = self._slot(s.now - s.interval / 2)
        if self.seen[slot]:
            self.profile[slot] += self.alpha * (rate - self.profile[slot])
        else:
            self.profile[slot], self.seen[slot] = rate, True
        self.recent.append(rate)
        predicted = math.ceil(self.forecast_rate(s.now) * s.mean_service / self.utilisation)
        reactive = self.fallback.target(s)
        want = max(predicted, reactive)
        return max(self.min_size, min(self.max_size, want))


# ------------------------------------------------------------------ job trace + pool simulator

def job_trace(seed: int, days: int = 14, peak_rate: float = 2.0, mean_service: float = 20.0
              ) -> list[tuple[float, float]]:
    """(arrival time, service seconds): office-hours load, quiet weekends, random bursts."""
    rng = random.Random(seed)
    jobs: list[tuple[float, float]] = []
    bursts = {(rng.randrange(days), rng.uniform(8, 18)) for _ in range(days // 2)}
    t = 0.0
    while t < days * 86400:
        day, hour = int(t // 86400), (t % 86400) / 3600
        weekday = day % 7 < 5
        shape = math.exp(-((hour - 13.0) / 3.5) ** 2) if weekday else 0.15 * math.exp(-((hour - 13.0) / 4) ** 2)
        rate = 0.05 + peak_rate * shape
        for bday, bhour in bursts:
            if bday == day and 0 <= hour - bhour < 0.25:
                rate += peak_rate
        t += rng.expovariate(rate)
        jobs.append((t, rng.lognormvariate(math.log(mean_service) - 0.5, 1.0)))
    return jobs


@dataclass
class PoolResult:
    name: str
    jobs: int
    mean_wait: float
    p95_wait: float
    worker_seconds: float

    def to_dict(self) -> dict:
        return {"policy": self.name, "jobs": self.jobs, "mean_wait_s": round(self.mean_wait, 2),
                "p95_wait_s": round(self.p95_wait, 2),
                "worker_hours": round(self.worker_seconds / 3600, 1)}


def simulate_pool(jobs: list[tuple[float, float]], controller, *, interval: float = 60.0,
                  warmup: float = 60.0, initial: int = 2) -> PoolResult:
    """Discrete-event replay: workers become ready ``warmup`` s after being added; idle
    workers are removed first when the pool shrinks; cost is provisioned worker-seconds."""
    ready = initial                      # idle-or-busy workers that finished warming up
    warming: list[float] = []            # ready times of workers warming up
    busy: list[float] = []               # heap of finish times
    queue: deque[tuple[float, float]] = deque()
    waits: list[float] = []
    retire = 0                           # busy workers to remove when they finish
    cost = 0.0
    last = 0.0
    arrivals = 0
    served_time, served = 0.0, 0
    i, n = 0, len(jobs)
    next_tick = interval
    end = jobs[-1][0] + 3600 if jobs else 0.0
    now = 0.0
    while now < end:
        # next event: arrival, finish, warm-up done, or controller tick
        candidates = [next_tick]
        if i < n:
            candidates.append(jobs[i][0])
        if busy:
            candidates.append(busy[0])
        if warming:
            candidates.append(warming[0])
        now = min(candidates)
        cost += (ready + len(warming)) * (now - last)
        last = now
        while warming and warming[0] <= now:
            warming.pop(0)
            ready += 1
        while busy and busy[0] <= now:
            heapq.heappop(busy)
            if retire:
                retire -= 1
                ready -= 1
        while i < n and jobs[i][0] <= now:
            queue.append(jobs[i])
            arrivals += 1
            i += 1
        while queue and len(busy) < ready - retire:
            arrival, service = queue.popleft()
            waits.append(now - arrival)
            served_time += service
            served += 1
            heapq.heappush(busy, now + service)
        if now >= next_tick:
            size = ready + len(warming) - retire
            state = PoolState(now, len(queue), len(busy), size, arrivals, interval,
                              served_time / served if served else 20.0)
            want = controller.target(state)
            arrivals = 0
            if want > size:
                warming.extend([now + warmup] * (want - size))
                warming.sort()
            elif want < size:
                drop = size - want
                cancel = min(drop, len(warming))
                del warming[len(warming) - cancel:]
                drop -= cancel
                idle = ready - retire - len(busy)
                take = min(drop, idle)
                ready -= take
                retire += drop - take
            next_tick += interval
    waits.sort()
    return PoolResult(getattr(controller, "name", "pool"), len(waits),
                      sum(waits) / len(waits) if waits else 0.0,
                      waits[int(0.95 * (len(waits) - 1))] if waits else 0.0, cost)


def compare(seed: int = 1, days: int = 14, fixed_sizes: tuple[int, ...] = (30, 60),
            min_size: int = 2, max_size: int = 100) -> list[PoolResult]:
    jobs = job_trace(seed, days)
    out = [simulate_pool(jobs, _named(Fixed(k), f"fixed-{k}")) for k in fixed_sizes]
    out.append(simulate_pool(jobs, Reactive(min_size, max_size)))
    out.append(simulate_pool(jobs, Predictive(min_size, max_size)))
    return out


def _named(controller, name: str):
    controller.name = name
    return controller
