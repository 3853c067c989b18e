"""The dataset toolkit: load, validate, count tokens, convert, split and dedupe.

The dataset toolkit: load any common format, validate it for a provider with line numbers, count
tokens exactly, convert to each vendor's wire format, split and dedupe — streaming, never holding a
whole file.

    from unitune.data import Dataset, validate
    report = validate(Dataset.from_jsonl("tickets.jsonl"), provider="together", model="llama-3.1-8b-instruct")
    print(report)            # summary, then each problem as path:line:column: severity [code] message
"""

from __future__ import annotations

from unitune.data._dataset import Dataset, Example
from unitune.data._fix import FixResult, fix
from unitune.data._model import ChatExample, PreferenceExample
from unitune.data._report import Distribution, Issue, Stats, ValidationReport
from unitune.data._split import SplitResult, split
from unitune.data._validate import validate
from unitune.data.profiles import Profile, get_profile

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
