"""`AsyncFineTuneClient`: the same API as `FineTuneClient`, awaitable."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from unitune.catalog import Quote
from unitune.client._args import (
    DataInput,
    JobRef,
    MessagesInput,
    OnUpdate,
    _callback,
    _job_id,
)
from unitune.client._poll import _Poll
from unitune.client._sync import FineTuneClient
from unitune.data import ValidationReport
from unitune.errors import ConfigurationError
from unitune.providers.base import Provider
from unitune.types import (
    ChatResponse,
    Checkpoint,
    FileRef,
    Hyperparameters,
    Job,
    JobEvent,
    Purpose,
    StepMetric,
    TrainingMethod,
    TunedModel,
    WandbIntegration,
)

if TYPE_CHECKING:
    from unitune.evaluate import EvaluationReport
    from unitune.export import ExportResult
    from unitune.ledger import RunRecord
    from unitune.migrate import MigrationReport
    from unitune.runs import RunResult, SweepResult

T = TypeVar("T")


class AsyncFineTuneClient:
    """The same API as `FineTuneClient`, awaitable.

    Calls run in worker threads; `wait` sleeps on the event loop, so many jobs can be awaited
    concurrently (`asyncio.gather`).

    Takes the same arguments as `FineTuneClient`, or wraps one: `AsyncFineTuneClient(client=sync)`.
    """

    def __init__(
        self,
        provider: str | Provider | None = None,
        *,
        client: FineTuneClient | None = None,
        **kwargs: Any,
    ) -> None:
        if client is not None and not isinstance(client, FineTuneClient):
            raise ConfigurationError(
                f"client must be a FineTuneClient, not a {type(client).__name__}.",
                fix="Pass AsyncFineTuneClient(client=FineTuneClient(...)), or the same arguments as FineTuneClient.",
            )
        self.sync = client if client is not None else FineTuneClient(provider, **kwargs)

    @classmethod
    def from_config(cls, path: str | os.PathLike[str] | None = None, **kwargs: Any) -> AsyncFineTuneClient:
        """An async client for the provider named in the config file.

        Args:
            path: the unitune.toml to read; None for `$UNITUNE_CONFIG` or the working directory's.
            **kwargs: the other arguments of `FineTuneClient` (not `provider` or `config`).

        Raises:
            ConfigurationError: `provider` or `config` is passed, or the config file is malformed.
        """
        return cls(client=FineTuneClient.from_config(path, **kwargs))

    def __repr__(self) -> str:
        return f"AsyncFineTuneClient(provider={self.sync.provider.name!r})"

    async def __aenter__(self) -> AsyncFineTuneClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def provider(self) -> Provider:
        """The provider the wrapped client uses."""
        return self.sync.provider

    async def _run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        import asyncio  # here, not at module top: `import unitune` should not load asyncio

        return await asyncio.to_thread(fn, *args, **kwargs)

    async def close(self) -> None:
        """See `FineTuneClient.close`."""
        await self._run(self.sync.close)

    async def upload(
        self,
        data: DataInput,
        *,
        purpose: Purpose = "training",
        model: str | None = None,
        method: TrainingMethod = "sft",
    ) -> FileRef:
        """See `FineTuneClient.upload`."""
        return await self._run(self.sync.upload, data, purpose=purpose, model=model, method=method)

    async def validate(
        self,
        data: DataInput,
        *,
        model: str | None = None,
        validation_data: DataInput | None = None,
        method: TrainingMethod | None = None,
    ) -> ValidationReport:
        """See `FineTuneClient.validate`."""
        return await self._run(
            self.sync.validate, data, model=model, validation_data=validation_data, method=method
        )

    async def create_job(
        self,
        *,
        model: str | None = None,
        training_data: DataInput,
        validation_data: DataInput | None = None,
        hyperparameters: Hyperparameters | Mapping[str, Any] | None = None,
        method: TrainingMethod | None = None,
        suffix: str | None = None,
        metadata: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
        max_cost_usd: float | None = None,
        validation_split: float | None = None,
        wandb: WandbIntegration | None = None,
    ) -> Job:
        """See `FineTuneClient.create_job`."""
        return await self._run(
            self.sync.create_job,
            model=model,
            training_data=training_data,
            validation_data=validation_data,
            hyperparameters=hyperparameters,
            method=method,
            suffix=suffix,
            metadata=metadata,
            idempotency_key=idempotency_key,
            max_cost_usd=max_cost_usd,
            validation_split=validation_split,
            wandb=wandb,
        )

    async def estimate(
        self,
        data: DataInput,
        *,
        model: str | None = None,
        hyperparameters: Hyperparameters | Mapping[str, Any] | None = None,
        validation_data: DataInput | None = None,
        method: TrainingMethod | None = None,
    ) -> Quote:
        """See `FineTuneClient.estimate`."""
        return await self._run(
            self.sync.estimate,
            data,
            model=model,
            hyperparameters=hyperparameters,
            validation_data=validation_data,
            method=method,
        )

    def resolve_model(self, model: str) -> str:
        """See `FineTuneClient.resolve_model` (no I/O, so not awaitable)."""
        return self.sync.resolve_model(model)

    async def compare(
        self,
        data: DataInput,
        *,
        model: str,
        providers: Sequence[str],
        validation_data: DataInput | None = None,
        hyperparameters: Hyperparameters | None = None,
        method: TrainingMethod = "sft",
    ) -> list[Quote]:
        """See `FineTuneClient.compare`."""
        return await self._run(
            self.sync.compare, data, model=model, providers=providers, validation_data=validation_data,
            hyperparameters=hyperparameters, method=method,
        )  # fmt: skip

    async def evaluate(
        self,
        model_or_data: Any,
        data: DataInput | None = None,
        **options: Any,
    ) -> EvaluationReport:
        """See `FineTuneClient.evaluate` (same arguments; runs in a worker thread)."""
        return await self._run(self.sync.evaluate, model_or_data, data, **options)

    async def export(self, job_or_model: Any, **options: Any) -> ExportResult:
        """See `FineTuneClient.export` (same arguments; runs in a worker thread)."""
        return await self._run(self.sync.export, job_or_model, **options)

    async def migrate(self, to: Any, **options: Any) -> MigrationReport:
        """See `FineTuneClient.migrate` (same arguments; runs in a worker thread)."""
        return await self._run(self.sync.migrate, to, **options)

    async def train(self, job: Any, **options: Any) -> RunResult:
        """See `FineTuneClient.train` (same arguments; runs in a worker thread)."""
        return await self._run(self.sync.train, job, **options)

    async def retrain(self, run: str, **options: Any) -> RunResult:
        """See `FineTuneClient.retrain` (same arguments; runs in a worker thread)."""
        return await self._run(self.sync.retrain, run, **options)

    async def sweep(self, job: Any, **options: Any) -> SweepResult:
        """See `FineTuneClient.sweep` (same arguments; runs in a worker thread)."""
        return await self._run(self.sync.sweep, job, **options)

    async def runs(self, **filters: Any) -> list[RunRecord]:
        """See `FineTuneClient.runs`."""
        return await self._run(self.sync.runs, **filters)

    async def get_run(self, run: str) -> RunRecord:
        """See `FineTuneClient.get_run`."""
        return await self._run(self.sync.get_run, run)

    async def get_job(self, job: JobRef) -> Job:
        """See `FineTuneClient.get_job`."""
        return await self._run(self.sync.get_job, job)

    async def list_jobs(self, *, limit: int = 20) -> list[Job]:
        """See `FineTuneClient.list_jobs`."""
        return await self._run(self.sync.list_jobs, limit=limit)

    async def cancel_job(self, job: JobRef) -> Job:
        """See `FineTuneClient.cancel_job`."""
        return await self._run(self.sync.cancel_job, job)

    async def pause_job(self, job: JobRef) -> Job:
        """See `FineTuneClient.pause_job`."""
        return await self._run(self.sync.pause_job, job)

    async def resume_job(self, job: JobRef) -> Job:
        """See `FineTuneClient.resume_job`."""
        return await self._run(self.sync.resume_job, job)

    async def wait(
        self,
        job: JobRef,
        *,
        timeout: float | None = None,
        poll_interval: float | None = None,
        on_update: OnUpdate | None = None,
    ) -> Job:
        """See `FineTuneClient.wait`; sleeps without holding a thread."""
        poll = _Poll(self.sync.config.wait, self.sync.clock, timeout, poll_interval)
        _callback(on_update, "on_update")
        _job_id(job)
        last = job if isinstance(job, Job) else None
        while True:
            current = last = await self._run(self.sync._poll_once, job, poll, last)
            if on_update is not None:
                on_update(current)
            sleep = poll.next_sleep(current)
            if sleep is None:
                return current
            await self.sync.clock.asleep(sleep)

    async def events(self, job: JobRef) -> list[JobEvent]:
        """See `FineTuneClient.events`."""
        return await self._run(self.sync.events, job)

    async def metrics(self, job: JobRef) -> list[StepMetric]:
        """See `FineTuneClient.metrics`."""
        return await self._run(self.sync.metrics, job)

    async def checkpoints(self, job: JobRef) -> list[Checkpoint]:
        """See `FineTuneClient.checkpoints`."""
        return await self._run(self.sync.checkpoints, job)

    async def files(self, *, limit: int = 100) -> list[FileRef]:
        """See `FineTuneClient.files`."""
        return await self._run(self.sync.files, limit=limit)

    async def delete_file(self, file_id: str) -> None:
        """See `FineTuneClient.delete_file`."""
        await self._run(self.sync.delete_file, file_id)

    async def models(self) -> list[TunedModel]:
        """See `FineTuneClient.models`."""
        return await self._run(self.sync.models)

    async def update_model(
        self, model_id: str, *, name: str | None = None, description: str | None = None
    ) -> TunedModel:
        """See `FineTuneClient.update_model`."""
        return await self._run(self.sync.update_model, model_id, name=name, description=description)

    async def archive_model(self, model_id: str) -> TunedModel:
        """See `FineTuneClient.archive_model`."""
        return await self._run(self.sync.archive_model, model_id)

    async def unarchive_model(self, model_id: str) -> TunedModel:
        """See `FineTuneClient.unarchive_model`."""
        return await self._run(self.sync.unarchive_model, model_id)

    async def delete_model(self, model_id: str) -> None:
        """See `FineTuneClient.delete_model`."""
        await self._run(self.sync.delete_model, model_id)

    async def chat(self, model: str, messages: MessagesInput, **params: Any) -> ChatResponse:
        """See `FineTuneClient.chat`."""
        return await self._run(self.sync.chat, model, messages, **params)
