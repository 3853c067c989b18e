"""`unitune serve`: local and hosted models behind one OpenAI-compatible endpoint.

A module of its own, like `_evaluate_cmds.py`: the command registers on the same Typer app and
shares its error reporting. FastAPI, uvicorn and torch load only when the command runs.

`unitune serve --fine-tuning` runs the fine-tuning gateway instead, the same server as
`unitune gateway` (`_gateway_cmds.run_gateway`): one place to look for "start a server".
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from unitune.cli._app import _err, _handles_errors, _out, app

if TYPE_CHECKING:
    from unitune.serve._backends import ServedModels

__all__ = ["serve"]


@app.command()
@_handles_errors
def serve(
    ctx: typer.Context,
    models: Annotated[
        list[str] | None,
        typer.Argument(
            help="Models to serve: local:JOB-ID, a model or adapter folder, a base model id, or "
            "PROVIDER:MODEL (forwarded to that provider).",
            show_default=False,
        ),
    ] = None,
    host: Annotated[
        str, typer.Option(help="Address to listen on; not loopback needs --api-key.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port (0: any free port).", min=0, max=65535)] = 8000,
    api_key: Annotated[
        str | None,
        typer.Option(
            help="Require this key as 'Authorization: Bearer KEY' (with --fine-tuning: instead of "
            "the keys in \\[\\[gateway.keys]]).",
            envvar="UNITUNE_SERVE_API_KEY",
            show_default=False,
        ),
    ] = None,
    backend: Annotated[
        str, typer.Option(help="auto or transformers (vllm: not supported by this build yet).")
    ] = "auto",
    log: Annotated[
        Path | None,
        typer.Option(
            "--log",
            help="The request log (SQLite). Default: <unitune home>/serve/requests.sqlite.",
            dir_okay=False,
        ),
    ] = None,
    no_log: Annotated[bool, typer.Option("--no-log", help="Keep no request log.")] = False,
    log_text: Annotated[
        bool,
        typer.Option("--log-text", help="Also log prompt and answer text (off by default: personal data)."),
    ] = False,
    redact_pii: Annotated[
        bool, typer.Option("--redact-pii", help="Redact emails, phone numbers, cards, IDs from logged text.")
    ] = False,
    ab: Annotated[
        str | None,
        typer.Option(
            "--ab",
            help="A/B split, e.g. local:ftjob-a=0.9,local:ftjob-b=0.1: a request for either model goes to the "
            "arm its user id (X-Unitune-User header, else the body's user) hashes to.",
        ),
    ] = None,
    max_tokens: Annotated[int, typer.Option(help="The most tokens one request may ask for.", min=1)] = 2048,
    max_batch_size: Annotated[
        int, typer.Option(help="Concurrent requests generated together (transformers).", min=1)
    ] = 8,
    fine_tuning: Annotated[
        bool,
        typer.Option(
            "--fine-tuning",
            help="Serve OpenAI's fine-tuning API instead: the same server as `unitune gateway` "
            "(settings from \\[gateway] in unitune.toml; takes no MODEL).",
        ),
    ] = False,
    provider: Annotated[
        str | None,
        typer.Option(
            help="With --fine-tuning: the provider jobs run on (default: \\[gateway] provider, else the config's).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Serve models behind an OpenAI-compatible API (/v1/chat/completions, /v1/models, /health).

    With --fine-tuning, serve OpenAI's fine-tuning API (/v1/files, /v1/uploads,
    /v1/fine_tuning/jobs) over a provider instead: the same server as `unitune gateway`, which
    has the options of its own (--map, --keys-file, --max-cost-usd).
    """
    from pydantic import SecretStr

    from unitune.config import home_dir, load_config

    if fine_tuning:
        _serve_fine_tuning(ctx, models, host=host, port=port, api_key=api_key, provider=provider)
        return
    if provider is not None:
        raise typer.BadParameter(
            "--provider is for --fine-tuning; a served model names its provider as PROVIDER:MODEL",
            param_hint="--provider",
        )
    from unitune.serve._ab import ABSplit
    from unitune.serve._app import ServeConfig, start_server
    from unitune.serve._backends import ServedModels

    config = load_config()
    log_path = None if no_log else (log or home_dir(config) / "serve" / "requests.sqlite")
    settings = ServeConfig(
        models=tuple(models or ()),
        host=host,
        port=port,
        api_key=SecretStr(api_key) if api_key is not None else None,
        backend=backend,
        max_tokens=max_tokens,
        default_max_tokens=min(256, max_tokens),
        log_path=log_path,
        log_text=log_text,
        redact_pii=redact_pii,
        ab=ABSplit.parse(ab) if ab is not None else None,
        max_batch_size=max_batch_size,
    )  # checked before any model loads: a refused host or backend costs nothing
    if not settings.served_models:
        raise typer.BadParameter("give at least one model to serve (or --ab)", param_hint="MODEL")
    err = _err()
    served = ServedModels.load(
        settings.served_models,
        backend=settings.backend,
        max_batch_size=settings.max_batch_size,
        config=config,
        progress=lambda line: err.print(escape(line), highlight=False),
    )
    try:
        with start_server(settings, models=served) as server:
            _announce(server.url, served, log_path, settings.api_key is not None)
            try:
                server.wait()
            except KeyboardInterrupt:
                err.print("stopping")
    finally:
        served.close()


#: serve's options that load and log models: meaningless for the gateway, so refused with it.
_MODEL_OPTIONS = ("backend", "log", "no_log", "log_text", "redact_pii", "ab", "max_tokens", "max_batch_size")


def _serve_fine_tuning(
    ctx: typer.Context,
    models: list[str] | None,
    *,
    host: str,
    port: int,
    api_key: str | None,
    provider: str | None,
) -> None:
    """`serve --fine-tuning`: the gateway, with serve's host, port and key over `[gateway]`."""
    from unitune.cli._gateway_cmds import _given, gateway_settings, run_gateway
    from unitune.config import load_config

    if models:
        # The gateway's chat answers the tenants' own tuned models; a MODEL here would be ignored.
        raise typer.BadParameter(
            "--fine-tuning serves no MODEL (its chat answers the models its jobs tuned); "
            "run `unitune serve MODEL` separately to serve models",
            param_hint="MODEL",
        )
    for name in _MODEL_OPTIONS:
        if _given(ctx, name):
            flag = "--" + name.replace("_", "-")
            raise typer.BadParameter(f"{flag} is for serving models, not with --fine-tuning", param_hint=flag)
    settings = gateway_settings(
        load_config(),
        provider=provider,
        host=host if _given(ctx, "host") else None,
        port=port if _given(ctx, "port") else None,
        api_keys=[api_key] if api_key is not None else None,
    )
    run_gateway(settings)


def _announce(url: str, served: ServedModels, log_path: Path | None, keyed: bool) -> None:
    out = _out()
    out.print(f"Serving {len(served.ids)} model(s) on {escape(url)} (OpenAI-compatible). Ctrl-C to stop.")
    for model in served.ids:
        out.print(f"  {escape(model)}", highlight=False)
    for model, why in served.failed.items():
        _err().print(f"[yellow]not served:[/] {escape(model)}: {escape(why)}", highlight=False)
    out.print(f"request log: {escape(str(log_path))}" if log_path else "request log: off", highlight=False)
    if keyed:
        out.print("clients must send the API key as 'Authorization: Bearer KEY'")
