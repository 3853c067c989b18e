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

import math
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from importlib import import_module
from pathlib import Path
from typing import Any, cast

if sys.version_info >= (3, 11):
    pass
else:  # pragma: no cover - exercised on 3.10 only
    pass  # type: ignore[import-not-found,unused-ignore]

__all__ = ["TOKENS_INSTALL_HINT", "MessageLike", "TokenCounter", "counter_for", "upper_bound_counter"]
from unitune.data._tokens._base import (
    _CHARS_PER_TOKEN,
    _HF_INSTALL_HINT,
    TOKENS_INSTALL_HINT,
    MessageLike,
    TokenCounter,
    _CharEstimate,
    _Conversation,
    _guarded,
    _QuicktokEncoder,
    _role_of,
    _text_of,
)
from unitune.data._tokens.hf import _hf_cached_repo, _load_hf, _local_tokenizer
from unitune.data._tokens.mistral import _MistralCounter
from unitune.data._tokens.render import _TemplateCounter
from unitune.data._tokens.table import _Family, _match, _table

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
    """Build a counter for a tokenizer family.

    A counter for `family`; `fallback` marks it approximate (the model itself is not known),
    and `why` says why (or why a better tokenizer could not be used).
    """
    approximate = family.approximate or fallback
    why = why or family.note
    if family.kind == "quicktok":
        encoding = cast(str, family.encoding)
        try:
            module = import_module("quicktok")
            encoder = _QuicktokEncoder(
                module,
                encoding,
                load=lambda: _vocab("quicktok", encoding, lambda: module.get_encoding(encoding)),
                loaded=lambda: _VOCABS.get(("quicktok", encoding)),
            )
            if encoder.quickstart() is None:
                # Loaded now, as before the quick start: a vocabulary that cannot load gives an
                # estimate here rather than an error at the first count.
                encoder.tokenizer()
        except Exception as e:  # not installed, or a broken install: estimate, never fail
            return _estimate(
                chat_format=family.chat_format,
                default_system=family.default_system,
                why=f"{_load_failure('quicktok', e)}; {TOKENS_INSTALL_HINT} for exact {encoding} counts",
            )
        overhead = _FORMAT_WORDS[family.chat_format]
        method = f"{'approximate' if approximate else 'exact'}: {encoding} (quicktok-v1's vocabulary), overhead per {overhead}"
        return _TemplateCounter(
            name=encoding,
            approximate=approximate,
            method=method + (f"; {why}" if why else ""),
            encoder=encoder,
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
    """The cached HF counter for `source`, or why it cannot load.

    The cached HF counter for `source`, or why it cannot load (remembered too: a failed load
    can cost seconds of transformers import, and a validation asks once per file).
    """
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
    """A counter whose counts are never below the true count.

    A counter whose counts are never below the true count (see `_UpperBound`), for `validate`'s
    limit check where the model's tokenizer is not available; `why` says why it is used.
    """
    base = _family_counter(_table().family("o200k_base"))
    return _cached(("upper", why), lambda: _UpperBound(base, why))


def _family_counter(family: _Family, *, why: str | None = None) -> TokenCounter:
    return _cached(("family", family.name, why or ""), lambda: _build_family(family, why, fallback=False))
