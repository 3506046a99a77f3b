"""Uncertainty for comparison tables: 95% intervals over seeds, and paired differences.

A run gives one value of KL, MI and AU, and one IW-NLL per test sentence. Two sources of
noise enter a comparison: the seed (initialisation, batch order, sampling) and the finite
test set. Per-method values are reported with a t-interval over seeds; differences to the
reference method (the standard VAE) with

- NLL: a two-level bootstrap that resamples seeds (each method its own) and test
  sentences (the *same* resampled sentences for both methods: paired by sentence), so a
  difference carried by a few hard sentences or by one lucky seed shows as a wide interval;
- per-run scalars (KL, MI, AU): Welch's t-interval for the difference of two means.

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


def paired_bootstrap_difference(a: np.ndarray, b: np.ndarray, replicates: int = 2000, seed: int = 0) -> Interval:
    """Difference of mean per-sentence values, method a - method b, with a percentile interval.

    ``a`` [seeds_a, S] and ``b`` [seeds_b, S] hold one value per seed and test sentence, the
    sentences in the same order. Each replicate draws seeds of a and of b with replacement
    and one set of S sentences with replacement, used for both (paired by sentence):

        d* = mean_{s in S*} ( mean_{i in A*} a[i, s] - mean_{j in B*} b[j, s] )
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"paired comparison needs the same test sentences: {a.shape[1]} vs {b.shape[1]}")
    rng = np.random.default_rng(seed)
    sentences = a.shape[1]
    estimate = float(a.mean() - b.mean())
    draws = np.empty(replicates)
    for r in range(replicates):
        rows_a = a[rng.integers(0, len(a), len(a))].mean(axis=0)
        rows_b = b[rng.integers(0, len(b), len(b))].mean(axis=0)
        chosen = rng.integers(0, sentences, sentences)
        draws[r] = (rows_a[chosen] - rows_b[chosen]).mean()
    low, high = np.quantile(draws, [(1 - LEVEL) / 2, (1 + LEVEL) / 2])
    return Interval(estimate, float(low), float(high), min(len(a), len(b)))
