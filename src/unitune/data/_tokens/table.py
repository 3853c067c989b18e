"""Which model uses which tokenizer and chat format (`tokenizers.toml`)."""

from __future__ import annotations

import fnmatch
import functools
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]


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
    # The table lives next to `unitune.data.tokens`, one folder up (package data of unitune.data).
    data = tomllib.loads((Path(__file__).parent.parent / "tokenizers.toml").read_text(encoding="utf-8"))
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
    m = m.rsplit("@", 1)[-1]  # Vertex Model Garden "publisher/model@version": "qwen/qwen3@qwen3-32b"
    return _BEDROCK_PREFIX.sub("", m)


def _match(model: str) -> _Family | None:
    m = _normalize_model(model)
    for family in _table().families:
        if any(fnmatch.fnmatchcase(m, p) for p in family.patterns):
            return family
    return None
