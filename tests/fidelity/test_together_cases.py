"""Together: where unitune and Together's rules once disagreed. The verdicts are together 2.14.0's
`check_file` (run here: tests/fidelity/vendor/together_check_file.py), the last SDK release with the full
client-side check, and Together's docs where they say more."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fidelity._cases import A, Case, S, U, base_lines, chat, plain, run_case
from tests.fidelity.vendor import together_check_file

CALL = {"id": "call_1", "type": "function", "function": {"name": "get_order", "arguments": "{}"}}
IMAGE = {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}

CASES = [
    Case("extra top-level keys", chat(U, A, id=7), "refuses", "together-check", "warning:unrecognized_key"),
    Case("an unknown message key", chat({**U, "lang": "en"}, A), "accepts", "together-check", "warning:message_unrecognized_key"),
    Case("weight true", chat(U, {**A, "weight": True}), "accepts", "together-check", "warning:weight_not_integer"),
    Case("weight 1.0", chat(U, {**A, "weight": 1.0}), "refuses", "together-check", "warning:weight_not_integer"),
    Case("weight 2", chat(U, {**A, "weight": 2}), "refuses", "together-check", "error:invalid_weight"),
    Case("all weights 0", chat(U, {**A, "weight": 0}), "accepts", "together-check", "warning:no_trained_turn"),
    Case("two system messages in a row", chat(S, S, U, A), "accepts", "together-check", "ok"),
    Case("two user messages in a row", chat(U, U, A), "accepts", "together-check", "ok"),
    Case("the assistant first", chat(A, U, A), "accepts", "together-check", "ok"),
    Case("a system message after the user's", chat(U, S, A), "accepts", "together-check", "ok"),
    Case("empty content", chat({**U, "content": ""}, A), "accepts", "together-check", "warning:empty_content"),
    Case("null content", chat({**U, "content": None}, A), "accepts", "together-check", "warning:null_content"),
    Case("no content key", chat({"role": "user"}, A), "refuses", "together-check", "warning:missing_content"),
    Case("special tokens", chat({**U, "content": "<|im_start|>user [INST]"}, A), "accepts", "together-check", "warning:special_token"),
    Case("a tool message without tool_call_id", chat(U, {"role": "assistant", "tool_calls": [CALL]}, {"role": "tool", "content": "ok"}, A), "accepts", "together-check", "warning:tool_missing_call_id"),
    Case("tool arguments as an object", chat(U, {"role": "assistant", "tool_calls": [{**CALL, "function": {"name": "f", "arguments": {"a": 1}}}]}, {"role": "tool", "tool_call_id": "call_1", "content": "ok"}, A), "accepts", "together-check", "warning:invalid_tool_arguments"),
    Case("no assistant message", chat(S, U), "refuses", "together-check", "error:missing_assistant"),
    Case("an image by URL", chat({"role": "user", "content": [{"type": "text", "text": "look"}, IMAGE]}, A), "refuses", "together-check", "warning:image_dropped"),
    Case("a role in capitals", chat(U, {"role": "Assistant", "content": "x"}), "refuses", "together-check", "error:unrecognized_role"),
]  # fmt: skip

PAIR = {
    "input": {"messages": [U]},
    "preferred_output": [A],
    "non_preferred_output": [{**A, "content": "No."}],
}
DPO_CASES = [
    Case("a pair", PAIR, "accepts", "together-check", "ok", method="dpo"),
    Case("input ending with the assistant", {**PAIR, "input": {"messages": [U, A]}}, "refuses", "together-check", "error:preference_last_input_assistant", method="dpo"),
    Case("two preferred outputs", {**PAIR, "preferred_output": [A, A]}, "refuses", "together-check", "error:invalid_preference_output", method="dpo"),
    Case("an extra key on a pair", {**PAIR, "id": 3}, "refuses", "together-check", "warning:unrecognized_key", method="dpo"),
]  # fmt: skip


def _run(case: Case, tmp_path: Path, base: list[str], wire: str) -> None:
    run_case(case, tmp_path, provider="together", base=base, vendor=together_check_file.check, wire=wire)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_together_case(case: Case, tmp_path: Path) -> None:
    _run(case, tmp_path, base_lines(2, plain), "together")


def _pair(i: int) -> dict[str, object]:
    return {**PAIR, "input": {"messages": [{**U, "content": f"Where is order {i}?"}]}}


@pytest.mark.parametrize("case", DPO_CASES, ids=[c.name for c in DPO_CASES])
def test_together_preference_case(case: Case, tmp_path: Path) -> None:
    _run(case, tmp_path, base_lines(2, _pair), "together-preference")


def test_a_chat_file_for_a_dpo_job_is_refused(tmp_path: Path) -> None:
    case = Case("chat data for a DPO job", chat(U, A), "refuses", "together-docs", "error:method_mismatch", by_script=False, method="dpo")  # fmt: skip
    _run(case, tmp_path, base_lines(2, plain), "together")


def test_together_plain_text_format_is_read(tmp_path: Path) -> None:
    """Together documents a plain-text format ({"text": ...}); unitune reads and writes it."""
    from unitune.data import Dataset, validate
    from unitune.data.convert import write_jsonl

    path = tmp_path / "text.jsonl"
    path.write_text('{"text": "one"}\n{"text": "two"}\n', encoding="utf-8")
    assert together_check_file.check(path) == []
    report = validate(path, provider="together")
    assert report.ok
    assert report.stats.examples == 2
    assert not validate(path, provider="openai").ok  # OpenAI trains on chats only
    out = tmp_path / "wire.jsonl"
    write_jsonl(Dataset.from_jsonl(path), "together", out)
    assert out.read_text() == path.read_text().replace(": ", ":")
    assert together_check_file.check(out) == []
