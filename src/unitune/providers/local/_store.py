"""The local provider's on-disk state: one directory per job, readable from any process.

    <home>/local/files/<file-id>.jsonl       uploaded training data
    <home>/local/jobs/<job-id>/spec.json     what to train (JobSpec + idempotency key + settings)
                               state.json    status, progress, error (replaced atomically, under .lock)
                               pid           "<pid> <start time>" of the worker, written by the client
                               events.jsonl  one JobEvent per line (appended)
                               metrics.jsonl one StepMetric per line (appended)
                               worker.log    the worker's stdout/stderr
                               cancel        exists once cancellation was requested
                               adapter/      the trained LoRA adapter (PEFT format)

No torch here: the client side reads these files without loading any ML library.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from unitune.types import JobEvent, StepMetric, utcnow

__all__ = ["JobDir", "JobState", "Store"]


class JobState(BaseModel):
    """The mutable part of a local job."""

    model_config = ConfigDict(extra="ignore")

    status: str = "queued"  # queued | running | cancelling | succeeded | failed | cancelled
    created_at: str = Field(default_factory=lambda: utcnow().isoformat())
    started_at: str | None = None
    finished_at: str | None = None
    progress: float = 0.0
    step: int = 0
    total_steps: int | None = None
    error: str | None = None
    fine_tuned_model: str | None = None
    trained_tokens: int | None = None
    base_path: str | None = Field(
        default=None, description="The base model folder the adapter was trained on."
    )


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, "utf-8")
    tmp.replace(path)


class JobDir:
    """Reading and writing one job's files."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.id = path.name

    @property
    def spec_path(self) -> Path:
        return self.path / "spec.json"

    @property
    def state_path(self) -> Path:
        return self.path / "state.json"

    @property
    def events_path(self) -> Path:
        return self.path / "events.jsonl"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def log_path(self) -> Path:
        return self.path / "worker.log"

    @property
    def cancel_path(self) -> Path:
        return self.path / "cancel"

    @property
    def adapter_path(self) -> Path:
        return self.path / "adapter"

    def exists(self) -> bool:
        return self.spec_path.is_file()

    def spec(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.spec_path.read_text("utf-8"))
        return data

    def state(self) -> JobState:
        try:
            return JobState.model_validate_json(self.state_path.read_text("utf-8"))
        except FileNotFoundError:
            return JobState()

    def write_state(self, state: JobState) -> None:
        _atomic_write(self.state_path, state.model_dump_json())

    def update(self, *, only_if: frozenset[str] | None = None, **changes: Any) -> JobState:
        """Change some fields of a job's state under a lock.

        Change some fields, under a lock shared by the worker and every client, so neither
        overwrites the other's change. With `only_if`, change nothing unless the status is one of
        those (a compare-and-set: a finished job is never moved back to running or cancelling).
        """
        with self._locked():
            state = self.state()
            if only_if is not None and state.status not in only_if:
                return state
            state = state.model_copy(update=changes)
            self.write_state(state)
            return state

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows: no advisory locks; writes stay atomic
            yield
            return
        with (self.path / ".lock").open("a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def event(self, message: str, *, level: str = "info", type: str = "message", **data: Any) -> None:
        event = JobEvent.model_validate(
            {"created_at": utcnow(), "level": level, "message": message, "type": type, "data": data}
        )
        with self.events_path.open("a", encoding="utf-8") as fh:
            fh.write(event.model_dump_json() + "\n")

    def metric(self, metric: StepMetric) -> None:
        with self.metrics_path.open("a", encoding="utf-8") as fh:
            fh.write(metric.model_dump_json(exclude_none=True) + "\n")

    def events(self) -> list[JobEvent]:
        return [JobEvent.model_validate_json(line) for line in _lines(self.events_path)]

    def metrics(self) -> list[StepMetric]:
        return [StepMetric.model_validate_json(line) for line in _lines(self.metrics_path)]

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text("utf-8", errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.rstrip().splitlines()[-lines:])


def _lines(path: Path) -> Iterator[str]:
    try:
        with path.open(encoding="utf-8") as fh:
            for line in fh:
                # A line being appended by the worker may be incomplete: it ends without a newline.
                if line.endswith("\n") and line.strip():
                    yield line
    except FileNotFoundError:
        return


class Store:
    """The local provider's directory tree under the unitune home."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.files = root / "files"
        self.jobs = root / "jobs"

    def job(self, job_id: str) -> JobDir:
        if "/" in job_id or job_id.startswith("."):
            raise ValueError(f"not a job id: {job_id!r}")
        return JobDir(self.jobs / job_id)

    def all_jobs(self) -> list[JobDir]:
        if not self.jobs.is_dir():
            return []
        return [JobDir(p) for p in self.jobs.iterdir() if (p / "spec.json").is_file()]
