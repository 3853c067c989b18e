"""`unitune export` through Typer's runner: the local provider of the config's home, JSON and text
output, usage errors (exit 2) and refusals (exit 1, one line)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

import unitune.cli._export_cmds  # noqa: F401  (registers `export` on the app)
from unitune.cli import app
from unitune.errors import ConfigurationError

from .conftest import Job


def invoke(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def _job_in_home(job: Job) -> Job:
    """The session's job, copied where `-p local` looks: <UNITUNE_HOME>/local."""
    home = Path(os.environ["UNITUNE_HOME"]) / "local"
    shutil.copytree(job.home / "jobs" / job.id, home / "jobs" / job.id)
    return Job(home, job.id, job.base)


def test_export_peft_as_json(job: Job, tmp_path: Path) -> None:
    here = _job_in_home(job)
    result = invoke(
        "export", here.model, "--format", "peft", "-o", str(tmp_path / "out"), "-p", "local", "--json"
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["format"] == "peft"
    assert data["model"] == here.model
    assert data["base_model"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert str(tmp_path / "out" / "adapter_config.json") in data["files"]


def test_export_text_output_then_refusal_and_force(job: Job, tmp_path: Path) -> None:
    here = _job_in_home(job)
    out = tmp_path / "out"
    first = invoke("export", here.id, "-f", "peft", "-o", str(out), "-p", "local")
    assert first.exit_code == 0, first.output
    assert first.stdout.startswith(f"exported {here.model} as peft to {out}")
    assert "note: base_model_name_or_path: HuggingFaceTB/SmolLM2-135M-Instruct" in first.stdout

    again = invoke("export", here.id, "-f", "peft", "-o", str(out), "-p", "local")
    assert again.exit_code == 1, again.output
    assert len(again.stderr.splitlines()) == 1, again.stderr
    assert "ConfigurationError" in again.stderr
    assert "--force" in again.stderr

    forced = invoke("export", here.id, "-f", "peft", "-o", str(out), "-p", "local", "--force")
    assert forced.exit_code == 0, forced.output


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    bad = invoke("export", "local:x", "--format", "onnx", "-o", str(tmp_path / "o"), "-p", "local")
    assert bad.exit_code == 2
    assert "'onnx' is not one of 'peft', 'merged', 'gguf', 'ollama'" in bad.stderr
    dtype = invoke(
        "export", "local:x", "-f", "gguf", "--dtype", "q4", "-o", str(tmp_path / "o"), "-p", "local"
    )
    assert dtype.exit_code == 2
    assert "'q4' is not one of 'f16', 'f32'" in dtype.stderr
    missing = invoke("export", "local:x", "-f", "gguf", "-p", "local")
    assert missing.exit_code == 2
    assert "--output" in missing.stderr


def test_a_hosted_vendor_refuses_with_what_it_allows(tmp_path: Path) -> None:
    result = invoke("export", "ft-123", "-f", "merged", "-o", str(tmp_path / "o"), "-p", "together", "--json")
    assert result.exit_code == 1
    error = json.loads(result.stdout)["error"]
    assert error["type"] == "UnsupportedFeatureError"
    assert "together lets you download the tuned weights" in error["message"]
    assert "fine_tuning.download" in error["message"]


def test_client_export_takes_a_job_or_a_model_id(job: Job, tmp_path: Path) -> None:
    from unitune import FineTuneClient
    from unitune import Job as UnituneJob
    from unitune.types import JobStatus

    here = _job_in_home(job)
    with FineTuneClient("local", ledger=False) as client:
        by_id = client.export(here.model, format="peft", path=tmp_path / "by-id")
        done = UnituneJob(id=here.id, provider="local", status=JobStatus.SUCCEEDED, raw_status="succeeded",
                          model="HuggingFaceTB/SmolLM2-135M-Instruct", fine_tuned_model=here.model)  # fmt: skip
        by_job = client.export(done, format="peft", path=tmp_path / "by-job")
        running = done.model_copy(update={"status": JobStatus.RUNNING, "fine_tuned_model": None})
        with pytest.raises(ConfigurationError, match="no tuned model yet"):
            client.export(running, format="peft", path=tmp_path / "nothing")
    assert by_id.model == by_job.model == here.model
    assert (tmp_path / "by-job" / "adapter_config.json").is_file()
    assert not (tmp_path / "nothing").exists()
