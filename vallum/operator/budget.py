"""Counts over hours and days, for attacks paced under every per-minute bar.

Why separate from signals.Window: a minute window forgets a slow attack every
minute. These keep (a) what a principal read in the last hour and the last 24 hours
against the busiest hour and day on its own record (slow-and-low exfiltration), and
(b) distinct values over the last hour (failed keys per network, refusals per key or
source) for stuffing and probing spread thin over hours, keys and sources. Each is
fed only by the events it counts (reads; failures), never by every request.
"""

from __future__ import annotations

from collections import deque

HOUR = 3600.0
DAY = 86400.0


class Distinct:
    """Distinct values (and events) seen in the last ``horizon`` seconds."""

    __slots__ = ("horizon", "fifo", "counts")

    def __init__(self, horizon: float = HOUR) -> None:
        self.horizon = horizon
        self.fifo: deque[tuple[float, str]] = deque()
        self.counts: dict[str, int] = {}

    def add(self, ts: float, value: str) -> None:
        self.fifo.append((ts, value))
        self.counts[value] = self.counts.get(value, 0) + 1
        horizon, fifo, counts = ts - self.horizon, self.fifo, self.counts
        while fifo and fifo[0][0] < horizon:
            _, old = fifo.popleft()
            left = counts[old] - 1
            if left:
                counts[old] = left
            else:
                del counts[old]

    @property
    def events(self) -> int:
        return len(self.fifo)

    @property
    def distinct(self) -> int:
        return len(self.counts)


class ReadBudget:
    """Objects read per hour and per 24 hours, and the busiest of each on record.

    Hours and days are whole UTC hours; ``last_hour`` / ``last_day`` sum the current
    one and the ones before it that fall in the span, so a slow reader crossing a
    boundary is not forgotten. A finished hour or day is recorded as normal only if
    ``tainted`` was not set during it (an alert was raised: the attack must not become
    its own baseline)."""

    __slots__ = ("hours", "hour", "days", "busiest_hour", "busiest_day", "days_seen",
                 "tainted_hour", "tainted_day", "total")

    def __init__(self) -> None:
        self.hours: deque[list[float]] = deque()     # [hour number, reads], newest last
        self.hour = -1
        self.days: dict[int, float] = {}            # day number -> reads (last 2 days)
        self.busiest_hour = 0.0
        self.busiest_day = 0.0
        self.days_seen = 0
        self.tainted_hour = False
        self.tainted_day = False
        self.total = 0.0                             # sum over ``hours``

    def add(self, ts: float, n: float) -> None:
        hour = int(ts // HOUR)
        if hour != self.hour:
            self._roll(hour)
        self.hours[-1][1] += n
        self.total += n
        day = hour // 24
        self.days[day] = self.days.get(day, 0.0) + n

    def _roll(self, hour: int) -> None:
        if self.hours and not self.tainted_hour:
            self.busiest_hour = max(self.busiest_hour, self.hours[-1][1])
        self.tainted_hour = False
        old_day, day = self.hour // 24, hour // 24
        if self.hour >= 0 and day != old_day:
            if not self.tainted_day:
                self.busiest_day = max(self.busiest_day, self.days.get(old_day, 0.0))
                self.days_seen += 1
            self.tainted_day = False
            for d in [d for d in self.days if d < day - 1]:
                del self.days[d]
        self.hour = hour
        self.hours.append([hour, 0.0])
        while self.hours and self.hours[0][0] <= hour - 24:
            self.total -= self.hours.popleft()[1]

    def taint(self) -> None:
        self.tainted_hour = self.tainted_day = True

    def last_hour(self, ts: float) -> float:
        """Reads in the last 60 minutes, sliding: this hour's, and the part of the hour
        before that the span still covers (read evenly)."""
        hours = self.hours
        if not hours:
            return 0.0
        cur = hours[-1]
        total = cur[1]
        if len(hours) > 1 and hours[-2][0] == cur[0] - 1:
            total += hours[-2][1] * (1.0 - (ts % HOUR) / HOUR)
        return total

    def last_day(self) -> float:
        """Reads in the last 24 whole hours, this one included."""
        return self.total
