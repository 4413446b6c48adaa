"""Capacity forecasting: a seasonal model of stored bytes, and days until full.

Why Holt-Winters (statsmodels ExponentialSmoothing, additive trend and weekly
season): storage grows with a trend and breathes with the working week (ingest
on weekdays, lifecycle deletes at weekends); the model is small, fits in
milliseconds on a few weeks of daily samples, and extrapolates both.
"""

from __future__ import annotations

import math
import random
import warnings
from dataclasses import dataclass

import numpy as np


@dataclass
class Forecast:
    history: list[float]
    predicted: list[float]            # one value per step after the history
    step_days: float
    capacity: float | None
    days_until_full: float | None     # None: not within the horizon (or no capacity given)
    model: str

    def to_dict(self) -> dict:
        return {"model": self.model, "step_days": self.step_days, "capacity": self.capacity,
                "days_until_full": None if self.days_until_full is None else round(self.days_until_full, 1),
                "last": self.history[-1] if self.history else None,
                "predicted": [round(v, 1) for v in self.predicted]}


def fit_predict(history: list[float], horizon: int, season: int = 7) -> tuple[list[float], str]:
    """Forecast ``horizon`` steps; Holt-Winters when two seasons are available, else a line."""
    y = np.asarray(history, dtype=float)
    if len(y) >= 2 * season + 2:
        from statsmodels.tsa.holtwinters import ExponentialSmoothing
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = ExponentialSmoothing(y, trend="add", seasonal="add", seasonal_periods=season,
                                       initialization_method="estimated").fit()
            return [float(v) for v in fit.forecast(horizon)], "holt-winters(add trend, add season)"
    if len(y) >= 2:
        slope, intercept = np.polyfit(np.arange(len(y)), y, 1)
        return [float(intercept + slope * (len(y) + i)) for i in range(horizon)], "linear"
    return [float(y[-1]) if len(y) else 0.0] * horizon, "constant"


def days_until(predicted: list[float], capacity: float, step_days: float = 1.0) -> float | None:
    """First step whose forecast reaches capacity, interpolated, in days from now."""
    prev = None
    for i, v in enumerate(predicted):
        if v >= capacity:
            if prev is None or v == prev:
                return (i + 1) * step_days
            frac = (capacity - prev) / (v - prev)
            return (i + frac) * step_days
        prev = v
    return None


def forecast(history: list[float], capacity: float | None = None, horizon: int = 60,
             season: int = 7, step_days: float = 1.0) -> Forecast:
    predicted, model = fit_predict(history, horizon, season)
    full = None
    if capacity is not None:
        full = 0.0 if history and history[-1] >= capacity else days_until(predicted, capacity, step_days)
    return Forecast(list(history), predicted, step_days, capacity, full, model)


def synthetic_growth(seed: int, days: int, base: float = 1e12, growth: float = 0.004,
                     weekly: float = 0.02, noise: float = 0.004) -> list[float]:
    """Stored bytes per day: compound growth, a weekday/weekend swing, noise."""
    rng = random.Random(seed)
    shape = [1.0, 1.2, 1.2, 1.1, 1.0, -0.8, -1.5]         # Mon..Sun relative ingest
    out, level = [], base
    for d in range(days):
        level *= 1.0 + growth * (1.0 + 0.5 * shape[d % 7])
        out.append(level * (1.0 + weekly * shape[d % 7] / 3.0) * (1.0 + rng.gauss(0.0, noise)))
    return out


def mape(actual: list[float], predicted: list[float]) -> float:
    pairs = [(a, p) for a, p in zip(actual, predicted, strict=False) if a]
    return 100.0 * sum(abs(a - p) / abs(a) for a, p in pairs) / len(pairs)


def evaluate_mape(seeds: list[int], train_days: int = 56, horizon: int = 14) -> dict:
    """Mean MAPE over synthetic curves, Holt-Winters vs a straight line through the history."""
    hw, lin = [], []
    for seed in seeds:
        series = synthetic_growth(seed, train_days + horizon, growth=0.002 + 0.004 * (seed % 3))
        train, test = series[:train_days], series[train_days:]
        hw.append(mape(test, fit_predict(train, horizon)[0]))
        slope, intercept = np.polyfit(np.arange(train_days), train, 1)
        lin.append(mape(test, [intercept + slope * (train_days + i) for i in range(horizon)]))
    return {"seeds": list(seeds), "train_days": train_days, "horizon_days": horizon,
            "holt_winters_mape": round(sum(hw) / len(hw), 3),
            "linear_mape": round(float(sum(lin) / len(lin)), 3),
            "holt_winters_max_mape": round(max(hw), 3)}


def plot(fc: Forecast, path: str, title: str = "Stored bytes") -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    n = len(fc.history)
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.plot(range(n), [v / 2**30 for v in fc.history], label="history")
    ax.plot(range(n, n + len(fc.predicted)), [v / 2**30 for v in fc.predicted], "--",
            label=f"forecast ({fc.model})")
    if fc.capacity:
        ax.axhline(fc.capacity / 2**30, color="red", lw=1, label="capacity")
    if fc.days_until_full is not None and not math.isinf(fc.days_until_full):
        ax.axvline(n + fc.days_until_full / fc.step_days - 1, color="grey", lw=1, ls=":",
                   label=f"full in {fc.days_until_full:.0f} days")
    ax.set_xlabel(f"time ({fc.step_days:g}-day steps)")
    ax.set_ylabel("GiB")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
