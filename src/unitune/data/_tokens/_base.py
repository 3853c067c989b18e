"""The counter interface, message normalization and the text encoders."""

from __future__ import annotations

import functools
import json
import sys
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from unitune._fork import usable_cpus
from unitune.data._tokens import quickstart
from unitune.types import Message, content_text

if sys.version_info >= (3, 11):
    pass
else:  # pragma: no cover - exercised on 3.10 only
    pass  # type: ignore[import-not-found,unused-ignore]


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
        """Count many conversations in one batch.

        `count_conversation` for many (messages, tools) pairs: a batch lets a counter keep its
        tokenizer busy in one tight loop.
        """
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
    """Wrap a counting method so that bad input is a one-line error.

    A counting method whose bad input is a one-line error: text that is not valid Unicode (a lone
    surrogate, which no tokenizer takes) a `DatasetError`, anything else it cannot count a
    `ConfigurationError`. Costs nothing unless the tokenizer raises.
    """
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
    """quicktok's exact BPE; for an input the caller said is small, the same counts mostly by tiktoken.

    quicktok is loaded on first need (`tokenizer`), once per process for every counter of the
    encoding. While quicktok is not loaded and the current work is small (`quickstart`), counts
    come from tiktoken's BPE on the same vocabulary, which loads in a third of the time; work that
    is big or of unknown size loads quicktok, which from then on counts everything.
    """

    def __init__(
        self, module: Any, encoding: str, load: Callable[[], Any], loaded: Callable[[], Any]
    ) -> None:
        self._module = module
        self._name = encoding
        self._load = load  # quicktok's tokenizer for `encoding`, loaded once and shared
        self._loaded = loaded  # that tokenizer if some counter loaded it already, else None
        self._enc: Any = None
        self._quick: Callable[[str], int] | None = None
        self._quick_tried = False

    def tokenizer(self) -> Any:
        """Quicktok's tokenizer, loaded now if no counter has loaded it."""
        if self._enc is None:
            self._enc = self._load()
        return self._enc

    def quickstart(self) -> Callable[[str], int] | None:
        """Tiktoken's count for this work if it is small and quicktok is not loaded, else None."""
        if self._enc is not None or not quickstart.small_input():
            return None
        if self._loaded() is not None:
            self._enc = self._loaded()
            return None
        if not self._quick_tried:
            with _QUICKSTART_LOCK:
                if not self._quick_tried:
                    self._quick = quickstart.load(self._name, self.tokenizer)
                    self._quick_tried = True
        return self._quick

    def count(self, text: str) -> int:
        # `count` treats special-token strings as text (tiktoken's encode_ordinary), so user
        # content that happens to contain "<|endoftext|>" is counted, not refused. Once quicktok is
        # loaded, straight to it: chat templates call this once per piece of every example.
        if self._enc is not None:
            return int(self._enc.count(text))
        return int(self.counter()(text))

    def counter(self) -> Callable[[str], int]:
        # Asked once per batch of examples, so a long run moves to quicktok as soon as it is loaded.
        quick = self.quickstart()
        if quick is not None:
            return quick
        # quicktok's own method already returns an int: calling it directly saves a frame.
        fn: Callable[[str], int] = self.tokenizer().count
        return fn

    def count_many(self, texts: Sequence[str]) -> list[int]:
        quick = self.quickstart()
        if quick is not None:
            return [quick(t) for t in texts]
        enc = self.tokenizer()
        # A batch call costs about 100 us to set up (threads, a numpy array), so a few texts (one
        # example's messages) are faster one by one.
        if len(texts) < _SMALL_BATCH:
            return [int(enc.count(t)) for t in texts]
        out: list[int] = []
        batch: list[str] = []
        size = 0
        for text in texts:
            batch.append(text)
            size += len(text)
            if size >= _BATCH_CHARS:
                out.extend(self._batch(enc, batch))
                batch, size = [], 0
        if batch:
            out.extend(self._batch(enc, batch))
        return out

    def _batch(self, enc: Any, texts: list[str]) -> list[int]:
        counts: list[int] = self._module.count_batch(enc, texts, threads=_cpus()).tolist()
        return counts


_QUICKSTART_LOCK = threading.Lock()


# quicktok's default thread count (0) asks the hardware, which in a container can be far more cores
# than the process may use; oversubscribed threads made batches slower than one thread.
_cpus = usable_cpus
