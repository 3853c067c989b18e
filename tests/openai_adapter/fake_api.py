"""A small, stateful stand-in for OpenAI's fine-tuning API, served to the real `openai` SDK through
`httpx2.MockTransport` (no socket is opened). It keeps files, uploads, jobs, events and
checkpoints, pages lists like the API (newest first, `after` cursor, `has_more`), and can be told
to fail the next requests on a path with any status, headers or a dropped connection. With a
`FaultPlan` (tests/faults) it also fails requests at random, seeded, and lists a new job only
`list_lag` seconds of the plan's clock after it was made. What every fake shares is in
`tests/_fakehttp.py`.
"""

from __future__ import annotations

import hashlib
import re
import time
from typing import Any

import httpx2

from tests._fakehttp import Answer, FakeHTTPAPI, Reply, Route, read_json
from tests.faults.plan import FaultPlan


class FakeOpenAI(FakeHTTPAPI):
    http = httpx2
    request_id = "req_fake"
    epoch = 1_700_000_000

    def __init__(self, faults: FaultPlan | None = None) -> None:
        super().__init__(faults)
        self.files: dict[str, dict[str, Any]] = {}
        self.file_bytes: dict[str, bytes] = {}
        self.uploads: dict[str, dict[str, Any]] = {}
        self.parts: dict[str, bytes] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        self.events: dict[str, list[dict[str, Any]]] = {}
        self.checkpoints: dict[str, list[dict[str, Any]]] = {}

    def error_body(self, status: int, message: str, *, param: str | None = None) -> Any:
        return {"error": {"message": message, "type": "invalid_request_error", "param": param, "code": None}}

    # -- test controls ---------------------------------------------------------------------------

    def set_status(self, job_id: str, status: str, **fields: Any) -> None:
        self.jobs[job_id].update(status=status, **fields)

    def add_event(self, job_id: str, message: str, *, level: str = "info", type: str = "message",
                  data: dict[str, Any] | None = None) -> None:  # fmt: skip
        self.events[job_id].insert(0, {
            "id": f"ftevent-{next(self._ids)}", "object": "fine_tuning.job.event", "created_at": self.tick(),
            "level": level, "message": message, "type": type, "data": data or {},
        })  # fmt: skip

    def jobs_with_key(self, key: str) -> list[str]:
        """The jobs tagged with this idempotency key (straight from the state, no faults, no lag)."""
        return [
            j["id"]
            for j in self.jobs.values()
            if (j.get("metadata") or {}).get("unitune_idempotency_key") == key
        ]

    # -- the API -------------------------------------------------------------------------------------

    def routes(self) -> list[Route]:
        return [
            ("POST", r"/v1/files", self._create_file),
            ("GET", r"/v1/files", self._list_files),
            ("GET", r"/v1/files/([^/]+)/content", self._file_content),
            ("DELETE", r"/v1/files/([^/]+)", self._delete_file),
            ("POST", r"/v1/uploads", self._create_upload),
            ("POST", r"/v1/uploads/([^/]+)/parts", self._add_part),
            ("POST", r"/v1/uploads/([^/]+)/complete", self._complete_upload),
            ("POST", r"/v1/uploads/([^/]+)/cancel", self._cancel_upload),
            ("POST", r"/v1/fine_tuning/jobs", self._create_job),
            ("GET", r"/v1/fine_tuning/jobs", self._list_jobs),
            ("GET", r"/v1/fine_tuning/jobs/([^/]+)", self._get_job),
            ("POST", r"/v1/fine_tuning/jobs/([^/]+)/(cancel|pause|resume)", self._act),
            ("GET", r"/v1/fine_tuning/jobs/([^/]+)/events", lambda r, i: _page(self.events[i], r)),
            ("GET", r"/v1/fine_tuning/jobs/([^/]+)/checkpoints", lambda r, i: _page(self.checkpoints[i], r)),
            ("POST", r"/v1/chat/completions", self._chat),
        ]

    def _create_file(self, request: httpx2.Request) -> Answer:
        body = request.read()
        file_id = self.new_id("file", 6)
        name = re.search(rb'filename="([^"]+)"', body)
        purpose = re.search(rb'name="purpose"\r\n\r\n([^\r]+)', body)
        self.files[file_id] = {
            "id": file_id, "object": "file", "bytes": len(body), "created_at": self.tick(),
            "filename": name.group(1).decode() if name else "upload.jsonl",
            "purpose": purpose.group(1).decode() if purpose else "?", "status": "processed",
        }  # fmt: skip
        self.file_bytes[file_id] = _multipart_payload(request)
        return 200, self.files[file_id]

    def _list_files(self, request: httpx2.Request) -> Answer:
        files = sorted(self.files.values(), key=lambda f: f["created_at"], reverse=True)
        purpose = request.url.params.get("purpose")
        return _page([f for f in files if purpose is None or f["purpose"] == purpose], request)

    def _delete_file(self, request: httpx2.Request, file_id: str) -> Answer:
        if self.files.pop(file_id, None) is None:
            return self.error(404, f"No such File object: {file_id}")
        self.file_bytes.pop(file_id, None)
        return 200, {"id": file_id, "object": "file", "deleted": True}

    def _file_content(self, request: httpx2.Request, file_id: str) -> Answer:
        if file_id not in self.file_bytes:
            return self.error(404, f"No such File object: {file_id}")
        return Reply(200, content=self.file_bytes[file_id])

    def _upload(self, upload_id: str) -> dict[str, Any]:
        return {k: v for k, v in self.uploads[upload_id].items() if k != "parts"}

    def _create_upload(self, request: httpx2.Request) -> Answer:
        data = read_json(request)
        upload_id = self.new_id("upload", 6)
        self.uploads[upload_id] = {
            "id": upload_id, "object": "upload", "bytes": data["bytes"], "filename": data["filename"],
            "purpose": data["purpose"], "status": "pending", "created_at": self.tick(),
            "expires_at": self.tick() + 3600, "mime_type": data["mime_type"], "parts": [],
        }  # fmt: skip
        return 200, self._upload(upload_id)

    def _add_part(self, request: httpx2.Request, upload_id: str) -> Answer:
        part_id = self.new_id("part", 6)
        self.parts[part_id] = _multipart_payload(request)
        self.uploads[upload_id]["parts"].append(part_id)
        return 200, {
            "id": part_id,
            "object": "upload.part",
            "created_at": self.tick(),
            "upload_id": upload_id,
        }

    def _complete_upload(self, request: httpx2.Request, upload_id: str) -> Answer:
        data = read_json(request)
        upload = self.uploads[upload_id]
        if upload["status"] != "pending":
            return self.error(400, f"Upload {upload_id} is already {upload['status']}")
        blob = b"".join(self.parts[p] for p in data["part_ids"])
        if len(blob) != upload["bytes"]:
            return self.error(400, f"expected {upload['bytes']} bytes, got {len(blob)}")
        if data.get("md5") and data["md5"] != hashlib.md5(blob).hexdigest():
            return self.error(400, "md5 mismatch")
        file_id = self.new_id("file", 6)
        self.files[file_id] = {"id": file_id, "object": "file", "bytes": len(blob), "created_at": self.tick(),
                               "filename": upload["filename"], "purpose": upload["purpose"], "status": "processed"}  # fmt: skip
        self.file_bytes[file_id] = blob
        upload["status"] = "completed"
        return 200, {**self._upload(upload_id), "file": self.files[file_id]}

    def _cancel_upload(self, request: httpx2.Request, upload_id: str) -> Answer:
        self.uploads[upload_id]["status"] = "cancelled"
        return 200, self._upload(upload_id)

    def _create_job(self, request: httpx2.Request) -> Answer:
        data = read_json(request)
        if data.get("training_file") not in self.files:
            return self.error(
                400, f"invalid training_file: {data.get('training_file')}", param="training_file"
            )
        job_id = self.new_id("ftjob", 6)
        method = data.get("method") or {"type": "supervised", "supervised": {"hyperparameters": {}}}
        kind = method["type"]
        hp = {"n_epochs": "auto", "batch_size": "auto", "learning_rate_multiplier": "auto",
              **(method.get(kind) or {}).get("hyperparameters", {})}  # fmt: skip
        self.jobs[job_id] = {
            "id": job_id, "object": "fine_tuning.job", "created_at": self.tick(), "error": None,
            "fine_tuned_model": None, "finished_at": None, "hyperparameters": hp, "model": data["model"],
            "organization_id": "org-fake", "result_files": [], "seed": data.get("seed", 42), "status": "validating_files",
            "trained_tokens": None, "training_file": data["training_file"], "validation_file": data.get("validation_file"),
            "method": {"type": kind, kind: {"hyperparameters": hp}}, "metadata": data.get("metadata"),
            "estimated_finish": None, "integrations": data.get("integrations"), "suffix": data.get("suffix"),
        }  # fmt: skip
        self.mark_new(job_id)
        self.events[job_id] = []
        self.checkpoints[job_id] = []
        self.add_event(job_id, f"Created fine-tuning job: {job_id}")
        return 200, self.jobs[job_id]

    def _list_jobs(self, request: httpx2.Request) -> Answer:
        jobs = self.listed(sorted(self.jobs.values(), key=lambda j: j["created_at"], reverse=True))
        meta = {
            k[len("metadata[") : -1]: v for k, v in request.url.params.items() if k.startswith("metadata[")
        }
        jobs = [j for j in jobs if all((j.get("metadata") or {}).get(k) == v for k, v in meta.items())]
        return _page(jobs, request)

    def _get_job(self, request: httpx2.Request, job_id: str) -> Answer:
        if job_id not in self.jobs:
            return self.error(404, f"No such fine-tuning job: {job_id}")
        return 200, self.jobs[job_id]

    def _act(self, request: httpx2.Request, job_id: str, action: str) -> Answer:
        if job_id not in self.jobs:
            return self.error(404, f"No such fine-tuning job: {job_id}")
        job = self.jobs[job_id]
        new = {"cancel": "cancelled", "pause": "pausing", "resume": "running"}[action]
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return self.error(400, f"Job {job_id} has already {job['status']}")
        job["status"] = new
        return 200, job

    def _chat(self, request: httpx2.Request) -> Answer:
        data = read_json(request)
        last = data["messages"][-1]["content"]
        return 200, {
            "id": "chatcmpl-1", "object": "chat.completion", "created": int(time.time()), "model": data["model"],
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": f"echo: {last}", "refusal": None}}],
            "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10},
        }  # fmt: skip


def _page(items: list[dict[str, Any]], request: httpx2.Request) -> Answer:
    """A cursor page: newest first as given, `after` an id, `has_more`."""
    after = request.url.params.get("after")
    limit = int(request.url.params.get("limit", 20))
    start = 0
    if after is not None:
        ids = [i["id"] for i in items]
        start = ids.index(after) + 1 if after in ids else len(items)
    return 200, {
        "object": "list",
        "data": items[start : start + limit],
        "has_more": start + limit < len(items),
    }


def _multipart_payload(request: httpx2.Request) -> bytes:
    """The bytes of the `file` or `data` field of a multipart request."""
    body = request.read()
    boundary = request.headers["content-type"].split("boundary=")[1].encode()
    for part in body.split(b"--" + boundary):
        head, _, payload = part.partition(b"\r\n\r\n")
        if b'name="file"' in head or b'name="data"' in head:
            return payload[:-2] if payload.endswith(b"\r\n") else payload
    return b""
