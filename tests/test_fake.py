from __future__ import annotations

from pathlib import Path

import pytest

from unitune import FineTuneClient, JobStatus, Message, NotFoundError, ProviderError, RateLimitError
from unitune.testing import FakeClock, FakeProvider, FakeSettings

S = JobStatus


def _client(fake: FakeProvider) -> FineTuneClient:
    return FineTuneClient(fake, ledger=False)


def test_poll_driven_progression_is_deterministic(train_file: Path) -> None:
    runs = []
    for _ in range(2):
        fake = FakeProvider(clock=FakeClock())
        client = _client(fake)
        job = client.create_job(model="m", training_data=train_file)
        statuses = [client.get_job(job).status for _ in range(7)]
        runs.append((statuses, client.metrics(job), [e.message for e in client.events(job)]))
    assert runs[0] == runs[1]
    assert runs[0][0] == [S.QUEUED, S.RUNNING, S.RUNNING, S.RUNNING, S.SUCCEEDED, S.SUCCEEDED, S.SUCCEEDED]


def test_clock_driven_progression(train_file: Path) -> None:
    clock = FakeClock()
    fake = FakeProvider(FakeSettings(advance="clock", seconds_per_step=10), clock=clock)
    client = _client(fake)
    job = client.create_job(model="m", training_data=train_file)
    assert client.get_job(job).status is S.VALIDATING  # polling alone does not move it
    assert client.get_job(job).status is S.VALIDATING
    clock.advance(10)
    assert client.get_job(job).status is S.QUEUED
    clock.advance(1000)
    assert client.get_job(job).status is S.SUCCEEDED


def test_progress_and_metrics_grow(train_file: Path) -> None:
    fake = FakeProvider(clock=FakeClock())
    client = _client(fake)
    job = client.create_job(model="m", training_data=train_file, validation_data=train_file)
    progress, counts = [], []
    for _ in range(5):
        j = client.get_job(job)
        progress.append(j.progress)
        counts.append(len(client.metrics(job)))
    assert progress == sorted(progress)
    assert progress[-1] == 1.0
    assert counts == sorted(counts)
    assert counts[-1] == 30
    valid = [m for m in client.metrics(job) if m.valid_loss is not None]
    assert [m.step for m in valid] == [10, 20, 30]  # validation loss once per epoch


def test_events_are_in_time_order_with_steps_inside_training(train_file: Path) -> None:
    fake = FakeProvider(clock=FakeClock())
    client = _client(fake)
    job = client.wait(client.create_job(model="m", training_data=train_file))
    events = client.events(job)
    kinds = [e.type for e in events]
    assert kinds[:3] == ["status", "status", "status"]  # validating, queued, running
    assert kinds[-1] == "status"
    assert kinds.count("metrics") == 3
    assert [e.created_at for e in events] == sorted(e.created_at for e in events)


def test_injected_error_factory_and_times(train_file: Path) -> None:
    fake = FakeProvider(clock=FakeClock())
    fake.inject_error("list_jobs", ProviderError("teapot", provider="fake", status_code=418), times=2)
    with pytest.raises(ProviderError, match="teapot"):
        fake.list_jobs()
    with pytest.raises(ProviderError, match="teapot"):
        fake.list_jobs()
    assert fake.list_jobs() == []
    fake.rate_limit("list_jobs", retry_after=3)
    with pytest.raises(RateLimitError) as info:
        fake.list_jobs()
    assert info.value.retry_after == 3
    assert [c.op for c in fake.calls] == ["list_jobs"] * 4


def test_unknown_file_and_job(train_file: Path) -> None:
    from unitune import FileRef, JobSpec

    fake = FakeProvider(clock=FakeClock())
    with pytest.raises(NotFoundError, match="upload it"):
        fake.create_job(
            JobSpec(model="m", training_file=FileRef(id="nope", provider="fake")), idempotency_key="k"
        )
    with pytest.raises(NotFoundError):
        fake.get_job("nope")


def test_replies_canned_cycle_and_function() -> None:
    fake = FakeProvider(FakeSettings(replies=("one", "two")), clock=FakeClock())
    user = [Message(role="user", content="x")]
    assert [fake.chat("m", user).content for _ in range(3)] == ["one", "two", "one"]
    fake.set_reply(lambda model, msgs: f"{model}:{len(msgs)}")
    assert fake.chat("m", user).content == "m:1"
    fake.set_reply("fixed")
    assert fake.chat("m", user).content == "fixed"


def test_find_job_by_idempotency_key(train_file: Path) -> None:
    fake = FakeProvider(clock=FakeClock())
    job = _client(fake).create_job(model="m", training_data=train_file, idempotency_key="abc")
    found = fake.find_job("abc")
    assert found is not None
    assert found.id == job.id
    assert fake.find_job("zzz") is None
