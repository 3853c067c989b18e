"""What validation found: issues with a stable code and a place, counts per code, and statistics."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Distribution", "Issue", "Severity", "Stats", "ValidationReport"]

Severity = Literal["error", "warning", "info"]

#: Issues kept in full; beyond this only the counts grow, so a huge bad file cannot exhaust memory.
MAX_KEPT_ISSUES = 1000


class Issue(BaseModel):
    """One problem, at one place. `code` is stable (safe to match on); `message` says how to fix it."""

    model_config = ConfigDict(frozen=True)

    code: str
    severity: Severity
    message: str
    path: str | None = None
    line: int | None = None
    column: int | None = None

    def where(self) -> str:
        """`path:line:column`, as much of it as is known."""
        parts = [self.path or "<data>"]
        if self.line is not None:
            parts.append(str(self.line))
            if self.column is not None:
                parts.append(str(self.column))
        return ":".join(parts)

    def __str__(self) -> str:
        return f"{self.where()}: {self.severity} [{self.code}] {self.message}"


class Distribution(BaseModel):
    """Summary of a per-example quantity. Percentiles use the nearest-rank method on all values."""

    model_config = ConfigDict(frozen=True)

    count: int = 0
    total: int = 0
    min: int = 0
    max: int = 0
    mean: float = 0.0
    p5: int = 0
    p50: int = 0
    p95: int = 0

    @classmethod
    def of(cls, values: Sequence[int]) -> Distribution:
        if not values:
            return cls()
        ordered = sorted(values)
        n = len(ordered)

        def rank(p: float) -> int:
            # Nearest rank: the smallest value with at least p% of values at or below it.
            return ordered[max(0, math.ceil(p / 100 * n) - 1)]

        total = sum(ordered)
        return cls(
            count=n, total=total, min=ordered[0], max=ordered[-1], mean=total / n,
            p5=rank(5), p50=rank(50), p95=rank(95),
        )  # fmt: skip

    @classmethod
    def from_counts(cls, counts: Mapping[int, int]) -> Distribution:
        """The distribution of values given as how many examples have each value.

        The same as `of`, from how many examples have each value: memory grows with the distinct
        values (a few thousand token counts, say), not with the examples.
        """
        values = sorted(v for v, c in counts.items() if c > 0)
        if not values:
            return cls()
        n = sum(counts[v] for v in values)
        total = sum(v * counts[v] for v in values)
        wanted = {p: max(0, math.ceil(p / 100 * n) - 1) for p in (5, 50, 95)}  # 0-based sorted positions
        found: dict[int, int] = {}
        seen = 0
        for v in values:
            seen += counts[v]
            for p, position in wanted.items():
                if p not in found and position < seen:
                    found[p] = v
        return cls(
            count=n, total=total, min=values[0], max=values[-1], mean=total / n,
            p5=found[5], p50=found[50], p95=found[95],
        )  # fmt: skip


class Stats(BaseModel):
    """Dataset statistics computed in the same pass as the checks."""

    model_config = ConfigDict(frozen=True)

    examples: int = 0
    messages_per_example: Distribution = Field(default_factory=Distribution)
    tokens_per_example: Distribution = Field(default_factory=Distribution)
    assistant_tokens_per_example: Distribution = Field(default_factory=Distribution)
    examples_over_limit: int = 0
    token_limit: int | None = None
    tokenizer: str | None = None
    approximate_tokens: bool = False
    token_method: str | None = None
    bytes_read: int = 0


class ValidationReport(BaseModel):
    """The result of `validate()`: every issue's count, the first issues in full, and statistics.

    `ok` is True when there is no error; warnings never block a job.
    """

    model_config = ConfigDict(frozen=True)

    provider: str
    model: str | None = None
    path: str | None = None
    issues: list[Issue] = Field(default_factory=list)
    counts: dict[str, int] = Field(default_factory=dict)
    severities: dict[str, Severity] = Field(default_factory=dict)
    stats: Stats = Field(default_factory=Stats)
    truncated: bool = Field(default=False, description="More issues were found than are kept in `issues`.")

    @property
    def ok(self) -> bool:
        return self.error_count == 0

    @property
    def error_count(self) -> int:
        return sum(n for code, n in self.counts.items() if self.severities.get(code) == "error")

    @property
    def warning_count(self) -> int:
        return sum(n for code, n in self.counts.items() if self.severities.get(code) == "warning")

    @property
    def errors(self) -> list[Issue]:
        return [i for i in self.issues if i.severity == "error"]

    @property
    def warnings(self) -> list[Issue]:
        return [i for i in self.issues if i.severity == "warning"]

    def summary(self) -> str:
        """One line: counts of errors and warnings, and the most frequent codes."""
        top = ", ".join(f"{code} ×{n}" for code, n in Counter(self.counts).most_common(5))
        verdict = "OK" if self.ok else "FAILED"
        return (
            f"{verdict}: {self.stats.examples} examples, {self.error_count} errors, "
            f"{self.warning_count} warnings" + (f" ({top})" if top else "")
        )

    def __str__(self) -> str:
        lines = [self.summary(), *(str(i) for i in self.issues[:20])]
        if len(self.issues) > 20 or self.truncated:
            lines.append("…")
        return "\n".join(lines)


class IssueCollector:
    """Collects issues during a pass, keeping the first `MAX_KEPT_ISSUES` and exact counts."""

    def __init__(self, path: str | None, limit: int = MAX_KEPT_ISSUES) -> None:
        self.path = path
        self.limit = limit
        self.issues: list[Issue] = []
        self.counts: Counter[str] = Counter()
        self.severities: dict[str, Severity] = {}

    def add(
        self,
        code: str,
        severity: Severity,
        message: str,
        *,
        line: int | None = None,
        column: int | None = None,
        path: str | None = None,
    ) -> None:
        self.counts[code] += 1
        self.severities[code] = severity
        if len(self.issues) < self.limit:
            self.issues.append(
                Issue(code=code, severity=severity, message=message, path=path or self.path,
                      line=line, column=column)
            )  # fmt: skip

    @property
    def truncated(self) -> bool:
        return sum(self.counts.values()) > len(self.issues)
