"""The `fake` provider: an in-process, deterministic stand-in for a vendor, for tests and demos.

It is registered exactly like a real provider, so application code under test runs unchanged.
`as_provider("openai")` makes it impersonate a vendor: that vendor's catalog (models, aliases,
lifecycle, prices, through its name), dataset rules and wire format, capabilities and status words,
so whatever unitune checks before a request is checked as it would be in production (the
`unitune_fake` fixture does this for the configured provider). `as_provider(None)` is the
permissive fake of its own catalog.
Jobs move through a scripted status progression, one step per poll (default) or per
`seconds_per_step` of an injectable clock (a `FakeClock` unless given, so waits take no time).
Failures are scripted too: a job that fails, 429 with Retry-After, 5xx, a create whose answer is
lost after the job was made, and 410 retirement. Every call is recorded in `calls`.
Over ~700 lines on purpose: one class whose scripting, jobs and impersonation share one state (the
views `as_provider` makes share it too), and it offers every optional method a vendor may have.
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import itertools
import math
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field

from unitune._clock import Clock, FakeClock
from unitune._log import get_logger
from unitune.errors import (
    ConfigurationError,
    NotFoundError,
    ProviderError,
    ProviderRetiredError,
    ProviderUnavailableError,
    RateLimitError,
)
from unitune.providers.base import Provider, ProviderSettings, refuse_unknown_options
from unitune.types import (
    Capabilities,
    ChatResponse,
    Checkpoint,
    FileRef,
    Job,
    JobEvent,
    JobSpec,
    JobStatus,
    Message,
    PreparedFile,
    Purpose,
    StepMetric,
    TrainingMethod,
    TunedModel,
    Usage,
)

if TYPE_CHECKING:
    from unitune.data import Dataset

__all__ = ["FakeCall", "FakeProvider", "FakeSettings"]

S = JobStatus
log = get_logger("unitune")

DEFAULT_PROGRESSION = (S.VALIDATING, S.QUEUED, S.RUNNING, S.RUNNING, S.RUNNING, S.SUCCEEDED)

#: Options the fake accepts in `Hyperparameters.provider_options`; anything else is refused by name.
KNOWN_OPTIONS = frozenset({"steps_per_epoch"})

Reply = str | Callable[[str, list[Message]], str]

#: The operations the fake records and can script, named after the contract.
OPS = frozenset({
    "upload", "create_job", "get_job", "list_jobs", "cancel_job", "pause_job", "resume_job", "list_events",
    "list_metrics", "list_checkpoints", "chat", "list_models", "update_model", "archive_model",
    "unarchive_model", "delete_model", "list_files", "delete_file",
})  # fmt: skip


def _op(op: object) -> str:
    """`op` if the fake has that operation: a typo would script nothing and let a test pass untested."""
    if not isinstance(op, str) or op not in OPS:
        import difflib

        close = difflib.get_close_matches(str(op), sorted(OPS), n=1)
        raise ConfigurationError(
            f"The fake has no operation {op!r}.",
            fix=(f"Did you mean {close[0]!r}? " if close else "") + f"Operations: {', '.join(sorted(OPS))}.",
        )
    return op


def _times(times: object) -> int:
    if isinstance(times, bool) or not isinstance(times, int) or times < 1:
        raise ConfigurationError(f"times must be a whole number, 1 or more, not {times!r}.")
    return times


class FakeSettings(ProviderSettings):
    """Settings of the fake provider (`[providers.fake]` in unitune.toml)."""

    progression: tuple[JobStatus, ...] = Field(default=DEFAULT_PROGRESSION, min_length=1)
    advance: Literal["poll", "clock"] = "poll"
    seconds_per_step: float = Field(default=30.0, gt=0)
    steps_per_epoch: int = Field(default=10, ge=1)
    replies: tuple[str, ...] = ()


@dataclass(frozen=True)
class FakeCall:
    """One call the fake received: the operation name and its main arguments."""

    op: str
    args: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Script:
    """What a test scripted, shared by the fake and every view of it (`adopt_provider`)."""

    fail_next: str | None = None
    reply: Reply | None = None
    retire_at: dt.datetime | None = None
    retire_alternatives: tuple[str, ...] = ()
    retire_message: str = ""


@dataclass
class _Injected:
    error: Callable[[], ProviderError]
    times: int
    commit: bool  # the operation takes effect before the error is raised (a lost response)


@dataclass
class _FakeJob:
    number: int
    spec: JobSpec
    idempotency_key: str
    created_at: dt.datetime
    created_tick: float
    progression: tuple[JobStatus, ...]
    polls: int = 0
    fail_message: str | None = None
    cancel_requested_at: int | None = None  # position in the progression when cancel arrived
    paused_at: float | None = None  # clock tick when paused (None: not paused)
    paused_for: float = 0.0  # seconds spent paused so far (advance="clock")
    history: list[tuple[JobStatus, dt.datetime]] = field(default_factory=list)


def _as_instant(value: dt.date | dt.datetime | str) -> dt.datetime:
    """An aware UTC instant from a date (its start), a datetime (naive: UTC) or an ISO string."""
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ConfigurationError(
                f"on must be a date, a datetime or an ISO date string, not {value!r}.",
                fix='Pass e.g. on="2026-01-01".',
            ) from None
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day, tzinfo=dt.timezone.utc)
    raise ConfigurationError(
        f"on must be a date, a datetime or an ISO date string, not {value!r}.",
        fix='Pass e.g. on="2026-01-01".',
    )


def _raw_words(table: Mapping[str, JobStatus]) -> dict[JobStatus, str]:
    """The word a vendor uses for each unitune status.

    For each unitune status, the word a vendor uses for it: the one naming it where there is one
    ("STATUS_QUEUED" over "STATUS_UNSPECIFIED"), else the table's first.
    """
    words: dict[JobStatus, str] = {}
    for raw, status in table.items():
        if status not in words or (status.value in raw.lower() and status.value not in words[status].lower()):
            words[status] = raw
    return words


class FakeProvider(Provider):
    """A deterministic in-memory provider. See the module docstring for what it can script."""

    name: ClassVar[str] = "fake"
    capabilities: ClassVar[Capabilities] = Capabilities(
        cancel=True,
        pause=True,
        events=True,
        metrics=True,
        checkpoints=True,
        files=True,
        chat=True,
        dpo=True,
        lora=True,
    )
    settings_class: ClassVar[type[ProviderSettings]] = FakeSettings
    ephemeral: ClassVar[bool] = True
    #: The fake's job list shows a job as soon as it is made: a lost create is found at once.
    list_lags: ClassVar[bool] = False
    dataset_profile: ClassVar[str] = "fake"
    preference_wire_format: ClassVar[str | None] = "openai-dpo"
    settings: FakeSettings

    def __init__(
        self,
        settings: ProviderSettings | None = None,
        *,
        client: Any = None,
        clock: Clock | None = None,
        reply: Reply | None = None,
    ) -> None:
        super().__init__(settings, client=client)
        # A fake clock by default: waiting on a fake job should cost no wall time.
        self.clock: Clock = clock or FakeClock()
        self.calls: list[FakeCall] = []
        self._lock = threading.RLock()
        self._files: dict[str, FileRef] = {}
        self._jobs: dict[str, _FakeJob] = {}
        self._counter = itertools.count(1)
        self._injected: dict[str, list[_Injected]] = {}
        self._script = _Script(reply=reply)
        #: Views of this fake as other providers, by name (shared with the views themselves).
        self._views: dict[str, FakeProvider] = {}
        self._reply_cycle = itertools.cycle(self.settings.replies) if self.settings.replies else None
        self._persona: Provider | None = None
        self._model_meta: dict[str, dict[str, Any]] = {}
        self._deleted: set[str] = set()
        self._persona_fixed = False
        self._adopted = False
        self._words: dict[JobStatus, str] = {}

    # -- impersonation ------------------------------------------------------------------------------

    def as_provider(self, name: str | None, **settings: Any) -> FakeProvider:
        """Impersonate provider `name` from now on (None: the permissive fake of its own catalog).

        The fake then answers to that provider's name, so the client checks models, aliases,
        lifecycle and prices against its catalog entries; it validates and converts data with its
        rules and wire format; it offers only its capabilities (a missing one raises
        `UnsupportedFeatureError` as the adapter would); its jobs report the vendor's status words
        in `raw_status` and skip states the vendor does not have. `settings` are checked by that
        provider's settings class, as its config section would be. Returns the fake.

        Args:
            name: the provider to impersonate ("together", ...), or None for the plain fake.
            **settings: that provider's settings, as its config section would hold them.

        Raises:
            ConfigurationError: `name` is not a provider's name, or a setting is not valid.
        """
        if name is not None and (not isinstance(name, str) or not name):
            raise ConfigurationError(
                f"as_provider takes a provider name or None, not {name!r}.", fix='Pass e.g. "together".'
            )
        self._become(name, settings)
        self._persona_fixed = True
        return self

    def adopt_provider(self, name: str, section: Mapping[str, Any]) -> FakeProvider:
        """The stand-in to use when code builds a provider by name.

        Called when code builds a provider by name while this fake stands in for every provider
        (`override_provider`); returns the stand-in to use.

        The first name asked for (the fixture asks for the configured provider) becomes this fake's
        own persona; another name gets a view of this fake as that provider, so two clients built for
        two providers in one test each keep theirs. A view shares everything scripted and recorded
        (calls, jobs, files, injected errors, the clock, replies, retirement). After `as_provider`,
        every name gets this fake as chosen.

        Args:
            name: the provider asked for.
            section: that provider's config section (`[providers.<name>]`).
        """
        with self._lock:
            if self._persona_fixed:
                return self
            if not self._adopted:
                self._become(name, section)
                self._adopted = True
                return self
            if name == self.name or (name == FakeProvider.name and self._persona is None):
                return self
            view = self._views.get(name)
            if view is None:
                view = copy.copy(self)  # shallow: the containers and the script are shared
                view._become(name, section)
                view._persona_fixed = True
                self._views[name] = view
            return view

    @property
    def impersonating(self) -> str | None:
        """The provider this fake stands in for, or None for the plain fake."""
        return self._persona.name if self._persona is not None else None

    def _become(self, name: str | None, section: Mapping[str, Any]) -> None:
        from unitune.providers.registry import load_provider_class

        with self._lock:
            if name is None or name == FakeProvider.name:
                self._persona = None
                self.__dict__.pop("name", None)
                self.__dict__.pop("capabilities", None)
                self._words = {}
                return
            cls = load_provider_class(name)
            persona = cls.from_config(section)  # a bad section fails here as it would in production
            table = getattr(sys.modules[cls.__module__], "STATUS_MAP", None)
            self._persona = persona
            # Instance attributes shadow the class's: the client reads both through the instance.
            self.name = cls.name  # type: ignore[misc]
            self.capabilities = cls.capabilities  # type: ignore[misc]
            self._words = _raw_words(table) if isinstance(table, Mapping) else {}

    def profile_for(self, model: str | None) -> str:
        """The impersonated provider's dataset rules for `model`, else the fake's own."""
        return self._persona.profile_for(model) if self._persona is not None else super().profile_for(model)

    def wire_format_for(self, method: TrainingMethod, model: str | None = None) -> str:
        """The impersonated provider's wire format for `method` on `model`, else the fake's own.

        Args:
            method: "sft" or "dpo".
            model: the model the job trains, for providers whose format differs by model.
        """
        if self._persona is not None:
            return self._persona.wire_format_for(method, model)
        return super().wire_format_for(method, model)

    def prepare(
        self,
        data: Dataset,
        purpose: Purpose,
        *,
        model: str | None = None,
        workdir: Path,
        method: TrainingMethod = "sft",
    ) -> PreparedFile:
        """Convert `data` as the impersonated provider would (else as the fake's own format), in `workdir`.

        Args:
            data: the dataset to convert.
            purpose: "training" or "validation".
            model: the model the file is for.
            workdir: the folder the converted file is written in.
            method: "sft" or "dpo", which decides the wire format.
        """
        if self._persona is not None:
            return self._persona.prepare(data, purpose, model=model, workdir=workdir, method=method)
        return super().prepare(data, purpose, model=model, workdir=workdir, method=method)

    def _require(self, capability: str, feature: str) -> None:
        if not getattr(self.capabilities, capability):
            hint = self.capabilities.notes.get(capability)
            self._unsupported(feature, hint)

    def _progression(self) -> tuple[JobStatus, ...]:
        """The scripted statuses, less those the impersonated vendor has no word for."""
        if not self._words:
            return self.settings.progression
        kept = tuple(s for s in self.settings.progression if s in self._words)
        return kept or self.settings.progression

    # -- scripting ----------------------------------------------------------------------------------

    def fail_next_job(self, message: str = "Training failed: the fake was told to fail.") -> None:
        """The next job created runs, then ends `failed` with `message` instead of succeeding."""
        if not isinstance(message, str) or not message:
            raise ConfigurationError(f"message must be a non-empty string, not {message!r}.")
        with self._lock:
            self._script.fail_next = message

    def inject_error(
        self,
        op: str,
        error: ProviderError | Callable[[], ProviderError],
        *,
        times: int = 1,
        commit: bool = False,
    ) -> None:
        """Make the next `times` calls of `op` (e.g. "create_job", "get_job") raise `error`.

        Args:
            op: the name of the provider method to fail.
            error: the error to raise, or a function that makes a fresh one for each call.
            times: how many calls fail.
            commit: the operation happens first and only its answer is lost, like a timeout after the
                vendor created the job: the case idempotency keys exist for.
        """
        _op(op)
        _times(times)
        if not isinstance(error, ProviderError) and not callable(error):
            raise ConfigurationError(
                f"error must be a ProviderError or a function returning one, not {error!r}.",
                fix='Pass e.g. ProviderUnavailableError("down", provider="fake", status_code=503).',
            )
        factory = error if callable(error) and not isinstance(error, ProviderError) else None
        make: Callable[[], ProviderError] = factory or (lambda: error)  # type: ignore[assignment,return-value]
        with self._lock:
            self._injected.setdefault(op, []).append(_Injected(make, times, commit))

    def rate_limit(self, op: str, *, retry_after: float | None = 1.0, times: int = 1) -> None:
        """Make the next `times` calls of `op` answer 429.

        Args:
            op: the name of the provider method to limit.
            retry_after: the Retry-After the answer carries, in seconds (None: none).
            times: how many calls are limited.
        """
        if retry_after is not None and (
            isinstance(retry_after, bool)
            or not isinstance(retry_after, (int, float))
            or not 0 <= retry_after < 1e9
        ):
            raise ConfigurationError(
                f"retry_after must be a number of seconds (0 or more) or None, not {retry_after!r}."
            )
        self.inject_error(
            op,
            lambda: RateLimitError(
                "Rate limit reached (fake)", provider=self.name, status_code=429, retry_after=retry_after
            ),
            times=times,
        )

    def unavailable(self, op: str, *, status_code: int = 503, times: int = 1, commit: bool = False) -> None:
        """Make the next `times` calls of `op` answer a 5xx (or, with `commit`, lose the answer).

        Args:
            op: the name of the provider method to fail.
            status_code: a 5xx, or 408.
            times: how many calls fail.
            commit: the operation happens first and only its answer is lost.

        Raises:
            ConfigurationError: `status_code` is not a 5xx or 408.
        """
        if (
            isinstance(status_code, bool)
            or not isinstance(status_code, int)
            or not (status_code == 408 or 500 <= status_code <= 599)
        ):
            raise ConfigurationError(
                f"status_code must be a 5xx (or 408), not {status_code!r}.",
                fix="Use rate_limit() for 429 and inject_error() for any other ProviderError.",
            )
        self.inject_error(
            op,
            lambda: ProviderUnavailableError(
                "Service unavailable (fake)", provider=self.name, status_code=status_code
            ),
            times=times,
            commit=commit,
        )

    def retire(
        self,
        *,
        on: dt.date | dt.datetime | str | None = None,
        alternatives: Sequence[str] = (),
        message: str = "Fine-tuning is no longer available on this provider",
    ) -> None:
        """Close fine-tuning at `on`, as a vendor does.

        From then (on the fake's clock) creating a job answers 410 Gone, which the client raises as
        `ProviderRetiredError` with the date and `alternatives`. Before it, the closure is only
        announced: jobs are accepted and each create logs a warning naming the date.

        Args:
            on: a date (from its start, UTC), a datetime (from that instant), an ISO string of either, or
                None (now).
            alternatives: the providers the error names as live alternatives.
            message: the vendor's words in the 410 answer.
        """
        if isinstance(alternatives, str) or not all(isinstance(a, str) for a in alternatives):
            raise ConfigurationError(
                f"alternatives must be a list of provider names, not {alternatives!r}.",
                fix='Pass e.g. alternatives=["together", "bedrock"].',
            )
        when = _as_instant(on) if on is not None else self.clock.now()
        with self._lock:
            self._script.retire_at = when
            self._script.retire_alternatives = tuple(alternatives)
            self._script.retire_message = message

    def set_reply(self, reply: Reply) -> None:
        """Chat answers with this text, or with `reply(model, messages)`."""
        if not isinstance(reply, str) and not callable(reply):
            raise ConfigurationError(
                f"reply must be a string or a function (model, messages) -> str, not {reply!r}."
            )
        with self._lock:
            self._script.reply = reply

    def calls_to(self, op: str) -> list[FakeCall]:
        """The recorded calls of one operation."""
        _op(op)
        with self._lock:
            return [c for c in self.calls if c.op == op]

    # -- the contract -----------------------------------------------------------------------------

    def upload(self, prepared: PreparedFile) -> FileRef:
        """Record the prepared file and return a fake file id; nothing is sent anywhere."""
        with self._enter("upload", filename=prepared.filename, size_bytes=prepared.size_bytes) as commit:
            ref = FileRef(
                id=f"file-fake-{next(self._counter):06d}",
                provider=self.name,
                filename=prepared.filename,
                size_bytes=prepared.size_bytes,
                purpose=prepared.purpose,
                sha256=prepared.sha256,
                created_at=self.clock.now(),
                raw={"examples": prepared.num_examples},
            )
            self._files[ref.id] = ref
            commit()
            return ref

    def check_job(self, spec: JobSpec) -> None:
        """Run the impersonated provider's own checks.

        The impersonated provider's own checks (its options, settings and limits); the plain fake
        takes `steps_per_epoch` only.
        """
        if spec.method == "dpo" and not self.capabilities.dpo:
            self._refuse("DPO (preference) training", self.capabilities.notes.get("dpo"))
        if self._persona is not None:
            self._persona.check_job(spec)
            return
        refuse_unknown_options(self.name, spec.hyperparameters.provider_options, KNOWN_OPTIONS)

    def create_job(self, spec: JobSpec, *, idempotency_key: str) -> Job:
        """Create a fake job that moves through the statuses as it is polled (or as the clock advances).

        Args:
            spec: the job: model, files, method, hyperparameters and options.
            idempotency_key: kept on the job (`Job.idempotency_key`), so a create whose answer was lost
                can be found again.

        Raises:
            ProviderRetiredError: the retirement scripted with `retire` has come.
        """
        with self._enter(
            "create_job", model=spec.model, idempotency_key=idempotency_key,
            wandb=spec.wandb.project if spec.wandb is not None else None,
        ) as commit:  # fmt: skip
            if self._script.retire_at is not None:
                if self.clock.now() >= self._script.retire_at:
                    raise ProviderRetiredError(
                        self._script.retire_message, provider=self.name, status_code=410,
                        retired_on=self._script.retire_at.date(), alternatives=self._script.retire_alternatives,
                    )  # fmt: skip
                log.warning(
                    "unitune: %s closes fine-tuning on %s; this job was accepted, later ones will not be",
                    self.name, self._script.retire_at.isoformat(),
                )  # fmt: skip
            self.check_job(spec)
            for ref in (spec.training_file, spec.validation_file):
                if ref is not None and ref.id not in self._files:
                    raise NotFoundError(
                        f"No file {ref.id!r}; upload it to this provider first",
                        provider=self.name,
                        status_code=404,
                    )
            number = next(self._counter)
            job = _FakeJob(
                number=number,
                spec=spec,
                idempotency_key=idempotency_key,
                created_at=self.clock.now(),
                created_tick=self.clock.monotonic(),
                progression=self._progression(),
                fail_message=self._script.fail_next,
            )
            self._script.fail_next = None
            job.history.append((job.progression[0], job.created_at))
            job_id = f"ftjob-fake-{number:06d}"
            self._jobs[job_id] = job
            commit()
            return self._snapshot(job_id, job)

    def get_job(self, job_id: str) -> Job:
        """The job as it stands now (with `advance="poll"`, each call moves it one step on)."""
        with self._enter("get_job", job_id=job_id) as commit:
            job = self._job(job_id)
            if self.settings.advance == "poll" and job.paused_at is None:
                job.polls += 1
            commit()
            return self._snapshot(job_id, job)

    def list_jobs(self, *, limit: int = 20) -> list[Job]:
        """The fake's jobs, newest first, at most `limit`."""
        with self._enter("list_jobs", limit=limit) as commit:
            ids = sorted(self._jobs, key=lambda i: self._jobs[i].number, reverse=True)[:limit]
            commit()
            return [self._snapshot(i, self._jobs[i]) for i in ids]

    def cancel_job(self, job_id: str) -> Job:
        """Ask to cancel the job: it goes through cancelling to cancelled, unless it has already ended."""
        self._require("cancel", "cancelling jobs")
        with self._enter("cancel_job", job_id=job_id) as commit:
            job = self._job(job_id)
            if not self._status(job).is_terminal and job.cancel_requested_at is None:
                job.cancel_requested_at = self._position(job)
            commit()
            return self._snapshot(job_id, job)

    def pause_job(self, job_id: str) -> Job:
        """Pause a running job: it makes no progress until `resume_job`."""
        self._require("pause", "pausing jobs")
        with self._enter("pause_job", job_id=job_id) as commit:
            job = self._job(job_id)
            status = self._status(job)
            if status is not S.RUNNING:
                raise ProviderError(
                    f"Job {job_id} is {status.value}; only a running job can be paused",
                    provider=self.name,
                    status_code=400,
                )
            job.paused_at = self.clock.monotonic()
            commit()
            return self._snapshot(job_id, job)

    def resume_job(self, job_id: str) -> Job:
        """Resume a paused job."""
        if self._persona is None or type(self._persona).resume_job is Provider.resume_job:
            # Mistral cannot pause, yet resumes a job it holds for a manual start: follow the adapter.
            self._require("pause", "resuming jobs")
        with self._enter("resume_job", job_id=job_id) as commit:
            job = self._job(job_id)
            if job.paused_at is None:
                raise ProviderError(
                    f"Job {job_id} is not paused; only a paused job can be resumed",
                    provider=self.name,
                    status_code=400,
                )
            job.paused_for += self.clock.monotonic() - job.paused_at
            job.paused_at = None
            commit()
            return self._snapshot(job_id, job)

    def list_checkpoints(self, job_id: str) -> list[Checkpoint]:
        """The job's checkpoints so far, one per epoch."""
        self._require("checkpoints", "checkpoints")
        with self._enter("list_checkpoints", job_id=job_id) as commit:
            job = self._job(job_id)
            self._status(job)
            per_epoch = self._steps_per_epoch(job)
            base = self._tuned_name(job)
            out = [
                Checkpoint(
                    id=f"ftckpt-fake-{job.number:06d}-{m.step}",
                    step=m.step,
                    model=f"{base}:ckpt-step-{m.step}",
                    created_at=job.history[-1][1],
                    metrics={"train_loss": m.train_loss} if m.train_loss is not None else {},
                )
                for m in self._metrics(job)
                if m.step % per_epoch == 0
            ]
            commit()
            return out

    def list_events(self, job_id: str) -> list[JobEvent]:
        """The job's events so far, one per status it has been through."""
        self._require("events", "job events")
        with self._enter("list_events", job_id=job_id) as commit:
            job = self._job(job_id)
            self._status(job)  # brings the history up to date
            texts = {
                S.VALIDATING: "Validating training file",
                S.QUEUED: "Job queued",
                S.RUNNING: "Training started",
                S.CANCELLING: "Cancellation requested",
                S.SUCCEEDED: "Job succeeded",
                S.FAILED: "Job failed",
                S.CANCELLED: "Job cancelled",
            }
            steps = [
                JobEvent(
                    created_at=job.created_at,  # re-stamped below with the time they are placed at
                    message=f"Step {m.step}: train loss {m.train_loss:.4f}",
                    type="metrics",
                    data=m.model_dump(exclude_none=True),
                )
                for m in self._metrics(job)
                if m.step % self._steps_per_epoch(job) == 0
            ]
            events: list[JobEvent] = []
            for status, at in job.history:
                if status.is_terminal or status is S.CANCELLING:
                    # Step logs belong between "Training started" and the end.
                    events.extend(e.model_copy(update={"created_at": at}) for e in steps)
                    steps = []
                message = texts.get(status, status.value)
                if status is S.FAILED and job.fail_message:
                    message = f"Job failed: {job.fail_message}"
                level: Literal["info", "error"] = "error" if status is S.FAILED else "info"
                events.append(JobEvent(created_at=at, level=level, message=message, type="status"))
            last_at = job.history[-1][1]
            events.extend(e.model_copy(update={"created_at": last_at}) for e in steps)
            commit()
            return events

    def list_metrics(self, job_id: str) -> list[StepMetric]:
        """The job's per-step training metrics so far."""
        self._require("metrics", "training metrics")
        with self._enter("list_metrics", job_id=job_id) as commit:
            job = self._job(job_id)
            self._status(job)
            commit()
            return self._metrics(job)

    def chat(self, model: str, messages: list[Message], **params: Any) -> ChatResponse:
        """The answer `set_reply` scripted; a tuned model must be one of the fake's succeeded jobs.

        Args:
            model: the model to ask: a base model, or the tuned model of a succeeded fake job.
            messages: the conversation so far.
            **params: sampling options, accepted and ignored.

        Raises:
            NotFoundError: `model` is a tuned model (`ft:...`) of no succeeded fake job.
        """
        self._require("chat", "chat")
        with self._enter("chat", model=model, messages=len(messages)) as commit:
            if model.startswith("ft:") and not any(
                (tuned := self._snapshot(i, j).fine_tuned_model) is not None
                and (model == tuned or model.startswith(f"{tuned}:ckpt-step-"))
                for i, j in self._jobs.items()
            ):
                raise NotFoundError(
                    f"The model {model!r} does not exist or its job has not succeeded",
                    provider=self.name,
                    status_code=404,
                )
            if self._script.reply is not None:
                text = (
                    self._script.reply
                    if isinstance(self._script.reply, str)
                    else self._script.reply(model, messages)
                )
            elif self._reply_cycle is not None:
                text = next(self._reply_cycle)
            else:
                last_user = next((m.content for m in reversed(messages) if m.role == "user"), "")
                text = f"[{model}] {last_user}"
            prompt_tokens = sum(len(m.text.split()) + 4 for m in messages)
            commit()
            return ChatResponse(
                model=model,
                provider=self.name,
                content=text,
                finish_reason="stop",
                usage=Usage(prompt_tokens=prompt_tokens, completion_tokens=len(text.split())),
            )

    # -- uploaded files (where the impersonated provider lists them) -----------------------------------

    def list_files(self, *, limit: int = 100) -> list[FileRef]:
        """The files uploaded to this fake (and its views), newest first."""
        self._require("files", "listing uploaded files")
        with self._enter("list_files", limit=limit) as commit:
            # Ids carry the upload counter, so sorting them is upload order.
            refs = sorted(self._files.values(), key=lambda r: r.id, reverse=True)[:limit]
            commit()
            return refs

    def delete_file(self, file_id: str) -> None:
        """Forget an uploaded file: a job created from it afterwards gets NotFoundError, as on a vendor."""
        self._require("files", "deleting uploaded files")
        with self._enter("delete_file", file_id=file_id) as commit:
            if file_id not in self._files:
                raise NotFoundError(f"No file {file_id!r}", provider=self.name, status_code=404)
            del self._files[file_id]
            commit()

    # -- tuned models (as the impersonated provider manages them, if it does) ---------------------------

    def _manages_models(self, feature: str) -> None:
        if self._persona is not None and type(self._persona).list_models is Provider.list_models:
            self._unsupported(feature)

    def _tuned(self) -> dict[str, tuple[str, _FakeJob]]:
        out = {}
        for job_id, job in self._jobs.items():
            if self._status(job) is S.SUCCEEDED:
                out[self._tuned_name(job)] = (job_id, job)
        return out

    def _model(self, model_id: str) -> TunedModel:
        tuned = self._tuned()
        if model_id not in tuned or model_id in self._deleted:
            raise NotFoundError(f"No tuned model {model_id!r}", provider=self.name, status_code=404)
        job_id, job = tuned[model_id]
        meta = self._model_meta.get(model_id, {})
        return TunedModel(
            id=model_id, provider=self.name, base_model=job.spec.model, job_id=job_id,
            name=meta.get("name"), description=meta.get("description"), archived=bool(meta.get("archived")),
            created_at=job.history[-1][1],
        )  # fmt: skip

    def list_models(self) -> list[TunedModel]:
        """The tuned models of the fake's succeeded jobs, deleted ones left out."""
        self._manages_models("listing tuned models")
        with self._enter("list_models") as commit:
            models = [self._model(m) for m in self._tuned() if m not in self._deleted]
            commit()
            return models

    def update_model(
        self, model_id: str, *, name: str | None = None, description: str | None = None
    ) -> TunedModel:
        """Rename or describe a tuned model of the fake's.

        Args:
            model_id: the tuned model's id.
            name: its new name; None to keep it.
            description: its new description; None to keep it.
        """
        self._manages_models("updating tuned models")
        with self._enter("update_model", model_id=model_id) as commit:
            self._model(model_id)
            meta = self._model_meta.setdefault(model_id, {})
            if name is not None:
                meta["name"] = name
            if description is not None:
                meta["description"] = description
            commit()
            return self._model(model_id)

    def archive_model(self, model_id: str) -> TunedModel:
        """Mark a tuned model of the fake's archived."""
        self._manages_models("archiving tuned models")
        with self._enter("archive_model", model_id=model_id) as commit:
            self._model(model_id)
            self._model_meta.setdefault(model_id, {})["archived"] = True
            commit()
            return self._model(model_id)

    def unarchive_model(self, model_id: str) -> TunedModel:
        """Mark a tuned model of the fake's not archived."""
        self._manages_models("unarchiving tuned models")
        with self._enter("unarchive_model", model_id=model_id) as commit:
            self._model(model_id)
            self._model_meta.setdefault(model_id, {})["archived"] = False
            commit()
            return self._model(model_id)

    def delete_model(self, model_id: str) -> None:
        """Delete a tuned model of the fake's: it is no longer listed."""
        self._manages_models("deleting tuned models")
        with self._enter("delete_model", model_id=model_id) as commit:
            self._model(model_id)
            self._deleted.add(model_id)
            commit()

    # -- internals ----------------------------------------------------------------------------------

    class _Entry:
        """Context for one operation: logs the call, raises injected errors at the right moment."""

        def __init__(self, fake: FakeProvider, op: str, args: dict[str, Any]) -> None:
            self.fake, self.op, self.args = fake, op, args
            self.injected: _Injected | None = None

        def __enter__(self) -> Callable[[], None]:
            fake = self.fake
            fake._lock.acquire()
            fake.calls.append(FakeCall(self.op, self.args))
            queue = fake._injected.get(self.op)
            if queue:
                self.injected = queue[0]
                queue[0].times -= 1
                if queue[0].times <= 0:
                    queue.pop(0)
                if not self.injected.commit:
                    fake._lock.release()
                    raise self.injected.error()
            return self._commit

        def _commit(self) -> None:
            if self.injected is not None and self.injected.commit:
                raise self.injected.error()

        def __exit__(self, *exc: object) -> None:
            self.fake._lock.release()

    def _enter(self, op: str, **args: Any) -> FakeProvider._Entry:
        return FakeProvider._Entry(self, op, args)

    def _job(self, job_id: str) -> _FakeJob:
        try:
            return self._jobs[job_id]
        except KeyError:
            raise NotFoundError(
                f"No fine-tuning job {job_id!r}", provider=self.name, status_code=404
            ) from None

    def _position(self, job: _FakeJob) -> int:
        if self.settings.advance == "poll":
            steps = job.polls
        else:
            now = self.clock.monotonic()
            paused = job.paused_for + (now - job.paused_at if job.paused_at is not None else 0.0)
            steps = int((now - job.created_tick - paused) // self.settings.seconds_per_step)
        return min(steps, len(job.progression) - 1)

    def _status(self, job: _FakeJob) -> JobStatus:
        """The job's status now, recording each newly reached state in its history."""
        pos = self._position(job)
        status = job.progression[pos]
        if job.cancel_requested_at is not None:
            status = S.CANCELLING if pos <= job.cancel_requested_at else S.CANCELLED
            if status is S.CANCELLING and self._words and S.CANCELLING not in self._words:
                status = S.CANCELLED  # the vendor has no "cancelling": its jobs stop at once
        elif job.paused_at is not None and not status.is_terminal:
            status = S.PAUSED
        elif status is S.SUCCEEDED and job.fail_message is not None:
            status = S.FAILED
        if not job.history or job.history[-1][0] is not status:
            job.history.append((status, self.clock.now()))
        return status

    def _progress(self, job: _FakeJob, status: JobStatus) -> float:
        if status is S.SUCCEEDED:
            return 1.0
        running = [i for i, s in enumerate(job.progression) if s is S.RUNNING]
        stop = len(job.progression) if job.cancel_requested_at is None else job.cancel_requested_at
        pos = min(self._position(job), stop)
        done = sum(1 for i in running if i <= pos)
        if status is S.FAILED:
            done = max(len(running) - 1, 0)  # a failed job dies before its last step
        return done / (len(running) + 1) if running else 0.0

    def _steps_per_epoch(self, job: _FakeJob) -> int:
        opt = job.spec.hyperparameters.provider_options.get("steps_per_epoch")
        return int(opt) if opt else self.settings.steps_per_epoch

    def _metrics(self, job: _FakeJob) -> list[StepMetric]:
        status = job.history[-1][0]
        per_epoch = self._steps_per_epoch(job)
        epochs = job.spec.hyperparameters.epochs or 3
        total = per_epoch * epochs
        done = math.floor(self._progress(job, status) * total)
        seed = int(hashlib.sha256(job.spec.model.encode()).hexdigest()[:8], 16)
        out = []
        for step in range(1, done + 1):
            # A smooth, deterministic decay with a little per-step wobble, like a real loss curve.
            wobble = ((seed * step * 2654435761) % 1000) / 1000 - 0.5
            train = 0.25 + 1.75 * math.exp(-3.0 * step / total) + 0.04 * wobble
            valid = None
            if step % per_epoch == 0 and job.spec.validation_file is not None:
                valid = 0.3 + 1.75 * math.exp(-2.6 * step / total)
            out.append(
                StepMetric(
                    step=step,
                    epoch=step / per_epoch,
                    train_loss=round(train, 6),
                    valid_loss=round(valid, 6) if valid is not None else None,
                    learning_rate=job.spec.hyperparameters.learning_rate or 1e-4,
                )
            )
        return out

    def _tuned_name(self, job: _FakeJob) -> str:
        return f"ft:{job.spec.model}:fake:{job.spec.suffix or 'model'}:{job.number:06d}"

    def _snapshot(self, job_id: str, job: _FakeJob) -> Job:
        status = self._status(job)
        spec = job.spec
        finished = job.history[-1][1] if status.is_terminal else None
        tuned = self._tuned_name(job) if status is S.SUCCEEDED else None
        return Job(
            id=job_id,
            provider=self.name,
            status=status,
            raw_status=self._words.get(status, status.value),
            model=spec.model,
            fine_tuned_model=tuned,
            created_at=job.created_at,
            finished_at=finished,
            training_file=spec.training_file.id,
            validation_file=spec.validation_file.id if spec.validation_file else None,
            hyperparameters=spec.hyperparameters.model_dump(exclude_none=True),
            progress=self._progress(job, status),
            error=job.fail_message if status is S.FAILED else None,
            idempotency_key=job.idempotency_key,
            # spec_hash: what was trained, so a key reused for another job is refused as the ledger
            # refuses it (the fake's jobs are kept out of the ledger).
            raw={
                "polls": job.polls,
                "method": spec.method,
                "metadata": dict(spec.metadata),
                "spec_hash": spec.spec_hash(),
            },
        )
