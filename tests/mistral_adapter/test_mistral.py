"""The Mistral adapter: `mistralai` 3.x (files, models, chat) over httpx2 and the legacy jobs
endpoints over httpx, both answered in-process by `FakeMistral`."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import typing
from pathlib import Path

import pytest

pytest.importorskip("mistralai")

import httpx
import httpx2
from mistralai.client import Mistral

from tests.mistral_adapter.fake_api import FakeMistral
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
    UnsupportedFeatureError,
)
from unitune.config import UnituneConfig
from unitune.providers.mistral import STATUS_MAP, MistralProvider, MistralSettings, idempotency_tag
from unitune.testing import FakeClock
from unitune.types import FileRef, JobSpec

KEY = "mistral-test-secret-789"
TODAY = dt.datetime(2026, 11, 22, tzinfo=dt.timezone.utc)


@pytest.fixture
def api() -> FakeMistral:
    return FakeMistral()


def _provider(api: FakeMistral, **settings: typing.Any) -> MistralProvider:
    sdk = Mistral(
        api_key=KEY, server_url="http://mistral.test", client=httpx2.Client(transport=api.sdk_transport())
    )
    http = httpx.Client(base_url="http://mistral.test", transport=api.http_transport())
    return MistralProvider(MistralSettings(**settings), client=sdk, http=http)


@pytest.fixture
def provider(api: FakeMistral) -> MistralProvider:
    return _provider(api)


@pytest.fixture
def legacy_catalog(tmp_path: Path) -> Path:
    """An account that still sees the legacy jobs API says so in a catalog override."""
    path = tmp_path / "mistral-legacy.toml"
    path.write_text(
        '[provider]\nname = "mistral"\naccepts_new_jobs = true\nstatus = "legacy jobs API still open for this account"\n'
        '[provider.lifecycle]\nsource = "our own account, checked 2026-11-22"\nas_of = 2026-11-22\nverified = true\n'
    )
    return path


def _client(provider: MistralProvider, tmp_path: Path, catalog: list[Path] | None = None) -> FineTuneClient:
    return FineTuneClient(provider, config=UnituneConfig(catalog=catalog or []), ledger=tmp_path / "l.sqlite3",
                          clock=FakeClock(TODAY))  # fmt: skip


@pytest.fixture
def data(tmp_path: Path) -> Path:
    from unitune.demo.tickets import write_jsonl

    return write_jsonl(tmp_path / "tickets.jsonl", n=60, seed=3)


def test_the_sdk_loads_only_when_used() -> None:
    code = "import sys; import unitune.providers.mistral as m; m.MistralProvider(); print('mistralai' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MISTRAL_API_KEY", raising=False)
    with pytest.raises(ConfigurationError, match="MISTRAL_API_KEY"):
        MistralProvider().sdk  # noqa: B018
    monkeypatch.setenv("MISTRAL_API_KEY", KEY)
    p = MistralProvider(MistralSettings(base_url="http://127.0.0.1:9"))
    assert p.sdk.sdk_configuration.server_url == "http://127.0.0.1:9"
    assert str(p.http.base_url).startswith("http://127.0.0.1:9")
    assert KEY not in repr(MistralProvider(MistralSettings(api_key=KEY)))


# -- retirement -------------------------------------------------------------------------------------


def test_create_is_refused_from_the_catalog_before_any_upload(api: FakeMistral, provider: MistralProvider,
                                                              data: Path, tmp_path: Path) -> None:  # fmt: skip
    with pytest.raises(ProviderRetiredError) as info:
        _client(provider, tmp_path).create_job(model="open-mistral-7b", training_data=data)
    assert "together" in info.value.alternatives
    assert info.value.source
    assert api.requests == []  # nothing uploaded, nothing asked


def test_a_410_from_the_jobs_api_is_retirement(api: FakeMistral, provider: MistralProvider, data: Path,
                                               tmp_path: Path, legacy_catalog: Path) -> None:  # fmt: skip
    api.jobs_gone = True
    with pytest.raises(ProviderRetiredError) as info:
        _client(provider, tmp_path, [legacy_catalog]).create_job(model="open-mistral-7b", training_data=data)
    assert info.value.status_code == 410
    assert "local" in info.value.alternatives
    with pytest.raises(ProviderRetiredError):
        provider.list_jobs()


def test_a_404_on_the_jobs_collection_is_retirement_but_not_on_one_job(api: FakeMistral,
                                                                        provider: MistralProvider) -> None:  # fmt: skip
    api.fail_next.append((r"GET /v1/fine_tuning/jobs", 404, {}))
    with pytest.raises(ProviderRetiredError):
        provider.list_jobs()
    with pytest.raises(NotFoundError):
        provider.get_job("ftjob-nope")


# -- status ------------------------------------------------------------------------------------------------


def test_status_map_covers_the_specs_enum() -> None:
    import yaml

    from tests.contract.conftest import specs_dir

    spec = specs_dir() / "mistral-openapi-legacy-finetuning.yaml"
    if not spec.exists():
        pytest.skip(f"{spec} not found")
    doc = yaml.safe_load(spec.read_text())
    param = next(
        p for p in doc["paths"]["/v1/fine_tuning/jobs"]["get"]["parameters"] if p["name"] == "status"
    )
    enum = set(param["schema"]["anyOf"][0]["enum"])
    assert enum == set(STATUS_MAP)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("QUEUED", JobStatus.QUEUED), ("STARTED", JobStatus.RUNNING), ("VALIDATING", JobStatus.VALIDATING),
        ("VALIDATED", JobStatus.PAUSED), ("RUNNING", JobStatus.RUNNING), ("FAILED_VALIDATION", JobStatus.FAILED),
        ("FAILED", JobStatus.FAILED), ("SUCCESS", JobStatus.SUCCEEDED), ("CANCELLED", JobStatus.CANCELLED),
        ("CANCELLATION_REQUESTED", JobStatus.CANCELLING),
    ],
)  # fmt: skip
def test_status_map_value_by_value(raw: str, expected: JobStatus) -> None:
    assert STATUS_MAP[raw] is expected


# -- the legacy jobs path ---------------------------------------------------------------------------------------


def test_legacy_lifecycle_with_a_manual_start(api: FakeMistral, data: Path, tmp_path: Path,
                                              legacy_catalog: Path) -> None:  # fmt: skip
    provider = _provider(api, auto_start=False)
    client = _client(provider, tmp_path, [legacy_catalog])
    job = client.create_job(model="open-mistral-7b", training_data=data, suffix="triage",
                            hyperparameters=Hyperparameters(epochs=2, learning_rate=1e-4,
                                                            provider_options={"warmup_fraction": 0.1}),
                            idempotency_key="m-1")  # fmt: skip
    (_method, _, _, body) = api.calls("POST", "/v1/fine_tuning/jobs")[0]
    sent = json.loads(body)
    assert sent["auto_start"] is False
    assert sent["hyperparameters"] == {"epochs": 2, "learning_rate": 1e-4, "warmup_fraction": 0.1}
    assert sent["suffix"] == f"triage-{idempotency_tag('m-1')}"
    assert sent["training_files"][0]["weight"] == 1
    assert job.status is JobStatus.QUEUED
    api.set_status(job.id, "VALIDATED")
    held = client.get_job(job.id)
    assert held.status is JobStatus.PAUSED
    assert held.action_required is not None
    assert "resume_job()" in held.action_required
    assert "4.0 USD" in held.action_required
    started = client.resume_job(job.id)
    assert started.raw_status == "STARTED"
    assert started.status is JobStatus.RUNNING
    api.jobs[job.id]["checkpoints"] = [
        {"step_number": 10, "created_at": 1_780_000_100, "metrics": {"train_loss": 1.2, "valid_loss": 1.3,
                                                                      "valid_mean_token_accuracy": 0.6}},
        {"step_number": 5, "created_at": 1_780_000_050, "metrics": {"train_loss": 1.8, "valid_loss": None}},
    ]  # fmt: skip
    api.jobs[job.id]["events"].append(
        {"name": "status-updated", "data": {"status": "RUNNING"}, "created_at": 1_780_000_060}
    )
    assert [(m.step, m.train_loss, m.valid_loss) for m in client.metrics(job.id)] == [
        (5, 1.8, None),
        (10, 1.2, 1.3),
    ]
    assert [c.id for c in client.checkpoints(job.id)] == [f"{job.id}:5", f"{job.id}:10"]
    assert [e.data.get("status") for e in client.events(job.id)] == ["QUEUED", "RUNNING"]
    api.set_status(job.id, "SUCCESS", fine_tuned_model="ft:open-mistral-7b:org:triage:abc")
    done = client.wait(job.id, timeout=60)
    assert done.fine_tuned_model == "ft:open-mistral-7b:org:triage:abc"
    assert client.chat(done.fine_tuned_model or "", "hi").content == "echo: hi"
    assert client.cancel_job(job.id).status is JobStatus.CANCELLING


def test_dry_run_returns_cost_and_duration(provider: MistralProvider, api: FakeMistral) -> None:
    api.files["file-9"] = {"id": "file-9"}
    estimate = provider.dry_run(JobSpec(model="open-mistral-7b", training_file=FileRef(id="file-9", provider="mistral"),
                                        hyperparameters=Hyperparameters(epochs=3)))  # fmt: skip
    assert estimate["cost"] == 4.0
    assert estimate["expected_duration_seconds"] == 300
    assert api.calls("POST", "/v1/fine_tuning/jobs")[0][2] == {"dry_run": "true"}
    assert api.jobs == {}


@pytest.mark.parametrize(
    ("hp", "match"),
    [
        (Hyperparameters(batch_size=8), "batch_size"),
        (Hyperparameters(seed=3), "seed"),
        (Hyperparameters(provider_options={"beta": 1}), "'beta'"),
    ],
)
def test_what_mistral_never_offered_is_refused(
    provider: MistralProvider, hp: Hyperparameters, match: str
) -> None:
    spec = JobSpec(
        model="open-mistral-7b", training_file=FileRef(id="f", provider="mistral"), hyperparameters=hp
    )
    with pytest.raises(UnsupportedFeatureError, match=match):
        provider.create_job(spec, idempotency_key="k")


def test_a_lost_create_answer_is_found_by_its_suffix(api: FakeMistral, provider: MistralProvider, data: Path,
                                                     tmp_path: Path, legacy_catalog: Path) -> None:  # fmt: skip
    client = _client(provider, tmp_path, [legacy_catalog])
    real = provider.http

    class Lossy:
        def request(self, method: str, path: str, **kw: typing.Any) -> typing.Any:
            response = real.request(method, path, **kw)
            if method == "POST" and path == "/v1/fine_tuning/jobs" and not hasattr(self, "done"):
                self.done = True
                raise httpx.ReadTimeout("answer lost", request=response.request)
            return response

    provider._http = Lossy()
    job = client.create_job(model="open-mistral-7b", training_data=data, idempotency_key="lost-1")
    assert list(api.jobs) == [job.id]
    assert job.idempotency_key == "lost-1"


def test_list_pages_by_number_and_stops_on_total(api: FakeMistral, provider: MistralProvider) -> None:
    api.files["f"] = {"id": "f"}
    spec = JobSpec(model="open-mistral-7b", training_file=FileRef(id="f", provider="mistral"))
    made = [provider.create_job(spec, idempotency_key=f"k{i}").id for i in range(130)]
    listed = provider.list_jobs(limit=125)
    assert [j.id for j in listed] == made[::-1][:125]
    assert [c[2]["page"] for c in api.calls("GET", "/v1/fine_tuning/jobs")] == ["0", "1"]


# -- errors -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error"),
    [(401, AuthenticationError), (404, NotFoundError), (429, RateLimitError), (500, ProviderUnavailableError),
     (422, ProviderError)],
)  # fmt: skip
def test_sdk_errors_map_by_status_code(api: FakeMistral, provider: MistralProvider, status: int,
                                       error: type[Exception]) -> None:  # fmt: skip
    api.fail_next.append((r"GET /v1/models", status, {"retry-after": "4"}))
    with pytest.raises(error) as info:
        provider.list_models()
    assert isinstance(info.value, ProviderError)
    assert info.value.status_code == status
    assert info.value.request_id == "req_m"
    assert KEY not in str(info.value)
    if status == 429:
        assert isinstance(info.value, RateLimitError)
        assert info.value.retry_after == 4


def test_connection_errors_are_unavailable() -> None:
    def refuse(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectError("refused", request=request)

    sdk = Mistral(api_key=KEY, server_url="http://mistral.test",
                  client=httpx2.Client(transport=httpx2.MockTransport(refuse)))  # fmt: skip
    with pytest.raises(
        ProviderUnavailableError, match=r"cannot connect to mistral\.test:80 \(connection refused\)"
    ):
        MistralProvider(client=sdk).list_models()


# -- tuned models and chat (the current SDK) -----------------------------------------------------------------


def test_tuned_model_management(api: FakeMistral, provider: MistralProvider, tmp_path: Path) -> None:
    api.add_model("ft:open-mistral-7b:org:triage:1")
    api.models["open-mistral-7b"] = {"id": "open-mistral-7b", "object": "model", "type": "base",
                                     "capabilities": {"completion_chat": True}}  # fmt: skip
    client = _client(provider, tmp_path)
    (model,) = client.models()  # the base model is not listed
    assert model.id == "ft:open-mistral-7b:org:triage:1"
    assert model.base_model == "open-mistral-7b"
    assert model.job_id == "job-1"
    renamed = client.update_model(model.id, name="triage v1", description="JSON triage")
    assert renamed.name == "triage v1"
    assert client.archive_model(model.id).archived is True
    assert client.unarchive_model(model.id).archived is False
    client.delete_model(model.id)
    assert client.models() == []
    with pytest.raises(NotFoundError):
        client.archive_model(model.id)


def test_upload_through_the_sdk_and_its_size_limit(api: FakeMistral, provider: MistralProvider, data: Path,
                                                   tmp_path: Path) -> None:  # fmt: skip
    ref = _client(provider, tmp_path).upload(data)
    assert ref.id in api.files
    assert ref.provider == "mistral"
    from unitune.types import PreparedFile

    huge = PreparedFile(
        path=data, filename="huge.jsonl", size_bytes=600 * 2**20, sha256="x", purpose="training"
    )
    with pytest.raises(ConfigurationError, match="512 MB"):
        provider.upload(huge)


def test_models_is_unsupported_where_the_provider_has_no_listing(tmp_path: Path) -> None:
    from unitune.testing import FakeProvider

    # The plain fake manages tuned models; impersonating the local trainer (no listing), it does not.
    fake = FakeProvider(clock=FakeClock()).as_provider("local")
    client = FineTuneClient(fake, config=UnituneConfig(), ledger=False)
    with pytest.raises(UnsupportedFeatureError, match="listing tuned models"):
        client.models()


def test_suffix_must_leave_room_for_the_tag(provider: MistralProvider) -> None:
    spec = JobSpec(
        model="open-mistral-7b", training_file=FileRef(id="f", provider="mistral"), suffix="a-long-suffix"
    )
    with pytest.raises(ConfigurationError, match="at most 10 characters"):
        provider.create_job(spec, idempotency_key="k")


def test_validated_with_auto_start_is_just_queued(provider: MistralProvider) -> None:
    job = provider._job({"id": "j", "status": "VALIDATED", "auto_start": True, "model": "m"})
    assert job.status is JobStatus.QUEUED
    assert job.action_required is None
    held = provider._job({"id": "j", "status": "VALIDATED", "auto_start": False, "model": "m"})
    assert held.status is JobStatus.PAUSED


# -- what the create refuses is refused before anything is uploaded ---------------------------------

_REFUSED = [
    pytest.param({"hyperparameters": Hyperparameters(batch_size=8)}, UnsupportedFeatureError, "batch_size",
                 id="batch_size"),
    pytest.param({"hyperparameters": {"learning_rate_multiplier": 0.5}}, UnsupportedFeatureError,
                 "learning_rate_multiplier", id="learning_rate_multiplier"),
    pytest.param({"hyperparameters": {"lora_rank": 8}}, UnsupportedFeatureError, "lora_rank", id="lora_rank"),
    pytest.param({"hyperparameters": {"provider_options": {"nope": 1}}}, UnsupportedFeatureError, "'nope'",
                 id="unknown-option"),
    pytest.param({"suffix": "a-long-suffix"}, ConfigurationError, "at most 10 characters", id="suffix"),
]  # fmt: skip


@pytest.mark.parametrize(("kwargs", "error", "match"), _REFUSED)
def test_what_the_create_refuses_is_refused_before_any_upload(
    api: FakeMistral, provider: MistralProvider, data: Path, tmp_path: Path, legacy_catalog: Path,
    kwargs: dict[str, typing.Any], error: type[Exception], match: str,
) -> None:  # fmt: skip
    client = _client(provider, tmp_path, [legacy_catalog])  # an account that may still create jobs
    with pytest.raises(error, match=match):
        client.create_job(model="open-mistral-7b", training_data=data, validation_data=data, **kwargs)
    assert not api.calls("POST", "/v1/files")
    assert api.requests == []


@pytest.mark.parametrize(("kwargs", "error", "match"), _REFUSED)
def test_check_job_with_the_stand_in_refuses_as_the_create_does(
    api: FakeMistral, provider: MistralProvider, kwargs: dict[str, typing.Any], error: type[Exception], match: str
) -> None:  # fmt: skip
    fields = dict(kwargs)
    if isinstance(fields.get("hyperparameters"), dict):
        fields["hyperparameters"] = Hyperparameters(**fields["hyperparameters"])
    stand_in = FileRef(id="unitune-check", provider="mistral")
    # An adapter built from an empty config section: no key, no SDK or HTTP client, no request.
    bare = MistralProvider.from_config({})
    with pytest.raises(error, match=match) as checked:
        bare.check_job(
            JobSpec(model="open-mistral-7b", training_file=stand_in, validation_file=stand_in, **fields)
        )
    assert bare._client is None
    assert bare._http is None
    api.files["file-1"] = {"id": "file-1"}
    ref = FileRef(id="file-1", provider="mistral")
    with pytest.raises(error) as created:
        provider.create_job(
            JobSpec(model="open-mistral-7b", training_file=ref, **fields), idempotency_key="k"
        )
    assert str(created.value) == str(checked.value)
    assert api.requests == []


def test_check_job_passes_what_the_create_takes() -> None:
    stand_in = FileRef(id="unitune-check", provider="mistral")
    bare = MistralProvider.from_config({})
    bare.check_job(JobSpec(model="open-mistral-7b", training_file=stand_in, suffix="x" * 10,
                           hyperparameters=Hyperparameters(epochs=2, learning_rate=1e-4,
                                                           provider_options={"warmup_fraction": 0.1})))  # fmt: skip
    assert bare._client is None
    assert bare._http is None


def test_a_pair_over_the_size_limit_sends_neither_file(api: FakeMistral, provider: MistralProvider,
                                                       data: Path) -> None:  # fmt: skip
    from unitune.types import PreparedFile

    small = PreparedFile(path=data, filename="t.jsonl", size_bytes=data.stat().st_size, sha256="x",
                         purpose="training")  # fmt: skip
    huge = small.model_copy(
        update={"filename": "v.jsonl", "size_bytes": 600 * 2**20, "purpose": "validation"}
    )
    with pytest.raises(ConfigurationError, match=r"v\.jsonl .* 512 MB"):
        provider.upload_pair(small, huge)
    assert api.requests == []
