"""`unitune gateway`: OpenAI's fine-tuning API over a unitune provider.

`unitune serve --fine-tuning` is the same server (it calls `run_gateway`): `serve` is where users
look for "a server", the gateway is where the options of its own live (`--map`, `--keys-file`).
Both read `[gateway]` in unitune.toml, and an option given on the command line wins over it. It
registers on the same Typer app and shares its error reporting; FastAPI and uvicorn load only
when it runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from unitune.cli._app import _err, _handles_errors, _out, app

if TYPE_CHECKING:
    from collections.abc import Mapping

    from unitune.config import UnituneConfig
    from unitune.gateway import GatewayConfig, GatewayKey

__all__ = ["gateway", "gateway_settings", "read_keys_file", "run_gateway"]

#: The host and port when neither the command line nor `[gateway]` names one.
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000


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


def gateway_settings(
    config: UnituneConfig,
    *,
    provider: str | None = None,
    host: str | None = None,
    port: int | None = None,
    api_keys: list[str] | None = None,
    keys_file: Path | None = None,
    mapping: Mapping[str, str] | None = None,
    max_cost_usd: float | None = None,
    env: Mapping[str, str] | None = None,
) -> GatewayConfig:
    """The gateway's settings: each argument given (not None) wins over `[gateway]` in `config`.

    Keys: `api_keys` and `keys_file`, when either is given, replace `[[gateway.keys]]` (a key
    named on the command line is meant to be the one that works, not one more). `mapping` is merged
    over `[gateway.models]` name by name. The provider: `provider`, then `$UNITUNE_PROVIDER` (which
    overrides any file's provider), then `[gateway] provider`, then the config's provider.
    Raises `ConfigurationError` (never showing a key) when a key's variable is unset or a value is bad.
    """
    import os

    from pydantic import SecretStr

    from unitune.config import PROVIDER_ENV
    from unitune.gateway import GatewayConfig, GatewayKey

    env = os.environ if env is None else env
    section = config.gateway
    keys: tuple[SecretStr | GatewayKey, ...]
    if api_keys or keys_file is not None:
        keys = (
            *(SecretStr(k) for k in api_keys or ()),
            *(read_keys_file(keys_file) if keys_file is not None else ()),
        )
    else:
        keys = tuple(GatewayKey(k.secret(env), max_cost_usd=k.max_cost_usd) for k in section.keys)
    return GatewayConfig(
        provider=provider or env.get(PROVIDER_ENV) or section.provider,
        host=host if host is not None else section.host or DEFAULT_HOST,
        port=port if port is not None else section.port if section.port is not None else DEFAULT_PORT,
        api_keys=keys,
        models={**section.models, **(mapping or {})},
        max_cost_usd=max_cost_usd if max_cost_usd is not None else section.max_cost_usd,
        unitune_config=config,
    )  # checked before anything starts: a refused host costs nothing


def run_gateway(settings: GatewayConfig) -> None:
    """Serve `settings` until Ctrl-C, saying where (never a key) on standard output."""
    from unitune.gateway import start_gateway

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


def _given(ctx: typer.Context, name: str) -> bool:
    """Whether option `name` was given on the command line or by its env var.

    Whether option `name` came from the command line or its env var, not its default: only
    then does it win over `[gateway]` (the defaults still show in --help).
    """
    # By name: typer vendors its own click in some versions, so click's enum may not be typer's.
    source = ctx.get_parameter_source(name)
    return source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP")


@app.command()
@_handles_errors
def gateway(
    ctx: typer.Context,
    provider: Annotated[
        str | None,
        typer.Option(
            help="The provider jobs run on (default: \\[gateway] provider, else the config's).",
            show_default=False,
        ),
    ] = None,
    host: Annotated[
        str,
        typer.Option(
            help="Address to listen on; not loopback needs --api-key. \\[gateway] host if not given."
        ),
    ] = DEFAULT_HOST,
    port: Annotated[
        int, typer.Option(help="Port (0: any free port). \\[gateway] port if not given.", min=0, max=65535)
    ] = DEFAULT_PORT,
    api_key: Annotated[
        list[str] | None,
        typer.Option(
            "--api-key",
            help="A key clients send as 'Authorization: Bearer KEY'; repeat for more tenants, each "
            "with its own files and jobs. Given (or --keys-file), replaces \\[\\[gateway.keys]].",
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
            "(repeatable; over \\[gateway.models]). A model may also be named PROVIDER:MODEL directly.",
            show_default=False,
        ),
    ] = None,
    max_cost_usd: Annotated[
        float | None,
        typer.Option(
            help="Refuse any job quoted above this many dollars (default: \\[gateway] max_cost_usd).",
            min=0,
            show_default=False,
        ),
    ] = None,
) -> None:
    # "\\[": rich renders the help, and would take a TOML table name such as [gateway] for markup.
    r"""Serve OpenAI's fine-tuning API (/v1/files, /v1/uploads, /v1/fine_tuning/jobs) over a provider.

    The same server as `unitune serve --fine-tuning`. Settings not given here come from \[gateway]
    in unitune.toml (provider, host, port, max_cost_usd, \[gateway.models], \[\[gateway.keys]]).
    """
    from unitune.config import load_config

    settings = gateway_settings(
        load_config(),
        provider=provider,
        host=host if _given(ctx, "host") else None,
        port=port if _given(ctx, "port") else None,
        api_keys=api_key,
        keys_file=keys_file,
        mapping=_mapping(mapping or []),
        max_cost_usd=max_cost_usd,
    )
    run_gateway(settings)
