"""Cohere's chat fine-tuning format."""

from __future__ import annotations

from unitune.data.formats._base import (
    Example,
    Record,
    _chat_items,
    _check_tools,
    _Ctx,
    _drop_name,
    _joined_system,
    _plain_text,
    _require_chat,
    _weight,
)

_COHERE_ROLE = {"system": "System", "user": "User", "assistant": "Chatbot"}


def _cohere(ex: Example, ctx: _Ctx) -> Record:
    chat = _require_chat(ex, ctx)
    items = _chat_items(chat)
    _check_tools(chat, items, ctx, tools=False, parallel=False)
    lead = 0
    while lead < len(items) and items[lead][1].role == "system":
        lead += 1
    messages: list[dict[str, str]] = []
    preamble = _joined_system(items[:lead], ctx)
    if preamble is not None:
        for loc, m in items[:lead]:
            _drop_name(loc, m, ctx)
        messages.append({"role": "System", "content": preamble})
    for loc, m in items[lead:]:
        _drop_name(loc, m, ctx)
        _weight(loc, m, ctx, supported=False)
        if m.role == "system":
            ctx.lose(
                "system_as_speaker",
                f"{loc}: mid-conversation system message kept as a System speaker turn: Cohere reads only "
                "the first System message as the preamble",
            )
        messages.append({"role": _COHERE_ROLE[m.role], "content": _plain_text(loc, m, ctx)})
    if not any(m["role"] == "User" for m in messages):
        ctx.refuse(
            "no_user", "the conversation has no user turn: Cohere needs at least one User and one Chatbot"
        )
    if not any(m["role"] == "Chatbot" for m in messages):
        ctx.refuse(
            "no_assistant", "the conversation has no assistant turn: Cohere needs at least one Chatbot turn"
        )
    return {"messages": messages}


# --------------------------------------------------------------------------------------------------
# Hugging Face chat template input for the local trainer: plain role/content dicts (text only); the
# trainer applies the model's template. Preference pairs use TRL's conversational preference type.
# https://huggingface.co/docs/trl/dataset_formats
