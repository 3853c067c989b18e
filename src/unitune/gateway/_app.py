"""`unitune gateway`: OpenAI's fine-tuning API served over any unitune provider.

Code written against `client.fine_tuning.jobs.create(...)` in the `openai` SDK keeps working when
its `base_url` points here. The paths, fields, status words, pagination (`after`, `limit`,
`has_more`) and error bodies (`{"error": {"message", "type", "param", "code"}}`) are OpenAI's:

- `/v1/files`: multipart upload (purpose `fine-tune`), list, retrieve, delete, content;
- `/v1/uploads` (create, parts, complete, cancel) for files larger than one request;
- `/v1/fine_tuning/jobs`: create, list (with `metadata[k]=v` filters), retrieve, cancel, pause,
  resume, events, checkpoints. A succeeded job has its `fine_tuned_model` and a result file: the
  step metrics as a CSV in OpenAI's columns, downloadable through the Files API.
- `/v1/models` and `/v1/chat/completions` (no streaming) for the key's own tuned models and their
  checkpoints, answered by the provider that trained them (`unitune serve` serves loaded models).

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

FastAPI and uvicorn are the `serve` extra: imported only when an app is built. OpenAI's shapes
(request fields, objects, errors) are in `_wire`, the SQLite state in `_store`; this module is the
routes, tenancy and the calls to `FineTuneClient`.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

from unitune._asgi import ThreadedServer
from unitune._log import get_logger
from unitune.errors import (
    ConfigurationError,
    ProviderError,
    UnituneError,
    UnsupportedFeatureError,
    ValidationFailed,
)
from unitune.gateway._store import FileRow, GatewayStore, JobRow, UploadRow
from unitune.gateway._wire import (
    Call,
    Raw,
    bad_request,
    chat_messages,
    chat_view,
    checkpoint_view,
    event_views,
    file_view,
    form_fields,
    job_view,
    json_object,
    metrics_csv,
    model_card,
    not_found,
    page_after,
    page_limit,
    parse_metadata,
    parse_method,
    provider_error,
    refused_data,
    required_field,
    string_field,
    timestamp,
    upload_view,
)
from unitune.serve._app import _is_loopback, _require
from unitune.serve._backends import ServeError
from unitune.types import Hyperparameters, Job, JobStatus, TrainingMethod

if TYPE_CHECKING:
    from fastapi import FastAPI
    from starlette.requests import Request
    from starlette.responses import Response

    from unitune.client import FineTuneClient
    from unitune.config import UnituneConfig

__all__ = ["GatewayConfig", "GatewayKey", "GatewayServer", "create_gateway_app", "start_gateway"]

logger = get_logger("unitune.gateway")

_MiB = 1024 * 1024


@dataclass(frozen=True)
class GatewayKey:
    """One tenant's API key and its own budget cap per job.

    One tenant's API key and its own budget cap per job (`max_cost_usd`, over the gateway's:
    the lower of the two holds).
    """

    key: SecretStr = field(repr=False)
    max_cost_usd: float | None = None

    def __post_init__(self) -> None:
        if isinstance(self.key, str):
            object.__setattr__(self, "key", SecretStr(self.key))
        if not isinstance(self.key, SecretStr) or not self.key.get_secret_value().strip():
            raise ConfigurationError("An API key is empty.", fix="Pass non-empty --api-key values.")
        _check_cap(self.max_cost_usd)


def _check_cap(cap: float | None) -> None:
    if cap is not None and (isinstance(cap, bool) or not isinstance(cap, (int, float)) or not cap >= 0):
        raise ConfigurationError(f"max_cost_usd must be a number of dollars (0 or more), not {cap!r}.")


@dataclass(frozen=True)
class GatewayConfig:
    """What the gateway serves and how.

    `provider`: the provider jobs run on unless a mapping or a `provider:` prefix says otherwise
    (None: the config's provider). `api_keys`: the keys clients send as `Authorization: Bearer KEY`,
    each a tenant with its own files and jobs (a `GatewayKey` also carries the tenant's budget cap);
    required unless `host` is loopback. `models`: OpenAI
    model names → `provider:model`. `home`: the unitune home (the gateway keeps its state in
    `home/gateway`; None: the config's). `max_cost_usd`: each job's budget cap (None: none).
    `max_file_bytes`: the largest body of a file upload or an upload part; `max_upload_bytes`: the
    largest file the Uploads API assembles. `unitune_config`: the settings providers are built
    with (None: `unitune.toml` as found from the working directory).
    """

    provider: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    api_keys: tuple[SecretStr | GatewayKey, ...] = field(default=(), repr=False)
    models: Mapping[str, str] = field(default_factory=dict)
    home: Path | None = None
    max_cost_usd: float | None = None
    max_file_bytes: int = 64 * _MiB
    max_upload_bytes: int = 8192 * _MiB
    unitune_config: UnituneConfig | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        keys = tuple(k if isinstance(k, GatewayKey) else GatewayKey(k) for k in self.api_keys)
        object.__setattr__(self, "api_keys", keys)
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
        _check_cap(self.max_cost_usd)

    @property
    def keys(self) -> tuple[GatewayKey, ...]:
        """The tenants' keys, each as a `GatewayKey`."""
        return tuple(k if isinstance(k, GatewayKey) else GatewayKey(k) for k in self.api_keys)


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
        self._keys: list[tuple[bytes, str]] = []
        self._caps: dict[str, float | None] = {}
        for tenant in config.keys:
            secret = tenant.key.get_secret_value().encode()
            owner = hashlib.sha256(b"unitune-gateway\0" + secret).hexdigest()[:32]
            self._keys.append((secret, owner))
            self._caps[owner] = tenant.max_cost_usd
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
                try:
                    self._clients[provider] = FineTuneClient(provider, config=self.unitune_config)
                except UnituneError as e:
                    # Its SDK missing, its key unset: the gateway's setup, not the request, is at fault.
                    logger.error("provider %s cannot be used: %s", provider, e)
                    raise ServeError(
                        502, f"The gateway cannot use the provider {provider!r}: {e}",
                        type="server_error", code="provider_unavailable",
                    ) from None  # fmt: skip
            return self._clients[provider]

    def lock(self, *parts: str) -> threading.Lock:
        """One lock per name (a job's result file, an owner's idempotency key)."""
        with self._guard:
            return self._locks.setdefault(parts, threading.Lock())

    def budget(self, owner: str) -> float | None:
        """The budget cap per job of `owner`: the lower of its key's and the gateway's (None: none)."""
        caps = [c for c in (self._caps.get(owner), self.config.max_cost_usd) if c is not None]
        return min(caps) if caps else None

    def authorize(self, request: Request) -> str:
        """The owner the request acts for, or a 401.

        The owner the request acts for; 401 without a known key (when there are keys); without
        keys, only a loopback Host is answered (a DNS-rebinding page cannot reach the gateway).
        """
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

    def create_file(self, call: Call) -> dict[str, Any]:
        """POST /v1/files."""
        fields = form_fields(call.body, call.headers.get("content-type", ""))
        purpose = fields.get("purpose", (None, b""))[1].decode("utf-8", "replace").strip()
        if not purpose:
            raise bad_request(
                "Missing required parameter: 'purpose'.", param="purpose", code="missing_required_parameter"
            )
        if purpose != "fine-tune":
            raise bad_request(
                f"This gateway keeps files for fine-tuning only: purpose must be 'fine-tune', not {purpose!r}.",
                param="purpose",
            )  # fmt: skip
        filename, data = fields.get("file", (None, b""))
        if filename is None:
            raise bad_request(
                "Missing required parameter: 'file' (a file part).",
                param="file",
                code="missing_required_parameter",
            )
        if not data:
            raise bad_request("The file is empty.", param="file")
        return file_view(self.store.add_file(call.owner, purpose, Path(filename).name or "file", data))

    def list_files(self, call: Call) -> dict[str, Any]:
        """GET /v1/files."""
        order = call.query.get("order", "desc")
        if order not in ("asc", "desc"):
            raise bad_request("Invalid value for 'order': expected 'asc' or 'desc'.", param="order")
        rows, more = self.store.list_files(
            call.owner, purpose=call.query.get("purpose"), after=call.query.get("after"),
            limit=page_limit(call.query, 10000, 10000), newest_first=order == "desc",
        )  # fmt: skip
        data = [file_view(r) for r in rows]
        first, last = (data[0]["id"], data[-1]["id"]) if data else (None, None)
        return {"object": "list", "data": data, "first_id": first, "last_id": last, "has_more": more}

    def _file(self, call: Call) -> FileRow:
        row = self.store.get_file(call.owner, call.params["file_id"])
        if row is None:
            raise not_found("file", call.params["file_id"])
        return row

    def get_file(self, call: Call) -> dict[str, Any]:
        """GET /v1/files/{file_id}."""
        return file_view(self._file(call))

    def delete_file(self, call: Call) -> dict[str, Any]:
        """DELETE /v1/files/{file_id}."""
        if not self.store.delete_file(call.owner, call.params["file_id"]):
            raise not_found("file", call.params["file_id"])
        return {"id": call.params["file_id"], "object": "file", "deleted": True}

    def file_content(self, call: Call) -> Raw:
        """GET /v1/files/{file_id}/content: the owner's own bytes (result files, and the data sent)."""
        row = self._file(call)
        path = self.store.file_path(row.id)
        if not path.is_file():
            raise not_found("file", row.id)
        media = "text/csv" if row.purpose == "fine-tune-results" else "application/octet-stream"
        return Raw(path, media, row.filename)

    # -- uploads --------------------------------------------------------------------------------

    def create_upload(self, call: Call) -> dict[str, Any]:
        """POST /v1/uploads."""
        body = json_object(call.body)
        filename, purpose, mime_type = (required_field(body, n) for n in ("filename", "purpose", "mime_type"))
        size = body.get("bytes")
        if purpose != "fine-tune":
            raise bad_request(
                f"This gateway takes uploads for fine-tuning only, not {purpose!r}.", param="purpose"
            )
        if (
            isinstance(size, bool)
            or not isinstance(size, int)
            or not 1 <= size <= self.config.max_upload_bytes
        ):
            raise bad_request(
                f"Invalid value for 'bytes': a whole number from 1 to {self.config.max_upload_bytes}.",
                param="bytes",
            )
        return upload_view(self.store.add_upload(call.owner, Path(filename).name, purpose, size, mime_type))

    def _pending_upload(self, call: Call) -> UploadRow:
        row = self.store.get_upload(call.owner, call.params["upload_id"])
        if row is None:
            raise not_found("upload", call.params["upload_id"])
        if row.status != "pending":
            raise bad_request(
                f"Upload {row.id} is {row.status}; only a pending upload takes this.",
                code="upload_not_pending",
            )
        if row.expires_at < time.time():
            raise bad_request(f"Upload {row.id} has expired.", code="upload_expired")
        return row

    def add_part(self, call: Call) -> dict[str, Any]:
        """POST /v1/uploads/{upload_id}/parts (multipart, field `data`)."""
        row = self._pending_upload(call)
        fields = form_fields(call.body, call.headers.get("content-type", ""))
        if "data" not in fields:
            raise bad_request(
                "Missing required parameter: 'data'.", param="data", code="missing_required_parameter"
            )
        data = fields["data"][1]
        held = sum(p.bytes for p in self.store.parts(row.id).values())
        if held + len(data) > row.bytes:  # parts past the declared size would only fill the disk
            raise bad_request(
                f"This part would bring upload {row.id} to {held + len(data)} bytes; it was created "
                f"for {row.bytes}.", param="data",
            )  # fmt: skip
        part = self.store.add_part(row.id, data)
        return {"id": part.id, "object": "upload.part", "created_at": part.created_at, "upload_id": row.id}

    def complete_upload(self, call: Call) -> dict[str, Any]:
        """POST /v1/uploads/{upload_id}/complete: the parts, in `part_ids` order, become one file."""
        row = self._pending_upload(call)
        body = json_object(call.body)
        ids = body.get("part_ids")
        if not isinstance(ids, list) or not ids or any(not isinstance(i, str) for i in ids):
            raise bad_request("Invalid value for 'part_ids': a non-empty list of part ids.", param="part_ids")
        parts = self.store.parts(row.id)
        missing = [i for i in ids if i not in parts]
        if missing:
            raise bad_request(f"Part {missing[0]!r} is not a part of upload {row.id}.", param="part_ids")
        total = sum(parts[i].bytes for i in ids)
        if total != row.bytes:
            raise bad_request(
                f"The parts hold {total} bytes; the upload was created for {row.bytes}.", param="part_ids"
            )
        digest = hashlib.md5(usedforsecurity=False)
        assembled = self.store.files_dir / f"{row.id}.assembling"
        with assembled.open("wb") as out:
            for part_id in ids:
                with self.store.part_path(part_id).open("rb") as source:
                    while chunk := source.read(_MiB):
                        digest.update(chunk)
                        out.write(chunk)
        md5 = body.get("md5")
        if md5 is not None and md5 != digest.hexdigest():
            assembled.unlink(missing_ok=True)
            raise bad_request("The md5 given does not match the bytes uploaded.", param="md5")
        file = self.store.add_file(call.owner, row.purpose, row.filename, assembled)
        if not self.store.end_upload(row.id, "completed", file.id):  # another complete won the race
            self.store.delete_file(call.owner, file.id)
            raise bad_request(f"Upload {row.id} is no longer pending.", code="upload_not_pending")
        done = self.store.get_upload(call.owner, row.id)
        assert done is not None
        return upload_view(done, file)

    def cancel_upload(self, call: Call) -> dict[str, Any]:
        """POST /v1/uploads/{upload_id}/cancel."""
        row = self._pending_upload(call)
        self.store.end_upload(row.id, "cancelled")
        done = self.store.get_upload(call.owner, row.id)
        assert done is not None
        return upload_view(done)

    # -- jobs -----------------------------------------------------------------------------------

    def route_model(self, model: str) -> tuple[str, str]:
        """The (provider, model) an OpenAI model name routes to.

        (provider, model) for an OpenAI model name: the mapping, a `provider:` prefix, or the
        default provider when its catalog knows the model (or it has no catalog entry).
        """
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
            raise bad_request(
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
            raise bad_request(
                f"Invalid file ID: {file_id!r} does not exist.", param=param, code="invalid_file"
            )
        if row.purpose != "fine-tune":
            raise bad_request(
                f"File {file_id} has purpose {row.purpose!r}, not 'fine-tune'.",
                param=param,
                code="invalid_file",
            )
        return row

    def create_job(self, call: Call) -> dict[str, Any]:
        """POST /v1/fine_tuning/jobs."""
        body = json_object(call.body)
        model = required_field(body, "model")
        training = self._training_file(call.owner, required_field(body, "training_file"), "training_file")
        validation = self._training_file(call.owner, string_field(body, "validation_file"), "validation_file")
        assert training is not None
        method, hp, method_view, shown = parse_method(body)
        request = {
            "model": model, "training_file": training.id, "validation_file": validation.id if validation else None,
            "method": method_view, "hyperparameters": shown, "suffix": string_field(body, "suffix"),
            "seed": body.get("seed"), "metadata": parse_metadata(body),
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
                max_cost_usd=self.budget(owner),
            )  # fmt: skip
        except ValidationFailed as e:
            raise refused_data(e, request, training_path) from None
        except Exception as e:
            error = provider_error(e)
            # A message that names a stored file names it by its id, not by this machine's path.
            error.message = error.message.replace(str(self.store.files_dir) + os.sep, "")
            raise error from None
        # Recorded only once the provider made the job: a refused create leaves no row.
        row = self.store.add_job(
            owner=owner, provider=provider, provider_job_id=job.id, idempotency_key=key, request=request,
            created_at=timestamp(job.created_at) or int(time.time()), last_seen={},
        )  # fmt: skip
        view = job_view(row, job)
        self.store.set_seen(row.id, view)
        return view

    def _job_row(self, call: Call) -> JobRow:
        row = self.store.get_job(call.owner, call.params["job_id"])
        if row is None:
            raise not_found("fine-tuning job", call.params["job_id"])
        return row

    def _view(self, row: JobRow, job: Job | None = None) -> dict[str, Any]:
        """The job as OpenAI reports it, read from the provider now.

        The job as OpenAI reports it, read from the provider now (or `job`, just returned by it);
        a job that has just succeeded gets its result file first.
        """
        client = self.client(row.provider)
        if job is None:
            try:
                job = client.get_job(row.provider_job_id)
            except Exception as e:
                raise provider_error(e) from None
        if job.status is JobStatus.SUCCEEDED and row.result_file is None:
            row = self._attach_results(row, client)
        view = job_view(row, job)
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
                row.owner, "fine-tune-results", "step_metrics.csv", metrics_csv(metrics)
            )
            if not self.store.set_result_file(row.id, file.id):
                self.store.delete_file(row.owner, file.id)
            found = self.store.get_job(row.owner, row.id)
            assert found is not None
            return found

    def list_jobs(self, call: Call) -> dict[str, Any]:
        """GET /v1/fine_tuning/jobs (newest first; `metadata[k]=v` filters)."""
        limit = page_limit(call.query, 20, 100)
        wanted = {
            k[len("metadata[") : -1]: v
            for k, v in call.query_items
            if k.startswith("metadata[") and k.endswith("]")
        }
        page: list[JobRow] = []
        more = False
        # Without filters one page (and one more row, for has_more) is all that is read.
        rows = self.store.list_jobs(
            call.owner, after=call.query.get("after"), limit=None if wanted else limit + 1
        )
        for row in rows:
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

    def get_job(self, call: Call) -> dict[str, Any]:
        """GET /v1/fine_tuning/jobs/{job_id}."""
        return self._view(self._job_row(call))

    def _act(self, call: Call, action: str) -> dict[str, Any]:
        row = self._job_row(call)
        client = self.client(row.provider)
        operation: Callable[[str], Job] = getattr(client, f"{action}_job")
        try:
            job = operation(row.provider_job_id)
        except Exception as e:
            raise provider_error(e) from None
        return self._view(row, job)

    def cancel_job(self, call: Call) -> dict[str, Any]:
        """POST /v1/fine_tuning/jobs/{job_id}/cancel."""
        return self._act(call, "cancel")

    def pause_job(self, call: Call) -> dict[str, Any]:
        """POST /v1/fine_tuning/jobs/{job_id}/pause."""
        return self._act(call, "pause")

    def resume_job(self, call: Call) -> dict[str, Any]:
        """POST /v1/fine_tuning/jobs/{job_id}/resume."""
        return self._act(call, "resume")

    def list_events(self, call: Call) -> dict[str, Any]:
        """GET /v1/fine_tuning/jobs/{job_id}/events (newest first)."""
        row = self._job_row(call)
        limit = page_limit(call.query, 20, 1000)
        try:
            events = self.client(row.provider).events(row.provider_job_id)
        except Exception as e:
            raise provider_error(e) from None
        data, more = page_after(event_views(row, events), call.query.get("after"), limit)
        return {"object": "list", "data": data, "has_more": more}

    def list_checkpoints(self, call: Call) -> dict[str, Any]:
        """GET /v1/fine_tuning/jobs/{job_id}/checkpoints (newest first)."""
        row = self._job_row(call)
        limit = page_limit(call.query, 10, 100)
        try:
            checkpoints = self.client(row.provider).checkpoints(row.provider_job_id)
        except Exception as e:
            raise provider_error(e) from None
        views = [checkpoint_view(row, c) for c in sorted(checkpoints, key=lambda c: c.step, reverse=True)]
        data, more = page_after(views, call.query.get("after"), limit)
        first, last = (data[0]["id"], data[-1]["id"]) if data else (None, None)
        return {"object": "list", "data": data, "first_id": first, "last_id": last, "has_more": more}

    # -- tuned models -----------------------------------------------------------------------------

    def _tuned(self, owner: str) -> dict[str, JobRow]:
        """`owner`'s tuned models (as their jobs were last seen succeeded) → their jobs."""
        out: dict[str, JobRow] = {}
        for row in self.store.list_jobs(owner, after=None):
            seen = row.last_seen or {}
            if seen.get("status") == "succeeded" and seen.get("fine_tuned_model"):
                out.setdefault(seen["fine_tuned_model"], row)
        return out

    def _owned_model(self, owner: str, model: str) -> JobRow:
        """The job of `owner`'s tuned model `model`, or a 404.

        The job of `owner`'s tuned model `model` (or of one of its checkpoints); 404 otherwise,
        whoever else may own it.
        """
        tuned = self._tuned(owner)
        row = tuned.get(model) or tuned.get(model.partition(":ckpt-step-")[0])
        if row is None:
            raise ServeError(
                404, f"The model '{model}' does not exist or you do not have access to it.",
                param="model", code="model_not_found",
            )  # fmt: skip
        return row

    def list_models(self, call: Call) -> dict[str, Any]:
        """GET /v1/models: this key's tuned models."""
        tuned = self._tuned(call.owner)
        return {"object": "list", "data": [model_card(m, r) for m, r in tuned.items()]}

    def get_model(self, call: Call) -> dict[str, Any]:
        """GET /v1/models/{model}."""
        model = call.params["model"]
        return model_card(model, self._owned_model(call.owner, model))

    def chat(self, call: Call) -> dict[str, Any]:
        """POST /v1/chat/completions with one of this key's tuned models (no streaming)."""
        body = json_object(call.body)
        model = required_field(body, "model")
        if body.get("stream"):
            raise bad_request(
                "Streaming is not supported by the gateway; send stream=false, or serve the model with "
                "`unitune serve`.", param="stream", code="unsupported_parameter",
            )  # fmt: skip
        messages = chat_messages(body)
        row = self._owned_model(call.owner, model)
        params = {k: body[k] for k in ("temperature", "top_p", "stop") if body.get(k) is not None}
        most = body.get("max_completion_tokens") or body.get("max_tokens")
        if most is not None:
            params["max_tokens"] = most
        try:
            answer = self.client(row.provider).chat(model, messages, **params)
        except Exception as e:
            raise provider_error(e) from None
        return chat_view(answer)


# -- the app -------------------------------------------------------------------------------------------

Handler = Callable[[Call], "dict[str, Any] | Raw"]


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
    yield "GET", "/v1/models", state.list_models, 0
    yield "GET", "/v1/models/{model:path}", state.get_model, 0
    yield "POST", "/v1/chat/completions", state.chat, small


def create_gateway_app(config: GatewayConfig) -> FastAPI:
    """The OpenAI fine-tuning API over unitune for `config` (see the module docstring).

    `app.state.unitune` is the `GatewayState`; its `close()` closes the provider clients.
    """
    _require("fastapi")
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException
    from starlette.responses import FileResponse

    state = GatewayState(config)
    app = FastAPI(title="unitune gateway", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.unitune = state

    def endpoint(handler: Handler, limit: int) -> Callable[[Request], Awaitable[Response]]:
        async def run(request: Request) -> Response:
            try:
                owner = state.authorize(request)
                body = await _read(request, limit) if limit else b""
                call = Call(
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
            if isinstance(answer, Raw):
                # Streamed from disk (a file may be gigabytes). The name came from a client: only
                # safe characters reach the header.
                safe = re.sub(r"[^\w.\-]", "_", answer.filename) or "file"
                return FileResponse(answer.path, media_type=answer.media_type, filename=safe)
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


class GatewayServer(ThreadedServer):
    """The gateway served by uvicorn from a background thread; a context manager that stops it.

    `url` is the base URL for an OpenAI client (`.../v1`), `port` the port really bound.
    """

    def __init__(self, uvicorn: Any, app: FastAPI, *, host: str, port: int) -> None:
        self.app = app
        self.state: GatewayState = app.state.unitune
        super().__init__(uvicorn, app, host=host, port=port, name="unitune-gateway", what="The gateway",
                         path="/v1", on_close=self.state.close)  # fmt: skip


def start_gateway(config: GatewayConfig) -> GatewayServer:
    """Serve the gateway from a background thread.

    Serve `create_gateway_app(config)` on `config.host:config.port` from a background thread and
    return once it answers. Port 0 takes any free port (`.port` says which).
    """
    uvicorn = _require("uvicorn")
    app = create_gateway_app(config)
    return GatewayServer(uvicorn, app, host=config.host, port=config.port)
