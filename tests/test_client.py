from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from unitune import (
    AsyncFineTuneClient,
    ConfigurationError,
    DatasetError,
    FileRef,
    FineTuneClient,
    Hyperparameters,
    Job,
    JobFailedError,
    JobStatus,
    Ledger,
    NotFoundError,
    ProviderRetiredError,
    ProviderUnavailableError,
    RateLimitError,
    UnsupportedFeatureError,
    WaitTimeout,
)
from unitune.config import RetrySettings, UnituneConfig
from unitune.testing import FakeClock, FakeProvider, FakeSettings

S = JobStatus


def test_lifecycle(client: FineTuneClient, fake: FakeProvider, train_file: Path) -> None:
    job = client.create_job(model="m", training_data=train_file, hyperparameters=Hyperparameters(epochs=2))
    assert job.status is S.VALIDATING
    assert job.raw_status == "validating"
    seen: list[JobStatus] = []
    done = client.wait(job, on_update=lambda j: seen.append(j.status))
    assert done.status is S.SUCCEEDED
    assert done.fine_tuned_model is not None
    assert seen == [S.QUEUED, S.RUNNING, S.RUNNING, S.RUNNING, S.SUCCEEDED]
    metrics = client.metrics(done)
    assert [m.step for m in metrics] == list(range(1, 21))  # 10 steps/epoch x 2 epochs
    assert metrics[-1].train_loss is not None
    assert metrics[0].train_loss is not None
    assert metrics[-1].train_loss < metrics[0].train_loss
    messages = [e.message for e in client.events(done)]
    assert messages[0] == "Validating training file"
    assert messages[-1] == "Job succeeded"
    reply = client.chat(done.fine_tuned_model, "My order is late")
    assert "My order is late" in reply.content
    assert reply.usage.total_tokens > 0
    assert [j.id for j in client.list_jobs()] == [job.id]
    # Upload, create and every poll went to the provider, in that order.
    ops = [c.op for c in fake.calls]
    assert ops[:2] == ["upload", "create_job"]


def test_wait_sleeps_with_backoff_and_resets_on_change(tmp_path: Path, train_file: Path) -> None:
    clock = FakeClock()
    progression = (S.QUEUED, S.QUEUED, S.QUEUED, S.QUEUED, S.RUNNING, S.SUCCEEDED)
    fake = FakeProvider(FakeSettings(progression=progression), clock=clock)
    client = FineTuneClient(fake, ledger=False)
    job = client.create_job(model="m", training_data=train_file)
    client.wait(job, poll_interval=2)
    # queued x3 backs off 2 -> 3 -> 4.5; running resets to 2.
    assert clock.sleeps == [2, 3, 4.5, 2]


def test_wait_reports_failure_with_job(client: FineTuneClient, fake: FakeProvider, train_file: Path) -> None:
    fake.fail_next_job("CUDA out of memory")
    job = client.create_job(model="m", training_data=train_file)
    with pytest.raises(JobFailedError) as info:
        client.wait(job)
    assert info.value.job.status is S.FAILED
    assert "CUDA out of memory" in str(info.value)
    assert any(e.level == "error" for e in client.events(job))


def test_wait_timeout_leaves_job_running(train_file: Path) -> None:
    clock = FakeClock()
    fake = FakeProvider(FakeSettings(progression=(S.RUNNING,)), clock=clock)
    client = FineTuneClient(fake, ledger=False)
    job = client.create_job(model="m", training_data=train_file)
    with pytest.raises(WaitTimeout) as info:
        client.wait(job, timeout=60, poll_interval=5)
    assert info.value.job.status is S.RUNNING
    assert clock.monotonic() == pytest.approx(60)
    assert "still running after 60s" in str(info.value)


def test_wait_on_clock_driven_fake(train_file: Path) -> None:
    clock = FakeClock()
    fake = FakeProvider(FakeSettings(advance="clock", seconds_per_step=30), clock=clock)
    client = FineTuneClient(fake, ledger=False)
    done = client.wait(client.create_job(model="m", training_data=train_file), poll_interval=10)
    assert done.status is S.SUCCEEDED
    assert clock.monotonic() >= 150  # five steps of 30 s


def test_wait_retries_after_429_honouring_retry_after(
    client: FineTuneClient, fake: FakeProvider, train_file: Path
) -> None:
    job = client.create_job(model="m", training_data=train_file)
    fake.rate_limit("get_job", retry_after=7, times=2)
    assert client.wait(job, poll_interval=1).status is S.SUCCEEDED
    sleeps = fake.clock.sleeps  # type: ignore[attr-defined]
    assert sleeps[0] >= 7  # the first two sleeps are the server's Retry-After (plus jitter)
    assert sleeps[1] >= 7
    assert len(fake.calls_to("get_job")) == 5 + 2


def test_retries_are_bounded(fake: FakeProvider, train_file: Path) -> None:
    config = UnituneConfig(retry=RetrySettings(max_attempts=3, initial_backoff=1))
    client = FineTuneClient(fake, config=config, ledger=False)
    job = client.create_job(model="m", training_data=train_file)
    fake.unavailable("get_job", times=10)
    with pytest.raises(ProviderUnavailableError):
        client.get_job(job)
    assert len(fake.calls_to("get_job")) == 3


def test_retry_after_beyond_budget_gives_up_at_once(fake: FakeProvider, train_file: Path) -> None:
    config = UnituneConfig(retry=RetrySettings(max_seconds=30))
    client = FineTuneClient(fake, config=config, ledger=False)
    fake.rate_limit("list_jobs", retry_after=120)
    with pytest.raises(RateLimitError) as info:
        client.list_jobs()
    assert info.value.retry_after == 120
    assert len(fake.calls_to("list_jobs")) == 1


def test_non_transient_errors_are_not_retried(client: FineTuneClient, fake: FakeProvider) -> None:
    with pytest.raises(NotFoundError):
        client.get_job("ftjob-nope")
    assert len(fake.calls_to("get_job")) == 1


def test_create_without_key_is_never_retried(
    client: FineTuneClient, fake: FakeProvider, train_file: Path
) -> None:
    fake.unavailable("create_job")
    with pytest.raises(ProviderUnavailableError):
        client.create_job(model="m", training_data=train_file)
    assert len(fake.calls_to("create_job")) == 1


def test_create_with_key_retries_and_finds_lost_job(
    client: FineTuneClient, fake: FakeProvider, train_file: Path
) -> None:
    # The vendor made the job but the answer was lost: a retry must not make a second one.
    fake.unavailable("create_job", commit=True)
    job = client.create_job(model="m", training_data=train_file, idempotency_key="order-42")
    assert len(fake.calls_to("create_job")) == 1
    assert len(fake.list_jobs()) == 1
    assert job.idempotency_key == "order-42"


def test_create_with_key_retries_plain_5xx(
    client: FineTuneClient, fake: FakeProvider, train_file: Path
) -> None:
    fake.unavailable("create_job", times=2)
    job = client.create_job(model="m", training_data=train_file, idempotency_key="k")
    assert len(fake.calls_to("create_job")) == 3
    assert [j.id for j in fake.list_jobs()] == [job.id]


def test_same_key_twice_one_job(client: FineTuneClient, fake: FakeProvider, train_file: Path) -> None:
    first = client.create_job(model="m", training_data=train_file, idempotency_key="nightly-7")
    second = client.create_job(model="m", training_data=train_file, idempotency_key="nightly-7")
    assert first.id == second.id
    assert len(fake.calls_to("create_job")) == 1
    assert len(fake.calls_to("upload")) == 1  # the second call did not even upload


def test_same_key_different_spec_is_refused(client: FineTuneClient, train_file: Path) -> None:
    client.create_job(model="m", training_data=train_file, idempotency_key="k")
    with pytest.raises(ConfigurationError, match="different model, data or settings"):
        client.create_job(model="other", training_data=train_file, idempotency_key="k")


def test_fresh_process_sees_ledger(tmp_path: Path, train_file: Path) -> None:
    ledger = tmp_path / "shared-ledger.sqlite3"
    client = FineTuneClient(FakeProvider(clock=FakeClock()), ledger=ledger)
    job = client.create_job(model="m", training_data=train_file, idempotency_key="release-1")
    script = (
        "import json, sys; from unitune import Ledger; "
        "e = Ledger(sys.argv[1]).find_by_key('fake', 'release-1'); "
        "print(json.dumps(e.model_dump(mode='json') if e else None))"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(ledger)],
        capture_output=True,
        text=True,
        check=True,
        env=os.environ,
    )
    seen = json.loads(out.stdout)
    assert seen["job_id"] == job.id
    assert seen["spec_hash"]
    # And a new client in this process (a "restart") returns the recorded job, not a new one.
    again = FineTuneClient(client.provider, ledger=ledger)
    assert again.create_job(model="m", training_data=train_file, idempotency_key="release-1").id == job.id


def test_ledger_tracks_status(client: FineTuneClient, train_file: Path) -> None:
    job = client.wait(client.create_job(model="m", training_data=train_file))
    assert client.ledger is not None
    (entry,) = client.ledger.list()
    assert entry.job_id == job.id
    assert entry.status is S.SUCCEEDED
    assert entry.fine_tuned_model == job.fine_tuned_model


def test_cancel(client: FineTuneClient, train_file: Path) -> None:
    job = client.create_job(model="m", training_data=train_file)
    client.get_job(job)
    cancelling = client.cancel_job(job)
    assert cancelling.status is S.CANCELLING  # never reported cancelled before it is
    with pytest.raises(JobFailedError) as info:
        client.wait(job)
    assert info.value.job.status is S.CANCELLED


def test_retired_provider(client: FineTuneClient, fake: FakeProvider, train_file: Path) -> None:
    import datetime as dt

    fake.retire(on=dt.date(2025, 12, 31), alternatives=["together", "bedrock"])
    with pytest.raises(ProviderRetiredError) as info:
        client.create_job(model="m", training_data=train_file)
    assert info.value.status_code == 410
    assert "2025-12-31" in str(info.value)
    assert "together" in str(info.value)


@pytest.mark.parametrize("on", ["2025-12-31", dt.date(2025, 12, 31), dt.datetime(2025, 12, 31, 23, 0)])
def test_retire_takes_a_date_a_datetime_or_an_iso_string(
    client: FineTuneClient, fake: FakeProvider, train_file: Path, on: object
) -> None:
    fake.retire(on=on)  # type: ignore[arg-type]
    with pytest.raises(ProviderRetiredError, match="2025-12-31"):
        client.create_job(model="m", training_data=train_file)


def test_a_future_retirement_is_announced_not_enforced(
    client: FineTuneClient, fake: FakeProvider, train_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fake.retire(on=dt.date(2099, 1, 1))  # the fake's clock reads 2026-01-01
    with caplog.at_level("WARNING", logger="unitune"):
        job = client.create_job(model="m", training_data=train_file)
    assert job.id
    assert "2099-01-01" in caplog.text
    with pytest.raises(ConfigurationError, match="ISO date"):
        fake.retire(on="next tuesday")


def test_unsupported_features_are_errors(
    client: FineTuneClient, fake: FakeProvider, train_file: Path
) -> None:
    fake.as_provider("together")  # Together cannot pause a job; the plain fake can
    with pytest.raises(UnsupportedFeatureError, match="pausing"):
        fake.pause_job("x")
    fake.as_provider(None)
    with pytest.raises(UnsupportedFeatureError, match="'packing'"):
        client.create_job(
            model="m",
            training_data=train_file,
            hyperparameters=Hyperparameters(provider_options={"packing": 1}),
        )


def test_capability_checks_before_upload(train_file: Path) -> None:
    from typing import ClassVar

    from unitune import Capabilities

    class NoDpo(FakeProvider):
        capabilities: ClassVar[Capabilities] = Capabilities(dpo=False, lora=False)

    fake = NoDpo(clock=FakeClock())
    client = FineTuneClient(fake, ledger=False)
    with pytest.raises(UnsupportedFeatureError, match="DPO"):
        client.create_job(model="m", training_data=train_file, method="dpo")
    with pytest.raises(UnsupportedFeatureError, match="LoRA"):
        client.create_job(model="m", training_data=train_file, hyperparameters=Hyperparameters(lora_rank=8))
    assert fake.calls == []


def test_file_inputs(client: FineTuneClient, fake: FakeProvider, train_file: Path, tmp_path: Path) -> None:
    ref = client.upload(train_file)
    # What is uploaded is the provider's wire format: compact JSON, one example a line.
    compact = [json.dumps(json.loads(x), separators=(",", ":")) for x in train_file.read_text().splitlines()]
    assert ref.size_bytes == sum(len(x) + 1 for x in compact)
    assert ref.raw["examples"] == 12
    job = client.create_job(model="m", training_data=ref)
    assert job.training_file == ref.id
    assert len(fake.calls_to("upload")) == 1
    with pytest.raises(ConfigurationError, match="lives on 'openai'"):
        client.create_job(model="m", training_data=FileRef(id="file-x", provider="openai"))
    with pytest.raises(DatasetError, match="file not found"):
        client.upload(tmp_path / "missing.jsonl")


def test_chat_accepts_prompt_dicts_and_messages(client: FineTuneClient) -> None:
    from unitune import Message

    a = client.chat("base", "hi")
    b = client.chat("base", [{"role": "user", "content": "hi"}])
    c = client.chat("base", [Message(role="user", content="hi")])
    assert a.content == b.content == c.content
    with pytest.raises(NotFoundError):
        client.chat("ft:never-trained", "hi")


def test_async_client_waits_on_20_jobs_concurrently(tmp_path: Path, train_file: Path) -> None:
    fake = FakeProvider(clock=FakeClock())

    async def main() -> list[Job]:
        async with AsyncFineTuneClient(fake, ledger=tmp_path / "l.sqlite3") as client:
            ref = await client.upload(train_file)
            jobs = await asyncio.gather(
                *(client.create_job(model="m", training_data=ref, suffix=f"s{i}") for i in range(20))
            )
            order: list[str] = []

            def note(job: Job) -> None:
                order.append(job.id)

            done = await asyncio.gather(*(client.wait(j, on_update=note) for j in jobs))
            # Concurrent, not one after another: the first job's polls interleave with the others.
            first_id = jobs[0].id
            positions = [i for i, jid in enumerate(order) if jid == first_id]
            assert positions[-1] > len(jobs)
            return list(done)

    done = asyncio.run(main())
    assert len({j.id for j in done}) == 20
    assert all(j.status is S.SUCCEEDED for j in done)
    assert len(Ledger(tmp_path / "l.sqlite3").list(limit=100)) == 20


def test_async_errors_propagate(train_file: Path) -> None:
    fake = FakeProvider(clock=FakeClock())
    fake.fail_next_job("bad data")

    async def main() -> None:
        client = AsyncFineTuneClient(fake, ledger=False)
        job = await client.create_job(model="m", training_data=train_file)
        await client.wait(job)

    with pytest.raises(JobFailedError, match="bad data"):
        asyncio.run(main())


def test_fake_keeps_out_of_machine_ledger_but_stays_idempotent(train_file: Path) -> None:
    client = FineTuneClient("fake")
    assert client.ledger is None  # fake jobs die with the process; they must not dangle in the ledger
    first = client.create_job(model="m", training_data=train_file, idempotency_key="k")
    second = client.create_job(model="m", training_data=train_file, idempotency_key="k")
    assert first.id == second.id  # found through the provider's own tag
    fake = client.provider
    assert isinstance(fake, FakeProvider)
    assert len(fake.calls_to("create_job")) == 1


def test_key_used_on_another_machine_is_found_at_the_provider(
    fake: FakeProvider, tmp_path: Path, train_file: Path
) -> None:
    elsewhere = FineTuneClient(fake, ledger=tmp_path / "other-machine.sqlite3")
    job = elsewhere.create_job(model="m", training_data=train_file, idempotency_key="k")
    here = FineTuneClient(fake, ledger=tmp_path / "this-machine.sqlite3")
    assert here.create_job(model="m", training_data=train_file, idempotency_key="k").id == job.id
    assert here.ledger is not None
    assert here.ledger.find_by_key("fake", "k") is not None  # now recorded here too
    assert len(fake.calls_to("create_job")) == 1


def test_wait_timeout_is_not_outlasted_by_rate_limit_retries(fake: FakeProvider, train_file: Path) -> None:
    client = FineTuneClient(fake, ledger=False)
    job = client.create_job(model="m", training_data=train_file)
    fake.rate_limit("get_job", retry_after=55, times=4)
    with pytest.raises(WaitTimeout):
        client.wait(job, timeout=60, poll_interval=5)
    assert fake.clock.monotonic() <= 60  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("kwargs", "match"), [({"poll_interval": 0}, "poll_interval"), ({"timeout": -1}, "timeout")]
)
def test_wait_rejects_bad_intervals(
    client: FineTuneClient, train_file: Path, kwargs: dict[str, float], match: str
) -> None:
    job = client.create_job(model="m", training_data=train_file)
    with pytest.raises(ValueError, match=match):
        client.wait(job, **kwargs)


def test_concurrent_creates_with_one_key_make_one_job(tmp_path: Path, train_file: Path) -> None:
    from typing import ClassVar

    class Durable(FakeProvider):  # recorded in the ledger like a real vendor's jobs
        ephemeral: ClassVar[bool] = False

    fake = Durable(clock=FakeClock())

    async def main() -> list[Job]:
        client = AsyncFineTuneClient(fake, ledger=tmp_path / "l.sqlite3")
        return list(
            await asyncio.gather(
                *(
                    client.create_job(model="m", training_data=train_file, idempotency_key="k")
                    for _ in range(5)
                )
            )
        )

    jobs = asyncio.run(main())
    assert len({j.id for j in jobs}) == 1
    assert len(fake.calls_to("create_job")) == 1


def test_retry_looks_for_the_job_before_creating_again(
    client: FineTuneClient, fake: FakeProvider, train_file: Path
) -> None:
    # The first answer is lost and the vendor's list does not show the job yet; the retry finds it.
    fake.unavailable("create_job", commit=True)
    fake.unavailable("list_jobs")  # the immediate look-up fails too
    job = client.create_job(model="m", training_data=train_file, idempotency_key="k")
    assert len(fake.calls_to("create_job")) == 1
    assert [j.id for j in fake.list_jobs()] == [job.id]


def test_key_found_at_provider_for_another_model_is_refused(
    fake: FakeProvider, tmp_path: Path, train_file: Path
) -> None:
    FineTuneClient(fake, ledger=tmp_path / "a.sqlite3").create_job(
        model="m", training_data=train_file, idempotency_key="x"
    )
    here = FineTuneClient(fake, ledger=tmp_path / "b.sqlite3")
    with pytest.raises(ConfigurationError, match="already used"):
        here.create_job(model="other", training_data=train_file, idempotency_key="x")


def test_ledger_failure_after_create_does_not_lose_the_job(
    fake: FakeProvider, tmp_path: Path, train_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    client = FineTuneClient(fake, ledger=tmp_path / "l.sqlite3")
    assert client.ledger is not None

    def broken(*a: object, **k: object) -> None:
        raise sqlite3.OperationalError("database is locked")

    client.ledger.record = broken  # type: ignore[method-assign]
    client.ledger.update = broken  # type: ignore[method-assign]
    job = client.create_job(model="m", training_data=train_file)
    assert client.get_job(job).id == job.id
    assert "could not be recorded" in caplog.text


def test_close_leaves_a_callers_provider_open(fake: FakeProvider) -> None:
    closed: list[bool] = []
    fake.close = lambda: closed.append(True)  # type: ignore[method-assign]
    with FineTuneClient(fake, ledger=False):
        pass
    assert closed == []


def test_create_job_in_a_fresh_process_returns_the_recorded_job(tmp_path: Path, train_file: Path) -> None:
    ledger = tmp_path / "ledger.sqlite3"
    script = f"""
import sys
from typing import ClassVar
from unitune import FineTuneClient
from unitune.testing import FakeClock, FakeProvider

class Durable(FakeProvider):
    ephemeral: ClassVar[bool] = False

fake = Durable(clock=FakeClock())
job = FineTuneClient(fake, ledger={str(ledger)!r}).create_job(
    model="m", training_data={str(train_file)!r}, idempotency_key="nightly")
print(job.id)
"""
    first = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    # The second process has a fresh fake (which knows no jobs); the ledger must answer, so the
    # client asks the provider for the recorded id instead of creating: a 404 proves it did.
    second = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert second.returncode != 0
    assert "NotFoundError" in second.stderr
    assert first.stdout.strip() in second.stderr


def test_create_job_validates_before_any_upload(
    client: FineTuneClient, fake: FakeProvider, tmp_path: Path
) -> None:
    from unitune import ValidationFailed

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": [{"role": "user", "content": "hi"}]}\n{oops\n')
    with pytest.raises(ValidationFailed) as info:
        client.create_job(model="m", training_data=bad)
    report = info.value.report
    assert {i.code for i in report.errors} == {"missing_assistant", "invalid_json"}
    # One line: the count, the first problem with its place; the report holds them all.
    assert f"{bad}:1" in str(info.value)
    assert "2 errors" in str(info.value)
    assert "\n" not in str(info.value)
    assert any(str(i).startswith(f"{bad}:2:2") for i in report.errors)
    assert fake.calls == []  # nothing uploaded, nothing created


def test_leakage_and_formats_through_the_client(
    client: FineTuneClient, fake: FakeProvider, tmp_path: Path
) -> None:
    rows = [{"prompt": f"question {i}", "completion": f"answer {i}"} for i in range(20)]
    train = tmp_path / "pc.jsonl"
    train.write_text("".join(json.dumps(r) + "\n" for r in rows))
    valid = tmp_path / "valid.jsonl"
    valid.write_text(json.dumps(rows[0]) + "\n")
    report = client.validate(train, validation_data=valid)
    assert report.ok
    assert report.counts["train_validation_leakage"] == 1
    job = client.create_job(model="m", training_data=train, validation_data=valid)
    assert job.validation_file is not None
    (upload, _) = fake.calls_to("upload")
    assert upload.args["filename"] == "pc.jsonl"


def test_conversion_refusal_stops_before_upload(tmp_path: Path) -> None:
    from typing import ClassVar

    from unitune import ValidationFailed

    class ClaudeLike(FakeProvider):  # a provider whose wire format cannot carry tool calls
        wire_format: ClassVar[str] = "bedrock-claude"

    fake = ClaudeLike(clock=FakeClock())
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    rows = [
        {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "tool_calls": [call]},
                      {"role": "tool", "tool_call_id": "c1", "content": "r"},
                      {"role": "assistant", "content": "a"}]},
    ]  # fmt: skip
    path = tmp_path / "tools.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(ValidationFailed, match="cannot be expressed"):
        FineTuneClient(fake).create_job(model="m", training_data=path)
    assert fake.calls == []


def test_a_provider_works_in_its_clients_context(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The client gives its provider its home, clock and catalog: a local trainer passed in without a
    `home` keeps its jobs under the config's home, not the process's default."""
    from unitune.config import UnituneConfig
    from unitune.providers.local import LocalProvider
    from unitune.testing import FakeClock

    monkeypatch.delenv("UNITUNE_HOME", raising=False)
    clock = FakeClock()
    provider = LocalProvider()
    client = FineTuneClient(provider, config=UnituneConfig(home=tmp_path / "home"), clock=clock, ledger=False)
    assert provider.context.home == tmp_path / "home"
    assert provider.store.root == tmp_path / "home" / "local"
    assert provider.context.clock is clock
    assert provider.context.catalog is client.catalog
    assert provider.retry_policy is client.retry
