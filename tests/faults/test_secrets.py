"""The API key never shows, even when everything fails: in no raised error (`str`, `repr`, the whole
chain of causes), no log line (DEBUG included: the vendor SDKs' own), not in the ledger file, not in
the CLI's output. Every provider is built with the canary key `sk-canary-7f3a9c` (Bedrock: as the
AWS secret key) and runs lifecycles at 30% faults.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

import pytest

from tests.faults.harness import API_KEY, PROVIDERS, TODAY, aws_env, soak
from unitune import UnituneError

for _module in ("openai", "together", "mistralai", "cohere", "boto3", "moto"):
    pytest.importorskip(_module)

CANARY = API_KEY.encode()


def _chain(error: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and all(current is not s for s in seen):
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


@pytest.mark.parametrize("provider", PROVIDERS)
def test_the_key_never_shows_under_faults(
    provider: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, the SDKs' request logs included
    run = soak(provider, 0.30, 4, tmp_path / "run", seed=7, list_lag=20.0, retry=None)
    errors = [o.error for o in run.outcomes if o.error is not None]
    assert sum(run.faults.values()) > 0
    for error in errors:
        for link in _chain(error):
            assert API_KEY not in str(link), repr(link)
            assert API_KEY not in repr(link)
    assert caplog.records, "nothing was logged: the check would prove nothing"
    for record in caplog.records:
        assert API_KEY not in record.getMessage(), record.name
    assert API_KEY not in caplog.text
    ledger = list((tmp_path / "run").glob("ledger.sqlite3*"))
    assert ledger, "no ledger written"
    for path in ledger:
        assert CANARY not in path.read_bytes(), path


@pytest.mark.parametrize("provider", PROVIDERS)
def test_the_key_never_shows_in_cli_output_or_reprs_under_faults(provider: str, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    from typer.testing import CliRunner

    from tests.faults.harness import HARNESSES
    from tests.faults.plan import FaultPlan
    from unitune._clock import FakeClock
    from unitune.cli import app
    from unitune.config import RetrySettings
    from unitune.providers.registry import override_provider

    monkeypatch.setenv("COLUMNS", "200")
    clock = FakeClock(TODAY)
    plan = FaultPlan(rate=0.5, seed=3, clock=clock)
    with aws_env() if provider == "bedrock" else contextlib.nullcontext():
        plan.enabled = False
        h = HARNESSES[provider](plan, clock, tmp_path, RetrySettings(max_attempts=2, max_seconds=30))
        if provider != "bedrock":  # the key is really there, in the settings (Bedrock: the AWS chain)
            # Vertex AI takes an OAuth access token rather than an API key.
            key = h.provider.settings.access_token if provider == "vertex" else h.provider.settings.api_key
            assert key is not None
            assert key.get_secret_value() == API_KEY
        for text in (repr(h.provider), str(h.provider.settings), repr(h.client), repr(h.provider.settings)):
            assert API_KEY not in text
        plan.enabled = True
        outputs = []
        runner = CliRunner()
        with override_provider(h.provider):
            for args in (["jobs", "--provider", provider], ["status", "job-404", "--provider", provider],
                         ["chat", h.model, "hi", "--provider", provider], ["jobs", "--provider", provider, "--json"]):  # fmt: skip
                result = runner.invoke(app, args)
                outputs.append(result.output)
                if result.exception is not None and not isinstance(result.exception, SystemExit):
                    assert isinstance(result.exception, UnituneError), repr(result.exception)
        h.close()
    assert plan.requests > 0
    for output in outputs:
        assert API_KEY not in output, output
