"""Bedrock: where unitune and AWS's rules once disagreed. The verdicts are AWS's own dataset validators
for Claude 3 Haiku (with its reserved-keyword rule), Nova and Llama (run here: tests/fidelity/vendor/) and
AWS's docs where they say more."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.fidelity._cases import A, Case, S, U, base_lines, chat, plain, run_case
from tests.fidelity.vendor import bedrock_claude, bedrock_llama, bedrock_nova
from unitune.data import Dataset, validate
from unitune.data.convert import write_jsonl

CLAUDE = [
    Case("\\nHuman: in a message", chat({**U, "content": "Quote:\nHuman: hi"}, A), "refuses", "aws-claude-reserved", "error:reserved_keyword"),
    Case("\\nAssistant: in the system prompt", {"system": "Rules\nAssistant: no", "messages": [U, A]}, "refuses", "aws-claude-reserved", "error:reserved_keyword"),
    Case("Human: at the very start", chat({**U, "content": "Human: hi"}, A), "accepts", "aws-claude-reserved", "ok"),
    Case("weights", chat(U, {**A, "weight": 0}), "accepts", "aws-claude-validator", "warning:weight_unsupported"),
    Case("a weight of 7", chat(U, {**A, "weight": 7}), "accepts", "aws-claude-validator", "warning:weight_unsupported"),
    Case("two user messages in a row", chat({**U, "content": "Hi"}, U, A), "refuses", "aws-claude-validator", "warning:consecutive_roles"),
    Case("two system messages", chat(S, S, U, A), "refuses", "aws-claude-validator", "warning:multiple_system", by_script=False),
    Case("the user last", chat(U, A, U), "refuses", "aws-claude-validator", "warning:last_not_assistant"),
    Case("the assistant first", chat(A, U, A), "refuses", "aws-claude-validator", "error:invalid_first_role"),
    Case("an extra key", {"id": 4, "messages": [U, A]}, "accepts", "aws-claude-validator", "warning:unrecognized_key"),
    Case("empty content", chat({**U, "content": ""}, A), "accepts", "aws-claude-validator", "warning:empty_content"),
    Case("special tokens", chat({**U, "content": "<|eot_id|> [INST]"}, A), "accepts", "aws-claude-validator", "warning:special_token"),
    Case("Claude's own format", {"system": "Be brief.", "messages": [U, A]}, "accepts", "aws-claude-validator", "ok"),
]  # fmt: skip


def _claude(i: int) -> dict[str, object]:
    return {
        "messages": [
            {"role": "user", "content": f"Where is order {i}?"},
            {"role": "assistant", "content": f"Order {i} ships."},
        ]
    }


@pytest.mark.parametrize("case", CLAUDE, ids=[c.name for c in CLAUDE])
def test_claude_case(case: Case, tmp_path: Path) -> None:
    # A case in plain chat with a system message is not in Claude's own format: only its wire file is
    # for AWS's validator.
    raw_is_claude = not any(m.get("role") == "system" for m in case.example.get("messages", []))
    if not raw_is_claude:
        case = Case(**{**case.__dict__, "by_script": False})
    run_case(
        case,
        tmp_path,
        provider="bedrock-claude",
        base=base_lines(32, _claude),
        vendor=bedrock_claude.check,
        wire="bedrock-claude",
    )


def test_claude_weights_no_longer_contradict(tmp_path: Path) -> None:
    """It said "bedrock-claude ignores weight; this turn will be trained on" beside the error
    "no_trained_turn: nothing to learn": weights are left out of the wire file, every reply is trained."""
    path = tmp_path / "w.jsonl"
    path.write_text("\n".join([*base_lines(32, _claude), json.dumps(chat(U, {**A, "weight": 0}))]) + "\n")
    report = validate(path, provider="bedrock-claude")
    assert report.ok
    assert "no_trained_turn" not in report.counts
    assert "invalid_weight" not in report.counts


def test_claude_over_the_limit_is_refused_by_an_upper_bound(tmp_path: Path) -> None:
    """AWS refuses (not truncates) examples over 32,000 tokens, counting 3 characters a token. unitune
    once estimated 4 characters a token and passed such examples; now it counts from above."""
    text = ("The quick brown fox, 1234, jumps over the lazy dog again. " * 2200)[:120_090]
    example = {
        "messages": [{"role": "user", "content": "Summarise:"}, {"role": "assistant", "content": text}]
    }
    path = tmp_path / "long.jsonl"
    path.write_text("\n".join([*base_lines(32, _claude), json.dumps(example)]) + "\n")
    refused = bedrock_claude.check(path)
    assert any("Exceeds maximum token count" in message for _, message in refused)
    aws = int(next(m for _, m in refused if "Exceeds" in m).split("(")[1].split(" ")[0])
    report = validate(path, provider="bedrock-claude")
    over = [i for i in report.errors if i.code == "too_many_tokens"]
    assert over
    assert over[0].line == 33
    assert "upper bound" in over[0].message
    assert report.stats.tokens_per_example.max >= aws  # never below AWS's own count
    assert report.stats.approximate_tokens
    assert "upper-bound" in (report.stats.token_method or "")


NOVA = [
    Case("User: in the text", chat({**U, "content": "User: where is it?"}, A), "refuses", "aws-nova-docs", "error:reserved_keyword"),
    Case("[EOS] in the reply", chat(U, {**A, "content": "done [EOS]"}), "refuses", "aws-nova-validator", "error:reserved_keyword"),
    Case("an empty message", chat({**U, "content": ""}, A), "refuses", "aws-nova-validator", "error:empty_content"),
    Case("whitespace", chat({**U, "content": " "}, A), "accepts", "aws-nova-validator", "warning:blank_content"),
    Case("an empty system prompt", {"schemaVersion": "bedrock-conversation-2024", "system": [{"text": ""}], "messages": [{"role": "user", "content": [{"text": "hi"}]}, {"role": "assistant", "content": [{"text": "yo"}]}]}, "accepts", "aws-nova-validator", "warning:empty_system"),
    Case("a data-URI image", chat({"role": "user", "content": [{"type": "text", "text": "look"}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]}, A), "refuses", "aws-nova-validator", "warning:image_dropped", by_script=False),
    Case("Nova's own format", {"schemaVersion": "bedrock-conversation-2024", "system": [{"text": "Be brief."}], "messages": [{"role": "user", "content": [{"text": "hi"}]}, {"role": "assistant", "content": [{"text": "yo"}]}]}, "accepts", "aws-nova-validator", "ok"),
    Case("Nova's format without schemaVersion", {"messages": [{"role": "user", "content": [{"text": "hi"}]}, {"role": "assistant", "content": [{"text": "yo"}]}]}, "accepts", "aws-nova-validator", "ok"),
]  # fmt: skip


def _nova(i: int) -> dict[str, object]:
    return {
        "messages": [
            {"role": "user", "content": [{"text": f"Where is order {i}?"}]},
            {"role": "assistant", "content": [{"text": f"Order {i} ships."}]},
        ]
    }


@pytest.mark.parametrize("case", NOVA, ids=[c.name for c in NOVA])
def test_nova_case(case: Case, tmp_path: Path) -> None:
    is_nova = any(
        isinstance(m.get("content"), list) and "text" in m["content"][0] for m in case.example["messages"]
    )
    if not is_nova:  # plain chat: AWS's validator reads only the wire file
        case = Case(**{**case.__dict__, "by_script": False})
    run_case(
        case,
        tmp_path,
        provider="bedrock-nova",
        base=base_lines(8, _nova),
        vendor=bedrock_nova.check,
        wire="bedrock-conversation",
    )


def test_nova_data_uri_image_is_in_the_report(tmp_path: Path) -> None:
    """It was accepted by validate, then dropped by the converter with only a log line."""
    example = chat({"role": "user", "content": [{"type": "text", "text": "look"}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA=="}}]}, A)  # fmt: skip
    path = tmp_path / "img.jsonl"
    path.write_text("\n".join([*base_lines(8, plain), json.dumps(example)]) + "\n")
    issue = next(i for i in validate(path, provider="bedrock-nova").issues if i.code == "image_dropped")
    assert issue.line == 9
    assert "left out of the wire file" in issue.message


@pytest.mark.parametrize(
    ("model", "wire", "input_type"),
    [("meta.llama3-1-8b-instruct-v1:0", "bedrock-prompt-completion", "prompt_completion"),
     ("meta.llama3-2-3b-instruct-v1:0", "bedrock-llama-conversation", "converse")],
)  # fmt: skip
def test_llama_wire_format_follows_the_model(model: str, wire: str, input_type: str, tmp_path: Path) -> None:
    """AWS's registry: Llama 3.1 trains on prompt/completion, Llama 3.2 on conversations."""
    from unitune import FineTuneClient

    path = tmp_path / "d.jsonl"
    path.write_text("\n".join([*base_lines(10, plain), json.dumps(chat(S, S, U, A))]) + "\n")
    client = FineTuneClient("bedrock")
    assert client.provider.wire_format_for("sft", client.resolve_model(model)) == wire
    out = tmp_path / "wire.jsonl"
    write_jsonl(Dataset.from_jsonl(path), wire, out)
    assert bedrock_llama.check(out, input_type=input_type) == []


def test_llama_over_16k_tokens_is_an_error(tmp_path: Path) -> None:
    text = "word " * 17_000
    path = tmp_path / "d.jsonl"
    path.write_text("\n".join([*base_lines(10, plain), json.dumps(chat(U, {**A, "content": text}))]) + "\n")
    report = validate(path, provider="bedrock", model="meta.llama3-1-8b-instruct-v1:0")
    assert [i.line for i in report.errors if i.code == "too_many_tokens"] == [11]
