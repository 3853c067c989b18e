"""The dataset toolkit: load, validate, count tokens, convert, split and dedupe.

The dataset toolkit: load any common format, validate it for a provider with line numbers, count
tokens exactly, convert to each vendor's wire format, split and dedupe — streaming, never holding a
whole file.

    from unitune.data import Dataset, validate
    report = validate(Dataset.from_jsonl("tickets.jsonl"), provider="together", model="llama-3.1-8b-instruct")
    print(report)            # summary, then each problem as path:line:column: severity [code] message
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from unitune.data._dataset import Dataset, Example
    from unitune.data._fix import FixResult, fix
    from unitune.data._model import ChatExample, PreferenceExample
    from unitune.data._report import Distribution, Issue, Stats, ValidationReport
    from unitune.data._split import SplitResult, split
    from unitune.data._validate import validate
    from unitune.data.profiles import Profile, get_profile

# Each name loads its module on first use (PEP 562): `unitune validate` looks up a profile in the
# command line's process and validates in its warm child, so the first need not import the rest.
_EXPORTS = {
    "ChatExample": "_model",
    "Dataset": "_dataset",
    "Distribution": "_report",
    "Example": "_dataset",
    "FixResult": "_fix",
    "Issue": "_report",
    "PreferenceExample": "_model",
    "Profile": "profiles",
    "SplitResult": "_split",
    "Stats": "_report",
    "ValidationReport": "_report",
    "fix": "_fix",
    "get_profile": "profiles",
    "split": "_split",
    "validate": "_validate",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        try:  # a submodule (`unitune.data.tokens`, `.profiles`), as when this file imported them all
            return import_module(f"unitune.data.{name}")
        except ModuleNotFoundError as e:
            if e.name != f"unitune.data.{name}":
                raise
            raise AttributeError(f"module 'unitune.data' has no attribute {name!r}") from None
    value = getattr(import_module(f"unitune.data.{module}"), name)
    globals()[name] = value  # once: later lookups are plain attribute reads
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "ChatExample",
    "Dataset",
    "Distribution",
    "Example",
    "FixResult",
    "Issue",
    "PreferenceExample",
    "Profile",
    "SplitResult",
    "Stats",
    "ValidationReport",
    "fix",
    "get_profile",
    "split",
    "validate",
]
