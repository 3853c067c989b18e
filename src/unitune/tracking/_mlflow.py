"""Logging a run to MLflow through `MlflowClient`.

Logging a run to MLflow through `MlflowClient` (not the fluent API: no process-wide active run,
so several unitune runs in one process each keep their own).
"""

from __future__ import annotations

import importlib
import os
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from unitune.errors import remember_secret
from unitune.tracking._base import Backend, FinishStatus, metric_values, safe_uri
from unitune.tracking._settings import TrackingSettings
from unitune.types import StepMetric

__all__ = ["MlflowTracker"]

#: MLflow's HTTP client retries a failed request 7 times with exponential backoff and waits up to
#: 120 s for each answer: a tracking server that is down would stall a run for minutes before its
#: first failure could be reported. unitune's own calls use these instead, unless the user set the
#: variable (their choice wins). One quick retry still rides over a blip.
_HTTP_ENV = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0.5",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "5",
}
#: os.environ is process-wide: calls that set and restore it must not interleave.
_ENV_LOCK = threading.RLock()

_STATUS = {"finished": "FINISHED", "failed": "FAILED", "killed": "KILLED"}
_PARAM_MAX = 6000  # MLflow's MAX_PARAM_VAL_LENGTH: a longer value is refused, not cut
_TAG_MAX = 8000
_BATCH_PARAMS = 100  # MAX_PARAMS_TAGS_PER_BATCH
_BATCH_METRICS = 1000  # MAX_METRICS_PER_BATCH


@contextmanager
def _quick_http() -> Iterator[None]:
    """MLflow's HTTP settings for unitune's calls only.

    MLflow's HTTP settings for unitune's calls only, restored afterwards: importing unitune or
    logging a run does not change how the user's own MLflow code retries.
    """
    with _ENV_LOCK:
        added = [k for k in _HTTP_ENV if k not in os.environ]
        for key in added:
            os.environ[key] = _HTTP_ENV[key]
        try:
            yield
        finally:
            for key in added:
                os.environ.pop(key, None)


class MlflowTracker(Backend):
    """One MLflow run in the experiment `settings.experiment` at `settings.uri`."""

    label = "MLflow"

    def __init__(self, settings: TrackingSettings) -> None:
        self._settings = settings
        # MLflow's own credentials: masked in every message unitune prints (the warning included).
        for variable in ("MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN"):
            remember_secret(os.environ.get(variable))
        self._mlflow: Any = importlib.import_module("mlflow")
        self._entities: Any = importlib.import_module("mlflow.entities")
        # None: MLflow resolves its own default (MLFLOW_TRACKING_URI, else sqlite:///mlflow.db).
        self._uri: str = settings.uri if settings.uri is not None else str(self._mlflow.get_tracking_uri())
        self._client: Any = None  # built in start(), behind the guard: a bad URI is a warning
        self._run_id: str | None = None
        self._experiment_id: str | None = None

    def describe(self) -> str:
        return safe_uri(self._uri)

    def fix(self) -> str:
        if self._uri.startswith(("http://", "https://")):
            return "check that the MLflow server is running and reachable, or change [tracking] uri in unitune.toml."
        return "check that the store is writable, or change [tracking] uri in unitune.toml."

    def start(self, name: str, *, params: Mapping[str, object], tags: Mapping[str, str]) -> None:
        self._client = self._mlflow.MlflowClient(tracking_uri=self._uri)
        with _quick_http():
            experiment = self._client.get_experiment_by_name(self._settings.experiment)
            if experiment is not None:
                experiment_id = str(experiment.experiment_id)
            else:
                try:
                    experiment_id = str(self._client.create_experiment(self._settings.experiment))
                except Exception:
                    # Another process created it between the two calls.
                    experiment = self._client.get_experiment_by_name(self._settings.experiment)
                    if experiment is None:
                        raise
                    experiment_id = str(experiment.experiment_id)
            run_tags = {k: str(v)[:_TAG_MAX] for k, v in tags.items()}
            run = self._client.create_run(experiment_id, run_name=name, tags=run_tags)
            self._experiment_id = experiment_id
            self._run_id = str(run.info.run_id)
            Param = self._entities.Param
            items = [Param(str(k)[:250], str(v)[:_PARAM_MAX]) for k, v in params.items()]
            for i in range(0, len(items), _BATCH_PARAMS):
                self._client.log_batch(self._run_id, params=items[i : i + _BATCH_PARAMS], synchronous=True)

    def log_metrics(self, metrics: Sequence[StepMetric]) -> None:
        run_id = self._require_run()
        now = int(time.time() * 1000)
        Metric = self._entities.Metric
        items = [
            Metric(key, value, now, metric.step)
            for metric in metrics
            for key, value in metric_values(metric).items()
        ]
        with _quick_http():
            for i in range(0, len(items), _BATCH_METRICS):
                self._client.log_batch(run_id, metrics=items[i : i + _BATCH_METRICS], synchronous=True)

    def log_values(self, values: Mapping[str, float], *, step: int | None = None) -> None:
        run_id = self._require_run()
        now = int(time.time() * 1000)
        Metric = self._entities.Metric
        items = [Metric(str(k)[:250], float(v), now, step or 0) for k, v in values.items()]
        with _quick_http():
            for i in range(0, len(items), _BATCH_METRICS):
                self._client.log_batch(run_id, metrics=items[i : i + _BATCH_METRICS], synchronous=True)

    def log_artifact(self, path: Path) -> None:
        run_id = self._require_run()
        with _quick_http():
            self._client.log_artifact(run_id, str(path))

    def finish(self, status: FinishStatus) -> None:
        run_id = self._require_run()
        with _quick_http():
            self._client.set_terminated(run_id, status=_STATUS[status])

    def _require_run(self) -> str:
        if self._run_id is None:
            raise RuntimeError("the run was not started (call start first)")
        return self._run_id

    @property
    def run_id(self) -> str | None:
        return self._run_id

    @property
    def location(self) -> str | None:
        if self._run_id is None:
            return None
        uri = safe_uri(self._uri)
        if uri.startswith(("http://", "https://")):
            return f"{uri.rstrip('/')}/#/experiments/{self._experiment_id}/runs/{self._run_id}"
        # A local store: `mlflow ui --backend-store-uri <uri>` shows it.
        return uri
