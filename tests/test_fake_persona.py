"""Issue 16, part 1: the fake impersonates a vendor, so a green test under the fixture means the real
call would pass the same checks (models, aliases, lifecycle, data rules, capabilities, statuses)."""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from unitune import (
    ConfigurationError,
    FineTuneClient,
    JobFailedError,
    JobStatus,
    ProviderRetiredError,
    UnituneError,
    UnsupportedFeatureError,
    ValidationFailed,
)
from unitune.catalog import load_catalog
from unitune.config import UnituneConfig
from unitune.providers.registry import BUILTIN_PROVIDERS, load_provider_class
from unitune.testing import FakeClock, FakeProvider

VENDORS = sorted(set(BUILTIN_PROVIDERS) - {"fake"})
#: Settings a provider's create needs (its check_job refuses without them, as production does).
REQUIRED = {
    "bedrock": {"bucket": "b", "role_arn": "arn:aws:iam::123456789012:role/r"},
    "vertex": {"project": "p", "location": "us-central1", "bucket": "b"},
}


def _tickets(tmp_path: Path, n: int) -> Path:
    path = tmp_path / f"tickets-{n}.jsonl"
    path.write_text(
        "".join(
            json.dumps({"messages": [{"role": "user", "content": f"Ticket {i}: my order is late"},
                                     {"role": "assistant", "content": f"Sorry about order {i}."}]}) + "\n"
            for i in range(n)
        )
    )  # fmt: skip
    return path


def _outcome(fn: Callable[..., object], *args: object) -> tuple[str, object]:
    try:
        return ("ok", fn(*args))
    except UnituneError as e:
        return (type(e).__name__, str(e).replace("'fake'", "?"))


def _client(fake: FakeProvider) -> FineTuneClient:
    return FineTuneClient(fake, config=UnituneConfig())


@pytest.mark.parametrize("name", VENDORS)
def test_the_fake_takes_on_each_vendor(name: str) -> None:
    cls = load_provider_class(name)
    fake = FakeProvider(clock=FakeClock()).as_provider(name)
    assert fake.name == name
    assert fake.impersonating == name
    assert fake.capabilities == cls.capabilities
    real = cls()
    for model in [None, *(m.id for _, m in load_catalog().models(name))]:
        # The same answer, or the same refusal (Bedrock's vision models have no format yet).
        assert _outcome(fake.profile_for, model) == _outcome(real.profile_for, model)
        assert _outcome(fake.wire_format_for, "sft", model) == _outcome(real.wire_format_for, "sft", model)
        assert _outcome(fake.wire_format_for, "dpo", model) == _outcome(real.wire_format_for, "dpo", model)
    table = sys.modules[cls.__module__].STATUS_MAP
    assert set(fake._words.values()) <= set(table)
    assert all(table[word] is status for status, word in fake._words.items())
    fake.as_provider(None)
    assert fake.name == "fake"
    assert fake.impersonating is None


@pytest.mark.parametrize("name", VENDORS)
def test_a_job_under_each_vendor_speaks_its_words(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UNITUNE_HOME", str(tmp_path / "home"))
    fake = FakeProvider(clock=FakeClock(start=dt.datetime(2026, 12, 7, tzinfo=dt.timezone.utc)))
    fake.as_provider(name, **REQUIRED.get(name, {}))
    client = _client(fake)
    catalog = load_catalog()
    live = [
        m.id for _, m in catalog.models(name)
        if catalog.lifecycle(name, m.id, today=dt.date(2026, 12, 7)).state != "retired"
    ]  # fmt: skip
    if not catalog.accepts_new_jobs(name, today=dt.date(2026, 12, 7)) or not live:
        with pytest.raises(ProviderRetiredError):
            client.create_job(model=(live or [m.id for _, m in catalog.models(name)])[0],
                              training_data=_tickets(tmp_path, 40))  # fmt: skip
        assert fake.calls_to("upload") == []
        return
    model = live[0]
    job = client.create_job(model=model, training_data=_tickets(tmp_path, 40))
    assert job.provider == name
    done = client.wait(job)
    assert done.status is JobStatus.SUCCEEDED
    table = sys.modules[load_provider_class(name).__module__].STATUS_MAP
    assert table[done.raw_status] is JobStatus.SUCCEEDED
    assert table[job.raw_status] is job.status


def test_what_openai_refuses_fails_under_the_fake(tmp_path: Path) -> None:
    fake = FakeProvider(clock=FakeClock(start=dt.datetime(2026, 12, 7, tzinfo=dt.timezone.utc)))
    client = _client(fake)
    # The plain fake is permissive: Llama on it, five examples, DPO.
    client.create_job(model="llama-3.1-8b-instruct", training_data=_tickets(tmp_path, 5))
    fake.as_provider("openai")
    with pytest.raises(ConfigurationError, match=r"'openai' does not offer 'llama-3\.1-8b-instruct'"):
        client.create_job(model="llama-3.1-8b-instruct", training_data=_tickets(tmp_path, 20))
    with pytest.raises(ValidationFailed, match="too_few_examples"):
        client.create_job(model="gpt-4o-mini", training_data=_tickets(tmp_path, 5))
    with pytest.raises(ProviderRetiredError, match=r"gpt-4\.1-nano"):
        client.create_job(model="gpt-4.1-nano", training_data=_tickets(tmp_path, 20))
    assert len(fake.calls_to("upload")) == 1  # only the permissive job's


def test_capabilities_the_vendor_lacks_are_refused(tmp_path: Path) -> None:
    fake = FakeProvider(clock=FakeClock()).as_provider("together")
    client = _client(fake)
    job = client.create_job(model="llama-3.1-8b-instruct", training_data=_tickets(tmp_path, 20))
    with pytest.raises(UnsupportedFeatureError, match="pausing"):
        client.pause_job(job)
    fake.as_provider("openai")
    job = client.create_job(model="gpt-4o-mini", training_data=_tickets(tmp_path, 20))
    client.get_job(job)
    client.get_job(job)
    paused = client.pause_job(job)
    assert paused.status is JobStatus.PAUSED
    assert paused.raw_status == "paused"
    assert client.get_job(job).status is JobStatus.PAUSED  # a paused job does not advance
    client.resume_job(job)
    done = client.wait(job)
    checkpoints = client.checkpoints(done)
    assert checkpoints
    assert client.chat(checkpoints[-1].model or "", "hi").content


def test_the_settings_section_is_checked_like_production() -> None:
    with pytest.raises(ConfigurationError, match="base_url"):
        FakeProvider().as_provider("openai", base_url="not a url")
    with pytest.raises(ConfigurationError, match="Unknown provider 'acme'"):
        FakeProvider().as_provider("acme")


def test_retire_edges(tmp_path: Path) -> None:
    clock = FakeClock(start=dt.datetime(2026, 12, 7, 9, 0, tzinfo=dt.timezone.utc))
    fake = FakeProvider(clock=clock)
    client = _client(fake)
    fake.retire(on=dt.datetime(2026, 12, 7, 10, 0, tzinfo=dt.timezone.utc))  # later today: announced
    assert client.create_job(model="gpt-4o-mini", training_data=_tickets(tmp_path, 12)).id
    clock.advance(3600)
    with pytest.raises(ProviderRetiredError, match="2026-12-07"):
        client.create_job(model="gpt-4o-mini", training_data=_tickets(tmp_path, 12))
    with pytest.raises(ConfigurationError, match="alternatives must be a list"):
        fake.retire(alternatives="openai")
    fake.retire(on="2020-01-01", alternatives=["bedrock"])
    fake.as_provider("together")  # retired before impersonating: the refusal speaks as Together
    with pytest.raises(ProviderRetiredError, match=r"^\[together\]"):
        client.create_job(model="llama-3.1-8b-instruct", training_data=_tickets(tmp_path, 12))
    with pytest.raises(ConfigurationError, match="as_provider takes a provider name or None"):
        fake.as_provider(3)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["mistral", "cohere"])
def test_tuned_model_management_where_the_vendor_has_it(name: str, tmp_path: Path) -> None:
    fake = FakeProvider(clock=FakeClock())
    client = _client(fake)
    job = client.wait(client.create_job(model="gpt-4o-mini", training_data=_tickets(tmp_path, 12)))
    fake.as_provider(name)
    (model,) = client.models()
    assert model.id == job.fine_tuned_model
    assert client.update_model(model.id, name="tickets").name == "tickets"
    assert client.archive_model(model.id).archived
    client.delete_model(model.id)
    assert client.models() == []
    fake.as_provider("openai")  # OpenAI's adapter has no model management
    with pytest.raises(UnsupportedFeatureError, match="listing tuned models"):
        client.models()


def test_the_vendors_own_refusals_hold_under_the_fake(tmp_path: Path) -> None:
    from unitune import Hyperparameters

    fake = FakeProvider(clock=FakeClock(start=dt.datetime(2026, 12, 7, tzinfo=dt.timezone.utc)))
    client = _client(fake)
    fake.as_provider("openai")
    data = _tickets(tmp_path, 12)
    with pytest.raises(UnituneError):  # OpenAI takes a learning-rate multiplier, not a rate
        client.create_job(
            model="gpt-4o-mini", training_data=data, hyperparameters=Hyperparameters(learning_rate=1e-5)
        )
    with pytest.raises(UnituneError, match="steps_per_epoch"):  # the plain fake's own option is not OpenAI's
        client.create_job(model="gpt-4o-mini", training_data=data,
                          hyperparameters=Hyperparameters(provider_options={"steps_per_epoch": 5}))  # fmt: skip
    with pytest.raises(UnituneError):
        client.create_job(model="gpt-4o-mini", training_data=data, metadata={f"k{i}": "v" for i in range(16)})
    fake.as_provider("bedrock")  # no bucket, no role: production refuses before any upload
    with pytest.raises(ConfigurationError, match="bucket"):
        client.create_job(model="nova-micro", training_data=_tickets(tmp_path, 40))
    assert fake.calls_to("upload") == []


def test_two_clients_for_two_providers_each_keep_theirs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from unitune.testing import override_provider

    monkeypatch.setenv("UNITUNE_HOME", str(tmp_path / "home"))
    fake = FakeProvider(clock=FakeClock(start=dt.datetime(2026, 12, 7, tzinfo=dt.timezone.utc)))
    data = _tickets(tmp_path, 12)
    with override_provider(fake):
        openai_client = FineTuneClient("openai", api_key="sk-test-key-1")
        together_client = FineTuneClient("together", api_key="tk-test-key-1")
        with pytest.raises(ConfigurationError, match="'openai' does not offer"):
            openai_client.create_job(model="llama-3.1-8b-instruct", training_data=data)
        assert openai_client.create_job(model="gpt-4o-mini", training_data=data).provider == "openai"
        assert (
            together_client.create_job(model="llama-3.1-8b-instruct", training_data=data).provider
            == "together"
        )
        fake.fail_next_job("oom")  # scripted on the fixture's fake, seen by every view
        failed = together_client.create_job(model="llama-3.1-8b-instruct", training_data=data, suffix="x")
        with pytest.raises(JobFailedError, match="on 'together' ended failed: oom"):
            together_client.wait(failed)
    assert [c.args["model"] for c in fake.calls_to("create_job")][:2] == [
        "gpt-4o-mini-2024-07-18",
        "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference",
    ]


def test_a_key_reused_for_another_job_is_refused_by_the_fake(tmp_path: Path) -> None:
    from unitune import Hyperparameters

    client = _client(FakeProvider(clock=FakeClock()))
    data = _tickets(tmp_path, 12)
    first = client.create_job(model="gpt-4o-mini", training_data=data, idempotency_key="k")
    assert client.create_job(model="gpt-4o-mini", training_data=data, idempotency_key="k").id == first.id
    with pytest.raises(ConfigurationError, match="already used for another job"):
        client.create_job(model="gpt-4o-mini", training_data=data, idempotency_key="k",
                          hyperparameters=Hyperparameters(epochs=7))  # fmt: skip
