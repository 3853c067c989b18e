"""The canonical dataset model: chat examples (OpenAI `messages`) and preference pairs (DPO).

Every loader turns its input into these; every converter starts from them. `line` records where an
example came from (1-based line of the source file, or index for in-memory data) so any problem
found later can point back at it.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from unitune.types import Message

__all__ = ["ChatExample", "PreferenceExample", "TextExample"]


class _Example(BaseModel):
    # Built on first use (see unitune.types._Model): validating a file never builds an example.
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    tools: list[dict[str, Any]] | None = Field(
        default=None, description="Function tools available in this conversation (OpenAI schema)."
    )
    parallel_tool_calls: bool | None = None
    line: int | None = Field(default=None, description="Where it came from: 1-based line (or index).")
    extra: dict[str, Any] | None = Field(
        default=None,
        description="The source's own keys beside the format's (an id, a language, ...): kept for "
        "slicing and lineage, never written to a vendor's file.",
    )


class ChatExample(_Example):
    """One supervised example: a conversation whose assistant turns are the training targets.

    An assistant message with `weight=0` is context only (not trained on), as in OpenAI's format.
    """

    messages: list[Message] = Field(min_length=1)

    @property
    def assistant_messages(self) -> list[Message]:
        return [m for m in self.messages if m.role == "assistant"]


class PreferenceExample(_Example):
    """One preference pair for DPO: a conversation (`input`) and a better and a worse assistant reply."""

    input: list[Message] = Field(min_length=1)
    preferred: Message
    non_preferred: Message


class TextExample(BaseModel):
    """One plain-text example (`{"text": ...}`, Together's general format): trained on as a whole."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    text: str
    line: int | None = Field(default=None, description="Where it came from: 1-based line (or index).")
    extra: dict[str, Any] | None = Field(
        default=None, description="The source's own keys beside `text`: never written to a vendor's file."
    )
