"""The OpenAI adapter against the real `openai` SDK, its HTTP answered in-process by `FakeOpenAI`
(`httpx2.MockTransport`: the SDK's own request building, parsing and errors all run)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import subprocess
import sys
import typing
from pathlib import Path

import pytest

pytest.importorskip("openai")

import httpx2
import openai

from tests.openai_adapter.conftest import KEY, make_provider
from tests.openai_adapter.fake_api import FakeOpenAI
from unitune import (
    AuthenticationError,
    ConfigurationError,
    FineTuneClient,
    Hyperparameters,
    JobStatus,
    NotFoundError,
    PermissionDeniedError,
    ProviderError,
    ProviderRetiredError,
    ProviderUnavailableError,
    RateLimitError,
    UnknownStatusError,
    UnsupportedFeatureError,
)
from unitune.config import RetrySettings, UnituneConfig
from unitune.providers.base import map_status
from unitune.providers.openai import IDEMPOTENCY_TAG, STATUS_MAP, OpenAIProvider, OpenAISettings
from unitune.testing import FakeClock
from unitune.types import FileRef, JobSpec, Message, PreparedFile


@pytest.fixture
def data(tmp_path: Path) -> Path:
    from unitune.demo.tickets import write_jsonl

    return write_jsonl(tmp_path / "tickets.jsonl", n=60, seed=3)


def _spec(api: FakeOpenAI, provider: OpenAIProvider, tmp_path: Path, **kw: typing.Any) -> JobSpec:
    path = tmp_path / "t.jsonl"
    path.write_text(
        '{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}\n'
    )
    ref = provider.upload(PreparedFile(path=path, filename="t.jsonl", size_bytes=path.stat().st_size,
                                       sha256="x", purpose="training"))  # fmt: skip
    return JobSpec(model=kw.pop("model", "gpt-4o-mini-2024-07-18"), training_file=ref, **kw)


# -- 1. one module, one boundary ----------------------------------------------------------------


def test_the_sdk_loads_only_when_used() -> None:
    code = (
        "import sys; import unitune.providers.openai as m; "
        "p = m.OpenAIProvider(m.OpenAISettings(api_key='k', base_url='http://127.0.0.1:9/v1')); "
        "print('openai' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_settings_key_from_env_and_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ConfigurationError, match="OPENAI_API_KEY"):
        OpenAIProvider(OpenAISettings(base_url="http://127.0.0.1:9/v1")).sdk  # noqa: B018
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    p = OpenAIProvider(OpenAISettings(base_url="http://127.0.0.1:9/v1"))
    assert p.sdk.api_key == KEY
    assert p.sdk.max_retries == 0  # FineTuneClient retries; the SDK must not multiply attempts
    assert str(p.sdk.base_url).startswith("http://127.0.0.1:9/v1")
    configured = OpenAIProvider(OpenAISettings(api_key=KEY))
    assert KEY not in repr(configured)
    assert KEY not in str(configured.settings)


def test_registered_and_built_from_config(monkeypatch: pytest.MonkeyPatch) -> None:
    from unitune.providers.registry import build_provider

    p = build_provider(
        "openai", {"api_key": KEY, "base_url": "http://127.0.0.1:9/v1", "upload_concurrency": 2}
    )
    assert isinstance(p, OpenAIProvider)
    assert p.settings.upload_concurrency == 2
    with pytest.raises(ConfigurationError, match="upload_concurency"):
        build_provider("openai", {"upload_concurency": 2})


def test_missing_sdk_names_the_extra() -> None:
    from unitune import MissingDependencyError
    from unitune.providers.registry import import_sdk

    with pytest.raises(MissingDependencyError, match=r"unitune\[openai\]"):
        import_sdk("openai", "openai_not_installed_here")


# -- 3. truthful status ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("validating_files", JobStatus.VALIDATING), ("queued", JobStatus.QUEUED), ("running", JobStatus.RUNNING),
        ("pausing", JobStatus.RUNNING), ("paused", JobStatus.PAUSED), ("succeeded", JobStatus.SUCCEEDED),
        ("failed", JobStatus.FAILED), ("cancelled", JobStatus.CANCELLED),
    ],
)  # fmt: skip
def test_status_map_value_by_value(raw: str, expected: JobStatus) -> None:
    assert STATUS_MAP[raw] is expected


def test_status_map_covers_every_status_the_sdk_declares() -> None:
    from openai.types.fine_tuning import FineTuningJob

    declared = set(typing.get_args(FineTuningJob.model_fields["status"].annotation))
    assert declared <= set(STATUS_MAP)
    assert set(STATUS_MAP) - declared == {"pausing", "paused"}  # API-only, not in the SDK's Literal


def test_a_non_terminal_status_never_maps_to_a_terminal_one() -> None:
    for raw in ("validating_files", "queued", "running", "pausing", "paused"):
        assert not STATUS_MAP[raw].is_terminal


def test_unknown_status_raises_in_strict_mode(
    api: FakeOpenAI, provider: OpenAIProvider, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = provider.create_job(_spec(api, provider, tmp_path), idempotency_key="k")
    api.set_status(job.id, "defrosting")
    monkeypatch.setenv("UNITUNE_STRICT_STATUS", "1")
    with pytest.raises(UnknownStatusError, match="defrosting"):
        provider.get_job(job.id)
    monkeypatch.setenv("UNITUNE_STRICT_STATUS", "0")
    seen = provider.get_job(job.id)
    assert seen.status is JobStatus.RUNNING
    assert seen.raw_status == "defrosting"
    assert map_status("openai", "paused", STATUS_MAP) is JobStatus.PAUSED


# -- 1. errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (401, AuthenticationError), (403, PermissionDeniedError), (404, NotFoundError), (409, ProviderError),
        (410, ProviderRetiredError), (422, ProviderError), (500, ProviderUnavailableError),
        (503, ProviderUnavailableError),
    ],
)  # fmt: skip
def test_error_map(api: FakeOpenAI, provider: OpenAIProvider, status: int, error: type[Exception]) -> None:
    api.fail(r"GET /v1/fine_tuning/jobs/.*", status, message="nope")
    with pytest.raises(error) as info:
        provider.get_job("ftjob-1")
    e = info.value
    assert isinstance(e, ProviderError)
    assert e.status_code == status
    assert e.request_id == "req_fake"
    assert e.provider == "openai"
    assert "nope" in str(e)
    assert isinstance(e.__cause__, openai.APIStatusError)  # the SDK's exception is kept
    assert KEY not in str(e)


def test_429_carries_retry_after(api: FakeOpenAI, provider: OpenAIProvider) -> None:
    api.fail(r"GET /v1/fine_tuning/jobs/.*", 429, headers={"retry-after": "7"})
    with pytest.raises(RateLimitError) as info:
        provider.get_job("ftjob-1")
    assert info.value.retry_after == 7
    api.fail(r"GET /v1/fine_tuning/jobs/.*", 429, headers={"retry-after-ms": "1500"})
    with pytest.raises(RateLimitError) as info:
        provider.get_job("ftjob-1")
    assert info.value.retry_after == 1.5


def test_timeout_and_connection_reset_are_unavailable(provider: OpenAIProvider, api: FakeOpenAI) -> None:
    api.fail(r"GET .*", None)
    with pytest.raises(
        ProviderUnavailableError, match=r"openai\.test:80 failed \(connection reset\)"
    ) as info:
        provider.get_job("ftjob-1")
    assert info.value.status_code is None

    def slow(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ReadTimeout("read timed out", request=request)

    sdk = openai.OpenAI(api_key=KEY, base_url="http://openai.test/v1", max_retries=0,
                        http_client=httpx2.Client(transport=httpx2.MockTransport(slow)))  # fmt: skip
    with pytest.raises(ProviderUnavailableError, match=r"no answer from openai\.test:80 in time"):
        OpenAIProvider(client=sdk).get_job("ftjob-1")


def test_the_client_retries_transient_errors(api: FakeOpenAI, client: FineTuneClient, provider: OpenAIProvider,
                                             tmp_path: Path) -> None:  # fmt: skip
    job = provider.create_job(_spec(api, provider, tmp_path), idempotency_key="k")
    api.fail(r"GET /v1/fine_tuning/jobs/.*", 429, headers={"retry-after": "2"}, times=2)
    assert client.get_job(job.id).id == job.id
    sleeps = client.clock.sleeps  # type: ignore[attr-defined]
    assert len(sleeps) == 2
    assert all(2.0 <= s < 3.0 for s in sleeps)  # Retry-After honoured (plus jitter)


def test_403_on_create_names_the_wind_down_and_alternatives(
    api: FakeOpenAI, provider: OpenAIProvider, tmp_path: Path
) -> None:
    spec = _spec(api, provider, tmp_path)
    api.fail(r"POST /v1/fine_tuning/jobs", 403, message="Fine-tuning is not available for your organization.")
    with pytest.raises(PermissionDeniedError) as info:
        provider.create_job(spec, idempotency_key="k")
    text = str(info.value)
    assert "not available for your organization" in text
    assert "2027-01-06" in text  # from the catalog, not from code
    assert "together" in text
    assert "bedrock" in text


def test_410_is_retirement_with_date_and_alternatives(api: FakeOpenAI, provider: OpenAIProvider,
                                                      tmp_path: Path) -> None:  # fmt: skip
    spec = _spec(api, provider, tmp_path)
    api.fail(r"POST /v1/fine_tuning/jobs", 410, message="Fine-tuning has been retired.")
    with pytest.raises(ProviderRetiredError) as info:
        provider.create_job(spec, idempotency_key="k")
    assert info.value.retired_on == dt.date(2027, 1, 6)
    assert "local" in info.value.alternatives


def test_after_the_sunset_nothing_is_uploaded(api: FakeOpenAI, provider: OpenAIProvider, data: Path,
                                              tmp_path: Path) -> None:  # fmt: skip
    late = FineTuneClient(provider, config=UnituneConfig(), ledger=False,
                          clock=FakeClock(dt.datetime(2027, 1, 7, tzinfo=dt.timezone.utc)))  # fmt: skip
    with pytest.raises(ProviderRetiredError, match="2027-01-06"):
        late.create_job(model="gpt-4o-mini-2024-07-18", training_data=data)
    assert api.requests == []


# -- 2. everything through the common API ----------------------------------------------------------


def test_upload_small_file_through_the_files_api(api: FakeOpenAI, client: FineTuneClient, data: Path) -> None:
    ref = client.upload(data)
    assert ref.provider == "openai"
    assert ref.id in api.files
    assert api.files[ref.id]["purpose"] == "fine-tune"
    sent = api.file_bytes[ref.id].decode().splitlines()
    assert len(sent) == 60
    assert "messages" in json.loads(sent[0])
    assert not api.calls("POST", "/v1/uploads")


def test_large_file_goes_through_the_uploads_api_in_parallel_parts(api: FakeOpenAI, tmp_path: Path) -> None:
    provider = make_provider(api, multipart_threshold_bytes=1000, part_size_bytes=4096, upload_concurrency=3)
    path = tmp_path / "big.jsonl"
    line = json.dumps(
        {"messages": [{"role": "user", "content": "x" * 300}, {"role": "assistant", "content": "y"}]}
    )
    path.write_text((line + "\n") * 100)
    blob = path.read_bytes()
    ref = provider.upload(PreparedFile(path=path, filename="big.jsonl", size_bytes=len(blob),
                                       sha256=hashlib.sha256(blob).hexdigest(), purpose="training"))  # fmt: skip
    (upload,) = api.uploads.values()
    assert len(upload["parts"]) == -(-len(blob) // 4096) > 1
    assert api.file_bytes[ref.id] == blob  # parts reassembled in order; md5 checked by the fake
    complete = json.loads(api.calls("POST", r"/v1/uploads/.*/complete")[0].read())
    assert complete["md5"] == hashlib.md5(blob).hexdigest()


def _fake_time(provider: OpenAIProvider) -> FakeClock:
    """The provider's steps retry on a fake clock (no real sleeping), as when a client binds its own."""
    from unitune._retry import RetryPolicy
    from unitune.config import RetrySettings

    clock = FakeClock()
    provider.bind_retry(RetryPolicy(RetrySettings(), clock))
    return clock


def test_a_failed_part_is_sent_again_alone(api: FakeOpenAI, tmp_path: Path) -> None:
    provider = make_provider(api, multipart_threshold_bytes=10, part_size_bytes=64, upload_concurrency=1)
    clock = _fake_time(provider)
    path = tmp_path / "big.jsonl"
    path.write_bytes(bytes(range(256)) * 4)
    api.fail(r"POST /v1/uploads/.*/parts", 500, times=2)
    api.fail(r"POST /v1/uploads", 503, times=1)
    api.fail(r"POST /v1/uploads/.*/complete", None, times=1)
    ref = provider.upload(
        PreparedFile(path=path, filename="big.jsonl", size_bytes=1024, sha256="s", purpose="training")
    )
    assert api.file_bytes[ref.id] == path.read_bytes()
    assert len(api.uploads) == 1  # one upload: the failed create was tried again, not the whole upload
    assert len(api.calls("POST", r"/v1/uploads/.*/parts")) == 16 + 2  # 16 parts, 2 of them twice
    assert len(clock.sleeps) == 4  # each failed request waited once, on the policy's clock


def test_a_part_that_keeps_failing_cancels_the_upload_and_is_not_retried_again(
    api: FakeOpenAI, tmp_path: Path
) -> None:
    provider = make_provider(api, multipart_threshold_bytes=10, part_size_bytes=64, upload_concurrency=1)
    _fake_time(provider)
    path = tmp_path / "big.jsonl"
    path.write_bytes(b"x" * 1000)
    api.fail(r"POST /v1/uploads/.*/parts", 500, times=10**6)
    client = FineTuneClient(provider, config=UnituneConfig(), ledger=False, clock=FakeClock())
    prepared = PreparedFile(path=path, filename="big.jsonl", size_bytes=1000, sha256="s", purpose="training")
    with pytest.raises(ProviderUnavailableError, match="gave up on this step") as info:
        client._upload_prepared(prepared)
    assert info.value.status_code == 500
    assert getattr(info.value, "retryable", True) is False  # the client does not start it again
    (upload,) = api.uploads.values()  # one upload, cancelled
    assert upload["status"] == "cancelled"
    # The first part failed max_attempts times (one policy's bound, never its square); the others were
    # never sent.
    assert len(api.calls("POST", r"/v1/uploads/.*/parts")) == RetrySettings().max_attempts
    assert len(api.calls("POST", "/v1/uploads")) == 1


def test_a_lost_complete_answer_finds_the_file_it_made(api: FakeOpenAI, tmp_path: Path) -> None:
    provider = make_provider(api, multipart_threshold_bytes=10, part_size_bytes=256)
    _fake_time(provider)
    path = tmp_path / "big.jsonl"
    path.write_bytes(b"y" * 1000)
    api.fail(r"POST /v1/uploads/.*/complete", 502, after_effect=True)  # made, then the answer is lost
    ref = provider.upload(
        PreparedFile(path=path, filename="big.jsonl", size_bytes=1000, sha256="s", purpose="training")
    )
    assert list(api.files) == [ref.id]  # the retried complete was refused; the file it made is found
    assert len(api.calls("POST", r"/v1/uploads/.*/complete")) == 2


def test_create_maps_the_common_hyperparameters(
    api: FakeOpenAI, provider: OpenAIProvider, tmp_path: Path
) -> None:
    spec = _spec(api, provider, tmp_path, suffix="triage", metadata={"team": "support"},
                 hyperparameters=Hyperparameters(epochs=3, batch_size=8, learning_rate_multiplier=0.5, seed=11))  # fmt: skip
    job = provider.create_job(spec, idempotency_key="key-1")
    sent = json.loads(api.calls("POST", "/v1/fine_tuning/jobs")[0].read())
    assert sent["method"] == {"type": "supervised", "supervised": {"hyperparameters":
                              {"n_epochs": 3, "batch_size": 8, "learning_rate_multiplier": 0.5}}}  # fmt: skip
    assert sent["suffix"] == "triage"
    assert sent["seed"] == 11
    assert sent["metadata"] == {"team": "support", IDEMPOTENCY_TAG: "key-1"}
    assert "hyperparameters" not in sent  # the deprecated top-level form is never sent
    assert job.status is JobStatus.VALIDATING
    assert job.raw_status == "validating_files"
    assert job.idempotency_key == "key-1"
    assert job.hyperparameters == {"n_epochs": 3, "batch_size": 8, "learning_rate_multiplier": 0.5}


def test_dpo_with_beta(api: FakeOpenAI, provider: OpenAIProvider, tmp_path: Path) -> None:
    spec = _spec(api, provider, tmp_path, method="dpo", model="gpt-4.1-mini-2025-04-14",
                 hyperparameters=Hyperparameters(epochs=2, provider_options={"beta": 0.1}))  # fmt: skip
    provider.create_job(spec, idempotency_key="k")
    sent = json.loads(api.calls("POST", "/v1/fine_tuning/jobs")[0].read())
    assert sent["method"] == {"type": "dpo", "dpo": {"hyperparameters": {"n_epochs": 2, "beta": 0.1}}}


def test_reinforcement_only_as_a_whole_method_object(api: FakeOpenAI, provider: OpenAIProvider,
                                                     tmp_path: Path) -> None:  # fmt: skip
    method = {"type": "reinforcement", "reinforcement": {"grader": {"type": "string_check", "name": "g",
              "input": "{{sample.output_text}}", "reference": "{{item.answer}}", "operation": "eq"}}}  # fmt: skip
    provider.create_job(_spec(api, provider, tmp_path, hyperparameters=Hyperparameters(
        provider_options={"method": method})), idempotency_key="k")  # fmt: skip
    assert json.loads(api.calls("POST", "/v1/fine_tuning/jobs")[0].read())["method"] == method
    with pytest.raises(UnsupportedFeatureError, match="type"):
        provider.create_job(_spec(api, provider, tmp_path, hyperparameters=Hyperparameters(
            provider_options={"method": {"reinforcement": {}}})), idempotency_key="k2")  # fmt: skip


@pytest.mark.parametrize(
    ("hp", "match"),
    [
        (Hyperparameters(learning_rate=1e-4), "learning_rate_multiplier"),
        (Hyperparameters(provider_options={"warmup": 3}), "'warmup'"),
        (Hyperparameters(provider_options={"beta": 0.1}), "beta outside DPO"),
    ],
)
def test_what_openai_cannot_do_is_refused_by_name(api: FakeOpenAI, provider: OpenAIProvider, tmp_path: Path,
                                                  hp: Hyperparameters, match: str) -> None:  # fmt: skip
    with pytest.raises(UnsupportedFeatureError, match=match):
        provider.create_job(_spec(api, provider, tmp_path, hyperparameters=hp), idempotency_key="k")
    assert not api.calls("POST", "/v1/fine_tuning/jobs")


def test_lora_settings_are_refused_before_upload(api: FakeOpenAI, client: FineTuneClient, data: Path) -> None:
    with pytest.raises(UnsupportedFeatureError, match="LoRA"):
        client.create_job(model="gpt-4o-mini-2024-07-18", training_data=data,
                          hyperparameters=Hyperparameters(lora_rank=8))  # fmt: skip
    assert api.requests == []


def test_lifecycle_through_the_client(api: FakeOpenAI, client: FineTuneClient, data: Path) -> None:
    job = client.create_job(model="gpt-4o-mini", training_data=data, validation_data=data, suffix="t")
    assert job.model == "gpt-4o-mini-2024-07-18"  # the catalog alias resolved to the snapshot
    assert job.training_file in api.files
    assert job.validation_file in api.files
    api.set_status(job.id, "running")
    api.add_event(job.id, "Step 1/10: training loss=1.20", type="metrics",
                  data={"step": 1, "train_loss": 1.2, "train_mean_token_accuracy": 0.5, "total_steps": 10})  # fmt: skip
    api.add_event(job.id, "Step 2/10: training loss=0.90", type="metrics",
                  data={"step": 2, "train_loss": 0.9, "valid_loss": 1.0, "total_steps": 10})  # fmt: skip
    api.add_event(job.id, "Slow data", level="warn")
    assert client.get_job(job.id).status is JobStatus.RUNNING
    events = client.events(job.id)
    assert events[0].message.startswith("Created fine-tuning job")  # oldest first
    assert events[-1].level == "warning"
    metrics = client.metrics(job.id)
    assert [(m.step, m.train_loss, m.valid_loss) for m in metrics] == [(1, 1.2, None), (2, 0.9, 1.0)]
    assert metrics[0].train_accuracy == 0.5
    assert metrics[0].extra == {"total_steps": 10.0}

    paused = client.pause_job(job.id)
    assert paused.status is JobStatus.RUNNING
    assert paused.raw_status == "pausing"
    api.set_status(job.id, "paused")
    assert client.get_job(job.id).status is JobStatus.PAUSED
    assert client.resume_job(job.id).status is JobStatus.RUNNING

    csv_id = "file-results"
    api.file_bytes[csv_id] = (
        b"step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy\n1,1.2,0.5,,\n2,0.9,0.6,1.0,0.55\n3,0.7,0.7,,\n"
    )
    api.checkpoints[job.id] = [
        {"id": "ftckpt-2", "object": "fine_tuning.job.checkpoint", "created_at": 1_700_000_500,
         "fine_tuned_model_checkpoint": "ft:gpt-4o-mini-2024-07-18:org:t:abc:ckpt-step-2", "fine_tuning_job_id": job.id,
         "metrics": {"step": 2, "train_loss": 0.9, "valid_loss": 1.0}, "step_number": 2},
    ]  # fmt: skip
    api.set_status(job.id, "succeeded", fine_tuned_model="ft:gpt-4o-mini-2024-07-18:org:t:abc",
                   result_files=[csv_id], trained_tokens=1234, finished_at=1_700_000_900)  # fmt: skip
    done = client.wait(job.id, timeout=60)
    assert done.fine_tuned_model == "ft:gpt-4o-mini-2024-07-18:org:t:abc"
    assert done.trained_tokens == 1234
    assert done.finished_at == dt.datetime.fromtimestamp(1_700_000_900, dt.timezone.utc)
    assert [m.step for m in client.metrics(job.id)] == [1, 2, 3]  # the result CSV: every step
    (ckpt,) = client.checkpoints(job.id)
    assert ckpt.step == 2
    assert ckpt.model
    assert ckpt.model.endswith("ckpt-step-2")
    assert ckpt.metrics["valid_loss"] == 1.0

    answer = client.chat(done.fine_tuned_model, "Where is my order?")
    assert answer.content == "echo: Where is my order?"
    assert answer.usage.prompt_tokens == 7
    assert answer.usage.completion_tokens == 3
    with pytest.raises(ProviderError, match="already succeeded"):
        client.cancel_job(job.id)


def test_chat_sends_no_unitune_only_fields(api: FakeOpenAI, provider: OpenAIProvider) -> None:
    provider.chat("ft:x", [Message(role="system", content="s"), Message(role="assistant", content="a", weight=0),
                           Message(role="user", content="u")], temperature=0)  # fmt: skip
    sent = json.loads(api.calls("POST", "/v1/chat/completions")[0].read())
    assert sent["messages"] == [{"role": "system", "content": "s"}, {"role": "assistant", "content": "a"},
                                {"role": "user", "content": "u"}]  # fmt: skip
    assert sent["temperature"] == 0


def test_cancel(api: FakeOpenAI, provider: OpenAIProvider, tmp_path: Path) -> None:
    job = provider.create_job(_spec(api, provider, tmp_path), idempotency_key="k")
    assert provider.cancel_job(job.id).status is JobStatus.CANCELLED
    with pytest.raises(NotFoundError):
        provider.cancel_job("ftjob-nope")


# -- pagination ---------------------------------------------------------------------------------------


def test_list_follows_every_page_up_to_the_limit(
    api: FakeOpenAI, provider: OpenAIProvider, tmp_path: Path
) -> None:
    spec = _spec(api, provider, tmp_path)
    made = [provider.create_job(spec, idempotency_key=f"k{i}").id for i in range(230)]
    listed = provider.list_jobs(limit=210)
    assert [j.id for j in listed] == made[::-1][:210]  # newest first, no duplicates
    assert len(api.calls("GET", "/v1/fine_tuning/jobs")) == 3  # 100 + 100 + 10
    assert len(provider.list_jobs(limit=1000)) == 230


def test_events_read_every_page(api: FakeOpenAI, provider: OpenAIProvider, tmp_path: Path) -> None:
    job = provider.create_job(_spec(api, provider, tmp_path), idempotency_key="k")
    for i in range(250):
        api.add_event(job.id, f"event {i}")
    events = provider.list_events(job.id)
    assert len(events) == 251
    assert events[-1].message == "event 249"
    assert events[1].message == "event 0"


def test_a_server_that_always_says_has_more_cannot_loop_forever(provider: OpenAIProvider, api: FakeOpenAI,
                                                                tmp_path: Path) -> None:  # fmt: skip
    # Prism's mock answers has_more=true on every page with the same example items.
    job = provider.create_job(_spec(api, provider, tmp_path), idempotency_key="k")
    stuck = {"object": "list", "data": [api.jobs[job.id]], "has_more": True}
    api.fail(r"GET /v1/fine_tuning/jobs", 200, times=100)
    api.failures[-1].body = stuck
    assert len(provider.list_jobs(limit=50)) == 1
    assert len(api.calls("GET", "/v1/fine_tuning/jobs")) == 2


# -- 5. idempotent create -------------------------------------------------------------------------------


def test_a_lost_create_answer_is_found_by_its_tag_not_created_twice(api: FakeOpenAI, client: FineTuneClient,
                                                                    data: Path) -> None:  # fmt: skip
    api.fail(r"POST /v1/fine_tuning/jobs", 502, after_effect=True)  # made, then the answer is lost
    job = client.create_job(model="gpt-4o-mini-2024-07-18", training_data=data, idempotency_key="order-42")
    assert len(api.jobs) == 1
    assert job.id in api.jobs
    assert job.idempotency_key == "order-42"
    listed = api.calls("GET", "/v1/fine_tuning/jobs")
    assert listed
    assert listed[-1].url.params[f"metadata[{IDEMPOTENCY_TAG}]"] == "order-42"
    again = client.create_job(model="gpt-4o-mini-2024-07-18", training_data=data, idempotency_key="order-42")
    assert again.id == job.id
    assert len(api.jobs) == 1


def test_find_job_from_another_machine(api: FakeOpenAI, client: FineTuneClient, provider: OpenAIProvider,
                                      data: Path, tmp_path: Path) -> None:  # fmt: skip
    job = client.create_job(model="gpt-4o-mini-2024-07-18", training_data=data, idempotency_key="shared-key")
    assert provider.find_job("shared-key") is not None
    assert provider.find_job("other-key") is None
    elsewhere = FineTuneClient(provider, config=UnituneConfig(), ledger=tmp_path / "other.sqlite3",
                               clock=FakeClock(dt.datetime(2026, 11, 22, tzinfo=dt.timezone.utc)))  # fmt: skip
    found = elsewhere.create_job(
        model="gpt-4o-mini-2024-07-18", training_data=data, idempotency_key="shared-key"
    )
    assert found.id == job.id
    assert len(api.jobs) == 1
    with pytest.raises(ConfigurationError, match="already used"):
        elsewhere.create_job(
            model="gpt-4.1-mini-2025-04-14", training_data=data, idempotency_key="shared-key"
        )


def test_file_ref_from_another_provider_is_refused(client: FineTuneClient) -> None:
    with pytest.raises(ConfigurationError, match="lives on 'together'"):
        client.create_job(
            model="gpt-4o-mini-2024-07-18", training_data=FileRef(id="file-1", provider="together")
        )


def test_cli_pause_resume_and_checkpoints(api: FakeOpenAI, provider: OpenAIProvider, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    from typer.testing import CliRunner

    from unitune.cli import app
    from unitune.testing import override_provider

    monkeypatch.setenv("COLUMNS", "200")
    job = provider.create_job(_spec(api, provider, tmp_path), idempotency_key="k")
    api.checkpoints[job.id] = [
        {"id": "ftckpt-1", "object": "fine_tuning.job.checkpoint", "created_at": 1_700_000_500,
         "fine_tuned_model_checkpoint": "ft:gpt-4o-mini-2024-07-18:org::abc:ckpt-step-10", "fine_tuning_job_id": job.id,
         "metrics": {"step": 10, "train_loss": 0.5}, "step_number": 10},
    ]  # fmt: skip
    runner = CliRunner()
    with override_provider(provider):
        paused = runner.invoke(app, ["pause", job.id, "--provider", "openai"])
        assert paused.exit_code == 0, paused.output
        assert "running (raw: pausing)" in paused.stdout
        api.set_status(job.id, "paused")
        resumed = runner.invoke(app, ["resume", job.id, "--provider", "openai", "--json"])
        assert json.loads(resumed.stdout)["raw_status"] == "running"
        table = runner.invoke(app, ["checkpoints", job.id, "--provider", "openai"])
        assert "ft:gpt-4o-mini-2024-07-18:org::abc:ckpt-step-10" in table.stdout
        assert "train_loss=0.5" in table.stdout


def test_cli_pause_on_a_provider_without_it_says_so(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from unitune.cli import app
    from unitune.testing import FakeProvider, override_provider

    class NoPause(FakeProvider):  # a provider that cannot pause (the fake itself may script pauses)
        capabilities = FakeProvider.capabilities.model_copy(update={"pause": False})

        def pause_job(self, job_id: str) -> typing.Any:
            self._unsupported("pausing jobs")

    with override_provider(NoPause(clock=FakeClock())):
        result = CliRunner().invoke(app, ["pause", "ftjob-1", "--provider", "fake"])
    assert result.exit_code == 1
    assert "pausing jobs" in result.output


# -- DPO data goes up in OpenAI's preference format ------------------------------------------------


def _pairs(path: Path, n: int = 12) -> Path:
    lines = [
        {
            "input": {"messages": [{"role": "user", "content": f"Where is order {i}?"}]},
            "preferred_output": [{"role": "assistant", "content": f"Order {i} ships tomorrow."}],
            "non_preferred_output": [{"role": "assistant", "content": "No idea."}],
            "id": i,  # the user's own key: kept in the file, left out of the upload
        }
        for i in range(n)
    ]
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    return path


def test_dpo_data_is_uploaded_as_preference_pairs(
    api: FakeOpenAI, client: FineTuneClient, tmp_path: Path
) -> None:
    job = client.create_job(
        model="gpt-4.1-mini-2025-04-14", training_data=_pairs(tmp_path / "p.jsonl"), method="dpo"
    )
    sent = api.jobs[job.id]
    assert sent["method"]["type"] == "dpo"
    lines = [json.loads(x) for x in api.file_bytes[sent["training_file"]].decode().splitlines()]
    assert len(lines) == 12
    assert set(lines[0]) == {"input", "preferred_output", "non_preferred_output"}
    assert lines[0]["preferred_output"] == [{"role": "assistant", "content": "Order 0 ships tomorrow."}]


def test_sft_data_for_a_dpo_job_is_refused_before_upload(
    api: FakeOpenAI, client: FineTuneClient, data: Path
) -> None:
    from unitune import ValidationFailed

    with pytest.raises(ValidationFailed, match="method_mismatch") as info:
        client.create_job(model="gpt-4.1-mini-2025-04-14", training_data=data, method="dpo")
    assert "preference pairs" in str(info.value)
    assert api.files == {}
    assert api.jobs == {}


def test_pairs_for_an_sft_job_are_refused_before_upload(
    api: FakeOpenAI, client: FineTuneClient, tmp_path: Path
) -> None:
    from unitune import ValidationFailed

    with pytest.raises(ValidationFailed, match="method_mismatch"):
        client.create_job(model="gpt-4o-mini-2024-07-18", training_data=_pairs(tmp_path / "p.jsonl"))
    assert api.files == {}


# -- what the create refuses is refused before anything is uploaded ---------------------------------

_REFUSED = [
    pytest.param({"hyperparameters": Hyperparameters(learning_rate=1e-5)}, UnsupportedFeatureError,
                 "absolute learning_rate", id="learning_rate"),
    pytest.param({"hyperparameters": {"provider_options": {"nope": 1}}}, UnsupportedFeatureError, "'nope'",
                 id="unknown-option"),
    pytest.param({"hyperparameters": {"provider_options": {"beta": 0.1}}}, UnsupportedFeatureError,
                 "beta outside DPO", id="beta-outside-dpo"),
    pytest.param({"hyperparameters": {"provider_options": {"method": {"reinforcement": {}}}}},
                 UnsupportedFeatureError, "without a 'type'", id="method-without-type"),
    pytest.param({"metadata": {f"k{i}": "v" for i in range(16)}}, UnsupportedFeatureError,
                 "more than 15 metadata pairs", id="metadata-pairs"),
    pytest.param({"metadata": {"k" * 65: "v"}}, ConfigurationError, "keys up to 64", id="metadata-key-length"),
    pytest.param({"metadata": {IDEMPOTENCY_TAG: "mine"}}, ConfigurationError, "unitune's own",
                 id="metadata-reserved-key"),
    pytest.param({"suffix": "s" * 65}, ConfigurationError, "at most 64 characters", id="suffix"),
]  # fmt: skip


@pytest.mark.parametrize(("kwargs", "error", "match"), _REFUSED)
def test_what_the_create_refuses_is_refused_before_any_upload(
    api: FakeOpenAI, client: FineTuneClient, data: Path, kwargs: dict[str, typing.Any],
    error: type[Exception], match: str,
) -> None:  # fmt: skip
    with pytest.raises(error, match=match):
        client.create_job(model="gpt-4o-mini", training_data=data, validation_data=data, **kwargs)
    assert not api.calls("POST", "/v1/files")
    assert not api.calls("POST", "/v1/uploads")
    assert api.requests == []


@pytest.mark.parametrize(("kwargs", "error", "match"), _REFUSED)
def test_check_job_with_the_stand_in_refuses_as_the_create_does(
    api: FakeOpenAI, provider: OpenAIProvider, tmp_path: Path, kwargs: dict[str, typing.Any],
    error: type[Exception], match: str,
) -> None:  # fmt: skip
    fields = dict(kwargs)
    if isinstance(fields.get("hyperparameters"), dict):
        fields["hyperparameters"] = Hyperparameters(**fields["hyperparameters"])
    stand_in = FileRef(id="unitune-check", provider="openai")
    spec = JobSpec(model="gpt-4o-mini-2024-07-18", training_file=stand_in, validation_file=stand_in, **fields)
    # An adapter built from an empty config section: no key, no SDK client, no request.
    bare = OpenAIProvider.from_config({})
    with pytest.raises(error, match=match) as checked:
        bare.check_job(spec)
    assert bare._client is None
    with pytest.raises(error) as created:
        provider.create_job(_spec(api, provider, tmp_path, **fields), idempotency_key="k")
    assert str(created.value) == str(checked.value)
    assert not api.calls("POST", "/v1/fine_tuning/jobs")


def test_check_job_passes_what_the_create_takes(provider: OpenAIProvider) -> None:
    stand_in = FileRef(id="unitune-check", provider="openai")
    bare = OpenAIProvider.from_config({})
    bare.check_job(JobSpec(
        model="gpt-4o-mini-2024-07-18", training_file=stand_in, suffix="s" * 64,
        metadata={f"k{i}": "v" * 512 for i in range(15)},
        hyperparameters=Hyperparameters(epochs=2, learning_rate_multiplier=0.5, provider_options={"integrations": []}),
    ))  # fmt: skip
    assert bare._client is None
