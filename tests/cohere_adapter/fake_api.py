"""A small, stateful stand-in for Cohere's datasets, fine-tuning and chat endpoints, served to the
real `cohere` SDK through `httpx.MockTransport` (no socket). It can fail the next requests on a path;
with a `FaultPlan` (tests/faults) it also fails requests at random, seeded, and lists a new model
only `list_lag` seconds of the plan's clock after it was made."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import re
import typing

import httpx

from tests.faults.plan import FaultPlan

_START = dt.datetime(2026, 11, 22, tzinfo=dt.timezone.utc)


class FakeCohere:
    def __init__(self, faults: FaultPlan | None = None) -> None:
        self.faults = faults
        self.visible_at: dict[str, float] = {}  # when a model shows in lists (the plan's list lag)
        self.datasets: dict[str, dict[str, typing.Any]] = {}
        self.dataset_bodies: dict[str, bytes] = {}
        self.models: dict[str, dict[str, typing.Any]] = {}
        self.events: dict[str, list[dict[str, typing.Any]]] = {}
        self.metrics: dict[str, list[dict[str, typing.Any]]] = {}
        self.requests: list[httpx.Request] = []
        self.validation = "validated"
        self.validation_error: str | None = None
        self.fail: list[tuple[str, int, dict[str, str]]] = []
        self.page_size_seen: list[int] = []
        self._ids = itertools.count(1)

    def transport(self) -> httpx.MockTransport:
        if self.faults is None:
            return httpx.MockTransport(self.handle)
        return httpx.MockTransport(self.faults.handler(self.handle, httpx))

    def jobs_with_key(self, key: str) -> list[str]:
        """The fine-tuned models whose name carries this idempotency key's tag (the state itself)."""
        from unitune.providers.base import key_tag

        tag = "-" + key_tag(key)
        return [m["id"] for m in self.models.values() if str(m.get("name", "")).endswith(tag)]

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        key = f"{request.method} {request.url.path}"
        for i, (pattern, status, headers) in enumerate(self.fail):
            if re.fullmatch(pattern, key):
                del self.fail[i]
                return httpx.Response(
                    status, json={"message": "injected"}, headers={"x-request-id": "req_co", **headers}
                )
        path, m = request.url.path, request.method
        now = "2026-11-22T00:00:00Z"
        if m == "POST" and path == "/v1/datasets":
            ds_id = f"ds-{next(self._ids)}"
            self.dataset_bodies[ds_id] = request.read()
            self.datasets[ds_id] = {"id": ds_id, "name": request.url.params["name"], "created_at": now, "updated_at": now,
                                    "dataset_type": request.url.params["type"], "validation_status": "processing"}  # fmt: skip
            return httpx.Response(200, json={"id": ds_id})
        if m == "GET" and (mm := re.fullmatch(r"/v1/datasets/([^/]+)", path)):
            ds = self.datasets[mm.group(1)]
            ds["validation_status"] = self.validation
            if self.validation_error:
                ds["validation_error"] = self.validation_error
            return httpx.Response(200, json={"dataset": ds})
        if m == "POST" and path == "/v1/finetuning/finetuned-models":
            data = json.loads(request.read())
            ft_id = f"ft-{next(self._ids):04d}"
            self.models[ft_id] = {
                **data,
                "id": ft_id,
                "status": "STATUS_QUEUED",
                "created_at": (_START + dt.timedelta(seconds=len(self.models))).strftime(
                    "%Y-%m-%dT%H:%M:%SZ"
                ),
            }
            self.visible_at[ft_id] = self.faults.visible_at() if self.faults is not None else 0.0
            self.events[ft_id] = [{"status": "STATUS_QUEUED", "created_at": now, "user_id": "u1"}]
            self.metrics[ft_id] = []
            return httpx.Response(200, json={"finetuned_model": self.models[ft_id]})
        if m == "GET" and path == "/v1/finetuning/finetuned-models":
            size = int(request.url.params.get("page_size", 50))
            self.page_size_seen.append(size)
            start = int(request.url.params.get("page_token") or 0)
            items = list(self.models.values())
            if self.faults is not None:  # a list that lags: new models show only after a while
                items = [m for m in items if self.visible_at.get(m["id"], 0.0) <= self.faults.now()]
            nxt = str(start + size) if start + size < len(items) else ""
            return httpx.Response(200, json={"finetuned_models": items[start : start + size], "next_page_token": nxt,
                                             "total_size": len(items)})  # fmt: skip
        if mm := re.fullmatch(
            r"/v1/finetuning/finetuned-models/([^/]+)(/events|/training-step-metrics)?", path
        ):
            ft_id, sub = mm.group(1), mm.group(2)
            if ft_id not in self.models:
                return httpx.Response(404, json={"message": f"{ft_id} not found"})
            if m == "DELETE":
                self.models[ft_id]["status"] = "STATUS_DELETED"
                return httpx.Response(200, json={})
            if sub == "/events":
                return httpx.Response(200, json={"events": self.events[ft_id][::-1], "next_page_token": ""})
            if sub == "/training-step-metrics":
                return httpx.Response(200, json={"step_metrics": self.metrics[ft_id], "next_page_token": ""})
            return httpx.Response(200, json={"finetuned_model": self.models[ft_id]})
        if m == "POST" and path == "/v2/chat":
            data = json.loads(request.read())
            return httpx.Response(200, json={
                "id": "c1", "finish_reason": "COMPLETE",
                "message": {"role": "assistant", "content": [{"type": "text", "text": "echo: " + data["messages"][-1]["content"]}]},
                "usage": {"billed_units": {"input_tokens": 6, "output_tokens": 3}}})  # fmt: skip
        return httpx.Response(404, json={"message": f"no route {m} {path}"})
