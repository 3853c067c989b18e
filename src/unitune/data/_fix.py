"""`fix()`: write a corrected copy of a dataset, repairing what can be repaired and dropping the rest.

It says exactly what it changed: counts of each repair and of each reason a line was dropped, with
the first dropped lines listed, so nothing is lost silently.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from unitune.data._args import cannot_write, data_arg, optional_str, out_file, path_arg, provider_arg
from unitune.data._dataset import Dataset
from unitune.data._loaders import from_legacy_functions, weight_value
from unitune.data._pii import PLACEHOLDERS, redact_value
from unitune.data._report import IssueCollector
from unitune.data._validate import _Checker, example_keys
from unitune.data.profiles import get_profile
from unitune.errors import ConfigurationError

__all__ = ["FixResult", "fix"]


class FixResult(BaseModel):
    """What `fix()` wrote and changed."""

    model_config = ConfigDict(frozen=True)

    path: Path
    kept: int
    repaired: dict[str, int] = Field(default_factory=dict)
    dropped: dict[str, int] = Field(default_factory=dict)
    dropped_lines: list[tuple[int, str]] = Field(
        default_factory=list, description="(line, reason), first 1000"
    )
    redacted: dict[str, int] = Field(
        default_factory=dict, description="Personal data replaced, by placeholder (`<EMAIL>`: 3)."
    )

    def summary(self) -> str:
        """One line: how many examples were written where, and what was repaired, dropped and redacted."""
        rep = ", ".join(f"{k} ×{v}" for k, v in sorted(self.repaired.items())) or "none"
        drop = ", ".join(f"{k} ×{v}" for k, v in sorted(self.dropped.items())) or "none"
        text = f"wrote {self.kept} examples to {self.path}; repaired: {rep}; dropped: {drop}"
        if self.redacted:
            text += "; redacted: " + ", ".join(f"{k} ×{v}" for k, v in sorted(self.redacted.items()))
        return text


def _repair(
    data: dict[str, Any], fmt: str | None, last_assistant: bool, repaired: Counter[str]
) -> dict[str, Any]:
    if fmt not in (None, "chat", "preference", "text"):
        repaired["converted_to_chat"] += 1
    legacy = from_legacy_functions(data)
    if legacy is not None:
        data = legacy
        repaired["legacy_function_calls_converted"] += 1
    messages = data.get("messages")
    if not isinstance(messages, list):
        return data
    fixed = []
    for m in messages:
        content = m.get("content") if isinstance(m, dict) else None
        # Trimmed, unless that empties it: whitespace the vendor takes would become an empty message
        # it may refuse.
        if isinstance(content, str) and content != content.strip() and content.strip():
            m = {**m, "content": m["content"].strip()}
            repaired["whitespace_trimmed"] += 1
        if isinstance(m, dict) and "weight" in m and type(m["weight"]) is not int:
            value = weight_value(m["weight"])
            if value is not None:
                m = {**m, "weight": value}
                repaired["weight_written_as_integer"] += 1
        fixed.append(m)
    has_reply = any(isinstance(m, dict) and m.get("role") == "assistant" for m in fixed)
    if last_assistant and has_reply:
        # As mistral-finetune's reformat does: turns after the last assistant reply teach nothing.
        while isinstance(fixed[-1], dict) and fixed[-1].get("role") in ("user", "tool", "system"):
            fixed.pop()
            repaired["trailing_turns_removed"] += 1
    return {**data, "messages": fixed}


def _redact(data: dict[str, Any], counts: dict[str, int]) -> dict[str, Any]:
    """`data` with the personal data in every message's text replaced by typed placeholders."""

    def messages(value: Any) -> Any:
        if not isinstance(value, list):
            return value
        return [
            {**m, "content": redact_value(m["content"], counts)}
            if isinstance(m, dict) and "content" in m
            else m
            for m in value
        ]

    out = dict(data)
    if "messages" in out:
        out["messages"] = messages(out["messages"])
    if isinstance(out.get("input"), dict):
        out["input"] = {**out["input"], "messages": messages(out["input"].get("messages"))}
    for key in ("preferred_output", "non_preferred_output"):
        if key in out:
            out[key] = messages(out[key])
    if isinstance(out.get("text"), str):
        out["text"] = redact_value(out["text"], counts)
    return out


def fix(
    data: Dataset | str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    provider: str = "openai",
    model: str | None = None,
    redact_pii: bool = False,
) -> FixResult:
    """Write the examples of `data` that pass `provider`'s checks (after repair) to `out`, as JSONL.

    `out` is a new file: the source is never changed. Repairs: other formats rewritten as chat,
    OpenAI's legacy function calls as tool calls, weights of true/1.0/"1" as integers, blank lines
    and a byte-order mark left out, surrounding whitespace trimmed, trailing non-assistant turns
    removed where the provider needs the assistant last. Keys beside the format's own (an id, a
    language) are kept. Dropped: exact duplicates and any example still failing a check (counted by
    its first error's code).

    Args:
        data: a `Dataset` or a JSONL file's path.
        out: the file to write.
        provider: the provider (or dataset profile) whose checks the examples must pass.
        model: the model to train, which sets the token limit.
        redact_pii: replace each email, phone number, national id, card number and IBAN with
            `<EMAIL>`, `<PHONE>`, `<NATIONAL_ID>`, `<CARD>` or `<IBAN>`, counted in
            `FixResult.redacted`.

    Returns:
        What was written, repaired, dropped and redacted.
    """
    profile = get_profile(
        provider_arg(provider),
        optional_str(
            model, "model", fix='Pass the model\'s name, e.g. model="gpt-4o-mini", or leave it out.'
        ),
    )
    data = data_arg(data, "data")
    out_path = path_arg(out, "out")
    if data.path is not None and out_path.resolve() == data.path.resolve():
        raise ConfigurationError(
            f"--fix would overwrite {out_path}, the data it reads.", fix="Write the corrected copy elsewhere."
        )
    out_path = out_file(out_path, "out")
    repaired: Counter[str] = Counter()
    dropped: Counter[str] = Counter()
    redacted: dict[str, int] = {}
    dropped_lines: list[tuple[int, str]] = []
    seen: set[bytes] = set()
    kept = 0

    def drop(line: int, code: str) -> None:
        dropped[code] += 1
        if len(dropped_lines) < 1000:
            dropped_lines.append((line, code))

    try:
        fh = out_path.open("w", encoding="utf-8")
    except OSError as e:
        raise cannot_write(out_path, e) from None
    with fh:
        for record in data.records():
            if record.bom:
                repaired["bom_removed"] += 1
            if record.data is None:
                assert record.problem is not None
                if record.problem.code == "blank_line":
                    repaired["blank_line_removed"] += 1
                else:
                    drop(record.line, record.problem.code)
                continue
            changes: Counter[str] = Counter()  # counted only if the example is kept
            candidate = _repair(record.data, record.format, profile.last_assistant, changes)
            found: dict[str, int] = {}
            if redact_pii:
                candidate = _redact(candidate, found)
            issues = IssueCollector(None, limit=5)
            checker = _Checker(profile, issues)
            if "messages" in candidate:
                checker.chat(candidate, record.line)
            elif "input" in candidate or "preferred_output" in candidate:
                checker.preference(candidate, record.line)
            else:
                checker.text(candidate, record.line)
            errors = [i for i in issues.issues if i.severity == "error"]
            if errors:
                drop(record.line, errors[0].code)
                continue
            exact, _ = example_keys(candidate)
            if exact in seen:
                drop(record.line, "duplicate_example")
                continue
            seen.add(exact)
            fh.write(json.dumps(candidate, ensure_ascii=False) + "\n")
            repaired.update(changes)
            for code, n in found.items():
                redacted[PLACEHOLDERS[code]] = redacted.get(PLACEHOLDERS[code], 0) + n
            kept += 1
    return FixResult(
        path=out_path,
        kept=kept,
        repaired=dict(repaired),
        dropped=dict(dropped),
        dropped_lines=dropped_lines,
        redacted=redacted,
    )
