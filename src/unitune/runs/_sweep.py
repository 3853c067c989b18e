"""Sweeps: one job file × a grid of hyperparameters × several providers, compared in one table.

Everything that can refuse does so before the first job starts: each combination's provider,
model, data rules and options are checked and quoted, and the sweep's total is held against the
job file's `budget_usd`. Then the jobs are created (a bounded pool, each with the idempotency key a
single `train` of that combination would use, so a rerun of the sweep resumes instead of paying
twice), waited on together (`_wait.wait_all`), evaluated once per base model, and ranked.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import uuid
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from unitune.errors import ConfigurationError, JobFailedError, UnituneError, ValidationFailed
from unitune.ledger import RunRecord
from unitune.runs._jobfile import JobFile
from unitune.runs._train import (
    Clients,
    PreparedData,
    Say,
    _quiet,
    _runs_ledger,
    check_budget,
    check_run_args,
    live_key,
    open_run_tracker,
    prepare_data,
    scores,
    vendor_wandb,
)
from unitune.runs._wait import wait_all
from unitune.tracking._base import NullTracker
from unitune.types import Hyperparameters, Job, StepMetric, utcnow

if TYPE_CHECKING:
    from rich.console import Console

    from unitune.catalog import Quote
    from unitune.client import FineTuneClient
    from unitune.evaluate import EvaluationReport

__all__ = ["GRID_KEYS", "LeaderboardRow", "SweepInterrupted", "SweepResult", "parse_grid", "run_sweep"]

#: What a grid may vary: the common hyperparameters, and the base model.
GRID_KEYS = (*tuple(k for k in Hyperparameters.model_fields if k != "provider_options"), "model")

_SHORT = {"learning_rate_multiplier": "lrm", "learning_rate": "lr", "batch_size": "bs", "epochs": "epochs"}


class LeaderboardRow(BaseModel):
    """One line of a sweep's table: a tuned combination or a baseline it was compared with."""

    model_config = ConfigDict(frozen=True)

    name: str
    role: str = Field(description="tuned or baseline")
    provider: str
    model: str
    params: dict[str, Any] = Field(default_factory=dict)
    run_id: str | None = None
    status: str = "succeeded"
    metric: str | None = None
    score: float | None = None
    low: float | None = None
    high: float | None = None
    training_usd: float | None = None
    cost_per_1k_usd: float | None = None
    minutes: float | None = Field(
        default=None, description="Queue and training time, from the job's timestamps."
    )
    note: str = ""


class SweepResult(BaseModel):
    """A sweep: its runs, the total it was quoted, and the leaderboard (best first)."""

    model_config = ConfigDict(frozen=True)

    sweep_id: str
    total_quote_usd: float | None
    runs: list[RunRecord]
    leaderboard: list[LeaderboardRow]
    primary_metric: str | None = None


class SweepInterrupted(KeyboardInterrupt):
    """Ctrl-C while a sweep waited: its jobs keep running; the same command resumes them."""

    def __init__(self, sweep_id: str, jobs: list[tuple[FineTuneClient, Job]]) -> None:
        super().__init__(f"sweep {sweep_id} interrupted with {len(jobs)} job(s) still running")
        self.sweep_id = sweep_id
        self.jobs = jobs


def parse_grid(items: Sequence[str]) -> dict[str, list[Any]]:
    """Parse `--grid` values into a grid.

    `["epochs=1,3", "learning_rate_multiplier=0.5,1"]` → `{"epochs": [1, 3], ...}` (numbers
    read as numbers).
    """
    grid: dict[str, list[Any]] = {}
    for item in items:
        key, sep, values = item.partition("=")
        key = key.strip()
        if not sep or not key or not values.strip():
            raise ConfigurationError(
                f"--grid {item!r} is not KEY=V1,V2.", fix="Write e.g. --grid epochs=1,3."
            )
        if key in grid:
            raise ConfigurationError(f"--grid sets {key} twice.", fix=f"Give {key}'s values once: {key}=A,B.")
        grid[key] = [_number(v.strip()) for v in values.split(",") if v.strip()]
    return grid


def _number(text: str) -> Any:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


@dataclass
class _Plan:
    """One combination, checked and quoted before anything starts."""

    label: str
    client: FineTuneClient
    spec: JobFile
    model: str
    params: dict[str, Any]
    key: str
    quote: Quote
    run: RunRecord | None = None
    job: Job | None = None
    outcome: Job | UnituneError | None = None
    metrics: list[StepMetric] = field(default_factory=list)

    @property
    def provider(self) -> str:
        return self.client.provider.name


def run_sweep(
    client: FineTuneClient,
    job: JobFile,
    *,
    grid: Mapping[str, Sequence[Any]] | None = None,
    providers: Sequence[str] | None = None,
    concurrency: int = 4,
    console: Console | None = None,
    poll_interval: float | None = None,
) -> SweepResult:
    """Train every combination of `grid` on every one of `providers`, then evaluate and rank them.

    What `FineTuneClient.sweep` does, for a checked `JobFile`.

    Args:
        client: the client whose config the runs use.
        job: the checked job file.
        grid: values to try per setting, e.g. `{"epochs": [1, 3]}` (keys: `GRID_KEYS`).
        providers: the providers to train each combination on (default: the job file's, else the
            client's).
        concurrency: how many jobs are created at once, at most.
        console: where progress is drawn.
        poll_interval: seconds between polls while waiting.

    Returns:
        The runs and a leaderboard, best first.

    Raises:
        ConfigurationError: a bad argument, or a `budget_usd` the catalog cannot price.
        BudgetExceeded: the total quote is over the file's `budget_usd`; no job is started.
    """
    from unitune.config import home_dir

    check_run_args(console, poll_interval)
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ConfigurationError(f"concurrency must be a whole number ≥ 1, not {concurrency!r}.")
    say: Say = console.print if console is not None else _quiet
    if grid is not None and (not isinstance(grid, Mapping) or not all(isinstance(k, str) for k in grid)):
        raise ConfigurationError(
            f"grid must map hyperparameter names to lists of values, not {grid!r}.",
            fix='Pass e.g. grid={"epochs": [1, 3]}.',
        )
    if providers is not None and (
        isinstance(providers, (str, bytes)) or not isinstance(providers, Sequence) or not providers
    ):
        raise ConfigurationError(
            f"providers must be a non-empty list of provider names, not {providers!r}.",
            fix='Pass e.g. providers=["together", "bedrock"].',
        )
    combos = _combinations(job, dict(grid or {}), list(providers or [job.provider or client.provider.name]))
    clients = Clients(client)
    interrupted = False
    try:
        data = prepare_data(job, home_dir(client.config))
        checked: dict[tuple[str, str, str], Any] = {}  # one validation per provider, model and method
        plans = [
            _plan(clients.get(provider), spec, params, data, checked) for provider, spec, params in combos
        ]
        sweep_id = hashlib.sha256(json.dumps([p.key for p in plans], sort_keys=True).encode()).hexdigest()[
            :12
        ]
        total = _show_quotes(plans, say)
        unpriced = [p.label for p in plans if p.quote.total_usd is None]
        check_budget(total, job.budget_usd, plans[0].quote if len(plans) == 1 else None,
                     what=", ".join(unpriced), subject=f"The sweep ({len(plans)} jobs)")  # fmt: skip
        if total is not None and job.budget_usd is not None:
            say(f"total ${total:,.2f} is within budget_usd = ${job.budget_usd:,.2f}")
        ledger = _runs_ledger(client)
        say(
            f"[bold]sweep {sweep_id}[/]: starting {len(plans)} job(s), {min(concurrency, len(plans))} at a time"
        )
        with ThreadPoolExecutor(max_workers=min(concurrency, len(plans))) as pool:
            list(pool.map(lambda p: _start(p, data, sweep_id, ledger), plans))
        running = [p for p in plans if p.job is not None]
        _wait(running, console, poll_interval, sweep_id, ledger)
        reports = _evaluate(
            job,
            [p for p in running if isinstance(p.outcome, Job)],
            data,
            home_dir(client.config) / "runs" / "sweeps" / sweep_id,
            say,
        )
        for plan in plans:
            _finish(plan, reports, ledger, job, say)
        rows = _leaderboard(plans, reports)
        runs = [p.run for p in plans if p.run is not None]
        metric = next(iter(reports.values())).primary_metric if reports else None
        return SweepResult(
            sweep_id=sweep_id, total_quote_usd=total, runs=runs, leaderboard=rows, primary_metric=metric
        )
    except SweepInterrupted:
        interrupted = True  # the caller may cancel the jobs through their clients: leave them open
        raise
    finally:
        if not interrupted:
            clients.close()


def _combinations(
    job: JobFile, grid: dict[str, Sequence[Any]], providers: list[str]
) -> list[tuple[str, JobFile, dict[str, Any]]]:
    for key, values in grid.items():
        if key not in GRID_KEYS:
            raise ConfigurationError(
                f"The grid varies {key!r}, which is not a hyperparameter.",
                fix=f"Vary one of: {', '.join(GRID_KEYS)}.",
            )
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values:
            raise ConfigurationError(f"The grid's {key} needs a list of values, not {values!r}.")
    if not providers or any(not isinstance(p, str) or not p for p in providers):
        raise ConfigurationError(f"providers must be a list of provider names, not {providers!r}.")
    if len(set(providers)) != len(providers):
        raise ConfigurationError("A provider is listed twice.", fix="List each provider once.")
    keys = list(grid)
    combos: list[tuple[str, JobFile, dict[str, Any]]] = []
    for provider in providers:
        for values in itertools.product(*(grid[k] for k in keys)):
            params = dict(zip(keys, values, strict=False))
            hp = {
                **job.hyperparameters.model_dump(exclude_none=True),
                **{k: v for k, v in params.items() if k != "model"},
            }
            try:
                hyperparameters = Hyperparameters.model_validate(hp)
            except ValidationError as e:
                err = e.errors()[0]
                name = ".".join(str(p) for p in err["loc"])
                raise ConfigurationError(
                    f"The grid's {name} = {err.get('input')!r} is not valid: {err['msg']}.",
                    fix=f"Change {name}'s values in --grid.",
                ) from None
            update: dict[str, Any] = {"provider": provider, "hyperparameters": hyperparameters}
            if "model" in params:
                update["model"] = str(params["model"])
            combos.append((provider, job.model_copy(update=update), params))
    if len(combos) > 200:
        raise ConfigurationError(
            f"The sweep has {len(combos)} combinations.", fix="Narrow the grid to 200 or fewer."
        )
    return combos


def _plan(
    client: FineTuneClient,
    spec: JobFile,
    params: dict[str, Any],
    data: PreparedData,
    checked: dict[tuple[str, str, str], Any],
) -> _Plan:
    """Check and quote one combination: everything `create_job` would refuse without a request."""
    name = client.provider.name
    defaults = client.config.job_defaults(name)
    model = spec.model or defaults.model
    if model is None:
        raise ConfigurationError(
            f"The sweep names no model for {name!r}.",
            fix=f"Set model in the job file or under [providers.{name}] in unitune.toml.",
        )
    model = client.resolve_model(model)
    client.catalog.check_can_train(name, model, today=client.clock.now().date())
    # The client's own pre-upload checks: method and options the provider cannot honour.
    client._check_supported(spec.method, spec.hyperparameters)
    wandb = vendor_wandb(spec, client, spec.name or "unitune")
    client._draft_spec(
        model, spec.hyperparameters, spec.method, spec.suffix, {}, data.validation is not None, wandb
    )
    report = checked.get((name, model, spec.method))
    if report is None:
        report = client.validate(
            data.training, model=model, validation_data=data.validation, method=spec.method
        )
        checked[(name, model, spec.method)] = report
    if not report.ok:
        raise ValidationFailed(
            f"The dataset fails {name}'s checks for {model}; nothing was started. {report.summary()}. "
            f"First: {report.errors[0]}. See every problem with `unitune validate {data.training} --provider {name}`.",
            report=report,
        )
    quote = client.estimate(data.training, model=model, hyperparameters=spec.hyperparameters,
                            validation_data=data.validation, method=spec.method)  # fmt: skip
    label = " ".join([name, *(f"{_SHORT.get(k, k)}={v}" for k, v in params.items())])
    return _Plan(label=label, client=client, spec=spec, model=model, params=params,
                 key=spec.training_key(data.data_sha256, name, model), quote=quote)  # fmt: skip


def _show_quotes(plans: list[_Plan], say: Any) -> float | None:
    total: float | None = 0.0
    for plan in plans:
        cost = plan.quote.total_usd
        say(f"  quote {plan.label}: " + (f"${cost:,.2f}" if cost is not None else "no price in the catalog"))
        total = None if total is None or cost is None else total + cost
    say(
        f"sweep: {len(plans)} combination(s), total " + (f"${total:,.2f}" if total is not None else "unknown")
    )
    return total


def _start(plan: _Plan, data: PreparedData, sweep_id: str, ledger: Any) -> None:
    plan.key, existing = live_key(ledger, plan.key)
    now = utcnow()
    run = existing or RunRecord(
        run_id=uuid.uuid4().hex[:12], key=plan.key, name=plan.spec.name or "sweep", sweep_id=sweep_id,
        provider=plan.provider, model=plan.model, status="started",
        spec_json=plan.spec.model_copy(update={"model": plan.model}).spec_json(),
        spec_hash=plan.key.removeprefix("unitune-run-")[:24], data_sha256=data.data_sha256,
        training_path=str(data.training), training_sha256=data.training_sha256,
        validation_path=str(data.validation) if data.validation else None,
        validation_sha256=data.validation_sha256, quote_usd=plan.quote.total_usd, created_at=now, updated_at=now,
    )  # fmt: skip
    plan.run = ledger.save_run(run.model_copy(update={"sweep_id": sweep_id}))
    try:
        plan.job = plan.client.create_job(
            model=plan.model, training_data=data.training, validation_data=data.validation,
            hyperparameters=plan.spec.hyperparameters, method=plan.spec.method, suffix=plan.spec.suffix,
            idempotency_key=plan.key, wandb=vendor_wandb(plan.spec, plan.client, plan.label),
        )  # fmt: skip
    except UnituneError as e:
        plan.outcome = e
        plan.run = ledger.save_run(plan.run.model_copy(update={"status": "failed", "error": str(e)}))
        return
    plan.run = ledger.save_run(plan.run.model_copy(update={"status": "training", "job_id": plan.job.id}))


def _wait(
    plans: list[_Plan], console: Console | None, poll_interval: float | None, sweep_id: str, ledger: Any
) -> None:
    if not plans:
        return
    entries = [(p.client, p.job) for p in plans if p.job is not None]
    progress = None
    if console is not None:
        from rich.progress import BarColumn, Progress, TextColumn

        progress = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[status]}"),
                            console=console)  # fmt: skip
        tasks = [progress.add_task(p.label, total=1.0, status="") for p in plans]
        progress.start()

    def update(i: int, job: Job) -> None:
        plans[i].job = job
        if progress is not None:
            done = 1.0 if job.status.is_terminal else (job.progress or 0.0)
            progress.update(tasks[i], completed=done, status=job.status.value)

    try:
        outcomes = wait_all(entries, poll_interval=poll_interval, on_update=update)
    except KeyboardInterrupt:
        for plan in plans:
            if plan.run is not None:
                plan.run = ledger.save_run(plan.run.model_copy(update={"status": "interrupted"}))
        raise SweepInterrupted(sweep_id, [(p.client, p.job) for p in plans if p.job is not None]) from None
    finally:
        if progress is not None:
            progress.stop()
    for plan, outcome in zip(plans, outcomes, strict=False):
        plan.outcome = outcome


def _evaluate(
    job: JobFile, done: list[_Plan], data: PreparedData, folder: Any, say: Any
) -> dict[tuple[str, str], EvaluationReport]:
    """One evaluation per base model (provider, model): its baselines once, all its tuned jobs."""
    if not job.evaluate.enabled or data.validation is None or not done:
        return {}
    from unitune.evaluate import Candidate

    groups: dict[tuple[str, str], list[_Plan]] = {}
    for plan in done:
        groups.setdefault((plan.provider, plan.model), []).append(plan)
    reports: dict[tuple[str, str], EvaluationReport] = {}
    section = job.evaluate
    for (provider, model), plans in groups.items():
        for plan in plans:
            assert isinstance(plan.outcome, Job)
            try:
                plan.metrics = (
                    plan.client.metrics(plan.outcome) if plan.client.provider.capabilities.metrics else []
                )
            except UnituneError:
                plan.metrics = []
        tuned = [Candidate.from_job(p.outcome, name=p.label, training_usd=p.quote.total_usd)  # type: ignore[arg-type]
                 for p in plans]  # fmt: skip
        say(
            f"evaluating {len(plans)} tuned model(s) of {model} on {provider} against {', '.join(section.candidates)}…"
        )
        slug = hashlib.sha256(f"{provider}:{model}".encode()).hexdigest()[:8]
        reports[(provider, model)] = plans[0].client.evaluate(
            data.validation, candidates=[*section.candidates, *tuned], train_data=data.training,
            metrics=section.metrics, primary_metric=section.primary_metric, judge=section.judge,
            max_examples=section.max_examples, chat_params=section.chat_params, output_dir=folder / f"{provider}-{slug}",
        )  # fmt: skip
    return reports


def _finish(
    plan: _Plan, reports: Mapping[tuple[str, str], EvaluationReport], ledger: Any, job: JobFile, say: Any
) -> None:
    if plan.run is None:
        return
    outcome = plan.outcome
    if isinstance(outcome, UnituneError):
        status = (
            "cancelled"
            if isinstance(outcome, JobFailedError) and outcome.job.status.value == "cancelled"
            else "failed"
        )
        plan.run = ledger.save_run(plan.run.model_copy(update={"status": status, "error": str(outcome)}))
        return
    if not isinstance(outcome, Job):
        return
    update: dict[str, Any] = {"status": "succeeded", "fine_tuned_model": outcome.fine_tuned_model}
    report = reports.get((plan.provider, plan.model))
    if report is not None:
        mine = _for_candidate(report, plan.label)
        update.update(mine)
    plan.run = ledger.save_run(plan.run.model_copy(update=update))
    _track(plan, job, report, say)


def _for_candidate(report: EvaluationReport, name: str) -> dict[str, Any]:
    """`scores()` for one tuned candidate of a report with several."""
    chosen = next((c for c in report.candidates if c.name == name), None)
    base = scores(report)
    if chosen is None:
        return base
    score = chosen.metrics.get(report.primary_metric)
    verdict = report.verdict
    return {
        **base,
        "score": score.mean if score else None, "score_low": score.low if score else None,
        "score_high": score.high if score else None, "cost_per_1k_usd": chosen.cost_per_1k_requests_usd,
        # The report's verdict is about its best tuned candidate; another is ranked, not judged.
        "decision": verdict.decision if verdict.candidate == name else None,
        "verdict": str(verdict) if verdict.candidate == name else f"ranked in sweep (best: {verdict.candidate})",
    }  # fmt: skip


def _track(plan: _Plan, job: JobFile, report: EvaluationReport | None, say: Any) -> None:
    """A sweep's runs are tracked when they end: parameters, the loss curve, the scores."""
    assert plan.run is not None
    tracker = open_run_tracker(job, plan.client, say)
    if isinstance(tracker, NullTracker):
        return
    tracker.start(plan.label, params={"provider": plan.provider, "model": plan.model, **plan.params},
                  tags={"unitune.run_id": plan.run.run_id, "unitune.sweep_id": plan.run.sweep_id or ""})  # fmt: skip
    tracker.log_metrics(plan.metrics)
    if plan.run.score is not None and plan.run.primary_metric:
        tracker.log_values({f"eval/{plan.run.primary_metric}": plan.run.score})
    tracker.finish("finished")


def _leaderboard(
    plans: list[_Plan], reports: Mapping[tuple[str, str], EvaluationReport]
) -> list[LeaderboardRow]:
    rows: list[LeaderboardRow] = []
    for plan in plans:
        run = plan.run
        outcome = plan.outcome
        minutes = None
        if isinstance(outcome, Job) and outcome.created_at and outcome.finished_at:
            minutes = (outcome.finished_at - outcome.created_at).total_seconds() / 60
        rows.append(LeaderboardRow(
            name=plan.label, role="tuned", provider=plan.provider, model=plan.model, params=plan.params,
            run_id=run.run_id if run else None, status=run.status if run else "failed",
            metric=run.primary_metric if run else None, score=run.score if run else None,
            low=run.score_low if run else None, high=run.score_high if run else None,
            training_usd=plan.quote.total_usd, cost_per_1k_usd=run.cost_per_1k_usd if run else None, minutes=minutes,
            note=str(outcome) if isinstance(outcome, UnituneError) else "",
        ))  # fmt: skip
    for (provider, _model), report in reports.items():
        for c in report.candidates:
            if c.role == "tuned":
                continue
            score = c.metrics.get(report.primary_metric)
            rows.append(LeaderboardRow(
                name=f"{provider}: {c.name}", role="baseline", provider=provider, model=c.model,
                metric=report.primary_metric, score=score.mean if score else None,
                low=score.low if score else None, high=score.high if score else None,
                cost_per_1k_usd=c.cost_per_1k_requests_usd,
            ))  # fmt: skip
    return sorted(rows, key=lambda r: (r.score is None, -(r.score or 0.0)))
