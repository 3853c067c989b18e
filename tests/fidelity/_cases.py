"""Shared machinery of the per-provider disagreement cases (test_*_cases.py).

Each case is one example line that vendors and unitune once disagreed about: the data, what the
vendor does with it (and where that is written), and what unitune now says. Where the vendor's
verdict is its own validator's (tests/fidelity/vendor/), the test runs that validator too, so the
stated verdict is checked, not only asserted; and where unitune passes the data, the file unitune
would upload passes that validator.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from unitune.data import Dataset, ValidationReport, get_profile, validate
from unitune.data.convert import write_jsonl

Checker = Callable[..., list[tuple[int | None, str]]]


@dataclass(frozen=True)
class Case:
    """One disagreement: `example` (a line, as an object or raw text), the vendor's verdict on it and its
    source, and unitune's: "error:<code>", "warning:<code>" (that warning and no error) or "ok" (no error)."""

    name: str
    example: Any
    vendor: Literal["refuses", "accepts"]
    source: str
    expect: str
    #: The vendor's verdict is its validator's (run here); False where it comes from docs or errors.
    by_script: bool = True
    method: str | None = None
    model: str | None = None


def chat(*messages: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {"messages": list(messages), **top}


U = {"role": "user", "content": "Where is my order?"}
A = {"role": "assistant", "content": "It ships tomorrow."}
S = {"role": "system", "content": "You are a support agent."}


def base_lines(n: int, shape: Callable[[int], dict[str, Any]]) -> list[str]:
    return [json.dumps(shape(i), ensure_ascii=False) for i in range(n)]


def plain(i: int) -> dict[str, Any]:
    return chat(
        {"role": "user", "content": f"Where is order {i}?"},
        {"role": "assistant", "content": f"Order {i} ships."},
    )


def write(path: Path, base: list[str], example: Any) -> Path:
    line = example if isinstance(example, str) else json.dumps(example, ensure_ascii=False)
    path.write_text("\n".join([*base, line]) + "\n", encoding="utf-8")
    return path


def run_case(
    case: Case,
    tmp_path: Path,
    *,
    provider: str,
    base: list[str],
    vendor: Checker | None,
    wire: str,
    vendor_options: dict[str, Any] | None = None,
) -> ValidationReport:
    """Check `case`: unitune's verdict, the vendor validator's (where `by_script`), and that the wire file
    of data unitune passes is one the vendor validator accepts."""
    options = vendor_options or {}
    path = write(tmp_path / "data.jsonl", base, case.example)
    report = validate(path, provider=provider, model=case.model, method=case.method, workers=1)  # type: ignore[arg-type]
    errors = sorted({i.code for i in report.issues if i.severity == "error"})
    warnings = {i.code for i in report.issues if i.severity == "warning"}
    kind, _, code = case.expect.partition(":")
    if kind == "error":
        assert code in errors, f"{case.name}: expected the error {code}, got errors {errors}"
        profile = get_profile(provider, case.model)
        check = profile.checks.get(code)
        assert check is not None, f"{case.name}: {code} cites no vendor rule"
        assert check.vendor == "refuses", f"{case.name}: {code} cites no refusing vendor rule"
    else:
        assert not errors, f"{case.name}: expected no error, got {[str(i) for i in report.errors]}"
        if kind == "warning":
            assert code in warnings, f"{case.name}: expected the warning {code}, got {sorted(warnings)}"
    if vendor is not None and case.by_script:
        refused = vendor(path, **options)
        assert bool(refused) == (case.vendor == "refuses"), (
            f"{case.name}: the vendor's validator said {refused}"
        )
    if vendor is not None and kind != "error":
        out = tmp_path / "wire.jsonl"
        result = write_jsonl(Dataset.from_jsonl(path), wire, out)
        assert not result.refused, f"{case.name}: unitune passes it but cannot convert it: {result.losses}"
        assert vendor(out, **options) == [], (
            f"{case.name}: the vendor refuses the wire file:\n{out.read_text()}"
        )
    return report
