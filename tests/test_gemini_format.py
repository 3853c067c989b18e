"""Vertex AI's Gemini tuning formats (`gemini`, `gemini-preference`), their reader and the `vertex`
dataset profile: the records, what each conversion loses, the round trip through the reader, and the
severity of each check on crafted lines."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from unitune.data import ChatExample, Dataset, PreferenceExample, ValidationReport, validate
from unitune.data._loaders import FORMATS, detect_format
from unitune.data.convert import ConversionLoss, convert_example, get_format, write_jsonl
from unitune.data.profiles import get_profile
from unitune.data.tokens import counter_for

U = {"role": "user", "content": "Where is my order?"}
A = {"role": "assistant", "content": "It ships tomorrow."}
S = {"role": "system", "content": "You are a support agent."}


def chat(*messages: dict[str, Any], line: int = 4, **kw: Any) -> ChatExample:
    return ChatExample.model_validate({"messages": list(messages), "line": line, **kw})


def pair(
    *asked: dict[str, Any], good: str = "Tomorrow.", bad: str = "No idea.", **kw: Any
) -> PreferenceExample:
    return PreferenceExample.model_validate(
        {
            "input": list(asked),
            "preferred": {"role": "assistant", "content": good, **kw},
            "non_preferred": {"role": "assistant", "content": bad},
            "line": 2,
        }
    )


def codes(losses: list[ConversionLoss]) -> list[str]:
    return [x.code for x in losses]


def part(text: str) -> dict[str, Any]:
    return {"parts": [{"text": text}]}


# -- the registry ----------------------------------------------------------------------------------


def test_both_formats_are_registered_with_their_pages() -> None:
    sft, dpo = get_format("gemini"), get_format("gemini-preference")
    assert sft.accepts == {"chat"}
    assert dpo.accepts == {"preference"}
    assert sft.source.endswith("/gemini-supervised-tuning-prepare")
    assert dpo.source.endswith("/gemini-preference-tuning-prepare")
    assert {"gemini", "gemini_preference"} <= set(FORMATS)


# -- supervised: the record ------------------------------------------------------------------------


def test_a_chat_is_written_as_system_instruction_and_contents() -> None:
    record, losses = convert_example(chat(S, U, A, {"role": "user", "content": "And?"}, A), "gemini")
    assert losses == []
    assert record == {
        "systemInstruction": {"role": "system", **part("You are a support agent.")},
        "contents": [
            {"role": "user", **part("Where is my order?")},
            {"role": "model", **part("It ships tomorrow.")},
            {"role": "user", **part("And?")},
            {"role": "model", **part("It ships tomorrow.")},
        ],
    }


def test_without_a_system_message_there_is_no_system_instruction() -> None:
    record, _ = convert_example(chat(U, A), "gemini")
    assert record == {
        "contents": [{"role": "user", **part(U["content"])}, {"role": "model", **part(A["content"])}]
    }


def test_text_parts_are_joined_into_one_part() -> None:
    asked = {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}
    record, losses = convert_example(chat(asked, A), "gemini")
    assert losses == []
    assert record is not None
    assert record["contents"][0] == {"role": "user", **part("a\nb")}


def test_a_conversation_that_opens_with_the_model_is_written_as_it_is() -> None:
    # Google's pages name no first role: nothing to repair or refuse.
    record, losses = convert_example(chat(A, U, A), "gemini")
    assert losses == []
    assert record is not None
    assert [c["role"] for c in record["contents"]] == ["model", "user", "model"]


# -- supervised: what is lost, what is refused ----------------------------------------------------


def test_turns_alternate_consecutive_ones_are_merged() -> None:
    second = {"role": "user", "content": "Order 42."}
    record, losses = convert_example(chat(U, second, A), "gemini")
    assert record is not None
    assert record["contents"][0] == {"role": "user", **part("Where is my order?\n\nOrder 42.")}
    assert losses == [
        ConversionLoss(
            line=4,
            code="turns_merged",
            message="messages[1]: merged into the previous user turn (blank line between): gemini turns "
            "alternate between user and model",
        )
    ]


def test_system_messages_are_joined_into_the_one_instruction() -> None:
    record, losses = convert_example(chat(S, U, {"role": "system", "content": "Be brief."}, A), "gemini")
    assert record is not None
    assert record["systemInstruction"] == {"role": "system", **part("You are a support agent.\n\nBe brief.")}
    assert codes(losses) == ["system_merged", "system_merged"]


def test_trailing_user_turns_are_dropped_the_last_turn_is_the_models() -> None:
    record, losses = convert_example(chat(U, A, {"role": "user", "content": "Thanks"}), "gemini")
    assert record is not None
    assert record["contents"][-1]["role"] == "model"
    assert len(record["contents"]) == 2
    assert codes(losses) == ["trailing_dropped"]
    assert losses[0].message.startswith("messages[2]: trailing user message dropped")


def test_names_weights_and_images_are_lost_and_said_so() -> None:
    image = {"type": "image_url", "image_url": {"url": "https://example.com/parcel.png"}}
    asked = {"role": "user", "content": [{"type": "text", "text": "Is this mine?"}, image], "name": "ana"}
    reply = {"role": "assistant", "content": "Yes.", "weight": 0}
    record, losses = convert_example(chat(asked, reply, A), "gemini")
    assert record is not None
    assert record["contents"][0] == {"role": "user", **part("Is this mine?")}
    assert codes(losses) == ["name_dropped", "image_dropped", "weight_dropped", "turns_merged"]
    assert "Cloud Storage fileData, which unitune does not upload" in losses[1].message
    assert "is trained on" in losses[2].message


def test_tool_use_is_refused_and_unused_tools_dropped() -> None:
    call = {"id": "call_1", "type": "function", "function": {"name": "track", "arguments": "{}"}}
    tool = {"type": "function", "function": {"name": "track", "parameters": {"type": "object"}}}
    calling = chat(
        U,
        {"role": "assistant", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "content": "ok"},
        A,
    )
    record, losses = convert_example(calling, "gemini")
    assert record is None
    assert codes(losses) == ["tool_calls_unsupported"]
    assert losses[0].refused
    record, losses = convert_example(chat(U, A, tools=[tool], parallel_tool_calls=False), "gemini")
    assert record is not None
    assert codes(losses) == ["tools_dropped", "parallel_tool_calls_dropped"]


@pytest.mark.parametrize(
    ("example", "code"),
    [
        (chat(S, U), "no_assistant"),
        (pair(U), "preference_unsupported"),
    ],
)
def test_what_cannot_be_a_gemini_chat_is_refused(example: Any, code: str) -> None:
    record, losses = convert_example(example, "gemini")
    assert record is None
    assert [(x.code, x.refused) for x in losses] == [(code, True)]


# -- preference pairs -------------------------------------------------------------------------------


def test_a_pair_is_written_as_contents_and_two_scored_completions() -> None:
    record, losses = convert_example(pair(S, U), "gemini-preference")
    assert losses == []
    assert record == {
        "system_instruction": part("You are a support agent."),
        "contents": [{"role": "user", **part("Where is my order?")}],
        "completions": [
            {"score": 1, "completion": {"role": "model", **part("Tomorrow.")}},
            {"score": 0, "completion": {"role": "model", **part("No idea.")}},
        ],
    }


@pytest.mark.parametrize(
    ("asked", "code"),
    [
        ([U, A], "bad_role_order"),  # the contents end with a user turn
        ([S], "no_user"),
    ],
)
def test_a_pair_whose_input_cannot_end_with_the_user_is_refused(
    asked: list[dict[str, Any]], code: str
) -> None:
    record, losses = convert_example(pair(*asked), "gemini-preference")
    assert record is None
    assert [(x.code, x.refused) for x in losses] == [(code, True)]


def test_a_chat_is_refused_as_a_pair_and_a_weight_on_a_completion_is_dropped() -> None:
    record, losses = convert_example(chat(U, A), "gemini-preference")
    assert record is None
    assert codes(losses) == ["not_preference"]
    record, losses = convert_example(
        pair(U, {"role": "assistant", "content": "Hm?", "weight": 0}, U, weight=1), "gemini-preference"
    )
    assert record is not None
    assert codes(losses) == ["weight_dropped", "weight_dropped"]
    assert all("completion" in x.message for x in losses)


# -- reading back -----------------------------------------------------------------------------------


def _written(examples: list[Any], fmt: str, tmp_path: Path) -> Path:
    result = write_jsonl(examples, fmt, tmp_path / f"{fmt}.jsonl")
    assert result.refused == 0, result.losses
    return result.path


def test_a_written_file_reads_back_as_the_same_conversations(tmp_path: Path) -> None:
    examples = [
        chat(S, U, A, line=1),
        chat(U, A, {"role": "user", "content": "Ünïcödé ✓ 東京"}, A, line=2),
        chat(A, U, A, line=3),
    ]
    path = _written(examples, "gemini", tmp_path)
    back = list(Dataset.from_jsonl(path))
    assert back == examples
    for before, after in zip(examples, back, strict=True):
        assert convert_example(after, "gemini") == convert_example(before, "gemini")


def test_a_written_preference_file_reads_back_as_the_same_pairs(tmp_path: Path) -> None:
    examples = [pair(S, U).model_copy(update={"line": 1}), pair(U, A, U).model_copy(update={"line": 2})]
    path = _written(examples, "gemini-preference", tmp_path)
    assert list(Dataset.from_jsonl(path)) == examples


def test_a_merged_file_converts_to_the_same_record_again(tmp_path: Path) -> None:
    lossy = chat(
        S, U, {"role": "user", "content": "Order 42."}, {"role": "system", "content": "Be brief."}, A, U
    )
    path = _written([lossy], "gemini", tmp_path)
    (back,) = list(Dataset.from_jsonl(path))
    first, _ = convert_example(lossy, "gemini")
    again, losses = convert_example(back, "gemini")
    assert again == first
    assert losses == []


def _lines(tmp_path: Path, rows: list[Any], name: str = "data.jsonl") -> Path:
    path = tmp_path / name
    path.write_text(
        "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8"
    )
    return path


def test_googles_own_examples_read(tmp_path: Path) -> None:
    # The text-tuning page's example (systemInstruction with role "system") and the preference page's
    # (system_instruction without one).
    sft = {
        "systemInstruction": {
            "role": "system",
            "parts": [{"text": "You are a pirate dog named Captain Barktholomew."}],
        },
        "contents": [
            {"role": "user", "parts": [{"text": "Hi"}]},
            {"role": "model", "parts": [{"text": "Argh! What brings ye to my ship?"}]},
        ],
    }
    (example,) = list(Dataset.from_jsonl(_lines(tmp_path, [sft])))
    assert isinstance(example, ChatExample)
    assert [(m.role, m.content) for m in example.messages] == [
        ("system", "You are a pirate dog named Captain Barktholomew."),
        ("user", "Hi"),
        ("assistant", "Argh! What brings ye to my ship?"),
    ]
    dpo = {
        "system_instruction": {"parts": [{"text": "You are a chat bot."}]},
        "contents": [{"role": "user", "parts": [{"text": "What is my favorite fruit?"}]}],
        "completions": [
            {"score": 1, "completion": {"role": "model", "parts": [{"text": "Apple! Apple! Apple!"}]}},
            {
                "score": 0,
                "completion": {"role": "model", "parts": [{"text": "Your favorite fruit is apple."}]},
            },
        ],
    }
    (example,) = list(Dataset.from_jsonl(_lines(tmp_path, [dpo], "dpo.jsonl")))
    assert isinstance(example, PreferenceExample)
    assert [m.role for m in example.input] == ["system", "user"]
    assert (example.preferred.content, example.non_preferred.content) == (
        "Apple! Apple! Apple!",
        "Your favorite fruit is apple.",
    )


def test_either_spelling_of_the_system_key_and_either_order_of_scores_read() -> None:
    assert detect_format({"contents": []}) == "gemini"
    assert detect_format({"contents": [], "completions": []}) == "gemini_preference"
    reversed_scores = {
        "systemInstruction": part("s"),
        "contents": [{"role": "user", **part("q")}],
        "completions": [
            {"score": 0, "completion": {"role": "model", **part("bad")}},
            {"score": 1.0, "completion": {"role": "model", **part("good")}},
        ],
    }
    (example,) = list(Dataset.from_records([reversed_scores]))
    assert isinstance(example, PreferenceExample)
    assert example.input[0].content == "s"
    assert (example.preferred.content, example.non_preferred.content) == ("good", "bad")


def test_images_and_function_declarations_read_as_their_canonical_forms() -> None:
    row = {
        "contents": [
            {
                "role": "user",
                "parts": [
                    {"text": "Is this mine?"},
                    {"fileData": {"mimeType": "image/png", "fileUri": "gs://bucket/parcel.png"}},
                    {"inlineData": {"mimeType": "image/jpeg", "data": "QUJD"}},
                ],
            },
            {"role": "model", **part("Yes.")},
        ],
        "tools": [{"functionDeclarations": [{"name": "track", "description": "Track a parcel"}]}],
        "id": "row-1",
    }
    (example,) = list(Dataset.from_records([row]))
    assert isinstance(example, ChatExample)
    assert example.messages[0].content == [
        {"type": "text", "text": "Is this mine?"},
        {"type": "image_url", "image_url": {"url": "gs://bucket/parcel.png"}},
        {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,QUJD"}},
    ]
    assert example.tools == [
        {"type": "function", "function": {"name": "track", "description": "Track a parcel"}}
    ]
    assert example.extra == {"id": "row-1"}


@pytest.mark.parametrize(
    ("instruction", "found"),
    [
        ({"parts": []}, ("empty_system", "warning")),
        ({"text": "no parts"}, ("null_content", "warning")),
        (
            {"parts": [{"fileData": {"mimeType": "image/png", "fileUri": "gs://b/i.png"}}]},
            ("empty_system", "warning"),
        ),
    ],
)
def test_a_system_instruction_without_text_is_reported(
    instruction: dict[str, Any], found: tuple[str, str]
) -> None:
    row = {"systemInstruction": instruction, "contents": [g("user", "q"), g("model", "a")]}
    report = validate(Dataset.from_records([row]), provider="vertex")
    assert found in [(i.code, i.severity) for i in report.issues]


# -- the vertex profile -----------------------------------------------------------------------------


def test_the_profile_holds_googles_limits() -> None:
    profile = get_profile("vertex")
    assert profile.max_tokens_per_example == 131_072
    assert profile.max_file_bytes == 1_000_000_000
    assert profile.max_examples == 1_000_000
    assert profile.min_examples == 1  # no minimum: few examples are at most a warning
    assert profile.preference
    assert not profile.tools
    assert not profile.weights
    assert profile.limit_count == "upper_bound"
    for code in (
        "file_too_large",
        "too_many_examples",
        "too_few_messages",
        "preference_last_input_assistant",
    ):
        assert profile.severity(code) == "error", code
        assert profile.checks[code].vendor == "refuses"
    for code in ("too_many_tokens", "consecutive_roles", "last_not_assistant", "small_dataset"):
        assert profile.severity(code) == "warning", code
    assert profile.severity("below_recommended_size") == "info"


def _report(tmp_path: Path, rows: list[Any], **kw: Any) -> ValidationReport:
    return validate(_lines(tmp_path, rows), provider="vertex", **kw)


def _severity(report: ValidationReport, code: str) -> str:
    found = {i.severity for i in report.issues if i.code == code}
    assert len(found) == 1, (code, [(i.code, i.severity) for i in report.issues])
    return found.pop()


def g(role: str, text: str) -> dict[str, Any]:
    return {"role": role, **part(text)}


CALL = {"id": "call_1", "type": "function", "function": {"name": "track", "arguments": "{}"}}


@pytest.mark.parametrize(
    ("row", "code", "severity"),
    [
        ({"messages": [U, U, A]}, "consecutive_roles", "warning"),
        ({"contents": [g("user", "a"), g("user", "b"), g("model", "c")]}, "consecutive_roles", "warning"),
        ({"messages": [U, A, U]}, "last_not_assistant", "warning"),
        ({"messages": [U, S, A]}, "system_not_first", "warning"),
        ({"messages": [S, U, S, A]}, "multiple_system", "warning"),
        ({"messages": [U, {**A, "weight": 1}]}, "weight_unsupported", "warning"),
        (
            {"messages": [{**U, "content": [{"type": "text", "text": "x"}]}, A]},
            "multimodal_not_supported",
            "warning",
        ),
        ({"messages": [U, A], "id": 7}, "unrecognized_key", "warning"),
        ({"messages": [U, {"role": "assistant", "tool_calls": [CALL]}]}, "tools_unsupported", "error"),
        (
            {
                "contents": [
                    g("user", "a"),
                    {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {}}}]},
                ]
            },
            "invalid_content_part",
            "error",
        ),
        ({"messages": [S, U]}, "missing_assistant", "error"),
        ({"text": "plain"}, "text_unsupported", "error"),
    ],
)
def test_each_check_fires_with_the_profiles_severity(
    tmp_path: Path, row: dict[str, Any], code: str, severity: str
) -> None:
    report = _report(tmp_path, [row])
    assert _severity(report, code) == severity


@pytest.mark.parametrize(
    ("row", "code"),
    [
        (
            {
                "input": {"messages": [U, A]},
                "preferred_output": [A],
                "non_preferred_output": [{**A, "content": "no"}],
            },
            "preference_last_input_assistant",
        ),
        (
            {
                "input": {"messages": [S]},
                "preferred_output": [A],
                "non_preferred_output": [{**A, "content": "no"}],
            },
            "too_few_messages",
        ),
        (
            {
                "contents": [g("user", "q")],
                "completions": [
                    {"score": 1, "completion": g("model", "a")},
                    {"score": 1, "completion": g("model", "b")},
                ],
            },
            "invalid_preference_output",
        ),
    ],
)
def test_pairs_vertex_refuses_are_errors(tmp_path: Path, row: dict[str, Any], code: str) -> None:
    report = _report(tmp_path, [row], method="dpo")
    assert _severity(report, code) == "error"


def test_open_models_on_vertex_have_their_own_rules(tmp_path: Path) -> None:
    # Chat messages with plain string contents (unitune's hf-chat format), selected by name.
    profile = get_profile("vertex-open")
    assert not profile.preference
    assert not profile.tools
    image = {"type": "image_url", "image_url": {"url": "https://example.com/parcel.png"}}
    row = {"messages": [{**U, "content": [{"type": "text", "text": "Mine?"}, image]}, U, A]}
    report = validate(_lines(tmp_path, [row]), provider="vertex-open")
    assert report.ok
    assert _severity(report, "multimodal_not_supported") == "warning"
    assert "consecutive_roles" not in report.counts


def test_few_examples_are_at_most_a_warning(tmp_path: Path) -> None:
    one = _report(tmp_path, [{"messages": [U, A]}])
    assert one.ok
    assert "too_few_examples" not in one.counts
    assert _severity(one, "small_dataset") == "warning"
    sixty = _report(
        tmp_path, [{"messages": [{**U, "content": f"Where is order {i}?"}, A]} for i in range(60)]
    )
    assert sixty.ok
    assert _severity(sixty, "below_recommended_size") == "info"


def test_a_long_example_is_a_warning_counted_from_above(tmp_path: Path) -> None:
    long = {"messages": [{**U, "content": "word " * 400}, A]}
    report = _report(tmp_path, [long], model="gemini-3.5-flash", token_limit=100)
    issue = next(i for i in report.issues if i.code == "too_many_tokens")
    assert issue.severity == "warning"
    assert "cuts the end off" in issue.message
    assert "counted as an upper bound: its tokenizer is not public" in issue.message


def test_what_validate_passes_the_writers_take_whole(tmp_path: Path) -> None:
    rows: list[Any] = [
        {"messages": [U, U, A, U]},
        {"messages": [A, U, A]},
        {"messages": [S, U, S, A]},
        {"messages": [U, {**A, "weight": 0}, U, A]},
        {"contents": [g("user", "a"), g("model", "b")], "systemInstruction": part("s")},
        {"messages": [U, {"role": "assistant", "tool_calls": [CALL]}]},
        {"messages": [S, U]},
    ]
    for i, row in enumerate(rows):
        path = _lines(tmp_path, [row], f"{i}.jsonl")
        report = validate(path, provider="vertex")
        result = write_jsonl(Dataset.from_jsonl(path), "gemini", tmp_path / f"{i}.wire.jsonl")
        assert report.ok == (result.refused == 0), (row, report.issues, result.losses)
    pairs: list[Any] = [
        {
            "input": {"messages": [U, A, U]},
            "preferred_output": [A],
            "non_preferred_output": [{**A, "content": "no"}],
        },
        {
            "input": {"messages": [U, A]},
            "preferred_output": [A],
            "non_preferred_output": [{**A, "content": "no"}],
        },
        {
            "input": {"messages": [S]},
            "preferred_output": [A],
            "non_preferred_output": [{**A, "content": "no"}],
        },
    ]
    for i, row in enumerate(pairs):
        path = _lines(tmp_path, [row], f"p{i}.jsonl")
        report = validate(path, provider="vertex", method="dpo")
        result = write_jsonl(Dataset.from_jsonl(path), "gemini-preference", tmp_path / f"p{i}.wire.jsonl")
        assert report.ok == (result.refused == 0), (row, report.issues, result.losses)


# -- token counting -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "model",
    [
        "gemini-2.5-flash",
        "gemini-2.5-flash-lite",
        "gemini-2.5-pro",
        "gemini-3.5-flash",
        "gemini-3.1-flash-lite",
    ],
)
def test_gemini_ids_get_an_estimate_that_says_so(model: str) -> None:
    counter = counter_for("vertex", model)
    assert counter.approximate
    assert counter.name == "chars/4"
    assert "Gemini's tokenizer is not public offline" in counter.method


@pytest.mark.parametrize(
    ("model", "name", "chat_format"),
    [
        ("meta/llama3_1@llama-3.1-8b-instruct", "llama3", "llama3.1"),
        ("meta/llama3-2@llama-3.2-1b-instruct", "llama3", "llama3.1"),
        ("meta/llama3-3@llama-3.3-70b-instruct", "llama3", "llama3.1"),
        ("qwen/qwen3@qwen3-32b", "qwen3", "qwen3"),
    ],
)
def test_vertex_model_garden_ids_count_with_their_familys_tokenizer(
    model: str, name: str, chat_format: str
) -> None:
    pytest.importorskip("quicktok")
    counter = counter_for("vertex", model)
    assert (counter.name, counter.approximate, counter.chat_format) == (name, False, chat_format)
