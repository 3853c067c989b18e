"""The `unitune` command line. Importing `unitune` does not import this (Typer and Rich load here)."""

from unitune.cli import _evaluate_cmds  # noqa: F401  (registers `evaluate` and `review` on the app)
from unitune.cli._app import app, main

__all__ = ["app", "main"]
