"""Waiting on many jobs at once: one poll per job per interval, each job on its own schedule."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from unitune import FineTuneClient
from unitune._clock import FakeClock
from unitune.errors import JobFailedError, WaitTimeout
from unitune.providers.fake import FakeProvider, FakeSettings
from unitune.runs import wait_all
from unitune.types import Job, JobStatus


def _jobs(client: FineTuneClient, data: Path, n: int) -> list[Job]:
    return [client.create_job(model="gpt-4o-mini", training_data=data, suffix=f"j{i}") for i in range(n)]


def _client(seconds_per_step: float = 10) -> tuple[FineTuneClient, FakeProvider]:
    clock = FakeClock(start=dt.datetime(2026, 12, 1, tzinfo=dt.timezone.utc))
    fake = FakeProvider(FakeSettings(advance="clock", seconds_per_step=seconds_per_step), clock=clock)
    return FineTuneClient(fake), fake


def test_every_job_ends_with_its_own_outcome_and_polls_are_spaced(tickets: Path) -> None:
    client, fake = _client()
    jobs = _jobs(client, tickets, 3)
    fake.fail_next_job("diverged")
    jobs.append(client.create_job(model="gpt-4o-mini", training_data=tickets, suffix="bad"))
    seen: list[tuple[int, JobStatus]] = []
    outcomes = wait_all(
        [(client, j) for j in jobs], poll_interval=5, on_update=lambda i, j: seen.append((i, j.status))
    )
    assert [type(o).__name__ for o in outcomes] == ["Job", "Job", "Job", "JobFailedError"]
    assert all(isinstance(o, Job) and o.status is JobStatus.SUCCEEDED for o in outcomes[:3])
    assert isinstance(outcomes[3], JobFailedError)
    assert "diverged" in str(outcomes[3])
    # One read per poll, and never two polls of one job closer than the first interval.
    assert len(fake.calls_to("get_job")) == len(seen)
    assert {i for i, _ in seen} == {0, 1, 2, 3}


def test_polls_back_off_while_nothing_changes(tickets: Path) -> None:
    client, fake = _client(seconds_per_step=600)  # a long job: hours of simulated time
    (job,) = _jobs(client, tickets, 1)
    start = client.clock.monotonic()
    wait_all([(client, job)], poll_interval=5)
    elapsed = client.clock.monotonic() - start
    polls = len(fake.calls_to("get_job"))
    # Backing off to the configured maximum interval, not 5 s throughout.
    assert polls < elapsed / 5 / 3, (polls, elapsed)


def test_a_rate_limited_job_waits_alone_and_a_timeout_is_an_outcome(tickets: Path) -> None:
    client, fake = _client()
    jobs = _jobs(client, tickets, 2)
    fake.rate_limit("get_job", retry_after=30, times=1)
    outcomes = wait_all([(client, j) for j in jobs], poll_interval=1)
    assert all(isinstance(o, Job) and o.status is JobStatus.SUCCEEDED for o in outcomes)
    slow_client, _ = _client(seconds_per_step=10_000)
    (slow,) = _jobs(slow_client, tickets, 1)
    (outcome,) = wait_all([(slow_client, slow)], poll_interval=1, timeout=60)
    assert isinstance(outcome, WaitTimeout)


def test_nothing_to_wait_on() -> None:
    assert wait_all([]) == []
