"""The migration plan and report as text (the terminal) or Markdown (migration.md)."""

from __future__ import annotations

from unitune.migrate._plan import JobPlan, MigrationPlan
from unitune.migrate._run import JobResult, MigrationReport, dry_run_report

__all__ = ["render", "render_plan"]


def _usd(value: float | None) -> str:
    return "unknown" if value is None else f"${value:,.4f}" if value < 1 else f"${value:,.2f}"


def _score(mean: float | None, low: float | None, high: float | None) -> str:
    if mean is None:
        return "n/a"
    if low is None or high is None:
        return f"{mean:.3f}"
    return f"{mean:.3f} [{low:.3f}, {high:.3f}]"


def _hp(plan: JobPlan) -> str:
    fields = plan.hyperparameters.set_fields()
    return (
        ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in fields.items())
        or "defaults"
    )


def _plan_lines(plan: JobPlan, md: bool) -> list[str]:
    bullet = "- " if md else "  "
    code = "`" if md else ""
    source = plan.source_tuned_model or "(no tuned model)"
    lines = [
        f"{bullet}source: {code}{source}{code} from {code}{plan.source_model}{code} "
        f"({plan.method or 'unknown method'}, suffix {plan.suffix or 'none'}, status {plan.source_status})",
        f"{bullet}data: {plan.data.path or 'NONE'} ({plan.data.note})",
        f"{bullet}target model: {code}{plan.target_model or 'none'}{code} on {plan.target_provider}: {plan.target_model_reason}",
        f"{bullet}hyperparameters: {_hp(plan)}",
    ]
    lines += [f"{bullet}  {note}" for note in plan.mapping_notes]
    if plan.quote is not None:
        lines.append(f"{bullet}quote: {plan.quote.summary()}")
    elif plan.quote_note:
        lines.append(f"{bullet}quote: {plan.quote_note}")
    lines += [f"{bullet}PROBLEM: {p}" for p in plan.problems]
    return lines


def _result_lines(result: JobResult, md: bool) -> list[str]:
    bullet = "- " if md else "  "
    lines: list[str] = []
    if result.target_job_id:
        how = "continued (already created)" if result.continued else "created"
        lines.append(f"{bullet}replacement: job {result.target_job_id} {how}, {result.target_status}; "
                     f"model {result.fine_tuned_model or 'none yet'}")  # fmt: skip
    if result.data_note:
        lines.append(f"{bullet}evaluation data: {result.data_note}")
    if result.quality:
        lines.append("")
        if md:
            lines += [f"| model | provider | {result.metric} (95% interval) | cost / 1k requests | failed |",
                      "|---|---|---|---|---|"]  # fmt: skip
        for q in result.quality:
            score = _score(q.mean, q.low, q.high)
            cost = _usd(q.cost_per_1k_requests_usd)
            if md:
                lines.append(f"| {q.name} (`{q.model}`) | {q.provider} | {score} | {cost} | {q.failed} |")
            else:
                lines.append(
                    f"    {q.name:<24} {q.provider:<10} {result.metric} {score:<26} {cost:>12}/1k requests"
                )
        lines.append("")
    if not result.plan.problems and result.verdict != "planned":
        lines.append(f"{bullet}cost per 1,000 requests: {_usd(result.cost_per_1k_before_usd)} before, "
                     f"{_usd(result.cost_per_1k_after_usd)} after")  # fmt: skip
    lines.append(f"{bullet}training cost: {_usd(result.training_usd)}")
    verdict = f"**{result.verdict}**" if md else result.verdict.upper()
    lines.append(f"{bullet}verdict: {verdict}: {result.reason}")
    return lines


def render(report: MigrationReport, *, markdown: bool = False) -> str:
    """The report as text for a terminal, or as Markdown (`markdown=True`, as in migration.md).

    Args:
        report: the migration's report (or a dry run's).
        markdown: whether to write Markdown instead of plain text.
    """
    md = markdown
    kind = "Migration plan (dry run)" if report.dry_run else "Migration report"
    title = f"{kind}: {report.source_provider} → {report.target_provider}"
    out = [f"# {title}" if md else title, ""]
    if not report.dry_run:
        out.append(f"Verdict rule: new − source on the primary metric; parity when the interval reaches no "
                   f"further than {report.parity_margin:g} below zero.")  # fmt: skip
        out.append("")
    out += [("- " if md else "note: ") + n for n in report.notes]
    if report.notes:
        out.append("")
    if not report.jobs:
        out.append("No job to migrate.")
    for result in report.jobs:
        head = f"{result.plan.source_job_id}"
        out.append(f"## {head}" if md else head)
        out += _plan_lines(result.plan, md)
        out += _result_lines(result, md)
        out.append("")
    counts: dict[str, int] = {}
    for result in report.jobs:
        counts[result.verdict] = counts.get(result.verdict, 0) + 1
    if counts:
        out.append("Summary: " + ", ".join(f"{n} {v}" for v, n in sorted(counts.items())))
    return "\n".join(out).rstrip() + "\n"


def render_plan(plan: MigrationPlan, *, markdown: bool = False) -> str:
    """A plan as text or Markdown: what `--dry-run` prints.

    Args:
        plan: the migration plan.
        markdown: whether to write Markdown instead of plain text.
    """
    return render(dry_run_report(plan), markdown=markdown)
