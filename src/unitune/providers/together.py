"""Together AI fine-tuning through the official `together` SDK (3.x, extra `unitune[together]`).

Covers the whole API: file upload (the SDK's POST → redirect → PUT → preprocess flow), waiting for
Together's own validation of the file and refusing on its report; `model_limits` checked before
create, with clear errors; `estimate_price` asked before create and its `allowed_to_proceed`
respected (a refusal is an error, never a printed warning); LoRA or full training, SFT or DPO,
evaluations, checkpoints, early stopping, `train_on_inputs`; retrieve, list, cancel, events, step
metrics, checkpoints and chat with the tuned model.

Together has no job metadata, so the idempotency key is carried by the job's suffix: a short hash
of the key (`ut` + 8 hex) appended to the caller's suffix, which then shows in the output model
name, where `find_job` looks for it.

The SDK is imported only inside this module's functions, and its own retries are off. An upload is
driven request by request (ask for the upload URL, PUT the bytes, ask for processing; for large
files initiate, each part, complete), each retried on its own through `Provider.step`, so a failed
PUT or part is sent again, not the whole upload; so are the limits and price reads before a create.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field

from unitune._log import get_logger
from unitune.errors import (
    JobSpecRefused,
    NotFoundError,
    PermissionDeniedError,
    ProviderError,
    ProviderUnavailableError,
    RateLimitError,
    ValidationFailed,
    remember_secret,
)
from unitune.providers._sdk import HyperparameterTable, StainlessProvider, no_query, tagged_suffix
from unitune.providers.base import (
    ProviderSettings,
    as_datetime,
    as_dict,
    chat_messages,
    chat_response,
    error_from_status,
    guard_answers,
    key_tag,
    map_status,
    parse_retry_after,
    refuse_unknown_options,
    send_parts,
    transport_error,
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
    utcnow,
)

__all__ = ["KNOWN_OPTIONS", "STATUS_MAP", "TogetherProvider", "TogetherSettings", "idempotency_tag"]

log = get_logger("unitune")
S = JobStatus

#: Every status the SDK declares: the generated Literal, plus `user_error` from its lib enum.
STATUS_MAP: dict[str, JobStatus] = {
    "pending": S.QUEUED,
    "queued": S.QUEUED,
    "running": S.RUNNING,
    # Training is over but the model is still being packed and stored: not usable yet.
    "compressing": S.RUNNING,
    "uploading": S.RUNNING,
    "cancel_requested": S.CANCELLING,
    "cancelled": S.CANCELLED,
    "error": S.FAILED,
    "user_error": S.FAILED,
    "completed": S.SUCCEEDED,
}

#: `Hyperparameters.provider_options` passed to `fine_tuning.create` as they are; anything else is
#: refused by name. Secrets (W&B and Hugging Face tokens) are not taken here: options end up in
#: the ledger and in logs.
KNOWN_OPTIONS = frozenset({
    "lora", "lora_dropout", "lora_trainable_modules", "train_on_inputs", "n_evals", "n_checkpoints",
    "packing", "max_seq_length", "gradient_accumulation_steps", "lr_scheduler_type", "min_lr_ratio",
    "scheduler_num_cycles", "warmup_ratio", "max_grad_norm", "weight_decay", "train_vision",
    "early_stopping_enabled", "early_stopping_patience", "early_stopping_min_delta", "early_stopping_warmup_evals",
    "dpo_beta", "dpo_normalize_logratios_by_length", "rpo_alpha", "simpo_gamma",
    "from_checkpoint", "from_hf_model", "hf_model_revision", "hf_output_repo_name",
    "wandb_project_name", "wandb_name", "wandb_entity", "wandb_base_url",
})  # fmt: skip

_SUFFIX_MAX = 40
_HYPERPARAMETERS = HyperparameterTable(
    names={
        "epochs": "n_epochs",
        "learning_rate": "learning_rate",
        "batch_size": "batch_size",
        "lora_rank": "lora_r",
        "lora_alpha": "lora_alpha",
        "seed": "random_seed",
    },
    instead={"learning_rate_multiplier": "Together takes an absolute learning_rate (its default is 1e-5)."},
)
_EVENT_LEVELS = {"info": "info", "warning": "warning", "error": "error",
                 "legacy_info": "info", "legacy_iwarning": "warning", "legacy_ierror": "error"}  # fmt: skip
_METRIC_KEYS = {
    "step": ("train/global_step", "eval/global_step", "global_step", "step"),
    "epoch": ("train/epoch", "eval/epoch", "epoch"),
    "train_loss": ("train/loss", "train_loss", "loss"),
    "valid_loss": ("eval/loss", "eval_loss", "valid_loss"),
    "learning_rate": ("train/learning_rate", "train/lr", "learning_rate", "lr"),
}


def idempotency_tag(key: str) -> str:
    """The suffix tag that marks a job created with this idempotency key (`ut` + 8 hex)."""
    return key_tag(key)


class TogetherSettings(ProviderSettings):
    """`[providers.together]` in unitune.toml. The key comes from `TOGETHER_API_KEY` when not set here."""

    api_key_env: ClassVar[str | None] = "TOGETHER_API_KEY"

    base_url: str | None = Field(
        default=None, description="Server root without /v1 (default: the SDK's, or TOGETHER_BASE_URL)."
    )
    timeout: float = 60.0
    lora: bool = Field(default=True, description="LoRA unless a job says otherwise (provider option `lora`).")
    file_processing_timeout: float = Field(
        default=900.0, gt=0, description="How long upload waits for Together to check the file."
    )
    file_poll_interval: float = Field(default=2.0, gt=0)
    multipart_threshold_bytes: int = Field(
        default=5 * 1024**3, ge=1, description="Files larger than this go up in parts (the SDK's 5 GB)."
    )
    part_size_bytes: int = Field(
        default=250 * 1024 * 1024, ge=1, description="Part size of a multipart upload (at most 250 parts)."
    )
    upload_concurrency: int = Field(default=4, ge=1, le=32, description="Parts sent at once.")


def _sdk() -> Any:
    from unitune.providers.registry import import_sdk

    return import_sdk("together", "together")


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


def _files_lib() -> Any:
    """The SDK's upload helpers (its own protocol, which the API spec does not describe)."""
    from unitune.providers.registry import import_sdk

    return import_sdk("together", "together.lib.resources.files")


def _json(obj: Any) -> dict[str, Any]:
    # by_alias: the SDK names the output model `x_model_output_name` (alias `model_output_name`).
    return as_dict(obj, by_alias=True)


@guard_answers("model_limits", "estimate_price", "list_files", "delete_file")
class TogetherProvider(StainlessProvider):
    """Together AI fine-tuning. `client=` takes a ready `together.Together` (tests point it at a mock)."""

    name = "together"
    settings_class = TogetherSettings
    dataset_profile = "together"
    wire_format = "together"
    preference_wire_format = "together-preference"
    capabilities = Capabilities(
        checkpoints=True,
        files=True,
        dpo=True,
        lora=True,
        full_finetune=True,
        wandb_integration=True,
        notes={
            "wandb_integration": "the `wandb_*` fields of the create; Together logs with the W&B key sent with it (WANDB_API_KEY)",
            "create": "model limits and Together's own price estimate are checked first; a refusal raises",
            "lora": "LoRA by default (setting `lora`); full fine-tuning where the model's limits allow it",
            "checkpoints": "ids are `<job-id>:<step>`, the form `from_checkpoint` takes; call a tuned model by its output name",
        },
    )
    settings: TogetherSettings

    def __init__(self, settings: TogetherSettings | None = None, *, client: Any = None) -> None:
        super().__init__(settings, client=client)
        # Waits for file processing sleep on the context's clock (the client's, once bound).
        self._sleep: Callable[[float], None] = lambda seconds: self.context.clock.sleep(seconds)
        #: Together's own estimate for the last job created through this provider, by job id.
        self.price_estimates: dict[str, dict[str, Any]] = {}

    # -- the SDK client and its errors ---------------------------------------------------------

    def _sdk_module(self) -> Any:
        return _sdk()

    def _build_client(self) -> Any:
        """The `together.Together` client, with the SDK's own retries off."""
        s = self.settings
        kwargs: dict[str, Any] = {
            "api_key": s.require_api_key(self.name).get_secret_value(),
            "timeout": s.timeout,
            "max_retries": 0,
        }
        if s.base_url:
            kwargs["base_url"] = s.base_url
        return _sdk().Together(**kwargs)

    @contextlib.contextmanager
    def _map_errors(self, action: str) -> Iterator[None]:
        """A context that maps the SDK's and the upload's errors to unitune's.

        The Stainless mapping, and what the upload's own protocol raises besides: its PUTs go
        through the SDK's raw httpx client, and the SDK checks files itself.
        """
        import httpx

        together = _sdk()
        try:
            with super()._map_errors(action):
                yield
        except httpx.TransportError as e:
            raise transport_error(self.name, action, e, timeout=isinstance(e, httpx.TimeoutException)) from e
        except httpx.HTTPStatusError as e:  # a part's PUT (raise_for_status)
            raise error_from_status(
                e.response.status_code, f"{action}: the storage answered {e.response.status_code}",
                provider=self.name, retry_after=parse_retry_after(e.response.headers.get("retry-after")),
            ) from e  # fmt: skip
        except (
            together.TogetherError,
            OSError,
        ) as e:  # the SDK's own checks (file size, type, a changed file)
            raise ProviderError(
                f"{action}: {type(e).__name__}: {no_query(str(e))}", provider=self.name
            ) from e

    # -- files -----------------------------------------------------------------------------------

    def upload(self, prepared: PreparedFile) -> FileRef:
        """Upload, then wait until Together has checked the file; its refusal raises `ValidationFailed`.

        The SDK's protocol, one request at a time, each retried on its own: ask for an upload URL
        (a file the same bytes made before is reused), PUT the bytes, ask for processing; a file
        over `multipart_threshold_bytes` goes up in parts instead.
        """
        lib = _files_lib()
        path = Path(prepared.path)
        checksum = lib._calculate_file_checksum(path)
        if prepared.size_bytes > self.settings.multipart_threshold_bytes:
            raw = self._upload_in_parts(prepared, checksum)
        else:
            raw = self._upload_whole(prepared, checksum)
        raw = self._wait_processed(raw, prepared.filename)
        return self._file_ref(prepared, raw, filename=prepared.filename)

    def _upload_whole(self, prepared: PreparedFile, checksum: str) -> dict[str, Any]:
        lib = _files_lib()
        path = Path(prepared.path)
        uploader = lib.UploadManager(self.sdk)
        name = prepared.filename

        def ask() -> tuple[str, str] | str:
            with self._map_errors(f"upload {name}"):
                try:
                    url, file_id = uploader.get_upload_url("/v1/files", path, checksum, "fine-tune", "jsonl")
                except lib.FileAlreadyExistsError as e:  # Together has these bytes: that file
                    return str(e.file_id)
                return str(url), str(file_id)

        asked = self.step(f"upload {name}", ask)
        if isinstance(asked, str):
            return _json(self._step_call(f"file {asked}", self.sdk.files.retrieve, asked))
        url, file_id = asked

        def put() -> None:
            action = f"upload {name} (PUT)"
            with self._map_errors(action):
                response = lib._put_file_content(
                    self.sdk._client, url, path, file_size=prepared.size_bytes,
                    allow_http=lib._allow_http_upload_redirects(self.sdk),
                )  # fmt: skip
            if response.status_code != 200:
                raise error_from_status(
                    response.status_code, f"{action}: the storage answered {response.status_code}",
                    provider=self.name, retry_after=parse_retry_after(response.headers.get("retry-after")),
                )  # fmt: skip

        self.step(f"upload {name} (PUT)", put)
        action = f"upload {name} (process)"
        done = self._step_call(action, uploader.callback, f"/v1/files/{file_id}/preprocess")
        return _json(done)

    def _upload_in_parts(self, prepared: PreparedFile, checksum: str) -> dict[str, Any]:
        """Upload a file with Together's multipart protocol.

        Together's multipart protocol: initiate (the server gives one URL per part), PUT each part
        (in parallel, each retried on its own), complete with the parts' ETags; aborted if a step
        fails for good.
        """
        lib = _files_lib()
        path = Path(prepared.path)
        manager = lib.MultipartUploadManager(self.sdk)
        name = prepared.filename
        size = prepared.size_bytes
        part_size = max(self.settings.part_size_bytes, math.ceil(size / 250))
        count = math.ceil(size / part_size)
        action = f"upload {name} (initiate)"
        info = self._step_call(action, manager._initiate_upload, "/v1/files", path, checksum, size, count,
            "fine-tune", "jsonl",
        )  # fmt: skip
        upload_id, file_id, parts = info["upload_id"], str(info["file_id"]), list(info["parts"])

        def send(part: dict[str, Any]) -> dict[str, Any]:
            number = int(part.get("PartNumber", part.get("part_number", 1)))
            with path.open("rb") as fh:
                fh.seek((number - 1) * part_size)
                data = fh.read(part_size)
            what = f"upload {name} (part {number})"
            etag = self._step_call(what, manager._upload_single_part, part, data)
            return {"part_number": number, "etag": etag}

        try:
            done = send_parts(send, parts, concurrency=self.settings.upload_concurrency)
            tries = iter(range(1, 1 << 30))
            return self.step(
                f"upload {name} (complete)",
                lambda: self._complete_parts(manager, upload_id, file_id, done, again=next(tries) > 1),
            )
        except BaseException:
            with contextlib.suppress(ProviderError):  # the original failure is what the caller needs
                self._call(f"upload {name} (abort)", manager._abort_upload, "/v1/files", upload_id, file_id)
            raise

    def _complete_parts(
        self, manager: Any, upload_id: str, file_id: str, parts: list[dict[str, Any]], *, again: bool
    ) -> dict[str, Any]:
        """One try at completing a multipart upload.

        A refusal on a try `again` (an earlier one's answer may have been lost) is resolved by reading
        the file: complete already made it.
        """
        action = f"upload (complete {file_id})"
        try:
            return _json(self._call(action, manager._complete_upload, "/v1/files", upload_id, file_id, parts))
        except (RateLimitError, ProviderUnavailableError):
            raise
        except ProviderError as e:
            if again and e.status_code in (400, 404, 409):
                with contextlib.suppress(NotFoundError):
                    raw = _json(self._call(f"file {file_id}", self.sdk.files.retrieve, file_id))
                    if raw.get("bytes"):
                        return raw
            raise

    def _wait_processed(self, raw: dict[str, Any], filename: str) -> dict[str, Any]:
        clock = self.context.clock
        deadline = clock.monotonic() + self.settings.file_processing_timeout
        while True:
            status = raw.get("processing_status")
            report = raw.get("validation_report") or {}
            if status in ("FAILED", "INVALID_FORMAT") or report.get("valid") is False:
                raise ValidationFailed(
                    f"Together refused {filename} ({raw.get('id')}): "
                    f"{report.get('error') or status or 'invalid'}. Fix the file and upload it again.",
                    report=report or raw,
                )
            if status in (None, "COMPLETED"):
                return raw
            if clock.monotonic() >= deadline:
                # Not ProviderUnavailableError: that is retried, and a retry would upload the file again.
                raise ProviderError(
                    f"Together had not finished checking {filename} ({raw.get('id')}, {status}) after "
                    f"{self.settings.file_processing_timeout:.0f} s; raise file_processing_timeout or try later",
                    provider=self.name,
                )
            self._sleep(self.settings.file_poll_interval)
            action = f"file {raw.get('id')}"
            raw = _json(self._step_call(action, self.sdk.files.retrieve, raw["id"]))

    def list_files(self, *, limit: int = 100) -> list[FileRef]:
        """The account's fine-tuning files (purpose `fine-tune`), newest first.

        Together sends the whole list in one answer and does not say training from validation: each is
        `training`.
        """
        page = self._call("list files", self.sdk.files.list)
        files = [_json(item) for item in page.data]
        files = [raw for raw in files if raw.get("purpose") in (None, "fine-tune")]
        # A file without a readable time sorts last.
        files.sort(key=lambda raw: as_datetime(raw.get("created_at")) or _EPOCH, reverse=True)
        return [self._listed_file(raw) for raw in files[:limit]]

    def delete_file(self, file_id: str) -> None:
        """Delete an uploaded file."""
        answer = _json(self._call(f"delete file {file_id}", self.sdk.files.delete, file_id))
        if answer.get("deleted") is False:  # the spec marks `deleted` optional: only a "no" is a refusal
            raise ProviderError(
                f"delete file {file_id}: Together answered without deleting it",
                provider=self.name,
                body=answer,
            )

    # -- jobs --------------------------------------------------------------------------------------

    def _create_kwargs(self, spec: JobSpec, idempotency_key: str) -> dict[str, Any]:
        hp = spec.hyperparameters
        options = dict(hp.provider_options)
        refuse_unknown_options(self.name, options, KNOWN_OPTIONS)
        params = _HYPERPARAMETERS.map(self.name, hp)
        dpo_only = {"dpo_beta", "dpo_normalize_logratios_by_length", "rpo_alpha", "simpo_gamma"} & set(
            options
        )
        if dpo_only and spec.method != "dpo":
            raise JobSpecRefused.unsupported(
                self.name, f"{', '.join(sorted(dpo_only))} outside DPO", "Use method='dpo'."
            )
        lora = bool(options.pop("lora", self.settings.lora))
        if not lora and (hp.lora_rank is not None or hp.lora_alpha is not None):
            raise JobSpecRefused(
                "lora_rank/lora_alpha were set for a full fine-tune (provider option lora=False).",
                provider=self.name, feature="LoRA settings on a full fine-tune",
            )  # fmt: skip
        kwargs: dict[str, Any] = {
            "training_file": spec.training_file.id,
            "model": spec.model,
            "suffix": tagged_suffix(
                self.name, "Together", spec.suffix, idempotency_tag(idempotency_key), limit=_SUFFIX_MAX
            ),
            "training_method": spec.method,
            "lora": lora,
            **params,
        }
        if spec.validation_file is not None:
            kwargs["validation_file"] = spec.validation_file.id
            # Together runs no evaluation unless asked: one per epoch, like the other providers.
            options.setdefault("n_evals", kwargs.get("n_epochs", 1))
        kwargs.update(options)
        if spec.wandb is not None:
            kwargs.update(self._wandb(spec, options))
        if spec.method == "sft":
            # The SDK sends "auto" when unset, which Together's own spec refuses (it wants a boolean).
            # unitune always uploads chat or prompt/completion data, for which "auto" means False:
            # the loss on the answers only. Saying so keeps the request inside the spec.
            kwargs.setdefault("train_on_inputs", False)
        return kwargs

    def _wandb(self, spec: JobSpec, options: dict[str, Any]) -> dict[str, Any]:
        """`spec.wandb` as the create's `wandb_*` fields, with the key (given, else WANDB_API_KEY)."""
        wandb = spec.wandb
        assert wandb is not None
        doubled = sorted(k for k in options if k.startswith("wandb_"))
        if doubled:
            raise JobSpecRefused.unsupported(
                self.name, f"JobSpec.wandb together with provider_options {', '.join(doubled)}",
                "Pass the W&B settings in one place (JobSpec.wandb).",
            )  # fmt: skip
        if wandb.tags:
            raise JobSpecRefused.unsupported(
                self.name, "W&B tags (Together's integration takes a project, entity, run name and base URL)",
                "Leave WandbIntegration.tags empty.",
            )  # fmt: skip
        key = (
            wandb.api_key.get_secret_value() if wandb.api_key is not None else os.environ.get("WANDB_API_KEY")
        )
        if not key:
            raise JobSpecRefused(
                "Together logs to W&B with a key sent with the job, and none was given.",
                provider=self.name, feature="wandb integration",
                fix="Set WANDB_API_KEY (or WandbIntegration(api_key=...)).",
            )  # fmt: skip
        # The vendor may repeat the key back in an error: mask it in unitune's messages.
        remember_secret(key)
        fields: dict[str, Any] = {"wandb_api_key": key, "wandb_project_name": wandb.project}
        for name, value in (("wandb_name", wandb.name), ("wandb_entity", wandb.entity),
                            ("wandb_base_url", wandb.base_url)):  # fmt: skip
            if value is not None:
                fields[name] = value
        return fields

    def _check_limits(self, kwargs: dict[str, Any], limits: dict[str, Any]) -> None:
        """Refuse, with the limit named, what `model_limits` says the model cannot do."""
        model = kwargs["model"]

        def refuse(what: str) -> None:
            raise JobSpecRefused(
                f"{model} on Together: {what} (from GET /v1/fine-tunes/models/limits).", provider=self.name
            )

        lora_limits = limits.get("lora_training") or {}
        full_limits = limits.get("full_training") or {}
        if kwargs["lora"] and "lora_r" not in kwargs and not lora_limits.get("default_rank"):
            # The SDK derives the rank (and alpha) from this default and fails without it.
            refuse("the limits give no default LoRA rank; set Hyperparameters(lora_rank=...)")
        if not kwargs["lora"] and not limits.get("supports_full_training"):
            refuse("full fine-tuning is not offered; use LoRA (provider option lora=True)")
        if "lora_r" in kwargs and lora_limits.get("max_rank") and kwargs["lora_r"] > lora_limits["max_rank"]:
            refuse(f"lora_rank {kwargs['lora_r']} is over the maximum {lora_limits['max_rank']}")
        epochs = kwargs.get("n_epochs")
        if epochs is not None and limits.get("max_num_epochs") and epochs > limits["max_num_epochs"]:
            refuse(f"epochs {epochs} is over the maximum {limits['max_num_epochs']}")
        lr = kwargs.get("learning_rate")
        if (
            lr is not None
            and limits.get("max_learning_rate")
            and not (limits.get("min_learning_rate", 0) <= lr <= limits["max_learning_rate"])
        ):
            refuse(
                f"learning_rate {lr:g} is outside {limits.get('min_learning_rate', 0):g}–{limits['max_learning_rate']:g}"
            )
        batch = kwargs.get("batch_size")
        bounds = lora_limits if kwargs["lora"] else full_limits
        if isinstance(batch, int) and bounds:
            top = bounds.get("max_batch_size_dpo" if kwargs["training_method"] == "dpo" else "max_batch_size")
            if top and not bounds.get("min_batch_size", 1) <= batch <= top:
                refuse(f"batch_size {batch} is outside {bounds.get('min_batch_size', 1)}–{top}")
        evals = kwargs.get("n_evals")
        if evals and limits.get("max_num_evals") is not None and evals > limits["max_num_evals"]:
            kwargs["n_evals"] = limits["max_num_evals"]  # our default of one per epoch may be above it

    def model_limits(self, model: str) -> dict[str, Any]:
        """Together's limits for `model` (ranks, batch sizes, epochs, learning rates, sequence lengths)."""
        return _json(self._call(f"limits of {model}", self.sdk.fine_tuning.model_limits, model_name=model))

    def estimate_price(self, spec: JobSpec) -> dict[str, Any]:
        """Together's own price estimate for this job.

        Together's own price estimate for this job (needs the uploaded file ids), shown beside
        unitune's quote: `estimated_total_price`, token counts, `allowed_to_proceed`, `user_limit`.
        """
        kwargs = self._create_kwargs(spec, "estimate")
        return self._estimate(kwargs)

    def _estimate(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        training_type: dict[str, Any] = {"type": "Full"}
        if kwargs["lora"]:
            training_type = {"type": "Lora", "lora_r": kwargs.get("lora_r", 16),
                             "lora_alpha": kwargs.get("lora_alpha", 2 * kwargs.get("lora_r", 16))}  # fmt: skip
        params: dict[str, Any] = {
            "training_file": kwargs["training_file"],
            "model": kwargs["model"],
            "n_epochs": kwargs.get("n_epochs", 1),
            "n_evals": kwargs.get("n_evals", 0),
            "training_method": self._method_params(kwargs),
            "training_type": training_type,
        }
        if kwargs.get("validation_file"):
            params["validation_file"] = kwargs["validation_file"]
        return _json(self._call("estimate price", self.sdk.fine_tuning.estimate_price, **params))

    @staticmethod
    def _method_params(kwargs: dict[str, Any]) -> dict[str, Any]:
        if kwargs["training_method"] == "dpo":
            keys = ("dpo_beta", "dpo_normalize_logratios_by_length", "rpo_alpha", "simpo_gamma")
            return {"method": "dpo", **{k: kwargs[k] for k in keys if k in kwargs}}
        return {"method": "sft", "train_on_inputs": kwargs["train_on_inputs"]}

    def check_job(self, spec: JobSpec) -> None:
        """Raise what the create would refuse, before its first request.

        What the create would refuse before its first request (so before anything is uploaded):
        `provider_options` Together does not take, learning_rate_multiplier, DPO options outside DPO,
        LoRA settings on a full fine-tune, a suffix too long for the tag unitune appends. The model's
        limits are Together's to say (a request): `create_job` checks them.
        """
        # The tag has the same length whatever the key, so any key tells whether the suffix fits.
        self._create_kwargs(spec, "unitune-check")

    def create_job(self, spec: JobSpec, *, idempotency_key: str) -> Job:
        self.check_job(spec)
        kwargs = self._create_kwargs(spec, idempotency_key)
        # Reads before the create, each retried on its own: the client retries only the create.
        action = f"limits of {spec.model}"
        limits_obj = self._step_call(action, self.sdk.fine_tuning.model_limits, model_name=spec.model)
        limits = _json(limits_obj)
        if not {"max_num_epochs", "lora_training", "full_training", "supports_full_training"} & set(limits):
            # Not a limits answer (a proxy's page, a body of another shape): never a reason to refuse the job.
            raise ProviderError(f"limits of {spec.model}: the answer holds no limits", provider=self.name)
        self._check_limits(kwargs, limits)
        estimate = self.step("estimate price", self._estimate, kwargs)
        if estimate.get("estimation_available") and estimate.get("allowed_to_proceed") is False:
            price = estimate.get("estimated_total_price")
            limit = estimate.get("user_limit")
            raise PermissionDeniedError(
                f"create job: Together will not start this job: its estimate "
                f"{f'${price:.2f}' if price is not None else '(no figure)'} is over what the account may spend"
                f"{f' (${limit:.2f})' if limit is not None else ''}. Add credit or lower epochs/data, then retry.",
                provider=self.name, body=estimate,
            )  # fmt: skip
        if estimate.get("estimation_available") is False:
            log.warning("unitune: Together gave no price estimate: %s", estimate.get("unavailable_reason"))
        try:
            # model_limits= spares the SDK a second limits request (it still asks for the estimate).
            obj = self._call("create job", self.sdk.fine_tuning.create, **kwargs, model_limits=limits_obj)
        except ValueError as e:  # the SDK's own checks against the limits, before any request
            raise JobSpecRefused(f"Together refused the job's settings: {e}", provider=self.name) from e
        job = self._job(obj).model_copy(update={"idempotency_key": idempotency_key})
        self.price_estimates[job.id] = estimate
        return job

    def get_job(self, job_id: str) -> Job:
        return self._job(self._call(f"get job {job_id}", self.sdk.fine_tuning.retrieve, job_id))

    def list_jobs(self, *, limit: int = 20) -> list[Job]:
        """Together returns every job in one answer (no pages); newest first here."""
        page = self._call("list jobs", self.sdk.fine_tuning.list)
        jobs = [self._job(j) for j in page.data]
        epoch = dt.datetime.min.replace(tzinfo=dt.timezone.utc)
        return sorted(jobs, key=lambda j: j.created_at or epoch, reverse=True)[:limit]

    def find_job(self, idempotency_key: str) -> Job | None:
        tag = idempotency_tag(idempotency_key)
        # A step of the client's create (look, then create): the look retries on its own.
        for job in self.step("find job", self.list_jobs, limit=10_000):
            name = job.fine_tuned_model or ""
            if name.endswith(tag) or f"-{tag}" in name:
                return job.model_copy(update={"idempotency_key": idempotency_key})
        return None

    def cancel_job(self, job_id: str) -> Job:
        self._call(f"cancel job {job_id}", self.sdk.fine_tuning.cancel, job_id)
        # The cancel answer is a partial job on some API versions: read the whole job back.
        return self.step(f"get job {job_id}", self.get_job, job_id)

    def _job(self, obj: Any) -> Job:
        raw = _json(obj)
        status = str(raw.get("status"))
        training_type = raw.get("training_type") or {}
        method = raw.get("training_method") or {}
        hp = {
            k: raw.get(k)
            for k in ("n_epochs", "batch_size", "learning_rate", "n_evals", "n_checkpoints", "warmup_ratio",
                      "weight_decay", "max_grad_norm", "train_on_inputs")
            if raw.get(k) is not None
        }  # fmt: skip
        hp.update({k: v for k, v in training_type.items() if v is not None})
        hp.update({k: v for k, v in method.items() if v is not None and k != "method"})
        progress = None
        if raw.get("n_epochs") and raw.get("epochs_completed") is not None:
            progress = min(1.0, max(0.0, raw["epochs_completed"] / raw["n_epochs"]))
        if STATUS_MAP.get(status) is S.SUCCEEDED:
            progress = 1.0
        estimated_finish = None
        remaining = raw.get("progress") or {}
        if remaining.get("estimate_available") and remaining.get("seconds_remaining") is not None:
            estimated_finish = utcnow() + dt.timedelta(seconds=int(remaining["seconds_remaining"]))
        error = None
        if STATUS_MAP.get(status) is S.FAILED:
            errors = [e for e in raw.get("events") or [] if e.get("level") in ("error", "legacy_ierror")]
            error = errors[-1]["message"] if errors else f"Together reported {status}"
        return Job(
            id=str(raw["id"]),
            provider=self.name,
            status=map_status(self.name, status, STATUS_MAP),
            raw_status=status,
            model=str(raw.get("model") or ""),
            fine_tuned_model=raw.get("model_output_name") or raw.get("output_name"),
            created_at=as_datetime(raw.get("created_at")),
            finished_at=as_datetime(raw.get("updated_at"))
            if STATUS_MAP.get(status, S.RUNNING).is_terminal
            else None,
            estimated_finish=estimated_finish,
            training_file=raw.get("training_file"),
            validation_file=raw.get("validation_file") or None,
            hyperparameters=hp,
            trained_tokens=raw.get("token_count"),
            progress=progress,
            error=error,
            raw=raw,
        )

    # -- what a job reports ------------------------------------------------------------------------

    def list_events(self, job_id: str) -> list[JobEvent]:
        page = self._call(f"events of job {job_id}", self.sdk.fine_tuning.list_events, job_id)
        events = []
        for item in page.data:
            raw = _json(item)
            data = {k: v for k, v in raw.items() if k not in ("message", "created_at", "level", "object", "type")
                    and v not in (None, "")}  # fmt: skip
            events.append(
                JobEvent(
                    created_at=as_datetime(raw.get("created_at")) or utcnow(),
                    level=_EVENT_LEVELS.get(str(raw.get("level")), "info"),
                    message=str(raw.get("message", "")),
                    type=str(raw.get("type") or "message"),
                    data=data,
                )
            )
        return sorted(events, key=lambda e: e.created_at)

    def list_metrics(self, job_id: str) -> list[StepMetric]:
        """Step metrics in step order; train and eval rows at the same step are merged."""
        answer = self._call(f"metrics of job {job_id}", self.sdk.fine_tuning.list_metrics, job_id)
        by_step: dict[int, dict[str, Any]] = {}
        for row in answer.metrics or []:
            fields: dict[str, Any] = {}
            extra: dict[str, float] = {}
            used: set[str] = set()
            for name, keys in _METRIC_KEYS.items():
                for key in keys:
                    if key in row and row[key] is not None:
                        fields[name] = float(row[key])
                        used.add(key)
                        break
            extra = {k: float(v) for k, v in row.items() if k not in used and isinstance(v, (int, float))}
            if "step" not in fields:
                continue
            step = int(fields.pop("step"))
            merged = by_step.setdefault(step, {"extra": {}})
            merged.update(fields)
            merged["extra"].update(extra)
        return [StepMetric(step=s, **by_step[s]) for s in sorted(by_step)]

    def list_checkpoints(self, job_id: str) -> list[Checkpoint]:
        page = self._call(f"checkpoints of job {job_id}", self.sdk.fine_tuning.list_checkpoints, job_id)
        out = []
        seen: set[str] = set()
        for item in page.data:
            raw = _json(item)
            step = int(raw.get("step") or 0)
            ident = f"{job_id}:{step}"  # what `from_checkpoint` takes
            if ident in seen:  # a model and an adapter artifact of the same step: keep ids unique
                ident = f"{ident}#{raw.get('checkpoint') or raw.get('checkpoint_type') or len(seen)}"
            seen.add(ident)
            out.append(
                Checkpoint(
                    id=ident,
                    step=step,
                    model=raw.get("object_name"),
                    created_at=as_datetime(raw.get("created_at")),
                    raw=raw,
                )
            )
        return sorted(out, key=lambda c: c.step)

    # -- inference -----------------------------------------------------------------------------------

    def chat(self, model: str, messages: list[Message], **params: Any) -> ChatResponse:
        completion = self._call(
            f"chat with {model}", self.sdk.chat.completions.create, model=model, messages=chat_messages(messages),
            **params,
        )  # fmt: skip
        return chat_response(_json(completion), model=model, provider=self.name)
