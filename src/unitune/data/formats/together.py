"""Together's chat, preference and text formats."""

from __future__ import annotations

from typing import Any

from unitune.data._loaders import DATA_URL_IMAGE
from unitune.data._model import TextExample
from unitune.data.formats._base import (
    Example,
    Record,
    _chat_items,
    _check_tools,
    _Ctx,
    _drop_name,
    _input_items,
    _Item,
    _joined_system,
    _output_items,
    _require_chat,
    _require_preference,
    _tool_call,
    _weight,
)
from unitune.types import Message


def _together_parts(loc: str, m: Message, ctx: _Ctx) -> tuple[list[dict[str, Any]], bool]:
    """Content parts Together can take, and whether an image survived."""
    if m.content is None:
        return [], False
    if isinstance(m.content, str):
        return [{"type": "text", "text": m.content}], False
    parts: list[dict[str, Any]] = []
    has_image = False
    for part in m.content:
        kind = part.get("type")
        if kind == "text":
            parts.append({"type": "text", "text": str(part.get("text", ""))})
            continue
        if kind != "image_url":
            ctx.lose(
                "content_part_dropped",
                f"{loc}: {kind!r} content part removed: Together takes text and images",
            )
            continue
        ref = part.get("image_url")
        url = ref.get("url") if isinstance(ref, dict) else ref
        if m.role != "user":
            ctx.lose(
                "image_dropped",
                f"{loc}: image part removed, text kept: Together takes images in user messages only",
            )
        elif not isinstance(url, str) or not DATA_URL_IMAGE.match(url):
            ctx.lose(
                "image_dropped",
                f"{loc}: image part removed, text kept: Together takes only base64 data URLs "
                "(data:image/jpeg|png|webp;base64,...)",
            )
        else:
            parts.append({"type": "image_url", "image_url": {"url": url}})
            has_image = True
    return parts, has_image


def _together_messages(items: list[_Item], ctx: _Ctx, *, weights: bool) -> list[dict[str, Any]]:
    """Together messages: the leading system messages joined into one, names dropped, contents made uniform.

    A later system message stays where it is: Together's file check takes any order.
    """
    lead = 0
    while lead < len(items) and items[lead][1].role == "system":
        lead += 1
    systems, rest = items[:lead], items[lead:]
    system = _joined_system(systems, ctx)
    out: list[dict[str, Any]] = []
    contents: list[list[dict[str, Any]] | None] = []
    multimodal = False
    if system is not None:
        out.append({"role": "system"})
        contents.append([{"type": "text", "text": system}])
    for loc, m in rest:
        _drop_name(loc, m, ctx)
        msg: dict[str, Any] = {"role": m.role}
        if m.tool_calls is not None:
            msg["tool_calls"] = [_tool_call(c) for c in m.tool_calls]
        if m.tool_call_id is not None:
            msg["tool_call_id"] = m.tool_call_id
        weight = _weight(loc, m, ctx, supported=weights)
        if weight is not None:
            msg["weight"] = weight
        parts, has_image = _together_parts(loc, m, ctx)
        multimodal = multimodal or has_image
        # An assistant turn that only calls tools has no content key; every other role needs one.
        contents.append(None if m.content is None and m.role == "assistant" and m.tool_calls else parts)
        out.append(msg)
    for msg, body in zip(out, contents, strict=True):
        if body is None:
            continue
        # Together rejects an example that mixes string and list contents, and a list-content
        # example without any image: lists only when an image survived, plain strings otherwise.
        msg["content"] = body if multimodal else "\n".join(str(p["text"]) for p in body)
    return out


def _together(ex: Example, ctx: _Ctx) -> Record:
    if isinstance(ex, TextExample):
        return {"text": ex.text}  # Together's general (plain-text) format
    chat = _require_chat(ex, ctx)
    items = _chat_items(chat)
    _check_tools(chat, items, ctx, tools=True, parallel=False)
    messages = _together_messages(items, ctx, weights=True)
    if not any(m["role"] == "assistant" for m in messages):
        ctx.refuse("no_assistant", "the conversation has no assistant turn to train on")
    # (Together's docs ask for system or user first, but its file check takes any order: kept.)
    record: Record = {"messages": messages}
    if chat.tools:  # Together rejects an empty tools list
        record["tools"] = chat.tools
    return record


def _together_preference(ex: Example, ctx: _Ctx) -> Record:
    pair = _require_preference(ex, ctx)
    outputs = _output_items(pair, ctx)
    _check_tools(pair, _input_items(pair) + outputs, ctx, tools=True, parallel=False)
    if pair.input[-1].role == "assistant":
        ctx.refuse(
            "bad_role_order",
            "the input ends with an assistant turn: Together needs it to end before the reply",
        )
    # Input and outputs share one content style, so convert them together and split after.
    messages = _together_messages(_input_items(pair) + outputs, ctx, weights=True)
    *inp, preferred, non_preferred = messages
    for loc, msg in (("preferred", preferred), ("non_preferred", non_preferred)):
        if "weight" in msg:
            del msg["weight"]
            ctx.lose("weight_dropped", f"{loc}: weight dropped: it means nothing on a preference output")
        msg.setdefault("content", "")  # Together requires `content` on both outputs
    input_record: Record = {"messages": inp}
    if pair.tools:
        input_record["tools"] = pair.tools
    return {"input": input_record, "preferred_output": [preferred], "non_preferred_output": [non_preferred]}


# --------------------------------------------------------------------------------------------------
# Prompt/completion (Bedrock Llama/Titan, Together "instruction"): one prompt and one completion.
# https://docs.aws.amazon.com/bedrock/latest/userguide/preparing-text-data.html
# https://docs.together.ai/docs/fine-tuning/data-preparation (instruction data)
