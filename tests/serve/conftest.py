"""Fixtures for `unitune serve`'s tests: the demo model and two tiny LoRA adapters over it, loaded
once per module, and OpenAI's OpenAPI schemas to check the server's answers against.

The adapters are made here with peft (random, non-zero B weights, so each answers differently
from the base and from the other); one is served by its folder, the other as a local job's adapter
(`local:ftjob-serve-b`, in the layout the local provider keeps). A copy with its weights cut short
is the corrupt adapter.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._openapi import Check, openai_schema_check

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("openai")

from unitune.serve._backends import ServedModels, TransformersBackend

DEMO = "HuggingFaceTB/SmolLM2-135M-Instruct"
ALIAS = "smollm2-135m-instruct"
JOB = "ftjob-serve-b"


def _demo_model() -> Path:
    """The demo model's folder, if it is on this machine already (never fetched by the tests)."""
    from unitune.config import cache_dir
    from unitune.providers.local._models import _from_hf_cache

    found = _from_hf_cache(DEMO)
    converted = cache_dir() / "models" / DEMO.replace("/", "--")
    if found is None and (converted / ".complete").is_file():
        found = converted
    if found is None:
        why = f"{DEMO} is not on this machine"
        if os.environ.get("CI"):  # `make test` fetches it first: a skip in CI would hide the server's tests
            pytest.fail(f"{why}; make test fetches it (the model target of the Makefile).")
        pytest.skip(f"{why} (make test fetches it, or put it in the Hugging Face cache)")
    return found


def _make_adapters(base: Path, out: Path) -> tuple[Path, Path]:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    peft = get_peft_model(
        model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
    )
    folders = []
    for seed in (1, 2):
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for name, param in peft.named_parameters():
                if "lora_B" in name:  # B starts at zero (a no-op adapter): make it change the answers
                    param.copy_(torch.randn(param.shape, generator=generator) * 0.3)
        folder = out / f"adapter-{seed}"
        peft.save_pretrained(str(folder))
        folders.append(folder)
    return folders[0], folders[1]


def _local_job(home: Path, base: Path, adapter: Path) -> None:
    """A succeeded local job whose adapter is `adapter`, as the local provider lays it out."""
    job = home / "local" / "jobs" / JOB
    job.mkdir(parents=True)
    (job / "spec.json").write_text(json.dumps({"model": DEMO}))
    (job / "state.json").write_text(
        json.dumps({"status": "succeeded", "base_path": str(base), "fine_tuned_model": f"local:{JOB}"})
    )
    shutil.copytree(adapter, job / "adapter")


class Local:
    """The module's loaded models and where they came from."""

    def __init__(self, served: ServedModels, base: Path, adapter_a: Path, corrupt: Path) -> None:
        self.served = served
        self.base = base
        self.adapter_a = str(adapter_a)
        self.adapter_b = f"local:{JOB}"
        self.corrupt = str(corrupt)
        backend = served.routes[DEMO]
        assert isinstance(backend, TransformersBackend)
        self.backend = backend


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Local]:
    """The demo model (by id and by alias), adapter A (by folder), adapter B (a local job) over the
    one loaded base, and a corrupt adapter folder that fails to load."""
    pytest.importorskip("torch")
    pytest.importorskip("peft")
    root = tmp_path_factory.mktemp("serve-models")
    base = _demo_model()
    adapter_a, adapter_b = _make_adapters(base, root)
    home = root / "home"
    _local_job(home, base, adapter_b)
    corrupt = root / "corrupt-adapter"
    shutil.copytree(adapter_a, corrupt)
    weights = corrupt / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("UNITUNE_HOME", str(home))
        mp.setenv("HF_HUB_OFFLINE", "1")
        served = ServedModels.load(
            [DEMO, ALIAS, str(adapter_a), f"local:{JOB}", str(corrupt)], batch_wait_ms=50, max_batch_size=8
        )
    try:
        yield Local(served, base, adapter_a, corrupt)
    finally:
        served.close()


@pytest.fixture(scope="session")
def openapi() -> Check:
    """`openapi("CreateChatCompletionResponse", body)`: raises unless `body` fits that schema of OpenAI's spec."""
    return openai_schema_check()
