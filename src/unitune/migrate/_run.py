"""Running a migration plan: create the replacement jobs (idempotently), wait, evaluate, decide.

Each replacement is created with an idempotency key derived from the source job's id, so running
the same migration again finds the jobs already made and continues (waits, evaluates) instead of
creating second ones. One job's failure is reported on that job; the others go on.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

from unitune.errors import ConfigurationError, UnituneError
from unitune.evaluate._verdict import MIN_EXAMPLES_TO_SHIP
from unitune.migrate._plan import JobPlan, MigrationPlan
from unitune.types import Job, JobStatus

if TYPE_CHECKING:
    from unitune.client._sync import FineTuneClient
    from unitune.evaluate import EvaluationReport

__all__ = ["DEFAULT_PARITY_MARGIN", "JobResult", "MigrationReport", "QualityRow", "decide", "run_migration"]

MigrationVerdict = Literal["parity", "better", "worse", "inconclusive", "not run", "planned"]

#: How far below the source the difference interval may reach and still read as parity: a loss of
#: at most 5 points on the primary metric is ruled out before calling the replacement as good.
DEFAULT_PARITY_MARGIN = 0.05

#: The fraction of the training file held out to evaluate on when no validation file is given.
HOLD_OUT = 0.2


@dataclass(frozen=True)
class _Settings:
    few_shot: int
    max_examples: int | None
    margin: float
    training_usd: float | None = None


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class QualityRow(_Frozen):
    """One evaluated model: its score on the primary metric with the interval, and its price."""

    name: str
    provider: str
    model: str
    mean: float | None
    low: float | None
    high: float | None
    answered: int
    failed: int
    cost_per_1k_requests_usd: float | None


class JobResult(_Frozen):
    """What happened to one source job: the replacement, its evaluation and the verdict."""

    plan: JobPlan
    target_job_id: str | None = None
    target_status: str | None = None
    fine_tuned_model: str | None = None
    continued: bool = Field(default=False, description="The job already existed (a rerun): none was created.")
    data_note: str = ""
    metric: str | None = None
    quality: list[QualityRow] = Field(default_factory=list)
    estimate: float | None = Field(default=None, description="new − source on the primary metric.")
    low: float | None = None
    high: float | None = None
    examples: int = 0
    verdict: MigrationVerdict
    reason: str
    cost_per_1k_before_usd: float | None = None
    cost_per_1k_after_usd: float | None = None
    training_usd: float | None = None
    report_dir: str | None = None


class MigrationReport(_Frozen):
    """Per source job: the plan, the replacement job, quality side by side, costs and the verdict."""

    source_provider: str
    target_provider: str
    dry_run: bool
    parity_margin: float
    notes: list[str] = Field(default_factory=list)
    jobs: list[JobResult]

    def __str__(self) -> str:
        from unitune.migrate._render import render

        return render(self)


def decide(
    estimate: float,
    low: float,
    high: float,
    p_value: float | None,
    *,
    margin: float,
    n: int = MIN_EXAMPLES_TO_SHIP,
    alpha: float = 0.05,
) -> tuple[MigrationVerdict, str]:
    """The verdict from the difference new − source on the primary metric and its interval.

    better: the interval is above zero (and the exact test, where there is one, agrees); worse: it
    is below zero (likewise); parity: it reaches no further below zero than `margin`; otherwise
    inconclusive: a loss larger than the margin is not ruled out, so evaluate on more examples.
    Under `MIN_EXAMPLES_TO_SHIP` paired examples it is inconclusive whatever the interval says, as
    the evaluation's own verdict is: a bootstrap on a handful of examples looks surer than it is.

    Args:
        estimate: the measured difference, new − source.
        low: the interval's lower end.
        high: the interval's upper end.
        p_value: the exact paired test's p-value, where there is one (pass/fail metrics); else None.
        margin: the parity margin: the largest loss that still counts as parity.
        n: the number of paired examples.
        alpha: the p-value under which the exact test agrees with the interval.

    Returns:
        The verdict ("better", "worse", "parity" or "inconclusive") and the reason, in words.
    """
    shown = f"{estimate:+.3f} [{low:+.3f}, {high:+.3f}]"
    if n < MIN_EXAMPLES_TO_SHIP:
        return "inconclusive", (
            f"{shown} on only {n} paired examples; at least {MIN_EXAMPLES_TO_SHIP} are needed: pass a larger "
            "--validation file"
        )
    settled = p_value is None or p_value < alpha
    if low > 0 and settled:
        return "better", f"the replacement beats the source by {shown}"
    if high < 0 and settled:
        return "worse", f"the replacement is worse than the source by {shown}"
    if low >= -margin:
        return "parity", f"{shown}: no loss larger than {margin:g} (the parity margin)"
    return "inconclusive", (
        f"{shown}: a loss of up to {-low:.3f} is not ruled out (margin {margin:g}); evaluate on more examples"
    )


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-.") or "job"


def _per_1k(client: FineTuneClient, model: str, prompt: float, completion: float) -> float | None:
    """Cost of 1,000 requests of a tuned `model` (its base id) at the catalog's tuned price."""
    catalog, name = client.catalog, client.provider_name
    entry = catalog.find(name, model) if name in catalog.providers else None
    price = entry.tuned_inference if entry is not None else None
    if price is None:
        return None
    return round((prompt * price.input_per_million + completion * price.output_per_million) / 1e6 * 1000, 6)


def _data(plan: JobPlan, workdir: Path) -> tuple[Path, Path, str]:
    """The training and evaluation files of a migration.

    The training and evaluation files: the given validation file, or a fifth held out (seeded,
    so a rerun holds out the same examples and its job's fingerprint matches the first run's).
    """
    assert plan.data.path is not None
    if plan.validation is not None:
        return Path(plan.data.path), Path(plan.validation), f"evaluated on {plan.validation}"
    from unitune.data import split

    result = split(plan.data.path, workdir, validation_fraction=HOLD_OUT, seed=0)
    if not result.train_examples or not result.validation_examples:
        raise ConfigurationError(
            f"{plan.data.path} has too few examples to hold some out for the evaluation.",
            fix="Pass a validation file (--validation FILE / validation=).",
        )
    note = (
        f"{result.validation_examples} of {result.train_examples + result.validation_examples} examples held "
        "out to evaluate on; the source trained on them, so the comparison favours the source"
    )
    return result.train_path, result.validation_path, note


def _existing(target: FineTuneClient, key: str) -> bool:
    """Whether the replacement was already created (a rerun)."""
    if target.ledger is not None and target.ledger.find_by_key(target.provider_name, key) is not None:
        return True
    try:
        return target.provider.find_job(key) is not None
    except UnituneError:
        return False  # create_job looks again, with retries, before creating


def _quality(
    report: EvaluationReport, source: FineTuneClient, target: FineTuneClient, plan: JobPlan
) -> list[QualityRow]:
    rows = []
    for c in report.candidates:
        score = c.metrics[report.primary_metric]
        cost = c.cost_per_1k_requests_usd
        if c.name == "source":
            cost = _per_1k(source, plan.source_model, c.mean_prompt_tokens, c.mean_completion_tokens)
        elif c.name == "new" and cost is None and plan.target_model is not None:
            cost = _per_1k(target, plan.target_model, c.mean_prompt_tokens, c.mean_completion_tokens)
        rows.append(QualityRow(
            name=c.name, provider=c.provider, model=c.model, mean=score.mean, low=score.low, high=score.high,
            answered=c.answered, failed=c.failed, cost_per_1k_requests_usd=cost,
        ))  # fmt: skip
    return rows


def _evaluate(
    plan: JobPlan,
    job: Job,
    files: tuple[Path, Path],
    clients: tuple[FineTuneClient, FineTuneClient],
    settings: _Settings,
    report_dir: Path | None,
) -> dict[str, object]:
    """Evaluate the new model against the source tuned model and the target's base few-shot."""
    from unitune.evaluate import Candidate

    source, target = clients
    train, valid = files
    assert job.fine_tuned_model is not None
    assert plan.source_tuned_model is not None
    assert plan.target_model is not None
    candidates = [
        Candidate(model=job.fine_tuned_model, provider=target.provider, name="new", role="tuned",
                  base_model=plan.target_model,
                  training_usd=settings.training_usd),
        Candidate(model=plan.source_tuned_model, provider=source.provider, name="source", role="baseline"),
    ]  # fmt: skip
    # Shots are never drawn from examples also in the evaluation set (evaluate refuses too few), so
    # a validation file that repeats training examples leaves fewer to draw from.
    held = set(_prompts(valid))
    shots = min(settings.few_shot, sum(1 for p in _prompts(train, unique=False) if p not in held))
    if shots:
        candidates.append(Candidate(model=plan.target_model, provider=target.provider, role="baseline",
                                    name=f"{target.provider_name}-base+{shots}-shot", few_shot=shots))  # fmt: skip
    report = target.evaluate(
        valid, candidates=candidates, train_data=train, output_dir=report_dir,
        max_examples=settings.max_examples,
    )  # fmt: skip
    quality = _quality(report, source, target, plan)
    try:
        d = report.difference(report.primary_metric, "new", "source")
    except KeyError:
        return {"metric": report.primary_metric, "quality": quality, "verdict": "inconclusive",
                "reason": f"no example was scored on {report.primary_metric} for both models",
                "examples": report.examples}  # fmt: skip
    verdict, reason = decide(
        d.estimate, d.low, d.high, d.p_value, margin=settings.margin, n=d.n, alpha=1 - report.confidence
    )
    return {
        "metric": report.primary_metric, "quality": quality, "estimate": d.estimate, "low": d.low,
        "high": d.high, "examples": report.examples, "verdict": verdict, "reason": f"{reason} on {report.primary_metric} (n={d.n})",
        "cost_per_1k_before_usd": next((q.cost_per_1k_requests_usd for q in quality if q.name == "source"), None),
        "cost_per_1k_after_usd": next((q.cost_per_1k_requests_usd for q in quality if q.name == "new"), None),
    }  # fmt: skip


def _prompts(path: Path, *, unique: bool = True) -> list[str]:
    """Each example's prompt (its messages but the last, system ones left out) as a comparable key."""
    keys: list[str] = []
    with path.open(encoding="utf-8") as f:
        for line in f:
            try:
                messages = json.loads(line).get("messages") or []
            except (ValueError, AttributeError):
                continue  # unreadable lines are skipped by the evaluation as well
            turns = [(m.get("role"), " ".join(str(m.get("content")).split())) for m in messages[:-1]
                     if isinstance(m, dict) and m.get("role") != "system"]  # fmt: skip
            keys.append(json.dumps(turns))
    return list(dict.fromkeys(keys)) if unique else keys


def _training_usd(target: FineTuneClient, plan: JobPlan, train: Path, valid: Path) -> float | None:
    try:
        quote = target.estimate(train, model=plan.target_model, hyperparameters=plan.hyperparameters,
                                validation_data=valid, method=plan.method)  # fmt: skip
    except UnituneError:
        return plan.quote.total_usd if plan.quote is not None else None
    return quote.total_usd


def _run_job(
    plan: JobPlan,
    clients: tuple[FineTuneClient, FineTuneClient],
    *,
    wait: bool,
    evaluate: bool,
    job_dir: Path | None,
    settings: _Settings,
) -> JobResult:
    if not plan.ready:
        return JobResult(plan=plan, verdict="not run", reason="; ".join(plan.problems))
    target = clients[1]
    with tempfile.TemporaryDirectory(prefix="unitune-migrate-") as tmp:
        try:
            train, valid, data_note = _data(plan, (job_dir / "data") if job_dir else Path(tmp))
            continued = _existing(target, plan.idempotency_key)
            job = target.create_job(
                model=plan.target_model, training_data=train, validation_data=valid,
                hyperparameters=plan.hyperparameters, method=plan.method, suffix=plan.suffix,
                idempotency_key=plan.idempotency_key,
            )  # fmt: skip
            if wait:
                job = target.wait(job)
        except UnituneError as e:
            return JobResult(plan=plan, verdict="not run", reason=f"the replacement job did not finish: {e}")
        training_usd = _training_usd(target, plan, train, valid)
        done = {"plan": plan, "target_job_id": job.id, "target_status": job.status.value,
                "fine_tuned_model": job.fine_tuned_model, "continued": continued, "data_note": data_note,
                "training_usd": training_usd,
                "report_dir": str(job_dir / "evaluation") if job_dir else None}  # fmt: skip
        if job.status is not JobStatus.SUCCEEDED:
            return JobResult(**done, verdict="not run", reason=f"the replacement job is {job.status.value}")
        if not evaluate:
            return JobResult(**done, verdict="not run", reason="not evaluated (evaluate=False)")
        try:
            measured = _evaluate(plan, job, (train, valid), clients, replace(settings, training_usd=training_usd),
                                 (job_dir / "evaluation") if job_dir else None)  # fmt: skip
        except UnituneError as e:
            return JobResult(**done, verdict="not run", reason=f"the evaluation failed: {e}")
        return JobResult.model_validate({**done, **measured})


def run_migration(
    plan: MigrationPlan,
    *,
    wait: bool = True,
    evaluate: bool = True,
    output_dir: str | os.PathLike[str] | None = None,
    parity_margin: float = DEFAULT_PARITY_MARGIN,
    few_shot: int = 5,
    max_examples: int | None = None,
) -> MigrationReport:
    """Create each planned job on the target, wait for it, evaluate it, and report.

    Every replacement is created with the idempotency key derived from its source job id, so a
    rerun continues (finds the job already made) and creates nothing new. Each new model is
    evaluated with `client.evaluate` on the job's validation file (or a fifth held out of its
    training file) against the source tuned model and the target's base model with `few_shot`
    examples; the verdict (parity, better, worse, inconclusive) comes from the interval of the
    difference new − source on the primary metric (see `decide`).

    Args:
        plan: what `plan_migration` made.
        wait: wait for each new job to end; without it, a job still running is reported as not run.
        evaluate: evaluate each new model against the source one.
        output_dir: where each job's data split and evaluation are kept (under
            `<output_dir>/<source job id>/`) and the report is written as migration.json and
            migration.md.
        parity_margin: how far below the source the difference interval may reach and still read as
            parity.
        few_shot: how many examples the target's base model is prompted with.
        max_examples: evaluate on at most this many examples per job.

    Returns:
        Each job's result: the new job, its cost, the evaluation and the verdict.

    Raises:
        ConfigurationError: `plan` is not a `MigrationPlan`, or another argument is bad.
    """
    if not isinstance(plan, MigrationPlan):
        raise ConfigurationError(
            f"run_migration takes a MigrationPlan, not a {type(plan).__name__}.",
            fix="Make one with plan_migration(source, target, ...).",
        )
    if (
        isinstance(parity_margin, bool)
        or not isinstance(parity_margin, (int, float))
        or not 0 <= parity_margin < 1
    ):
        raise ConfigurationError(
            f"parity_margin must be a fraction from 0 to 1, not {parity_margin!r}.", fix="Pass e.g. 0.05."
        )
    if isinstance(few_shot, bool) or not isinstance(few_shot, int) or few_shot < 0:
        raise ConfigurationError(f"few_shot must be a whole number (0 or more), not {few_shot!r}.")
    clients = plan.clients()
    out = Path(output_dir) if output_dir is not None else None
    settings = _Settings(few_shot=few_shot, max_examples=max_examples, margin=float(parity_margin))
    results = [
        _run_job(p, clients, wait=wait, evaluate=evaluate, settings=settings,
                 job_dir=(out / _slug(p.source_job_id)) if out is not None else None)
        for p in plan.jobs
    ]  # fmt: skip
    report = MigrationReport(
        source_provider=plan.source_provider, target_provider=plan.target_provider, dry_run=False,
        parity_margin=float(parity_margin), notes=plan.notes, jobs=results,
    )  # fmt: skip
    if out is not None:
        write_report(report, out)
    return report


def dry_run_report(plan: MigrationPlan, *, parity_margin: float = DEFAULT_PARITY_MARGIN) -> MigrationReport:
    """The plan as a report, every job `planned` (what `--dry-run` prints).

    Args:
        plan: the migration plan; its jobs that are not ready are `not run`, with their problems.
        parity_margin: the parity margin the report states.
    """
    jobs = [
        JobResult(plan=p, verdict="planned" if p.ready else "not run",
                  reason="dry run: nothing created" if p.ready else "; ".join(p.problems),
                  training_usd=p.quote.total_usd if p.quote else None)
        for p in plan.jobs
    ]  # fmt: skip
    return MigrationReport(source_provider=plan.source_provider, target_provider=plan.target_provider,
                           dry_run=True, parity_margin=parity_margin, notes=plan.notes, jobs=jobs)  # fmt: skip


def write_report(report: MigrationReport, directory: Path) -> None:
    """migration.json and migration.md in `directory` (created if missing).

    Args:
        report: the migration's report.
        directory: the folder to write into.

    Raises:
        ConfigurationError: the folder or a file cannot be written.
    """
    from unitune.migrate._render import render

    try:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "migration.json").write_text(report.model_dump_json(indent=2), encoding="utf-8")
        (directory / "migration.md").write_text(render(report, markdown=True), encoding="utf-8")
    except OSError as e:
        raise ConfigurationError(
            f"Cannot write the migration report to {str(directory)!r}: {e.strerror or e}.",
            fix="Pass a writable directory (-o DIR / output_dir=).",
        ) from None
