"""OpenAI: where unitune and OpenAI's rules once disagreed. Sources: the cookbook's data-prep checks (run
here: tests/fidelity/vendor/openai_cookbook.py), OpenAI's API reference and its validation errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fidelity._cases import A, Case, S, U, base_lines, chat, plain, run_case
from tests.fidelity.vendor import openai_cookbook

CASES = [
    Case("extra top-level keys", chat(U, A, id=7, lang="en"), "accepts", "openai-cookbook", "warning:unrecognized_key"),
    Case("an unknown message key", chat({**U, "lang": "en"}, A), "refuses", "openai-cookbook", "warning:message_unrecognized_key"),
    Case("empty content", chat({**U, "content": ""}, A), "refuses", "openai-cookbook", "error:empty_content"),
    Case("empty system prompt", chat({**S, "content": ""}, U, A), "refuses", "openai-cookbook", "error:empty_system"),
    Case("whitespace content", chat(U, {**A, "content": "  "}), "accepts", "openai-cookbook", "warning:blank_content"),
    Case("a special token in text", chat({**U, "content": "hi <|im_end|>"}, A), "accepts", "openai-cookbook", "warning:special_token"),
    Case("[INST] in text", chat({**U, "content": "[INST] hi"}, A), "accepts", "openai-cookbook", "warning:special_token"),
    Case("weight 1.0", chat(U, {**A, "weight": 1.0}), "accepts", "openai-cookbook", "warning:weight_not_integer"),
    Case("weight true", chat(U, {**A, "weight": True}), "accepts", "openai-cookbook", "warning:weight_not_integer"),
    Case("all weights 0", chat(U, {**A, "weight": 0}), "accepts", "openai-cookbook", "warning:no_trained_turn"),
    # The cookbook does not look at weight values; OpenAI's API reference takes the integers 0 and 1.
    Case("weight 0.5", chat(U, {**A, "weight": 0.5}), "refuses", "openai-api", "error:invalid_weight", by_script=False),
    Case("no assistant message", chat(S, U), "refuses", "openai-cookbook", "error:missing_assistant"),
    Case("a role the API does not know", chat({"role": "developer", "content": "x"}, U, A), "refuses", "openai-cookbook", "error:unrecognized_role"),
    Case("a blank line", "", "refuses", "openai-cookbook", "warning:blank_line"),
    Case("legacy function calling", chat(U, {"role": "assistant", "content": None, "function_call": {"name": "f", "arguments": "{}"}}, {"role": "function", "name": "f", "content": "ok"}, A), "accepts", "openai-cookbook", "warning:deprecated_function_call", by_script=False),
    Case("SFT data for a DPO job", chat(U, A), "refuses", "openai-errors", "error:method_mismatch", by_script=False, method="dpo"),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_openai_case(case: Case, tmp_path: Path) -> None:
    # Legacy function calls are written as tool calls, which OpenAI's API takes and the cookbook predates.
    vendor = None if "function" in case.name else openai_cookbook.check
    run_case(case, tmp_path, provider="openai", base=base_lines(10, plain), vendor=vendor, wire="openai")


def test_a_bom_is_a_warning_and_never_in_the_wire_file(tmp_path: Path) -> None:
    from unitune.data import Dataset, validate
    from unitune.data.convert import write_jsonl

    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + "\n".join(base_lines(10, plain)).encode() + b"\n\n")
    assert openai_cookbook.check(path)  # the cookbook's json.loads refuses both
    report = validate(path, provider="openai")
    assert report.ok
    assert {i.code for i in report.warnings} >= {"bom", "blank_line"}
    out = tmp_path / "wire.jsonl"
    write_jsonl(Dataset.from_jsonl(path), "openai", out)
    assert openai_cookbook.check(out) == []
    assert not out.read_bytes().startswith(b"\xef\xbb\xbf")
    assert b"\n\n" not in out.read_bytes()
