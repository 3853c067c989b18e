"""The waiting policy shared by the sync and async `wait()`: when to stop, how long to sleep."""

from __future__ import annotations

from unitune._clock import Clock
from unitune.client._args import _number
from unitune.config import WaitSettings
from unitune.errors import ConfigurationError, JobFailedError, WaitTimeout
from unitune.types import Job, JobStatus


class _Poll:
    """The waiting policy shared by the sync and async `wait()`: when to stop, how long to sleep."""

    def __init__(
        self, settings: WaitSettings, clock: Clock, timeout: float | None, poll_interval: float | None
    ) -> None:
        if poll_interval is not None and (not _number(poll_interval, finite=True) or poll_interval <= 0):
            raise ConfigurationError(
                f"poll_interval must be a positive number of seconds, not {poll_interval!r}."
            )
        if timeout is not None and (not _number(timeout) or timeout < 0):
            raise ConfigurationError(
                f"timeout must be zero or a positive number of seconds, not {timeout!r}."
            )
        self.settings = settings
        self.clock = clock
        self.timeout = timeout
        self.deadline = None if timeout is None else clock.monotonic() + timeout
        self.base = poll_interval if poll_interval is not None else settings.poll_interval
        self.interval = self.base
        self.last_status: JobStatus | None = None

    def next_sleep(self, job: Job) -> float | None:
        """None when `job` succeeded; raises when it failed or time is up; else seconds to sleep."""
        if job.status is JobStatus.SUCCEEDED:
            return None
        if job.status.is_terminal:
            raise JobFailedError(job)
        if self.deadline is not None:
            remaining = self.deadline - self.clock.monotonic()
            if remaining <= 0:
                assert self.timeout is not None
                raise WaitTimeout(job, self.timeout)
        else:
            remaining = float("inf")
        if job.status is not self.last_status:
            # Something moved: look again soon rather than at the backed-off interval.
            self.interval = self.base
            self.last_status = job.status
        sleep = min(self.interval, remaining)
        self.interval = min(self.interval * self.settings.backoff, self.settings.max_poll_interval)
        return sleep
