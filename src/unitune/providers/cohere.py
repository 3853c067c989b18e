"""Cohere fine-tuning through the official `cohere` SDK (`ClientV2`, 7.x; extra `unitune[cohere]`).

Cohere deprecated fine-tuning on 2025-09-15. The catalog says so, and `create_job` raises
`ProviderRetiredError` with the live alternatives before anything is uploaded. The SDK still ships
the datasets and fine-tuning clients, and teams still call their tuned Command models, so
everything else is served in full: the tuned models (which are Cohere's "jobs"), their events and
training-step metrics, chat, and listing and deleting models. Where an account can still train, a
catalog override (`accepts_new_jobs = true`) opens the create path:

- upload = `datasets.create(type="chat-finetune-input")`, with the validation file as the same
  dataset's `eval_data` (`upload_pair`); unitune then waits for Cohere's own validation and raises
  `ValidationFailed` with its error;
- create = `finetuning.create_finetuned_model` with the hyperparameters mapped;
- there is no cancel: `cancel_job` raises `UnsupportedFeatureError` and points at the explicit,
  irreversible `delete_model`, which unitune never calls on its own.

The finetuning client raises a plain `ApiError` on 429, so errors are mapped by status code.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

from pydantic import Field

from unitune.errors import (
    JobSpecRefused,
    ProviderError,
    ProviderUnavailableError,
    RateLimitError,
    UnsupportedFeatureError,
    ValidationFailed,
)
from unitune.providers._sdk import HyperparameterTable, SDKProvider, sdk_model
from unitune.providers.base import (
    ProviderSettings,
    as_datetime,
    as_dict,
    error_from_status,
    guard_answers,
    key_tag,
    map_status,
    parse_retry_after,
    plain_text,
    refuse_unknown_options,
    transport_error,
    unreadable_answer,
)
from unitune.types import (
    Capabilities,
    ChatResponse,
    FileRef,
    Job,
    JobEvent,
    JobSpec,
    JobStatus,
    Message,
    PreparedFile,
    StepMetric,
    TunedModel,
    Usage,
)

__all__ = ["KNOWN_OPTIONS", "STATUS_MAP", "CohereProvider", "CohereSettings"]

S = JobStatus

#: Every status the SDK declares.
STATUS_MAP: dict[str, JobStatus] = {
    # Declared, and says only that Cohere has not set a state yet (it is what an answer without a
    # status parses to): not started as far as anyone knows, never terminal, so a poller keeps polling.
    "STATUS_UNSPECIFIED": S.QUEUED,
    "STATUS_QUEUED": S.QUEUED,
    "STATUS_FINETUNING": S.RUNNING,
    # Trained; the serving endpoint is being set up: not callable yet.
    "STATUS_DEPLOYING_API": S.RUNNING,
    "STATUS_READY": S.SUCCEEDED,
    # Trained and deployed, but not serving for now: the training succeeded (see action_required).
    "STATUS_TEMPORARILY_OFFLINE": S.SUCCEEDED,
    "STATUS_PAUSED": S.PAUSED,
    "STATUS_FAILED": S.FAILED,
    # Deleted (Cohere's only way to stop a job): it will never change again.
    "STATUS_DELETED": S.CANCELLED,
}

#: Cohere-only settings through `provider_options`; anything else is refused by name.
KNOWN_OPTIONS = frozenset(
    {"early_stopping_patience", "early_stopping_threshold", "lora_target_modules", "base_model"}
)

_HYPERPARAMETERS = HyperparameterTable(
    names={
        "epochs": "train_epochs",
        "learning_rate": "learning_rate",
        "batch_size": "train_batch_size",
        "lora_rank": "lora_rank",
        "lora_alpha": "lora_alpha",
    },
    instead=dict.fromkeys(
        ("learning_rate_multiplier", "seed"),
        "Cohere takes epochs, learning_rate, batch_size and LoRA settings.",
    ),
    # Cohere's lora_alpha is a whole number (checked in `_hyperparameters`).
    convert=lambda name, value: int(value) if name == "lora_alpha" else value,
)
#: `provider_options` sent among the hyperparameters (`base_model` replaces the job's model instead).
_OPTION_PARAMS = ("early_stopping_patience", "early_stopping_threshold", "lora_target_modules")
_DATASET_DONE = {"validated", "skipped"}
_DATASET_FAILED = {"failed"}


class CohereSettings(ProviderSettings):
    """`[providers.cohere]` in unitune.toml. The key comes from `CO_API_KEY` when not set here."""

    api_key_env: ClassVar[str | None] = "CO_API_KEY"

    base_url: str | None = Field(
        default=None, description="Server root without /v1 (default: the SDK's, or CO_API_URL)."
    )
    timeout: float = 120.0
    dataset_timeout: float = Field(
        default=900.0, gt=0, description="How long upload waits for Cohere's dataset check."
    )
    dataset_poll_interval: float = Field(default=3.0, gt=0)


def _sdk() -> Any:
    from unitune.providers.registry import import_sdk

    return import_sdk("cohere", "cohere")


@guard_answers()
class CohereProvider(SDKProvider):
    """Cohere. `client=` takes a ready `cohere.ClientV2` (tests point it at a mock)."""

    name = "cohere"
    settings_class = CohereSettings
    dataset_profile = "cohere"
    wire_format = "cohere"
    capabilities = Capabilities(
        cancel=False,
        pause=False,
        checkpoints=False,
        dpo=False,
        lora=True,
        full_finetune=False,
        notes={
            "create": "deprecated 2025-09-15 (catalog); only through a catalog override for accounts that still train",
            "cancel": "none: delete_model() removes the model (irreversible, never implicit)",
            "files": "Uploads are Cohere datasets: see and delete them in the dashboard (https://dashboard.cohere.com/) or with `co.datasets.delete`.",
        },
    )
    settings: CohereSettings

    def __init__(self, settings: CohereSettings | None = None, *, client: Any = None) -> None:
        super().__init__(settings, client=client)
        self._http: Any = None
        # Waits for the dataset check sleep on the context's clock (the client's, once bound).
        self._sleep: Callable[[float], None] = lambda seconds: self.context.clock.sleep(seconds)

    def _build_client(self) -> Any:
        """Build the `cohere.ClientV2`, on an httpx client of our own.

        The `cohere.ClientV2` (SDK retries off: FineTuneClient retries), on an httpx client of
        our own, so close() can release its connections (ClientV2 has no close).
        """
        import httpx

        kwargs: dict[str, Any] = {
            "api_key": self.settings.require_api_key(self.name).get_secret_value(),
            "timeout": self.settings.timeout,
            "max_retries": 0,
        }
        if self.settings.base_url:
            kwargs["base_url"] = self.settings.base_url
        cohere = _sdk()
        self._http = httpx.Client(timeout=self.settings.timeout, follow_redirects=True)
        return cohere.ClientV2(**kwargs, httpx_client=self._http)

    def _release(self, client: Any) -> None:
        http, self._http = self._http, None
        if http is not None:
            http.close()

    @contextlib.contextmanager
    def _map_errors(self, action: str) -> Iterator[None]:
        import httpx
        from cohere.core.api_error import ApiError  # type: ignore[import-untyped,unused-ignore]

        try:
            yield
        except ApiError as e:
            if e.status_code is not None and 200 <= e.status_code < 300:
                # The SDK's word for a 2xx whose body it could not parse: cut short, or not JSON.
                raise unreadable_answer(self.name, action, status_code=e.status_code) from e
            headers = e.headers or {}
            body = e.body
            detail = body.get("message") if isinstance(body, dict) else body
            raise error_from_status(
                e.status_code, f"{action}: {plain_text(detail)}", provider=self.name, body=body,
                request_id=headers.get("x-request-id") or headers.get("x-trace-id"),
                retry_after=parse_retry_after(headers.get("retry-after")),
            ) from e  # fmt: skip
        except httpx.TransportError as e:
            raise transport_error(self.name, action, e, timeout=isinstance(e, httpx.TimeoutException)) from e
        except json.JSONDecodeError as e:
            raise unreadable_answer(self.name, action, e) from e

    # -- datasets ----------------------------------------------------------------------------------

    def upload(self, prepared: PreparedFile) -> FileRef:
        return self._dataset(prepared, None)[0]

    def upload_pair(self, training: PreparedFile, validation: PreparedFile) -> tuple[FileRef, FileRef]:
        """One Cohere dataset holds both: the validation file is its `eval_data`."""
        refs = self._dataset(training, validation)
        assert refs[1] is not None
        return refs[0], refs[1]

    def _dataset(
        self, training: PreparedFile, validation: PreparedFile | None
    ) -> tuple[FileRef, FileRef | None]:
        name = f"unitune-{training.sha256[:12]}"
        with contextlib.ExitStack() as stack:
            kwargs: dict[str, Any] = {
                "name": name,
                "type": "chat-finetune-input",
                "data": (training.filename, stack.enter_context(training.path.open("rb"))),
            }
            if validation is not None:
                kwargs["eval_data"] = (validation.filename, stack.enter_context(validation.path.open("rb")))
            created = self._call(f"upload {training.filename}", self.sdk.datasets.create, **kwargs)
        dataset = self._wait_validated(str(created.id), training.filename)
        ref = FileRef(id=str(created.id), provider=self.name, filename=training.filename,
                      size_bytes=training.size_bytes, purpose="training", sha256=training.sha256,
                      created_at=as_datetime(dataset.get("created_at")), raw=dataset)  # fmt: skip
        if validation is None:
            return ref, None
        # The evaluation data lives inside the same dataset; this ref says so.
        return ref, ref.model_copy(update={"purpose": "validation", "filename": validation.filename,
                                           "size_bytes": validation.size_bytes, "sha256": validation.sha256})  # fmt: skip

    def _wait_validated(self, dataset_id: str, filename: str) -> dict[str, Any]:
        clock = self.retry_policy.clock
        deadline = clock.monotonic() + self.settings.dataset_timeout
        while True:
            try:
                got = self._call(f"dataset {dataset_id}", self.sdk.datasets.get, dataset_id)
            except (RateLimitError, ProviderUnavailableError):
                # Keep polling until the deadline: failing here would make the client retry the whole
                # upload, and a second dataset would be created.
                if clock.monotonic() >= deadline:
                    raise
                self._sleep(self.settings.dataset_poll_interval)
                continue
            dataset = as_dict(got.dataset)
            status = str(dataset.get("validation_status"))
            if status in _DATASET_DONE:
                return dataset
            if status in _DATASET_FAILED:
                raise ValidationFailed(
                    f"Cohere refused {filename} (dataset {dataset_id}): {dataset.get('validation_error') or 'no reason given'}."
                    " Fix the file and upload it again.",
                    report=dataset,
                )
            if clock.monotonic() >= deadline:
                # Not ProviderUnavailableError: that is retried, and a retry would upload the file again.
                raise ProviderError(
                    f"Cohere had not finished checking dataset {dataset_id} ({status}) after "
                    f"{self.settings.dataset_timeout:.0f} s; raise dataset_timeout or try later",
                    provider=self.name,
                )
            self._sleep(self.settings.dataset_poll_interval)

    # -- fine-tuned models (Cohere's jobs) -------------------------------------------------------------

    def check_job(self, spec: JobSpec) -> None:
        """Raise what the create would refuse, before its request.

        What the create would refuse before its request (so before anything is uploaded): the
        hyperparameters Cohere does not take, unknown `provider_options`, a validation file outside
        the training dataset, and (where the SDK is installed: the create needs it anyway) values the
        SDK's request model refuses, such as a `provider_options` value of the wrong type.
        """
        from unitune.errors import MissingDependencyError

        try:
            self._request(spec, "unitune-check")
        except MissingDependencyError:
            self._hyperparameters(spec)  # no SDK here: the checks that need none

    def _hyperparameters(self, spec: JobSpec) -> dict[str, Any]:
        """The request's hyperparameters (those set), by Cohere's names; refuses what Cohere cannot take."""
        hp = spec.hyperparameters
        params = _HYPERPARAMETERS.map(self.name, hp)
        options = dict(hp.provider_options)
        refuse_unknown_options(self.name, options, KNOWN_OPTIONS)
        if spec.validation_file is not None and spec.validation_file.id != spec.training_file.id:
            raise JobSpecRefused.unsupported(
                self.name, "a validation file in another dataset",
                "Pass the local files together to create_job: Cohere keeps evaluation data inside the training dataset.",
            )  # fmt: skip
        if hp.lora_alpha is not None and not float(hp.lora_alpha).is_integer():
            raise JobSpecRefused(f"Cohere takes a whole number for lora_alpha, not {hp.lora_alpha:g}.",
                                 provider=self.name, feature="lora_alpha")  # fmt: skip
        params.update({k: options[k] for k in _OPTION_PARAMS if options.get(k) is not None})
        return params

    def _request(self, spec: JobSpec, idempotency_key: str) -> Any:
        """The SDK's `FinetunedModel` for the create; what its model refuses is a `ConfigurationError`."""
        from unitune.providers.registry import import_sdk

        params = self._hyperparameters(spec)
        finetuning = import_sdk(self.name, "cohere.finetuning")
        base_model = spec.hyperparameters.provider_options.get("base_model") or spec.model

        def build(what: str, cls: Any, **kwargs: Any) -> Any:
            return sdk_model(self.name, "Cohere", cls, what, **kwargs)

        return build(
            "the job's", finetuning.FinetunedModel,
            # The model's name carries the idempotency key's hash, so a lost answer can be found again.
            name=f"{(spec.suffix or 'unitune')[:40]}-{key_tag(idempotency_key)}",
            settings=build(
                "the job's", finetuning.Settings,
                base_model=build("the base model's", finetuning.BaseModel, base_type="BASE_TYPE_CHAT",
                                 name=base_model),
                dataset_id=spec.training_file.id,
                hyperparameters=build("the hyperparameter", finetuning.Hyperparameters, **params),
            ),
        )  # fmt: skip

    def create_job(self, spec: JobSpec, *, idempotency_key: str) -> Job:
        self.check_job(spec)
        request = self._request(spec, idempotency_key)
        created = self._call(
            "create fine-tuned model", self.sdk.finetuning.create_finetuned_model, request=request
        )
        return self._job(created.finetuned_model).model_copy(update={"idempotency_key": idempotency_key})

    def get_job(self, job_id: str) -> Job:
        got = self._call(f"get fine-tuned model {job_id}", self.sdk.finetuning.get_finetuned_model, job_id)
        return self._job(got.finetuned_model)

    def _all(
        self, action: str, fetch: Callable[..., Any], field_name: str, limit: int = 100_000, **extra: Any
    ) -> list[Any]:
        """Every item of a page-token list (an empty page, or an empty or repeated token, ends it)."""
        out: list[Any] = []
        token: str | None = None
        seen: set[str] = set()
        while len(out) < limit:
            kwargs: dict[str, Any] = {"page_size": min(100, limit - len(out)), **extra}
            if token:
                kwargs["page_token"] = token
            # Later pages are retried on their own: the list is never read again from the start.
            page = (
                self._call(action, fetch, **kwargs) if not token else self._step_call(action, fetch, **kwargs)
            )
            items = list(getattr(page, field_name, None) or [])
            out += items
            token = getattr(page, "next_page_token", None)
            if not items or not token or token in seen:
                break
            seen.add(token)
        return out[:limit]

    def list_jobs(self, *, limit: int = 20) -> list[Job]:
        # Cohere sorts ascending unless told: ask for the newest first, so `limit` keeps the recent ones.
        models = self._all(
            "list fine-tuned models", self.sdk.finetuning.list_finetuned_models, "finetuned_models", limit,
            order_by="created_at desc",
        )  # fmt: skip
        jobs = [self._job(m) for m in models]
        epoch = dt.datetime.min.replace(tzinfo=dt.timezone.utc)
        return sorted(jobs, key=lambda j: j.created_at or epoch, reverse=True)

    def find_job(self, idempotency_key: str) -> Job | None:
        tag = "-" + key_tag(idempotency_key)
        # A step of the client's create (look, then create): the look retries on its own.
        for job in self.step("find job", self.list_jobs, limit=1000):
            if str(job.raw.get("name", "")).endswith(tag):
                return job.model_copy(update={"idempotency_key": idempotency_key})
        return None

    def cancel_job(self, job_id: str) -> Job:
        raise UnsupportedFeatureError(
            provider=self.name, feature="cancelling a fine-tune",
            hint=f"Cohere has no cancel. To stop it, delete the model: client.delete_model({job_id!r}) "
            "(irreversible; unitune never does it for you).",
        )  # fmt: skip

    def _job(self, model: Any) -> Job:
        raw = as_dict(model)
        if not raw.get("id"):  # no fine-tuned model in the answer: not one to report as a job
            raise KeyError("id")
        status = str(raw.get("status") or "STATUS_UNSPECIFIED")
        settings = raw.get("settings") or {}
        mapped = map_status(self.name, status, STATUS_MAP)
        action = None
        if status == "STATUS_TEMPORARILY_OFFLINE":
            action = (
                "Cohere reports the tuned model temporarily offline: chat fails until Cohere brings it back."
            )
        elif status == "STATUS_PAUSED":
            action = (
                "Cohere paused this fine-tune and offers no resume call; contact Cohere or delete the model."
            )
        ready = mapped is S.SUCCEEDED
        return Job(
            id=str(raw.get("id")),
            provider=self.name,
            status=mapped,
            raw_status=status,
            model=str(
                (settings.get("base_model") or {}).get("name")
                or (settings.get("base_model") or {}).get("base_type")
                or ""
            ),
            fine_tuned_model=f"{raw.get('id')}-ft" if ready else None,
            created_at=as_datetime(raw.get("created_at")),
            finished_at=as_datetime(raw.get("completed_at")) if mapped.is_terminal else None,
            training_file=settings.get("dataset_id"),
            hyperparameters={
                k: v for k, v in (settings.get("hyperparameters") or {}).items() if v is not None
            },
            error="Cohere reports the fine-tune failed (see events)" if mapped is S.FAILED else None,
            action_required=action,
            raw=raw,
        )

    def list_events(self, job_id: str) -> list[JobEvent]:
        events = self._all(
            f"events of {job_id}", lambda **kw: self.sdk.finetuning.list_events(job_id, **kw), "events"
        )
        out = [
            JobEvent(
                created_at=as_datetime(e.created_at) or dt.datetime.now(dt.timezone.utc),
                level="error" if e.status == "STATUS_FAILED" else "info",
                message=f"status {e.status}",
                type="status",
                data={"status": e.status, "user_id": e.user_id},
            )
            for e in events
        ]
        return sorted(out, key=lambda e: e.created_at)  # Cohere lists newest first

    def list_metrics(self, job_id: str) -> list[StepMetric]:
        rows = self._all(f"metrics of {job_id}", lambda **kw: self.sdk.finetuning.list_training_step_metrics(job_id, **kw),
                         "step_metrics")  # fmt: skip
        out = []
        for row in rows:
            metrics = dict(row.metrics or {})
            out.append(StepMetric(
                step=int(row.step_number or 0),
                train_loss=metrics.pop("train_loss", None) if "train_loss" in metrics else metrics.pop("loss", None),
                valid_loss=metrics.pop("eval_loss", None) if "eval_loss" in metrics else metrics.pop("valid_loss", None),
                train_accuracy=metrics.pop("accuracy", None),
                extra={k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))},
            ))  # fmt: skip
        return sorted(out, key=lambda m: m.step)

    # -- tuned models --------------------------------------------------------------------------------

    def list_models(self) -> list[TunedModel]:
        return [
            TunedModel(
                id=f"{j.id}-ft",
                provider=self.name,
                base_model=j.model,
                job_id=j.id,
                name=j.raw.get("name"),
                created_at=j.created_at,
                raw=j.raw,
            )
            for j in self.list_jobs(limit=100_000)
            if j.status is S.SUCCEEDED
        ]

    def delete_model(self, model_id: str) -> None:
        """Delete a fine-tuned model (`<id>` or its chat id `<id>-ft`). Irreversible."""
        finetuned_id = model_id.removesuffix("-ft")
        self._call(
            f"delete fine-tuned model {finetuned_id}",
            self.sdk.finetuning.delete_finetuned_model,
            finetuned_id,
        )

    # -- inference -------------------------------------------------------------------------------------

    def chat(self, model: str, messages: list[Message], **params: Any) -> ChatResponse:
        payload = [
            {"role": m.role, "content": m.text} for m in messages if m.role in ("system", "user", "assistant")
        ]
        answer = self._call(f"chat with {model}", self.sdk.chat, model=model, messages=payload, **params)
        raw = as_dict(answer)
        content = ((raw.get("message") or {}).get("content")) or []
        text = "".join(str(c.get("text", "")) for c in content if isinstance(c, dict))
        billed = ((raw.get("usage") or {}).get("billed_units")) or {}
        return ChatResponse(
            model=model,
            provider=self.name,
            content=text,
            finish_reason=raw.get("finish_reason"),
            usage=Usage(
                prompt_tokens=max(0, int(billed.get("input_tokens") or 0)),
                completion_tokens=max(0, int(billed.get("output_tokens") or 0)),
            ),
            raw=raw,
        )
