"""Mistral: tuned models, inference and the retired jobs API.

Mistral: tuned models and inference on the current `mistralai` SDK (3.x), the retired jobs API
over httpx (extra `unitune[mistral]`).

Mistral retired fine-tuning: the SDK dropped its jobs API in 2.5.2 and the catalog marks training
retired, so `create_job` is refused with `ProviderRetiredError` (date, source, live alternatives)
before anything is uploaded. What still works is served in full: files, chat with `ft:` models,
and tuned-model management (list, rename, archive, unarchive, delete) through `client.models()`
and friends.

Accounts that still see the legacy endpoints can say so with a catalog override (`accepts_new_jobs
= true` for mistral); the adapter then drives `/v1/fine_tuning/jobs` over httpx from Mistral's
last published spec: create (with `auto_start`), get, list, cancel, start, and the dry run that
returns cost and duration. A job Mistral has validated but that waits for a manual start
(`auto_start = false`) is `paused`, with `action_required` saying so; `resume_job` starts it. A 410,
or a 404/405 on the jobs collection, is `ProviderRetiredError`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import json
from collections.abc import Iterator
from typing import Any, ClassVar

from pydantic import Field

from unitune.errors import (
    ConfigurationError,
    ProviderError,
    ProviderRetiredError,
)
from unitune.providers._sdk import HyperparameterTable, SDKProvider, tagged_suffix
from unitune.providers.base import (
    ProviderSettings,
    as_datetime,
    as_dict,
    catalog_retirement,
    chat_messages,
    chat_response,
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
    Checkpoint,
    FileRef,
    Job,
    JobEvent,
    JobSpec,
    JobStatus,
    Message,
    PreparedFile,
    StepMetric,
    TunedModel,
)

__all__ = ["KNOWN_OPTIONS", "STATUS_MAP", "MistralProvider", "MistralSettings", "idempotency_tag"]

S = JobStatus

#: Every status of the legacy jobs API (the spec's enum).
STATUS_MAP: dict[str, JobStatus] = {
    "QUEUED": S.QUEUED,
    "STARTED": S.RUNNING,
    "VALIDATING": S.VALIDATING,
    # Validated and waiting for a manual start (auto_start = false): nothing runs until you act,
    # which is what `paused` means in unitune; resume_job() starts it.
    "VALIDATED": S.PAUSED,
    "RUNNING": S.RUNNING,
    "FAILED_VALIDATION": S.FAILED,
    "FAILED": S.FAILED,
    "SUCCESS": S.SUCCEEDED,
    "CANCELLED": S.CANCELLED,
    "CANCELLATION_REQUESTED": S.CANCELLING,
}

#: Passed through to the legacy create (`hyperparameters` or the request body); others refused.
KNOWN_OPTIONS = {
    "training_steps": "hyperparameters",
    "weight_decay": "hyperparameters",
    "warmup_fraction": "hyperparameters",
    "seq_len": "hyperparameters",
    "fim_ratio": "hyperparameters",
    "auto_start": "body",
    "invalid_sample_skip_percentage": "body",
    "integrations": "body",
}
_MAX_UPLOAD = 512 * 1024 * 1024
_JOBS = "/v1/fine_tuning/jobs"


def idempotency_tag(key: str) -> str:
    """The suffix tag that marks a job created with this idempotency key.

    The suffix tag that marks a job created with this idempotency key (`u` + 6 hex: Mistral's
    suffix holds 18 characters).
    """
    return key_tag(key, prefix="u", nbytes=3)


_SUFFIX_MAX = 18
_HYPERPARAMETERS = HyperparameterTable(
    names={"epochs": "epochs", "learning_rate": "learning_rate"},
    instead=dict.fromkeys(
        ("batch_size", "learning_rate_multiplier", "seed", "lora_rank", "lora_alpha"),
        "Mistral's jobs took epochs, learning_rate and the options " + ", ".join(KNOWN_OPTIONS) + ".",
    ),
)


class MistralSettings(ProviderSettings):
    """`[providers.mistral]` in unitune.toml. The key comes from `MISTRAL_API_KEY` when not set here."""

    api_key_env: ClassVar[str | None] = "MISTRAL_API_KEY"

    base_url: str | None = Field(
        default=None,
        description="Server root without /v1 (default https://api.mistral.ai); a local server in tests.",
    )
    timeout: float = 120.0
    auto_start: bool = Field(
        default=True,
        description="Legacy jobs: start after validation (False: wait in `paused` for resume_job).",
    )


def _sdk() -> Any:
    from unitune.providers.registry import import_sdk

    return import_sdk("mistral", "mistralai.client")


def _json(obj: Any) -> dict[str, Any]:
    return as_dict(obj, by_alias=True)


def _is_json(body: Any) -> bool:
    """Whether an answer's text is JSON at all (an SDK validation error may be either case)."""
    if not isinstance(body, (str, bytes)) or not body:
        return False
    try:
        json.loads(body)
    except ValueError:
        return False
    return True


def _first_line(text: str) -> str:
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return "; ".join(lines[:3])[:300]


@guard_answers("dry_run")
class MistralProvider(SDKProvider):
    """Mistral.

    `client=` takes a ready `mistralai.client.Mistral`; `http=` a ready `httpx.Client` for the legacy
    jobs endpoints (tests point both at mocks).
    """

    name = "mistral"
    settings_class = MistralSettings
    dataset_profile = "mistral"
    wire_format = "mistral"
    capabilities = Capabilities(
        pause=False,
        checkpoints=True,
        dpo=False,
        lora=False,
        notes={
            "create": "training retired (catalog); legacy jobs only when a catalog override says the account still has them",
            "events": "embedded in the legacy job; none once the jobs API answers 410",
            "metrics": "from the legacy job's checkpoints",
            "files": "See and delete uploaded files in Mistral's console: https://console.mistral.ai/.",
        },
    )
    settings: MistralSettings

    def __init__(
        self, settings: MistralSettings | None = None, *, client: Any = None, http: Any = None
    ) -> None:
        super().__init__(settings, client=client)
        self._http = http
        self._owned_http = http is None

    # -- clients and errors --------------------------------------------------------------------------

    def _build_client(self) -> Any:
        """The `mistralai.client.Mistral` client (no SDK retries: FineTuneClient retries)."""
        kwargs: dict[str, Any] = {
            "api_key": self.settings.require_api_key(self.name).get_secret_value(),
            "timeout_ms": int(self.settings.timeout * 1000),
        }
        if self.settings.base_url:
            kwargs["server_url"] = self.settings.base_url
        return _sdk().Mistral(**kwargs)

    @property
    def http(self) -> Any:
        """The httpx client for the legacy jobs endpoints."""
        with self._lock:
            if self._http is None:
                from unitune.providers.registry import import_sdk

                httpx = import_sdk("mistral", "httpx")
                key = self.settings.require_api_key(self.name).get_secret_value()
                self._http = httpx.Client(
                    base_url=self.settings.base_url or "https://api.mistral.ai",
                    headers={"Authorization": f"Bearer {key}", "Accept": "application/json"},
                    timeout=self.settings.timeout,
                )
            return self._http

    def close(self) -> None:
        """Release the SDK client and the legacy endpoints' httpx client, those this provider built."""
        with self._lock:
            http = self._http if self._owned_http else None
            if self._owned_http:
                self._http = None
        if http is not None:
            http.close()
        super().close()

    def _retired(self, message: str, **kwargs: Any) -> ProviderRetiredError:
        date, alternatives, source = catalog_retirement(
            self.name, self.context.catalog, today=self.context.clock.now().date()
        )
        return ProviderRetiredError(
            f"{message}. Mistral retired fine-tuning (the SDK has no jobs API since mistralai 2.5.2)",
            provider=self.name, retired_on=date, alternatives=alternatives, source=source, **kwargs,
        )  # fmt: skip

    @contextlib.contextmanager
    def _map_errors(self, action: str, *, jobs_collection: bool = False) -> Iterator[None]:
        from unitune.providers.registry import import_sdk

        errors = _sdk().errors
        httpx = import_sdk("mistral", "httpx")  # the legacy jobs endpoints
        httpx2 = import_sdk("mistral", "httpx2")  # what mistralai 3.x runs on
        try:
            yield
        except errors.ResponseValidationError as e:
            if not _is_json(e.body):  # a body cut short, an HTML page, nothing: transient
                raise unreadable_answer(self.name, action, status_code=e.status_code) from e
            raise ProviderError(
                f"{action}: the API answered with data the SDK could not read ({_first_line(e.message)})",
                provider=self.name, status_code=e.status_code, body=e.body,
            ) from e  # fmt: skip
        except errors.MistralError as e:
            raise self._status(e.status_code, e.headers, e.body, action, jobs_collection) from e
        except errors.NoResponseError as e:
            raise transport_error(self.name, action, e) from e
        except httpx.HTTPStatusError as e:
            raise self._status(
                e.response.status_code, e.response.headers, e.response.text, action, jobs_collection
            ) from e
        except (httpx.TransportError, httpx2.TransportError) as e:  # timeouts, resets, refused connections
            timeout = isinstance(e, (httpx.TimeoutException, httpx2.TimeoutException))
            raise transport_error(self.name, action, e, timeout=timeout) from e

    def _status(
        self, code: int, headers: Any, body: Any, action: str, jobs_collection: bool
    ) -> ProviderError:
        import json

        parsed: Any = body
        if isinstance(body, (str, bytes)):
            with contextlib.suppress(ValueError):
                parsed = json.loads(body)
        detail = parsed
        if isinstance(parsed, dict):
            detail = parsed.get("message") or parsed.get("detail") or parsed
        text = f"{action}: {plain_text(detail)}"
        request_id = headers.get("x-request-id") if headers is not None else None
        if (
            code == 410
            or (jobs_collection and code in (404, 405))
            or (code in (400, 403, 404, 422) and "not available" in str(detail).lower() and "fine" in action)
        ):
            return self._retired(text, status_code=code, request_id=request_id, body=parsed)
        return error_from_status(
            code, text, provider=self.name, request_id=request_id, body=parsed,
            retry_after=parse_retry_after(headers.get("retry-after")) if headers is not None else None,
        )  # fmt: skip

    def _legacy(self, method: str, path: str, action: str, *, collection: bool = False, **kwargs: Any) -> Any:
        with self._map_errors(action, jobs_collection=collection):
            response = self.http.request(method, path, **kwargs)
            response.raise_for_status()
            try:
                return response.json()
            except ValueError as e:  # cut short, or a proxy's HTML page: transient
                raise unreadable_answer(self.name, action, e, status_code=response.status_code) from e

    # -- files ----------------------------------------------------------------------------------------

    def _check_size(self, prepared: PreparedFile) -> None:
        if prepared.size_bytes > _MAX_UPLOAD:
            raise ConfigurationError(
                f"{prepared.filename} is {prepared.size_bytes / 2**20:.0f} MiB; Mistral takes files up to 512 MB.",
                fix="Split the dataset (`unitune split`) or sample it down.",
            )

    def upload_pair(self, training: PreparedFile, validation: PreparedFile) -> tuple[FileRef, FileRef]:
        """Both files' sizes are checked before either is sent."""
        self._check_size(training)
        self._check_size(validation)
        return super().upload_pair(training, validation)

    def upload(self, prepared: PreparedFile) -> FileRef:
        self._check_size(prepared)
        with prepared.path.open("rb") as fh:
            obj = self._call(
                f"upload {prepared.filename}", self.sdk.files.upload,
                file={"file_name": prepared.filename, "content": fh}, purpose="fine-tune",
            )  # fmt: skip
        raw = _json(obj)
        return self._file_ref(prepared, raw, size_bytes=raw.get("size_bytes"))

    # -- legacy jobs --------------------------------------------------------------------------------------

    def _body(self, spec: JobSpec, idempotency_key: str) -> dict[str, Any]:
        hp = spec.hyperparameters
        params = _HYPERPARAMETERS.map(self.name, hp)
        options = dict(hp.provider_options)
        refuse_unknown_options(self.name, options, KNOWN_OPTIONS)
        body: dict[str, Any] = {"auto_start": self.settings.auto_start}
        for key, value in options.items():
            (params if KNOWN_OPTIONS[key] == "hyperparameters" else body)[key] = value
        tag = idempotency_tag(idempotency_key)
        body.update(
            model=spec.model,
            training_files=[{"file_id": spec.training_file.id, "weight": 1}],
            suffix=tagged_suffix(self.name, "Mistral", spec.suffix, tag, limit=_SUFFIX_MAX),
            hyperparameters=params,
        )
        if spec.validation_file is not None:
            body["validation_files"] = [spec.validation_file.id]
        return body

    def check_job(self, spec: JobSpec) -> None:
        """Raise what the create would refuse, before its request.

        What the create would refuse before its request (so before anything is uploaded): the
        hyperparameters Mistral's jobs do not take, unknown `provider_options`, a suffix too long for
        the tag unitune appends.
        """
        # The tag has the same length whatever the key, so any key tells whether the suffix fits.
        self._body(spec, "unitune-check")

    def create_job(self, spec: JobSpec, *, idempotency_key: str) -> Job:
        self.check_job(spec)
        raw = self._legacy("POST", _JOBS, "create fine-tuning job", collection=True,
                           json=self._body(spec, idempotency_key))  # fmt: skip
        if "id" not in raw:  # a LegacyJobMetadataOut: the server treated it as a dry run
            raise ProviderError(f"create fine-tuning job: Mistral answered with metadata only: {raw.get('details')}",
                                provider=self.name, body=raw)  # fmt: skip
        return self._job(raw).model_copy(update={"idempotency_key": idempotency_key})

    def dry_run(self, spec: JobSpec) -> dict[str, Any]:
        """Mistral's cost and duration estimate for a job, without creating it.

        Mistral's cost and duration estimate for a job, without creating it (`dry_run=true`):
        `cost`, `cost_currency`, `train_tokens`, `expected_duration_seconds`, `epochs`, …
        """
        result: dict[str, Any] = self._legacy(
            "POST", _JOBS, "dry run of a fine-tuning job", collection=True,
            params={"dry_run": "true"}, json=self._body(spec, "dry-run"),
        )  # fmt: skip
        return result

    def get_job(self, job_id: str) -> Job:
        return self._job(self._legacy("GET", f"{_JOBS}/{job_id}", f"get fine-tuning job {job_id}"))

    def list_jobs(self, *, limit: int = 20) -> list[Job]:
        """Every page (page numbers), newest first, up to `limit`."""
        jobs: list[Job] = []
        seen: set[str] = set()
        page = 0
        size = min(100, limit)  # page numbers count in pages of one size: never change it mid-way
        while len(jobs) < limit:
            # Later pages are retried on their own: the list is never read again from the start.
            raw = (
                self._legacy
                if page == 0
                else functools.partial(self.step, "list fine-tuning jobs", self._legacy)
            )(
                "GET",
                _JOBS,
                "list fine-tuning jobs",
                collection=True,
                params={"page": page, "page_size": size},
            )
            fresh = [j for j in raw.get("data") or [] if j.get("id") not in seen]
            seen.update(j["id"] for j in fresh)
            jobs += [self._job(j) for j in fresh]
            # Stop on an empty or repeated page (a mock may answer every page alike), a short page, or
            # at `total` when the server gives it.
            total = raw.get("total")
            if (
                not fresh
                or len(raw.get("data") or []) < size
                or (total is not None and len(seen) >= int(total))
            ):
                break
            page += 1
        epoch = dt.datetime.min.replace(tzinfo=dt.timezone.utc)
        return sorted(jobs, key=lambda j: j.created_at or epoch, reverse=True)[:limit]

    def find_job(self, idempotency_key: str) -> Job | None:
        tag = idempotency_tag(idempotency_key)
        # A step of the client's create (look, then create): the look retries on its own.
        for job in self.step("find job", self.list_jobs, limit=1000):
            suffix = str(job.raw.get("suffix") or "")
            if suffix == tag or suffix.endswith(f"-{tag}"):
                return job.model_copy(update={"idempotency_key": idempotency_key})
        return None

    def cancel_job(self, job_id: str) -> Job:
        return self._job(self._legacy("POST", f"{_JOBS}/{job_id}/cancel", f"cancel fine-tuning job {job_id}"))

    def resume_job(self, job_id: str) -> Job:
        """Start a job Mistral validated and holds for a manual start (`VALIDATED`)."""
        return self._job(self._legacy("POST", f"{_JOBS}/{job_id}/start", f"start fine-tuning job {job_id}"))

    def _job(self, raw: dict[str, Any]) -> Job:
        status = str(raw.get("status"))
        mapped = map_status(self.name, status, STATUS_MAP)
        meta = raw.get("metadata") or {}
        action = None
        if status == "VALIDATED" and raw.get("auto_start") is True:
            mapped = S.QUEUED  # validated, and about to start by itself: nothing to do
        elif status == "VALIDATED":
            cost = (
                f" (estimated {meta['cost']} {meta.get('cost_currency') or ''})".rstrip()
                if meta.get("cost")
                else ""
            )
            action = f"Mistral validated the job and waits for a manual start{cost}: call resume_job() to start it."
        error = None
        if mapped is S.FAILED:
            failures = [e for e in raw.get("events") or [] if "fail" in str(e.get("name", "")).lower()]
            error = (
                str((failures[-1].get("data") or {}).get("error") or failures[-1].get("name"))
                if failures
                else status
            )
        checkpoints = raw.get("checkpoints") or []
        return Job(
            id=str(raw["id"]),
            provider=self.name,
            status=mapped,
            raw_status=status,
            model=str(raw.get("model") or ""),
            fine_tuned_model=raw.get("fine_tuned_model"),
            created_at=as_datetime(raw.get("created_at")),
            finished_at=as_datetime(raw.get("modified_at")) if mapped.is_terminal else None,
            estimated_finish=None,
            training_file=next(
                (f.get("file_id") for f in raw.get("training_files") or [] if isinstance(f, dict)), None
            )
            or next((f for f in raw.get("training_files") or [] if isinstance(f, str)), None),
            validation_file=next(iter(raw.get("validation_files") or []), None),
            hyperparameters={k: v for k, v in (raw.get("hyperparameters") or {}).items() if v is not None},
            trained_tokens=raw.get("trained_tokens"),
            error=error,
            action_required=action,
            raw={**raw, "checkpoints": checkpoints},
        )

    def list_events(self, job_id: str) -> list[JobEvent]:
        raw = self.get_job(job_id).raw
        events = [
            JobEvent(
                created_at=as_datetime(e.get("created_at")) or dt.datetime.now(dt.timezone.utc),
                level="error" if "fail" in str(e.get("name", "")).lower() else "info",
                message=str(e.get("name", "")),
                type="status",
                data=e.get("data") or {},
            )
            for e in raw.get("events") or []
        ]
        return sorted(events, key=lambda e: e.created_at)

    def list_checkpoints(self, job_id: str) -> list[Checkpoint]:
        raw = self.get_job(job_id).raw
        return sorted(
            (
                Checkpoint(
                    id=f"{job_id}:{c.get('step_number', 0)}",
                    step=int(c.get("step_number") or 0),
                    created_at=as_datetime(c.get("created_at")),
                    metrics={k: float(v) for k, v in (c.get("metrics") or {}).items() if v is not None},
                    raw=c,
                )
                for c in raw.get("checkpoints") or []
            ),
            key=lambda c: c.step,
        )

    def list_metrics(self, job_id: str) -> list[StepMetric]:
        return [
            StepMetric(
                step=c.step,
                train_loss=c.metrics.get("train_loss"),
                valid_loss=c.metrics.get("valid_loss"),
                valid_accuracy=c.metrics.get("valid_mean_token_accuracy"),
            )
            for c in self.list_checkpoints(job_id)
        ]

    # -- tuned models (current SDK) ---------------------------------------------------------------------------

    def _model(self, obj: Any) -> TunedModel:
        # A variant this SDK version does not know arrives as an "Unknown…" wrapper with the JSON in `raw`.
        raw = obj.raw if isinstance(getattr(obj, "raw", None), dict) else _json(obj)
        return TunedModel(
            id=str(raw["id"]), provider=self.name, base_model=raw.get("root"), job_id=raw.get("job"),
            name=raw.get("name"), description=raw.get("description"), archived=bool(raw.get("archived")),
            created_at=as_datetime(raw.get("created")), raw=raw,
        )  # fmt: skip

    def list_models(self) -> list[TunedModel]:
        listed = self._call("list models", self.sdk.models.list)
        cards = [m.raw if isinstance(getattr(m, "raw", None), dict) else _json(m) for m in listed.data or []]
        # A card of a shape this SDK version does not know still says its type in its JSON.
        return [self._model(c) for c in cards if c.get("type") == "fine-tuned"]

    def update_model(
        self, model_id: str, *, name: str | None = None, description: str | None = None
    ) -> TunedModel:
        kwargs: dict[str, Any] = {"model_id": model_id}
        if name is not None:
            kwargs["name"] = name
        if description is not None:
            kwargs["description"] = description
        return self._model(self._call(f"update model {model_id}", self.sdk.models.update, **kwargs))

    def archive_model(self, model_id: str) -> TunedModel:
        self._call(f"archive model {model_id}", self.sdk.models.archive, model_id=model_id)
        return self._read_model(model_id)

    def unarchive_model(self, model_id: str) -> TunedModel:
        self._call(f"unarchive model {model_id}", self.sdk.models.unarchive, model_id=model_id)
        return self._read_model(model_id)

    def _read_model(self, model_id: str) -> TunedModel:
        """The model read back after a change: a second request, retried on its own."""
        action = f"model {model_id}"
        return self._model(self._step_call(action, self.sdk.models.retrieve, model_id=model_id))

    def delete_model(self, model_id: str) -> None:
        self._call(f"delete model {model_id}", self.sdk.models.delete, model_id=model_id)

    # -- inference ---------------------------------------------------------------------------------------------

    def chat(self, model: str, messages: list[Message], **params: Any) -> ChatResponse:
        answer = self._call(
            f"chat with {model}",
            self.sdk.chat.complete,
            model=model,
            messages=chat_messages(messages),
            **params,
        )
        return chat_response(_json(answer), model=model, provider=self.name)
