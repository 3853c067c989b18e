"""Hugging Face (TRL) chat and preference records."""

from __future__ import annotations

from unitune.data._model import PreferenceExample
from unitune.data.formats._base import (
    Example,
    Record,
    _chat_items,
    _check_tools,
    _Ctx,
    _drop_name,
    _input_items,
    _output_items,
    _plain_text,
    _require_chat,
    _weight,
)


def _hf_chat(ex: Example, ctx: _Ctx) -> Record:
    if isinstance(ex, PreferenceExample):
        return _hf_preference(ex, ctx)
    ex = _require_chat(ex, ctx)
    items = _chat_items(ex)
    _check_tools(ex, items, ctx, tools=False, parallel=False)
    if not any(m.role == "assistant" for _, m in items):
        ctx.refuse("no_assistant", "the conversation has no assistant turn to train on")
    messages = []
    for loc, m in items:
        _drop_name(loc, m, ctx)
        _weight(loc, m, ctx, supported=False)
        messages.append({"role": m.role, "content": _plain_text(loc, m, ctx)})
    return {"messages": messages}


def _hf_preference(pair: PreferenceExample, ctx: _Ctx) -> Record:
    outputs = _output_items(pair, ctx)
    inputs = _input_items(pair)
    _check_tools(pair, inputs + outputs, ctx, tools=False, parallel=False)
    prompt = []
    for loc, m in inputs:
        _drop_name(loc, m, ctx)
        if m.weight is not None:
            ctx.lose(
                "weight_dropped",
                f"{loc}: weight dropped: TRL preference data has none (the prompt is never trained)",
            )
        prompt.append({"role": m.role, "content": _plain_text(loc, m, ctx)})
    replies = []
    for loc, m in outputs:
        _drop_name(loc, m, ctx)
        if m.weight is not None:
            ctx.lose("weight_dropped", f"{loc}: weight dropped: it means nothing on a preference output")
        replies.append([{"role": "assistant", "content": _plain_text(loc, m, ctx)}])
    return {"prompt": prompt, "chosen": replies[0], "rejected": replies[1]}


# --------------------------------------------------------------------------------------------------
# Registry and public API
