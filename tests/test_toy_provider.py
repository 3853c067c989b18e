"""docs/adding-a-provider.md, proved: a third-party provider that unitune knows only through a real
entry point (a `*.dist-info` folder on `sys.path`, as `pip install` would leave it) works end to end:
the registry lists it, `FineTuneClient("toy")` builds it from its config section, a lifecycle runs
through the client, `check_job` refuses before any upload, `unitune providers` shows it, and the fake
can impersonate it."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from typer.testing import CliRunner

from unitune import ConfigurationError, FineTuneClient, JobStatus, UnsupportedFeatureError
from unitune.errors import JobSpecRefused, NotFoundError, UnknownStatusError
from unitune.providers import registry
from unitune.providers.base import map_status
from unitune.providers.fake import FakeProvider
from unitune.testing import FakeClock

# The adapter a newcomer writes, following docs/adding-a-provider.md. The "vendor" is an in-memory dict
# in a separate module (`toy_vendor_sdk`), imported lazily through `registry.import_sdk` as an SDK is.
TOY_SDK = '''
"""The toy vendor's "SDK": an in-memory API that answers with HTTP-like errors."""

STORE = {"files": {}, "jobs": {}, "requests": []}
STEPS = ["pending", "training", "training", "done"]


class ToyHTTPError(Exception):
    def __init__(self, status, message):
        super().__init__(message)
        self.status = status
        self.message = message


class Client:
    def __init__(self, api_key, region, max_retries):
        self.api_key, self.region, self.max_retries = api_key, region, max_retries

    def upload(self, name, data):
        STORE["requests"].append("upload")
        file_id = f"toyfile-{len(STORE['files']) + 1}"
        STORE["files"][file_id] = data
        return {"id": file_id, "bytes": len(data)}

    def create(self, body):
        STORE["requests"].append("create")
        if body["file"] not in STORE["files"]:
            raise ToyHTTPError(404, f"no file {body['file']}")
        job_id = f"toyjob-{len(STORE['jobs']) + 1}"
        STORE["jobs"][job_id] = {"id": job_id, "polls": 0, **body}
        return self.get(job_id, poll=False)

    def get(self, job_id, poll=True):
        STORE["requests"].append("get")
        job = STORE["jobs"].get(job_id)
        if job is None:
            raise ToyHTTPError(404, f"no job {job_id}")
        if poll:
            job["polls"] += 1
        return {**job, "state": STEPS[min(job["polls"], len(STEPS) - 1)]}

    def list(self):
        STORE["requests"].append("list")
        return [self.get(j, poll=False) for j in reversed(STORE["jobs"])]

    def log(self, job_id):
        job = self.get(job_id, poll=False)
        return [{"at": i, "text": f"toy is {s}"} for i, s in enumerate(STEPS[: job["polls"] + 1])]
'''

TOY_ADAPTER = """
from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator
from typing import Any, ClassVar

from unitune.providers.base import (
    HyperparameterTable, ProviderSettings, SDKProvider, error_from_status, guard_answers, map_status,
    refuse_unknown_options,
)
from unitune.types import Capabilities, FileRef, Job, JobEvent, JobSpec, JobStatus, PreparedFile

S = JobStatus
STATUS_MAP: dict[str, JobStatus] = {
    "pending": S.QUEUED, "training": S.RUNNING, "done": S.SUCCEEDED, "broken": S.FAILED, "stopped": S.CANCELLED,
}
KNOWN_OPTIONS = frozenset({"warmup"})
HYPERPARAMETERS = HyperparameterTable({"epochs": "rounds", "learning_rate": "lr"})
EPOCH = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)


def _sdk() -> Any:
    from unitune.providers.registry import import_sdk

    return import_sdk("toy", "toy_vendor_sdk")


class ToySettings(ProviderSettings):
    api_key_env: ClassVar[str | None] = "TOY_API_KEY"
    region: str = "eu"


@guard_answers()
class ToyProvider(SDKProvider):
    name: ClassVar[str] = "toy"
    capabilities: ClassVar[Capabilities] = Capabilities(cancel=False, metrics=False, chat=False)
    settings_class: ClassVar[type[ProviderSettings]] = ToySettings
    dataset_profile: ClassVar[str] = "openai"
    wire_format: ClassVar[str] = "openai"
    settings: ToySettings

    def _build_client(self) -> Any:
        key = self.settings.require_api_key(self.name).get_secret_value()
        return _sdk().Client(key, self.settings.region, max_retries=0)

    @contextlib.contextmanager
    def _map_errors(self, action: str) -> Iterator[None]:
        try:
            yield
        except _sdk().ToyHTTPError as e:
            raise error_from_status(e.status, f"{action}: {e.message}", provider=self.name) from e

    def upload(self, prepared: PreparedFile) -> FileRef:
        raw = self._call("upload", self.sdk.upload, prepared.filename, prepared.path.read_bytes())
        return self._file_ref(prepared, raw)

    def _body(self, spec: JobSpec, key: str) -> dict[str, Any]:
        options = spec.hyperparameters.provider_options
        refuse_unknown_options(self.name, options, KNOWN_OPTIONS)
        params = HYPERPARAMETERS.map(self.name, spec.hyperparameters)
        return {"model": spec.model, "file": spec.training_file.id, "tag": key, **params, **options}

    def check_job(self, spec: JobSpec) -> None:
        self._body(spec, "unitune-check")

    def create_job(self, spec: JobSpec, *, idempotency_key: str) -> Job:
        return self._job(self._call("create job", self.sdk.create, self._body(spec, idempotency_key)))

    def get_job(self, job_id: str) -> Job:
        return self._job(self._call(f"get job {job_id}", self.sdk.get, job_id))

    def list_jobs(self, *, limit: int = 20) -> list[Job]:
        return [self._job(raw) for raw in self._call("list jobs", self.sdk.list)[:limit]]

    def list_events(self, job_id: str) -> list[JobEvent]:
        log = self._call(f"events of job {job_id}", self.sdk.log, job_id)
        return [JobEvent(created_at=EPOCH + dt.timedelta(seconds=e["at"]), message=e["text"]) for e in log]

    def _job(self, raw: dict[str, Any]) -> Job:
        status = map_status(self.name, raw["state"], STATUS_MAP)
        return Job(
            id=raw["id"], provider=self.name, status=status, raw_status=raw["state"], model=raw["model"],
            fine_tuned_model=f"{raw['model']}:toy:{raw['id']}" if status is S.SUCCEEDED else None,
            training_file=raw["file"], idempotency_key=raw["tag"], raw=raw,
        )
"""


@pytest.fixture
def toy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """Install the toy provider as a distribution would be: a dist-info with its entry point."""
    site = tmp_path / "site"
    dist = site / "toy_unitune-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-unitune\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[unitune.providers]\ntoy = toy_unitune_mod:ToyProvider\n")
    (site / "toy_unitune_mod.py").write_text(textwrap.dedent(TOY_ADAPTER))
    (site / "toy_vendor_sdk.py").write_text(textwrap.dedent(TOY_SDK))
    for module in ("toy_unitune_mod", "toy_vendor_sdk"):  # a fresh import per test, gone after it
        monkeypatch.delitem(sys.modules, module, raising=False)
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("TOY_API_KEY", "toy-key")
    cls = registry.get_provider_class("toy")
    return sys.modules[cls.__module__]


def _store() -> dict[str, Any]:
    store: dict[str, Any] = sys.modules["toy_vendor_sdk"].STORE
    return store


def _config(region: str = "us") -> None:
    Path("unitune.toml").write_text(f'provider = "toy"\n\n[providers.toy]\nregion = "{region}"\n')


def test_registry_lists_the_entry_point_as_third_party(toy: ModuleType) -> None:
    rows = {i.name: i for i in registry.list_providers()}
    info = rows["toy"]
    assert info.import_path == "toy_unitune_mod:ToyProvider"
    assert info.description == "third-party provider from toy-unitune"
    assert info.extra is None
    assert info.installed
    names = list(rows)
    assert names.index("toy") > max(names.index(b) for b in registry.BUILTIN_PROVIDERS)  # after the built-ins
    assert registry.provider_info("toy") == info
    assert registry.load_provider_class("toy") is toy.ToyProvider
    # Importing the adapter did not import its "SDK": adapters import it when first used.
    assert "toy_vendor_sdk" not in sys.modules


def test_client_builds_it_from_its_config_section(toy: ModuleType) -> None:
    _config(region="us")
    client = FineTuneClient.from_config(ledger=False)
    assert isinstance(client.provider, toy.ToyProvider)
    assert client.provider.settings.region == "us"
    assert FineTuneClient("toy", ledger=False, region="ap").provider.settings.region == "ap"
    Path("unitune.toml").write_text('[providers.toy]\nregoin = "us"\n')
    with pytest.raises(ConfigurationError, match=r"\[providers\.toy\] regoin"):
        FineTuneClient("toy", ledger=False)


def test_full_lifecycle_through_the_client(toy: ModuleType, train_file: Path, tmp_path: Path) -> None:
    _config()
    client = FineTuneClient("toy", clock=FakeClock(), ledger=tmp_path / "ledger.sqlite3")
    assert client.validate(train_file, model="toy-small").ok  # the openai profile it declares
    job = client.create_job(model="toy-small", training_data=train_file, idempotency_key="toy-1")
    assert (job.status, job.raw_status, job.idempotency_key) == (JobStatus.QUEUED, "pending", "toy-1")
    again = client.create_job(model="toy-small", training_data=train_file, idempotency_key="toy-1")
    assert again.id == job.id
    assert len(_store()["jobs"]) == 1
    done = client.wait(job)
    assert (done.status, done.raw_status) == (JobStatus.SUCCEEDED, "done")
    assert done.fine_tuned_model == f"toy-small:toy:{job.id}"
    assert [e.message for e in client.events(job)][-1] == "toy is done"
    assert [j.id for j in client.list_jobs()] == [job.id]
    # The uploaded bytes are the openai wire format the adapter declared.
    uploaded = next(iter(_store()["files"].values())).decode()
    assert json.loads(uploaded.splitlines()[0])["messages"][0]["role"] == "user"
    # Vendor errors come back through error_from_status; a capability it lacks is refused by name.
    with pytest.raises(NotFoundError):
        client.get_job("toyjob-404")
    with pytest.raises(UnsupportedFeatureError):
        client.cancel_job(job)


def test_check_job_refuses_before_any_upload(toy: ModuleType, train_file: Path) -> None:
    _config()
    client = FineTuneClient("toy", clock=FakeClock(), ledger=False)
    with pytest.raises(JobSpecRefused, match="'warmpu'") as info:
        client.create_job(
            model="toy-small", training_data=train_file, hyperparameters={"provider_options": {"warmpu": 10}}
        )
    assert "warmup" in str(info.value)  # the known options are named
    # A hyperparameter outside the toy's table is refused by name, with what it takes.
    with pytest.raises(JobSpecRefused, match="batch_size") as info:
        client.create_job(model="toy-small", training_data=train_file, hyperparameters={"batch_size": 8})
    assert "epochs, learning_rate" in str(info.value)
    # Nothing was sent, the upload included: the vendor's SDK was not even imported.
    assert "toy_vendor_sdk" not in sys.modules


def test_unknown_status_is_strict_under_pytest(toy: ModuleType) -> None:
    with pytest.raises(UnknownStatusError, match="'melting'"):
        map_status("toy", "melting", toy.STATUS_MAP)


def test_cli_lists_it(toy: ModuleType) -> None:
    from unitune.cli._app import app

    result = CliRunner().invoke(app, ["providers", "--json"])
    assert result.exit_code == 0, result.output
    row = next(r for r in json.loads(result.output) if r["name"] == "toy")
    assert row["state"] == "installed"
    assert row["description"] == "third-party provider from toy-unitune"
    assert row["capabilities"]["chat"] is False
    assert row["capabilities"]["events"] is True
    assert row["accepts_new_jobs"] is True
    assert row["lifecycle"] is None
    one = CliRunner().invoke(app, ["providers", "--provider", "toy", "--json"])
    assert one.exit_code == 0, one.output
    assert [r["name"] for r in json.loads(one.output)] == ["toy"]


def test_the_fake_impersonates_it(toy: ModuleType, train_file: Path) -> None:
    fake = FakeProvider().as_provider("toy", region="us")
    assert fake.name == "toy"
    assert fake.impersonating == "toy"
    assert fake.capabilities == toy.ToyProvider.capabilities
    client = FineTuneClient(fake)
    job = client.wait(client.create_job(model="toy-small", training_data=train_file, idempotency_key="k"))
    assert (job.status, job.raw_status, job.provider) == (JobStatus.SUCCEEDED, "done", "toy")
    with pytest.raises(UnsupportedFeatureError, match="'warmpu'"):  # the toy's own check_job
        client.create_job(
            model="toy-small", training_data=train_file, hyperparameters={"provider_options": {"warmpu": 1}}
        )
    with pytest.raises(ConfigurationError):  # its settings class checks the section
        FakeProvider().as_provider("toy", regoin="us")
    assert "toy_vendor_sdk" not in sys.modules  # impersonating needs no SDK
