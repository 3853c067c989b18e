"""`unitune.evaluate._metrics`: each built-in metric's values and None cases, macro-F1 by hand,
field expansion, the default choice of metrics, and the error for a missing `eval` extra."""

from __future__ import annotations

import random
import sys

import pytest

from unitune.errors import ConfigurationError
from unitune.evaluate._metrics import (
    BUILTIN_METRICS,
    Metric,
    _score,
    default_metrics,
    default_primary,
    macro_f1_score,
    resolve_metrics,
    score_checked,
)

# -- the simple metrics ----------------------------------------------------------------------------


def test_pass_fail_metrics_are_binary() -> None:
    assert Metric.of("exact_match").binary
    assert Metric.of("json_valid").binary
    assert not Metric.of("json_fields").binary
    assert Metric.of("exact_match")(" yes\n", "yes") == 1.0
    assert Metric.of("json_fields")('{"a": 1, "b": 3}', '{"a": 1, "b": 2}') == 0.5


# -- field:<name> ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prediction", "reference", "expected"),
    [
        ('{"label": "bug", "x": 1}', '{"label": "bug"}', 1.0),
        ('{"label": "Bug"}', '{"label": "bug"}', 0.0),
        ('{"label": 1}', '{"label": true}', 0.0),  # JSON types stay apart
        ('{"label": 1.0}', '{"label": 1}', 1.0),  # one JSON number
        ('{"other": "bug"}', '{"label": "bug"}', 0.0),
        ("bug", '{"label": "bug"}', 0.0),
        ('["bug"]', '{"label": "bug"}', 0.0),
        ('{"label": "bug"}', '{"other": "bug"}', None),  # reference lacks the field
        ('{"label": "bug"}', "bug", None),  # reference is not JSON
        ('{"label": "bug"}', '[{"label": "bug"}]', None),  # not an object
    ],
)
def test_field_metric(prediction: str, reference: str, expected: float | None) -> None:
    metric = Metric.of("field:label")
    assert metric.name == "field:label"
    assert metric.binary
    assert metric(prediction, reference) == expected


def test_field_metric_needs_a_name() -> None:
    with pytest.raises(ConfigurationError, match="names no field") as info:
        Metric.of("field:")
    assert info.value.fix is not None


def test_field_accuracy_only_through_resolve_metrics() -> None:
    with pytest.raises(ConfigurationError, match="expands") as info:
        Metric.of("field_accuracy")
    assert "resolve_metrics" in str(info.value)


# -- resolve_metrics -------------------------------------------------------------------------------


def test_field_accuracy_expands_in_order_of_first_appearance() -> None:
    refs = ['{"b": 1, "a": 2}', "plain text", '{"c": 3, "a": 1}', "[1, 2]", '{"d": {"e": 1}}']
    names = [m.name for m in resolve_metrics(["exact_match", "field_accuracy", "json_valid"], refs)]
    assert names == ["exact_match", "field:b", "field:a", "field:c", "field:d", "json_valid"]
    by_name = {m.name: m for m in resolve_metrics(["field_accuracy"], refs)}
    assert by_name["field:a"]('{"a": 2}', refs[0]) == 1.0
    assert by_name["field:a"]('{"a": 2}', refs[2]) == 0.0
    assert by_name["field:b"]('{"b": 1}', refs[2]) is None


def test_resolve_metrics_refusals() -> None:
    with pytest.raises(ConfigurationError, match="empty"):
        resolve_metrics([], ["x"])
    with pytest.raises(ConfigurationError, match="exact_match"):
        resolve_metrics(["exact_match", "exact_match"], ["x"])
    with pytest.raises(ConfigurationError, match="field:a"):
        resolve_metrics(["field_accuracy", "field:a"], ['{"a": 1}'])
    with pytest.raises(ConfigurationError, match="field_accuracy"):
        resolve_metrics(["field_accuracy"], ["plain", "[1]", "{}"])


def test_resolve_metrics_keeps_metrics_and_callables() -> None:
    def shouting(prediction: str, reference: str) -> float:
        return 1.0 if prediction.isupper() else 0.0

    custom = Metric("custom", lambda p, r: 0.5)
    resolved = resolve_metrics([custom, shouting, "macro_f1"], ["a"])
    assert [m.name for m in resolved] == ["custom", "shouting", "macro_f1"]
    assert resolved[0] is custom
    assert resolved[1]("HI", "x") == 1.0


# -- Metric.of -------------------------------------------------------------------------------------


def test_metric_of_refusals() -> None:
    with pytest.raises(ConfigurationError, match="Unknown metric 'nope'") as info:
        Metric.of("nope")
    assert info.value.fix is not None
    assert "macro_f1:<field>" in info.value.fix
    with pytest.raises(ConfigurationError, match="no usable name"):
        Metric.of(lambda p, r: 1.0)
    with pytest.raises(ConfigurationError, match="Not a metric"):
        Metric.of(42)  # type: ignore[arg-type]


# -- macro-F1 --------------------------------------------------------------------------------------

# Worked by hand. Classes are the references' labels a, b, c ("d" is predicted but is no class).
#   a: TP 2 (rows 0, 1), FP 1 (row 5), FN 1 (row 2)  -> P 2/3, R 2/3, F1 2/3
#   b: TP 1 (row 3),     FP 1 (row 2), FN 1 (row 4)  -> P 1/2, R 1/2, F1 1/2
#   c: TP 0,             FP 0,         FN 1 (row 5)  -> F1 0
#   macro-F1 = (2/3 + 1/2 + 0) / 3 = 7/18; accuracy = 3/6.
REFS = ["a", "a", "a", "b", "b", "c"]
PREDS = ["a", " a\n", "b", "b", "d", "a"]


def test_macro_f1_worked_example() -> None:
    metric = Metric.of("macro_f1")
    assert metric.binary
    assert metric.aggregate is not None
    scores = [metric(p, r) for p, r in zip(PREDS, REFS, strict=True)]
    assert scores == [1.0, 1.0, 0.0, 1.0, 0.0, 0.0]  # labels are the stripped answers
    value = metric.value(PREDS, REFS, [s for s in scores if s is not None])
    assert value == pytest.approx(7 / 18)
    assert value != pytest.approx(0.5)  # not the mean of the per-example scores


def test_macro_f1_small_cases() -> None:
    assert macro_f1_score([]) is None
    assert macro_f1_score([("x", "x"), ("y", "y")]) == 1.0
    # Only one reference class, always predicted: perfect, though "n" was never a reference.
    assert macro_f1_score([("y", "y"), ("y", "y")]) == 1.0
    # Two classes, everything predicted "y": y has P 1/2, R 1 -> F1 2/3; n has F1 0.
    assert macro_f1_score([("y", "y"), ("y", "n")]) == pytest.approx(1 / 3)
    # A prediction without a label matches nothing.
    assert macro_f1_score([(None, "y")]) == 0.0


def test_macro_f1_field_labels() -> None:
    metric = Metric.of("macro_f1:ok")
    assert metric.name == "macro_f1:ok"
    assert metric('{"ok": true}', '{"ok": true, "x": 1}') == 1.0
    assert metric('{"ok": "true"}', '{"ok": true}') == 0.0  # true is not "true"
    assert metric('{"ok": {"b": 1, "a": 2}}', '{"ok": {"a": 2, "b": 1}}') == 1.0  # key order
    assert metric("true", '{"ok": true}') == 0.0  # not an object: no label
    assert metric('{"other": true}', '{"ok": true}') == 0.0
    assert metric('{"ok": true}', '{"other": true}') is None
    assert metric('{"ok": true}', "true") is None
    refs = ['{"ok": true}', '{"ok": false}', "no label", '{"ok": false}']
    preds = ['{"ok": true}', '{"ok": true}', '{"ok": false}', "garbage"]
    # The unlabelled reference is left out. true: TP 1, FP 1 -> 2/3; false: TP 0, FN 2 -> 0.
    assert metric.value(preds, refs, [1.0, 0.0, 0.0]) == pytest.approx(1 / 3)


def test_macro_f1_matches_scikit_learn() -> None:
    metrics = pytest.importorskip("sklearn.metrics")
    rng = random.Random(7)
    for _ in range(50):
        refs = [rng.choice("abcd") for _ in range(rng.randint(1, 30))]
        preds = [rng.choice("abcde") for _ in refs]
        expected = metrics.f1_score(refs, preds, labels=sorted(set(refs)), average="macro", zero_division=0)
        assert Metric.of("macro_f1").value(preds, refs, []) == pytest.approx(expected)


# -- Metric.value ----------------------------------------------------------------------------------


def test_value_is_the_mean_or_none() -> None:
    metric = Metric.of("json_fields")
    assert metric.value(["x"] * 3, ["y"] * 3, [0.0, 0.5, 1.0]) == 0.5
    assert metric.value([], [], []) is None
    assert Metric.of("macro_f1").value([], [], []) is None


# -- text overlap (the eval extra) -----------------------------------------------------------------


def test_chrf() -> None:
    metric = Metric.of("chrf")
    assert metric.requires == "eval"
    assert not metric.binary
    assert metric("The cat sat on the mat.", "The cat sat on the mat.") == 1.0
    assert metric("qqqq zzzz", "The cat sat on the mat.") < 0.1  # type: ignore[operator]
    partial = metric("The cat sat.", "The cat sat on the mat.")
    assert partial is not None
    assert 0.3 < partial < 1.0
    assert metric("", "The cat sat on the mat.") == 0.0


def test_bleu() -> None:
    metric = Metric.of("bleu")
    assert metric.requires == "eval"
    # sacrebleu says 100.00000000000004 for this: kept within [0, 1].
    assert metric("the cat sat", "the cat sat") == 1.0
    assert metric("a completely different sentence", "the cat sat on the mat") == 0.0
    assert metric("", "the cat sat") == 0.0


def test_rouge_l() -> None:
    metric = Metric.of("rouge_l")
    assert metric.requires == "eval"
    assert metric("The cat sat on the mat", "the cat sat on the mat") == 1.0  # lowercased words
    # LCS 3 words: P 3/3, R 3/6 -> F 2/3.
    assert metric("the cat sat", "the cat sat on the mat") == pytest.approx(2 / 3)
    assert metric("dog runs", "the cat sat") == 0.0
    assert metric("", "the cat sat") == 0.0


@pytest.mark.parametrize(
    ("name", "module"), [("chrf", "sacrebleu"), ("bleu", "sacrebleu"), ("rouge_l", "rouge_score")]
)
def test_missing_eval_extra(monkeypatch: pytest.MonkeyPatch, name: str, module: str) -> None:
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(ConfigurationError, match=module) as info:
        Metric.of(name)
    assert info.value.fix is not None
    assert "pip install 'unitune[eval]'" in info.value.fix


def test_missing_eval_extra_when_scoring(monkeypatch: pytest.MonkeyPatch) -> None:
    metric = BUILTIN_METRICS["chrf"]
    monkeypatch.setitem(sys.modules, "sacrebleu", None)
    with pytest.raises(ConfigurationError, match="unitune\\[eval\\]"):
        metric("a", "a")


@pytest.mark.parametrize("name", [*BUILTIN_METRICS, "field:a", "macro_f1:a"])
def test_empty_prediction_scores_without_crashing(name: str) -> None:
    metric = Metric.of(name)
    for reference in ["the answer", '{"a": "b"}']:
        score = score_checked(metric, "", reference, line=1)
        assert score is None or score == 0.0


# -- default metrics and the primary one -----------------------------------------------------------

TEXT = [
    "Restart the router and wait two minutes.",
    "Your refund was issued on Monday.",
    "We could not find that order number.",
    "The invoice is attached to this email.",
]


def test_default_metrics_for_json() -> None:
    refs = ['{"label": "bug"}', '{"label": "ok"}', "free text", "more text"]  # half are objects
    assert default_metrics(refs) == ["exact_match", "json_valid", "json_fields", "field_accuracy"]
    assert default_primary(refs, default_metrics(refs)) == "json_fields"
    assert default_primary(refs, ["exact_match", "json_valid"]) == "exact_match"  # fallback: first


def test_default_metrics_for_labels() -> None:
    refs = ["bug", "billing", "other"] * 3  # 3 distinct of 9 -> labels
    assert default_metrics(refs) == ["exact_match", "macro_f1"]
    assert default_primary(refs, ["exact_match", "macro_f1"]) == "macro_f1"
    assert default_primary(refs, ["json_valid", "exact_match"]) == "exact_match"
    assert default_metrics(["yes", "no", "yes", "no"]) == ["exact_match", "macro_f1"]  # 2 allowed
    assert default_metrics(["yes", " yes", "no", "no\n"]) == ["exact_match", "macro_f1"]  # stripped


def test_default_metrics_for_text() -> None:
    assert default_metrics(TEXT) == ["exact_match", "chrf", "rouge_l"]
    assert default_primary(TEXT, ["exact_match", "chrf", "rouge_l"]) == "chrf"
    assert default_primary(TEXT, ["rouge_l", "exact_match"]) == "exact_match"
    assert default_primary(TEXT, ["rouge_l"]) == "rouge_l"
    # Short but too many distinct values for labels (6 distinct > max(2, 6/3)).
    assert default_metrics(["a", "b", "c", "d", "e", "f"])[1:] == ["chrf", "rouge_l"]
    # Few distinct values, but one over 40 characters.
    long = "x" * 41
    assert default_metrics(["a", long, "a", long, "a", long]) == ["exact_match", "chrf", "rouge_l"]
    # 51 distinct labels is too many, however many references there are.
    assert default_metrics([f"l{i}" for i in range(51)] * 4)[1] == "chrf"


def test_default_metrics_for_text_without_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "rouge_score", None)
    assert default_metrics(TEXT) == ["exact_match"]
    assert default_primary(TEXT, default_metrics(TEXT)) == "exact_match"


def test_default_primary_needs_metrics() -> None:
    with pytest.raises(ConfigurationError, match="empty"):
        default_primary(TEXT, [])


# -- score_checked ---------------------------------------------------------------------------------


def test_score_checked() -> None:
    assert _score is score_checked
    assert score_checked(Metric.of("json_fields"), "{}", "not json", line=3) is None
    assert score_checked(Metric("flag", lambda p, r: True), "a", "b", line=None) == 1.0
    with pytest.raises(ConfigurationError, match="line 7") as info:
        score_checked(Metric("big", lambda p, r: 2.0), "a", "b", line=7)
    assert info.value.fix is not None
    with pytest.raises(ConfigurationError, match="nan"):
        score_checked(Metric("nan", lambda p, r: float("nan")), "a", "b", line=None)
