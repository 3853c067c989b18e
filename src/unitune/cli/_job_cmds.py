"""The everyday commands: `unitune upload`, `create`, `metrics`, `files` and `clean`.

A module of its own because `_app.py` is already long; the commands register on the same Typer app
and share its options, error reporting and output helpers. Each is a thin wrapper over one client call
(or `unitune._clean`), so a script gets the same behaviour from Python.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, cast

import typer
from rich.markup import escape

from unitune.cli._app import (
    JobIdArg,
    JsonOpt,
    ProviderOpt,
    _client,
    _client_for_job,
    _handles_errors,
    _in_file,
    _method,
    _not_empty,
    _out,
    _output_file,
    _positive,
    _print_json,
    _show_job,
    _table,
    app,
)
from unitune.errors import ConfigurationError

if TYPE_CHECKING:
    from unitune.types import FileRef, StepMetric

__all__ = ["clean", "create", "files", "metrics", "upload"]

#: Rows `unitune metrics` shows before thinning a long run out (the JSON always has every step).
METRIC_ROWS = 30
#: Endings of a dataset file: a value ending so that is not a file is a mistyped path, not a file id.
_DATA_SUFFIXES = (".jsonl", ".json", ".gz", ".csv", ".parquet", ".txt")


def _purpose(value: str) -> str:
    if value not in ("training", "validation"):
        raise typer.BadParameter(f"{value!r} is not one of 'training', 'validation'")
    return value


def _model_opt(help: str) -> Any:
    return typer.Option(help=help, callback=_not_empty)


def _next(command: str) -> None:
    _out().print(f"next: [bold]{escape(command)}[/]", highlight=False)


def _provider_flag(provider: str | None) -> str:
    return f" --provider {provider}" if provider else ""


# -- upload -----------------------------------------------------------------------------------------


@app.command()
@_handles_errors
def upload(
    data: Annotated[Path, _in_file("The dataset (JSONL, optionally gzipped).")],
    provider: ProviderOpt = None,
    as_json: JsonOpt = False,
    purpose: Annotated[str, typer.Option(help="training or validation.", callback=_purpose)] = "training",
    model: Annotated[
        str | None,
        _model_opt("Base model it is for (sets the token limit and format; default: the config's)."),
    ] = None,
    method: Annotated[
        str | None,
        typer.Option(
            help="sft or dpo: the kind of example every line must be (default: the config's, else sft).",
            callback=_method,
        ),
    ] = None,
) -> None:
    """Validate a dataset, convert it to the provider's format and upload it; prints the file id.

    Nothing is uploaded if the data fails the provider's checks.
    """
    with _client(provider) as client:
        defaults = client.config.job_defaults(client.provider.name)
        chosen = cast("Literal['sft', 'dpo']", method or defaults.method or "sft")
        ref = client.upload(
            data,
            purpose=cast("Literal['training', 'validation']", purpose),
            model=model or defaults.model,
            method=chosen,
        )
    if as_json:
        _print_json(ref)
        return
    size = f", {ref.size_bytes:,} bytes" if ref.size_bytes is not None else ""
    _out().print(
        f"uploaded {escape(data.name)} to {ref.provider} as [bold]{escape(ref.id)}[/] ({purpose}{size})"
    )
    flag = "--training-file" if purpose == "training" else "--validation-file"
    _next(
        f"unitune create {flag} {ref.id} --model {model or defaults.model or 'MODEL'}{_provider_flag(provider)}"
    )


# -- create -----------------------------------------------------------------------------------------


def _data_or_file_id(
    value: str | None, option: str, provider: str, purpose: Literal["training", "validation"]
) -> Path | FileRef | None:
    """Tell a local dataset path from the id of an already uploaded file.

    An existing local path is data to validate and upload; anything else is the id of a file
    already uploaded to `provider`. A value that can only be a path (a folder, or a dataset's ending)
    and is not a file is a usage error, not an id the vendor would answer 404 for.
    """
    if value is None:
        return None
    path = Path(value).expanduser()
    if path.is_file():
        return path
    if path.is_dir():
        raise typer.BadParameter(
            f"{value!r} is a directory; give a dataset file or a file id", param_hint=option
        )
    looks_like_path = "://" not in value and (
        os.sep in value or "/" in value or value.lower().endswith(_DATA_SUFFIXES)
    )
    if looks_like_path:
        raise typer.BadParameter(
            f"no file {value!r}; give an existing dataset or an uploaded file id (`unitune files` lists them)",
            param_hint=option,
        )
    from unitune.types import FileRef

    return FileRef(id=value, provider=provider, purpose=purpose)


@app.command()
@_handles_errors
def create(
    training_file: Annotated[
        str,
        typer.Option(
            help="A local dataset (validated and uploaded first) or an uploaded file id.", callback=_not_empty
        ),
    ],
    model: Annotated[
        str | None,
        _model_opt("Portable alias or the provider's model id (default: the config's)."),
    ] = None,
    provider: ProviderOpt = None,
    as_json: JsonOpt = False,
    validation_file: Annotated[
        str | None,
        typer.Option(help="A local dataset or an uploaded file id for validation.", callback=_not_empty),
    ] = None,
    epochs: Annotated[int | None, typer.Option(help="Training epochs.", min=1, max=1000)] = None,
    learning_rate: Annotated[
        float | None, typer.Option(help="Learning rate (providers that take one).", callback=_positive)
    ] = None,
    learning_rate_multiplier: Annotated[
        float | None,
        typer.Option(help="Learning-rate multiplier (OpenAI and others that take one).", callback=_positive),
    ] = None,
    batch_size: Annotated[int | None, typer.Option(help="Batch size.", min=1)] = None,
    suffix: Annotated[
        str | None, typer.Option(help="A suffix for the tuned model's name.", callback=_not_empty)
    ] = None,
    method: Annotated[
        str | None, typer.Option(help="sft or dpo (default: the config's, else sft).", callback=_method)
    ] = None,
    idempotency_key: Annotated[
        str | None,
        typer.Option(
            help="Running the command again with the same key returns the same job, never a second.",
            callback=_not_empty,
        ),
    ] = None,
    max_cost_usd: Annotated[
        float | None,
        typer.Option(help="Refuse (before uploading) if the quote is above this many dollars.", min=0),
    ] = None,
) -> None:
    """Start a fine-tuning job from a local dataset or an uploaded file; prints the job and how to follow it."""
    hyperparameters = {
        name: value
        for name, value in {
            "epochs": epochs,
            "learning_rate": learning_rate,
            "learning_rate_multiplier": learning_rate_multiplier,
            "batch_size": batch_size,
        }.items()
        if value is not None
    }
    with _client(provider) as client:
        name = client.provider.name
        training = _data_or_file_id(training_file, "'--training-file'", name, "training")
        assert training is not None
        validation = _data_or_file_id(validation_file, "'--validation-file'", name, "validation")
        job = client.create_job(
            model=model,
            training_data=training,
            validation_data=validation,
            hyperparameters=hyperparameters or None,  # the config's, field by field, where not given
            method=cast("Literal['sft', 'dpo'] | None", method),
            suffix=suffix,
            idempotency_key=idempotency_key,
            max_cost_usd=max_cost_usd,
        )
    if as_json:
        _print_json(job)
        return
    _show_job(job)
    _next(f"unitune wait {job.id}{_provider_flag(provider)}")


# -- metrics ----------------------------------------------------------------------------------------


def _thinned(items: list[StepMetric], rows: int = METRIC_ROWS) -> list[StepMetric]:
    """At most `rows` metrics, evenly spaced, the first and the last always among them."""
    if len(items) <= rows:
        return items
    picks = sorted({round(i * (len(items) - 1) / (rows - 1)) for i in range(rows)})
    return [items[i] for i in picks]


def _loss(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


@app.command()
@_handles_errors
def metrics(
    job_id: JobIdArg,
    provider: ProviderOpt = None,
    as_json: JsonOpt = False,
    plot: Annotated[
        Path | None,
        typer.Option(
            "--plot", help="Also write the loss curve to this PNG (needs unitune[plot]).", dir_okay=False
        ),
    ] = None,
) -> None:
    """Show a job's training and validation loss per step.

    Works on any provider that reports them; with --plot, also the loss curve as a PNG.
    """
    from unitune._plot import loss_png

    if plot is not None:
        # Before asking the provider: a missing extra or a bad path should not cost a request.
        _output_file(plot, "--plot")
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise ConfigurationError(
                "--plot needs matplotlib, which is not installed.",
                fix="Install it: pip install 'unitune[plot]'",
            ) from None
    with _client_for_job(job_id, provider) as client:
        items = client.metrics(job_id)
    written = loss_png(items, plot, title=f"{job_id}: loss") if plot is not None and items else None
    if as_json:
        _print_json(items)
        return
    out = _out()
    if not items:
        out.print("No metrics reported for this job (yet)." + (" No plot written." if plot else ""))
        return
    shown = _thinned(items)
    table = _table("step", "epoch", "train loss", "valid loss", keep_whole=())
    for m in shown:
        epoch = "" if m.epoch is None else f"{m.epoch:g}"
        table.add_row(str(m.step), epoch, _loss(m.train_loss), _loss(m.valid_loss))
    out.print(table)
    if len(shown) < len(items):
        out.print(f"showing {len(shown)} of {len(items)} steps, evenly spaced (--json has every step)")
    if written is not None:
        out.print(f"loss curve: {escape(str(written))}")


# -- files ------------------------------------------------------------------------------------------


@app.command()
@_handles_errors
def files(
    provider: ProviderOpt = None,
    as_json: JsonOpt = False,
    delete: Annotated[
        str | None,
        typer.Option(
            "--delete",
            help="Delete this uploaded file (for good) instead of listing.",
            callback=_not_empty,
            metavar="FILE_ID",
        ),
    ] = None,
    limit: Annotated[int, typer.Option(help="How many files to list, newest first.", min=1)] = 100,
) -> None:
    """The fine-tuning files uploaded to a provider, newest first; --delete FILE_ID deletes one."""
    with _client(provider) as client:
        name = client.provider.name
        if delete is not None:
            client.delete_file(delete)
            listed: list[FileRef] = []
        else:
            listed = client.files(limit=limit)
    if delete is not None:
        if as_json:
            _print_json({"deleted": delete, "provider": name})
        else:
            _out().print(f"deleted {escape(delete)} from {name}")
        return
    if as_json:
        _print_json(listed)
        return
    if not listed:
        _out().print(f"No files uploaded to {name}. Upload one with `unitune upload FILE`.")
        return
    from unitune._clean import human_size

    table = _table("file", "name", "size", "uploaded", keep_whole=("file",))
    for ref in listed:
        size = human_size(ref.size_bytes) if ref.size_bytes is not None else ""
        when = ref.created_at.strftime("%Y-%m-%d %H:%M") if ref.created_at else ""
        table.add_row(escape(ref.id), escape(ref.filename or ""), size, when)
    _out().print(table)


# -- clean ------------------------------------------------------------------------------------------


def _count(n: int) -> str:
    return f"{n} item" if n == 1 else f"{n} items"


@app.command()
@_handles_errors
def clean(
    as_json: JsonOpt = False,
    older_than: Annotated[
        float,
        typer.Option("--older-than", help="Only what is older than this many days.", min=0, metavar="DAYS"),
    ] = 30,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only list what would go, and its size.")
    ] = False,
    include_models: Annotated[
        bool,
        typer.Option("--include-models", help="Also remove succeeded local jobs: their trained adapters."),
    ] = False,
) -> None:
    """Free disk taken by old local jobs, uploads, converted data and cached models.

    Removes failed and cancelled local-trainer jobs (succeeded ones, i.e. trained adapters, only with
    --include-models), unused local uploads, leftover converted data and cached models older than
    --older-than days. Running jobs are never touched.
    """
    from unitune._clean import find_cleanable, human_size, remove

    items = find_cleanable(older_than_days=older_than, include_models=include_models)
    total = sum(i.bytes for i in items)
    freed, failed = (0, []) if dry_run else remove(items)
    if as_json:
        _print_json({
            "dry_run": dry_run,
            "items": [{"path": str(i.path), "bytes": i.bytes, "why": i.why} for i in items],
            "bytes": total,
            "freed_bytes": freed,
            "failed": [{"path": str(p), "error": e} for p, e in failed],
        })  # fmt: skip
    else:
        out = _out()
        if not items:
            out.print(f"Nothing to clean older than {older_than:g} days.")
            return
        table = _table("path", "size", "why", keep_whole=("path",))
        for i in items:
            table.add_row(escape(str(i.path)), human_size(i.bytes), escape(i.why))
        out.print(table)
        if dry_run:
            out.print(
                f"would free {human_size(total)} ({_count(len(items))}); run without --dry-run to remove them"
            )
        else:
            out.print(
                f"freed {human_size(freed)} ({len(items) - len(failed)} of {_count(len(items))} removed)"
            )
            for path, error in failed:
                out.print(f"[red]not removed:[/] {escape(str(path))}: {escape(error)}")
    if failed:
        raise typer.Exit(1)
