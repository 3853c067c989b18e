"""The local provider: real training of a tiny model in a detached worker, end to end."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from unitune import FineTuneClient, Hyperparameters, JobFailedError, JobStatus, NotFoundError
from unitune.data import Dataset
from unitune.demo.tickets import write_jsonl
from unitune.providers.local import STATUS_MAP, LocalProvider, LocalSettings
from unitune.providers.local._train import MaskError, encode_chat

S = JobStatus


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "tickets.jsonl", 24, seed=3)


@pytest.fixture
def provider(tmp_path: Path) -> LocalProvider:
    return LocalProvider(LocalSettings(home=tmp_path / "local", threads=1))


def _client(provider: LocalProvider) -> FineTuneClient:
    return FineTuneClient(provider, ledger=False)


def _wait_until(predicate: object, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.2)
    raise AssertionError("condition not reached in time")


def test_status_map_value_by_value() -> None:
    assert STATUS_MAP == {
        "queued": S.QUEUED, "running": S.RUNNING, "cancelling": S.CANCELLING,
        "succeeded": S.SUCCEEDED, "failed": S.FAILED, "cancelled": S.CANCELLED,
    }  # fmt: skip


def test_lifecycle_restart_and_chat(
    tiny_model: Path, provider: LocalProvider, data: Path, tmp_path: Path
) -> None:
    client = _client(provider)
    job = client.create_job(
        model=str(tiny_model), training_data=data, validation_data=data,
        hyperparameters=Hyperparameters(epochs=2, learning_rate=2e-3, batch_size=8), idempotency_key="k1",
    )  # fmt: skip
    assert job.status in (S.QUEUED, S.RUNNING)  # create returns at once; a worker trains
    done = client.wait(job, poll_interval=0.3, timeout=240)
    assert done.fine_tuned_model == f"local:{job.id}"
    assert done.trained_tokens is not None
    assert done.trained_tokens > 0
    # A new provider on the same home (another process, after a restart) sees the same job.
    again = LocalProvider(LocalSettings(home=tmp_path / "local"))
    assert again.get_job(job.id).status is S.SUCCEEDED
    assert [j.id for j in again.list_jobs()] == [job.id]
    assert again.find_job("k1") is not None
    metrics = again.list_metrics(job.id)
    train_steps = [m for m in metrics if m.train_loss is not None]
    assert [m.step for m in train_steps] == [1, 2, 3, 4, 5, 6]  # 24 examples / 8 × 2 epochs
    valid = [m for m in metrics if m.valid_loss is not None]
    assert [m.epoch for m in valid] == [1.0, 2.0]
    messages = [e.message for e in again.list_events(job.id)]
    assert messages[0] == "job queued"
    assert messages[-1] == "job succeeded"
    assert any("validation loss" in m for m in messages)
    reply = client.chat(done.fine_tuned_model or "", "My order #12345 is late", max_new_tokens=8)
    assert reply.usage.prompt_tokens > 0
    assert 0 < reply.usage.completion_tokens <= 8
    base = client.chat(str(tiny_model), "My order is late", max_new_tokens=4)
    assert base.provider == "local"
    with pytest.raises(NotFoundError):
        client.get_job("ftjob-local-nope")


def test_cancel_stops_the_worker(tiny_model: Path, provider: LocalProvider, data: Path) -> None:
    client = _client(provider)
    job = client.create_job(model=str(tiny_model), training_data=data,
                            hyperparameters=Hyperparameters(epochs=200, batch_size=1))  # fmt: skip
    _wait_until(lambda: provider.list_metrics(job.id))  # training has started
    assert client.cancel_job(job).status in (S.CANCELLING, S.CANCELLED)
    with pytest.raises(JobFailedError) as info:
        client.wait(job, poll_interval=0.3, timeout=60)
    assert info.value.job.status is S.CANCELLED
    pid = int((provider.store.job(job.id).path / "pid").read_text().split()[0])
    # The worker exits, and this client (its parent) reaps it: no process and no zombie remain.
    _wait_until(lambda: (provider.get_job(job.id), not Path(f"/proc/{pid}").exists())[1])
    assert any(e.message.startswith("job cancelled") for e in client.events(job))


def test_cancel_before_the_worker_starts_training(
    tiny_model: Path, provider: LocalProvider, data: Path
) -> None:
    client = _client(provider)
    job = client.create_job(model=str(tiny_model), training_data=data)
    client.cancel_job(job)  # the worker is still importing torch: the cancel file must still win
    with pytest.raises(JobFailedError) as info:
        client.wait(job, poll_interval=0.3, timeout=60)
    assert info.value.job.status is S.CANCELLED
    assert provider.list_metrics(job.id) == []
    assert "job succeeded" not in [e.message for e in client.events(job)]


def test_a_dead_worker_is_failed_with_its_log(tiny_model: Path, provider: LocalProvider, data: Path) -> None:
    client = _client(provider)
    job = client.create_job(model=str(tiny_model), training_data=data,
                            hyperparameters=Hyperparameters(epochs=200, batch_size=1))  # fmt: skip
    _wait_until(lambda: provider.list_metrics(job.id))
    pid = int((provider.store.job(job.id).path / "pid").read_text().split()[0])
    os.kill(pid, signal.SIGKILL)
    _wait_until(lambda: client.get_job(job).status is S.FAILED, timeout=30)
    failed = client.get_job(job)
    assert failed.error is not None
    assert "exited unexpectedly" in failed.error
    assert any(e.level == "error" for e in client.events(job))


def test_a_failing_job_reports_the_error(
    tiny_model: Path, provider: LocalProvider, data: Path, tmp_path: Path
) -> None:
    import shutil

    bogus = tmp_path / "not-a-model"
    shutil.copytree(tiny_model, bogus)  # a good tokenizer, a broken model config
    (bogus / "config.json").write_text(json.dumps({"model_type": "nonsense"}))
    client = _client(provider)
    job = client.create_job(model=str(bogus), training_data=data)
    with pytest.raises(JobFailedError) as info:
        client.wait(job, poll_interval=0.3, timeout=120)
    error = info.value.job.error or ""
    assert "nonsense" in error  # the worker's own exception text, e.g. "ValueError: ... nonsense ..."
    assert any(e.level == "error" and "job failed" in e.message for e in client.events(job))


def test_masking_labels_only_assistant_tokens(tiny_model: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model)
    messages = [
        {"role": "system", "content": "Triage tickets."},
        {"role": "user", "content": "My order is late"},
        {"role": "assistant", "content": "Sorry about that", "weight": 0},
        {"role": "user", "content": "Still late"},
        {"role": "assistant", "content": '{"category": "shipping"}'},
    ]
    ids, labels = encode_chat(tok, messages, max_len=512)
    assert len(ids) == len(labels)
    trained = tok.decode([i for i, lab in zip(ids, labels, strict=True) if lab != -100])
    assert trained == '{"category": "shipping"}<|im_end|>\n'  # the weighted turn only, with its end token
    untrained = tok.decode([i for i, lab in zip(ids, labels, strict=True) if lab == -100])
    assert "Sorry about that" in untrained
    assert "My order is late" in untrained


def test_mask_refuses_an_inconsistent_template(tiny_model: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model)
    # A template that renders a conversation's last turn differently from earlier ones.
    tok.chat_template = "{% for m in messages %}{{ m['content'] }}{% if loop.last %}!{% endif %}{% endfor %}"
    with pytest.raises(MaskError):
        encode_chat(
            tok, [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}], max_len=64
        )


def test_adapter_save_load_equivalence(
    tiny_model: Path, provider: LocalProvider, data: Path, tmp_path: Path
) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    client = _client(provider)
    job = client.wait(
        client.create_job(model=str(tiny_model), training_data=data,
                          hyperparameters=Hyperparameters(epochs=1, learning_rate=5e-3)),
        poll_interval=0.3, timeout=240,
    )  # fmt: skip
    adapter = provider.store.job(job.id).adapter_path
    merged = provider.merge(job.id, tmp_path / "merged")
    ids = torch.tensor([[5, 17, 42, 99, 7]])
    with torch.no_grad():
        base = AutoModelForCausalLM.from_pretrained(tiny_model)
        base_logits = base(ids).logits
        peft_logits = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model), adapter)(
            ids
        ).logits
        merged_logits = AutoModelForCausalLM.from_pretrained(merged)(ids).logits
    assert torch.allclose(peft_logits, merged_logits, atol=1e-4)
    assert not torch.allclose(base_logits, peft_logits, atol=1e-4)  # training changed something


def test_validation_profile_and_format(provider: LocalProvider) -> None:
    assert provider.dataset_profile == "local"
    report = FineTuneClient(provider, ledger=False).validate(Dataset.from_records(
        [{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}]
    ))  # fmt: skip
    assert report.ok


def test_loss_on_kept_logits_equals_the_models_own_loss(tiny_model: Path) -> None:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from unitune.providers.local._train import _accepts_logits_to_keep, causal_lm_loss

    tok = AutoTokenizer.from_pretrained(tiny_model)
    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(tiny_model),
        LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", task_type="CAUSAL_LM"),
    )
    assert _accepts_logits_to_keep(model)
    rows = [
        [{"role": "user", "content": "My order is late"}, {"role": "assistant", "content": "shipping"}],
        [{"role": "user", "content": "Refund please, the item broke on day one"},
         {"role": "assistant", "content": '{"category": "billing", "priority": "high"}'}],
    ]  # fmt: skip
    items = [encode_chat(tok, r, 256) for r in rows]
    width = max(len(i) for i, _ in items)
    ids = torch.zeros((2, width), dtype=torch.long)
    labels = torch.full((2, width), -100, dtype=torch.long)
    mask = torch.zeros((2, width), dtype=torch.long)
    for row, (i, lab) in enumerate(items):
        ids[row, : len(i)], labels[row, : len(lab)], mask[row, : len(i)] = (
            torch.tensor(i),
            torch.tensor(lab),
            1,
        )
    with torch.no_grad():
        full = causal_lm_loss(model, ids, labels, mask, device="cpu", bf16=False, keep_logits=False)
        kept = causal_lm_loss(model, ids, labels, mask, device="cpu", bf16=False, keep_logits=True)
        unmasked = model(input_ids=ids, attention_mask=mask, labels=ids).loss
    assert torch.allclose(full, kept, atol=1e-5)
    assert not torch.allclose(full, unmasked, atol=1e-3)  # the comparison can tell losses apart


def test_length_grouped_batches_cover_every_example_once() -> None:
    import random

    from unitune.providers.local._train import _length_grouped

    lengths = [(i * 7919) % 997 + 3 for i in range(1000)]
    batches = _length_grouped(lengths, 8, random.Random(0))
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(1000))
    assert all(len(b) <= 8 for b in batches)
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches) / len(batches)
    assert spread < 50  # sorted within groups of 400: neighbours differ little (random batches: ~700)
    assert batches != _length_grouped(lengths, 8, random.Random(1))  # the seed changes the order


def test_data_parallel_training_on_two_cpu_processes(tiny_model: Path, data: Path, tmp_path: Path) -> None:
    """`num_processes = 2` starts two workers with torch.distributed.run and Accelerate (gloo on CPU
    here; NCCL on GPUs): both ranks train, rank 0 alone writes the job, and its adapter works."""
    pytest.importorskip("accelerate")
    provider = LocalProvider(LocalSettings(home=tmp_path / "local", device="cpu", num_processes=2))
    assert provider._worker_command(provider.store.job("x"))[:3] == [
        sys.executable,
        "-m",
        "torch.distributed.run",
    ]
    client = _client(provider)
    job = client.create_job(model=str(tiny_model), training_data=data, validation_data=data,
                            hyperparameters=Hyperparameters(epochs=2, learning_rate=5e-3, batch_size=4))  # fmt: skip
    done = client.wait(job, poll_interval=0.5, timeout=300)
    assert done.status is S.SUCCEEDED, provider.store.job(job.id).log_tail()
    events = [e.message for e in client.events(job)]
    assert any("2 processes (data-parallel)" in m for m in events)
    assert sum(m.startswith("saved the LoRA adapter") for m in events) == 1  # rank 0 only
    metrics = client.metrics(job)
    steps = [m.step for m in metrics if m.train_loss is not None]
    assert steps == list(range(1, len(steps) + 1))  # one row per step, not one per rank
    assert len(steps) == 2 * 3  # 24 examples / batch 4 = 6 batches, 3 per rank, × 2 epochs
    assert [m.valid_loss is not None for m in metrics].count(True) == 2
    assert client.chat(done.fine_tuned_model or "", "My order is late", max_new_tokens=4).content is not None
