"""The examples run as a user would run them: a fresh process, the fake provider, no key."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.mark.parametrize(
    "name",
    [
        "quickstart.py",
        "openai_finetune.py",
        "together_finetune.py",
        "bedrock_finetune.py",
        "mistral_models.py",
    ],
)
def test_example_runs_on_the_fake_provider(name: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UNITUNE_", "OPENAI_"))}
    env["UNITUNE_HOME"] = str(tmp_path / "home")
    out = subprocess.run([sys.executable, str(EXAMPLES / name)], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert "succeeded" in out.stdout or "job" in out.stdout
    assert "Traceback" not in out.stderr
