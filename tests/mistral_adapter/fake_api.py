"""A stateful stand-in for Mistral's API: files, models (with fine-tuned model management) and chat
for the `mistralai` 3.x SDK (over httpx2), and the legacy `/v1/fine_tuning/jobs` endpoints for the
adapter's httpx client. One state, two transports; no socket is opened. With a `FaultPlan`
(tests/faults) both transports fail requests at random, seeded, and a new job shows in the list
only `list_lag` seconds of the plan's clock after it was made."""

from __future__ import annotations

import itertools
import json
import re
from typing import Any

import httpx
import httpx2

from tests.faults.plan import FaultPlan

Answer = tuple[int, Any]


class FakeMistral:
    def __init__(self, faults: FaultPlan | None = None) -> None:
        self.faults = faults
        self.visible_at: dict[str, float] = {}  # when a job shows in lists (the plan's list lag)
        self.files: dict[str, dict[str, Any]] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        self.models: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        self.jobs_gone = False  # the jobs endpoints answer 410
        self.fail_next: list[tuple[str, int, dict[str, str]]] = []  # (path regex, status, headers)
        self._ids = itertools.count(1)
        self._clock = itertools.count(1_780_000_000)

    # -- transports --------------------------------------------------------------------------------

    def sdk_transport(self) -> httpx2.MockTransport:
        def handle(request: httpx2.Request) -> httpx2.Response:
            status, body, headers = self._answer(
                request.method, request.url.path, dict(request.url.params), request.read()
            )
            return httpx2.Response(status, json=body, headers=headers)

        if self.faults is not None:
            return httpx2.MockTransport(self.faults.handler(handle, httpx2))
        return httpx2.MockTransport(handle)

    def http_transport(self) -> httpx.MockTransport:
        def handle(request: httpx.Request) -> httpx.Response:
            status, body, headers = self._answer(
                request.method, request.url.path, dict(request.url.params), request.read()
            )
            return httpx.Response(status, json=body, headers=headers)

        if self.faults is not None:
            return httpx.MockTransport(self.faults.handler(handle, httpx))
        return httpx.MockTransport(handle)

    def jobs_with_key(self, key: str) -> list[str]:
        """The jobs whose suffix carries this idempotency key's tag (the state itself: no faults)."""
        from unitune.providers.mistral import idempotency_tag

        tag = idempotency_tag(key)
        return [j["id"] for j in self.jobs.values() if str(j.get("suffix") or "").endswith(tag)]

    # -- state helpers --------------------------------------------------------------------------------

    def add_model(self, model_id: str, *, base: str = "open-mistral-7b", job: str = "job-1") -> None:
        self.models[model_id] = {
            "id": model_id, "object": "model", "created": next(self._clock), "owned_by": "org",
            "capabilities": {"completion_chat": True, "fine_tuning": False}, "job": job, "root": base,
            "type": "fine-tuned", "archived": False, "name": None, "description": None,
        }  # fmt: skip

    def set_status(self, job_id: str, status: str, **fields: Any) -> None:
        self.jobs[job_id].update(status=status, **fields)

    def calls(self, method: str, pattern: str) -> list[tuple[str, str, dict[str, str], bytes]]:
        return [r for r in self.requests if r[0] == method and re.fullmatch(pattern, r[1])]

    # -- the API ---------------------------------------------------------------------------------------

    def _answer(
        self, method: str, path: str, params: dict[str, str], body: bytes
    ) -> tuple[int, Any, dict[str, str]]:
        self.requests.append((method, path, params, body))
        for i, (pattern, status, headers) in enumerate(self.fail_next):
            if re.fullmatch(pattern, f"{method} {path}"):
                del self.fail_next[i]
                return (
                    status,
                    {"message": "injected", "request_id": "req_m"},
                    {"x-request-id": "req_m", **headers},
                )
        status, answer = self._route(method, path, params, body)
        return status, answer, {"x-request-id": "req_m"}

    def _route(self, method: str, path: str, params: dict[str, str], body: bytes) -> Answer:
        if path.startswith("/v1/fine_tuning/jobs") and self.jobs_gone:
            return 410, {"message": "Fine-tuning has been retired."}
        m = re.fullmatch(r"/v1/fine_tuning/jobs(?:/([^/]+))?(?:/(cancel|start))?", path)
        if m:
            return self._jobs(method, m.group(1), m.group(2), params, body)
        if method == "POST" and path == "/v1/files":
            file_id = f"file-{next(self._ids)}"
            name = re.search(rb'filename="([^"]+)"', body)
            self.files[file_id] = {"id": file_id, "object": "file", "size_bytes": len(body), "created_at": next(self._clock),
                                   "filename": name.group(1).decode() if name else "x.jsonl", "purpose": "fine-tune",
                                   "sample_type": "instruct", "source": "upload", "num_lines": body.count(b"\n")}  # fmt: skip
            return 200, self.files[file_id]
        if method == "GET" and path == "/v1/models":
            return 200, {"object": "list", "data": list(self.models.values())}
        mm = re.fullmatch(r"/v1/(?:fine_tuning/)?models/([^/]+)(/archive)?", path)
        if mm:
            model = self.models.get(mm.group(1))
            if model is None:
                return 404, {"message": f"model {mm.group(1)} not found"}
            if mm.group(2):
                model["archived"] = method == "POST"
                return 200, {"id": model["id"], "object": "model", "archived": model["archived"]}
            if method == "PATCH":
                model.update({k: v for k, v in json.loads(body).items() if k in ("name", "description")})
                return 200, {**model, "object": "model", "model_type": "completion"}
            if method == "DELETE":
                del self.models[mm.group(1)]
                return 200, {"id": mm.group(1), "object": "model", "deleted": True}
            return 200, model
        if method == "POST" and path == "/v1/chat/completions":
            data = json.loads(body)
            return 200, {"id": "c1", "object": "chat.completion", "model": data["model"], "created": 1,
                         "choices": [{"index": 0, "finish_reason": "stop", "message": {
                             "role": "assistant", "content": "echo: " + data["messages"][-1]["content"]}}],
                         "usage": {"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13}}  # fmt: skip
        return 404, {"message": f"no route {method} {path}"}

    def _jobs(
        self, method: str, job_id: str | None, action: str | None, params: dict[str, str], body: bytes
    ) -> Answer:
        if job_id is None and method == "POST":
            data = json.loads(body)
            if params.get("dry_run") == "true":
                return 200, {"object": "job.metadata", "details": "", "deprecated": True, "cost": 4.0,
                             "cost_currency": "USD", "train_tokens": 12000, "expected_duration_seconds": 300,
                             "epochs": data["hyperparameters"].get("epochs")}  # fmt: skip
            if data["training_files"][0]["file_id"] not in self.files:
                return 422, {"message": "training file not found"}
            new_id = f"ftjob-{next(self._ids):04d}"
            self.jobs[new_id] = {
                "id": new_id, "object": "job", "auto_start": data.get("auto_start", True), "model": data["model"],
                "status": "QUEUED", "created_at": next(self._clock), "modified_at": next(self._clock),
                "training_files": [f["file_id"] for f in data["training_files"]],
                "validation_files": data.get("validation_files") or [], "fine_tuned_model": None,
                "suffix": data.get("suffix"), "hyperparameters": data["hyperparameters"], "job_type": "completion",
                "trained_tokens": None, "repositories": [], "integrations": [],
                "metadata": {"cost": 4.0, "cost_currency": "USD", "train_tokens": 12000},
                "events": [{"name": "status-updated", "data": {"status": "QUEUED"}, "created_at": next(self._clock)}],
                "checkpoints": [],
            }  # fmt: skip
            self.visible_at[new_id] = self.faults.visible_at() if self.faults is not None else 0.0
            return 200, self.jobs[new_id]
        if job_id is None:
            page, size = int(params.get("page", 0)), int(params.get("page_size", 100))
            ordered = sorted(self.jobs.values(), key=lambda j: j["created_at"], reverse=True)
            if self.faults is not None:  # a list that lags: new jobs show only after a while
                ordered = [j for j in ordered if self.visible_at.get(j["id"], 0.0) <= self.faults.now()]
            return 200, {
                "object": "list",
                "total": len(ordered),
                "data": ordered[page * size : (page + 1) * size],
            }
        job = self.jobs.get(job_id)
        if job is None:
            return 404, {"message": f"job {job_id} not found"}
        if action == "cancel":
            job["status"] = "CANCELLATION_REQUESTED"
        elif action == "start":
            if job["status"] != "VALIDATED":
                return 400, {"message": f"job is {job['status']}, not VALIDATED"}
            job["status"] = "STARTED"
        return 200, job
