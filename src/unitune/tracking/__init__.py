"""Experiment tracking with MLflow or Weights & Biases.

Experiment tracking: a unitune run's parameters, per-step metrics, summary numbers and report
files sent to MLflow or Weights & Biases ([tracking.md](../../../docs/tracking.md)).

Importing this package is cheap: it imports neither `mlflow` nor `wandb` (the config imports
`TrackingSettings` from here); `open_tracker` imports the one the settings name, when called.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from unitune.errors import MissingDependencyError
from unitune.tracking._base import Backend, FinishStatus, GuardedTracker, NullTracker, Tracker
from unitune.tracking._settings import TrackingSettings

if TYPE_CHECKING:
    from unitune.types import WandbIntegration

__all__ = ["FinishStatus", "Tracker", "TrackingSettings", "open_tracker", "vendor_wandb"]


#: backend → (the module that must import, the extra that installs it)
_BACKENDS = {"mlflow": ("mlflow", "mlflow"), "wandb": ("wandb", "wandb")}


def open_tracker(settings: TrackingSettings | None, *, warn: Callable[[str], None]) -> Tracker:
    """The tracker a run logs to, as `settings` say (None or `backend="none"`: one that logs nothing).

    With `vendor = true` the vendor logs the job and this tracker logs nothing (pass
    `vendor_wandb(settings, ...)` as the job's `JobSpec.wandb`).

    The library is imported here, before anything starts: a missing one raises
    `MissingDependencyError` naming the extra to install. The tracker returned never raises: the
    first failure of any call (a server that is down, a refused write) is reported once through
    `warn` (one line: what failed, where, and the fix), and every later call does nothing, so the
    run itself goes on.

    Args:
        settings: the `[tracking]` settings; None for no tracking.
        warn: called with one line when the tracker's first failure happens.

    Raises:
        MissingDependencyError: the backend's library is not installed.
    """
    if settings is None or settings.backend == "none" or settings.vendor:
        # vendor = true: the vendor logs the job (`vendor_wandb` builds the spec's request).
        return NullTracker()
    module, extra = _BACKENDS[settings.backend]
    try:
        lib: Any = importlib.import_module(module)
    except ImportError as e:
        raise MissingDependencyError(
            provider=f"{settings.backend} tracking", extra=extra, module=module
        ) from e
    inner: Backend
    if settings.backend == "mlflow":
        from unitune.tracking._mlflow import MlflowTracker

        inner = MlflowTracker(settings)
    else:
        from unitune.tracking._wandb import WandbTracker

        inner = WandbTracker(settings, lib)
    return GuardedTracker(inner, warn=warn, where=inner.describe())


def vendor_wandb(
    settings: TrackingSettings | None, *, name: str | None = None, tags: Sequence[str] = ()
) -> WandbIntegration | None:
    """The `JobSpec.wandb` that asks the vendor to log the job to W&B, if configured.

    The project is `experiment`; the key (Together only) is read from `WANDB_API_KEY` by the
    adapter, when the job is created.

    Args:
        settings: the `[tracking]` settings; the vendor logs only with `backend = "wandb"` and
            `vendor = true`.
        name: the W&B run's name.
        tags: the W&B run's tags.

    Returns:
        The integration to put in the job's spec, or None when `settings` do not ask for it.
    """
    if settings is None or not settings.vendor:
        return None
    from unitune.types import WandbIntegration

    return WandbIntegration(project=settings.experiment, entity=settings.entity, name=name, tags=tuple(tags))
