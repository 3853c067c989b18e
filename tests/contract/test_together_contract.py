"""Together's adapter against Together's own OpenAPI spec (togethercomputer/openapi), served by Prism.

Gaps between the `together` SDK and the spec, recorded here rather than papered over:
- upload: the SDK's `files.upload` does POST /v1/files expecting a 302 with `Location` and
  `X-Together-File-Id`, then PUT to that URL, then POST /v1/files/{id}/preprocess. The spec
  describes none of that (it has /v1/files/upload), so the mock cannot run an upload; the
  scenario creates the job from a file id instead, and tests/together_adapter covers the protocol.
- train_on_inputs: the SDK sends "auto" when it is unset; the spec allows only a boolean. The
  adapter sends False (what "auto" means for chat data), so its requests stay inside the spec.
- model limits: the spec's example has no `lora_training.default_rank`, from which the SDK's
  create() computes the LoRA alpha (it raises TypeError without it). The adapter refuses that case
  with a ConfigurationError asking for lora_rank; the scenario passes one.
- lr_scheduler: the SDK's default (cosine, args `min_lr_ratio` + `num_cycles`) matches both
  branches of the spec's `lr_scheduler_args` oneOf (the linear branch does not forbid extra
  properties), so Prism refuses every create that keeps the SDK's default scheduler. A spec bug;
  the scenario asks for the linear scheduler (provider option `lr_scheduler_type`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

pytest.importorskip("together")

from tests.contract.conftest import Prism
from tests.contract.scenario import Scenario, run_lifecycle

from unitune import ConfigurationError, Hyperparameters, ProviderError
from unitune.providers.base import Provider
from unitune.providers.together import TogetherProvider, TogetherSettings
from unitune.types import FileRef

MODEL = "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference"
#: What the gaps above need: an explicit rank, and the scheduler the spec can tell apart.
LINEAR = Hyperparameters(lora_rank=16, epochs=1, provider_options={"lr_scheduler_type": "linear"})


@pytest.fixture(scope="module")
def server(prism_server: Callable[..., Prism]) -> Prism:
    return prism_server("together-openapi.prism.yaml")


@pytest.fixture
def provider(server: Prism) -> TogetherProvider:
    return TogetherProvider(TogetherSettings(api_key="tg-contract", base_url=server.url, timeout=30))


def _chat_with_a_wrong_type(provider: Provider) -> None:
    assert isinstance(provider, TogetherProvider)
    # max_tokens must be an integer in the spec; the adapter passes chat parameters through.
    from unitune.types import Message

    provider.chat(MODEL, [Message(role="user", content="hi")], max_tokens="many")


def test_lifecycle_against_the_spec(provider: TogetherProvider, tmp_path: Path) -> None:
    ref = FileRef(id="file-abc123", provider="together")
    seen = run_lifecycle(
        provider, ref,  # type: ignore[arg-type]
        Scenario(model=MODEL, chat_model="user/Meta-Llama-3.1-8B-Instruct-Reference-triage-ut1a2b3c4d",
                 invalid=_chat_with_a_wrong_type, hyperparameters=LINEAR,
                 gaps={"upload": "the SDK's 302/PUT/preprocess upload protocol is not in the spec"}),
        tmp_path,
    )  # fmt: skip
    refused = seen["invalid"]
    assert isinstance(refused, ProviderError)
    # The spec declares a 400 for chat, so Prism answers its invalid-request check with that (else 422).
    assert refused.status_code == 400


def test_limits_without_a_default_rank_ask_for_one(provider: TogetherProvider) -> None:
    from unitune.types import JobSpec

    with pytest.raises(ConfigurationError, match="lora_rank"):
        provider.create_job(JobSpec(model=MODEL, training_file=FileRef(id="file-abc123", provider="together")),
                            idempotency_key="k")  # fmt: skip


def test_limits_estimate_metrics_and_checkpoints_are_in_the_spec(provider: TogetherProvider) -> None:
    limits = provider.model_limits(MODEL)
    assert "lora_training" in limits
    assert provider.list_metrics("ft-abc123") is not None
    assert all(c.id.startswith("ft-abc123:") for c in provider.list_checkpoints("ft-abc123"))
