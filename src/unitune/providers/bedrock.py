"""AWS Bedrock model customization through boto3 (extra `unitune[bedrock]`).

S3 for data, model customization jobs, a deployment (on-demand or provisioned throughput) before
inference, Converse. Over ~700 lines on purpose: Bedrock is three AWS services (S3, bedrock,
bedrock-runtime) behind one adapter, and the deployment step other vendors do not need; each part is a
short section below.

Bedrock's shape differs most from the other vendors, and the common API bends to it honestly:

- data lives in S3: `upload` puts the converted file at a content-addressed key (multipart for large
  files) and the file's id is its `s3://` URI;
- the data format and the hyperparameter names depend on the model family (Nova: Converse format,
  Claude 3 Haiku: its own chat format, Llama: prompt/completion), all from the catalog;
- hyperparameters are strings; there is no seed, no LoRA knob and no DPO: those raise;
- `create_job` sends `clientRequestToken` (Bedrock's own idempotency) and derives the job name from
  the idempotency key, so a retry returns the job already made;
- there are no events (`UnsupportedFeatureError`); step metrics are read from the CSV files the job
  writes to its S3 output;
- a tuned model must be deployed before `chat`: `deploy()` creates an on-demand custom-model
  deployment (Nova; billed per token) or, explicitly and with its hourly cost confirmed by the
  caller, provisioned throughput; `undeploy()` stops paying.

boto3 is imported only inside this module's functions; botocore's own retries are off (one attempt),
because retries belong to `FineTuneClient`'s policy. A call of several requests (a multipart upload:
create, each part, complete; the read after a create; the metrics files) retries each request on
its own through `Provider.step`. botocore turns a JSON answer cut short into an empty one, so an
answer without the fields every answer has is treated as cut short (`ProviderUnavailableError`).
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import functools
import hashlib
import io
import math
import re
from collections.abc import Iterator, Mapping
from typing import Any, Literal

from pydantic import Field

from unitune.errors import (
    ConfigurationError,
    JobSpecRefused,
    NotFoundError,
    ProviderError,
    ProviderUnavailableError,
    UnsupportedFeatureError,
)
from unitune.providers._sdk import HyperparameterTable, SDKProvider, refuse_reserved_metadata
from unitune.providers.base import (
    ProviderSettings,
    as_datetime,
    as_float,
    error_from_status,
    guard_answers,
    map_status,
    plain_text,
    refuse_unknown_options,
    send_parts,
    transport_error,
    unreadable_answer,
)
from unitune.types import (
    Capabilities,
    ChatResponse,
    FileRef,
    Hyperparameters,
    Job,
    JobSpec,
    JobStatus,
    Message,
    PreparedFile,
    StepMetric,
    TrainingMethod,
    Usage,
)

__all__ = ["FAMILIES", "IDEMPOTENCY_TAG", "STATUS_MAP", "BedrockProvider", "BedrockSettings", "Deployment"]

S = JobStatus

#: The job's top-level status; `InProgress` is refined with `statusDetails` (see `_status`).
STATUS_MAP: dict[str, JobStatus] = {
    "InProgress": S.RUNNING,
    "Completed": S.SUCCEEDED,
    "Failed": S.FAILED,
    "Stopping": S.CANCELLING,
    "Stopped": S.CANCELLED,
}

IDEMPOTENCY_TAG = "unitune_idempotency_key"


@dataclasses.dataclass(frozen=True)
class Family:
    """What a model family takes: its data format, its dataset rules and its hyperparameter names."""

    data_format: str
    profile: str
    #: unitune's common field → Bedrock's hyperparameter name (absent: not offered by the family).
    common: Mapping[str, str]
    #: Family-only hyperparameters accepted through `provider_options`, sent as strings.
    options: frozenset[str]
    on_demand: bool  # create_custom_model_deployment is offered (else provisioned throughput only)


FAMILIES: dict[str, Family] = {
    "nova": Family("bedrock-conversation", "bedrock-nova",
                   {"epochs": "epochCount", "learning_rate": "learningRate"},
                   frozenset({"learningRateWarmupSteps"}), on_demand=True),
    "claude": Family("bedrock-claude", "bedrock-claude",
                     {"epochs": "epochCount", "batch_size": "batchSize", "learning_rate_multiplier": "learningRateMultiplier"},
                     frozenset({"earlyStoppingThreshold", "earlyStoppingPatience"}), on_demand=False),
    "llama": Family("bedrock-prompt-completion", "bedrock-llama",
                    {"epochs": "epochCount", "batch_size": "batchSize", "learning_rate": "learningRate"},
                    frozenset({"learningRateWarmupSteps"}), on_demand=False),
    # Llama 3.2 trains on conversations (AWS's dataset validator registry), Llama 3.1 on prompt/completion.
    "llama-conversation": Family("bedrock-llama-conversation", "bedrock-llama-conversation",
                                 {"epochs": "epochCount", "batch_size": "batchSize", "learning_rate": "learningRate"},
                                 frozenset({"learningRateWarmupSteps"}), on_demand=False),
}  # fmt: skip
_FORMAT_FAMILY = {f.data_format: name for name, f in FAMILIES.items()}


class BedrockSettings(ProviderSettings):
    """`[providers.bedrock]` in unitune.toml. Credentials come from the AWS chain (env, profile, role)."""

    region: str | None = Field(default=None, description="AWS region (default: the AWS config's).")
    profile: str | None = Field(default=None, description="A named AWS profile.")
    bucket: str | None = Field(default=None, description="S3 bucket for training data and job output.")
    prefix: str = Field(default="unitune/", description="Key prefix inside the bucket.")
    role_arn: str | None = Field(
        default=None, description="The IAM role Bedrock assumes to read and write S3."
    )
    kms_key_id: str | None = Field(
        default=None, description="KMS key for the S3 objects and the custom model."
    )
    vpc_subnet_ids: tuple[str, ...] = ()
    vpc_security_group_ids: tuple[str, ...] = ()
    endpoint_url: str | None = Field(
        default=None, description="Bedrock control-plane endpoint (tests, VPC endpoints)."
    )
    runtime_endpoint_url: str | None = None
    s3_endpoint_url: str | None = None
    family: Literal["nova", "claude", "llama", "llama-conversation"] | None = Field(
        default=None, description="The model family, for base models the catalog does not know."
    )
    multipart_threshold_bytes: int = Field(default=64 * 1024 * 1024, ge=5 * 1024 * 1024)
    part_size_bytes: int = Field(
        default=16 * 1024 * 1024, ge=5 * 1024 * 1024, description="S3 multipart part size (5 MiB at least)."
    )
    upload_concurrency: int = Field(default=4, ge=1, le=32, description="Parts sent at once.")
    timeout: float = 60.0

    def need(self, key: str, what: str) -> str:
        value = getattr(self, key)
        if not value:
            raise ConfigurationError(
                f"Bedrock needs {what}.", fix=f"Set {key} under [providers.bedrock] in unitune.toml."
            )
        return str(value)


@dataclasses.dataclass(frozen=True)
class Deployment:
    """A tuned model made callable: pass `arn` as the model to `chat`. Stop paying with `undeploy`."""

    arn: str
    kind: Literal["on_demand", "provisioned"]
    status: str
    model_arn: str
    hourly_usd: float | None = None
    raw: dict[str, Any] = dataclasses.field(default_factory=dict, repr=False)


def _boto3() -> Any:
    from unitune.providers.registry import import_sdk

    return import_sdk("bedrock", "boto3")


def _key_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


#: AWS's pattern for tag keys and values (service model `TagKey`/`TagValue`).
_TAG_OK = re.compile(r"[a-zA-Z0-9\s._:/=+@-]*")


def _tag_value(value: str) -> str:
    """A tag value Bedrock accepts: the value itself when it fits, else its digest (never cut silently)."""
    if len(value) <= 256 and _TAG_OK.fullmatch(value):
        return value
    return "sha256:" + _key_digest(value)


def _safe_name(text: str, limit: int) -> str:
    """Letters, digits and single `-`/`_` between them (Bedrock's `customModelName` pattern)."""
    cleaned = re.sub(r"[^0-9A-Za-z]+", "-", text).strip("-_")
    return cleaned[:limit].rstrip("-_") or "tuned"


@guard_answers("deploy", "undeploy")
class BedrockProvider(SDKProvider):
    """AWS Bedrock.

    `client=` takes a `boto3.Session`, or a mapping of ready clients by service name (`"s3"`,
    `"bedrock"`, `"bedrock-runtime"`), e.g. clients with a botocore `Stubber`.
    """

    name = "bedrock"
    settings_class = BedrockSettings
    dataset_profile = "bedrock-nova"
    wire_format = "bedrock-conversation"
    capabilities = Capabilities(
        events=False,
        checkpoints=False,
        dpo=False,
        lora=False,
        native_idempotency=True,
        notes={
            "metrics": "from the step-wise CSV files the job writes to its S3 output (once written)",
            "chat": "a tuned model needs deploy() first (on-demand for Nova; provisioned throughput otherwise)",
            "cancel": "stop_model_customization_job; no pause",
            "files": "Uploads are S3 objects under <prefix>data/ in your bucket: see and delete them in the S3 console (https://console.aws.amazon.com/s3/) or with `aws s3 ls`/`aws s3 rm`.",
        },
    )
    settings: BedrockSettings
    #: `find_job` reads the job by the name its key determines: no list to lag behind.
    list_lags = False

    def __init__(self, settings: BedrockSettings | None = None, *, client: Any = None) -> None:
        # `client=` takes a boto3 Session, or ready clients by service name (tests: moto's).
        clients = dict(client) if isinstance(client, Mapping) else {}
        super().__init__(settings, client=None if clients else client)
        self._clients: dict[str, Any] = clients
        if clients:
            self._owned = False

    # -- clients and errors -------------------------------------------------------------------------

    def _build_client(self) -> Any:
        """The boto3 Session the service clients come from (profile and region from settings)."""
        return _boto3().Session(profile_name=self.settings.profile, region_name=self.settings.region)

    def _aws(self, service: str) -> Any:
        """The client of one AWS service, built on first use.

        The client of one AWS service (bedrock, bedrock-runtime, s3), built on first use with
        botocore's own retries off.
        """
        with self._lock:
            if service not in self._clients:
                from botocore.config import Config

                endpoint = {
                    "bedrock": self.settings.endpoint_url or self.settings.base_url,
                    "bedrock-runtime": self.settings.runtime_endpoint_url,
                    "s3": self.settings.s3_endpoint_url,
                }[service]
                config = Config(
                    retries={"mode": "standard", "total_max_attempts": 1},  # one request: FineTuneClient retries
                    connect_timeout=10, read_timeout=self.settings.timeout,
                )  # fmt: skip
                self._clients[service] = self.sdk.client(service, endpoint_url=endpoint, config=config)
            return self._clients[service]

    def _release(self, client: Any) -> None:
        """A Session holds nothing; the service clients built from it hold the connections."""
        with self._lock:
            built, self._clients = list(self._clients.values()), {}
        for service_client in built:
            close = getattr(service_client, "close", None)
            if callable(close):
                close()

    def _client_error(self, e: Any, action: str) -> Exception:
        err = e.response.get("Error", {})
        meta = e.response.get("ResponseMetadata", {})
        code = str(err.get("Code", ""))
        status = meta.get("HTTPStatusCode")
        if code.isdigit() and (status is None or status < 400):
            status = int(code)  # botocore's code for a 200 whose body it could not parse: a 500
        # Bedrock's throttling and model-warming codes come as 400/429 depending on the service.
        if code in ("ThrottlingException", "ModelNotReadyException", "TooManyRequestsException", "SlowDown"):
            status = 429
        elif code in ("ServiceUnavailableException", "InternalServerException", "InternalError"):
            status = status if status and status >= 500 else 503
        elif code in ("ResourceNotFoundException", "NoSuchKey", "NoSuchBucket"):
            status = 404
        elif code in ("AccessDeniedException", "AccessDenied"):
            status = 403
        headers = meta.get("HTTPHeaders", {})
        return error_from_status(
            status, f"{action}: {code}: {plain_text(err.get('Message', e))}", provider=self.name,
            request_id=meta.get("RequestId"), body=e.response, retry_after=as_float(headers.get("retry-after")),
        )  # fmt: skip

    @contextlib.contextmanager
    def _map_errors(self, action: str) -> Iterator[None]:
        from boto3.exceptions import S3UploadFailedError
        from botocore import exceptions as bx
        from botocore.parsers import ResponseParserError

        try:
            yield
        except bx.ClientError as e:
            raise self._client_error(e, action) from e
        except S3UploadFailedError as e:
            # upload_file wraps S3's ClientError in its own exception; the cause keeps the code.
            cause = e.__context__
            if isinstance(cause, bx.ClientError):
                raise self._client_error(cause, action) from e
            raise ProviderUnavailableError(f"{action}: {e}", provider=self.name) from e
        except (bx.NoCredentialsError, bx.PartialCredentialsError, bx.TokenRetrievalError, bx.SSOError,
                bx.SSOTokenLoadError, bx.UnauthorizedSSOTokenError) as e:  # fmt: skip
            raise ConfigurationError(
                f"{action}: no usable AWS credentials ({type(e).__name__}: {e}).",
                fix="Set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE or `profile` under "
                "[providers.bedrock] (run `aws sso login` for SSO), or run where an IAM role applies.",
            ) from e
        except bx.NoRegionError as e:
            raise ConfigurationError(
                f"{action}: no AWS region.", fix="Set AWS_REGION or `region` under [providers.bedrock]."
            ) from e
        except bx.ParamValidationError as e:  # botocore checked the request against AWS's model
            raise ProviderError(
                f"{action}: the request does not fit Bedrock's API: {e}", provider=self.name
            ) from e
        except (bx.ConnectionError, bx.HTTPClientError) as e:  # timeouts, resets, TLS, proxies, streams
            timeout = isinstance(e, (bx.ReadTimeoutError, bx.ConnectTimeoutError))
            raise transport_error(self.name, action, e, timeout=timeout) from e
        except (
            bx.IncompleteReadError,
            bx.ResponseStreamingError,
            bx.ChecksumError,
            bx.FlexibleChecksumError,
            ResponseParserError,
        ) as e:
            raise unreadable_answer(self.name, action, e) from e  # a body cut short on its way
        except bx.BotoCoreError as e:  # anything else botocore raises: still unitune's error
            raise ProviderError(f"{action}: {type(e).__name__}: {e}", provider=self.name) from e

    def _op(self, service: str, op: str, action: str, *, expect: tuple[str, ...] = (), **kwargs: Any) -> Any:
        """One request.

        `expect` names fields every good answer has: botocore reads a JSON body cut short as an empty
        answer, which must not pass for one.
        """
        with self._map_errors(action):
            raw = getattr(self._aws(service), op)(**kwargs)
        if expect and not any(field in raw for field in expect):
            raise unreadable_answer(self.name, action, body=_plain(raw) or None)
        return raw

    # -- data ------------------------------------------------------------------------------------------

    def family_of(self, model: str | None) -> str:
        """The model's family from the catalog (or the `family` setting); a clear error if unknown."""
        if model:
            entry = self.context.catalog.find(self.name, model)
            if entry is not None and entry.data_format in _FORMAT_FAMILY:
                return _FORMAT_FAMILY[entry.data_format]
        if self.settings.family:
            return self.settings.family
        raise JobSpecRefused(
            f"unitune does not know the Bedrock family of {model!r} (its data format and hyperparameters).",
            provider=self.name,
            feature="model",
            fix='Use a model from `unitune models --provider bedrock`, or set family = "nova" | "claude" | '
            '"llama" under [providers.bedrock].',
        )

    def profile_for(self, model: str | None) -> str:
        return (
            FAMILIES[self.family_of(model)].profile if model or self.settings.family else self.dataset_profile
        )

    def wire_format_for(self, method: TrainingMethod, model: str | None = None) -> str:
        """The family's format (Converse, Claude or prompt/completion); Bedrock has no DPO."""
        if method == "dpo":
            self._refuse("DPO (preference) training")
        return FAMILIES[self.family_of(model)].data_format

    def upload(self, prepared: PreparedFile) -> FileRef:
        """Put the file in S3 at a key named by its content hash; large files go in parallel parts."""
        bucket = self.settings.need("bucket", "an S3 bucket for the training data")
        # Bedrock's S3Uri pattern has no room for spaces, `+` or `#`: the name is kept readable, made safe.
        name = re.sub(r"[^A-Za-z0-9._-]+", "-", prepared.filename) or "data.jsonl"
        key = f"{self.settings.prefix}data/{prepared.sha256[:16]}/{name}"
        extra: dict[str, Any] = {"ContentType": "application/jsonl"}
        if self.settings.kms_key_id:
            extra.update(ServerSideEncryption="aws:kms", SSEKMSKeyId=self.settings.kms_key_id)
        if prepared.size_bytes > self.settings.multipart_threshold_bytes:
            self._upload_in_parts(prepared, bucket, key, extra)
        else:
            with prepared.path.open("rb") as fh:
                self._op("s3", "put_object", f"upload to s3://{bucket}/{key}", expect=("ETag",),
                           Bucket=bucket, Key=key, Body=fh, **extra)  # fmt: skip
        return FileRef(
            id=f"s3://{bucket}/{key}",
            provider=self.name,
            filename=prepared.filename,
            size_bytes=prepared.size_bytes,
            purpose=prepared.purpose,
            sha256=prepared.sha256,
        )

    def _upload_in_parts(self, prepared: PreparedFile, bucket: str, key: str, extra: dict[str, Any]) -> None:
        """Upload to S3 in parts (multipart upload).

        S3 multipart: create, each part (in parallel), complete; each request retried on its own
        (`step`), the upload aborted if one fails for good. A complete whose answer was lost is
        recognised by the object now being there, whole.
        """
        size = prepared.size_bytes
        part_size = max(self.settings.part_size_bytes, math.ceil(size / 10_000))  # S3: 10,000 parts at most
        where = f"s3://{bucket}/{key}"
        created = self.step(
            f"upload to {where} (start)", self._op, "s3", "create_multipart_upload", f"upload to {where} (start)",
            expect=("UploadId",), Bucket=bucket, Key=key, **extra,
        )  # fmt: skip
        upload_id = created["UploadId"]

        def send(number: int) -> dict[str, Any]:
            with prepared.path.open("rb") as fh:
                fh.seek((number - 1) * part_size)
                chunk = fh.read(part_size)
            action = f"upload to {where} (part {number})"
            sent = self.step(action, self._op, "s3", "upload_part", action, expect=("ETag",), Bucket=bucket,
                             Key=key, UploadId=upload_id, PartNumber=number, Body=chunk)  # fmt: skip
            return {"PartNumber": number, "ETag": sent["ETag"]}

        try:
            numbers = range(1, math.ceil(size / part_size) + 1)
            parts = send_parts(send, numbers, concurrency=self.settings.upload_concurrency)
            self.step(
                f"upload to {where} (complete)", self._complete_parts, bucket, key, upload_id, parts, size
            )
        except BaseException:
            with contextlib.suppress(ProviderError):  # the original failure is what the caller needs
                self._op("s3", "abort_multipart_upload", f"upload to {where} (abort)", Bucket=bucket, Key=key,
                           UploadId=upload_id)  # fmt: skip
            raise

    def _complete_parts(
        self, bucket: str, key: str, upload_id: str, parts: list[dict[str, Any]], size: int
    ) -> None:
        action = f"upload to s3://{bucket}/{key} (complete)"
        try:
            self._op("s3", "complete_multipart_upload", action, expect=("ETag", "Key", "Location"), Bucket=bucket,
                       Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts})  # fmt: skip
        except (NotFoundError, ProviderUnavailableError) as e:
            # NoSuchUpload after a complete whose answer was lost; an empty answer: is the object whole?
            try:
                head = self._op("s3", "head_object", action, Bucket=bucket, Key=key)
            except ProviderError:
                raise e from None
            if head.get("ContentLength") != size:
                raise

    # -- jobs ---------------------------------------------------------------------------------------------

    def job_name(self, idempotency_key: str) -> str:
        """The job name for an idempotency key: the same key always names the same job."""
        return f"unitune-{_key_digest(idempotency_key)[:24]}"

    def check_job(self, spec: JobSpec) -> None:
        """Raise what the create would refuse, without a request.

        What the create would refuse, found without a request (so before anything is put in S3):
        a model of no known family, DPO, a hyperparameter or `provider_options` key the model's
        family does not take, the bucket and role_arn settings missing, metadata that cannot be a
        job tag.
        """
        if spec.method == "dpo":
            self._refuse("DPO (preference) training")
        self._hyperparameters(spec)
        self.settings.need("bucket", "an S3 bucket for the training data and the job's output")
        self.settings.need("role_arn", "an IAM role that Bedrock can assume (role_arn)")
        refuse_reserved_metadata(self.name, spec.metadata, IDEMPOTENCY_TAG)
        for key, value in spec.metadata.items():
            if (
                len(key) > 128
                or not _TAG_OK.fullmatch(key)
                or len(value) > 256
                or not _TAG_OK.fullmatch(value)
            ):
                raise JobSpecRefused(
                    f"metadata {key!r}: {value!r} cannot be a Bedrock job tag.",
                    provider=self.name, feature="metadata",
                    fix="Use letters, digits, spaces and . _ : / = + @ - (keys up to 128, values up to 256 characters).",
                )  # fmt: skip

    def _hyperparameters(self, spec: JobSpec) -> tuple[str, dict[str, str]]:
        """The customization type and hyperparameters of a job.

        The customization type and the hyperparameters (strings, by the family's names) of a job;
        refuses what the model's family does not take.
        """
        family_name = self.family_of(spec.model)
        family = FAMILIES[family_name]
        offered = ", ".join(sorted(family.common))
        table = HyperparameterTable(
            family.common,
            instead=dict.fromkeys(
                Hyperparameters.model_fields,
                f"Bedrock takes {offered} for this family (as {', '.join(family.common.values())}).",
            ),
            convert=lambda name, value: _string(value),
        )
        params: dict[str, str] = table.map(
            self.name, spec.hyperparameters, scope=f" for {family_name} models"
        )
        options = dict(spec.hyperparameters.provider_options)
        customization = str(options.pop("customizationType", "FINE_TUNING"))
        refuse_unknown_options(
            self.name, options, family.options, scope=f" for {family_name}",
            hint=f"Known for {family_name}: customizationType, {', '.join(sorted(family.options))}.",
        )  # fmt: skip
        params.update({k: _string(v) for k, v in options.items()})
        return customization, params

    def create_job(self, spec: JobSpec, *, idempotency_key: str) -> Job:
        self.check_job(spec)
        customization, params = self._hyperparameters(spec)
        bucket = self.settings.need("bucket", "an S3 bucket for the job's output")
        name = self.job_name(idempotency_key)
        kwargs: dict[str, Any] = {
            "jobName": name,
            "customModelName": f"{_safe_name(spec.suffix or 'tuned', 40)}-{_key_digest(idempotency_key)[:12]}",
            "roleArn": self.settings.need("role_arn", "an IAM role that Bedrock can assume (role_arn)"),
            "baseModelIdentifier": spec.model,
            "customizationType": customization,
            "trainingDataConfig": {"s3Uri": spec.training_file.id},
            "outputDataConfig": {"s3Uri": f"s3://{bucket}/{self.settings.prefix}output/{name}/"},
            "hyperParameters": params,
            # Bedrock's own idempotency: the same token returns the job already created.
            "clientRequestToken": _key_digest(idempotency_key)[:64],
            "jobTags": [
                {"key": IDEMPOTENCY_TAG, "value": _tag_value(idempotency_key)},
                *({"key": k, "value": v} for k, v in spec.metadata.items()),
            ],
        }
        if spec.validation_file is not None:
            kwargs["validationDataConfig"] = {"validators": [{"s3Uri": spec.validation_file.id}]}
        if self.settings.kms_key_id:
            kwargs["customModelKmsKeyId"] = self.settings.kms_key_id
        if self.settings.vpc_subnet_ids:
            kwargs["vpcConfig"] = {"subnetIds": list(self.settings.vpc_subnet_ids),
                                   "securityGroupIds": list(self.settings.vpc_security_group_ids)}  # fmt: skip
        try:
            created = self._op("bedrock", "create_model_customization_job", "create job", **kwargs)
        except ProviderError as e:
            if "ResourceInUse" not in str(e) and "already exists" not in str(e).lower():
                raise
            # A job of this key's name exists (an earlier create's answer was lost): that job.
            try:
                found = self.step(f"get job {name}", self.get_job, name)
            except NotFoundError:
                raise e from None
            return found.model_copy(update={"idempotency_key": idempotency_key})
        try:
            job = self.step(f"get job {name}", self.get_job, name)
        except NotFoundError:
            # Created (Bedrock answered with its ARN) but not readable yet: report it as just queued
            # rather than as an error, which would make the caller create it again.
            job = Job(id=name, provider=self.name, status=S.QUEUED, raw_status="InProgress", model=spec.model,
                      training_file=spec.training_file.id, raw={"jobArn": created.get("jobArn"), "jobName": name})  # fmt: skip
        return job.model_copy(update={"idempotency_key": idempotency_key})

    def get_job(self, job_id: str) -> Job:
        raw = self._op("bedrock", "get_model_customization_job", f"get job {job_id}", expect=("status", "jobArn"),
                         jobIdentifier=job_id)  # fmt: skip
        return self._job(raw)

    def find_job(self, idempotency_key: str) -> Job | None:
        """The job is named after the key, so one read finds it."""
        try:  # a step of the client's create (look, then create): the look retries on its own
            job = self.step("find job", self.get_job, self.job_name(idempotency_key))
        except NotFoundError:
            return None
        return job.model_copy(update={"idempotency_key": idempotency_key})

    def list_jobs(self, *, limit: int = 20) -> list[Job]:
        jobs: list[Job] = []
        token: str | None = None
        while len(jobs) < limit:
            kwargs: dict[str, Any] = {"sortBy": "CreationTime", "sortOrder": "Descending",
                                      "maxResults": min(100, limit - len(jobs))}  # fmt: skip
            if token:
                kwargs["nextToken"] = token
            call = functools.partial(self._op, "bedrock", "list_model_customization_jobs", "list jobs",
                                     expect=("modelCustomizationJobSummaries",), **kwargs)  # fmt: skip
            # Later pages are retried on their own: the list is never read again from the start.
            page = call() if not token else self.step("list jobs", call)
            found = page.get("modelCustomizationJobSummaries", [])
            jobs += [self._job(s) for s in found]
            nxt = page.get("nextToken")
            if not nxt or not found or nxt == token:  # a repeated token or an empty page ends it
                break
            token = nxt
        return jobs[:limit]

    def cancel_job(self, job_id: str) -> Job:
        self._op("bedrock", "stop_model_customization_job", f"stop job {job_id}", jobIdentifier=job_id)
        return self.step(f"get job {job_id}", self.get_job, job_id)

    def _job(self, raw: dict[str, Any]) -> Job:
        raw = _plain(raw)
        status = str(raw.get("status"))
        name = raw.get("jobName") or str(raw.get("jobArn", "")).rsplit("/", 1)[-1]
        if not name:  # neither a name nor an ARN: not a job's answer
            raise KeyError("jobName")
        validators: list[dict[str, Any]] = (raw.get("validationDataConfig") or {}).get("validators") or []
        return Job(
            id=str(name),
            provider=self.name,
            status=self._status(status, raw.get("statusDetails") or {}),
            raw_status=status,  # the phase statuses are in raw["statusDetails"]
            model=_model_id(str(raw.get("baseModelIdentifier") or raw.get("baseModelArn") or "")),
            fine_tuned_model=raw.get("outputModelArn") or raw.get("customModelArn"),
            created_at=as_datetime(raw.get("creationTime")),
            finished_at=as_datetime(raw.get("endTime")),
            training_file=(raw.get("trainingDataConfig") or {}).get("s3Uri"),
            validation_file=validators[0].get("s3Uri") if validators else None,
            hyperparameters=dict(raw.get("hyperParameters") or {}),
            error=raw.get("failureMessage"),
            raw=raw,
        )

    def _status(self, status: str, details: Mapping[str, Any]) -> JobStatus:
        """The unitune status of a Bedrock job, its phase read from `statusDetails`.

        `InProgress` says nothing of the phase; `statusDetails` does (validation, data processing,
        training).
        """
        mapped = map_status(self.name, status, STATUS_MAP)
        if status != "InProgress":
            return mapped
        phase = {k: (v or {}).get("status") for k, v in details.items()}
        if (
            phase.get("validationDetails") == "InProgress"
            or phase.get("dataProcessingDetails") == "InProgress"
        ):
            return S.VALIDATING
        if phase.get("trainingDetails") == "NotStarted":
            return S.QUEUED
        return S.RUNNING

    # -- metrics from S3 -------------------------------------------------------------------------------------

    def list_metrics(self, job_id: str) -> list[StepMetric]:
        """Training loss per step (and validation loss where written) from the job's S3 output.

        Empty until Bedrock has written the files.
        """
        # Several requests: each is retried on its own (a step), not the whole call.
        job = self.step(f"get job {job_id}", self.get_job, job_id)
        output = str((job.raw.get("outputDataConfig") or {}).get("s3Uri") or "")
        if not output.startswith("s3://"):
            return []
        bucket, _, prefix = output[5:].partition("/")
        arn_id = str(job.raw.get("jobArn", "")).rsplit("/", 1)[-1]
        keys: list[str] = []
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
            if token:
                kwargs["ContinuationToken"] = token
            action = f"metrics of job {job_id}"
            page = self.step(action, self._op, "s3", "list_objects_v2", action, expect=("IsTruncated", "KeyCount", "Name"),
                             **kwargs)  # fmt: skip
            keys += [o["Key"] for o in page.get("Contents", []) if o["Key"].endswith(".csv")]
            nxt = page.get("NextContinuationToken")
            if not nxt or not page.get("Contents") or nxt == token:
                break
            token = nxt
        mine = [k for k in keys if not arn_id or arn_id in k] or keys
        by_step: dict[int, dict[str, Any]] = {}
        for key in sorted(mine):
            if "step_wise_training_metrics" not in key and "validation_metrics" not in key:
                continue
            body = self.step(f"metrics file {key}", self._read_object, bucket, key)
            for row in csv.DictReader(io.StringIO(body.decode("utf-8", errors="replace"))):
                step = as_float(row.get("step_number") or row.get("step"))
                if step is None:
                    continue
                entry = by_step.setdefault(int(step), {"extra": {}})
                for column, value in row.items():
                    number = as_float(value)
                    if number is None or column in ("step_number", "step"):
                        continue
                    if column == "training_loss":
                        entry["train_loss"] = number
                    elif column == "validation_loss":
                        entry["valid_loss"] = number
                    elif column == "epoch_number":
                        entry["epoch"] = number
                    else:
                        entry["extra"][column] = number
        return [StepMetric(step=s, **by_step[s]) for s in sorted(by_step)]

    def _read_object(self, bucket: str, key: str) -> bytes:
        """An S3 object's bytes; a body cut short on the way is a transient error."""
        action = f"metrics file {key}"
        got = self._op("s3", "get_object", action, expect=("Body",), Bucket=bucket, Key=key)
        with self._map_errors(action):
            try:
                data: bytes = got["Body"].read()
            except Exception as e:  # urllib3's ProtocolError and friends, under botocore's stream
                from botocore import exceptions as bx

                if isinstance(e, bx.BotoCoreError):
                    raise
                raise transport_error(self.name, action, e) from e
        length = (got.get("ResponseMetadata") or {}).get("HTTPHeaders", {}).get("content-length")
        if length is not None and str(length).isdigit() and int(length) != len(data):
            raise unreadable_answer(self.name, action)
        return data

    # -- deployment and inference -------------------------------------------------------------------------

    def hourly_price(self, model: str, model_units: int = 1) -> float | None:
        """Provisioned throughput's hourly price for the base model's family, from the catalog."""
        entry = self.context.catalog.find(self.name, model)
        for hosting in entry.hosting if entry else []:
            if hosting.kind == "provisioned_throughput" and hosting.per_hour_usd is not None:
                return float(hosting.per_hour_usd) * model_units
        return None

    def deploy(
        self,
        job: Job | str,
        *,
        kind: Literal["on_demand", "provisioned"] = "on_demand",
        name: str | None = None,
        model_units: int = 1,
        commitment: Literal["OneMonth", "SixMonths"] | None = None,
        confirm_hourly_usd: float | None = None,
    ) -> Deployment:
        """Make a tuned model callable.

        `on_demand` (Nova) bills per token; `provisioned` bills by the hour from the moment it exists, so
        it is created only when `confirm_hourly_usd` is at least the catalog's hourly price (or when the
        catalog has none and it is given at all).
        """
        job = self.get_job(job) if isinstance(job, str) else job
        if not job.fine_tuned_model:
            raise ConfigurationError(
                f"Job {job.id} has no custom model yet ({job.status}); wait for it to succeed."
            )
        model_arn = job.fine_tuned_model
        base = job.model
        label = name or f"{job.id}-{kind}"[:63]
        if kind == "on_demand":
            if not FAMILIES[self.family_of(base)].on_demand:
                raise UnsupportedFeatureError(
                    provider=self.name, feature=f"on-demand deployment of {base} models",
                    hint="Bedrock deploys only Nova models on demand; use kind='provisioned'.",
                )  # fmt: skip
            raw = self._op(
                "bedrock", "create_custom_model_deployment", f"deploy {model_arn}",
                modelDeploymentName=label, modelArn=model_arn, clientRequestToken=_key_digest(label)[:64],
            )  # fmt: skip
            arn = raw["customModelDeploymentArn"]
            got = self._op("bedrock", "get_custom_model_deployment", f"deployment {arn}",
                             customModelDeploymentIdentifier=arn)  # fmt: skip
            return Deployment(
                arn=arn, kind=kind, status=str(got.get("status")), model_arn=model_arn, raw=_plain(got)
            )
        price = self.hourly_price(base, model_units)
        if confirm_hourly_usd is None or (price is not None and confirm_hourly_usd < price):
            shown = f"${price:.2f}/hour" if price is not None else "an hourly price the catalog does not have"
            raise ConfigurationError(
                f"Provisioned throughput for {base} ({model_units} unit(s)) costs {shown}, billed from creation "
                "until undeploy().",
                fix=f"Pass confirm_hourly_usd={price if price is not None else '<the price you accept>'} to create it.",
            )
        kwargs: dict[str, Any] = {"modelUnits": model_units, "provisionedModelName": label, "modelId": model_arn,
                                  "clientRequestToken": _key_digest(label)[:64]}  # fmt: skip
        if commitment:
            kwargs["commitmentDuration"] = commitment
        raw = self._op("bedrock", "create_provisioned_model_throughput", f"provision {model_arn}", **kwargs)
        arn = raw["provisionedModelArn"]
        got = self._op(
            "bedrock", "get_provisioned_model_throughput", f"provisioned {arn}", provisionedModelId=arn
        )
        hourly = price if price is not None else confirm_hourly_usd  # what the caller accepted
        return Deployment(arn=arn, kind="provisioned", status=str(got.get("status")), model_arn=model_arn,
                          hourly_usd=hourly, raw=_plain(got))  # fmt: skip

    def undeploy(self, deployment: Deployment | str) -> None:
        """Delete an on-demand deployment or provisioned throughput (stops its charges)."""
        arn = deployment.arn if isinstance(deployment, Deployment) else deployment
        if ":provisioned-model/" in arn:
            self._op(
                "bedrock", "delete_provisioned_model_throughput", f"delete {arn}", provisionedModelId=arn
            )
        else:
            self._op("bedrock", "delete_custom_model_deployment", f"delete {arn}",
                       customModelDeploymentIdentifier=arn)  # fmt: skip

    def chat(self, model: str, messages: list[Message], **params: Any) -> ChatResponse:
        """Converse with a base model id, an on-demand deployment ARN or a provisioned model ARN."""
        if ":custom-model/" in model:
            raise ConfigurationError(
                f"{model} is a custom model: Bedrock serves it only through a deployment.",
                fix="Call BedrockProvider.deploy(job) and chat with the deployment's arn.",
            )
        system = [{"text": m.text} for m in messages if m.role == "system"]
        turns = [
            {"role": m.role, "content": [{"text": m.text}]}
            for m in messages
            if m.role in ("user", "assistant")
        ]
        config = {k: v for k, v in {"maxTokens": params.pop("max_tokens", None),
                                    "temperature": params.pop("temperature", None),
                                    "topP": params.pop("top_p", None)}.items() if v is not None}  # fmt: skip
        if params:
            raise UnsupportedFeatureError(
                provider=self.name, feature=f"chat parameter(s) {', '.join(sorted(params))}",
                hint="Bedrock's Converse takes max_tokens, temperature and top_p.",
            )  # fmt: skip
        kwargs: dict[str, Any] = {"modelId": model, "messages": turns}
        if system:
            kwargs["system"] = system
        if config:
            kwargs["inferenceConfig"] = config
        raw = _plain(
            self._op("bedrock-runtime", "converse", f"chat with {model}", expect=("output",), **kwargs)
        )
        content = ((raw.get("output") or {}).get("message") or {}).get("content") or []
        usage = raw.get("usage") or {}
        return ChatResponse(
            model=model,
            provider=self.name,
            content="".join(part.get("text", "") for part in content),
            finish_reason=raw.get("stopReason"),
            usage=Usage(
                prompt_tokens=int(usage.get("inputTokens") or 0),
                completion_tokens=int(usage.get("outputTokens") or 0),
            ),
            raw=raw,
        )


def _model_id(value: str) -> str:
    """`arn:aws:bedrock:<region>::foundation-model/<id>` → `<id>`, the id jobs are created with."""
    marker = ":foundation-model/"
    return value.split(marker, 1)[1] if marker in value else value


def _string(value: Any) -> str:
    """Bedrock's hyperparameters are strings: `2`, `1e-05`, `true`."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _plain(raw: Mapping[str, Any]) -> dict[str, Any]:
    """A response without botocore's ResponseMetadata."""
    return {k: v for k, v in raw.items() if k != "ResponseMetadata"}
