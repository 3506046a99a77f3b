"""Intervals with known answers."""

import math

import numpy as np
import pytest

from bench.stats import mean_interval, paired_bootstrap_difference, welch_difference


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


def test_paired_bootstrap_removes_the_per_sentence_variation():
    rng = np.random.default_rng(1)
    hardness = rng.normal(40, 8, size=500)  # sentences differ a lot; the methods by 0.3 nats
    vae = hardness + rng.normal(0, 0.2, size=(3, 500))
    other = hardness - 0.3 + rng.normal(0, 0.2, size=(3, 500))
    interval = paired_bootstrap_difference(other, vae, replicates=500)
    assert interval.low < -0.3 < interval.high and interval.high < 0  # distinguishable despite std 8 per sentence
    assert interval.half_width < 0.1
    base = hardness[None, :]
    shifted = paired_bootstrap_difference(base + 0.5, base, replicates=200)  # identical but for a constant
    assert shifted.low == pytest.approx(0.5) and shifted.high == pytest.approx(0.5)


def test_paired_bootstrap_includes_seed_spread():
    rng = np.random.default_rng(2)
    hardness = rng.normal(40, 8, size=300)
    seed_offsets = np.array([[-1.0], [0.0], [1.0]])  # one seed's luck moves every sentence
    noisy = hardness + seed_offsets
    interval = paired_bootstrap_difference(noisy, hardness[None, :], replicates=500)
    assert interval.low < 0 < interval.high and interval.half_width > 0.4
    with pytest.raises(ValueError, match="same test sentences"):
        paired_bootstrap_difference(noisy, hardness[None, :10])
