"""`unitune gateway`: OpenAI's fine-tuning API over a unitune provider.

A command of its own rather than `unitune serve --fine-tuning`: `serve` answers chat with loaded
models, the gateway runs jobs on a provider, and they share neither options nor state. It registers
on the same Typer app and shares its error reporting; FastAPI and uvicorn load only when it runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from unitune.cli._app import _err, _handles_errors, _out, app

if TYPE_CHECKING:
    from unitune.gateway import GatewayKey

__all__ = ["gateway", "read_keys_file"]


def read_keys_file(path: Path) -> list[GatewayKey]:
    """The tenants in a keys file: one `KEY [MAX_COST_USD]` per line; `#` starts a comment.

    A file keeps the keys out of the process list and the shell history, and gives each tenant its
    own budget cap. Errors name the line, never the key.
    """
    from pydantic import SecretStr

    from unitune.errors import ConfigurationError
    from unitune.gateway import GatewayKey

    try:
        text = path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigurationError(f"Cannot read the keys file {str(path)!r}: {e}.") from None
    keys = []
    for number, line in enumerate(text.splitlines(), 1):
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        cap: float | None = None
        if len(words) > 2 or (len(words) == 2 and not _is_number(words[1])):
            raise ConfigurationError(
                f"{path}:{number}: expected KEY or KEY MAX_COST_USD.",
                fix="e.g. `sk-team-a 50` caps team a at $50 a job.",
            )
        if len(words) == 2:
            cap = float(words[1])
        keys.append(GatewayKey(SecretStr(words[0]), max_cost_usd=cap))
    return keys


def _is_number(word: str) -> bool:
    try:
        return float(word) >= 0
    except ValueError:
        return False


def _mapping(pairs: list[str]) -> dict[str, str]:
    """`--map OPENAI_MODEL=PROVIDER:MODEL` options as a dict."""
    out: dict[str, str] = {}
    for pair in pairs:
        name, sep, target = pair.partition("=")
        if not sep or not name.strip() or ":" not in target:
            raise typer.BadParameter(
                f"{pair!r} is not OPENAI_MODEL=PROVIDER:MODEL (e.g. "
                "gpt-4o-mini-2024-07-18=together:llama-3.1-8b-instruct)",
                param_hint="--map",
            )
        out[name.strip()] = target.strip()
    return out


@app.command()
@_handles_errors
def gateway(
    provider: Annotated[
        str | None,
        typer.Option(help="The provider jobs run on (default: the config's).", show_default=False),
    ] = None,
    host: Annotated[
        str, typer.Option(help="Address to listen on; not loopback needs --api-key.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port (0: any free port).", min=0, max=65535)] = 8000,
    api_key: Annotated[
        list[str] | None,
        typer.Option(
            "--api-key",
            help="A key clients send as 'Authorization: Bearer KEY'; repeat for more tenants, each "
            "with its own files and jobs.",
            envvar="UNITUNE_GATEWAY_API_KEY",
            show_default=False,
        ),
    ] = None,
    keys_file: Annotated[
        Path | None,
        typer.Option(
            "--keys-file",
            help="A file of tenants, one 'KEY [MAX_COST_USD]' per line (keeps keys off the command line).",
            dir_okay=False,
            show_default=False,
        ),
    ] = None,
    mapping: Annotated[
        list[str] | None,
        typer.Option(
            "--map",
            help="OPENAI_MODEL=PROVIDER:MODEL, e.g. gpt-4o-mini-2024-07-18=together:llama-3.1-8b-instruct "
            "(repeatable). A model may also be named PROVIDER:MODEL directly.",
            show_default=False,
        ),
    ] = None,
    max_cost_usd: Annotated[
        float | None,
        typer.Option(help="Refuse any job quoted above this many dollars.", min=0, show_default=False),
    ] = None,
) -> None:
    """Serve OpenAI's fine-tuning API (/v1/files, /v1/uploads, /v1/fine_tuning/jobs) over a provider."""
    from pydantic import SecretStr

    from unitune.gateway import GatewayConfig, start_gateway

    settings = GatewayConfig(
        provider=provider,
        host=host,
        port=port,
        api_keys=(
            *(SecretStr(k) for k in api_key or ()),
            *(read_keys_file(keys_file) if keys_file is not None else ()),
        ),
        models=_mapping(mapping or []),
        max_cost_usd=max_cost_usd,
    )  # checked before anything starts: a refused host costs nothing
    with start_gateway(settings) as server:
        out = _out()
        out.print(
            f"OpenAI fine-tuning API on {escape(server.url)} over {escape(server.state.provider)}. "
            "Ctrl-C to stop.",
            highlight=False,
        )
        for name, target in settings.models.items():
            out.print(f"  {escape(name)} -> {escape(target)}", highlight=False)
        out.print(f"state: {escape(str(server.state.store.root))}", highlight=False)
        if settings.api_keys:
            out.print(f"{len(settings.api_keys)} API key(s); each sees only its own files and jobs")
        try:
            server.wait()
        except KeyboardInterrupt:
            _err().print("stopping")
