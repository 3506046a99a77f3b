"""Uncertainty for comparison tables: 95% intervals over training seeds.

The training seed is the unit of replication: a run gives one value of each metric (its NLL
is the mean IW-NLL over the test sentences it scored), and every interval here is over runs,
never over test sentences. Per-method values get a t-interval over seeds; differences to the
reference method (the standard VAE) get Welch's t-interval on the per-seed values. For NLL
those are means over the *same* test sentences, so the comparison is paired by sentence by
construction (a sentence's difficulty is in both means and cancels in the difference); runs
scored on different sentences are not compared at all. With fewer than two seeds on either
side there is no interval, and so never a verdict. ``tests/test_stats.py`` checks by
simulation that these intervals cover the true difference at their level with 3 seeds a side.

An interval that excludes 0 is "distinguishable at 95%".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import stats

LEVEL = 0.95


@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float
    high: float
    n: int  # seeds (or seeds of the smaller group) behind it

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    @property
    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0

    def overlaps(self, other: "Interval") -> bool:
        return self.low <= other.high and other.low <= self.high


def mean_interval(values: Sequence[float]) -> Interval:
    """mean +- t_{n-1, 0.975} * s / sqrt(n); with one value the interval is unknown (NaN bounds)."""
    x = np.asarray(values, dtype=float)
    mean = float(x.mean())
    if len(x) < 2:
        return Interval(mean, math.nan, math.nan, len(x))
    half = float(stats.t.ppf(0.5 + LEVEL / 2, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x)))
    return Interval(mean, mean - half, mean + half, len(x))


def welch_difference(a: Sequence[float], b: Sequence[float]) -> Interval:
    """mean(a) - mean(b) with Welch's t-interval (unequal variances; Welch-Satterthwaite df).

    With zero spread in both groups the interval is the point itself (e.g. AU 1 in every
    seed against AU 0 in every seed); with fewer than two values in a group it is unknown.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    difference = float(a.mean() - b.mean())
    if len(a) < 2 or len(b) < 2:
        return Interval(difference, math.nan, math.nan, min(len(a), len(b)))
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = math.sqrt(va + vb)
    if se == 0:
        return Interval(difference, difference, difference, min(len(a), len(b)))
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    half = float(stats.t.ppf(0.5 + LEVEL / 2, df) * se)
    return Interval(difference, difference - half, difference + half, min(len(a), len(b)))
