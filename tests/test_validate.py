"""Every validation check: a minimal bad example, asserting the code, the line and the message."""

from __future__ import annotations

import gzip
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from unitune.data import Dataset, ValidationReport, fix, split, validate
from unitune.types import content_text

U = {"role": "user", "content": "Where is my order?"}
A = {"role": "assistant", "content": "It ships tomorrow."}
S = {"role": "system", "content": "You are a support agent."}


class WordCounter:
    """A deterministic stand-in tokenizer so these tests check the rules, not a vocabulary."""

    name = "words"
    approximate = True
    method = "whitespace words"

    def count_text(self, text: str) -> int:
        return len(text.split())

    def count_texts(self, texts: Sequence[str]) -> list[int]:
        return [len(t.split()) for t in texts]

    def count_messages(self, messages: Sequence[Mapping[str, Any]], *, tools: Any = None) -> int:
        return sum(len(content_text(m.get("content")).split()) + 3 for m in messages) + 3


def run(lines: Sequence[Any], tmp_path: Path, provider: str = "openai", **kw: Any) -> ValidationReport:
    """Validate a file whose line 1 is a good example and whose next lines are `lines`."""
    path = tmp_path / "data.jsonl"
    body = [json.dumps({"messages": [U, A]})]
    body += [x if isinstance(x, str) else json.dumps(x) for x in lines]
    path.write_text("\n".join(body) + "\n", encoding="utf-8")
    return validate(path, provider=provider, counter=WordCounter(), **kw)


def only(report: ValidationReport, code: str) -> Any:
    found = [i for i in report.issues if i.code == code]
    assert found, f"{code} not reported; got {[i.code for i in report.issues]}"
    return found[0]


# (code, severity, provider, bad line, words in the message). An error is a vendor rule that refuses
# the data and that the wire file keeps (profiles.toml says which); everything else is a warning.
def _call(cid: str, name: str = "f", args: Any = "{}") -> dict[str, Any]:
    return {"id": cid, "type": "function", "function": {"name": name, "arguments": args}}


def _with_call(call: dict[str, Any], answer: bool = True) -> list[dict[str, Any]]:
    messages = [U, {"role": "assistant", "tool_calls": [call]}]
    if answer:
        messages.append({"role": "tool", "tool_call_id": call["id"], "content": "ok"})
    return [*messages, A]


CASES: list[tuple[str, str, str, Any, str]] = [
    ("invalid_json", "error", "openai", '{"messages": [', "not valid JSON"),
    ("not_an_object", "error", "openai", "[1, 2]", "JSON object"),
    ("unknown_format", "error", "openai", {"foo": "hi"}, "cannot tell the format"),
    ("mixed_formats", "error", "openai", {"prompt": "a", "completion": "b"}, "one format per file"),
    ("blank_line", "warning", "openai", "   ", "blank line"),
    ("unrecognized_key", "warning", "openai", {"messages": [U, A], "meta": 1}, "'meta' (1)"),
    ("unrecognized_key", "warning", "together", {"messages": [U, A], "id": 7}, "left out of the wire file"),
    ("deprecated_functions", "warning", "openai", {"messages": [U, A], "functions": []}, "legacy"),
    ("missing_messages", "error", "openai", {"messages": []}, "non-empty list"),
    ("message_not_object", "error", "openai", {"messages": [U, "hi"]}, "message 2"),
    ("message_missing_role", "error", "openai", {"messages": [{"content": "x"}, A]}, "no 'role'"),
    ("unrecognized_role", "error", "openai", {"messages": [{"role": "developer", "content": "x"}, A]}, "'developer'"),
    ("unrecognized_role", "error", "together", {"messages": [U, {"role": "Assistant", "content": "x"}]}, "lower case"),
    (
        "tools_unsupported",
        "error",
        "cohere",
        {"messages": [U, A, {"role": "tool", "content": "x", "tool_call_id": "c"}]},
        "tool result",
    ),
    ("message_unrecognized_key", "warning", "openai", {"messages": [{**U, "lang": "en"}, A]}, "'lang' (1)"),
    ("missing_content", "error", "openai", {"messages": [{"role": "user"}, A]}, "no 'content'"),
    ("missing_content", "warning", "together", {"messages": [{"role": "user"}, A]}, "no 'content'"),
    ("null_content", "error", "openai", {"messages": [{"role": "user", "content": None}, A]}, "null"),
    ("null_content", "warning", "together", {"messages": [{"role": "user", "content": None}, A]}, "null"),
    ("content_not_string", "error", "openai", {"messages": [{"role": "user", "content": 5}, A]}, "got int"),
    ("empty_content", "error", "openai", {"messages": [{"role": "user", "content": ""}, A]}, "empty"),
    ("empty_content", "warning", "together", {"messages": [{"role": "user", "content": ""}, A]}, "empty"),
    ("empty_content", "warning", "mistral", {"messages": [{"role": "user", "content": ""}, A]}, "empty"),
    ("empty_content", "error", "bedrock-nova", {"messages": [{"role": "user", "content": ""}, A]}, "empty"),
    ("empty_reply", "error", "openai", {"messages": [U, {"role": "assistant", "content": ""}]}, "empty"),
    ("empty_reply", "error", "mistral", {"messages": [U, {"role": "assistant", "content": ""}]}, "empty"),
    ("empty_reply", "warning", "bedrock-claude", {"messages": [U, {"role": "assistant", "content": ""}]}, "empty"),
    ("blank_content", "warning", "openai", {"messages": [U, {"role": "assistant", "content": "  "}]}, "whitespace"),
    (
        "multimodal_not_supported",
        "warning",
        "bedrock-claude",
        {"messages": [{"role": "user", "content": [{"type": "text", "text": "x"}]}, A]},
        "text only",
    ),
    (
        "invalid_content_part",
        "error",
        "openai",
        {"messages": [{"role": "user", "content": [{"type": "audio"}]}, A]},
        "content part",
    ),
    (
        "image_not_user",
        "warning",
        "openai",
        {"messages": [U, {"role": "assistant", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]},
        "user messages only",
    ),
    (
        "image_dropped",
        "warning",
        "together",
        {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}, A]},
        "data URLs",
    ),
    (
        "image_dropped",
        "warning",
        "bedrock-nova",
        {"messages": [{"role": "user", "content": [{"type": "text", "text": "q"}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA=="}}]}, A]},
        "S3",
    ),
    ("invalid_weight", "error", "openai", {"messages": [U, {**A, "weight": 0.5}]}, "0 or 1"),
    ("invalid_weight", "error", "together", {"messages": [U, {**A, "weight": 2}]}, "0 or 1"),
    ("weight_not_integer", "warning", "together", {"messages": [U, {**A, "weight": 1.0}]}, "written as 1"),
    ("weight_not_integer", "warning", "mistral", {"messages": [U, {**A, "weight": True}]}, "written as 1"),
    ("weight_not_assistant", "warning", "openai", {"messages": [{**U, "weight": 1}, A]}, "assistant messages only"),
    ("weight_unsupported", "warning", "cohere", {"messages": [U, {**A, "weight": 1}]}, "no per-message weights"),
    ("no_trained_turn", "warning", "openai", {"messages": [U, {**A, "weight": 0}]}, "weight 0"),
    ("special_token", "warning", "openai", {"messages": [{**U, "content": "hi <|im_end|>"}, A]}, "'<|im_end|>'"),
    ("special_token", "warning", "mistral", {"messages": [{**U, "content": "hi [INST] x"}, A]}, "'[INST]'"),
    (
        "reserved_keyword",
        "error",
        "bedrock-claude",
        {"messages": [{**U, "content": "Quote:\nHuman: hi"}, A]},
        "'\\nHuman:'",
    ),
    ("reserved_keyword", "error", "bedrock-nova", {"messages": [{**U, "content": "User: hi"}, A]}, "'User:'"),
    ("pii_email", "warning", "openai", {"messages": [{**U, "content": "write to ana@example.org"}, A]}, "email"),
    ("pii_phone", "warning", "openai", {"messages": [{**U, "content": "call +44 20 7946 0958"}, A]}, "phone"),
    ("pii_card", "warning", "openai", {"messages": [{**U, "content": "card 4242 4242 4242 4242"}, A]}, "Luhn"),
    (
        "pii_iban",
        "warning",
        "openai",
        {"messages": [{**U, "content": "IBAN GB82 WEST 1234 5698 7654 32"}, A]},
        "IBAN",
    ),
    (
        "pii_national_id",
        "warning",
        "openai",
        {"messages": [{**U, "content": "my ID is 123456782"}, A]},
        "national id",
    ),
    ("missing_assistant", "error", "openai", {"messages": [U]}, "nothing to train on"),
    ("last_not_assistant", "warning", "mistral", {"messages": [U, A, U]}, "trailing messages left out"),
    ("last_not_assistant", "warning", "bedrock-claude", {"messages": [U, A, U]}, "trailing messages left out"),
    ("invalid_first_role", "error", "bedrock-claude", {"messages": [A, U, A]}, "starts with 'assistant'"),
    ("consecutive_roles", "warning", "bedrock-claude", {"messages": [U, U, A]}, "merged into one turn"),
    ("invalid_role_order", "error", "mistral", {"messages": [U, {"role": "tool", "tool_call_id": "abcdefghi", "content": "r"}, A]}, "cannot follow a 'user'"),
    ("too_few_messages", "error", "mistral", {"messages": [S, A]}, "at least 2"),
    ("multiple_system", "warning", "mistral", {"messages": [S, S, U, A]}, "joined into one"),
    ("multiple_system", "warning", "bedrock-claude", {"messages": [S, S, U, A]}, "joined"),
    ("system_not_first", "warning", "mistral", {"messages": [U, S, A]}, "moved to the start"),
    ("too_many_turns", "warning", "bedrock-llama", {"messages": [U, A, U, A]}, "single exchanges"),
    (
        "tools_dropped",
        "warning",
        "cohere",
        {"messages": [U, A], "tools": [{"type": "function", "function": {"name": "f"}}]},
        "tool definitions",
    ),
    ("invalid_tools", "error", "openai", {"messages": [U, A], "tools": [{"type": "web"}]}, "tool 1"),
    (
        "tool_missing_description",
        "error",
        "mistral",
        {"messages": [U, A], "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]},
        "no 'description'",
    ),
    ("invalid_tool_call", "error", "openai", {"messages": [U, {"role": "assistant", "tool_calls": []}]}, "non-empty"),
    ("invalid_tool_call", "warning", "together", {"messages": [U, {"role": "assistant", "tool_calls": []}]}, "non-empty"),
    ("invalid_function_name", "error", "openai", {"messages": _with_call(_call("c1", "bad name"))}, "'bad name'"),
    ("invalid_tool_arguments", "error", "openai", {"messages": _with_call(_call("c1", args={"a": 1}))}, "JSON string"),
    ("invalid_tool_arguments", "warning", "mistral", {"messages": _with_call(_call("abcdefghi", args={"a": 1}))}, "JSON string"),
    ("tool_arguments_not_json", "warning", "openai", {"messages": _with_call(_call("c1", args="{oops"))}, "not valid JSON"),
    ("invalid_tool_call_id", "warning", "mistral", {"messages": _with_call(_call("c1"))}, "rewrites it"),
    ("tool_missing_call_id", "error", "openai", {"messages": [U, {"role": "tool", "content": "r"}, A]}, "tool_call_id"),
    ("tool_missing_call_id", "warning", "together", {"messages": [U, {"role": "tool", "content": "r"}, A]}, "tool_call_id"),
    (
        "tool_response_unpaired",
        "warning",
        "openai",
        {"messages": [U, {"role": "tool", "tool_call_id": "zz", "content": "r"}, A]},
        "'zz'",
    ),
    (
        "tool_response_unpaired",
        "error",
        "mistral",
        {"messages": [U, {"role": "assistant", "tool_calls": [_call("abcdefghi")]}, {"role": "tool", "tool_call_id": "zzzzzzzzz", "content": "r"}, A]},
        "'zzzzzzzzz'",
    ),
    ("tool_call_unanswered", "warning", "openai", {"messages": _with_call(_call("c9"), answer=False)}, "c9"),
    ("tool_call_unanswered", "error", "mistral", {"messages": _with_call(_call("abcdefghi"), answer=False)}, "abcdefghi"),
    (
        "tool_calls_not_assistant",
        "error",
        "openai",
        {"messages": [{**U, "tool_calls": [{"id": "c", "type": "function", "function": {}}]}, A]},
        "only assistant",
    ),
    (
        "tool_calls_with_content",
        "warning",
        "mistral",
        {"messages": [U, {"role": "assistant", "content": "let me see", "tool_calls": [_call("abcdefghi")]}, {"role": "tool", "tool_call_id": "abcdefghi", "content": "r"}, A]},
        "not both",
    ),
    (
        "deprecated_function_call",
        "warning",
        "openai",
        {"messages": [U, {"role": "assistant", "content": None, "function_call": {"name": "f", "arguments": "{}"}}, {"role": "function", "name": "f", "content": "r"}, A]},
        "legacy",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("code", "severity", "provider", "bad", "words"), CASES, ids=[c[0] for c in CASES])
def test_check(code: str, severity: str, provider: str, bad: Any, words: str, tmp_path: Path) -> None:
    report = run([bad], tmp_path, provider=provider)
    issue = only(report, code)
    assert issue.severity == severity
    assert issue.line == 2
    assert words in issue.message
    assert str(tmp_path / "data.jsonl") in str(issue)
    assert report.counts[code] >= 1
    # Line 1 is good: nothing is reported against it.
    assert not [i for i in report.issues if i.line == 1]


def test_invalid_utf8_has_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "data.jsonl"
    path.write_bytes(json.dumps({"messages": [U, A]}).encode() + b'\n{"messages": "caf\xe9"}\n')
    report = validate(path, counter=WordCounter())
    issue = only(report, "invalid_utf8")
    assert (issue.line, issue.column) == (2, 18)
    assert "0xe9" in issue.message


def test_invalid_json_column(tmp_path: Path) -> None:
    issue = only(run(['{"messages": [1,]}'], tmp_path), "invalid_json")
    assert issue.column == 17  # the "]" after the trailing comma


PREF_OK = {
    "input": {"messages": [U]},
    "preferred_output": [A],
    "non_preferred_output": [{**A, "content": "No."}],
}


@pytest.mark.parametrize(
    ("code", "bad"),
    [
        ("invalid_preference_input", {**PREF_OK, "input": {"messages": []}}),
        ("invalid_preference_output", {**PREF_OK, "preferred_output": [A, A]}),
        ("invalid_preference_output", {**PREF_OK, "non_preferred_output": [U]}),
        ("preference_last_input_assistant", {**PREF_OK, "input": {"messages": [U, A]}}),
        ("identical_preference", {**PREF_OK, "non_preferred_output": [A]}),
    ],
)
def test_preference_checks(code: str, bad: dict[str, Any], tmp_path: Path) -> None:
    path = tmp_path / "dpo.jsonl"
    path.write_text(json.dumps(PREF_OK) + "\n" + json.dumps(bad) + "\n")
    report = validate(path, provider="together", counter=WordCounter())
    assert only(report, code).line == 2


def test_preference_unsupported(tmp_path: Path) -> None:
    path = tmp_path / "dpo.jsonl"
    path.write_text(json.dumps(PREF_OK) + "\n")
    assert only(validate(path, provider="mistral", counter=WordCounter()), "preference_unsupported").line == 1


def test_duplicates_and_near_duplicates(tmp_path: Path) -> None:
    near = {"messages": [{**U, "content": "where is my ORDER"}, {**A, "content": "It ships tomorrow!"}]}
    report = run([{"messages": [U, A]}, near], tmp_path)
    assert only(report, "duplicate_example").message == "exact duplicate of line 1"
    assert only(report, "near_duplicate").line == 3


def test_leakage_between_train_and_validation(tmp_path: Path) -> None:
    valid = tmp_path / "valid.jsonl"
    other = {"messages": [{**U, "content": "Different question"}, A]}
    valid.write_text(json.dumps(other) + "\n" + json.dumps({"messages": [U, A]}) + "\n")
    report = run([], tmp_path, validation=valid)
    issue = only(report, "train_validation_leakage")
    assert issue.line == 2
    assert issue.path == str(valid)
    assert "line 1" in issue.message


def test_dataset_size_rules(tmp_path: Path) -> None:
    report = run([], tmp_path)  # one example
    assert only(report, "too_few_examples").severity == "error"  # OpenAI needs 10
    assert "try few-shot prompting" in only(report, "small_dataset").message
    rows = [{"messages": [{**U, "content": f"q{i}"}, A]} for i in range(60)]
    report = run(rows, tmp_path)
    assert "too_few_examples" not in report.counts
    assert "small_dataset" not in report.counts
    assert only(report, "below_recommended_size").severity == "info"
    assert report.ok


def test_token_limit_and_stats(tmp_path: Path) -> None:
    long = {"messages": [{**U, "content": "word " * 50}, A]}
    report = run([long], tmp_path, token_limit=20)
    issue = only(report, "too_many_tokens")
    assert issue.line == 2
    assert "over the 20-token limit" in issue.message
    stats = report.stats
    assert stats.examples == 2
    assert stats.examples_over_limit == 1
    # Line 1: 4 + 3 = 7 user... (4 words +3) + (3 words +3) + 3 = 16; line 2: (50+3) + (3+3) + 3 = 62.
    assert stats.tokens_per_example.total == 16 + 62
    assert (stats.tokens_per_example.min, stats.tokens_per_example.max) == (16, 62)
    assert stats.assistant_tokens_per_example.total == 6
    assert stats.messages_per_example.p50 == 2
    assert stats.approximate_tokens is True
    assert stats.tokenizer == "words"


def test_percentiles_nearest_rank() -> None:
    from unitune.data import Distribution

    d = Distribution.of(list(range(1, 101)))
    assert (d.p5, d.p50, d.p95, d.min, d.max) == (5, 50, 95, 1, 100)
    assert Distribution.of([7]).p95 == 7
    assert Distribution.of([]).count == 0


def test_missing_system_and_user_are_summarised(tmp_path: Path) -> None:
    report = run([{"messages": [S, U, A]}, {"messages": [S, A]}], tmp_path)
    assert only(report, "missing_system").message.startswith("1 of 3 examples")
    assert only(report, "missing_user").message == "1 example has no user message"


def test_issue_cap_keeps_exact_counts(tmp_path: Path) -> None:
    report = run(["nope"] * 50, tmp_path, max_issues=10)
    assert report.counts["invalid_json"] == 50
    assert len(report.issues) == 10
    assert report.truncated


def test_formats_are_normalised(tmp_path: Path) -> None:
    files = {
        "pc.jsonl": {"prompt": "Where?", "completion": "Here."},
        "sharegpt.jsonl": {
            "conversations": [{"from": "human", "value": "Where?"}, {"from": "gpt", "value": "Here."}]
        },
        "alpaca.jsonl": {"instruction": "Where", "input": "is it?", "output": "Here."},
    }
    for name, row in files.items():
        path = tmp_path / name
        path.write_text(json.dumps(row) + "\n")
        (example,) = list(Dataset.from_jsonl(path))
        assert [m.role for m in example.messages] == ["user", "assistant"], name  # type: ignore[union-attr]
        assert example.line == 1


def test_gzip_and_csv(tmp_path: Path) -> None:
    gz = tmp_path / "data.jsonl.gz"
    with gzip.open(gz, "wt") as fh:
        fh.write(json.dumps({"messages": [U, A]}) + "\n")
    assert len(list(Dataset.from_jsonl(gz))) == 1
    csv_path = tmp_path / "data.csv"
    csv_path.write_text('question,answer\n"Where, exactly?",Here\n"multi\nline",ok\n')
    rows = list(Dataset.from_csv(csv_path, prompt="question", completion="answer"))
    assert [r.line for r in rows] == [2, 4]
    assert rows[0].messages[0].content == "Where, exactly?"  # type: ignore[union-attr]
    report = validate(Dataset.from_csv(csv_path, prompt="q", completion="answer"), counter=WordCounter())
    assert only(report, "missing_column").line == 1


def test_records_and_examples_round_trip() -> None:
    from unitune.data import ChatExample

    ds = Dataset.from_records([{"messages": [U, A]}])
    (example,) = list(ds)
    assert isinstance(example, ChatExample)
    again = list(Dataset.from_records([example]))
    assert again[0].messages == example.messages  # type: ignore[union-attr]
    gen = Dataset.from_records(x for x in [{"messages": [U, A]}])
    assert len(list(gen)) == len(list(gen)) == 1  # a generator is kept so it can be re-read


def test_iterating_a_bad_file_raises_dataset_error(tmp_path: Path) -> None:
    from unitune import DatasetError

    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"messages": [U, A]}) + "\n{oops\n")
    with pytest.raises(DatasetError) as info:
        list(Dataset.from_jsonl(path))
    assert (info.value.line, info.value.column) == (2, 2)
    assert f"{path}:2:2:" in str(info.value)


def test_fix_repairs_and_reports(tmp_path: Path) -> None:
    src = tmp_path / "messy.jsonl"
    rows = [
        json.dumps({"messages": [U, A]}),
        "",
        json.dumps({"messages": [U, A]}),  # duplicate
        json.dumps({"messages": [{**U, "content": " padded "}, A, U]}),  # trailing user
        "not json",
        json.dumps({"messages": [{"role": "robot", "content": "x"}]}),
    ]
    src.write_text("\n".join(rows) + "\n")
    result = fix(Dataset.from_jsonl(src), tmp_path / "fixed.jsonl", provider="mistral")
    assert result.kept == 2
    assert result.repaired == {"blank_line_removed": 1, "whitespace_trimmed": 1, "trailing_turns_removed": 1}
    assert result.dropped == {"duplicate_example": 1, "invalid_json": 1, "unrecognized_role": 1}
    assert (3, "duplicate_example") in result.dropped_lines
    fixed = validate(result.path, provider="mistral", counter=WordCounter())
    assert fixed.ok  # the corrected file passes the checks it was fixed for


def test_split_is_deterministic_exact_and_stratified(tmp_path: Path) -> None:
    rows = [
        {
            "messages": [
                {**U, "content": f"q{i}"},
                {**A, "content": json.dumps({"cat": "a" if i % 4 else "b"})},
            ]
        }
        for i in range(100)
    ]
    rows.append(rows[0])  # a duplicate, removed
    ds = Dataset.from_records(rows)

    def category(rec: Mapping[str, Any]) -> str:
        return str(json.loads(rec["messages"][-1]["content"])["cat"])

    one = split(ds, tmp_path / "one", validation_fraction=0.2, seed=3, stratify=category)
    two = split(ds, tmp_path / "two", validation_fraction=0.2, seed=3, stratify=category)
    assert (one.train_examples, one.validation_examples, one.duplicates_removed) == (80, 20, 1)
    assert one.strata == {"a": (60, 15), "b": (20, 5)}
    assert one.train_path.read_bytes() == two.train_path.read_bytes()
    other = split(ds, tmp_path / "three", validation_fraction=0.2, seed=4)
    assert other.validation_path.read_bytes() != one.validation_path.read_bytes()
    train = {json.dumps(x) for x in map(json.loads, one.train_path.read_text().splitlines())}
    valid = {json.dumps(x) for x in map(json.loads, one.validation_path.read_text().splitlines())}
    assert not train & valid
    assert len(list(one.train)) == 80


def test_truncated_gzip_is_reported_after_the_good_lines(tmp_path: Path) -> None:
    good = gzip.compress(("".join(json.dumps({"messages": [U, A]}) + "\n" for _ in range(3))).encode())
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(good[: len(good) - 6])  # lose the end-of-stream trailer
    report = validate(path, counter=WordCounter())
    issue = only(report, "invalid_gzip")
    assert issue.line == 4
    assert "corrupt or truncated" in issue.message
    assert report.stats.examples == 3
