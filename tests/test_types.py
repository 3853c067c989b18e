from __future__ import annotations

import pytest
from pydantic import ValidationError

from unitune import Capabilities, FileRef, Hyperparameters, JobSpec, JobStatus, Message, Usage


@pytest.mark.parametrize(
    ("status", "terminal"),
    [
        (JobStatus.VALIDATING, False),
        (JobStatus.QUEUED, False),
        (JobStatus.RUNNING, False),
        (JobStatus.PAUSED, False),
        (JobStatus.CANCELLING, False),
        (JobStatus.SUCCEEDED, True),
        (JobStatus.FAILED, True),
        (JobStatus.CANCELLED, True),
    ],
)
def test_is_terminal(status: JobStatus, terminal: bool) -> None:
    assert status.is_terminal is terminal


def test_every_status_is_classified() -> None:
    assert {s.value for s in JobStatus} == {
        "validating", "queued", "running", "paused", "cancelling", "succeeded", "failed", "cancelled",
    }  # fmt: skip


def test_hyperparameters_refuse_unknown_and_bad_values() -> None:
    with pytest.raises(ValidationError, match="n_epochs"):
        Hyperparameters(n_epochs=3)  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        Hyperparameters(epochs=0)
    with pytest.raises(ValidationError):
        Hyperparameters(learning_rate=-1.0)
    hp = Hyperparameters(epochs=3, lora_rank=8, provider_options={"packing": True})
    assert hp.set_fields() == {"epochs": 3, "lora_rank": 8}


def _spec(**kw: object) -> JobSpec:
    ref = FileRef(id="file-1", provider="fake", sha256="abc")
    return JobSpec(model="m", training_file=ref, **kw)  # type: ignore[arg-type]


def test_spec_hash_is_stable_and_sensitive() -> None:
    assert _spec().spec_hash() == _spec().spec_hash()
    assert _spec().spec_hash() != _spec(hyperparameters=Hyperparameters(epochs=2)).spec_hash()
    assert _spec().spec_hash() != _spec(suffix="x").spec_hash()
    # Files count by content: another id with the same bytes is the same job.
    other = JobSpec(model="m", training_file=FileRef(id="file-2", provider="fake", sha256="abc"))
    assert other.spec_hash() == _spec().spec_hash()


def test_message_roles_and_weight() -> None:
    assert Message(role="assistant", content="x", weight=0).weight == 0
    with pytest.raises(ValidationError):
        Message(role="robot", content="x")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        Message(role="assistant", content="x", weight=2)  # type: ignore[arg-type]


def test_usage_total_and_capability_notes() -> None:
    assert Usage(prompt_tokens=3, completion_tokens=4).total_tokens == 7
    assert Capabilities(notes={"events": "derived"}).flags()["events"] is True
    with pytest.raises(ValidationError, match="unknown capabilities"):
        Capabilities(notes={"teleport": "no"})
