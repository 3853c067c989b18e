"""Metrics: per-example scores in [0, 1] (means) and corpus-level scores (macro-F1).

A metric scores one (prediction, reference) pair, or returns None when it does not apply to that
example (then the example is left out of that metric's value and count). `Metric.of` turns a
built-in name, a `Metric` or a named callable into a `Metric`; `resolve_metrics` does that for a
list and expands `field_accuracy` into one `field:<name>` metric per field of the references.

Built-in names: `exact_match`, `json_valid`, `json_fields`, `field:<name>`, `field_accuracy`,
`macro_f1`, `macro_f1:<field>`, and, with the `eval` extra, `chrf`, `bleu` and `rouge_l`.
"""

from __future__ import annotations

import functools
import importlib
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from unitune.errors import ConfigurationError

#: A metric function: `(prediction, reference) -> score in [0, 1]`, or None when it does not apply.
MetricFn = Callable[[str, str], float | None]

#: A corpus-level value: `(predictions, references) -> value in [0, 1]` over the examples the
#: metric applies to, or None when it has no value for them.
Aggregate = Callable[[Sequence[str], Sequence[str]], float | None]

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
    """1.0 when the prediction equals the reference after stripping surrounding whitespace, else 0.0.

    Args:
        prediction: the model's answer.
        reference: the expected answer.
    """
    return 1.0 if prediction.strip() == reference.strip() else 0.0


def json_valid(prediction: str, reference: str) -> float:
    """1.0 when the prediction is strict JSON, else 0.0.

    When the reference is a JSON object or array, the prediction must be one too (either kind): a
    bare string or number would parse, but it is not the structured answer that was asked for.
    Code fences around the JSON make it invalid, on purpose: a caller parsing the answer would fail.

    Args:
        prediction: the model's answer.
        reference: the expected answer, which decides whether an object or array is required.
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

    Args:
        prediction: the model's answer.
        reference: the expected answer, a JSON object.
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


def _field_label(name: str) -> Callable[[str], str | None]:
    """The label of an answer for `macro_f1:<name>`: its field's value as canonical JSON text.

    None when the answer is not a JSON object or lacks the field. Canonical text keeps JSON's
    types apart (`true` is not `"true"`) and ignores key order inside nested objects.
    """

    def label(text: str) -> str | None:
        ok, value = _parse_json(text)
        if not ok or not isinstance(value, dict) or name not in value:
            return None
        return json.dumps(value[name], sort_keys=True)

    return label


def _strip_label(text: str) -> str | None:
    """The label of an answer for `macro_f1`: the whole answer, stripped of surrounding whitespace."""
    return text.strip()


def macro_f1_score(pairs: Sequence[tuple[str | None, str]]) -> float | None:
    """Macro-averaged F1 of `(predicted label, reference label)` pairs; None when there are none.

    The classes are the labels that occur among the references; each class's F1 is
    `2·TP / (2·TP + FP + FN)`, so a class that is never predicted right scores 0 (as scikit-learn's
    `f1_score(average="macro", labels=<reference classes>, zero_division=0)`). A predicted label
    that is no reference class (or None: no label) only costs its reference class a miss.
    """
    classes = dict.fromkeys(ref for _, ref in pairs)
    if not classes:
        return None
    total = 0.0
    for cls in classes:
        tp = sum(1 for pred, ref in pairs if pred == cls and ref == cls)
        fp = sum(1 for pred, ref in pairs if pred == cls and ref != cls)
        fn = sum(1 for pred, ref in pairs if pred != cls and ref == cls)
        total += 2 * tp / (2 * tp + fp + fn)
    return total / len(classes)


def _macro_f1_metric(name: str, label: Callable[[str], str | None]) -> Metric:
    """A macro-F1 metric over the labels `label` gives answers (None: the answer has no label)."""

    def per_example(prediction: str, reference: str) -> float | None:
        ref_label = label(reference)
        if ref_label is None:
            return None
        return 1.0 if label(prediction) == ref_label else 0.0

    def aggregate(predictions: Sequence[str], references: Sequence[str]) -> float | None:
        pairs = [
            (label(pred), ref_label)
            for pred, ref in zip(predictions, references, strict=True)
            if (ref_label := label(ref)) is not None
        ]
        return macro_f1_score(pairs)

    per_example.__doc__ = f"1.0 when the {name} label of the prediction equals the reference's, else 0.0."
    return Metric(name, per_example, binary=True, aggregate=aggregate)


def _field_metric(name: str) -> Metric:
    """The `field:<name>` metric: is the prediction's field `name` equal to the reference's?"""

    def per_example(prediction: str, reference: str) -> float | None:
        ref_ok, ref_value = _parse_json(reference)
        if not ref_ok or not isinstance(ref_value, dict) or name not in ref_value:
            return None
        ok, value = _parse_json(prediction)
        if ok and isinstance(value, dict) and name in value and _json_equal(value[name], ref_value[name]):
            return 1.0
        return 0.0

    per_example.__doc__ = (
        f"1.0 when the prediction's field {name!r} equals the reference's (as JSON), else 0.0; "
        "None when the reference is not a JSON object with that field."
    )
    return Metric(f"field:{name}", per_example, binary=True)


# -- text-overlap metrics (the `eval` extra) ---------------------------------------------------------

#: The package each extra-backed metric imports.
_EXTRA_MODULES: dict[str, str] = {"chrf": "sacrebleu", "bleu": "sacrebleu", "rouge_l": "rouge_score"}


def _import_extra(module: str, metric: str) -> Any:
    """Import `module` for `metric`, or say which extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ConfigurationError(
            f"The metric {metric!r} needs the Python package {module!r}, which is not installed.",
            fix="Install it with: pip install 'unitune[eval]'",
        ) from None


def _unit(score: float) -> float:
    """A 0–100 score as a fraction in [0, 1] (BLEU can come out a hair over 100)."""
    return min(1.0, max(0.0, float(score) / 100.0))


def chrf(prediction: str, reference: str) -> float:
    """Sentence-level chrF (sacrebleu's defaults) as a fraction in [0, 1]; 0.0 for an empty prediction."""
    sacrebleu = _import_extra("sacrebleu", "chrf")
    return _unit(sacrebleu.sentence_chrf(prediction, [reference]).score)


def bleu(prediction: str, reference: str) -> float:
    """Sentence-level BLEU (sacrebleu's default smoothing) as a fraction in [0, 1]."""
    sacrebleu = _import_extra("sacrebleu", "bleu")
    return _unit(sacrebleu.sentence_bleu(prediction, [reference]).score)


@functools.lru_cache(maxsize=1)
def _rouge_scorer() -> Any:
    """The ROUGE-L scorer, built once (a failed import is not cached)."""
    module = _import_extra("rouge_score.rouge_scorer", "rouge_l")
    return module.RougeScorer(["rougeL"], use_stemmer=False)


def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L F-measure (longest common subsequence of words, no stemming) in [0, 1]."""
    return float(_rouge_scorer().score(reference, prediction)["rougeL"].fmeasure)


# -- the Metric type ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Metric:
    """A named metric: `fn(prediction, reference)` returns a score in [0, 1], or None to skip the example.

    Any named callable works where a metric is expected (its `__name__` becomes the name); wrap a
    lambda or a `functools.partial` in `Metric(name, fn)` to give it a name worth showing.

    `binary`: the scores are only 0.0 or 1.0 (pass/fail), so paired tests on flips apply.
    `aggregate`: the corpus-level value over the applicable examples (e.g. macro-F1); None means
    the value is the mean of `fn`'s scores. `requires`: the pip extra that provides the metric.
    """

    name: str
    fn: MetricFn
    binary: bool = False
    aggregate: Aggregate | None = None
    requires: str | None = None

    def __call__(self, prediction: str, reference: str) -> float | None:
        """Score one prediction against its reference; None when the metric does not apply to it."""
        return self.fn(prediction, reference)

    def value(
        self, predictions: Sequence[str], references: Sequence[str], scores: Sequence[float]
    ) -> float | None:
        """The metric's value over the applicable examples.

        `aggregate(predictions, references)`, or the mean of `scores` when there is no aggregate. None
        when there are no examples.

        Args:
            predictions: the model's answers to the applicable examples.
            references: the expected answers, in the same order.
            scores: `fn`'s score for each applicable example.
        """
        if self.aggregate is not None:
            return self.aggregate(predictions, references) if references else None
        return math.fsum(scores) / len(scores) if scores else None

    @classmethod
    def of(cls, spec: str | Metric | MetricFn) -> Metric:
        """A metric from a built-in name, a `Metric`, or a named callable; ConfigurationError otherwise.

        `field:<name>` and `macro_f1:<field>` build a metric for that field; `chrf`, `bleu` and
        `rouge_l` need the `eval` extra. `field_accuracy` is only valid in `resolve_metrics`.
        """
        if isinstance(spec, Metric):
            return spec
        if isinstance(spec, str):
            return _builtin(spec)
        if callable(spec):
            name = getattr(spec, "__name__", None)
            if not isinstance(name, str) or not name or name == "<lambda>":
                raise ConfigurationError(
                    f"The metric {spec!r} has no usable name.", fix="Wrap it as Metric('my_metric', fn)."
                )
            return cls(name, spec)
        raise ConfigurationError(
            f"Not a metric: {spec!r}.", fix="Pass a metric name, a Metric or a named callable."
        )


def _builtin(name: str) -> Metric:
    """The built-in metric `name` (see the module docstring for the names)."""
    kind, sep, arg = name.partition(":")
    if sep and kind in ("field", "macro_f1"):
        if not arg:
            raise ConfigurationError(
                f"The metric {name!r} names no field.", fix=f"Write it as '{kind}:<field name>'."
            )
        return _field_metric(arg) if kind == "field" else _macro_f1_metric(name, _field_label(arg))
    if name == "field_accuracy":
        raise ConfigurationError(
            "'field_accuracy' expands into one 'field:<name>' metric per field of the references.",
            fix="Pass it through resolve_metrics(specs, references), or name fields as 'field:<name>'.",
        )
    metric = BUILTIN_METRICS.get(name)
    if metric is None:
        known = ", ".join([*BUILTIN_METRICS, "field:<name>", "macro_f1:<field>", "field_accuracy"])
        raise ConfigurationError(
            f"Unknown metric {name!r}.", fix=f"Built-in metrics: {known}; or pass Metric(name, fn)."
        )
    if name in _EXTRA_MODULES:
        _import_extra(_EXTRA_MODULES[name], name)
    return metric


BUILTIN_METRICS: dict[str, Metric] = {
    "exact_match": Metric("exact_match", exact_match, binary=True),
    "json_valid": Metric("json_valid", json_valid, binary=True),
    "json_fields": Metric("json_fields", json_fields),
    "macro_f1": _macro_f1_metric("macro_f1", _strip_label),
    "chrf": Metric("chrf", chrf, requires="eval"),
    "bleu": Metric("bleu", bleu, requires="eval"),
    "rouge_l": Metric("rouge_l", rouge_l, requires="eval"),
}


# -- choosing metrics --------------------------------------------------------------------------------


def _json_fields_of(references: Sequence[str]) -> list[str]:
    """The top-level fields of the JSON-object references, in order of first appearance."""
    fields: dict[str, None] = {}
    for reference in references:
        ok, value = _parse_json(reference)
        if ok and isinstance(value, dict):
            fields.update(dict.fromkeys(value))
    return list(fields)


def resolve_metrics(specs: Sequence[str | Metric | MetricFn], references: Sequence[str]) -> list[Metric]:
    """The metrics to score with (`Metric.of` of each spec), at least one, with distinct names.

    `field_accuracy` becomes one `field:<name>` metric per top-level field found in any JSON-object
    reference, in order of first appearance. Raises ConfigurationError on an empty list, on two
    metrics with one name (a report keys them by name), and on `field_accuracy` when no reference
    is a JSON object.
    """
    resolved: list[Metric] = []
    for spec in specs:
        if isinstance(spec, str) and spec == "field_accuracy":
            fields = _json_fields_of(references)
            if not fields:
                raise ConfigurationError(
                    "'field_accuracy' found no fields: no reference is a JSON object with fields.",
                    fix="Drop 'field_accuracy' for data whose answers are not JSON objects.",
                )
            resolved.extend(_field_metric(name) for name in fields)
        else:
            resolved.append(Metric.of(spec))
    if not resolved:
        raise ConfigurationError("metrics is empty.", fix="Name at least one metric to evaluate with.")
    names = [m.name for m in resolved]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigurationError(
            f"Two metrics share the name(s) {', '.join(duplicates)}.", fix="Give each a distinct name."
        )
    return resolved


_DataKind = Literal["json", "label", "text"]

_MAX_LABELS = 50
_MAX_LABEL_CHARS = 40


def _data_kind(references: Sequence[str]) -> _DataKind:
    """What the references look like: JSON objects (at least half), short labels, or free text."""
    n = len(references)
    objects = sum(1 for r in references if isinstance(_parse_json(r)[1], dict))
    if n and 2 * objects >= n:
        return "json"
    labels = {r.strip() for r in references}
    if (
        n
        and len(labels) <= _MAX_LABELS
        and len(labels) <= max(2, n / 3)
        and all(len(label) <= _MAX_LABEL_CHARS for label in labels)
    ):
        return "label"
    return "text"


def _has_eval_extra() -> bool:
    """Whether the `eval` extra's packages import."""
    try:
        for module in sorted(set(_EXTRA_MODULES.values())):
            importlib.import_module(module)
    except ImportError:
        return False
    return True


def default_metrics(references: Sequence[str]) -> list[str]:
    """The metric names to use when none are given, chosen from what the references look like.

    JSON objects (at least half the references): exact_match, json_valid, json_fields and
    field_accuracy. Short labels (at most 50 distinct, at most a third of the references or 2, each
    at most 40 characters): exact_match and macro_f1. Free text: exact_match, chrf and rouge_l
    (only exact_match when the `eval` extra is not installed).
    """
    kind = _data_kind(references)
    if kind == "json":
        names = ["exact_match", "json_valid", "json_fields"]
        if any(isinstance(_parse_json(r)[1], dict) for r in references):
            names.append("field_accuracy")
        return names
    if kind == "label":
        return ["exact_match", "macro_f1"]
    return ["exact_match", "chrf", "rouge_l"] if _has_eval_extra() else ["exact_match"]


_PRIMARY: dict[_DataKind, tuple[str, ...]] = {
    "json": ("json_fields",),
    "label": ("macro_f1", "exact_match"),
    "text": ("chrf", "exact_match"),
}


def default_primary(references: Sequence[str], metrics: Sequence[str]) -> str:
    """The metric a verdict rests on.

    For JSON data json_fields, for labels macro_f1 (else exact_match), for text chrf (else exact_match),
    whichever is in `metrics` first; else `metrics[0]`. ConfigurationError when `metrics` is empty.
    """
    if not metrics:
        raise ConfigurationError("metrics is empty.", fix="Name at least one metric to evaluate with.")
    for name in _PRIMARY[_data_kind(references)]:
        if name in metrics:
            return name
    return metrics[0]


def score_checked(metric: Metric, prediction: str, reference: str, line: int | None) -> float | None:
    """The metric's score, checked: a score outside [0, 1] would silently skew every value after it.

    None when the metric does not apply to the example; ConfigurationError (naming the example's
    line when given) when the score is not a number in [0, 1].
    """
    value = metric(prediction, reference)
    if value is None:
        return None
    if isinstance(value, (bool, int, float)):
        score = float(value)
        if math.isfinite(score) and 0.0 <= score <= 1.0:
            return score
    where = f" on the example at line {line}" if line is not None else ""
    raise ConfigurationError(
        f"Metric {metric.name!r} returned {value!r}{where}.",
        fix="A score must be a number in [0, 1] (or None when the metric does not apply).",
    )


#: The former name of `score_checked`.
_score = score_checked
