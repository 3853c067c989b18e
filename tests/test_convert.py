"""unitune.data.convert: each wire format's exact output, every loss and refusal, and the JSONL writer."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from unitune.data._model import ChatExample, PreferenceExample
from unitune.data.convert import (
    LOSS_CODES,
    ConversionLoss,
    convert_example,
    formats,
    get_format,
    write_jsonl,
)
from unitune.errors import ConfigurationError

PNG = "data:image/png;base64,iVBORw0KGgo="
HTTP_IMAGE = "https://example.com/cat.png"
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def chat(*messages: dict[str, Any], line: int | None = 7, **extra: Any) -> ChatExample:
    return ChatExample.model_validate({"messages": list(messages), "line": line, **extra})


def pref(
    *inp: dict[str, Any], good: str = "Hello!", bad: str = "Go away.", **extra: Any
) -> PreferenceExample:
    return PreferenceExample.model_validate(
        {
            "input": list(inp),
            "preferred": {"role": "assistant", "content": good},
            "non_preferred": {"role": "assistant", "content": bad},
            "line": 9,
            **extra,
        }
    )


def sys_(text: str = "Be brief.") -> dict[str, Any]:
    return {"role": "system", "content": text}


def user(text: str = "Hi", **kw: Any) -> dict[str, Any]:
    return {"role": "user", "content": text, **kw}


def bot(text: str = "Hello!", **kw: Any) -> dict[str, Any]:
    return {"role": "assistant", "content": text, **kw}


def losses(example: ChatExample | PreferenceExample, fmt: str) -> list[tuple[str, int | None, str, bool]]:
    return [(x.code, x.line, x.message, x.refused) for x in convert_example(example, fmt)[1]]


def record(example: ChatExample | PreferenceExample, fmt: str) -> dict[str, Any]:
    out, _ = convert_example(example, fmt)
    assert out is not None
    return out


# ------------------------------------------------------------------------------------------------
# The registry


def test_formats_lists_every_target() -> None:
    assert formats() == [
        "bedrock-claude",
        "bedrock-conversation",
        "bedrock-llama-conversation",
        "bedrock-prompt-completion",
        "cohere",
        "gemini",
        "gemini-preference",
        "hf-chat",
        "mistral",
        "openai",
        "openai-dpo",
        "together",
        "together-instruction",
        "together-preference",
    ]


def test_unknown_format_lists_known_names_and_suggests_one() -> None:
    with pytest.raises(ConfigurationError) as info:
        convert_example(chat(user(), bot()), "bedrock-claud")
    text = str(info.value)
    assert "Unknown dataset format 'bedrock-claud'." in text
    assert "Known formats: bedrock-claude, bedrock-conversation," in text
    assert info.value.fix == "Did you mean 'bedrock-claude'?"


def test_unknown_format_without_close_match_has_no_suggestion() -> None:
    with pytest.raises(ConfigurationError) as info:
        get_format("zzzz")
    assert info.value.fix is None


def test_converter_rejects_a_non_example() -> None:
    with pytest.raises(
        ConfigurationError, match="expected ChatExample, PreferenceExample or TextExample, got dict"
    ) as info:
        get_format("openai").convert({"messages": []})  # type: ignore[arg-type]
    assert "\n" not in str(info.value)
    assert "Dataset.from_records" in str(info.value)


# ------------------------------------------------------------------------------------------------
# Each format: a minimal example converted to exactly the expected record, with no loss.

MINIMAL = chat(sys_(), user(), bot())

EXPECTED_CHAT: dict[str, dict[str, Any]] = {
    "openai": {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello!"},
        ]
    },
    "together": {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello!"},
        ]
    },
    "mistral": {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello!"},
        ]
    },
    "hf-chat": {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello!"},
        ]
    },
    "cohere": {
        "messages": [
            {"role": "System", "content": "Be brief."},
            {"role": "User", "content": "Hi"},
            {"role": "Chatbot", "content": "Hello!"},
        ]
    },
    "bedrock-conversation": {
        "schemaVersion": "bedrock-conversation-2024",
        "system": [{"text": "Be brief."}],
        "messages": [
            {"role": "user", "content": [{"text": "Hi"}]},
            {"role": "assistant", "content": [{"text": "Hello!"}]},
        ],
    },
    "bedrock-claude": {
        "system": "Be brief.",
        "messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}],
    },
}


@pytest.mark.parametrize("fmt", sorted(EXPECTED_CHAT))
def test_minimal_chat_example(fmt: str) -> None:
    out, lost = convert_example(MINIMAL, fmt)
    assert out == EXPECTED_CHAT[fmt]
    assert lost == []


@pytest.mark.parametrize("fmt", ["bedrock-prompt-completion", "together-instruction"])
def test_minimal_prompt_completion(fmt: str) -> None:
    out, lost = convert_example(chat(user(), bot()), fmt)
    assert out == {"prompt": "Hi", "completion": "Hello!"}
    assert lost == []


@pytest.mark.parametrize("fmt", ["bedrock-prompt-completion", "together-instruction"])
def test_prompt_completion_folds_the_system_prompt_into_the_prompt(fmt: str) -> None:
    out, _ = convert_example(MINIMAL, fmt)
    assert out == {"prompt": "Be brief.\n\nHi", "completion": "Hello!"}
    assert losses(MINIMAL, fmt) == [
        (
            "system_merged",
            7,
            f"system prompt put at the start of the prompt (blank line between): {fmt} has no system field",
            False,
        )
    ]


def test_bedrock_conversation_without_system_has_no_system_key() -> None:
    assert record(chat(user(), bot()), "bedrock-conversation") == {
        "schemaVersion": "bedrock-conversation-2024",
        "messages": [
            {"role": "user", "content": [{"text": "Hi"}]},
            {"role": "assistant", "content": [{"text": "Hello!"}]},
        ],
    }


def test_bedrock_claude_without_system_has_only_messages() -> None:
    assert record(chat(user(), bot()), "bedrock-claude") == {
        "messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]
    }


# ------------------------------------------------------------------------------------------------
# Preference formats


MINIMAL_PAIR = pref(sys_(), user())


def test_openai_dpo() -> None:
    out, lost = convert_example(MINIMAL_PAIR, "openai-dpo")
    assert out == {
        "input": {
            "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
        },
        "preferred_output": [{"role": "assistant", "content": "Hello!"}],
        "non_preferred_output": [{"role": "assistant", "content": "Go away."}],
    }
    assert lost == []


def test_openai_dpo_keeps_tools_in_input() -> None:
    pair = pref(user(), tools=[WEATHER_TOOL], parallel_tool_calls=False)
    assert record(pair, "openai-dpo")["input"] == {
        "messages": [{"role": "user", "content": "Hi"}],
        "tools": [WEATHER_TOOL],
        "parallel_tool_calls": False,
    }


def test_together_preference() -> None:
    out, lost = convert_example(MINIMAL_PAIR, "together-preference")
    assert out == {
        "input": {
            "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
        },
        "preferred_output": [{"role": "assistant", "content": "Hello!"}],
        "non_preferred_output": [{"role": "assistant", "content": "Go away."}],
    }
    assert lost == []


def test_together_preference_nests_tools_in_input_and_drops_parallel_flag() -> None:
    pair = pref(user(), tools=[WEATHER_TOOL], parallel_tool_calls=True)
    out, lost = convert_example(pair, "together-preference")
    assert out is not None
    assert out["input"] == {"messages": [{"role": "user", "content": "Hi"}], "tools": [WEATHER_TOOL]}
    assert set(out) == {"input", "preferred_output", "non_preferred_output"}  # no extra columns
    assert [(x.code, x.line, x.message) for x in lost] == [
        (
            "parallel_tool_calls_dropped",
            9,
            "parallel_tool_calls=True dropped: together-preference has no such field",
        )
    ]


def test_together_preference_refuses_input_ending_with_the_assistant() -> None:
    pair = pref(user(), bot("earlier"))
    assert convert_example(pair, "together-preference")[0] is None
    assert losses(pair, "together-preference") == [
        (
            "bad_role_order",
            9,
            "the input ends with an assistant turn: Together needs it to end before the reply",
            True,
        )
    ]


def test_hf_chat_writes_a_pair_in_trl_preference_form() -> None:
    out, lost = convert_example(MINIMAL_PAIR, "hf-chat")
    assert out == {
        "prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
        "chosen": [{"role": "assistant", "content": "Hello!"}],
        "rejected": [{"role": "assistant", "content": "Go away."}],
    }
    assert lost == []


def test_hf_chat_pair_reports_dropped_prompt_weight() -> None:
    pair = pref(user(), bot("earlier", weight=0), user("again"))
    assert losses(pair, "hf-chat") == [
        (
            "weight_dropped",
            9,
            "input[1]: weight dropped: TRL preference data has none (the prompt is never trained)",
            False,
        )
    ]


@pytest.mark.parametrize("fmt", ["openai-dpo", "together-preference", "hf-chat"])
def test_preference_output_must_be_an_assistant_reply(fmt: str) -> None:
    pair = PreferenceExample.model_validate(
        {
            "input": [user()],
            "preferred": {"role": "user", "content": "odd"},
            "non_preferred": bot(),
            "line": 2,
        }
    )
    assert losses(pair, fmt) == [
        (
            "bad_role_order",
            2,
            "preferred has role 'user': a preference output must be an assistant reply",
            True,
        )
    ]


PREFERENCE_FORMATS = ("openai-dpo", "together-preference", "gemini-preference")
SFT_FORMATS = [f for f in formats() if f not in (*PREFERENCE_FORMATS, "hf-chat")]


@pytest.mark.parametrize("fmt", SFT_FORMATS)
def test_a_pair_into_a_supervised_format_is_refused(fmt: str) -> None:
    out, lost = convert_example(MINIMAL_PAIR, fmt)
    assert out is None
    assert lost == [
        ConversionLoss(
            line=9,
            code="preference_unsupported",
            message=f"a preference pair cannot be written as {fmt} (supervised data); "
            "use a preference format: openai-dpo, together-preference, gemini-preference, hf-chat",
            refused=True,
        )
    ]


@pytest.mark.parametrize("fmt", PREFERENCE_FORMATS)
def test_a_chat_example_into_a_preference_format_is_refused(fmt: str) -> None:
    assert losses(MINIMAL, fmt) == [
        (
            "not_preference",
            7,
            f"a chat example cannot be written as {fmt} (preference data needs a preferred and a "
            "non-preferred reply); use a supervised format: openai, together, together-instruction, "
            "bedrock-prompt-completion, bedrock-conversation, bedrock-llama-conversation, bedrock-claude, "
            "mistral, cohere, gemini, hf-chat",
            True,
        )
    ]


# ------------------------------------------------------------------------------------------------
# OpenAI: lossless, and the output parses back into the same example.

RICH = chat(
    sys_(),
    user("Look", name="ana"),
    {
        "role": "user",
        "content": [{"type": "text", "text": "this"}, {"type": "image_url", "image_url": {"url": PNG}}],
    },
    bot("thinking", weight=0),
    {
        "role": "assistant",
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
            }
        ],
    },
    {"role": "tool", "tool_call_id": "call_1", "content": "rain"},
    bot("Rain in Oslo.", weight=1),
    tools=[WEATHER_TOOL],
    parallel_tool_calls=False,
    line=12,
)


def test_openai_round_trips_to_the_same_example() -> None:
    out, lost = convert_example(RICH, "openai")
    assert lost == []
    assert out is not None
    back = ChatExample.model_validate(json.loads(json.dumps(out)))
    assert back == RICH.model_copy(update={"line": None})


def test_openai_writes_tool_calls_without_null_content() -> None:
    out = record(RICH, "openai")
    assert out["messages"][4] == {
        "role": "assistant",
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
            }
        ],
    }
    assert out["tools"] == [WEATHER_TOOL]
    assert out["parallel_tool_calls"] is False


# ------------------------------------------------------------------------------------------------
# Tools


@pytest.mark.parametrize(
    "fmt",
    [
        "bedrock-claude",
        "bedrock-conversation",
        "bedrock-prompt-completion",
        "cohere",
        "hf-chat",
        "together-instruction",
    ],
)
def test_tool_use_is_refused_where_tools_cannot_be_expressed(fmt: str) -> None:
    out, lost = convert_example(RICH, fmt)
    assert out is None
    assert [(x.code, x.line, x.message, x.refused) for x in lost] == [
        (
            "tool_calls_unsupported",
            12,
            f"messages[4] calls a tool: {fmt} cannot express tool use, so the example was left out",
            True,
        )
    ]


def test_a_tool_result_alone_is_refused_too() -> None:
    ex = chat(user(), {"role": "tool", "tool_call_id": "x", "content": "42"}, bot())
    assert losses(ex, "cohere") == [
        (
            "tool_calls_unsupported",
            7,
            "messages[1] is a tool result: cohere cannot express tool use, so the example was left out",
            True,
        )
    ]


def test_unused_tool_definitions_are_dropped_with_a_loss() -> None:
    ex = chat(user(), bot(), tools=[WEATHER_TOOL], parallel_tool_calls=True)
    out, lost = convert_example(ex, "bedrock-claude")
    assert out == {
        "messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]
    }
    assert [(x.code, x.line, x.message) for x in lost] == [
        (
            "tools_dropped",
            7,
            "1 tool definition(s) dropped: bedrock-claude has no place for them "
            "(no message in the example uses a tool)",
        ),
        (
            "parallel_tool_calls_dropped",
            7,
            "parallel_tool_calls=True dropped: bedrock-claude has no such field",
        ),
    ]


def test_together_keeps_tool_calls_weights_and_tools() -> None:
    out, lost = convert_example(RICH, "together")
    assert out == {
        "messages": [
            {"role": "system", "content": [{"type": "text", "text": "Be brief."}]},
            {"role": "user", "content": [{"type": "text", "text": "Look"}]},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "this"},
                    {"type": "image_url", "image_url": {"url": PNG}},
                ],
            },
            {"role": "assistant", "weight": 0, "content": [{"type": "text", "text": "thinking"}]},
            {
                "role": "assistant",
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": [{"type": "text", "text": "rain"}]},
            {"role": "assistant", "weight": 1, "content": [{"type": "text", "text": "Rain in Oslo."}]},
        ],
        "tools": [WEATHER_TOOL],
    }
    assert [(x.code, x.line, x.message) for x in lost] == [
        ("parallel_tool_calls_dropped", 12, "parallel_tool_calls=False dropped: together has no such field"),
        ("name_dropped", 12, "messages[1]: name 'ana' dropped: together messages have no name"),
    ]


def test_together_serialises_object_arguments_to_a_json_string() -> None:
    call = {"id": "c", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Oslo"}}}
    ex = chat(
        user(),
        {"role": "assistant", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "c", "content": "ok"},
        bot(),
    )
    out = record(ex, "together")
    assert out["messages"][1]["tool_calls"][0]["function"]["arguments"] == '{"city":"Oslo"}'


# ------------------------------------------------------------------------------------------------
# Mistral


def test_mistral_rewrites_ids_serialises_arguments_and_drops_text_beside_calls() -> None:
    ex = chat(
        sys_(),
        user("Weather?", name="ana"),
        {
            "role": "assistant",
            "content": "Let me check.",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": {"city": "Oslo"}},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "name": "get_weather", "content": "rain"},
        bot("Rain.", weight=0),
        bot("Rain in Oslo."),
        tools=[WEATHER_TOOL],
    )
    out, lost = convert_example(ex, "mistral")
    assert out == {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Weather?"},
            {
                "role": "assistant",
                "tool_calls": [
                    {
                        "id": "Bu09e4fdz",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
                    }
                ],
            },
            {"role": "tool", "content": "rain", "tool_call_id": "Bu09e4fdz", "name": "get_weather"},
            {"role": "assistant", "content": "Rain.", "weight": 0},
            {"role": "assistant", "content": "Rain in Oslo."},
        ],
        "tools": [WEATHER_TOOL],
    }
    assert [(x.code, x.line, x.message) for x in lost] == [
        ("name_dropped", 7, "messages[1]: name 'ana' dropped: mistral messages have no name"),
        (
            "content_dropped",
            7,
            "messages[2]: text beside the tool calls dropped: Mistral takes one or the other",
        ),
        (
            "tool_call_id_rewritten",
            7,
            "messages[2]: tool call id 'call_1' rewritten to 'Bu09e4fdz' (and in its tool result): "
            "Mistral needs exactly 9 letters or digits",
        ),
    ]


def test_mistral_output_passes_mistral_commons_finetuning_validator() -> None:
    pytest.importorskip("mistral_common")
    from mistral_common.protocol.instruct.messages import FinetuningMessage
    from mistral_common.protocol.instruct.tool_calls import Tool
    from mistral_common.protocol.instruct.validator import MistralRequestValidatorV3, ValidationMode
    from pydantic import TypeAdapter

    ex = RICH.model_copy(update={"messages": [*RICH.messages, *chat(user("More?")).messages]})
    out = record(ex, "mistral")
    messages = TypeAdapter(list[FinetuningMessage]).validate_python(out["messages"])
    MistralRequestValidatorV3(ValidationMode("finetuning")).validate_messages(messages)
    assert [Tool.model_validate(t).function.name for t in out["tools"]] == ["get_weather"]


def test_mistral_drops_trailing_messages_and_joins_system_messages() -> None:
    ex = chat(sys_("A."), user(), sys_("B."), bot(), user("Bye"))
    out, lost = convert_example(ex, "mistral")
    assert out == {
        "messages": [
            {"role": "system", "content": "A.\n\nB."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello!"},
        ]
    }
    assert [(x.code, x.line, x.message) for x in lost] == [
        (
            "system_merged",
            7,
            "messages[2]: mid-conversation system message moved to the system prompt at the start: "
            "mistral has system text only there",
        ),
        (
            "system_merged",
            7,
            "2 system messages joined into one (blank line between): mistral takes a single one",
        ),
        (
            "trailing_dropped",
            7,
            "messages[4]: trailing user message dropped: "
            "Mistral needs the conversation to end with the assistant",
        ),
    ]


def test_mistral_keeps_a_nine_character_id() -> None:
    call = {"id": "abcDEF123", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
    ex = chat(
        user(),
        {"role": "assistant", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "abcDEF123", "content": "x"},
        bot(),
    )
    out, lost = convert_example(ex, "mistral")
    assert out is not None
    assert out["messages"][1]["tool_calls"][0]["id"] == "abcDEF123"
    assert out["messages"][2]["tool_call_id"] == "abcDEF123"
    assert lost == []


# ------------------------------------------------------------------------------------------------
# Weights


@pytest.mark.parametrize("fmt", ["bedrock-claude", "bedrock-conversation", "cohere", "hf-chat"])
def test_weight_zero_turn_is_trained_with_a_loss_where_weights_do_not_exist(fmt: str) -> None:
    ex = chat(user(), bot("draft", weight=0), user("Again"), bot())
    out, lost = convert_example(ex, fmt)
    assert out is not None
    assert [(x.code, x.line, x.message, x.refused) for x in lost] == [
        (
            "weight_dropped",
            7,
            "messages[1]: weight-0 assistant turn (context only) is trained on: "
            f"{fmt} has no per-turn weights",
            False,
        )
    ]


@pytest.mark.parametrize("fmt", ["openai", "together", "mistral"])
def test_weights_are_kept_where_the_format_has_them(fmt: str) -> None:
    ex = chat(user(), bot("draft", weight=0), user("Again"), bot())
    out, lost = convert_example(ex, fmt)
    assert out is not None
    assert out["messages"][1]["weight"] == 0
    assert lost == []


def test_weight_on_a_user_message_is_dropped_with_a_loss() -> None:
    ex = chat(user(weight=1), bot())
    assert losses(ex, "together") == [
        (
            "weight_dropped",
            7,
            "messages[0]: weight on a user message dropped (weights apply to assistant turns)",
            False,
        )
    ]


# ------------------------------------------------------------------------------------------------
# Prompt/completion: multi-turn is flattened, weight-0 turns become context.


def test_prompt_completion_flattens_multi_turn_and_keeps_weight_zero_turns_as_context() -> None:
    ex = chat(sys_(), user("Q1"), bot("A1", weight=0), user("Q2"), bot("A2"))
    out, lost = convert_example(ex, "bedrock-prompt-completion")
    assert out == {
        "prompt": "System: Be brief.\n\nUser: Q1\n\nAssistant: A1\n\nUser: Q2",
        "completion": "A2",
    }
    assert [(x.code, x.line, x.message) for x in lost] == [
        (
            "multi_turn_flattened",
            7,
            "4 messages before the last trained reply flattened into a 'Role: text' transcript in the "
            "prompt; earlier assistant turns there are context, not trained: "
            "bedrock-prompt-completion is single-turn",
        )
    ]


def test_prompt_completion_uses_the_last_trained_turn_and_drops_what_follows() -> None:
    ex = chat(user("Q1"), bot("A1"), user("Q2"), bot("A2", weight=0))
    out, lost = convert_example(ex, "together-instruction")
    assert out == {"prompt": "Q1", "completion": "A1"}
    assert [(x.code, x.line, x.message) for x in lost] == [
        (
            "trailing_dropped",
            7,
            "messages[2]: user message after the completion dropped: together-instruction holds one reply",
        ),
        (
            "trailing_dropped",
            7,
            "messages[3]: assistant message after the completion dropped: "
            "together-instruction holds one reply",
        ),
    ]


def test_prompt_completion_with_only_weight_zero_replies_trains_the_last_one() -> None:
    ex = chat(user(), bot("A", weight=0))
    out, lost = convert_example(ex, "bedrock-prompt-completion")
    assert out == {"prompt": "Hi", "completion": "A"}
    assert [(x.code, x.message) for x in lost] == [
        (
            "weight_dropped",
            "messages[1]: weight-0 assistant turn (context only) is trained on as the completion: "
            "the example has no trained assistant turn",
        )
    ]


def test_prompt_completion_without_a_user_turn_is_refused() -> None:
    ex = chat(sys_(), bot())
    assert losses(ex, "bedrock-prompt-completion") == [
        ("no_user", 7, "no user turn before the completion: bedrock-prompt-completion needs a prompt", True)
    ]


def test_prompt_completion_without_an_assistant_is_refused() -> None:
    ex = chat(user())
    assert losses(ex, "together-instruction") == [
        ("no_assistant", 7, "the conversation has no assistant turn to use as the completion", True)
    ]


# ------------------------------------------------------------------------------------------------
# Bedrock conversational: system placement, strict alternation, first user, last assistant.


def test_bedrock_claude_moves_and_joins_system_and_merges_consecutive_users() -> None:
    ex = chat(sys_("A."), user("Hi"), sys_("B."), user("there"), bot())
    out, lost = convert_example(ex, "bedrock-claude")
    assert out == {
        "system": "A.\n\nB.",
        "messages": [{"role": "user", "content": "Hi\n\nthere"}, {"role": "assistant", "content": "Hello!"}],
    }
    assert [(x.code, x.line, x.message) for x in lost] == [
        (
            "system_merged",
            7,
            "messages[2]: mid-conversation system message moved to the system prompt at the start: "
            "bedrock-claude has system text only there",
        ),
        (
            "system_merged",
            7,
            "2 system messages joined into one (blank line between): bedrock-claude takes a single one",
        ),
        (
            "turns_merged",
            7,
            "messages[3]: merged into the previous user turn: "
            "bedrock-claude needs strictly alternating user and assistant turns",
        ),
    ]


def test_bedrock_conversation_joins_systems_and_merged_turns_into_one_block_each() -> None:
    # One system block: Llama 3.2's validator takes no more than one. One block per merged turn: what
    # reads back as one message and converts to the same record again.
    ex = chat(sys_("A."), sys_("B."), user("Hi"), user("there"), bot())
    for fmt in ("bedrock-conversation", "bedrock-llama-conversation"):
        out, lost = convert_example(ex, fmt)
        assert out == {
            "schemaVersion": "bedrock-conversation-2024",
            "system": [{"text": "A.\n\nB."}],
            "messages": [
                {"role": "user", "content": [{"text": "Hi\n\nthere"}]},
                {"role": "assistant", "content": [{"text": "Hello!"}]},
            ],
        }
        assert [x.code for x in lost] == ["system_merged", "turns_merged"]


@pytest.mark.parametrize("fmt", ["bedrock-claude", "bedrock-conversation"])
def test_bedrock_drops_a_trailing_user_message(fmt: str) -> None:
    ex = chat(user(), bot(), user("Thanks"))
    out, lost = convert_example(ex, fmt)
    assert out is not None
    assert len(out["messages"]) == 2
    assert [(x.code, x.line, x.message) for x in lost] == [
        (
            "trailing_dropped",
            7,
            "messages[2]: trailing user message dropped: "
            f"{fmt} needs the conversation to end with the assistant",
        )
    ]


@pytest.mark.parametrize("fmt", ["bedrock-claude", "bedrock-conversation"])
def test_bedrock_refuses_a_conversation_starting_with_the_assistant(fmt: str) -> None:
    ex = chat(sys_(), bot(), user(), bot())
    assert losses(ex, fmt) == [
        (
            "bad_role_order",
            7,
            f"the conversation starts with an assistant turn: {fmt} needs the user first",
            True,
        )
    ]


@pytest.mark.parametrize("fmt", ["bedrock-claude", "bedrock-conversation", "together", "mistral", "hf-chat"])
def test_a_conversation_without_an_assistant_is_refused(fmt: str) -> None:
    ex = chat(sys_(), user())
    assert losses(ex, fmt) == [
        ("no_assistant", 7, "the conversation has no assistant turn to train on", True)
    ]


# ------------------------------------------------------------------------------------------------
# Cohere


def test_cohere_keeps_a_mid_conversation_system_message_as_a_speaker() -> None:
    ex = chat(sys_("A."), sys_("B."), user(), sys_("C."), bot(name="bot"))
    out, lost = convert_example(ex, "cohere")
    assert out == {
        "messages": [
            {"role": "System", "content": "A.\n\nB."},
            {"role": "User", "content": "Hi"},
            {"role": "System", "content": "C."},
            {"role": "Chatbot", "content": "Hello!"},
        ]
    }
    assert [(x.code, x.line, x.message) for x in lost] == [
        (
            "system_merged",
            7,
            "2 system messages joined into one (blank line between): cohere takes a single one",
        ),
        (
            "system_as_speaker",
            7,
            "messages[3]: mid-conversation system message kept as a System speaker turn: "
            "Cohere reads only the first System message as the preamble",
        ),
        ("name_dropped", 7, "messages[4]: name 'bot' dropped: cohere messages have no name"),
    ]


def test_cohere_refuses_a_conversation_without_a_user() -> None:
    ex = chat(sys_(), bot())
    assert losses(ex, "cohere") == [
        (
            "no_user",
            7,
            "the conversation has no user turn: Cohere needs at least one User and one Chatbot",
            True,
        )
    ]


# ------------------------------------------------------------------------------------------------
# Images, other content parts, names


IMAGE_EX = chat(
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": {"url": HTTP_IMAGE}},
            {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}},
        ],
    },
    bot("A cat."),
)


def test_images_are_dropped_from_text_only_formats() -> None:
    out, lost = convert_example(IMAGE_EX, "bedrock-claude")
    assert out == {
        "messages": [{"role": "user", "content": "What is this?"}, {"role": "assistant", "content": "A cat."}]
    }
    assert [(x.code, x.line, x.message) for x in lost] == [
        ("image_dropped", 7, "messages[0]: image part removed, text kept: bedrock-claude takes text only"),
        (
            "content_part_dropped",
            7,
            "messages[0]: 'input_audio' content part removed: bedrock-claude takes text only",
        ),
    ]


def test_bedrock_conversation_says_why_images_are_dropped() -> None:
    lost = losses(IMAGE_EX, "bedrock-conversation")
    assert lost[0] == (
        "image_dropped",
        7,
        "messages[0]: image part removed, text kept: bedrock-conversation images must be S3 locations; "
        "unitune does not upload them",
        False,
    )


def test_together_drops_url_images_and_writes_plain_strings_when_none_remain() -> None:
    out, lost = convert_example(IMAGE_EX, "together")
    assert out == {
        "messages": [{"role": "user", "content": "What is this?"}, {"role": "assistant", "content": "A cat."}]
    }
    assert [(x.code, x.line, x.message) for x in lost] == [
        (
            "image_dropped",
            7,
            "messages[0]: image part removed, text kept: Together takes only base64 data URLs "
            "(data:image/jpeg|png|webp;base64,...)",
        ),
        (
            "content_part_dropped",
            7,
            "messages[0]: 'input_audio' content part removed: Together takes text and images",
        ),
    ]


def test_together_keeps_a_data_url_image_and_makes_every_content_a_list() -> None:
    ex = chat(
        sys_(),
        {
            "role": "user",
            "content": [{"type": "text", "text": "What?"}, {"type": "image_url", "image_url": PNG}],
        },
        bot("A cat."),
    )
    out, lost = convert_example(ex, "together")
    assert out == {
        "messages": [
            {"role": "system", "content": [{"type": "text", "text": "Be brief."}]},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What?"},
                    {"type": "image_url", "image_url": {"url": PNG}},
                ],
            },
            {"role": "assistant", "content": [{"type": "text", "text": "A cat."}]},
        ]
    }
    assert lost == []


def test_openai_keeps_images_and_names() -> None:
    out, lost = convert_example(
        IMAGE_EX.model_copy(update={"messages": [*RICH.messages[1:3], RICH.messages[-1]]}), "openai"
    )
    assert out is not None
    assert out["messages"][0] == {"role": "user", "content": "Look", "name": "ana"}
    assert out["messages"][1]["content"][1] == {"type": "image_url", "image_url": {"url": PNG}}
    assert lost == []


# ------------------------------------------------------------------------------------------------
# Every code a converter emits is documented.


def test_every_emitted_code_is_documented() -> None:
    examples: list[ChatExample | PreferenceExample] = [
        MINIMAL,
        RICH,
        IMAGE_EX,
        MINIMAL_PAIR,
        chat(sys_(), user(), sys_(), bot(weight=0), user()),
        chat(user(), bot(), tools=[WEATHER_TOOL], parallel_tool_calls=True),
        chat(bot(), user(), bot()),
        chat(sys_(), bot()),
        pref(user(weight=1), bot(), user()),
    ]
    seen = set()
    for example in examples:
        for fmt in formats():
            out, lost = convert_example(example, fmt)
            assert (out is None) == any(x.refused for x in lost)
            assert sum(x.refused for x in lost) <= 1
            seen |= {x.code for x in lost}
    assert seen <= set(LOSS_CODES)
    assert len(seen) >= 15  # the sweep really exercised the policy


# ------------------------------------------------------------------------------------------------
# write_jsonl


def examples_stream(n: int) -> Iterator[ChatExample | PreferenceExample]:
    for i in range(1, n + 1):
        if i % 4 == 0:
            yield pref(user(), line=i)
        else:
            yield chat(sys_("Sé breve."), user(f"Q{i}"), bot("Ça va ✓", weight=0), user("?"), bot(), line=i)


def test_write_jsonl_streams_lines_that_parse_back(tmp_path: Path) -> None:
    target = tmp_path / "train.jsonl"
    result = write_jsonl(examples_stream(10), "bedrock-claude", target)
    raw = target.read_bytes()
    assert result.format == "bedrock-claude"
    assert result.path == target
    assert result.written == 8
    assert result.refused == 2
    assert result.size_bytes == len(raw)
    assert result.sha256 == hashlib.sha256(raw).hexdigest()
    assert b"\r" not in raw
    assert raw.endswith(b"\n")
    lines = raw.decode("utf-8").split("\n")[:-1]
    assert len(lines) == 8
    first = json.loads(lines[0])
    assert first["system"] == "Sé breve."
    assert lines[0] == json.dumps(first, ensure_ascii=False, separators=(",", ":"))  # compact, raw UTF-8
    assert "Ça va ✓" in lines[0]
    assert result.loss_counts == {"weight_dropped": 8, "preference_unsupported": 2}
    refused = [x for x in result.losses if x.refused]
    assert [(x.line, x.code) for x in refused] == [
        (4, "preference_unsupported"),
        (8, "preference_unsupported"),
    ]
    assert not result.losses_truncated


def test_write_jsonl_caps_stored_losses_but_counts_all(tmp_path: Path) -> None:
    result = write_jsonl(examples_stream(10), "bedrock-claude", tmp_path / "t.jsonl", max_losses=3)
    assert len(result.losses) == 3
    assert [x.line for x in result.losses] == [1, 2, 3]
    assert result.loss_counts == {"weight_dropped": 8, "preference_unsupported": 2}
    assert result.losses_truncated


def test_write_jsonl_consumes_the_iterable_once_and_lazily(tmp_path: Path) -> None:
    pulled: list[int] = []

    def gen() -> Iterator[ChatExample]:
        for i in range(3):
            pulled.append(i)
            yield chat(user(), bot(), line=i + 1)

    result = write_jsonl(gen(), "openai", tmp_path / "t.jsonl")
    assert pulled == [0, 1, 2]
    assert result.written == 3


def test_write_jsonl_unknown_format_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(ConfigurationError):
        write_jsonl([MINIMAL], "opneai", out / "t.jsonl")
    assert list(out.iterdir()) == []


def test_write_jsonl_failure_leaves_no_file(tmp_path: Path) -> None:
    def gen() -> Iterator[ChatExample]:
        yield MINIMAL
        raise RuntimeError("source broke")

    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(RuntimeError, match="source broke"):
        write_jsonl(gen(), "openai", out / "t.jsonl")
    assert list(out.iterdir()) == []  # neither the target nor the temporary file


def test_write_jsonl_refuses_a_record_that_is_not_json(tmp_path: Path) -> None:
    bad_tool = {"type": "function", "function": {"name": "f", "parameters": {"default": math.nan}}}
    ex = chat(user(), bot(), tools=[bad_tool], line=5)
    result = write_jsonl([ex, MINIMAL], "openai", tmp_path / "t.jsonl")
    assert result.written == 1
    assert result.refused == 1
    assert [(x.line, x.code, x.refused) for x in result.losses] == [(5, "invalid_json", True)]
    assert "Out of range float values are not JSON compliant" in result.losses[0].message


def test_write_jsonl_empty_input_writes_an_empty_file(tmp_path: Path) -> None:
    result = write_jsonl([], "openai", tmp_path / "t.jsonl")
    assert (tmp_path / "t.jsonl").read_bytes() == b""
    assert result.written == 0
    assert result.sha256 == hashlib.sha256(b"").hexdigest()


def test_openai_file_round_trips(tmp_path: Path) -> None:
    items = [RICH, MINIMAL.model_copy(update={"line": 2})]
    write_jsonl(items, "openai", tmp_path / "t.jsonl")
    back = [
        ChatExample.model_validate_json(line)
        for line in (tmp_path / "t.jsonl").read_text("utf-8").splitlines()
    ]
    assert back == [x.model_copy(update={"line": None}) for x in items]


def test_conversion_loss_str() -> None:
    loss = ConversionLoss(line=3, code="name_dropped", message="m")
    assert str(loss) == "line 3: changed [name_dropped] m"
    assert str(ConversionLoss(line=None, code="no_user", message="m", refused=True)) == "refused [no_user] m"
