"""Every wire format unitune writes reads back (auto-detected), validates clean for its provider, and
converts to the same record again; and a format that carried an example whole hands it on to any
other format as the original would have been written."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from unitune.data import ChatExample, Dataset, PreferenceExample, validate
from unitune.data.convert import convert_example, formats, get_format, write_jsonl

# The provider (dataset profile) that takes each format.
PROFILE = {
    "openai": "openai", "openai-dpo": "openai", "together": "together", "together-instruction": "together",
    "together-preference": "together", "bedrock-prompt-completion": "bedrock-llama",
    "bedrock-conversation": "bedrock-nova", "bedrock-llama-conversation": "bedrock-llama-conversation",
    "bedrock-claude": "bedrock-claude", "mistral": "mistral", "cohere": "cohere", "hf-chat": "local",
    "gemini": "vertex", "gemini-preference": "vertex",
}  # fmt: skip
# Findings about the file as a whole (a one-example file is below every minimum), not the example.
_FILE_LEVEL = {"too_few_examples"}

# Words of several scripts; no vendor's reserved keyword or control token can be made of them.
_words = st.lists(
    st.sampled_from(
        ["order", "ships", "tomorrow", "refund", "naïve", "café", "東京", "שלום", "مرحبا", "42", "ok?"]
    ),
    min_size=1,
    max_size=6,
).map(" ".join)


@st.composite
def chats(draw: st.DrawFn) -> ChatExample:
    messages: list[dict[str, Any]] = []
    if draw(st.booleans()):
        messages.append({"role": "system", "content": draw(_words)})
    for _ in range(draw(st.integers(1, 3))):
        messages.append({"role": "user", "content": draw(_words)})
        reply: dict[str, Any] = {"role": "assistant", "content": draw(_words)}
        if draw(st.integers(0, 4)) == 0:
            reply["weight"] = draw(st.sampled_from([0, 1]))
        messages.append(reply)
    if not any(m.get("weight", 1) for m in messages if m["role"] == "assistant"):
        messages[-1].pop("weight", None)  # something to train on
    return ChatExample.model_validate({"messages": messages, "line": 1})


@st.composite
def pairs(draw: st.DrawFn) -> PreferenceExample:
    asked = [{"role": "user", "content": draw(_words)}]
    if draw(st.booleans()):
        asked.insert(0, {"role": "system", "content": draw(_words)})
    good, bad = draw(_words), draw(_words)
    return PreferenceExample.model_validate(
        {
            "input": asked,
            "preferred": {"role": "assistant", "content": good},
            "non_preferred": {"role": "assistant", "content": bad + " no"},
            "line": 1,
        }
    )


def _read_back(record: dict[str, Any], tmp: Path) -> Any:
    path = tmp / "wire.jsonl"
    path.write_text(json.dumps(record, ensure_ascii=False) + "\n", encoding="utf-8")
    (example,) = list(Dataset.from_jsonl(path))
    return path, example


@pytest.mark.parametrize("fmt", sorted(PROFILE))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_every_format_reads_back_validates_and_converts_the_same(
    fmt: str, data: st.DataObject, tmp_path: Path
) -> None:
    kind = "preference" if "preference" in get_format(fmt).accepts and fmt != "hf-chat" else "chat"
    example = data.draw(pairs() if kind == "preference" else chats())
    record, losses = convert_example(example, fmt)
    assert record is not None, losses
    path, back = _read_back(record, tmp_path)
    again, _ = convert_example(back, fmt)
    assert again == record
    report = validate(path, provider=PROFILE[fmt])
    errors = [str(i) for i in report.errors if i.code not in _FILE_LEVEL]
    assert not errors, (record, errors)


@pytest.mark.parametrize(
    "first", sorted(f for f in PROFILE if f not in ("openai-dpo", "together-preference", "gemini-preference"))
)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(example=chats())
def test_a_lossless_format_hands_an_example_on_to_any_other(
    first: str, example: ChatExample, tmp_path: Path
) -> None:
    record, losses = convert_example(example, first)
    if record is None or losses:
        return  # the first format changed the example: what follows from it may differ
    _, back = _read_back(record, tmp_path)
    for second in formats():
        direct, _ = convert_example(example, second)
        via, _ = convert_example(back, second)
        assert _same(via) == _same(direct), (first, second)


def _same(value: Any) -> Any:
    """A record with `weight: 1` dropped: 1 is every format's default, so a format without weights
    carries an example whose weights are all 1 whole."""
    if isinstance(value, dict):
        return {k: _same(v) for k, v in value.items() if not (k == "weight" and v == 1)}
    if isinstance(value, list):
        return [_same(v) for v in value]
    return value


def test_formats_cover_every_wire_format() -> None:
    assert sorted(PROFILE) == formats()


def test_a_written_file_is_what_the_converter_gives(tmp_path: Path) -> None:
    example = ChatExample.model_validate(
        {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}
    )
    for fmt in ("bedrock-claude", "cohere", "bedrock-conversation"):
        result = write_jsonl([example], fmt, tmp_path / f"{fmt}.jsonl")
        (back,) = list(Dataset.from_jsonl(result.path))
        assert convert_example(back, fmt)[0] == convert_example(example, fmt)[0]
