"""Property tests: arbitrary bytes and arbitrary JSON never crash the loader or the validator.

The only acceptable outcomes are a report (for validate) or a `DatasetError` (for iteration).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from unitune import DatasetError
from unitune.catalog import count_dataset_tokens
from unitune.data import Dataset, fix, split, validate
from unitune.data.convert import convert_example, formats

from .test_validate import WordCounter

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
ROLE = st.sampled_from(["system", "user", "assistant", "tool", "robot", "function", ""])
MESSAGE = st.fixed_dictionaries(
    {"role": ROLE},
    optional={
        "content": st.none() | st.text(max_size=30) | st.lists(JSON, max_size=2) | st.integers(),
        "weight": st.sampled_from([0, 1, 2, 0.5, "1", None]),
        "tool_calls": JSON,
        "tool_call_id": st.text(max_size=10) | st.integers(),
        "name": st.text(max_size=5),
    },
)
EXAMPLE = st.one_of(
    st.fixed_dictionaries({"messages": st.lists(MESSAGE, max_size=5) | JSON}, optional={"tools": JSON}),
    st.fixed_dictionaries(
        {"input": st.fixed_dictionaries({"messages": st.lists(MESSAGE, max_size=3) | JSON}) | JSON},
        optional={"preferred_output": st.lists(MESSAGE, max_size=2) | JSON, "non_preferred_output": JSON},
    ),
    st.fixed_dictionaries({"prompt": JSON, "completion": JSON}),
    st.fixed_dictionaries(
        {"conversations": st.lists(st.fixed_dictionaries({"from": JSON, "value": JSON}), max_size=3) | JSON}
    ),
    JSON,
)

SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _exercise(path: Path, tmp_path: Path) -> None:
    for provider in ("openai", "together", "mistral", "bedrock-claude"):
        report = validate(path, provider=provider, counter=WordCounter())
        # An example is one non-blank line (of the file as read: a gzip file is read decompressed).
        raw = path.read_bytes()
        if not raw.startswith(b"\x1f\x8b"):
            assert report.stats.examples <= sum(1 for line in raw.splitlines() if line.strip())
        assert all(i.line is None or i.line >= 1 for i in report.issues)
    counted = count_dataset_tokens(Dataset.from_jsonl(path), WordCounter(), 50)  # quotes read any data too
    assert counted.tokens <= counted.untruncated_tokens
    fixed = fix(Dataset.from_jsonl(path), tmp_path / "fixed.jsonl", provider="openai")
    assert validate(fixed.path, provider="openai", counter=WordCounter()).error_count == fixed_errors_allowed(
        fixed.kept
    )
    try:
        split(Dataset.from_jsonl(path), tmp_path / "split")
    except DatasetError as e:  # nothing readable to split: said so, not two empty files
        assert "no readable examples" in str(e)  # noqa: PT017
    try:
        examples = list(Dataset.from_jsonl(path))
    except DatasetError:
        return
    for example in examples:
        for fmt in formats():
            convert_example(example, fmt)  # returns a record or a refusal; never raises


def fixed_errors_allowed(kept: int) -> int:
    # A fixed file passes every per-example check; only the dataset-size rule can still fail it.
    return 1 if kept < 10 else 0


@SETTINGS
@given(st.binary(max_size=400))
def test_arbitrary_bytes(tmp_path: Path, blob: bytes) -> None:
    path = tmp_path / "data.jsonl"
    path.write_bytes(blob)
    _exercise(path, tmp_path)


@SETTINGS
@given(st.lists(EXAMPLE, max_size=6))
def test_arbitrary_json(tmp_path: Path, rows: list[Any]) -> None:
    path = tmp_path / "data.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    _exercise(path, tmp_path)
