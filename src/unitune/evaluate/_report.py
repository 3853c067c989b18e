"""What an evaluation produces: `EvaluationReport` and its parts, all plain pydantic models.

The report is data (it is written as report.json and read back by `unitune review` and by the
Markdown and HTML renderers); the only behaviour here is the plain-text table of `str(report)` and a
few read-only conveniences.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from unitune.types import Usage

Decision = Literal["ship", "abandon", "inconclusive"]
Role = Literal["baseline", "tuned"]

#: Differences at or below this are ties: a one-example swing on a small validation set is above
#: it, float noise is not.
DEFAULT_EPSILON = 1e-3


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class MetricScore(_Frozen):
    """One metric for one candidate: its value, the examples it applied to, and a 95% interval."""

    mean: float | None = Field(description="The metric's value in [0, 1]; None when no example applied.")
    count: int = Field(ge=0, description="Examples the metric applied to (the others returned None).")
    low: float | None = Field(default=None, description="Lower end of the bootstrap interval.")
    high: float | None = Field(default=None, description="Upper end of the bootstrap interval.")


class CandidateResult(_Frozen):
    """Everything measured for one candidate: quality, speed, tokens and money."""

    name: str = Field(description="The candidate's label in the report (unique).")
    slug: str = Field(description="A file-safe form of the name: answers/<slug>.jsonl.")
    provider: str
    model: str
    role: Role
    few_shot: int = Field(default=0, ge=0, description="Examples prepended to every prompt.")
    system: str | None = Field(default=None, description="The system prompt set for this candidate.")
    metrics: dict[str, MetricScore]
    answered: int = Field(default=0, ge=0, description="Examples this candidate answered.")
    failed: int = Field(default=0, ge=0, description="Examples whose request failed after its retries.")
    usage: Usage = Field(default_factory=Usage)
    latency_p50_ms: float | None = None
    latency_p95_ms: float | None = None
    mean_prompt_tokens: float = 0.0
    mean_completion_tokens: float = 0.0
    cost_per_1k_requests_usd: float | None = Field(
        default=None, description="Measured tokens × the catalog's inference price; None without a price."
    )
    price_note: str = Field(default="", description="Where the price came from, or why there is none.")
    training_usd: float | None = Field(default=None, description="What training this candidate cost.")


class Difference(_Frozen):
    """One metric of a candidate against a baseline, on the examples both were scored on."""

    candidate: str
    baseline: str
    metric: str
    estimate: float = Field(description="candidate − baseline.")
    low: float
    high: float
    n: int = Field(ge=0, description="Paired examples the difference is computed on.")
    p_value: float | None = Field(default=None, description="Exact McNemar test, for pass/fail metrics.")
    better: int | None = Field(default=None, description="Pass/fail: candidate passes, baseline fails.")
    worse: int | None = Field(default=None, description="Pass/fail: baseline passes, candidate fails.")

    @property
    def significant(self) -> bool:
        """True when the interval excludes zero."""
        return self.low > 0 or self.high < 0


class Flip(_Frozen):
    """An example on which the candidate and the baseline disagree on a pass/fail metric."""

    index: int
    line: int | None = None
    metric: str
    direction: Literal["fixed", "broken"] = Field(
        description="fixed: the baseline failed and the candidate passes; broken: the reverse."
    )
    prompt: str
    reference: str
    candidate_answer: str
    baseline_answer: str


class JudgeRow(_Frozen):
    """One example judged in both orders, with the judge's reasons."""

    index: int
    line: int | None = None
    winner: Literal["candidate", "baseline", "tie"]
    reasons: list[str] = Field(default_factory=list)


class PairwiseResult(_Frozen):
    """An LLM judge's pairwise verdicts for one candidate against one baseline."""

    judge: str = Field(description="provider:model of the judge.")
    candidate: str
    baseline: str
    wins: int = 0
    losses: int = 0
    ties: int = 0
    skipped: int = Field(default=0, description="Examples whose verdicts could not be read.")
    win_rate: float | None = Field(default=None, description="(wins + ties/2) / judged.")
    low: float | None = None
    high: float | None = None
    rows: list[JudgeRow] = Field(default_factory=list)


class HumanResult(_Frozen):
    """Human ratings from `unitune review`: `a` against `b`."""

    a: str
    b: str
    a_wins: int = 0
    b_wins: int = 0
    ties: int = 0
    both_bad: int = 0
    win_rate: float | None = Field(default=None, description="a's (wins + ties/2) / (wins + losses + ties).")
    low: float | None = None
    high: float | None = None

    @property
    def rated(self) -> int:
        """Examples rated so far."""
        return self.a_wins + self.b_wins + self.ties + self.both_bad


class BreakEven(_Frozen):
    """When the fine-tune pays for itself against a baseline, from measured tokens and prices."""

    candidate: str
    baseline: str
    training_usd: float | None
    saving_per_1k_requests_usd: float | None = Field(description="baseline − candidate, per 1,000 requests.")
    requests: float | None = Field(description="Requests after which training has paid for itself.")
    prompt_tokens_saved: float = Field(description="Mean prompt tokens the candidate sends fewer.")
    note: str = ""

    def __str__(self) -> str:
        return self.note


class Verdict(_Frozen):
    """The decision: ship, abandon, or inconclusive, and why."""

    decision: Decision
    candidate: str | None = None
    baseline: str | None = Field(default=None, description="The best baseline on the primary metric.")
    metric: str
    estimate: float | None = None
    low: float | None = None
    high: float | None = None
    regressions: list[str] = Field(default_factory=list, description="Metrics significantly worse.")
    more_examples: int | None = Field(
        default=None, description="Inconclusive: about how many more examples would settle it."
    )
    reason: str

    def __str__(self) -> str:
        return f"{self.decision}: {self.reason}"


class SampleRow(_Frozen):
    """One example shown verbatim: the prompt's excerpt, the reference, every candidate's answer."""

    index: int
    line: int | None = Field(default=None, description="Where the example came from (line or index).")
    prompt: str = Field(description="The last user message (or last prompt message), shortened.")
    reference: str
    answers: dict[str, str] = Field(description="Candidate name -> its answer.")


class EvaluationReport(_Frozen):
    """The result of an evaluation: candidates × metrics with intervals, the comparisons, the verdict.

    `str(report)` is a plain-text table; `unitune.evaluate.render_markdown` and `render_html` give the
    documents written to a report directory.
    """

    examples: int = Field(ge=0, description="Examples evaluated (after skipping and max_examples).")
    skipped: dict[str, int] = Field(
        default_factory=dict,
        description="Examples left out, by reason: no_assistant_message, no_prompt, no_reference_text…",
    )
    metrics: list[str] = Field(description="Metric names, in the order asked for (expanded).")
    primary_metric: str
    candidates: list[CandidateResult]
    differences: list[Difference] = Field(default_factory=list)
    flips: list[Flip] = Field(default_factory=list)
    judge: list[PairwiseResult] = Field(default_factory=list)
    human: HumanResult | None = None
    break_even: list[BreakEven] = Field(default_factory=list)
    metric_errors: dict[str, int] = Field(
        default_factory=dict, description="Metric -> examples it raised on (scored as not applicable)."
    )
    samples: list[SampleRow] = Field(default_factory=list)
    confidence: float = 0.95
    epsilon: float = DEFAULT_EPSILON
    seed: int = 0
    verdict: Verdict

    # -- conveniences ---------------------------------------------------------------------------

    def candidate(self, name: str) -> CandidateResult:
        """The candidate called `name`; KeyError when there is none."""
        for c in self.candidates:
            if c.name == name:
                return c
        raise KeyError(name)

    @property
    def tuned(self) -> CandidateResult:
        """The tuned candidate the verdict is about (the first candidate when there is no tuned one)."""
        name = self.verdict.candidate
        if name is not None:
            return self.candidate(name)
        return next((c for c in self.candidates if c.role == "tuned"), self.candidates[0])

    @property
    def baseline(self) -> CandidateResult | None:
        """The best baseline on the primary metric (what the verdict compares against), if any."""
        name = self.verdict.baseline
        if name is not None:
            return self.candidate(name)
        return next((c for c in self.candidates if c.role == "baseline"), None)

    @property
    def skipped_total(self) -> int:
        """All examples left out, whatever the reason."""
        return sum(self.skipped.values())

    @property
    def improved(self) -> bool:
        """True when the verdict is to ship."""
        return self.verdict.decision == "ship"

    def difference(
        self, metric: str, candidate: str | None = None, baseline: str | None = None
    ) -> Difference:
        """The difference on `metric` of `candidate` (default: the verdict's) against `baseline`.

        Args:
            metric: the metric's name.
            candidate: the candidate's name; None for the tuned model the verdict is on.
            baseline: the baseline's name; None for the report's baseline.

        Raises:
            KeyError: the report has no such difference.
        """
        candidate = candidate or self.tuned.name
        base = baseline or (self.baseline.name if self.baseline is not None else None)
        for d in self.differences:
            if d.metric == metric and d.candidate == candidate and d.baseline == base:
                return d
        raise KeyError((metric, candidate, base))

    def __str__(self) -> str:
        from unitune.evaluate._render import render_text

        return render_text(self)
