"""Intervals with known answers."""

import math

import numpy as np
import pytest

from bench.core.stats import (ALPHA, equivalence, holm, mean_interval, paired_difference, paired_power, verdict,
                              welch_difference)


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


def test_paired_difference_known_case():
    """d = (0.9, 1.0, 0.8): mean 0.9, sd 0.1, t_{2, 0.975} = 4.3027, t = 0.9 / (0.1 / sqrt 3) = 15.59."""
    test = paired_difference({0: 1.0, 1: 1.2, 2: 0.9, 7: 5.0}, {0: 0.1, 1: 0.2, 2: 0.1})
    assert test.seeds == (0, 1, 2) and test.n == 3  # seed 7 has no partner
    assert test.estimate == pytest.approx(0.9)
    assert test.high - test.estimate == pytest.approx(4.302653 * 0.1 / math.sqrt(3), rel=1e-5)
    assert test.p == pytest.approx(2 * 0.0020436, rel=1e-3)  # scipy: 2 * t.sf(15.588, 2)
    exact = paired_difference({0: 10, 1: 12}, {0: 0, 1: 2})  # AU 10 more at every seed: exact
    assert (exact.low, exact.high, exact.p) == (10, 10, 0.0)
    assert math.isnan(paired_difference({0: 1.0}, {0: 0.0}).p)  # one seed: no test


def test_holm_known_case():
    """Holm 1979: p sorted (0.01, 0.03, 0.04) times (3, 2, 1), running maximum."""
    assert holm([0.04, 0.01, 0.03]) == pytest.approx([0.06, 0.03, 0.06])
    adjusted = holm([0.2, math.nan, 0.001])
    assert adjusted[0] == pytest.approx(0.2) and math.isnan(adjusted[1]) and adjusted[2] == pytest.approx(0.002)


def test_equivalence_needs_the_interval_inside_the_margin():
    tight = paired_difference({s: 0.01 * (s % 2) for s in range(5)}, {s: 0.0 for s in range(5)})
    assert equivalence(tight, 0.1) < ALPHA and verdict(tight, 0.1) == "equivalent"
    loose = paired_difference({0: 0.5, 1: -0.4, 2: 0.1}, {0: 0.0, 1: 0.0, 2: 0.0})
    assert equivalence(loose, 0.1) > ALPHA and verdict(loose, 0.1) == "not distinguishable"
    small = paired_difference({s: 0.05 + 0.001 * s for s in range(5)}, {s: 0.0 for s in range(5)})
    assert verdict(small, 0.1) == "below margin"  # distinguishable, but smaller than the margin


def simulated_family(rng, seeds, methods, truth):
    """Per-seed MI of a reference and ``methods`` others: a seed effect shared by every method at
    that seed (data order and evaluation noise, sd 0.5, much larger than the rest), plus each
    run's own noise (sd 0.15); method k's true difference to the reference is truth[k]."""
    shared = rng.normal(0, 0.5, size=seeds)
    reference = dict(enumerate(shared + rng.normal(0, 0.15, size=seeds)))
    return [paired_difference(dict(enumerate(shared + truth[k] + rng.normal(0, 0.15, size=seeds))), reference)
            for k in range(methods)]


def test_family_wise_error_is_at_most_five_percent_with_shared_noise_and_no_difference():
    """Six remedies against one VAE, 5 seeds, no true difference: with Holm's correction the
    probability of any 'higher' or 'lower' verdict is at most 5% (2,000 simulated studies)."""
    rng = np.random.default_rng(1)
    false_positives = 0
    for _ in range(2000):
        tests = simulated_family(rng, 5, 6, [0.0] * 6)
        adjusted = holm([t.p for t in tests])
        false_positives += any(verdict(t, 0.1, p) in ("higher", "lower") for t, p in zip(tests, adjusted))
    assert false_positives / 2000 <= ALPHA + 0.01


def test_paired_test_has_power_where_welch_has_none():
    """A true ΔMI of 0.3 nats under a shared seed effect: the paired test, Holm-corrected over six
    comparisons, finds it in about a quarter of studies at 5 seeds (its power at this noise), the
    uncorrected unpaired interval in almost none; paired_power agrees with the simulation."""
    rng = np.random.default_rng(2)
    found_paired = found_welch = 0
    for _ in range(1000):
        tests = simulated_family(rng, 5, 6, [0.3, 0, 0, 0, 0, 0])
        adjusted = holm([t.p for t in tests])
        found_paired += verdict(tests[0], 0.1, adjusted[0]) == "higher"
    for _ in range(1000):
        shared = rng.normal(0, 0.5, size=5)
        a, b = shared + 0.3 + rng.normal(0, 0.15, size=5), shared + rng.normal(0, 0.15, size=5)
        found_welch += welch_difference(a, b).low > 0
    assert found_paired / 1000 > 0.2 and found_paired > 3 * found_welch
    predicted = paired_power(0.3, 0.15 * math.sqrt(2), seeds=5, family_size=6, margin=0.1)
    assert predicted == pytest.approx(found_paired / 1000, abs=0.06)
