"""Chat formats (Llama 3, ChatML, Qwen) rendered token by token, and the counter that uses them."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

from unitune.data._tokens._base import (
    _LLAMA_DATE,
    MessageLike,
    TokenCounter,
    _args_object,
    _as_text,
    _calls,
    _Conversation,
    _Encoder,
    _guarded,
    _jdump,
    _Msg,
    _normalize,
)

if sys.version_info >= (3, 11):
    pass
else:  # pragma: no cover - exercised on 3.10 only
    pass  # type: ignore[import-not-found,unused-ignore]


# --- chat formats rendered token by token -----------------------------------------------------------


class _Builder:
    r"""Collects a rendered conversation as special tokens and runs of plain text.

    Special tokens split the text before BPE runs (in tiktoken and in HF tokenizers alike), so the
    exact count of a rendered template is the number of specials plus the count of each run of
    text between them. Runs are kept whole: BPE merges across the seam between template text and
    content (e.g. "\n" + "\nHi"), so counting pieces separately would be wrong.
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
    """Render a conversation with the Llama 3.1/3.2/3.3 chat template.

    Llama 3.1/3.2/3.3's template: a system header that always carries the date lines, tools
    in the first user message (the template's default), one JSON tool call per assistant turn.
    """
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
    r"""Render a conversation in ChatML as Qwen and SmolLM2 lay it out.

    ChatML as Qwen 2/2.5/3 (and SmolLM2) lay it out: `<|im_start|>role\n...<|im_end|>\n`,
    tools in the system turn, tool calls in <tool_call> tags, tool results in a user turn.
    """
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
    """Count a conversation's tokens by OpenAI's cookbook rule.

    OpenAI's cookbook rule: every message costs 3 tokens plus its encoded values (role, content,
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


def _counted_once(count: Callable[[str], int], repeated: dict[str, int]) -> Callable[[str], int]:
    """Count texts, counting each repeated text once.

    `count`, remembering in `repeated` the counts of up to 1,024 texts (system prompts and tool
    schemas, which repeat across conversations: each is counted once).
    """

    def once(text: str) -> int:
        n = repeated.get(text)
        if n is None:
            n = count(text)
            if len(repeated) < 1024:
                repeated[text] = n
        return n

    return once


def _planned_sums(
    plans: Sequence[tuple[int, int, int, list[int]] | tuple[int, int]], counts: Sequence[int]
) -> list[tuple[int, int]]:
    """The (total, assistant) token sums of each planned conversation.

    (total, assistant tokens) of each conversation `_TemplateCounter.count_conversations` planned:
    a plan (fixed tokens, its texts' first and end index in `counts`, its assistant texts' indices), or
    the pair itself where it was counted on the general path.
    """
    out: list[tuple[int, int]] = []
    for plan in plans:
        if len(plan) == 2:
            out.append(plan)
        else:
            fixed, start, end, assistant = plan
            out.append((fixed + sum(counts[start:end]), sum([counts[i] for i in assistant])))
    return out


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
        once = _counted_once(count, self._repeated)  # a text that repeats across conversations

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
        return _planned_sums(plans, list(map(count, texts)))

    def _render(self, msgs: list[_Msg], tools: list[Mapping[str, Any]], *, trace: bool = False) -> _Builder:
        render, specials = _RENDERERS[self.chat_format]
        b = _Builder(specials, trace=trace)
        render(b, msgs, tools, self._default_system)
        return b.finish()
