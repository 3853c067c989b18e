"""The tracker contract without a backend: settings, the `[tracking]` table, the no-op tracker,
missing packages, and the guard that turns a backend's first failure into one warning."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest
from pydantic import ValidationError

from unitune.config import load_config
from unitune.errors import MissingDependencyError
from unitune.tracking import TrackingSettings, open_tracker, vendor_wandb
from unitune.tracking._base import Backend, FinishStatus, GuardedTracker, NullTracker
from unitune.types import StepMetric

pytestmark = pytest.mark.unitune_block_network


def test_the_tracking_table_of_unitune_toml(tmp_path: Path) -> None:
    path = tmp_path / "unitune.toml"
    path.write_text('[tracking]\nbackend = "mlflow"\nuri = "http://127.0.0.1:5000"\nexperiment = "triage"\n')
    assert load_config(path).tracking == TrackingSettings(
        backend="mlflow", uri="http://127.0.0.1:5000", experiment="triage"
    )
    assert load_config(None).tracking == TrackingSettings()  # no file: tracking off
    path.write_text('[tracking]\nbackend = "neptune"\n')
    with pytest.raises(ValueError, match="backend"):
        load_config(path)


def test_settings_are_checked() -> None:
    with pytest.raises(ValidationError, match="extra"):
        TrackingSettings(backend="wandb", project="p")  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="vendor"):
        TrackingSettings(backend="mlflow", vendor=True)


def test_importing_the_config_imports_no_tracking_library() -> None:
    code = (
        "import sys, unitune.config, unitune.tracking; print('mlflow' in sys.modules, 'wandb' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_no_settings_or_none_logs_nothing() -> None:
    for settings in (None, TrackingSettings()):
        tracker = open_tracker(settings, warn=pytest.fail)
        assert isinstance(tracker, NullTracker)
        tracker.start("r", params={"a": 1}, tags={})
        tracker.log_metrics([StepMetric(step=1, train_loss=1.0)])
        tracker.finish("finished")
        assert (tracker.run_id, tracker.location) == (None, None)


def test_vendor_logging_passes_through_the_job_spec() -> None:
    settings = TrackingSettings(backend="wandb", vendor=True, experiment="triage", entity="acme")
    assert isinstance(open_tracker(settings, warn=pytest.fail), NullTracker)  # the vendor logs
    wandb = vendor_wandb(settings, name="run-1", tags=["unitune"])
    assert wandb is not None
    assert (wandb.project, wandb.entity, wandb.name, wandb.tags, wandb.api_key) == (
        "triage", "acme", "run-1", ("unitune",), None,
    )  # fmt: skip
    assert vendor_wandb(TrackingSettings(backend="wandb"), name="x") is None


@pytest.mark.parametrize(("backend", "module"), [("mlflow", "mlflow"), ("wandb", "wandb")])
def test_a_missing_package_names_its_extra(
    monkeypatch: pytest.MonkeyPatch, backend: str, module: str
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # what `import mlflow` does when it is not installed
    with pytest.raises(MissingDependencyError, match=rf'pip install "unitune\[{backend}\]"') as info:
        open_tracker(TrackingSettings(backend=backend), warn=pytest.fail)  # type: ignore[arg-type]
    assert (info.value.extra, info.value.module) == (backend, module)


class _Flaky(Backend):
    """A backend whose calls fail from the `fail_at`-th on."""

    label = "Test"

    def __init__(self, fail_at: int) -> None:
        self.calls: list[str] = []
        self.fail_at = fail_at

    def _call(self, what: str) -> None:
        self.calls.append(what)
        if len(self.calls) >= self.fail_at:
            raise ConnectionError("refused\nsecond line")

    def describe(self) -> str:
        return "test://here"

    def fix(self) -> str:
        return "start it."

    def start(self, name: str, *, params: Mapping[str, object], tags: Mapping[str, str]) -> None:
        self._call("start")

    def log_metrics(self, metrics: Sequence[StepMetric]) -> None:
        self._call(f"metrics {[m.step for m in metrics]}")

    def log_values(self, values: Mapping[str, float], *, step: int | None = None) -> None:
        self._call("values")

    def log_artifact(self, path: Path) -> None:
        self._call("artifact")

    def finish(self, status: FinishStatus) -> None:
        self._call("finish")

    @property
    def run_id(self) -> str | None:
        return "r1"

    @property
    def location(self) -> str | None:
        return None


def test_the_first_failure_warns_once_and_turns_tracking_off() -> None:
    warnings: list[str] = []
    inner = _Flaky(fail_at=3)
    tracker = GuardedTracker(inner, warn=warnings.append, where=inner.describe())
    tracker.start("r", params={}, tags={})
    tracker.log_metrics([StepMetric(step=1, train_loss=1.0)])
    tracker.log_metrics([StepMetric(step=1, train_loss=1.0), StepMetric(step=2, train_loss=0.5)])  # fails
    for step in range(3, 50):
        tracker.log_metrics([StepMetric(step=step, train_loss=0.1)])
    tracker.log_values({"accuracy": 0.9})
    tracker.finish("finished")
    assert inner.calls == ["start", "metrics [1]", "metrics [2]"]  # step 1 was not sent twice
    assert tracker.failed
    (warning,) = warnings
    assert "\n" not in warning
    assert warning.startswith("unitune: Test tracking stopped: could not log training metrics at test://here")
    assert "ConnectionError: refused second line" in warning
    assert warning.endswith("The run goes on without tracking; start it.")
