"""`unitune.evaluate._verdict.decide`: ship, abandon or inconclusive, by hand and through `client.evaluate`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from unitune import FineTuneClient
from unitune.data import ChatExample, Dataset
from unitune.evaluate import Candidate, CandidateResult, Difference, MetricScore
from unitune.evaluate._report import Role
from unitune.evaluate._verdict import decide
from unitune.testing import FakeClock, FakeProvider
from unitune.types import Message

EPS = 1e-3


def result(name: str, role: Role, **means: float | None) -> CandidateResult:
    return CandidateResult(
        name=name,
        slug=name.replace("+", "-"),
        provider="fake",
        model=f"model-{name}",
        role=role,
        metrics={m: MetricScore(mean=v, count=0 if v is None else 100) for m, v in means.items()},
    )


def diff(
    candidate: str, baseline: str, metric: str, estimate: float, low: float, high: float, n: int = 100
) -> Difference:
    return Difference(
        candidate=candidate, baseline=baseline, metric=metric, estimate=estimate, low=low, high=high, n=n
    )


TUNED = result("tuned", "tuned", exact_match=0.8, json_valid=0.9)
BASE = result("base", "baseline", exact_match=0.5, json_valid=1.0)


# -- by hand ------------------------------------------------------------------------------------------


def test_ship_when_the_interval_is_above_zero_and_nothing_regresses() -> None:
    differences = [
        diff("tuned", "base", "exact_match", 0.3, 0.18, 0.42),
        diff("tuned", "base", "json_valid", -0.1, -0.2, 0.01),  # worse, but not significantly
    ]

    verdict = decide([TUNED, BASE], differences, "exact_match", epsilon=EPS, n=100)

    assert verdict.decision == "ship"
    assert (verdict.candidate, verdict.baseline, verdict.metric) == ("tuned", "base", "exact_match")
    assert (verdict.estimate, verdict.low, verdict.high) == (0.3, 0.18, 0.42)
    assert verdict.regressions == []
    assert verdict.more_examples is None
    assert verdict.reason == "tuned beats base by +0.300 [+0.180, +0.420] on exact_match (n=100)"
    assert str(verdict) == f"ship: {verdict.reason}"


def test_a_significant_regression_blocks_shipping() -> None:
    differences = [
        diff("tuned", "base", "exact_match", 0.3, 0.18, 0.42),
        diff("tuned", "base", "json_valid", -0.1, -0.16, -0.04),
    ]

    verdict = decide([TUNED, BASE], differences, "exact_match", epsilon=EPS, n=100)

    assert verdict.decision == "inconclusive"
    assert verdict.regressions == ["json_valid"]
    assert verdict.more_examples is None  # more examples would not remove a real trade-off
    assert "significantly worse on json_valid" in verdict.reason
    assert verdict.reason.endswith("weigh the trade-off")


def test_regressions_count_only_against_the_best_baseline_and_off_the_primary_metric() -> None:
    other = result("other", "baseline", exact_match=0.4, json_valid=1.0)
    differences = [
        diff("tuned", "base", "exact_match", 0.3, 0.18, 0.42),
        diff("tuned", "other", "exact_match", 0.4, 0.3, 0.5),
        diff("tuned", "other", "json_valid", -0.1, -0.16, -0.04),  # against a weaker baseline: ignored
    ]

    verdict = decide([TUNED, BASE, other], differences, "exact_match", epsilon=EPS, n=100)

    assert verdict.baseline == "base"
    assert verdict.decision == "ship"
    assert verdict.regressions == []


def test_abandon_when_few_shot_prompting_does_as_well_even_if_zero_shot_is_beaten() -> None:
    tuned = result("tuned", "tuned", exact_match=0.6)
    zero = result("base", "baseline", exact_match=0.3)
    few = result("base+5-shot", "baseline", exact_match=0.7)
    differences = [
        diff("tuned", "base", "exact_match", 0.3, 0.2, 0.4),  # clearly better than zero-shot
        diff("tuned", "base+5-shot", "exact_match", -0.1, -0.2, 0.0),
    ]

    verdict = decide([tuned, zero, few], differences, "exact_match", epsilon=EPS, n=100)

    assert verdict.decision == "abandon"
    assert verdict.baseline == "base+5-shot"  # the best baseline, not the first
    assert verdict.estimate == -0.1
    assert verdict.reason == "tuned does not beat base+5-shot: -0.100 [-0.200, +0.000] on exact_match (n=100)"


def test_abandon_when_the_lead_is_within_epsilon() -> None:
    tuned = result("tuned", "tuned", exact_match=0.5005)
    base = result("base", "baseline", exact_match=0.5)
    differences = [diff("tuned", "base", "exact_match", 0.0005, 0.0001, 0.0009)]  # tiny but "significant"

    assert decide([tuned, base], differences, "exact_match", epsilon=1e-3, n=100).decision == "abandon"
    assert decide([tuned, base], differences, "exact_match", epsilon=1e-4, n=100).decision == "ship"


def test_inconclusive_with_more_examples_when_the_interval_reaches_zero() -> None:
    differences = [diff("tuned", "base", "exact_match", 0.05, -0.05, 0.15)]

    verdict = decide([TUNED, BASE], differences, "exact_match", epsilon=EPS, n=100)

    assert verdict.decision == "inconclusive"
    # Half-width 0.1 around 0.05: four times the examples, 300 more than the 100 there are.
    assert verdict.more_examples == 300
    assert verdict.reason == (
        "tuned leads base by +0.050 [-0.050, +0.150] on exact_match (n=100), but the interval reaches zero; "
        "about 300 more examples would settle it"
    )


def test_the_best_tuned_candidate_is_judged() -> None:
    weak = result("weak", "tuned", exact_match=0.55)
    differences = [
        diff("weak", "base", "exact_match", 0.05, -0.05, 0.15),
        diff("tuned", "base", "exact_match", 0.3, 0.18, 0.42),
    ]

    verdict = decide([weak, TUNED, BASE], differences, "exact_match", epsilon=EPS, n=100)

    assert (verdict.candidate, verdict.decision) == ("tuned", "ship")


def test_no_baseline_or_no_tuned_candidate_says_what_to_add() -> None:
    alone = decide([TUNED], [], "exact_match", epsilon=EPS, n=10)
    assert alone.decision == "inconclusive"
    assert (alone.candidate, alone.baseline) == ("tuned", None)
    assert alone.reason == "nothing to compare: add a baseline (e.g. the base model, zero-shot and few-shot)"

    only_bases = decide([BASE], [], "exact_match", epsilon=EPS, n=10)
    assert only_bases.decision == "inconclusive"
    assert (only_bases.candidate, only_bases.baseline) == (None, "base")
    assert only_bases.reason == "nothing to compare: add a tuned candidate"


def test_nothing_scored_on_the_primary_metric_is_inconclusive() -> None:
    unscored = result("tuned", "tuned", exact_match=None)
    verdict = decide([unscored, BASE], [], "exact_match", epsilon=EPS, n=10)
    assert verdict.decision == "inconclusive"
    assert verdict.reason == "no example could be scored on exact_match"

    # Both scored, but never on the same example: no paired difference.
    verdict = decide([TUNED, BASE], [], "exact_match", epsilon=EPS, n=10)
    assert verdict.decision == "inconclusive"
    assert verdict.reason == "no example was scored on exact_match for both"


# -- end to end through the client --------------------------------------------------------------------

N = 40


@pytest.fixture
def fake() -> FakeProvider:
    return FakeProvider(clock=FakeClock())


@pytest.fixture
def client(fake: FakeProvider) -> Iterator[FineTuneClient]:
    with FineTuneClient(fake, ledger=False) as c:
        yield c


def labelled(prefix: str, n: int) -> Dataset:
    return Dataset.from_records(
        [
            ChatExample(
                messages=[
                    Message(role="user", content=f"{prefix}{i}"),
                    Message(role="assistant", content=f"answer {i}"),
                ]
            )
            for i in range(n)
        ]
    )


def right_on(counts: dict[tuple[str, bool], int]):  # type: ignore[no-untyped-def]
    """A reply that is right on the first `counts[(model, few_shot)]` evaluation examples."""

    def reply(model: str, messages: list[Message]) -> str:
        question = messages[-1].text
        index = int(question[1:])
        few_shot = len(messages) > 1
        return f"answer {index}" if index < counts[(model, few_shot)] else "no idea"

    return reply


def test_a_tuned_model_right_on_40_of_40_against_a_base_right_on_10_ships(
    client: FineTuneClient, fake: FakeProvider
) -> None:
    fake.set_reply(right_on({("tuned-model", False): 40, ("base-model", False): 10}))

    report = client.evaluate(
        labelled("q", N),
        candidates=[
            Candidate(model="tuned-model"),
            Candidate(model="base-model", name="base", role="baseline"),
        ],
        metrics=["exact_match"],
    )

    assert report.verdict.decision == "ship"
    assert (report.verdict.candidate, report.verdict.baseline) == ("tuned-model", "base")
    assert report.verdict.estimate == pytest.approx(30 / 40)
    assert report.verdict.low > 0
    d = report.difference("exact_match")
    assert (d.better, d.worse) == (30, 0)
    assert d.p_value == pytest.approx(2 * 0.5**30)
    assert len(report.flips) == 30
    assert report.improved


def test_21_of_40_against_20_of_40_is_inconclusive_and_says_how_many_more(
    client: FineTuneClient, fake: FakeProvider
) -> None:
    fake.set_reply(right_on({("tuned-model", False): 21, ("base-model", False): 20}))

    report = client.evaluate(
        labelled("q", N),
        candidates=[
            Candidate(model="tuned-model"),
            Candidate(model="base-model", name="base", role="baseline"),
        ],
        metrics=["exact_match"],
    )

    assert report.verdict.decision == "inconclusive"
    assert report.verdict.estimate == pytest.approx(1 / 40)
    assert report.verdict.low is not None
    assert report.verdict.low <= 0
    assert report.verdict.more_examples is not None
    assert report.verdict.more_examples > 0
    assert f"about {report.verdict.more_examples:,} more examples would settle it" in report.verdict.reason
    assert report.difference("exact_match").p_value == 1.0  # one discordant pair
    assert not report.improved


def test_a_tuned_model_that_loses_to_few_shot_is_abandoned(
    client: FineTuneClient, fake: FakeProvider
) -> None:
    fake.set_reply(
        right_on({("tuned-model", False): 20, ("base-model", False): 10, ("base-model", True): 30})
    )

    report = client.evaluate(
        labelled("q", N),
        candidates=[
            Candidate(model="tuned-model"),
            Candidate(model="base-model", name="base", role="baseline"),
            "base-model:few-shot=3",
        ],
        train_data=labelled("t", 10),
        metrics=["exact_match"],
    )

    assert [(c.name, c.role, c.few_shot) for c in report.candidates] == [
        ("tuned-model", "tuned", 0),
        ("base", "baseline", 0),
        ("base-model+3-shot", "baseline", 3),
    ]
    assert report.candidate("base-model+3-shot").metrics["exact_match"].mean == pytest.approx(30 / 40)
    # It beats zero-shot clearly, and still loses: few-shot prompting is the bar.
    assert report.difference("exact_match", baseline="base").low > 0
    assert report.verdict.decision == "abandon"
    assert report.verdict.baseline == "base-model+3-shot"
    assert report.verdict.estimate == pytest.approx(-10 / 40)
    assert report.baseline is not None
    assert report.baseline.name == "base-model+3-shot"
