"""`unitune export`: write a tuned model in another runtime's format.

`unitune export`: write a tuned model as a PEFT adapter, a merged model, a GGUF file or an Ollama
model folder (see `unitune.export`).

A module of its own because `_app.py` is already long; the command registers on the same Typer app
and shares its error reporting and output helpers.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, cast, get_args

import typer
from rich.markup import escape

from unitune._choices import ExportDtype, ExportFormat  # not unitune.export: --help would import it
from unitune.cli._app import (
    JsonOpt,
    ProviderOpt,
    _client,
    _handles_errors,
    _not_empty,
    _out,
    _print_json,
    app,
)

__all__ = ["export"]

_FORMATS: tuple[str, ...] = get_args(ExportFormat)
_DTYPES: tuple[str, ...] = get_args(ExportDtype)


def _one_of(choices: tuple[str, ...]) -> Callable[[str | None], str | None]:
    """An option callback: the value must be one of `choices` (else a usage error, exit 2)."""

    def check(value: str | None) -> str | None:
        if value is not None and value not in choices:
            raise typer.BadParameter(f"{value!r} is not one of {', '.join(repr(c) for c in choices)}")
        return value

    return check


@app.command()
@_handles_errors
def export(
    model: Annotated[
        str,
        typer.Argument(
            help="The model: local:<job-id> (or the job id), or a base model.", callback=_not_empty
        ),
    ],
    format: Annotated[
        str,
        typer.Option(
            "--format",
            "-f",
            help="peft (the adapter), merged (one model folder), gguf (llama.cpp) or "
            "ollama (GGUF + Modelfile).",
            callback=_one_of(_FORMATS),
        ),
    ],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="The folder to write (must not exist, or be empty).")
    ],
    force: Annotated[bool, typer.Option("--force", help="Replace the output folder if it exists.")] = False,
    dtype: Annotated[
        str | None,
        typer.Option(
            help="Weights' precision: f16 or f32 (default: f16 for gguf/ollama, the base's own for merged).",
            callback=_one_of(_DTYPES),
        ),
    ] = None,
    system: Annotated[
        str | None, typer.Option(help="The Modelfile's SYSTEM prompt (ollama; default: the training data's).")
    ] = None,
    provider: ProviderOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Export a tuned model for another runtime: PEFT, transformers, llama.cpp or Ollama."""
    with _client(provider) as client:
        result = client.export(
            model, format=cast(ExportFormat, format), path=output, overwrite=force,
            dtype=cast("ExportDtype | None", dtype), system=system,
        )  # fmt: skip
    if as_json:
        _print_json(result)
        return
    out = _out()
    precision = f" ({result.dtype})" if result.dtype else ""
    out.print(f"exported {escape(result.model)} as {result.format}{precision} to {escape(str(result.path))}")
    for path in result.files:
        out.print(f"  {escape(str(path))}", highlight=False)
    for note in result.notes:
        out.print(f"note: {escape(note)}", highlight=False)
    if result.format == "ollama":
        out.print(f"next: ollama create NAME -f {escape(str(result.path / 'Modelfile'))}", highlight=False)
