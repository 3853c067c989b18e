"""The `unitune` command line. Importing `unitune` does not import this (Typer and Rich load here).

`main` imports the module of the one command it runs and builds only that command (`unitune
validate` never imports the export, serve or training commands), so a command starts in the time
its own work needs. `app`, the Typer app with every command, is put together on first access: the
top-level `--help`, an unknown command, the tests and the docs' CLI reference use it.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator, Sequence
from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import typer

#: The module under `unitune.cli` that defines each top-level command (or group). A test checks it
#: against what the modules register, so a new command cannot be missing from it.
COMMANDS: dict[str, str] = {
    **dict.fromkeys(
        [
            "providers", "jobs", "status", "wait", "events", "cancel", "pause", "resume", "checkpoints",
            "chat", "validate", "convert", "split", "estimate", "models", "prices", "demo",
        ],
        "_app",
    ),
    "evaluate": "_evaluate_cmds",
    "review": "_evaluate_cmds",
    "export": "_export_cmds",
    "gateway": "_gateway_cmds",
    **dict.fromkeys(["upload", "create", "metrics", "files", "clean"], "_job_cmds"),
    "migrate": "_migrate_cmds",
    "monitor": "_monitor_cmds",
    "serve": "_serve_cmds",
    **dict.fromkeys(["train", "retrain", "runs"], "_train_cmds"),
}  # fmt: skip


def _full_app() -> typer.Typer:
    for module in sorted(set(COMMANDS.values())):
        import_module(f"unitune.cli.{module}")  # each registers its commands on the one app
    from unitune.cli._app import app

    return app


def __getattr__(name: str) -> Any:
    # `from unitune.cli import app`: the whole app, every command registered.
    if name == "app":
        return _full_app()
    raise AttributeError(f"module 'unitune.cli' has no attribute {name!r}")


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the `unitune` script."""
    args = list(sys.argv[1:] if argv is None else argv)
    module = COMMANDS.get(args[0]) if args else None
    if args in ([], ["--help"]):  # the list of commands: their names and help, not their options
        _full_app()
        from unitune.cli._app import help_only

        help_only()(args=args, prog_name="unitune")
        return
    if module is None:  # an option (--version) or an unknown command
        _full_app()(args=args, prog_name="unitune")
        return
    with _no_pydantic_plugins(args[0] in _LOCAL):
        if args[0] == "validate":
            from unitune.cli import _warm

            _warm.start(args[1:])  # the check's imports and tokenizer load beside the CLI's (Linux)
        import_module(f"unitune.cli.{module}")
        from unitune.cli._app import only

        only(args[0])(args=args, prog_name="unitune")


#: Commands that only read local files and print: they run without pydantic's plugins, whose
#: discovery scans every installed package's metadata (~20 ms in a venv of a few hundred packages)
#: and which observe validations no one instruments in these commands. Typer does the same for its
#: own adapters. A user who set PYDANTIC_DISABLE_PLUGINS keeps their value.
_LOCAL = frozenset({"validate", "convert", "split", "estimate", "prices", "models"})


@contextlib.contextmanager
def _no_pydantic_plugins(applies: bool) -> Iterator[None]:
    if not applies or "PYDANTIC_DISABLE_PLUGINS" in os.environ:
        yield
        return
    os.environ["PYDANTIC_DISABLE_PLUGINS"] = "__all__"
    try:
        yield
    finally:
        os.environ.pop("PYDANTIC_DISABLE_PLUGINS", None)


__all__ = ["COMMANDS", "app", "main"]
