"""An `EvaluationReport` as a terminal table, a Markdown document and one self-contained HTML page.

All three read the report only; none computes a statistic. The HTML page carries its CSS and its
SVG charts inline (no script, no font, no CDN) so it opens offline, can be mailed as one file and
prints as it shows. Everything taken from the report (names, prompts, answers, reasons) is escaped:
answers are model output, and model output may hold markup.
"""

from __future__ import annotations

import html
import os
import re
import secrets
from collections.abc import Iterable, Sequence
from pathlib import Path

from unitune.evaluate._report import (
    CandidateResult,
    Difference,
    EvaluationReport,
    HumanResult,
    MetricScore,
    PairwiseResult,
)

__all__ = ["render_html", "render_markdown", "render_text", "write_report"]

#: Judge rows shown with their reasons: enough to see what the judge looks at, short enough to read.
JUDGE_ROWS_SHOWN = 10
#: Prompts in the flips table are excerpts: the full example is in the answers files.
PROMPT_EXCERPT = 160
#: Answers shown side by side are cut here so one runaway generation does not swamp the page.
ANSWER_EXCERPT = 1500


# -- formatting of single values --------------------------------------------------------------------


def _num(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _signed(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:+.{digits}f}"


def _interval(low: float | None, high: float | None, signed: bool = False) -> str:
    """`[0.50, 0.75]`, or "" when either end is missing (too few examples for a bootstrap)."""
    if low is None or high is None:
        return ""
    fmt = _signed if signed else _num
    return f"[{fmt(low, 2)}, {fmt(high, 2)}]"


def _score(score: MetricScore | None) -> str:
    """`0.625 [0.50, 0.75]`: the value with its interval where there is one."""
    if score is None or score.mean is None:
        return "-"
    interval = _interval(score.low, score.high)
    return f"{score.mean:.3f} {interval}" if interval else f"{score.mean:.3f}"


def _rate(rate: float | None, low: float | None, high: float | None) -> str:
    interval = _interval(low, high)
    text = _num(rate)
    return f"{text} {interval}" if interval and rate is not None else text


def _usd(value: float | None) -> str:
    # Cents matter below a dollar (a thousand short requests often cost less than one).
    if value is None:
        return "-"
    return f"${value:,.2f}" if abs(value) >= 1 else f"${value:.4f}"


def _p_value(p: float | None) -> str:
    if p is None:
        return "-"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _excerpt(text: str, limit: int) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _metric_label(report: EvaluationReport, metric: str) -> str:
    return f"{metric}*" if metric == report.primary_metric else metric


def _plural(count: int, word: str, plural: str = "") -> str:
    return f"{count} {word}" if count == 1 else f"{count} {plural or word + 's'}"


def _headline(report: EvaluationReport) -> str:
    """`Evaluation on N examples (K skipped: reason n, ...)`."""
    line = f"Evaluation on {_plural(report.examples, 'example')}"
    if report.skipped_total:
        reasons = ", ".join(f"{reason} {count}" for reason, count in report.skipped.items() if count)
        line += f" ({report.skipped_total} skipped: {reasons})"
    return line


def _tokens(c: CandidateResult) -> str:
    return f"{c.mean_prompt_tokens:.0f}/{c.mean_completion_tokens:.0f}"


def _primary_differences(report: EvaluationReport) -> list[Difference]:
    """Differences on the primary metric against the verdict's baseline (all of them without one)."""
    baseline = report.baseline
    return [
        d
        for d in report.differences
        if d.metric == report.primary_metric and (baseline is None or d.baseline == baseline.name)
    ]


def _judge_summary(j: PairwiseResult) -> str:
    line = (
        f"{j.judge}: {j.candidate} vs {j.baseline}: {_plural(j.wins, 'win')}, "
        f"{_plural(j.losses, 'loss', 'losses')}, {_plural(j.ties, 'tie')}, "
        f"win rate {_rate(j.win_rate, j.low, j.high)}"
    )
    return line + (f" ({j.skipped} unreadable)" if j.skipped else "")


def _human_summary(h: HumanResult) -> str:
    return (
        f"{h.a} vs {h.b}: {h.a} better {h.a_wins}, {h.b} better {h.b_wins}, ties {h.ties}, "
        f"both bad {h.both_bad} ({h.rated} rated), win rate of {h.a} {_rate(h.win_rate, h.low, h.high)}"
    )


def _break_even_note(report: EvaluationReport) -> list[str]:
    notes = []
    for b in report.break_even:
        # The note is written by the evaluation; the fallback keeps a report built by hand legible.
        requests = "never" if b.requests is None else f"{b.requests:,.0f} requests"
        notes.append(b.note or f"{b.candidate} vs {b.baseline}: pays for itself after {requests}")
    return notes


# -- plain text ---------------------------------------------------------------------------------------


def _text_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Columns padded to their widest cell; the first (names) left-aligned, the numbers right."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        parts = [cells[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True)]
        return "  ".join(parts).rstrip()

    return [line(header), *(line(row) for row in rows)]


def render_text(report: EvaluationReport) -> str:
    """The report as a compact plain-text table for a terminal or a log (what `str(report)` gives).

    One row per candidate, one column per metric (the primary one marked `*`) with its interval,
    then latency, tokens and cost; then the primary metric's differences, break-even, judge and
    human lines, and last the verdict.
    """
    header = [
        "candidate",
        *(_metric_label(report, m) for m in report.metrics),
        "p50 ms",
        "tokens in/out",
        "$/1k req",
    ]
    rows = [
        [
            c.name,
            *(_score(c.metrics.get(m)) for m in report.metrics),
            _num(c.latency_p50_ms, 0),
            _tokens(c),
            _usd(c.cost_per_1k_requests_usd),
        ]
        for c in report.candidates
    ]
    lines = [_headline(report), *_text_table(header, rows)]
    differences = _primary_differences(report)
    if differences:
        label = _metric_label(report, report.primary_metric)
        lines.append(f"differences on {label} vs {differences[0].baseline}:")
        for d in differences:
            p = f"  McNemar p={_p_value(d.p_value)}" if d.p_value is not None else ""
            lines.append(
                f"  {d.candidate}: {_signed(d.estimate)} {_interval(d.low, d.high, True)} n={d.n}{p}"
            )
    lines += [f"break-even: {note}" for note in _break_even_note(report)]
    lines += [f"judge: {_judge_summary(j)}" for j in report.judge]
    if report.human is not None:
        lines.append(f"human: {_human_summary(report.human)}")
    if report.metric_errors:
        errors = ", ".join(f"{m} {n}" for m, n in report.metric_errors.items())
        lines.append(f"metric errors: {errors}")
    lines.append(f"verdict: {report.verdict}")
    return "\n".join(lines)


# -- sections shared by Markdown and HTML -------------------------------------------------------------
#
# Each section is a title, optional paragraphs and optional tables of already-formatted strings; the
# two writers differ only in how they escape and lay those out, so the content is decided once.

_Table = tuple[list[str], list[list[str]]]


class _Section:
    def __init__(self, title: str, paragraphs: Iterable[str] = (), tables: Iterable[_Table] = ()) -> None:
        self.title = title
        self.paragraphs = list(paragraphs)
        self.tables = list(tables)


def _ci_label(report: EvaluationReport) -> str:
    return f"{report.confidence:.0%} CI"


def _quality_section(report: EvaluationReport) -> _Section:
    header = ["candidate", "role", *(_metric_label(report, m) for m in report.metrics)]
    rows = []
    for c in report.candidates:
        cells = []
        for m in report.metrics:
            score = c.metrics.get(m)
            cells.append(_score(score) + (f" (n={score.count})" if score is not None else ""))
        role = f"{c.role}, {c.few_shot}-shot" if c.few_shot else c.role
        rows.append([c.name, role, *cells])
    note = f"The primary metric (marked *) is {report.primary_metric}; intervals are {_ci_label(report)}s."
    return _Section("Quality", [note], [(header, rows)])


def _differences_section(report: EvaluationReport) -> _Section | None:
    if not report.differences:
        return None
    header = ["candidate", "baseline", "metric", "Δ", _ci_label(report), "n", "McNemar p"]
    rows = [
        [
            d.candidate,
            d.baseline,
            _metric_label(report, d.metric),
            _signed(d.estimate),
            _interval(d.low, d.high, signed=True),
            str(d.n),
            _p_value(d.p_value),
        ]
        for d in report.differences
    ]
    return _Section("Differences", tables=[(header, rows)])


def _cost_section(report: EvaluationReport) -> _Section:
    header = [
        "candidate",
        "tokens in / request",
        "tokens out / request",
        "p50 latency ms",
        "p95 latency ms",
        "cost / 1k requests",
        "training",
        "price note",
    ]
    rows = [
        [
            c.name,
            f"{c.mean_prompt_tokens:.1f}",
            f"{c.mean_completion_tokens:.1f}",
            _num(c.latency_p50_ms, 0),
            _num(c.latency_p95_ms, 0),
            _usd(c.cost_per_1k_requests_usd),
            _usd(c.training_usd),
            c.price_note or "-",
        ]
        for c in report.candidates
    ]
    notes = [f"Break-even: {note}" for note in _break_even_note(report)]
    return _Section("Cost and speed", notes, [(header, rows)])


def _judge_section(report: EvaluationReport) -> _Section | None:
    if not report.judge:
        return None
    paragraphs, tables = [], []
    for j in report.judge:
        paragraphs.append(_judge_summary(j))
        shown = j.rows[:JUDGE_ROWS_SHOWN]
        if shown:
            rows = [[_line(r.line, r.index), r.winner, " / ".join(r.reasons) or "-"] for r in shown]
            tables.append((["line", "winner", "reasons"], rows))
        if len(j.rows) > len(shown):
            paragraphs.append(f"{len(shown)} of {len(j.rows)} judged examples shown.")
    return _Section("LLM judge", paragraphs, tables)


def _line(line: int | None, index: int) -> str:
    return str(line) if line is not None else f"#{index}"


def _flips_section(report: EvaluationReport) -> _Section | None:
    if not report.flips:
        return None
    rows = [
        [_line(f.line, f.index), f.metric, f.direction, _excerpt(f.prompt, PROMPT_EXCERPT)]
        for f in report.flips
    ]
    return _Section("Flips", tables=[(["line", "metric", "direction", "prompt"], rows)])


def _samples_section(report: EvaluationReport) -> _Section | None:
    if not report.samples:
        return None
    names = [c.name for c in report.candidates]
    tables = []
    for s in report.samples:
        # One two-column table per sample: answers side by side in columns would be unreadable
        # as soon as they are longer than a line.
        rows = [["prompt", s.prompt], ["reference", s.reference]]
        extra = [n for n in s.answers if n not in names]
        rows += [[n, _excerpt(s.answers[n], ANSWER_EXCERPT)] for n in [*names, *extra] if n in s.answers]
        tables.append(([f"example {_line(s.line, s.index)}", "text"], rows))
    return _Section("Samples", tables=tables)


def _footer_section(report: EvaluationReport) -> _Section:
    skipped = ", ".join(f"{r}: {n}" for r, n in report.skipped.items()) or "none"
    errors = ", ".join(f"{m}: {n}" for m, n in report.metric_errors.items()) or "none"
    return _Section(
        "Examples",
        [
            f"{_headline(report)}.",
            f"Skipped ({report.skipped_total}): {skipped}.",
            f"Metric errors (scored as not applicable): {errors}.",
        ],
    )


def _sections(report: EvaluationReport) -> list[_Section]:
    human = None
    if report.human is not None:
        human = _Section("Human ratings", [_human_summary(report.human)])
    found = [
        _quality_section(report),
        _differences_section(report),
        _cost_section(report),
        _judge_section(report),
        human,
        _flips_section(report),
        _samples_section(report),
        _footer_section(report),
    ]
    return [s for s in found if s is not None]


def _verdict_lines(report: EvaluationReport) -> tuple[str, str]:
    """The decision and the sentence after it (with the regressions and the examples still needed)."""
    v = report.verdict
    reason = v.reason.rstrip()
    if (v.regressions or v.more_examples) and not reason.endswith((".", "!", "?")):
        reason += "."
    if v.regressions:
        reason += f" Significantly worse on: {', '.join(v.regressions)}."
    if v.more_examples:
        reason += f" About {v.more_examples:,} more examples would settle it."
    return v.decision, reason


# -- Markdown -----------------------------------------------------------------------------------------


#: What could start raw HTML in Markdown (a tag, a comment, an entity); `<0.001` or `Q&A` cannot.
_MD_TAG = re.compile(r"<(?=[A-Za-z/!?])")
_MD_ENTITY = re.compile(r"&(?=#|[A-Za-z][A-Za-z0-9]*;)")


def _md_escape(text: str) -> str:
    """Neutralise raw HTML in Markdown text.

    Neutralise raw HTML, so that a renderer allowing it shows an answer's markup instead of running
    it; what cannot start markup is left as it is, for whoever reads the .md file itself.
    """
    return _MD_TAG.sub("&lt;", _MD_ENTITY.sub("&amp;", text))


def _md_cell(text: str) -> str:
    """A table cell: `|` would end the cell and a newline the row."""
    text = _md_escape(text).replace("\\", "\\\\").replace("|", "\\|")
    return "<br>".join(text.splitlines()) or " "


def _md_text(text: str) -> str:
    return _md_escape(" ".join(text.split()))


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(_md_cell(c) for c in cells) + " |"

    return [line(header), "|" + "---|" * len(header), *(line(r) for r in rows), ""]


def render_markdown(report: EvaluationReport) -> str:
    """The report as a GitHub-flavoured Markdown document (report.md).

    The verdict first, then quality with intervals, differences, cost and break-even, the judge,
    human ratings, flips, sample answers and what was skipped. Every cell is escaped.
    """
    decision, reason = _verdict_lines(report)
    lines = [
        "# Evaluation report",
        "",
        f"**{decision}**: {_md_text(reason)}",
        "",
    ]
    for section in _sections(report):
        lines += [f"## {section.title}", ""]
        for paragraph in section.paragraphs:
            lines += [_md_text(paragraph), ""]
        for header, rows in section.tables:
            lines += _md_table(header, rows)
    return "\n".join(lines).rstrip() + "\n"


# -- HTML ---------------------------------------------------------------------------------------------

_COLOURS = {"ship": "#1a7f37", "abandon": "#cf222e", "inconclusive": "#9a6700"}

_CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1f2328;
       max-width: 1100px; margin: 2em auto; padding: 0 1em; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; border-bottom: 1px solid #d0d7de; }
table { border-collapse: collapse; margin: .5em 0 1.2em; }
th, td { border: 1px solid #d0d7de; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f6f8fa; }
td { white-space: pre-wrap; overflow-wrap: anywhere; max-width: 60em; }
.verdict { border-left: 6px solid var(--c); background: #f6f8fa; padding: .6em 1em; }
.verdict strong { color: var(--c); text-transform: uppercase; }
.charts { display: flex; flex-wrap: wrap; gap: 1em; }
figure { margin: 0; } figcaption { font-weight: 600; }
svg text { font: 11px system-ui, sans-serif; fill: #1f2328; }
svg .bar { fill: #8fb8de; } svg .whisker { stroke: #1f2328; stroke-width: 1.5; }
svg .axis { stroke: #8c959f; stroke-width: 1; } svg .point { fill: #0969da; }
svg .strip { fill: #f6f8fa; stroke: #d0d7de; }
@media print {
  body { margin: 0; max-width: none; font-size: 11px; }
  * { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
  table, figure, .verdict { break-inside: avoid; }
}
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _html_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


# Bar charts: one per metric, candidates as rows, the metric's 0-1 range across PLOT_W pixels.
LABEL_W, PLOT_W, BAR_H, ROW_H = 150, 300, 14, 22


def _bar_x(value: float) -> float:
    return round(LABEL_W + max(0.0, min(1.0, value)) * PLOT_W, 2)


def _bar_row(y: float, c: CandidateResult, score: MetricScore | None) -> list[str]:
    parts = [f'<text x="{LABEL_W - 6}" y="{y + BAR_H - 3}" text-anchor="end">{_e(c.name)}</text>']
    if score is None or score.mean is None:
        parts.append(f'<text x="{LABEL_W + 4}" y="{y + BAR_H - 3}">n/a</text>')
        return parts
    width = round(max(0.0, min(1.0, score.mean)) * PLOT_W, 2)
    parts.append(f'<rect class="bar" x="{LABEL_W}" y="{y}" width="{width}" height="{BAR_H}"/>')
    if score.low is not None and score.high is not None:
        mid = y + BAR_H / 2
        x1, x2 = _bar_x(score.low), _bar_x(score.high)
        parts += [
            f'<line class="whisker" x1="{x1}" y1="{mid}" x2="{x2}" y2="{mid}"/>',
            f'<line class="whisker" x1="{x1}" y1="{y + 2}" x2="{x1}" y2="{y + BAR_H - 2}"/>',
            f'<line class="whisker" x1="{x2}" y1="{y + 2}" x2="{x2}" y2="{y + BAR_H - 2}"/>',
        ]
    label_x = max(_bar_x(score.mean), _bar_x(score.high or 0.0)) + 4
    parts.append(f'<text x="{label_x}" y="{y + BAR_H - 3}">{score.mean:.3f}</text>')
    return parts


def _bar_chart(report: EvaluationReport, metric: str) -> str:
    top, height = 6, 6 + ROW_H * len(report.candidates) + 22
    width = LABEL_W + PLOT_W + 50
    parts = []
    for i, c in enumerate(report.candidates):
        parts += _bar_row(top + i * ROW_H, c, c.metrics.get(metric))
    axis_y = top + ROW_H * len(report.candidates)
    parts.append(f'<line class="axis" x1="{LABEL_W}" y1="{axis_y}" x2="{LABEL_W + PLOT_W}" y2="{axis_y}"/>')
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        x = _bar_x(tick)
        parts.append(f'<line class="axis" x1="{x}" y1="{axis_y}" x2="{x}" y2="{axis_y + 4}"/>')
        parts.append(f'<text x="{x}" y="{axis_y + 15}" text-anchor="middle">{tick:g}</text>')
    label = _e(_metric_label(report, metric))
    return (
        f'<figure><figcaption>{label}</figcaption><svg class="bars" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{label}">'
        f"<title>{label}</title>{''.join(parts)}</svg></figure>"
    )


# Scatter: a "no price" strip on the left for candidates without a price, the priced ones to its right.
SC_W, SC_H, SC_LEFT, SC_STRIP, SC_TOP, SC_PLOT_H = 520, 300, 120, 50, 12, 240
# The strip keeps clear of the y tick labels and of the first x tick label below the axis.
SC_STRIP_X = SC_LEFT - SC_STRIP - 30
SC_STRIP_MID = SC_STRIP_X + SC_STRIP / 2
# Priced points span this width, leaving room on the right for the dearest point's label.
SC_PLOT_W = SC_W - 20 - SC_LEFT - 40


def _scatter_point(x: float, y: float, name: str, on_strip: bool) -> str:
    # On the narrow strip the label is centred above the point so it does not run over the y axis.
    label = f'x="{x}" y="{y - 8}" text-anchor="middle"' if on_strip else f'x="{x + 6}" y="{y - 6}"'
    return f'<circle class="point" cx="{x}" cy="{y}" r="4"/><text {label}>{_e(name)}</text>'


def _scatter_axes(max_cost: float, primary: str) -> list[str]:
    bottom, right = SC_TOP + SC_PLOT_H, SC_W - 20
    parts = [
        f'<rect class="strip" x="{SC_STRIP_X}" y="{SC_TOP}" width="{SC_STRIP}" height="{SC_PLOT_H}"/>',
        f'<text x="{SC_STRIP_MID}" y="{bottom + 15}" text-anchor="middle">no price</text>',
        f'<line class="axis" x1="{SC_LEFT}" y1="{bottom}" x2="{right}" y2="{bottom}"/>',
        f'<line class="axis" x1="{SC_LEFT}" y1="{SC_TOP}" x2="{SC_LEFT}" y2="{bottom}"/>',
        f'<text x="{(SC_LEFT + right) / 2}" y="{bottom + 32}" text-anchor="middle">cost per 1k requests (USD)</text>',
        f'<text x="12" y="{SC_TOP + SC_PLOT_H / 2}" transform="rotate(-90 12 {SC_TOP + SC_PLOT_H / 2})" '
        f'text-anchor="middle">{_e(primary)}</text>',
    ]
    for tick in (0.0, 0.5, 1.0):
        y = round(bottom - tick * SC_PLOT_H, 2)
        parts.append(f'<text x="{SC_LEFT - 4}" y="{y + 4}" text-anchor="end">{tick:g}</text>')
    for frac in (0.0, 0.5, 1.0):
        x = round(SC_LEFT + frac * SC_PLOT_W, 2)
        label = _usd(frac * max_cost) if frac else "$0"
        parts.append(f'<text x="{x}" y="{bottom + 15}" text-anchor="middle">{label}</text>')
    return parts


def _scatter(report: EvaluationReport) -> str:
    """Cost per 1k requests against the primary metric: which candidate buys its quality cheapest."""
    primary = report.primary_metric
    scored = [(c, c.metrics[primary].mean) for c in report.candidates if primary in c.metrics]
    points = [(c, mean) for c, mean in scored if mean is not None]
    costs = [c.cost_per_1k_requests_usd for c, _ in points if c.cost_per_1k_requests_usd is not None]
    max_cost = max(costs, default=0.0) or 1.0  # all free or unpriced: any positive scale will do
    parts = _scatter_axes(max_cost, _metric_label(report, primary))
    for c, mean in points:
        y = round(SC_TOP + SC_PLOT_H - max(0.0, min(1.0, mean)) * SC_PLOT_H, 2)
        cost = c.cost_per_1k_requests_usd
        x = SC_STRIP_MID if cost is None else round(SC_LEFT + cost / max_cost * SC_PLOT_W, 2)
        parts.append(_scatter_point(x, y, c.name, cost is None))
    unscored = [c.name for c in report.candidates if all(c is not p for p, _ in points)]
    note = f"<p>Not shown (no {_e(primary)} score): {_e(', '.join(unscored))}.</p>" if unscored else ""
    height = SC_H + 10
    return (
        f'<figure><figcaption>Cost vs {_e(primary)}</figcaption><svg class="scatter" width="{SC_W}" '
        f'height="{height}" viewBox="0 0 {SC_W} {height}" role="img" aria-label="cost vs quality">'
        f"<title>Cost vs {_e(primary)}</title>{''.join(parts)}</svg>{note}</figure>"
    )


def _html_section(section: _Section) -> str:
    body = "".join(f"<p>{_e(p)}</p>" for p in section.paragraphs)
    body += "".join(_html_table(h, r) for h, r in section.tables)
    return f"<section><h2>{_e(section.title)}</h2>{body}</section>"


def render_html(report: EvaluationReport) -> str:
    """Render the report as one self-contained HTML page.

    The report as one self-contained HTML page (report.html): the Markdown's sections, a bar chart
    per metric with its intervals and a cost-vs-quality scatter, all inline: no script, no external
    asset. Every string from the report is HTML-escaped, in the SVG too.
    """
    decision, reason = _verdict_lines(report)
    colour = _COLOURS.get(decision, "#57606a")
    charts = "".join(_bar_chart(report, m) for m in report.metrics) + _scatter(report)
    sections = _sections(report)
    body = [
        "<h1>Evaluation report</h1>",
        f'<div class="verdict" style="--c: {colour}"><strong>{_e(decision)}</strong>: {_e(reason)}</div>',
        _html_section(sections[0]),
        f'<section><h2>Charts</h2><div class="charts">{charts}</div></section>',
        *(_html_section(s) for s in sections[1:]),
    ]
    return (
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>Evaluation report: {_e(decision)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )


# -- files ----------------------------------------------------------------------------------------------


def _write_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` atomically.

    Write through a temporary file in the same directory and rename it over `path`, so a reader
    (or a crash) never sees half a report.
    """
    # Not mkstemp: its 0600 mode would survive the rename; a report is as readable as any file the
    # user writes (0666 less the umask). O_EXCL on a random name still refuses to follow a planted file.
    temp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def write_report(report: EvaluationReport, directory: str | os.PathLike[str]) -> dict[str, Path]:
    """Write report.json, report.md and report.html into `directory`.

    The directory is created if missing; each file is written atomically.

    Args:
        report: the evaluation's report.
        directory: the folder to write into.

    Returns:
        The paths written, by kind: "json", "markdown", "html".
    """
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    documents = {
        "json": ("report.json", report.model_dump_json(indent=2)),
        "markdown": ("report.md", render_markdown(report)),
        "html": ("report.html", render_html(report)),
    }
    paths: dict[str, Path] = {}
    for kind, (name, text) in documents.items():
        paths[kind] = root / name
        _write_atomic(paths[kind], text)
    return paths
