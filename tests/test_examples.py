"""The examples run as a user would run them: a fresh process, the fake provider, no key."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


#: Each example and lines its output must hold: the job it ran reached its end and was used.
EXPECTED = {
    "quickstart.py": ["succeeded 100%", "[ft:llama-3.1-8b-instruct:fake:"],
    "openai_finetune.py": ["checkpoint at step 10: ft:gpt-4o-mini:", "[ft:gpt-4o-mini:fake:triage:"],
    "together_finetune.py": ["checkpoint ftckpt-fake-", "[ft:llama-3.1-8b-instruct:fake:triage:"],
    "bedrock_finetune.py": ["succeeded (raw: succeeded)", "train loss ", "[ft:nova-micro:fake:triage:"],
    "mistral_models.py": ["created ftjob-fake-"],
    "vertex_finetune.py": [
        "succeeded (raw: JOB_STATE_SUCCEEDED)",
        "checkpoint at step 20: ft:gemini-3.5-flash:fake:",
    ],
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_runs_on_the_fake_provider(name: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UNITUNE_", "OPENAI_"))}
    env["UNITUNE_HOME"] = str(tmp_path / "home")
    out = subprocess.run([sys.executable, str(EXAMPLES / name)], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    for expected in EXPECTED[name]:
        assert expected in out.stdout, out.stdout[-2000:]
    assert "Traceback" not in out.stderr
