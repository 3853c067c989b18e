"""`unitune monitor`: the report on the request log `unitune serve` writes.

The work is `unitune.serve._monitor.monitor`; this is its command line: options, the default log
path under unitune's home, and the plain-text or JSON output.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer

from unitune.cli._app import JsonOpt, _handles_errors, _out, _print_json, app

__all__ = ["default_log_path", "monitor"]


def _date(value: str | None) -> str | None:
    """A UTC date as YYYY-MM-DD (checked here, so a typo is a usage error, exit 2)."""
    if value is None:
        return None
    try:
        dt.date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)") from None
    return value


def _threshold(value: float) -> float:
    if not value > 0:
        raise typer.BadParameter(f"{value:g} is not above 0")
    return value


def default_log_path() -> Path:
    """Where `unitune serve` writes its request log: `<unitune home>/serve/requests.sqlite`."""
    from unitune.config import home_dir, load_config

    return home_dir(load_config()) / "serve" / "requests.sqlite"


@app.command()
@_handles_errors
def monitor(
    log: Annotated[
        Path | None,
        typer.Option(
            "--log", help="The request log (default: <unitune home>/serve/requests.sqlite).", dir_okay=False
        ),
    ] = None,
    training_data: Annotated[
        Path | None,
        typer.Option(
            "--training-data",
            help="The training JSONL: input drift is measured against its prompts.",
            exists=True,
            dir_okay=False,
            readable=True,
        ),
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="First UTC day to report (YYYY-MM-DD).", callback=_date)
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="Last UTC day to report (YYYY-MM-DD).", callback=_date)
    ] = None,
    model: Annotated[str | None, typer.Option("--model", help="Report this served model only.")] = None,
    psi_threshold: Annotated[
        float,
        typer.Option(
            "--psi-threshold",
            help="PSI at which a shift is significant (inputs: retrain).",
            callback=_threshold,
        ),
    ] = 0.2,
    baseline_days: Annotated[
        int,
        typer.Option(
            "--baseline-days", help="Output drift is measured against each model's first N days.", min=1
        ),
    ] = 1,
    as_json: JsonOpt = False,
) -> None:
    """Volume, latency, errors, cost and drift of the served models, per model and per day (and A/B arms)."""
    from unitune.cli._app import _catalog
    from unitune.serve._monitor import monitor as build_report

    report = build_report(
        log if log is not None else default_log_path(),
        training_data=training_data,
        since=dt.date.fromisoformat(since) if since else None,
        until=dt.date.fromisoformat(until) if until else None,
        model=model,
        psi_threshold=psi_threshold,
        baseline_days=baseline_days,
        catalog=_catalog(),
    )
    if as_json:
        _print_json(report)
        return
    # Plain text, not Rich markup: model ids and field names may hold brackets.
    _out().print(str(report), markup=False, highlight=False)
