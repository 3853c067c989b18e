"""A stateful stand-in for Together's fine-tuning API, served to the real `together` SDK through
`httpx.MockTransport` (no socket). It speaks the upload protocol the SDK uses and the spec does
not describe (POST /v1/files → 302 + X-Together-File-Id → PUT → /preprocess → processing), the
limits and estimate calls `create()` makes, jobs, events, metrics, checkpoints and chat, the
multipart protocol of large files (initiate → a PUT per part → complete), and can fail the next
requests on a path. With a `FaultPlan` (tests/faults) it also fails requests at random, seeded,
and lists a new job only `list_lag` seconds of the plan's clock after it was made.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from tests.faults.plan import FaultPlan

LIMITS = {
    "model_name": "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference",
    "default_gradient_accumulation_steps": 1, "max_learning_rate": 1.0, "min_learning_rate": 1e-6,
    "max_num_checkpoints": 10, "max_num_epochs": 20, "max_num_evals": 10, "max_seq_length_dpo": 8192,
    "max_seq_length_sft": 8192, "merge_output_lora": True, "min_max_seq_length": 128,
    "supports_full_training": False, "supports_reasoning": False, "supports_tools": True, "supports_vision": False,
    "lora_training": {"default_rank": 16, "max_batch_size": 32, "max_batch_size_dpo": 16, "max_rank": 64,
                      "min_batch_size": 8, "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"]},
}  # fmt: skip


@dataclass
class Failure:
    path: str
    status: int | None
    message: str
    headers: dict[str, str]
    times: int
    after_effect: bool


class FakeTogether:
    def __init__(self, faults: FaultPlan | None = None) -> None:
        self.faults = faults
        self.visible_at: dict[str, float] = {}  # when a job shows in lists (the plan's list lag)
        self.multipart: dict[str, dict[str, Any]] = {}  # upload id -> {"file_id", "parts", "status"}
        self.files: dict[str, dict[str, Any]] = {}
        self.file_bytes: dict[str, bytes] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        self.events: dict[str, list[dict[str, Any]]] = {}
        self.metrics: dict[str, list[dict[str, float]]] = {}
        self.checkpoints: dict[str, list[dict[str, Any]]] = {}
        self.failures: list[Failure] = []
        self.requests: list[httpx.Request] = []
        self.created: list[dict[str, Any]] = []  # each create request's JSON body
        self.limits = dict(LIMITS)
        self.estimate: dict[str, Any] = {"estimation_available": True, "allowed_to_proceed": True,
                                         "estimated_total_price": 4.2, "estimated_train_token_count": 1e6,
                                         "estimated_eval_token_count": 0, "user_limit": 100.0}  # fmt: skip
        #: How many GETs of a file answer RUNNING before it is processed, and how it ends.
        self.processing_polls = 1
        self.processing_result: dict[str, Any] = {"processing_status": "COMPLETED",
                                                  "validation_report": {"valid": True, "nlines": 60}}  # fmt: skip
        self._ids = itertools.count(1)
        self._clock = itertools.count(0)

    def fail(self, path: str, status: int | None, *, message: str = "injected", times: int = 1,
             headers: dict[str, str] | None = None, after_effect: bool = False) -> None:  # fmt: skip
        self.failures.append(Failure(path, status, message, headers or {}, times, after_effect))

    def set_status(self, job_id: str, status: str, **fields: Any) -> None:
        self.jobs[job_id].update(status=status, **fields)

    def add_event(self, job_id: str, message: str, *, level: str = "info", type: str = "job_start",
                  **fields: Any) -> None:  # fmt: skip
        self.events[job_id].append({"object": "fine-tune-event", "created_at": self._now(), "message": message,
                                    "level": level, "type": type, **fields})  # fmt: skip

    def calls(self, method: str, pattern: str) -> list[httpx.Request]:
        return [r for r in self.requests if r.method == method and re.fullmatch(pattern, r.url.path)]

    def transport(self) -> httpx.MockTransport:
        if self.faults is None:
            return httpx.MockTransport(self.handle)
        return httpx.MockTransport(self.faults.handler(self.handle, httpx))

    def jobs_with_key(self, key: str) -> list[str]:
        """The jobs whose output name carries this idempotency key's tag (the state itself: no faults)."""
        from unitune.providers.together import idempotency_tag

        tag = idempotency_tag(key)
        return [j["id"] for j in self.jobs.values() if str(j.get("model_output_name", "")).endswith(tag)]

    def _now(self) -> str:
        t = dt.datetime(2026, 11, 22, tzinfo=dt.timezone.utc) + dt.timedelta(seconds=next(self._clock))
        return t.isoformat().replace("+00:00", "Z")

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        key = f"{request.method} {request.url.path}"
        for f in self.failures:
            if f.times > 0 and re.fullmatch(f.path, key):
                f.times -= 1
                if f.after_effect:
                    self._route(request)
                if f.status is None:
                    raise httpx.ConnectError("connection reset by peer", request=request)
                return httpx.Response(f.status, json={"error": {"message": f.message, "type": "invalid_request_error"}},
                                      headers={"x-request-id": "req_tg", **f.headers})  # fmt: skip
        return self._route(request)

    def _route(self, request: httpx.Request) -> httpx.Response:
        path, m = request.url.path, request.method
        routes: list[tuple[str, str, Callable[..., httpx.Response]]] = [
            ("POST", r"/v1/files", self._upload_url),
            ("POST", r"/v1/files/multipart/initiate", self._initiate),
            ("PUT", r"/upload-part/([^/]+)/(\d+)", self._put_part),
            ("POST", r"/v1/files/multipart/complete", self._complete),
            ("POST", r"/v1/files/multipart/abort", self._abort),
            ("PUT", r"/upload/([^/]+)", self._put),
            ("POST", r"/v1/files/([^/]+)/preprocess", self._preprocess),
            ("GET", r"/v1/files/([^/]+)", self._get_file),
            ("GET", r"/v1/fine-tunes/models/limits", self._limits),
            ("POST", r"/v1/fine-tunes/estimate-price", self._estimate),
            ("POST", r"/v1/fine-tunes", self._create),
            ("GET", r"/v1/fine-tunes", self._list),
            ("GET", r"/v1/fine-tunes/([^/]+)", self._get),
            ("POST", r"/v1/fine-tunes/([^/]+)/cancel", self._cancel),
            ("GET", r"/v1/fine-tunes/([^/]+)/events", lambda r, i: self._data(self.events, i)),
            ("GET", r"/v1/fine-tunes/([^/]+)/checkpoints", lambda r, i: self._data(self.checkpoints, i)),
            ("GET", r"/v1/fine-tunes/([^/]+)/metrics", lambda r, i: httpx.Response(200, json={"metrics": self.metrics.get(i, [])})),
            ("POST", r"/v1/chat/completions", self._chat),
        ]  # fmt: skip
        for method, pattern, fn in routes:
            match = re.fullmatch(pattern, path)
            if method == m and match:
                return fn(request, *match.groups())
        return _error(404, f"no route {m} {path}")

    # -- files -------------------------------------------------------------------------------------

    def _upload_url(self, request: httpx.Request) -> httpx.Response:
        body = request.read()
        name = re.search(rb'name="file_name"\r\n\r\n([^\r]+)', body)
        file_id = f"file-{next(self._ids):06d}"
        self.files[file_id] = {"id": file_id, "object": "file", "bytes": 0, "created_at": 1_763_769_600,
                               "filename": name.group(1).decode() if name else "?", "FileType": "jsonl",
                               "purpose": "fine-tune", "processing_status": "PENDING", "polls": 0}  # fmt: skip
        return httpx.Response(302, headers={"Location": f"http://together.test/upload/{file_id}",
                                            "X-Together-File-Id": file_id})  # fmt: skip

    def _put(self, request: httpx.Request, file_id: str) -> httpx.Response:
        self.file_bytes[file_id] = request.read()
        self.files[file_id]["bytes"] = len(self.file_bytes[file_id])
        return httpx.Response(200)

    def _initiate(self, request: httpx.Request) -> httpx.Response:
        data = json.loads(request.read())
        file_id = f"file-{next(self._ids):06d}"
        upload_id = f"mpu-{next(self._ids):06d}"
        self.files[file_id] = {"id": file_id, "object": "file", "bytes": 0, "created_at": 1_763_769_600,
                               "filename": data["file_name"], "FileType": data["file_type"], "purpose": data["purpose"],
                               "processing_status": "PENDING", "polls": 0}  # fmt: skip
        self.multipart[upload_id] = {
            "file_id": file_id,
            "parts": {},
            "status": "pending",
            "size": data["file_size"],
        }
        parts = [{"PartNumber": n, "URL": f"http://together.test/upload-part/{upload_id}/{n}", "Headers": {}}
                 for n in range(1, int(data["num_parts"]) + 1)]  # fmt: skip
        return httpx.Response(200, json={"upload_id": upload_id, "file_id": file_id, "parts": parts})

    def _put_part(self, request: httpx.Request, upload_id: str, number: str) -> httpx.Response:
        body = request.read()
        self.multipart[upload_id]["parts"][int(number)] = body
        return httpx.Response(200, headers={"ETag": f'"etag-{upload_id}-{number}-{len(body)}"'})

    def _complete(self, request: httpx.Request) -> httpx.Response:
        data = json.loads(request.read())
        upload = self.multipart[data["upload_id"]]
        if upload["status"] != "pending":
            return _error(400, f"multipart upload {data['upload_id']} is already {upload['status']}")
        numbers = [p["part_number"] for p in data["parts"]]
        blob = b"".join(upload["parts"][n] for n in numbers)
        if len(blob) != upload["size"]:
            return _error(400, f"expected {upload['size']} bytes, got {len(blob)}")
        upload["status"] = "completed"
        file_id = upload["file_id"]
        self.file_bytes[file_id] = blob
        self.files[file_id]["bytes"] = len(blob)
        return httpx.Response(200, json={"file": self._public(file_id)})

    def _abort(self, request: httpx.Request) -> httpx.Response:
        data = json.loads(request.read())
        self.multipart[data["upload_id"]]["status"] = "aborted"
        return httpx.Response(200, json={})

    def _public(self, file_id: str) -> dict[str, Any]:
        return {k: v for k, v in self.files[file_id].items() if k != "polls"}

    def _preprocess(self, request: httpx.Request, file_id: str) -> httpx.Response:
        return httpx.Response(200, json=self._public(file_id))

    def _get_file(self, request: httpx.Request, file_id: str) -> httpx.Response:
        if file_id not in self.files:
            return _error(404, f"file {file_id} not found")
        f = self.files[file_id]
        f["polls"] += 1
        if f["polls"] > self.processing_polls:
            f.update(self.processing_result)
        else:
            f["processing_status"] = "RUNNING"
        return httpx.Response(200, json=self._public(file_id))

    # -- jobs -------------------------------------------------------------------------------------------

    def _limits(self, request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={**self.limits, "model_name": request.url.params.get("model_name")})

    def _estimate(self, request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=self.estimate)

    def _create(self, request: httpx.Request) -> httpx.Response:
        data = json.loads(request.read())
        if data.get("training_file") not in self.files:
            return _error(400, f"training_file {data.get('training_file')} not found")
        job_id = f"ft-{next(self._ids):08d}"
        model = data["model"]
        output = f"user/{model.split('/')[-1]}-{data['suffix']}" if data.get("suffix") else f"user/{model}-x"
        self.jobs[job_id] = {
            "id": job_id, "status": "pending", "user_id": "u1", "model": model, "model_output_name": output,
            "created_at": self._now(), "updated_at": self._now(), "training_file": data["training_file"],
            "validation_file": data.get("validation_file", ""), "n_epochs": data.get("n_epochs"),
            "n_evals": data.get("n_evals"), "batch_size": data.get("batch_size"),
            "learning_rate": data.get("learning_rate"), "training_type": data.get("training_type"),
            "training_method": data.get("training_method"), "epochs_completed": 0, "token_count": None,
            "events": [],
        }  # fmt: skip
        self.events[job_id] = []
        self.metrics[job_id] = []
        self.checkpoints[job_id] = []
        self.add_event(job_id, "Fine tune request created", type="job_pending")
        self.created.append(data)
        self.visible_at[job_id] = self.faults.visible_at() if self.faults is not None else 0.0
        return httpx.Response(200, json=self.jobs[job_id])

    def _list(self, request: httpx.Request) -> httpx.Response:
        jobs = list(self.jobs.values())
        if self.faults is not None:  # a list that lags: new jobs show only after a while
            jobs = [j for j in jobs if self.visible_at.get(j["id"], 0.0) <= self.faults.now()]
        return httpx.Response(200, json={"data": jobs})

    def _get(self, request: httpx.Request, job_id: str) -> httpx.Response:
        if job_id not in self.jobs:
            return _error(404, f"fine-tune {job_id} not found")
        return httpx.Response(200, json={**self.jobs[job_id], "events": self.events[job_id]})

    def _cancel(self, request: httpx.Request, job_id: str) -> httpx.Response:
        if job_id not in self.jobs:
            return _error(404, f"fine-tune {job_id} not found")
        if self.jobs[job_id]["status"] in ("completed", "cancelled", "error", "user_error"):
            return _error(400, f"job {job_id} is already {self.jobs[job_id]['status']}")
        self.jobs[job_id]["status"] = "cancel_requested"
        return httpx.Response(200, json={"id": job_id, "status": "cancel_requested"})

    def _data(self, table: dict[str, list[dict[str, Any]]], job_id: str) -> httpx.Response:
        if job_id not in table:
            return _error(404, f"fine-tune {job_id} not found")
        return httpx.Response(200, json={"data": table[job_id]})

    def _chat(self, request: httpx.Request) -> httpx.Response:
        data = json.loads(request.read())
        return httpx.Response(200, json={
            "id": "c1", "object": "chat.completion", "created": 1, "model": data["model"],
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": "echo: " + data["messages"][-1]["content"]}}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
        })  # fmt: skip


def _error(status: int, message: str) -> httpx.Response:
    return httpx.Response(status, json={"error": {"message": message, "type": "invalid_request_error"}},
                          headers={"x-request-id": "req_tg"})  # fmt: skip
