"""The Together adapter against the real `together` SDK, its HTTP answered in-process by
`FakeTogether` (`httpx.MockTransport`: the SDK's upload protocol, parsing and errors all run)."""

from __future__ import annotations

import json
import subprocess
import sys
import typing
from pathlib import Path

import pytest

pytest.importorskip("together")

import httpx
import together

from tests.together_adapter.conftest import KEY, make_provider
from tests.together_adapter.fake_api import FakeTogether
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
    ValidationFailed,
)
from unitune.config import RetrySettings
from unitune.providers.together import STATUS_MAP, TogetherProvider, TogetherSettings, idempotency_tag
from unitune.testing import FakeClock
from unitune.types import FileRef, JobSpec, PreparedFile

MODEL = "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference"


@pytest.fixture
def data(tmp_path: Path) -> Path:
    from unitune.demo.tickets import write_jsonl

    return write_jsonl(tmp_path / "tickets.jsonl", n=60, seed=3)


def _fake_time(provider: TogetherProvider) -> FakeClock:
    """The provider's steps retry on a fake clock (no real sleeping), as when a client binds its own."""
    from unitune._retry import RetryPolicy
    from unitune.config import RetrySettings

    clock = FakeClock()
    provider.bind_retry(RetryPolicy(RetrySettings(), clock))
    return clock


def _file(provider: TogetherProvider, tmp_path: Path) -> FileRef:
    path = tmp_path / "t.jsonl"
    path.write_text(
        '{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}\n'
    )
    return provider.upload(PreparedFile(path=path, filename="t.jsonl", size_bytes=path.stat().st_size,
                                        sha256="x", purpose="training"))  # fmt: skip


def _spec(provider: TogetherProvider, tmp_path: Path, **kw: typing.Any) -> JobSpec:
    return JobSpec(model=kw.pop("model", MODEL), training_file=_file(provider, tmp_path), **kw)


# -- boundary and settings ----------------------------------------------------------------------


def test_the_sdk_loads_only_when_used() -> None:
    code = (
        "import sys; import unitune.providers.together as m; "
        "m.TogetherProvider(m.TogetherSettings(api_key='k')); print('together' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TOGETHER_API_KEY", raising=False)
    with pytest.raises(ConfigurationError, match="TOGETHER_API_KEY"):
        TogetherProvider().sdk  # noqa: B018
    monkeypatch.setenv("TOGETHER_API_KEY", KEY)
    p = TogetherProvider(TogetherSettings(base_url="http://127.0.0.1:9"))
    assert p.sdk.max_retries == 0
    assert str(p.sdk.base_url).startswith("http://127.0.0.1:9")
    assert KEY not in repr(TogetherProvider(TogetherSettings(api_key=KEY)))


# -- status -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("pending", JobStatus.QUEUED), ("queued", JobStatus.QUEUED), ("running", JobStatus.RUNNING),
        ("compressing", JobStatus.RUNNING), ("uploading", JobStatus.RUNNING),
        ("cancel_requested", JobStatus.CANCELLING), ("cancelled", JobStatus.CANCELLED),
        ("error", JobStatus.FAILED), ("user_error", JobStatus.FAILED), ("completed", JobStatus.SUCCEEDED),
    ],
)  # fmt: skip
def test_status_map_value_by_value(raw: str, expected: JobStatus) -> None:
    assert STATUS_MAP[raw] is expected


def test_status_map_covers_the_sdk_literal_and_its_lib_enum() -> None:
    from together.lib.types.fine_tuning import FinetuneJobStatus
    from together.types.finetune_response import FinetuneResponse

    literal = set(typing.get_args(FinetuneResponse.model_fields["status"].annotation))
    enum = {s.value for s in FinetuneJobStatus}
    assert literal | enum == set(STATUS_MAP)
    assert enum - literal == {"user_error"}  # the gap between the SDK's two declarations
    for raw in ("pending", "queued", "running", "compressing", "uploading", "cancel_requested"):
        assert not STATUS_MAP[raw].is_terminal


def test_unknown_status_raises_in_strict_mode(api: FakeTogether, provider: TogetherProvider, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    job = provider.create_job(_spec(provider, tmp_path), idempotency_key="k")
    api.set_status(job.id, "hibernating")
    monkeypatch.setenv("UNITUNE_STRICT_STATUS", "1")
    with pytest.raises(UnknownStatusError, match="hibernating"):
        provider.get_job(job.id)


# -- errors --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (401, AuthenticationError), (403, PermissionDeniedError), (404, NotFoundError), (409, ProviderError),
        (410, ProviderRetiredError), (422, ProviderError), (500, ProviderUnavailableError),
    ],
)  # fmt: skip
def test_error_map(
    api: FakeTogether, provider: TogetherProvider, status: int, error: type[Exception]
) -> None:
    api.fail(r"GET /v1/fine-tunes/.*", status, message="nope")
    with pytest.raises(error) as info:
        provider.get_job("ft-1")
    e = info.value
    assert isinstance(e, ProviderError)
    assert e.status_code == status
    assert e.request_id == "req_tg"
    assert "nope" in str(e)
    assert isinstance(e.__cause__, together.APIStatusError)
    assert KEY not in str(e)


def test_429_retry_after_timeout_and_reset(api: FakeTogether, provider: TogetherProvider) -> None:
    api.fail(r"GET /v1/fine-tunes/.*", 429, headers={"retry-after": "3"})
    with pytest.raises(RateLimitError) as info:
        provider.get_job("ft-1")
    assert info.value.retry_after == 3
    api.fail(r"GET .*", None)
    with pytest.raises(ProviderUnavailableError, match=r"together\.test:80 failed \(connection reset\)"):
        provider.get_job("ft-1")

    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    sdk = together.Together(api_key=KEY, base_url="http://together.test", max_retries=0,
                            http_client=httpx.Client(transport=httpx.MockTransport(slow)))  # fmt: skip
    with pytest.raises(ProviderUnavailableError, match=r"no answer from together\.test:80 in time"):
        TogetherProvider(client=sdk).get_job("ft-1")


# -- upload ------------------------------------------------------------------------------------------------


def test_upload_follows_the_redirect_and_waits_for_processing(api: FakeTogether, client: FineTuneClient,
                                                              data: Path) -> None:  # fmt: skip
    api.processing_polls = 3
    ref = client.upload(data)
    assert ref.id in api.files
    assert api.files[ref.id]["processing_status"] == "COMPLETED"
    assert len(api.calls("GET", f"/v1/files/{ref.id}")) == 4  # 3 × RUNNING, then COMPLETED
    sent = api.file_bytes[ref.id].decode().splitlines()
    assert len(sent) == 60
    assert json.loads(sent[0])["messages"][0]["role"] in ("system", "user")
    assert api.calls("PUT", f"/upload/{ref.id}")
    assert api.calls("POST", f"/v1/files/{ref.id}/preprocess")


def test_together_refusing_the_file_is_a_validation_error_with_its_report(api: FakeTogether,
                                                                           client: FineTuneClient, data: Path) -> None:  # fmt: skip
    api.processing_result = {"processing_status": "FAILED", "validation_report": {
        "valid": False, "error": "Line 7: 'messages' must alternate user/assistant", "error_type": "INVALID_FORMAT"}}  # fmt: skip
    with pytest.raises(ValidationFailed, match="Line 7") as info:
        client.create_job(model=MODEL, training_data=data)
    assert info.value.report["error_type"] == "INVALID_FORMAT"
    assert not api.calls("POST", "/v1/fine-tunes")


def test_processing_that_never_ends_times_out(api: FakeTogether, tmp_path: Path) -> None:
    api.processing_polls = 10**9
    provider = make_provider(api, file_processing_timeout=0.05, file_poll_interval=0.01)
    with pytest.raises(ProviderError, match="file_processing_timeout") as info:
        _file(provider, tmp_path)
    assert not isinstance(info.value, ProviderUnavailableError)  # not retried: a retry would upload again


# -- create ----------------------------------------------------------------------------------------------------


def test_create_checks_limits_asks_the_price_and_maps_hyperparameters(api: FakeTogether, provider: TogetherProvider,
                                                                       tmp_path: Path) -> None:  # fmt: skip
    spec = _spec(provider, tmp_path, suffix="triage", validation_file=_file(provider, tmp_path),
                 hyperparameters=Hyperparameters(epochs=3, learning_rate=2e-4, batch_size=16, lora_rank=32,
                                                 lora_alpha=64, seed=5,
                                                 provider_options={"train_on_inputs": False, "n_checkpoints": 2}))  # fmt: skip
    job = provider.create_job(spec, idempotency_key="key-1")
    assert api.calls("GET", "/v1/fine-tunes/models/limits")[0].url.params["model_name"] == MODEL
    assert len(api.calls("GET", "/v1/fine-tunes/models/limits")) == 1  # the SDK is spared its own
    (sent,) = api.created
    assert sent["n_epochs"] == 3
    assert sent["learning_rate"] == 2e-4
    assert sent["batch_size"] == 16
    assert sent["random_seed"] == 5
    assert sent["training_type"] == {"type": "Lora", "lora_r": 32, "lora_alpha": 64, "lora_dropout": 0,
                                     "lora_trainable_modules": "all-linear"}  # fmt: skip
    assert sent["training_method"] == {"method": "sft", "train_on_inputs": False}
    assert sent["n_evals"] == 3  # a validation file: one evaluation per epoch unless told otherwise
    assert sent["n_checkpoints"] == 2
    assert sent["suffix"] == f"triage-{idempotency_tag('key-1')}"
    assert job.status is JobStatus.QUEUED
    assert job.raw_status == "pending"
    assert job.fine_tuned_model is not None
    assert job.fine_tuned_model.endswith(
        idempotency_tag("key-1")
    )  # output_name read whichever field holds it
    assert provider.price_estimates[job.id]["estimated_total_price"] == 4.2


def test_dpo_options(api: FakeTogether, provider: TogetherProvider, tmp_path: Path) -> None:
    spec = _spec(provider, tmp_path, method="dpo",
                 hyperparameters=Hyperparameters(provider_options={"dpo_beta": 0.2, "rpo_alpha": 0.5}))  # fmt: skip
    provider.create_job(spec, idempotency_key="k")
    assert api.created[0]["training_method"]["method"] == "dpo"
    assert api.created[0]["training_method"]["dpo_beta"] == 0.2
    with pytest.raises(UnsupportedFeatureError, match="dpo_beta outside DPO"):
        provider.create_job(_spec(provider, tmp_path, hyperparameters=Hyperparameters(
            provider_options={"dpo_beta": 0.2})), idempotency_key="k2")  # fmt: skip


@pytest.mark.parametrize(
    ("hp", "error", "match"),
    [
        (Hyperparameters(lora_rank=128), ConfigurationError, "lora_rank 128 is over the maximum 64"),
        (Hyperparameters(epochs=50), ConfigurationError, "epochs 50 is over the maximum 20"),
        (Hyperparameters(learning_rate=5.0), ConfigurationError, "learning_rate 5 is outside"),
        (Hyperparameters(batch_size=4), ConfigurationError, "batch_size 4 is outside 8–32"),
        (
            Hyperparameters(provider_options={"lora": False}),
            ConfigurationError,
            "full fine-tuning is not offered",
        ),
        (Hyperparameters(learning_rate_multiplier=0.5), UnsupportedFeatureError, "absolute learning_rate"),
        (
            Hyperparameters(provider_options={"wandb_api_key": "x"}),
            UnsupportedFeatureError,
            "'wandb_api_key'",
        ),
    ],
)
def test_model_limits_and_unknown_options_refused_before_create(
    api: FakeTogether, provider: TogetherProvider, tmp_path: Path, hp: Hyperparameters,
    error: type[Exception], match: str,
) -> None:  # fmt: skip
    with pytest.raises(error, match=match):
        provider.create_job(_spec(provider, tmp_path, hyperparameters=hp), idempotency_key="k")
    assert not api.created


def test_a_price_refusal_is_an_error_not_a_warning(api: FakeTogether, provider: TogetherProvider,
                                                   tmp_path: Path) -> None:  # fmt: skip
    api.estimate = {"estimation_available": True, "allowed_to_proceed": False, "estimated_total_price": 250.0,
                    "user_limit": 100.0}  # fmt: skip
    with pytest.raises(PermissionDeniedError, match=r"\$250.00 .*\(\$100.00\)"):
        provider.create_job(_spec(provider, tmp_path), idempotency_key="k")
    assert not api.created


def test_suffix_too_long_for_the_tag(provider: TogetherProvider, tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="at most 29 characters"):
        provider.create_job(_spec(provider, tmp_path, suffix="x" * 35), idempotency_key="k")


# -- the rest of the lifecycle -------------------------------------------------------------------------


def test_lifecycle_through_the_client(api: FakeTogether, client: FineTuneClient, data: Path) -> None:
    job = client.create_job(model="llama-3.1-8b-instruct", training_data=data, suffix="t",
                            hyperparameters=Hyperparameters(epochs=2))  # fmt: skip
    assert job.model == MODEL  # the portable alias, resolved from the catalog
    api.set_status(job.id, "running", epochs_completed=1)
    api.add_event(job.id, "Training started", type="training_start")
    api.add_event(job.id, "Epoch 1 done", type="epoch_complete", step=10, total_steps=20)
    api.add_event(job.id, "Data looks odd", level="legacy_iwarning", type="warning")
    running = client.get_job(job.id)
    assert running.status is JobStatus.RUNNING
    assert running.progress == 0.5
    events = client.events(job.id)
    assert [e.message for e in events][:2] == ["Fine tune request created", "Training started"]
    assert events[2].data == {"step": 10, "total_steps": 20}
    assert events[3].level == "warning"
    api.metrics[job.id] = [
        {"train/loss": 1.5, "train/learning_rate": 1e-4, "train/global_step": 5, "train/grad_norm": 0.9},
        {"train/loss": 1.1, "train/learning_rate": 9e-5, "train/global_step": 10},
        {"eval/loss": 1.2, "eval/global_step": 10},
    ]
    metrics = client.metrics(job.id)
    assert [(m.step, m.train_loss, m.valid_loss) for m in metrics] == [(5, 1.5, None), (10, 1.1, 1.2)]
    assert metrics[0].learning_rate == 1e-4
    assert metrics[0].extra == {"train/grad_norm": 0.9}
    api.checkpoints[job.id] = [
        {"checkpoint_type": "intermediate", "created_at": "2026-11-22T01:00:00Z", "path": "s3://x/step-10",
         "step": 10, "object_name": "user/ckpt-10"},
    ]  # fmt: skip
    (ckpt,) = client.checkpoints(job.id)
    assert ckpt.id == f"{job.id}:10"
    assert ckpt.step == 10
    api.set_status(job.id, "completed", epochs_completed=2, token_count=4321)
    done = client.wait(job.id, timeout=60)
    assert done.trained_tokens == 4321
    assert done.progress == 1.0
    assert done.fine_tuned_model is not None
    assert client.chat(done.fine_tuned_model, "hi").content == "echo: hi"


def test_failed_job_carries_its_last_error_event(
    api: FakeTogether, provider: TogetherProvider, tmp_path: Path
) -> None:
    job = provider.create_job(_spec(provider, tmp_path), idempotency_key="k")
    api.add_event(job.id, "CUDA out of memory at step 3", level="error", type="job_error")
    api.set_status(job.id, "user_error")
    failed = provider.get_job(job.id)
    assert failed.status is JobStatus.FAILED
    assert failed.error == "CUDA out of memory at step 3"


def test_cancel_reads_the_job_back(api: FakeTogether, provider: TogetherProvider, tmp_path: Path) -> None:
    job = provider.create_job(_spec(provider, tmp_path), idempotency_key="k")
    cancelled = provider.cancel_job(job.id)
    assert cancelled.status is JobStatus.CANCELLING
    assert cancelled.model == MODEL
    api.set_status(job.id, "cancelled")
    assert provider.get_job(job.id).status is JobStatus.CANCELLED


def test_list_is_newest_first_and_limited(
    api: FakeTogether, provider: TogetherProvider, tmp_path: Path
) -> None:
    spec = _spec(provider, tmp_path)
    made = [provider.create_job(spec, idempotency_key=f"k{i}").id for i in range(5)]
    assert [j.id for j in provider.list_jobs(limit=3)] == made[::-1][:3]


def test_a_lost_create_answer_is_found_by_its_suffix_tag(api: FakeTogether, client: FineTuneClient,
                                                         data: Path) -> None:  # fmt: skip
    api.fail(r"POST /v1/fine-tunes", 502, after_effect=True)
    job = client.create_job(model=MODEL, training_data=data, idempotency_key="order-7")
    assert len(api.jobs) == 1
    assert job.id in api.jobs
    assert job.idempotency_key == "order-7"
    assert client.create_job(model=MODEL, training_data=data, idempotency_key="order-7").id == job.id
    assert len(api.jobs) == 1


def test_same_app_code_runs_on_fake_and_together_by_config_alone(api: FakeTogether, data: Path, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """The application below never names a provider: `unitune.toml` does."""
    from unitune.providers import registry

    def app(training: Path) -> tuple[str, str]:
        client = FineTuneClient.from_config()
        job = client.create_job(model="llama-3.1-8b-instruct", training_data=training,
                                hyperparameters=Hyperparameters(epochs=1), idempotency_key="app-run-1")  # fmt: skip
        return client.provider.name, client.get_job(job.id).status.value

    config = tmp_path / "work" / "unitune.toml"
    config.parent.mkdir(exist_ok=True)
    monkeypatch.chdir(config.parent)
    config.write_text('provider = "fake"\n')
    assert app(data)[0] == "fake"

    # Only the config changes. The real SDK client is pointed at the in-process fake API.
    real_build = registry.build_provider

    def build(name: str, section: typing.Any = None, **kwargs: typing.Any) -> typing.Any:
        built = real_build(name, section, **kwargs)
        if isinstance(built, TogetherProvider):
            return make_provider(api, **dict(section or {}))
        return built

    monkeypatch.setattr("unitune.client._sync.build_provider", build)
    config.write_text('provider = "together"\n\n[providers.together]\napi_key = "tg-from-config"\n')
    name, status = app(data)
    assert name == "together"
    assert status == "queued"
    assert len(api.jobs) == 1


def test_a_dropped_put_during_upload_is_unavailable_and_hides_the_presigned_url(api: FakeTogether,
                                                                               tmp_path: Path) -> None:  # fmt: skip
    api.fail(r"PUT /upload/.*", None, times=10)  # the connection drops while the bytes travel, every time
    provider = make_provider(api)
    _fake_time(provider)
    with pytest.raises(ProviderUnavailableError, match=r"together\.test:80") as info:
        _file(provider, tmp_path)
    assert "X-Amz-Signature" not in str(info.value)
    assert "/upload/" not in str(info.value)  # host and port only: never the (presigned) path or query
    assert (
        len(api.calls("PUT", r"/upload/.*")) == RetrySettings().max_attempts
    )  # the PUT alone, one policy's bound
    assert len(api.calls("POST", "/v1/files")) == 1
    from unitune.providers._sdk import no_query as _no_query

    assert _no_query("PUT https://s3.example/b/f.jsonl?X-Amz-Signature=abc&X-Amz-Credential=k failed") == (
        "PUT https://s3.example/b/f.jsonl?… failed"
    )


def test_checkpoint_ids_stay_unique_when_artifacts_share_a_step(api: FakeTogether, provider: TogetherProvider,
                                                                tmp_path: Path) -> None:  # fmt: skip
    job = provider.create_job(_spec(provider, tmp_path), idempotency_key="k")
    api.checkpoints[job.id] = [
        {"checkpoint_type": "final", "created_at": "2026-11-22T01:00:00Z", "path": "s3://x/m", "step": 20,
         "checkpoint": "model"},
        {"checkpoint_type": "final", "created_at": "2026-11-22T01:00:00Z", "path": "s3://x/a", "step": 20,
         "checkpoint": "adapter"},
    ]  # fmt: skip
    ids = [c.id for c in provider.list_checkpoints(job.id)]
    assert ids == [f"{job.id}:20", f"{job.id}:20#adapter"]


def test_dpo_data_is_uploaded_in_together_preference_format(
    api: FakeTogether, client: FineTuneClient, tmp_path: Path
) -> None:
    path = tmp_path / "pairs.jsonl"
    path.write_text(
        "\n".join(
            json.dumps(
                {
                    "input": {"messages": [{"role": "user", "content": f"Where is order {i}?"}]},
                    "preferred_output": [{"role": "assistant", "content": f"Order {i} ships."}],
                    "non_preferred_output": [{"role": "assistant", "content": "No idea."}],
                    "lang": "en",
                }
            )
            for i in range(4)
        )
        + "\n"
    )
    job = client.create_job(model="llama-3.1-8b-instruct", training_data=path, method="dpo")
    assert api.created[0]["training_method"]["method"] == "dpo"
    (file_id,) = api.file_bytes
    first = json.loads(api.file_bytes[file_id].decode().splitlines()[0])
    assert set(first) == {"input", "preferred_output", "non_preferred_output"}  # "lang" left out
    assert job.id


def test_sft_data_for_a_dpo_job_is_refused_before_upload(
    api: FakeTogether, client: FineTuneClient, data: Path
) -> None:
    from unitune import ValidationFailed

    with pytest.raises(ValidationFailed, match="method_mismatch"):
        client.create_job(model="llama-3.1-8b-instruct", training_data=data, method="dpo")
    assert api.file_bytes == {}
    assert api.created == []


# -- each request of a multi-request call is retried on its own (issue 16, faults) -----------------------------


def _big(tmp_path: Path, size: int = 1000) -> PreparedFile:
    path = tmp_path / "big.jsonl"
    path.write_bytes(bytes(range(256)) * (size // 256) + b"x" * (size % 256))
    return PreparedFile(path=path, filename="big.jsonl", size_bytes=size, sha256="s", purpose="training")


def test_a_large_file_goes_up_in_parts_each_retried_alone(api: FakeTogether, tmp_path: Path) -> None:
    provider = make_provider(api, multipart_threshold_bytes=100, part_size_bytes=128, upload_concurrency=1)
    clock = _fake_time(provider)
    prepared = _big(tmp_path)
    api.fail(r"PUT /upload-part/.*/3", 503, times=2)
    api.fail(r"POST /v1/files/multipart/initiate", None)
    ref = provider.upload(prepared)
    assert api.file_bytes[ref.id] == prepared.path.read_bytes()  # 8 parts, reassembled in order
    assert len(api.multipart) == 1  # the failed initiate was sent again, nothing started twice
    assert len(api.calls("PUT", r"/upload-part/.*")) == 8 + 2
    assert len(clock.sleeps) == 3
    assert not api.calls("POST", "/v1/files")  # not the single-file protocol


def test_a_lost_multipart_complete_answer_reads_the_file_it_made(api: FakeTogether, tmp_path: Path) -> None:
    provider = make_provider(api, multipart_threshold_bytes=100, part_size_bytes=512)
    _fake_time(provider)
    api.fail(r"POST /v1/files/multipart/complete", 502, after_effect=True)
    ref = provider.upload(_big(tmp_path))
    assert list(api.files) == [ref.id]
    assert len(api.calls("POST", "/v1/files/multipart/complete")) == 2  # the retry was refused: completed


def test_a_part_that_keeps_failing_aborts_the_upload(api: FakeTogether, tmp_path: Path) -> None:
    provider = make_provider(api, multipart_threshold_bytes=100, part_size_bytes=128, upload_concurrency=1)
    _fake_time(provider)
    api.fail(r"PUT /upload-part/.*/1", 500, times=100)
    with pytest.raises(ProviderUnavailableError, match="gave up on this step") as info:
        provider.upload(_big(tmp_path))
    assert getattr(info.value, "retryable", True) is False
    (upload,) = api.multipart.values()
    assert upload["status"] == "aborted"
    assert (
        len(api.calls("PUT", r"/upload-part/.*")) == RetrySettings().max_attempts
    )  # part 1 alone; the rest never sent


def test_the_reads_before_a_create_are_retried_alone(api: FakeTogether, provider: TogetherProvider,
                                                      tmp_path: Path) -> None:  # fmt: skip
    _fake_time(provider)
    spec = _spec(provider, tmp_path)
    api.fail(r"GET /v1/fine-tunes/models/limits", 503, times=2)
    api.fail(r"POST /v1/fine-tunes/estimate-price", 429, headers={"retry-after": "1"})
    provider.create_job(spec, idempotency_key="k")
    assert len(api.created) == 1
    assert len(api.calls("POST", "/v1/fine-tunes")) == 1  # the create itself was sent once


def test_upload_steps_retry_without_starting_over(api: FakeTogether, tmp_path: Path) -> None:
    provider = make_provider(api)
    _fake_time(provider)
    api.fail(r"PUT /upload/.*", 500)
    api.fail(r"POST /v1/files/.*/preprocess", None)
    api.fail(r"GET /v1/files/.*", 503)
    ref = _file(provider, tmp_path)
    assert list(api.files) == [ref.id]  # one file: the PUT and the processing call were sent again alone
    assert len(api.calls("PUT", r"/upload/.*")) == 2


# -- what the create refuses is refused before anything is uploaded ---------------------------------

_REFUSED = [
    pytest.param({"hyperparameters": Hyperparameters(learning_rate_multiplier=0.5)}, UnsupportedFeatureError,
                 "learning_rate_multiplier", id="learning_rate_multiplier"),
    pytest.param({"hyperparameters": {"provider_options": {"nope": 1}}}, UnsupportedFeatureError, "'nope'",
                 id="unknown-option"),
    pytest.param({"hyperparameters": {"provider_options": {"dpo_beta": 0.1}}}, UnsupportedFeatureError,
                 "outside DPO", id="dpo-option-outside-dpo"),
    pytest.param({"hyperparameters": {"lora_rank": 8, "provider_options": {"lora": False}}}, ConfigurationError,
                 "full fine-tune", id="lora-rank-on-a-full-fine-tune"),
    pytest.param({"suffix": "x" * 35}, ConfigurationError, "at most 29 characters", id="suffix"),
]  # fmt: skip


@pytest.mark.parametrize(("kwargs", "error", "match"), _REFUSED)
def test_what_the_create_refuses_is_refused_before_any_upload(
    api: FakeTogether, client: FineTuneClient, data: Path, kwargs: dict[str, typing.Any],
    error: type[Exception], match: str,
) -> None:  # fmt: skip
    with pytest.raises(error, match=match):
        client.create_job(model="llama-3.1-8b-instruct", training_data=data, validation_data=data, **kwargs)
    assert not api.calls("POST", "/v1/files.*")  # neither the upload URL, the multipart start, nor processing
    assert api.requests == []


@pytest.mark.parametrize(("kwargs", "error", "match"), _REFUSED)
def test_check_job_with_the_stand_in_refuses_as_the_create_does(
    api: FakeTogether, provider: TogetherProvider, tmp_path: Path, kwargs: dict[str, typing.Any],
    error: type[Exception], match: str,
) -> None:  # fmt: skip
    fields = dict(kwargs)
    if isinstance(fields.get("hyperparameters"), dict):
        fields["hyperparameters"] = Hyperparameters(**fields["hyperparameters"])
    stand_in = FileRef(id="unitune-check", provider="together")
    spec = JobSpec(model=MODEL, training_file=stand_in, validation_file=stand_in, **fields)
    # An adapter built from an empty config section: no key, no SDK client, no request.
    bare = TogetherProvider.from_config({})
    with pytest.raises(error, match=match) as checked:
        bare.check_job(spec)
    assert bare._client is None
    with pytest.raises(error) as created:
        provider.create_job(_spec(provider, tmp_path, **fields), idempotency_key="k")
    assert str(created.value) == str(checked.value)
    # Refused before the create's own reads (the model's limits, the price estimate).
    assert not api.calls("GET", r".*/limits.*")
    assert not api.created


def test_check_job_passes_what_the_create_takes() -> None:
    stand_in = FileRef(id="unitune-check", provider="together")
    bare = TogetherProvider.from_config({})
    bare.check_job(JobSpec(model=MODEL, training_file=stand_in, suffix="x" * 29,
                           hyperparameters=Hyperparameters(epochs=2, learning_rate=1e-5,
                                                           provider_options={"n_checkpoints": 2})))  # fmt: skip
    assert bare._client is None
