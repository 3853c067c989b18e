"""Every provider without a W&B integration of its own refuses a `JobSpec.wandb` in `check_job`,
before anything is uploaded, and says to log from unitune instead; the shared check runs before
each adapter's own (no adapter calls it)."""

from __future__ import annotations

import pytest

from tests.providers.test_conformance import NAMES, build
from unitune.catalog import load_catalog
from unitune.errors import JobSpecRefused
from unitune.providers.registry import load_provider_class
from unitune.types import FileRef, JobSpec, WandbIntegration

pytestmark = pytest.mark.unitune_block_network


@pytest.mark.parametrize(
    "name", [n for n in NAMES if not load_provider_class(n).capabilities.wandb_integration]
)
def test_a_provider_without_the_integration_refuses_it(name: str) -> None:
    spec = JobSpec(
        model=load_catalog().models(name)[0][1].id,
        training_file=FileRef(id="unitune-check", provider=name),
        wandb=WandbIntegration(project="p"),
    )
    with pytest.raises(JobSpecRefused, match='backend = "wandb"') as info:
        build(name).check_job(spec)
    assert info.value.feature == "wandb integration"


def test_the_integration_is_offered_by_openai_and_together() -> None:
    assert [n for n in NAMES if load_provider_class(n).capabilities.wandb_integration] == [
        "openai",
        "together",
    ]
