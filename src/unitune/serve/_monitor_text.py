"""`unitune monitor`'s terminal output: the report's tables and RETRAIN lines, as plain text.

Kept apart from `_monitor` (which reads the log and computes) so each stays a size one can read.
"""

from __future__ import annotations

from collections.abc import Sequence

from unitune.serve._monitor import (
    PSI_MODERATE,
    ABReport,
    DayRow,
    Drift,
    Estimate,
    ModelSummary,
    MonitorReport,
)


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], indent: str = "  ") -> list[str]:
    """Fixed-width columns: the first left-aligned, the rest right-aligned (numbers)."""
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        parts = [cells[0].ljust(widths[0]), *(c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True))]
        return (indent + "  ".join(parts)).rstrip()

    return [line(headers), *(line(r) for r in rows)]


def _num(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _pct(e: Estimate | None) -> str:
    if e is None:
        return "-"
    return f"{100 * e.estimate:.1f}% [{100 * e.low:.1f}, {100 * e.high:.1f}]"


def _pts(e: Estimate | None) -> str:
    """A difference of rates in percentage points, with its interval."""
    if e is None:
        return "-"
    return f"{100 * e.estimate:+.1f} pts [{100 * e.low:+.1f}, {100 * e.high:+.1f}]"


def _usd(value: float | None) -> str:
    return "-" if value is None else f"${value:,.4f}"


def _psi_cell(d: Drift | None, flag: str) -> str:
    if d is None:
        return "-"
    if d.flagged:
        return f"{d.psi:.2f} {flag}"
    if not d.enough_data:
        return f"{d.psi:.2f} (few)"
    return f"{d.psi:.2f}" + (" moderate" if d.level != "stable" else "")


def _fields_cell(row: DayRow) -> str:
    if row.in_baseline:
        return "baseline"
    if not row.field_drift:
        return "-"
    # The few fields that moved most: the JSON output has them all.
    top = sorted(row.field_drift.items(), key=lambda kv: -kv[1].psi)[:3]
    return ", ".join(f"{name} {_psi_cell(d, 'SHIFT')}" for name, d in top)


def _model_section(summary: ModelSummary, rows: Sequence[DayRow], threshold: float) -> list[str]:
    price = (
        f"${summary.price.input_per_million:g}/${summary.price.output_per_million:g} per 1M in/out"
        if summary.price is not None
        else "no price"
    )
    lines = [
        f"{summary.model}: {summary.requests:,} requests over {summary.days} day(s), errors "
        f"{_pct(summary.error_rate)}, cost {_usd(summary.cost_usd)}",
        f"  price: {price}; {summary.price_note}",
        "",
    ]
    lines += _table(
        [
            "day",
            "requests",
            "errors [95%]",
            "p50 ms",
            "p95 ms",
            "ttft p50",
            "tokens in/out",
            "mean in/out",
            "cost",
        ],
        [
            [
                str(r.day),
                f"{r.requests:,}",
                _pct(r.error_rate),
                _num(r.latency_p50_ms),
                _num(r.latency_p95_ms),
                _num(r.ttft_p50_ms),
                f"{r.prompt_tokens:,}/{r.completion_tokens:,}",
                f"{_num(r.prompt_tokens_mean, 1)}/{_num(r.completion_tokens_mean, 1)}",
                _usd(r.cost_usd),
            ]
            for r in rows
        ],
    )
    lines.append("")
    lines += _table(
        ["day", "json valid [95%]", "vs baseline", "fields PSI", "input length PSI", "vocabulary PSI"],
        [
            [
                str(r.day),
                _pct(r.json_validity),
                "baseline" if r.in_baseline else _pts(r.json_validity_drift),
                _fields_cell(r),
                _psi_cell(r.input_length, "RETRAIN"),
                _psi_cell(r.input_vocabulary, "RETRAIN"),
            ]
            for r in rows
        ],
    )
    for r in rows:
        if r.retrain:
            lines.append(f"  RETRAIN {summary.model} {r.day}: {_retrain_reason(r, threshold)}")
    return lines


def _retrain_reason(row: DayRow, threshold: float) -> str:
    parts = [
        f"{what} PSI {d.psi:.2f}"
        for what, d in (("length", row.input_length), ("vocabulary", row.input_vocabulary))
        if d is not None and d.flagged
    ]
    return f"the prompts drifted from the training data ({', '.join(parts)} >= {threshold:g})."


def _ab_section(ab: ABReport) -> list[str]:
    lines = ["A/B arms (whole window)", ""]
    lines += _table(
        [
            "arm",
            "requests",
            "users",
            "errors [95%]",
            "p50 ms [95%]",
            "completion tokens [95%]",
            "json valid [95%]",
        ],
        [
            [
                a.arm,
                f"{a.requests:,}",
                f"{a.users:,}",
                _pct(a.error_rate),
                _interval(a.latency_p50_ms, 0),
                _interval(a.completion_tokens_mean, 1),
                _pct(a.json_validity),
            ]
            for a in ab.arms
        ],
    )
    for d in ab.differences:
        lines.append(
            f"  {d.arm} - {d.reference}: error rate {_pts(d.error_rate)}, json validity {_pts(d.json_validity)}"
        )
    lines.append(f"  {ab.note}")
    return lines


def _interval(e: Estimate | None, digits: int) -> str:
    if e is None:
        return "-"
    return f"{_num(e.estimate, digits)} [{_num(e.low, digits)}, {_num(e.high, digits)}]"


def render_monitor(report: MonitorReport) -> str:
    """The report as plain-text tables for a terminal; input drift past the threshold is a RETRAIN line."""
    first = min((m.first_day for m in report.models), default=None)
    last = max((m.last_day for m in report.models), default=None)
    window = f"{report.since or first or 'start'} .. {report.until or last or 'now'}"
    lines = [
        f"Request log: {report.log}",
        f"Window: {window}; {report.requests:,} requests, {len(report.models)} model(s)"
        + (f" (model {report.model})" if report.model else ""),
        f"PSI: below {PSI_MODERATE:g} stable, {PSI_MODERATE:g} to {report.psi_threshold:g} moderate, "
        f"{report.psi_threshold:g} and above significant; outputs vs each model's first "
        f"{report.baseline_days} day(s), inputs vs "
        + (
            f"{report.training_data} ({report.training_examples:,} examples)" if report.training_data else "-"
        ),
    ]
    for summary in report.models:
        lines.append("")
        lines += _model_section(
            summary, [r for r in report.days if r.model == summary.model], report.psi_threshold
        )
    if report.ab is not None:
        lines.append("")
        lines += _ab_section(report.ab)
    if report.notes:
        lines.append("")
        lines += [f"note: {n}" for n in report.notes]
    return "\n".join(lines)
