"""Uncertainty and verdicts for comparison tables: intervals and tests over training seeds.

The training seed is the unit of replication: a run gives one value of each metric, and every
interval here is over runs, never over test sentences. Per-method values get a t-interval
over seeds.

Verdicts compare methods **paired by seed** (:func:`paired_difference`): runs at one seed share
their data order and, since every evaluation draws from a stream seeded by the run's seed alone
(bench.core.loop.evaluation_rng), their evaluation noise; the per-seed difference cancels both,
and its t-interval (n - 1 degrees of freedom) is the test. A difference counts as a verdict
only when it clears a stated practical margin (:data:`MARGINS`) and, for the comparisons a
report states as confirmatory before its results, the Holm-adjusted p-value of its family
(:func:`holm`) is below 0.05; other comparisons are exploratory and labelled so. "Not
distinguishable" is not "the same": equivalence has its own test (:func:`equivalence`, two
one-sided tests against the margin). With one seed there is no interval and never a verdict.
``tests/test_stats.py`` checks coverage, the family-wise error under shared evaluation noise,
and the power at the planned seeds by simulation (:func:`paired_power`).

Welch's interval (:func:`welch_difference`) remains for unpaired groups (e.g. training times of
runs at different seeds) and for reading older tables.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
from scipy import stats

LEVEL = 0.95
ALPHA = 1 - LEVEL
# Practical margins: a paired difference smaller than these is not a verdict, and equivalence
# ("the same") means within them. MI: a tenth of a nat (He et al. report MI to 0.01-0.1; the
# whole-split estimate's standard error is a few hundredths); AU: one unit; NLL: half a nat
# per sentence (about 0.5% of a reduced-profile NLL); KL as MI.
MARGINS = {"mi": 0.1, "mi_batch": 0.1, "kl": 0.1, "au": 1.0, "nll": 0.5, "ppl": 1.0,
           "feature_cosine_distance": 0.02}


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


@dataclass(frozen=True)
class PairedTest:
    """mean(a - b) over the seeds both have, its 95% t-interval (n - 1 df) and the two-sided
    p-value of 'no difference'. NaN interval and p with fewer than 2 pairs."""

    estimate: float
    low: float
    high: float
    n: int
    p: float
    seeds: tuple = ()

    @property
    def interval(self) -> Interval:
        return Interval(self.estimate, self.low, self.high, self.n)


def paired_difference(a: Mapping[int, float], b: Mapping[int, float]) -> PairedTest:
    """``a - b`` paired by seed (the keys): d_s = a_s - b_s over the seeds both have,

        mean(d) +- t_{n-1, 0.975} * sd(d) / sqrt(n),   p = 2 P(T_{n-1} > |mean(d)| / (sd(d) / sqrt(n))).

    With zero spread the difference is exact: the interval is the point and p is 0 (or 1 when
    the difference is 0), e.g. AU 10 against AU 0 at every seed."""
    seeds = tuple(sorted(set(a) & set(b)))
    d = np.asarray([float(a[s]) - float(b[s]) for s in seeds], dtype=float)
    if len(d) == 0:
        return PairedTest(math.nan, math.nan, math.nan, 0, math.nan, seeds)
    mean = float(d.mean())
    if len(d) < 2:
        return PairedTest(mean, math.nan, math.nan, len(d), math.nan, seeds)
    se = float(d.std(ddof=1) / math.sqrt(len(d)))
    if se == 0:
        return PairedTest(mean, mean, mean, len(d), 0.0 if mean != 0 else 1.0, seeds)
    half = float(stats.t.ppf(0.5 + LEVEL / 2, len(d) - 1) * se)
    p = float(2 * stats.t.sf(abs(mean) / se, len(d) - 1))
    return PairedTest(mean, mean - half, mean + half, len(d), p, seeds)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (Holm 1979): sort p ascending, p_(i) * (m - i + 1),
    running maximum, capped at 1; NaN (an untestable comparison) stays NaN and does not count
    in m. Rejecting where the adjusted p < alpha controls the family-wise error at alpha."""
    indexed = [(p, i) for i, p in enumerate(p_values) if not math.isnan(p)]
    adjusted = [math.nan] * len(p_values)
    running, m = 0.0, len(indexed)
    for rank, (p, i) in enumerate(sorted(indexed)):
        running = max(running, min(1.0, p * (m - rank)))
        adjusted[i] = running
    return adjusted


def equivalence(test: PairedTest, margin: float) -> float:
    """p-value of the paired two one-sided tests (TOST, Schuirmann 1987) that |a - b| < margin:
    the larger of the two one-sided p-values; below 0.05, 'the same within the margin' (the
    90% interval lies inside (-margin, +margin)). NaN with fewer than 2 pairs."""
    if test.n < 2 or math.isnan(test.low):
        return math.nan
    se = (test.high - test.low) / 2 / float(stats.t.ppf(0.5 + LEVEL / 2, test.n - 1))
    if se == 0:
        return 0.0 if abs(test.estimate) < margin else 1.0
    upper = stats.t.sf((margin - test.estimate) / se, test.n - 1)  # H0: d >= margin
    lower = stats.t.sf((test.estimate + margin) / se, test.n - 1)  # H0: d <= -margin
    return float(max(upper, lower))


def verdict(test: PairedTest, margin: float, adjusted_p: float | None = None,
            adjusted_equivalence_p: float | None = None) -> str:
    """A paired comparison's verdict, in words: ``higher`` / ``lower`` (distinguishable at 95%,
    Holm-adjusted where ``adjusted_p`` is given, and at least ``margin`` away from 0),
    ``below margin`` (distinguishable but smaller than the margin: not a verdict),
    ``equivalent`` (TOST within the margin, Holm-adjusted where ``adjusted_equivalence_p`` is
    given), ``not distinguishable``, or ``one seed`` (no test)."""
    if test.n < 2 or math.isnan(test.p):
        return "one seed" if test.n == 1 else "not tested"
    p = test.p if adjusted_p is None else adjusted_p
    if p < ALPHA:
        if abs(test.estimate) < margin:
            return "below margin"
        return "higher" if test.estimate > 0 else "lower"
    if (equivalence(test, margin) if adjusted_equivalence_p is None else adjusted_equivalence_p) < ALPHA:
        return "equivalent"
    return "not distinguishable"


def paired_power(effect: float, sd: float, seeds: int, family_size: int = 1, margin: float = 0.0,
                 simulations: int = 20_000, seed: int = 0) -> float:
    """Probability, by simulation, that a paired comparison with true difference ``effect`` and
    per-seed difference sd ``sd`` is found ``higher`` with ``seeds`` seeds inside a Holm family
    of ``family_size`` comparisons whose others have no true difference (and clears ``margin``).
    The per-seed differences are normal; the noise that runs at one seed share has cancelled."""
    if seeds < 2:
        return 0.0
    rng = np.random.default_rng(seed)
    d = rng.normal(0.0, sd, size=(simulations, family_size, seeds))
    d[:, 0, :] += effect
    mean = d.mean(axis=2)
    se = d.std(axis=2, ddof=1) / math.sqrt(seeds)
    p = 2 * stats.t.sf(np.abs(mean) / se, seeds - 1)
    order = np.argsort(p, axis=1)
    ranked = np.take_along_axis(p, order, axis=1) * (family_size - np.arange(family_size))
    adjusted_sorted = np.minimum(1.0, np.maximum.accumulate(ranked, axis=1))
    adjusted = np.empty_like(adjusted_sorted)
    np.put_along_axis(adjusted, order, adjusted_sorted, axis=1)
    found = (adjusted[:, 0] < ALPHA) & (mean[:, 0] >= max(margin, 0.0)) & (mean[:, 0] > 0)
    return float(found.mean())
