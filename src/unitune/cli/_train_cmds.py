"""`unitune train`, `unitune retrain` and `unitune runs`: fine-tunes as runs (see `unitune.runs`).

A module of its own because `_app.py` is already long; the commands register on the same Typer app
and share its error reporting and output helpers.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from unitune.cli._app import (
    JsonOpt,
    ProviderOpt,
    _client,
    _err,
    _handles_errors,
    _not_empty,
    _OneLineUsageErrors,
    _out,
    _print_json,
    _table,
    app,
)
from unitune.errors import ConfigurationError

if TYPE_CHECKING:
    from unitune.ledger import Ledger, RunRecord
    from unitune.runs import RunResult, SweepResult

__all__ = ["retrain", "runs", "train"]

_TOML = (".toml",)


def _tracking_choice(value: str | None) -> str | None:
    if value is not None and value not in ("none", "mlflow", "wandb"):
        raise typer.BadParameter(f"{value!r} is not one of 'none', 'mlflow', 'wandb'")
    return value


@app.command()
@_handles_errors
def train(
    source: Annotated[
        Path,
        typer.Argument(
            help="A job file (.toml), or a training file (JSONL) with the job given as flags.",
            exists=True,
            dir_okay=False,
            readable=True,
        ),
    ],
    provider: ProviderOpt = None,
    model: Annotated[
        str | None, typer.Option(help="Base model id or portable alias.", callback=_not_empty)
    ] = None,
    method: Annotated[str | None, typer.Option(help="sft or dpo.")] = None,
    epochs: Annotated[int | None, typer.Option(help="Training epochs.", min=1, max=1000)] = None,
    learning_rate: Annotated[float | None, typer.Option(help="Absolute learning rate.", min=0)] = None,
    learning_rate_multiplier: Annotated[
        float | None, typer.Option(help="OpenAI-style multiplier.", min=0)
    ] = None,
    batch_size: Annotated[int | None, typer.Option(help="Batch size.", min=1)] = None,
    lora_rank: Annotated[int | None, typer.Option(help="LoRA rank.", min=1)] = None,
    suffix: Annotated[str | None, typer.Option(help="Suffix for the tuned model's name.")] = None,
    budget: Annotated[
        float | None,
        typer.Option("--budget", help="Refuse to start above this many dollars (a sweep: in all).", min=0),
    ] = None,
    validation: Annotated[
        Path | None,
        typer.Option(help="Held-out examples (JSONL).", exists=True, dir_okay=False, readable=True),
    ] = None,
    validation_split: Annotated[
        float | None, typer.Option(help="Hold out this fraction of the training file instead.", min=0, max=1)
    ] = None,
    name: Annotated[str | None, typer.Option(help="The run's name.", callback=_not_empty)] = None,
    candidate: Annotated[
        list[str] | None, typer.Option("--candidate", "-c", help="A baseline to evaluate against (repeat).")
    ] = None,
    metric: Annotated[list[str] | None, typer.Option("--metric", "-m", help="A metric (repeat).")] = None,
    max_examples: Annotated[
        int | None, typer.Option(help="Evaluate on at most this many examples.", min=1)
    ] = None,
    no_evaluate: Annotated[
        bool, typer.Option("--no-evaluate", help="Train only; skip the evaluation.")
    ] = False,
    tracking: Annotated[
        str | None, typer.Option(help="none, mlflow or wandb (over the job file).", callback=_tracking_choice)
    ] = None,
    tracking_uri: Annotated[
        str | None, typer.Option(help="MLflow tracking URI.", callback=_not_empty)
    ] = None,
    grid: Annotated[
        list[str] | None, typer.Option("--grid", help="Sweep a hyperparameter: KEY=V1,V2 (repeat).")
    ] = None,
    providers: Annotated[
        str | None, typer.Option(help="Sweep providers: a comma-separated list.", callback=_not_empty)
    ] = None,
    concurrency: Annotated[int, typer.Option(help="Jobs a sweep creates at once.", min=1, max=64)] = 4,
    poll_interval: Annotated[
        float | None, typer.Option(help="Seconds between polls at first.", min=0.01)
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Train a job file end to end and record the run, or sweep a grid.

    Validate, quote, train, wait, plot the loss, evaluate and record a run; with --grid or
    --providers, a sweep ranked in one table. Rerunning the same job on the same data follows the
    job already made instead of starting another.
    """
    overrides: dict[str, Any] = {
        "provider": provider, "model": model, "method": method, "suffix": suffix, "budget_usd": budget,
        "name": name, "hyperparameters.epochs": epochs, "hyperparameters.learning_rate": learning_rate,
        "hyperparameters.learning_rate_multiplier": learning_rate_multiplier,
        "hyperparameters.batch_size": batch_size, "hyperparameters.lora_rank": lora_rank,
        "data.validation": str(validation.resolve()) if validation else None,
        "data.validation_split": validation_split,
        "evaluate.candidates": candidate or None, "evaluate.metrics": metric or None,
        "evaluate.max_examples": max_examples, "evaluate.enabled": False if no_evaluate else None,
        "tracking.backend": tracking, "tracking.uri": tracking_uri,
    }  # fmt: skip
    from unitune.runs import load_job_file, parse_grid

    if source.suffix.lower() in _TOML:
        job = load_job_file(source, overrides)
    else:
        job = load_job_file(
            {"name": name or source.stem, "data": {"training": str(source.resolve())}}, overrides
        )
    console = None if as_json else _out()
    client = _client(job.provider)
    sweep_providers = [p.strip() for p in providers.split(",") if p.strip()] if providers else None
    if grid or sweep_providers:
        sweep_result = _sweep(
            client, job, parse_grid(grid or []), sweep_providers, concurrency, console, poll_interval
        )
        if as_json:
            _print_json(sweep_result)
        else:
            _show_leaderboard(sweep_result)
        return
    result = _train(client, job, console, poll_interval)
    if as_json:
        _print_json(_result_json(result))
    else:
        _say_verdict(result)


def _train(client: Any, job: Any, console: Any, poll_interval: float | None) -> RunResult:
    from unitune.runs import RunInterrupted

    try:
        result: RunResult = client.train(job, console=console, poll_interval=poll_interval)
        return result
    except RunInterrupted as e:
        _interrupted([(e.client, e.job)], f"run {e.run.run_id}")
        raise typer.Exit(130) from None


def _sweep(
    client: Any, job: Any, grid: dict[str, list[Any]], providers: list[str] | None, concurrency: int,
    console: Any, poll_interval: float | None,
) -> SweepResult:  # fmt: skip
    from unitune.runs import SweepInterrupted

    try:
        result: SweepResult = client.sweep(job, grid=grid, providers=providers, concurrency=concurrency,
                                           console=console, poll_interval=poll_interval)  # fmt: skip
        return result
    except SweepInterrupted as e:
        _interrupted(e.jobs, f"sweep {e.sweep_id}")
        raise typer.Exit(130) from None


def _interrupted(jobs: list[tuple[Any, Any]], what: str) -> None:
    """Ctrl-C: ask whether to cancel the remote jobs (only on a terminal); say how to reattach."""
    err = _err()
    running = [(c, j) for c, j in jobs if not j.status.is_terminal]
    err.print(f"interrupted: {what}; {len(running)} job(s) still running on the provider")
    cancel = False
    if running and sys.stdin is not None and sys.stdin.isatty():
        try:
            cancel = typer.confirm("Cancel the remote job(s)? (No leaves them running)", default=False)
        except (typer.Abort, KeyboardInterrupt, EOFError):
            cancel = False
    if cancel:
        for c, j in running:
            try:
                c.cancel_job(j)
                err.print(f"cancelled {escape(j.id)}")
            except Exception as e:  # one line per job; the others are still cancelled
                err.print(f"[red]could not cancel {escape(j.id)}:[/] {escape(str(e))}")
        return
    ids = ", ".join(j.id for _, j in running)
    err.print(
        f"left running: {escape(ids)}. Reattach by running the same command again (the same spec on the "
        "same data follows the same job), or watch one with `unitune wait JOB`."
    )


def _result_json(result: RunResult) -> dict[str, Any]:
    data: dict[str, Any] = result.model_dump(mode="json", exclude={"evaluation", "quote"})
    data["quote"] = result.quote.model_dump(mode="json") if result.quote is not None else None
    data["evaluation"] = result.evaluation.model_dump(mode="json") if result.evaluation is not None else None
    return data


def _say_verdict(result: RunResult) -> None:
    """The closing line (the report, with its verdict, and the data change were printed as they came)."""
    run = result.run
    decision = ""
    if run.decision:
        style = {"ship": "green", "abandon": "red"}.get(run.decision, "yellow")
        decision = f" · [bold {style}]{run.decision}[/]"
    _out().print(f"run {run.run_id}: {run.status}{decision}; see `unitune runs show {run.run_id}`")


def _cell(score: float | None, low: float | None, high: float | None) -> str:
    if score is None:
        return "—"
    return f"{score:.3f}" + (f" [{low:.2f}, {high:.2f}]" if low is not None and high is not None else "")


def _money(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"${value:,.{digits}f}"


def _show_leaderboard(result: SweepResult) -> None:
    metric = result.primary_metric or "score"
    table = _table("#", "name", "role", f"{metric} (95% CI)", "training", "$/1k req", "minutes", "run",
                   keep_whole=("name",))  # fmt: skip
    table.title = f"sweep {result.sweep_id}: best first"
    for rank, row in enumerate(result.leaderboard, start=1):
        table.add_row(
            str(rank), escape(row.name), row.role, _cell(row.score, row.low, row.high), _money(row.training_usd),
            _money(row.cost_per_1k_usd, 4), "—" if row.minutes is None else f"{row.minutes:.0f}",
            escape(row.run_id or "") + ("" if row.status == "succeeded" else f" ({row.status})"),
        )  # fmt: skip
    out = _out()
    out.print(table)
    total = "unknown" if result.total_quote_usd is None else f"${result.total_quote_usd:,.2f}"
    out.print(f"quoted in all: {total}; every run: `unitune runs --sweep {result.sweep_id}`")


@app.command()
@_handles_errors
def retrain(
    run: Annotated[
        str, typer.Argument(help="The parent run's id (or a unique prefix).", callback=_not_empty)
    ],
    data: Annotated[
        Path | None,
        typer.Option(help="New training data (JSONL).", exists=True, dir_okay=False, readable=True),
    ] = None,
    model: Annotated[str | None, typer.Option(help="A new base model.", callback=_not_empty)] = None,
    provider: ProviderOpt = None,
    poll_interval: Annotated[
        float | None, typer.Option(help="Seconds between polls at first.", min=0.01)
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Retrain a run with new data, a new base or on another provider.

    The new model is compared with its parent on the parent's validation data.
    """
    from unitune.runs import RunInterrupted

    client = _client(None)
    try:
        result = client.retrain(run, data=data, model=model, provider=provider,
                                console=None if as_json else _out(), poll_interval=poll_interval)  # fmt: skip
    except RunInterrupted as e:
        _interrupted([(e.client, e.job)], f"run {e.run.run_id}")
        raise typer.Exit(130) from None
    if as_json:
        _print_json(_result_json(result))
    else:
        _say_verdict(result)


def _ledger() -> Ledger:
    """The runs' ledger, from the config alone: listing runs builds no provider."""
    from unitune.config import ledger_path, load_config
    from unitune.ledger import Ledger

    return Ledger(ledger_path(load_config()))


runs_app = typer.Typer(
    help="Runs recorded by `unitune train`: list them, or `unitune runs show RUN`.",
    cls=_OneLineUsageErrors,
    no_args_is_help=False,
)
app.add_typer(runs_app, name="runs")


@runs_app.callback(invoke_without_command=True)
@_handles_errors
def runs(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Option(help="Only runs of this name.", callback=_not_empty)] = None,
    provider: ProviderOpt = None,
    status: Annotated[str | None, typer.Option(help="Only runs in this state (succeeded, failed…).")] = None,
    sweep: Annotated[
        str | None, typer.Option(help="Only the runs of this sweep.", callback=_not_empty)
    ] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.", min=1)] = 20,
    as_json: JsonOpt = False,
) -> None:
    """List runs, newest first (filter by name, provider, status or sweep)."""
    if ctx.invoked_subcommand is not None:
        return
    found = _ledger().list_runs(name=name, provider=provider, status=status, sweep_id=sweep, limit=limit)
    if as_json:
        _print_json(found)
        return
    if not found:
        _out().print("No runs yet: start one with `unitune train JOB.toml`.")
        return
    table = _table("run", "name", "provider", "model", "status", "score", "verdict", "parent", "created",
                   keep_whole=("run", "parent"))  # fmt: skip
    for r in found:
        table.add_row(
            r.run_id, escape(r.name), r.provider, escape(r.model), r.status,
            f"{r.primary_metric} {r.score:.3f}" if r.primary_metric and r.score is not None else "—",
            escape(r.decision or "—"), r.parent_id or "", f"{r.created_at:%m-%d %H:%M}",
        )  # fmt: skip
    _out().print(table)


@runs_app.command("show")
@_handles_errors
def show(
    run: Annotated[str, typer.Argument(help="The run's id (or a unique prefix).", callback=_not_empty)],
    as_json: JsonOpt = False,
) -> None:
    """One run: its spec, data, job, costs, scores and verdict."""
    record = _ledger().get_run(run)
    if record is None:
        raise ConfigurationError(f"No run {run!r} in the ledger.", fix="List the runs with `unitune runs`.")
    if as_json:
        _print_json(record)
        return
    _show_run(record)


def _show_run(r: RunRecord) -> None:
    import json

    out = _out()
    out.print(f"[bold]run {r.run_id}[/] {escape(r.name)} · {r.status}")
    rows = [
        ("provider / model", f"{r.provider} / {r.model}"),
        ("job", r.job_id or "—"),
        ("tuned model", r.fine_tuned_model or "—"),
        ("parent run", r.parent_id or "—"),
        ("sweep", r.sweep_id or "—"),
        ("training data", f"{r.training_path} (sha256 {(r.training_sha256 or '')[:12]})"),
        ("validation data", f"{r.validation_path} (sha256 {(r.validation_sha256 or '')[:12]})" if r.validation_path else "—"),
        ("quote", _money(r.quote_usd)),
        ("score", f"{r.primary_metric}: {_cell(r.score, r.score_low, r.score_high)}" if r.primary_metric else "—"),
        ("inference", f"{_money(r.cost_per_1k_usd, 4)} per 1,000 requests"),
        ("verdict", r.verdict or "—"),
        ("files", r.run_dir or "—"),
        ("tracking", r.tracking or "—"),
        ("error", r.error or "—"),
        ("created / updated", f"{r.created_at:%Y-%m-%d %H:%M:%S} / {r.updated_at:%Y-%m-%d %H:%M:%S}"),
    ]  # fmt: skip
    for label, value in rows:
        out.print(f"  {label:<18} {escape(str(value))}")
    out.print("  spec:")
    out.print(escape(json.dumps(json.loads(r.spec_json), indent=2)), highlight=False)
