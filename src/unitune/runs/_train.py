"""`client.train(job)`: one fine-tune as a run — validate, quote, create, wait, plot, evaluate, record.

A run's job is created with an idempotency key made of the spec and the data's fingerprint, so
running the same job file again on the same data reattaches to the job already made (after Ctrl-C,
a crash, a closed laptop) instead of paying for a second one. Every step is written to the ledger's
`runs` table as it happens, so `unitune runs` shows a run that is still training.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from unitune._log import get_logger
from unitune.errors import BudgetExceeded, ConfigurationError, JobFailedError, UnituneError, ValidationFailed
from unitune.ledger import Ledger, RunRecord, RunStatus, sha256_file
from unitune.runs._jobfile import JobFile
from unitune.runs._lineage import DataChange
from unitune.types import Job, JobStatus, StepMetric, WandbIntegration, utcnow

if TYPE_CHECKING:
    from rich.console import Console

    from unitune.catalog import Quote
    from unitune.client import FineTuneClient
    from unitune.evaluate import EvaluationReport
    from unitune.tracking import Tracker, TrackingSettings

__all__ = ["RunInterrupted", "RunResult", "Clients", "PreparedData", "run_job"]

log = get_logger("unitune")

Say = Callable[[str], None]


def _quiet(text: str) -> None:
    """Where a run's lines go without a console."""


class RunResult(BaseModel):
    """What a run did: its ledger record, the job, the quote, the loss curve, the evaluation."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    run: RunRecord
    job: Job | None = None
    quote: Any = Field(default=None, description="The `Quote` the run was checked against.")
    metrics: list[StepMetric] = Field(default_factory=list)
    evaluation: Any = Field(default=None, description="The `EvaluationReport`, when the run evaluated.")
    loss_png: str | None = None
    data_change: DataChange | None = None
    reattached: bool = Field(default=False, description="The job already existed: this run followed it.")

    @property
    def verdict(self) -> str | None:
        """The evaluation's verdict as one line, if the run was evaluated."""
        return self.run.verdict


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C while a run waited; the job is still running on the provider.

    The caller decides whether to cancel it (`client.cancel_job(e.job)`); the same job file
    reattaches to it.
    """

    def __init__(self, run: RunRecord, job: Job, client: FineTuneClient) -> None:
        super().__init__(f"run {run.run_id} interrupted while job {job.id} was {job.status.value}")
        self.run = run
        self.job = job
        self.client = client


class Clients:
    """One client per provider a run or sweep uses, sharing the first client's config and clock."""

    def __init__(self, client: FineTuneClient) -> None:
        self.first = client
        self._clients: dict[str, FineTuneClient] = {client.provider.name: client}
        self._owned: list[FineTuneClient] = []

    def get(self, provider: str | None) -> FineTuneClient:
        name = provider or self.first.provider.name
        found = self._clients.get(name)
        if found is None:
            from unitune.client import FineTuneClient

            found = FineTuneClient(name, config=self.first.config, clock=self.first.clock)
            self._clients[name] = found
            self._owned.append(found)
        return found

    def close(self) -> None:
        for client in self._owned:
            client.close()


class PreparedData(BaseModel):
    """The files a job trains and is evaluated on, and their fingerprints."""

    model_config = ConfigDict(frozen=True)

    training: Path
    validation: Path | None
    training_sha256: str
    validation_sha256: str | None
    data_sha256: str


def prepare_data(job: JobFile, home: Path) -> PreparedData:
    """The job's training and validation files.

    The job's files; with `validation_split`, the split is written once per (data, fraction, seed)
    under the unitune home, so a rerun trains on byte-identical files and reattaches.
    """
    import hashlib

    training, validation = job.data.training, job.data.validation
    training_sha = sha256_file(training)
    if job.data.validation_split is not None:
        from unitune.data import split

        folder = home / "runs" / "data" / f"{training_sha[:16]}-{job.data.validation_split:g}-{job.data.seed}"
        if not (folder / "train.jsonl").is_file() or not (folder / "validation.jsonl").is_file():
            parts = split(training, folder, validation_fraction=job.data.validation_split, seed=job.data.seed)
            if not parts.train_examples or not parts.validation_examples:
                raise ConfigurationError(
                    f"validation_split = {job.data.validation_split:g} leaves {parts.train_examples} training "
                    f"and {parts.validation_examples} validation example(s).",
                    fix="Change data.validation_split, or give data.validation.",
                )
        training, validation = folder / "train.jsonl", folder / "validation.jsonl"
        training_sha = sha256_file(training)
    validation_sha = sha256_file(validation) if validation is not None else None
    combined = hashlib.sha256(f"{training_sha}:{validation_sha or ''}".encode()).hexdigest()
    return PreparedData(
        training=training, validation=validation, training_sha256=training_sha,
        validation_sha256=validation_sha, data_sha256=combined,
    )  # fmt: skip


def check_run_args(console: object, poll_interval: object) -> None:
    """The arguments every run entry point shares, checked before anything is read or started."""
    if console is not None and not callable(getattr(console, "print", None)):
        raise ConfigurationError(
            f"console must be a rich Console or None, not a {type(console).__name__}.",
            fix="Pass console=rich.console.Console(), or leave it out for no output.",
        )
    if poll_interval is not None and (
        isinstance(poll_interval, bool)
        or not isinstance(poll_interval, (int, float))
        or not 0 < poll_interval < float("inf")
    ):
        raise ConfigurationError(
            f"poll_interval must be a positive number of seconds, not {poll_interval!r}."
        )


def live_key(ledger: Ledger, key: str) -> tuple[str, RunRecord | None]:
    """The key to create with, and the run it already belongs to.

    A run whose job failed or was cancelled is not followed again: its spec on its data gets a fresh
    attempt (`KEY-r2`, `-r3`…), or a vendor's transient failure could never be retried without changing
    the spec.
    """
    attempt, candidate = 1, key
    while True:
        existing = ledger.find_run_by_key(candidate)
        if existing is None or existing.status not in ("failed", "cancelled"):
            return candidate, existing
        attempt += 1
        candidate = f"{key}-r{attempt}"


def _runs_ledger(client: FineTuneClient) -> Ledger:
    """The ledger to record runs in.

    Runs are recorded even for an ephemeral provider's jobs (the fake): the run is the user's
    record of what was tried, in the same file as the jobs.
    """
    from unitune.config import ledger_path

    return client.ledger or Ledger(ledger_path(client.config))


def open_run_tracker(job: JobFile, client: FineTuneClient, say: Say) -> Tracker:
    """The run's tracker (`[tracking]` of the job file, else of unitune.toml).

    With `vendor = true` the vendor logs the job to W&B itself (`vendor_wandb`), so unitune logs nothing
    of its own.
    """
    from unitune.tracking import open_tracker

    settings: TrackingSettings | None = job.tracking if job.tracking is not None else client.config.tracking
    if settings is not None and settings.vendor:
        settings = None
    return open_tracker(settings, warn=lambda message: say(f"[yellow]warning:[/] {message}"))


def vendor_wandb(job: JobFile, client: FineTuneClient, name: str) -> WandbIntegration | None:
    """W&B logging through the vendor's own integration, when the tracking settings ask for it."""
    from unitune.tracking import vendor_wandb as from_settings

    return from_settings(job.tracking if job.tracking is not None else client.config.tracking, name=name)


def run_job(
    client: FineTuneClient,
    job: JobFile,
    *,
    console: Console | None = None,
    parent: RunRecord | None = None,
    parent_candidate: Any = None,
    data_change: DataChange | None = None,
    poll_interval: float | None = None,
) -> RunResult:
    """Run `job` on its provider (its own client when it names another than `client`'s).

    What `FineTuneClient.train` does, for a checked `JobFile`.

    Args:
        client: the client whose config (and, for its own provider, whose provider) the run uses.
        job: the checked job file.
        console: where progress is drawn.
        parent: the run this one was retrained from.
        parent_candidate: the parent's tuned model as an evaluation `Candidate`, compared with too.
        data_change: how the data changed from the parent's, recorded with the run.
        poll_interval: seconds between polls while waiting.

    Returns:
        The run: its ledger record, the job, the quote, the loss curve and the evaluation.

    Raises:
        BudgetExceeded: the quote is over the file's `budget_usd`; nothing is uploaded.
        RunInterrupted: Ctrl-C while waiting; it carries the job, which keeps running.
    """
    check_run_args(console, poll_interval)
    say: Say = console.print if console is not None else _quiet
    clients = Clients(client)
    interrupted = False
    try:
        return _Run(clients.get(job.provider), job, say, console, parent, poll_interval).go(
            parent_candidate, data_change
        )
    except RunInterrupted:
        interrupted = True  # the caller may cancel the job through e.client: leave it open
        raise
    finally:
        if not interrupted:
            clients.close()


class _Run:
    """The steps of one run, each recorded in the ledger as it happens."""

    def __init__(
        self,
        client: FineTuneClient,
        job: JobFile,
        say: Say,
        console: Console | None,
        parent: RunRecord | None,
        poll_interval: float | None,
    ) -> None:
        from unitune.config import home_dir

        self.client, self.spec, self.say, self.console = client, job, say, console
        self.parent = parent
        self.poll_interval = poll_interval
        self.ledger = _runs_ledger(client)
        self.home = home_dir(client.config)
        defaults = client.config.job_defaults(client.provider.name)
        model = job.model or defaults.model
        if model is None:
            raise ConfigurationError(
                f"The job names no model for {client.provider.name!r}.",
                fix="Set model in the job file, pass --model, or set model under [providers.NAME] in unitune.toml.",
            )
        self.model = client.resolve_model(model)
        self.wandb = vendor_wandb(job, client, job.name or "unitune")

    def go(self, parent_candidate: Any, data_change: DataChange | None) -> RunResult:
        client, spec, say = self.client, self.spec, self.say
        # The vendor's own refusals first: a retired provider or model, an option it cannot take
        # (the checks `create_job` makes before any upload, made before the run is even recorded).
        client.catalog.check_can_train(client.provider.name, self.model, today=client.clock.now().date())
        client._check_supported(spec.method, spec.hyperparameters)
        client._draft_spec(self.model, spec.hyperparameters, spec.method, spec.suffix, {},
                           spec.data.validation is not None or spec.data.validation_split is not None, self.wandb)  # fmt: skip
        data = prepare_data(spec, self.home)
        key = spec.training_key(data.data_sha256, client.provider.name, self.model)
        if self.parent is not None:
            key = f"{key}-child-of-{self.parent.run_id}"  # a retrain is a new job even on the same data
        key, existing = live_key(self.ledger, key)
        run = self._record(existing, key, data)
        say(f"[bold]run {run.run_id}[/] {spec.name or ''} on [cyan]{client.provider.name}[/] · {self.model}")
        report = client.validate(data.training, model=self.model, validation_data=data.validation,
                                 method=spec.method)  # fmt: skip
        say(f"1. data: {data.training.name}: {report.summary()}")
        if not report.ok:
            raise ValidationFailed(
                f"The dataset fails {client.provider.name}'s checks; nothing was started. {report.summary()}. "
                f"First: {report.errors[0]}. See every problem with `unitune validate {data.training}`.",
                report=report,
            )
        quote = client.estimate(data.training, model=self.model, hyperparameters=spec.hyperparameters,
                                validation_data=data.validation, method=spec.method)  # fmt: skip
        say(f"2. quote: {quote.summary()}")
        check_budget(quote.total_usd, spec.budget_usd, quote, what=f"{self.model} on {client.provider.name}")
        run = self._save(run, quote_usd=quote.total_usd)
        tracker = open_run_tracker(spec, client, say)
        tracker.start(run.name, params=_params(spec, client.provider.name, self.model, data),
                      tags={"unitune.run_id": run.run_id, "unitune.parent": run.parent_id or ""})  # fmt: skip
        try:
            result = self._train_and_evaluate(run, data, quote, tracker, parent_candidate, data_change)
        except RunInterrupted:
            tracker.finish("killed")
            raise
        except BaseException:
            tracker.finish("failed")
            raise
        tracker.finish("finished" if result.run.status == "succeeded" else "failed")
        return result

    def _record(self, existing: RunRecord | None, key: str, data: PreparedData) -> RunRecord:
        if existing is not None:
            return existing
        now = utcnow()
        return self.ledger.save_run(RunRecord(
            run_id=uuid.uuid4().hex[:12], key=key, name=self.spec.name or "run", parent_id=self.parent.run_id if self.parent else None,
            provider=self.client.provider.name, model=self.model, status="started",
            spec_json=self.spec.model_copy(update={"provider": self.client.provider.name, "model": self.model}).spec_json(),
            spec_hash=key.removeprefix("unitune-run-")[:24], data_sha256=data.data_sha256,
            training_path=str(data.training), training_sha256=data.training_sha256,
            validation_path=str(data.validation) if data.validation else None, validation_sha256=data.validation_sha256,
            created_at=now, updated_at=now,
        ))  # fmt: skip

    def _save(self, run: RunRecord, **changes: Any) -> RunRecord:
        return self.ledger.save_run(run.model_copy(update=changes))

    def _train_and_evaluate(
        self,
        run: RunRecord,
        data: PreparedData,
        quote: Quote,
        tracker: Tracker,
        parent_candidate: Any,
        data_change: DataChange | None,
    ) -> RunResult:
        client, spec, say = self.client, self.spec, self.say
        run_dir = self.home / "runs" / run.run_id
        run_dir.mkdir(parents=True, exist_ok=True)
        reattached = run.job_id is not None
        try:
            job = client.create_job(
                model=self.model, training_data=data.training, validation_data=data.validation,
                hyperparameters=spec.hyperparameters, method=spec.method, suffix=spec.suffix,
                idempotency_key=run.key, max_cost_usd=spec.budget_usd, wandb=self.wandb,
            )  # fmt: skip
        except UnituneError as e:
            self._save(run, status="failed", error=str(e))
            raise
        run = self._save(
            run, status="training", job_id=job.id, run_dir=str(run_dir), tracking=tracker.location
        )
        say(
            f"3. job {job.id} ({job.status.value})"
            + (" — the same spec on the same data: following the job already made" if reattached else "")
        )
        follower = MetricFollower(client, tracker)
        try:
            job = self._wait(job, follower)
        except KeyboardInterrupt:
            current = _safe_get(client, job)
            run = self._save(run, status="interrupted")
            raise RunInterrupted(run, current, client) from None
        except JobFailedError as e:
            status: RunStatus = "cancelled" if e.job.status is JobStatus.CANCELLED else "failed"
            self._save(run, status=status, error=str(e))
            raise
        follower.poll(job)
        metrics = follower.metrics
        from unitune._plot import loss_png

        png = loss_png(
            metrics, run_dir / "loss.png", title=f"{run.name}: {self.model} on {client.provider.name}"
        )
        if png is not None:
            tracker.log_artifact(png)
        say(
            f"4. trained: {job.fine_tuned_model}; {_loss_line(metrics)}"
            + (f"; loss curve {png}" if png else "")
        )
        run = self._save(run, status="evaluating", fine_tuned_model=job.fine_tuned_model)
        try:
            evaluation = self._evaluate(job, data, quote, run_dir, parent_candidate)
        except UnituneError as e:
            # The job succeeded, so the run is not `failed`: running the same file again follows
            # the job and evaluates again (answers already saved are not asked twice).
            self._save(run, error=f"evaluation failed: {e}")
            raise
        if evaluation is not None:
            run = self._save(run, **scores(evaluation))
            tracker.log_values(_tracked_values(evaluation))
            for name in ("report.html", "report.json"):
                if (run_dir / "evaluation" / name).is_file():
                    tracker.log_artifact(run_dir / "evaluation" / name)
        run = self._save(run, status="succeeded")
        return RunResult(run=run, job=job, quote=quote, metrics=metrics, evaluation=evaluation,
                         loss_png=str(png) if png else None, data_change=data_change, reattached=reattached)  # fmt: skip

    def _wait(self, job: Job, follower: MetricFollower) -> Job:
        if self.console is not None:
            from unitune._progress import wait_with_progress

            return wait_with_progress(self.client, job.id, console=self.console, poll_interval=self.poll_interval,
                                      on_update=follower.poll)  # fmt: skip
        return self.client.wait(job, poll_interval=self.poll_interval, on_update=follower.poll)

    def _evaluate(
        self, job: Job, data: PreparedData, quote: Quote, run_dir: Path, parent_candidate: Any
    ) -> EvaluationReport | None:
        section = self.spec.evaluate
        if not section.enabled:
            return None
        if data.validation is None:
            self.say(
                "5. evaluation skipped: the job file gives no validation data (data.validation or data.validation_split)"
            )
            return None
        from unitune.evaluate import Candidate

        tuned = Candidate.from_job(job, name="tuned", training_usd=quote.total_usd)
        candidates: list[Any] = [
            *section.candidates,
            *([parent_candidate] if parent_candidate is not None else []),
            tuned,
        ]
        self.say(
            f"5. evaluating {', '.join(c if isinstance(c, str) else c.label for c in candidates)} on {data.validation.name}…"
        )
        report = self.client.evaluate(
            data.validation, candidates=candidates, train_data=data.training, metrics=section.metrics,
            primary_metric=section.primary_metric, judge=section.judge, max_examples=section.max_examples,
            chat_params=section.chat_params, output_dir=run_dir / "evaluation",
        )  # fmt: skip
        self.say(str(report))
        return report


def check_budget(
    total: float | None, budget: float | None, quote: Any, *, what: str, subject: str = "This job"
) -> None:
    """Refuse, before anything starts, a quote above the job file's `budget_usd`."""
    if budget is None:
        return
    if total is None:
        raise ConfigurationError(
            f"budget_usd = {budget:g} cannot be enforced: the catalog has no training price for {what}.",
            fix="Add the price in a catalog file (config key `catalog`), or remove budget_usd.",
        )
    if total > budget:
        raise BudgetExceeded(
            cost_usd=total, max_cost_usd=budget, quote=quote, subject=subject, limit="budget_usd"
        )


def scores(report: EvaluationReport) -> dict[str, Any]:
    """What the ledger keeps of an evaluation: the tuned model's primary score and the verdict."""
    tuned = next((c for c in report.candidates if c.role == "tuned"), None)
    score = tuned.metrics.get(report.primary_metric) if tuned is not None else None
    return {
        "primary_metric": report.primary_metric,
        "score": score.mean if score is not None else None,
        "score_low": score.low if score is not None else None,
        "score_high": score.high if score is not None else None,
        "cost_per_1k_usd": tuned.cost_per_1k_requests_usd if tuned is not None else None,
        "decision": report.verdict.decision,
        "verdict": str(report.verdict),
    }


def _tracked_values(report: EvaluationReport) -> dict[str, float]:
    values: dict[str, float] = {}
    for c in report.candidates:
        for name, score in c.metrics.items():
            if score.mean is not None:
                values[f"eval/{c.slug}/{name}"] = score.mean
        if c.cost_per_1k_requests_usd is not None:
            values[f"eval/{c.slug}/cost_per_1k_usd"] = c.cost_per_1k_requests_usd
    return values


def _params(job: JobFile, provider: str, model: str, data: PreparedData) -> dict[str, object]:
    params: dict[str, object] = {"provider": provider, "model": model, "method": job.method,
                                 "data_sha256": data.data_sha256[:16], "training_file": data.training.name}  # fmt: skip
    params.update({f"hp.{k}": v for k, v in job.hyperparameters.set_fields().items()})
    params.update({f"hp.{k}": v for k, v in job.hyperparameters.provider_options.items()})
    if job.suffix:
        params["suffix"] = job.suffix
    return params


def _loss_line(metrics: list[StepMetric]) -> str:
    train = [m.train_loss for m in metrics if m.train_loss is not None]
    valid = [m.valid_loss for m in metrics if m.valid_loss is not None]
    if not train:
        return "no loss reported"
    text = f"train loss {train[0]:.3f} → {train[-1]:.3f}"
    return text + (f", validation loss {valid[-1]:.3f}" if valid else "")


def _safe_get(client: FineTuneClient, job: Job) -> Job:
    try:
        return client.get_job(job)
    except (UnituneError, KeyboardInterrupt):
        return job


class MetricFollower:
    """Per-step metrics as they arrive, each logged to the tracker once (a poll's callback)."""

    def __init__(self, client: FineTuneClient, tracker: Tracker) -> None:
        self.client = client
        self.tracker = tracker
        self.metrics: list[StepMetric] = []
        self._enabled = client.provider.capabilities.metrics

    def poll(self, job: Job) -> None:
        if not self._enabled:
            return
        try:
            metrics = self.client.metrics(job.id)
        except UnituneError as e:
            log.info("unitune: metrics of %s unavailable (%s); the run goes on", job.id, e)
            self._enabled = False  # a nicety: the wait goes on without it
            return
        seen = {m.step for m in self.metrics}
        new = [m for m in metrics if m.step not in seen]
        if new:
            self.tracker.log_metrics(new)
        self.metrics = sorted(metrics, key=lambda m: m.step)


def params_of(job: JobFile) -> Mapping[str, Any]:
    """The hyperparameters a job file sets (for tables)."""
    return job.hyperparameters.set_fields()
