"""`unitune.evaluate._stats`: exact McNemar, Wilson, the seeded bootstrap, paired differences, settling."""

from __future__ import annotations

import math
import random
from fractions import Fraction

import pytest

from unitune.evaluate._stats import (
    Interval,
    bootstrap,
    examples_to_settle,
    mcnemar_exact,
    mean_interval,
    paired_mean_difference,
    percentile,
    wilson,
)


def exact_two_sided(better: int, worse: int) -> float:
    """The two-sided exact binomial p-value in integer arithmetic: no float can overflow here."""
    n = better + worse
    if n == 0:
        return 1.0
    k = min(better, worse)
    total, term = 0, 1  # term = C(n, i), updated in place
    for i in range(k + 1):
        total += term
        term = term * (n - i) // (i + 1)
    tail = Fraction(total, 2**n)
    return float(min(Fraction(1), 2 * tail))


# -- McNemar ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("better", "worse", "p"),
    [
        (0, 6, 0.03125),  # 2 * (1/2)^6
        (6, 0, 0.03125),  # symmetric
        (0, 1, 1.0),  # 2 * 1/2
        (0, 5, 0.0625),  # 2 / 32
        (1, 9, 22 / 1024),  # 2 * (1 + 10) / 2^10
        (2, 8, 112 / 1024),  # 2 * (1 + 10 + 45) / 2^10
        (5, 5, 1.0),  # the tail is more than half: capped at 1
        (0, 0, 1.0),  # no discordant pair: no evidence either way
        (3, 4, 1.0),
    ],
)
def test_mcnemar_exact_matches_hand_computed_values(better: int, worse: int, p: float) -> None:
    assert mcnemar_exact(better, worse) == pytest.approx(p, rel=1e-12, abs=1e-15)


@pytest.mark.parametrize(("better", "worse"), [(2000, 2300), (4990, 5010), (0, 5000), (1, 3000), (700, 900)])
def test_mcnemar_exact_does_not_overflow_on_large_counts(better: int, worse: int) -> None:
    p = mcnemar_exact(better, worse)
    assert math.isfinite(p)
    assert 0.0 <= p <= 1.0
    assert p == pytest.approx(exact_two_sided(better, worse), rel=1e-9, abs=1e-300)


def test_mcnemar_exact_agrees_with_scipy() -> None:
    stats = pytest.importorskip("scipy.stats")
    for better, worse in [(0, 6), (3, 17), (40, 60), (480, 520), (1200, 1400)]:
        expected = stats.binomtest(min(better, worse), better + worse, 0.5).pvalue
        assert mcnemar_exact(better, worse) == pytest.approx(expected, rel=1e-9, abs=1e-300)


def test_mcnemar_exact_is_smaller_the_more_lopsided() -> None:
    values = [mcnemar_exact(k, 20 - k) for k in range(11)]
    assert values == sorted(values)  # k = 0 is the most lopsided split of 20
    assert values[0] < 1e-5
    assert values[10] == 1.0


def test_mcnemar_exact_refuses_negative_counts() -> None:
    with pytest.raises(ValueError, match="negative"):
        mcnemar_exact(-1, 3)
    with pytest.raises(ValueError, match="negative"):
        mcnemar_exact(3, -1)


# -- Wilson -------------------------------------------------------------------------------------------


def test_wilson_matches_the_known_interval_for_8_of_10() -> None:
    interval = wilson(8, 10)
    assert interval is not None
    assert interval.estimate == pytest.approx(0.8)
    assert interval.low == pytest.approx(0.4902, abs=5e-4)
    assert interval.high == pytest.approx(0.9433, abs=5e-4)


def test_wilson_matches_the_formula_at_another_confidence() -> None:
    # 90%: z = 1.6449; 45 of 60.
    z, n, p = 1.6448536269514722, 60, 0.75
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    interval = wilson(45, 60, confidence=0.90)
    assert interval is not None
    assert (interval.low, interval.high) == pytest.approx((centre - spread, centre + spread), rel=1e-9)
    wider = wilson(45, 60, confidence=0.99)
    assert wider is not None
    assert wider.low < interval.low
    assert wider.high > interval.high


def test_wilson_stays_inside_0_1_and_takes_fractional_successes() -> None:
    all_wins = wilson(10, 10)
    assert all_wins is not None
    assert all_wins.high == 1.0
    assert all_wins.low == pytest.approx(0.7225, abs=5e-4)
    none = wilson(0, 10)
    assert none is not None
    assert none.low == pytest.approx(0.0, abs=1e-12)  # the formula's own float noise only
    assert none.high == pytest.approx(1 - 0.7225, abs=5e-4)
    half = wilson(4.5, 9)  # 4 wins, 1 tie, 4 losses
    assert half is not None
    assert half.estimate == 0.5
    assert half.low + half.high == pytest.approx(1.0)  # symmetric around one half
    assert wilson(0, 0) is None


# -- bootstrap ----------------------------------------------------------------------------------------


def _mean_of(scores: list[float]):  # type: ignore[no-untyped-def]
    return lambda drawn: sum(scores[i] for i in drawn) / len(drawn)


def test_bootstrap_is_reproducible_with_a_seed_and_differs_with_another() -> None:
    rng = random.Random(7)
    scores = [float(rng.random() < 0.6) for _ in range(80)]
    first = bootstrap(80, _mean_of(scores), seed=3)
    again = bootstrap(80, _mean_of(scores), seed=3)
    other = bootstrap(80, _mean_of(scores), seed=4)
    assert first is not None
    assert other is not None
    assert first == again
    assert first.estimate == other.estimate == pytest.approx(sum(scores) / 80)
    assert (first.low, first.high) != (other.low, other.high)
    assert first.low < first.estimate < first.high


def test_bootstrap_interval_narrows_with_a_lower_confidence() -> None:
    scores = [float(i % 3 == 0) for i in range(90)]
    wide = bootstrap(90, _mean_of(scores), confidence=0.99, seed=1)
    narrow = bootstrap(90, _mean_of(scores), confidence=0.80, seed=1)
    assert wide is not None
    assert narrow is not None
    assert wide.low < narrow.low < narrow.high < wide.high


def test_bootstrap_with_no_value_is_none_and_a_constant_has_a_point_interval() -> None:
    assert bootstrap(0, lambda drawn: 1.0) is None
    assert bootstrap(5, lambda drawn: None) is None
    constant = bootstrap(5, lambda drawn: 0.25)
    assert constant == Interval(0.25, 0.25, 0.25)


def test_mean_interval_is_none_without_scores_and_brackets_the_mean() -> None:
    assert mean_interval([]) is None
    interval = mean_interval([0.0, 1.0] * 50, seed=0)
    assert interval is not None
    assert interval.estimate == 0.5
    # The standard error of the mean of 100 fair coins is 0.05: the 95% interval is about ±0.1.
    assert interval.low == pytest.approx(0.4, abs=0.03)
    assert interval.high == pytest.approx(0.6, abs=0.03)


# -- paired differences -------------------------------------------------------------------------------


def _pair(effect: float, n: int, seed: int) -> tuple[list[float], list[float]]:
    """Baseline right with probability 0.5; the candidate right with probability 0.5 + effect."""
    rng = random.Random(seed)
    base = [float(rng.random() < 0.5) for _ in range(n)]
    cand = [float(rng.random() < 0.5 + effect) for _ in range(n)]
    return cand, base


def test_paired_difference_contains_the_true_effect_and_excludes_zero_when_clear() -> None:
    cand, base = _pair(0.3, 400, seed=11)
    interval, n = paired_mean_difference(cand, base, seed=0)
    assert n == 400
    assert interval is not None
    assert interval.estimate == pytest.approx(sum(cand) / 400 - sum(base) / 400)
    assert interval.low <= 0.3 <= interval.high
    assert interval.low > 0
    assert interval.excludes_zero


def test_paired_difference_includes_zero_when_there_is_no_effect() -> None:
    cand, base = _pair(0.0, 400, seed=5)
    interval, _ = paired_mean_difference(cand, base, seed=0)
    assert interval is not None
    assert interval.low < 0 < interval.high
    assert not interval.excludes_zero


def test_paired_difference_covers_the_true_effect_in_most_repetitions() -> None:
    covered = 0
    for seed in range(40):
        cand, base = _pair(0.1, 200, seed=100 + seed)
        interval, _ = paired_mean_difference(cand, base, resamples=400, seed=seed)
        assert interval is not None
        covered += interval.low <= 0.1 <= interval.high
    assert covered >= 33  # nominal 95%: 38 of 40 expected, 33 allows for chance


def test_pairing_makes_a_shared_difficulty_cancel() -> None:
    # The candidate is right wherever the baseline is, plus on 10 more of 200: a small, sure effect.
    base = [float(i % 2 == 0) for i in range(200)]
    cand = [1.0 if (i % 2 == 0 or i % 20 == 1) else 0.0 for i in range(200)]
    interval, _ = paired_mean_difference(cand, base, seed=0)
    assert interval is not None
    assert interval.estimate == pytest.approx(10 / 200)
    assert interval.low > 0  # unpaired, 0.55 vs 0.50 on 200 examples would straddle zero


def test_paired_difference_uses_only_examples_scored_for_both() -> None:
    a = [1.0, None, 1.0, 0.0, None]
    b = [0.0, 1.0, None, 0.0, None]
    interval, n = paired_mean_difference(a, b, seed=0)
    assert n == 2  # indices 0 and 3
    assert interval is not None
    assert interval.estimate == pytest.approx(0.5)
    none, zero = paired_mean_difference([None, 1.0], [1.0, None])
    assert none is None
    assert zero == 0
    with pytest.raises(ValueError, match="shorter"):
        paired_mean_difference([1.0, 0.0], [1.0])  # unpaired lengths are a bug, not a zip


# -- examples_to_settle ------------------------------------------------------------------------------


def test_examples_to_settle_is_none_when_settled_or_there_is_nothing_to_settle() -> None:
    assert examples_to_settle(Interval(0.1, 0.02, 0.18), 100) is None  # already excludes zero
    assert examples_to_settle(Interval(-0.1, -0.18, -0.02), 100) is None
    assert examples_to_settle(Interval(0.0, -0.1, 0.1), 100) is None  # no difference to settle
    assert examples_to_settle(Interval(0.05, -0.05, 0.15), 0) is None


def test_examples_to_settle_follows_the_square_root_law() -> None:
    # Half-width 0.1 around 0.05 on 100 examples: n must grow by (0.1 / 0.05)^2 = 4, to 400: 300 more.
    assert examples_to_settle(Interval(0.05, -0.05, 0.15), 100) == 300
    # A negative estimate settles the same way (it is the distance from zero that counts).
    assert examples_to_settle(Interval(-0.05, -0.15, 0.05), 100) == 300
    # Barely reaching zero still needs at least one more example.
    assert examples_to_settle(Interval(0.1, -0.0001, 0.2001), 100) == 1


def test_examples_to_settle_grows_as_the_effect_shrinks() -> None:
    needed = [examples_to_settle(Interval(e, e - 0.1, e + 0.1), 200) for e in (0.08, 0.05, 0.02, 0.01)]
    assert all(isinstance(x, int) and x > 0 for x in needed)
    assert needed == sorted(needed)
    assert len(set(needed)) == len(needed)


# -- percentile ---------------------------------------------------------------------------------------


def test_percentile_interpolates_between_ranks() -> None:
    assert percentile([], 0.5) is None
    assert percentile([7.0], 0.95) == 7.0
    assert percentile([3.0, 1.0, 2.0], 0.5) == 2.0  # sorts first
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5
    values = [float(v) for v in range(1, 101)]  # 1..100
    assert percentile(values, 0.0) == 1.0
    assert percentile(values, 1.0) == 100.0
    assert percentile(values, 0.95) == pytest.approx(95.05)
