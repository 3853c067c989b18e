"""Counts with a Hugging Face tokenizer found on disk (never downloaded)."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from importlib import import_module
from pathlib import Path
from typing import Any

from unitune.data._tokens._base import (
    _HF_INSTALL_HINT,
    MessageLike,
    TokenCounter,
    _args_object,
    _guarded,
    _jdump,
    _Msg,
    _normalize,
)

if sys.version_info >= (3, 11):
    pass
else:  # pragma: no cover - exercised on 3.10 only
    pass  # type: ignore[import-not-found,unused-ignore]


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
    """The cached HF repo id and snapshot folder for `model`, if cached.

    The cached repo id and snapshot folder for `model` ("org/name", or a bare name matched
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
