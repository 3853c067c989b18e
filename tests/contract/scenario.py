"""The lifecycle every adapter runs against its vendor's spec: upload → create → get → list →
events → cancel → chat, then a request the spec must refuse.

Prism keeps no state and answers with the spec's examples, so the checks are about shape and
mapping: each call is accepted by the vendor's schema (or Prism would answer 422), each answer
parses into unitune's types, statuses map through the adapter's table (strict mode: an unknown
status fails), and a refused request arrives as a unitune error, never a crash. Gaps between a
vendor's SDK and its own spec are passed in as `gaps` and written into the test that uses them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from unitune import FineTuneClient, Hyperparameters, Job, JobStatus, ProviderError
from unitune.config import UnituneConfig
from unitune.providers.base import Provider
from unitune.testing import FakeClock
from unitune.types import ChatResponse, FileRef, JobEvent

STEPS = ("upload", "create", "get", "list", "events", "cancel", "chat")


@dataclass
class Scenario:
    model: str
    chat_model: str
    #: Sends one request the vendor's spec does not allow (through the adapter); must raise ProviderError.
    invalid: Callable[[Provider], Any]
    #: Steps the vendor's SDK cannot run against its own spec, with the reason (recorded, not hidden).
    gaps: dict[str, str] = field(default_factory=dict)
    hyperparameters: Hyperparameters | None = None
    #: Catalog override files (e.g. an account that still has a retired vendor's legacy API).
    catalog: list[Path] = field(default_factory=list)
    today: dt.date = dt.date(2026, 11, 22)


def run_lifecycle(provider: Provider, data: Path, scenario: Scenario, tmp_path: Path) -> dict[str, Any]:
    clock = FakeClock(dt.datetime.combine(scenario.today, dt.time(), dt.timezone.utc))
    config = UnituneConfig(catalog=scenario.catalog)
    client = FineTuneClient(provider, config=config, ledger=tmp_path / "ledger.sqlite3", clock=clock)
    seen: dict[str, Any] = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("UNITUNE_STRICT_STATUS", "1")  # an unmapped status fails the contract
        if "upload" not in scenario.gaps:
            ref = client.upload(data, model=scenario.model)
            assert isinstance(ref, FileRef)
            assert ref.id
            assert ref.provider == provider.name
            seen["upload"] = ref
        if "create" not in scenario.gaps:
            job = client.create_job(model=scenario.model, training_data=seen.get("upload", data),
                                    hyperparameters=scenario.hyperparameters)  # fmt: skip
            assert isinstance(job, Job)
            assert job.id
            assert isinstance(job.status, JobStatus)
            seen["create"] = job
        job_id = seen["create"].id if "create" in seen else "ft-example"
        if "get" not in scenario.gaps:
            got = client.get_job(job_id)
            assert isinstance(got, Job)
            assert got.raw_status
            seen["get"] = got
        if "list" not in scenario.gaps:
            listed = client.list_jobs(limit=5)
            assert listed
            assert all(isinstance(j, Job) for j in listed)
            seen["list"] = listed
        if "events" not in scenario.gaps:
            events = client.events(job_id)
            assert all(isinstance(e, JobEvent) for e in events)
            seen["events"] = events
        if "cancel" not in scenario.gaps:
            cancelled = client.cancel_job(job_id)
            assert isinstance(cancelled, Job)
            seen["cancel"] = cancelled
        if "chat" not in scenario.gaps:
            answer = client.chat(scenario.chat_model, "Where is my order?")
            assert isinstance(answer, ChatResponse)
            assert answer.provider == provider.name
            seen["chat"] = answer
        with pytest.raises(ProviderError) as refused:
            scenario.invalid(provider)
        seen["invalid"] = refused.value
    return seen
