"""Mistral: where unitune and Mistral's rules once disagreed. The verdicts are mistral-finetune's
validate_data with mistral_common's finetuning validator (run here: tests/fidelity/vendor/mistral_finetune.py)
and Mistral's fine-tuning docs where they say more."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fidelity._cases import A, Case, S, U, base_lines, chat, plain, run_case
from tests.fidelity.vendor import mistral_finetune

CALL = {"id": "abcdefghi", "type": "function", "function": {"name": "get_order", "arguments": "{}"}}
TOOL = {
    "type": "function",
    "function": {
        "name": "get_order",
        "description": "Look up.",
        "parameters": {"type": "object", "properties": {}},
    },
}


def _tools(*messages: dict[str, object], tool: dict[str, object] = TOOL) -> dict[str, object]:
    return chat(*messages, tools=[tool])


CASES = [
    Case("weight 1.0", chat(U, {**A, "weight": 1.0}), "accepts", "mistral-common", "warning:weight_not_integer"),
    Case("weight true", chat(U, {**A, "weight": True}), "accepts", "mistral-common", "warning:weight_not_integer"),
    Case("weight 0.5", chat(U, {**A, "weight": 0.5}), "refuses", "mistral-common", "error:invalid_weight"),
    Case("a weight on the user's message", chat({**U, "weight": 7}, A), "accepts", "mistral-finetune", "warning:weight_not_assistant"),
    Case("a system message not first", chat(U, S, A), "accepts", "mistral-finetune", "warning:system_not_first"),
    Case("two system messages", chat(S, S, U, A), "refuses", "mistral-finetune", "warning:multiple_system"),
    Case("a tool without a description", _tools(U, {"role": "assistant", "tool_calls": [CALL]}, {"role": "tool", "tool_call_id": "abcdefghi", "content": "ok"}, A, tool={"type": "function", "function": {"name": "get_order", "parameters": {}}}), "refuses", "mistral-finetune", "error:tool_missing_description"),
    Case("[INST] in text", chat({**U, "content": "[INST] x [/INST] </s>"}, A), "accepts", "mistral-common", "warning:special_token"),
    Case("extra keys", chat({**U, "ts": 1}, A, id=3), "accepts", "mistral-finetune", "warning:unrecognized_key"),
    Case("an empty reply", chat(U, {**A, "content": ""}), "refuses", "mistral-common", "error:empty_reply"),
    Case("an empty user message", chat({**U, "content": ""}, A), "accepts", "mistral-common", "warning:empty_content"),
    Case("the user last", chat(U, A, U), "refuses", "mistral-common", "warning:last_not_assistant"),
    Case("a tool call id of another form", _tools(U, {"role": "assistant", "tool_calls": [{**CALL, "id": "call_1"}]}, {"role": "tool", "tool_call_id": "call_1", "content": "ok"}, A), "refuses", "mistral-common", "warning:invalid_tool_call_id"),
    Case("the assistant first", chat(A, U, A), "accepts", "mistral-common", "ok"),
    Case("a tool message after the user's", _tools(U, {"role": "tool", "tool_call_id": "abcdefghi", "content": "ok"}, A), "refuses", "mistral-common", "error:invalid_role_order"),
    Case("a lone reply", chat(A), "refuses", "mistral-common", "error:too_few_messages"),
    Case("an opening tool call", _tools({"role": "assistant", "tool_calls": [CALL]}, {"role": "tool", "tool_call_id": "abcdefghi", "content": "ok"}, A), "refuses", "mistral-common", "error:opening_tool_call"),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_mistral_case(case: Case, tmp_path: Path) -> None:
    run_case(
        case,
        tmp_path,
        provider="mistral",
        base=base_lines(2, plain),
        vendor=mistral_finetune.check,
        wire="mistral",
    )
