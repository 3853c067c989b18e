"""Convert canonical examples into each provider's JSONL wire format, reporting every loss.

The canonical model (`ChatExample`, `PreferenceExample`) is OpenAI's format. Each target (one module
per vendor under `unitune.data.formats`; this module keeps the public types, the registry and
`write_jsonl`) is a pure function `example -> (record | None, losses)`. Whatever a target cannot express is either
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
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from unitune.data._args import cannot_write, data_arg, int_arg, out_file
from unitune.data._model import ChatExample, PreferenceExample, TextExample
from unitune.data.formats._base import LOSS_CODES, ConversionLoss, Example, Record, _Ctx, _Refused
from unitune.data.formats.bedrock import _bedrock_claude, _bedrock_conversation
from unitune.data.formats.cohere import _cohere
from unitune.data.formats.gemini import _gemini, _gemini_preference
from unitune.data.formats.hf import _hf_chat
from unitune.data.formats.mistral import _mistral
from unitune.data.formats.openai import _openai, _openai_dpo
from unitune.data.formats.prompt_completion import _prompt_completion
from unitune.data.formats.together import _together, _together_preference
from unitune.errors import ConfigurationError

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
        "gemini",
        "Vertex AI Gemini SFT: systemInstruction and contents of user/model text parts, alternating.",
        _CHAT,
        "https://cloud.google.com/vertex-ai/generative-ai/docs/models/gemini-supervised-tuning-prepare",
        _gemini,
    ),
    (
        "gemini-preference",
        "Vertex AI Gemini preference tuning: contents ending with the user, completions scored 1 and 0.",
        _PREF,
        "https://cloud.google.com/vertex-ai/generative-ai/docs/models/gemini-preference-tuning-prepare",
        _gemini_preference,
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
    """Convert examples to a wire format and write them as JSONL.

    Convert `examples` (a `Dataset`, any iterable of examples, or a JSONL file's path) to `fmt`
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
