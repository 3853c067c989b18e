"""Waiting on many jobs at once: one poll per job per interval, each job backing off on its own.

A sweep's jobs run on several providers at different speeds. One thread sleeps until the next job is
due, polls that job alone, and schedules it again with `wait`'s own policy (`client/_poll._Poll`: the
interval grows while nothing changes, resets when the status moves). A rate-limited or briefly
unavailable provider pushes back only its own job, by its Retry-After, instead of blocking the rest
inside a retry loop. Measured in bench/bench_wait.py: 100 jobs cost well under 5% of one core.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from unitune.client._poll import _Poll
from unitune.errors import JobFailedError, ProviderUnavailableError, RateLimitError, UnituneError, WaitTimeout
from unitune.types import Job

if TYPE_CHECKING:
    from unitune.client import FineTuneClient

__all__ = ["wait_all"]

#: What one job's wait ended with: the succeeded job, or the error (failed, cancelled, timed out…).
Outcome = Job | UnituneError


def wait_all(
    jobs: Sequence[tuple[FineTuneClient, Job]],
    *,
    poll_interval: float | None = None,
    timeout: float | None = None,
    on_update: Callable[[int, Job], None] | None = None,
) -> list[Outcome]:
    """Wait until every job has ended.

    Never raises for one job: its outcome is its `JobFailedError`, `WaitTimeout` or the provider's
    error. The first client's clock is the one slept on (a sweep's clients share it).

    Args:
        jobs: (client, job) pairs; each job is polled through its own client.
        poll_interval: seconds between polls.
        timeout: stop waiting after this many seconds; jobs still running end as `WaitTimeout`.
        on_update: called as `on_update(index, job)` after each poll, `index` into `jobs`.

    Returns:
        One outcome per job, in order: the succeeded job, or the error it ended with.
    """
    if not jobs:
        return []
    clock = jobs[0][0].clock
    outcomes: list[Outcome | None] = [None] * len(jobs)
    polls = [_Poll(client.config.wait, clock, timeout, poll_interval) for client, _ in jobs]
    last = [job for _, job in jobs]
    now = clock.monotonic()
    due: list[tuple[float, int]] = [(now, i) for i in range(len(jobs))]
    heapq.heapify(due)
    while due:
        when, i = heapq.heappop(due)
        pause = when - clock.monotonic()
        if pause > 0:
            clock.sleep(pause)
        client, _ = jobs[i]
        try:
            fresh = client.provider.get_job(last[i].id)
        except (RateLimitError, ProviderUnavailableError) as e:
            # Only this job waits longer; the provider asked for room.
            retry_after = e.retry_after if isinstance(e, RateLimitError) and e.retry_after else 0.0
            later = max(retry_after, client.config.retry.initial_backoff, polls[i].interval)
            deadline, limit = polls[i].deadline, polls[i].timeout
            if deadline is not None and limit is not None and clock.monotonic() + later >= deadline:
                outcomes[i] = WaitTimeout(last[i], limit)
            else:
                heapq.heappush(due, (clock.monotonic() + later, i))
            continue
        except UnituneError as e:
            outcomes[i] = e
            continue
        if client.ledger is not None:
            client.ledger.update(fresh)
        last[i] = fresh
        if on_update is not None:
            on_update(i, fresh)
        try:
            sleep = polls[i].next_sleep(fresh)
        except (JobFailedError, WaitTimeout) as e:
            outcomes[i] = e
            continue
        if sleep is None:
            outcomes[i] = fresh
        else:
            heapq.heappush(due, (clock.monotonic() + sleep, i))
    done = [o for o in outcomes if o is not None]
    assert len(done) == len(jobs)  # every job left the loop with an outcome
    return done
