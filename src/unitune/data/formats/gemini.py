"""Vertex AI's Gemini tuning JSONL: supervised (`gemini`) and preference (`gemini-preference`) data.

Supervised, one example a line
(https://cloud.google.com/vertex-ai/generative-ai/docs/models/gemini-supervised-tuning-prepare, as of
2026-12): `{"systemInstruction": {"role": "system", "parts": [{"text": ...}]}, "contents": [{"role":
"user" | "model", "parts": [{"text": ...}]}, ...]}`. `contents` is required, `systemInstruction` optional
(Vertex ignores its `role`); a content's role is `user` or `model`. Google's text-tuning example
(https://cloud.google.com/vertex-ai/generative-ai/docs/models/tune_gemini/text_tune) writes the system
instruction's role as "system", as this writer does.

Preference (DPO), one pair a line
(https://cloud.google.com/vertex-ai/generative-ai/docs/models/gemini-preference-tuning-prepare):
`{"system_instruction": {"parts": [...]}, "contents": [...], "completions": [{"score": 1, "completion":
{"role": "model", "parts": [...]}}, {"score": 0, "completion": {...}}]}`. The contents "need to end with
a user turn"; the pair has one preferred (score 1) and one dispreferred (score 0) completion; text only.
The two pages spell the system key differently (`systemInstruction`, `system_instruction`): each format
writes its page's spelling, and the reader takes both (Vertex reads JSON by the proto3 mapping, whose
parsers accept the lowerCamelCase and the original field name: https://protobuf.dev/programming-guides/json/).

What the writer does not carry, each reported as a `ConversionLoss`:

* tool use: Vertex does tune function calling (`tools` with `functionDeclarations`, `functionCall` and
  `functionResponse` parts: https://cloud.google.com/vertex-ai/generative-ai/docs/models/tune-function-calling),
  but this writer does not write it yet, so an example that calls a tool is refused (`tool_calls_unsupported`)
  and unused definitions are dropped (`tools_dropped`);
* images: Vertex takes them as `fileData` (a Cloud Storage URI and a MIME type), which unitune does not
  upload; an image part is removed and its text kept (`image_dropped`);
* per-turn weights (`weight_dropped`), message names (`name_dropped`);
* several or mid-conversation system messages are joined into the one system instruction
  (`system_merged`); consecutive turns of one role are merged, as in the older page's rule that the user
  and model roles "repeat in an alternating manner" (`turns_merged`); turns after the last model turn are
  dropped, since only model turns are trained on (`trailing_dropped`).
"""

from __future__ import annotations

from dataclasses import dataclass

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
    _plain_text,
    _require_chat,
    _require_preference,
    _split_system,
    _weight,
)

#: The Gemini role of each canonical one (system text goes to the system instruction).
_ROLE = {"user": "user", "assistant": "model"}


@dataclass
class _Turn:
    role: str  # canonical: "user" or "assistant"
    parts: list[tuple[str, str]]  # (loc, text)


def _content(role: str, text: str) -> Record:
    return {"role": _ROLE.get(role, role), "parts": [{"text": text}]}


def _turns(items: list[_Item], ctx: _Ctx, why: str, *, trained: bool) -> list[_Turn]:
    """The conversation as turns of alternating roles (consecutive ones merged, reported), as text.

    `trained`: the model turns are trained on (supervised data), not context (a preference input).
    """
    turns: list[_Turn] = []
    for loc, m in items:
        _drop_name(loc, m, ctx)
        if trained:
            _weight(loc, m, ctx, supported=False)
        elif m.weight is not None:
            ctx.lose("weight_dropped", f"{loc}: weight dropped: {ctx.fmt} trains on the completions only")
        text = _plain_text(loc, m, ctx, why=why)
        if turns and turns[-1].role == m.role:
            ctx.lose(
                "turns_merged",
                f"{loc}: merged into the previous {m.role} turn (blank line between): {ctx.fmt} turns "
                "alternate between user and model",
            )
            turns[-1].parts.append((loc, text))
        else:
            turns.append(_Turn(m.role, [(loc, text)]))
    return turns


def _system(items: list[_Item], ctx: _Ctx, why: str) -> tuple[str | None, list[_Item]]:
    """The one system instruction's text (None: none) and the other messages."""
    systems, rest = _split_system(items, ctx)
    for loc, m in systems:
        _drop_name(loc, m, ctx)
    texts = [(loc, m.model_copy(update={"content": _plain_text(loc, m, ctx, why=why)})) for loc, m in systems]
    return _joined_system(texts, ctx), rest


def _contents(turns: list[_Turn]) -> list[Record]:
    # A merged turn is one text part, its messages joined as Bedrock's are: what reads back as one
    # message and converts to the same record again.
    return [_content(t.role, "\n\n".join(text for _, text in t.parts)) for t in turns]


def _gemini(ex: Example, ctx: _Ctx) -> Record:
    chat = _require_chat(ex, ctx)
    items = _chat_items(chat)
    _check_tools(chat, items, ctx, tools=False, parallel=False)
    why = f"{ctx.fmt} takes images as Cloud Storage fileData, which unitune does not upload"
    system, rest = _system(items, ctx, why)
    turns = _turns(rest, ctx, why, trained=True)
    if not any(t.role == "assistant" for t in turns):
        ctx.refuse("no_assistant", "the conversation has no assistant turn to train on")
    while turns[-1].role != "assistant":
        for loc, _ in turns.pop().parts:
            ctx.lose(
                "trailing_dropped",
                f"{loc}: trailing user message dropped: {ctx.fmt} trains on model turns, so the "
                "conversation ends with the model's",
            )
    record: Record = {}
    if system is not None:
        record["systemInstruction"] = {"role": "system", "parts": [{"text": system}]}
    record["contents"] = _contents(turns)
    return record


def _gemini_preference(ex: Example, ctx: _Ctx) -> Record:
    pair = _require_preference(ex, ctx)
    outputs = _output_items(pair, ctx)
    items = _input_items(pair)
    _check_tools(pair, items, ctx, tools=False, parallel=False)
    why = f"{ctx.fmt} takes text only"
    system, rest = _system(items, ctx, why)
    turns = _turns(rest, ctx, why, trained=False)
    if not turns:
        ctx.refuse("no_user", f"the input has no user turn: {ctx.fmt}'s contents end with the user's")
    if turns[-1].role != "user":
        ctx.refuse(
            "bad_role_order",
            f"the input ends with an assistant turn: {ctx.fmt}'s contents must end with a user turn",
        )
    completions = []
    for (loc, m), score in zip(outputs, (1, 0), strict=True):
        _drop_name(loc, m, ctx)
        if m.weight is not None:
            ctx.lose("weight_dropped", f"{loc}: weight dropped: a preference completion has no weight")
        completion = _content("assistant", _plain_text(loc, m, ctx, why=why))
        completions.append({"score": score, "completion": completion})
    record: Record = {}
    if system is not None:
        record["system_instruction"] = {"parts": [{"text": system}]}
    record["contents"] = _contents(turns)
    record["completions"] = completions
    return record
