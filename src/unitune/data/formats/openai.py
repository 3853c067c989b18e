"""OpenAI's chat and DPO JSONL."""

from __future__ import annotations

from typing import Any

from unitune.data.formats._base import (
    Example,
    Record,
    _chat_items,
    _Ctx,
    _dump,
    _input_items,
    _output_items,
    _require_chat,
    _require_preference,
)
from unitune.types import Message


def _openai_message(loc: str, m: Message, ctx: _Ctx) -> dict[str, Any]:
    """A message as OpenAI takes it: weight only on assistant messages, images only in user ones."""
    out = _dump(m)
    if m.weight is not None and m.role != "assistant":
        del out["weight"]
        ctx.lose(
            "weight_dropped",
            f"{loc}: weight on a {m.role} message dropped (weights apply to assistant turns)",
        )
    if (
        isinstance(m.content, list)
        and m.role != "user"
        and any(isinstance(p, dict) and p.get("type") == "image_url" for p in m.content)
    ):
        kept = [p for p in m.content if not (isinstance(p, dict) and p.get("type") == "image_url")]
        ctx.lose(
            "image_dropped",
            f"{loc}: image part removed, text kept: OpenAI takes images in user messages only",
        )
        out["content"] = kept if kept else ""
    return out


def _openai(ex: Example, ctx: _Ctx) -> Record:
    chat = _require_chat(ex, ctx)
    record: Record = {"messages": [_openai_message(loc, m, ctx) for loc, m in _chat_items(chat)]}
    if chat.tools is not None:
        record["tools"] = chat.tools
    if chat.parallel_tool_calls is not None:
        record["parallel_tool_calls"] = chat.parallel_tool_calls
    return record


def _openai_dpo(ex: Example, ctx: _Ctx) -> Record:
    pair = _require_preference(ex, ctx)
    _output_items(pair, ctx)
    inp: Record = {"messages": [_openai_message(loc, m, ctx) for loc, m in _input_items(pair)]}
    if pair.tools is not None:
        inp["tools"] = pair.tools
    if pair.parallel_tool_calls is not None:
        inp["parallel_tool_calls"] = pair.parallel_tool_calls
    return {
        "input": inp,
        "preferred_output": [_dump(pair.preferred)],
        "non_preferred_output": [_dump(pair.non_preferred)],
    }


# --------------------------------------------------------------------------------------------------
# Together. Conversation rows allow only `messages` and `tools` (any other top-level key is rejected);
# images must be base64 data URLs (JPEG/PNG/WebP) in user messages, and one example may not mix
# string and list contents. Preference rows nest `tools` inside `input`; the last input message may
# not be the assistant's.
# https://docs.together.ai/docs/fine-tuning/data-preparation
# https://docs.together.ai/docs/fine-tuning/function-calling
# together-python src/together/lib/utils/files.py (check_file), lib/constants.py
