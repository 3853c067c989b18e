"""A stateful stand-in for Vertex AI's tuning REST API (`v1beta1`), served to the real `google-genai`
SDK through `httpx.MockTransport` (no socket): create, get, list (pages, the `labels.` filter), cancel
of tuning jobs; `generateContent` on a tuned model's endpoint; delete of a tuned model. A job moves one
state per get (`steps`), as the other fakes do. Cloud Storage is not faked here: the tests run
`gcp-storage-emulator` on 127.0.0.1, and `object_exists` (set by the test) lets a create refuse a
training file that is not there, as Vertex AI does. What every fake shares is in `tests/_fakehttp.py`.
"""

from __future__ import annotations

import datetime as dt
import urllib.parse
from collections.abc import Callable
from typing import Any

import httpx

from tests._fakehttp import Answer, FakeHTTPAPI, Route, read_json
from tests.faults.plan import FaultPlan

_START = dt.datetime(2026, 12, 1, tzinfo=dt.timezone.utc)
_STATUS_NAMES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
                 409: "ALREADY_EXISTS", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE"}  # fmt: skip
_ROOT = r"/v1beta1/projects/([^/]+)/locations/([^/]+)"
#: Base models the fake tunes (what Vertex AI lists; a test may add one).
MODELS = {
    "gemini-3.5-flash",
    "gemini-3.5-flash-lite",
    "gemini-3.1-flash-lite",
    "meta/llama3_1@llama-3.1-8b-instruct",
}


class FakeVertex(FakeHTTPAPI):
    http = httpx
    request_id = "req_vx"

    def __init__(self, faults: FaultPlan | None = None) -> None:
        super().__init__(faults)
        self.jobs: dict[str, dict[str, Any]] = {}  # resource name -> the job as the API shows it
        self.polls: dict[str, int] = {}
        self.created: list[dict[str, Any]] = []  # each create request's JSON body
        self.chats: list[dict[str, Any]] = []
        self.deleted: list[str] = []
        self.models = set(MODELS)
        #: The states a job goes through, one per get; the last one stays.
        self.steps = ["JOB_STATE_PENDING", "JOB_STATE_RUNNING", "JOB_STATE_SUCCEEDED"]
        #: Whether a `gs://` object exists (the test wires it to the emulator); None: every one does.
        self.object_exists: Callable[[str], bool] | None = None

    def error_body(self, status: int, message: str, **fields: Any) -> Any:
        return {"error": {"code": status, "message": message, "status": _STATUS_NAMES.get(status, "UNKNOWN")}}

    def routes(self) -> list[Route]:
        return [
            ("POST", rf"{_ROOT}/tuningJobs", self._create),
            ("GET", rf"{_ROOT}/tuningJobs", self._list),
            ("GET", rf"{_ROOT}/tuningJobs/([^/:]+)", self._get),
            ("POST", rf"{_ROOT}/tuningJobs/([^/:]+):cancel", self._cancel),
            ("POST", rf"{_ROOT}/endpoints/([^/:]+):generateContent", self._generate),
            ("DELETE", rf"{_ROOT}/models/([^/:]+)", self._delete_model),
        ]

    # -- test controls ----------------------------------------------------------------------------------

    def set_state(self, name: str, state: str, **fields: Any) -> None:
        """Put a job in `state` now (and keep it there)."""
        self.jobs[name].update(state=state, **fields)
        self.polls[name] = -1

    def jobs_with_key(self, key: str) -> list[str]:
        from unitune.providers.base import key_tag
        from unitune.providers.vertex import IDEMPOTENCY_LABEL

        tag = key_tag(key)
        return [n for n, j in self.jobs.items() if j.get("labels", {}).get(IDEMPOTENCY_LABEL) == tag]

    def advance(self, name: str) -> None:
        """One state on, as a get would."""
        self._step(name)

    # -- routes -----------------------------------------------------------------------------------------

    def _now(self) -> str:
        return (_START + dt.timedelta(seconds=self.tick())).isoformat().replace("+00:00", "Z")

    def _create(self, request: httpx.Request, project: str, location: str) -> Answer:
        body = read_json(request)
        self.created.append(body)
        model = body.get("baseModel")
        if model not in self.models:
            return self.error(400, f"Base model {model} is not supported for tuning.")
        spec = body.get("supervisedTuningSpec") or body.get("preferenceOptimizationSpec") or {}
        uri = spec.get("trainingDatasetUri", "")
        if not uri.startswith("gs://"):
            return self.error(400, "training_dataset_uri must be a Cloud Storage URI (gs://).")
        if self.object_exists is not None and not self.object_exists(uri):
            return self.error(400, f"Failed to read the training dataset {uri}: not found.")
        labels = body.get("labels") or {}
        if len(labels) > 64 or any(not k or k != k.lower() for k in labels):
            return self.error(400, "Invalid labels.")
        job_id = str(1_000_000 + len(self.jobs) + 1)
        name = f"projects/{project}/locations/{location}/tuningJobs/{job_id}"
        job: dict[str, Any] = {
            "name": name,
            "state": "JOB_STATE_PENDING",
            "baseModel": model,
            "createTime": self._now(),
            "updateTime": self._now(),
            "labels": labels,
            "tunedModelDisplayName": body.get("tunedModelDisplayName"),
            "supervisedTuningSpec": spec,
        }
        self.jobs[name] = job
        self.polls[name] = 0
        self.mark_new(name)
        return 200, job

    def _list(self, request: httpx.Request, project: str, location: str) -> Answer:
        params = urllib.parse.parse_qs(request.url.query.decode())
        size = int(params.get("pageSize", ["50"])[0])
        start = int(params.get("pageToken", ["0"])[0] or 0)
        jobs = [dict(j, id=n) for n, j in reversed(self.jobs.items())]  # newest first
        for expr in params.get("filter", []):
            key, _, value = expr.partition("=")
            if key.startswith("labels."):
                jobs = [j for j in jobs if j.get("labels", {}).get(key[len("labels.") :]) == value]
        jobs = [{k: v for k, v in j.items() if k != "id"} for j in self.listed(jobs)]
        page = jobs[start : start + size]
        answer: dict[str, Any] = {"tuningJobs": page}
        if start + size < len(jobs):
            answer["nextPageToken"] = str(start + size)
        return 200, answer

    def _step(self, name: str) -> None:
        if self.polls[name] < 0:
            return
        job = self.jobs[name]
        if job["state"] in ("JOB_STATE_CANCELLING",):
            job.update(state="JOB_STATE_CANCELLED", endTime=self._now())
            return
        if job["state"] not in self.steps:
            return
        self.polls[name] += 1
        state = self.steps[min(self.polls[name], len(self.steps) - 1)]
        job.update(state=state, updateTime=self._now())
        if state == "JOB_STATE_RUNNING" and "startTime" not in job:
            job["startTime"] = self._now()
        if state == "JOB_STATE_SUCCEEDED":
            base = name.split("/tuningJobs/")[0]
            number = name.rsplit("/", 1)[-1]
            job.update(
                endTime=self._now(),
                tunedModel={
                    "model": f"{base}/models/{number}",
                    "endpoint": f"{base}/endpoints/{number}",
                    "checkpoints": [
                        {
                            "checkpointId": "1",
                            "epoch": "1",
                            "step": "10",
                            "endpoint": f"{base}/endpoints/{number}-1",
                        },
                        {
                            "checkpointId": "2",
                            "epoch": "2",
                            "step": "20",
                            "endpoint": f"{base}/endpoints/{number}",
                        },
                    ],
                },
            )

    def _get(self, request: httpx.Request, project: str, location: str, job_id: str) -> Answer:
        name = f"projects/{project}/locations/{location}/tuningJobs/{job_id}"
        if name not in self.jobs:
            return self.error(404, f"The TuningJob {name} does not exist.")
        self._step(name)
        return 200, self.jobs[name]

    def _cancel(self, request: httpx.Request, project: str, location: str, job_id: str) -> Answer:
        name = f"projects/{project}/locations/{location}/tuningJobs/{job_id}"
        job = self.jobs.get(name)
        if job is None:
            return self.error(404, f"The TuningJob {name} does not exist.")
        if job["state"] in ("JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED"):
            return self.error(
                400, f"The TuningJob {name} is in state {job['state']} and cannot be cancelled."
            )
        job.update(state="JOB_STATE_CANCELLING")
        return 200, {}

    def _generate(self, request: httpx.Request, project: str, location: str, endpoint: str) -> Answer:
        body = read_json(request)
        self.chats.append(body)
        last = body["contents"][-1]["parts"][0].get("text", "")
        return 200, {
            "candidates": [
                {"content": {"role": "model", "parts": [{"text": f"echo: {last}"}]}, "finishReason": "STOP"}
            ],
            "usageMetadata": {"promptTokenCount": len(last.split()) + 1, "candidatesTokenCount": 2},
            "modelVersion": endpoint,
        }

    def _delete_model(self, request: httpx.Request, project: str, location: str, model: str) -> Answer:
        self.deleted.append(f"projects/{project}/locations/{location}/models/{model}")
        return 200, {"name": f"projects/{project}/locations/{location}/operations/1", "done": True}
