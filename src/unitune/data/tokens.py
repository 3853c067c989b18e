"""Offline token counting: exact where the model's tokenizer ships in a package, estimated otherwise.

`counter_for(provider, model)` picks a `TokenCounter` for a model id (a portable alias, a vendor id,
a Hugging Face id or a local path):

* OpenAI, Llama 3.x and Qwen 2/2.5/3 models count exactly with the vocabularies bundled in
  `quicktok-v1`; the chat overhead is the OpenAI cookbook rule or the model's chat template,
  rendered here token by token.
* Mistral models whose vocabulary `mistral-common` bundles count exactly with
  `encode_chat_completion`.
* A local path, or a Hugging Face id whose files are already in the local cache, uses that
  tokenizer and its `apply_chat_template` (transformers, `local_files_only=True`).
* Anything else, or a missing library, gives an approximate counter (4 characters per token) whose
  `method` says so and what to install.

Which model uses which tokenizer is data (`tokenizers.toml`, with a source per family). Nothing here
downloads: every vocabulary comes from an installed package or a file already on disk. The
libraries are imported inside functions, so importing this module stays cheap.
"""

from __future__ import annotations

import fnmatch
import functools
import hashlib
import json
import math
import os
import re
import sys
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import Any, TypeVar, cast

from unitune.types import Message, content_text

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]

__all__ = ["TOKENS_INSTALL_HINT", "MessageLike", "TokenCounter", "counter_for", "upper_bound_counter"]

TOKENS_INSTALL_HINT = 'pip install "unitune[tokens]"'
_HF_INSTALL_HINT = "pip install transformers"

# One character in four is OpenAI's rule of thumb for English text; it is the estimate used
# whenever no tokenizer for the model is available.
_CHARS_PER_TOKEN = 4

# The date the Llama 3.1/3.3 templates write when none is given. Llama 3.2 writes today's date
# instead; every "DD Mon YYYY" date of 2024-2027 has the same llama3 token count (checked), so
# counts do not depend on the day.
_LLAMA_DATE = "26 Jul 2024"

# A batch of texts is counted in slices of about this many characters: quicktok's batch call
# materialises every token id, so a slice bounds the memory a 50 MB dataset needs.
_BATCH_CHARS = 8_000_000
_SMALL_BATCH = 32

MessageLike = Message | Mapping[str, Any]
"""A chat message: a `Message` model, or a raw dict as read from JSONL."""

_Conversation = tuple[Sequence[MessageLike], "Sequence[Mapping[str, Any]] | None"]


class TokenCounter(ABC):
    """Counts tokens for one model family.

    Attributes:
        name: what counts the tokens, e.g. "o200k_base", "llama3", "mistral-v3", or "chars/4".
        approximate: False when counts are what the model's own tokenizer gives.
        method: one line saying how counts are made (and, when approximate, what to install).
        chat_format: how a conversation is laid out: "openai", "llama3", "llama3.1", "chatml",
            "qwen2.5", "qwen3", "mistral" or "hf" (the tokenizer's own chat template).

    Counters are cached and shared: every method is safe to call from several threads.
    """

    name: str
    approximate: bool
    method: str
    chat_format: str

    @abstractmethod
    def count_text(self, text: str) -> int:
        """Tokens in `text` as plain text.

        With the bundled vocabularies a special-token string in the text ("<|eot_id|>") counts as
        the text it is; a Hugging Face tokenizer reads it as its special token, as it would in training.
        """

    def count_texts(self, texts: Sequence[str]) -> list[int]:
        """`count_text` for many texts at once; subclasses batch it where the tokenizer can."""
        return [self.count_text(t) for t in texts]

    @abstractmethod
    def count_messages(
        self, messages: Sequence[MessageLike], *, tools: Sequence[Mapping[str, Any]] | None = None
    ) -> int:
        """Tokens in a whole conversation as the model sees it, chat-format overhead included.

        `tools` are the OpenAI-style function tools offered in the conversation.
        """

    def count_conversation(
        self, messages: Sequence[MessageLike], *, tools: Sequence[Mapping[str, Any]] | None = None
    ) -> tuple[int, int]:
        """`count_messages(messages, tools=tools)`, and the tokens in the assistant messages' text.

        What validation needs per example, in one call: counters that can share the work (the
        OpenAI format counts each message's text once for both) do so.
        """
        total = self.count_messages(messages, tools=tools)
        texts = [_text_of(m) for m in messages if _role_of(m) == "assistant"]
        return total, (sum(self.count_texts(texts)) if texts else 0)

    def count_conversations(self, items: Sequence[_Conversation]) -> list[tuple[int, int]]:
        """`count_conversation` for many (messages, tools) pairs: a batch lets a counter keep its
        tokenizer busy in one tight loop."""
        return [self.count_conversation(messages, tools=tools) for messages, tools in items]

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} approximate={self.approximate}: {self.method}>"


def _role_of(message: MessageLike) -> Any:
    return message.role if isinstance(message, Message) else message.get("role")


def _text_of(message: MessageLike) -> str:
    if isinstance(message, Message):
        return message.text
    return content_text(message.get("content"))


# --- messages -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Call:
    """One tool call: the function name and its arguments as JSON text (OpenAI sends a string)."""

    name: str
    arguments: str
    id: str | None


@dataclass(frozen=True)
class _Msg:
    """A message reduced to what any chat format renders."""

    role: str
    text: str
    name: str | None
    calls: tuple[_Call, ...]
    tool_call_id: str | None
    reasoning: str | None


def _as_text(value: Any) -> str:
    if value is None or isinstance(value, str | list):
        return content_text(cast("str | list[dict[str, Any]] | None", value))
    return str(value)


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _calls(raw: Any) -> tuple[_Call, ...]:
    if not isinstance(raw, list):
        return ()
    out: list[_Call] = []
    for item in raw:
        if not isinstance(item, Mapping):
            continue
        fn = item.get("function", item)
        fn = fn if isinstance(fn, Mapping) else {}
        args = fn.get("arguments", "")
        args_text = args if isinstance(args, str) else json.dumps(args, ensure_ascii=False)
        out.append(_Call(str(fn.get("name", "")), args_text, _opt_str(item.get("id"))))
    return tuple(out)


def _normalize(message: MessageLike) -> _Msg:
    if isinstance(message, Message):
        return _Msg(
            message.role,
            message.text,
            message.name,
            _calls(message.tool_calls),
            message.tool_call_id,
            None,
        )
    # Raw JSONL is counted as it is, even when malformed: validation reports problems, counting
    # should not be the thing that crashes on them.
    reasoning = message.get("reasoning_content")
    return _Msg(
        str(message.get("role", "")),
        _as_text(message.get("content")),
        _opt_str(message.get("name")),
        _calls(message.get("tool_calls")),
        _opt_str(message.get("tool_call_id")),
        reasoning if isinstance(reasoning, str) else None,
    )


def _args_object(arguments: str) -> Any:
    """Arguments as the object the JSON text encodes (what HF templates expect), or the text."""
    try:
        return json.loads(arguments)
    except ValueError:
        return arguments


def _jdump(value: Any, indent: int | None = None) -> str:
    # transformers' `tojson` filter is json.dumps with ensure_ascii=False and default separators.
    return json.dumps(value, ensure_ascii=False, indent=indent)


# --- text encoders --------------------------------------------------------------------------------


class _Encoder(ABC):
    """Turns text into a token count; the chat formats below are built on one."""

    @abstractmethod
    def count(self, text: str) -> int: ...

    def count_many(self, texts: Sequence[str]) -> list[int]:
        return [self.count(t) for t in texts]

    def counter(self) -> Callable[[str], int]:
        """The fastest callable doing what `count` does (hot loops call it per message)."""
        return self.count


_F = TypeVar("_F", bound=Callable[..., Any])

#: What each counting method takes, for the error when it is given something else.
_TAKES = {
    "count_text": "text (a str)",
    "count_texts": "a list of texts (str)",
    "count_messages": "a list of messages (dicts with role and content, or Message objects)",
    "count_conversation": "a list of messages (dicts with role and content, or Message objects)",
    "count_conversations": "a list of (messages, tools) pairs",
}


def _plain(value: Any) -> Any:
    """`value` with pydantic models (`Message`) dumped, for the Unicode check."""
    if hasattr(value, "model_dump"):
        return value.model_dump()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _guarded(method: _F) -> _F:
    """A counting method whose bad input is a one-line error: text that is not valid Unicode (a lone
    surrogate, which no tokenizer takes) a `DatasetError`, anything else it cannot count a
    `ConfigurationError`. Costs nothing unless the tokenizer raises."""
    name = method.__name__

    @functools.wraps(method)
    def guarded(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except (TypeError, ValueError, AttributeError) as e:
            from unitune.data._loaders import valid_unicode
            from unitune.errors import ConfigurationError, DatasetError, UnituneError

            if isinstance(e, UnituneError):
                raise
            if not valid_unicode(_plain([args, kwargs])):
                raise DatasetError(
                    "text that is not valid Unicode: a lone UTF-16 surrogate (\\ud800-\\udfff), which no "
                    "tokenizer takes; remove it or write the whole character"
                ) from None
            given = type(args[0]).__name__ if args else "nothing"
            raise ConfigurationError(
                f"{name}() cannot count what it was given (got {given}).",
                fix=f"Pass {_TAKES.get(name, 'text')}.",
            ) from None

    return cast("_F", guarded)


class _CharEstimate(_Encoder):
    def count(self, text: str) -> int:
        return -(-len(text) // _CHARS_PER_TOKEN)


class _QuicktokEncoder(_Encoder):
    def __init__(self, module: Any, encoding: Any) -> None:
        self._module = module
        self._enc = encoding

    def count(self, text: str) -> int:
        # `count` treats special-token strings as text (tiktoken's encode_ordinary), so user
        # content that happens to contain "<|endoftext|>" is counted, not refused.
        return int(self._enc.count(text))

    def counter(self) -> Callable[[str], int]:
        # quicktok's own method already returns an int: calling it directly saves a frame.
        fn: Callable[[str], int] = self._enc.count
        return fn

    def count_many(self, texts: Sequence[str]) -> list[int]:
        # A batch call costs about 100 us to set up (threads, a numpy array), so a few texts (one
        # example's messages) are faster one by one.
        if len(texts) < _SMALL_BATCH:
            return [int(self._enc.count(t)) for t in texts]
        out: list[int] = []
        batch: list[str] = []
        size = 0
        for text in texts:
            batch.append(text)
            size += len(text)
            if size >= _BATCH_CHARS:
                out.extend(self._batch(batch))
                batch, size = [], 0
        if batch:
            out.extend(self._batch(batch))
        return out

    def _batch(self, texts: list[str]) -> list[int]:
        counts: list[int] = self._module.count_batch(self._enc, texts, threads=_cpus()).tolist()
        return counts


def _cpus() -> int:
    # quicktok's default (0) asks the hardware, which in a container can be far more cores than
    # the process may use; oversubscribed threads made batches slower than one thread.
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


# --- chat formats rendered token by token -----------------------------------------------------------


class _Builder:
    """Collects a rendered conversation as special tokens and runs of plain text.

    Special tokens split the text before BPE runs (in tiktoken and in HF tokenizers alike), so the
    exact count of a rendered template is the number of specials plus the count of each run of
    text between them. Runs are kept whole: BPE merges across the seam between template text and
    content (e.g. "\\n" + "\\nHi"), so counting pieces separately would be wrong.
    """

    def __init__(self, specials: re.Pattern[str], *, trace: bool = False) -> None:
        self._specials = specials
        self.n_special = 0
        self.runs: list[str] = []
        self._buf: list[str] = []
        self._trace: list[str] | None = [] if trace else None

    def text(self, s: str) -> None:
        """Content: counted as plain text, even if it contains special-token strings."""
        if s:
            self._buf.append(s)
            if self._trace is not None:
                self._trace.append(s)

    def tpl(self, s: str) -> None:
        """Template text: the special-token strings in it are single tokens."""
        for i, part in enumerate(self._specials.split(s)):
            if i % 2:
                self.special(part)
            else:
                self.text(part)

    def special(self, token: str) -> None:
        self._flush()
        self.n_special += 1
        if self._trace is not None:
            self._trace.append(token)

    def _flush(self) -> None:
        if self._buf:
            self.runs.append("".join(self._buf))
            self._buf = []

    def finish(self) -> _Builder:
        self._flush()
        return self

    @property
    def rendered(self) -> str:
        """The whole rendered string (only when built with trace=True; for tests and debugging)."""
        return "".join(self._trace or ())


def _specials_re(tokens: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile("(" + "|".join(re.escape(t) for t in tokens) + ")")


# The special tokens the renderers below emit. (Llama 3.1's <|eom_id|> and <|python_tag|> are only
# for built-in tools, which training data does not use; quicktok's llama3 names them reserved.)
_LLAMA3_TOKENS = ("<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>")
_CHATML_TOKENS = (
    "<|im_start|>", "<|im_end|>", "<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>",
    "<think>", "</think>",
)  # fmt: skip
_LLAMA_SPECIALS = _specials_re(_LLAMA3_TOKENS)
_CHATML_SPECIALS = _specials_re(_CHATML_TOKENS)

_LLAMA_TOOLS_PREAMBLE = (
    "Given the following functions, please respond with a JSON for a function call "
    "with its proper arguments that best answers the given prompt.\n\n"
    'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.'
    "Do not use variables.\n\n"
)
_QWEN_TOOLS_HEAD = (
    "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>"
)
_QWEN_TOOLS_TAIL = (
    "\n</tools>\n\nFor each function call, return a json object with function name and arguments "
    "within <tool_call></tool_call> XML tags:\n<tool_call>\n"
    '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call><|im_end|>\n'
)
# Qwen 2.5's template writes the example with doubled braces (a leftover of a Python format
# string); Qwen3 fixed it. The literal text is what the model sees, so it is kept.
_QWEN25_TOOLS_TAIL = _QWEN_TOOLS_TAIL.replace("{", "{{").replace("}", "}}")


def _render_llama3(
    b: _Builder, msgs: list[_Msg], tools: list[Mapping[str, Any]], _default: str | None
) -> None:
    """Meta-Llama-3-*-Instruct's template: a header per message, content trimmed, no tools."""
    b.special("<|begin_of_text|>")
    for m in msgs:
        b.tpl(f"<|start_header_id|>{m.role}<|end_header_id|>\n\n")
        # The 3.0 template has no tool support; tool calls are counted as their JSON text (estimate).
        calls = "".join(_jdump({"name": c.name, "parameters": _args_object(c.arguments)}) for c in m.calls)
        b.text((m.text + calls).strip())
        b.special("<|eot_id|>")


def _render_llama31(
    b: _Builder, msgs: list[_Msg], tools: list[Mapping[str, Any]], _default: str | None
) -> None:
    """Llama 3.1/3.2/3.3's template: a system header that always carries the date lines, tools
    in the first user message (the template's default), one JSON tool call per assistant turn."""
    b.special("<|begin_of_text|>")
    system = ""
    if msgs and msgs[0].role == "system":
        system, msgs = msgs[0].text.strip(), msgs[1:]
    b.tpl("<|start_header_id|>system<|end_header_id|>\n\n")
    if tools:
        b.tpl("Environment: ipython\n")
    b.tpl(f"Cutting Knowledge Date: December 2023\nToday Date: {_LLAMA_DATE}\n\n")
    b.text(system)
    b.special("<|eot_id|>")
    if tools:
        first = ""
        if msgs:
            first, msgs = msgs[0].text.strip(), msgs[1:]
        b.tpl("<|start_header_id|>user<|end_header_id|>\n\n" + _LLAMA_TOOLS_PREAMBLE)
        for tool in tools:
            b.text(_jdump(tool, indent=4))
            b.tpl("\n\n")
        b.text(first)
        b.special("<|eot_id|>")
    for m in msgs:
        if m.role in ("tool", "ipython"):
            b.tpl("<|start_header_id|>ipython<|end_header_id|>\n\n")
            # Jinja's `is iterable` is true for strings, so the template JSON-quotes tool output.
            b.text(_jdump(m.text))
        elif m.calls:
            b.tpl("<|start_header_id|>assistant<|end_header_id|>\n\n")
            # The template takes exactly one call, with arguments as an object (HF convention), and
            # drops the content. Several calls are counted one after another (estimate).
            for c in m.calls:
                b.text('{"name": "' + c.name + '", "parameters": ' + _jdump(_args_object(c.arguments)) + "}")
        else:
            b.tpl(f"<|start_header_id|>{m.role}<|end_header_id|>\n\n")
            b.text(m.text.strip())
        b.special("<|eot_id|>")


def _render_chatml(
    b: _Builder,
    msgs: list[_Msg],
    tools: list[Mapping[str, Any]],
    default_system: str | None,
    *,
    qwen3: bool = False,
    tools_tail: str = _QWEN_TOOLS_TAIL,
) -> None:
    """ChatML as Qwen 2/2.5/3 (and SmolLM2) lay it out: `<|im_start|>role\\n...<|im_end|>\\n`,
    tools in the system turn, tool calls in <tool_call> tags, tool results in a user turn."""
    has_system = bool(msgs) and msgs[0].role == "system"
    system = msgs[0].text if has_system else None
    if tools:
        b.tpl("<|im_start|>system\n")
        head = system if system is not None else default_system
        if head is not None:
            b.text(head)
            b.tpl("\n\n")
        b.tpl(_QWEN_TOOLS_HEAD)
        for tool in tools:
            b.tpl("\n")
            b.text(_jdump(tool))
        b.tpl(tools_tail)
    elif system is not None or default_system is not None:
        b.tpl("<|im_start|>system\n")
        b.text(system if system is not None else cast(str, default_system))
        b.tpl("<|im_end|>\n")

    # Qwen3 only: where the last real user query is (tool results wrapped as a user turn are not one).
    last_query = len(msgs) - 1
    if qwen3:
        for i in range(len(msgs) - 1, -1, -1):
            t = msgs[i].text
            if msgs[i].role == "user" and not (
                t.startswith("<tool_response>") and t.endswith("</tool_response>")
            ):
                last_query = i
                break

    last = len(msgs) - 1
    for i, m in enumerate(msgs):
        if m.role == "system" and i == 0:
            continue
        if m.role == "assistant":
            if qwen3:
                _chatml_assistant_qwen3(b, m, after_query=i > last_query, is_last=i == last)
            else:
                _chatml_assistant(b, m)
        elif m.role == "tool":
            if i == 0 or msgs[i - 1].role != "tool":
                b.tpl("<|im_start|>user")
            b.tpl("\n<tool_response>\n")
            b.text(m.text)
            b.tpl("\n</tool_response>")
            if i == last or msgs[i + 1].role != "tool":
                b.tpl("<|im_end|>\n")
        else:
            b.tpl(f"<|im_start|>{m.role}\n")
            b.text(m.text)
            b.tpl("<|im_end|>\n")


def _chatml_assistant(b: _Builder, m: _Msg) -> None:
    if not m.calls:
        b.tpl("<|im_start|>assistant\n")
        b.text(m.text)
        b.tpl("<|im_end|>\n")
        return
    b.tpl("<|im_start|>assistant")
    if m.text:
        b.tpl("\n")
        b.text(m.text)
    for c in m.calls:
        b.tpl('\n<tool_call>\n{"name": "')
        b.text(c.name)
        b.tpl('", "arguments": ')
        # Qwen 2/2.5 apply `tojson` to the arguments, which HF expects as an object; an OpenAI
        # JSON string is parsed first (passing the string would double-encode it).
        b.text(_jdump(_args_object(c.arguments)))
        b.tpl("}\n</tool_call>")
    b.tpl("<|im_end|>\n")


def _chatml_assistant_qwen3(b: _Builder, m: _Msg, *, after_query: bool, is_last: bool) -> None:
    content, reasoning = m.text, m.reasoning
    if reasoning is None:
        reasoning = ""
        if "</think>" in content:
            reasoning = content.split("</think>")[0].rstrip("\n").split("<think>")[-1].lstrip("\n")
            content = content.split("</think>")[-1].lstrip("\n")
    # Reasoning is kept only after the last user query; the final turn there always gets a
    # <think> block, empty when there is no reasoning.
    if after_query and (is_last or reasoning):
        b.tpl("<|im_start|>assistant\n<think>\n")
        b.text(reasoning.strip("\n"))
        b.tpl("\n</think>\n\n")
        b.text(content.lstrip("\n"))
    else:
        b.tpl("<|im_start|>assistant\n")
        b.text(content)
    for j, c in enumerate(m.calls):
        if j or content:
            b.tpl("\n")
        b.tpl('<tool_call>\n{"name": "')
        b.text(c.name)
        b.tpl('", "arguments": ')
        # Qwen3 writes a string argument as it is, an object through tojson.
        b.text(c.arguments)
        b.tpl("}\n</tool_call>")
    b.tpl("<|im_end|>\n")


_Renderer = Callable[[_Builder, list[_Msg], list[Mapping[str, Any]], str | None], None]


def _render_qwen3(b: _Builder, msgs: list[_Msg], tools: list[Mapping[str, Any]], default: str | None) -> None:
    _render_chatml(b, msgs, tools, default, qwen3=True)


def _render_qwen25(
    b: _Builder, msgs: list[_Msg], tools: list[Mapping[str, Any]], default: str | None
) -> None:
    _render_chatml(b, msgs, tools, default, tools_tail=_QWEN25_TOOLS_TAIL)


_RENDERERS: dict[str, tuple[_Renderer, re.Pattern[str]]] = {
    "llama3": (_render_llama3, _LLAMA_SPECIALS),
    "llama3.1": (_render_llama31, _LLAMA_SPECIALS),
    "chatml": (_render_chatml, _CHATML_SPECIALS),
    "qwen2.5": (_render_qwen25, _CHATML_SPECIALS),
    "qwen3": (_render_qwen3, _CHATML_SPECIALS),
}


def _count_openai(enc: _Encoder, msgs: list[_Msg], tools: Sequence[Mapping[str, Any]]) -> int:
    """OpenAI's cookbook rule: every message costs 3 tokens plus its encoded values (role, content,
    name), a `name` one more, and the reply is primed with 3 (<|start|>assistant<|message|>).

    OpenAI does not publish how tool calls and tool schemas are rendered, so they are counted as
    their JSON text: an estimate. A tool message's `tool_call_id` and a `weight` are not text the
    model reads and are not counted.
    """
    total = 3
    for m in msgs:
        total += 3 + enc.count(m.role) + enc.count(m.text)
        if m.name is not None:
            total += enc.count(m.name) + 1
        for c in m.calls:
            total += enc.count(_jdump({"name": c.name, "arguments": c.arguments}))
    if tools:
        total += enc.count(_jdump(list(tools)))
    return total


class _TemplateCounter(TokenCounter):
    """A text encoder (exact or estimated) plus a chat format rendered in this module."""

    def __init__(
        self,
        *,
        name: str,
        approximate: bool,
        method: str,
        encoder: _Encoder,
        chat_format: str,
        default_system: str | None = None,
    ) -> None:
        self.name = name
        self.approximate = approximate
        self.method = method
        self.chat_format = chat_format
        self._enc = encoder
        self._default_system = default_system
        self._role_tokens: dict[str, int] = {}
        # System prompts and tool schemas repeat (most training sets use one or a few): their
        # counts, by text.
        self._repeated: dict[str, int] = {}

    @_guarded
    def count_text(self, text: str) -> int:
        return self._enc.count(text)

    @_guarded
    def count_texts(self, texts: Sequence[str]) -> list[int]:
        return self._enc.count_many(texts)

    @_guarded
    def count_messages(
        self, messages: Sequence[MessageLike], *, tools: Sequence[Mapping[str, Any]] | None = None
    ) -> int:
        msgs = [_normalize(m) for m in messages]
        tool_list = list(tools or ())
        if self.chat_format == "openai":
            return _count_openai(self._enc, msgs, tool_list)
        b = self._render(msgs, tool_list)
        return b.n_special + sum(self._enc.count(run) for run in b.runs)

    @_guarded
    def count_conversation(
        self, messages: Sequence[MessageLike], *, tools: Sequence[Mapping[str, Any]] | None = None
    ) -> tuple[int, int]:
        if self.chat_format != "openai":
            return super().count_conversation(messages, tools=tools)
        return self.count_conversations([(messages, tools)])[0]

    @_guarded
    def count_conversations(self, items: Sequence[_Conversation]) -> list[tuple[int, int]]:
        if self.chat_format != "openai":
            return super().count_conversations(items)
        # `_count_openai` over raw dicts, in two phases: first every text to count and each
        # conversation's fixed overhead, then one tight loop of tokenizer calls (its tables stay in
        # cache), then the sums. Each text is counted once (the assistant total reuses it), role,
        # system prompt and tool schema counts are cached, no `_Msg` is built. The same numbers,
        # about twice as fast.
        count = self._enc.counter()
        roles = self._role_tokens
        repeated = self._repeated

        def once(text: str) -> int:  # a text that repeats across conversations: counted once
            n = repeated.get(text)
            if n is None:
                n = count(text)
                if len(repeated) < 1024:
                    repeated[text] = n
            return n

        texts: list[str] = []
        plans: list[tuple[int, int, int, list[int]] | tuple[int, int]] = []
        for messages, tools in items:
            fixed = 3
            start = len(texts)
            assistant: list[int] = []
            for m in cast("Sequence[dict[str, Any]]", messages):
                if type(m) is not dict:  # `Message` models: the general path
                    break
                raw_role = m.get("role", "")
                role = raw_role if type(raw_role) is str else str(raw_role)
                n_role = roles.get(role)
                if n_role is None:
                    n_role = roles[role] = count(role)
                fixed += 3 + n_role
                content = m.get("content")
                if type(content) is str:
                    if raw_role == "system":
                        fixed += once(content)
                    else:
                        if raw_role == "assistant":
                            assistant.append(len(texts))
                        texts.append(content)
                else:
                    plain = content is None or isinstance(content, str | list)
                    if raw_role == "assistant" and plain:
                        # content_text() of other types is "": what `count_texts` would count as 0.
                        assistant.append(len(texts))
                    texts.append(_as_text(content))
                name = m.get("name")
                if name is not None:
                    texts.append(str(name))
                    fixed += 1
                calls = m.get("tool_calls")
                if calls is not None:
                    texts += [_jdump({"name": c.name, "arguments": c.arguments}) for c in _calls(calls)]
            else:
                if tools:
                    fixed += once(_jdump(list(tools)))
                plans.append((fixed, start, len(texts), assistant))
                continue
            del texts[start:]
            plans.append(super().count_conversation(messages, tools=tools))  # (total, assistant)
        counts = list(map(count, texts))
        out: list[tuple[int, int]] = []
        for plan in plans:
            if len(plan) == 2:
                out.append(plan)
            else:
                fixed, start, end, assistant = plan
                out.append((fixed + sum(counts[start:end]), sum([counts[i] for i in assistant])))
        return out

    def _render(self, msgs: list[_Msg], tools: list[Mapping[str, Any]], *, trace: bool = False) -> _Builder:
        render, specials = _RENDERERS[self.chat_format]
        b = _Builder(specials, trace=trace)
        render(b, msgs, tools, self._default_system)
        return b.finish()


# --- mistral-common -----------------------------------------------------------------------------------

_MISTRAL_ID = re.compile(r"^[a-zA-Z0-9]{9}$")


class _MistralCounter(TokenCounter):
    """mistral-common's own tokenizer: `encode_chat_completion` gives the exact request tokens."""

    chat_format = "mistral"

    def __init__(self, *, name: str, approximate: bool, method: str, tokenizer: Any) -> None:
        self.name = name
        self.approximate = approximate
        self.method = method
        self._tok = tokenizer
        self._raw = tokenizer.instruct_tokenizer.tokenizer

    @_guarded
    def count_text(self, text: str) -> int:
        return len(self._raw.encode(text, bos=False, eos=False))

    @_guarded
    def count_texts(self, texts: Sequence[str]) -> list[int]:
        # mistral-common wraps each call in Python list work; calling its backend directly is
        # several times faster on a dataset: Tekken is a tiktoken Encoding (whose own threaded
        # batch call was slower than this loop), the v1-v7 files a SentencePieceProcessor, which
        # batches natively. The backend is a private attribute, so anything unexpected falls
        # back to the public per-text call.
        model = getattr(self._raw, "_model", None)
        if len(texts) >= _SMALL_BATCH and model is not None:
            try:
                if hasattr(model, "encode_ordinary"):
                    return [len(model.encode_ordinary(t)) for t in texts]
                if hasattr(model, "EncodeAsIds"):
                    return [len(ids) for ids in model.encode(list(texts), num_threads=_cpus())]
            except Exception:
                pass
        return [self.count_text(t) for t in texts]

    @_guarded
    def count_messages(
        self, messages: Sequence[MessageLike], *, tools: Sequence[Mapping[str, Any]] | None = None
    ) -> int:
        from mistral_common.protocol.instruct.request import ChatCompletionRequest

        msgs = [_normalize(m) for m in messages]
        try:
            request = ChatCompletionRequest.from_openai(
                _mistral_messages(msgs), tools=[dict(t) for t in tools] if tools else None
            )
            return len(self._tok.encode_chat_completion(request).tokens)
        except Exception:
            # mistral-common refuses conversations Mistral would refuse (two user turns in a row,
            # a tool turn with no call, tools on the v1 tokenizer...). Validation reports those;
            # here the conversation is still counted: its text plus 3 tokens a message (estimate).
            texts = [m.text for m in msgs] + [c.name + c.arguments for m in msgs for c in m.calls]
            texts += [_jdump(dict(t)) for t in tools or ()]
            return sum(self.count_texts(texts)) + 3 * len(msgs)


_BASE62 = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _mistral_messages(msgs: list[_Msg]) -> list[dict[str, Any]]:
    """OpenAI-shaped dicts mistral-common accepts. Its tool-call ids must be 9 alphanumerics (as
    Mistral's API makes them), so other ids (OpenAI's "call_...") are replaced by a stable random-
    looking 9-character stand-in: the count is then what the id would cost in Mistral's format,
    give or take a token or two per id (an estimate)."""
    ids: dict[str, str] = {}

    def fix(call_id: str | None, salt: str) -> str:
        key = call_id if call_id is not None else salt
        if _MISTRAL_ID.match(key):
            return key
        if key not in ids:
            n = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")
            ids[key] = "".join(_BASE62[(n >> (6 * k)) % 62] for k in range(9))
        return ids[key]

    out: list[dict[str, Any]] = []
    for i, m in enumerate(msgs):
        role = "system" if m.role == "developer" else m.role
        d: dict[str, Any] = {"role": role, "content": m.text}
        if m.calls:
            d["tool_calls"] = [
                {
                    "id": fix(c.id, f"{i}.{j}"),
                    "type": "function",
                    "function": {"name": c.name, "arguments": c.arguments},
                }
                for j, c in enumerate(m.calls)
            ]
            if not m.text:
                d["content"] = None
        if role == "tool":
            d["tool_call_id"] = fix(m.tool_call_id, f"{i}")
            if m.name is not None:
                d["name"] = m.name
        out.append(d)
    return out


# --- Hugging Face tokenizers on disk --------------------------------------------------------------------


class _HFCounter(TokenCounter):
    """A transformers tokenizer loaded from local files, with its own chat template."""

    def __init__(self, *, name: str, method: str, tokenizer: Any, approximate: bool) -> None:
        self.name = name
        self.method = method
        self.approximate = approximate
        self.chat_format = "hf"
        self._tok = tokenizer

    @_guarded
    def count_text(self, text: str) -> int:
        return len(self._tok.encode(text, add_special_tokens=False))

    @_guarded
    def count_texts(self, texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        ids = self._tok(list(texts), add_special_tokens=False)["input_ids"]
        return [len(x) for x in ids]

    @_guarded
    def count_messages(
        self, messages: Sequence[MessageLike], *, tools: Sequence[Mapping[str, Any]] | None = None
    ) -> int:
        msgs = [_normalize(m) for m in messages]
        if getattr(self._tok, "chat_template", None):
            try:
                out = self._tok.apply_chat_template(
                    _hf_messages(msgs),
                    tools=[dict(t) for t in tools] if tools else None,
                    tokenize=True,
                    add_generation_prompt=False,
                )
                ids = out["input_ids"] if isinstance(out, Mapping) else out
                return len(ids)
            except Exception:
                pass  # a template that rejects this conversation (e.g. roles must alternate)
        # No usable template: the text, plus 4 tokens a message for ChatML-like framing (estimate).
        texts = [m.text for m in msgs] + [_jdump(dict(t)) for t in tools or ()]
        return sum(self.count_texts(texts)) + 4 * len(msgs)


def _hf_messages(msgs: list[_Msg]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for m in msgs:
        d: dict[str, Any] = {"role": m.role, "content": m.text}
        if m.calls:
            # HF chat templates expect arguments as an object, not OpenAI's JSON string.
            d["tool_calls"] = [
                {"type": "function", "function": {"name": c.name, "arguments": _args_object(c.arguments)}}
                for c in m.calls
            ]
        if m.tool_call_id is not None:
            d["tool_call_id"] = m.tool_call_id
        if m.name is not None:
            d["name"] = m.name
        if m.reasoning is not None:
            d["reasoning_content"] = m.reasoning
        out.append(d)
    return out


_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")


def _local_tokenizer(model: str) -> Path | None:
    """`model` as a local directory holding tokenizer files, or a .gguf file; else None."""
    try:
        p = Path(model).expanduser()
        if p.is_dir() and any((p / f).is_file() for f in _TOKENIZER_FILES):
            return p.resolve()
        if p.is_file() and p.suffix == ".gguf":
            return p.resolve()
    except (OSError, ValueError):  # not a usable path at all (too long, NUL byte...)
        return None
    return None


def _hf_hub_dir() -> Path:
    # The same lookup huggingface_hub does, without importing it.
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HUGGINGFACE_HUB_CACHE"):
        return Path(os.environ["HUGGINGFACE_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg).expanduser() / "huggingface" / "hub"


def _hf_cached_repo(model: str) -> tuple[str, Path] | None:
    """The cached repo id and snapshot folder for `model` ("org/name", or a bare name matched
    against cached repos, case-insensitively), if its tokenizer files are in the local HF cache.

    The snapshot is loaded as a local folder: asking transformers for the repo id, even with
    `local_files_only=True`, fails when the cache holds the tokenizer files but no config.json.
    """
    hub = _hf_hub_dir()
    want = model.strip().lower()
    if not want or ":" in want:
        return None
    try:
        entries = sorted(e for e in hub.iterdir() if e.name.startswith("models--"))
    except OSError:
        return None
    for entry in entries:
        name = entry.name.lower()
        if not (name == "models--" + want.replace("/", "--") if "/" in want else name.endswith("--" + want)):
            continue
        snapshots: list[Path] = []
        ref = entry / "refs" / "main"
        if ref.is_file():
            snapshots.append(entry / "snapshots" / ref.read_text(encoding="utf-8").strip())
        snapshots += sorted((entry / "snapshots").glob("*"), key=lambda p: p.stat().st_mtime, reverse=True)
        for snap in snapshots:
            if any((snap / f).is_file() for f in _TOKENIZER_FILES):
                return entry.name[len("models--") :].replace("--", "/", 1), snap
    return None


def _load_hf(source: str, *, name: str) -> TokenCounter | str:
    """An `_HFCounter` for a local folder or .gguf file, or the reason it could not be loaded."""
    try:
        transformers = import_module("transformers")
    except ImportError:
        return f"transformers is not installed ({_HF_INSTALL_HINT})"
    kwargs: dict[str, Any] = {"local_files_only": True}
    target = source
    if source.endswith(".gguf"):
        target, kwargs["gguf_file"] = str(Path(source).parent), Path(source).name
    try:
        tok = transformers.AutoTokenizer.from_pretrained(target, **kwargs)
    except Exception as e:  # any failure to load from disk means "not available offline"
        return f"its tokenizer could not be loaded offline ({type(e).__name__}: {e})"
    has_template = bool(getattr(tok, "chat_template", None))
    method = f"exact: Hugging Face tokenizer {name} via transformers" + (
        ", with its chat template"
        if has_template
        else "; it has no chat template, so message overhead is estimated (4 tokens a message)"
    )
    return _HFCounter(name=name, method=method, tokenizer=tok, approximate=not has_template)


# --- the model table ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Family:
    name: str
    kind: str
    patterns: tuple[str, ...]
    source: str
    encoding: str | None = None
    file: str | None = None
    chat_format: str = "openai"
    default_system: str | None = None
    approximate: bool = False
    note: str | None = None


@dataclass(frozen=True)
class _Table:
    families: tuple[_Family, ...]
    fallback: Mapping[str, str]

    def family(self, name: str) -> _Family:
        for f in self.families:
            if f.name == name:
                return f
        raise KeyError(name)


@functools.cache
def _table() -> _Table:
    data = tomllib.loads(Path(__file__).with_name("tokenizers.toml").read_text(encoding="utf-8"))
    families = tuple(
        _Family(
            name=f["name"],
            kind=f["kind"],
            patterns=tuple(f["patterns"]),
            source=f["source"],
            encoding=f.get("encoding"),
            file=f.get("file"),
            chat_format=f.get("chat_format", "mistral" if f["kind"] == "mistral" else "openai"),
            default_system=f.get("default_system"),
            approximate=f.get("approximate", False),
            note=f.get("note"),
        )
        for f in data["family"]
    )
    return _Table(families, dict(data.get("provider_fallback", {})))


# Bedrock ids: an optional cross-region inference prefix ("us.") and the vendor ("meta.").
_BEDROCK_PREFIX = re.compile(
    r"^(?:(?:us|eu|apac|ap|jp|au|ca|us-gov|global)\.)?"
    r"(?:meta|mistral|amazon|anthropic|cohere|ai21|deepseek|qwen|openai)\."
)


def _normalize_model(model: str) -> str:
    """The form `tokenizers.toml` patterns match: see the comment at the top of that file."""
    m = model.strip().lower()
    if m.startswith("ft:"):  # OpenAI and Mistral fine-tunes: "ft:<base>:<org>:<suffix>:<id>"
        m = m[3:].split(":", 1)[0]
    m = m.rsplit("/", 1)[-1]  # "org/name", Together "user/name", ARNs ".../meta.llama..."
    return _BEDROCK_PREFIX.sub("", m)


def _match(model: str) -> _Family | None:
    m = _normalize_model(model)
    for family in _table().families:
        if any(fnmatch.fnmatchcase(m, p) for p in family.patterns):
            return family
    return None


# --- building and caching counters --------------------------------------------------------------------

_LOCK = threading.RLock()
_COUNTERS: dict[tuple[str, ...], TokenCounter] = {}
_VOCABS: dict[tuple[str, str], Any] = {}
_HF_FAILED: dict[tuple[str, str], str] = {}


def _cached(key: tuple[str, ...], build: Callable[[], TokenCounter]) -> TokenCounter:
    # One lock for every build: a vocabulary loads once (0.2-1 s) even when several threads ask
    # for it together, and counters are immutable afterwards, so reads need no lock.
    counter = _COUNTERS.get(key)
    if counter is not None:
        return counter
    with _LOCK:
        counter = _COUNTERS.get(key)
        if counter is None:
            counter = _COUNTERS[key] = build()
        return counter


def _clear_cache() -> None:
    """Forget every counter and vocabulary (tests use it after faking a missing library)."""
    with _LOCK:
        _COUNTERS.clear()
        _VOCABS.clear()
        _HF_FAILED.clear()


def _vocab(kind: str, key: str, load: Callable[[], Any]) -> Any:
    with _LOCK:
        if (kind, key) not in _VOCABS:
            _VOCABS[(kind, key)] = load()
        return _VOCABS[(kind, key)]


def _estimate(*, chat_format: str, default_system: str | None, why: str) -> TokenCounter:
    return _TemplateCounter(
        name="chars/4",
        approximate=True,
        method=f"approximate: {_CHARS_PER_TOKEN} characters per token, overhead per {_FORMAT_WORDS[chat_format]}; {why}",
        encoder=_CharEstimate(),
        chat_format=chat_format,
        default_system=default_system,
    )


_FORMAT_WORDS = {
    "openai": "OpenAI's cookbook rule (+3 per message, +1 per name, +3 priming)",
    "llama3": "the Llama 3 chat template",
    "llama3.1": "the Llama 3.1 chat template",
    "chatml": "the ChatML chat template",
    "qwen2.5": "the Qwen2.5 chat template",
    "qwen3": "the Qwen3 chat template",
}


def _build_family(family: _Family, why: str | None, *, fallback: bool) -> TokenCounter:
    """A counter for `family`; `fallback` marks it approximate (the model itself is not known),
    and `why` says why (or why a better tokenizer could not be used)."""
    approximate = family.approximate or fallback
    why = why or family.note
    if family.kind == "quicktok":
        encoding = cast(str, family.encoding)
        try:
            module = import_module("quicktok")
            enc = _vocab("quicktok", encoding, lambda: module.get_encoding(encoding))
        except Exception as e:  # not installed, or a broken install: estimate, never fail
            return _estimate(
                chat_format=family.chat_format,
                default_system=family.default_system,
                why=f"{_load_failure('quicktok', e)}; {TOKENS_INSTALL_HINT} for exact {encoding} counts",
            )
        overhead = _FORMAT_WORDS[family.chat_format]
        method = (
            f"{'approximate' if approximate else 'exact'}: {encoding} via quicktok, overhead per {overhead}"
        )
        return _TemplateCounter(
            name=encoding,
            approximate=approximate,
            method=method + (f"; {why}" if why else ""),
            encoder=_QuicktokEncoder(module, enc),
            chat_format=family.chat_format,
            default_system=family.default_system,
        )
    if family.kind == "mistral":
        file = cast(str, family.file)
        try:
            tokenizer = _vocab("mistral", file, lambda: _load_mistral(file))
        except Exception as e:  # e.g. mistral-common without sentencepiece for the .model files
            return _estimate(
                chat_format="openai",
                default_system=None,
                why=f"{_load_failure('mistral-common', e)}; {TOKENS_INSTALL_HINT} for exact Mistral counts",
            )
        if approximate:
            method = f"approximate: {why}"
        else:
            method = f"exact: mistral-common {file} (encode_chat_completion)"
        return _MistralCounter(name=family.name, approximate=approximate, method=method, tokenizer=tokenizer)
    # kind == "estimate": no vocabulary ships offline for this family.
    return _estimate(
        chat_format=family.chat_format,
        default_system=family.default_system,
        why=why
        or f"the {family.name} tokenizer is not bundled: for exact counts pass a local model path or have "
        f"the model in the Hugging Face cache, with transformers installed ({_HF_INSTALL_HINT})",
    )


def _load_failure(library: str, error: Exception) -> str:
    if isinstance(error, ImportError):
        return (
            f"{library} is not installed" if error.name in (None, library.replace("-", "_")) else str(error)
        )
    return f"{library} could not load its vocabulary ({type(error).__name__}: {error})"


def _load_mistral(file: str) -> Any:
    import mistral_common
    from mistral_common.protocol.instruct.validator import ValidationMode
    from mistral_common.tokens.tokenizers.mistral import MistralTokenizer

    path = Path(mistral_common.__file__).parent / "data" / file
    # Fine-tuning mode: a training conversation ends with the assistant turn, which serving
    # mode would refuse.
    return MistralTokenizer.from_file(str(path), mode=ValidationMode("finetuning"))


def _hf_or_none(source: Path, *, name: str) -> TokenCounter | str:
    """The cached HF counter for `source`, or why it cannot load (remembered too: a failed load
    can cost seconds of transformers import, and a validation asks once per file)."""
    key = ("hf", str(source))
    with _LOCK:
        if key in _COUNTERS:
            return _COUNTERS[key]
        if key in _HF_FAILED:
            return _HF_FAILED[key]
        loaded = _load_hf(str(source), name=name)
        if isinstance(loaded, TokenCounter):
            _COUNTERS[key] = loaded
        else:
            _HF_FAILED[key] = loaded
        return loaded


def counter_for(provider: str, model: str | None = None) -> TokenCounter:
    """The most exact `TokenCounter` available offline for `model` on `provider`.

    `model` may be a portable alias ("llama-3.1-8b-instruct", "gpt-4o-mini"), a vendor id
    ("meta-llama/Meta-Llama-3.1-8B-Instruct-Reference", "us.meta.llama3-1-8b-instruct-v1:0",
    "ft:gpt-4o-mini-2024-07-18:org::id", "open-mistral-7b"), a Hugging Face id or a local path.
    Lookup order: a local path with tokenizer files; the family table (`tokenizers.toml`); the
    local Hugging Face cache; the provider's fallback family (marked approximate); 4 characters
    per token. Never downloads and never raises for a missing library: the counter's `method`
    says how it counts and what to install for exact counts.
    """
    if not isinstance(provider, str) or (model is not None and not isinstance(model, str)):
        from unitune.errors import ConfigurationError

        raise ConfigurationError(
            f"counter_for takes a provider's name and a model name (str), not {provider!r} and {model!r}.",
            fix='Pass e.g. counter_for("openai", "gpt-4o-mini").',
        )
    provider_key = provider.strip().lower()
    why: str | None = None  # why a tokenizer that should have been usable was not
    family: _Family | None = None
    if model:
        local = _local_tokenizer(model)
        if local is not None:
            loaded = _hf_or_none(local, name=str(local))
            if isinstance(loaded, TokenCounter):
                return loaded
            why = f"the tokenizer at {local} could not be used: {loaded}"
        family = _match(model)
        if family is not None and family.kind != "estimate":
            # A local checkout of a known family still counts exactly with the bundled vocabulary.
            return _family_counter(family)
        cached = _hf_cached_repo(model) if local is None else None
        if cached is not None:
            repo, snapshot = cached
            loaded = _hf_or_none(snapshot, name=repo)
            if isinstance(loaded, TokenCounter):
                return loaded
            why = f"{repo} is in the Hugging Face cache but {loaded}"
        if family is not None:  # a known family whose vocabulary is not bundled
            return _family_counter(family, why=why)
    fallback = _table().fallback.get(provider_key)
    if fallback is not None and why is None:
        fb = _table().family(fallback)
        what = f"model {model!r} is not in unitune's table" if model else "no model given"
        fb_why = f"{what}; counted as {provider_key}'s {fb.name} family"
        return _cached(("fallback", fb.name, fb_why), lambda: _build_family(fb, fb_why, fallback=True))
    if why is None:
        why = (
            f"no offline tokenizer is known for {model!r}; for exact counts pass a local model path or have "
            f"its tokenizer in the Hugging Face cache, with transformers installed ({_HF_INSTALL_HINT})"
            if model
            else f"no model given for provider {provider!r}"
        )
    reason = why
    return _cached(
        ("estimate", reason), lambda: _estimate(chat_format="openai", default_system=None, why=reason)
    )


#: The upper bound's margin over o200k counts (Claude 3's and Nova's tokenizers are not public; both split
#: English text into somewhat more pieces than o200k), and AWS's own validator's characters per token.
UPPER_BOUND_MARGIN = 1.25
AWS_CHARS_PER_TOKEN = 3


class _UpperBound(TokenCounter):
    """Counts never below the true count, for limit checks on models without a public tokenizer.

    Each count is the larger of AWS's own validator's (characters // 3 per text, summed over the
    system prompt and the messages, as aws-samples' Claude 3 Haiku validator counts; each text
    rounded up and given two characters more, so that texts the wire file joins with a blank line
    still count no less) and the o200k count plus `UPPER_BOUND_MARGIN`. It is never below AWS's
    validator's count. Against the model's own tokenizer, which is not public, it is an estimate
    from above: it may flag an example the vendor would take, and is meant to miss none it refuses.
    """

    chat_format = "openai"
    upper_bound = True  # `validate` says so beside each over-limit example

    def __init__(self, base: TokenCounter, why: str) -> None:
        self.base = base
        self.name = f"upper bound ({base.name})"
        self.approximate = True
        self.method = (
            f"upper-bound estimate: the larger of {AWS_CHARS_PER_TOKEN} characters a token (AWS's validator) "
            f"and {base.name} + {round((UPPER_BOUND_MARGIN - 1) * 100)}%; {why}"
        )

    @staticmethod
    def _chars(texts: Sequence[str]) -> int:
        # ceil((n + 2) / 3): a text joined to another in the wire file brings its "\n\n" with it.
        return sum((len(t) + 2 + AWS_CHARS_PER_TOKEN - 1) // AWS_CHARS_PER_TOKEN for t in texts)

    def _bound(self, counted: int, texts: Sequence[str]) -> int:
        return max(math.ceil(counted * UPPER_BOUND_MARGIN), self._chars(texts))

    @_guarded
    def count_text(self, text: str) -> int:
        return self._bound(self.base.count_text(text), [text])

    @_guarded
    def count_texts(self, texts: Sequence[str]) -> list[int]:
        return [self._bound(n, [t]) for n, t in zip(self.base.count_texts(texts), texts, strict=True)]

    @_guarded
    def count_messages(
        self, messages: Sequence[MessageLike], *, tools: Sequence[Mapping[str, Any]] | None = None
    ) -> int:
        return self._bound(self.base.count_messages(messages, tools=tools), [_text_of(m) for m in messages])

    @_guarded
    def count_conversations(self, items: Sequence[_Conversation]) -> list[tuple[int, int]]:
        out = []
        for (total, assistant), (messages, _) in zip(
            self.base.count_conversations(items), items, strict=True
        ):
            texts = [_text_of(m) for m in messages]
            replies = [_text_of(m) for m in messages if _role_of(m) == "assistant"]
            out.append((self._bound(total, texts), self._bound(assistant, replies)))
        return out


def upper_bound_counter(why: str) -> TokenCounter:
    """A counter whose counts are never below the true count (see `_UpperBound`), for `validate`'s
    limit check where the model's tokenizer is not available; `why` says why it is used."""
    base = _family_counter(_table().family("o200k_base"))
    return _cached(("upper", why), lambda: _UpperBound(base, why))


def _family_counter(family: _Family, *, why: str | None = None) -> TokenCounter:
    return _cached(("family", family.name, why or ""), lambda: _build_family(family, why, fallback=False))
