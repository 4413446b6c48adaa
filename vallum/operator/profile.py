"""Robust per-entity baselines learned online, without labels.

Why log histograms: the quantiles of heavy-tailed traffic features (bytes, request
counts) are what thresholds need, and a half-octave histogram gives them in O(1)
memory per feature, insensitive to a few huge outliers (unlike mean and stddev).
A profile also remembers the entity's addresses, /16 (or /48) networks, active
hours of the week and the label levels it habitually reads.
"""

from __future__ import annotations

import math
from array import array

from vallum.operator.signals import FEATURES, IDX

NBINS = 90
HOURLY = ("reads", "keys", "gets", "got_keys", "bytes_out")
LEARN_MINUTES = 10


def bin_of(value: float) -> int:
    if value < 1.0:
        return 0
    return min(NBINS - 1, 1 + int(math.log2(value) * 2))


def bin_top(b: int) -> float:
    """Largest value that falls in bin b."""
    return 0.0 if b == 0 else 2.0 ** (b / 2.0)


def network_of(address: str) -> str:
    """The /16 of an IPv4 address, the /48 of an IPv6 one: 'the same site'."""
    if ":" in address:
        return ":".join(address.split(":")[:3])
    return ".".join(address.split(".")[:2])


class Profile:
    """What one principal (or address) normally does in an active minute."""

    __slots__ = ("hist", "samples", "how", "addresses", "networks", "label_minutes",
                 "label_first", "first_ts", "last_ts", "_cache", "hour_max",
                 "candidates")

    def __init__(self) -> None:
        self.hist = [array("I", bytes(4 * NBINS)) for _ in FEATURES]
        self.samples = 0
        self.how = array("I", bytes(4 * 168))          # active minutes per hour of week
        self.addresses: set[str] = set()
        self.networks: set[str] = set()
        self.label_minutes = [0] * 5                   # sample minutes with reads at each level
        self.label_first = [0.0] * 5                   # ... the first of them
        self.first_ts = 0.0
        self.last_ts = 0.0
        self._cache: dict[tuple[int, float], float] = {}
        # busiest minute seen at each hour of day, for the features exfiltration looks at
        self.hour_max = {f: [0.0] * 24 for f in HOURLY}
        self.candidates: dict[str, int] = {}           # network -> active minutes seen there

    def learn(self, peaks: list[float], ts: float, addresses: set[str] | frozenset[str] = frozenset()) -> None:
        for i, v in enumerate(peaks):
            self.hist[i][bin_of(v)] += 1
        self.samples += 1
        self.how[hour_of_week(ts)] += 1
        for level in range(5):
            if peaks[IDX["label0"] + level] > 0:
                self.label_minutes[level] += 1
                if not self.label_first[level]:
                    self.label_first[level] = ts
        hour = hour_of_week(ts) % 24
        for f in HOURLY:
            v = peaks[IDX[f]]
            if v > self.hour_max[f][hour]:
                self.hour_max[f][hour] = v
        for a in addresses:
            self.addresses.add(a)
            net = network_of(a)
            if net not in self.networks:
                # A network becomes "known" only after LEARN_MINUTES active minutes there, so
                # a short intrusion from a new place is not learned as normal.
                seen = self.candidates.get(net, 0) + 1
                self.candidates[net] = seen
                if seen >= LEARN_MINUTES or not self.networks:
                    self.networks.add(net)
                    self.candidates.pop(net, None)
        if not self.first_ts:
            self.first_ts = ts
        self.last_ts = ts
        self._cache.clear()

    def quantile(self, feature: str, q: float) -> float:
        i = IDX[feature]
        hit = self._cache.get((i, q))
        if hit is not None:
            return hit
        h = self.hist[i]
        need = q * self.samples
        seen = 0
        value = 0.0
        for b in range(NBINS):
            seen += h[b]
            if seen >= need and seen > 0:
                value = bin_top(b)
                break
        self._cache[(i, q)] = value
        return value

    def hourly(self, feature: str, hour: int, spread: int = 1) -> float:
        """Busiest minute of ``feature`` seen within +-spread hours of this hour of day."""
        row = self.hour_max[feature]
        return max(row[(hour + dh) % 24] for dh in range(-spread, spread + 1))

    def usual_label(self, min_minutes: int = 3, before: float | None = None) -> int:
        """Highest level read in at least ``min_minutes`` distinct minutes, the first of
        them no later than ``before`` (-1: none). Why ``before``: minutes alone let a climb
        become its own baseline three minutes in, before it is judged; a level is habitual
        only once it has been read for a while."""
        top = -1
        for level, n in enumerate(self.label_minutes):
            if n >= min_minutes and (before is None or self.label_first[level] <= before):
                top = level
        return top

    def active_at_hour(self, hour_of_day: int, spread: int = 1) -> int:
        """Active minutes seen within +-spread hours of this hour of day, any weekday."""
        total = 0
        for d in range(7):
            for dh in range(-spread, spread + 1):
                total += self.how[d * 24 + (hour_of_day + dh) % 24]
        return total

    @property
    def days(self) -> float:
        return (self.last_ts - self.first_ts) / 86400.0


def hour_of_week(ts: float) -> int:
    """0 = Monday 00:00 UTC (the epoch was a Thursday)."""
    return int((ts // 3600 + 72) % 168)
