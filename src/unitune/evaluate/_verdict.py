"""The decision: ship, abandon, or inconclusive.

- **ship**: the best tuned candidate beats the best baseline (few-shot prompting included) on the
  primary metric with the whole confidence interval above zero (and, for a pass/fail metric, the
  exact McNemar test below 1 − confidence), on at least `MIN_EXAMPLES_TO_SHIP` examples, and is
  not significantly worse on any other metric.
- **abandon**: it does not beat the best baseline: the measured difference on the primary metric is
  at most `epsilon` (the fine-tune adds nothing that prompting does not already give).
- **inconclusive**: it looks better but the interval still reaches zero (with about how many more
  examples would settle it), or it is better on the primary metric and significantly worse on
  another (a trade-off a person must weigh), or there is nothing to compare.
"""

from __future__ import annotations

from collections.abc import Sequence

from unitune.evaluate._report import CandidateResult, Difference, Verdict
from unitune.evaluate._stats import Interval, examples_to_settle, mcnemar_exact

__all__ = ["MIN_EXAMPLES_TO_SHIP", "decide"]

#: Fewer paired examples than this never ship: a percentile bootstrap on a handful of examples
#: gives intervals far narrower than the truth (six examples, five better, look certain).
MIN_EXAMPLES_TO_SHIP = 20


def _best(candidates: Sequence[CandidateResult], metric: str) -> CandidateResult | None:
    """The candidate with the highest value on `metric` (the first of equals); None if none scored."""
    scored = [c for c in candidates if c.metrics[metric].mean is not None]
    return max(scored, key=lambda c: c.metrics[metric].mean or 0.0, default=None)


def _find(differences: Sequence[Difference], candidate: str, baseline: str, metric: str) -> Difference | None:
    return next(
        (d for d in differences if (d.candidate, d.baseline, d.metric) == (candidate, baseline, metric)), None
    )


def _more_for_mcnemar(better: int, worse: int, n: int, alpha: float) -> int | None:
    """About how many more examples would make the McNemar test significant.

    About how many more examples make the exact McNemar test significant, if the share of
    examples that differ, and which way they go, stays as measured. None when nothing differs.
    """
    if better + worse == 0 or better == worse:
        return None
    for scale in range(2, 1001):
        if mcnemar_exact(better * scale, worse * scale) < alpha:
            return n * (scale - 1)
    return None


def decide(
    candidates: Sequence[CandidateResult],
    differences: Sequence[Difference],
    primary: str,
    *,
    epsilon: float,
    n: int,
    confidence: float = 0.95,
) -> Verdict:
    """The verdict for the best tuned candidate against the best baseline on `primary`."""
    tuned = [c for c in candidates if c.role == "tuned"]
    baselines = [c for c in candidates if c.role == "baseline"]
    if not tuned or not baselines:
        missing = "baseline (e.g. the base model, zero-shot and few-shot)" if tuned else "tuned candidate"
        return Verdict(
            decision="inconclusive", candidate=tuned[0].name if tuned else None,
            baseline=baselines[0].name if baselines else None, metric=primary,
            reason=f"nothing to compare: add a {missing}",
        )  # fmt: skip
    best_tuned, best_base = _best(tuned, primary), _best(baselines, primary)
    if best_tuned is None or best_base is None:
        return Verdict(decision="inconclusive", candidate=tuned[0].name, baseline=baselines[0].name,
                       metric=primary, reason=f"no example could be scored on {primary}")  # fmt: skip
    d = _find(differences, best_tuned.name, best_base.name, primary)
    if d is None:
        return Verdict(decision="inconclusive", candidate=best_tuned.name, baseline=best_base.name,
                       metric=primary, reason=f"no example was scored on {primary} for both")  # fmt: skip
    regressions = [
        x.metric
        for x in differences
        if x.candidate == best_tuned.name
        and x.baseline == best_base.name
        and x.metric != primary
        and x.high < 0
    ]
    shown = f"{d.estimate:+.3f} [{d.low:+.3f}, {d.high:+.3f}] on {primary} (n={d.n})"
    common = {"candidate": best_tuned.name, "baseline": best_base.name, "metric": primary,
              "estimate": d.estimate, "low": d.low, "high": d.high, "regressions": regressions}  # fmt: skip
    if d.estimate <= epsilon:
        return Verdict(
            decision="abandon", **common,
            reason=f"{best_tuned.name} does not beat {best_base.name}: {shown}",
        )  # fmt: skip
    if d.low > 0 and d.n < MIN_EXAMPLES_TO_SHIP:
        return Verdict(
            decision="inconclusive", **common, more_examples=MIN_EXAMPLES_TO_SHIP - d.n,
            reason=(f"{best_tuned.name} leads {best_base.name} by {shown}, but {d.n} examples are too few "
                    f"to trust the interval: evaluate at least {MIN_EXAMPLES_TO_SHIP}"),
        )  # fmt: skip
    if d.low > 0 and d.p_value is not None and d.p_value >= 1 - confidence:
        # A percentile bootstrap on a handful of discordant pairs is too sure of itself (two
        # examples, both better, give an interval above zero); the exact test is not.
        return Verdict(
            decision="inconclusive", **common,
            more_examples=_more_for_mcnemar(d.better or 0, d.worse or 0, d.n or n, 1 - confidence),
            reason=(f"{best_tuned.name} leads {best_base.name} by {shown}, but only {d.better} examples "
                    f"against {d.worse} differ (McNemar p = {d.p_value:.3f}): evaluate on more examples"),
        )  # fmt: skip
    if d.low > 0 and not regressions:
        return Verdict(
            decision="ship", **common, reason=f"{best_tuned.name} beats {best_base.name} by {shown}"
        )
    if d.low > 0:
        return Verdict(
            decision="inconclusive", **common,
            reason=(f"{best_tuned.name} beats {best_base.name} by {shown} but is significantly worse on "
                    f"{', '.join(regressions)}: weigh the trade-off"),
        )  # fmt: skip
    more = examples_to_settle(Interval(d.estimate, d.low, d.high), d.n or n)
    return Verdict(
        decision="inconclusive", more_examples=more, **common,
        reason=(f"{best_tuned.name} leads {best_base.name} by {shown}, but the interval reaches zero"
                + (f"; about {more:,} more examples would settle it" if more else "")),
    )  # fmt: skip
