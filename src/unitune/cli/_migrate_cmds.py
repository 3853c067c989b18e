"""`unitune migrate`: move fine-tunes off a provider that closes, and prove the replacements are as good.

A module of its own because `_app.py` is already long; the command registers on the same Typer
app and shares its error reporting and output helpers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from unitune.cli._app import JsonOpt, _client, _handles_errors, _out, _print_json, _provider_name, app
from unitune.errors import ConfigurationError

__all__ = ["migrate"]


def _model_map(pairs: list[str] | None) -> dict[str, str]:
    """`--map SRC=DST` pairs as a mapping; a pair without both sides is a usage error."""
    mapping: dict[str, str] = {}
    for pair in pairs or []:
        src, sep, dst = pair.partition("=")
        if not sep or not src.strip() or not dst.strip():
            raise typer.BadParameter(
                f"{pair!r} is not SRC=DST; write e.g. --map gpt-4o-mini=llama-3.1-8b-instruct",
                param_hint="--map",
            )
        mapping[src.strip()] = dst.strip()
    return mapping


@app.command()
@_handles_errors
def migrate(
    source: Annotated[
        str,
        typer.Option(
            "--from", help="The provider the fine-tunes are on (e.g. openai).", callback=_provider_name
        ),
    ],
    target: Annotated[
        str,
        typer.Option(
            "--to",
            help="The provider to move them to: together, bedrock, vertex, local…",
            callback=_provider_name,
        ),
    ],
    job: Annotated[
        list[str] | None,
        typer.Option("--job", help="A source job id to move (repeat); default: every succeeded job."),
    ] = None,
    data: Annotated[
        Path | None,
        typer.Option(
            "--data",
            help="The training file (JSONL) the source jobs were trained on: OpenAI does not return it.",
            exists=True,
            dir_okay=False,
            readable=True,
        ),
    ] = None,
    validation: Annotated[
        Path | None,
        typer.Option(
            "--validation",
            help="Held-out examples to evaluate on (default: a fifth of --data held out).",
            exists=True,
            dir_okay=False,
            readable=True,
        ),
    ] = None,
    mapping: Annotated[
        list[str] | None,
        typer.Option(
            "--map",
            help="SRC=DST: the target model for a source model (repeat); over the catalog's proposal.",
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the plan with each job's quote; create nothing.")
    ] = False,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Directory for migration.md/.json, the data splits and evaluations.",
            file_okay=False,
        ),
    ] = None,
    no_evaluate: Annotated[
        bool, typer.Option("--no-evaluate", help="Create and wait, but do not evaluate.")
    ] = False,
    margin: Annotated[
        float,
        typer.Option(
            help="Parity margin: the largest loss on the primary metric still called parity.", min=0, max=0.99
        ),
    ] = 0.05,
    as_json: JsonOpt = False,
) -> None:
    """Move fine-tunes to another provider: plan (models, hyperparameters, quotes), create, wait, evaluate.

    A rerun continues where the last one stopped: each replacement job is created with a key
    derived from its source job's id.
    """
    from unitune.migrate import migrate as run

    if source == target:
        raise ConfigurationError(
            f"--from and --to are both {source!r}.", fix="Migrate to another provider, e.g. --to together."
        )
    model_map = _model_map(mapping)
    with _client(source) as source_client, _client(target) as target_client:
        report = run(
            source_client, target_client, jobs=job or None, data=data, validation=validation,
            model_map=model_map or None, dry_run=dry_run, evaluate=not no_evaluate, output_dir=output,
            parity_margin=margin,
        )  # fmt: skip
    if as_json:
        _print_json(report)
        return
    out = _out()
    out.print(escape(str(report)), highlight=False, end="")
    if output is not None:
        out.print(f"report: {escape(str(output / 'migration.md'))} (and migration.json)")
