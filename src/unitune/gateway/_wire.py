"""OpenAI's wire format for the gateway: reading requests and writing OpenAI's objects and errors.

Pure functions over the store's rows and unitune's types: no I/O, no server library, so the shapes
are tested and reused without a running app. Errors are `ServeError`s (OpenAI's error body), as in
`unitune serve`.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from unitune.errors import (
    BudgetExceeded,
    ConfigurationError,
    DatasetError,
    NotFoundError,
    ProviderError,
    ProviderRetiredError,
    ProviderUnavailableError,
    RateLimitError,
    UnsupportedFeatureError,
    ValidationFailed,
)
from unitune.gateway._store import FileRow, JobRow, UploadRow
from unitune.serve._backends import ServeError
from unitune.types import (
    ChatResponse,
    Checkpoint,
    Hyperparameters,
    Job,
    JobEvent,
    JobStatus,
    StepMetric,
    TrainingMethod,
)

__all__ = [
    "Call",
    "Raw",
    "bad_request",
    "chat_messages",
    "chat_view",
    "checkpoint_view",
    "event_views",
    "file_view",
    "form_fields",
    "job_view",
    "json_object",
    "metrics_csv",
    "model_card",
    "not_found",
    "page_after",
    "page_limit",
    "parse_metadata",
    "parse_method",
    "provider_error",
    "refused_data",
    "required_field",
    "string_field",
    "timestamp",
    "upload_view",
]

#: OpenAI's words for unitune's statuses. `cancelling` is not stopped yet: it stays `running`.
_STATUS = {
    JobStatus.VALIDATING: "validating_files",
    JobStatus.QUEUED: "queued",
    JobStatus.RUNNING: "running",
    JobStatus.PAUSED: "paused",
    JobStatus.CANCELLING: "running",
    JobStatus.SUCCEEDED: "succeeded",
    JobStatus.FAILED: "failed",
    JobStatus.CANCELLED: "cancelled",
}
#: The result file's columns, as OpenAI writes them.
_CSV_COLUMNS = ("step", "train_loss", "train_accuracy", "valid_loss", "valid_mean_token_accuracy")
_META_PAIRS = 16
_ORG = "org-unitune"


# -- requests --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """One authorised request, read whole, handed to a route's (blocking) handler."""

    owner: str
    params: Mapping[str, str]
    query: Mapping[str, str]
    query_items: tuple[tuple[str, str], ...]
    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True)
class Raw:
    """A body that is not JSON: a file's content, sent from where it is kept."""

    path: Path
    media_type: str
    filename: str


def bad_request(message: str, *, param: str | None = None, code: str | None = "invalid_value") -> ServeError:
    """A 400 in OpenAI's shape (`invalid_request_error`)."""
    return ServeError(400, message, param=param, code=code)


def not_found(what: str, ident: str) -> ServeError:
    """A 404 for an object this key does not have."""
    # The same answer whether the object does not exist or belongs to another key, as OpenAI's.
    return ServeError(404, f"No such {what}: '{ident}'.", code=None)


def json_object(raw: bytes) -> dict[str, Any]:
    """The body as a JSON object (an empty body is `{}`); anything else is a 400."""
    try:
        data = json.loads(raw or b"{}")
    except ValueError:
        raise bad_request(
            "We could not parse the JSON body of your request. Send a JSON object (Content-Type: "
            "application/json).",
            code="invalid_json",
        ) from None
    if not isinstance(data, dict):
        raise bad_request("The request body must be a JSON object.", code="invalid_json")
    return data


def string_field(body: Mapping[str, Any], name: str, *, required: bool = False) -> str | None:
    """A non-empty string field of the body, None when absent (a 400 when `required`)."""
    value = body.get(name)
    if value is None:
        if required:
            raise bad_request(
                f"Missing required parameter: '{name}'.", param=name, code="missing_required_parameter"
            )
        return None
    if not isinstance(value, str) or not value.strip():
        raise bad_request(f"Invalid value for '{name}': expected a non-empty string.", param=name)
    return value


def required_field(body: Mapping[str, Any], name: str) -> str:
    """A non-empty string field the request must have."""
    value = string_field(body, name, required=True)
    assert value is not None  # string_field raised otherwise
    return value


def page_limit(query: Mapping[str, str], default: int, most: int) -> int:
    """The `limit` query parameter: 1 to `most`, `default` when absent."""
    raw = query.get("limit")
    if raw is None:
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= most:
        raise bad_request(
            f"Invalid value for 'limit': expected a whole number from 1 to {most}.", param="limit"
        )
    return int(raw)


def form_fields(body: bytes, content_type: str) -> dict[str, tuple[str | None, bytes]]:
    """The fields of a multipart/form-data body: name → (filename, bytes). Malformed → 400.

    The standard library's MIME parser, so the gateway needs no multipart package; it reads the
    body whole, which `max_file_bytes` bounds (larger files go through the Uploads API).
    """
    from email import policy
    from email.parser import BytesParser

    malformed = bad_request(
        "The body is not valid multipart/form-data. Send the file as a multipart form with the "
        "fields 'file' and 'purpose'.",
        code="invalid_multipart",
    )
    if not content_type.lower().startswith("multipart/form-data") or "boundary=" not in content_type:
        raise malformed
    try:
        head = b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n"
    except UnicodeEncodeError:
        raise malformed from None
    message = BytesParser(policy=policy.HTTP).parsebytes(head + body)
    if not message.is_multipart() or message.defects:
        raise malformed
    fields: dict[str, tuple[str | None, bytes]] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if part.defects or not isinstance(name, str) or not isinstance(payload, bytes):
            raise malformed
        fields[name] = (part.get_filename(), payload)
    return fields


def timestamp(value: Any) -> int | None:
    """A datetime as OpenAI's Unix seconds (None stays None)."""
    return int(value.timestamp()) if value is not None else None


# -- the OpenAI views --------------------------------------------------------------------------------


def file_view(row: FileRow) -> dict[str, Any]:
    """OpenAI's `file` object."""
    return {
        "id": row.id,
        "object": "file",
        "bytes": row.bytes,
        "created_at": row.created_at,
        "filename": row.filename,
        "purpose": row.purpose,
        "status": "processed",
    }


def upload_view(row: UploadRow, file: FileRow | None = None) -> dict[str, Any]:
    """OpenAI's `upload` object (with its file once completed)."""
    return {
        "id": row.id,
        "object": "upload",
        "bytes": row.bytes,
        "created_at": row.created_at,
        "expires_at": row.expires_at,
        "filename": row.filename,
        "purpose": row.purpose,
        "status": row.status,
        "file": file_view(file) if file is not None else None,
    }


def job_view(row: JobRow, job: Job) -> dict[str, Any]:
    """A job as OpenAI's `fine_tuning.job` object.

    OpenAI's `fine_tuning.job`: the request as sent, the state as the provider reports it, and
    under `unitune` the provider, its job id and unitune's own status word.
    """
    request = row.request
    succeeded = job.status is JobStatus.SUCCEEDED
    error = None
    if job.status is JobStatus.FAILED:
        error = {"code": "job_failed", "message": job.error or "The provider gave no reason.", "param": None}
    return {
        "object": "fine_tuning.job",
        "id": row.id,
        "model": request["model"],
        "created_at": row.created_at,
        "finished_at": timestamp(job.finished_at) if job.status.is_terminal else None,
        "fine_tuned_model": job.fine_tuned_model if succeeded else None,
        "organization_id": _ORG,
        "result_files": [row.result_file] if row.result_file else [],
        "status": _STATUS[job.status],
        "trained_tokens": job.trained_tokens,
        "training_file": request["training_file"],
        "validation_file": request.get("validation_file"),
        "hyperparameters": request["hyperparameters"],
        # OpenAI always reports a seed; a job created without one reports 0 (the provider's default).
        "seed": request.get("seed") or 0,
        "estimated_finish": timestamp(job.estimated_finish),
        "integrations": [],
        "method": request["method"],
        "metadata": request.get("metadata") or None,
        "error": error,
        "user_provided_suffix": request.get("suffix"),
        "unitune": {"provider": row.provider, "job_id": row.provider_job_id, "status": job.status.value},
    }


def event_views(row: JobRow, events: list[JobEvent]) -> list[dict[str, Any]]:
    """OpenAI's events, newest first.

    An event without the provider's id gets one made from the job, its type and message (and how many
    alike came before), not its place or time: a provider may slot step logs in before the last status,
    or stamp them again, and an id must not change from one read to the next (clients page with `after`).
    """
    out = []
    seen: dict[str, int] = {}
    for event in events:
        content = f"{row.id}\0{event.type}\0{event.message}"
        seen[content] = seen.get(content, 0) + 1
        made = hashlib.sha256(f"{content}\0{seen[content]}".encode()).hexdigest()[:24]
        ident = event.id or f"ftevent-{made}"
        out.append({
            "object": "fine_tuning.job.event",
            "id": ident,
            "created_at": timestamp(event.created_at),
            "level": "warn" if event.level == "warning" else event.level,
            "message": event.message,
            "type": "metrics" if event.type == "metrics" else "message",
            "data": json.loads(json.dumps(event.data, default=str)),
        })  # fmt: skip
    return out[::-1]


_CHECKPOINT_METRICS = {
    "train_loss": "train_loss",
    "train_accuracy": "train_mean_token_accuracy",
    "train_mean_token_accuracy": "train_mean_token_accuracy",
    "valid_loss": "valid_loss",
    "valid_accuracy": "valid_mean_token_accuracy",
    "valid_mean_token_accuracy": "valid_mean_token_accuracy",
    "full_valid_loss": "full_valid_loss",
    "full_valid_mean_token_accuracy": "full_valid_mean_token_accuracy",
}


def checkpoint_view(row: JobRow, checkpoint: Checkpoint) -> dict[str, Any]:
    """OpenAI's `fine_tuning.job.checkpoint`; metrics under OpenAI's names (accuracy as mean token accuracy)."""
    metrics: dict[str, float] = {"step": float(checkpoint.step)}
    for name, value in checkpoint.metrics.items():
        if name in _CHECKPOINT_METRICS:
            metrics[_CHECKPOINT_METRICS[name]] = float(value)
    return {
        "object": "fine_tuning.job.checkpoint",
        "id": checkpoint.id,
        "created_at": timestamp(checkpoint.created_at) or row.created_at,
        "fine_tuned_model_checkpoint": checkpoint.model or "",
        "step_number": checkpoint.step,
        "metrics": metrics,
        "fine_tuning_job_id": row.id,
    }


def metrics_csv(metrics: list[StepMetric]) -> bytes:
    """The result file: one row per step in OpenAI's columns; a value the provider lacks is empty."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(_CSV_COLUMNS)
    for m in metrics:
        values = (m.step, m.train_loss, m.train_accuracy, m.valid_loss, m.valid_accuracy)
        writer.writerow(["" if v is None else v for v in values])
    return text.getvalue().encode()


def page_after(
    items: list[dict[str, Any]], after: str | None, limit: int
) -> tuple[list[dict[str, Any]], bool]:
    """The items following the one whose id is `after` (all when None or unknown), `limit` of them."""
    if after is not None:
        ids = [item["id"] for item in items]
        items = items[ids.index(after) + 1 :] if after in ids else []
    return items[:limit], len(items) > limit


def parse_method(
    body: Mapping[str, Any],
) -> tuple[TrainingMethod, Hyperparameters, dict[str, Any], dict[str, Any]]:
    """The request's method and hyperparameters.

    (method, unitune's hyperparameters, the method object and the `hyperparameters` as the job reports
    them). "auto" means the provider's default.
    """
    method = body.get("method")
    given = body.get("hyperparameters")
    kind = "supervised"
    if method is not None:
        if not isinstance(method, dict) or method.get("type") not in ("supervised", "dpo", "reinforcement"):
            raise bad_request(
                "Invalid value for 'method.type': expected 'supervised' or 'dpo'.", param="method.type"
            )
        kind = method["type"]
        if kind == "reinforcement":
            raise bad_request(
                "Reinforcement fine-tuning is not supported by this gateway; use 'supervised' or 'dpo'.",
                param="method.type", code="unsupported_parameter",
            )  # fmt: skip
        inner = method.get(kind) or {}
        if not isinstance(inner, dict):
            raise bad_request(
                f"Invalid value for 'method.{kind}': expected an object.", param=f"method.{kind}"
            )
        given = inner.get("hyperparameters", given)
    given = given or {}
    if not isinstance(given, dict):
        raise bad_request("Invalid value for 'hyperparameters': expected an object.", param="hyperparameters")
    names = {
        "n_epochs": "epochs",
        "batch_size": "batch_size",
        "learning_rate_multiplier": "learning_rate_multiplier",
    }
    known = set(names) | ({"beta"} if kind == "dpo" else set())
    unknown = sorted(set(given) - known)
    if unknown:
        raise bad_request(
            f"Unknown hyperparameter '{unknown[0]}' for {kind} jobs.", param=f"hyperparameters.{unknown[0]}"
        )
    fields = {names[k]: v for k, v in given.items() if k in names and v != "auto"}
    options = {"beta": given["beta"]} if given.get("beta", "auto") != "auto" else {}
    seed = body.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise bad_request("Invalid value for 'seed': expected an integer.", param="seed")
    try:
        hp = Hyperparameters(**fields, seed=seed, provider_options=options)
    except ValidationError as e:
        first = e.errors(include_url=False)[0]
        raise bad_request(
            f"Invalid hyperparameters: {first['loc'][0]} {first['msg']}.", param="hyperparameters"
        ) from None
    shown = {k: given.get(k, "auto") for k in names}
    if kind == "dpo":
        shown["beta"] = given.get("beta", "auto")
    return ("dpo" if kind == "dpo" else "sft"), hp, {"type": kind, kind: {"hyperparameters": shown}}, shown


def parse_metadata(body: Mapping[str, Any]) -> dict[str, str]:
    metadata = body.get("metadata") or {}
    if (
        not isinstance(metadata, dict)
        or len(metadata) > _META_PAIRS
        or any(not isinstance(k, str) or not isinstance(v, str) for k, v in metadata.items())
    ):
        raise bad_request(
            f"Invalid value for 'metadata': up to {_META_PAIRS} string keys and values.", param="metadata"
        )
    return dict(metadata)


def provider_error(e: Exception) -> ServeError:
    """What a unitune error from the provider's side looks like to an OpenAI client."""
    if isinstance(e, BudgetExceeded):
        return bad_request(str(e), code="budget_exceeded")
    if isinstance(e, ProviderRetiredError):
        return bad_request(str(e), param="model", code="model_not_available")
    if isinstance(e, RateLimitError):
        wait = {"Retry-After": str(int(e.retry_after))} if e.retry_after else {}
        return ServeError(429, str(e), type="requests", code="rate_limit_exceeded", headers=wait)
    if isinstance(e, NotFoundError):
        return ServeError(404, str(e), code=None)
    if isinstance(e, ProviderUnavailableError):
        return ServeError(502, str(e), type="server_error", code="provider_unavailable")
    if isinstance(e, ProviderError):
        # A 4xx of the vendor's is about the request; anything else (its 5xx, our credentials) is ours.
        if e.status_code is not None and 400 <= e.status_code < 500 and e.status_code not in (401, 403):
            return bad_request(str(e), code="provider_refused")
        return ServeError(502, str(e), type="server_error", code="provider_error")
    if isinstance(e, (UnsupportedFeatureError, ConfigurationError, DatasetError)):
        return bad_request(str(e), code="invalid_request")
    raise e


def refused_data(e: ValidationFailed, request: Mapping[str, Any], training_path: Path) -> ServeError:
    """A 400 naming the file and the line of each of the first problems (not this machine's paths)."""
    errors = list(getattr(e.report, "errors", []) or [])
    if not errors:
        return bad_request(str(e), param="training_file", code="invalid_training_file")
    first = errors[0]
    is_training = first.path is None or Path(first.path) == training_path
    param = "training_file" if is_training else "validation_file"
    shown = [
        f"line {i.line}: [{i.code}] {i.message}" if i.line is not None else f"[{i.code}] {i.message}"
        for i in errors[:3]
    ]
    more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
    return bad_request(
        f"The {param.replace('_', ' ')} {request[param]} fails the provider's checks; no job was created. "
        + "; ".join(shown) + more + ".",
        param=param, code=f"invalid_{param}",
    )  # fmt: skip


# -- chat with tuned models ------------------------------------------------------------------------------

_FINISH = {"stop", "length", "tool_calls", "content_filter", "function_call"}


def model_card(model: str, row: JobRow) -> dict[str, Any]:
    """OpenAI's `model` object for a tuned model."""
    return {"id": model, "object": "model", "created": row.created_at, "owned_by": _ORG}


def chat_messages(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The request's messages for `FineTuneClient.chat`.

    `developer` is sent as `system`, text parts are joined; unitune's checks of each message then apply.
    """
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise bad_request(
            "Missing required parameter: 'messages'.", param="messages", code="missing_required_parameter"
        )
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise bad_request(
                f"Invalid value for 'messages.[{i}]': expected a message object.", param=f"messages.[{i}]"
            )
        content = m.get("content")
        if isinstance(content, list):
            content = "\n".join(
                str(p.get("text", "")) for p in content if isinstance(p, dict) and p.get("type") == "text"
            )
        out.append({"role": "system" if m["role"] == "developer" else m["role"], "content": content})
    return out


def chat_view(answer: ChatResponse) -> dict[str, Any]:
    """OpenAI's `chat.completion` for a provider's answer."""
    import secrets
    import time

    usage = answer.usage
    return {
        "id": f"chatcmpl-{secrets.token_hex(12)}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": answer.model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": answer.content, "refusal": None},
            "logprobs": None,
            "finish_reason": answer.finish_reason if answer.finish_reason in _FINISH else "stop",
        }],
        "usage": {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
                  "total_tokens": usage.total_tokens},
    }  # fmt: skip
