"""Convert canonical examples into each provider's JSONL wire format, reporting every loss.

The canonical model (`ChatExample`, `PreferenceExample`) is OpenAI's format. Each target below is a
pure function `example -> (record | None, losses)`. Whatever a target cannot express is either
converted with a `ConversionLoss` saying what changed, or refused (`record is None`, one loss with
`refused=True`): nothing is dropped silently. `LOSS_CODES` lists every code and what it means.

Policy in short:

* Tool use (assistant `tool_calls`, `tool` messages) in a target without tools: the example is
  refused, because dropping the calls would leave tool results dangling and teach the model to answer
  without the call. Tool *definitions* no message uses are dropped with a loss.
* `weight: 0` assistant turns (context only) in a target without weights: kept and trained on, with a
  loss. In prompt/completion targets, earlier turns go into the prompt as context, which is exactly
  what weight 0 means, so no loss is reported for them there.
* Multi-turn data in prompt/completion targets is flattened into a "Role: text" transcript in the
  prompt (reported as `multi_turn_flattened`); it is not refused.
* A preference pair into a supervised format, or a chat example into a preference format: refused.
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import json
import os
import re
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NoReturn

from pydantic import BaseModel, ConfigDict, Field

from unitune.data._args import cannot_write, data_arg, int_arg, out_file
from unitune.data._loaders import DATA_URL_IMAGE
from unitune.data._model import ChatExample, PreferenceExample, TextExample
from unitune.errors import ConfigurationError
from unitune.types import Message, content_text

__all__ = [
    "LOSS_CODES",
    "ConversionLoss",
    "ConversionResult",
    "Converter",
    "WireFormat",
    "convert_example",
    "formats",
    "get_format",
    "write_jsonl",
]

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


Converter = Callable[[Example], tuple[Record | None, list[ConversionLoss]]]


class ConversionResult(BaseModel):
    """What `write_jsonl` wrote: the file, its hash and size, and what was lost or refused.

    `losses` keeps at most `max_losses` entries (the first ones) so a huge dataset cannot exhaust
    memory; `loss_counts` is exact (occurrences per code, refusals included).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    format: str
    path: Path
    written: int = Field(ge=0)
    refused: int = Field(ge=0)
    losses: list[ConversionLoss]
    loss_counts: dict[str, int]
    sha256: str
    size_bytes: int = Field(ge=0)

    @property
    def losses_truncated(self) -> bool:
        """True when more losses happened than `losses` holds."""
        return sum(self.loss_counts.values()) > len(self.losses)


@dataclass(frozen=True)
class WireFormat:
    """One target format: its name, what it accepts, where it is documented, and its converter."""

    name: str
    description: str
    accepts: frozenset[Literal["chat", "preference"]]
    source: str
    convert: Converter


# --------------------------------------------------------------------------------------------------
# Shared machinery


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
            f"use a preference format: {', '.join(_formats_accepting('preference'))}",
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
            f"non-preferred reply); use a supervised format: {', '.join(_formats_accepting('chat'))}",
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
    """Together messages: the leading system messages joined into one, names dropped, contents made
    uniform. A later system message stays where it is: Together's file check takes any order."""
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
    for loc, m in rest:
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
            calls = []
            for call in m.tool_calls:
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
            msg["tool_calls"] = calls
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
        messages.append(msg)
    record: Record = {"messages": messages}
    if chat.tools:
        record["tools"] = chat.tools
    return record


# --------------------------------------------------------------------------------------------------
# Cohere chat fine-tuning (dataset type chat-finetune-input; fine-tuning deprecated 2025-09-15):
# roles System/User/Chatbot, string content, at least one User and one Chatbot turn; the first System
# message is the preamble and "all other messages with role: System will be treated as speakers".
# https://docs.cohere.com/docs/chat-preparing-the-data

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

_Inner = Callable[[Example, _Ctx], Record]


def _pure(name: str, inner: _Inner) -> Converter:
    """Wrap a converter that raises `_Refused` into the public `(example) -> (record | None, losses)`."""

    def convert(example: Example) -> tuple[Record | None, list[ConversionLoss]]:
        if not isinstance(example, (ChatExample, PreferenceExample, TextExample)):
            raise ConfigurationError(
                f"expected ChatExample, PreferenceExample or TextExample, got {type(example).__name__}.",
                fix="Read dicts or files with Dataset.from_records(...) or Dataset.from_jsonl(path) first.",
            )
        ctx = _Ctx(fmt=name, line=example.line)
        try:
            record = inner(example, ctx)
        except _Refused as refusal:
            # A refused example is left out whole, so changes reported before the refusal are moot.
            return None, [
                ConversionLoss(line=example.line, code=refusal.code, message=refusal.message, refused=True)
            ]
        return record, ctx.losses

    convert.__name__ = f"convert_{name.replace('-', '_')}"
    convert.__doc__ = f"Convert one example to the {name!r} wire format: (record or None if refused, losses)."
    return convert


_CHAT: frozenset[Literal["chat", "preference"]] = frozenset({"chat"})
_PREF: frozenset[Literal["chat", "preference"]] = frozenset({"preference"})
_BOTH: frozenset[Literal["chat", "preference"]] = frozenset({"chat", "preference"})

_SPECS: list[tuple[str, str, frozenset[Literal["chat", "preference"]], str, _Inner]] = [
    (
        "openai",
        "OpenAI chat SFT: messages (+ tools, weight, images); the canonical format, lossless.",
        _CHAT,
        "https://platform.openai.com/docs/guides/supervised-fine-tuning",
        _openai,
    ),
    (
        "openai-dpo",
        "OpenAI preference (DPO): input.messages, preferred_output, non_preferred_output.",
        _PREF,
        "https://developers.openai.com/api/docs/guides/direct-preference-optimization",
        _openai_dpo,
    ),
    (
        "together",
        "Together conversation: messages (+ tools, weight); one leading system message.",
        _CHAT,
        "https://docs.together.ai/docs/fine-tuning/data-preparation",
        _together,
    ),
    (
        "together-instruction",
        "Together instruction: prompt/completion; multi-turn flattened into the prompt.",
        _CHAT,
        "https://docs.together.ai/docs/fine-tuning/data-preparation",
        _prompt_completion,
    ),
    (
        "together-preference",
        "Together preference (DPO, OpenAI-style); tools nested in input.",
        _PREF,
        "https://docs.together.ai/docs/fine-tuning/function-calling",
        _together_preference,
    ),
    (
        "bedrock-prompt-completion",
        "Bedrock Llama / Titan: prompt/completion; multi-turn flattened into the prompt.",
        _CHAT,
        "https://docs.aws.amazon.com/bedrock/latest/userguide/preparing-text-data.html",
        _prompt_completion,
    ),
    (
        "bedrock-conversation",
        "Bedrock Converse format (Nova): schemaVersion bedrock-conversation-2024, text blocks.",
        _CHAT,
        "https://docs.aws.amazon.com/bedrock/latest/userguide/preparing-text-data.html",
        _bedrock_conversation,
    ),
    (
        "bedrock-llama-conversation",
        "Bedrock Llama 3.2: the Converse format (schemaVersion, one system block, text blocks).",
        _CHAT,
        "https://docs.aws.amazon.com/bedrock/latest/userguide/preparing-text-data.html",
        _bedrock_conversation,
    ),
    (
        "bedrock-claude",
        "Bedrock Claude 3 Haiku: system string, alternating user/assistant string turns.",
        _CHAT,
        "https://platform.claude.com/cookbook/finetuning-finetuning-on-bedrock",
        _bedrock_claude,
    ),
    (
        "mistral",
        "Mistral fine-tuning: messages with tool calls (9-char ids, JSON-string arguments), weight.",
        _CHAT,
        "https://docs.mistral.ai/capabilities/finetuning/text_vision_finetuning",
        _mistral,
    ),
    (
        "cohere",
        "Cohere chat-finetune-input: roles System/User/Chatbot, text only.",
        _CHAT,
        "https://docs.cohere.com/docs/chat-preparing-the-data",
        _cohere,
    ),
    (
        "hf-chat",
        "Hugging Face chat-template messages (plain role/content); TRL prompt/chosen/rejected for pairs.",
        _BOTH,
        "https://huggingface.co/docs/trl/dataset_formats",
        _hf_chat,
    ),
]

_REGISTRY: dict[str, WireFormat] = {
    name: WireFormat(name=name, description=desc, accepts=accepts, source=source, convert=_pure(name, inner))
    for name, desc, accepts, source, inner in _SPECS
}


def _formats_accepting(kind: Literal["chat", "preference"]) -> list[str]:
    return [name for name, spec in _REGISTRY.items() if kind in spec.accepts]


def formats() -> list[str]:
    """The names of every known wire format, sorted."""
    return sorted(_REGISTRY)


def get_format(fmt: str) -> WireFormat:
    """The wire format named `fmt`; raises `ConfigurationError` listing the known names if unknown."""
    try:
        return _REGISTRY[fmt]
    except (KeyError, TypeError):  # TypeError: not a name at all (a list, a dict)
        pass
    known = formats()
    close = difflib.get_close_matches(str(fmt), known, n=1)
    raise ConfigurationError(
        f"Unknown dataset format {fmt!r}. Known formats: {', '.join(known)}.",
        fix=f"Did you mean {close[0]!r}?" if close else None,
    )


def convert_example(example: Example, fmt: str) -> tuple[Record | None, list[ConversionLoss]]:
    """Convert one example to `fmt`: the record (None if refused) and what was lost or refused."""
    return get_format(fmt).convert(example)


def _encode(record: Record) -> bytes:
    # Compact, UTF-8, strict JSON (NaN/Infinity refused): the same bytes for the same record.
    return (json.dumps(record, ensure_ascii=False, separators=(",", ":"), allow_nan=False) + "\n").encode(
        "utf-8"
    )


def write_jsonl(
    examples: Iterable[ChatExample | PreferenceExample | TextExample] | str | os.PathLike[str],
    fmt: str,
    path: str | os.PathLike[str],
    *,
    max_losses: int = 1000,
) -> ConversionResult:
    """Convert `examples` (a `Dataset`, any iterable of examples, or a JSONL file's path) to `fmt`
    and write them to `path` as JSONL, one example per line; `path`'s folder is created if missing.

    Streams: one example is held at a time. The file is written beside `path` under a temporary name
    and moved into place at the end, so a failure never leaves a half-written dataset at `path`.
    Refused examples are left out and counted. `losses` keeps the first `max_losses` losses;
    `loss_counts` counts all of them.
    """
    spec = get_format(fmt)  # before touching the disk: an unknown name writes nothing
    int_arg(max_losses, "max_losses", minimum=0, fix="Pass how many losses to keep, e.g. 1000.")
    if isinstance(examples, (str, bytes, os.PathLike)):
        examples = data_arg(examples, "examples")
    elif not isinstance(examples, Iterable) or isinstance(examples, (dict, BaseModel)):
        raise ConfigurationError(
            f"examples must be a Dataset, an iterable of examples or a JSONL file's path, not "
            f"{type(examples).__name__}.",
            fix="Pass Dataset.from_jsonl(path), or a list of ChatExample / PreferenceExample / TextExample.",
        )
    target = out_file(path, "path")
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
    digest = hashlib.sha256()
    size = written = refused = 0
    losses: list[ConversionLoss] = []
    counts: dict[str, int] = {}

    def note(loss: ConversionLoss) -> None:
        counts[loss.code] = counts.get(loss.code, 0) + 1
        if len(losses) < max_losses:
            losses.append(loss)

    try:
        fh = tmp.open("xb")
    except OSError as e:
        raise cannot_write(target, e) from None
    try:
        with fh:
            for example in examples:
                record, example_losses = spec.convert(example)
                data = None
                if record is not None:
                    try:
                        data = _encode(record)
                    except UnicodeEncodeError:
                        message = "text that is not valid Unicode: a lone UTF-16 surrogate; remove it"
                        example_losses = [
                            ConversionLoss(
                                line=example.line, code="invalid_unicode", message=message, refused=True
                            )
                        ]
                    except ValueError as exc:
                        example_losses = [
                            ConversionLoss(
                                line=example.line, code="invalid_json", message=str(exc), refused=True
                            )
                        ]
                for loss in example_losses:
                    note(loss)
                if data is None:
                    refused += 1
                    continue
                fh.write(data)
                digest.update(data)
                size += len(data)
                written += 1
        try:
            tmp.replace(target)
        except OSError as e:
            raise cannot_write(target, e) from None
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return ConversionResult(
        format=spec.name,
        path=target,
        written=written,
        refused=refused,
        losses=losses,
        loss_counts=counts,
        sha256=digest.hexdigest(),
        size_bytes=size,
    )
