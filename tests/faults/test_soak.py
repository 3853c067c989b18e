"""Soak: full lifecycles per provider through `FineTuneClient` with seeded faults on every request
(429 with Retry-After, 500/502/503, hangs past the timeout, resets, bodies cut short, requests that
took effect before their answer was lost) and a job list that lags 20 s behind a create, on a
`FakeClock` (backoff takes no wall time).

    UNITUNE_SOAK_LIFECYCLES=200 pytest tests/faults/test_soak.py    # more lifecycles per run

What must hold, every run: no exception outside unitune's error tree, never two jobs for one
idempotency key, every lifecycle done at 10% faults, and at 30% at least 99% done with the default
retry budget (8 attempts: a request fails for good with probability 0.3**8 = 0.007%, and a lifecycle
makes 13-34 requests). With a smaller budget (5 attempts: 0.24% per request, about 95-97% of
lifecycles) every failure must be a transient error whose retries were spent
(bench/bench_faults.py prints the figures).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from tests.faults.harness import HARNESSES, PROVIDERS, Run, soak
from unitune import ProviderUnavailableError, RateLimitError
from unitune.config import RetrySettings

for _module in ("openai", "together", "mistralai", "cohere", "boto3", "moto"):
    pytest.importorskip(_module)

LIFECYCLES = int(os.environ.get("UNITUNE_SOAK_LIFECYCLES", "10"))
LAG = 20.0  # seconds a new job takes to show in lists (under the client's 30 s find window)


def _describe(run: Run) -> str:
    failed = [f"{o.stage}: {type(o.error).__name__}: {o.error}" for o in run.outcomes if not o.completed]
    return f"{run.provider} at {run.rate:.0%}: {run.completed}/{len(run.outcomes)} completed; " + "; ".join(
        failed
    )


def _invariants(run: Run) -> None:
    assert not run.escaped, [repr(o.error) for o in run.escaped]
    assert run.max_jobs_per_key <= 1, [(o.key, o.jobs) for o in run.outcomes if o.jobs > 1]
    assert all(o.jobs == 1 for o in run.outcomes if o.completed)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_at_10_percent_faults_every_lifecycle_completes(provider: str, tmp_path: Path) -> None:
    run = soak(provider, 0.10, LIFECYCLES, tmp_path, list_lag=LAG)
    _invariants(run)
    assert run.completed == len(run.outcomes), _describe(run)
    assert sum(run.faults.values()) > 0


@pytest.mark.parametrize("provider", PROVIDERS)
def test_at_30_percent_faults_99_percent_complete(provider: str, tmp_path: Path) -> None:
    run = soak(provider, 0.30, LIFECYCLES, tmp_path, seed=30, list_lag=LAG)  # the default retry settings
    _invariants(run)
    assert run.completed >= 0.99 * len(run.outcomes), _describe(run)
    assert {"cut", "after"} & set(run.faults), run.faults  # requests that took effect were among them


@pytest.mark.parametrize("provider", PROVIDERS)
def test_at_30_percent_with_fewer_retries_only_spent_retries_fail(provider: str, tmp_path: Path) -> None:
    run = soak(
        provider, 0.30, LIFECYCLES, tmp_path, seed=31, list_lag=LAG, retry=RetrySettings(max_attempts=5)
    )
    _invariants(run)
    for outcome in run.outcomes:
        if not outcome.completed:  # a request failed 5 times in a row: nothing else ends a lifecycle
            assert isinstance(outcome.error, (ProviderUnavailableError, RateLimitError)), repr(outcome.error)
    assert run.completed >= 0.8 * len(run.outcomes), _describe(run)


def _only_create(provider: str) -> tuple[str, str]:
    return HARNESSES[provider].create


@pytest.mark.parametrize(
    ("kind", "lost"), [("after", "dropped"), ("after", "502"), ("after", "late"), ("cut", "")]
)
@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_create_whose_answer_is_lost_while_the_list_lags_makes_one_job(
    provider: str, kind: str, lost: str, tmp_path: Path
) -> None:
    """The create takes effect, its answer is lost (dropped, a 502, too late) or cut short, and the
    job shows in lists only 20 s later: the client looks it up until it shows, and never creates a
    second one."""
    method, path = _only_create(provider)

    def spare(m: str, p: str) -> bool:
        return not (m == method and re.fullmatch(path, p))

    run = soak(
        provider,
        1.0,
        2,
        tmp_path,
        list_lag=LAG,
        kinds=(kind,),
        lost=(lost or "dropped",),
        spare=spare,
        limit=1,
    )
    _invariants(run)
    assert run.faults == {kind: 1}
    assert run.completed == 2, _describe(run)
    assert [o.jobs for o in run.outcomes] == [1, 1]
