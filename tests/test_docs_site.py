"""The documentation site builds strictly (a broken link, a missing reference or a docstring warning
fails) and its search finds every CLI command and every public class."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("mkdocs", reason="the docs site needs unitune[docs] (in the dev extra)")
pytest.importorskip("mkdocstrings")

ROOT = Path(__file__).resolve().parents[1]
PUBLIC = ["unitune", "unitune.client", "unitune.errors", "unitune.types", "unitune.config", "unitune.data",
          "unitune.catalog", "unitune.evaluate", "unitune.runs", "unitune.tracking", "unitune.export",
          "unitune.migrate", "unitune.testing", "unitune.providers.base"]  # fmt: skip


@pytest.fixture(scope="module")
def search_index(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    site = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "DISABLE_MKDOCS_2_WARNING": "true"}
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    docs: list[dict[str, Any]] = json.loads((site / "search" / "search_index.json").read_text())["docs"]
    return docs


def _commands() -> list[str]:
    import typer

    from unitune.cli import app

    found: list[str] = []

    def walk(cmd: Any, path: str) -> None:
        for name, sub in (getattr(cmd, "commands", None) or {}).items():
            if not getattr(sub, "hidden", False):
                found.append(f"{path} {name}")
                walk(sub, f"{path} {name}")

    walk(typer.main.get_command(app), "unitune")
    return found


def test_search_finds_every_cli_command(search_index: list[dict[str, Any]]) -> None:
    titles = {doc["title"].replace("<code>", "").replace("</code>", "") for doc in search_index}
    commands = _commands()
    assert {"unitune train", "unitune runs show", "unitune validate"} <= set(commands)
    assert [c for c in commands if c not in titles] == []


def test_search_finds_every_public_class(search_index: list[dict[str, Any]]) -> None:
    import importlib

    anchors = {
        doc["location"].split("#")[-1].rsplit(".", 1)[-1] for doc in search_index if "#" in doc["location"]
    }
    missing = []
    for module_name in PUBLIC:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            if isinstance(getattr(module, name), type) and name not in anchors:
                missing.append(f"{module_name}.{name}")
    assert missing == []


def test_links_outside_the_docs_point_at_the_repository(search_index: list[dict[str, Any]]) -> None:
    runs = next(doc["text"] for doc in search_index if doc["location"] == "runs/")
    assert "../bench" not in runs
