"""OpenAI fine-tuning through the official `openai` SDK (3.x, extra `unitune[openai]`).

Covers files (the Uploads API, parts in parallel, for files over 512 MB), supervised and DPO jobs,
retrieve, list (every page), cancel, pause and resume, events, checkpoints, step metrics (metrics
events while a job runs, the result CSV once it has succeeded), and chat with `ft:` models.

OpenAI is winding down self-serve fine-tuning: new jobs only for organisations still active in
it, and from nobody after the catalog's sunset date (2027-01-06). The client checks that date
before anything is uploaded; a 403 on create names it with the live alternatives, so a refusal is
never a bare "permission denied". Reinforcement fine-tuning is not mapped to the common API; pass
a whole `method` object through `provider_options` to use it.

The SDK is imported only inside this module's functions, and its own retries are off: retries
belong to `FineTuneClient`'s policy. A call of one request is retried by the client; the Uploads
API's create, each part and the complete (and the reads inside `list_metrics`) are retried one by
one through `Provider.step`, so one failed part costs one more part, not the whole upload.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import functools
import hashlib
import io
from collections.abc import Callable
from typing import Any, ClassVar

from pydantic import Field

from unitune.errors import (
    JobSpecRefused,
    PermissionDeniedError,
    ProviderError,
    ProviderRetiredError,
    ProviderUnavailableError,
    RateLimitError,
)
from unitune.providers._sdk import HyperparameterTable, StainlessProvider, refuse_reserved_metadata
from unitune.providers.base import (
    ProviderSettings,
    as_datetime,
    as_dict,
    as_float,
    catalog_retirement,
    chat_messages,
    chat_response,
    guard_answers,
    map_status,
    refuse_unknown_options,
    send_parts,
)
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
    StepMetric,
)

__all__ = ["IDEMPOTENCY_TAG", "KNOWN_OPTIONS", "STATUS_MAP", "OpenAIProvider", "OpenAISettings"]

S = JobStatus

#: Every status the SDK declares, plus `pausing`/`paused`, which the API returns and the SDK's
#: Literal does not list (it parses them as plain strings).
STATUS_MAP: dict[str, JobStatus] = {
    "validating_files": S.VALIDATING,
    "queued": S.QUEUED,
    "running": S.RUNNING,
    # Still training (and billing) until it reaches `paused`: not paused yet.
    "pausing": S.RUNNING,
    "paused": S.PAUSED,
    "succeeded": S.SUCCEEDED,
    "failed": S.FAILED,
    "cancelled": S.CANCELLED,
}

#: The metadata key a job is tagged with, so a create whose answer was lost can be found again.
IDEMPOTENCY_TAG = "unitune_idempotency_key"

#: `Hyperparameters.provider_options` this adapter knows; anything else is refused by name.
KNOWN_OPTIONS = {
    "beta": "DPO beta (method dpo only)",
    "integrations": "a list of OpenAI integration objects, e.g. Weights & Biases",
    "method": "a whole OpenAI `method` object, sent as is (for reinforcement fine-tuning)",
}

_MiB = 1024 * 1024
#: OpenAI's documented limits: metadata pairs per job, key and value lengths; the suffix's length.
_META_PAIRS = 16
_META_KEY_MAX = 64
_META_VALUE_MAX = 512
_SUFFIX_MAX = 64
_INTEGRATIONS_MAX = 5  # the job object's `integrations` maxItems
#: unitune's hyperparameters → the method's `hyperparameters` (seed goes in the request's body).
_HYPERPARAMETERS = HyperparameterTable(
    names={
        "epochs": "n_epochs",
        "batch_size": "batch_size",
        "learning_rate_multiplier": "learning_rate_multiplier",
        "seed": "seed",
    },
    instead={"learning_rate": "OpenAI takes learning_rate_multiplier (a factor on its own default rate)."},
    called={"learning_rate": "an absolute learning_rate"},
)
#: Events and checkpoints are read to the end, but never past this many (a misbehaving server,
#: or a mock that always says `has_more`, must not keep a loop going).
_MAX_ITEMS = 100_000


class OpenAISettings(ProviderSettings):
    """`[providers.openai]` in unitune.toml. The key comes from `OPENAI_API_KEY` when not set here."""

    api_key_env: ClassVar[str | None] = "OPENAI_API_KEY"

    base_url: str | None = Field(
        default=None,
        description="API root including /v1 (default: the SDK's, or OPENAI_BASE_URL). A gateway or a local server.",
    )
    organization: str | None = None
    project: str | None = None
    timeout: float = 600.0
    multipart_threshold_bytes: int = Field(
        default=512 * _MiB,
        ge=1,
        description="Files larger than this go through the Uploads API (the Files API takes 512 MB).",
    )
    part_size_bytes: int = Field(
        default=64 * _MiB, ge=1, le=64 * _MiB, description="Uploads API part size (at most 64 MB)."
    )
    upload_concurrency: int = Field(default=4, ge=1, le=32, description="Parts sent at once.")


def _sdk() -> Any:
    from unitune.providers.registry import import_sdk

    return import_sdk("openai", "openai")


@guard_answers("list_files", "delete_file")
class OpenAIProvider(StainlessProvider):
    """OpenAI fine-tuning. `client=` takes a ready `openai.OpenAI` (tests point it at a mock)."""

    name = "openai"
    settings_class = OpenAISettings
    dataset_profile = "openai"
    wire_format = "openai"
    preference_wire_format = "openai-dpo"
    capabilities = Capabilities(
        pause=True,
        checkpoints=True,
        files=True,
        dpo=True,
        lora=False,
        wandb_integration=True,
        notes={
            "wandb_integration": "`integrations` type wandb; OpenAI logs with the W&B key saved in the organisation's settings",
            "metrics": "from `metrics` events while the job runs; the full per-step CSV once it succeeded",
            "create": "only for organisations still active in fine-tuning, and until the catalog's sunset (2027-01-06)",
            "full_finetune": "OpenAI does not say how it trains; no LoRA settings are exposed",
        },
    )
    settings: OpenAISettings

    # -- the SDK client and its errors ---------------------------------------------------------

    def _sdk_module(self) -> Any:
        return _sdk()

    def _build_client(self) -> Any:
        """The `openai.OpenAI` client, with the SDK's own retries off."""
        s = self.settings
        return _sdk().OpenAI(
            api_key=s.require_api_key(self.name).get_secret_value(),
            base_url=s.base_url,
            organization=s.organization,
            project=s.project,
            timeout=s.timeout,
            max_retries=0,
        )

    def _status_error(self, e: Any, action: str) -> ProviderError:
        """The unitune error for an HTTP error status, with OpenAI's 410 and 403.

        What OpenAI means by 410 (the API is gone: retired, with the catalog's date and
        alternatives) and by 403 on a create (this organisation may no longer start jobs).
        """
        error = super()._status_error(e, action)
        common: dict[str, Any] = {"provider": self.name, "status_code": e.status_code,
                                  "request_id": error.request_id, "body": error.body}  # fmt: skip
        catalog, today = self.context.catalog, self.context.clock.now().date()
        if e.status_code == 410:
            sunset, alternatives, source = catalog_retirement(self.name, catalog, today=today)
            return ProviderRetiredError(
                error.message, retired_on=sunset, alternatives=alternatives, source=source, **common
            )
        if e.status_code == 403 and action.startswith("create"):
            # The usual reason today: this organisation may no longer start fine-tuning jobs.
            sunset, alternatives, _ = catalog_retirement(self.name, catalog, today=today)
            when = f"; from {sunset.isoformat()} nobody can" if sunset else ""
            return PermissionDeniedError(
                f"{error.message}. OpenAI now takes new fine-tuning jobs only from organisations still "
                f"active in fine-tuning{when}. Live alternatives: {', '.join(alternatives) or 'see `unitune models`'}",
                **common,
            )
        return error

    def _pages(self, action: str, fetch: Callable[..., Any], limit: int = _MAX_ITEMS) -> list[Any]:
        """Every item of a cursor-paged list, up to `limit`. Stops when the cursor does not move."""
        out: list[Any] = []
        seen: set[str] = set()
        after: str | None = None
        while len(out) < limit:
            kwargs: dict[str, Any] = {"limit": min(100, limit - len(out))}
            if after is not None:
                kwargs["after"] = after
            # The first page is the call's own request (the client retries it); later pages are
            # retried on their own, so a list is never read again from the start.
            page = (
                self._call(action, fetch, **kwargs)
                if after is None
                else self._step_call(action, fetch, **kwargs)
            )
            fresh = [item for item in page.data if item.id not in seen]
            seen.update(item.id for item in fresh)
            out.extend(fresh)
            if not fresh or not page.has_more:
                break
            after = page.data[-1].id
        return out[:limit]

    # -- files -----------------------------------------------------------------------------------

    def upload(self, prepared: PreparedFile) -> FileRef:
        """Upload a converted file: the Files API, or the Uploads API (parts in parallel) when large."""
        if prepared.size_bytes > self.settings.multipart_threshold_bytes:
            raw = self._upload_in_parts(prepared)
        else:
            with prepared.path.open("rb") as fh:
                obj = self._call(
                    "upload", self.sdk.files.create,
                    file=(prepared.filename, fh, "application/jsonl"), purpose="fine-tune",
                )  # fmt: skip
            raw = as_dict(obj)
        if raw.get("status") == "error":
            raise ProviderError(
                f"upload: OpenAI refused {prepared.filename}: {raw.get('status_details') or 'no reason given'}",
                provider=self.name, body=raw,
            )  # fmt: skip
        return self._file_ref(prepared, raw)

    def _upload_in_parts(self, prepared: PreparedFile) -> dict[str, Any]:
        """The Uploads API: create, add parts (read one at a time, sent in parallel), complete with the MD5.

        Each of these requests is retried on its own (`step`); the upload is cancelled if one of them
        fails for good, so nothing half-made is left behind.
        """
        s = self.settings
        upload = self._step_call(
            "upload (Uploads API)", self.sdk.uploads.create, bytes=prepared.size_bytes, filename=prepared.filename, mime_type="text/jsonl", purpose="fine-tune",
        )  # fmt: skip
        md5 = hashlib.md5(usedforsecurity=False)
        offsets = range(0, prepared.size_bytes, s.part_size_bytes)

        def send(offset: int) -> str:
            with prepared.path.open("rb") as fh:
                fh.seek(offset)
                chunk = fh.read(s.part_size_bytes)
            action = f"upload part at byte {offset}"
            part = self._step_call(action, self.sdk.uploads.parts.create, upload.id, data=chunk)
            return str(part.id)

        def checksum() -> None:  # while the parts travel
            with prepared.path.open("rb") as fh:
                for block in iter(lambda: fh.read(_MiB), b""):
                    md5.update(block)

        try:
            part_ids = send_parts(send, offsets, concurrency=s.upload_concurrency, meanwhile=checksum)
            digest, tries = md5.hexdigest(), iter(range(1, 1 << 30))
            file = self.step(
                "upload (complete)",
                lambda: self._complete_upload(upload, prepared, part_ids, digest, again=next(tries) > 1),
            )
        except BaseException:
            with contextlib.suppress(ProviderError):  # the original failure is what the caller needs
                self._call("upload (cancel)", self.sdk.uploads.cancel, upload.id)
            raise
        return file

    def _complete_upload(
        self, upload: Any, prepared: PreparedFile, part_ids: list[str], md5: str, *, again: bool
    ) -> dict[str, Any]:
        """One try at completing an upload.

        A refusal on a try `again` (an earlier one's answer may have been lost, so the upload is
        completed already) is resolved by finding the file it made.
        """
        action = "upload (complete)"
        try:
            done = self._call(action, self.sdk.uploads.complete, upload.id, part_ids=part_ids, md5=md5)
        except (RateLimitError, ProviderUnavailableError):
            raise
        except ProviderError as e:
            if again and e.status_code in (400, 404, 409):
                found = self._file_of_upload(upload, prepared)
                if found is not None:
                    return found
            raise
        file = getattr(done, "file", None)
        if file is None:
            raise ProviderError(
                f"upload: the Uploads API completed {upload.id} without a file (status {getattr(done, 'status', '?')})",
                provider=self.name, body=as_dict(done),
            )  # fmt: skip
        return as_dict(file)

    def _file_of_upload(self, upload: Any, prepared: PreparedFile) -> dict[str, Any] | None:
        """The file a completed upload made, when its answer was lost.

        The file a completed upload made (its complete's answer was lost): the newest fine-tune
        file of the upload's name and size, made no earlier than the upload.
        """
        page = self._call("upload (find the completed file)", self.sdk.files.list, purpose="fine-tune",
                          order="desc", limit=100)  # fmt: skip
        for item in page.data:
            raw = as_dict(item)
            if (
                raw.get("filename") == prepared.filename
                and raw.get("bytes") == prepared.size_bytes
                and (raw.get("created_at") or 0) >= (getattr(upload, "created_at", 0) or 0)
            ):
                return raw
        return None

    def list_files(self, *, limit: int = 100) -> list[FileRef]:
        """The account's fine-tuning files (purpose `fine-tune`), newest first.

        OpenAI does not say whether one was uploaded as training or validation data, so each is called
        `training`.
        """
        fetch = functools.partial(self.sdk.files.list, purpose="fine-tune", order="desc")
        return [self._listed_file(as_dict(item)) for item in self._pages("list files", fetch, limit)]

    def delete_file(self, file_id: str) -> None:
        """Delete an uploaded file (OpenAI also removes it from every vector store)."""
        answer = as_dict(self._call(f"delete file {file_id}", self.sdk.files.delete, file_id))
        if answer.get("deleted") is not True:
            raise ProviderError(
                f"delete file {file_id}: OpenAI answered without deleting it ({answer.get('deleted')!r})",
                provider=self.name, body=answer,
            )  # fmt: skip

    # -- jobs --------------------------------------------------------------------------------------

    def check_job(self, spec: JobSpec) -> None:
        """Raise what OpenAI's create would refuse, without a request.

        What OpenAI's create would refuse, found without a request (so before anything is
        uploaded): a `provider_options` key it does not know, an absolute learning_rate, beta outside
        DPO, a `method` option without a type, more metadata than a job holds or a key or value
        over its length, a suffix over 64 characters.
        """
        _, options = self._method(spec)
        self._metadata(spec, "")
        self._integrations(spec, options)
        if spec.suffix is not None and len(spec.suffix) > _SUFFIX_MAX:
            raise JobSpecRefused(
                f"suffix {spec.suffix!r} is too long for OpenAI: at most {_SUFFIX_MAX} characters.",
                provider=self.name, feature="suffix",
            )  # fmt: skip

    def _method(self, spec: JobSpec) -> tuple[dict[str, Any], dict[str, Any]]:
        """The request's `method` object and the remaining `provider_options`.

        The request's `method` object, and the `provider_options` left for the request's body;
        refuses what OpenAI cannot take.
        """
        hp = spec.hyperparameters
        options = dict(hp.provider_options)
        refuse_unknown_options(
            self.name, options, KNOWN_OPTIONS,
            hint="Known options: " + "; ".join(f"{k} ({v})" for k, v in KNOWN_OPTIONS.items()) + ".",
        )  # fmt: skip
        params = _HYPERPARAMETERS.map(self.name, hp)
        params.pop("seed", None)  # the request's, not the method's
        if "beta" in options and spec.method != "dpo":
            raise JobSpecRefused.unsupported(self.name, "beta outside DPO", "Use method='dpo'.")
        method = options.pop("method", None)
        if method is None:
            if "beta" in options:
                params["beta"] = options.pop("beta")
            kind = "dpo" if spec.method == "dpo" else "supervised"
            method = {"type": kind, kind: {"hyperparameters": params}}
        elif not isinstance(method, dict) or "type" not in method:
            raise JobSpecRefused.unsupported(
                self.name, "provider_options['method'] without a 'type'",
                "Pass a whole OpenAI method object, e.g. {'type': 'reinforcement', 'reinforcement': {...}}.",
            )  # fmt: skip
        return method, options

    def _integrations(self, spec: JobSpec, options: dict[str, Any]) -> list[Any] | None:
        """The request's `integrations`.

        Those passed in `provider_options`, then `spec.wandb` as OpenAI's W&B integration (`{"type":
        "wandb", "wandb": {project, entity, name, tags}}`).
        """
        given = options.get("integrations")
        if spec.wandb is None:
            return list(given) if given is not None else None
        integrations = list(given or [])
        if any(isinstance(i, dict) and i.get("type") == "wandb" for i in integrations):
            raise JobSpecRefused.unsupported(
                self.name, "two W&B integrations (JobSpec.wandb and provider_options['integrations'])",
                "Pass one of them.",
            )  # fmt: skip
        wandb = spec.wandb
        if wandb.api_key is not None or wandb.base_url is not None:
            raise JobSpecRefused.unsupported(
                self.name, "a W&B api_key or base_url in JobSpec.wandb",
                "OpenAI logs with the W&B key saved in the organisation's settings "
                "(https://platform.openai.com/settings/organization/general): save it there.",
            )  # fmt: skip
        settings: dict[str, Any] = {"project": wandb.project}
        if wandb.entity is not None:
            settings["entity"] = wandb.entity
        if wandb.name is not None:
            settings["name"] = wandb.name
        if wandb.tags:
            settings["tags"] = list(wandb.tags)
        integrations.append({"type": "wandb", "wandb": settings})
        if len(integrations) > _INTEGRATIONS_MAX:
            raise JobSpecRefused.unsupported(
                self.name, f"more than {_INTEGRATIONS_MAX} integrations", "Pass fewer integrations."
            )
        return integrations

    def _metadata(self, spec: JobSpec, idempotency_key: str) -> dict[str, str]:
        """The job's metadata with unitune's tag; refuses what OpenAI's metadata cannot hold."""
        refuse_reserved_metadata(self.name, spec.metadata, IDEMPOTENCY_TAG)
        for key, value in spec.metadata.items():
            if len(key) > _META_KEY_MAX or len(value) > _META_VALUE_MAX:
                raise JobSpecRefused(
                    f"metadata {key[:80]!r}: OpenAI takes keys up to {_META_KEY_MAX} and values up to "
                    f"{_META_VALUE_MAX} characters.",
                    provider=self.name, feature="metadata",
                )  # fmt: skip
        metadata = {**spec.metadata, IDEMPOTENCY_TAG: idempotency_key}
        if len(metadata) > _META_PAIRS:
            raise JobSpecRefused.unsupported(
                self.name, f"more than {_META_PAIRS - 1} metadata pairs",
                f"OpenAI keeps {_META_PAIRS} pairs per job and unitune uses one ({IDEMPOTENCY_TAG}).",
            )  # fmt: skip
        return metadata

    def create_job(self, spec: JobSpec, *, idempotency_key: str) -> Job:
        self.check_job(spec)
        hp = spec.hyperparameters
        method, options = self._method(spec)
        kwargs: dict[str, Any] = {
            "model": spec.model,
            "training_file": spec.training_file.id,
            "method": method,
            "metadata": self._metadata(spec, idempotency_key),
        }
        if spec.validation_file is not None:
            kwargs["validation_file"] = spec.validation_file.id
        if spec.suffix is not None:
            kwargs["suffix"] = spec.suffix
        if hp.seed is not None:
            kwargs["seed"] = hp.seed
        integrations = self._integrations(spec, options)
        if integrations is not None:
            kwargs["integrations"] = integrations
        return self._job(self._call("create job", self.sdk.fine_tuning.jobs.create, **kwargs))

    def get_job(self, job_id: str) -> Job:
        return self._job(self._call(f"get job {job_id}", self.sdk.fine_tuning.jobs.retrieve, job_id))

    def list_jobs(self, *, limit: int = 20) -> list[Job]:
        return [self._job(j) for j in self._pages("list jobs", self.sdk.fine_tuning.jobs.list, limit)]

    def find_job(self, idempotency_key: str) -> Job | None:
        """Server-side search by the metadata tag (checked again here: a proxy may ignore the filter)."""
        # A step of the client's create (look, then create): the look retries on its own, so a
        # failed look does not cost a create attempt.
        jobs = self._step_call(
            "find job", self.sdk.fine_tuning.jobs.list, limit=10,
            metadata={IDEMPOTENCY_TAG: idempotency_key},
        )  # fmt: skip
        for raw in jobs.data:
            job = self._job(raw)
            if job.idempotency_key == idempotency_key:
                return job
        return None

    def cancel_job(self, job_id: str) -> Job:
        return self._job(self._call(f"cancel job {job_id}", self.sdk.fine_tuning.jobs.cancel, job_id))

    def pause_job(self, job_id: str) -> Job:
        return self._job(self._call(f"pause job {job_id}", self.sdk.fine_tuning.jobs.pause, job_id))

    def resume_job(self, job_id: str) -> Job:
        return self._job(self._call(f"resume job {job_id}", self.sdk.fine_tuning.jobs.resume, job_id))

    def _job(self, obj: Any) -> Job:
        raw = as_dict(obj)
        status = str(raw.get("status"))
        error = raw.get("error") or None
        error_text = None
        if error and (error.get("message") or error.get("code")):
            error_text = " ".join(
                x for x in (f"[{error['code']}]" if error.get("code") else None, error.get("message"),
                            f"(param: {error['param']})" if error.get("param") else None) if x
            )  # fmt: skip
        method = raw.get("method") or {}
        hp = raw.get("hyperparameters") or {}
        kind = method.get("type")
        if kind and isinstance(method.get(kind), dict) and method[kind].get("hyperparameters"):
            hp = method[kind]["hyperparameters"]
        metadata = raw.get("metadata") or {}
        return Job(
            id=str(raw["id"]),
            provider=self.name,
            status=map_status(self.name, status, STATUS_MAP),
            raw_status=status,
            model=str(raw.get("model")),
            fine_tuned_model=raw.get("fine_tuned_model"),
            created_at=as_datetime(raw.get("created_at")),
            finished_at=as_datetime(raw.get("finished_at")),
            estimated_finish=as_datetime(raw.get("estimated_finish")),
            training_file=raw.get("training_file"),
            validation_file=raw.get("validation_file"),
            hyperparameters={k: v for k, v in hp.items() if v is not None},
            trained_tokens=raw.get("trained_tokens"),
            error=error_text,
            idempotency_key=metadata.get(IDEMPOTENCY_TAG),
            raw=raw,
        )

    # -- what a job reports ------------------------------------------------------------------------

    def list_events(self, job_id: str) -> list[JobEvent]:
        """Every event, oldest first (the API pages newest first)."""
        items = self._pages(
            f"events of job {job_id}", lambda **kw: self.sdk.fine_tuning.jobs.list_events(job_id, **kw)
        )
        events = []
        for item in reversed(items):
            raw = as_dict(item)
            level = {"warn": "warning", "warning": "warning", "error": "error"}.get(
                str(raw.get("level")), "info"
            )
            events.append(
                JobEvent(
                    id=raw.get("id"),
                    created_at=as_datetime(raw.get("created_at")) or dt.datetime.now(dt.timezone.utc),
                    level=level,
                    message=str(raw.get("message", "")),
                    type=str(raw.get("type") or "message"),
                    data=raw.get("data") or {},
                )
            )
        return events

    def list_checkpoints(self, job_id: str) -> list[Checkpoint]:
        """The job's saved checkpoints (OpenAI keeps the last three epochs), by step."""
        items = self._pages(
            f"checkpoints of job {job_id}",
            lambda **kw: self.sdk.fine_tuning.jobs.checkpoints.list(job_id, **kw),
        )
        out = []
        for item in items:
            raw = as_dict(item)
            metrics = {k: float(v) for k, v in (raw.get("metrics") or {}).items() if as_float(v) is not None}
            out.append(
                Checkpoint(
                    id=str(raw["id"]),
                    step=int(raw.get("step_number") or metrics.get("step") or 0),
                    model=raw.get("fine_tuned_model_checkpoint"),
                    created_at=as_datetime(raw.get("created_at")),
                    metrics=metrics,
                    raw=raw,
                )
            )
        return sorted(out, key=lambda c: c.step)

    def list_metrics(self, job_id: str) -> list[StepMetric]:
        """The job's per-step metrics.

        Per-step metrics: the result CSV when the job has one (every step), else the `metrics`
        events the job has sent so far.
        """
        # Several requests: each is retried on its own (a step), not the whole call.
        job = self.step(f"get job {job_id}", self.get_job, job_id)
        result_files = job.raw.get("result_files") or []
        if result_files:
            action = f"result file of job {job_id}"
            content = self._step_call(action, self.sdk.files.content, result_files[0])
            rows = _metrics_from_csv(content.text)
            if rows:
                return rows
        by_step: dict[int, StepMetric] = {}
        for event in self.step(f"events of job {job_id}", self.list_events, job_id):
            if event.type == "metrics" and "step" in event.data:
                metric = _metric(event.data)
                if metric is not None:
                    by_step[metric.step] = metric
        return [by_step[k] for k in sorted(by_step)]

    # -- inference -----------------------------------------------------------------------------------

    def chat(self, model: str, messages: list[Message], **params: Any) -> ChatResponse:
        completion = self._call(
            f"chat with {model}", self.sdk.chat.completions.create, model=model, messages=chat_messages(messages),
            **params,
        )  # fmt: skip
        return chat_response(as_dict(completion), model=model, provider=self.name)


_KNOWN_METRICS = {
    "train_loss": "train_loss",
    "valid_loss": "valid_loss",
    "train_accuracy": "train_accuracy",
    "train_mean_token_accuracy": "train_accuracy",
    "valid_mean_token_accuracy": "valid_accuracy",
    "valid_accuracy": "valid_accuracy",
}


def _metric(row: dict[str, Any]) -> StepMetric | None:
    step = as_float(row.get("step"))
    if step is None:
        return None
    fields: dict[str, Any] = {}
    extra: dict[str, float] = {}
    for key, value in row.items():
        number = as_float(value)
        if key == "step" or number is None:
            continue
        if key in _KNOWN_METRICS and _KNOWN_METRICS[key] not in fields:
            fields[_KNOWN_METRICS[key]] = number
        else:
            extra[key] = number
    return StepMetric(step=int(step), **fields, extra=extra)


def _metrics_from_csv(text: str) -> list[StepMetric]:
    """OpenAI's result file: `step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy…`."""
    rows = [_metric(r) for r in csv.DictReader(io.StringIO(text))]
    return [r for r in rows if r is not None]
