"""Vertex AI tuning through `google-genai` and Cloud Storage.

Vertex AI tuning (Google's "Gemini Enterprise Agent Platform") through `google-genai` and Cloud
Storage (extra `unitune[vertex]`).

- Data lives in Cloud Storage: `upload` puts the converted file (the `gemini` wire format) at a key named
  by its content hash (resumable, in chunks, above `resumable_threshold_bytes`), and the file's id is its
  `gs://` URI. The object is written only if absent, so an upload retried after a lost answer is a no-op.
- Jobs are `client.tunings.tune(base_model=..., training_dataset=TuningDataset(gcs_uri=...),
  config=CreateTuningJobConfig(...))`, then `tunings.get/list/cancel` (keyword-only, as in google-genai
  3.x). The old `vertexai.tuning` SDK is not used.
- The job carries the idempotency key as a label (`unitune-key` = `ut` + 8 hex of its hash): `find_job`
  lists by that label before an ambiguous create is retried.
- Every `JOB_STATE_*` value is mapped (`STATUS_MAP`); `EXPIRED` is a failure and `PARTIALLY_SUCCEEDED` a
  success only when a tuned model came of it, so a wait never loops on a state that will not change.
- There is no event or metrics API for tuning jobs: `events()` reports the job's own timestamps (created,
  started, ended, with the error), and step metrics are not offered.
- A tuned model is called through its endpoint (`Job.fine_tuned_model`) with `models.generate_content`;
  each checkpoint has its own endpoint. `delete_model` deletes a tuned model resource.

Credentials are Application Default Credentials (`gcloud auth application-default login`, a service
account, or the metadata server), or an OAuth `access_token` setting; the project and region come from
the settings or `GOOGLE_CLOUD_PROJECT` / `GOOGLE_CLOUD_LOCATION`. google-genai takes
`Client(enterprise=True, ...)` in recent versions and `vertexai=True` before (and still, as a legacy flag):
the adapter passes whichever the installed version has. The SDK's own retries are off; the client's
policy retries.

Sources (as of 2026-12): google-genai's `Client`, `tunings` and `types` (3.6); Vertex AI "Tune Gemini
models by using supervised fine-tuning" and "Prepare supervised fine-tuning data for Gemini models"
(https://cloud.google.com/vertex-ai/generative-ai/docs/models/gemini-use-supervised-tuning,
https://cloud.google.com/vertex-ai/generative-ai/docs/models/gemini-supervised-tuning-prepare); labels'
rules from https://cloud.google.com/resource-manager/docs/labels-overview.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import re
from collections.abc import Iterator
from typing import Any

from pydantic import Field, SecretStr

from unitune.errors import ConfigurationError, JobSpecRefused, ProviderError, UnituneError
from unitune.providers._sdk import (
    HyperparameterTable,
    SDKProvider,
    refuse_reserved_metadata,
    sdk_model,
    tagged_suffix,
)
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
    Checkpoint,
    FileRef,
    Job,
    JobEvent,
    JobSpec,
    JobStatus,
    Message,
    PreparedFile,
    TrainingMethod,
    Usage,
    utcnow,
)

__all__ = ["IDEMPOTENCY_LABEL", "KNOWN_OPTIONS", "STATUS_MAP", "VertexProvider", "VertexSettings"]

S = JobStatus

#: Every `JobState` google-genai declares.
STATUS_MAP: dict[str, JobStatus] = {
    # Declared, and says only that no state is set yet: not started as far as anyone knows, never terminal.
    "JOB_STATE_UNSPECIFIED": S.QUEUED,
    "JOB_STATE_QUEUED": S.QUEUED,
    "JOB_STATE_PENDING": S.QUEUED,
    "JOB_STATE_RUNNING": S.RUNNING,
    # The job's resources are being updated; it has not ended.
    "JOB_STATE_UPDATING": S.RUNNING,
    "JOB_STATE_PAUSED": S.PAUSED,
    "JOB_STATE_CANCELLING": S.CANCELLING,
    "JOB_STATE_CANCELLED": S.CANCELLED,
    "JOB_STATE_SUCCEEDED": S.SUCCEEDED,
    # Terminal. A success only when a tuned model came of it (checked in `_job`), else a failure.
    "JOB_STATE_PARTIALLY_SUCCEEDED": S.SUCCEEDED,
    "JOB_STATE_FAILED": S.FAILED,
    # The job was not run in time and will never run: terminal, and not a success.
    "JOB_STATE_EXPIRED": S.FAILED,
}

#: The label a job is tagged with, whose value is the idempotency key's tag.
IDEMPOTENCY_LABEL = "unitune-key"

#: `Hyperparameters.provider_options` this adapter knows; anything else is refused by name.
KNOWN_OPTIONS = {
    "adapter_size": "the LoRA adapter size, 1, 2, 4, 8 or 16 (32 for open models; also set by lora_rank)",
    "tuning_mode": "'FULL' or 'PEFT_ADAPTER' (open models)",
    "beta": "preference tuning's beta (method dpo only)",
    "export_last_checkpoint_only": "keep only the last checkpoint",
    "description": "the job's description",
    "output_uri": "a gs:// folder for the tuned model's artifacts (open models)",
}

#: The adapter sizes Google documents for Gemini tuning; its open-model samples also offer 32 for PEFT.
_ADAPTER_SIZES = {1: "ADAPTER_SIZE_ONE", 2: "ADAPTER_SIZE_TWO", 4: "ADAPTER_SIZE_FOUR", 8: "ADAPTER_SIZE_EIGHT",
                  16: "ADAPTER_SIZE_SIXTEEN"}  # fmt: skip
_OPEN_ADAPTER_SIZES = {**_ADAPTER_SIZES, 32: "ADAPTER_SIZE_THIRTY_TWO"}
_TUNING_MODES = {"FULL": "TUNING_MODE_FULL", "PEFT_ADAPTER": "TUNING_MODE_PEFT_ADAPTER"}
#: Google's label rules: lowercase letters, digits, `_` and `-`, at most 63 characters, a key starting with a letter.
_LABEL_KEY = re.compile(r"[a-z][a-z0-9_-]{0,62}")
_LABEL_VALUE = re.compile(r"[a-z0-9_-]{0,63}")
_MAX_LABELS = 64
_DISPLAY_NAME_MAX = 128
_MiB = 1024 * 1024

#: unitune's hyperparameters → `CreateTuningJobConfig` fields. `learning_rate` and `batch_size` are for
#: open models only (checked in `_config`); `lora_rank` is the adapter size.
_HYPERPARAMETERS = HyperparameterTable(
    names={
        "epochs": "epoch_count",
        "learning_rate_multiplier": "learning_rate_multiplier",
        "learning_rate": "learning_rate",
        "batch_size": "batch_size",
        "lora_rank": "adapter_size",
    },
    instead={
        "seed": "Vertex AI tuning takes no seed.",
        "lora_alpha": "Vertex AI sets the adapter's scaling itself; choose its size with lora_rank.",
    },
)


class VertexSettings(ProviderSettings):
    """`[providers.vertex]` in unitune.toml.

    Credentials are Application Default Credentials unless `access_token` is set; `project` and
    `location` default to GOOGLE_CLOUD_PROJECT and GOOGLE_CLOUD_LOCATION.
    """

    project: str | None = Field(
        default=None, description="Google Cloud project id (default: GOOGLE_CLOUD_PROJECT)."
    )
    location: str | None = Field(
        default=None, description="Region, e.g. us-central1 or europe-west4 (default: GOOGLE_CLOUD_LOCATION)."
    )
    bucket: str | None = Field(default=None, description="Cloud Storage bucket for the training data.")
    prefix: str = Field(default="unitune/", description="Object name prefix in the bucket.")
    base_url: str | None = Field(
        default=None,
        description="Vertex AI API root (default: the regional endpoint); a local server in tests.",
    )
    storage_endpoint_url: str | None = Field(
        default=None, description="Cloud Storage API root (an emulator in tests)."
    )
    access_token: SecretStr | None = Field(
        default=None, description="An OAuth access token to use instead of Application Default Credentials."
    )
    enterprise: bool | None = Field(
        default=None,
        description="Client(enterprise=True) (None: whichever flag the installed google-genai has).",
    )
    timeout: float = Field(default=120.0, gt=0)
    resumable_threshold_bytes: int = Field(
        default=8 * _MiB, ge=1, description="Files larger than this go up as a resumable upload, in chunks."
    )
    chunk_size_bytes: int = Field(
        default=8 * _MiB, ge=256 * 1024, description="Resumable upload chunk (a multiple of 256 KiB)."
    )

    def model_post_init(self, context: Any, /) -> None:
        super().model_post_init(context)
        # Secrets given here are masked in every provider error, as API keys are.
        if self.access_token is not None:
            from unitune.errors import remember_secret

            remember_secret(self.access_token.get_secret_value())

    def need(self, key: str) -> str:
        """A required setting (or its environment variable), or the error that says how to set it."""
        env = {"project": "GOOGLE_CLOUD_PROJECT", "location": "GOOGLE_CLOUD_LOCATION"}.get(key)
        value = getattr(self, key) or (os.environ.get(env) if env else None)
        if not value:
            if env:
                fix = (f"Set {env}, or {key} under [providers.vertex] in unitune.toml, and run "
                       "`gcloud auth application-default login` for credentials.")  # fmt: skip
            else:
                fix = f"Set {key} under [providers.vertex] in unitune.toml."
            raise ConfigurationError(f"Vertex AI needs a {key} ([providers.vertex] {key}).", fix=fix)
        return str(value)


def import_module(name: str) -> Any:
    """Import a module of the `unitune[vertex]` extra.

    A module of the extra (google-genai, Cloud Storage, and what they run on), or the error
    naming `unitune[vertex]`.
    """
    from unitune.providers.registry import import_sdk

    return import_sdk("vertex", name)


def _short(name: str) -> str:
    return name.rsplit("/", 1)[-1]


def _json(obj: Any) -> dict[str, Any]:
    return as_dict(obj)


@guard_answers()
class VertexProvider(SDKProvider):
    """Vertex AI tuning.

    `client=` takes a ready `google.genai.Client`; `storage=` a ready `google.cloud.storage.Client`
    (tests point them at a loopback fake and an emulator).
    """

    name = "vertex"
    settings_class = VertexSettings
    dataset_profile = "vertex"
    wire_format = "gemini"
    preference_wire_format = "gemini-preference"
    capabilities = Capabilities(
        cancel=True,
        pause=False,
        events=True,
        metrics=False,
        checkpoints=True,
        chat=True,
        dpo=True,
        lora=True,
        full_finetune=True,
        notes={
            "events": "no event API for tuning jobs: the job's own timestamps (created, started, ended)",
            "metrics": "Vertex AI writes metrics to Cloud Storage and TensorBoard, not to an API unitune reads",
            "lora": "lora_rank is the adapter size (1, 2, 4, 8, 16)",
            "full_finetune": "open models, with provider option tuning_mode='FULL'",
            "dpo": "preference tuning of Gemini models (method=PREFERENCE_TUNING; provider option beta)",
            "files": "Uploads are Cloud Storage objects under <prefix>data/ in your bucket: see and delete them in the console (https://console.cloud.google.com/storage/browser) or with `gcloud storage ls`/`rm`.",
        },
    )
    settings: VertexSettings

    def __init__(
        self, settings: VertexSettings | None = None, *, client: Any = None, storage: Any = None
    ) -> None:
        super().__init__(settings, client=client)
        self._storage = storage
        self._owned_storage = storage is None

    # -- clients and errors ----------------------------------------------------------------------------

    def _credentials(self) -> Any:
        """The access token's credentials, or None for Application Default Credentials."""
        if self.settings.access_token is None:
            return None
        from google.oauth2.credentials import Credentials

        return Credentials(token=self.settings.access_token.get_secret_value())  # type: ignore[no-untyped-call]

    def _build_client(self) -> Any:
        """A `google.genai.Client` for Vertex AI, with the SDK's own retries off."""
        genai = import_module("google.genai")
        types = import_module("google.genai.types")
        s = self.settings
        has_enterprise = "enterprise" in inspect.signature(genai.Client).parameters
        if s.enterprise and not has_enterprise:
            raise ConfigurationError(
                "enterprise = true, but the installed google-genai has no Client(enterprise=...).",
                fix='Upgrade it (pip install -U "unitune[vertex]"), or leave enterprise unset.',
            )
        flag = "enterprise" if s.enterprise or (s.enterprise is None and has_enterprise) else "vertexai"
        http: dict[str, Any] = {
            "timeout": int(s.timeout * 1000),
            "retry_options": types.HttpRetryOptions(attempts=1),
        }
        if s.base_url:
            http["base_url"] = s.base_url
        with self._map_errors("connect to Vertex AI"):
            return genai.Client(
                **{flag: True}, project=s.need("project"), location=s.need("location"),
                credentials=self._credentials(), http_options=types.HttpOptions(**http),
            )  # fmt: skip

    @property
    def storage(self) -> Any:
        """The Cloud Storage client (the one passed in, or one built on first use)."""
        with self._lock:
            if self._storage is None:
                storage = import_module("google.cloud.storage")
                s = self.settings
                options = {"api_endpoint": s.storage_endpoint_url} if s.storage_endpoint_url else None
                with self._map_errors("connect to Cloud Storage"):
                    self._storage = storage.Client(
                        project=s.need("project"), credentials=self._credentials(), client_options=options
                    )
            return self._storage

    def close(self) -> None:
        """Release the Cloud Storage client and the google-genai client this provider built."""
        with self._lock:
            built = self._storage if self._owned_storage else None
            if self._owned_storage:
                self._storage = None
        if built is not None:
            close = getattr(built, "close", None)
            if callable(close):
                close()
        super().close()

    @contextlib.contextmanager
    def _map_errors(self, action: str) -> Iterator[None]:
        # google-genai runs on httpx, Cloud Storage on requests; both come with the extra.
        httpx = import_module("httpx")
        requests = import_module("requests")
        genai_errors = import_module("google.genai.errors")
        api_core = import_module("google.api_core.exceptions")
        auth_errors = import_module("google.auth.exceptions")

        try:
            yield
        except UnituneError:  # already ours (a setting's error raised inside the block)
            raise
        except genai_errors.APIError as e:
            raise self._status_error(
                e.code, e.status, e.message or str(e), e.details, e.response, action
            ) from e
        except api_core.GoogleAPICallError as e:  # Cloud Storage
            response = getattr(e, "response", None)
            raise self._status_error(e.code, None, e.message, e.errors, response, action) from e
        except auth_errors.DefaultCredentialsError as e:
            raise ConfigurationError(
                f"{action}: no Google Cloud credentials ({plain_text(e)}).",
                fix="Run `gcloud auth application-default login` (or set GOOGLE_APPLICATION_CREDENTIALS to a "
                "service account key), and set GOOGLE_CLOUD_PROJECT and GOOGLE_CLOUD_LOCATION.",
            ) from e
        except auth_errors.RefreshError as e:
            raise error_from_status(
                401, f"{action}: the Google credentials could not be refreshed ({plain_text(e)})",
                provider=self.name,
            ) from e  # fmt: skip
        except (httpx.TransportError, requests.ConnectionError, requests.Timeout) as e:
            timeout = isinstance(e, (httpx.TimeoutException, requests.Timeout))
            raise transport_error(self.name, action, e, timeout=timeout) from e
        except (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError) as e:
            raise unreadable_answer(self.name, action, e) from e
        except ValueError as e:  # google-genai's own checks, or a body that is not JSON
            if type(e).__name__ == "JSONDecodeError":
                raise unreadable_answer(self.name, action, e) from e
            raise ProviderError(f"{action}: {plain_text(e)}", provider=self.name) from e

    def _status_error(
        self, code: Any, status: str | None, message: Any, body: Any, response: Any, action: str
    ) -> ProviderError:
        headers = getattr(response, "headers", None) or {}
        code = int(code) if isinstance(code, int) or str(code).isdigit() else None
        if 200 <= (code or 0) < 300:  # the SDK's word for a 2xx it could not use
            return unreadable_answer(self.name, action, status_code=code)
        detail = f"{status}: {message}" if status else message
        return error_from_status(
            code, f"{action}: {plain_text(detail)}", provider=self.name, body=body,
            request_id=headers.get("x-request-id") or headers.get("x-goog-request-id"),
            retry_after=parse_retry_after(headers.get("retry-after")),
        )  # fmt: skip

    # -- data -------------------------------------------------------------------------------------------

    def _gemini(self, model: str | None) -> bool:
        """Whether `model` is a Gemini model (the catalog's data format says; else its name)."""
        if not model:
            return True
        entry = (
            self.context.catalog.find(self.name, model)
            if self.name in self.context.catalog.providers
            else None
        )
        if entry is not None and entry.data_format:
            return entry.data_format == "gemini"
        return model.startswith("gemini")

    def profile_for(self, model: str | None) -> str:
        """Gemini models' rules (`vertex`), or the open models' (`vertex-open`: chat messages)."""
        return "vertex" if self._gemini(model) else "vertex-open"

    def wire_format_for(self, method: TrainingMethod, model: str | None = None) -> str:
        """The wire format a job of `method` on `model` uploads.

        Gemini models train on `contents`/`systemInstruction` lines (preference pairs: `contents` and
        two scored `completions`); open models on chat messages, and have no preference tuning.
        """
        gemini = self._gemini(model)
        if method == "dpo":
            if not gemini:
                self._refuse(
                    "DPO (preference) training of open models",
                    "Vertex AI tunes preferences on Gemini models.",
                )
            return "gemini-preference"
        return "gemini" if gemini else "hf-chat"

    # -- files ------------------------------------------------------------------------------------------

    def upload(self, prepared: PreparedFile) -> FileRef:
        """Put the file in Cloud Storage at a key named by its content hash (written only if absent)."""
        bucket_name = self.settings.need("bucket")
        name = re.sub(r"[^A-Za-z0-9._-]+", "-", prepared.filename) or "data.jsonl"
        key = f"{self.settings.prefix}data/{prepared.sha256[:16]}/{name}"
        uri = f"gs://{bucket_name}/{key}"
        api_core = import_module("google.api_core.exceptions")
        blob = self.storage.bucket(bucket_name).blob(key)
        if prepared.size_bytes > self.settings.resumable_threshold_bytes:
            blob.chunk_size = self.settings.chunk_size_bytes - self.settings.chunk_size_bytes % (256 * 1024)
        try:
            self._call(
                f"upload to {uri}", blob.upload_from_filename, str(prepared.path),
                content_type="application/jsonl", if_generation_match=0, retry=None,
            )  # fmt: skip
        except ProviderError as e:
            # 412: an object of this name exists already. The name is the content's hash: the same bytes.
            if e.status_code != 412 or not isinstance(e.__cause__, api_core.PreconditionFailed):
                raise
        return self._file_ref(prepared, {}, file_id=uri)

    # -- jobs -------------------------------------------------------------------------------------------

    def _labels(self, spec: JobSpec, idempotency_key: str) -> dict[str, str]:
        refuse_reserved_metadata(self.name, spec.metadata, IDEMPOTENCY_LABEL)
        for key, value in spec.metadata.items():
            if not _LABEL_KEY.fullmatch(key) or not _LABEL_VALUE.fullmatch(value):
                raise JobSpecRefused(
                    f"metadata {key!r}: {value!r} cannot be a Vertex AI label.", provider=self.name,
                    feature="metadata",
                    fix="Use lowercase letters, digits, '_' and '-' (up to 63 characters; a key starts with a letter).",
                )  # fmt: skip
        labels = {**spec.metadata, IDEMPOTENCY_LABEL: key_tag(idempotency_key)}
        if len(labels) > _MAX_LABELS:
            raise JobSpecRefused.unsupported(
                self.name, f"more than {_MAX_LABELS - 1} metadata pairs",
                f"A Vertex AI job holds {_MAX_LABELS} labels and unitune uses one ({IDEMPOTENCY_LABEL}).",
            )  # fmt: skip
        return labels

    def _config(self, spec: JobSpec, idempotency_key: str) -> dict[str, Any]:
        """The `CreateTuningJobConfig` fields of a job; refuses what Vertex AI cannot take."""
        hp = spec.hyperparameters
        options = dict(hp.provider_options)
        refuse_unknown_options(
            self.name, options, KNOWN_OPTIONS,
            hint="Known options: " + "; ".join(f"{k} ({v})" for k, v in KNOWN_OPTIONS.items()) + ".",
        )  # fmt: skip
        config = _HYPERPARAMETERS.map(self.name, hp)
        gemini = self._gemini(spec.model)
        if spec.method == "dpo":
            self.wire_format_for("dpo", spec.model)  # refuses open models
            config["method"] = "PREFERENCE_TUNING"
        elif "beta" in options:
            self._refuse("beta outside DPO", "Use method='dpo'.")
        open_only = sorted({"learning_rate", "batch_size"} & set(config))
        if gemini and open_only:
            self._refuse(f"{', '.join(open_only)} for Gemini models",
                         "Gemini tuning takes epochs, learning_rate_multiplier and the adapter size.")  # fmt: skip
        if not gemini and "learning_rate_multiplier" in config:
            self._refuse(
                "learning_rate_multiplier for open models", "Open models take an absolute learning_rate."
            )
        size = options.pop("adapter_size", config.pop("adapter_size", None))
        if size is not None:
            sizes = _ADAPTER_SIZES if gemini else _OPEN_ADAPTER_SIZES
            if size not in sizes:
                raise JobSpecRefused(
                    f"Vertex AI's adapter size (lora_rank) for {'Gemini' if gemini else 'open'} models is one of "
                    f"{', '.join(map(str, sizes))}, not {size!r}.",
                    provider=self.name, feature="lora_rank",
                )  # fmt: skip
            config["adapter_size"] = sizes[size]
        mode = options.pop("tuning_mode", None)
        if mode is not None:
            if mode not in _TUNING_MODES:
                raise JobSpecRefused(f"tuning_mode is 'FULL' or 'PEFT_ADAPTER', not {mode!r}.", provider=self.name,
                                     feature="tuning_mode")  # fmt: skip
            config["tuning_mode"] = _TUNING_MODES[mode]
        # The tuned model's display name: the suffix (or "unitune"), then the key's tag.
        display = tagged_suffix(
            self.name,
            "Vertex AI",
            spec.suffix or "unitune",
            key_tag(idempotency_key),
            limit=_DISPLAY_NAME_MAX,
        )
        config.update(options)
        if not gemini and "output_uri" not in config:
            # Open models write their tuned weights to Cloud Storage; Google's samples always name the folder.
            config["output_uri"] = f"gs://{self.settings.need('bucket')}/{self.settings.prefix}output/"
        config["tuned_model_display_name"] = display
        config["labels"] = self._labels(spec, idempotency_key)
        if spec.validation_file is not None:
            config["validation_dataset"] = {"gcs_uri": spec.validation_file.id}
        return config

    def _request(self, spec: JobSpec, idempotency_key: str) -> Any:
        """The SDK's `CreateTuningJobConfig` for the create.

        A value its model refuses (an option of the wrong type) is a `JobSpecRefused` naming the field.
        """
        config = self._config(spec, idempotency_key)
        types = import_module("google.genai.types")
        return sdk_model(self.name, "Vertex AI", types.CreateTuningJobConfig, **config)

    def check_job(self, spec: JobSpec) -> None:
        """Raise what the create would refuse, without a request.

        What the create would refuse, found without a request (so before anything is uploaded): an
        option or hyperparameter Vertex AI does not take (or not for this kind of model), an adapter
        size it does not offer, metadata that cannot be a label, a suffix too long, the settings the
        create needs (project, location, bucket), and (where the SDK is installed: the create needs it
        anyway) a value the SDK's request model refuses.
        """
        from unitune.errors import MissingDependencyError

        try:
            self._request(spec, "unitune-check")
        except MissingDependencyError:
            self._config(spec, "unitune-check")  # no SDK here: the checks that need none
        for key in ("project", "location", "bucket"):
            self.settings.need(key)

    def create_job(self, spec: JobSpec, *, idempotency_key: str) -> Job:
        self.check_job(spec)
        config = self._request(spec, idempotency_key)
        job = self._call(
            "create tuning job", self.sdk.tunings.tune, base_model=spec.model,
            training_dataset=import_module("google.genai.types").TuningDataset(gcs_uri=spec.training_file.id), config=config,
        )  # fmt: skip
        return self._job(job).model_copy(update={"idempotency_key": idempotency_key})

    def _name(self, job_id: str) -> str:
        """A job's resource name from its id (the short id a user may type, or the whole name)."""
        if "/" in job_id:
            return job_id
        s = self.settings
        return f"projects/{s.need('project')}/locations/{s.need('location')}/tuningJobs/{job_id}"

    def get_job(self, job_id: str) -> Job:
        return self._job(self._call(f"get job {job_id}", self.sdk.tunings.get, name=self._name(job_id)))

    def list_jobs(self, *, limit: int = 20) -> list[Job]:
        return self._list("list jobs", limit, {})

    def _list(self, action: str, limit: int, config: dict[str, Any]) -> list[Job]:
        pager = self._call(
            action, self.sdk.tunings.list, config={"page_size": min(100, max(1, limit)), **config}
        )
        out: list[Job] = []
        with self._map_errors(action):  # later pages are requests too
            for item in pager:
                out.append(self._job(item))
                if len(out) >= limit:
                    break
        return out

    def find_job(self, idempotency_key: str) -> Job | None:
        """The job whose label carries this key's tag (the filter is checked again here)."""
        tag = key_tag(idempotency_key)
        jobs = self.step(
            "find job", self._list, "find job", 100, {"filter": f"labels.{IDEMPOTENCY_LABEL}={tag}"}
        )
        for job in jobs:
            if (job.raw.get("labels") or {}).get(IDEMPOTENCY_LABEL) == tag:
                return job.model_copy(update={"idempotency_key": idempotency_key})
        return None

    def cancel_job(self, job_id: str) -> Job:
        self._call(f"cancel job {job_id}", self.sdk.tunings.cancel, name=self._name(job_id))
        # The cancel answers with nothing useful: read the job back.
        return self.step(f"get job {job_id}", self.get_job, job_id)

    def _job(self, obj: Any) -> Job:
        raw = _json(obj)
        state = str(raw.get("state") or "JOB_STATE_UNSPECIFIED")
        status = map_status(self.name, state, STATUS_MAP)
        tuned = raw.get("tuned_model") or {}
        error_obj = raw.get("error") or {}
        error = plain_text(error_obj.get("message")) if error_obj.get("message") else None
        if state == "JOB_STATE_PARTIALLY_SUCCEEDED" and not tuned.get("endpoint"):
            status, error = S.FAILED, error or "Vertex AI reported PARTIALLY_SUCCEEDED without a tuned model"
        elif state == "JOB_STATE_EXPIRED":
            error = error or "Vertex AI let the job expire before it ran"
        elif status is S.FAILED and not error:
            error = f"Vertex AI reported {state}"
        spec = raw.get("supervised_tuning_spec") or raw.get("preference_optimization_spec") or {}
        hp = {k: v for k, v in (spec.get("hyper_parameters") or {}).items() if v is not None}
        return Job(
            id=str(raw["name"]),
            provider=self.name,
            status=status,
            raw_status=state,
            model=str(raw.get("base_model") or (raw.get("custom_base_model") or "")),
            fine_tuned_model=tuned.get("endpoint") if status is S.SUCCEEDED else None,
            created_at=as_datetime(raw.get("create_time")),
            finished_at=as_datetime(raw.get("end_time")) if status.is_terminal else None,
            training_file=spec.get("training_dataset_uri"),
            validation_file=spec.get("validation_dataset_uri"),
            hyperparameters=hp,
            error=error,
            idempotency_key=None,
            raw=raw,
        )

    # -- what a job reports -----------------------------------------------------------------------------

    def list_events(self, job_id: str) -> list[JobEvent]:
        """The job's own timestamps as events (Vertex AI has no event API for tuning jobs)."""
        job = self.get_job(job_id)
        raw = job.raw
        events = []
        for field, message in (("create_time", "job created"), ("start_time", "training started")):
            when = as_datetime(raw.get(field))
            if when is not None:
                events.append(JobEvent(created_at=when, message=message, type="status"))
        if job.status.is_terminal:
            when = as_datetime(raw.get("end_time")) or as_datetime(raw.get("update_time")) or utcnow()
            level = "error" if job.status is S.FAILED else "info"
            text = f"job ended {job.raw_status}" + (f": {job.error}" if job.error else "")
            events.append(JobEvent(created_at=when, level=level, message=text, type="status"))
        return sorted(events, key=lambda e: e.created_at)

    def list_checkpoints(self, job_id: str) -> list[Checkpoint]:
        """The tuned model's checkpoints; each has its own endpoint to call."""
        job = self.get_job(job_id)
        out = []
        for item in (job.raw.get("tuned_model") or {}).get("checkpoints") or []:
            out.append(
                Checkpoint(
                    id=str(item.get("checkpoint_id")),
                    step=int(item.get("step") or 0),
                    model=item.get("endpoint"),
                    metrics={"epoch": float(item["epoch"])} if item.get("epoch") is not None else {},
                    raw=item,
                )
            )
        return sorted(out, key=lambda c: c.step)

    def delete_model(self, model_id: str) -> None:
        """Delete a tuned model resource (`projects/.../models/...`; its endpoint must be undeployed first)."""
        self._call(f"delete model {model_id}", self.sdk.models.delete, model=model_id)

    # -- inference --------------------------------------------------------------------------------------

    def chat(self, model: str, messages: list[Message], **params: Any) -> ChatResponse:
        """Chat with a tuned model's endpoint (or a base model).

        `generate_content` on a tuned model's endpoint (or a base model): the system messages become
        the system instruction, `assistant` turns `model` turns. `temperature`, `max_tokens` (as
        `max_output_tokens`), `top_p` and `stop` are passed on.
        """
        types = import_module("google.genai.types")
        system = "\n\n".join(m.text for m in messages if m.role == "system") or None
        contents = [
            types.Content(role="model" if m.role == "assistant" else "user", parts=[types.Part(text=m.text)])
            for m in messages
            if m.role != "system"
        ]
        config: dict[str, Any] = {"system_instruction": system}
        renames = {"max_tokens": "max_output_tokens", "stop": "stop_sequences"}
        for key, value in params.items():
            config[renames.get(key, key)] = [value] if key == "stop" and isinstance(value, str) else value
        try:
            request_config = types.GenerateContentConfig(**config)
        except ValueError as e:
            raise ConfigurationError(
                f"chat: Vertex AI does not take these parameters: {plain_text(e)}"
            ) from None
        answer = self._call(f"chat with {model}", self.sdk.models.generate_content, model=model,
                            contents=contents, config=request_config)  # fmt: skip
        raw = _json(answer)
        candidates = raw.get("candidates") or []
        first = candidates[0] if candidates else {}
        parts = (first.get("content") or {}).get("parts") or []
        usage = raw.get("usage_metadata") or {}
        return ChatResponse(
            model=model,
            provider=self.name,
            content="".join(str(p.get("text") or "") for p in parts if isinstance(p, dict)),
            finish_reason=str(first.get("finish_reason") or "").lower() or None,
            usage=Usage(
                prompt_tokens=max(0, int(usage.get("prompt_token_count") or 0)),
                completion_tokens=max(0, int(usage.get("candidates_token_count") or 0)),
            ),
            raw=raw,
        )
