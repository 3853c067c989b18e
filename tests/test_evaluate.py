"""`unitune.evaluate`: metric arithmetic, the verdict, batching and progress, all against the fake provider."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from unitune.data import ChatExample, Dataset, PreferenceExample
from unitune.errors import ProviderError, ProviderUnavailableError
from unitune.evaluate import (
    EvaluationReport,
    Metric,
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

    report = evaluate(fake, TUNED, data, baseline=BASE)

    assert report.examples == 4
    assert report.metrics == ["exact_match", "json_valid", "json_fields"]
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
    assert report.wins == 3
    assert report.compared == 3
    assert report.verdict == "tuned beats base on 3 of 3 metrics"
    assert report.improved


def test_metric_with_no_applicable_example_is_not_compared(fake: FakeProvider) -> None:
    scripted(fake, {TUNED: {"a": "yes", "b": "no"}, BASE: {"a": "maybe", "b": "no"}})

    report = evaluate(fake, TUNED, [example("a", "yes"), example("b", "no")], baseline=BASE)

    assert report.tuned.metrics["json_fields"].mean is None
    assert report.tuned.metrics["json_fields"].count == 0
    assert report.compared == 2  # exact_match and json_valid only
    assert report.wins == 1
    assert report.verdict == "tuned beats base on 1 of 2 metrics"


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
    assert report.verdict == "tuned beats base on 4 of 4 metrics"


def test_bad_metrics_are_refused_with_a_way_out(fake: FakeProvider) -> None:
    data = [example("a", "x")]
    with pytest.raises(ValueError, match=r"Unknown metric 'bleu'.*exact_match"):
        evaluate(fake, TUNED, data, metrics=["bleu"])
    with pytest.raises(ValueError, match=r"no usable name.*Metric\('my_metric', fn\)"):
        evaluate(fake, TUNED, data, metrics=[lambda p, r: 1.0])
    with pytest.raises(ValueError, match="share the name"):
        evaluate(fake, TUNED, data, metrics=["exact_match", Metric("exact_match", exact_match)])
    with pytest.raises(ValueError, match="metrics is empty"):
        evaluate(fake, TUNED, data, metrics=[])
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
        ValueError, match=r"Metric 'broken' returned .* at line 7; a score must be a number in \[0, 1\]"
    ):
        evaluate(fake, TUNED, [example("a", "x", line=7)], metrics=[metric])


def test_boolean_scores_count_as_0_and_1(fake: FakeProvider) -> None:
    fake.set_reply("x")
    report = evaluate(fake, TUNED, [example("a", "x"), example("b", "y")], metrics=[Metric("eq", str.__eq__)])
    assert report.tuned.metrics["eq"].mean == 0.5


# -- the verdict --------------------------------------------------------------------------------------


def test_verdict_tuned_not_better_when_tied(fake: FakeProvider) -> None:
    fake.set_reply(lambda model, messages: '{"a": 1}')  # both models answer identically
    report = evaluate(fake, TUNED, [example("p", '{"a": 1}'), example("q", '{"a": 2}')], baseline=BASE)

    assert report.wins == 0
    assert report.compared == 3
    assert report.regressions == []
    assert report.verdict == "no improvement — don't ship this fine-tune"
    assert not report.improved


def test_verdict_tuned_worse_on_one_metric_is_no_improvement(fake: FakeProvider) -> None:
    # The tuned model gets more fields right but breaks JSON once: better on two, worse on one.
    scripted(
        fake,
        {
            TUNED: {"p": '{"a": 1, "b": 2}', "q": '{"a": 1, "b": 2}', "r": "a=1"},
            BASE: {"p": '{"a": 0, "b": 0}', "q": '{"a": 0, "b": 0}', "r": '{"a": 0}'},
        },
    )
    data = [example(k, '{"a": 1, "b": 2}') for k in "pqr"]

    report = evaluate(fake, TUNED, data, baseline=BASE)

    assert report.wins == 2
    assert report.regressions == ["json_valid"]
    assert report.verdict == "no improvement — don't ship this fine-tune"
    assert "worse on: json_valid" in str(report)


def test_differences_within_epsilon_are_ties(fake: FakeProvider) -> None:
    scripted(fake, {TUNED: {"a": "x", "b": "x"}, BASE: {"a": "x", "b": "y"}})
    data = [example("a", "x"), example("b", "x")]
    # tuned 1.0 vs base 0.5 on exact_match: a win at the default epsilon, a tie at 0.6.
    assert evaluate(fake, TUNED, data, baseline=BASE, metrics=["exact_match"]).wins == 1
    tie = evaluate(fake, TUNED, data, baseline=BASE, metrics=["exact_match"], epsilon=0.6)
    assert tie.wins == 0
    assert tie.verdict == "no improvement — don't ship this fine-tune"


def test_no_baseline_scores_the_model_alone(fake: FakeProvider) -> None:
    fake.set_reply("yes")
    report = evaluate(fake, TUNED, [example("a", "yes"), example("b", "no")])

    assert report.baseline is None
    assert report.tuned.metrics["exact_match"].mean == 0.5
    assert (report.wins, report.compared) == (0, 0)
    assert report.verdict.startswith("no baseline — nothing to compare")
    assert {c.args["model"] for c in fake.calls_to("chat")} == {TUNED}
    assert all(row.baseline is None for row in report.samples)
    text = str(report)
    assert "base" not in text.splitlines()[2]  # no baseline column in the table header
    assert "nothing to compare" in text


def test_no_usable_example_has_nothing_to_compare(fake: FakeProvider) -> None:
    progress: list[tuple[int, int]] = []
    report = evaluate(
        fake, TUNED, [example("a", None)], baseline=BASE, on_progress=lambda *a: progress.append(a)
    )
    assert report.examples == 0
    assert report.verdict == "nothing to compare — no example could be scored"
    assert progress == [(0, 0)]
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
    assert "(4 skipped: 2 no assistant message, 1 no reference text, 1 no prompt)" in str(report)


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
    assert report.tuned.metrics["exact_match"].mean == 1.0
    assert report.tuned.metrics["json_fields"].mean == 1.0
    assert report.samples[0].line == 1
    assert report.verdict == "tuned beats base on 3 of 3 metrics"


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

    def __init__(self) -> None:
        super().__init__(clock=FakeClock())
        self.batches: list[tuple[str, int, dict[str, Any]]] = []

    def chat_batch(self, model: str, conversations: list[list[Message]], **params: Any) -> list[ChatResponse]:
        self.batches.append((model, len(conversations), params))
        return [ChatResponse(model=model, provider=self.name, content=last_user(c)) for c in conversations]


def test_default_chat_batch_calls_chat_once_per_example(fake: FakeProvider) -> None:
    fake.set_reply(lambda model, messages: last_user(messages))
    data = [example(f"p{i}", f"p{i}") for i in range(5)]

    evaluate(fake, TUNED, data, baseline=BASE, batch_size=2)

    chats = fake.calls_to("chat")
    assert len(chats) == 10
    # Batch by batch: the tuned model answers a batch, then the baseline the same batch.
    assert [c.args["model"] for c in chats] == [TUNED] * 2 + [BASE] * 2 + [TUNED] * 2 + [BASE] * 2 + [
        TUNED,
        BASE,
    ]


def test_a_batching_provider_gets_batches_of_batch_size_and_the_chat_params() -> None:
    provider = BatchingFake()
    data = [example(f"p{i}", f"p{i}") for i in range(7)]

    report = evaluate(
        provider, TUNED, data, baseline=BASE, batch_size=3, chat_params={"temperature": 0, "max_tokens": 64}
    )

    params = {"temperature": 0, "max_tokens": 64}
    assert provider.batches == [
        (TUNED, 3, params),
        (BASE, 3, params),
        (TUNED, 3, params),
        (BASE, 3, params),
        (TUNED, 1, params),
        (BASE, 1, params),
    ]
    assert provider.calls_to("chat") == []  # the override replaced per-example calls
    assert report.tuned.metrics["exact_match"].mean == 1.0


def test_a_provider_returning_the_wrong_number_of_answers_is_an_error() -> None:
    class Short(BatchingFake):
        def chat_batch(
            self, model: str, conversations: list[list[Message]], **params: Any
        ) -> list[ChatResponse]:
            return super().chat_batch(model, conversations, **params)[:-1]

    with pytest.raises(ProviderError, match="returned 1 responses for 2 conversations"):
        evaluate(Short(), TUNED, [example("a", "a"), example("b", "b")])


def test_on_progress_reports_before_and_after_each_batch(fake: FakeProvider) -> None:
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

    assert progress == [(0, 7), (3, 7), (6, 7), (7, 7)]


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


def test_provider_errors_propagate(fake: FakeProvider) -> None:
    fake.unavailable("chat")
    with pytest.raises(ProviderUnavailableError):
        evaluate(fake, TUNED, [example("a", "x")])


# -- the report -------------------------------------------------------------------------------------


def test_samples_are_the_first_five_with_both_answers(fake: FakeProvider) -> None:
    fake.set_reply(lambda model, messages: f"{model}:{last_user(messages)}")
    long_prompt = "word " * 100
    data = [example(long_prompt if i == 0 else f"p{i}", f"ref{i}", line=i + 1) for i in range(8)]

    report = evaluate(fake, TUNED, data, baseline=BASE, batch_size=3)

    assert [s.line for s in report.samples] == [1, 2, 3, 4, 5]
    assert len(report.samples[0].prompt) == 120
    assert report.samples[0].prompt.endswith("…")
    assert report.samples[1].prompt == "p1"
    assert report.samples[1].reference == "ref1"
    assert report.samples[1].tuned == f"{TUNED}:p1"
    assert report.samples[1].baseline == f"{BASE}:p1"


def test_str_renders_a_table_with_the_verdict(fake: FakeProvider) -> None:
    scripted(fake, {TUNED: {"a": '{"k": 1}', "b": '{"k": 2}'}, BASE: {"a": "k=1", "b": '{"k": 0}'}})

    report = evaluate(fake, TUNED, [example("a", '{"k": 1}'), example("b", '{"k": 2}')], baseline=BASE)
    lines = str(report).splitlines()

    assert lines[0] == "Evaluation on 2 examples"
    assert lines[1] == f"tuned: {TUNED}   base: {BASE}"
    assert lines[2].split() == ["metric", "n", "tuned", "base", "delta"]
    assert lines[3].split() == ["exact_match", "2", "1.000", "0.000", "+1.000"]
    assert lines[4].split() == ["json_valid", "2", "1.000", "0.500", "+0.500"]
    assert lines[5].split() == ["json_fields", "2", "1.000", "0.000", "+1.000"]
    assert lines[6].split()[0] == "tokens"
    assert lines[-1] == "verdict: tuned beats base on 3 of 3 metrics"


def test_report_round_trips_through_json(fake: FakeProvider) -> None:
    fake.set_reply("x")
    report = evaluate(fake, TUNED, [example("a", "x")], baseline=BASE)
    again = EvaluationReport.model_validate_json(report.model_dump_json())
    assert again == report
    assert str(again) == str(report)
