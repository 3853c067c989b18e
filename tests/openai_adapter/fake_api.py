"""A small, stateful stand-in for OpenAI's fine-tuning API, served to the real `openai` SDK through
`httpx2.MockTransport` (no socket is opened). It keeps files, uploads, jobs, events and
checkpoints, pages lists like the API (newest first, `after` cursor, `has_more`), and can be told
to fail the next requests on a path with any status, headers or a dropped connection. With a
`FaultPlan` (tests/faults) it also fails requests at random, seeded, and lists a new job only
`list_lag` seconds of the plan's clock after it was made.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx2

from tests.faults.plan import FaultPlan

Handler = Callable[[httpx2.Request], httpx2.Response]


@dataclass
class Failure:
    path: str  # a regex matched against "METHOD /path"
    status: int | None  # None: drop the connection
    body: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    times: int = 1
    after_effect: bool = False  # apply the request first, then fail (an answer lost on the way back)


class FakeOpenAI:
    def __init__(self, faults: FaultPlan | None = None) -> None:
        self.faults = faults
        self.files: dict[str, dict[str, Any]] = {}
        self.file_bytes: dict[str, bytes] = {}
        self.uploads: dict[str, dict[str, Any]] = {}
        self.parts: dict[str, bytes] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        self.events: dict[str, list[dict[str, Any]]] = {}
        self.checkpoints: dict[str, list[dict[str, Any]]] = {}
        self.failures: list[Failure] = []
        self.visible_at: dict[str, float] = {}  # when a job shows in lists (the plan's list lag)
        self.requests: list[httpx2.Request] = []
        self._ids = itertools.count(1)
        self._clock = itertools.count(1_700_000_000)

    # -- test controls ---------------------------------------------------------------------------

    def fail(self, path: str, status: int | None, *, message: str = "injected", times: int = 1,
             headers: dict[str, str] | None = None, after_effect: bool = False) -> None:  # fmt: skip
        body = {"error": {"message": message, "type": "invalid_request_error", "code": None, "param": None}}
        self.failures.append(Failure(path, status, body, headers or {}, times, after_effect))

    def set_status(self, job_id: str, status: str, **fields: Any) -> None:
        self.jobs[job_id].update(status=status, **fields)

    def add_event(self, job_id: str, message: str, *, level: str = "info", type: str = "message",
                  data: dict[str, Any] | None = None) -> None:  # fmt: skip
        self.events[job_id].insert(0, {
            "id": f"ftevent-{next(self._ids)}", "object": "fine_tuning.job.event", "created_at": next(self._clock),
            "level": level, "message": message, "type": type, "data": data or {},
        })  # fmt: skip

    def calls(self, method: str, pattern: str) -> list[httpx2.Request]:
        return [r for r in self.requests if r.method == method and re.fullmatch(pattern, r.url.path)]

    def transport(self) -> httpx2.MockTransport:
        if self.faults is None:
            return httpx2.MockTransport(self.handle)
        return httpx2.MockTransport(self.faults.handler(self.handle, httpx2))

    def jobs_with_key(self, key: str) -> list[str]:
        """The jobs tagged with this idempotency key (straight from the state, no faults, no lag)."""
        return [
            j["id"]
            for j in self.jobs.values()
            if (j.get("metadata") or {}).get("unitune_idempotency_key") == key
        ]

    # -- the API -------------------------------------------------------------------------------------

    def _id(self, prefix: str) -> str:
        return f"{prefix}-{next(self._ids):06d}"

    def handle(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(request)
        key = f"{request.method} {request.url.path}"
        for f in self.failures:
            if f.times > 0 and re.fullmatch(f.path, key):
                f.times -= 1
                if f.after_effect:
                    self._route(request)
                if f.status is None:
                    raise httpx2.ConnectError("connection reset by peer", request=request)
                return httpx2.Response(
                    f.status, json=f.body, headers={"x-request-id": "req_fake", **f.headers}
                )
        return self._route(request)

    def _route(self, request: httpx2.Request) -> httpx2.Response:
        path = request.url.path.removeprefix("/v1")
        m = request.method
        routes: list[tuple[str, str, Callable[..., httpx2.Response]]] = [
            ("POST", r"/files", self._create_file),
            ("GET", r"/files", self._list_files),
            ("GET", r"/files/([^/]+)/content", self._file_content),
            ("POST", r"/uploads", self._create_upload),
            ("POST", r"/uploads/([^/]+)/parts", self._add_part),
            ("POST", r"/uploads/([^/]+)/complete", self._complete_upload),
            ("POST", r"/uploads/([^/]+)/cancel", self._cancel_upload),
            ("POST", r"/fine_tuning/jobs", self._create_job),
            ("GET", r"/fine_tuning/jobs", self._list_jobs),
            ("GET", r"/fine_tuning/jobs/([^/]+)", self._get_job),
            ("POST", r"/fine_tuning/jobs/([^/]+)/(cancel|pause|resume)", self._act),
            ("GET", r"/fine_tuning/jobs/([^/]+)/events", self._list_events),
            ("GET", r"/fine_tuning/jobs/([^/]+)/checkpoints", self._list_checkpoints),
            ("POST", r"/chat/completions", self._chat),
        ]
        for method, pattern, fn in routes:
            match = re.fullmatch(pattern, path)
            if method == m and match:
                return fn(request, *match.groups())
        return _error(404, f"no route {m} {path}")

    def _create_file(self, request: httpx2.Request) -> httpx2.Response:
        body = request.read()
        file_id = self._id("file")
        name = re.search(rb'filename="([^"]+)"', body)
        purpose = re.search(rb'name="purpose"\r\n\r\n([^\r]+)', body)
        self.files[file_id] = {
            "id": file_id, "object": "file", "bytes": len(body), "created_at": next(self._clock),
            "filename": name.group(1).decode() if name else "upload.jsonl",
            "purpose": purpose.group(1).decode() if purpose else "?", "status": "processed",
        }  # fmt: skip
        self.file_bytes[file_id] = _multipart_payload(request)
        return httpx2.Response(200, json=self.files[file_id])

    def _list_files(self, request: httpx2.Request) -> httpx2.Response:
        files = sorted(self.files.values(), key=lambda f: f["created_at"], reverse=True)
        purpose = request.url.params.get("purpose")
        return _page([f for f in files if purpose is None or f["purpose"] == purpose], request)

    def _file_content(self, request: httpx2.Request, file_id: str) -> httpx2.Response:
        if file_id not in self.file_bytes:
            return _error(404, f"No such File object: {file_id}")
        return httpx2.Response(200, content=self.file_bytes[file_id])

    def _create_upload(self, request: httpx2.Request) -> httpx2.Response:
        data = json.loads(request.read())
        upload_id = self._id("upload")
        self.uploads[upload_id] = {
            "id": upload_id, "object": "upload", "bytes": data["bytes"], "filename": data["filename"],
            "purpose": data["purpose"], "status": "pending", "created_at": next(self._clock),
            "expires_at": next(self._clock) + 3600, "mime_type": data["mime_type"], "parts": [],
        }  # fmt: skip
        return httpx2.Response(200, json={k: v for k, v in self.uploads[upload_id].items() if k != "parts"})

    def _add_part(self, request: httpx2.Request, upload_id: str) -> httpx2.Response:
        part_id = self._id("part")
        self.parts[part_id] = _multipart_payload(request)
        self.uploads[upload_id]["parts"].append(part_id)
        return httpx2.Response(200, json={"id": part_id, "object": "upload.part", "created_at": next(self._clock),
                                          "upload_id": upload_id})  # fmt: skip

    def _complete_upload(self, request: httpx2.Request, upload_id: str) -> httpx2.Response:
        data = json.loads(request.read())
        upload = self.uploads[upload_id]
        if upload["status"] != "pending":
            return _error(400, f"Upload {upload_id} is already {upload['status']}")
        blob = b"".join(self.parts[p] for p in data["part_ids"])
        if len(blob) != upload["bytes"]:
            return _error(400, f"expected {upload['bytes']} bytes, got {len(blob)}")
        if data.get("md5") and data["md5"] != hashlib.md5(blob).hexdigest():
            return _error(400, "md5 mismatch")
        file_id = self._id("file")
        self.files[file_id] = {"id": file_id, "object": "file", "bytes": len(blob), "created_at": next(self._clock),
                               "filename": upload["filename"], "purpose": upload["purpose"], "status": "processed"}  # fmt: skip
        self.file_bytes[file_id] = blob
        upload["status"] = "completed"
        out = {k: v for k, v in upload.items() if k != "parts"}
        return httpx2.Response(200, json={**out, "file": self.files[file_id]})

    def _cancel_upload(self, request: httpx2.Request, upload_id: str) -> httpx2.Response:
        self.uploads[upload_id]["status"] = "cancelled"
        return httpx2.Response(200, json={k: v for k, v in self.uploads[upload_id].items() if k != "parts"})

    def _create_job(self, request: httpx2.Request) -> httpx2.Response:
        data = json.loads(request.read())
        if data.get("training_file") not in self.files:
            return _error(400, f"invalid training_file: {data.get('training_file')}", param="training_file")
        job_id = self._id("ftjob")
        method = data.get("method") or {"type": "supervised", "supervised": {"hyperparameters": {}}}
        kind = method["type"]
        hp = {"n_epochs": "auto", "batch_size": "auto", "learning_rate_multiplier": "auto",
              **(method.get(kind) or {}).get("hyperparameters", {})}  # fmt: skip
        self.jobs[job_id] = {
            "id": job_id, "object": "fine_tuning.job", "created_at": next(self._clock), "error": None,
            "fine_tuned_model": None, "finished_at": None, "hyperparameters": hp, "model": data["model"],
            "organization_id": "org-fake", "result_files": [], "seed": data.get("seed", 42), "status": "validating_files",
            "trained_tokens": None, "training_file": data["training_file"], "validation_file": data.get("validation_file"),
            "method": {"type": kind, kind: {"hyperparameters": hp}}, "metadata": data.get("metadata"),
            "estimated_finish": None, "integrations": data.get("integrations"), "suffix": data.get("suffix"),
        }  # fmt: skip
        self.visible_at[job_id] = self.faults.visible_at() if self.faults is not None else 0.0
        self.events[job_id] = []
        self.checkpoints[job_id] = []
        self.add_event(job_id, f"Created fine-tuning job: {job_id}")
        return httpx2.Response(200, json=self.jobs[job_id])

    def _list_jobs(self, request: httpx2.Request) -> httpx2.Response:
        jobs = sorted(self.jobs.values(), key=lambda j: j["created_at"], reverse=True)
        if self.faults is not None:  # a list that lags: new jobs show only after a while
            jobs = [j for j in jobs if self.visible_at.get(j["id"], 0.0) <= self.faults.now()]
        meta = {
            k[len("metadata[") : -1]: v for k, v in request.url.params.items() if k.startswith("metadata[")
        }
        jobs = [j for j in jobs if all((j.get("metadata") or {}).get(k) == v for k, v in meta.items())]
        return _page(jobs, request)

    def _get_job(self, request: httpx2.Request, job_id: str) -> httpx2.Response:
        if job_id not in self.jobs:
            return _error(404, f"No such fine-tuning job: {job_id}")
        return httpx2.Response(200, json=self.jobs[job_id])

    def _act(self, request: httpx2.Request, job_id: str, action: str) -> httpx2.Response:
        if job_id not in self.jobs:
            return _error(404, f"No such fine-tuning job: {job_id}")
        job = self.jobs[job_id]
        new = {"cancel": "cancelled", "pause": "pausing", "resume": "running"}[action]
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return _error(400, f"Job {job_id} has already {job['status']}")
        job["status"] = new
        return httpx2.Response(200, json=job)

    def _list_events(self, request: httpx2.Request, job_id: str) -> httpx2.Response:
        return _page(self.events[job_id], request)

    def _list_checkpoints(self, request: httpx2.Request, job_id: str) -> httpx2.Response:
        return _page(self.checkpoints[job_id], request)

    def _chat(self, request: httpx2.Request) -> httpx2.Response:
        data = json.loads(request.read())
        last = data["messages"][-1]["content"]
        return httpx2.Response(200, json={
            "id": "chatcmpl-1", "object": "chat.completion", "created": int(time.time()), "model": data["model"],
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": f"echo: {last}", "refusal": None}}],
            "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10},
        })  # fmt: skip


def _page(items: list[dict[str, Any]], request: httpx2.Request) -> httpx2.Response:
    after = request.url.params.get("after")
    limit = int(request.url.params.get("limit", 20))
    start = 0
    if after is not None:
        ids = [i["id"] for i in items]
        start = ids.index(after) + 1 if after in ids else len(items)
    chunk = items[start : start + limit]
    return httpx2.Response(
        200, json={"object": "list", "data": chunk, "has_more": start + limit < len(items)}
    )


def _error(status: int, message: str, *, param: str | None = None) -> httpx2.Response:
    return httpx2.Response(
        status,
        json={"error": {"message": message, "type": "invalid_request_error", "param": param, "code": None}},
        headers={"x-request-id": "req_fake"},
    )


def _multipart_payload(request: httpx2.Request) -> bytes:
    """The bytes of the `file` or `data` field of a multipart request."""
    body = request.read()
    boundary = request.headers["content-type"].split("boundary=")[1].encode()
    for part in body.split(b"--" + boundary):
        head, _, payload = part.partition(b"\r\n\r\n")
        if b'name="file"' in head or b'name="data"' in head:
            return payload[:-2] if payload.endswith(b"\r\n") else payload
    return b""
