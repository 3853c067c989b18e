"""`unitune monitor`: what the request log says about a served model, per model and per day.

One pass over the log (`RequestLog.records` streams rows in time order) fills one small aggregate
per (model, day): counts, token sums, the day's latencies (a list: percentiles need them), JSON
validity counts, hashed field-value counts and the two input sketches (a word-count histogram over
fixed bins and the hashed-word histogram). Nothing else of a row is kept, so a month of traffic
costs memory in days, not in requests. The A/B table keeps each arm's latencies and completion
tokens (what its intervals are drawn from).

Drift is measured with the population-stability index (`psi`); see its docstring for the formula,
the empty-bin epsilon and the thresholds. Outputs are compared with the model's own first days
(`baseline_days`), inputs with the training data.

Over ~700 lines on purpose: the report's models, the one-pass aggregation and the statistics drawn
from it change together (a new column is a field, an accumulator and an interval); the terminal
rendering lives in `_monitor_text`.
"""

from __future__ import annotations

import bisect
import datetime as dt
import math
import random
import sqlite3
from collections import Counter
from collections.abc import Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from unitune.errors import ConfigurationError
from unitune.evaluate._stats import Interval, bootstrap, percentile, wilson
from unitune.serve._log import RequestLog, RequestRecord, sketch

if TYPE_CHECKING:
    from unitune.catalog import Catalog
    from unitune.data import Dataset

__all__ = [
    "DEFAULT_PSI_THRESHOLD",
    "LENGTH_BINS",
    "MIN_ARM_REQUESTS",
    "PSI_EPSILON",
    "PSI_MODERATE",
    "ABReport",
    "ArmDifference",
    "ArmStats",
    "DayRow",
    "Drift",
    "Estimate",
    "ModelSummary",
    "MonitorReport",
    "Price",
    "monitor",
    "price_for",
    "psi",
    "psi_level",
    "render_monitor",
]

#: PSI at or above this flags a significant shift ("retrain" for inputs): the rule of thumb from
#: credit scoring, where PSI was introduced, and what most monitoring tools default to.
DEFAULT_PSI_THRESHOLD = 0.2
#: PSI from here to the threshold is a moderate shift: worth a look, not yet a retrain.
PSI_MODERATE = 0.1
#: The proportion an empty bin is given, so ln(a/e) stays finite (see `psi`).
PSI_EPSILON = 1e-4
#: Lower edges (in words) of the fixed input-length bins; the last bin is open-ended. Doubling
#: widths: prompt lengths are roughly log-normal, so each bin holds a comparable share.
LENGTH_BINS = (0, 5, 10, 20, 40, 80, 160, 320, 640, 1280, 2560)
#: Requests each A/B arm needs before a difference between arms is reported.
MIN_ARM_REQUESTS = 30

# A bootstrap over a million latencies would take minutes; intervals are drawn from a seeded
# subsample of this many values per arm (the point estimate still uses every value).
_BOOTSTRAP_CAP = 2000
_RESAMPLES = 1000
# A field value seen fewer times than this in the baseline is an identifier, not a label: such
# values are pooled as "(other)", or a field of unique ids would look like it drifts every day.
_MIN_CATEGORY = 2
_OTHER = "(other)"
_ABSENT = "(absent)"

K = TypeVar("K", bound=Hashable)


# -- the report ---------------------------------------------------------------------------------------


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Estimate(_Frozen):
    """A value with its 95% interval (a rate or a difference of rates is a fraction, not a percent)."""

    estimate: float
    low: float
    high: float

    @property
    def excludes_zero(self) -> bool:
        """True when the whole interval is on one side of zero (for a difference: a real one)."""
        return self.low > 0 or self.high < 0


class Drift(_Frozen):
    """One PSI comparison of a day's distribution with a reference distribution."""

    psi: float = Field(description="The population-stability index (see `psi`).")
    level: Literal["stable", "moderate", "significant"] = Field(
        description="stable below 0.1, moderate from 0.1 to the threshold, significant at or above it."
    )
    flagged: bool = Field(
        description="PSI at or above the threshold, with enough data to tell it from sampling noise. "
        "For input drift this is the 'retrain' flag."
    )
    sample: int = Field(description="What the day's distribution counts: requests, words or answers.")
    reference: int = Field(description="What the reference distribution counts.")
    noise: float = Field(
        description="The PSI sampling alone would give on average, with no shift: (bins - 1)(1/n + 1/m)."
    )
    enough_data: bool = Field(description="noise is at most half the threshold: a flag can be trusted.")


class Price(_Frozen):
    """The inference price a model's tokens are costed at, and where it comes from."""

    input_per_million: float
    output_per_million: float
    basis: str = Field(description="The catalog entry used, e.g. 'openai:gpt-4o-mini (base inference)'.")
    source: str
    as_of: dt.date | None = None
    verified: bool


class DayRow(_Frozen):
    """One model on one UTC day."""

    model: str
    day: dt.date
    requests: int
    errors: int = Field(description="Requests answered with a status of 400 or above.")
    server_errors: int = Field(description="Of those, status 500 or above.")
    error_rate: Estimate | None = Field(description="errors / requests, with a Wilson interval.")
    latency_p50_ms: float | None = Field(description="Of successful requests.")
    latency_p95_ms: float | None
    streams: int
    ttft_p50_ms: float | None = Field(description="Time to first token, median of successful streams.")
    prompt_tokens: int = Field(description="Summed over every request (what is billed).")
    completion_tokens: int
    prompt_tokens_mean: float | None = Field(description="Per successful request.")
    completion_tokens_mean: float | None
    cost_usd: float | None = Field(description="Tokens at the model's catalog price; None without one.")
    json_answers: int = Field(description="Answers that looked like JSON (started with { or [).")
    json_valid: int
    json_validity: Estimate | None = Field(description="json_valid / json_answers, Wilson interval.")
    in_baseline: bool = Field(description="The day is in the model's output baseline window.")
    json_validity_drift: Estimate | None = Field(
        description="This day's JSON validity minus the baseline window's (Newcombe interval)."
    )
    field_drift: dict[str, Drift] = Field(
        default_factory=dict, description="PSI of each output field's hashed values vs the baseline."
    )
    input_length: Drift | None = Field(description="Prompt word counts vs the training data.")
    input_vocabulary: Drift | None = Field(description="Hashed prompt words vs the training data.")
    retrain: bool = Field(description="Either input drift is flagged.")


class ModelSummary(_Frozen):
    """A model's totals over the window, and its price."""

    model: str
    first_day: dt.date
    last_day: dt.date
    days: int
    requests: int
    errors: int
    error_rate: Estimate | None
    cost_usd: float | None
    price: Price | None
    price_note: str = Field(description="Where the price comes from, or why there is none.")
    baseline: list[dt.date] = Field(description="The days output drift is measured against.")
    retrain_days: list[dt.date]


class ArmStats(_Frozen):
    """One A/B arm over the whole window (intervals are 95%)."""

    arm: str
    requests: int
    users: int = Field(description="Distinct hashed user ids.")
    errors: int
    error_rate: Estimate | None = Field(description="Wilson interval.")
    latency_p50_ms: Estimate | None = Field(description="Bootstrap interval, successful requests.")
    completion_tokens_mean: Estimate | None = Field(description="Bootstrap interval, successful requests.")
    json_answers: int
    json_validity: Estimate | None = Field(description="Wilson interval.")


class ArmDifference(_Frozen):
    """An arm minus the reference arm (Newcombe's interval from the two Wilson intervals)."""

    arm: str
    reference: str
    error_rate: Estimate | None
    json_validity: Estimate | None


class ABReport(_Frozen):
    """The A/B arms found in the log and how they compare."""

    arms: list[ArmStats]
    reference: str = Field(description="The arm with the most requests; the others are compared to it.")
    comparable: bool = Field(description=f"Every arm has at least {MIN_ARM_REQUESTS} requests.")
    differences: list[ArmDifference] = Field(description="Empty when the arms are not comparable.")
    note: str


class MonitorReport(_Frozen):
    """What `unitune monitor` reports: per (model, day) rows, per-model totals, the A/B arms."""

    log: str
    since: dt.date | None
    until: dt.date | None
    model: str | None
    psi_threshold: float
    baseline_days: int
    training_data: str | None
    training_examples: int = Field(description="Training examples the input sketch was built from.")
    requests: int
    models: list[ModelSummary]
    days: list[DayRow]
    ab: ABReport | None
    notes: list[str]

    @property
    def retrain(self) -> list[DayRow]:
        """The days whose inputs drifted from the training data."""
        return [d for d in self.days if d.retrain]

    def __str__(self) -> str:
        return render_monitor(self)


# -- PSI ----------------------------------------------------------------------------------------------


def psi(reference: Mapping[K, float], current: Mapping[K, float], *, epsilon: float = PSI_EPSILON) -> float:
    """The population-stability index of `current` against `reference` (both counts per bin).

        PSI = Σ_i (a_i − e_i) · ln(a_i / e_i)

    over every bin either side has, with e_i = reference_i / Σ reference and a_i = current_i /
    Σ current, each proportion floored at `epsilon` (1e-4): a bin empty on one side would
    otherwise make ln(a/e) infinite, and 1e-4 is the floor the PSI literature uses (one bin's
    disappearance then adds about e·ln(e/1e-4), a few tenths for a bin that held 5%). PSI is the
    symmetric Kullback-Leibler divergence: 0 for identical distributions, always ≥ 0, and large
    (tens) for disjoint ones. Thresholds, by the usual rule of thumb: below 0.1 stable, 0.1 to 0.2
    a moderate shift, 0.2 and above significant.

    Raises `ValueError` when either side is empty.
    """
    ref_total = math.fsum(reference.values())
    cur_total = math.fsum(current.values())
    if ref_total <= 0 or cur_total <= 0:
        raise ValueError("PSI needs two non-empty distributions")
    terms = []
    for key in set(reference) | set(current):
        e = max(reference.get(key, 0) / ref_total, epsilon)
        a = max(current.get(key, 0) / cur_total, epsilon)
        terms.append((a - e) * math.log(a / e))
    return math.fsum(terms)  # exactly rounded: the set's order does not change the last digit


def psi_level(
    value: float, threshold: float = DEFAULT_PSI_THRESHOLD
) -> Literal["stable", "moderate", "significant"]:
    """`stable` below 0.1 (`PSI_MODERATE`), `significant` at or above `threshold`, `moderate` between."""
    if value >= threshold:
        return "significant"
    return "moderate" if value >= PSI_MODERATE else "stable"


def _drift(reference: Mapping[K, float], current: Mapping[K, float], threshold: float) -> Drift | None:
    """PSI with its sampling noise, or None when either side has nothing.

    Under no shift, n·m/(n+m)·PSI is approximately χ² with (bins − 1) degrees of freedom (PSI is
    the Jeffreys divergence), so sampling alone gives PSI ≈ (bins − 1)(1/n + 1/m) on average. A
    day of 30 requests over 300 hashed-word buckets would "drift" by chance; such a PSI is
    reported but not flagged until the noise is at most half the threshold.
    """
    n = math.fsum(current.values())
    m = math.fsum(reference.values())
    if n <= 0 or m <= 0:
        return None
    value = psi(reference, current)
    bins = sum(1 for k in set(reference) | set(current) if reference.get(k, 0) or current.get(k, 0))
    noise = max(bins - 1, 0) * (1 / n + 1 / m)
    enough = noise <= threshold / 2
    return Drift(
        psi=round(value, 4),
        level=psi_level(value, threshold),
        flagged=enough and value >= threshold,
        sample=round(n),
        reference=round(m),
        noise=round(noise, 4),
        enough_data=enough,
    )


def _length_bin(words: int) -> int:
    return bisect.bisect_right(LENGTH_BINS, words) - 1


# -- intervals ----------------------------------------------------------------------------------------


def _estimate(interval: Interval | None) -> Estimate | None:
    if interval is None:
        return None
    return Estimate(estimate=interval.estimate, low=interval.low, high=interval.high)


def _proportion(successes: int, n: int) -> Estimate | None:
    return _estimate(wilson(successes, n))


def _rate_difference(k1: int, n1: int, k2: int, n2: int) -> Estimate | None:
    """The difference of two rates with Newcombe's hybrid score interval.

    p1 − p2 with Newcombe's hybrid score interval (his method 10): each side's Wilson interval
    combined in quadrature. Independent samples, no resampling, and it stays sensible at 0 or 100%.
    """
    a, b = wilson(k1, n1), wilson(k2, n2)
    if a is None or b is None:
        return None
    d = a.estimate - b.estimate
    low = d - math.hypot(a.estimate - a.low, b.high - b.estimate)
    high = d + math.hypot(a.high - a.estimate, b.estimate - b.low)
    return Estimate(estimate=d, low=max(-1.0, low), high=min(1.0, high))


def _subsample(values: Sequence[float]) -> Sequence[float]:
    if len(values) <= _BOOTSTRAP_CAP:
        return values
    return random.Random(0).sample(list(values), _BOOTSTRAP_CAP)


def _median_interval(values: Sequence[float]) -> Estimate | None:
    """The median with a percentile-bootstrap interval (seeded, so a report is reproducible)."""
    estimate = percentile(values, 0.5)
    if estimate is None:
        return None
    sample = _subsample(values)
    interval = bootstrap(
        len(sample), lambda drawn: percentile([sample[i] for i in drawn], 0.5), resamples=_RESAMPLES
    )
    if interval is None:
        return None
    return Estimate(estimate=estimate, low=min(interval.low, estimate), high=max(interval.high, estimate))


def _mean_interval(values: Sequence[float]) -> Estimate | None:
    if not values:
        return None
    estimate = math.fsum(values) / len(values)
    sample = _subsample(values)
    interval = bootstrap(
        len(sample), lambda drawn: math.fsum(sample[i] for i in drawn) / len(drawn), resamples=_RESAMPLES
    )
    if interval is None:
        return None
    return Estimate(estimate=estimate, low=min(interval.low, estimate), high=max(interval.high, estimate))


# -- prices -------------------------------------------------------------------------------------------


def _looks_like_path(model: str) -> bool:
    if model.startswith(("/", "./", "../", "~", ".\\")):
        return True
    try:
        return Path(model).expanduser().is_dir()
    except OSError:
        return False


def _local_price(catalog: Catalog) -> Price:
    lifecycle = catalog.providers["local"].provider.lifecycle if "local" in catalog.providers else None
    return Price(
        input_per_million=0.0,
        output_per_million=0.0,
        basis="local (your own hardware)",
        source=lifecycle.source if lifecycle is not None else "unitune local trainer (your own hardware)",
        as_of=lifecycle.as_of if lifecycle is not None else None,
        verified=True,
    )


def price_for(model: str, catalog: Catalog) -> tuple[Price | None, str]:
    """The catalog price of a served model id, and a note saying where it came from (or why none).

    `local:…` and directory paths are models on this machine: price 0. `provider:model` is looked
    up in that provider's catalog (base inference; an OpenAI-style `ft:BASE:…` id takes BASE's
    tuned-inference price). A bare id is looked up among the local catalog's models; anything
    else has no price: its tokens are counted but not costed.
    """
    if model.startswith("local:") or _looks_like_path(model):
        price = _local_price(catalog)
        return price, f"{price.basis}: no per-token fee"
    provider, sep, name = model.partition(":")
    if sep and provider in catalog.providers:
        entry, tuned = catalog.find(provider, name), False
        if entry is None and name.startswith("ft:"):
            entry, tuned = catalog.find(provider, name.split(":")[1]), True
        if entry is None:
            return None, f"no price: {provider}'s catalog does not list {name!r}"
        where = f"{provider}:{entry.id}"
    else:
        entry, tuned = catalog.find("local", model), False
        if entry is None:
            return None, f"no price: {model!r} is not in the catalog (serve it as PROVIDER:MODEL to cost it)"
        where = f"local:{entry.id}"
    found = entry.tuned_inference if tuned else entry.base_inference
    kind = "tuned inference" if tuned else "base inference"
    if found is None:
        return None, f"no price: the catalog has no {kind} price for {where}"
    price = Price(
        input_per_million=found.input_per_million,
        output_per_million=found.output_per_million,
        basis=f"{where} ({kind})",
        source=found.source,
        as_of=found.as_of,
        verified=found.verified,
    )
    note = f"{price.basis}, {price.source}, as of {price.as_of}" + ("" if price.verified else " (unverified)")
    return price, note


def _cost(price: Price | None, prompt_tokens: int, completion_tokens: int) -> float | None:
    if price is None:
        return None
    usd = prompt_tokens * price.input_per_million + completion_tokens * price.output_per_million
    return round(usd / 1e6, 6)


# -- aggregation --------------------------------------------------------------------------------------


@dataclass
class _Outputs:
    """JSON validity and field-value counts: what output drift compares (a day, or a baseline)."""

    json_answers: int = 0
    json_valid: int = 0
    objects: int = 0  # answers whose fields were read (JSON objects and arrays)
    fields: dict[str, Counter[str]] = field(default_factory=dict)

    def add(self, r: RequestRecord) -> None:
        if r.output_json_valid is not None:
            self.json_answers += 1
            self.json_valid += int(r.output_json_valid)
        if r.output_fields is not None:
            self.objects += 1
            for name, value in r.output_fields.items():
                self.fields.setdefault(name, Counter())[value] += 1

    def merge(self, other: _Outputs) -> None:
        self.json_answers += other.json_answers
        self.json_valid += other.json_valid
        self.objects += other.objects
        for name, values in other.fields.items():
            self.fields.setdefault(name, Counter()).update(values)


@dataclass
class _Day:
    """Everything one (model, day) row is computed from."""

    requests: int = 0
    errors: int = 0
    server_errors: int = 0
    streams: int = 0
    ok: int = 0
    latencies: list[float] = field(default_factory=list)
    ttfts: list[float] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    ok_prompt_tokens: int = 0
    ok_completion_tokens: int = 0
    outputs: _Outputs = field(default_factory=_Outputs)
    lengths: Counter[int] = field(default_factory=Counter)
    words: Counter[int] = field(default_factory=Counter)

    def add(self, r: RequestRecord) -> None:
        self.requests += 1
        self.streams += int(r.stream)
        self.prompt_tokens += r.prompt_tokens
        self.completion_tokens += r.completion_tokens
        if r.status >= 400:
            self.errors += 1
            self.server_errors += int(r.status >= 500)
        else:
            # Latency and per-request tokens of successes only: a refusal in 3 ms is not a fast answer.
            self.ok += 1
            self.latencies.append(r.latency_ms)
            if r.stream and r.ttft_ms is not None:
                self.ttfts.append(r.ttft_ms)
            self.ok_prompt_tokens += r.prompt_tokens
            self.ok_completion_tokens += r.completion_tokens
        self.outputs.add(r)
        # Every request's input counts, failed or not: the inputs are what drifts.
        self.lengths[_length_bin(r.input_words)] += 1
        self.words.update(r.input_sketch)


@dataclass
class _Arm:
    requests: int = 0
    errors: int = 0
    users: set[str] = field(default_factory=set)
    latencies: list[float] = field(default_factory=list)
    completion_tokens: list[float] = field(default_factory=list)
    json_answers: int = 0
    json_valid: int = 0

    def add(self, r: RequestRecord) -> None:
        self.requests += 1
        if r.user_hash is not None:
            self.users.add(r.user_hash)
        if r.status >= 400:
            self.errors += 1
        else:
            self.latencies.append(r.latency_ms)
            self.completion_tokens.append(float(r.completion_tokens))
        if r.output_json_valid is not None:
            self.json_answers += 1
            self.json_valid += int(r.output_json_valid)


@dataclass
class _Training:
    name: str
    examples: int = 0
    skipped: int = 0
    lengths: Counter[int] = field(default_factory=Counter)
    words: Counter[int] = field(default_factory=Counter)


def _training_profile(data: str | Path | Dataset) -> _Training:
    """The training prompts' sketches.

    Word counts and hashed words of each example's non-assistant messages, the same `sketch()` the server
    applies to a request's prompt.
    """
    from unitune.data import ChatExample, Dataset, PreferenceExample

    dataset = data if isinstance(data, Dataset) else Dataset.from_jsonl(data)
    profile = _Training(name=dataset.name)
    for example in dataset:
        if isinstance(example, ChatExample):
            messages = example.messages
        elif isinstance(example, PreferenceExample):
            messages = example.input
        else:  # plain text has no prompt to compare a request with
            profile.skipped += 1
            continue
        words, buckets = sketch("\n".join(m.text for m in messages if m.role != "assistant"))
        profile.examples += 1
        profile.lengths[_length_bin(words)] += 1
        profile.words.update(buckets)
    return profile


def _read(
    log: RequestLog, since: dt.date | None, until: dt.date | None, model: str | None
) -> Iterator[RequestRecord]:
    """The log's records, with a damaged file or row turned into one error that names the file."""
    it = log.records(since=since, until=until, model=model)
    while True:
        try:
            record = next(it)
        except StopIteration:
            return
        except ConfigurationError:
            raise
        except (sqlite3.Error, ValueError, TypeError, KeyError) as e:
            raise ConfigurationError(
                f"The request log {str(log.path)!r} cannot be read: {type(e).__name__}: {e}.",
                fix="Move it aside (unitune serve starts a new one), or pass another --log.",
            ) from None
        yield record


# -- building the report ------------------------------------------------------------------------------


def _field_drift(base: _Outputs, day: _Outputs, threshold: float) -> dict[str, Drift]:
    """PSI of each field's values against the baseline's, values folded to the baseline's labels.

    A field's categories are the values the baseline saw at least twice, "(other)" for the rest
    and "(absent)" for an object answer without the field, so a field appearing or vanishing
    drifts too.
    """
    if base.objects == 0 or day.objects == 0:
        return {}
    out: dict[str, Drift] = {}
    for name in sorted(set(base.fields) | set(day.fields)):
        ref_values = base.fields.get(name, Counter())
        labels = {v for v, c in ref_values.items() if c >= _MIN_CATEGORY}
        drift = _drift(
            _fold(ref_values, labels, base.objects),
            _fold(day.fields.get(name, Counter()), labels, day.objects),
            threshold,
        )
        if drift is not None:
            out[name] = drift
    return out


def _fold(values: Counter[str], labels: set[str], objects: int) -> Counter[str]:
    folded: Counter[str] = Counter()
    for value, count in values.items():
        folded[value if value in labels else _OTHER] += count
    absent = objects - sum(values.values())
    if absent > 0:
        folded[_ABSENT] += absent
    return folded


def _day_row(
    model: str,
    day: str,
    agg: _Day,
    *,
    price: Price | None,
    baseline: _Outputs | None,
    training: _Training | None,
    threshold: float,
) -> DayRow:
    out = agg.outputs
    validity_drift = (
        _rate_difference(out.json_valid, out.json_answers, baseline.json_valid, baseline.json_answers)
        if baseline is not None
        else None
    )
    fields = _field_drift(baseline, out, threshold) if baseline is not None else {}
    length = _drift(training.lengths, agg.lengths, threshold) if training is not None else None
    vocab = _drift(training.words, agg.words, threshold) if training is not None else None
    return DayRow(
        model=model,
        day=dt.date.fromisoformat(day),
        requests=agg.requests,
        errors=agg.errors,
        server_errors=agg.server_errors,
        error_rate=_proportion(agg.errors, agg.requests),
        latency_p50_ms=percentile(agg.latencies, 0.5),
        latency_p95_ms=percentile(agg.latencies, 0.95),
        streams=agg.streams,
        ttft_p50_ms=percentile(agg.ttfts, 0.5),
        prompt_tokens=agg.prompt_tokens,
        completion_tokens=agg.completion_tokens,
        prompt_tokens_mean=agg.ok_prompt_tokens / agg.ok if agg.ok else None,
        completion_tokens_mean=agg.ok_completion_tokens / agg.ok if agg.ok else None,
        cost_usd=_cost(price, agg.prompt_tokens, agg.completion_tokens),
        json_answers=out.json_answers,
        json_valid=out.json_valid,
        json_validity=_proportion(out.json_valid, out.json_answers),
        in_baseline=baseline is None,
        json_validity_drift=validity_drift,
        field_drift=fields,
        input_length=length,
        input_vocabulary=vocab,
        retrain=bool((length and length.flagged) or (vocab and vocab.flagged)),
    )


def _model_rows(
    model: str,
    days: Mapping[str, _Day],
    *,
    baseline_days: int,
    price: Price | None,
    price_note: str,
    training: _Training | None,
    threshold: float,
) -> tuple[ModelSummary, list[DayRow]]:
    ordered = sorted(days)
    window = ordered[:baseline_days]
    baseline = _Outputs()
    for day in window:
        baseline.merge(days[day].outputs)
    rows = [
        _day_row(
            model,
            day,
            days[day],
            price=price,
            baseline=None if day in window else baseline,
            training=training,
            threshold=threshold,
        )
        for day in ordered
    ]
    requests = sum(r.requests for r in rows)
    errors = sum(r.errors for r in rows)
    costs = [r.cost_usd for r in rows]
    summary = ModelSummary(
        model=model,
        first_day=rows[0].day,
        last_day=rows[-1].day,
        days=len(rows),
        requests=requests,
        errors=errors,
        error_rate=_proportion(errors, requests),
        cost_usd=None if price is None else round(math.fsum(c or 0.0 for c in costs), 6),
        price=price,
        price_note=price_note,
        baseline=[dt.date.fromisoformat(d) for d in window],
        retrain_days=[r.day for r in rows if r.retrain],
    )
    return summary, rows


def _ab_report(arms: Mapping[str, _Arm]) -> ABReport:
    """Each arm's metrics with intervals, and each arm against the busiest one (the control)."""
    stats = [
        ArmStats(
            arm=name,
            requests=a.requests,
            users=len(a.users),
            errors=a.errors,
            error_rate=_proportion(a.errors, a.requests),
            latency_p50_ms=_median_interval(a.latencies),
            completion_tokens_mean=_mean_interval(a.completion_tokens),
            json_answers=a.json_answers,
            json_validity=_proportion(a.json_valid, a.json_answers),
        )
        for name, a in sorted(arms.items())
    ]
    reference = max(sorted(arms), key=lambda name: arms[name].requests)
    small = [s for s in stats if s.requests < MIN_ARM_REQUESTS]
    if len(stats) < 2:
        note = f"Only one arm ({reference}) has requests in this window: nothing to compare."
        return ABReport(arms=stats, reference=reference, comparable=False, differences=[], note=note)
    if small:
        counts = ", ".join(f"{s.arm} has {s.requests}" for s in small)
        note = (
            f"Too small to compare: {counts} request(s); each arm needs at least {MIN_ARM_REQUESTS} "
            "before a difference between arms means anything. The per-arm intervals show how wide it still is."
        )
        return ABReport(arms=stats, reference=reference, comparable=False, differences=[], note=note)
    ref = arms[reference]
    differences = [
        ArmDifference(
            arm=name,
            reference=reference,
            error_rate=_rate_difference(a.errors, a.requests, ref.errors, ref.requests),
            json_validity=_rate_difference(a.json_valid, a.json_answers, ref.json_valid, ref.json_answers),
        )
        for name, a in sorted(arms.items())
        if name != reference
    ]
    note = (
        "Intervals are 95% and treat requests as independent: a few heavy users make them too narrow. "
        "A difference whose interval excludes 0 is real at that level."
    )
    return ABReport(arms=stats, reference=reference, comparable=True, differences=differences, note=note)


def monitor(
    log_path: str | Path,
    *,
    training_data: str | Path | Dataset | None = None,
    since: dt.date | None = None,
    until: dt.date | None = None,
    model: str | None = None,
    psi_threshold: float = DEFAULT_PSI_THRESHOLD,
    baseline_days: int = 1,
    catalog: Catalog | None = None,
) -> MonitorReport:
    """Read the server's request log and report per model and per UTC day.

    `training_data` (a JSONL path or a `Dataset`) enables input drift; `since`/`until` (inclusive
    UTC dates) and `model` filter the log; `psi_threshold` is where a PSI becomes significant
    (and an input drift a "retrain"); output drift is measured against each model's first
    `baseline_days` days in the window. Prices come from `catalog` (the built-in one by default).

    Raises `ConfigurationError` when the log is missing or unreadable.
    """
    if not psi_threshold > 0:
        raise ConfigurationError(
            f"psi_threshold must be above 0, not {psi_threshold!r}.", fix="The usual is 0.2."
        )
    if baseline_days < 1:
        raise ConfigurationError(f"baseline_days must be 1 or more, not {baseline_days!r}.")
    path = Path(log_path)
    if not path.is_file():
        raise ConfigurationError(
            f"No request log at {str(path)!r}.",
            fix="`unitune serve` writes it as it answers requests; start it first, or pass the log's path (--log).",
        )
    if catalog is None:
        from unitune.catalog import load_catalog

        catalog = load_catalog()
    training = _training_profile(training_data) if training_data is not None else None

    per_model: dict[str, dict[str, _Day]] = {}
    arms: dict[str, _Arm] = {}
    total = 0
    for r in _read(RequestLog(path), since, until, model):
        total += 1
        per_model.setdefault(r.model, {}).setdefault(r.day, _Day()).add(r)
        if r.arm is not None:
            arms.setdefault(r.arm, _Arm()).add(r)

    summaries: list[ModelSummary] = []
    rows: list[DayRow] = []
    for name in sorted(per_model):
        price, note = price_for(name, catalog)
        summary, model_rows = _model_rows(
            name,
            per_model[name],
            baseline_days=baseline_days,
            price=price,
            price_note=note,
            training=training,
            threshold=psi_threshold,
        )
        summaries.append(summary)
        rows.extend(model_rows)
    return MonitorReport(
        log=str(path),
        since=since,
        until=until,
        model=model,
        psi_threshold=psi_threshold,
        baseline_days=baseline_days,
        training_data=training.name if training is not None else None,
        training_examples=training.examples if training is not None else 0,
        requests=total,
        models=summaries,
        days=rows,
        ab=_ab_report(arms) if arms else None,
        notes=_notes(total, training, summaries),
    )


def _notes(total: int, training: _Training | None, models: Sequence[ModelSummary]) -> list[str]:
    notes = []
    if total == 0:
        notes.append("No requests in the log for this window and model.")
    if training is None:
        notes.append("Input drift not measured: pass the training data (--training-data) to compare with it.")
    elif training.examples == 0:
        notes.append(f"Input drift not measured: {training.name} has no chat or preference example.")
    elif training.skipped:
        notes.append(f"{training.skipped} plain-text training example(s) have no prompt and were left out.")
    notes.extend(f"{m.model}: {m.price_note}" for m in models if m.price is None)
    return notes


# -- the terminal -------------------------------------------------------------------------------------


def render_monitor(report: MonitorReport) -> str:
    """The report as plain-text tables for a terminal (see `unitune.serve._monitor_text`)."""
    from unitune.serve._monitor_text import render_monitor as render

    return render(report)
