"""The statistics behind the verdict: paired bootstrap intervals, exact McNemar, proportions.

Pure Python on purpose: an evaluation set has hundreds of examples, not millions, so a thousand
bootstrap resamples cost well under a second per metric and unitune needs no numpy for it. Every
resampling is seeded, so one report gives the same intervals every time it is computed.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

#: Resamples per bootstrap interval: the 2.5th and 97.5th percentiles of 2,000 draws move by less
#: than a hundredth of a point between seeds on a few hundred examples.
DEFAULT_RESAMPLES = 2000

#: A statistic over a resample: the example indices drawn (with repeats) -> a value, or None when
#: no drawn example applies.
Statistic = Callable[[Sequence[int]], float | None]


@dataclass(frozen=True)
class Interval:
    """A point estimate with its two-sided confidence interval."""

    estimate: float
    low: float
    high: float

    @property
    def excludes_zero(self) -> bool:
        """True when the whole interval is on one side of zero."""
        return self.low > 0 or self.high < 0

    @property
    def half_width(self) -> float:
        """Half the interval's width: how far the estimate may be off, at this confidence."""
        return (self.high - self.low) / 2


def _percentile(sorted_values: Sequence[float], q: float) -> float:
    """The q-quantile (0..1) by linear interpolation between closest ranks."""
    if not sorted_values:
        raise ValueError("no values")
    position = q * (len(sorted_values) - 1)
    lower = math.floor(position)
    upper = min(lower + 1, len(sorted_values) - 1)
    fraction = position - lower
    return sorted_values[lower] * (1 - fraction) + sorted_values[upper] * fraction


def bootstrap(
    n: int,
    statistic: Statistic,
    *,
    resamples: int = DEFAULT_RESAMPLES,
    confidence: float = 0.95,
    seed: int = 0,
) -> Interval | None:
    """Percentile bootstrap interval of `statistic` over `n` examples, resampled with replacement.

    For a paired comparison, `statistic` computes the difference of two candidates on the *same*
    drawn indices, so the example-to-example variation both share cancels out. None when the
    statistic has no value on the full set.
    """
    everything = range(n)
    estimate = statistic(everything)
    if estimate is None or n == 0:
        return None
    rng = random.Random(seed)
    values: list[float] = []
    for _ in range(resamples):
        drawn = rng.choices(everything, k=n)
        value = statistic(drawn)
        if value is not None:
            values.append(value)
    if not values:
        return Interval(estimate, estimate, estimate)
    values.sort()
    tail = (1 - confidence) / 2
    return Interval(estimate, _percentile(values, tail), _percentile(values, 1 - tail))


def mean_interval(
    scores: Sequence[float], *, resamples: int = DEFAULT_RESAMPLES, confidence: float = 0.95, seed: int = 0
) -> Interval | None:
    """Bootstrap interval of the mean of `scores`; None when there are none."""
    if not scores:
        return None
    n = len(scores)

    def mean(drawn: Sequence[int]) -> float:
        return math.fsum(scores[i] for i in drawn) / len(drawn)

    return bootstrap(n, mean, resamples=resamples, confidence=confidence, seed=seed)


def paired_mean_difference(
    a: Sequence[float | None],
    b: Sequence[float | None],
    *,
    resamples: int = DEFAULT_RESAMPLES,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[Interval | None, int]:
    """Interval of mean(a) − mean(b) over the examples both are scored on, and how many those are.

    The examples are paired: each resample draws example indices and takes both candidates'
    scores on them, which is what makes a small difference on the same prompts detectable.
    """
    diffs = [x - y for x, y in zip(a, b, strict=True) if x is not None and y is not None]
    return mean_interval(diffs, resamples=resamples, confidence=confidence, seed=seed), len(diffs)


def mcnemar_exact(better: int, worse: int) -> float:
    """Two-sided exact McNemar p-value from the discordant pairs.

    `better`: examples the candidate passes and the baseline fails; `worse`: the reverse. Under
    "no difference" each discordant pair is a fair coin, so the p-value is a two-sided binomial
    test of `min(better, worse)` successes in `better + worse` tosses. 1.0 when no pair differs.
    """
    if better < 0 or worse < 0:
        raise ValueError("counts must not be negative")
    n = better + worse
    if n == 0:
        return 1.0
    k = min(better, worse)
    # log-space sum: math.comb(n, i) / 2**n overflows a float for n in the low thousands.
    log_half_n = n * math.log(0.5)
    tail = math.fsum(
        math.exp(math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + log_half_n)
        for i in range(k + 1)
    )
    return min(1.0, 2 * tail)


def wilson(successes: float, n: float, *, confidence: float = 0.95) -> Interval | None:
    """Wilson score interval of a proportion; `successes` may be fractional (a tie counts ½).

    Wilson rather than the normal approximation: it stays inside [0, 1] and is honest at the small
    counts a human review produces (10 ratings, 9 wins).
    """
    if n <= 0:
        return None
    z = _z(confidence)
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return Interval(p, max(0.0, centre - spread), min(1.0, centre + spread))


def _z(confidence: float) -> float:
    """The two-sided normal quantile for `confidence` (1.96 for 0.95)."""
    from statistics import NormalDist

    return NormalDist().inv_cdf(0.5 + confidence / 2)


def examples_to_settle(interval: Interval, n: int) -> int | None:
    """About how many *more* paired examples would make the interval exclude zero.

    The interval's half-width shrinks as 1/√n; the estimate is assumed to stay where it is. None
    when the estimate is zero (no number of examples settles a difference that is not there) or
    the interval already excludes zero.
    """
    if n <= 0 or interval.excludes_zero or interval.estimate == 0:
        return None
    needed = n * (interval.half_width / abs(interval.estimate)) ** 2
    return max(1, math.ceil(needed - n))


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-quantile (0..1) of `values`, None when empty (latency p50/p95)."""
    if not values:
        return None
    return _percentile(sorted(values), q)
