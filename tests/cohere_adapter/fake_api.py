"""A small, stateful stand-in for Cohere's datasets, fine-tuning and chat endpoints, served to the
real `cohere` SDK through `httpx.MockTransport` (no socket). It can fail the next requests on a path;
with a `FaultPlan` (tests/faults) it also fails requests at random, seeded, and lists a new model
only `list_lag` seconds of the plan's clock after it was made. What every fake shares is in
`tests/_fakehttp.py`."""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx

from tests._fakehttp import Answer, FailQueue, FakeHTTPAPI, Route, read_json
from tests.faults.plan import FaultPlan

_START = dt.datetime(2026, 11, 22, tzinfo=dt.timezone.utc)
_NOW = "2026-11-22T00:00:00Z"
_MODELS = "/v1/finetuning/finetuned-models"


class FakeCohere(FakeHTTPAPI):
    http = httpx
    request_id = "req_co"

    def __init__(self, faults: FaultPlan | None = None) -> None:
        super().__init__(faults)
        self.datasets: dict[str, dict[str, Any]] = {}
        self.dataset_bodies: dict[str, bytes] = {}
        self.models: dict[str, dict[str, Any]] = {}
        self.events: dict[str, list[dict[str, Any]]] = {}
        self.metrics: dict[str, list[dict[str, Any]]] = {}
        self.validation = "validated"
        self.validation_error: str | None = None
        self.page_size_seen: list[int] = []
        #: `fail.append((path regex, status, headers))` fails one request; `fail(...)` is still the
        #: shared `FakeHTTPAPI.fail`.
        self.fail = FailQueue(self.fail)  # type: ignore[method-assign]

    def error_body(self, status: int, message: str, **fields: Any) -> Any:
        return {"message": message}

    def jobs_with_key(self, key: str) -> list[str]:
        """The fine-tuned models whose name carries this idempotency key's tag (the state itself)."""
        from unitune.providers.base import key_tag

        tag = "-" + key_tag(key)
        return [m["id"] for m in self.models.values() if str(m.get("name", "")).endswith(tag)]

    def routes(self) -> list[Route]:
        return [
            ("POST", r"/v1/datasets", self._create_dataset),
            ("GET", r"/v1/datasets/([^/]+)", self._get_dataset),
            ("POST", _MODELS, self._create_model),
            ("GET", _MODELS, self._list_models),
            ("GET", _MODELS + r"/([^/]+)", lambda r, i: self._model(i, lambda m: {"finetuned_model": m})),
            ("DELETE", _MODELS + r"/([^/]+)", self._delete_model),
            ("GET", _MODELS + r"/([^/]+)/events",
             lambda r, i: self._model(i, lambda m: {"events": self.events[i][::-1], "next_page_token": ""})),
            ("GET", _MODELS + r"/([^/]+)/training-step-metrics",
             lambda r, i: self._model(i, lambda m: {"step_metrics": self.metrics[i], "next_page_token": ""})),
            ("POST", r"/v2/chat", self._chat),
        ]  # fmt: skip

    def _create_dataset(self, request: httpx.Request) -> Answer:
        ds_id = self.new_id("ds")
        self.dataset_bodies[ds_id] = request.read()
        self.datasets[ds_id] = {"id": ds_id, "name": request.url.params["name"], "created_at": _NOW, "updated_at": _NOW,
                                "dataset_type": request.url.params["type"], "validation_status": "processing"}  # fmt: skip
        return 200, {"id": ds_id}

    def _get_dataset(self, request: httpx.Request, ds_id: str) -> Answer:
        if ds_id not in self.datasets:
            return self.error(404, f"dataset {ds_id} not found")
        ds = self.datasets[ds_id]
        ds["validation_status"] = self.validation
        if self.validation_error:
            ds["validation_error"] = self.validation_error
        return 200, {"dataset": ds}

    def _create_model(self, request: httpx.Request) -> Answer:
        data = read_json(request)
        ft_id = self.new_id("ft", 4)
        created = (_START + dt.timedelta(seconds=len(self.models))).strftime("%Y-%m-%dT%H:%M:%SZ")
        self.models[ft_id] = {**data, "id": ft_id, "status": "STATUS_QUEUED", "created_at": created}
        self.mark_new(ft_id)
        self.events[ft_id] = [{"status": "STATUS_QUEUED", "created_at": _NOW, "user_id": "u1"}]
        self.metrics[ft_id] = []
        return 200, {"finetuned_model": self.models[ft_id]}

    def _list_models(self, request: httpx.Request) -> Answer:
        size = int(request.url.params.get("page_size", 50))
        self.page_size_seen.append(size)
        start = int(request.url.params.get("page_token") or 0)
        items = self.listed(list(self.models.values()))
        nxt = str(start + size) if start + size < len(items) else ""
        return 200, {"finetuned_models": items[start : start + size], "next_page_token": nxt,
                     "total_size": len(items)}  # fmt: skip

    def _model(self, ft_id: str, body: Any) -> Answer:
        if ft_id not in self.models:
            return self.error(404, f"{ft_id} not found")
        return 200, body(self.models[ft_id])

    def _delete_model(self, request: httpx.Request, ft_id: str) -> Answer:
        if ft_id not in self.models:
            return self.error(404, f"{ft_id} not found")
        self.models[ft_id]["status"] = "STATUS_DELETED"
        return 200, {}

    def _chat(self, request: httpx.Request) -> Answer:
        data = read_json(request)
        return 200, {
            "id": "c1", "finish_reason": "COMPLETE",
            "message": {"role": "assistant", "content": [{"type": "text", "text": "echo: " + data["messages"][-1]["content"]}]},
            "usage": {"billed_units": {"input_tokens": 6, "output_tokens": 3}}}  # fmt: skip
