"""The `unitune` command line. Importing `unitune` does not import this (Typer and Rich load here)."""

# Each of these registers its commands on the one Typer app (`_app.app`).
from unitune.cli import (  # noqa: F401
    _evaluate_cmds,
    _export_cmds,
    _gateway_cmds,
    _job_cmds,
    _migrate_cmds,
    _monitor_cmds,
    _serve_cmds,
    _train_cmds,
)
from unitune.cli._app import app, main

__all__ = ["app", "main"]
