"""`JobSpec.wandb` as Together's `wandb_*` create fields, sent through the real SDK to the fake API;
the W&B key is sent to Together and nowhere else (not in a repr, a dump, the spec hash or an error)."""

from __future__ import annotations

import typing
from pathlib import Path

import pytest

pytest.importorskip("together")

import yaml

from tests.together_adapter.fake_api import FakeTogether
from unitune.errors import JobSpecRefused
from unitune.providers.together import TogetherProvider
from unitune.testing import FakeProvider
from unitune.types import FileRef, Hyperparameters, JobSpec, PreparedFile, WandbIntegration

MODEL = "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference"
WANDB_KEY = "wandb-secret-key-0123456789"
SPEC = Path(__file__).resolve().parents[1] / "contract" / "specs" / "together-openapi.prism.yaml"


def _spec(provider: TogetherProvider, tmp_path: Path, **kw: typing.Any) -> JobSpec:
    path = tmp_path / "t.jsonl"
    path.write_text(
        '{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}\n'
    )
    ref = provider.upload(PreparedFile(path=path, filename="t.jsonl", size_bytes=path.stat().st_size,
                                       sha256="x", purpose="training"))  # fmt: skip
    return JobSpec(model=MODEL, training_file=ref, **kw)


def _create_fields() -> set[str]:
    """The fields of Together's `POST /fine-tunes` body, from its OpenAPI spec."""
    spec = yaml.safe_load(SPEC.read_text("utf-8"))
    body = spec["paths"]["/v1/fine-tunes"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    return set(body["properties"])


def test_wandb_becomes_the_create_fields(
    api: FakeTogether, provider: TogetherProvider, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    wandb = WandbIntegration(project="triage", entity="acme", name="run-1", base_url="https://wandb.acme.test",
                             api_key=WANDB_KEY)  # type: ignore[arg-type]  # fmt: skip
    spec = _spec(provider, tmp_path, wandb=wandb)
    job = provider.create_job(spec, idempotency_key="k")
    (sent,) = api.created
    fields = {k: v for k, v in sent.items() if k.startswith("wandb_")}
    # The SDK (3.1.1) takes `wandb_api_key=` and sends it as `wandb_key`, where Together's published
    # spec names the body field `wandb_api_key`: the adapter passes the SDK's keyword and leaves the
    # wire name to the SDK.
    assert fields == {"wandb_key": WANDB_KEY, "wandb_project_name": "triage", "wandb_entity": "acme",
                      "wandb_name": "run-1", "wandb_base_url": "https://wandb.acme.test"}  # fmt: skip
    assert set(fields) - {"wandb_key"} <= _create_fields()
    assert "wandb_api_key" in _create_fields()
    # The key goes to Together only.
    for text in (repr(spec), spec.model_dump_json(), repr(job), job.model_dump_json()):
        assert WANDB_KEY not in text
    assert spec.spec_hash() == spec.model_copy(update={"wandb": None}).spec_hash()


def test_the_key_is_read_from_wandb_api_key(
    api: FakeTogether, provider: TogetherProvider, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WANDB_API_KEY", WANDB_KEY)
    provider.create_job(_spec(provider, tmp_path, wandb=WandbIntegration(project="p")), idempotency_key="k")
    (sent,) = api.created
    assert {k: v for k, v in sent.items() if k.startswith("wandb_")} == {
        "wandb_key": WANDB_KEY, "wandb_project_name": "p",
    }  # fmt: skip


def test_no_wandb_sends_no_wandb_fields(
    api: FakeTogether, provider: TogetherProvider, tmp_path: Path
) -> None:
    provider.create_job(_spec(provider, tmp_path), idempotency_key="k")
    (sent,) = api.created
    assert not [k for k in sent if k.startswith("wandb_")]


@pytest.mark.parametrize(
    ("wandb", "options", "refused"),
    [
        (WandbIntegration(project="p"), {}, "WANDB_API_KEY"),  # no key anywhere
        (WandbIntegration(project="p", tags=("a",), api_key=WANDB_KEY), {}, "tags"),  # type: ignore[arg-type]
        (WandbIntegration(project="p", api_key=WANDB_KEY), {"wandb_name": "x"}, "wandb_name"),  # type: ignore[arg-type]
    ],
)
def test_what_together_cannot_take_is_refused_before_a_request(
    api: FakeTogether, provider: TogetherProvider, monkeypatch: pytest.MonkeyPatch, wandb: WandbIntegration,
    options: dict[str, typing.Any], refused: str,
) -> None:  # fmt: skip
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    spec = JobSpec(model=MODEL, training_file=FileRef(id="unitune-check", provider="together"), wandb=wandb,
                   hyperparameters=Hyperparameters(provider_options=options))  # fmt: skip
    with pytest.raises(JobSpecRefused, match=refused) as info:
        provider.check_job(spec)
    assert WANDB_KEY not in str(info.value)
    assert not api.created


def test_the_fake_impersonating_together_takes_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_API_KEY", WANDB_KEY)
    spec = JobSpec(model=MODEL, training_file=FileRef(id="unitune-check", provider="together"),
                   wandb=WandbIntegration(project="p"))  # fmt: skip
    FakeProvider().as_provider("together").check_job(spec)
