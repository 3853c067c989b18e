"""What changed between a run's data and its child's: examples added, removed, repeated, leaked.

An example is identified by its canonical JSON (keys sorted, no whitespace), so a file rewritten
with other formatting or key order is the same data; files are read a line at a time.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["DataChange", "diff_data", "example_digests", "without_examples"]


def _digest(line: bytes) -> bytes:
    try:
        canonical = json.dumps(json.loads(line), sort_keys=True, separators=(",", ":")).encode()
    except ValueError:
        canonical = line  # not JSON: validation reports it; here it is just a line
    return hashlib.blake2b(canonical, digest_size=16).digest()


def example_digests(path: Path) -> Counter[bytes]:
    """Each example's digest, counted (blank lines are not examples)."""
    counts: Counter[bytes] = Counter()
    with path.open("rb") as f:
        for raw in f:
            line = raw.strip()
            if line:
                counts[_digest(line)] += 1
    return counts


def without_examples(path: Path, held_out: Path, out: Path) -> int:
    """Write `path` less the examples that are in `held_out` to `out`; return how many were left out."""
    excluded = set(example_digests(held_out))
    dropped = 0
    out.parent.mkdir(parents=True, exist_ok=True)
    with path.open("rb") as src, out.open("wb") as dst:
        for raw in src:
            line = raw.strip()
            if line and _digest(line) in excluded:
                dropped += 1
                continue
            dst.write(raw if raw.endswith(b"\n") else raw + b"\n")
    return dropped


class DataChange(BaseModel):
    """How a child run's training data differs from its parent's."""

    model_config = ConfigDict(frozen=True)

    before: int = Field(description="Examples in the parent's training data.")
    after: int = Field(description="Examples in the child's training data.")
    added: int = Field(description="Examples in the child's data that the parent's did not have.")
    removed: int = Field(description="Examples of the parent's data the child's no longer has.")
    duplicates: int = Field(description="Repeated copies within the child's data.")
    in_validation: int = Field(description="Child training examples also in the validation data (leaked).")
    held_out: int = Field(
        default=0, description="Examples of the new data left out because they are validation examples."
    )

    def summary(self) -> str:
        """One line: `+40 added, −3 removed, 2 duplicates (200 → 237 examples)`."""
        if not self.added and not self.removed:
            text = f"same examples ({self.after})"
        else:
            text = f"+{self.added} added, −{self.removed} removed ({self.before} → {self.after} examples)"
        if self.duplicates:
            text += f", {self.duplicates} duplicate(s)"
        if self.in_validation:
            text += f", {self.in_validation} also in the validation data"
        if self.held_out:
            text += f"; {self.held_out} validation example(s) in the new data left out"
        return text


def diff_data(parent: Path, child: Path, validation: Path | None = None) -> DataChange:
    """Compare the parent's training file with the child's (and the child's with the validation file).

    Args:
        parent: the parent run's training file.
        child: the child run's training file.
        validation: the child's validation file, whose examples found in `child` are counted; None
            for none.
    """
    old = example_digests(parent)
    new = example_digests(child)
    held_out = set(example_digests(validation)) if validation is not None else set()
    return DataChange(
        before=sum(old.values()),
        after=sum(new.values()),
        added=sum(n for d, n in new.items() if d not in old),
        removed=sum(n for d, n in old.items() if d not in new),
        duplicates=sum(n - 1 for n in new.values() if n > 1),
        in_validation=sum(n for d, n in new.items() if d in held_out),
    )
