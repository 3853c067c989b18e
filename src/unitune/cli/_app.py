"""The `unitune` command line (Typer + Rich).

Every command takes `--provider` and `--json`. Errors print one line (or a JSON object with
`--json`), never a traceback: exit 2 for a usage error (a bad or missing argument or option value,
found by click or by the command before it does anything), exit 1 for an operation that failed.

Over ~700 lines on purpose: it is one Typer app, and every command is a thin wrapper over one client
call that shares the app's options, its one error reporter (`_report`) and its JSON/table output;
the work lives in the library (client, data, catalog), so splitting commands across modules would
scatter those shared pieces without making any command simpler.
"""

from __future__ import annotations

import copy
import datetime as dt
import functools
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from unitune.errors import ConfigurationError, UnituneError

if TYPE_CHECKING:
    from unitune.client import FineTuneClient
    from unitune.config import UnituneConfig
    from unitune.types import Job, JobStatus

# Click's exception classes, as the installed Typer raises them (recent Typers vendor their own click).
_ClickException: type[Exception] = next(
    c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException"
)


class _OneLineUsageErrors(typer.core.TyperGroup):
    """Click group that reports usage errors as one line and exits 2.

    Usage errors (a bad option value, a missing argument, an unknown command) as one line on
    stderr, or a JSON object with `--json`, and exit 2, instead of click's usage block.
    """

    def invoke(self, ctx: Any) -> Any:
        args = [*getattr(ctx, "_protected_args", ()), *ctx.args]  # before click consumes them
        try:
            return super().invoke(ctx)
        except _ClickException as e:
            if type(e).__name__ == "NoArgsIsHelpError":
                raise  # no arguments where help is wanted: click prints the help
            where = getattr(getattr(e, "ctx", None), "command_path", None) or ctx.command_path
            message = f"{e.format_message()} (see '{where} --help')"  # type: ignore[attr-defined]
            _report("UsageError", message, as_json="--json" in args)
            raise typer.Exit(getattr(e, "exit_code", 2)) from None


app = typer.Typer(
    name="unitune",
    help="Fine-tune, track, price and call models on any provider.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=_OneLineUsageErrors,
)

F = TypeVar("F", bound=Callable[..., Any])


def _print_version(value: bool) -> None:
    """Print the installed version for `--version`.

    `--version`: the installed distribution's version (what pip installed, which is what a bug
    report needs), printed before any config is read, so it works anywhere.
    """
    if not value:
        return
    from importlib.metadata import PackageNotFoundError, version

    try:
        number = version("unitune")
    except PackageNotFoundError:  # run from a source tree that was never installed
        from unitune import __version__ as number
    sys.stdout.write(f"unitune {number}\n")
    raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Print unitune's version and exit.", callback=_print_version, is_eager=True
        ),
    ] = False,
) -> None:
    """Fine-tune, track, price and call models on any provider."""


def _not_empty(value: str | None) -> str | None:
    """An option or argument that must not be an empty string (None: not given)."""
    if value is not None and not value.strip():
        raise typer.BadParameter("must not be empty")
    return value


def _provider_name(value: str | None) -> str | None:
    """Check a provider name given on the command line.

    A provider the registry or the catalog knows (a catalog-only one, such as a retired vendor,
    is listed by `models` and `prices`); any other name is a usage error with the closest names.
    """
    _not_empty(value)
    if value is None:
        return None
    from unitune.providers.registry import provider_info

    try:
        provider_info(value)
    except ConfigurationError as e:
        if value not in _catalog().providers:
            raise typer.BadParameter(str(e)) from None
    return value


ProviderOpt = Annotated[
    str | None,
    typer.Option(
        "--provider",
        "-p",
        help="Provider to use (default: from unitune.toml or $UNITUNE_PROVIDER).",
        callback=_provider_name,
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
JobIdArg = Annotated[str, typer.Argument(help="The job id.", callback=_not_empty)]


def _in_file(help: str) -> Any:
    """A dataset argument: click refuses a missing path, a directory or an unreadable file (exit 2)."""
    return typer.Argument(help=help, exists=True, dir_okay=False, readable=True)


def _positive(value: float | None) -> float | None:
    if value is not None and not value > 0:
        raise typer.BadParameter(f"{value:g} is not above 0")
    return value


def _fraction(value: float) -> float:
    if not 0 < value < 1:
        raise typer.BadParameter(f"{value:g} is not between 0 and 1 (both excluded)")
    return value


def _method(value: str | None) -> str | None:
    if value not in (None, "sft", "dpo"):
        raise typer.BadParameter(f"{value!r} is not one of 'sft', 'dpo'")
    return value


def _today() -> dt.date:
    """The date lifecycle answers are given for (a function, so tests can move it)."""
    return dt.date.today()


def _output_file(path: Path, option: str) -> Path:
    """An output file path: its folder is created; an existing directory is a usage error."""
    if path.is_dir():
        raise typer.BadParameter(f"{str(path)!r} is a directory; give a file path", param_hint=option)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigurationError(
            f"Cannot create the folder {str(path.parent)!r} for {option}: {e.strerror or e}.",
            fix=f"Give {option} a path in a writable folder.",
        ) from None
    return path


def _out() -> Console:
    # Built per call so Typer's test runner, which swaps sys.stdout, captures the output.
    # emoji=False: ids and replies like "ft:m:rocket:1" must print verbatim, not as 🚀.
    return Console(file=sys.stdout, soft_wrap=True, emoji=False)


def _err() -> Console:
    return Console(file=sys.stderr, soft_wrap=True, emoji=False)


def _jsonable(obj: Any) -> Any:
    from pydantic import BaseModel  # here: `unitune --help` does not import pydantic

    if isinstance(obj, BaseModel):
        return obj.model_dump(mode="json")
    if isinstance(obj, (list, tuple)):
        return [_jsonable(o) for o in obj]
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    return obj


def _print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(_jsonable(obj), indent=2, default=str) + "\n")


def _report(kind: str, message: str, *, as_json: bool, shown: str | None = None) -> None:
    """Print an error the CLI way: JSON on stdout with --json, else one line on stderr.

    Every error the CLI prints: `{"error": {type, message}}` on stdout with --json, else one line on
    stderr (`shown`, when the line says more than the message).
    """
    if as_json:
        _print_json({"error": {"type": kind, "message": message}})
    else:
        _err().print(f"[bold red]error:[/] {escape(shown or message)}", highlight=False)


def _handles_errors(fn: F) -> F:
    """Turn unitune errors into one line (or JSON) and exit status 1."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except UnituneError as e:
            _report(
                type(e).__name__,
                str(e),
                as_json=bool(kwargs.get("as_json")),
                shown=f"{type(e).__name__}: {e}",
            )
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            _err().print("interrupted")
            raise typer.Exit(130) from None
        except (typer.Exit, typer.Abort, SystemExit, _ClickException):
            raise  # a usage error (exit 2) is the group's to print
        except OSError as e:
            if e.filename is None:
                _unexpected(e, kwargs)
            # The file system refused (permissions, a full disk): the file and the reason, no "unexpected".
            text = f"{type(e).__name__}: {e.strerror or e}: {str(e.filename)!r}"
            _report(type(e).__name__, text, as_json=bool(kwargs.get("as_json")))
            raise typer.Exit(1) from None
        except Exception as e:
            _unexpected(e, kwargs)

    return wrapper  # type: ignore[return-value]


def _unexpected(e: Exception, kwargs: dict[str, Any]) -> NoReturn:
    """A bug or an unexpected environment: still one line, with the way to see more."""
    if os.environ.get("UNITUNE_DEBUG") == "1":
        raise e
    message = f"unexpected {type(e).__name__}: {e} (set UNITUNE_DEBUG=1 for the traceback)"
    _report(type(e).__name__, message, as_json=bool(kwargs.get("as_json")))
    raise typer.Exit(1) from None


def load_config() -> UnituneConfig:
    """The config (`unitune.config.load_config`), imported when a command needs it.

    `unitune --help` builds no client and reads no config, so the CLI starts without importing them.
    """
    from unitune.config import load_config as load

    return load()


def _client(provider: str | None, **kwargs: Any) -> FineTuneClient:
    from unitune.client import FineTuneClient

    return FineTuneClient(provider, **kwargs) if provider else FineTuneClient.from_config(**kwargs)


def _client_for_job(job_id: str, provider: str | None) -> FineTuneClient:
    """The client for a job: the provider given, else the one the ledger recorded, else config."""
    if provider is None:
        from unitune.config import ledger_path
        from unitune.ledger import Ledger

        ledger = Ledger(ledger_path(load_config()))
        entries = ledger.find_job(job_id)
        if len(entries) == 1:
            provider = entries[0].provider
        elif len(entries) > 1:
            names = ", ".join(e.provider for e in entries)
            raise ConfigurationError(
                f"Job id {job_id!r} exists on several providers ({names}).",
                fix="Pick one with --provider.",
            )
    return _client(provider)


_STATUS_STYLE = {
    "succeeded": "green",
    "failed": "red",
    "cancelled": "yellow",
    "cancelling": "yellow",
    "paused": "yellow",
}


def _status_text(status: JobStatus) -> str:
    style = _STATUS_STYLE.get(status.value, "cyan")
    return f"[{style}]{status.value}[/]"


def _table(*columns: str, keep_whole: Sequence[str] = ("job",)) -> Table:
    """A table whose id-like columns never wrap or truncate, so they can be copied and grepped."""
    table = Table()
    for name in columns:
        table.add_column(name, no_wrap=name in keep_whole, overflow="fold")
    return table


def _emit_job(job: Job, as_json: bool) -> None:
    """A job as JSON, or as the few lines a person reads."""
    if as_json:
        _print_json(job)
    else:
        _show_job(job)


def _show_job(job: Job) -> None:
    out = _out()
    out.print(
        f"[bold]{escape(job.id)}[/] on {job.provider}: {_status_text(job.status)} "
        f"(raw: {escape(job.raw_status)})"
    )
    out.print(f"  model: {escape(job.model)}")
    if job.fine_tuned_model:
        out.print(f"  fine-tuned model: [bold]{escape(job.fine_tuned_model)}[/]")
    if job.progress is not None:
        out.print(f"  progress: {job.progress:.0%}")
    if job.error:
        out.print(f"  [red]error:[/] {escape(job.error)}")


# -- commands -------------------------------------------------------------------------------------


#: Capabilities every usable provider has; the table shows only the ones that tell providers apart.
_EVERYONE = frozenset({"upload", "create", "full_finetune", "accepts_new_jobs"})


@app.command()
@_handles_errors
def providers(provider: ProviderOpt = None, as_json: JsonOpt = False) -> None:
    """List providers, whether they are installed, what each can do, and whether it takes new jobs."""
    from unitune.providers.registry import get_provider_class, list_providers, provider_info

    catalog = _catalog()
    today = _today()
    if provider and provider not in catalog.providers:
        provider_info(provider)  # an unknown name is an error with suggestions, not an empty table
    rows: list[dict[str, Any]] = []
    registered = list_providers()
    # A provider the catalog records without an adapter (a retired vendor) still gets its row.
    catalog_only = sorted(set(catalog.providers) - {info.name for info in registered})
    for info in [*registered, *catalog_only]:
        name = info if isinstance(info, str) else info.name
        if provider and name != provider:
            continue
        caps: dict[str, bool] | None = None
        if isinstance(info, str):
            state, install, description = "no adapter (catalog only)", None, catalog.provider(name).status
        else:
            state = "installed" if info.installed else ("not installed" if info.available else "planned")
            install = f'pip install "unitune[{info.extra}]"' if info.extra else None
            description = info.description
            if info.installed:
                try:
                    caps = get_provider_class(name).capabilities.flags()
                except Exception as e:  # one broken third-party provider must not hide the others
                    state = f"broken: {type(e).__name__}: {e}"
        # Whether it takes new jobs is the catalog's to say (dated, sourced, overridable); the
        # adapter's class flag only for a provider the catalog does not know.
        accepts: bool | None = caps.get("accepts_new_jobs") if caps else None
        lifecycle = None
        if name in catalog.providers:
            accepts = catalog.accepts_new_jobs(name, today=today)
            lifecycle = catalog.lifecycle(name, today=today).phrase
        if caps is not None and accepts is not None:
            caps["accepts_new_jobs"] = accepts
        rows.append(
            {
                "name": name,
                "state": state,
                "install": install,
                "description": description,
                "accepts_new_jobs": accepts,
                "lifecycle": lifecycle,
                "capabilities": caps,
            }
        )
    if as_json:
        _print_json(rows)
        return
    table = _table(
        "provider", "state", "new jobs", "install", "also offers", "about", keep_whole=("provider", "install")
    )
    for r in rows:
        caps = r["capabilities"]
        can = ", ".join(k for k, v in caps.items() if v and k not in _EVERYONE) if caps else ""
        style = {"installed": "green", "not installed": "yellow"}.get(r["state"], "dim")
        if r["lifecycle"] is not None:
            jobs_text = _lifecycle_text(r["lifecycle"], r["accepts_new_jobs"])
        else:
            jobs_text = {True: "yes", False: "[red]no[/]", None: ""}[r["accepts_new_jobs"]]
        table.add_row(
            r["name"],
            f"[{style}]{escape(r['state'])}[/]",
            jobs_text,
            escape(r["install"] or ""),
            can,
            escape(r["description"]),
        )
    _out().print(table)


def _lifecycle_text(phrase: str, accepts: bool | None) -> str:
    style = "red" if not accepts else ("yellow" if ";" in phrase else "green")
    return f"[{style}]{escape(phrase)}[/]"


@app.command()
@_handles_errors
def jobs(
    provider: ProviderOpt = None,
    as_json: JsonOpt = False,
    limit: Annotated[int, typer.Option(help="How many jobs to show.", min=1)] = 20,
) -> None:
    """Jobs this machine created (from the ledger), newest first."""
    from unitune.config import ledger_path
    from unitune.ledger import Ledger
    from unitune.providers.registry import provider_info

    if provider:
        provider_info(provider)
    entries = Ledger(ledger_path(load_config())).list(provider=provider, limit=limit)
    if as_json:
        _print_json(entries)
        return
    if not entries:
        _out().print("No jobs recorded yet. Create one with FineTuneClient.create_job().")
        return
    table = _table("job", "provider", "model", "status", "fine-tuned model", "created")
    for e in entries:
        table.add_row(
            escape(e.job_id),
            e.provider,
            escape(e.model),
            _status_text(e.status),
            escape(e.fine_tuned_model or ""),
            e.created_at.strftime("%Y-%m-%d %H:%M"),
        )
    _out().print(table)


@app.command()
@_handles_errors
def status(
    job_id: JobIdArg,
    provider: ProviderOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show a job's current state."""
    job = _client_for_job(job_id, provider).get_job(job_id)
    _emit_job(job, as_json)


@app.command()
@_handles_errors
def wait(
    job_id: JobIdArg,
    provider: ProviderOpt = None,
    as_json: JsonOpt = False,
    timeout: Annotated[float | None, typer.Option(help="Give up after this many seconds.", min=0)] = None,
    poll_interval: Annotated[
        float | None, typer.Option(help="Seconds between polls at first.", callback=_positive)
    ] = None,
) -> None:
    """Wait for a job to finish, showing its progress. Exits 1 if it fails."""
    client = _client_for_job(job_id, provider)
    if as_json:
        _print_json(client.wait(job_id, timeout=timeout, poll_interval=poll_interval))
        return
    job = _wait_with_progress(client, job_id, timeout=timeout, poll_interval=poll_interval)
    _show_job(job)


def _wait_with_progress(
    client: FineTuneClient, job_id: str, *, timeout: float | None = None, poll_interval: float | None = None
) -> Job:
    from unitune._progress import wait_with_progress

    return wait_with_progress(client, job_id, console=_out(), timeout=timeout, poll_interval=poll_interval)


@app.command()
@_handles_errors
def events(
    job_id: JobIdArg,
    provider: ProviderOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show a job's event log."""
    items = _client_for_job(job_id, provider).events(job_id)
    if as_json:
        _print_json(items)
        return
    table = _table("time", "level", "message")
    for e in items:
        style = {"error": "red", "warning": "yellow"}.get(e.level, "")
        level = f"[{style}]{e.level}[/]" if style else e.level
        table.add_row(e.created_at.strftime("%H:%M:%S"), level, escape(e.message))
    _out().print(table)


@app.command()
@_handles_errors
def cancel(
    job_id: JobIdArg,
    provider: ProviderOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Ask the provider to stop a job."""
    job = _client_for_job(job_id, provider).cancel_job(job_id)
    _emit_job(job, as_json)


@app.command()
@_handles_errors
def pause(
    job_id: JobIdArg,
    provider: ProviderOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Pause a running job (providers that can: OpenAI)."""
    job = _client_for_job(job_id, provider).pause_job(job_id)
    _emit_job(job, as_json)


@app.command()
@_handles_errors
def resume(
    job_id: JobIdArg,
    provider: ProviderOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Resume a paused job."""
    job = _client_for_job(job_id, provider).resume_job(job_id)
    _emit_job(job, as_json)


@app.command()
@_handles_errors
def checkpoints(
    job_id: JobIdArg,
    provider: ProviderOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The models a job saved along the way, each callable with `unitune chat`."""
    saved = _client_for_job(job_id, provider).checkpoints(job_id)
    if as_json:
        _print_json(saved)
        return
    if not saved:
        _out().print("No checkpoints saved for this job (yet).")
        return
    table = _table("step", "model", "metrics", keep_whole=("model",))
    for c in saved:
        metrics = ", ".join(f"{k}={v:g}" for k, v in sorted(c.metrics.items()) if k != "step")
        table.add_row(str(c.step), escape(c.model or c.id), metrics)
    _out().print(table)


@app.command()
@_handles_errors
def chat(
    model: Annotated[str, typer.Argument(help="A base or fine-tuned model id.", callback=_not_empty)],
    prompt: Annotated[str, typer.Argument(help="The user message.", callback=_not_empty)],
    provider: ProviderOpt = None,
    as_json: JsonOpt = False,
    system: Annotated[str | None, typer.Option(help="A system message to send first.")] = None,
) -> None:
    """Send one message to a model and print the reply."""
    messages: list[dict[str, str]] = []
    if system:
        messages.append({"role": "system", "content": system})
    messages.append({"role": "user", "content": prompt})
    reply = _client(provider).chat(model, messages)
    if as_json:
        _print_json(reply)
    else:
        _out().print(reply.content, markup=False, highlight=False)


def _check_can_train(provider: str, model: str) -> None:
    """Refuse a model that takes no new jobs on the provider.

    `ProviderRetiredError` if `model` takes no new jobs on `provider` (or on the provider a
    dataset profile such as `bedrock-nova` belongs to), from the catalog's one lifecycle.
    """
    catalog = _catalog()
    name = provider if provider in catalog.providers else provider.split("-", 1)[0]
    if name in catalog.providers:
        catalog.check_can_train(name, catalog.resolve(name, model), today=_today())


def _dataset_profile(name: str) -> str:
    """The dataset rules to check against: the provider's own, or a profile named directly."""
    from unitune.cli._warm import dataset_profile

    return dataset_profile(name)


def _issue_lines(issues: Sequence[Any], limit: int) -> None:
    out = _out()
    style = {"error": "red", "warning": "yellow", "info": "dim"}
    for issue in issues[:limit]:
        out.print(
            f"{escape(issue.where())}: [{style[issue.severity]}]{issue.severity}[/] "
            f"[bold]{issue.code}[/] {escape(issue.message)}",
            highlight=False,
        )
    if len(issues) > limit:
        out.print(f"… and {len(issues) - limit} more (use --show N or --json)")


@app.command()
@_handles_errors
def validate(
    file: Annotated[Path, _in_file("The dataset (JSONL, optionally gzipped).")],
    provider: ProviderOpt = None,
    as_json: JsonOpt = False,
    model: Annotated[
        str | None,
        typer.Option(
            help="Base model (sets the token limit and tokenizer; one that takes no new jobs is refused).",
            callback=_not_empty,
        ),
    ] = None,
    validation: Annotated[
        Path | None,
        typer.Option(
            help="Validation file, also checked for leakage.", exists=True, dir_okay=False, readable=True
        ),
    ] = None,
    fix: Annotated[
        Path | None,
        typer.Option("--fix", help="Write a corrected copy here (the file itself is not changed)."),
    ] = None,
    redact_pii: Annotated[
        bool,
        typer.Option(
            "--redact-pii",
            help="With --fix: replace emails, phones, IDs, cards and IBANs with <EMAIL>, <PHONE>, …",
        ),
    ] = False,
    method: Annotated[
        str | None,
        typer.Option(
            help="The job's method, sft or dpo: every example must be of its kind.",
            callback=_method,
        ),
    ] = None,
    show: Annotated[int, typer.Option(help="How many problems to list.", min=0)] = 20,
) -> None:
    """Check a dataset against a provider's rules; every problem with its line. Exits 1 on errors."""
    from unitune.cli import _warm
    from unitune.data import Dataset
    from unitune.data import fix as fix_dataset
    from unitune.data import validate as validate_dataset

    if redact_pii and fix is None:
        raise typer.BadParameter(
            "writes a redacted copy: give it a path with --fix OUT", param_hint="'--redact-pii'"
        )
    if fix is not None:
        _output_file(fix, "--fix")
        _warm.stop()  # validating and fixing both count here: the child has nothing to do
    config = load_config()
    name = provider or config.provider
    defaults = config.job_defaults(name)  # [job] / [providers.NAME]: what create_job would use
    model = model or defaults.model
    method = method or defaults.method
    if model:
        _check_can_train(name, model)  # the answer create_job and estimate give for this model
    profile = _dataset_profile(name)
    # The warm child (`_warm`, Linux) has the toolkit imported and the tokenizer loaded by now;
    # without it, or if it cannot answer, the same call here.
    report = (
        _warm.validate(data=file, provider=profile, model=model, method=method, validation=validation)
        if fix is None
        else None
    )
    if report is None:
        report = validate_dataset(
            Dataset.from_jsonl(file),
            provider=profile,
            model=model,
            method=method,  # type: ignore[arg-type]
            validation=validation,
        )
    fixed = (
        fix_dataset(Dataset.from_jsonl(file), fix, provider=profile, model=model, redact_pii=redact_pii)
        if fix
        else None
    )
    if as_json:
        payload: dict[str, Any] = report.model_dump(mode="json")
        payload["ok"] = report.ok
        if fixed is not None:
            payload["fix"] = fixed.model_dump(mode="json")
        _print_json(payload)
    else:
        _show_report(report, show)
        if fixed is not None:
            _out().print(f"[bold]--fix[/]: {escape(fixed.summary())}")
    if not report.ok:
        raise typer.Exit(1)


def _show_report(report: Any, show: int) -> None:
    stats = report.stats
    table = _table("", "examples", "min", "p5", "p50", "p95", "max", keep_whole=())
    for label, dist in (
        ("messages / example", stats.messages_per_example),
        ("tokens / example", stats.tokens_per_example),
        ("assistant tokens / example", stats.assistant_tokens_per_example),
    ):
        table.add_row(
            label, str(dist.count), *(f"{getattr(dist, k):,}" for k in ("min", "p5", "p50", "p95", "max"))
        )
    out = _out()
    verdict = "[green]OK[/]" if report.ok else "[red]FAILED[/]"
    out.print(f"{verdict} {escape(report.path or '')} for [cyan]{report.provider}[/]: {stats.examples:,} examples, "
              f"{report.error_count} errors, {report.warning_count} warnings")  # fmt: skip
    out.print(table)
    tokens = "approximate" if stats.approximate_tokens else "exact"
    out.print(f"tokens: {tokens} ({escape(stats.token_method or '?')}); "
              f"{stats.examples_over_limit} over the {stats.token_limit or '?':,} limit")  # fmt: skip
    if report.counts:
        counts = _table("code", "severity", "count", keep_whole=("code",))
        rank = {"error": 0, "warning": 1, "info": 2}
        for code, n in sorted(report.counts.items(), key=lambda kv: (rank[report.severities[kv[0]]], -kv[1])):
            counts.add_row(code, report.severities.get(code, ""), f"{n:,}")
        out.print(counts)
    _issue_lines(report.issues, show)


@app.command()
@_handles_errors
def convert(
    file: Annotated[Path, _in_file("The dataset (any format unitune reads).")],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Where to write the converted JSONL (folders are created).")
    ],
    provider: ProviderOpt = None,
    as_json: JsonOpt = False,
    to: Annotated[
        str | None,
        typer.Option("--format", help="A wire format name (default: the provider's).", callback=_not_empty),
    ] = None,
    show: Annotated[int, typer.Option(help="How many losses to list.", min=0)] = 20,
) -> None:
    """Convert a dataset to a provider's wire format, reporting anything it cannot carry.

    Exits 1 if any example had to be left out.
    """
    from unitune.data import Dataset
    from unitune.data.convert import write_jsonl
    from unitune.providers.registry import get_provider_class

    fmt = to or get_provider_class(provider or load_config().provider).wire_format
    result = write_jsonl(Dataset.from_jsonl(file), fmt, _output_file(output, "--output"))
    if as_json:
        _print_json(result)
    else:
        out = _out()
        out.print(f"wrote {result.written:,} examples as [cyan]{fmt}[/] to {escape(str(result.path))}; "
                  f"{result.refused:,} left out")  # fmt: skip
        for code, n in sorted(result.loss_counts.items(), key=lambda kv: -kv[1]):
            out.print(f"  {code} ×{n:,}")
        for loss in result.losses[:show]:
            out.print(f"  {escape(str(loss))}", highlight=False)
    if result.refused:
        raise typer.Exit(1)


@app.command()
@_handles_errors
def split(
    file: Annotated[Path, _in_file("The dataset to split.")],
    output: Annotated[
        Path,
        typer.Option(
            "--output", "-o", help="Directory for train.jsonl and validation.jsonl.", file_okay=False
        ),
    ],
    as_json: JsonOpt = False,
    provider: ProviderOpt = None,
    validation_fraction: Annotated[
        float,
        typer.Option(help="Share of examples for validation, between 0 and 1.", callback=_fraction),
    ] = 0.2,
    seed: Annotated[int, typer.Option(help="Seed of the deterministic split.", min=0, max=2**64 - 1)] = 0,
    stratify: Annotated[
        str | None, typer.Option(help="Top-level key to stratify on.", callback=_not_empty)
    ] = None,
) -> None:
    """Split a dataset into train and validation files: seeded, exact proportions, duplicates removed."""
    from unitune.data import Dataset
    from unitune.data import split as split_dataset

    data = Dataset.from_jsonl(file)  # split() refuses a file without examples, or a key none has
    result = split_dataset(
        data,
        output,
        validation_fraction=validation_fraction,
        seed=seed,
        stratify=stratify,
    )
    if as_json:
        _print_json(result)
        return
    _out().print(
        f"train: {result.train_examples:,} → {escape(str(result.train_path))}\n"
        f"validation: {result.validation_examples:,} → {escape(str(result.validation_path))}\n"
        f"duplicates removed: {result.duplicates_removed:,}; unreadable lines skipped: {result.unreadable_skipped:,}"
    )
    if not result.validation_examples:
        _out().print("[yellow]note:[/] no example went to validation: raise --validation-fraction")


def _catalog() -> Any:
    from unitune.catalog import load_catalog

    return load_catalog(load_config().catalog)


def _show_quote(q: Any) -> None:
    out = _out()
    if not q.available:  # a comparison row for a model that takes no new jobs: why, and nothing to price
        phrase = q.lifecycle.phrase if q.lifecycle is not None else "no new jobs"
        out.print(f"[cyan]{q.provider}[/] {escape(q.model)}: [red]unavailable[/] ({escape(phrase)})")
        for note in q.notes[:1]:
            out.print(f"[yellow]note:[/] {escape(note)}")
        return
    total = (
        "[yellow]unknown[/] (no price in the catalog)"
        if q.total_usd is None
        else f"[bold]${q.total_usd:,.2f}[/]"
    )
    out.print(f"[cyan]{q.provider}[/] {escape(q.model)}: {total}  ({q.examples:,} examples, {q.epochs} epochs "
              f"{escape('[' + q.epochs_source + ']')}, {q.training_tokens:,} tokens/epoch, {q.billable_tokens:,} billed)")  # fmt: skip
    table = _table("item", "USD", "how", "source", "as of", "verified", keep_whole=("source",))
    for line in q.lines:
        table.add_row(line.item, f"{line.usd:,.4f}", escape(line.detail), escape(line.source), line.as_of,
                      "yes" if line.verified else "[yellow]no[/]")  # fmt: skip
    if q.lines:
        out.print(table)
    if q.tuned_per_1k_requests_usd is not None and q.base_per_1k_requests_usd is not None:
        out.print(f"inference per 1K requests like this data: tuned ${q.tuned_per_1k_requests_usd:,.4f}, "
                  f"base ${q.base_per_1k_requests_usd:,.4f}")  # fmt: skip
    flags = [("token counts are approximate", q.approximate), ("some prices are unverified", not q.verified)]
    for note in [*q.notes, *(text for text, on in flags if on)]:
        out.print(f"[yellow]note:[/] {escape(note)}")


@app.command()
@_handles_errors
def estimate(
    file: Annotated[Path, _in_file("The training data.")],
    model: Annotated[
        str | None,
        typer.Option(
            help="Portable alias or the provider's model id (default: model in the config's [job] or "
            "[providers.NAME]).",
            callback=_not_empty,
        ),
    ] = None,
    provider: ProviderOpt = None,
    as_json: JsonOpt = False,
    compare: Annotated[
        bool,
        typer.Option("--compare", help="Quote every provider offering the model, all at the same epochs."),
    ] = False,
    epochs: Annotated[
        int | None,
        typer.Option(
            help="Epochs (default: the provider's rule; with --compare, 3 for every row).", min=1, max=1000
        ),
    ] = None,
    validation: Annotated[
        Path | None,
        typer.Option(
            help="Validation data (billed on some providers).", exists=True, dir_okay=False, readable=True
        ),
    ] = None,
) -> None:
    """What a fine-tune will cost, line by line, with each price's source and date.

    A model that takes no new jobs is refused, as create_job refuses it (with --compare: shown as
    unavailable).
    """
    from unitune.catalog import COMPARE_EPOCHS
    from unitune.catalog import compare as compare_costs
    from unitune.catalog import estimate as estimate_cost
    from unitune.data import Dataset
    from unitune.types import Hyperparameters

    catalog = _catalog()
    config = load_config()
    defaults = config.job_defaults(provider or config.provider)  # what create_job would use
    model = model or defaults.model
    if not model:
        raise typer.BadParameter(
            f"name the model, or set model under [providers.{provider or config.provider}] (or [job]) in "
            "unitune.toml",
            param_hint="'--model'",
        )
    settings = {**defaults.hyperparameters, **({"epochs": epochs} if epochs is not None else {})}
    hp = Hyperparameters.model_validate(settings)
    data = Dataset.from_jsonl(file)
    valid = Dataset.from_jsonl(validation) if validation else None
    if compare:
        names = [n for n in sorted(catalog.providers) if n != "fake"]
        quotes = compare_costs(
            catalog, data, model=model, providers=names, validation=valid, hyperparameters=hp, today=_today()
        )
        if not quotes:
            raise ConfigurationError(
                f"No provider in the catalog offers {model!r}.",
                fix=f"See the portable names with `unitune models`; close: {', '.join(catalog.suggest_alias(model)) or 'none'}.",
            )
    else:
        name = provider or config.provider
        if name not in catalog.providers:
            from unitune.providers.registry import provider_info

            provider_info(name)  # an unknown name is an error with suggestions
        quotes = [
            estimate_cost(catalog, name, model, data, validation=valid, hyperparameters=hp, today=_today())
        ]
    if as_json:
        _print_json(quotes if compare else quotes[0])
        return
    if compare:
        why = (
            "given with --epochs"
            if epochs
            else "from the config's job hyperparameters"
            if hp.epochs
            else "one shared default, so the rows compare the same job; change it with --epochs"
        )
        _out().print(f"Every provider quoted at {hp.epochs or COMPARE_EPOCHS} epochs ({why}).")
    for q in quotes:
        _show_quote(q)


@app.command()
@_handles_errors
def models(
    provider: ProviderOpt = None,
    as_json: JsonOpt = False,
    alias: Annotated[
        str | None,
        typer.Option(
            "--alias",
            help="Only the providers offering this portable name, and their ids for it.",
            callback=_not_empty,
        ),
    ] = None,
) -> None:
    """The catalog: fine-tunable models per provider, aliases, limits and lifecycle (one state per model)."""
    catalog = _catalog()
    today = _today()
    if provider:
        catalog.provider(provider)  # an unknown name is an error naming the known ones
    pairs = catalog.models(provider)
    if alias is not None:
        offered = set(catalog.offering(alias))
        if not offered:  # a bad option value: a usage error
            raise typer.BadParameter(
                f"no provider offers the alias {alias!r}; close names: "
                f"{', '.join(catalog.suggest_alias(alias)) or 'none'}; `unitune models` lists them all",
                param_hint="'--alias'",
            )
        pairs = [(name, m) for name, m in pairs if (name, m.id) in offered]
    rows = []
    for name, m in pairs:
        entry = catalog.provider(name)
        life = catalog.lifecycle(name, m.id, today=today)
        names = {m.id, *m.aliases}
        rows.append({
            "provider": name, "model": m.id, "aliases": m.aliases, "methods": m.methods, "lora": m.lora,
            "context_tokens": m.context_tokens, "max_example_tokens": m.max_example_tokens,
            "accepts_new_jobs": life.accepts_new_jobs, "lifecycle": life.model_dump(mode="json"),
            "status": entry.status,
            "sunsets": [s.model_dump(mode="json") for s in entry.sunsets if not s.models or names & set(s.models)],
        })  # fmt: skip
    if as_json:
        _print_json(rows)
        return
    title = f"{alias!r} is offered as:" if alias is not None else None
    table = _table("provider", "model", "aliases", "methods", "context", "lifecycle", keep_whole=("model",))
    if title:
        table.title = escape(title)
    for r in rows:
        methods = ", ".join(r["methods"]) + (" (LoRA)" if r["lora"] else "")
        table.add_row(r["provider"], escape(r["model"]), escape(", ".join(r["aliases"])), methods,
                      f"{r['context_tokens']:,}" if r["context_tokens"] else "",
                      _lifecycle_text(r["lifecycle"]["phrase"], r["accepts_new_jobs"]))  # fmt: skip
    _out().print(table)


@app.command()
@_handles_errors
def prices(
    as_json: JsonOpt = False,
    provider: ProviderOpt = None,
    stale: Annotated[bool, typer.Option("--stale", help="Only figures older than --days.")] = False,
    days: Annotated[int, typer.Option(help="Age, in days, that makes a figure stale.", min=0)] = 90,
) -> None:
    """Prices in the catalog with their sources and dates (`--stale`: the ones to re-check)."""
    catalog = _catalog()
    if provider:
        catalog.provider(provider)  # an unknown name is an error naming the known ones
    today = _today()
    if stale:
        entries = [
            e
            for e in catalog.stale(older_than_days=days, today=today)
            if not provider or e.provider == provider
        ]
        if as_json:
            _print_json([e._asdict() for e in entries])
            return
        if not entries:
            _out().print(f"Nothing older than {days} days.")
            return
        table = _table(
            "provider", "model", "figure", "as of", "age (days)", keep_whole=("provider", "model", "as of")
        )
        for e in entries:
            table.add_row(e.provider, escape(e.model), e.what, str(e.as_of), str((today - e.as_of).days))
        _out().print(table)
        return
    rows = []
    for name, m in catalog.models(provider):
        for t in m.training:
            unit = (
                f"${t.per_million_tokens}/1M tokens"
                if t.per_million_tokens is not None
                else f"${t.per_hour}/h"
            )
            rows.append({"provider": name, "model": m.id, "item": f"training {t.method}" + (" LoRA" if t.lora else ""),
                         "price": unit, "source": t.source, "as_of": str(t.as_of), "verified": t.verified})  # fmt: skip
        for label, p in (("tuned inference", m.tuned_inference), ("base inference", m.base_inference)):
            if p is not None:
                rows.append({"provider": name, "model": m.id, "item": label,
                             "price": f"${p.input_per_million}/${p.output_per_million} per 1M in/out",
                             "source": p.source, "as_of": str(p.as_of), "verified": p.verified})  # fmt: skip
    if as_json:
        _print_json(rows)
        return
    table = _table("provider", "model", "item", "price", "as of", "verified", "source", keep_whole=("model",))
    for r in rows:
        table.add_row(r["provider"], escape(r["model"]), r["item"], r["price"], r["as_of"],
                      "yes" if r["verified"] else "[yellow]no[/]", escape(r["source"]))  # fmt: skip
    _out().print(table)


@app.command()
@_handles_errors
def demo(
    provider: Annotated[
        str, typer.Option("--provider", "-p", help="Provider to run the demo on (fake: simulated, seconds).")
    ] = "local",
    as_json: JsonOpt = False,
    # Sized to finish in under 10 minutes on two CPU cores without AMX (see docs/local.md).
    examples: Annotated[int, typer.Option(help="How many tickets to generate.", min=10)] = 200,
    eval_examples: Annotated[
        int, typer.Option(help="Validation tickets to evaluate base vs tuned on.", min=1)
    ] = 24,
    epochs: Annotated[int, typer.Option(help="Training epochs.", min=1, max=1000)] = 2,
    workdir: Annotated[
        Path | None, typer.Option(help="Where to write the demo files (created).", file_okay=False)
    ] = None,
) -> None:
    """Fine-tune a model to triage support tickets, end to end: validate, split, quote, train, evaluate."""
    from unitune.demo.run import run_demo

    result = run_demo(
        provider=provider, examples=examples, eval_examples=eval_examples, epochs=epochs, workdir=workdir,
        console=None if as_json else _out(),
    )  # fmt: skip
    if as_json:
        _print_json(result)


def only(name: str) -> typer.Typer:
    """The app with one command (or group) of those registered: `name`, with the root options.

    Building a click command from a function's signature takes ~2 ms a command, 70 ms for all of
    them: `unitune validate` builds only its own.
    """
    from typer.main import get_command_name

    one = copy.copy(app)
    one.registered_commands = [
        c
        for c in app.registered_commands
        if (c.name or get_command_name(getattr(c.callback, "__name__", ""))) == name
    ]
    one.registered_groups = [g for g in app.registered_groups if g.name == name]
    return one


def help_only() -> typer.Typer:
    """The app with every command replaced by a stand-in without parameters: the top-level help.

    `unitune --help` lists each command's name and first line of help; building every command's
    parameters for it would take ~45 ms of its ~0.2 s. A test checks this help is the whole app's.
    """

    def stand_in(callback: Callable[..., Any] | None) -> Callable[[], None]:
        def command() -> None:
            raise AssertionError("a stand-in command is only listed")  # pragma: no cover

        command.__name__ = getattr(callback, "__name__", "command")
        command.__doc__ = getattr(callback, "__doc__", None)
        return command

    one = copy.copy(app)
    one.registered_commands = []
    for info in app.registered_commands:
        info = copy.copy(info)
        info.callback = stand_in(info.callback)
        one.registered_commands.append(info)
    one.registered_groups = []
    for group in app.registered_groups:
        group = copy.copy(group)
        sub = copy.copy(group.typer_instance)
        if sub is not None:
            sub.registered_commands, sub.registered_groups = [], []
            if sub.registered_callback is not None:
                sub.registered_callback = copy.copy(sub.registered_callback)
                sub.registered_callback.callback = stand_in(sub.registered_callback.callback)
        group.typer_instance = sub
        one.registered_groups.append(group)
    return one


__all__ = ["app", "help_only", "only"]
