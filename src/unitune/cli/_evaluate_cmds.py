"""`unitune evaluate` and `unitune review`: compare candidates, then let a person rate the answers.

A module of its own because `_app.py` is already long; the commands register on the same Typer
app and share its error reporting and output helpers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from unitune.cli._app import (
    JsonOpt,
    ProviderOpt,
    _client,
    _err,
    _handles_errors,
    _in_file,
    _out,
    _print_json,
    app,
)

__all__ = ["evaluate", "review"]


def _progress(enabled: bool) -> Any:
    """A rich progress bar on stderr (none with --json, so stdout stays one JSON document)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(
        TextColumn("answers"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        console=_err(), transient=True, disable=not enabled,
    )  # fmt: skip


@app.command()
@_handles_errors
def evaluate(
    data: Annotated[
        Path, _in_file("The evaluation examples (JSONL); each one's last assistant message is the reference.")
    ],
    candidate: Annotated[
        list[str],
        typer.Option(
            "--candidate",
            "-c",
            help="A model to compare (repeat): base, base:few-shot=5, PROVIDER:MODEL, a job id, or NAME=SPEC.",
        ),
    ],
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Report directory (answers saved as they arrive; resumable).",
            file_okay=False,
        ),
    ] = None,
    train: Annotated[
        Path | None,
        typer.Option(
            "--train",
            help="Training split: where few-shot examples are drawn from.",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    judge: Annotated[
        str | None, typer.Option(help="An LLM judge, PROVIDER:MODEL: pairwise, both orders.")
    ] = None,
    metric: Annotated[
        list[str] | None,
        typer.Option("--metric", "-m", help="A metric (repeat); default: chosen from the data."),
    ] = None,
    primary: Annotated[str | None, typer.Option(help="The metric the verdict is decided on.")] = None,
    max_examples: Annotated[
        int | None, typer.Option(help="Evaluate at most this many examples.", min=1)
    ] = None,
    max_tokens: Annotated[int | None, typer.Option(help="Longest answer, in tokens.", min=1)] = None,
    temperature: Annotated[
        float | None, typer.Option(help="Sampling temperature (default: the provider's).", min=0)
    ] = None,
    concurrency: Annotated[
        int, typer.Option(help="Requests in flight to hosted providers.", min=1, max=256)
    ] = 8,
    batch_size: Annotated[int, typer.Option(help="Prompts per batch on the local trainer.", min=1)] = 8,
    seed: Annotated[int, typer.Option(help="Seed of the few-shot draw and the bootstrap.", min=0)] = 0,
    provider: ProviderOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Compare the base model (zero- and few-shot) with tuned models and decide: ship, abandon or inconclusive."""
    params: dict[str, Any] = {}
    if max_tokens is not None:
        params["max_tokens"] = max_tokens
    if temperature is not None:
        params["temperature"] = temperature
    with _client(provider) as client, _progress(not as_json) as bar:
        task = bar.add_task("answers", total=None)
        report = client.evaluate(
            data, candidates=candidate, train_data=train, judge=judge, metrics=metric or None,
            primary_metric=primary, max_examples=max_examples, concurrency=concurrency, batch_size=batch_size,
            chat_params=params, on_progress=lambda done, total: bar.update(task, completed=done, total=total),
            output_dir=output, seed=seed,
        )  # fmt: skip
    if as_json:
        _print_json(report)
        return
    out = _out()
    out.print(escape(str(report)), highlight=False)
    if output is not None:
        out.print(f"report: {escape(str(output / 'report.html'))} (and report.md, report.json)")
        out.print(f"rate the answers yourself: unitune review {escape(str(output))}")


@app.command()
@_handles_errors
def review(
    report_dir: Annotated[
        Path, typer.Argument(help="A report directory written by `unitune evaluate -o`.", file_okay=False)
    ],
    a: Annotated[
        str | None, typer.Option("--a", help="One candidate (default: the verdict's tuned model).")
    ] = None,
    b: Annotated[str | None, typer.Option("--b", help="The other (default: the verdict's baseline).")] = None,
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1 (0: any free port).", min=0, max=65535)] = 0,
    open_browser: Annotated[
        bool, typer.Option("--open/--no-open", help="Open the page in a browser.")
    ] = True,
) -> None:
    """Rate two candidates' answers side by side, anonymised, in a local page; ratings enter the report."""
    from unitune.evaluate._review import review_main

    review_main(report_dir, host="127.0.0.1", port=port, a=a, b=b, open_browser=open_browser, console=_out())
    _refresh(report_dir)


def _refresh(report_dir: Path) -> None:
    """Rewrite the report with the ratings just given, so report.md/html show the human win rate."""
    from unitune.evaluate._render import write_report
    from unitune.evaluate._report import EvaluationReport
    from unitune.evaluate._review import summarize_ratings

    path = report_dir / "report.json"
    report = EvaluationReport.model_validate_json(path.read_bytes())
    if report.verdict.candidate is None or report.verdict.baseline is None:
        return
    human = summarize_ratings(
        report_dir, report.verdict.candidate, report.verdict.baseline, confidence=report.confidence
    )
    if human.rated:
        write_report(report.model_copy(update={"human": human}), report_dir)
