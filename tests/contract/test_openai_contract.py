"""OpenAI's adapter against OpenAI's own OpenAPI spec (openai/openai-openapi), served by Prism."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

pytest.importorskip("openai")

from tests.contract.conftest import Prism
from tests.contract.scenario import Scenario, run_lifecycle

from unitune import ProviderError
from unitune.providers.base import Provider
from unitune.providers.openai import OpenAIProvider, OpenAISettings


@pytest.fixture(scope="module")
def server(prism_server: Callable[..., Prism]) -> Prism:
    return prism_server("openai-openapi.yaml")


@pytest.fixture
def provider(server: Prism) -> OpenAIProvider:
    # The spec's paths carry no /v1 (Prism ignores the server's base path), so the root is the URL.
    return OpenAIProvider(OpenAISettings(api_key="sk-contract", base_url=server.url, timeout=30))


@pytest.fixture
def data(tmp_path: Path) -> Path:
    from unitune.demo.tickets import write_jsonl

    return write_jsonl(tmp_path / "tickets.jsonl", n=20, seed=5)


def _create_without_training_file(provider: Provider) -> None:
    assert isinstance(provider, OpenAIProvider)
    import openai

    # What the adapter never sends, sent through its error mapping: the spec requires training_file.
    provider._call(
        "create job", provider.sdk.fine_tuning.jobs.create, model="gpt-4o-mini", training_file=openai.omit
    )


def test_lifecycle_against_the_spec(provider: OpenAIProvider, data: Path, tmp_path: Path) -> None:
    seen = run_lifecycle(
        provider, data,
        Scenario(model="gpt-4o-mini-2024-07-18", chat_model="ft:gpt-4o-mini-2024-07-18:org:triage:abc123",
                 invalid=_create_without_training_file),
        tmp_path,
    )  # fmt: skip
    refused = seen["invalid"]
    assert isinstance(refused, ProviderError)
    assert refused.status_code == 422
    assert "training_file" in str(refused.body) or "training_file" in str(refused)


def test_an_unknown_method_type_is_refused_by_the_spec(
    provider: OpenAIProvider, data: Path, tmp_path: Path
) -> None:
    from unitune.types import FileRef, Hyperparameters, JobSpec

    spec = JobSpec(
        model="gpt-4o-mini-2024-07-18",
        training_file=FileRef(id="file-abc123", provider="openai"),
        hyperparameters=Hyperparameters(provider_options={"method": {"type": "telepathy"}}),
    )
    with pytest.raises(ProviderError) as info:
        provider.create_job(spec, idempotency_key="k")
    assert info.value.status_code == 422


def test_every_call_the_adapter_makes_is_in_the_spec(provider: OpenAIProvider, tmp_path: Path) -> None:
    # Beyond the shared scenario: pause, resume, checkpoints, metrics events and the Uploads API.
    from unitune.types import PreparedFile

    assert provider.pause_job("ftjob-abc123").raw_status
    assert provider.resume_job("ftjob-abc123").raw_status
    checkpoints = provider.list_checkpoints("ftjob-abc123")
    assert all(c.id for c in checkpoints)
    big = tmp_path / "big.jsonl"
    big.write_text(
        '{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}\n' * 50
    )
    chunked = OpenAIProvider(provider.settings.model_copy(update={"multipart_threshold_bytes": 100,
                                                                   "part_size_bytes": 1024}))  # fmt: skip
    # Gap recorded: the spec's example for POST /uploads/{id}/complete is an Upload still `pending`,
    # with no `file`, so the mock cannot finish an upload. Create, every part and complete were
    # accepted by the schema (no 422); the adapter then refuses a completion without a file.
    with pytest.raises(ProviderError, match="without a file") as info:
        chunked.upload(PreparedFile(path=big, filename="big.jsonl", size_bytes=big.stat().st_size,
                                    sha256="s", purpose="training"))  # fmt: skip
    assert info.value.status_code is None
