"""Cohere's adapter against Cohere's own OpenAPI spec (cohere-ai/cohere-developer-experience, with
seven external code-sample `$ref`s replaced so Prism can load it), served by Prism.

Recorded here:
- cancel: Cohere's API has none (the spec has no cancel path); the adapter raises
  UnsupportedFeatureError instead, so the scenario skips that step.
- create: fine-tuning is deprecated (catalog), so the scenario passes a catalog override.
- upload: the spec's example dataset stays `validation_status: unknown` for ever, so the mock can
  never finish unitune's wait for Cohere's validation. The scenario creates the job from a dataset
  id; the dataset request itself is checked against the spec in its own test below.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

pytest.importorskip("cohere")

from tests.contract.conftest import Prism
from tests.contract.scenario import Scenario, run_lifecycle

from unitune import ProviderError, UnsupportedFeatureError
from unitune.providers.base import Provider
from unitune.providers.cohere import CohereProvider, CohereSettings
from unitune.types import FileRef, Message


@pytest.fixture(scope="module")
def server(prism_server: Callable[..., Prism]) -> Prism:
    return prism_server("cohere-openapi.prism.yaml")


@pytest.fixture
def provider(server: Prism) -> CohereProvider:
    return CohereProvider(CohereSettings(api_key="co-contract", base_url=server.url, timeout=30, dataset_timeout=1,
                                      dataset_poll_interval=0.1))  # fmt: skip


@pytest.fixture
def override(tmp_path: Path) -> Path:
    path = tmp_path / "cohere-still-trains.toml"
    path.write_text('[provider]\nname = "cohere"\naccepts_new_jobs = true\nstatus = "contract test"\n'
                    '[provider.lifecycle]\nsource = "contract test"\nas_of = 2026-11-22\nverified = true\n')  # fmt: skip
    return path


@pytest.fixture
def data(tmp_path: Path) -> Path:
    from unitune.demo.tickets import write_jsonl

    return write_jsonl(tmp_path / "tickets.jsonl", n=20, seed=5)


def _chat_with_a_wrong_type(provider: Provider) -> None:
    provider.chat("command-r-08-2024", [Message(role="user", content="hi")], temperature="hot")


def test_lifecycle_against_the_spec(
    provider: CohereProvider, data: Path, tmp_path: Path, override: Path
) -> None:
    dataset = FileRef(id="dataset-abc", provider="cohere")
    seen = run_lifecycle(
        provider, dataset,  # type: ignore[arg-type]
        Scenario(model="command-r-08-2024", chat_model="ft-abc-ft", invalid=_chat_with_a_wrong_type,
                 gaps={"cancel": "Cohere has no cancel (delete is the only way to stop a fine-tune)",
                       "upload": "the example dataset never leaves validation_status 'unknown'"},
                 catalog=[override]),
        tmp_path,
    )  # fmt: skip
    refused = seen["invalid"]
    assert isinstance(refused, ProviderError)
    assert refused.status_code in (400, 422)
    with pytest.raises(UnsupportedFeatureError, match="delete_model"):
        provider.cancel_job(seen["create"].id)


def test_dataset_upload_is_in_the_spec_and_the_wait_times_out_cleanly(
    provider: CohereProvider, tmp_path: Path
) -> None:
    from unitune.types import PreparedFile

    path = tmp_path / "train.jsonl"
    path.write_text(
        '{"messages": [{"role": "User", "content": "a"}, {"role": "Chatbot", "content": "b"}]}\n' * 3
    )
    prepared = PreparedFile(path=path, filename="train.jsonl", size_bytes=path.stat().st_size, sha256="a" * 64,
                            purpose="training")  # fmt: skip
    with pytest.raises(ProviderError, match="had not finished checking") as info:
        provider.upload_pair(prepared, prepared)  # POST /v1/datasets accepted (no 422), then the wait
    assert info.value.status_code is None


def test_metrics_and_models_against_the_spec(provider: CohereProvider) -> None:
    assert isinstance(provider.list_metrics("ft-abc"), list)
    assert isinstance(provider.list_models(), list)
    provider.delete_model("ft-abc-ft")
