"""The OpenAI adapter's tests share one provider: the real `openai` SDK over the in-process fake API."""

from __future__ import annotations

import datetime as dt
import typing
from pathlib import Path

import pytest

from tests.openai_adapter.fake_api import FakeOpenAI
from unitune import FineTuneClient
from unitune.config import UnituneConfig
from unitune.testing import FakeClock

if typing.TYPE_CHECKING:
    from unitune.providers.openai import OpenAIProvider

KEY = "sk-test-secret-value-123"


def make_provider(api: FakeOpenAI, **settings: typing.Any) -> OpenAIProvider:
    """The adapter with its SDK pointed at `api` (no retries: the tests script failures)."""
    import httpx2
    import openai

    from unitune.providers.openai import OpenAIProvider, OpenAISettings

    sdk = openai.OpenAI(
        api_key=KEY, base_url="http://openai.test/v1", max_retries=0,
        http_client=httpx2.Client(transport=api.transport()),
    )  # fmt: skip
    return OpenAIProvider(OpenAISettings(**settings), client=sdk)


@pytest.fixture
def api() -> FakeOpenAI:
    return FakeOpenAI()


@pytest.fixture
def provider(api: FakeOpenAI) -> OpenAIProvider:
    return make_provider(api)


@pytest.fixture
def client(provider: OpenAIProvider, tmp_path: Path) -> FineTuneClient:
    # 2026-11-22: OpenAI still takes new jobs (until 2027-01-06, per the catalog).
    clock = FakeClock(dt.datetime(2026, 11, 22, tzinfo=dt.timezone.utc))
    return FineTuneClient(provider, config=UnituneConfig(), ledger=tmp_path / "ledger.sqlite3", clock=clock)
