"""The tracker contract, the tracker that logs nothing, and the guard every real one runs behind."""

from __future__ import annotations

import re
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit, urlunsplit

from unitune.errors import mask_secrets

if TYPE_CHECKING:
    # Annotations only: the config imports this package, and must stay quick to import.
    from unitune.types import StepMetric

__all__ = ["Backend", "FinishStatus", "GuardedTracker", "NullTracker", "Tracker", "metric_values", "safe_uri"]

FinishStatus = Literal["finished", "failed", "killed"]


class Tracker(ABC):
    """What a run logs to. `start` first, `finish` last; between them any number of the others.

    Trackers returned by `open_tracker` never raise (see there).
    """

    @abstractmethod
    def start(self, name: str, *, params: Mapping[str, object], tags: Mapping[str, str]) -> None:
        """Open the run `name` with its parameters (plain values, logged as given: pass no secrets) and tags.

        Args:
            name: the run's name in the backend.
            params: the run's parameters (the job's model, hyperparameters, data files...).
            tags: labels for the run, names to values.
        """

    @abstractmethod
    def log_metrics(self, metrics: Sequence[StepMetric]) -> None:
        """Log per-step training metrics.

        Per-step training metrics, each at its own step (`train_loss`, `valid_loss`,
        `train_accuracy`, `valid_accuracy`, `learning_rate`, `epoch`, and `extra`'s names). Meant to
        be called with only the new steps; a step already logged is skipped.
        """

    @abstractmethod
    def log_values(self, values: Mapping[str, float], *, step: int | None = None) -> None:
        """Summary numbers (evaluation metrics, cost), at `step` when given.

        Args:
            values: the numbers by name.
            step: the training step they belong to; None for the run as a whole.
        """

    @abstractmethod
    def log_artifact(self, path: Path) -> None:
        """Attach a file to the run (a loss plot, report.html, report.json)."""

    @abstractmethod
    def finish(self, status: FinishStatus) -> None:
        """Close the run with its outcome."""

    @property
    @abstractmethod
    def run_id(self) -> str | None:
        """The backend's id of the run; None before `start` (or when nothing is logged)."""

    @property
    @abstractmethod
    def location(self) -> str | None:
        """Where a person can look at the run: a URL, or a path on this machine."""


class NullTracker(Tracker):
    """Logs nothing: tracking is off (`backend = "none"`)."""

    def start(self, name: str, *, params: Mapping[str, object], tags: Mapping[str, str]) -> None:
        pass

    def log_metrics(self, metrics: Sequence[StepMetric]) -> None:
        pass

    def log_values(self, values: Mapping[str, float], *, step: int | None = None) -> None:
        pass

    def log_artifact(self, path: Path) -> None:
        pass

    def finish(self, status: FinishStatus) -> None:
        pass

    @property
    def run_id(self) -> str | None:
        return None

    @property
    def location(self) -> str | None:
        return None


class Backend(Tracker):
    """A real tracker (MLflow, W&B): may raise; `GuardedTracker` turns its first failure into a warning."""

    #: The name a person knows it by, for the warning ("MLflow").
    label: str = ""

    @abstractmethod
    def describe(self) -> str:
        """Where it logs, safe to print (no credentials)."""

    @abstractmethod
    def fix(self) -> str:
        """What to do when a call fails (start the server, fix the URI, log in)."""


class GuardedTracker(Tracker):
    """A backend whose first failure is reported once through `warn` and turns it off.

    Tracking is a side channel of a run that may cost money and hours: a tracking server that is
    down must never stop or slow the training it watches, and must not print a warning per step.
    """

    def __init__(self, inner: Backend, *, warn: Callable[[str], None], where: str) -> None:
        self._inner = inner
        self._warn = warn
        self._where = where
        self._failed = False
        self._lock = threading.Lock()  # the client may log from its poller and its caller
        self._seen: set[int] = set()

    @property
    def failed(self) -> bool:
        """True once a call failed (everything since was skipped)."""
        return self._failed

    def _run(self, what: str, call: Callable[[], None]) -> None:
        with self._lock:
            if self._failed:
                return
            try:
                call()
            except Exception as e:  # any failure of a side channel: report once, go on
                self._failed = True
                # Libraries repeat the URL they called, credentials included: drop them.
                reason = _USERINFO.sub(r"\1", " ".join(f"{type(e).__name__}: {e}".split()))
                if len(reason) > 300:
                    reason = reason[:297] + "..."
                self._warn(
                    mask_secrets(
                        f"unitune: {self._inner.label} tracking stopped: could not {what} at {self._where} "
                        f"({reason}). The run goes on without tracking; {self._inner.fix()}"
                    )
                )

    def start(self, name: str, *, params: Mapping[str, object], tags: Mapping[str, str]) -> None:
        self._run("start the run", lambda: self._inner.start(name, params=params, tags=tags))

    def log_metrics(self, metrics: Sequence[StepMetric]) -> None:
        new = [m for m in metrics if m.step not in self._seen]
        if not new:
            return

        def call() -> None:
            self._inner.log_metrics(new)
            self._seen.update(m.step for m in new)

        self._run("log training metrics", call)

    def log_values(self, values: Mapping[str, float], *, step: int | None = None) -> None:
        if values:
            self._run("log values", lambda: self._inner.log_values(values, step=step))

    def log_artifact(self, path: Path) -> None:
        self._run(f"upload {path.name}", lambda: self._inner.log_artifact(path))

    def finish(self, status: FinishStatus) -> None:
        self._run("finish the run", lambda: self._inner.finish(status))

    @property
    def run_id(self) -> str | None:
        return self._inner.run_id

    @property
    def location(self) -> str | None:
        return self._inner.location


_STEP_FIELDS = ("epoch", "train_loss", "valid_loss", "train_accuracy", "valid_accuracy", "learning_rate")
_UNSAFE = re.compile(r"[^A-Za-z0-9_\-./ ]")
_USERINFO = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]+@")


def metric_values(metric: StepMetric) -> dict[str, float]:
    """One step's metric values by name.

    One step's numbers by name: the fields the provider reported, then `extra` (names made safe
    for MLflow, which refuses most punctuation: a vendor's odd metric name must not stop tracking).
    """
    values = {k: float(v) for k in _STEP_FIELDS if (v := getattr(metric, k)) is not None}
    for key, value in metric.extra.items():
        values.setdefault(_UNSAFE.sub("_", key)[:250], float(value))
    return values


def safe_uri(uri: str) -> str:
    """`uri` without a user name or password (`https://user:token@host` → `https://host`)."""
    parts = urlsplit(uri)
    if parts.username is None and parts.password is None:
        return uri
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit(parts._replace(netloc=netloc))
