"""The Ollama `Modelfile` for an exported GGUF.

The `Modelfile` that `ollama create NAME -f Modelfile` takes for an exported GGUF: `FROM` the file,
a `TEMPLATE` in Ollama's Go-template syntax that renders the same prompt as the model's own chat
template, `SYSTEM` when there is one to keep, and `PARAMETER stop` for the end-of-turn markers.

Ollama gives a model without a TEMPLATE the prompt verbatim (`{{ .Prompt }}`), so a chat model needs
one. The chat format is recognised by rendering the model's Jinja template on sample messages and
comparing with the formats written here (ChatML, Llama 3): a template that renders otherwise is
refused rather than approximated.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from unitune.errors import ConfigurationError, UnsupportedFeatureError

__all__ = ["ChatFormat", "chat_format", "modelfile", "shared_system_prompt"]

# Ollama fills .System (the SYSTEM line, or the request's system message) and .Messages (the turns,
# each with .Role and .Content); the loops leave system messages to the .System block.
_CHATML = (
    "{{ if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}"
    '{{ range .Messages }}{{ if eq .Role "user" }}<|im_start|>user\n{{ .Content }}<|im_end|>\n'
    "<|im_start|>assistant\n"
    '{{ else if eq .Role "assistant" }}{{ .Content }}<|im_end|>\n{{ end }}{{ end }}'
)
_LLAMA3 = (
    "{{ if .System }}<|start_header_id|>system<|end_header_id|>\n\n{{ .System }}<|eot_id|>{{ end }}"
    '{{ range .Messages }}{{ if eq .Role "user" }}<|start_header_id|>user<|end_header_id|>\n\n'
    "{{ .Content }}<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
    '{{ else if eq .Role "assistant" }}{{ .Content }}<|eot_id|>{{ end }}{{ end }}'
)


@dataclass(frozen=True)
class ChatFormat:
    """A chat format Ollama can be given.

    Its name, TEMPLATE, end-of-turn stops, and the system prompt the model's own template inserts when a
    conversation has none (SmolLM2 has one).
    """

    name: str
    template: str
    stops: tuple[str, ...]
    default_system: str | None


def _render(tokenizer: Any, messages: list[dict[str, str]]) -> str:
    text: str = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return text


def chat_format(tokenizer: Any) -> ChatFormat:
    """Recognise the tokenizer's chat template (ChatML or Llama 3) by what it renders."""
    if getattr(tokenizer, "chat_template", None) is None:
        raise UnsupportedFeatureError(
            provider="local", feature="an Ollama export of a model without a chat template",
            hint="Use --format gguf and write the Modelfile's TEMPLATE yourself.",
        )  # fmt: skip
    user = [{"role": "user", "content": "USER-TEXT"}]
    with_system = [{"role": "system", "content": "SYSTEM-TEXT"}, *user]
    plain, system = _render(tokenizer, user), _render(tokenizer, with_system)
    bos = tokenizer.bos_token or ""
    for name, template, turn, sys_turn, stop in (
        ("chatml", _CHATML, "<|im_start|>user\n{}<|im_end|>\n<|im_start|>assistant\n",
         "<|im_start|>system\n{}<|im_end|>\n", "<|im_end|>"),
        ("llama3", _LLAMA3,
         "<|start_header_id|>user<|end_header_id|>\n\n{}<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
         "<|start_header_id|>system<|end_header_id|>\n\n{}<|eot_id|>", "<|eot_id|>"),
    ):  # fmt: skip
        user_turn = turn.format("USER-TEXT")
        expected = sys_turn.format("SYSTEM-TEXT") + user_turn
        # A BOS the template writes is left to the runtime (llama.cpp adds it when the GGUF says so).
        lead = next((p for p in ("", bos) if system == p + expected and plain.startswith(p)), None)
        if lead is None or not plain.endswith(user_turn):
            continue
        default = plain[len(lead) : -len(user_turn)]
        found = re.fullmatch(re.escape(sys_turn).replace(re.escape("{}"), "(.*)"), default, re.DOTALL)
        if default and found is None:
            continue  # the template adds something besides a system turn: not this format
        stops = tuple(dict.fromkeys([stop, *([tokenizer.eos_token] if tokenizer.eos_token else [])]))
        return ChatFormat(name, template, stops, found.group(1) if found else None)
    raise UnsupportedFeatureError(
        provider="local",
        feature="an Ollama TEMPLATE for this model's chat format (ChatML and Llama 3 are written)",
        hint="Use --format gguf and write the Modelfile's TEMPLATE yourself.",
    )


def shared_system_prompt(training_file: Path) -> tuple[str | None, bool]:
    """The system prompt every training example starts with, if there is one.

    The system prompt every training example starts with: (the prompt, True), or (None, True)
    when no example has one, or (None, False) when they differ (or the file cannot be read).
    """
    prompts: set[str | None] = set()
    try:
        with training_file.open(encoding="utf-8") as fh:
            for line in fh:
                if not line.strip():
                    continue
                messages = json.loads(line).get("messages") or []
                first = messages[0] if messages else {}
                content = first.get("content")
                prompts.add(content if first.get("role") == "system" and isinstance(content, str) else None)
                if len(prompts) > 1:
                    return None, False
    except (OSError, ValueError, AttributeError):
        return None, False
    return (next(iter(prompts)) if prompts else None), True


def _quoted(what: str, text: str) -> str:
    if '"""' in text:
        raise ConfigurationError(
            f'The {what} contains """, which ends a Modelfile text block.', fix=f'Remove """ from the {what}.'
        )
    return f'"""{text}"""'


def modelfile(gguf_name: str, fmt: ChatFormat, system: str | None, *, header: str) -> str:
    """The Modelfile text: FROM ./<gguf_name>, TEMPLATE, SYSTEM (when given), PARAMETER stop lines."""
    lines = [f"# {line}" for line in header.splitlines()]
    lines += [f"FROM ./{gguf_name}", f"TEMPLATE {_quoted('template', fmt.template)}"]
    if system:
        lines.append(f"SYSTEM {_quoted('system prompt', system)}")
    lines += [f"PARAMETER stop {json.dumps(stop)}" for stop in fmt.stops]
    return "\n".join(lines) + "\n"
