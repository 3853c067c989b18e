"""The Together adapter's tests share one provider: the real `together` SDK over the in-process fake API."""

from __future__ import annotations

import datetime as dt
import typing
from pathlib import Path

import pytest

from tests.together_adapter.fake_api import FakeTogether
from unitune import FineTuneClient
from unitune.config import UnituneConfig
from unitune.testing import FakeClock

if typing.TYPE_CHECKING:
    from unitune.providers.together import TogetherProvider

KEY = "tg-test-secret-value-456"


def make_provider(api: FakeTogether, **settings: typing.Any) -> TogetherProvider:
    """The adapter with its SDK pointed at `api`, its upload-status waits instant."""
    import httpx
    import together

    from unitune.providers.together import TogetherProvider, TogetherSettings

    sdk = together.Together(api_key=KEY, base_url="http://together.test", max_retries=0,
                            http_client=httpx.Client(transport=api.transport()))  # fmt: skip
    p = TogetherProvider(TogetherSettings(**settings), client=sdk)
    p._sleep = lambda s: None
    return p


@pytest.fixture
def api() -> FakeTogether:
    return FakeTogether()


@pytest.fixture
def provider(api: FakeTogether) -> TogetherProvider:
    return make_provider(api)


@pytest.fixture
def client(provider: TogetherProvider, tmp_path: Path) -> FineTuneClient:
    clock = FakeClock(dt.datetime(2026, 11, 22, tzinfo=dt.timezone.utc))
    return FineTuneClient(provider, config=UnituneConfig(), ledger=tmp_path / "ledger.sqlite3", clock=clock)
