"""Mistral's fine-tuning chat format."""

from __future__ import annotations

import hashlib
import re
from typing import Any

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
    _split_system,
    _tool_call,
    _weight,
)
from unitune.types import Message

_MISTRAL_ID = re.compile(r"[A-Za-z0-9]{9}")
_ALNUM = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _mistral_id(original: str) -> str:
    """A 9-character id for Mistral, derived from the original so calls and results still match."""
    if _MISTRAL_ID.fullmatch(original):
        return original
    n = int.from_bytes(hashlib.sha256(original.encode()).digest()[:8], "big")
    out = []
    for _ in range(9):
        n, r = divmod(n, len(_ALNUM))
        out.append(_ALNUM[r])
    return "".join(out)


def _mistral(ex: Example, ctx: _Ctx) -> Record:
    chat = _require_chat(ex, ctx)
    items = _chat_items(chat)
    _check_tools(chat, items, ctx, tools=True, parallel=False)
    systems, rest = _split_system(items, ctx)
    for loc, m in systems:
        _drop_name(loc, m, ctx)
    system = _joined_system(systems, ctx)
    if not any(m.role == "assistant" for _, m in rest):
        ctx.refuse("no_assistant", "the conversation has no assistant turn to train on")
    # (mistral_common takes an assistant first: only a lone message must be the user's or system's.)
    # Mistral trains only up to the last assistant turn and its validator requires one at the end.
    while rest[-1][1].role != "assistant":
        loc, m = rest.pop()
        ctx.lose(
            "trailing_dropped",
            f"{loc}: trailing {m.role} message dropped: "
            "Mistral needs the conversation to end with the assistant",
        )
    messages: list[dict[str, Any]] = []
    if system is not None:
        messages.append({"role": "system", "content": system})
    messages.extend(_mistral_message(loc, m, ctx) for loc, m in rest)
    record: Record = {"messages": messages}
    if chat.tools:
        record["tools"] = chat.tools
    return record


def _mistral_message(loc: str, m: Message, ctx: _Ctx) -> dict[str, Any]:
    """One non-system message in Mistral's shape, reporting what it cannot carry (in message order)."""
    msg: dict[str, Any] = {"role": m.role}
    content: str | list[dict[str, Any]] | None = m.content
    if isinstance(content, list) and m.role != "user":
        # Only user messages may carry images (assistant chunks must be text).
        content = _plain_text(loc, m, ctx, why="Mistral takes images in user messages only")
    if m.tool_calls:
        if content:
            ctx.lose(
                "content_dropped",
                f"{loc}: text beside the tool calls dropped: Mistral takes one or the other",
            )
        content = None
        msg["tool_calls"] = _mistral_tool_calls(loc, m.tool_calls, ctx)
    if content is not None or m.role != "assistant":
        msg["content"] = content if content is not None else ""
    if m.role == "tool":
        if m.tool_call_id is not None:
            msg["tool_call_id"] = _mistral_id(m.tool_call_id)
        if m.name is not None:
            msg["name"] = m.name  # Mistral tool messages name the function they answer
    else:
        _drop_name(loc, m, ctx)
    weight = _weight(loc, m, ctx, supported=True)
    if weight is not None:
        msg["weight"] = weight
    return msg


def _mistral_tool_calls(loc: str, tool_calls: list[dict[str, Any]], ctx: _Ctx) -> list[dict[str, Any]]:
    """The assistant's tool calls with ids Mistral accepts.

    An id that is not exactly 9 letters or digits is rewritten (reported once per call); the tool
    result that answers it gets the same rewrite in `_mistral_message`, so the pair still matches.
    """
    calls = []
    for call in tool_calls:
        call = _tool_call(call)
        original = call.get("id")
        if isinstance(original, str) and _mistral_id(original) != original:
            call["id"] = _mistral_id(original)
            ctx.lose(
                "tool_call_id_rewritten",
                f"{loc}: tool call id {original!r} rewritten to {call['id']!r} "
                "(and in its tool result): Mistral needs exactly 9 letters or digits",
            )
        calls.append(call)
    return calls


# --------------------------------------------------------------------------------------------------
# Cohere chat fine-tuning (dataset type chat-finetune-input; fine-tuning deprecated 2025-09-15):
# roles System/User/Chatbot, string content, at least one User and one Chatbot turn; the first System
# message is the preamble and "all other messages with role: System will be treated as speakers".
# https://docs.cohere.com/docs/chat-preparing-the-data
