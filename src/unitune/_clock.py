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

    def monotonic(self) -> float: ...

    def now(self) -> dt.datetime: ...

    def sleep(self, seconds: float) -> None: ...

    async def asleep(self, seconds: float) -> None: ...


class SystemClock:
    """The real clock."""

    def monotonic(self) -> float:
        return time.monotonic()

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.timezone.utc)

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    async def asleep(self, seconds: float) -> None:
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
        with self._lock:
            return self._elapsed

    def now(self) -> dt.datetime:
        with self._lock:
            return self._start + dt.timedelta(seconds=self._elapsed)

    def advance(self, seconds: float) -> None:
        """Move time forward without sleeping."""
        with self._lock:
            self._elapsed += max(0.0, seconds)

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
        self.advance(seconds)

    async def asleep(self, seconds: float) -> None:
        self.sleep(seconds)
        import asyncio

        # Yield so concurrent waiters interleave as they would on a real clock.
        await asyncio.sleep(0)
