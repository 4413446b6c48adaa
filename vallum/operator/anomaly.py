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
