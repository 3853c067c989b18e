"""`unitune gateway` over the local trainer: the unmodified `openai` SDK uploads a file, fine-tunes
SmolLM2-135M-Instruct for real (LoRA, CPU), polls the job to its end, chats with the tuned model and
downloads the result file, all through the gateway. The fake provider's tests (`test_gateway.py`)
cover the API's shapes; this one shows that a real training worker behind it keeps them.

A small run: 10 tickets, 1 epoch, one batch (one optimizer step), short sequences. The model is read
offline; where it is missing the test skips, except under CI (`CI` set), where a skip would hide a
broken gateway, so it fails."""

from __future__ import annotations

import csv
import io
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("peft")
openai = pytest.importorskip("openai")

from pydantic import SecretStr  # noqa: E402

from unitune.config import UnituneConfig  # noqa: E402
from unitune.demo.tickets import write_jsonl  # noqa: E402
from unitune.gateway import GatewayConfig, GatewayServer, start_gateway  # noqa: E402

HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
KEY = "sk-gateway-local-0123456789"
# The OpenAI name a client asks for; the gateway maps it to the base model's folder on the local trainer.
MAPPED = "gpt-4o-mini-2024-07-18"
EXAMPLES = 10


@pytest.fixture(scope="session")
def smol_base() -> Path:
    """The base model's folder, resolved before the per-test isolation points the unitune cache
    (where a converted copy may live) at an empty folder."""
    from unitune.providers.local._models import resolve_model_path

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")  # a test never downloads the model
        try:
            return resolve_model_path(HUB_ID)
        except Exception as e:
            why = f"{HUB_ID} is not available offline: {e}"
            if os.environ.get("CI"):
                pytest.fail(
                    f"{why}; CI must run the gateway's local-trainer test (put the model in its cache)."
                )
            pytest.skip(why)


@pytest.fixture
def gateway(smol_base: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[GatewayServer]:
    # The training worker is a child process: it inherits this environment, so it stays offline too.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    local = {"home": str(tmp_path / "local"), "device": "cpu", "max_seq_length": 128}
    config = GatewayConfig(
        provider="local", port=0, api_keys=(SecretStr(KEY),), models={MAPPED: f"local:{smol_base}"},
        home=tmp_path / "home", unitune_config=UnituneConfig(providers={"local": local}),
    )  # fmt: skip
    with start_gateway(config) as server:
        yield server


def test_the_openai_sdk_fine_tunes_and_chats_on_the_local_trainer(
    gateway: GatewayServer, tmp_path: Path
) -> None:
    client: Any = openai.OpenAI(base_url=gateway.url, api_key=KEY, max_retries=0, timeout=60)
    data = write_jsonl(tmp_path / "tickets.jsonl", EXAMPLES, seed=3)
    uploaded = client.files.create(file=("tickets.jsonl", data.read_bytes()), purpose="fine-tune")
    job = client.fine_tuning.jobs.create(
        model=MAPPED, training_file=uploaded.id, suffix="tickets", seed=1,
        method={"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 1, "batch_size": EXAMPLES}}},
    )  # fmt: skip
    assert job.status in ("validating_files", "queued", "running")  # create returns at once; a worker trains

    deadline = time.monotonic() + 240
    while job.status not in ("succeeded", "failed", "cancelled"):
        assert time.monotonic() < deadline, f"job {job.id} still {job.status}"
        time.sleep(0.5)
        job = client.fine_tuning.jobs.retrieve(job.id)
    assert job.status == "succeeded", job.error
    assert job.fine_tuned_model
    assert job.trained_tokens
    assert job.hyperparameters.n_epochs == 1

    events = [e.message for e in client.fine_tuning.jobs.list_events(job.id, limit=100)]
    assert "job succeeded" in events

    reply = client.chat.completions.create(
        model=job.fine_tuned_model, messages=[{"role": "user", "content": "My order #12345 is late"}],
        max_completion_tokens=8,
    )  # fmt: skip
    assert reply.model == job.fine_tuned_model
    assert reply.choices[0].message.role == "assistant"
    assert reply.usage is not None
    assert 0 < reply.usage.completion_tokens <= 8

    assert len(job.result_files) == 1
    result = client.files.retrieve(job.result_files[0])
    assert result.purpose == "fine-tune-results"
    rows = list(csv.DictReader(io.StringIO(client.files.content(result.id).text)))
    assert [row["step"] for row in rows] == ["1"]  # 10 examples in one batch, one epoch: one step
    assert float(rows[0]["train_loss"]) > 0
