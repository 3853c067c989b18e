"""What every wire-format converter shares.

The loss codes, `ConversionLoss`, the per-example context and the message helpers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal, NoReturn

from pydantic import BaseModel, ConfigDict, Field

from unitune.data._model import ChatExample, PreferenceExample, TextExample
from unitune.types import Message, content_text

Example = ChatExample | PreferenceExample | TextExample
Record = dict[str, Any]

# Every code a converter can emit, and what it means. Codes are stable: programs may match on them.
LOSS_CODES: dict[str, str] = {
    # Refusals: the example is left out of the output.
    "preference_unsupported": "A preference pair cannot be written in a supervised (SFT) format.",
    "not_preference": "A chat example cannot be written in a preference (DPO) format.",
    "text_unsupported": "A plain-text example cannot be written in a chat format.",
    "tool_calls_unsupported": "The example uses tools (calls or results); the format cannot express them.",
    "no_assistant": "There is no assistant turn to train on.",
    "no_user": "There is no user turn; the format requires one.",
    "bad_role_order": "The turns are in an order the format cannot take (e.g. starts with the assistant).",
    "invalid_json": "The converted record is not valid JSON (e.g. NaN in a tool schema).",
    "invalid_unicode": "The example's text holds a lone UTF-16 surrogate, which no UTF-8 file can hold.",
    # Losses: the example is written, changed as described.
    "tools_dropped": "Tool definitions were dropped (no message used them).",
    "parallel_tool_calls_dropped": "The `parallel_tool_calls` flag was dropped.",
    "weight_dropped": "A turn weight was dropped; a weight-0 turn is trained on.",
    "system_merged": "System messages were joined, moved to the start, or folded into the prompt.",
    "system_as_speaker": "A mid-conversation system message is kept as a speaker turn, not a preamble.",
    "multi_turn_flattened": "Earlier turns were flattened into a text transcript in the prompt.",
    "turns_merged": "Consecutive same-role messages were merged into one turn.",
    "trailing_dropped": "Messages after the last trained assistant turn were dropped.",
    "image_dropped": "An image part was removed; the text is kept.",
    "content_part_dropped": "A non-text, non-image content part was removed.",
    "name_dropped": "A message `name` was dropped.",
    "content_dropped": "Assistant text beside tool calls was dropped.",
    "tool_call_id_rewritten": "A tool-call id was rewritten to the form the format requires.",
}


class ConversionLoss(BaseModel):
    """Something a target format could not carry for one example.

    `refused=True` means the example could not be converted at all and was left out; otherwise the
    example was written, changed as `message` says. `line` is the example's source line.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    line: int | None = Field(description="The example's source line (1-based), if known.")
    code: str = Field(description="Stable machine-readable code; see LOSS_CODES.")
    message: str
    refused: bool = False

    def __str__(self) -> str:
        where = f"line {self.line}: " if self.line is not None else ""
        verb = "refused" if self.refused else "changed"
        return f"{where}{verb} [{self.code}] {self.message}"


# --------------------------------------------------------------------------------------------------
# Shared machinery


def _accepting(kind: Literal["chat", "preference"]) -> list[str]:
    """The formats that take `kind` (asked of the registry in `convert`, which imports this module)."""
    from unitune.data.convert import _formats_accepting

    return _formats_accepting(kind)


class _Refused(Exception):
    """Raised inside a converter to leave the example out; turned into a refused ConversionLoss."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class _Ctx:
    """Per-example state: the target's name, the example's line, and the losses so far."""

    fmt: str
    line: int | None
    losses: list[ConversionLoss] = field(default_factory=list)

    def lose(self, code: str, message: str) -> None:
        assert code in LOSS_CODES, code  # a new code must be documented first
        self.losses.append(ConversionLoss(line=self.line, code=code, message=message))

    def refuse(self, code: str, message: str) -> NoReturn:
        assert code in LOSS_CODES, code
        raise _Refused(code, message)


_Item = tuple[str, Message]  # (where it was in the canonical example, the message)


def _require_chat(ex: Example, ctx: _Ctx) -> ChatExample:
    if isinstance(ex, TextExample):
        ctx.refuse(
            "text_unsupported",
            f"a plain-text example cannot be written as {ctx.fmt}, which holds conversations; "
            "give it as messages",
        )
    if not isinstance(ex, ChatExample):
        ctx.refuse(
            "preference_unsupported",
            f"a preference pair cannot be written as {ctx.fmt} (supervised data); "
            f"use a preference format: {', '.join(_accepting('preference'))}",
        )
    return ex


def _require_preference(ex: Example, ctx: _Ctx) -> PreferenceExample:
    if isinstance(ex, TextExample):
        ctx.refuse(
            "text_unsupported", f"a plain-text example cannot be written as {ctx.fmt} (preference pairs)"
        )
    if not isinstance(ex, PreferenceExample):
        ctx.refuse(
            "not_preference",
            f"a chat example cannot be written as {ctx.fmt} (preference data needs a preferred and a "
            f"non-preferred reply); use a supervised format: {', '.join(_accepting('chat'))}",
        )
    return ex


def _chat_items(ex: ChatExample) -> list[_Item]:
    return [(f"messages[{i}]", m) for i, m in enumerate(ex.messages)]


def _input_items(ex: PreferenceExample) -> list[_Item]:
    return [(f"input[{i}]", m) for i, m in enumerate(ex.input)]


def _output_items(ex: PreferenceExample, ctx: _Ctx) -> list[_Item]:
    items = [("preferred", ex.preferred), ("non_preferred", ex.non_preferred)]
    for loc, m in items:
        if m.role != "assistant":
            ctx.refuse(
                "bad_role_order", f"{loc} has role {m.role!r}: a preference output must be an assistant reply"
            )
    return items


def _check_tools(
    ex: ChatExample | PreferenceExample,
    items: list[_Item],
    ctx: _Ctx,
    *,
    tools: bool,
    parallel: bool,
) -> None:
    """Refuse tool use where `tools` is False; report dropped definitions and flags."""
    if not tools:
        for loc, m in items:
            if m.tool_calls or m.role == "tool":
                what = "calls a tool" if m.tool_calls else "is a tool result"
                ctx.refuse(
                    "tool_calls_unsupported",
                    f"{loc} {what}: {ctx.fmt} cannot express tool use, so the example was left out",
                )
        if ex.tools:
            ctx.lose(
                "tools_dropped",
                f"{len(ex.tools)} tool definition(s) dropped: {ctx.fmt} has no place for them "
                "(no message in the example uses a tool)",
            )
    if ex.parallel_tool_calls is not None and not parallel:
        ctx.lose(
            "parallel_tool_calls_dropped",
            f"parallel_tool_calls={ex.parallel_tool_calls} dropped: {ctx.fmt} has no such field",
        )


def _drop_name(loc: str, m: Message, ctx: _Ctx) -> None:
    if m.name is not None:
        ctx.lose("name_dropped", f"{loc}: name {m.name!r} dropped: {ctx.fmt} messages have no name")


def _weight(loc: str, m: Message, ctx: _Ctx, *, supported: bool) -> int | None:
    """The weight to write (None: write none), reporting any weight that cannot be kept."""
    if m.weight is None:
        return None
    if m.role != "assistant":
        # Only assistant turns are trained, so a weight elsewhere means nothing to any target.
        ctx.lose(
            "weight_dropped",
            f"{loc}: weight on a {m.role} message dropped (weights apply to assistant turns)",
        )
        return None
    if supported:
        return m.weight
    if m.weight == 0:
        ctx.lose(
            "weight_dropped",
            f"{loc}: weight-0 assistant turn (context only) is trained on: {ctx.fmt} has no per-turn weights",
        )
    # weight 1 is what every target does anyway: nothing changes.
    return None


def _plain_text(loc: str, m: Message, ctx: _Ctx, *, why: str | None = None) -> str:
    """The message as plain text, reporting each non-text part removed."""
    if isinstance(m.content, list):
        reason = why or f"{ctx.fmt} takes text only"
        for part in m.content:
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "text":
                continue
            if kind in ("image_url", "image"):
                ctx.lose("image_dropped", f"{loc}: image part removed, text kept: {reason}")
            else:
                ctx.lose("content_part_dropped", f"{loc}: {kind!r} content part removed: {reason}")
    return content_text(m.content)


def _split_system(items: list[_Item], ctx: _Ctx) -> tuple[list[_Item], list[_Item]]:
    """System messages (reporting any found mid-conversation, as they move to the start) and the rest."""
    systems: list[_Item] = []
    rest: list[_Item] = []
    for loc, m in items:
        if m.role != "system":
            rest.append((loc, m))
            continue
        if rest:
            ctx.lose(
                "system_merged",
                f"{loc}: mid-conversation system message moved to the system prompt at the start: "
                f"{ctx.fmt} has system text only there",
            )
        systems.append((loc, m))
    return systems, rest


def _joined_system(systems: list[_Item], ctx: _Ctx) -> str | None:
    """One system text from several, reporting the join; None when there are none."""
    if not systems:
        return None
    if len(systems) > 1:
        ctx.lose(
            "system_merged",
            f"{len(systems)} system messages joined into one (blank line between): "
            f"{ctx.fmt} takes a single one",
        )
    return "\n\n".join(_plain_text(loc, m, ctx) for loc, m in systems)


def _tool_call(call: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI-shaped tool call with `arguments` as a JSON string, as Together and Mistral require.

    Some datasets carry `arguments` as an object; serialising it loses nothing, so it is not reported.
    """
    out = dict(call)
    out.setdefault("type", "function")
    function = out.get("function")
    if isinstance(function, dict) and not isinstance(function.get("arguments", ""), str):
        function = dict(function)
        function["arguments"] = json.dumps(function["arguments"], ensure_ascii=False, separators=(",", ":"))
        out["function"] = function
    return out


def _dump(m: Message) -> dict[str, Any]:
    """The canonical (OpenAI) message as a dict, unset fields left out."""
    return m.model_dump(mode="json", exclude_none=True)


# --------------------------------------------------------------------------------------------------
# OpenAI: the canonical format, written as is.
# SFT: https://platform.openai.com/docs/guides/supervised-fine-tuning (messages, tools, weight)
# DPO: https://developers.openai.com/api/docs/guides/direct-preference-optimization
