"""The `local` provider: LoRA fine-tuning on this machine.

The `local` provider: LoRA fine-tuning of Hugging Face causal LMs on this machine, with the job
semantics of a hosted vendor.

`create_job` starts a detached worker process and returns at once; the worker writes the job's state,
events and step metrics under the unitune home, so `get_job`, `events`, `metrics` and `list_jobs` work
from any process and after a restart. A worker that died is reported `failed` with its last log lines.
The tuned model is `local:<job-id>` (a saved PEFT adapter, mergeable with `merge()`).

Training is free but not instant: `create_job` estimates the training time from the model's size, the
tokens × epochs and the device (`estimate_training`), writes it to the job's events, and refuses
(`TrainingTooLongError`) a job estimated above `[providers.local] max_training_hours` (12 by default).

Needs `pip install "unitune[local]"` (torch, transformers, peft, gguf, safetensors); nothing of it is
imported until training or inference starts. Multi-GPU: see docs/local.md (accelerate).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field

from unitune.errors import ConfigurationError, NotFoundError
from unitune.providers.base import Provider, ProviderSettings, map_status, refuse_unknown_options
from unitune.providers.local._estimate import (
    TrainingEstimate,
    TrainingTooLongError,
    estimate_training,
    limit_hours,
)
from unitune.providers.local._store import JobDir, JobState, Store
from unitune.types import (
    Capabilities,
    ChatResponse,
    FileRef,
    Hyperparameters,
    Job,
    JobEvent,
    JobSpec,
    JobStatus,
    Message,
    PreparedFile,
    StepMetric,
    Usage,
    utcnow,
)

__all__ = ["LocalProvider", "LocalSettings", "TrainingEstimate", "TrainingTooLongError"]

S = JobStatus
#: Every state the worker and the provider write, mapped (tested value by value).
STATUS_MAP: dict[str, JobStatus] = {
    "queued": S.QUEUED,
    "running": S.RUNNING,
    "cancelling": S.CANCELLING,
    "succeeded": S.SUCCEEDED,
    "failed": S.FAILED,
    "cancelled": S.CANCELLED,
}
_ACTIVE = frozenset({"queued", "running", "cancelling"})
#: The ids `upload` makes (`file-local-` and 16 hex digits of the content's hash).
_FILE_ID = re.compile(r"file-local-[0-9a-f]{16}")
#: `Hyperparameters.provider_options` the local trainer knows; anything else is refused by name.
KNOWN_OPTIONS = frozenset({"packing", "group_by_length", "max_training_hours"})
#: A job with no worker pid this long after creation was never started (the creating process died).
_SPAWN_GRACE_S = 120
PREFIX = "local:"


class LocalSettings(ProviderSettings):
    """`[providers.local]` in unitune.toml."""

    device: Literal["auto", "cpu", "cuda"] = "auto"
    threads: int | None = Field(default=None, ge=1, description="CPU threads for training (default: all).")
    num_processes: int = Field(
        default=1, ge=1,
        description="Training processes (one per GPU). Above 1 the worker runs data-parallel (DDP through "
        "Accelerate, started by torch.distributed.run); batch_size is then per process.",
    )  # fmt: skip
    max_seq_length: int = Field(default=1024, ge=16)
    packing: bool = False
    group_by_length: bool = Field(
        default=False,
        description="Batch examples of similar length together: less padding (about 8% faster measured), but a "
        "slightly higher validation loss on the benchmark's data, so off by default.",
    )
    home: Path | None = Field(default=None, description="Where jobs live (default: <unitune home>/local).")
    max_new_tokens: int = Field(default=256, ge=1)
    max_training_hours: float | None = Field(
        default=12, ge=0,
        description="Refuse a job whose estimated training time is longer (TrainingTooLongError); 0 or "
        "None turns the check off. A job can pass its own limit: provider_options max_training_hours.",
    )  # fmt: skip


def _estimate_event(estimate: TrainingEstimate, limit: float | None) -> str:
    """The job's estimate event: "estimate: training … would take about 3 min (limit 12 hours)"."""
    sentence = estimate.sentence()
    sentence = sentence[0].lower() + sentence[1:]
    if estimate.seconds is None:
        return f"estimate: {sentence}; max_training_hours was not checked"
    against = f"limit {limit:g} hours" if limit is not None else "no limit: max_training_hours = 0"
    return f"estimate: {sentence} ({against})"


def _proc_start(pid: int) -> str | None:
    """The process's start time from /proc (guards against a recycled pid); None if unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 else None


def _alive(pid: int, start: str | None) -> bool:
    if not Path("/proc/self/stat").exists():  # no /proc (macOS): signal 0 only asks if it exists
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    fields = stat.rsplit(")", 1)[-1].split()
    if fields and fields[0] == "Z":  # exited, not yet reaped
        return False
    return start is None or (len(fields) > 19 and fields[19] == start)


class LocalProvider(Provider):
    """Fine-tune on this machine. See the module docstring."""

    name: ClassVar[str] = "local"
    capabilities: ClassVar[Capabilities] = Capabilities(
        cancel=True,
        pause=False,
        events=True,
        metrics=True,
        checkpoints=False,
        files=True,
        chat=True,
        dpo=False,
        lora=True,
        full_finetune=False,
        notes={"lora": "LoRA on all linear layers; full fine-tuning is not offered"},
    )
    settings_class: ClassVar[type[ProviderSettings]] = LocalSettings
    dataset_profile: ClassVar[str] = "local"
    #: Jobs are directories on this machine: one made by a create whose answer was lost is there at once.
    list_lags: ClassVar[bool] = False
    batches_chat: ClassVar[bool] = True  # one padded forward pass per batch: ≥3× one prompt at a time
    wire_format: ClassVar[str] = "openai"
    settings: LocalSettings

    def __init__(self, settings: ProviderSettings | None = None, *, client: Any = None) -> None:
        super().__init__(settings, client=client)
        self._store: Store | None = None
        self._children: dict[str, subprocess.Popen[bytes]] = {}
        #: The last estimate `check_job` made, for `create_job` right after it: (what it was of, it).
        self._last_estimate: tuple[tuple[str, ...], TrainingEstimate] | None = None

    @property
    def store(self) -> Store:
        """The store where jobs, files and adapters live.

        Where jobs, files and adapters live: the `home` setting, else `<unitune home>/local` of
        the client this provider runs in (its context), so the config's `home` holds here too.
        """
        if self._store is None:
            self._store = Store(self.settings.home or self.context.home / "local")
        return self._store

    # -- files and jobs ---------------------------------------------------------------------------

    def upload(self, prepared: PreparedFile) -> FileRef:
        self.store.files.mkdir(parents=True, exist_ok=True)
        file_id = f"file-local-{prepared.sha256[:16]}"
        target = self.store.files / f"{file_id}.jsonl"
        if not target.exists():
            tmp = target.with_suffix(".partial")
            shutil.copyfile(prepared.path, tmp)
            tmp.replace(target)
        return FileRef(
            id=file_id, provider=self.name, filename=prepared.filename, size_bytes=prepared.size_bytes,
            purpose=prepared.purpose, sha256=prepared.sha256, created_at=utcnow(),
        )  # fmt: skip

    def _file(self, ref: FileRef) -> Path:
        path = self.store.files / f"{ref.id}.jsonl"
        if not path.is_file():
            raise NotFoundError(
                f"No uploaded file {ref.id!r} in {self.store.files}", provider=self.name, status_code=404
            )
        return path

    def list_files(self, *, limit: int = 100) -> list[FileRef]:
        """The uploaded files in the store, newest first.

        The store keeps only the content (named by its hash), so the name, size and time are the stored
        file's.
        """
        if not self.store.files.is_dir():
            return []
        stored = [(p, p.stat()) for p in self.store.files.glob("file-local-*.jsonl") if p.is_file()]
        stored.sort(key=lambda item: item[1].st_mtime, reverse=True)
        refs = []
        for path, st in stored[:limit]:
            when = dt.datetime.fromtimestamp(st.st_mtime, dt.timezone.utc)
            refs.append(
                FileRef(
                    id=path.stem,
                    provider=self.name,
                    filename=path.name,
                    size_bytes=st.st_size,
                    created_at=when,
                )
            )
        return refs

    def delete_file(self, file_id: str) -> None:
        """Delete an uploaded file, unless a queued or running job still has to read it."""
        path = self._file(FileRef(id=file_id, provider=self.name)) if _FILE_ID.fullmatch(file_id) else None
        if path is None:  # not an id this store makes: never a path outside it
            raise NotFoundError(f"No uploaded file {file_id!r} in {self.store.files}", provider=self.name,
                                status_code=404)  # fmt: skip
        # The worker reads the file from the store when it starts training, so a job that has not
        # finished still needs it.
        for job in self.store.all_jobs():
            spec = job.spec()
            if file_id in (spec.get("training_file"), spec.get("validation_file")):
                current = self._job(job)
                if not current.status.is_terminal:
                    raise ConfigurationError(
                        f"File {file_id!r} is used by the {current.status.value} job {job.id!r}.",
                        fix=f"Wait for it (`unitune wait {job.id}`) or cancel it first.",
                    )
        path.unlink(missing_ok=True)

    def check_job(self, spec: JobSpec) -> None:
        """Raise what the create would refuse, before anything is written or started.

        What the create would refuse, before anything is written or started: `provider_options`
        the trainer does not know, learning_rate_multiplier, a `max_training_hours` option that is
        not a number of hours, device = 'cuda' where PyTorch sees none; and, once the job's files are
        in this provider's store, a job estimated to train longer than the limit
        (`TrainingTooLongError`). That estimate reads the data, so the client's check before the
        upload (its stand-in file is not in the store) leaves it to `create_job`: the local upload is
        only a copy into the store, and nothing starts before the estimate has passed.
        """
        hp = spec.hyperparameters
        refuse_unknown_options(self.name, hp.provider_options, KNOWN_OPTIONS)
        if hp.learning_rate_multiplier is not None:
            self._refuse("learning_rate_multiplier", "Set learning_rate (the local default is 5e-4).")
        limit = limit_hours(hp.provider_options.get("max_training_hours"), self.settings.max_training_hours)
        if self.settings.device == "cuda":
            import importlib.util

            if importlib.util.find_spec("torch") is not None:
                import torch

                if not torch.cuda.is_available():
                    raise ConfigurationError(
                        "[providers.local] device = 'cuda', but PyTorch sees no CUDA device.",
                        fix="Use device = 'auto' or 'cpu', or install a CUDA build of torch.",
                    )
        paths = self._stored(spec)
        if paths is not None:  # the files are here: the estimate can be made
            estimate = self._spec_estimate(spec, *paths)
            if limit is not None and estimate.seconds is not None and estimate.seconds > limit * 3600:
                raise TrainingTooLongError(estimate, limit)

    def _stored(self, spec: JobSpec) -> tuple[Path, Path | None] | None:
        """The paths of the job's files in the store, if they are there.

        The paths of the job's files in the store; None when one is not there (the client's
        stand-in before the upload, another provider's file).
        """
        try:
            training = self._file(spec.training_file)
            validation = self._file(spec.validation_file) if spec.validation_file else None
        except NotFoundError:
            return None
        return training, validation

    def _spec_estimate(self, spec: JobSpec, training: Path, validation: Path | None) -> TrainingEstimate:
        """The training estimate for a job's stored files, made once.

        `_estimate` for a job's stored files, made once for `check_job` and `create_job` (the
        files are named by their content, so the same names are the same data).
        """
        key = (spec.model, str(training), str(validation), spec.hyperparameters.model_dump_json())
        last = self._last_estimate
        if last is not None and last[0] == key:
            return last[1]
        estimate = self._estimate(spec.model, training, validation, spec.hyperparameters)
        self._last_estimate = (key, estimate)
        return estimate

    def create_job(self, spec: JobSpec, *, idempotency_key: str) -> Job:
        from unitune.errors import ProviderError

        # Before anything is written or started: a $0 job that would train for days is refused here.
        self.check_job(spec)
        training_path = self._file(spec.training_file)
        validation_path = self._file(spec.validation_file) if spec.validation_file else None
        limit = limit_hours(spec.hyperparameters.provider_options.get("max_training_hours"),
                            self.settings.max_training_hours)  # fmt: skip
        estimate = self._spec_estimate(spec, training_path, validation_path)
        self._last_estimate = None  # kept only from the check to this create
        stamp = utcnow().strftime("%Y%m%d-%H%M%S")
        job = self.store.job(f"ftjob-local-{stamp}-{secrets.token_hex(3)}")
        job.path.mkdir(parents=True)
        record = {
            "model": spec.model,
            "training_file": spec.training_file.id,
            "validation_file": spec.validation_file.id if spec.validation_file else None,
            "training_path": str(training_path),
            "validation_path": str(validation_path) if validation_path else None,
            "hyperparameters": spec.hyperparameters.model_dump(mode="json"),
            "suffix": spec.suffix,
            "metadata": spec.metadata,
            "idempotency_key": idempotency_key,
            "settings": self.settings.model_dump(
                mode="json", exclude={"api_key", "base_url", "timeout", "home"}
            ),
            "estimate": estimate.as_data(),
        }
        job.spec_path.write_text(json.dumps(record, indent=2), "utf-8")
        job.write_state(JobState(status="queued"))
        job.event("job queued", type="status")
        job.event(_estimate_event(estimate, limit), type="estimate", **estimate.as_data())
        try:
            self._spawn(job)
        except OSError as e:
            error = f"could not start the training worker: {e}"
            job.update(status="failed", finished_at=utcnow().isoformat(), error=error)
            job.event(error, level="error", type="status")
            raise ProviderError(error, provider=self.name) from e
        return self._job(job)

    def _estimate(
        self, model: str, training: Path, validation: Path | None, hp: Hyperparameters
    ) -> TrainingEstimate:
        settings = self.settings.model_dump(mode="json", exclude={"api_key", "base_url", "timeout", "home"})
        return estimate_training(model, training, validation, hp.model_dump(mode="json"), settings)

    def estimate_training(
        self,
        spec: JobSpec | str,
        training_data: str | Path | None = None,
        *,
        validation_data: str | Path | None = None,
        hyperparameters: Hyperparameters | None = None,
    ) -> TrainingEstimate:
        """Estimate how long training would take on this machine.

        How long training would take here (see `unitune.providers.local._estimate`): for a
        `JobSpec` whose files were uploaded to this provider, or for a model name and JSONL files
        on disk (`training_data`, `validation_data`, in the OpenAI chat format) before any upload.
        """
        if isinstance(spec, JobSpec):
            return self._estimate(
                spec.model, self._file(spec.training_file),
                self._file(spec.validation_file) if spec.validation_file else None, spec.hyperparameters,
            )  # fmt: skip
        if training_data is None:
            raise ConfigurationError(
                "estimate_training(model, ...) needs the training data.",
                fix="Pass training_data='train.jsonl', or a JobSpec.",
            )
        return self._estimate(
            spec, Path(training_data), Path(validation_data) if validation_data else None,
            hyperparameters or Hyperparameters(),
        )  # fmt: skip

    def estimate_training_seconds(
        self,
        spec: JobSpec | str,
        training_data: str | Path | None = None,
        *,
        validation_data: str | Path | None = None,
        hyperparameters: Hyperparameters | None = None,
    ) -> float | None:
        """The estimated wall time of training, in seconds.

        `estimate_training(...).seconds`: the estimated wall time, start-up included (None when
        the model's size is unknown).
        """
        return self.estimate_training(
            spec, training_data, validation_data=validation_data, hyperparameters=hyperparameters
        ).seconds

    def _spawn(self, job: JobDir) -> None:
        log = job.log_path.open("ab")
        try:
            proc = subprocess.Popen(
                self._worker_command(job),
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,  # survives the client; Ctrl-C in the terminal does not kill it
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )  # fmt: skip
        finally:
            log.close()
        self._children[job.id] = proc
        (job.path / "pid").write_text(f"{proc.pid} {_proc_start(proc.pid) or ''}\n")

    def _worker_command(self, job: JobDir) -> list[str]:
        worker = ["-m", "unitune.providers.local._worker", str(job.path)]
        n = self.settings.num_processes
        if n == 1:
            return [sys.executable, *worker]
        # Data-parallel: torch.distributed.run (the launcher `accelerate launch --multi_gpu` drives) starts
        # n workers on a free local port; inside, Accelerate joins them (NCCL on GPUs, gloo on CPU).
        # Rank 0 owns the job's files, the others follow it. `accelerate launch --cpu` would start one
        # process only (its multi-CPU mode needs MPI), hence this launcher for both.
        launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes", "1",
                  "--nproc_per_node", str(n)]  # fmt: skip
        return [*launch, *worker]

    def _pid(self, job: JobDir) -> tuple[int, str | None] | None:
        try:
            pid, _, start = (job.path / "pid").read_text().strip().partition(" ")
            return int(pid), start or None
        except (OSError, ValueError):
            return None

    def _job(self, job: JobDir) -> Job:
        self._reap()
        spec = job.spec()
        state = job.state()
        if state.status in _ACTIVE:
            state = self._check_worker(job, state)
        status = map_status(self.name, state.status, STATUS_MAP)
        return Job(
            id=job.id, provider=self.name, status=status, raw_status=state.status, model=spec["model"],
            fine_tuned_model=state.fine_tuned_model if status is S.SUCCEEDED else None,
            created_at=dt.datetime.fromisoformat(state.created_at),
            finished_at=dt.datetime.fromisoformat(state.finished_at) if state.finished_at else None,
            training_file=spec["training_file"], validation_file=spec.get("validation_file"),
            hyperparameters={k: v for k, v in spec["hyperparameters"].items() if v not in (None, {})},
            trained_tokens=state.trained_tokens, progress=state.progress, error=state.error,
            idempotency_key=spec.get("idempotency_key"),
            raw={"state": state.model_dump(), "path": str(job.path)},
        )  # fmt: skip

    def _check_worker(self, job: JobDir, state: JobState) -> JobState:
        """A job whose worker is gone is failed (or cancelled, if that was asked), never running forever."""
        pid = self._pid(job)
        if pid is None:
            created = dt.datetime.fromisoformat(state.created_at)
            if (utcnow() - created).total_seconds() < _SPAWN_GRACE_S:
                return state  # being started right now
        elif _alive(*pid):
            return state
        state = job.state()  # the worker may have finished between the two reads
        if state.status not in _ACTIVE:
            return state
        if job.cancel_path.exists():
            job.event("job cancelled (worker stopped)", level="warning", type="status")
            return job.update(only_if=_ACTIVE, status="cancelled", finished_at=utcnow().isoformat())
        tail = job.log_tail(12)
        error = "the training worker exited unexpectedly" + (f"; last log lines:\n{tail}" if tail else "")
        job.event(error, level="error", type="status")
        return job.update(only_if=_ACTIVE, status="failed", finished_at=utcnow().isoformat(), error=error)

    def _reap(self) -> None:
        """Collect our finished workers so they do not linger as zombies in a long-lived client."""
        for job_id, child in list(self._children.items()):
            if child.poll() is not None:
                del self._children[job_id]

    def _existing(self, job_id: str) -> JobDir:
        try:
            job = self.store.job(job_id)
        except ValueError:
            job = None
        if job is None or not job.exists():
            raise NotFoundError(f"No local fine-tuning job {job_id!r} in {self.store.jobs}", provider=self.name,
                                status_code=404)  # fmt: skip
        return job

    def get_job(self, job_id: str) -> Job:
        return self._job(self._existing(job_id))

    def list_jobs(self, *, limit: int = 20) -> list[Job]:
        jobs = sorted(self.store.all_jobs(), key=lambda j: j.state().created_at, reverse=True)
        return [self._job(j) for j in jobs[:limit]]

    def find_job(self, idempotency_key: str) -> Job | None:
        for job in self.store.all_jobs():
            if job.spec().get("idempotency_key") == idempotency_key:
                return self._job(job)
        return None

    def cancel_job(self, job_id: str) -> Job:
        job = self._existing(job_id)
        state = job.state()
        if state.status in _ACTIVE:
            # The cancel file is what the worker obeys, even if it starts after this (it checks it
            # before training); the status change is only a compare-and-set on a live job.
            job.cancel_path.touch()
            if state.status != "cancelling":
                job.update(only_if=frozenset({"queued", "running"}), status="cancelling")
                job.event("cancellation requested", level="warning", type="status")
            pid = self._pid(job)
            if pid is not None and _alive(*pid):
                # ProcessLookupError: it ended on its own just now; the next read reports how.
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid[0], signal.SIGTERM)
        return self._job(job)

    def list_events(self, job_id: str) -> list[JobEvent]:
        job = self._existing(job_id)
        self._job(job)  # detects a dead worker, which adds its event
        return job.events()

    def list_metrics(self, job_id: str) -> list[StepMetric]:
        return self._existing(job_id).metrics()

    # -- models -------------------------------------------------------------------------------------

    def _model_paths(self, model: str) -> tuple[Path, Path | None]:
        from unitune.providers.local._models import resolve_model_path

        if model.startswith(PREFIX):
            job = self._existing(model[len(PREFIX) :])
            if not job.adapter_path.is_dir():
                raise NotFoundError(f"Job {job.id} has no trained adapter (status: {job.state().status}).",
                                    provider=self.name, status_code=404)  # fmt: skip
            # The base the adapter was trained on, not whatever the name resolves to today.
            trained_on = job.state().base_path
            base = Path(trained_on) if trained_on else resolve_model_path(job.spec()["model"])
            return base, job.adapter_path
        return resolve_model_path(model), None

    def chat(self, model: str, messages: list[Message], **params: Any) -> ChatResponse:
        return self.chat_batch(model, [messages], **params)[0]

    def chat_batch(self, model: str, conversations: list[list[Message]], **params: Any) -> list[ChatResponse]:
        """Batched generation (the fast path for evaluation). `max_new_tokens`, `temperature`, `batch_size`."""
        from unitune.providers.local._infer import generate

        unknown = sorted(set(params) - {"max_new_tokens", "temperature", "batch_size", "max_tokens"})
        if unknown:
            raise ConfigurationError(
                f"Unknown chat parameter(s) for the local provider: {', '.join(unknown)}."
            )
        base, adapter = self._model_paths(model)
        convs = [[{"role": m.role, "content": m.text} for m in c] for c in conversations]
        results = generate(
            base, adapter, convs,
            max_new_tokens=int(params.get("max_new_tokens") or params.get("max_tokens") or self.settings.max_new_tokens),
            temperature=float(params.get("temperature") or 0.0), batch_size=int(params.get("batch_size") or 8),
            device=self.settings.device,
        )  # fmt: skip
        return [
            ChatResponse(model=model, provider=self.name, content=r.text, finish_reason=r.finish_reason,
                         usage=Usage(prompt_tokens=r.prompt_tokens, completion_tokens=r.completion_tokens))
            for r in results
        ]  # fmt: skip

    def merge(self, job_id: str, out: str | Path) -> Path:
        """Write the job's base model with its adapter merged in, as an ordinary model folder."""
        from unitune.providers.local._infer import merge_adapter

        base, adapter = self._model_paths(f"{PREFIX}{job_id}")
        assert adapter is not None
        return merge_adapter(base, adapter, Path(out))
