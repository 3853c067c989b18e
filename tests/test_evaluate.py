"""`unitune.evaluate`: metric arithmetic, the verdict, batching and progress, all against the fake provider.

Through the one-provider shorthand `evaluate(provider, model, data, baseline=...)`: the tuned model is
the candidate "tuned" and the baseline "base" (without a baseline the model is named by its id).
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from unitune.data import ChatExample, Dataset, PreferenceExample
from unitune.errors import AuthenticationError, ConfigurationError, ProviderError, ProviderUnavailableError
from unitune.evaluate import (
    EvaluationReport,
    Metric,
    SampleRow,
    evaluate,
    exact_match,
    json_fields,
    json_valid,
)
from unitune.testing import FakeClock, FakeProvider
from unitune.types import ChatResponse, Message

TUNED, BASE = "tuned-model", "base-model"


def example(prompt: str, answer: str | None, *, line: int | None = None) -> ChatExample:
    messages = [Message(role="system", content="You triage tickets."), Message(role="user", content=prompt)]
    if answer is not None:
        messages.append(Message(role="assistant", content=answer))
    return ChatExample(messages=messages, line=line)


def last_user(messages: list[Message]) -> str:
    return next(m.text for m in reversed(messages) if m.role == "user")


def scripted(fake: FakeProvider, answers: dict[str, dict[str, str]]) -> None:
    """Answer each prompt per model from `answers[model][prompt]`."""
    fake.set_reply(lambda model, messages: answers[model][last_user(messages)])


@pytest.fixture
def fake() -> FakeProvider:
    return FakeProvider(clock=FakeClock())


# -- the metric functions, by hand -----------------------------------------------------------------


def test_exact_match_strips_whitespace_only() -> None:
    assert exact_match("  yes\n", "yes") == 1.0
    assert exact_match("Yes", "yes") == 0.0
    assert exact_match("", "") == 1.0


@pytest.mark.parametrize(
    ("prediction", "reference", "score"),
    [
        ('{"a": 1}', '{"a": 2}', 1.0),  # valid, values do not matter here
        ("[1, 2]", '{"a": 1}', 1.0),  # an array is structured too
        ('"just a string"', '{"a": 1}', 0.0),  # parses, but an object was expected
        ("42", "[1]", 0.0),
        ("not json", '{"a": 1}', 0.0),
        ('```json\n{"a": 1}\n```', '{"a": 1}', 0.0),  # a fenced answer does not parse
        ("NaN", "1", 0.0),  # not strict JSON
        ("42", "plain text reference", 1.0),  # non-JSON reference: any JSON value counts
        ('"hi"', "42", 1.0),  # scalar JSON reference: any JSON value counts
        ("hello", "hello", 0.0),
    ],
)
def test_json_valid(prediction: str, reference: str, score: float) -> None:
    assert json_valid(prediction, reference) == score


REF = json.dumps({"category": "billing", "priority": "high", "reply": "We are on it."})


@pytest.mark.parametrize(
    ("prediction", "score"),
    [
        (REF, 1.0),
        ('{"reply": "We are on it.", "priority": "high", "category": "billing", "extra": 1}', 1.0),
        ('{"category": "billing", "priority": "low"}', 1 / 3),  # one field wrong, one missing
        ('{"category": "billing", "priority": "high"}', 2 / 3),
        ('{"category": "shipping"}', 0.0),
        ('["billing", "high"]', 0.0),  # not an object
        ("billing, high", 0.0),  # not JSON
    ],
)
def test_json_fields_partial_credit(prediction: str, score: float) -> None:
    assert json_fields(prediction, REF) == pytest.approx(score)


def test_json_fields_compares_json_types_and_skips_non_object_references() -> None:
    assert json_fields('{"ok": 1}', '{"ok": true}') == 0.0  # Python says True == 1; JSON does not
    assert json_fields('{"n": 1.0, "xs": [1, {"a": null}]}', '{"n": 1, "xs": [1, {"a": null}]}') == 1.0
    assert json_fields('{"xs": [1, 2]}', '{"xs": [1, 2, 3]}') == 0.0
    assert json_fields("{}", "{}") == 1.0
    assert json_fields("[]", "{}") == 0.0
    for reference in ("plain text", "[1, 2]", "7", "{broken"):
        assert json_fields('{"a": 1}', reference) is None


# -- evaluate: arithmetic end to end --------------------------------------------------------------


def test_means_and_counts_over_a_mixed_set(fake: FakeProvider) -> None:
    data = [
        example("t1", '{"category": "billing", "priority": "high"}'),
        example("t2", '{"category": "bug", "priority": "low"}'),
        example("t3", "Please restart the router."),  # not JSON: json_fields skips it
        example("t4", '{"category": "account", "priority": "high"}'),
    ]
    scripted(
        fake,
        {
            TUNED: {
                "t1": '{"category": "billing", "priority": "high"}',  # exact, valid, 2/2
                "t2": '{"priority": "low", "category": "bug"}',  # not exact, valid, 2/2
                "t3": "  Please restart the router.\n",  # exact, not JSON
                "t4": '{"category": "account", "priority": "low"}',  # not exact, valid, 1/2
            },
            BASE: {
                "t1": "Category: billing",
                "t2": '{"category": "bug"}',  # valid, 1/2
                "t3": "Try turning it off.",
                "t4": '"account"',  # JSON but not an object: invalid for an object reference, 0
            },
        },
    )

    report = evaluate(fake, TUNED, data, baseline=BASE, metrics=["exact_match", "json_valid", "json_fields"])

    assert report.examples == 4
    assert report.metrics == ["exact_match", "json_valid", "json_fields"]
    assert report.primary_metric == "json_fields"  # JSON data: the verdict rests on the fields
    assert [c.name for c in report.candidates] == ["tuned", "base"]
    assert (report.tuned.model, report.baseline.model) == (TUNED, BASE)  # type: ignore[union-attr]
    tuned, base = report.tuned.metrics, report.baseline.metrics  # type: ignore[union-attr]
    assert tuned["exact_match"].mean == pytest.approx(2 / 4)
    assert tuned["exact_match"].count == 4
    assert tuned["json_valid"].mean == pytest.approx(3 / 4)
    assert tuned["json_fields"].mean == pytest.approx((1 + 1 + 0.5) / 3)
    assert tuned["json_fields"].count == 3  # the plain-text reference was skipped for this metric
    assert base["exact_match"].mean == 0.0
    assert base["json_valid"].mean == pytest.approx(1 / 4)
    assert base["json_fields"].mean == pytest.approx((0 + 0.5 + 0) / 3)
    assert base["json_fields"].count == 3
    estimates = {d.metric: (d.estimate, d.n) for d in report.differences}
    assert estimates == {
        "exact_match": (pytest.approx(0.5), 4),
        "json_valid": (pytest.approx(0.5), 4),
        "json_fields": (pytest.approx(2 / 3), 3),  # paired on the three JSON references only
    }
    exact = report.difference("exact_match")
    assert (exact.better, exact.worse, exact.p_value) == (2, 0, pytest.approx(0.5))  # McNemar: 2 * 1/4
    assert report.difference("json_fields").p_value is None  # partial credit: no pass/fail test
    # Every one of the three JSON examples gains on json_fields: the paired interval is above zero,
    # but three examples are too few to ship on.
    assert report.verdict.decision == "inconclusive"
    assert "too few" in report.verdict.reason
    assert report.verdict.more_examples == 20 - 3
    assert report.verdict.metric == "json_fields"
    assert report.verdict.low == pytest.approx(0.5)
    assert report.verdict.regressions == []
    assert not report.improved  # not a ship, on three examples


def test_default_metrics_follow_the_data_and_the_primary_metric_is_json_fields(fake: FakeProvider) -> None:
    fake.set_reply('{"category": "billing", "priority": "low"}')
    data = [
        example("a", '{"category": "billing", "priority": "high"}'),
        example("b", '{"category": "bug", "priority": "low"}'),
    ]

    report = evaluate(fake, TUNED, data, baseline=BASE)

    assert report.metrics == ["exact_match", "json_valid", "json_fields", "field:category", "field:priority"]
    assert report.primary_metric == "json_fields"
    assert report.tuned.metrics["field:category"].mean == pytest.approx(0.5)
    assert report.tuned.metrics["field:priority"].mean == pytest.approx(0.5)
    assert report.tuned.metrics["json_fields"].mean == pytest.approx(0.5)


def test_metric_with_no_applicable_example_is_not_compared(fake: FakeProvider) -> None:
    scripted(fake, {TUNED: {"a": "yes", "b": "no"}, BASE: {"a": "maybe", "b": "no"}})

    report = evaluate(
        fake,
        TUNED,
        [example("a", "yes"), example("b", "no")],
        baseline=BASE,
        metrics=["exact_match", "json_valid", "json_fields"],
    )

    assert report.tuned.metrics["json_fields"].mean is None
    assert report.tuned.metrics["json_fields"].count == 0
    assert (report.tuned.metrics["json_fields"].low, report.tuned.metrics["json_fields"].high) == (None, None)
    # exact_match and json_valid only: json_fields applied to no example, so it is not compared.
    assert {d.metric: d.estimate for d in report.differences} == {
        "exact_match": pytest.approx(0.5),
        "json_valid": 0.0,
    }
    with pytest.raises(KeyError):
        report.difference("json_fields")


# -- custom metrics ---------------------------------------------------------------------------------


def test_custom_metrics_named_function_and_dataclass(fake: FakeProvider) -> None:
    def starts_with_greeting(prediction: str, reference: str) -> float:
        return 1.0 if prediction.startswith("Hello") else 0.0

    def only_long(prediction: str, reference: str) -> float | None:
        return None if len(reference) < 10 else float(len(prediction) >= len(reference))

    length_ratio = Metric("length_ratio", lambda p, r: min(len(p), len(r)) / max(len(p), len(r), 1))
    scripted(
        fake,
        {
            TUNED: {"a": "Hello there", "b": "Hello", "c": "nope"},
            BASE: {"a": "Hi", "b": "Hey", "c": "nope"},
        },
    )
    data = [example("a", "Hello there"), example("b", "Hello, a long answer"), example("c", "nope")]

    report = evaluate(
        fake,
        TUNED,
        data,
        baseline=BASE,
        metrics=[starts_with_greeting, length_ratio, only_long, "exact_match"],
    )

    assert report.metrics == ["starts_with_greeting", "length_ratio", "only_long", "exact_match"]
    tuned, base = report.tuned.metrics, report.baseline.metrics  # type: ignore[union-attr]
    assert tuned["starts_with_greeting"].mean == pytest.approx(2 / 3)
    assert base["starts_with_greeting"].mean == 0.0
    assert tuned["length_ratio"].mean == pytest.approx((1 + 5 / 20 + 1) / 3)
    assert base["length_ratio"].mean == pytest.approx((2 / 11 + 3 / 20 + 1) / 3)
    assert tuned["only_long"].count == 2  # None for the short reference "nope"
    assert tuned["only_long"].mean == pytest.approx(0.5)
    assert base["only_long"].mean == 0.0
    assert tuned["exact_match"].mean == pytest.approx(2 / 3)
    assert base["exact_match"].mean == pytest.approx(1 / 3)
    # Free-text references with no chrf among the metrics: the verdict rests on exact_match.
    assert report.primary_metric == "exact_match"
    assert {d.metric: d.estimate for d in report.differences} == {
        "starts_with_greeting": pytest.approx(2 / 3),
        "length_ratio": pytest.approx((1 - 2 / 11) / 3 + (5 / 20 - 3 / 20) / 3),
        "only_long": pytest.approx(0.5),
        "exact_match": pytest.approx(1 / 3),
    }
    # Better on all four, but one example of three decides exact_match: the interval reaches zero.
    assert report.verdict.decision == "inconclusive"
    assert report.verdict.low == 0.0
    assert report.verdict.more_examples is not None


def test_bad_metrics_are_refused_with_a_way_out(fake: FakeProvider) -> None:
    data = [example("a", "x")]
    with pytest.raises(ConfigurationError, match=r"Unknown metric 'blue'.*exact_match.*Metric\(name, fn\)"):
        evaluate(fake, TUNED, data, metrics=["blue"])
    with pytest.raises(ConfigurationError, match=r"no usable name.*Metric\('my_metric', fn\)"):
        evaluate(fake, TUNED, data, metrics=[lambda p, r: 1.0])
    with pytest.raises(ConfigurationError, match="share the name"):
        evaluate(fake, TUNED, data, metrics=["exact_match", Metric("exact_match", exact_match)])
    with pytest.raises(ConfigurationError, match="metrics is empty"):
        evaluate(fake, TUNED, data, metrics=[])
    with pytest.raises(ConfigurationError, match="'field_accuracy' found no fields"):
        evaluate(fake, TUNED, data, metrics=["field_accuracy"])
    with pytest.raises(ConfigurationError, match=r"primary metric 'json_valid' is not among the metrics"):
        evaluate(fake, TUNED, data, metrics=["exact_match"], primary_metric="json_valid")
    assert fake.calls_to("chat") == []  # refused before any model was called


def test_a_lone_metric_name_is_not_split_into_letters(fake: FakeProvider) -> None:
    fake.set_reply("x")
    report = evaluate(fake, TUNED, [example("a", "x")], metrics="exact_match")
    assert report.metrics == ["exact_match"]


@pytest.mark.parametrize("bad", [1.5, -0.1, float("nan"), "1"])
def test_a_score_outside_0_1_names_the_metric_and_example(fake: FakeProvider, bad: Any) -> None:
    fake.set_reply("x")
    metric = Metric("broken", lambda p, r: bad)
    with pytest.raises(
        ConfigurationError,
        match=r"Metric 'broken' returned .* on the example at line 7\. A score must be a number in \[0, 1\]",
    ):
        evaluate(fake, TUNED, [example("a", "x", line=7)], metrics=[metric])


def test_boolean_scores_count_as_0_and_1(fake: FakeProvider) -> None:
    fake.set_reply("x")
    report = evaluate(fake, TUNED, [example("a", "x"), example("b", "y")], metrics=[Metric("eq", str.__eq__)])
    assert report.tuned.metrics["eq"].mean == 0.5


# -- the verdict --------------------------------------------------------------------------------------


def test_verdict_tuned_not_better_when_tied(fake: FakeProvider) -> None:
    fake.set_reply(lambda model, messages: '{"a": 1}')  # both models answer identically
    report = evaluate(
        fake,
        TUNED,
        [example("p", '{"a": 1}'), example("q", '{"a": 2}')],
        baseline=BASE,
        metrics=["exact_match", "json_valid", "json_fields"],
    )

    assert [(d.metric, d.estimate, d.low, d.high) for d in report.differences] == [
        ("exact_match", 0.0, 0.0, 0.0),
        ("json_valid", 0.0, 0.0, 0.0),
        ("json_fields", 0.0, 0.0, 0.0),
    ]
    assert report.difference("exact_match").p_value == 1.0  # no discordant pair
    assert report.verdict.decision == "abandon"
    assert report.verdict.regressions == []
    assert report.verdict.reason.startswith("tuned does not beat base: +0.000")
    assert not report.improved


def test_verdict_tuned_worse_on_one_metric_is_a_trade_off_not_a_ship(fake: FakeProvider) -> None:
    # The tuned model gets the fields right on 20 of 30 but breaks JSON on the other 10, where the
    # base model always answers valid JSON with wrong values: better on the primary metric,
    # significantly worse on json_valid.
    prompts = [f"p{i}" for i in range(30)]
    scripted(
        fake,
        {
            TUNED: {p: ('{"a": 1, "b": 2}' if i < 20 else "a=1") for i, p in enumerate(prompts)},
            BASE: dict.fromkeys(prompts, '{"a": 0, "b": 0}'),
        },
    )
    data = [example(p, '{"a": 1, "b": 2}') for p in prompts]

    report = evaluate(fake, TUNED, data, baseline=BASE, metrics=["exact_match", "json_valid", "json_fields"])

    assert report.difference("json_fields").estimate == pytest.approx(20 / 30)
    assert report.difference("json_fields").low > 0
    worse = report.difference("json_valid")
    assert worse.estimate == pytest.approx(-10 / 30)
    assert worse.high < 0
    assert (worse.better, worse.worse) == (0, 10)
    assert worse.p_value == pytest.approx(2 / 2**10)
    assert report.verdict.decision == "inconclusive"
    assert report.verdict.regressions == ["json_valid"]
    assert "significantly worse on json_valid" in report.verdict.reason
    assert not report.improved
    assert str(report).splitlines()[-1] == f"verdict: inconclusive: {report.verdict.reason}"


def test_differences_within_epsilon_are_ties(fake: FakeProvider) -> None:
    scripted(fake, {TUNED: {"a": "x", "b": "x"}, BASE: {"a": "x", "b": "y"}})
    data = [example("a", "x"), example("b", "x")]
    # tuned 1.0 vs base 0.5 on exact_match: a lead at the default epsilon (too few examples to be
    # sure of it), a tie at 0.6, and a tie means the fine-tune adds nothing: abandon.
    lead = evaluate(fake, TUNED, data, baseline=BASE, metrics=["exact_match"])
    assert lead.verdict.estimate == pytest.approx(0.5)
    assert lead.verdict.decision == "inconclusive"
    assert lead.epsilon == pytest.approx(1e-3)
    tie = evaluate(fake, TUNED, data, baseline=BASE, metrics=["exact_match"], epsilon=0.6)
    assert tie.verdict.estimate == pytest.approx(0.5)
    assert tie.verdict.decision == "abandon"
    assert tie.epsilon == 0.6
    assert tie.verdict.reason.startswith("tuned does not beat base")


def test_no_baseline_scores_the_model_alone(fake: FakeProvider) -> None:
    fake.set_reply("yes")
    report = evaluate(fake, TUNED, [example("a", "yes"), example("b", "no")])

    assert report.baseline is None
    assert [(c.name, c.role) for c in report.candidates] == [(TUNED, "tuned")]
    assert report.tuned.metrics["exact_match"].mean == 0.5
    assert report.differences == []
    assert report.flips == []
    assert report.verdict.decision == "inconclusive"
    assert report.verdict.reason.startswith("nothing to compare: add a baseline")
    assert {c.args["model"] for c in fake.calls_to("chat")} == {TUNED}
    assert [row.answers for row in report.samples] == [{TUNED: "yes"}, {TUNED: "yes"}]
    lines = str(report).splitlines()
    # Headline, header, the one candidate's row and the verdict: no baseline row, no differences.
    assert len(lines) == 4
    assert lines[2].split()[0] == TUNED
    assert lines[3] == f"verdict: inconclusive: {report.verdict.reason}"


def test_no_usable_example_is_refused_before_any_request(fake: FakeProvider) -> None:
    progress: list[tuple[int, int]] = []
    with pytest.raises(ConfigurationError, match=r"No example can be evaluated \(2 no assistant message\)"):
        evaluate(
            fake,
            TUNED,
            [example("a", None), example("b", None)],
            baseline=BASE,
            on_progress=lambda *a: progress.append(a),
        )
    with pytest.raises(ConfigurationError, match=r"No example can be evaluated \(the data is empty\)"):
        evaluate(fake, TUNED, [], baseline=BASE)
    assert progress == []
    assert fake.calls_to("chat") == []


# -- which examples, which prompt -----------------------------------------------------------------


def test_prompt_is_everything_before_the_last_assistant_message(fake: FakeProvider) -> None:
    seen: list[list[Message]] = []

    def reply(model: str, messages: list[Message]) -> str:
        seen.append(messages)
        return "final"

    fake.set_reply(reply)
    convo = ChatExample(
        messages=[
            Message(role="system", content="sys"),
            Message(role="user", content="first"),
            Message(role="assistant", content="earlier answer"),
            Message(role="user", content="second"),
            Message(role="assistant", content="final"),
        ]
    )

    report = evaluate(fake, TUNED, [convo], metrics=["exact_match"])

    assert [m.text for m in seen[0]] == ["sys", "first", "earlier answer", "second"]
    assert report.tuned.metrics["exact_match"].mean == 1.0
    assert report.samples[0].reference == "final"
    assert report.samples[0].prompt == "second"


def test_examples_without_a_reference_are_skipped_and_counted(fake: FakeProvider) -> None:
    fake.set_reply("ok")
    tool_call_only = ChatExample(
        messages=[
            Message(role="user", content="weather?"),
            Message(
                role="assistant",
                tool_calls=[{"id": "c1", "type": "function", "function": {"name": "w", "arguments": "{}"}}],
            ),
        ]
    )
    assistant_first = ChatExample(messages=[Message(role="assistant", content="Hi, how can I help?")])
    data = [example("a", "ok"), example("b", None), example("c", None), tool_call_only, assistant_first]

    report = evaluate(fake, TUNED, data, baseline=BASE)

    assert report.examples == 1
    assert report.skipped == {"no_assistant_message": 2, "no_reference_text": 1, "no_prompt": 1}
    assert report.skipped_total == 4
    assert len(fake.calls_to("chat")) == 2  # one example, two models
    assert str(report).splitlines()[0] == (
        "Evaluation on 1 example (4 skipped: no_assistant_message 2, no_reference_text 1, no_prompt 1)"
    )


def test_preference_examples_use_the_preferred_answer(fake: FakeProvider) -> None:
    fake.set_reply(lambda model, messages: "good" if model == TUNED else "bad")
    pair = PreferenceExample(
        input=[Message(role="user", content="q")],
        preferred=Message(role="assistant", content="good"),
        non_preferred=Message(role="assistant", content="bad"),
    )
    report = evaluate(fake, TUNED, [pair], baseline=BASE, metrics=["exact_match"])
    assert report.tuned.metrics["exact_match"].mean == 1.0
    assert report.baseline is not None
    assert report.baseline.metrics["exact_match"].mean == 0.0


def test_reads_a_jsonl_dataset(fake: FakeProvider, tmp_path: Path) -> None:
    path = tmp_path / "valid.jsonl"
    rows = [
        {
            "messages": [
                {"role": "user", "content": f"q{i}"},
                {"role": "assistant", "content": json.dumps({"i": i})},
            ]
        }
        for i in range(6)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    fake.set_reply(
        lambda model, messages: json.dumps({"i": int(last_user(messages)[1:])}) if model == TUNED else "?"
    )

    report = evaluate(fake, TUNED, Dataset.from_jsonl(path), baseline=BASE)

    assert report.examples == 6
    assert report.metrics == ["exact_match", "json_valid", "json_fields", "field:i"]
    assert report.tuned.metrics["exact_match"].mean == 1.0
    assert report.tuned.metrics["json_fields"].mean == 1.0
    assert report.tuned.metrics["field:i"].mean == 1.0
    assert report.baseline is not None
    assert report.baseline.metrics["json_valid"].mean == 0.0
    assert [s.line for s in report.samples] == [1, 2, 3, 4, 5, 6]
    assert report.verdict.decision == "inconclusive"  # right on every one, but on too few to ship
    assert report.verdict.metric == "json_fields"
    assert (report.verdict.estimate, report.verdict.low, report.verdict.high) == (1.0, 1.0, 1.0)
    assert [f.line for f in report.flips if f.metric == "exact_match"] == [1, 2, 3, 4, 5, 6]
    assert {f.direction for f in report.flips} == {"fixed"}


def test_max_examples_takes_the_first_usable_ones_and_stops_reading(fake: FakeProvider) -> None:
    fake.set_reply("x")
    read: list[int] = []

    def stream() -> Iterator[ChatExample]:
        for i in range(100):
            read.append(i)
            yield example(f"p{i}", None if i == 1 else "x")  # example 1 has no answer

    report = evaluate(fake, TUNED, stream(), baseline=BASE, max_examples=3)

    assert report.examples == 3
    assert report.skipped == {"no_assistant_message": 1}
    assert read == [0, 1, 2, 3]  # the rest of the stream was never pulled
    assert len(fake.calls_to("chat")) == 6


@pytest.mark.parametrize(
    ("kwargs", "message"), [({"batch_size": 0}, "batch_size"), ({"max_examples": 0}, "max_examples")]
)
def test_bad_sizes_are_refused(fake: FakeProvider, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        evaluate(fake, TUNED, [example("a", "x")], **kwargs)


# -- batching, params, progress, usage, errors -------------------------------------------------------


class BatchingFake(FakeProvider):
    """A provider that generates in batches, as the local trainer does: records what it was sent."""

    batches_chat = True

    def __init__(self) -> None:
        super().__init__(clock=FakeClock())
        self.batches: list[tuple[str, int, dict[str, Any]]] = []

    def chat_batch(self, model: str, conversations: list[list[Message]], **params: Any) -> list[ChatResponse]:
        self.batches.append((model, len(conversations), params))
        return [ChatResponse(model=model, provider=self.name, content=last_user(c)) for c in conversations]


def test_a_provider_without_batches_gets_one_chat_per_example_from_a_pool(fake: FakeProvider) -> None:
    asked: list[tuple[str, str, str]] = []

    def reply(model: str, messages: list[Message]) -> str:
        asked.append((model, last_user(messages), threading.current_thread().name))
        return last_user(messages)

    fake.set_reply(reply)
    data = [example(f"p{i}", f"p{i}") for i in range(5)]

    report = evaluate(fake, TUNED, data, baseline=BASE, batch_size=2)

    chats = fake.calls_to("chat")
    assert len(chats) == 10  # batch_size is for batching providers only
    assert Counter(c.args["model"] for c in chats) == {TUNED: 5, BASE: 5}
    # Every (model, prompt) pair exactly once; the order is the pool's.
    assert sorted((m, p) for m, p, _ in asked) == sorted(
        (m, f"p{i}") for m in (TUNED, BASE) for i in range(5)
    )
    assert all(name.startswith("unitune-eval") for _, _, name in asked)
    assert report.tuned.answered == report.baseline.answered == 5  # type: ignore[union-attr]


def test_a_batching_provider_gets_batches_of_batch_size_and_the_chat_params() -> None:
    provider = BatchingFake()
    data = [example(f"p{i}", f"p{i}") for i in range(7)]

    report = evaluate(
        provider, TUNED, data, baseline=BASE, batch_size=3, chat_params={"temperature": 0, "max_tokens": 64}
    )

    params = {"temperature": 0, "max_tokens": 64}
    # Each model's examples in batches of 3, 3 and 1, every batch with the chat params.
    assert [size for model, size, _ in provider.batches if model == TUNED] == [3, 3, 1]
    assert [size for model, size, _ in provider.batches if model == BASE] == [3, 3, 1]
    assert len(provider.batches) == 6
    assert all(p == params for _, _, p in provider.batches)
    assert provider.calls_to("chat") == []  # the override replaced per-example calls
    assert report.tuned.metrics["exact_match"].mean == 1.0
    assert report.tuned.answered == 7


def test_a_provider_returning_the_wrong_number_of_answers_is_an_error() -> None:
    class Short(BatchingFake):
        def chat_batch(
            self, model: str, conversations: list[list[Message]], **params: Any
        ) -> list[ChatResponse]:
            return super().chat_batch(model, conversations, **params)[:-1]

    with pytest.raises(ProviderError, match="returned 1 responses for 2 conversations"):
        evaluate(Short(), TUNED, [example("a", "a"), example("b", "b")])


def test_a_transient_error_in_a_batch_is_recorded_as_failed_answers() -> None:
    class Flaky(BatchingFake):
        def chat_batch(
            self, model: str, conversations: list[list[Message]], **params: Any
        ) -> list[ChatResponse]:
            if model == BASE:
                raise ProviderUnavailableError("Service unavailable (fake)", provider="fake", status_code=503)
            return super().chat_batch(model, conversations, **params)

    report = evaluate(Flaky(), TUNED, [example(f"p{i}", f"p{i}") for i in range(3)], baseline=BASE)

    assert report.tuned.answered == 3
    assert report.baseline is not None
    assert (report.baseline.answered, report.baseline.failed) == (0, 3)


def test_on_progress_reports_at_the_start_and_after_each_answer(fake: FakeProvider) -> None:
    fake.set_reply("x")
    progress: list[tuple[int, int]] = []

    evaluate(
        fake,
        TUNED,
        [example(f"p{i}", "x") for i in range(7)],
        baseline=BASE,
        batch_size=3,
        on_progress=lambda done, total: progress.append((done, total)),
    )

    # 7 examples × 2 candidates = 14 answers, counted one by one from whichever thread got one.
    assert progress == [(done, 14) for done in range(15)]


def test_on_progress_counts_each_answer_of_a_batch() -> None:
    provider = BatchingFake()
    progress: list[tuple[int, int]] = []

    evaluate(
        provider,
        TUNED,
        [example(f"p{i}", f"p{i}") for i in range(5)],
        batch_size=2,
        on_progress=lambda done, total: progress.append((done, total)),
    )

    assert progress == [(done, 5) for done in range(6)]
    assert [size for _, size, _ in provider.batches] == [2, 2, 1]


def test_usage_is_summed_per_model(fake: FakeProvider) -> None:
    scripted(fake, {TUNED: {"a": "one two", "b": "three"}, BASE: {"a": "x", "b": "y"}})
    data = [example("a", "one two"), example("b", "three")]

    report = evaluate(fake, TUNED, data, baseline=BASE)

    # The fake counts words + 4 per prompt message (system + user: (3 + 4) + (1 + 4)) and answer words.
    assert report.tuned.usage.prompt_tokens == 2 * 12
    assert report.tuned.usage.completion_tokens == 3
    assert report.baseline is not None
    assert report.baseline.usage.prompt_tokens == 2 * 12
    assert report.baseline.usage.completion_tokens == 2
    assert "tokens" in str(report)


def test_a_provider_error_retrying_cannot_fix_propagates(fake: FakeProvider) -> None:
    fake.inject_error("chat", AuthenticationError("bad key (fake)", provider="fake", status_code=401))
    with pytest.raises(AuthenticationError, match="bad key"):
        evaluate(fake, TUNED, [example("a", "x")])


def test_a_transient_error_that_outlasts_the_retries_is_a_failed_answer(fake: FakeProvider) -> None:
    def reply(model: str, messages: list[Message]) -> str:
        if model == BASE and last_user(messages) == "p1":
            raise ProviderUnavailableError("Service unavailable (fake)", provider="fake", status_code=503)
        return "x"

    fake.set_reply(reply)
    data = [example(f"p{i}", "x") for i in range(4)]

    report = evaluate(fake, TUNED, data, baseline=BASE, metrics=["exact_match"])

    assert (report.tuned.answered, report.tuned.failed) == (4, 0)
    assert report.baseline is not None
    assert (report.baseline.answered, report.baseline.failed) == (3, 1)
    assert report.baseline.metrics["exact_match"].count == 3  # the failed answer is not scored
    assert report.difference("exact_match").n == 3  # nor paired
    assert [s.index for s in report.samples] == [0, 2, 3]  # a sample shows every candidate's answer


def test_a_transient_error_on_every_request_leaves_nothing_scored(fake: FakeProvider) -> None:
    fake.unavailable("chat", times=4)
    report = evaluate(
        fake, TUNED, [example("a", "x"), example("b", "x")], baseline=BASE, metrics=["exact_match"]
    )
    assert report.tuned.failed == 2
    assert report.tuned.metrics["exact_match"].mean is None
    assert report.differences == []
    assert report.samples == []
    assert report.verdict.decision == "inconclusive"
    assert report.verdict.reason == "no example could be scored on exact_match"


# -- the report -------------------------------------------------------------------------------------


def test_samples_are_the_first_eight_with_every_answer(fake: FakeProvider) -> None:
    def reply(model: str, messages: list[Message]) -> str:
        if model == TUNED and last_user(messages) == "p3":
            raise ProviderUnavailableError("Service unavailable (fake)", provider="fake", status_code=503)
        return f"{model}:{last_user(messages)}"

    fake.set_reply(reply)
    long_prompt = "word " * 100
    data = [example(long_prompt if i == 0 else f"p{i}", f"ref{i}", line=i + 1) for i in range(12)]

    report = evaluate(fake, TUNED, data, baseline=BASE, batch_size=3)

    assert [s.line for s in report.samples] == [1, 2, 3, 5, 6, 7, 8, 9]  # line 4 lacks the tuned answer
    assert len(report.samples[0].prompt) == 160
    assert report.samples[0].prompt.endswith("…")
    assert report.samples[1] == SampleRow(
        index=1, line=2, prompt="p1", reference="ref1", answers={"tuned": f"{TUNED}:p1", "base": f"{BASE}:p1"}
    )


def test_str_renders_a_table_with_the_verdict(fake: FakeProvider) -> None:
    scripted(fake, {TUNED: {"a": '{"k": 1}', "b": '{"k": 2}'}, BASE: {"a": "k=1", "b": '{"k": 0}'}})

    report = evaluate(
        fake,
        TUNED,
        [example("a", '{"k": 1}'), example("b", '{"k": 2}')],
        baseline=BASE,
        metrics=["exact_match", "json_valid", "json_fields"],
    )
    lines = str(report).splitlines()

    assert lines[0] == "Evaluation on 2 examples"
    assert lines[1].split() == [
        "candidate", "exact_match", "json_valid", "json_fields*", "p50", "ms", "tokens", "in/out", "$/1k", "req"
    ]  # fmt: skip
    # name, then each metric's value and interval, then p50, tokens in/out and cost.
    assert lines[2].split()[:7] == ["tuned", "1.000", "[1.00,", "1.00]", "1.000", "[1.00,", "1.00]"]
    assert lines[2].split()[-2:] == ["12/2", "-"]  # (3 + 4) + (1 + 4) prompt tokens, no catalog price
    assert lines[3].split()[:7] == ["base", "0.000", "[0.00,", "0.00]", "0.500", "[0.00,", "1.00]"]
    assert lines[4] == "differences on json_fields* vs base:"
    assert lines[5].split() == ["tuned:", "+1.000", "[+1.00,", "+1.00]", "n=2"]
    assert lines[-1] == (
        "verdict: inconclusive: tuned leads base by +1.000 [+1.000, +1.000] on json_fields (n=2), "
        "but 2 examples are too few to trust the interval: evaluate at least 20"
    )
    assert lines[-1] == f"verdict: {report.verdict.decision}: {report.verdict.reason}"


def test_report_round_trips_through_json(fake: FakeProvider) -> None:
    fake.set_reply("x")
    report = evaluate(fake, TUNED, [example("a", "x")], baseline=BASE)
    again = EvaluationReport.model_validate_json(report.model_dump_json())
    assert again == report
    assert str(again) == str(report)
