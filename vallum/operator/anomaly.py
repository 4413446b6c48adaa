"""The unsupervised model: river's Half-Space Trees over per-principal-normalised minutes.

Why one shared forest on normalised features: a forest per principal would need
thousands of minutes before it knows anything; normalising each minute by the
principal's own robust quantiles ("how many times its usual busiest minute") lets
one forest learn what ordinary deviations look like across everybody, so a new
principal is judged from day one and a quiet one is not drowned by a busy one.
"""

from __future__ import annotations

import math

from vallum.operator.profile import Profile, hour_of_week

MODEL_FEATURES = ("requests", "reads", "writes", "lists", "bytes_out", "bytes_in", "denied",
                  "not_found", "keys", "prefixes", "buckets")


def normalised(peaks: dict[str, float], profile: Profile, prior: Profile, ts: float) -> dict[str, float]:
    """Each feature as a squashed log-ratio to the entity's 95th percentile, in [0, 1]."""
    base = profile if profile.samples >= 30 else prior
    x: dict[str, float] = {}
    for name in MODEL_FEATURES:
        ratio = math.log2((peaks[name] + 1.0) / (base.quantile(name, 0.95) + 1.0))
        x[name] = 0.5 + 0.5 * math.tanh(ratio / 4.0)
    hour = hour_of_week(ts) % 24
    seen = profile.active_at_hour(hour, 0)
    x["hour_rarity"] = 1.0 / (1.0 + seen / 10.0) if profile.samples >= 30 else 0.5
    return x


class AnomalyModel:
    def __init__(self, seed: int = 7, n_trees: int = 15, height: int = 8, window: int = 256) -> None:
        from river.anomaly import HalfSpaceTrees  # imported on use: it is slow to import
        self.model = HalfSpaceTrees(n_trees=n_trees, height=height, window_size=window, seed=seed)
        self.seen = 0

    def score_and_learn(self, x: dict[str, float]) -> float:
        """Score a minute then learn it (learning only from what it judged ordinary keeps
        a long attack from teaching the forest that the attack is normal)."""
        score = self.model.score_one(x) if self.seen >= 2 * self.model.window_size else 0.0
        if score < 0.9:
            self.model.learn_one(x)
            self.seen += 1
        return score


SCORE_BINS = 200           # per-principal histogram of its own scores, 0.25 wide
SCORE_STEP = 0.25


class RobustModel:
    """Sum of per-feature robust z-scores of a minute against the principal's own history,
    fired against a threshold learned per principal.

    Why: a shared forest sees 120 different normals as one; this asks each principal
    "how many robust standard deviations above *your* median is this minute, summed
    over features", on a log scale (bytes and counts are heavy-tailed), with the
    median and spread read from the profile's histograms (spread from the 50-90%
    quantile gap, a MAD-like scale that a few outliers cannot inflate). Each principal
    then gets its own bar: ``margin`` x the 99.9th percentile of the scores of its own
    past minutes, never below ``floor``, so a bursty principal is not flagged for
    being itself and a steady one is held to its steadiness.
    """

    def __init__(self, floor: float = 25.0, margin: float = 1.25, q: float = 0.999,
                 min_scored: int = 200) -> None:
        self.floor, self.margin, self.q, self.min_scored = floor, margin, q, min_scored
        self.history: dict[str, list[int]] = {}

    @staticmethod
    def contributions(peaks: dict[str, float], profile: Profile) -> dict[str, float]:
        out: dict[str, float] = {}
        for name in MODEL_FEATURES:
            med = math.log2(1.0 + profile.quantile(name, 0.5))
            scale = max(0.5, (math.log2(1.0 + profile.quantile(name, 0.9)) - med) / 1.2816)
            z = (math.log2(1.0 + peaks[name]) - med) / scale
            if z > 0.0:
                out[name] = min(z, 20.0)
        return out

    def threshold(self, principal: str) -> float | None:
        h = self.history.get(principal)
        if h is None:
            return None
        total = sum(h)
        if total < self.min_scored:
            return None                     # not enough of its own minutes yet: no bar
        need, seen = self.q * total, 0
        for b, n in enumerate(h):
            seen += n
            if seen >= need:
                return max(self.floor, self.margin * (b + 1) * SCORE_STEP)
        return self.floor

    def score(self, principal: str, peaks: dict[str, float], profile: Profile
              ) -> tuple[float, float | None, dict[str, float]]:
        """(score, this principal's bar or None, per-feature z)."""
        z = self.contributions(peaks, profile)
        return sum(z.values()), self.threshold(principal), z

    def learn(self, principal: str, score: float) -> None:
        h = self.history.get(principal)
        if h is None:
            h = self.history[principal] = [0] * SCORE_BINS
        h[min(SCORE_BINS - 1, int(score / SCORE_STEP))] += 1

    def score_and_learn(self, principal: str, peaks: dict[str, float], profile: Profile
                        ) -> tuple[float, float | None, dict[str, float]]:
        """Score, then learn the score unless it fired (an anomaly is not its normal)."""
        score, bar, z = self.score(principal, peaks, profile)
        if bar is None or score < bar:
            self.learn(principal, score)
        return score, bar, z
