"""The shared vocabulary: pydantic models with no I/O.

Every provider speaks these types; vendor payloads are kept verbatim in `raw` so nothing the vendor
said is lost in normalisation.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from enum import Enum
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

__all__ = [
    "Capabilities",
    "ChatResponse",
    "Checkpoint",
    "FileRef",
    "Hyperparameters",
    "Job",
    "JobEvent",
    "JobSpec",
    "JobStatus",
    "Message",
    "PreparedFile",
    "Purpose",
    "StepMetric",
    "TrainingMethod",
    "TunedModel",
    "Usage",
    "WandbIntegration",
    "utcnow",
]

Purpose = Literal["training", "validation"]
TrainingMethod = Literal["sft", "dpo"]


def utcnow() -> dt.datetime:
    """The current time, timezone-aware in UTC (every timestamp unitune makes is)."""
    return dt.datetime.now(dt.timezone.utc)


class _Model(BaseModel):
    # defer_build: a model's validator is built when first used, not at import; `unitune validate`
    # and the other commands that never build a Job or a Message do not pay ~30 ms for them all.
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)


class JobStatus(str, Enum):
    """A fine-tuning job's state, the same on every provider.

    The vendor's own word is kept in `Job.raw_status`. A non-terminal vendor state is never mapped
    to a terminal one: a job being stopped is `CANCELLING`, not `CANCELLED`.
    """

    VALIDATING = "validating"
    QUEUED = "queued"
    RUNNING = "running"
    PAUSED = "paused"
    CANCELLING = "cancelling"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        """True when the job will not change any more (succeeded, failed or cancelled)."""
        return self in _TERMINAL

    def __str__(self) -> str:
        return self.value


_TERMINAL = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})


class Message(_Model):
    """One chat message in the OpenAI shape (`role`, `content`, optional tool fields and `weight`)."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    role: Literal["system", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = Field(
        default=None, description="Text, or OpenAI-style content parts (multimodal); None with tool_calls."
    )
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None
    weight: Literal[0, 1] | None = Field(
        default=None, description="0 excludes this assistant turn from the loss (OpenAI's `weight`)."
    )

    @property
    def text(self) -> str:
        """The content as plain text: text parts joined, other parts (images) left out."""
        return content_text(self.content)


def content_text(content: str | list[dict[str, Any]] | None) -> str:
    """Plain text of a message content: the string itself, or its text parts joined by newlines."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):  # malformed raw data: validation reports it, counting skips it
        return ""
    return "\n".join(
        str(part.get("text", "")) for part in content if isinstance(part, dict) and part.get("type") == "text"
    )


class Hyperparameters(_Model):
    """Training settings common to providers. `None` means "the provider's default".

    A provider maps each field to its own name (`epochs` → `n_epochs`, `epochCount`, …) and raises
    `UnsupportedFeatureError` for one it cannot honour. Vendor-only knobs go in `provider_options`,
    which the provider checks by name: an option it does not know is refused, never ignored.
    """

    epochs: int | None = Field(default=None, ge=1, le=1000)
    learning_rate: float | None = Field(default=None, gt=0)
    learning_rate_multiplier: float | None = Field(default=None, gt=0)
    batch_size: int | None = Field(default=None, ge=1)
    lora_rank: int | None = Field(default=None, ge=1)
    lora_alpha: float | None = Field(default=None, gt=0)
    seed: int | None = None
    provider_options: dict[str, Any] = Field(default_factory=dict)

    def set_fields(self) -> dict[str, Any]:
        """The common fields the caller set (not None), without `provider_options`."""
        return {k: v for k, v in self.model_dump(exclude={"provider_options"}).items() if v is not None}


class FileRef(_Model):
    """A file the provider holds (an uploaded dataset): its id there and what we know of it."""

    id: str
    provider: str
    filename: str | None = None
    size_bytes: int | None = None
    purpose: Purpose = "training"
    sha256: str | None = None
    created_at: dt.datetime | None = None
    raw: dict[str, Any] = Field(default_factory=dict, repr=False)


class PreparedFile(_Model):
    """A dataset converted to the provider's wire format, on local disk, ready to upload.

    It points at a file rather than holding bytes so a large dataset is streamed, never loaded whole.
    """

    path: Path
    filename: str
    size_bytes: int
    sha256: str
    purpose: Purpose
    num_examples: int | None = None
    conversion_losses: dict[str, int] = Field(
        default_factory=dict, description="What converting to the wire format changed, by loss code."
    )


class WandbIntegration(_Model):
    """Ask the vendor to log the job to Weights & Biases itself.

    OpenAI takes it as `integrations`, Together as its `wandb_*` fields. Providers without such an
    integration refuse a spec that carries one.

    `api_key` is sent only to Together, which logs with the key it is given (None: `WANDB_API_KEY`,
    read when the job is created); OpenAI uses the key saved in the organisation's settings. The key
    is never shown in a repr, a dump, the ledger or an error, and does not enter `spec_hash`.
    """

    project: str = Field(min_length=1)
    entity: str | None = None
    name: str | None = Field(
        default=None, description="The run's display name (default: the vendor's, e.g. the job id)."
    )
    tags: tuple[str, ...] = ()
    base_url: str | None = Field(default=None, description="A dedicated W&B instance (Together only).")
    api_key: SecretStr | None = Field(default=None, repr=False, exclude=True)


class JobSpec(_Model):
    """Everything a provider needs to create a job, after the client resolved data and model."""

    model: str
    training_file: FileRef
    validation_file: FileRef | None = None
    hyperparameters: Hyperparameters = Field(default_factory=Hyperparameters)
    method: TrainingMethod = "sft"
    suffix: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    wandb: WandbIntegration | None = Field(
        default=None,
        description="Log the job to W&B through the vendor's own integration (where `Capabilities.wandb_integration`).",
    )

    def spec_hash(self) -> str:
        """A stable fingerprint of what would be trained (see `spec_fingerprint`)."""
        return spec_fingerprint(
            model=self.model,
            training=file_key(self.training_file),
            validation=file_key(self.validation_file) if self.validation_file else None,
            hyperparameters=self.hyperparameters,
            method=self.method,
            suffix=self.suffix,
            metadata=self.metadata,
        )


def file_key(ref: FileRef | PreparedFile) -> str:
    """How a file enters a spec fingerprint: its content hash when known, else provider and id."""
    if ref.sha256:
        return ref.sha256
    assert isinstance(ref, FileRef)
    return f"{ref.provider}:{ref.id}"


def spec_fingerprint(
    *,
    model: str,
    training: str,
    validation: str | None,
    hyperparameters: Hyperparameters,
    method: str,
    suffix: str | None,
    metadata: dict[str, str],
) -> str:
    """A hash of what would be trained: model, data content, settings.

    Files enter by content hash, so it can be computed before anything is uploaded; the ledger uses
    it to spot an idempotency key reused for a different job.
    """
    payload = {
        "model": model,
        "training": training,
        "validation": validation,
        "hyperparameters": hyperparameters.model_dump(mode="json"),
        "method": method,
        "suffix": suffix,
        "metadata": metadata,
    }
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


class Job(_Model):
    """A fine-tuning job as last seen: normalised fields plus the vendor's own `raw_status` and `raw`."""

    id: str
    provider: str
    status: JobStatus
    raw_status: str
    model: str
    fine_tuned_model: str | None = None
    created_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None
    estimated_finish: dt.datetime | None = None
    training_file: str | None = None
    validation_file: str | None = None
    hyperparameters: dict[str, Any] = Field(default_factory=dict)
    trained_tokens: int | None = None
    progress: float | None = Field(default=None, ge=0, le=1, description="Fraction done, if known.")
    error: str | None = None
    action_required: str | None = Field(
        default=None,
        description="What the provider waits for from you, e.g. a validated Mistral job that starts only on resume_job().",
    )
    idempotency_key: str | None = None
    raw: dict[str, Any] = Field(default_factory=dict, repr=False)

    @property
    def is_terminal(self) -> bool:
        """True when the job will not change any more."""
        return self.status.is_terminal


class JobEvent(_Model):
    """One line of a job's log, as the provider reports it (`id` where the vendor gives one)."""

    id: str | None = None
    created_at: dt.datetime
    level: Literal["info", "warning", "error"] = "info"
    message: str
    type: str = "message"
    data: dict[str, Any] = Field(default_factory=dict)


class StepMetric(_Model):
    """Training metrics at one step. Fields the provider does not report are None; others go in `extra`."""

    step: int = Field(ge=0)
    epoch: float | None = None
    train_loss: float | None = None
    valid_loss: float | None = None
    train_accuracy: float | None = None
    valid_accuracy: float | None = None
    learning_rate: float | None = None
    extra: dict[str, float] = Field(default_factory=dict)


class Checkpoint(_Model):
    """A model the provider saved during a job (e.g. at each epoch's end), usable like the final one."""

    id: str
    step: int = Field(ge=0)
    model: str | None = Field(
        default=None, description="The id to call it by (e.g. an `ft:…:ckpt-step-N` model)."
    )
    created_at: dt.datetime | None = None
    metrics: dict[str, float] = Field(default_factory=dict)
    raw: dict[str, Any] = Field(default_factory=dict, repr=False)


class TunedModel(_Model):
    """A fine-tuned model the provider keeps for this account (`client.models()`)."""

    id: str
    provider: str
    base_model: str | None = None
    job_id: str | None = None
    name: str | None = None
    description: str | None = None
    archived: bool = False
    created_at: dt.datetime | None = None
    raw: dict[str, Any] = Field(default_factory=dict, repr=False)


class Usage(_Model):
    """Token counts of one chat call."""

    prompt_tokens: int = Field(default=0, ge=0)
    completion_tokens: int = Field(default=0, ge=0)

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens


class ChatResponse(_Model):
    """A model's reply to a chat call."""

    model: str
    provider: str
    content: str
    finish_reason: str | None = None
    usage: Usage = Field(default_factory=Usage)
    raw: dict[str, Any] = Field(default_factory=dict, repr=False)


class Capabilities(_Model):
    """What a provider can do. A feature marked False raises `UnsupportedFeatureError` when used.

    `notes` explains partial support in words (e.g. "events: derived from checkpoints only").
    """

    upload: bool = True
    create: bool = True
    cancel: bool = True
    pause: bool = False
    events: bool = True
    metrics: bool = True
    checkpoints: bool = False
    files: bool = Field(
        default=False, description="Uploaded files can be listed and deleted (`list_files`, `delete_file`)."
    )
    chat: bool = True
    dpo: bool = False
    lora: bool = False
    full_finetune: bool = True
    native_idempotency: bool = Field(
        default=False, description="The vendor dedupes creates by a client token (e.g. Bedrock)."
    )
    accepts_new_jobs: bool = True
    wandb_integration: bool = Field(
        default=False,
        description="The vendor logs a job to Weights & Biases itself when asked (`JobSpec.wandb`).",
    )
    notes: dict[str, str] = Field(default_factory=dict)

    @field_validator("notes")
    @classmethod
    def _notes_known(cls, notes: dict[str, str]) -> dict[str, str]:
        known = set(cls.model_fields) - {"notes"}
        unknown = sorted(set(notes) - known)
        if unknown:
            raise ValueError(f"notes for unknown capabilities: {', '.join(unknown)}")
        return notes

    def flags(self) -> dict[str, bool]:
        """Each capability and whether it is offered."""
        return {k: bool(v) for k, v in self.model_dump(exclude={"notes"}).items()}
