"""Logging a run to Weights & Biases (offline by default: no account, no network)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from unitune.errors import remember_secret
from unitune.tracking._base import Backend, FinishStatus, metric_values
from unitune.tracking._settings import TrackingSettings
from unitune.types import StepMetric

__all__ = ["WandbTracker"]

_EXIT = {"finished": 0, "failed": 1, "killed": 2}
_TAG_MAX = 64  # W&B refuses a longer tag


class WandbTracker(Backend):
    """One W&B run in the project `settings.experiment`."""

    label = "W&B"

    def __init__(self, settings: TrackingSettings, wandb: Any) -> None:
        self._settings = settings
        self._wandb = wandb
        remember_secret(os.environ.get("WANDB_API_KEY"))  # masked in every message unitune prints
        self._run: Any = None
        self._last_step = -1

    def describe(self) -> str:
        where = f"project {self._settings.experiment!r}"
        if self._settings.entity:
            where = f"{self._settings.entity}/{self._settings.experiment}"
        return f"{where} ({self._settings.mode})"

    def fix(self) -> str:
        if self._settings.mode == "online":
            return 'run `wandb login` (or set WANDB_API_KEY), or set [tracking] mode = "offline" in unitune.toml.'
        return "check that the W&B directory (WANDB_DIR, else ./wandb) is writable."

    def start(self, name: str, *, params: Mapping[str, object], tags: Mapping[str, str]) -> None:
        self._run = self._wandb.init(
            project=self._settings.experiment,
            entity=self._settings.entity,
            name=name,
            mode=self._settings.mode,
            config=dict(params),
            tags=[f"{k}={v}"[:_TAG_MAX] for k, v in tags.items()],
            # Several unitune runs in one process each get their own W&B run.
            reinit="create_new",
            settings=self._wandb.Settings(
                # A library must not take over the process's stdout/stderr or print W&B's banner;
                # `location` says where the run is.
                console="off",
                quiet=True,
            ),
        )

    def log_metrics(self, metrics: Sequence[StepMetric]) -> None:
        run = self._require_run()
        for metric in sorted(metrics, key=lambda m: m.step):
            # W&B drops (with a warning) a step below one already logged.
            if metric.step <= self._last_step:
                continue
            values = metric_values(metric)
            if values:
                run.log(values, step=metric.step)
                self._last_step = metric.step

    def log_values(self, values: Mapping[str, float], *, step: int | None = None) -> None:
        run = self._require_run()
        data = {str(k): float(v) for k, v in values.items()}
        if step is not None and step > self._last_step:
            run.log(data, step=step)
            self._last_step = step
        else:
            # Summary numbers (the evaluation's, the cost) belong to the run, not to a step.
            run.summary.update(data)

    def log_artifact(self, path: Path) -> None:
        run = self._require_run()
        # A copy in the run's own directory: W&B would otherwise symlink the file, and a report
        # rewritten or deleted later would change or break the run. policy="now": sent as it is.
        copy = Path(run.dir) / path.name
        shutil.copyfile(path, copy)
        run.save(str(copy), base_path=str(run.dir), policy="now")

    def finish(self, status: FinishStatus) -> None:
        run = self._require_run()
        run.summary.update({"unitune_status": status})
        run.finish(exit_code=_EXIT[status])

    def _require_run(self) -> Any:
        if self._run is None:
            raise RuntimeError("the run was not started (call start first)")
        return self._run

    @property
    def run_id(self) -> str | None:
        return str(self._run.id) if self._run is not None else None

    @property
    def location(self) -> str | None:
        if self._run is None:
            return None
        if self._settings.mode == "offline":
            # The offline run's directory: `wandb sync <dir>` uploads it.
            return str(Path(self._run.dir).parent)
        url = self._run.url
        return str(url) if url else None
