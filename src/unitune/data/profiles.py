"""Per-provider dataset rules (`profiles.toml`): the checks `validate()` runs for a target provider."""

from __future__ import annotations

import datetime as dt
import difflib
import functools
import sys
from importlib import resources
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from unitune.errors import ConfigurationError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]

__all__ = ["Profile", "get_profile", "profile_names"]

ROLES = ("system", "user", "assistant", "tool")


class Profile(BaseModel):
    """What one provider's fine-tuning format accepts. See the comments in `profiles.toml`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    roles: frozenset[str]
    system: Literal["any", "first_only", "none"] = "any"
    first_roles: frozenset[str] | None = None
    no_repeat: bool = False
    transitions: dict[str, frozenset[str]] | None = None
    last_assistant: bool = False
    max_turns: int | None = Field(default=None, ge=1)
    weights: bool = True
    tools: bool = True
    multimodal: bool = False
    preference: bool = False
    tool_call_id_pattern: str | None = None
    min_examples: int = Field(default=1, ge=0)
    max_examples: int | None = None
    max_file_bytes: int | None = None
    max_tokens_per_example: int | None = None
    forbidden_tokens: tuple[str, ...] = (
        "<|im_start|>", "<|im_end|>", "<|endoftext|>", "<|begin_of_text|>", "<|end_of_text|>",
        "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "<|fim_prefix|>", "<|fim_middle|>",
        "<|fim_suffix|>", "[INST]", "[/INST]", "<s>", "</s>",
    )  # fmt: skip
    source: str
    as_of: dt.date
    verified: bool


@functools.cache
def _profiles() -> dict[str, Profile]:
    raw = tomllib.loads(resources.files("unitune.data").joinpath("profiles.toml").read_text("utf-8"))
    out: dict[str, Profile] = {}
    for name, table in raw.items():
        try:
            out[name] = Profile.model_validate({"name": name, **table})
        except ValidationError as e:  # pragma: no cover - the shipped file is tested
            raise ConfigurationError(f"profiles.toml [{name}] is invalid: {e}") from None
    return out


def profile_names() -> list[str]:
    """Every known profile name."""
    return sorted(_profiles())


def get_profile(provider: str, model: str | None = None) -> Profile:
    """The rules for `provider` (and, on Bedrock, the model's family).

    Bedrock's format depends on the base model: Claude, Nova and Llama each have their own profile.
    """
    profiles = _profiles()
    name = provider
    if provider == "bedrock":
        m = (model or "").lower()
        name = "bedrock-claude" if "claude" in m else "bedrock-llama" if "llama" in m else "bedrock-nova"
    if name in profiles:
        return profiles[name]
    close = difflib.get_close_matches(name, list(profiles), n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ConfigurationError(
        f"No dataset rules for provider {provider!r}.{hint}", fix=f"Known: {', '.join(sorted(profiles))}."
    )
