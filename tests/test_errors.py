from __future__ import annotations

import datetime as dt
import logging
import subprocess
import sys
from typing import Any, ClassVar

import pytest

import unitune
from unitune import (
    AuthenticationError,
    ConfigurationError,
    FineTuneClient,
    NotFoundError,
    PermissionDeniedError,
    ProviderError,
    ProviderRetiredError,
    ProviderSettings,
    ProviderUnavailableError,
    RateLimitError,
    UnituneError,
)
from unitune.providers.base import error_from_status, parse_retry_after
from unitune.providers.fake import FakeProvider, FakeSettings
from unitune.testing import FakeClock

SECRET = "sk-test-DO-NOT-LEAK-1234567890"


def test_every_error_is_a_unitune_error_importable_from_top() -> None:
    for name in unitune.__all__:
        obj = getattr(unitune, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, UnituneError), name


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        (401, AuthenticationError),
        (403, PermissionDeniedError),
        (404, NotFoundError),
        (410, ProviderRetiredError),
        (429, RateLimitError),
        (408, ProviderUnavailableError),
        (500, ProviderUnavailableError),
        (503, ProviderUnavailableError),
        (None, ProviderUnavailableError),
        (400, ProviderError),
        (409, ProviderError),
        (422, ProviderError),
    ],
)
def test_error_from_status(code: int | None, cls: type[ProviderError]) -> None:
    err = error_from_status(code, "nope", provider="acme", request_id="req-1", retry_after=3.0)
    assert type(err) is cls
    assert err.status_code == code
    assert err.request_id == "req-1"
    assert "acme" in str(err)
    assert "req-1" in str(err)
    if isinstance(err, RateLimitError):
        assert err.retry_after == 3.0


def test_retired_error_names_date_and_alternatives() -> None:
    err = ProviderRetiredError(
        "Mistral's training API is retired",
        provider="mistral",
        retired_on=dt.date(2026, 3, 1),
        alternatives=["together", "bedrock"],
        status_code=410,
    )
    assert "2026-03-01" in str(err)
    assert "together, bedrock" in str(err)
    assert err.alternatives == ("together", "bedrock")


def test_parse_retry_after() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    now = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc).timestamp()
    assert parse_retry_after("Thu, 01 Jan 2026 00:00:30 GMT", now=now) == 30.0


class _KeyedSettings(FakeSettings):
    api_key_env: ClassVar[str | None] = "ACME_API_KEY"


class _KeyedFake(FakeProvider):
    name: ClassVar[str] = "acme"
    settings_class: ClassVar[type[ProviderSettings]] = _KeyedSettings


def test_missing_key_names_env_var_and_config_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ACME_API_KEY", raising=False)
    with pytest.raises(ConfigurationError) as info:
        _KeyedSettings().require_api_key("acme")
    assert "ACME_API_KEY" in str(info.value)
    assert "[providers.acme]" in str(info.value)
    monkeypatch.setenv("ACME_API_KEY", SECRET)
    assert _KeyedSettings().require_api_key("acme").get_secret_value() == SECRET


def test_secret_never_in_repr_logs_or_errors(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, train_file: Any
) -> None:
    provider = _KeyedFake.from_config({"api_key": SECRET}, clock=FakeClock())
    client = FineTuneClient(provider, ledger=False)
    texts = [repr(provider), repr(provider.settings), str(provider.settings), repr(client)]
    texts.append(provider.settings.model_dump_json())
    assert provider.settings.api_key is not None
    assert provider.settings.api_key.get_secret_value() == SECRET  # it is there, just hidden

    assert isinstance(provider, FakeProvider)
    provider.rate_limit("get_job", retry_after=1.0)
    provider.unavailable("upload")
    with caplog.at_level(logging.DEBUG):
        job = client.create_job(model="m", training_data=train_file)
        client.get_job(job)
    texts.extend(r.getMessage() for r in caplog.records)
    assert any("attempt 2" in t for t in texts)  # the retries were logged

    # A bad setting's error names the key, not the value.
    with pytest.raises(ConfigurationError) as info:
        _KeyedFake.from_config({"api_key": SECRET, "api_kee": SECRET})
    texts.append(str(info.value))
    assert "api_kee" in str(info.value)

    for text in texts:
        assert SECRET not in text


def test_errors_survive_pickling() -> None:
    import pickle

    from unitune import Job, JobFailedError, JobStatus

    job = Job(id="j", provider="p", status=JobStatus.FAILED, raw_status="failed", model="m", error="oom")
    errors: list[UnituneError] = [
        RateLimitError("slow down", provider="acme", status_code=429, retry_after=3.0, request_id="r1"),
        ProviderRetiredError("gone", provider="acme", retired_on=dt.date(2027, 1, 6), alternatives=["x"]),
        ConfigurationError("bad", fix="do this"),
        JobFailedError(job),
    ]
    for err in errors:
        again = pickle.loads(pickle.dumps(err))
        assert type(again) is type(err)
        assert str(again) == str(err)
        assert again.__dict__.keys() == err.__dict__.keys()
    assert pickle.loads(pickle.dumps(errors[0])).retry_after == 3.0  # type: ignore[attr-defined]


def test_api_key_in_config_file_is_hidden(tmp_path: Any) -> None:
    from pathlib import Path

    from unitune.config import load_config

    Path("unitune.toml").write_text(f'provider = "fake"\n[providers.fake]\napi_key = "{SECRET}"\n')
    config = load_config()
    for text in (repr(config), str(config), config.model_dump_json()):
        assert SECRET not in text
    client = FineTuneClient.from_config()
    assert SECRET not in repr(client.provider)


def test_library_logs_have_a_null_handler() -> None:
    code = (
        "import logging, unitune.client; "  # the client's modules log
        "print(any(isinstance(h, logging.NullHandler) for h in logging.getLogger('unitune').handlers))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"
    assert any(isinstance(h, logging.NullHandler) for h in logging.getLogger("unitune").handlers)
