"""`JobSpec.wandb` as OpenAI's W&B integration: the request body the SDK sends to the fake API,
checked against OpenAI's own schema; what OpenAI's integration cannot take is refused first."""

from __future__ import annotations

import json
import typing
from pathlib import Path

import pytest

pytest.importorskip("openai")


from tests._openapi import openai_schema_check
from tests.openai_adapter.fake_api import FakeOpenAI
from unitune.errors import JobSpecRefused
from unitune.providers.openai import OpenAIProvider
from unitune.testing import FakeProvider
from unitune.types import FileRef, Hyperparameters, JobSpec, PreparedFile, WandbIntegration


def _spec(provider: OpenAIProvider, tmp_path: Path, **kw: typing.Any) -> JobSpec:
    path = tmp_path / "t.jsonl"
    path.write_text(
        '{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}\n'
    )
    ref = provider.upload(PreparedFile(path=path, filename="t.jsonl", size_bytes=path.stat().st_size,
                                       sha256="x", purpose="training"))  # fmt: skip
    return JobSpec(model="gpt-4o-mini-2024-07-18", training_file=ref, **kw)


def _sent(api: FakeOpenAI) -> dict[str, typing.Any]:
    body: dict[str, typing.Any] = json.loads(api.calls("POST", "/v1/fine_tuning/jobs")[0].read())
    return body


def test_wandb_becomes_the_integrations_entry(
    api: FakeOpenAI, provider: OpenAIProvider, tmp_path: Path
) -> None:
    wandb = WandbIntegration(project="triage", entity="acme", name="run-1", tags=("unitune", "v2"))
    job = provider.create_job(_spec(provider, tmp_path, wandb=wandb), idempotency_key="k")
    sent = _sent(api)
    assert sent["integrations"] == [
        {
            "type": "wandb",
            "wandb": {"project": "triage", "entity": "acme", "name": "run-1", "tags": ["unitune", "v2"]},
        }
    ]
    openai_schema_check()("CreateFineTuningJobRequest", sent)
    assert job.raw["integrations"] == sent["integrations"]


def test_only_what_is_set_is_sent(api: FakeOpenAI, provider: OpenAIProvider, tmp_path: Path) -> None:
    provider.create_job(_spec(provider, tmp_path, wandb=WandbIntegration(project="p")), idempotency_key="k")
    assert _sent(api)["integrations"] == [{"type": "wandb", "wandb": {"project": "p"}}]


def test_no_wandb_sends_no_integrations(api: FakeOpenAI, provider: OpenAIProvider, tmp_path: Path) -> None:
    provider.create_job(_spec(provider, tmp_path), idempotency_key="k")
    assert "integrations" not in _sent(api)


@pytest.mark.parametrize(
    ("wandb", "options", "refused"),
    [
        (WandbIntegration(project="p", api_key="wandb-secret-key-0123456789"), {}, "api_key"),  # type: ignore[arg-type]
        (WandbIntegration(project="p", base_url="https://wandb.acme.test"), {}, "base_url"),
        (
            WandbIntegration(project="p"),
            {"integrations": [{"type": "wandb", "wandb": {"project": "q"}}]},
            "two W&B",
        ),
    ],
)
def test_what_openai_cannot_take_is_refused_before_a_request(
    api: FakeOpenAI, provider: OpenAIProvider, tmp_path: Path, wandb: WandbIntegration,
    options: dict[str, typing.Any], refused: str,
) -> None:  # fmt: skip
    spec = JobSpec(model="gpt-4o-mini-2024-07-18", training_file=FileRef(id="unitune-check", provider="openai"),
                   wandb=wandb, hyperparameters=Hyperparameters(provider_options=options))  # fmt: skip
    with pytest.raises(JobSpecRefused, match=refused) as info:
        provider.check_job(spec)
    assert "wandb-secret-key" not in str(info.value)
    assert not api.calls("POST", "/v1/fine_tuning/jobs")


def test_the_fake_impersonating_openai_takes_it_and_the_plain_fake_refuses_it() -> None:
    spec = JobSpec(model="gpt-4o-mini-2024-07-18", training_file=FileRef(id="unitune-check", provider="openai"),
                   wandb=WandbIntegration(project="p"))  # fmt: skip
    FakeProvider().as_provider("openai").check_job(spec)
    with pytest.raises(JobSpecRefused, match='backend = "wandb"'):
        FakeProvider().check_job(spec.model_copy(update={"model": "fake-model"}))
