"""OpenAI's side served by the fake of OpenAI's API (tests/openai_adapter) to the real `openai` SDK and
the real adapter; the target is a fake as Together. One ledger for both, as on one machine."""

from __future__ import annotations

import time
from pathlib import Path

import httpx2
import openai
import pytest

from tests._fakehttp import Answer, read_json
from tests.migrate.conftest import TODAY, answer, rows, write_jsonl
from tests.openai_adapter.fake_api import FakeOpenAI
from unitune import FineTuneClient
from unitune.config import UnituneConfig
from unitune.migrate import migrate
from unitune.providers.openai import OpenAIProvider, OpenAISettings
from unitune.testing import FakeClock, FakeProvider


class RightOpenAI(FakeOpenAI):
    """Answers "a<i>" to "q<i>": the source tuned model is right on every example."""

    def _chat(self, request: httpx2.Request) -> Answer:
        last = read_json(request)["messages"][-1]["content"]
        return 200, {
            "id": "chatcmpl-1", "object": "chat.completion", "created": int(time.time()), "model": "m",
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": f"a{last[1:]}", "refusal": None}}],
            "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10},
        }  # fmt: skip


@pytest.fixture
def api() -> RightOpenAI:
    return RightOpenAI()


def test_migrating_a_job_from_openais_api(api: RightOpenAI, tmp_path: Path) -> None:
    sdk = openai.OpenAI(api_key="sk-test-secret-value-123", base_url="http://openai.test/v1", max_retries=0,
                        http_client=httpx2.Client(transport=api.transport()))  # fmt: skip
    clock = FakeClock(TODAY)
    ledger = tmp_path / "ledger.sqlite3"
    train = write_jsonl(tmp_path / "train.jsonl", rows(100))
    target_fake = FakeProvider(clock=clock, reply=answer(lambda m: True)).as_provider("together")
    with (
        FineTuneClient(OpenAIProvider(OpenAISettings(), client=sdk), config=UnituneConfig(), ledger=ledger,
                       clock=clock) as source,
        FineTuneClient(target_fake, config=UnituneConfig(), ledger=ledger, clock=clock) as target,
    ):  # fmt: skip
        job = source.create_job(
            model="gpt-4o-mini", training_data=train, suffix="tickets",
            hyperparameters={"epochs": 3, "learning_rate_multiplier": 1.8, "batch_size": 4},
        )  # fmt: skip
        api.set_status(
            job.id, "succeeded", fine_tuned_model=f"ft:gpt-4o-mini-2024-07-18:org-fake:tickets:{job.id}"
        )

        plan = migrate(source, target, data=train, dry_run=True).jobs[0].plan
        assert plan.source_job_id == job.id  # found through the vendor's list (and the ledger)
        assert (plan.method, plan.suffix) == ("sft", "tickets")
        assert plan.source_hyperparameters["n_epochs"] == 3  # OpenAI's own names, mapped below
        assert plan.hyperparameters.epochs == 3
        assert plan.hyperparameters.batch_size == 4
        assert plan.hyperparameters.learning_rate == pytest.approx(1.8e-5)

        report = migrate(source, target, data=train)
        result = report.jobs[0]
        assert result.verdict == "parity", result.reason
        assert next(q for q in result.quality if q.name == "source").answered > 0
        again = migrate(source, target, data=train)
        assert again.jobs[0].continued
        assert len(target_fake.calls_to("create_job")) == 1


def test_migrating_from_openais_api_over_a_loopback_socket(tmp_path: Path) -> None:
    """The same, with OpenAI's side a real server on 127.0.0.1 and the source client built from settings
    (base_url and key) as a user's would be: no transport handed in."""
    from tests._fakehttp import serve

    api = RightOpenAI()
    clock = FakeClock(TODAY)
    ledger = tmp_path / "ledger.sqlite3"
    train = write_jsonl(tmp_path / "train.jsonl", rows(100))
    target_fake = FakeProvider(clock=clock, reply=answer(lambda m: True)).as_provider("together")
    with serve(api) as url:
        settings = {"api_key": "sk-test-secret-value-123", "base_url": f"{url}v1"}
        with (
            FineTuneClient("openai", config=UnituneConfig(), ledger=ledger, clock=clock, max_retries=0,
                           **settings) as source,
            FineTuneClient(target_fake, config=UnituneConfig(), ledger=ledger, clock=clock) as target,
        ):  # fmt: skip
            job = source.create_job(model="gpt-4o-mini", training_data=train, suffix="tickets")
            api.set_status(
                job.id, "succeeded", fine_tuned_model=f"ft:gpt-4o-mini-2024-07-18:org-fake:tickets:{job.id}"
            )
            plan = migrate(source, target, dry_run=True).jobs[0].plan  # the data: the ledger's checked file
            assert plan.data.kind == "ledger"
            report = migrate(source, target)
    result = report.jobs[0]
    assert result.verdict == "parity", result.reason
    assert api.calls("POST", r"/v1/chat/completions")  # the source model answered over the socket
    assert len(target_fake.calls_to("create_job")) == 1
