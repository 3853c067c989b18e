"""Time as a dependency: the client and the fake provider read and spend time only through a `Clock`.

Tests pass a `FakeClock` so waiting for a job takes no wall time and is fully deterministic.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from typing import Protocol

__all__ = ["Clock", "FakeClock", "SystemClock"]


class Clock(Protocol):
    """What the client needs of time."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back, for deadlines and intervals."""

    def now(self) -> dt.datetime:
        """The current time, timezone-aware (UTC)."""

    def sleep(self, seconds: float) -> None:
        """Block for `seconds`."""

    async def asleep(self, seconds: float) -> None:
        """Sleep for `seconds` without blocking the event loop."""


class SystemClock:
    """The real clock."""

    def monotonic(self) -> float:
        """`time.monotonic()`."""
        return time.monotonic()

    def now(self) -> dt.datetime:
        """The current time in UTC."""
        return dt.datetime.now(dt.timezone.utc)

    def sleep(self, seconds: float) -> None:
        """`time.sleep(seconds)`."""
        time.sleep(seconds)

    async def asleep(self, seconds: float) -> None:
        """`asyncio.sleep(seconds)`."""
        import asyncio  # lazily: only async callers need it

        await asyncio.sleep(seconds)


class FakeClock:
    """A clock that only moves when something sleeps on it or `advance()` is called. Thread-safe."""

    def __init__(self, start: dt.datetime | None = None) -> None:
        self._start = start or dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
        self._elapsed = 0.0
        self._lock = threading.Lock()
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        """Seconds elapsed since the clock was made."""
        with self._lock:
            return self._elapsed

    def now(self) -> dt.datetime:
        """`start` plus the seconds elapsed."""
        with self._lock:
            return self._start + dt.timedelta(seconds=self._elapsed)

    def advance(self, seconds: float) -> None:
        """Move time forward without sleeping."""
        with self._lock:
            self._elapsed += max(0.0, seconds)

    def sleep(self, seconds: float) -> None:
        """Record the sleep in `sleeps` and move time forward by `seconds`, at once."""
        with self._lock:
            self.sleeps.append(seconds)
        self.advance(seconds)

    async def asleep(self, seconds: float) -> None:
        """`sleep`, then yield to the event loop once."""
        self.sleep(seconds)
        import asyncio

        # Yield so concurrent waiters interleave as they would on a real clock.
        await asyncio.sleep(0)
