"""Prompt/completion JSONL (Together's and Bedrock Llama 3.1's)."""

from __future__ import annotations

from unitune.data.formats._base import (
    Example,
    Record,
    _chat_items,
    _check_tools,
    _Ctx,
    _drop_name,
    _plain_text,
    _require_chat,
)
from unitune.data.formats.bedrock import _partition

_LABEL = {"system": "System", "user": "User", "assistant": "Assistant", "tool": "Tool"}


def _prompt_completion(ex: Example, ctx: _Ctx) -> Record:
    chat = _require_chat(ex, ctx)
    items = _chat_items(chat)
    _check_tools(chat, items, ctx, tools=False, parallel=False)
    assistants = [i for i, (_, m) in enumerate(items) if m.role == "assistant"]
    if not assistants:
        ctx.refuse("no_assistant", "the conversation has no assistant turn to use as the completion")
    # The completion is the last *trained* assistant turn: anything after it taught nothing.
    trained = [i for i in assistants if items[i][1].weight != 0]
    k = trained[-1] if trained else assistants[-1]
    for loc, m in items[k + 1 :]:
        ctx.lose(
            "trailing_dropped",
            f"{loc}: {m.role} message after the completion dropped: {ctx.fmt} holds one reply",
        )
    before = items[:k]
    if not any(m.role == "user" for _, m in before):
        ctx.refuse("no_user", f"no user turn before the completion: {ctx.fmt} needs a prompt")
    for loc, m in items[: k + 1]:
        _drop_name(loc, m, ctx)
        if m.weight is not None and m.role != "assistant":
            ctx.lose(
                "weight_dropped",
                f"{loc}: weight on a {m.role} message dropped (weights apply to assistant turns)",
            )
    comp_loc, comp = items[k]
    if comp.weight == 0:
        ctx.lose(
            "weight_dropped",
            f"{comp_loc}: weight-0 assistant turn (context only) is trained on as the completion: "
            "the example has no trained assistant turn",
        )
    systems, turns = _partition(before)
    if len(turns) == 1 and all(i < turns[0][0] for i, _ in systems):
        # Single turn (the user's; no_user was ruled out above): its text is the prompt, with any
        # system prompt in front of it.
        texts = [_plain_text(loc, m, ctx) for _, (loc, m) in systems]
        _, (user_loc, user) = turns[0]
        texts.append(_plain_text(user_loc, user, ctx))
        if systems:
            ctx.lose(
                "system_merged",
                "system prompt put at the start of the prompt (blank line between): "
                f"{ctx.fmt} has no system field",
            )
        prompt = "\n\n".join(texts)
    else:
        # Earlier assistant turns become context in the prompt. That is what weight 0 means already;
        # a weight-1 earlier turn is no longer trained on, which this loss reports.
        prompt = "\n\n".join(f"{_LABEL[m.role]}: {_plain_text(loc, m, ctx)}" for loc, m in before)
        ctx.lose(
            "multi_turn_flattened",
            f"{len(before)} messages before the last trained reply flattened into a 'Role: text' "
            "transcript in the prompt; earlier assistant turns there are context, not trained: "
            f"{ctx.fmt} is single-turn",
        )
    return {"prompt": prompt, "completion": _plain_text(comp_loc, comp, ctx)}
