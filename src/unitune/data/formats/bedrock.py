"""Bedrock's Converse (Nova, Llama 3.2) and Claude 3 Haiku formats."""

from __future__ import annotations

from dataclasses import dataclass

from unitune.data.formats._base import (
    Example,
    Record,
    _chat_items,
    _check_tools,
    _Ctx,
    _drop_name,
    _Item,
    _joined_system,
    _plain_text,
    _require_chat,
    _split_system,
    _weight,
)
from unitune.types import Message


def _partition(items: list[_Item]) -> tuple[list[tuple[int, _Item]], list[tuple[int, _Item]]]:
    """System messages and the other messages, each with its position."""
    systems = [(i, it) for i, it in enumerate(items) if it[1].role == "system"]
    turns = [(i, it) for i, it in enumerate(items) if it[1].role != "system"]
    return systems, turns


# --------------------------------------------------------------------------------------------------
# Bedrock conversational formats: strictly alternating user/assistant, first user, last assistant.


@dataclass
class _Turn:
    role: str
    parts: list[tuple[str, str]]  # (loc, text)


def _alternating(rest: list[_Item], ctx: _Ctx, *, image_why: str | None = None) -> list[_Turn]:
    """Turns that alternate user/assistant, first user and last assistant, reporting each change."""
    turns: list[_Turn] = []
    for loc, m in rest:
        _drop_name(loc, m, ctx)
        _weight(loc, m, ctx, supported=False)
        text = _plain_text(loc, m, ctx, why=image_why)
        if turns and turns[-1].role == m.role:
            ctx.lose(
                "turns_merged",
                f"{loc}: merged into the previous {m.role} turn: {ctx.fmt} needs strictly alternating "
                "user and assistant turns",
            )
            turns[-1].parts.append((loc, text))
        else:
            turns.append(_Turn(m.role, [(loc, text)]))
    if not any(t.role == "assistant" for t in turns):
        ctx.refuse("no_assistant", "the conversation has no assistant turn to train on")
    if turns[0].role != "user":
        ctx.refuse(
            "bad_role_order",
            f"the conversation starts with an assistant turn: {ctx.fmt} needs the user first",
        )
    while turns[-1].role != "assistant":
        for loc, _ in turns.pop().parts:
            ctx.lose(
                "trailing_dropped",
                f"{loc}: trailing user message dropped: "
                f"{ctx.fmt} needs the conversation to end with the assistant",
            )
    return turns


# Nova (and other Converse-format models): https://docs.aws.amazon.com/bedrock/latest/userguide/preparing-text-data.html
# https://docs.aws.amazon.com/nova/latest/nova2-userguide/nova-data-prep-sft-2.html ("The first turn must be
# user, the last must be assistant, and turns must alternate"); tool use is not offered for Nova SFT on
# Bedrock (https://docs.aws.amazon.com/bedrock/latest/userguide/nova-2-sft-data-prep.html).


def _bedrock_conversation(ex: Example, ctx: _Ctx) -> Record:
    chat = _require_chat(ex, ctx)
    items = _chat_items(chat)
    _check_tools(chat, items, ctx, tools=False, parallel=False)
    systems, rest = _split_system(items, ctx)
    for loc, m in systems:
        _drop_name(loc, m, ctx)
    # Nova images come from S3 locations, which a URL or inline data part is not.
    image_why = f"{ctx.fmt} images must be S3 locations; unitune does not upload them"
    # One system block (Llama 3.2 takes no more than one; Nova any number), the texts joined.
    system = _joined_system([(loc, _text_only(loc, m, ctx, image_why)) for loc, m in systems], ctx)
    turns = _alternating(rest, ctx, image_why=image_why)
    record: Record = {"schemaVersion": "bedrock-conversation-2024"}
    if system is not None:
        record["system"] = [{"text": system}]
    # A merged turn is one text block, its parts joined as Claude's are: what reads back as one
    # message and converts to the same record again.
    record["messages"] = [
        {"role": t.role, "content": [{"text": "\n\n".join(text for _, text in t.parts)}]} for t in turns
    ]
    return record


def _text_only(loc: str, m: Message, ctx: _Ctx, why: str) -> Message:
    """The message with its content as plain text (each non-text part removed is reported)."""
    if not isinstance(m.content, list):
        return m
    return m.model_copy(update={"content": _plain_text(loc, m, ctx, why=why)})


# Claude 3 Haiku: https://platform.claude.com/cookbook/finetuning-finetuning-on-bedrock and
# https://docs.aws.amazon.com/bedrock/latest/userguide/preparing-text-data.html: `system` is an optional
# string, `messages` alternate user/assistant (first user, last assistant), no other keys.


def _bedrock_claude(ex: Example, ctx: _Ctx) -> Record:
    chat = _require_chat(ex, ctx)
    items = _chat_items(chat)
    _check_tools(chat, items, ctx, tools=False, parallel=False)
    systems, rest = _split_system(items, ctx)
    for loc, m in systems:
        _drop_name(loc, m, ctx)
    system = _joined_system(systems, ctx)
    turns = _alternating(rest, ctx)
    record: Record = {}
    if system is not None:
        record["system"] = system
    record["messages"] = [
        {"role": t.role, "content": "\n\n".join(text for _, text in t.parts)} for t in turns
    ]
    return record


# --------------------------------------------------------------------------------------------------
# Mistral (legacy fine-tuning API). Assistant tool calls carry no content; ids are exactly 9 letters or
# digits; arguments are JSON strings; the last message is the assistant's; at most one system message.
# https://docs.mistral.ai/capabilities/finetuning/text_vision_finetuning (now under resources/deprecated in
# github.com/mistralai/platform-docs-public, function_calling_instruct_tab) and mistral_common's
# MistralRequestValidatorV3(ValidationMode.finetuning).
