"""How a child's data differs from its parent's: by example, whatever the formatting."""

from __future__ import annotations

import json
from pathlib import Path

from unitune.runs import diff_data


def _write(path: Path, rows: list[dict[str, object]], *, indent_keys: bool = False) -> Path:
    lines = [
        json.dumps(r, sort_keys=not indent_keys, separators=(", ", ": ") if indent_keys else (",", ":"))
        for r in rows
    ]
    path.write_text("\n".join(lines) + "\n\n")
    return path


def test_added_removed_duplicates_and_leaks(tmp_path: Path) -> None:
    rows = [
        {"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]}
        for i in range(6)
    ]
    parent = _write(tmp_path / "p.jsonl", rows[:4])
    # The same examples written with other spacing and key order are the same data.
    reordered = [{"messages": list(r["messages"])} for r in rows[1:4]]  # type: ignore[call-overload]
    child = _write(tmp_path / "c.jsonl", [*reordered, rows[4], rows[4], rows[5]], indent_keys=True)
    validation = _write(tmp_path / "v.jsonl", [rows[5]])
    change = diff_data(parent, child, validation)
    assert (change.before, change.after, change.added, change.removed) == (4, 6, 3, 1)
    assert (change.duplicates, change.in_validation) == (1, 1)
    assert (
        change.summary()
        == "+3 added, −1 removed (4 → 6 examples), 1 duplicate(s), 1 also in the validation data"
    )
    assert diff_data(parent, parent).summary() == "same examples (4)"
