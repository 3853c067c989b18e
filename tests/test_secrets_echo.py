"""A vendor that repeats the caller's key back ("Incorrect API key provided: sk-…") must not put it in
unitune's errors, their bodies or the retry log (issue 16, found by review)."""

from __future__ import annotations

import logging

import httpx2
import openai
import pytest

from tests.openai_adapter.fake_api import FakeOpenAI
from unitune import AuthenticationError, FineTuneClient, ProviderUnavailableError
from unitune.config import RetrySettings, UnituneConfig
from unitune.errors import mask_secrets
from unitune.providers.openai import OpenAIProvider, OpenAISettings
from unitune.testing import FakeClock

KEY = "sk-canary-echo-5d1e9b"


def _client(api: FakeOpenAI) -> FineTuneClient:
    sdk = openai.OpenAI(
        api_key=KEY, base_url="http://openai.test/v1", max_retries=0,
        http_client=httpx2.Client(transport=api.transport()),
    )  # fmt: skip
    provider = OpenAIProvider(OpenAISettings(api_key=KEY), client=sdk)
    config = UnituneConfig(retry=RetrySettings(max_attempts=2, initial_backoff=0))
    return FineTuneClient(provider, config=config, ledger=False, clock=FakeClock())


def test_a_key_the_vendor_repeats_back_is_masked(caplog: pytest.LogCaptureFixture) -> None:
    api = FakeOpenAI()
    client = _client(api)
    api.fail(r"GET .*", 401, message=f"Incorrect API key provided: {KEY}. You can find your key at …")
    with pytest.raises(AuthenticationError) as info:
        client.get_job("ftjob-1")
    assert "Incorrect API key provided: ***" in str(info.value)
    for text in (str(info.value), repr(info.value), repr(info.value.body), info.value.message):
        assert KEY not in text
    api.fail(r"GET .*", 500, message=f"upstream said: bad key {KEY}", times=2)
    with caplog.at_level(logging.DEBUG, logger="unitune"), pytest.raises(ProviderUnavailableError) as failed:
        client.get_job("ftjob-1")
    assert KEY not in str(failed.value)
    assert "attempt 2 of 2" in caplog.text  # the retry was logged, with the message masked
    assert KEY not in caplog.text


def test_keys_from_the_environment_are_masked_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOGETHER_API_KEY", "tk-from-the-env-77aa")
    assert mask_secrets({"error": ["bad key tk-from-the-env-77aa"]}) == {"error": ["bad key ***"]}
    assert mask_secrets("short key abc") == "short key abc"
