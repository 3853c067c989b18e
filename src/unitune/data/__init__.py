"""The dataset toolkit: load, validate, count tokens, convert, split and dedupe.

The dataset toolkit: load any common format, validate it for a provider with line numbers, count
tokens exactly, convert to each vendor's wire format, split and dedupe — streaming, never holding a
whole file.

    from unitune.data import Dataset, validate
    report = validate(Dataset.from_jsonl("tickets.jsonl"), provider="together", model="llama-3.1-8b-instruct")
    print(report)            # summary, then each problem as path:line:column: severity [code] message
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from unitune._lazy import loader

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


_load = loader(
    __name__, {name: f"{__name__}.{module}" for name, module in _EXPORTS.items()}, globals(), submodules=True
)


def __getattr__(name: str) -> Any:
    return _load(name)


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
