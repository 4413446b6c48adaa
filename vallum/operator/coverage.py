"""How much of a bucket a principal has read: distinct objects against the bucket's size.

Why: a read budget counts volume against the principal's busiest day, which a slow
reader of a small bucket never reaches before the bucket is gone. What an exfiltration
takes is *coverage*: the share of a bucket's distinct objects read within an hour or a
day. It is judged against the bucket's known size (the damage possible) and against the
most of that bucket the principal covered in a clean hour / day on its own record, so a
backup that reads whole buckets every night has a whole bucket as its norm, and a key
touching a bucket for the first time has nothing to hide behind.

The bucket's size is what the operator has seen of it: distinct object keys served or
written by anyone (at most ``MAX_KNOWN`` per bucket), never less than what the reader
covered itself.
"""

from __future__ import annotations

from vallum.operator.budget import DAY, HOUR, Distinct

MAX_KNOWN = 65536            # object keys remembered per bucket (its size saturates there)
MAX_BUCKETS = 4096           # buckets whose sizes are tracked
MAX_COVERED = 1024           # buckets tracked per principal


class BucketCoverage:
    """One principal's reads of one bucket: distinct objects over 1 h and 24 h (sliding),
    and the most of each on its clean record (whole UTC days; a day that alerted is not a
    norm unless the principal is still learning)."""

    __slots__ = ("hour", "day", "peak_hour", "peak_day", "pend_hour", "pend_day", "today",
                 "tainted", "next_score", "quiet_until")

    def __init__(self) -> None:
        self.hour = Distinct(HOUR)
        self.day = Distinct(DAY)
        self.peak_hour = self.peak_day = 0.0         # clean record
        self.pend_hour = self.pend_day = 0.0         # the most of today, not yet a norm
        self.today = -1
        self.tainted = False
        self.next_score = 1.0                        # score that raises the next alert (today)
        self.quiet_until = 0.0                       # after an alert: only the second bar speaks

    def add(self, ts: float, key: str, learning: bool) -> None:
        day = int(ts // DAY)
        if day != self.today:
            if self.today >= 0 and (learning or not self.tainted):
                self.peak_hour = max(self.peak_hour, self.pend_hour)
                self.peak_day = max(self.peak_day, self.pend_day)
            self.today, self.tainted, self.next_score = day, False, 1.0
            self.pend_hour = self.pend_day = 0.0
        hour, day_ = self.hour, self.day
        hour.add(ts, key)
        day_.add(ts, key)
        n = len(hour.counts)
        if n > self.pend_hour:
            self.pend_hour = n
        n = len(day_.counts)
        if n > self.pend_day:
            self.pend_day = n


class BucketSizes:
    """Distinct object keys seen per bucket (served reads and writes, by anyone)."""

    __slots__ = ("known", "floor")

    def __init__(self) -> None:
        self.known: dict[str, set[str]] = {}
        self.floor: dict[str, int] = {}              # sizes a restart remembered

    def see(self, bucket: str, key: str) -> None:
        keys = self.known.get(bucket)
        if keys is None:
            if len(self.known) >= MAX_BUCKETS:
                return
            keys = self.known[bucket] = set()
        if len(keys) < MAX_KNOWN:
            keys.add(key)

    def size(self, bucket: str) -> int:
        keys = self.known.get(bucket)
        return max(len(keys) if keys is not None else 0, self.floor.get(bucket, 0))


def score(cov: BucketCoverage, size: int, floor: float, share: float, mult: float
          ) -> tuple[float, str, float, float]:
    """The worse of the hour and the day: (score, window, objects covered, bar), where
    bar = max(floor, share x the bucket's size, mult x the most of it covered in a clean
    window of that length on record)."""
    best = (0.0, "", 0.0, 0.0)
    for window, n, peak in (("hour", cov.hour.distinct, cov.peak_hour), ("day", cov.day.distinct, cov.peak_day)):
        bar = max(floor, share * max(size, n), mult * peak)
        if n / bar > best[0]:
            best = (n / bar, window, float(n), bar)
    return best
