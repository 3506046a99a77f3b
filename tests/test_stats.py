"""Intervals with known answers."""

import math

import numpy as np
import pytest

from bench.core.stats import mean_interval, welch_difference


def test_mean_interval_is_the_t_interval():
    interval = mean_interval([1.0, 2.0, 3.0])
    assert interval.estimate == 2.0 and interval.n == 3
    assert interval.half_width == pytest.approx(4.302653 / math.sqrt(3), rel=1e-5)  # t_{2, 0.975} * s / sqrt(n)
    single = mean_interval([5.0])
    assert single.estimate == 5.0 and math.isnan(single.low)


def test_welch_difference_known_cases():
    point = welch_difference([1, 1, 1], [0, 0, 0])  # no spread: the difference is exact
    assert (point.low, point.estimate, point.high) == (1, 1, 1) and point.excludes_zero
    equal_spread = welch_difference([1.0, 2.0, 3.0], [0.0, 1.0, 2.0])  # df = 4, se = sqrt(2/3)
    assert equal_spread.half_width == pytest.approx(2.776445 * math.sqrt(2 / 3), rel=1e-5)
    assert not equal_spread.excludes_zero


def test_difference_intervals_cover_the_truth_with_three_seeds_a_side():
    """Simulated records: per-sentence NLLs = sentence difficulty + a seed effect (sd 0.5) +
    sentence noise; the methods differ by 0 or by 0.7 nats. The interval from the per-seed
    means (what bench.cli.compare computes) covers the true difference in >= 93% of 1,000 draws."""
    rng = np.random.default_rng(0)
    difficulty = rng.normal(100, 20, size=300)
    for truth in (0.0, 0.7):
        covered = 0
        for _ in range(1000):
            vae = difficulty + rng.normal(0, 0.5, size=(3, 1)) + rng.normal(0, 1, size=(3, 300))
            other = difficulty + truth + rng.normal(0, 0.5, size=(3, 1)) + rng.normal(0, 1, size=(3, 300))
            interval = welch_difference(other.mean(axis=1), vae.mean(axis=1))
            covered += interval.low <= truth <= interval.high
        assert covered >= 930, (truth, covered)


def test_one_seed_gives_no_interval():
    assert math.isnan(welch_difference([1.0], [0.0, 0.1, 0.2]).low)
    assert not welch_difference([1.0], [0.0, 0.1, 0.2]).excludes_zero
