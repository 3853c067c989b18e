"""The one retry policy: transient provider errors are retried here and nowhere else.

Retried: `RateLimitError` (waiting at least the server's Retry-After) and `ProviderUnavailableError`
(5xx, timeouts, dropped connections). Attempts and total time are both bounded; a Retry-After that
would overrun the time budget ends the retries at once rather than sleeping past it. Time is read
and spent through the client's `Clock`, so tests run instantly.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from unitune._clock import Clock
from unitune._log import get_logger
from unitune.config import RetrySettings
from unitune.errors import ProviderUnavailableError, RateLimitError

if TYPE_CHECKING:
    import tenacity

__all__ = ["RetryPolicy"]

log = get_logger("unitune")
T = TypeVar("T")

TRANSIENT = (RateLimitError, ProviderUnavailableError)


def retryable(exc: BaseException | None) -> bool:
    """Whether `exc` is worth retrying.

    Transient, and caused by nothing marked `retryable = False` (the test network guard's
    refusal, wrapped by an SDK in its connection error: a blocked host fails at once).
    """
    if not isinstance(exc, TRANSIENT):
        return False
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        if getattr(cause, "retryable", True) is False:
            return False
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return True


class RetryPolicy:
    """Bounded retries of transient errors, with backoff, honouring Retry-After."""

    def __init__(self, settings: RetrySettings, clock: Clock, *, jitter: bool = True) -> None:
        self.settings = settings
        self.clock = clock
        self.jitter = jitter

    def _delay(self, state: tenacity.RetryCallState) -> float:
        """The pause before the next attempt, before jitter."""
        exc = state.outcome.exception() if state.outcome is not None else None
        backoff = min(
            self.settings.max_backoff,
            self.settings.initial_backoff * 2.0 ** (state.attempt_number - 1),
        )
        if isinstance(exc, RateLimitError) and exc.retry_after is not None:
            # The server said how long; never retry sooner, even past our usual cap.
            return max(float(exc.retry_after), 0.0)
        return backoff

    def _kwargs(self, op: str, start: float, deadline: float | None) -> dict[str, Any]:
        def stop(state: tenacity.RetryCallState) -> bool:
            if state.attempt_number >= self.settings.max_attempts:
                return True
            now = self.clock.monotonic()
            delay = self._delay(state)
            if deadline is not None and now + delay > deadline:
                return True  # the caller's own deadline (wait(timeout=...)) comes first
            return now - start + delay > self.settings.max_seconds

        def wait(state: tenacity.RetryCallState) -> float:
            delay = self._delay(state)
            if self.jitter:
                delay += random.uniform(0, 0.1 * delay)
            if deadline is not None:  # jitter must not carry a sleep past the caller's deadline
                delay = max(0.0, min(delay, deadline - self.clock.monotonic()))
            return delay

        def retry_if_transient(state: tenacity.RetryCallState) -> bool:
            return state.outcome is not None and retryable(state.outcome.exception())

        def before_sleep(state: tenacity.RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome is not None else None
            sleep = state.next_action.sleep if state.next_action is not None else 0.0
            log.warning(
                "unitune: %s failed (%s); attempt %d of %d in %.1fs",
                op,
                exc,
                state.attempt_number + 1,
                self.settings.max_attempts,
                sleep,
            )

        return {
            "stop": stop,
            "wait": wait,
            "retry": retry_if_transient,
            "before_sleep": before_sleep,
            "reraise": True,
        }

    def call(
        self, op: str, fn: Callable[..., T], *args: Any, deadline: float | None = None, **kwargs: Any
    ) -> T:
        """Run `fn` with the retry policy, retrying transient errors.

        Run `fn(*args, **kwargs)`, retrying transient errors; never sleeping past `deadline`
        (a `clock.monotonic()` value), when given.
        """
        # Imported here: tenacity pulls in asyncio, which `import unitune` should not pay for.
        import tenacity

        retrying = tenacity.Retrying(
            sleep=self.clock.sleep, **self._kwargs(op, self.clock.monotonic(), deadline)
        )
        return retrying(fn, *args, **kwargs)
