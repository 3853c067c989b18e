"""Evaluate to decide: is the fine-tune better than the base model and than few-shot prompting?

    from unitune import FineTuneClient
    from unitune.evaluate import Candidate

    client = FineTuneClient("together")
    report = client.evaluate(
        "valid.jsonl",
        candidates=["base", "base:few-shot=5", job],        # a Job, a spec string or a Candidate
        train_data="train.jsonl",                           # where the few-shot examples come from
        output_dir="report/",                               # answers saved as they arrive; resumable
    )
    print(report)              # candidates × metrics with 95% intervals, costs, and the verdict
    report.verdict.decision    # "ship" | "abandon" | "inconclusive"

For each example the prompt is every message before the last assistant message and the reference is
that message's text. Every candidate answers the same prompts through its own provider (with that
provider's retries); each metric scores every answer, and paired bootstrap intervals and exact
McNemar tests compare each tuned candidate with each baseline. `evaluate(provider, model, data,
baseline=...)` below is the one-provider shorthand.

Built-in metrics: `exact_match`, `json_valid`, `json_fields`, `field:<name>` / `field_accuracy`,
`macro_f1` / `macro_f1:<field>`, and with `unitune[eval]` `chrf`, `bleu`, `rouge_l`. A custom
metric is a `Metric(name, fn)` or any named callable `fn(prediction, reference) -> float | None`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from unitune._clock import SystemClock
from unitune.errors import ConfigurationError
from unitune.evaluate._candidates import Candidate
from unitune.evaluate._judge import DEFAULT_RUBRIC, Judge
from unitune.evaluate._metrics import (
    BUILTIN_METRICS,
    Metric,
    MetricFn,
    exact_match,
    json_fields,
    json_valid,
)
from unitune.evaluate._report import (
    DEFAULT_EPSILON,
    BreakEven,
    CandidateResult,
    Difference,
    EvaluationReport,
    Flip,
    HumanResult,
    JudgeRow,
    MetricScore,
    PairwiseResult,
    SampleRow,
    Verdict,
)

if TYPE_CHECKING:
    from unitune.data import Dataset
    from unitune.data._model import ChatExample, PreferenceExample
    from unitune.providers.base import Provider

__all__ = [
    "BUILTIN_METRICS",
    "DEFAULT_EPSILON",
    "DEFAULT_RUBRIC",
    "BreakEven",
    "Candidate",
    "CandidateResult",
    "Difference",
    "EvaluationReport",
    "Flip",
    "HumanResult",
    "Judge",
    "JudgeRow",
    "Metric",
    "MetricFn",
    "MetricScore",
    "PairwiseResult",
    "SampleRow",
    "Verdict",
    "check_settings",
    "evaluate",
    "exact_match",
    "json_fields",
    "json_valid",
    "render_html",
    "render_markdown",
    "write_report",
]

#: Runs one request under a retry policy: `FineTuneClient.evaluate` passes its own.
BatchRunner = Callable[[Callable[[], Any]], Any]


def render_markdown(report: EvaluationReport) -> str:
    """The report as GitHub-flavoured Markdown."""
    from unitune.evaluate._render import render_markdown as render

    return render(report)


def render_html(report: EvaluationReport) -> str:
    """The report as one self-contained HTML page (tables, bar charts, cost vs quality)."""
    from unitune.evaluate._render import render_html as render

    return render(report)


def write_report(report: EvaluationReport, directory: str | Any) -> dict[str, Any]:
    """Write report.json, report.md and report.html into `directory`; returns their paths by kind.

    Args:
        report: the evaluation report.
        directory: the folder to write into (a path or a string); it is created if missing.
    """
    from pathlib import Path

    from unitune.evaluate._render import write_report as write

    return dict(write(report, Path(directory)))


def _whole(value: object, name: str, *, minimum: int = 1, allow_none: bool = False) -> None:
    if allow_none and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        tail = " (or None for all)" if allow_none else ""
        raise ConfigurationError(f"{name} must be a whole number, at least {minimum}{tail}, not {value!r}.")


def check_settings(
    *,
    batch_size: object = 8,
    max_examples: object = None,
    chat_params: object = None,
    on_progress: object = None,
    epsilon: object = DEFAULT_EPSILON,
    concurrency: object = 8,
    confidence: object = 0.95,
    seed: object = 0,
) -> None:
    """Refuse bad plain arguments before any example is read or any model is asked.

    Args:
        batch_size: how many examples are sent per batch: a whole number, at least 1.
        max_examples: at most this many examples: a whole number, at least 1, or None for all.
        chat_params: the chat settings sent with every request: a mapping, or None.
        on_progress: a function called with (done, total), or None.
        epsilon: the difference that counts as nothing: a number, not negative.
        concurrency: how many requests run at once: a whole number, at least 1.
        confidence: the intervals' confidence level: a float in [0.5, 1).
        seed: the bootstrap's seed: a whole number, at least 0.

    Raises:
        ConfigurationError: an argument is of the wrong type or out of range.
    """
    _whole(batch_size, "batch_size")
    _whole(max_examples, "max_examples", allow_none=True)
    _whole(concurrency, "concurrency")
    _whole(seed, "seed", minimum=0)
    if chat_params is not None and not isinstance(chat_params, Mapping):
        raise ConfigurationError(
            f"chat_params must be a dict of chat settings, not a {type(chat_params).__name__}."
        )
    if on_progress is not None and not callable(on_progress):
        raise ConfigurationError(
            f"on_progress must be a function (done, total) -> None, not a {type(on_progress).__name__}."
        )
    if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)) or epsilon < 0:
        raise ConfigurationError(f"epsilon must be a number, not negative, not {epsilon!r}.")
    if isinstance(confidence, bool) or not isinstance(confidence, float) or not 0.5 <= confidence < 1:
        raise ConfigurationError(f"confidence must be a level such as 0.95, not {confidence!r}.")


def metric_specs(metrics: object) -> list[str | Metric | MetricFn] | None:
    """`metrics` as a list (a lone name, `Metric` or function is a list of one), or None for defaults."""
    if metrics is None:
        return None
    if isinstance(metrics, (str, Metric)) or callable(metrics):
        return [metrics]  # a lone name, not a sequence of one-letter names
    if isinstance(metrics, Sequence):
        return list(metrics)
    raise ConfigurationError(f"metrics must be metric names, Metric objects or functions, not {metrics!r}.")


def evaluate(
    provider: Provider,
    model: str,
    data: Dataset | Iterable[ChatExample | PreferenceExample],
    *,
    baseline: str | None = None,
    metrics: Sequence[str | Metric | MetricFn] | None = None,
    primary_metric: str | None = None,
    max_examples: int | None = None,
    batch_size: int = 8,
    concurrency: int = 8,
    chat_params: Mapping[str, Any] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    epsilon: float = DEFAULT_EPSILON,
    confidence: float = 0.95,
    seed: int = 0,
    run: BatchRunner | None = None,
) -> EvaluationReport:
    """Score `model` (and `baseline`, if given) on `data` with one provider, and decide.

    The one-provider shorthand of `FineTuneClient.evaluate` (which compares any number of
    candidates on any providers, few-shot baselines included). Examples with no assistant message,
    no message before it, or no text in it are skipped and counted in `report.skipped`.

    Args:
        provider: the provider both models are asked through.
        model: the tuned model.
        data: the held-out chat examples; each one's last assistant message is the reference.
        baseline: the model `model` is compared with.
        metrics: metric names, `Metric`s or scoring functions; default from the data's kind.
        primary_metric: the metric the verdict rests on; default from the data's kind.
        max_examples: evaluate on at most this many examples.
        batch_size: how many examples are sent per batch.
        concurrency: how many requests run at once.
        chat_params: sent with every request (temperature, max_tokens, ...).
        on_progress: called with (done, total) as answers arrive.
        epsilon: a measured difference at most this large on the primary metric means the fine-tune
            adds nothing (abandon).
        confidence: the confidence level of the intervals.
        seed: seeds the bootstrap intervals.
        run: runs each request, `run(fn)` (the client passes its retry policy); None calls it once.

    Returns:
        The report: each model's metrics with intervals, the difference, and the verdict.

    Raises:
        ConfigurationError: bad settings, an unknown metric, no usable example, or a metric
            score outside [0, 1].
    """
    from unitune.evaluate._evaluate import Resolved, read_items, run_evaluation

    check_settings(batch_size=batch_size, max_examples=max_examples, chat_params=chat_params,
                   on_progress=on_progress, epsilon=epsilon, concurrency=concurrency,
                   confidence=confidence, seed=seed)  # fmt: skip
    specs = metric_specs(metrics)
    items, skipped = read_items(data, max_examples)
    runner: BatchRunner = run if run is not None else (lambda fn: fn())
    params = dict(chat_params or {})
    candidates = [Resolved(name="tuned" if baseline is not None else model, slug="tuned", provider=provider,
                           model=model, role="tuned", run=runner, params=params)]  # fmt: skip
    if baseline is not None:
        candidates.append(Resolved(name="base", slug="base", provider=provider, model=baseline, role="baseline",
                                   run=runner, params=params))  # fmt: skip
    return run_evaluation(
        items, skipped, candidates, clock=getattr(provider, "clock", None) or SystemClock(), metrics=specs,
        primary_metric=primary_metric, concurrency=concurrency, batch_size=batch_size, on_progress=on_progress,
        seed=seed, confidence=confidence, epsilon=epsilon,
    )  # fmt: skip
