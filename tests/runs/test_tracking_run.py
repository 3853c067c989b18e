"""A run tracked to a real MLflow store, read back through MLflow's own client."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.runs.conftest import job_toml
from unitune import FineTuneClient
from unitune.providers.fake import FakeProvider

mlflow = pytest.importorskip("mlflow", reason="the tracking tests need unitune[mlflow] (in the dev extra)")


def test_a_run_logs_params_step_metrics_scores_and_files_to_mlflow(
    tmp_path: Path, fake: FakeProvider
) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    job = job_toml(tmp_path, f'[tracking]\nbackend = "mlflow"\nuri = "{uri}"\nexperiment = "tickets"\n')
    result = FineTuneClient("together").train(job)
    assert result.run.tracking is not None

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("tickets")
    assert experiment is not None
    (logged,) = client.search_runs([experiment.experiment_id])
    assert logged.info.status == "FINISHED"
    assert logged.data.tags["unitune.run_id"] == result.run.run_id
    assert logged.data.params["provider"] == "together"
    assert logged.data.params["hp.epochs"] == "2"
    history = client.get_metric_history(logged.info.run_id, "train_loss")
    assert sorted(m.step for m in history) == sorted(
        m.step for m in result.metrics if m.train_loss is not None
    )
    assert logged.data.metrics["eval/tuned/json_fields"] == 1.0
    files = {a.path for a in client.list_artifacts(logged.info.run_id)}
    assert {"loss.png", "report.html", "report.json"} <= files


def test_a_tracking_server_that_is_down_is_reported_once_and_the_run_goes_on(
    tmp_path: Path, fake: FakeProvider, capsys: pytest.CaptureFixture[str]
) -> None:
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    job = job_toml(tmp_path, f'[tracking]\nbackend = "mlflow"\nuri = "http://127.0.0.1:{port}"\n')
    from rich.console import Console

    console = Console(file=open(tmp_path / "out.txt", "w"), width=200)  # noqa: SIM115
    result = FineTuneClient("together").train(job, console=console)
    console.file.close()
    assert result.run.status == "succeeded"
    assert result.run.decision == "ship"
    text = (tmp_path / "out.txt").read_text()
    assert text.count("warning:") == 1, text
    assert f"127.0.0.1:{port}" in text
