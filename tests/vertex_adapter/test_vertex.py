"""The Vertex AI adapter against the real `google-genai` SDK (pointed at `FakeVertex`) and the real
`google-cloud-storage` client (pointed at `gcp-storage-emulator` on 127.0.0.1)."""

from __future__ import annotations

import json
import typing
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests._fakehttp import serve
from tests.vertex_adapter.fake_api import FakeVertex
from unitune import FineTuneClient, JobStatus
from unitune.errors import (
    ConfigurationError,
    JobFailedError,
    JobSpecRefused,
    NotFoundError,
    ProviderUnavailableError,
    RateLimitError,
)
from unitune.providers.base import key_tag
from unitune.providers.vertex import IDEMPOTENCY_LABEL, STATUS_MAP, VertexProvider, VertexSettings
from unitune.testing import FakeClock
from unitune.types import FileRef, Hyperparameters, JobSpec, Message, PreparedFile

PROJECT, LOCATION, BUCKET = "unitune-test", "us-central1", "unitune-vertex"
GEMINI = "gemini-3.5-flash"  # 2.5 Flash was retired on 2026-10-16 (the catalog)
LLAMA = "meta/llama3_1@llama-3.1-8b-instruct"
TOKEN = "ya29.test-token-000000000000"


@pytest.fixture(scope="module")
def gcs() -> Iterator[str]:
    """Cloud Storage on 127.0.0.1 (gcp-storage-emulator, in memory), with the bucket made."""
    from gcp_storage_emulator.server import create_server

    server = create_server("127.0.0.1", 0, in_memory=True, default_bucket=BUCKET)
    server.start()
    try:
        yield f"http://127.0.0.1:{server._api._httpd.server_address[1]}"
    finally:
        server.stop()


@pytest.fixture
def api(gcs: str) -> FakeVertex:
    fake = FakeVertex()

    def exists(uri: str) -> bool:
        bucket, _, key = uri[len("gs://") :].partition("/")
        return _storage(gcs).bucket(bucket).blob(key).exists()

    fake.object_exists = exists
    return fake


def _storage(gcs: str) -> typing.Any:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    return storage.Client(
        project=PROJECT, credentials=AnonymousCredentials(), client_options={"api_endpoint": gcs}
    )


def _provider(api: FakeVertex, gcs: str, **settings: typing.Any) -> VertexProvider:
    from google import genai
    from google.genai import types
    from google.oauth2.credentials import Credentials

    client = genai.Client(
        vertexai=True, project=PROJECT, location=LOCATION, credentials=Credentials(token=TOKEN),
        http_options=types.HttpOptions(base_url="http://vertex.test/", retry_options=types.HttpRetryOptions(attempts=1),
                                       httpx_client=httpx.Client(transport=api.transport())),
    )  # fmt: skip
    values = {"project": PROJECT, "location": LOCATION, "bucket": BUCKET, **settings}
    return VertexProvider(VertexSettings(**values), client=client, storage=_storage(gcs))


@pytest.fixture
def provider(api: FakeVertex, gcs: str) -> VertexProvider:
    return _provider(api, gcs)


def _train(tmp_path: Path, n: int = 12) -> Path:
    path = tmp_path / "train.jsonl"
    rows = [
        {
            "messages": [
                {"role": "system", "content": "Triage the ticket."},
                {"role": "user", "content": f"My order {i} is late"},
                {"role": "assistant", "content": "shipping"},
            ]
        }
        for i in range(n)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _prepared(tmp_path: Path, data: bytes = b'{"contents": []}\n') -> PreparedFile:
    import hashlib

    path = tmp_path / "wire.jsonl"
    path.write_bytes(data)
    return PreparedFile(path=path, filename="train.jsonl", size_bytes=len(data), purpose="training",
                        sha256=hashlib.sha256(data).hexdigest(), num_examples=1)  # fmt: skip


def _spec(model: str = GEMINI, **kwargs: typing.Any) -> JobSpec:
    kwargs.setdefault(
        "training_file", FileRef(id=f"gs://{BUCKET}/unitune/data/x/train.jsonl", provider="vertex")
    )
    return JobSpec(model=model, **kwargs)


# -- the SDK and settings ---------------------------------------------------------------------------------


def test_importing_and_building_loads_no_sdk() -> None:
    import subprocess
    import sys

    code = ("import sys; import unitune.providers.vertex as m; m.VertexProvider(); "
            "print('google.genai' in sys.modules, 'google.cloud.storage' in sys.modules)")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_missing_project_names_the_variable_and_the_login(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GOOGLE_CLOUD_PROJECT", raising=False)
    with pytest.raises(ConfigurationError, match="GOOGLE_CLOUD_PROJECT") as caught:
        _ = VertexProvider(VertexSettings(location=LOCATION)).sdk
    assert "gcloud auth application-default login" in str(caught.value)


def test_missing_credentials_name_the_fix(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No access token and no Application Default Credentials: the first request says how to log in."""
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing.json"))
    monkeypatch.setenv("NO_GCE_CHECK", "True")
    provider = VertexProvider(
        VertexSettings(project=PROJECT, location=LOCATION, base_url="http://127.0.0.1:9/")
    )
    with pytest.raises(ConfigurationError, match="gcloud auth application-default login"):
        provider.get_job("1")


def test_the_installed_sdks_flag_is_used(api: FakeVertex) -> None:
    """google-genai 3.x takes `enterprise=True`; `enterprise = false` asks for the legacy `vertexai=True`."""
    with serve(api) as url:
        for enterprise in (None, False, True):
            provider = VertexProvider(VertexSettings(project=PROJECT, location=LOCATION, base_url=url,
                                                     access_token=TOKEN, enterprise=enterprise))  # fmt: skip
            with pytest.raises(NotFoundError):
                provider.get_job("404")
            assert provider.sdk.vertexai  # either flag selects Vertex AI, never the Gemini Developer API
            provider.close()


# -- statuses -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("state", sorted(STATUS_MAP))
def test_every_state_maps_and_none_ends_early(provider: VertexProvider, state: str) -> None:
    tuned = {"model": "m", "endpoint": "projects/p/locations/l/endpoints/1"}
    job = provider._job({"name": "projects/p/locations/l/tuningJobs/1", "state": state, "tuned_model": tuned})
    assert job.status is STATUS_MAP[state]
    assert job.raw_status == state
    final = {"JOB_STATE_SUCCEEDED", "JOB_STATE_PARTIALLY_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED",
             "JOB_STATE_EXPIRED"}  # fmt: skip
    assert job.status.is_terminal == (state in final)


def test_every_declared_state_is_in_the_table() -> None:
    from google.genai import types

    assert set(types.JobState.__members__) == set(STATUS_MAP)


def test_expired_and_a_partial_success_without_a_model_are_failures(provider: VertexProvider) -> None:
    expired = provider._job({"name": "n", "state": "JOB_STATE_EXPIRED"})
    assert expired.status is JobStatus.FAILED
    assert "expire" in (expired.error or "")
    partial = provider._job({"name": "n", "state": "JOB_STATE_PARTIALLY_SUCCEEDED"})
    assert partial.status is JobStatus.FAILED
    assert partial.fine_tuned_model is None


# -- the lifecycle ----------------------------------------------------------------------------------------


def test_lifecycle_through_the_client(api: FakeVertex, gcs: str, tmp_path: Path) -> None:
    """Built from settings as a user would (`FineTuneClient("vertex", ...)`), against the fake served
    on 127.0.0.1 and the Cloud Storage emulator."""
    with serve(api) as url:
        client = FineTuneClient(
            "vertex", project=PROJECT, location=LOCATION, bucket=BUCKET, base_url=url, storage_endpoint_url=gcs,
            access_token=TOKEN, clock=FakeClock(), ledger=tmp_path / "ledger.sqlite3",
        )  # fmt: skip
        with client:
            job = client.create_job(model=GEMINI, training_data=_train(tmp_path), suffix="tickets",
                                    hyperparameters={"epochs": 2, "lora_rank": 4}, metadata={"team": "support"})  # fmt: skip
            assert job.id.startswith(f"projects/{PROJECT}/locations/{LOCATION}/tuningJobs/")
            sent = api.created[-1]
            assert sent["supervisedTuningSpec"]["hyperParameters"] == {
                "epochCount": 2,
                "adapterSize": "ADAPTER_SIZE_FOUR",
            }
            assert sent["labels"] == {
                "team": "support",
                IDEMPOTENCY_LABEL: key_tag(job.idempotency_key or ""),
            }
            assert sent["tunedModelDisplayName"].startswith("tickets-ut")
            # The file went to Cloud Storage in the gemini format, at its content-addressed name.
            uri = sent["supervisedTuningSpec"]["trainingDatasetUri"]
            bucket, _, key = uri[len("gs://") :].partition("/")
            first = json.loads(_storage(gcs).bucket(bucket).blob(key).download_as_bytes().splitlines()[0])
            assert first["contents"][0]["role"] == "user"
            assert first["systemInstruction"]["parts"][0]["text"] == "Triage the ticket."
            done = client.wait(job)
            assert done.status is JobStatus.SUCCEEDED
            assert done.fine_tuned_model
            assert done.fine_tuned_model.endswith(job.id.rsplit("/", 1)[-1])
            assert [j.id for j in client.list_jobs()] == [job.id]
            messages = [m.message for m in client.events(done)]
            assert messages[0] == "job created"
            assert messages[-1] == "job ended JOB_STATE_SUCCEEDED"
            assert [c.step for c in client.checkpoints(done)] == [10, 20]
            answer = client.chat(done.fine_tuned_model, "Where is my order?")
            assert answer.content == "echo: Where is my order?"
            assert api.chats[-1]["contents"][-1]["role"] == "user"
            # A second job, cancelled while it runs.
            second = client.create_job(model=GEMINI, training_data=_train(tmp_path), idempotency_key="second")
            cancelled = client.cancel_job(second)
            assert cancelled.status in (JobStatus.CANCELLING, JobStatus.CANCELLED)
            with pytest.raises(JobFailedError) as ended:
                client.wait(cancelled)
            assert ended.value.job.status is JobStatus.CANCELLED


def test_upload_is_content_addressed_and_idempotent(
    provider: VertexProvider, gcs: str, tmp_path: Path
) -> None:
    prepared = _prepared(tmp_path)
    first = provider.upload(prepared)
    again = provider.upload(prepared)  # the object exists: written once, the same reference
    assert first.id == again.id
    assert first.id.startswith(f"gs://{BUCKET}/unitune/data/{prepared.sha256[:16]}/")


def test_a_large_file_goes_up_resumable(api: FakeVertex, gcs: str, tmp_path: Path) -> None:
    provider = _provider(api, gcs, resumable_threshold_bytes=1024, chunk_size_bytes=256 * 1024)
    data = b'{"contents": [{"role": "user", "parts": [{"text": "x"}]}]}\n' * 12_000  # ~700 KB: three chunks
    ref = provider.upload(_prepared(tmp_path, data))
    bucket, _, key = ref.id[len("gs://") :].partition("/")
    assert _storage(gcs).bucket(bucket).blob(key).download_as_bytes() == data


def test_a_lost_create_is_found_by_its_label(api: FakeVertex, gcs: str, tmp_path: Path) -> None:
    provider = _provider(api, gcs)
    api.fail(r"POST .*/tuningJobs", 503, after_effect=True)  # made, then the answer is lost
    client = FineTuneClient(provider, clock=FakeClock(), ledger=False)
    job = client.create_job(model=GEMINI, training_data=_train(tmp_path), idempotency_key="lost-once")
    assert api.jobs_with_key("lost-once") == [job.id]
    assert len(api.created) == 1


def test_errors_map(provider: VertexProvider, api: FakeVertex) -> None:
    with pytest.raises(NotFoundError, match="NOT_FOUND"):
        provider.get_job("404")
    api.fail(r"GET .*/tuningJobs/1", 429, headers={"retry-after": "3"})
    with pytest.raises(RateLimitError) as caught:
        provider.get_job("1")
    assert caught.value.retry_after == 3
    api.fail(r"GET .*/tuningJobs/1", None)
    with pytest.raises(ProviderUnavailableError, match=r"vertex\.test"):
        provider.get_job("1")


def test_a_short_id_is_the_configured_projects_job(provider: VertexProvider, api: FakeVertex) -> None:
    with pytest.raises(NotFoundError):
        provider.get_job("77")
    assert api.requests[-1].url.path == f"/v1beta1/projects/{PROJECT}/locations/{LOCATION}/tuningJobs/77"


def test_delete_model(provider: VertexProvider, api: FakeVertex) -> None:
    provider.delete_model(f"projects/{PROJECT}/locations/{LOCATION}/models/5")
    assert api.deleted == [f"projects/{PROJECT}/locations/{LOCATION}/models/5"]


def test_chat_maps_roles_and_the_system_instruction(provider: VertexProvider, api: FakeVertex) -> None:
    messages = [Message(role="system", content="Be brief."), Message(role="user", content="hi"),
                Message(role="assistant", content="hello"), Message(role="user", content="bye")]  # fmt: skip
    answer = provider.chat(f"projects/{PROJECT}/locations/{LOCATION}/endpoints/3", messages, temperature=0,
                           max_tokens=5)  # fmt: skip
    sent = api.chats[-1]
    assert [c["role"] for c in sent["contents"]] == ["user", "model", "user"]
    assert sent["systemInstruction"]["parts"][0]["text"] == "Be brief."
    assert sent["generationConfig"] == {"temperature": 0, "maxOutputTokens": 5}
    assert answer.usage.completion_tokens == 2


# -- what the create refuses, before any upload --------------------------------------------------------------


_REFUSED = [
    pytest.param(
        {"hyperparameters": Hyperparameters(learning_rate=1e-4)}, "learning_rate for Gemini", id="lr-gemini"
    ),
    pytest.param(
        {"hyperparameters": Hyperparameters(batch_size=8)}, "batch_size for Gemini", id="batch-gemini"
    ),
    pytest.param(
        {"model": LLAMA, "hyperparameters": Hyperparameters(learning_rate_multiplier=2.0)},
        "learning_rate_multiplier for open models",
        id="lrm-open",
    ),
    pytest.param({"hyperparameters": Hyperparameters(seed=1)}, "seed", id="seed"),
    pytest.param({"hyperparameters": Hyperparameters(lora_rank=3)}, "adapter size", id="adapter-3"),
    pytest.param(
        {"hyperparameters": Hyperparameters(provider_options={"tuning_mode": "HALF"})},
        "tuning_mode",
        id="mode",
    ),
    pytest.param(
        {"hyperparameters": Hyperparameters(provider_options={"warmup": 1})}, "'warmup'", id="option"
    ),
    pytest.param({"metadata": {"Team": "x"}}, "label", id="label-case"),
    pytest.param(
        {"hyperparameters": Hyperparameters(provider_options={"description": {"not": "text"}})},
        "description",
        id="option-type",
    ),
    pytest.param({"metadata": {IDEMPOTENCY_LABEL: "x"}}, "unitune's own", id="label-reserved"),
    pytest.param({"suffix": "s" * 130}, "too long", id="suffix"),
]


@pytest.mark.parametrize(("fields", "match"), _REFUSED)
def test_check_job_refuses_what_vertex_refuses(fields: dict[str, typing.Any], match: str) -> None:
    provider = VertexProvider(VertexSettings(project=PROJECT, location=LOCATION, bucket=BUCKET))
    fields = dict(fields)
    spec = _spec(fields.pop("model", GEMINI), **fields)
    with pytest.raises(JobSpecRefused, match=match):
        provider.check_job(spec)
    assert provider._client is None  # no SDK client was built: no request


def test_check_job_needs_the_bucket(monkeypatch: pytest.MonkeyPatch) -> None:
    provider = VertexProvider(VertexSettings(project=PROJECT, location=LOCATION))
    with pytest.raises(ConfigurationError, match="bucket"):
        provider.check_job(_spec())


def test_open_models_take_an_absolute_rate_and_full_tuning(
    provider: VertexProvider, api: FakeVertex, tmp_path: Path
) -> None:
    ref = provider.upload(_prepared(tmp_path))
    spec = _spec(LLAMA, training_file=ref, hyperparameters=Hyperparameters(learning_rate=1e-4, batch_size=8,
                                                        provider_options={"tuning_mode": "FULL"}))  # fmt: skip
    provider.create_job(spec, idempotency_key="open")
    sent = api.created[-1]
    assert sent["supervisedTuningSpec"]["hyperParameters"] == {"learningRate": 1e-4, "batchSize": 8}
    assert sent["supervisedTuningSpec"]["tuningMode"] == "TUNING_MODE_FULL"


def test_the_budget_cap_says_when_it_rests_on_an_unverified_price(
    api: FakeVertex, gcs: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Vertex AI's tuning prices are not on a page unitune could read: the cap still holds, and says so."""
    from unitune.errors import BudgetExceeded

    client = FineTuneClient(_provider(api, gcs), clock=FakeClock(), ledger=False)
    with pytest.raises(BudgetExceeded, match="unverified prices") as caught:
        client.create_job(
            model="llama-3.1-8b-instruct", training_data=_train(tmp_path), max_cost_usd=0.000001
        )
    assert "vertex-ai-samples" in str(caught.value)  # where the figure came from
    assert api.created == []  # nothing was created (or uploaded)
    with caplog.at_level("WARNING", logger="unitune"):
        client.create_job(model="llama-3.1-8b-instruct", training_data=_train(tmp_path), max_cost_usd=100)
    assert any("unverified" in r.getMessage() for r in caplog.records)
    assert api.created[-1]["baseModel"] == LLAMA


def _pairs(tmp_path: Path, n: int = 12) -> Path:
    path = tmp_path / "pairs.jsonl"
    rows = [
        {
            "input": {"messages": [{"role": "user", "content": f"Order {i} is late"}]},
            "preferred_output": [{"role": "assistant", "content": "Sorry: it ships today."}],
            "non_preferred_output": [{"role": "assistant", "content": "Not my problem."}],
        }
        for i in range(n)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_preference_tuning_of_a_gemini_model(api: FakeVertex, gcs: str, tmp_path: Path) -> None:
    client = FineTuneClient(_provider(api, gcs), clock=FakeClock(), ledger=False)
    job = client.create_job(model=GEMINI, training_data=_pairs(tmp_path), method="dpo",
                            hyperparameters={"epochs": 1, "provider_options": {"beta": 0.2}})  # fmt: skip
    sent = api.created[-1]["preferenceOptimizationSpec"]
    assert sent["hyperParameters"] == {"epochCount": 1, "beta": 0.2}
    bucket, _, key = sent["trainingDatasetUri"][len("gs://") :].partition("/")
    line = json.loads(_storage(gcs).bucket(bucket).blob(key).download_as_bytes().splitlines()[0])
    assert sorted(c["score"] for c in line["completions"]) == [0, 1]
    assert client.wait(job).status is JobStatus.SUCCEEDED


def test_preference_tuning_of_an_open_model_is_refused_before_upload() -> None:
    provider = VertexProvider(VertexSettings(project=PROJECT, location=LOCATION, bucket=BUCKET))
    with pytest.raises(JobSpecRefused, match="open models"):
        provider.check_job(_spec(LLAMA, method="dpo"))


def test_the_shared_lifecycle_scenario(api: FakeVertex, gcs: str, tmp_path: Path) -> None:
    """tests/contract's lifecycle (upload → create → get → list → events → cancel → chat → a refused
    request), with the adapter building its own google-genai and Cloud Storage clients from settings,
    against the fake served on 127.0.0.1 and the emulator."""
    from tests.contract.scenario import Scenario, run_lifecycle

    api.steps = ["JOB_STATE_PENDING", "JOB_STATE_RUNNING"]  # still running when the scenario cancels it
    with serve(api) as url:
        provider = VertexProvider.from_config({
            "project": PROJECT, "location": LOCATION, "bucket": BUCKET, "base_url": url,
            "storage_endpoint_url": gcs, "access_token": TOKEN,
        })  # fmt: skip
        try:
            seen = run_lifecycle(
                provider, _train(tmp_path),
                Scenario(model=GEMINI, chat_model=f"projects/{PROJECT}/locations/{LOCATION}/endpoints/1",
                         invalid=lambda p: p.get_job("no-such-job")),
                tmp_path,
            )  # fmt: skip
        finally:
            provider.close()
    assert set(seen) >= {"upload", "create", "get", "list", "events", "cancel", "chat"}
    assert api.requests[0].headers["authorization"] == f"Bearer {TOKEN}"
