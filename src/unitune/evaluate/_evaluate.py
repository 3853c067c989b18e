"""The evaluation itself: ask the candidates, score the answers, compare, decide, price.

`run_evaluation` takes resolved candidates (each with its provider and retry policy: the client
resolves them, see `FineTuneClient.evaluate`) and the examples, and returns an `EvaluationReport`.
With a report directory it writes everything as it goes (examples, answers, the judge's verdicts)
and the report at the end, and a rerun resumes from what is there.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from unitune._log import get_logger
from unitune.data._model import ChatExample, PreferenceExample, TextExample
from unitune.errors import ConfigurationError
from unitune.evaluate import _stats
from unitune.evaluate._candidates import Item, build_prompt, draw_shots
from unitune.evaluate._judge import Judge
from unitune.evaluate._metrics import (
    SKIP_NO_ASSISTANT,
    SKIP_NO_PROMPT,
    SKIP_NO_TEXT,
    SKIP_PLAIN_TEXT,
    Metric,
    MetricFn,
    default_metrics,
    default_primary,
    resolve_metrics,
    score_checked,
)
from unitune.evaluate._report import (
    DEFAULT_EPSILON,
    BreakEven,
    CandidateResult,
    Difference,
    EvaluationReport,
    Flip,
    MetricScore,
    Role,
    SampleRow,
)
from unitune.evaluate._run import Answer, AnswerStore, Asker, Run, Runner
from unitune.evaluate._verdict import decide
from unitune.types import Message, Usage

if TYPE_CHECKING:
    from unitune._clock import Clock
    from unitune.catalog._schema import InferencePrice
    from unitune.providers.base import Provider

__all__ = ["Resolved", "read_items", "run_evaluation"]

log = get_logger("unitune.evaluate")

#: Examples the report keeps verbatim with every candidate's answer.
SAMPLE_ROWS = 8
#: Flips listed per metric; the counts are always complete.
MAX_FLIPS = 200
_EXCERPT = 160


@dataclass
class Resolved:
    """A candidate ready to ask: its label, provider, model, prompts' shape, retry policy and prices."""

    name: str
    slug: str
    provider: Provider
    model: str
    role: Role
    run: Run
    few_shot: int = 0
    system: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    price: InferencePrice | None = None
    price_note: str = ""
    training_usd: float | None = None


@dataclass
class JudgeSetup:
    """A judge with the provider and retry policy its calls go through."""

    judge: Judge
    provider: Provider
    run: Run

    @property
    def label(self) -> str:
        return f"{self.provider.name}:{self.judge.model}"


# -- reading the examples -----------------------------------------------------------------------------


def _split(example: ChatExample | PreferenceExample | TextExample, index: int) -> Item | str:
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
        prompt, answer = list(example.messages[:last]), example.messages[last]
    else:
        raise ConfigurationError(
            f"evaluate() takes chat or preference examples, not {type(example).__name__}.",
            fix="Pass a Dataset or a JSONL path of chat examples.",
        )
    if not any(m.role != "system" for m in prompt):
        return SKIP_NO_PROMPT
    reference = answer.text
    if not reference.strip():
        # A tool-call-only (or empty) answer has no text to compare a prediction with.
        return SKIP_NO_TEXT
    return Item(index=index, prompt=prompt, reference=reference, line=example.line)


def read_items(
    data: Iterable[ChatExample | PreferenceExample | TextExample], max_examples: int | None = None
) -> tuple[list[Item], dict[str, int]]:
    """The usable examples (at most `max_examples`) and how many were skipped, by reason."""
    items: list[Item] = []
    skipped: dict[str, int] = {}
    for example in data:
        split = _split(example, len(items))
        if isinstance(split, str):
            skipped[split] = skipped.get(split, 0) + 1
            continue
        items.append(split)
        if max_examples is not None and len(items) >= max_examples:
            break  # stop reading: a large file need not be parsed to its end
    return items, skipped


def _excerpt(prompt: Sequence[Message]) -> str:
    message = next((m for m in reversed(prompt) if m.role == "user"), prompt[-1])
    text = " ".join(message.text.split())
    return text if len(text) <= _EXCERPT else text[: _EXCERPT - 1].rstrip() + "…"


# -- the report directory -------------------------------------------------------------------------------


def _write_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` whole or not at all (a new name, then a rename).

    The temporary name is made here rather than by mkstemp, whose 0600 mode would stay on the file:
    the report's files follow the umask like any other.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        with tmp.open("x", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _write_examples(directory: Path, items: Sequence[Item]) -> None:
    lines = (
        json.dumps(
            {
                "index": it.index,
                "line": it.line,
                "prompt": [{"role": m.role, "content": m.text} for m in it.prompt],
                "reference": it.reference,
            },
            ensure_ascii=False,
        )
        for it in items
    )
    _write_atomic(directory / "examples.jsonl", "".join(line + "\n" for line in lines))


def _prepare_directory(directory: Path) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = directory / ".unitune-write-check"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise ConfigurationError(
            f"Cannot write the report directory {directory}: {e.strerror or e}.",
            fix="Pass a directory you can write to (-o / output_dir=).",
        ) from None


# -- scoring ------------------------------------------------------------------------------------------


@dataclass
class _Scored:
    """One candidate's per-example scores: `scores[metric][i]` is None where it did not apply."""

    resolved: Resolved
    answers: dict[int, Answer]
    scores: dict[str, list[float | None]]


def _score_all(
    resolved: Resolved, answers: dict[int, Answer], items: Sequence[Item], metrics: Sequence[Metric],
    errors: dict[str, int],
) -> _Scored:  # fmt: skip
    scores: dict[str, list[float | None]] = {m.name: [None] * len(items) for m in metrics}
    for item in items:
        answer = answers.get(item.index)
        if answer is None or answer.content is None:
            continue
        for metric in metrics:
            try:
                value = score_checked(metric, answer.content, item.reference, item.line)
            except ConfigurationError:
                raise  # a score outside [0, 1] is a bug in the metric: say so, at once
            except Exception as e:  # a user's metric that raises is a counted skip, not a lost run
                errors[metric.name] = errors.get(metric.name, 0) + 1
                if errors[metric.name] == 1:
                    log.warning("metric %s raised on the example at line %s: %r", metric.name, item.line, e)
                continue
            scores[metric.name][item.index] = value
    return _Scored(resolved, answers, scores)


def _value(metric: Metric, scored: _Scored, items: Sequence[Item], indices: Iterable[int]) -> float | None:
    """The metric's value for one candidate over `indices` (repeats allowed: a bootstrap draw)."""
    column = scored.scores[metric.name]
    chosen = [i for i in indices if column[i] is not None]
    if not chosen:
        return None
    if metric.aggregate is None:
        return sum(column[i] for i in chosen) / len(chosen)  # type: ignore[misc]
    predictions = [scored.answers[i].content or "" for i in chosen]
    references = [items[i].reference for i in chosen]
    return metric.value(predictions, references, [column[i] or 0.0 for i in chosen])


def _metric_score(
    metric: Metric, scored: _Scored, items: Sequence[Item], confidence: float, seed: int
) -> MetricScore:
    column = scored.scores[metric.name]
    present = [s for s in column if s is not None]
    if not present:
        return MetricScore(mean=None, count=0)
    if metric.aggregate is None:
        interval = _stats.mean_interval(present, confidence=confidence, seed=seed)
    else:
        applicable = [i for i, s in enumerate(column) if s is not None]
        interval = _stats.bootstrap(
            len(applicable),
            lambda drawn: _value(metric, scored, items, (applicable[j] for j in drawn)),
            confidence=confidence, seed=seed,
        )  # fmt: skip
    assert interval is not None
    return MetricScore(mean=interval.estimate, count=len(present), low=interval.low, high=interval.high)


def _difference(
    metric: Metric, a: _Scored, b: _Scored, items: Sequence[Item], confidence: float, seed: int
) -> Difference | None:
    """`a` − `b` on `metric`, paired on the examples both were scored on."""
    col_a, col_b = a.scores[metric.name], b.scores[metric.name]
    paired = [i for i in range(len(items)) if col_a[i] is not None and col_b[i] is not None]
    if not paired:
        return None
    if metric.aggregate is None:
        interval, n = _stats.paired_mean_difference(
            [col_a[i] for i in paired], [col_b[i] for i in paired], confidence=confidence, seed=seed
        )
    else:

        def diff(drawn: Sequence[int]) -> float | None:
            chosen = [paired[j] for j in drawn]
            va, vb = _value(metric, a, items, chosen), _value(metric, b, items, chosen)
            return None if va is None or vb is None else va - vb

        interval, n = _stats.bootstrap(len(paired), diff, confidence=confidence, seed=seed), len(paired)
    if interval is None:
        return None
    better = worse = None
    p_value = None
    if metric.binary:
        better = sum(1 for i in paired if (col_a[i] or 0) > 0.5 >= (col_b[i] or 0))
        worse = sum(1 for i in paired if (col_b[i] or 0) > 0.5 >= (col_a[i] or 0))
        p_value = _stats.mcnemar_exact(better, worse)
    return Difference(
        candidate=a.resolved.name, baseline=b.resolved.name, metric=metric.name, estimate=interval.estimate,
        low=interval.low, high=interval.high, n=n, p_value=p_value, better=better, worse=worse,
    )  # fmt: skip


def _flips(metric: Metric, a: _Scored, b: _Scored, items: Sequence[Item]) -> list[Flip]:
    out: list[Flip] = []
    col_a, col_b = a.scores[metric.name], b.scores[metric.name]
    for item in items:
        sa, sb = col_a[item.index], col_b[item.index]
        if sa is None or sb is None or (sa > 0.5) == (sb > 0.5):
            continue
        out.append(
            Flip(
                index=item.index, line=item.line, metric=metric.name, direction="fixed" if sa > 0.5 else "broken",
                prompt=_excerpt(item.prompt), reference=item.reference,
                candidate_answer=a.answers[item.index].content or "", baseline_answer=b.answers[item.index].content or "",
            )
        )  # fmt: skip
        if len(out) >= MAX_FLIPS:
            break
    return out


# -- money --------------------------------------------------------------------------------------------


def _cost_per_1k(price: InferencePrice | None, prompt: float, completion: float) -> float | None:
    if price is None:
        return None
    return round(1000 * (prompt * price.input_per_million + completion * price.output_per_million) / 1e6, 6)


def _candidate_result(
    scored: _Scored, metrics: Sequence[Metric], items: Sequence[Item], confidence: float, seed: int
) -> CandidateResult:
    r = scored.resolved
    good = [a for a in scored.answers.values() if a.content is not None]
    n = len(good)
    prompt = sum(a.prompt_tokens for a in good)
    completion = sum(a.completion_tokens for a in good)
    latencies = [a.latency_ms for a in good]
    p50, p95 = _stats.percentile(latencies, 0.5), _stats.percentile(latencies, 0.95)
    mean_prompt = prompt / n if n else 0.0
    mean_completion = completion / n if n else 0.0
    return CandidateResult(
        name=r.name, slug=r.slug, provider=r.provider.name, model=r.model, role=r.role, few_shot=r.few_shot,
        system=r.system,
        metrics={m.name: _metric_score(m, scored, items, confidence, seed) for m in metrics},
        answered=n, failed=len(items) - n, usage=Usage(prompt_tokens=prompt, completion_tokens=completion),
        latency_p50_ms=None if p50 is None else round(p50, 1), latency_p95_ms=None if p95 is None else round(p95, 1),
        mean_prompt_tokens=round(mean_prompt, 2), mean_completion_tokens=round(mean_completion, 2),
        cost_per_1k_requests_usd=_cost_per_1k(r.price, mean_prompt, mean_completion) if n else None,
        price_note=r.price_note, training_usd=r.training_usd,
    )  # fmt: skip


def break_even(candidate: CandidateResult, baseline: CandidateResult) -> BreakEven:
    """When training `candidate` pays for itself against answering with `baseline` instead."""
    saved = round(baseline.mean_prompt_tokens - candidate.mean_prompt_tokens, 2)
    a, b = candidate.cost_per_1k_requests_usd, baseline.cost_per_1k_requests_usd
    training = candidate.training_usd
    saving = None if a is None or b is None else round(b - a, 6)
    requests: float | None = None
    if saved == 0:
        tokens = f"{candidate.name} sends as many prompt tokens per request"
    else:
        more = "fewer" if saved > 0 else "more"
        tokens = f"{candidate.name} sends {abs(saved):,.0f} prompt tokens {more} per request"
    if saving is None:
        note = f"{tokens}; no inference price for both in the catalog, so no break-even"
    elif training is None:
        change = f"saves {saving:.4f}" if saving >= 0 else f"costs {-saving:.4f} more"
        note = f"{tokens}; {change} USD per 1,000 requests; training cost unknown, so no break-even"
    elif training == 0 and saving >= 0:
        requests = 0.0
        note = f"{tokens}; training cost nothing, so it pays off from the first request"
    elif saving <= 0:
        per = "the same" if saving == 0 else f"{-saving:.4f} USD more"
        note = (f"{tokens}; never pays off against {baseline.name}: it costs {per} per 1,000 requests, "
                f"after {training:,.2f} USD of training")  # fmt: skip
    else:
        requests = training / (saving / 1000)
        note = (f"{tokens}; pays off after {requests:,.0f} requests ({training:,.2f} USD of training, "
                f"saving {saving:.4f} USD per 1,000)")  # fmt: skip
    return BreakEven(
        candidate=candidate.name, baseline=baseline.name, training_usd=training,
        saving_per_1k_requests_usd=saving, requests=requests, prompt_tokens_saved=saved, note=note,
    )  # fmt: skip


# -- the whole run --------------------------------------------------------------------------------------


def _askers(
    candidates: Sequence[Resolved], items: list[Item], pool: Sequence[Item], directory: Path | None, seed: int
) -> list[Asker]:
    askers = []
    for c in candidates:
        shots = draw_shots(pool, c.few_shot, items, seed)
        prompts = {it.index: build_prompt(it, shots, c.system) for it in items}
        askers.append(
            Asker(slug=c.slug, provider=c.provider, model=c.model, params=dict(c.params), run=c.run,
                  prompts=prompts, store=AnswerStore(directory, c.slug))
        )  # fmt: skip
    return askers


def _stored(asker: Asker) -> dict[int, Answer]:
    return asker.store.load({i: asker.key(i) for i in asker.prompts})


def run_evaluation(
    items: list[Item],
    skipped: dict[str, int],
    candidates: Sequence[Resolved],
    *,
    clock: Clock,
    pool: Sequence[Item] = (),
    metrics: Sequence[str | Metric | MetricFn] | None = None,
    primary_metric: str | None = None,
    judge: JudgeSetup | None = None,
    output_dir: Path | None = None,
    concurrency: int = 8,
    batch_size: int = 8,
    on_progress: Callable[[int, int], None] | None = None,
    seed: int = 0,
    confidence: float = 0.95,
    epsilon: float = DEFAULT_EPSILON,
) -> EvaluationReport:
    """Ask, score, compare and decide; see the module docstring."""
    if not items:
        reasons = ", ".join(f"{n} {r.replace('_', ' ')}" for r, n in skipped.items()) or "the data is empty"
        raise ConfigurationError(
            f"No example can be evaluated ({reasons}).",
            fix="Pass chat examples that end with an assistant answer (the reference).",
        )
    references = [it.reference for it in items]
    resolved_metrics = resolve_metrics(
        list(metrics) if metrics is not None else default_metrics(references), references
    )
    names = [m.name for m in resolved_metrics]
    primary = primary_metric or default_primary(references, names)
    if primary not in names:
        raise ConfigurationError(
            f"The primary metric {primary!r} is not among the metrics ({', '.join(names)}).",
            fix="Name one of them, or add it to the metrics.",
        )
    if output_dir is not None:
        _prepare_directory(output_dir)
        _write_examples(output_dir, items)
    askers = _askers(candidates, items, pool, output_dir, seed)
    answers = {a.slug: _stored(a) for a in askers}
    total = len(items) * len(askers)
    done = sum(len(v) for v in answers.values())
    progress = _Progress(on_progress, total, done)
    Runner(askers, clock=clock, concurrency=concurrency, batch_size=batch_size,
           on_answer=lambda _a, _x: progress.step()).run(answers)  # fmt: skip

    errors: dict[str, int] = {}
    scored = [_score_all(c, answers[c.slug], items, resolved_metrics, errors) for c in candidates]
    results = [_candidate_result(s, resolved_metrics, items, confidence, seed) for s in scored]
    by_name = {s.resolved.name: s for s in scored}
    differences = [
        d
        for t in scored if t.resolved.role == "tuned"
        for b in scored if b.resolved.role == "baseline"
        for m in resolved_metrics
        if (d := _difference(m, t, b, items, confidence, seed)) is not None
    ]  # fmt: skip
    verdict = decide(results, differences, primary, epsilon=epsilon, n=len(items), confidence=confidence)
    flips: list[Flip] = []
    report_extra: dict[str, Any] = {}
    if verdict.candidate is not None and verdict.baseline is not None:
        a, b = by_name[verdict.candidate], by_name[verdict.baseline]
        for m in resolved_metrics:
            if m.binary:
                flips += _flips(m, a, b, items)
        tuned_result = next(r for r in results if r.name == a.resolved.name)
        # Against every baseline: the few-shot one's long prompts are where a fine-tune saves most.
        report_extra["break_even"] = [break_even(tuned_result, r) for r in results if r.role == "baseline"]
        if judge is not None:
            from unitune.evaluate._judging import run_judge

            report_extra["judge"] = [run_judge(judge, a, b, items, output_dir, clock=clock, concurrency=concurrency,
                                               confidence=confidence)]  # fmt: skip
    if output_dir is not None and verdict.candidate is not None and verdict.baseline is not None:
        human = _human(output_dir, verdict.candidate, verdict.baseline, confidence)
        if human is not None:
            report_extra["human"] = human
    report = EvaluationReport(
        examples=len(items), skipped=skipped, metrics=names, primary_metric=primary, candidates=results,
        differences=differences, flips=flips, metric_errors=errors, samples=_samples(items, scored),
        confidence=confidence, epsilon=epsilon, seed=seed, verdict=verdict, **report_extra,
    )  # fmt: skip
    if output_dir is not None:
        from unitune.evaluate._render import write_report

        write_report(report, output_dir)
    return report


def _human(directory: Path, a: str, b: str, confidence: float) -> Any:
    """The human ratings of `a` against `b` saved by `unitune review`, if any."""
    if not (directory / "ratings.jsonl").is_file():
        return None
    from unitune.evaluate._review import summarize_ratings

    result = summarize_ratings(directory, a, b, confidence=confidence)
    return result if result.rated else None


def _samples(items: Sequence[Item], scored: Sequence[_Scored]) -> list[SampleRow]:
    rows: list[SampleRow] = []
    for item in items:
        answers = {
            s.resolved.name: s.answers[item.index].content or "" for s in scored if item.index in s.answers
        }
        if len(answers) < len(scored):
            continue
        rows.append(SampleRow(index=item.index, line=item.line, prompt=_excerpt(item.prompt), reference=item.reference,
                              answers=answers))  # fmt: skip
        if len(rows) >= SAMPLE_ROWS:
            break
    return rows


class _Progress:
    """Calls `on_progress(done, total)` once at the start and after each answer, from any thread."""

    def __init__(self, on_progress: Callable[[int, int], None] | None, total: int, done: int) -> None:
        import threading

        self._fn, self.total, self.done = on_progress, total, done
        self._lock = threading.Lock()
        if on_progress is not None:
            on_progress(done, total)

    def step(self) -> None:
        if self._fn is None:
            return
        with self._lock:
            self.done += 1
            self._fn(min(self.done, self.total), self.total)
