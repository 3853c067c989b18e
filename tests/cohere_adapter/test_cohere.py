"""The Cohere adapter against the real `cohere` SDK (`ClientV2`), its HTTP answered in-process by a
small fake of the datasets, fine-tuning and chat endpoints (`httpx.MockTransport`)."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import typing
from pathlib import Path

import pytest

pytest.importorskip("cohere")

import cohere
import httpx

from tests.cohere_adapter.fake_api import FakeCohere
from unitune import (
    AuthenticationError,
    ConfigurationError,
    FineTuneClient,
    Hyperparameters,
    JobStatus,
    NotFoundError,
    ProviderError,
    ProviderRetiredError,
    ProviderUnavailableError,
    RateLimitError,
    UnknownStatusError,
    UnsupportedFeatureError,
    ValidationFailed,
)
from unitune.config import UnituneConfig
from unitune.providers.cohere import STATUS_MAP, CohereProvider, CohereSettings
from unitune.testing import FakeClock

KEY = "co-test-secret-321"


@pytest.fixture
def api() -> FakeCohere:
    return FakeCohere()


@pytest.fixture
def provider(api: FakeCohere) -> CohereProvider:
    sdk = cohere.ClientV2(api_key=KEY, base_url="http://cohere.test", max_retries=0,
                          httpx_client=httpx.Client(transport=api.transport()))  # fmt: skip
    p = CohereProvider(CohereSettings(), client=sdk)
    p._sleep = lambda s: None
    return p


@pytest.fixture
def override(tmp_path: Path) -> Path:
    path = tmp_path / "cohere-still-trains.toml"
    path.write_text('[provider]\nname = "cohere"\naccepts_new_jobs = true\nstatus = "still open for us"\n'
                    '[provider.lifecycle]\nsource = "our account"\nas_of = 2026-11-22\nverified = true\n')  # fmt: skip
    return path


def _client(provider: CohereProvider, tmp_path: Path, catalog: list[Path] | None = None) -> FineTuneClient:
    return FineTuneClient(provider, config=UnituneConfig(catalog=catalog or []), ledger=tmp_path / "l.sqlite3",
                          clock=FakeClock(dt.datetime(2026, 11, 22, tzinfo=dt.timezone.utc)))  # fmt: skip


@pytest.fixture
def data(tmp_path: Path) -> Path:
    from unitune.demo.tickets import write_jsonl

    return write_jsonl(tmp_path / "tickets.jsonl", n=60, seed=3)


def test_the_sdk_loads_only_when_used() -> None:
    code = (
        "import sys; import unitune.providers.cohere as m; m.CohereProvider(); print('cohere' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CO_API_KEY", raising=False)
    with pytest.raises(ConfigurationError, match="CO_API_KEY"):
        CohereProvider().sdk  # noqa: B018
    assert KEY not in repr(CohereProvider(CohereSettings(api_key=KEY)))


def test_status_map_covers_every_status_the_sdk_declares(monkeypatch: pytest.MonkeyPatch) -> None:
    from cohere.finetuning.finetuning.types.status import Status

    declared = set(typing.get_args(typing.get_args(Status)[0]))
    assert set(STATUS_MAP) == declared
    for raw in (
        "STATUS_UNSPECIFIED",
        "STATUS_QUEUED",
        "STATUS_FINETUNING",
        "STATUS_DEPLOYING_API",
        "STATUS_PAUSED",
    ):
        assert not STATUS_MAP[raw].is_terminal
    assert STATUS_MAP["STATUS_DELETED"] is JobStatus.CANCELLED
    assert STATUS_MAP["STATUS_TEMPORARILY_OFFLINE"] is JobStatus.SUCCEEDED
    monkeypatch.setenv("UNITUNE_STRICT_STATUS", "1")
    assert CohereProvider()._job({"id": "ft-1", "settings": {}}).raw_status == "STATUS_UNSPECIFIED"
    with pytest.raises(UnknownStatusError, match="STATUS_HIBERNATING"):
        CohereProvider()._job({"id": "ft-1", "status": "STATUS_HIBERNATING", "settings": {}})


def test_create_is_refused_from_the_catalog_before_upload(api: FakeCohere, provider: CohereProvider, data: Path,
                                                          tmp_path: Path) -> None:  # fmt: skip
    with pytest.raises(ProviderRetiredError) as info:
        _client(provider, tmp_path).create_job(model="command-r-08-2024", training_data=data)
    assert info.value.retired_on == dt.date(2025, 9, 15)
    assert api.requests == []


def test_lifecycle_with_a_catalog_override(api: FakeCohere, provider: CohereProvider, data: Path, tmp_path: Path,
                                           override: Path) -> None:  # fmt: skip
    client = _client(provider, tmp_path, [override])
    job = client.create_job(model="command-r-08-2024", training_data=data, validation_data=data,
                            hyperparameters=Hyperparameters(epochs=2, learning_rate=1e-4, batch_size=8, lora_rank=16,
                                                            lora_alpha=32, provider_options={"early_stopping_patience": 3}),
                            idempotency_key="co-1")  # fmt: skip
    (ds_id,) = api.datasets
    assert api.datasets[ds_id]["dataset_type"] == "chat-finetune-input"
    body = api.dataset_bodies[ds_id]
    assert b'name="data"' in body
    assert b'name="eval_data"' in body  # one dataset carries both files
    assert b'"role": "Chatbot"' in body or b'"role":"Chatbot"' in body  # Cohere's roles
    created = api.models[job.id]
    assert created["settings"]["dataset_id"] == ds_id
    assert created["settings"]["hyperparameters"] == {"train_epochs": 2, "learning_rate": 1e-4, "train_batch_size": 8,
                                                       "lora_rank": 16, "lora_alpha": 32, "early_stopping_patience": 3}  # fmt: skip
    assert created["settings"]["base_model"] == {"base_type": "BASE_TYPE_CHAT", "name": "command-r-08-2024"}
    assert job.status is JobStatus.QUEUED
    assert job.idempotency_key == "co-1"
    with pytest.raises(UnsupportedFeatureError, match=r"delete_model\("):
        client.cancel_job(job.id)
    assert api.models[job.id]["status"] == "STATUS_QUEUED"  # cancel never deletes
    api.models[job.id]["status"] = "STATUS_FINETUNING"
    api.events[job.id].append({"status": "STATUS_FINETUNING", "created_at": "2026-11-22T00:05:00Z"})
    api.metrics[job.id] = [{"step_number": 2, "created_at": "2026-11-22T00:06:00Z", "metrics": {"train_loss": 1.1, "eval_loss": 1.3}},
                           {"step_number": 1, "created_at": "2026-11-22T00:05:30Z", "metrics": {"train_loss": 1.6, "accuracy": 0.4}}]  # fmt: skip
    assert client.get_job(job.id).status is JobStatus.RUNNING
    assert [e.data["status"] for e in client.events(job.id)] == ["STATUS_QUEUED", "STATUS_FINETUNING"]
    metrics = client.metrics(job.id)
    assert [(m.step, m.train_loss, m.valid_loss) for m in metrics] == [(1, 1.6, None), (2, 1.1, 1.3)]
    assert metrics[0].train_accuracy == 0.4
    api.models[job.id]["status"] = "STATUS_READY"
    done = client.wait(job.id, timeout=60)
    assert done.fine_tuned_model == f"{job.id}-ft"
    assert client.chat(done.fine_tuned_model, "hi").content == "echo: hi"
    assert [m.id for m in client.models()] == [f"{job.id}-ft"]
    client.delete_model(f"{job.id}-ft")
    assert api.models[job.id]["status"] == "STATUS_DELETED"
    assert client.get_job(job.id).status is JobStatus.CANCELLED


def test_cohere_refusing_the_dataset(api: FakeCohere, provider: CohereProvider, data: Path, tmp_path: Path,
                                     override: Path) -> None:  # fmt: skip
    api.validation = "failed"
    api.validation_error = "line 12: conversation has no Chatbot turn"
    with pytest.raises(ValidationFailed, match="line 12"):
        _client(provider, tmp_path, [override]).create_job(model="command-r-08-2024", training_data=data)
    assert api.models == {}


def test_temporarily_offline_is_trained_but_says_so(api: FakeCohere, provider: CohereProvider) -> None:
    job = provider._job({"id": "ft-9", "status": "STATUS_TEMPORARILY_OFFLINE", "settings": {}})
    assert job.status is JobStatus.SUCCEEDED
    assert job.action_required is not None
    assert "offline" in job.action_required


def test_a_lost_create_is_found_by_the_name_tag(api: FakeCohere, provider: CohereProvider, data: Path,
                                                tmp_path: Path, override: Path) -> None:  # fmt: skip
    real = api.handle

    def lossy(request: httpx.Request) -> httpx.Response:
        response = real(request)
        if (
            request.method == "POST"
            and request.url.path == "/v1/finetuning/finetuned-models"
            and len(api.models) == 1
        ):
            return httpx.Response(502, json={"message": "bad gateway"})
        return response

    api.handle = lossy  # type: ignore[method-assign]
    job = _client(provider, tmp_path, [override]).create_job(model="command-r-08-2024", training_data=data,
                                                             idempotency_key="lost")  # fmt: skip
    assert list(api.models) == [job.id]


@pytest.mark.parametrize(
    ("status", "error"),
    [(401, AuthenticationError), (404, NotFoundError), (429, RateLimitError), (500, ProviderUnavailableError),
     (400, ProviderError)],
)  # fmt: skip
def test_errors_map_by_status_code_including_the_plain_429(api: FakeCohere, provider: CohereProvider, status: int,
                                                            error: type[Exception]) -> None:  # fmt: skip
    api.fail.append((r"GET /v1/finetuning/finetuned-models/.*", status, {"retry-after": "5"}))
    with pytest.raises(error) as info:
        provider.get_job("ft-1")
    assert isinstance(info.value, ProviderError)
    assert info.value.status_code == status
    assert KEY not in str(info.value)
    if status == 429:
        assert isinstance(info.value, RateLimitError)
        assert info.value.retry_after == 5


def test_list_follows_page_tokens(api: FakeCohere, provider: CohereProvider) -> None:
    for i in range(7):
        api.models[f"ft-{i}"] = {"id": f"ft-{i}", "name": f"m{i}", "status": "STATUS_READY",
                                 "settings": {"base_model": {"base_type": "BASE_TYPE_CHAT"}, "dataset_id": "d"},
                                 "created_at": f"2026-11-22T00:00:0{i}Z"}  # fmt: skip
    jobs = provider.list_jobs(limit=5)
    assert [j.id for j in jobs] == [
        "ft-4",
        "ft-3",
        "ft-2",
        "ft-1",
        "ft-0",
    ]  # the first page of 5, newest first
    assert len(provider.list_jobs(limit=100)) == 7


def test_connection_errors_are_unavailable() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    sdk = cohere.ClientV2(api_key=KEY, base_url="http://cohere.test", max_retries=0,
                          httpx_client=httpx.Client(transport=httpx.MockTransport(refuse)))  # fmt: skip
    with pytest.raises(ProviderUnavailableError):
        CohereProvider(client=sdk).get_job("ft-1")


def test_list_asks_for_the_newest_first(api: FakeCohere, provider: CohereProvider) -> None:
    provider.list_jobs(limit=3)
    (request,) = [r for r in api.requests if r.url.path == "/v1/finetuning/finetuned-models"]
    assert request.url.params["order_by"] == "created_at desc"


def test_a_busy_moment_while_polling_the_dataset_does_not_upload_twice(api: FakeCohere, provider: CohereProvider,
                                                                       data: Path, tmp_path: Path,
                                                                       override: Path) -> None:  # fmt: skip
    api.fail.append((r"GET /v1/datasets/.*", 429, {}))
    api.fail.append((r"GET /v1/datasets/.*", 503, {}))
    _client(provider, tmp_path, [override]).create_job(model="command-r-08-2024", training_data=data)
    assert len(api.datasets) == 1


# -- what the create refuses is refused before anything is uploaded ---------------------------------

_REFUSED = [
    pytest.param({"learning_rate_multiplier": 0.5}, UnsupportedFeatureError, "learning_rate_multiplier",
                 id="learning_rate_multiplier"),
    pytest.param({"seed": 3}, UnsupportedFeatureError, "seed", id="seed"),
    pytest.param({"provider_options": {"nope": 1}}, UnsupportedFeatureError, "'nope'", id="unknown-option"),
    pytest.param({"lora_alpha": 2.5}, ConfigurationError, "whole number for lora_alpha", id="lora_alpha"),
    # A value of the wrong type: the SDK's request model refuses it (before: after the upload, and
    # as a "create outcome unknown" error that the client would have looked up and retried).
    pytest.param({"provider_options": {"early_stopping_patience": "soon"}}, ConfigurationError,
                 "hyperparameter early_stopping_patience = 'soon'", id="option-type"),
]  # fmt: skip


@pytest.mark.parametrize(("hp", "error", "match"), _REFUSED)
def test_what_the_create_refuses_is_refused_before_any_upload(
    api: FakeCohere, provider: CohereProvider, data: Path, tmp_path: Path, override: Path,
    hp: dict[str, typing.Any], error: type[Exception], match: str,
) -> None:  # fmt: skip
    client = _client(provider, tmp_path, [override])  # an account that may still train
    with pytest.raises(error, match=match):
        client.create_job(
            model="command-r-08-2024", training_data=data, validation_data=data, hyperparameters=hp
        )
    assert not [r for r in api.requests if r.url.path == "/v1/datasets"]
    assert api.datasets == {}
    assert api.requests == []


@pytest.mark.parametrize(("hp", "error", "match"), _REFUSED)
def test_check_job_with_the_stand_in_refuses_as_the_create_does(
    api: FakeCohere, provider: CohereProvider, hp: dict[str, typing.Any], error: type[Exception], match: str
) -> None:  # fmt: skip
    from unitune.types import FileRef, JobSpec

    stand_in = FileRef(id="unitune-check", provider="cohere")
    # An adapter built from an empty config section: no key, no SDK client, no request.
    bare = CohereProvider.from_config({})
    with pytest.raises(error, match=match) as checked:
        bare.check_job(JobSpec(model="command-r-08-2024", training_file=stand_in, validation_file=stand_in,
                               hyperparameters=Hyperparameters(**hp)))  # fmt: skip
    assert bare._client is None
    ref = FileRef(id="ds-1", provider="cohere")
    with pytest.raises(error) as created:
        provider.create_job(JobSpec(model="command-r-08-2024", training_file=ref, validation_file=ref,
                                    hyperparameters=Hyperparameters(**hp)), idempotency_key="k")  # fmt: skip
    assert str(created.value) == str(checked.value)
    assert api.requests == []


def test_check_job_without_the_sdk_makes_the_checks_that_need_none(monkeypatch: pytest.MonkeyPatch) -> None:
    from unitune.errors import MissingDependencyError
    from unitune.providers import registry
    from unitune.types import FileRef, JobSpec

    def missing(provider: str, module: str) -> typing.Any:
        raise MissingDependencyError(provider=provider, extra=provider, module=module)

    monkeypatch.setattr(registry, "import_sdk", missing)
    stand_in = FileRef(id="unitune-check", provider="cohere")
    bare = CohereProvider.from_config({})
    with pytest.raises(UnsupportedFeatureError, match="'nope'"):
        bare.check_job(JobSpec(model="command-r-08-2024", training_file=stand_in,
                               hyperparameters=Hyperparameters(provider_options={"nope": 1})))  # fmt: skip
    bare.check_job(JobSpec(model="command-r-08-2024", training_file=stand_in,
                           hyperparameters=Hyperparameters(epochs=2, provider_options={"early_stopping_patience": 3})))  # fmt: skip
