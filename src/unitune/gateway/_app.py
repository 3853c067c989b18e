"""`unitune gateway`: OpenAI's fine-tuning API served over any unitune provider.

Code written against `client.fine_tuning.jobs.create(...)` in the `openai` SDK keeps working when
its `base_url` points here. The paths, fields, status words, pagination (`after`, `limit`,
`has_more`) and error bodies (`{"error": {"message", "type", "param", "code"}}`) are OpenAI's:

- `/v1/files`: multipart upload (purpose `fine-tune`), list, retrieve, delete, content;
- `/v1/uploads` (create, parts, complete, cancel) for files larger than one request;
- `/v1/fine_tuning/jobs`: create, list (with `metadata[k]=v` filters), retrieve, cancel, pause,
  resume, events, checkpoints. A succeeded job has its `fine_tuned_model` and a result file: the
  step metrics as a CSV in OpenAI's columns, downloadable through the Files API.

Behind it every job goes through `FineTuneClient` on the configured provider, or the one a model
mapping (`{"gpt-4o-mini-2024-07-18": "together:llama-3.1-8b-instruct"}`) or a `provider:` prefix
in `model` chooses: a stored file is the job's local data, so unitune validates it (a refused file
is a 400 naming the line), converts it to the vendor's format and uploads it; budget caps, retries
and the ledger apply as for unitune's own users.

State (files, uploads, job mappings) is in SQLite under `<unitune home>/gateway/`, so a restarted
gateway lists the same jobs, and their statuses keep advancing (they are read from the provider).
Every object belongs to the API key that made it; another key gets 404, as from OpenAI. Without
keys the gateway answers loopback clients only and is one tenant; it refuses to bind elsewhere.

Status words: unitune's `cancelling` is reported as `running` (a job being stopped has not
stopped; OpenAI has no word for it), `paused` as OpenAI's `paused`.

FastAPI and uvicorn are the `serve` extra: imported only when an app is built.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr, ValidationError

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
from unitune.gateway._store import FileRow, GatewayStore, JobRow, UploadRow
from unitune.serve._app import _is_loopback, _require
from unitune.serve._backends import ServeError
from unitune.types import Checkpoint, Hyperparameters, Job, JobEvent, JobStatus, StepMetric, TrainingMethod

if TYPE_CHECKING:
    import socket

    import uvicorn
    from fastapi import FastAPI
    from starlette.requests import Request
    from starlette.responses import Response

    from unitune.client import FineTuneClient
    from unitune.config import UnituneConfig

__all__ = ["GatewayConfig", "GatewayServer", "create_gateway_app", "start_gateway"]

logger = logging.getLogger("unitune.gateway")

_MiB = 1024 * 1024
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


@dataclass(frozen=True)
class GatewayConfig:
    """What the gateway serves and how.

    `provider`: the provider jobs run on unless a mapping or a `provider:` prefix says otherwise
    (None: the config's provider). `api_keys`: the keys clients send as `Authorization: Bearer KEY`,
    each a tenant with its own files and jobs; required unless `host` is loopback. `models`: OpenAI
    model names → `provider:model`. `home`: the unitune home (the gateway keeps its state in
    `home/gateway`; None: the config's). `max_cost_usd`: each job's budget cap (None: none).
    `max_file_bytes`: the largest body of a file upload or an upload part; `max_upload_bytes`: the
    largest file the Uploads API assembles. `unitune_config`: the settings providers are built
    with (None: `unitune.toml` as found from the working directory).
    """

    provider: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    api_keys: tuple[SecretStr, ...] = field(default=(), repr=False)
    models: Mapping[str, str] = field(default_factory=dict)
    home: Path | None = None
    max_cost_usd: float | None = None
    max_file_bytes: int = 64 * _MiB
    max_upload_bytes: int = 8192 * _MiB
    unitune_config: UnituneConfig | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        keys = tuple(SecretStr(k) if isinstance(k, str) else k for k in self.api_keys)
        object.__setattr__(self, "api_keys", keys)
        if any(not isinstance(k, SecretStr) or not k.get_secret_value().strip() for k in keys):
            raise ConfigurationError("An API key is empty.", fix="Pass non-empty --api-key values.")
        if not keys and not _is_loopback(self.host):
            raise ConfigurationError(
                f"Serving on {self.host!r} would answer other machines without an API key.",
                fix="Pass --api-key (one per tenant), or serve on 127.0.0.1.",
            )
        if not 0 <= self.port <= 65535:
            raise ConfigurationError(f"port must be 0 to 65535, not {self.port!r}.")
        for name, target in self.models.items():
            prefix, sep, model = str(target).partition(":")
            if not sep or not prefix or not model:
                raise ConfigurationError(
                    f"The model mapping {name!r} = {target!r} names no provider.",
                    fix='Map to PROVIDER:MODEL, e.g. "gpt-4o-mini-2024-07-18" = "together:llama-3.1-8b-instruct".',
                )
        if self.max_cost_usd is not None and not self.max_cost_usd >= 0:
            raise ConfigurationError(f"max_cost_usd must be 0 or more, not {self.max_cost_usd!r}.")


# -- requests --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Call:
    """One authorised request, read whole, handed to a route's (blocking) handler."""

    owner: str
    params: Mapping[str, str]
    query: Mapping[str, str]
    query_items: tuple[tuple[str, str], ...]
    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True)
class _Raw:
    """A body that is not JSON (a file's content)."""

    content: bytes
    media_type: str
    filename: str


def _bad(message: str, *, param: str | None = None, code: str | None = "invalid_value") -> ServeError:
    return ServeError(400, message, param=param, code=code)


def _not_found(what: str, ident: str) -> ServeError:
    # The same answer whether the object does not exist or belongs to another key, as OpenAI's.
    return ServeError(404, f"No such {what}: '{ident}'.", code=None)


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        data = json.loads(raw or b"{}")
    except ValueError:
        raise _bad(
            "We could not parse the JSON body of your request. Send a JSON object (Content-Type: "
            "application/json).",
            code="invalid_json",
        ) from None
    if not isinstance(data, dict):
        raise _bad("The request body must be a JSON object.", code="invalid_json")
    return data


def _string(body: Mapping[str, Any], name: str, *, required: bool = False) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            raise _bad(
                f"Missing required parameter: '{name}'.", param=name, code="missing_required_parameter"
            )
        return None
    if not isinstance(value, str) or not value.strip():
        raise _bad(f"Invalid value for '{name}': expected a non-empty string.", param=name)
    return value


def _required(body: Mapping[str, Any], name: str) -> str:
    value = _string(body, name, required=True)
    assert value is not None  # _string raised otherwise
    return value


def _limit(query: Mapping[str, str], default: int, most: int) -> int:
    raw = query.get("limit")
    if raw is None:
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= most:
        raise _bad(f"Invalid value for 'limit': expected a whole number from 1 to {most}.", param="limit")
    return int(raw)


def _form(body: bytes, content_type: str) -> dict[str, tuple[str | None, bytes]]:
    """The fields of a multipart/form-data body: name → (filename, bytes). Malformed → 400.

    The standard library's MIME parser, so the gateway needs no multipart package; it reads the
    body whole, which `max_file_bytes` bounds (larger files go through the Uploads API).
    """
    from email import policy
    from email.parser import BytesParser

    malformed = _bad(
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


def _timestamp(value: Any) -> int | None:
    return int(value.timestamp()) if value is not None else None


# -- the OpenAI views --------------------------------------------------------------------------------


def _file_view(row: FileRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "object": "file",
        "bytes": row.bytes,
        "created_at": row.created_at,
        "filename": row.filename,
        "purpose": row.purpose,
        "status": "processed",
    }


def _upload_view(row: UploadRow, file: FileRow | None = None) -> dict[str, Any]:
    return {
        "id": row.id,
        "object": "upload",
        "bytes": row.bytes,
        "created_at": row.created_at,
        "expires_at": row.expires_at,
        "filename": row.filename,
        "purpose": row.purpose,
        "status": row.status,
        "file": _file_view(file) if file is not None else None,
    }


def _job_view(row: JobRow, job: Job) -> dict[str, Any]:
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
        "finished_at": _timestamp(job.finished_at) if job.status.is_terminal else None,
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
        "estimated_finish": _timestamp(job.estimated_finish),
        "integrations": [],
        "method": request["method"],
        "metadata": request.get("metadata") or None,
        "error": error,
        "user_provided_suffix": request.get("suffix"),
        "unitune": {"provider": row.provider, "job_id": row.provider_job_id, "status": job.status.value},
    }


def _event_views(row: JobRow, events: list[JobEvent]) -> list[dict[str, Any]]:
    """OpenAI's events, newest first. An event without the provider's id gets one made from the job
    and its place in the log, so the same event keeps its id from one read to the next (`after`)."""
    out = []
    for i, event in enumerate(events):
        ident = event.id or f"ftevent-{hashlib.sha256(f'{row.id}:{i}'.encode()).hexdigest()[:24]}"
        out.append({
            "object": "fine_tuning.job.event",
            "id": ident,
            "created_at": _timestamp(event.created_at),
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


def _checkpoint_view(row: JobRow, checkpoint: Checkpoint) -> dict[str, Any]:
    metrics: dict[str, float] = {"step": float(checkpoint.step)}
    for name, value in checkpoint.metrics.items():
        if name in _CHECKPOINT_METRICS:
            metrics[_CHECKPOINT_METRICS[name]] = float(value)
    return {
        "object": "fine_tuning.job.checkpoint",
        "id": checkpoint.id,
        "created_at": _timestamp(checkpoint.created_at) or row.created_at,
        "fine_tuned_model_checkpoint": checkpoint.model or "",
        "step_number": checkpoint.step,
        "metrics": metrics,
        "fine_tuning_job_id": row.id,
    }


def _metrics_csv(metrics: list[StepMetric]) -> bytes:
    """The result file: one row per step in OpenAI's columns; a value the provider lacks is empty."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(_CSV_COLUMNS)
    for m in metrics:
        values = (m.step, m.train_loss, m.train_accuracy, m.valid_loss, m.valid_accuracy)
        writer.writerow(["" if v is None else v for v in values])
    return text.getvalue().encode()


def _page(items: list[dict[str, Any]], after: str | None, limit: int) -> tuple[list[dict[str, Any]], bool]:
    """The items following the one whose id is `after` (all when None or unknown), `limit` of them."""
    if after is not None:
        ids = [item["id"] for item in items]
        items = items[ids.index(after) + 1 :] if after in ids else []
    return items[:limit], len(items) > limit


def _method(
    body: Mapping[str, Any],
) -> tuple[TrainingMethod, Hyperparameters, dict[str, Any], dict[str, Any]]:
    """The request's method and hyperparameters: (method, unitune's hyperparameters, the method
    object and the `hyperparameters` as the job reports them). "auto" means the provider's default."""
    method = body.get("method")
    given = body.get("hyperparameters")
    kind = "supervised"
    if method is not None:
        if not isinstance(method, dict) or method.get("type") not in ("supervised", "dpo", "reinforcement"):
            raise _bad(
                "Invalid value for 'method.type': expected 'supervised' or 'dpo'.", param="method.type"
            )
        kind = method["type"]
        if kind == "reinforcement":
            raise _bad(
                "Reinforcement fine-tuning is not supported by this gateway; use 'supervised' or 'dpo'.",
                param="method.type", code="unsupported_parameter",
            )  # fmt: skip
        inner = method.get(kind) or {}
        if not isinstance(inner, dict):
            raise _bad(f"Invalid value for 'method.{kind}': expected an object.", param=f"method.{kind}")
        given = inner.get("hyperparameters", given)
    given = given or {}
    if not isinstance(given, dict):
        raise _bad("Invalid value for 'hyperparameters': expected an object.", param="hyperparameters")
    names = {
        "n_epochs": "epochs",
        "batch_size": "batch_size",
        "learning_rate_multiplier": "learning_rate_multiplier",
    }
    known = set(names) | ({"beta"} if kind == "dpo" else set())
    unknown = sorted(set(given) - known)
    if unknown:
        raise _bad(
            f"Unknown hyperparameter '{unknown[0]}' for {kind} jobs.", param=f"hyperparameters.{unknown[0]}"
        )
    fields = {names[k]: v for k, v in given.items() if k in names and v != "auto"}
    options = {"beta": given["beta"]} if given.get("beta", "auto") != "auto" else {}
    seed = body.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise _bad("Invalid value for 'seed': expected an integer.", param="seed")
    try:
        hp = Hyperparameters(**fields, seed=seed, provider_options=options)
    except ValidationError as e:
        first = e.errors(include_url=False)[0]
        raise _bad(
            f"Invalid hyperparameters: {first['loc'][0]} {first['msg']}.", param="hyperparameters"
        ) from None
    shown = {k: given.get(k, "auto") for k in names}
    if kind == "dpo":
        shown["beta"] = given.get("beta", "auto")
    return ("dpo" if kind == "dpo" else "sft"), hp, {"type": kind, kind: {"hyperparameters": shown}}, shown


def _metadata(body: Mapping[str, Any]) -> dict[str, str]:
    metadata = body.get("metadata") or {}
    if (
        not isinstance(metadata, dict)
        or len(metadata) > _META_PAIRS
        or any(not isinstance(k, str) or not isinstance(v, str) for k, v in metadata.items())
    ):
        raise _bad(
            f"Invalid value for 'metadata': up to {_META_PAIRS} string keys and values.", param="metadata"
        )
    return dict(metadata)


def _provider_error(e: Exception) -> ServeError:
    """What a unitune error from the provider's side looks like to an OpenAI client."""
    if isinstance(e, BudgetExceeded):
        return _bad(str(e), code="budget_exceeded")
    if isinstance(e, ProviderRetiredError):
        return _bad(str(e), param="model", code="model_not_available")
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
            return _bad(str(e), code="provider_refused")
        return ServeError(502, str(e), type="server_error", code="provider_error")
    if isinstance(e, (UnsupportedFeatureError, ConfigurationError, DatasetError)):
        return _bad(str(e), code="invalid_request")
    raise e


# -- the state -----------------------------------------------------------------------------------------


class GatewayState:
    """The app's state (`app.state.unitune`): the config, the store and one client per provider."""

    def __init__(self, config: GatewayConfig) -> None:
        from unitune.config import home_dir, load_config

        self.config = config
        self.unitune_config = config.unitune_config or load_config()
        if config.home is not None:
            self.unitune_config = self.unitune_config.model_copy(update={"home": config.home})
        home = config.home if config.home is not None else home_dir(self.unitune_config)
        self.store = GatewayStore(home / "gateway")
        self.provider = config.provider or self.unitune_config.provider
        # (key bytes, owner): the owner is a hash of the key, so the database never holds a key.
        self._keys = [
            (k.get_secret_value().encode(), hashlib.sha256(b"unitune-gateway\0" + k.get_secret_value().encode()).hexdigest()[:32])
            for k in config.api_keys
        ]  # fmt: skip
        self._clients: dict[str, FineTuneClient] = {}
        self._guard = threading.Lock()
        self._locks: dict[tuple[str, ...], threading.Lock] = {}

    def close(self) -> None:
        """Close the provider clients the gateway built."""
        with self._guard:
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            client.close()

    def client(self, provider: str) -> FineTuneClient:
        """The client of `provider`, built on first use and kept."""
        from unitune.client import FineTuneClient

        with self._guard:
            if provider not in self._clients:
                self._clients[provider] = FineTuneClient(provider, config=self.unitune_config)
            return self._clients[provider]

    def lock(self, *parts: str) -> threading.Lock:
        """One lock per name (a job's result file, an owner's idempotency key)."""
        with self._guard:
            return self._locks.setdefault(parts, threading.Lock())

    def authorize(self, request: Request) -> str:
        """The owner the request acts for; 401 without a known key (when there are keys); without
        keys, only a loopback Host is answered (a DNS-rebinding page cannot reach the gateway)."""
        if not self._keys:
            from unitune.evaluate._review import _host_name

            if not _is_loopback(_host_name(request.headers.get("host", ""))):
                raise ServeError(
                    403, "This server answers on its loopback address only.", code="forbidden_host"
                )
            return "local"
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ServeError(
                401, "You didn't provide an API key. Send it as 'Authorization: Bearer KEY'.",
                code="missing_api_key", headers={"WWW-Authenticate": "Bearer"},
            )  # fmt: skip
        sent = token.strip().encode()
        owner = None
        for key, who in self._keys:  # every key compared, in constant time: no timing tells which
            if hmac.compare_digest(sent, key):
                owner = who
        if owner is None:
            raise ServeError(
                401, "Incorrect API key provided.", code="invalid_api_key",
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )  # fmt: skip
        return owner

    # -- files ----------------------------------------------------------------------------------

    def create_file(self, call: _Call) -> dict[str, Any]:
        """POST /v1/files."""
        fields = _form(call.body, call.headers.get("content-type", ""))
        purpose = fields.get("purpose", (None, b""))[1].decode("utf-8", "replace").strip()
        if not purpose:
            raise _bad(
                "Missing required parameter: 'purpose'.", param="purpose", code="missing_required_parameter"
            )
        if purpose != "fine-tune":
            raise _bad(
                f"This gateway keeps files for fine-tuning only: purpose must be 'fine-tune', not {purpose!r}.",
                param="purpose",
            )  # fmt: skip
        filename, data = fields.get("file", (None, b""))
        if filename is None:
            raise _bad(
                "Missing required parameter: 'file' (a file part).",
                param="file",
                code="missing_required_parameter",
            )
        if not data:
            raise _bad("The file is empty.", param="file")
        return _file_view(self.store.add_file(call.owner, purpose, Path(filename).name or "file", data))

    def list_files(self, call: _Call) -> dict[str, Any]:
        """GET /v1/files."""
        order = call.query.get("order", "desc")
        if order not in ("asc", "desc"):
            raise _bad("Invalid value for 'order': expected 'asc' or 'desc'.", param="order")
        rows, more = self.store.list_files(
            call.owner, purpose=call.query.get("purpose"), after=call.query.get("after"),
            limit=_limit(call.query, 10000, 10000), newest_first=order == "desc",
        )  # fmt: skip
        data = [_file_view(r) for r in rows]
        first, last = (data[0]["id"], data[-1]["id"]) if data else (None, None)
        return {"object": "list", "data": data, "first_id": first, "last_id": last, "has_more": more}

    def _file(self, call: _Call) -> FileRow:
        row = self.store.get_file(call.owner, call.params["file_id"])
        if row is None:
            raise _not_found("file", call.params["file_id"])
        return row

    def get_file(self, call: _Call) -> dict[str, Any]:
        """GET /v1/files/{file_id}."""
        return _file_view(self._file(call))

    def delete_file(self, call: _Call) -> dict[str, Any]:
        """DELETE /v1/files/{file_id}."""
        if not self.store.delete_file(call.owner, call.params["file_id"]):
            raise _not_found("file", call.params["file_id"])
        return {"id": call.params["file_id"], "object": "file", "deleted": True}

    def file_content(self, call: _Call) -> _Raw:
        """GET /v1/files/{file_id}/content: the owner's own bytes (result files, and the data sent)."""
        row = self._file(call)
        path = self.store.file_path(row.id)
        if not path.is_file():
            raise _not_found("file", row.id)
        media = "text/csv" if row.purpose == "fine-tune-results" else "application/octet-stream"
        return _Raw(path.read_bytes(), media, row.filename)

    # -- uploads --------------------------------------------------------------------------------

    def create_upload(self, call: _Call) -> dict[str, Any]:
        """POST /v1/uploads."""
        body = _json_object(call.body)
        filename, purpose, mime_type = (_required(body, n) for n in ("filename", "purpose", "mime_type"))
        size = body.get("bytes")
        if purpose != "fine-tune":
            raise _bad(f"This gateway takes uploads for fine-tuning only, not {purpose!r}.", param="purpose")
        if (
            isinstance(size, bool)
            or not isinstance(size, int)
            or not 1 <= size <= self.config.max_upload_bytes
        ):
            raise _bad(
                f"Invalid value for 'bytes': a whole number from 1 to {self.config.max_upload_bytes}.",
                param="bytes",
            )
        return _upload_view(self.store.add_upload(call.owner, Path(filename).name, purpose, size, mime_type))

    def _pending_upload(self, call: _Call) -> UploadRow:
        row = self.store.get_upload(call.owner, call.params["upload_id"])
        if row is None:
            raise _not_found("upload", call.params["upload_id"])
        if row.status != "pending":
            raise _bad(
                f"Upload {row.id} is {row.status}; only a pending upload takes this.",
                code="upload_not_pending",
            )
        if row.expires_at < time.time():
            raise _bad(f"Upload {row.id} has expired.", code="upload_expired")
        return row

    def add_part(self, call: _Call) -> dict[str, Any]:
        """POST /v1/uploads/{upload_id}/parts (multipart, field `data`)."""
        row = self._pending_upload(call)
        fields = _form(call.body, call.headers.get("content-type", ""))
        if "data" not in fields:
            raise _bad("Missing required parameter: 'data'.", param="data", code="missing_required_parameter")
        part = self.store.add_part(row.id, fields["data"][1])
        return {"id": part.id, "object": "upload.part", "created_at": part.created_at, "upload_id": row.id}

    def complete_upload(self, call: _Call) -> dict[str, Any]:
        """POST /v1/uploads/{upload_id}/complete: the parts, in `part_ids` order, become one file."""
        row = self._pending_upload(call)
        body = _json_object(call.body)
        ids = body.get("part_ids")
        if not isinstance(ids, list) or not ids or any(not isinstance(i, str) for i in ids):
            raise _bad("Invalid value for 'part_ids': a non-empty list of part ids.", param="part_ids")
        parts = self.store.parts(row.id)
        missing = [i for i in ids if i not in parts]
        if missing:
            raise _bad(f"Part {missing[0]!r} is not a part of upload {row.id}.", param="part_ids")
        total = sum(parts[i].bytes for i in ids)
        if total != row.bytes:
            raise _bad(
                f"The parts hold {total} bytes; the upload was created for {row.bytes}.", param="part_ids"
            )
        digest = hashlib.md5(usedforsecurity=False)
        assembled = self.store.files_dir / f"{row.id}.assembling"
        with assembled.open("wb") as out:
            for part_id in ids:
                data = self.store.part_path(part_id).read_bytes()
                digest.update(data)
                out.write(data)
        md5 = body.get("md5")
        if md5 is not None and md5 != digest.hexdigest():
            assembled.unlink(missing_ok=True)
            raise _bad("The md5 given does not match the bytes uploaded.", param="md5")
        file = self.store.add_file(call.owner, row.purpose, row.filename, assembled)
        if not self.store.end_upload(row.id, "completed", file.id):  # another complete won the race
            self.store.delete_file(call.owner, file.id)
            raise _bad(f"Upload {row.id} is no longer pending.", code="upload_not_pending")
        done = self.store.get_upload(call.owner, row.id)
        assert done is not None
        return _upload_view(done, file)

    def cancel_upload(self, call: _Call) -> dict[str, Any]:
        """POST /v1/uploads/{upload_id}/cancel."""
        row = self._pending_upload(call)
        self.store.end_upload(row.id, "cancelled")
        done = self.store.get_upload(call.owner, row.id)
        assert done is not None
        return _upload_view(done)

    # -- jobs -----------------------------------------------------------------------------------

    def route_model(self, model: str) -> tuple[str, str]:
        """(provider, model) for an OpenAI model name: the mapping, a `provider:` prefix, or the
        default provider when its catalog knows the model (or it has no catalog entry)."""
        from unitune.providers.registry import list_providers

        target = self.config.models.get(model)
        if target is not None:
            provider, _, name = target.partition(":")
            return provider, name
        prefix, sep, rest = model.partition(":")
        if sep and rest and prefix in {p.name for p in list_providers()}:
            return prefix, rest
        catalog = self.client(self.provider).catalog
        if self.provider in catalog.providers and catalog.find(self.provider, model) is None:
            mapped = ", ".join(sorted(self.config.models)) or "none"
            raise _bad(
                f"Model {model} is not available for fine-tuning on this gateway or does not exist. "
                f"Mapped models: {mapped}; or name one as PROVIDER:MODEL.",
                param="model", code="model_not_available",
            )  # fmt: skip
        return self.provider, model

    def _training_file(self, owner: str, file_id: str | None, param: str) -> FileRow | None:
        if file_id is None:
            return None
        row = self.store.get_file(owner, file_id)
        if row is None:
            raise _bad(f"Invalid file ID: {file_id!r} does not exist.", param=param, code="invalid_file")
        if row.purpose != "fine-tune":
            raise _bad(
                f"File {file_id} has purpose {row.purpose!r}, not 'fine-tune'.",
                param=param,
                code="invalid_file",
            )
        return row

    def create_job(self, call: _Call) -> dict[str, Any]:
        """POST /v1/fine_tuning/jobs."""
        body = _json_object(call.body)
        model = _required(body, "model")
        training = self._training_file(call.owner, _required(body, "training_file"), "training_file")
        validation = self._training_file(call.owner, _string(body, "validation_file"), "validation_file")
        assert training is not None
        method, hp, method_view, shown = _method(body)
        request = {
            "model": model, "training_file": training.id, "validation_file": validation.id if validation else None,
            "method": method_view, "hyperparameters": shown, "suffix": _string(body, "suffix"),
            "seed": body.get("seed"), "metadata": _metadata(body),
        }  # fmt: skip
        provider, target = self.route_model(model)
        key = call.headers.get("idempotency-key")
        if not key:
            return self._create(call.owner, provider, target, request, method, hp, None)
        with self.lock("key", call.owner, key):
            existing = self.store.job_by_key(call.owner, key)
            if existing is None:
                return self._create(call.owner, provider, target, request, method, hp, key)
        if existing.request != request:
            raise ServeError(
                409, "This Idempotency-Key was already used for a different job. Use a new key.",
                code="idempotency_key_reused",
            )  # fmt: skip
        return self._view(existing)

    def _create(
        self,
        owner: str,
        provider: str,
        model: str,
        request: dict[str, Any],
        method: TrainingMethod,
        hp: Hyperparameters,
        key: str | None,
    ) -> dict[str, Any]:
        client = self.client(provider)
        # The provider's key is scoped to the owner, so two tenants' equal keys never meet there.
        provider_key = hashlib.sha256(f"{owner}\0{key}".encode()).hexdigest()[:40] if key else None
        training_path = self.store.file_path(request["training_file"])
        validation_path = (
            self.store.file_path(request["validation_file"]) if request["validation_file"] else None
        )
        try:
            job = client.create_job(
                model=model, training_data=training_path, validation_data=validation_path,
                hyperparameters=hp, method=method, suffix=request["suffix"], metadata=request["metadata"],
                idempotency_key=f"gw-{provider_key}" if provider_key else None,
                max_cost_usd=self.config.max_cost_usd,
            )  # fmt: skip
        except ValidationFailed as e:
            raise _refused_data(e, request, training_path) from None
        except Exception as e:
            raise _provider_error(e) from None
        # Recorded only once the provider made the job: a refused create leaves no row.
        row = self.store.add_job(
            owner=owner, provider=provider, provider_job_id=job.id, idempotency_key=key, request=request,
            created_at=_timestamp(job.created_at) or int(time.time()), last_seen={},
        )  # fmt: skip
        view = _job_view(row, job)
        self.store.set_seen(row.id, view)
        return view

    def _job_row(self, call: _Call) -> JobRow:
        row = self.store.get_job(call.owner, call.params["job_id"])
        if row is None:
            raise _not_found("fine-tuning job", call.params["job_id"])
        return row

    def _view(self, row: JobRow, job: Job | None = None) -> dict[str, Any]:
        """The job as OpenAI reports it, read from the provider now (or `job`, just returned by it);
        a job that has just succeeded gets its result file first."""
        client = self.client(row.provider)
        if job is None:
            try:
                job = client.get_job(row.provider_job_id)
            except Exception as e:
                raise _provider_error(e) from None
        if job.status is JobStatus.SUCCEEDED and row.result_file is None:
            row = self._attach_results(row, client)
        view = _job_view(row, job)
        seen = row.last_seen or {}
        if (seen.get("status"), seen.get("fine_tuned_model"), seen.get("result_files")) != (
            view["status"],
            view["fine_tuned_model"],
            view["result_files"],
        ):
            self.store.set_seen(row.id, view)  # written when it changed, not on every poll
        return view

    def _attach_results(self, row: JobRow, client: FineTuneClient) -> JobRow:
        with self.lock("results", row.id):
            fresh = self.store.get_job(row.owner, row.id)
            if fresh is None or fresh.result_file is not None:
                return fresh or row
            try:
                metrics = client.metrics(row.provider_job_id)
            except (UnsupportedFeatureError, ProviderError) as e:
                logger.warning("no result file for job %s: its metrics cannot be read (%s)", row.id, e)
                return fresh
            file = self.store.add_file(
                row.owner, "fine-tune-results", "step_metrics.csv", _metrics_csv(metrics)
            )
            if not self.store.set_result_file(row.id, file.id):
                self.store.delete_file(row.owner, file.id)
            found = self.store.get_job(row.owner, row.id)
            assert found is not None
            return found

    def list_jobs(self, call: _Call) -> dict[str, Any]:
        """GET /v1/fine_tuning/jobs (newest first; `metadata[k]=v` filters)."""
        limit = _limit(call.query, 20, 100)
        wanted = {
            k[len("metadata[") : -1]: v
            for k, v in call.query_items
            if k.startswith("metadata[") and k.endswith("]")
        }
        page: list[JobRow] = []
        more = False
        for row in self.store.list_jobs(call.owner, after=call.query.get("after")):
            metadata = row.request.get("metadata") or {}
            if all(metadata.get(k) == v for k, v in wanted.items()):
                if len(page) == limit:
                    more = True
                    break
                page.append(row)
        return {"object": "list", "data": [self._listed(r) for r in page], "has_more": more}

    def _listed(self, row: JobRow) -> dict[str, Any]:
        try:
            return self._view(row)
        except ServeError as e:
            if row.last_seen:  # the provider cannot be read now: the list shows what was last seen
                logger.warning("job %s listed as last seen: %s", row.id, e.message)
                return row.last_seen
            raise

    def get_job(self, call: _Call) -> dict[str, Any]:
        """GET /v1/fine_tuning/jobs/{job_id}."""
        return self._view(self._job_row(call))

    def _act(self, call: _Call, action: str) -> dict[str, Any]:
        row = self._job_row(call)
        client = self.client(row.provider)
        operation: Callable[[str], Job] = getattr(client, f"{action}_job")
        try:
            job = operation(row.provider_job_id)
        except Exception as e:
            raise _provider_error(e) from None
        return self._view(row, job)

    def cancel_job(self, call: _Call) -> dict[str, Any]:
        """POST /v1/fine_tuning/jobs/{job_id}/cancel."""
        return self._act(call, "cancel")

    def pause_job(self, call: _Call) -> dict[str, Any]:
        """POST /v1/fine_tuning/jobs/{job_id}/pause."""
        return self._act(call, "pause")

    def resume_job(self, call: _Call) -> dict[str, Any]:
        """POST /v1/fine_tuning/jobs/{job_id}/resume."""
        return self._act(call, "resume")

    def list_events(self, call: _Call) -> dict[str, Any]:
        """GET /v1/fine_tuning/jobs/{job_id}/events (newest first)."""
        row = self._job_row(call)
        limit = _limit(call.query, 20, 1000)
        try:
            events = self.client(row.provider).events(row.provider_job_id)
        except Exception as e:
            raise _provider_error(e) from None
        data, more = _page(_event_views(row, events), call.query.get("after"), limit)
        return {"object": "list", "data": data, "has_more": more}

    def list_checkpoints(self, call: _Call) -> dict[str, Any]:
        """GET /v1/fine_tuning/jobs/{job_id}/checkpoints (newest first)."""
        row = self._job_row(call)
        limit = _limit(call.query, 10, 100)
        try:
            checkpoints = self.client(row.provider).checkpoints(row.provider_job_id)
        except Exception as e:
            raise _provider_error(e) from None
        views = [_checkpoint_view(row, c) for c in sorted(checkpoints, key=lambda c: c.step, reverse=True)]
        data, more = _page(views, call.query.get("after"), limit)
        first, last = (data[0]["id"], data[-1]["id"]) if data else (None, None)
        return {"object": "list", "data": data, "first_id": first, "last_id": last, "has_more": more}


def _refused_data(e: ValidationFailed, request: Mapping[str, Any], training_path: Path) -> ServeError:
    """A 400 naming the file and the line of each of the first problems (not this machine's paths)."""
    errors = list(getattr(e.report, "errors", []) or [])
    if not errors:
        return _bad(str(e), param="training_file", code="invalid_training_file")
    first = errors[0]
    is_training = first.path is None or Path(first.path) == training_path
    param = "training_file" if is_training else "validation_file"
    shown = [
        f"line {i.line}: [{i.code}] {i.message}" if i.line is not None else f"[{i.code}] {i.message}"
        for i in errors[:3]
    ]
    more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
    return _bad(
        f"The {param.replace('_', ' ')} {request[param]} fails the provider's checks; no job was created. "
        + "; ".join(shown) + more + ".",
        param=param, code=f"invalid_{param}",
    )  # fmt: skip


# -- the app -------------------------------------------------------------------------------------------

Handler = Callable[[_Call], "dict[str, Any] | _Raw"]


async def _read(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    too_large = ServeError(413, f"The request body is over {limit} bytes, the most this gateway accepts.",
                           code="request_too_large")  # fmt: skip
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large
    size, chunks = 0, []
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


def _routes(state: GatewayState) -> Iterator[tuple[str, str, Handler, int]]:
    """(method, path, handler, body limit) of every route."""
    small, large = 1 * _MiB, state.config.max_file_bytes + _MiB  # a form's own bytes on top of the file's
    files, jobs, uploads = "/v1/files", "/v1/fine_tuning/jobs", "/v1/uploads"
    yield "POST", files, state.create_file, large
    yield "GET", files, state.list_files, 0
    yield "GET", files + "/{file_id}", state.get_file, 0
    yield "DELETE", files + "/{file_id}", state.delete_file, 0
    yield "GET", files + "/{file_id}/content", state.file_content, 0
    yield "POST", uploads, state.create_upload, small
    yield "POST", uploads + "/{upload_id}/parts", state.add_part, large
    yield "POST", uploads + "/{upload_id}/complete", state.complete_upload, small
    yield "POST", uploads + "/{upload_id}/cancel", state.cancel_upload, small
    yield "POST", jobs, state.create_job, small
    yield "GET", jobs, state.list_jobs, 0
    yield "GET", jobs + "/{job_id}", state.get_job, 0
    yield "POST", jobs + "/{job_id}/cancel", state.cancel_job, small
    yield "POST", jobs + "/{job_id}/pause", state.pause_job, small
    yield "POST", jobs + "/{job_id}/resume", state.resume_job, small
    yield "GET", jobs + "/{job_id}/events", state.list_events, 0
    yield "GET", jobs + "/{job_id}/checkpoints", state.list_checkpoints, 0


def create_gateway_app(config: GatewayConfig) -> FastAPI:
    """The OpenAI fine-tuning API over unitune for `config` (see the module docstring).

    `app.state.unitune` is the `GatewayState`; its `close()` closes the provider clients.
    """
    _require("fastapi")
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException
    from starlette.responses import Response as PlainResponse

    state = GatewayState(config)
    app = FastAPI(title="unitune gateway", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.unitune = state

    def endpoint(handler: Handler, limit: int) -> Callable[[Request], Awaitable[Response]]:
        async def run(request: Request) -> Response:
            try:
                owner = state.authorize(request)
                body = await _read(request, limit) if limit else b""
                call = _Call(
                    owner=owner, params=dict(request.path_params), query=dict(request.query_params),
                    query_items=tuple(request.query_params.multi_items()), headers=dict(request.headers), body=body,
                )  # fmt: skip
                # The handlers block (SQLite, the provider's SDK): off the event loop.
                answer = await run_in_threadpool(handler, call)
            except ServeError as e:
                return JSONResponse(e.body(), status_code=e.status, headers=e.headers)
            except Exception:
                logger.exception("%s %s failed", request.method, request.url.path)
                failure = ServeError(500, "The gateway had an error while processing your request; its log says more.",
                                     type="server_error")  # fmt: skip
                return JSONResponse(failure.body(), status_code=500)
            if isinstance(answer, _Raw):
                disposition = f'attachment; filename="{answer.filename}"'
                return PlainResponse(answer.content, media_type=answer.media_type,
                                     headers={"Content-Disposition": disposition})  # fmt: skip
            return JSONResponse(answer)

        return run

    async def http_error(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        message = f"Unknown request URL: {request.method} {request.url.path}." if status == 404 else str(exc)
        if status == 405:
            message = f"Method {request.method} is not allowed on {request.url.path}."
        return JSONResponse(ServeError(status, message).body(), status_code=status)

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "provider": state.provider})

    app.add_route("/health", health, methods=["GET"])
    for method, path, handler, limit in _routes(state):
        app.add_route(path, endpoint(handler, limit), methods=[method])
    app.add_exception_handler(HTTPException, http_error)
    return app


# -- serving -------------------------------------------------------------------------------------------


class GatewayServer:
    """The gateway served by uvicorn from a background thread; a context manager that stops it.

    `url` is the base URL for an OpenAI client (`.../v1`), `port` the port really bound.
    """

    def __init__(
        self, server: uvicorn.Server, thread: threading.Thread, sock: socket.socket, app: FastAPI
    ) -> None:
        self._server = server
        self._thread = thread
        self._socket = sock
        self.app = app
        self.state: GatewayState = app.state.unitune
        address = sock.getsockname()
        self.host: str = address[0]
        self.port: int = address[1]
        shown = f"[{self.host}]" if ":" in self.host else self.host
        self.url = f"http://{shown}:{self.port}/v1"

    def wait(self) -> None:
        """Block until the server stops; Ctrl-C raises KeyboardInterrupt here."""
        while self._thread.is_alive():
            self._thread.join(0.5)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving, wait for the thread and close the provider clients."""
        self._server.should_exit = True
        self._thread.join(timeout)
        self._socket.close()
        self.state.close()

    def __enter__(self) -> GatewayServer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def start_gateway(config: GatewayConfig) -> GatewayServer:
    """Serve `create_gateway_app(config)` on `config.host:config.port` from a background thread and
    return once it answers. Port 0 takes any free port (`.port` says which)."""
    uvicorn = _require("uvicorn")
    from unitune.evaluate._review import _bind

    app = create_gateway_app(config)
    try:
        sock = _bind(config.host, config.port)
    except BaseException:
        app.state.unitune.close()
        raise
    # log_config None: leave the host program's logging as it is.
    server = uvicorn.Server(
        uvicorn.Config(app, log_config=None, log_level="warning", access_log=False, lifespan="off",
                       timeout_graceful_shutdown=5)
    )  # fmt: skip
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="unitune-gateway", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            sock.close()
            app.state.unitune.close()
            raise ConfigurationError(
                f"The gateway on {config.host}:{sock.getsockname()[1]} did not start.",
                fix="Run again with another --port; uvicorn's log above says why.",
            )
        time.sleep(0.01)
    return GatewayServer(server, thread, sock, app)
