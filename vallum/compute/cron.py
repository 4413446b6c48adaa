"""Five-field cron expressions (minute hour day-of-month month day-of-week), in UTC.

Supports ``*``, numbers, ranges ``a-b``, steps ``*/n`` and ``a-b/n``, lists
``a,b``, and the nicknames @hourly, @daily, @weekly, @monthly, @yearly. Day of
week 0 or 7 is Sunday. As in Vixie cron, when both day fields are restricted a
day matches if either does.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

NICKNAMES = {"@hourly": "0 * * * *", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
             "@weekly": "0 0 * * 0", "@monthly": "0 0 1 * *", "@yearly": "0 0 1 1 *",
             "@annually": "0 0 1 1 *"}
_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))


class CronError(ValueError):
    pass


@dataclass(frozen=True)
class Cron:
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    days_any: bool
    weekdays_any: bool

    def matches(self, t: dt.datetime) -> bool:
        if t.minute not in self.minutes or t.hour not in self.hours or t.month not in self.months:
            return False
        dom = t.day in self.days
        dow = (t.isoweekday() % 7) in self.weekdays
        if self.days_any or self.weekdays_any:
            return dom and dow
        return dom or dow

    def next_after(self, ts: float) -> float:
        """The first matching minute strictly after ``ts`` (epoch seconds, UTC)."""
        start = dt.datetime.fromtimestamp(ts, dt.timezone.utc).replace(second=0, microsecond=0)
        start += dt.timedelta(minutes=1)
        day = start.replace(hour=0, minute=0)
        hours, minutes = sorted(self.hours), sorted(self.minutes)
        for _ in range(366 * 5):
            if day.month in self.months and self._day_ok(day):
                for h in hours:
                    for m in minutes:
                        cand = day.replace(hour=h, minute=m)
                        if cand >= start:
                            return cand.timestamp()
            day += dt.timedelta(days=1)
        raise CronError("no matching time within five years")

    def _day_ok(self, t: dt.datetime) -> bool:
        dom = t.day in self.days
        dow = (t.isoweekday() % 7) in self.weekdays
        return (dom and dow) if (self.days_any or self.weekdays_any) else (dom or dow)


def _field(text: str, lo: int, hi: int) -> frozenset[int]:
    out: set[int] = set()
    for part in text.split(","):
        rng, _, step_s = part.partition("/")
        step = 1
        if step_s:
            if not step_s.isdigit() or int(step_s) == 0:
                raise CronError(f"bad step in {part!r}")
            step = int(step_s)
        if rng == "*":
            a, b = lo, hi
        elif "-" in rng:
            a_s, _, b_s = rng.partition("-")
            if not (a_s.isdigit() and b_s.isdigit()):
                raise CronError(f"bad range {rng!r}")
            a, b = int(a_s), int(b_s)
        elif rng.isdigit():
            a = int(rng)
            b = hi if step_s else a
        else:
            raise CronError(f"bad field {part!r}")
        if not lo <= a <= b <= hi:
            raise CronError(f"{part!r} is outside {lo}-{hi}")
        out.update(range(a, b + 1, step))
    return frozenset(out)


def parse(expr: str) -> Cron:
    text = NICKNAMES.get(expr.strip(), expr.strip())
    fields = text.split()
    if len(fields) != 5:
        raise CronError(f"expected 5 fields (minute hour day month weekday), got {expr!r}")
    values = [_field(f, lo, hi) for f, (lo, hi) in zip(fields, _RANGES, strict=True)]
    weekdays = frozenset(d % 7 for d in values[4])
    return Cron(values[0], values[1], values[2], values[3], weekdays,
                fields[2] == "*", fields[4] == "*")
