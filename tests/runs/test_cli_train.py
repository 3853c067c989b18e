"""`unitune train`, `retrain` and `runs` on the command line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.runs.conftest import job_toml
from unitune.cli import app
from unitune.providers.fake import FakeProvider

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "jobs" / "tickets.toml"
runner = CliRunner()


def test_the_example_job_file_runs_on_the_real_fake_provider_in_seconds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No fixture standing in: `--provider fake` builds the registry's fake, as a user's shell would.
    monkeypatch.setenv("UNITUNE_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["train", str(EXAMPLE), "--provider", "fake"])
    assert result.exit_code == 0, result.output
    assert "1. data: train.jsonl: OK: 160 examples" in result.output
    assert "verdict:" in result.output
    assert "succeeded" in result.output
    listed = runner.invoke(app, ["runs", "--json"])
    (run,) = json.loads(listed.stdout)
    assert (run["provider"], run["model"], run["status"]) == ("fake", "smollm2-135m-instruct", "succeeded")
    shown = runner.invoke(app, ["runs", "show", run["run_id"][:5]])
    assert shown.exit_code == 0
    assert run["job_id"] in shown.output
    assert '"epochs": 2' in shown.output


def test_train_a_data_file_with_flags_then_retrain_it(
    tmp_path: Path, tickets: Path, fake: FakeProvider
) -> None:
    result = runner.invoke(app, ["train", str(tickets), "--provider", "together", "--model", "llama-3.1-8b-instruct",
                                 "--epochs", "3", "--validation-split", "0.25", "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["run"]["decision"] == "ship"
    assert out["job"]["hyperparameters"]
    assert json.loads(out["run"]["spec_json"])["hyperparameters"]["epochs"] == 3
    more = tmp_path / "more.jsonl"
    shutil.copy(out["run"]["training_path"], more)
    child = runner.invoke(app, ["retrain", out["run"]["run_id"], "--data", str(more)])
    assert child.exit_code == 0, child.output
    assert "data: same examples (75)" in child.output
    assert "parent" in child.output
    listed = json.loads(runner.invoke(app, ["runs", "--json"]).stdout)
    assert [r["parent_id"] for r in listed] == [out["run"]["run_id"], None]


def test_a_grid_over_two_providers_prints_a_leaderboard(tmp_path: Path, fake: FakeProvider) -> None:
    (tmp_path / "unitune.toml").write_text(
        '[providers.bedrock]\nregion = "us-east-1"\nbucket = "b"\nrole_arn = "arn:aws:iam::123456789012:role/r"\n'
    )
    result = runner.invoke(app, ["train", str(job_toml(tmp_path)), "--grid", "epochs=1,2", "--grid", "batch_size=8,16",
                                 "--providers", "together,bedrock"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "best first" in result.output
    assert "together epochs=1 bs=8" in result.output
    assert "bedrock: base" in result.output


def test_bad_job_files_are_one_line_errors_and_start_nothing(tmp_path: Path, fake: FakeProvider) -> None:
    path = job_toml(tmp_path)
    path.write_text(path.read_text().replace("epochs = 2", "epochz = 2"))
    result = runner.invoke(app, ["train", str(path)])
    assert result.exit_code == 1
    assert "line 7: unknown key 'hyperparameters.epochz'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    over = runner.invoke(
        app, ["train", str(job_toml(tmp_path)), "--budget", "0.0000001", "--provider", "together"]
    )
    assert over.exit_code == 1
    assert "BudgetExceeded" in over.stderr
    assert "budget_usd" in over.stderr
    grid = runner.invoke(app, ["train", str(job_toml(tmp_path)), "--grid", "epochs"])
    assert grid.exit_code == 1
    assert "is not KEY=V1,V2" in grid.stderr
    missing = runner.invoke(app, ["retrain", "nosuchrun"])
    assert missing.exit_code == 1
    assert "unitune runs" in missing.stderr
    assert fake.calls_to("upload") == []


def test_ctrl_c_without_a_terminal_leaves_the_job_running_and_says_how_to_reattach(
    tmp_path: Path, fake: FakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupt(seconds: float) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(fake.clock, "sleep", interrupt)
    result = runner.invoke(app, ["train", str(job_toml(tmp_path)), "--provider", "together"])
    assert result.exit_code == 130
    assert "1 job(s) still running" in result.stderr
    assert "Reattach by running the same command again" in result.stderr
    assert fake.calls_to("cancel_job") == []
