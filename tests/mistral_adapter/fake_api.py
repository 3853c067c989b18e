"""A stateful stand-in for Mistral's API: files, models (with fine-tuned model management) and chat
for the `mistralai` 3.x SDK (over httpx2), and the legacy `/v1/fine_tuning/jobs` endpoints for the
adapter's httpx client. One state, two transports; no socket is opened. With a `FaultPlan`
(tests/faults) both transports fail requests at random, seeded, and a new job shows in the list
only `list_lag` seconds of the plan's clock after it was made.
What every fake shares is in `tests/_fakehttp.py`."""

from __future__ import annotations

import re
from typing import Any, NamedTuple

import httpx
import httpx2

from tests._fakehttp import Answer, FailQueue, FakeHTTPAPI, Route, read_json
from tests.faults.plan import FaultPlan

_JOBS = "/v1/fine_tuning/jobs"
_MODEL = r"/v1/(?:fine_tuning/)?models/([^/]+)"


class Call(NamedTuple):
    """A recorded request, as Mistral's tests read it."""

    method: str
    path: str
    params: dict[str, str]
    body: bytes


class FakeMistral(FakeHTTPAPI):
    http = httpx2
    request_id = "req_m"
    epoch = 1_780_000_000

    def __init__(self, faults: FaultPlan | None = None) -> None:
        super().__init__(faults)
        self.files: dict[str, dict[str, Any]] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        self.models: dict[str, dict[str, Any]] = {}
        self.jobs_gone = False  # the jobs endpoints answer 410
        #: `fail_next.append((path regex, status, headers))`: one failure each (as `fail`).
        self.fail_next = FailQueue(self.fail)

    def error_body(self, status: int, message: str, **fields: Any) -> Any:
        return {"message": message, "request_id": self.request_id}

    # -- transports --------------------------------------------------------------------------------

    def sdk_transport(self) -> httpx2.MockTransport:
        """For the `mistralai` SDK (httpx2)."""
        return self.transport(httpx2)

    def http_transport(self) -> httpx.MockTransport:
        """For the adapter's httpx client on the legacy jobs endpoints."""
        return self.transport(httpx)

    def jobs_with_key(self, key: str) -> list[str]:
        """The jobs whose suffix carries this idempotency key's tag (the state itself: no faults)."""
        from unitune.providers.mistral import idempotency_tag

        tag = idempotency_tag(key)
        return [j["id"] for j in self.jobs.values() if str(j.get("suffix") or "").endswith(tag)]

    # -- state helpers --------------------------------------------------------------------------------

    def add_model(self, model_id: str, *, base: str = "open-mistral-7b", job: str = "job-1") -> None:
        self.models[model_id] = {
            "id": model_id, "object": "model", "created": self.tick(), "owned_by": "org",
            "capabilities": {"completion_chat": True, "fine_tuning": False}, "job": job, "root": base,
            "type": "fine-tuned", "archived": False, "name": None, "description": None,
        }  # fmt: skip

    def set_status(self, job_id: str, status: str, **fields: Any) -> None:
        self.jobs[job_id].update(status=status, **fields)

    def calls(self, method: str, pattern: str) -> list[Call]:
        return [
            Call(r.method, r.url.path, dict(r.url.params), r.read()) for r in super().calls(method, pattern)
        ]

    # -- the API ---------------------------------------------------------------------------------------

    def routes(self) -> list[Route]:
        return [
            ("POST", r"/v1/files", self._upload),
            ("GET", r"/v1/models", lambda r: (200, {"object": "list", "data": list(self.models.values())})),
            ("GET", _MODEL, self._get_model),
            ("PATCH", _MODEL, self._update_model),
            ("DELETE", _MODEL, self._delete_model),
            ("POST", _MODEL + "/archive", self._archive),
            ("DELETE", _MODEL + "/archive", self._archive),
            ("POST", r"/v1/chat/completions", self._chat),
            ("POST", _JOBS, self._create_job),
            ("GET", _JOBS, self._list_jobs),
            ("GET", _JOBS + r"/([^/]+)", self._get_job),
            ("POST", _JOBS + r"/([^/]+)/(cancel|start)", self._get_job),
        ]

    def route(self, request: Any) -> Answer:
        if request.url.path.startswith(_JOBS) and self.jobs_gone:
            return self.error(410, "Fine-tuning has been retired.")
        return super().route(request)

    def _upload(self, request: Any) -> Answer:
        body = request.read()
        file_id = self.new_id("file")
        name = re.search(rb'filename="([^"]+)"', body)
        self.files[file_id] = {"id": file_id, "object": "file", "size_bytes": len(body), "created_at": self.tick(),
                               "filename": name.group(1).decode() if name else "x.jsonl", "purpose": "fine-tune",
                               "sample_type": "instruct", "source": "upload", "num_lines": body.count(b"\n")}  # fmt: skip
        return 200, self.files[file_id]

    def _get_model(self, request: Any, model_id: str) -> Answer:
        if model_id not in self.models:
            return self.error(404, f"model {model_id} not found")
        return 200, self.models[model_id]

    def _update_model(self, request: Any, model_id: str) -> Answer:
        if model_id not in self.models:
            return self.error(404, f"model {model_id} not found")
        model = self.models[model_id]
        model.update({k: v for k, v in read_json(request).items() if k in ("name", "description")})
        return 200, {**model, "object": "model", "model_type": "completion"}

    def _delete_model(self, request: Any, model_id: str) -> Answer:
        if self.models.pop(model_id, None) is None:
            return self.error(404, f"model {model_id} not found")
        return 200, {"id": model_id, "object": "model", "deleted": True}

    def _archive(self, request: Any, model_id: str) -> Answer:
        if model_id not in self.models:
            return self.error(404, f"model {model_id} not found")
        archived = self.models[model_id]["archived"] = request.method == "POST"
        return 200, {"id": model_id, "object": "model", "archived": archived}

    def _chat(self, request: Any) -> Answer:
        data = read_json(request)
        return 200, {"id": "c1", "object": "chat.completion", "model": data["model"], "created": 1,
                     "choices": [{"index": 0, "finish_reason": "stop", "message": {
                         "role": "assistant", "content": "echo: " + data["messages"][-1]["content"]}}],
                     "usage": {"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13}}  # fmt: skip

    # -- the legacy jobs API -----------------------------------------------------------------------------

    def _create_job(self, request: Any) -> Answer:
        data = read_json(request)
        if request.url.params.get("dry_run") == "true":
            return 200, {"object": "job.metadata", "details": "", "deprecated": True, "cost": 4.0,
                         "cost_currency": "USD", "train_tokens": 12000, "expected_duration_seconds": 300,
                         "epochs": data["hyperparameters"].get("epochs")}  # fmt: skip
        if data["training_files"][0]["file_id"] not in self.files:
            return self.error(422, "training file not found")
        new_id = self.new_id("ftjob", 4)
        self.jobs[new_id] = {
            "id": new_id, "object": "job", "auto_start": data.get("auto_start", True), "model": data["model"],
            "status": "QUEUED", "created_at": self.tick(), "modified_at": self.tick(),
            "training_files": [f["file_id"] for f in data["training_files"]],
            "validation_files": data.get("validation_files") or [], "fine_tuned_model": None,
            "suffix": data.get("suffix"), "hyperparameters": data["hyperparameters"], "job_type": "completion",
            "trained_tokens": None, "repositories": [], "integrations": [],
            "metadata": {"cost": 4.0, "cost_currency": "USD", "train_tokens": 12000},
            "events": [{"name": "status-updated", "data": {"status": "QUEUED"}, "created_at": self.tick()}],
            "checkpoints": [],
        }  # fmt: skip
        self.mark_new(new_id)
        return 200, self.jobs[new_id]

    def _list_jobs(self, request: Any) -> Answer:
        page, size = int(request.url.params.get("page", 0)), int(request.url.params.get("page_size", 100))
        ordered = self.listed(sorted(self.jobs.values(), key=lambda j: j["created_at"], reverse=True))
        return 200, {
            "object": "list",
            "total": len(ordered),
            "data": ordered[page * size : (page + 1) * size],
        }

    def _get_job(self, request: Any, job_id: str, action: str | None = None) -> Answer:
        job = self.jobs.get(job_id)
        if job is None:
            return self.error(404, f"job {job_id} not found")
        if action == "cancel":
            job["status"] = "CANCELLATION_REQUESTED"
        elif action == "start":
            if job["status"] != "VALIDATED":
                return self.error(400, f"job is {job['status']}, not VALIDATED")
            job["status"] = "STARTED"
        return 200, job
