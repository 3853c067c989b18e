"""Evaluate a fine-tuned model against its base on held-out examples: is the fine-tune worth shipping?

    from unitune.evaluate import evaluate
    report = evaluate(provider, "local:job-1", Dataset.from_jsonl("valid.jsonl"), baseline="smollm2-135m-instruct")
    print(report)            # a metric table (tuned vs base) and the verdict line

For each example the prompt is every message before the last assistant message and the reference is
that message's text. Both models answer the same prompts through `Provider.chat_batch`; each metric
scores every (prediction, reference) pair in [0, 1] and the scores are averaged per model.

Built-in metrics: `exact_match`, `json_valid`, `json_fields` (see their functions). A custom metric
is a `Metric(name, fn)` or any named callable `fn(prediction, reference) -> float`; returning None
means "does not apply to this example" and leaves it out of that metric's mean and count.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from unitune.data._model import ChatExample, PreferenceExample, TextExample
from unitune.errors import ConfigurationError, ProviderError
from unitune.types import ChatResponse, Message, Usage

if TYPE_CHECKING:
    from unitune.data import Dataset
    from unitune.providers.base import Provider

__all__ = [
    "BUILTIN_METRICS",
    "DEFAULT_EPSILON",
    "DEFAULT_METRICS",
    "EvaluationReport",
    "Metric",
    "MetricFn",
    "MetricScore",
    "ModelScores",
    "SampleRow",
    "evaluate",
    "exact_match",
    "json_fields",
    "json_valid",
]

#: A metric function: `(prediction, reference) -> score in [0, 1]`, or None when it does not apply.
MetricFn = Callable[[str, str], float | None]

DEFAULT_METRICS: tuple[str, ...] = ("exact_match", "json_valid", "json_fields")

#: Differences at or below this are ties: a one-example swing on a small validation set is above
#: it, float noise is not.
DEFAULT_EPSILON = 1e-3

#: How many leading examples the report keeps verbatim, so a reader can see what the numbers mean.
SAMPLE_ROWS = 5

_PROMPT_EXCERPT_CHARS = 120

# Reasons an example is left out, as counted in `EvaluationReport.skipped`.
SKIP_NO_ASSISTANT = "no_assistant_message"
SKIP_NO_PROMPT = "no_prompt"
SKIP_NO_TEXT = "no_reference_text"
SKIP_PLAIN_TEXT = "plain_text_example"  # {"text": ...}: no prompt and reply to compare


# -- metrics ------------------------------------------------------------------------------------------


class _NotJson(Exception):
    pass


def _reject_constant(token: str) -> Any:
    # Python's json accepts NaN/Infinity, which no strict JSON consumer does.
    raise _NotJson(token)


def _parse_json(text: str) -> tuple[bool, Any]:
    """(True, value) when `text` is strict JSON, else (False, None)."""
    try:
        return True, json.loads(text, parse_constant=_reject_constant)
    except (ValueError, _NotJson, RecursionError):
        return False, None


def _json_equal(a: Any, b: Any) -> bool:
    """Equality of parsed JSON values that keeps JSON's types apart.

    Plain `==` says `True == 1` and `{"a": True} == {"a": 1}`, which would score a wrong answer as
    right; numbers still compare by value (1 and 1.0 are the same JSON number).
    """
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and bool(a == b)


def exact_match(prediction: str, reference: str) -> float:
    """1.0 when the prediction equals the reference after stripping surrounding whitespace, else 0.0."""
    return 1.0 if prediction.strip() == reference.strip() else 0.0


def json_valid(prediction: str, reference: str) -> float:
    """1.0 when the prediction is strict JSON, else 0.0.

    When the reference is a JSON object or array, the prediction must be one too (either kind): a
    bare string or number would parse, but it is not the structured answer that was asked for.
    Code fences around the JSON make it invalid, on purpose: a caller parsing the answer would fail.
    """
    ok, value = _parse_json(prediction)
    if not ok:
        return 0.0
    ref_ok, ref_value = _parse_json(reference)
    if ref_ok and isinstance(ref_value, (dict, list)):
        return 1.0 if isinstance(value, (dict, list)) else 0.0
    return 1.0


def json_fields(prediction: str, reference: str) -> float | None:
    """The fraction of the reference object's top-level fields that the prediction has, with equal values.

    None (not applicable, the example is left out of this metric) when the reference is not a JSON
    object; 0.0 when the prediction is not a JSON object. Values compare as JSON (`true` is not
    `1`); extra fields in the prediction cost nothing. An empty reference object scores 1.0 for
    any object.
    """
    ref_ok, ref_value = _parse_json(reference)
    if not ref_ok or not isinstance(ref_value, dict):
        return None
    ok, value = _parse_json(prediction)
    if not ok or not isinstance(value, dict):
        return 0.0
    if not ref_value:
        return 1.0
    matched = sum(1 for k, v in ref_value.items() if k in value and _json_equal(value[k], v))
    return matched / len(ref_value)


@dataclass(frozen=True)
class Metric:
    """A named metric: `fn(prediction, reference)` returns a score in [0, 1], or None to skip the example.

    Any named callable works where a metric is expected (its `__name__` becomes the name); wrap a
    lambda or a `functools.partial` in `Metric(name, fn)` to give it a name worth showing.
    """

    name: str
    fn: MetricFn

    def __call__(self, prediction: str, reference: str) -> float | None:
        """Score one prediction against its reference."""
        return self.fn(prediction, reference)

    @classmethod
    def of(cls, spec: str | Metric | MetricFn) -> Metric:
        """A metric from a built-in name, a `Metric`, or a named callable; `ValueError` otherwise."""
        if isinstance(spec, Metric):
            return spec
        if isinstance(spec, str):
            try:
                return BUILTIN_METRICS[spec]
            except KeyError:
                known = ", ".join(BUILTIN_METRICS)
                raise ConfigurationError(
                    f"Unknown metric {spec!r}. Built-in metrics: {known}; or pass Metric(name, fn)."
                ) from None
        if callable(spec):
            name = getattr(spec, "__name__", None)
            if not isinstance(name, str) or not name or name == "<lambda>":
                raise ConfigurationError(
                    f"The metric {spec!r} has no usable name; wrap it as Metric('my_metric', fn)."
                )
            return cls(name, spec)
        raise ConfigurationError(f"Not a metric: {spec!r} (expected a name, a Metric or a callable).")


BUILTIN_METRICS: dict[str, Metric] = {
    "exact_match": Metric("exact_match", exact_match),
    "json_valid": Metric("json_valid", json_valid),
    "json_fields": Metric("json_fields", json_fields),
}


def _score(metric: Metric, prediction: str, reference: str, line: int | None) -> float | None:
    """The metric's score, checked: a score outside [0, 1] would silently skew every mean after it."""
    value = metric(prediction, reference)
    if value is None:
        return None
    if isinstance(value, (bool, int, float)):
        score = float(value)
        if math.isfinite(score) and 0.0 <= score <= 1.0:
            return score
    where = f" on the example at line {line}" if line is not None else ""
    raise ConfigurationError(
        f"Metric {metric.name!r} returned {value!r}{where}; a score must be a number in [0, 1] "
        "(or None when the metric does not apply)."
    )


# -- the report ---------------------------------------------------------------------------------------


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class MetricScore(_Frozen):
    """One metric for one model: the mean score and how many examples it was computed on."""

    mean: float | None = Field(description="Mean score in [0, 1]; None when no example applied.")
    count: int = Field(ge=0, description="Examples the metric applied to (the others returned None).")


class ModelScores(_Frozen):
    """Everything measured for one model: its metrics (in the order asked for) and token usage."""

    model: str
    metrics: dict[str, MetricScore]
    usage: Usage = Field(default_factory=Usage)


class SampleRow(_Frozen):
    """One example shown verbatim: an excerpt of the prompt, the reference and both answers."""

    line: int | None = Field(default=None, description="Where the example came from (line or index).")
    prompt: str = Field(description="The last user message (or last prompt message), shortened.")
    reference: str
    tuned: str
    baseline: str | None = None


class EvaluationReport(_Frozen):
    """The result of `evaluate`: per-model metric means, sample rows, usage, and the verdict.

    `wins` counts the metrics on which the tuned model beats the baseline by more than `epsilon`;
    `compared` the metrics both models could be scored on; `regressions` names those where the
    tuned model is worse by more than `epsilon`. `str(report)` is a small plain-text table.
    """

    tuned: ModelScores
    baseline: ModelScores | None = None
    metrics: list[str] = Field(description="Metric names, in the order asked for.")
    examples: int = Field(ge=0, description="Examples evaluated (after skipping and max_examples).")
    skipped: dict[str, int] = Field(
        default_factory=dict,
        description="Examples left out, by reason: no_assistant_message, no_prompt, no_reference_text.",
    )
    samples: list[SampleRow] = Field(default_factory=list)
    wins: int = Field(default=0, ge=0)
    compared: int = Field(default=0, ge=0)
    regressions: list[str] = Field(default_factory=list)
    epsilon: float = DEFAULT_EPSILON
    verdict: str

    @property
    def skipped_total(self) -> int:
        """All examples left out, whatever the reason."""
        return sum(self.skipped.values())

    @property
    def improved(self) -> bool:
        """True when the verdict is that the tuned model beats the baseline (worth shipping)."""
        return self.baseline is not None and self.wins > 0 and not self.regressions

    def __str__(self) -> str:
        base = self.baseline
        lines = [f"Evaluation on {self.examples} example{'s' if self.examples != 1 else ''}"]
        if self.skipped_total:
            reasons = ", ".join(f"{n} {reason.replace('_', ' ')}" for reason, n in self.skipped.items() if n)
            lines[0] += f" ({self.skipped_total} skipped: {reasons})"
        lines.append(f"tuned: {self.tuned.model}" + (f"   base: {base.model}" if base else ""))

        header = ["metric", "n", "tuned"] + (["base", "delta"] if base else [])
        rows = [header]
        for name in self.metrics:
            t = self.tuned.metrics[name]
            row = [name, str(t.count), _fmt(t.mean)]
            if base is not None:
                b = base.metrics[name]
                delta = t.mean - b.mean if t.mean is not None and b.mean is not None else None
                row += [_fmt(b.mean), "-" if delta is None else f"{delta:+.3f}"]
            rows.append(row)
        tokens = ["tokens", "", f"{self.tuned.usage.total_tokens:,}"]
        if base is not None:
            tokens += [f"{base.usage.total_tokens:,}", ""]
        rows.append(tokens)

        widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
        for row in rows:
            # The name column reads left to right; numbers line up on the right.
            cells = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)]
            lines.append("  ".join(cells).rstrip())
        if self.regressions:
            lines.append(f"worse on: {', '.join(self.regressions)}")
        lines.append(f"verdict: {self.verdict}")
        return "\n".join(lines)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


# -- evaluation ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Item:
    prompt: list[Message]
    reference: str
    line: int | None


def _split_example(example: ChatExample | PreferenceExample | TextExample) -> _Item | str:
    """The prompt and reference of one example, or the reason it cannot be evaluated."""
    if isinstance(example, TextExample):
        return SKIP_PLAIN_TEXT
    if isinstance(example, PreferenceExample):
        # A DPO pair: the conversation is the prompt, the preferred answer the reference.
        prompt, answer = list(example.input), example.preferred
    elif isinstance(example, ChatExample):
        last = next(
            (i for i in range(len(example.messages) - 1, -1, -1) if example.messages[i].role == "assistant"),
            None,
        )
        if last is None:
            return SKIP_NO_ASSISTANT
        prompt, answer = example.messages[:last], example.messages[last]
    else:
        raise ConfigurationError(
            f"evaluate() takes ChatExample or PreferenceExample items, not {type(example).__name__}"
        )
    if not prompt:
        return SKIP_NO_PROMPT
    reference = answer.text
    if not reference.strip():
        # A tool-call-only (or empty) answer has no text to compare a prediction with.
        return SKIP_NO_TEXT
    return _Item(prompt=prompt, reference=reference, line=example.line)


def _excerpt(prompt: Sequence[Message]) -> str:
    message = next((m for m in reversed(prompt) if m.role == "user"), prompt[-1])
    text = " ".join(message.text.split())
    if len(text) > _PROMPT_EXCERPT_CHARS:
        text = text[: _PROMPT_EXCERPT_CHARS - 1].rstrip() + "…"
    return text


class _Tally:
    """Running sums for one model, so no per-example score list has to be kept."""

    def __init__(self, model: str, metrics: Sequence[Metric]) -> None:
        self.model = model
        self.metrics = metrics
        self.sums = dict.fromkeys((m.name for m in metrics), 0.0)
        self.counts = dict.fromkeys((m.name for m in metrics), 0)
        self.prompt_tokens = 0
        self.completion_tokens = 0

    def add(self, prediction: str, item: _Item, usage: Usage) -> None:
        self.prompt_tokens += usage.prompt_tokens
        self.completion_tokens += usage.completion_tokens
        for metric in self.metrics:
            score = _score(metric, prediction, item.reference, item.line)
            if score is not None:
                self.sums[metric.name] += score
                self.counts[metric.name] += 1

    def result(self) -> ModelScores:
        return ModelScores(
            model=self.model,
            metrics={
                name: MetricScore(mean=self.sums[name] / n if n else None, count=n)
                for name, n in self.counts.items()
            },
            usage=Usage(prompt_tokens=self.prompt_tokens, completion_tokens=self.completion_tokens),
        )


#: Runs one batch's request: the client passes its retry policy here.
BatchRunner = Callable[[Callable[[], list[ChatResponse]]], list[ChatResponse]]


def _answers(
    provider: Provider,
    model: str,
    batch: list[_Item],
    params: Mapping[str, Any],
    run: BatchRunner | None = None,
) -> list[ChatResponse]:
    conversations = [list(item.prompt) for item in batch]

    def ask() -> list[ChatResponse]:
        return provider.chat_batch(model, conversations, **params)

    responses = run(ask) if run is not None else ask()
    if len(responses) != len(conversations):
        # Zipping a short list would silently score answers against the wrong references.
        raise ProviderError(
            f"chat_batch returned {len(responses)} responses for {len(conversations)} conversations",
            provider=provider.name,
        )
    return responses


def _verdict(
    tuned: ModelScores, baseline: ModelScores | None, epsilon: float
) -> tuple[int, int, list[str], str]:
    """(wins, compared, regressions, verdict line)."""
    if baseline is None:
        return 0, 0, [], "no baseline — nothing to compare (pass baseline=<base model> to compare)"
    wins, compared, regressions = 0, 0, []
    for name, t in tuned.metrics.items():
        b = baseline.metrics[name]
        if t.mean is None or b.mean is None:
            continue  # a metric no example applied to says nothing either way
        compared += 1
        if t.mean - b.mean > epsilon:
            wins += 1
        elif b.mean - t.mean > epsilon:
            regressions.append(name)
    if compared == 0:
        return 0, 0, [], "nothing to compare — no example could be scored"
    if wins > 0 and not regressions:
        return wins, compared, regressions, f"tuned beats base on {wins} of {compared} metrics"
    return wins, compared, regressions, "no improvement — don't ship this fine-tune"


def _check_settings(
    batch_size: object, max_examples: object, chat_params: object, on_progress: object
) -> None:
    """Refuse bad plain arguments before any example is read or any model is asked."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigurationError(f"batch_size must be a whole number, at least 1, not {batch_size!r}")
    if max_examples is not None and (
        isinstance(max_examples, bool) or not isinstance(max_examples, int) or max_examples < 1
    ):
        raise ConfigurationError(
            f"max_examples must be a whole number, at least 1 (or None for all), not {max_examples!r}"
        )
    if chat_params is not None and not isinstance(chat_params, Mapping):
        raise ConfigurationError(
            f"chat_params must be a dict of chat settings, not a {type(chat_params).__name__}"
        )
    if on_progress is not None and not callable(on_progress):
        raise ConfigurationError(
            f"on_progress must be a function (done, total) -> None, not a {type(on_progress).__name__}"
        )


def _metric_specs(
    metrics: Sequence[str | Metric | MetricFn] | str | Metric | MetricFn,
) -> Sequence[str | Metric | MetricFn]:
    """`metrics` as a sequence: a lone name, `Metric` or function is a sequence of one.

    A lone name must not be taken as the sequence of its letters, hence the wrapping here.
    """
    if metrics is None or (not isinstance(metrics, (str, Sequence, Metric)) and not callable(metrics)):
        raise ConfigurationError(
            f"metrics must be metric names, Metric objects or functions, not {metrics!r}"
        )
    if isinstance(metrics, Metric) or (callable(metrics) and not isinstance(metrics, str)):
        return (metrics,)
    if isinstance(metrics, str):
        return (metrics,)  # a lone name, not a sequence of one-letter names
    return metrics


def _resolve_metrics(specs: Sequence[str | Metric | MetricFn]) -> list[Metric]:
    """The metrics to score with, at least one, with distinct names (a report keys them by name)."""
    resolved = [Metric.of(m) for m in specs]
    if not resolved:
        raise ConfigurationError("metrics is empty; name at least one metric to evaluate with")
    names = [m.name for m in resolved]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigurationError(
            f"Two metrics share the name(s) {', '.join(duplicates)}; give each a distinct name."
        )
    return resolved


def _read_items(
    data: Dataset | Iterable[ChatExample | PreferenceExample], max_examples: int | None
) -> tuple[list[_Item], dict[str, int]]:
    """The usable examples (at most `max_examples`) and how many were skipped, by reason.

    Read into memory up front: progress needs the total, and a validation set is small.
    """
    items: list[_Item] = []
    skipped: dict[str, int] = {}
    for example in data:
        split = _split_example(example)
        if isinstance(split, str):
            skipped[split] = skipped.get(split, 0) + 1
            continue
        items.append(split)
        if max_examples is not None and len(items) >= max_examples:
            break  # stop reading: a large file need not be parsed to its end
    return items, skipped


def _answer_all(
    provider: Provider,
    tallies: list[_Tally],
    items: list[_Item],
    params: Mapping[str, Any],
    batch_size: int,
    on_progress: Callable[[int, int], None] | None,
    run: BatchRunner | None,
) -> list[SampleRow]:
    """Ask every model (tuned first, then the baseline) about every item, batch by batch.

    Each answer is scored into its model's tally as its batch comes back; progress is reported once
    before the first call and after each batch. Returns the first `SAMPLE_ROWS` rows verbatim.
    """
    samples: list[SampleRow] = []
    total = len(items)
    if on_progress is not None:
        on_progress(0, total)
    for start in range(0, total, batch_size):
        batch = items[start : start + batch_size]
        per_model = [_answers(provider, tally.model, batch, params, run) for tally in tallies]
        for tally, responses in zip(tallies, per_model, strict=True):
            for item, response in zip(batch, responses, strict=True):
                tally.add(response.content, item, response.usage)
        _keep_samples(samples, batch, per_model)
        if on_progress is not None:
            on_progress(start + len(batch), total)
    return samples


def _keep_samples(samples: list[SampleRow], batch: list[_Item], per_model: list[list[ChatResponse]]) -> None:
    """Append this batch's rows to `samples` until it holds `SAMPLE_ROWS`.

    `per_model` is the tuned model's answers, then the baseline's when there is one.
    """
    for i, item in enumerate(batch):
        if len(samples) >= SAMPLE_ROWS:
            break
        samples.append(
            SampleRow(
                line=item.line,
                prompt=_excerpt(item.prompt),
                reference=item.reference,
                tuned=per_model[0][i].content,
                baseline=per_model[1][i].content if len(per_model) > 1 else None,
            )
        )


def evaluate(
    provider: Provider,
    model: str,
    data: Dataset | Iterable[ChatExample | PreferenceExample],
    *,
    baseline: str | None = None,
    metrics: Sequence[str | Metric | MetricFn] = DEFAULT_METRICS,
    max_examples: int | None = None,
    batch_size: int = 8,
    chat_params: Mapping[str, Any] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    epsilon: float = DEFAULT_EPSILON,
    run: BatchRunner | None = None,
) -> EvaluationReport:
    """Score `model` (and `baseline`, if given) on `data` and say whether the fine-tune is an improvement.

    Args:
        provider: answers the prompts, through `provider.chat_batch` (its errors propagate as they are;
            retries are the caller's business: `run(ask)` runs each batch's request, and
            `FineTuneClient.evaluate` passes its retry policy there).
        model: the tuned model id.
        data: a `Dataset` or any iterable of `ChatExample` (a `PreferenceExample` is evaluated with its
            `preferred` answer as the reference). Examples with no assistant message, no message
            before it, or no text in it are skipped and counted in `report.skipped`.
        baseline: the model to compare against (usually the base model); None scores `model` alone.
        metrics: built-in names (`exact_match`, `json_valid`, `json_fields`), `Metric`s or named callables.
        max_examples: evaluate at most this many usable examples (the first ones); None for all.
        batch_size: conversations per `chat_batch` call.
        chat_params: passed to every chat call (e.g. `{"temperature": 0, "max_tokens": 256}`).
        on_progress: called as `on_progress(done, total)` with examples answered by every model:
            once with `(0, total)` before the first call, then after each batch.
        epsilon: differences in a metric mean at or below this count as ties.

    The usable examples are read into memory first (the total is needed for progress); a validation
    set is small, and each example is read once.

    Raises:
        ValueError: an unknown metric name, two metrics with one name, a bad `batch_size`/`max_examples`,
            or a metric score outside [0, 1].
    """
    # The checks run in this order so that, of several bad arguments, the same one is reported.
    _check_settings(batch_size, max_examples, chat_params, on_progress)
    specs = _metric_specs(metrics)
    if not isinstance(epsilon, (int, float)) or isinstance(epsilon, bool) or epsilon < 0:
        raise ConfigurationError(f"epsilon must not be negative, not {epsilon}")
    resolved = _resolve_metrics(specs)
    names = [m.name for m in resolved]

    items, skipped = _read_items(data, max_examples)
    tallies = [_Tally(model, resolved)]
    if baseline is not None:
        tallies.append(_Tally(baseline, resolved))
    samples = _answer_all(provider, tallies, items, dict(chat_params or {}), batch_size, on_progress, run)

    tuned_scores = tallies[0].result()
    base_scores = tallies[1].result() if baseline is not None else None
    wins, compared, regressions, verdict = _verdict(tuned_scores, base_scores, epsilon)
    return EvaluationReport(
        tuned=tuned_scores,
        baseline=base_scores,
        metrics=names,
        examples=len(items),
        skipped=skipped,
        samples=samples,
        wins=wins,
        compared=compared,
        regressions=regressions,
        epsilon=epsilon,
        verdict=verdict,
    )
