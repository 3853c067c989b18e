"""Fixtures for the export tests: the offline SmolLM2-135M-Instruct and a finished local job on it
whose LoRA adapter is made in seconds with peft (random, non-zero B matrices, so merging changes the
outputs) instead of minutes of training."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("peft")
pytest.importorskip("gguf")

from unitune.providers.local import LocalProvider, LocalSettings
from unitune.providers.local._store import JobState, Store

HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
JOB_ID = "ftjob-local-20261207-000000-e0e0e0"


@dataclass(frozen=True)
class Job:
    """A finished local job: its provider home, id and model name."""

    home: Path
    id: str
    base: Path

    @property
    def model(self) -> str:
        return f"local:{self.id}"

    @property
    def adapter(self) -> Path:
        return self.home / "jobs" / self.id / "adapter"

    def provider(self) -> LocalProvider:
        return LocalProvider(LocalSettings(home=self.home, device="cpu"))


@pytest.fixture(scope="session")
def smol_base() -> Path:
    """The base model folder, resolved before the per-test isolation moves the unitune cache."""
    from unitune.providers.local._models import resolve_model_path

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")  # a test never downloads the model
        try:
            return resolve_model_path(HUB_ID)
        except Exception as e:  # not on this machine: nothing to export
            if os.environ.get("CI"):  # `make test` fetches it first: a skip in CI would hide these tests
                pytest.fail(f"{HUB_ID} is not available offline: {e}; make test fetches it.")
            pytest.skip(f"{HUB_ID} is not available offline: {e}")


def make_job(home: Path, base: Path, adapter_from: Path | None = None, *, job_id: str = JOB_ID,
             system: str | None = None) -> Job:  # fmt: skip
    """A succeeded job under `home` (a LocalProvider home) with an adapter: a copy of
    `adapter_from`, or a new random LoRA adapter on `base`."""
    job = Store(home).job(job_id)
    job.path.mkdir(parents=True)
    training = home / "files" / "file-local-train.jsonl"
    training.parent.mkdir(parents=True, exist_ok=True)
    head = [{"role": "system", "content": system}] if system else []
    rows = [{"messages": [*head, {"role": "user", "content": f"Ticket {i}"},
                          {"role": "assistant", "content": "billing"}]} for i in range(4)]  # fmt: skip
    training.write_text("".join(json.dumps(r) + "\n" for r in rows), "utf-8")
    spec = {"model": HUB_ID, "training_file": "file-local-train", "training_path": str(training),
            "hyperparameters": {}, "idempotency_key": job_id}  # fmt: skip
    job.spec_path.write_text(json.dumps(spec), "utf-8")
    job.write_state(JobState(status="succeeded", fine_tuned_model=f"local:{job_id}", base_path=str(base)))
    if adapter_from is not None:
        shutil.copytree(adapter_from, job.adapter_path)
    else:
        _random_adapter(base, job.adapter_path)
    return Job(home, job_id, base)


def _random_adapter(base: Path, out: Path) -> None:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    config = LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", task_type="CAUSAL_LM")
    peft_model = get_peft_model(model, config)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:  # B starts at zero (a no-op adapter); this one must change the model
                param.normal_(0.0, 0.02)
    peft_model.save_pretrained(out)


@pytest.fixture(scope="session")
def job(smol_base: Path, tmp_path_factory: pytest.TempPathFactory) -> Job:
    return make_job(tmp_path_factory.mktemp("export") / "local", smol_base)
