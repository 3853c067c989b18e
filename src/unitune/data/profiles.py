"""Per-provider dataset rules (`profiles.toml`): the checks `validate()` runs for a target provider.

Each profile says what the vendor's format takes (roles, order, weights, tools, limits) and, per finding
code, what the vendor does with such data (`checks`): which rule refuses it, where that rule is written
(`[sources]`), and whether unitune's conversion repairs it in the wire file. A finding is an error only
where a cited vendor rule refuses the data and the wire file does not repair it (`Profile.severity`).
"""

from __future__ import annotations

import datetime as dt
import difflib
import functools
import sys
from importlib import resources
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from unitune.data._checks import CODES, Severity
from unitune.errors import ConfigurationError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]

__all__ = ["Check", "Profile", "checks_markdown", "get_profile", "profile_names", "source_text", "unreadable"]

ROLES = ("system", "user", "assistant", "tool")


class Check(BaseModel):
    """What the vendor does with data that gets one finding code, and where that is written."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    #: refuses: the vendor's validator or service rejects the file; truncates: it trains on a cut
    #: example; accepts: it takes the data as it is; unknown: nothing the vendor published says.
    vendor: Literal["refuses", "truncates", "accepts", "unknown"]
    #: A key of `[sources]` (or a URL): the vendor's file, page or message that states the rule.
    source: str
    #: What unitune's conversion does so that the vendor never sees the problem (None: nothing).
    wire: str | None = None
    note: str | None = None

    @property
    def blocks(self) -> bool:
        """True when the vendor refuses such data and the wire file keeps it: an error."""
        return self.vendor == "refuses" and self.wire is None and bool(self.source)


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
    system_lifted: bool = False  # system messages are taken out of the conversation (order rules skip them)
    min_messages: int | None = None  # fewest messages besides system ones
    text: bool = False  # takes plain-text examples ({"text": ...})
    requires_user: bool = False  # each example needs a user message (prompt/completion: the prompt)
    tool_fields_required: bool = False  # a function needs name, description and parameters
    #: Which images in user messages the wire file keeps: "any", "data_url" (base64 data URLs only)
    #: or "none" (the provider takes images only from its own storage).
    images: Literal["any", "data_url", "none"] = "any"
    #: Strings the vendor reserves for its own prompt format (refused anywhere in the text).
    reserved_keywords: tuple[str, ...] = ()
    #: How `too_many_tokens` counts where the model has no exact tokenizer: "counter" (the counter's
    #: estimate) or "upper_bound" (never below the true count: see `unitune.data.tokens`).
    limit_count: Literal["counter", "upper_bound"] = "counter"
    checks: dict[str, Check] = Field(default_factory=dict)
    forbidden_tokens: tuple[str, ...] = (
        "<|im_start|>", "<|im_end|>", "<|endoftext|>", "<|begin_of_text|>", "<|end_of_text|>",
        "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "<|fim_prefix|>", "<|fim_middle|>",
        "<|fim_suffix|>", "[INST]", "[/INST]", "<s>", "</s>",
    )  # fmt: skip
    source: str
    as_of: dt.date
    verified: bool

    def severity(self, code: str) -> Severity:
        """The severity of finding `code` for this provider.

        The severity of a finding `code` for this provider: an error where a vendor rule refuses
        the data and the wire file does not repair it, or where unitune cannot read the example;
        otherwise the code's own warning or info.
        """
        if code in unreadable():
            return "error"
        check = self.checks.get(code)
        if check is not None and check.blocks:
            return "error"
        try:
            return CODES[code].default
        except (KeyError, TypeError):
            raise ConfigurationError(
                f"Unknown finding code {code!r}.",
                fix="See unitune.data._checks.CODES or docs/data.md for the codes.",
            ) from None


@functools.cache
def _raw() -> dict[str, Any]:
    text = resources.files("unitune.data").joinpath("profiles.toml").read_text("utf-8")
    raw: dict[str, Any] = tomllib.loads(text)
    return raw


def source_text(key: str) -> str:
    """The text of a source named in `profiles.toml` (`[sources]`), or `key` itself (a URL)."""
    sources = _raw().get("sources")
    found = sources.get(key) if isinstance(sources, dict) else None
    return str(found) if found is not None else key


@functools.cache
def unreadable() -> dict[str, Check]:
    """The codes of data unitune cannot read or write in any vendor's format.

    The codes of data unitune cannot read or write in any vendor's format (`[unreadable]`): errors
    for every provider, each with the rule it stands for.
    """
    table = _raw().get("unreadable", {})
    return {code: Check(vendor="refuses", **entry) for code, entry in table.items()}


@functools.cache
def _profiles() -> dict[str, Profile]:
    raw = dict(_raw())
    raw.pop("sources", None)
    raw.pop("unreadable", None)
    out: dict[str, Profile] = {}
    for name, table in raw.items():
        assert isinstance(table, dict)
        table = dict(table)
        # A profile may take another's checks (the fake: OpenAI's) and add or replace some.
        base = table.pop("checks_from", None)
        if base is not None:
            base_checks = raw[base].get("checks", {}) if isinstance(raw.get(base), dict) else {}
            table["checks"] = {**base_checks, **table.get("checks", {})}
        try:
            out[name] = Profile.model_validate({"name": name, **table})
        except ValidationError as e:  # pragma: no cover - the shipped file is tested
            raise ConfigurationError(f"profiles.toml [{name}] is invalid: {e}") from None
        unknown = set(out[name].checks) - set(CODES)
        if unknown:  # pragma: no cover - the shipped file is tested
            raise ConfigurationError(f"profiles.toml [{name}.checks] names unknown codes {sorted(unknown)}")
    return out


def profile_names() -> list[str]:
    """Every known profile name."""
    return sorted(_profiles())


def get_profile(provider: str, model: str | None = None) -> Profile:
    """The rules for `provider` (and, on Bedrock and Vertex AI, the model's family).

    Bedrock's format depends on the base model: Claude, Nova and Llama each have their own profile;
    Vertex AI's open models have theirs (`vertex-open`), Gemini models `vertex`.

    Args:
        provider: the provider's name (or a profile's name).
        model: the base model, which picks the profile on Bedrock and Vertex AI.

    Raises:
        ConfigurationError: there are no dataset rules for `provider`, or an argument is not text.
    """
    profiles = _profiles()
    if not isinstance(provider, str) or not provider:
        raise ConfigurationError(
            f"provider must be a provider's name, not {provider!r}.",
            fix=f"Known: {', '.join(sorted(profiles))}.",
        )
    if model is not None and not isinstance(model, str):
        raise ConfigurationError(
            f"model must be a string, not {type(model).__name__} ({model!r}).",
            fix='Pass the model\'s name, e.g. model="gpt-4o-mini", or leave it out.',
        )
    name = provider
    if provider == "bedrock":
        m = (model or "").lower()
        if "claude" in m:
            name = "bedrock-claude"
        elif "llama" in m:
            # Llama 3.1 trains on prompt/completion, Llama 3.2 on conversations (AWS's registry).
            llama32 = "3-2" in m or "3.2" in m
            name = "bedrock-llama-conversation" if llama32 else "bedrock-llama"
        else:
            name = "bedrock-nova"
    elif provider == "vertex" and model and not model.lower().startswith("gemini"):
        # Vertex AI's open models (Llama, Gemma, Qwen) train on chat messages, not Gemini's contents.
        name = "vertex-open"
    if name in profiles:
        return profiles[name]
    close = difflib.get_close_matches(name, list(profiles), n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ConfigurationError(
        f"No dataset rules for provider {provider!r}.{hint}", fix=f"Known: {', '.join(sorted(profiles))}."
    )


def checks_markdown() -> str:
    """docs/data.md's table of every check per provider, from `profiles.toml` and the code registry.

    `python -m unitune.data.profiles --markdown` prints it; a test keeps the docs equal to it.
    """
    raw = _raw()
    out = ["#### Sources", ""]
    for key, text in raw.get("sources", {}).items():
        out.append(f"- `{key}`: {text}")
    out += [
        "",
        "#### Always errors",
        "",
        "unitune cannot read these examples, or write them in the provider's format, so nothing could be "
        "uploaded; an error for every provider:",
        "",
        "| code | source | note |",
        "|---|---|---|",
        *(f"| `{code}` | `{check.source}` | {check.note or ''} |" for code, check in unreadable().items()),
    ]
    for name in profile_names():
        profile = get_profile(name)
        out += [
            "",
            f"#### {name}",
            "",
            "| code | severity | the vendor | source | note | unitune's wire file |",
        ]
        out.append("|---|---|---|---|---|---|")
        for code in CODES:
            check = profile.checks.get(code)
            if check is None or (code in unreadable() and check.vendor == "refuses"):
                continue
            note = (check.note or "").replace("|", "\\|").replace("\n", " ")
            out.append(
                f"| `{code}` | {profile.severity(code)} | {check.vendor} | `{check.source}` | {note} | "
                f"{check.wire or ''} |"
            )
        out.append("")
        out.append(
            "Any other code is a warning (or info) here: no vendor rule stands behind it."
            if name != "fake"
            else "The fake takes OpenAI's checks (`checks_from`), with a minimum of one example."
        )
    return "\n".join(out) + "\n"


if __name__ == "__main__":  # pragma: no cover - exercised by the docs test through checks_markdown()
    if sys.argv[1:] != ["--markdown"]:
        raise SystemExit("usage: python -m unitune.data.profiles --markdown")
    sys.stdout.write(checks_markdown())
