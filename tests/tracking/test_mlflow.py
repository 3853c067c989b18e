"""Runs logged to MLflow with the real library, read back through MLflow's own `MlflowClient`: a
local store, an `mlflow server` on 127.0.0.1, and a server that is down."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("mlflow")

from mlflow.tracking import MlflowClient

from unitune.tracking import Tracker, TrackingSettings, open_tracker
from unitune.types import StepMetric

pytestmark = pytest.mark.unitune_block_network

STEPS = [
    StepMetric(step=1, epoch=0.33, train_loss=2.0, learning_rate=1e-4),
    StepMetric(
        step=2, epoch=0.66, train_loss=1.5, valid_loss=1.8, extra={"tokens/s": 900.0, "odd:name": 1.0}
    ),
    StepMetric(step=3, epoch=1.0, train_loss=1.0, valid_loss=1.2),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _log_a_run(tracker: Tracker, tmp_path: Path) -> None:
    tracker.start("triage-run", params={"model": "gpt-4o-mini", "epochs": 3, "lr": 1e-4, "none": None},
                  tags={"unitune.provider": "fake"})  # fmt: skip
    tracker.log_metrics(STEPS[:2])
    tracker.log_metrics(STEPS[2:])  # only the new steps, as the client sends them
    tracker.log_values({"accuracy": 0.91, "cost_usd": 1.25})
    report = tmp_path / "report.json"
    report.write_text('{"verdict": "ship"}')
    tracker.log_artifact(report)
    tracker.finish("finished")


def _check_the_run(client: MlflowClient, run_id: str) -> None:
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "triage-run"
    assert run.data.params == {"model": "gpt-4o-mini", "epochs": "3", "lr": "0.0001", "none": "None"}
    assert run.data.tags["unitune.provider"] == "fake"
    history = {m.step: m.value for m in client.get_metric_history(run_id, "train_loss")}
    assert history == {1: 2.0, 2: 1.5, 3: 1.0}
    assert {m.step: m.value for m in client.get_metric_history(run_id, "valid_loss")} == {2: 1.8, 3: 1.2}
    assert [m.value for m in client.get_metric_history(run_id, "tokens/s")] == [900.0]
    assert [m.value for m in client.get_metric_history(run_id, "odd_name")] == [1.0]  # made safe
    assert (run.data.metrics["accuracy"], run.data.metrics["cost_usd"]) == (0.91, 1.25)
    assert [a.path for a in client.list_artifacts(run_id)] == ["report.json"]
    local = client.download_artifacts(run_id, "report.json", dst_path=str(Path.cwd() / "download"))
    assert Path(local).read_text() == '{"verdict": "ship"}'


def test_a_run_in_a_local_store(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    warnings: list[str] = []
    tracker = open_tracker(
        TrackingSettings(backend="mlflow", uri=uri, experiment="triage"), warn=warnings.append
    )
    _log_a_run(tracker, tmp_path)
    assert warnings == []
    assert tracker.run_id is not None
    assert tracker.location == uri
    client = MlflowClient(tracking_uri=uri)
    _check_the_run(client, tracker.run_id)
    experiment = client.get_experiment_by_name("triage")
    assert experiment is not None
    assert client.get_run(tracker.run_id).info.experiment_id == experiment.experiment_id


def test_the_default_store_is_mlflows_own_default_in_the_working_directory(tmp_path: Path) -> None:
    tracker = open_tracker(TrackingSettings(backend="mlflow"), warn=pytest.fail)
    tracker.start("r", params={}, tags={})
    tracker.finish("failed")
    uri = f"sqlite:///{Path.cwd() / 'mlflow.db'}"  # made absolute: the run can be found from anywhere
    assert tracker.location == uri
    assert tracker.run_id is not None
    status = MlflowClient(tracking_uri=uri).get_run(tracker.run_id).info.status
    assert status == "FAILED"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One `mlflow server` on 127.0.0.1 for the module (it takes seconds to start)."""
    root = tmp_path_factory.mktemp("mlflow-server")
    port = _free_port()
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "1"}
    mlflow_bin = Path(sys.executable).with_name("mlflow")
    log = (root / "server.log").open("wb")
    proc = subprocess.Popen(
        [str(mlflow_bin), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
         "--artifacts-destination", str(root / "artifacts")],
        cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=log,
        start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"mlflow server did not start: {(root / 'server.log').read_text()[-2000:]}")
            time.sleep(0.3)
        yield url
    finally:
        os.killpg(proc.pid, 15)  # the server and the workers it started, nothing else
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()
        log.close()


def test_a_run_on_a_tracking_server(server: str, tmp_path: Path) -> None:
    warnings: list[str] = []
    tracker = open_tracker(TrackingSettings(backend="mlflow", uri=server), warn=warnings.append)
    _log_a_run(tracker, tmp_path)
    assert warnings == []
    assert tracker.run_id is not None
    client = MlflowClient(tracking_uri=server)
    _check_the_run(client, tracker.run_id)
    experiment = client.get_experiment_by_name("unitune")
    assert experiment is not None
    assert tracker.location == f"{server}/#/experiments/{experiment.experiment_id}/runs/{tracker.run_id}"


def test_a_server_that_is_down_warns_once_quickly_and_the_run_goes_on(tmp_path: Path) -> None:
    uri = f"http://user:pa55word@127.0.0.1:{_free_port()}"  # nothing listens there
    warnings: list[str] = []
    tracker = open_tracker(TrackingSettings(backend="mlflow", uri=uri), warn=warnings.append)
    before = dict(os.environ)
    started = time.monotonic()
    _log_a_run(tracker, tmp_path)
    for step in range(4, 200):
        tracker.log_metrics([StepMetric(step=step, train_loss=0.5)])
    elapsed = time.monotonic() - started
    assert elapsed < 10, elapsed
    (warning,) = warnings
    assert "could not start the run" in warning
    assert "http://127.0.0.1:" in warning
    assert "pa55word" not in warning
    assert "check that the MLflow server is running" in warning
    assert tracker.run_id is None
    assert dict(os.environ) == before  # MLflow's HTTP settings were set for unitune's calls only
