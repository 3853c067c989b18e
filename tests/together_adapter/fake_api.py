"""A stateful stand-in for Together's fine-tuning API, served to the real `together` SDK through
`httpx.MockTransport` (no socket). It speaks the upload protocol the SDK uses and the spec does
not describe (POST /v1/files → 302 + X-Together-File-Id → PUT → /preprocess → processing), the
limits and estimate calls `create()` makes, jobs, events, metrics, checkpoints and chat, the
multipart protocol of large files (initiate → a PUT per part → complete), and can fail the next
requests on a path. With a `FaultPlan` (tests/faults) it also fails requests at random, seeded,
and lists a new job only `list_lag` seconds of the plan's clock after it was made. What every fake
shares is in `tests/_fakehttp.py`.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import httpx

from tests._fakehttp import Answer, FakeHTTPAPI, Reply, Route, read_json
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
_START = dt.datetime(2026, 11, 22, tzinfo=dt.timezone.utc)


class FakeTogether(FakeHTTPAPI):
    http = httpx
    request_id = "req_tg"

    def __init__(self, faults: FaultPlan | None = None) -> None:
        super().__init__(faults)
        self.multipart: dict[str, dict[str, Any]] = {}  # upload id -> {"file_id", "parts", "status"}
        self.files: dict[str, dict[str, Any]] = {}
        self.file_bytes: dict[str, bytes] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        self.events: dict[str, list[dict[str, Any]]] = {}
        self.metrics: dict[str, list[dict[str, float]]] = {}
        self.checkpoints: dict[str, list[dict[str, Any]]] = {}
        self.created: list[dict[str, Any]] = []  # each create request's JSON body
        self.limits = dict(LIMITS)
        self.estimate: dict[str, Any] = {"estimation_available": True, "allowed_to_proceed": True,
                                         "estimated_total_price": 4.2, "estimated_train_token_count": 1e6,
                                         "estimated_eval_token_count": 0, "user_limit": 100.0}  # fmt: skip
        #: How many GETs of a file answer RUNNING before it is processed, and how it ends.
        self.processing_polls = 1
        self.processing_result: dict[str, Any] = {"processing_status": "COMPLETED",
                                                  "validation_report": {"valid": True, "nlines": 60}}  # fmt: skip

    def error_body(self, status: int, message: str, **fields: Any) -> Any:
        return {"error": {"message": message, "type": "invalid_request_error"}}

    def set_status(self, job_id: str, status: str, **fields: Any) -> None:
        self.jobs[job_id].update(status=status, **fields)

    def add_event(self, job_id: str, message: str, *, level: str = "info", type: str = "job_start",
                  **fields: Any) -> None:  # fmt: skip
        self.events[job_id].append({"object": "fine-tune-event", "created_at": self._now(), "message": message,
                                    "level": level, "type": type, **fields})  # fmt: skip

    def jobs_with_key(self, key: str) -> list[str]:
        """The jobs whose output name carries this idempotency key's tag (the state itself: no faults)."""
        from unitune.providers.together import idempotency_tag

        tag = idempotency_tag(key)
        return [j["id"] for j in self.jobs.values() if str(j.get("model_output_name", "")).endswith(tag)]

    def _now(self) -> str:
        return (_START + dt.timedelta(seconds=self.tick())).isoformat().replace("+00:00", "Z")

    def routes(self) -> list[Route]:
        return [
            ("POST", r"/v1/files", self._upload_url),
            ("POST", r"/v1/files/multipart/initiate", self._initiate),
            ("PUT", r"/upload-part/([^/]+)/(\d+)", self._put_part),
            ("POST", r"/v1/files/multipart/complete", self._complete),
            ("POST", r"/v1/files/multipart/abort", self._abort),
            ("PUT", r"/upload/([^/]+)", self._put),
            ("POST", r"/v1/files/([^/]+)/preprocess", lambda r, i: (200, self._public(i))),
            ("GET", r"/v1/files/([^/]+)", self._get_file),
            ("GET", r"/v1/files", lambda r: (200, {"data": [self._public(i) for i in self.files]})),
            ("DELETE", r"/v1/files/([^/]+)", self._delete_file),
            ("GET", r"/v1/fine-tunes/models/limits", self._limits),
            ("POST", r"/v1/fine-tunes/estimate-price", lambda r: (200, self.estimate)),
            ("POST", r"/v1/fine-tunes", self._create),
            ("GET", r"/v1/fine-tunes", lambda r: (200, {"data": self.listed(list(self.jobs.values()))})),
            ("GET", r"/v1/fine-tunes/([^/]+)", self._get),
            ("POST", r"/v1/fine-tunes/([^/]+)/cancel", self._cancel),
            ("GET", r"/v1/fine-tunes/([^/]+)/events", lambda r, i: self._data(self.events, i)),
            ("GET", r"/v1/fine-tunes/([^/]+)/checkpoints", lambda r, i: self._data(self.checkpoints, i)),
            ("GET", r"/v1/fine-tunes/([^/]+)/metrics", lambda r, i: (200, {"metrics": self.metrics.get(i, [])})),
            ("POST", r"/v1/chat/completions", self._chat),
        ]  # fmt: skip

    # -- files -------------------------------------------------------------------------------------

    def _new_file(self, name: str, file_type: str = "jsonl", purpose: str = "fine-tune") -> str:
        file_id = self.new_id("file", 6)
        self.files[file_id] = {"id": file_id, "object": "file", "bytes": 0, "created_at": 1_763_769_600,
                               "filename": name, "FileType": file_type, "purpose": purpose,
                               "processing_status": "PENDING", "polls": 0}  # fmt: skip
        return file_id

    def _upload_url(self, request: httpx.Request) -> Answer:
        name = re.search(rb'name="file_name"\r\n\r\n([^\r]+)', request.read())
        file_id = self._new_file(name.group(1).decode() if name else "?")
        return Reply(302, headers={"Location": f"http://together.test/upload/{file_id}",
                                   "X-Together-File-Id": file_id})  # fmt: skip

    def _put(self, request: httpx.Request, file_id: str) -> Answer:
        self.file_bytes[file_id] = request.read()
        self.files[file_id]["bytes"] = len(self.file_bytes[file_id])
        return Reply(200)

    def _initiate(self, request: httpx.Request) -> Answer:
        data = read_json(request)
        file_id = self._new_file(data["file_name"], data["file_type"], data["purpose"])
        upload_id = self.new_id("mpu", 6)
        self.multipart[upload_id] = {
            "file_id": file_id,
            "parts": {},
            "status": "pending",
            "size": data["file_size"],
        }
        parts = [{"PartNumber": n, "URL": f"http://together.test/upload-part/{upload_id}/{n}", "Headers": {}}
                 for n in range(1, int(data["num_parts"]) + 1)]  # fmt: skip
        return 200, {"upload_id": upload_id, "file_id": file_id, "parts": parts}

    def _put_part(self, request: httpx.Request, upload_id: str, number: str) -> Answer:
        body = request.read()
        self.multipart[upload_id]["parts"][int(number)] = body
        return Reply(200, headers={"ETag": f'"etag-{upload_id}-{number}-{len(body)}"'})

    def _complete(self, request: httpx.Request) -> Answer:
        data = read_json(request)
        upload = self.multipart[data["upload_id"]]
        if upload["status"] != "pending":
            return self.error(400, f"multipart upload {data['upload_id']} is already {upload['status']}")
        blob = b"".join(upload["parts"][p["part_number"]] for p in data["parts"])
        if len(blob) != upload["size"]:
            return self.error(400, f"expected {upload['size']} bytes, got {len(blob)}")
        upload["status"] = "completed"
        file_id = upload["file_id"]
        self.file_bytes[file_id] = blob
        self.files[file_id]["bytes"] = len(blob)
        return 200, {"file": self._public(file_id)}

    def _abort(self, request: httpx.Request) -> Answer:
        self.multipart[read_json(request)["upload_id"]]["status"] = "aborted"
        return 200, {}

    def _public(self, file_id: str) -> dict[str, Any]:
        return {k: v for k, v in self.files[file_id].items() if k != "polls"}

    def _delete_file(self, request: httpx.Request, file_id: str) -> Answer:
        if self.files.pop(file_id, None) is None:
            return self.error(404, f"file {file_id} not found")
        self.file_bytes.pop(file_id, None)
        return 200, {"id": file_id, "deleted": True}

    def _get_file(self, request: httpx.Request, file_id: str) -> Answer:
        if file_id not in self.files:
            return self.error(404, f"file {file_id} not found")
        f = self.files[file_id]
        f["polls"] += 1
        if f["polls"] > self.processing_polls:
            f.update(self.processing_result)
        else:
            f["processing_status"] = "RUNNING"
        return 200, self._public(file_id)

    # -- jobs -------------------------------------------------------------------------------------------

    def _limits(self, request: httpx.Request) -> Answer:
        return 200, {**self.limits, "model_name": request.url.params.get("model_name")}

    def _create(self, request: httpx.Request) -> Answer:
        data = read_json(request)
        if data.get("training_file") not in self.files:
            return self.error(400, f"training_file {data.get('training_file')} not found")
        job_id = self.new_id("ft", 8)
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
        self.mark_new(job_id)
        return 200, self.jobs[job_id]

    def _get(self, request: httpx.Request, job_id: str) -> Answer:
        if job_id not in self.jobs:
            return self.error(404, f"fine-tune {job_id} not found")
        return 200, {**self.jobs[job_id], "events": self.events[job_id]}

    def _cancel(self, request: httpx.Request, job_id: str) -> Answer:
        if job_id not in self.jobs:
            return self.error(404, f"fine-tune {job_id} not found")
        if self.jobs[job_id]["status"] in ("completed", "cancelled", "error", "user_error"):
            return self.error(400, f"job {job_id} is already {self.jobs[job_id]['status']}")
        self.jobs[job_id]["status"] = "cancel_requested"
        return 200, {"id": job_id, "status": "cancel_requested"}

    def _data(self, table: dict[str, list[dict[str, Any]]], job_id: str) -> Answer:
        if job_id not in table:
            return self.error(404, f"fine-tune {job_id} not found")
        return 200, {"data": table[job_id]}

    def _chat(self, request: httpx.Request) -> Answer:
        data = read_json(request)
        return 200, {
            "id": "c1", "object": "chat.completion", "created": 1, "model": data["model"],
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": "echo: " + data["messages"][-1]["content"]}}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
        }  # fmt: skip
