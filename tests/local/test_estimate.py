"""The local provider's training-time estimate and the max_training_hours refusal (issue 16).

Nothing here trains or times anything: the worker is never started (`_spawn` is replaced), and the
estimate is checked against its own formula. How close the formula comes to a measured run is
bench/bench_trainer.py --estimate's job (bench/README.md, "Issue 16").
"""

from __future__ import annotations

import json
import math
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from unitune import ConfigurationError, FineTuneClient, Hyperparameters, JobStatus, UnsupportedFeatureError
from unitune.demo.tickets import write_jsonl
from unitune.providers.local import LocalProvider, LocalSettings, TrainingEstimate, TrainingTooLongError
from unitune.providers.local import _estimate as est
from unitune.types import FileRef, JobSpec

LLAMA_8B = {"model_type": "llama", **est._KNOWN_CONFIGS["llama-3.1-8b-instruct"]}


@pytest.fixture
def big_data(tmp_path: Path) -> Path:
    """2,000 varied examples of ~600 tokens each by the estimate's count: 1.2M tokens, 2 epochs."""
    path = tmp_path / "big.jsonl"
    words = ["order", "refund", "parcel", "late", "broken", "invoice", "account", "password", "delivery"]
    with path.open("w") as fh:
        for i in range(2000):
            text = " ".join(words[(i * 7 + k * 3) % len(words)] + str(k % 97) for k in range(330))
            record = {"messages": [{"role": "user", "content": f"ticket {i}: {text}"[:2390]},
                                   {"role": "assistant", "content": "shipping"}]}  # fmt: skip
            fh.write(json.dumps(record) + "\n")
    return path


@pytest.fixture
def llama_8b(tmp_path: Path) -> Path:
    """A Llama-3.1-8B-Instruct folder with only its config: enough to size it, never loaded."""
    folder = tmp_path / "Llama-3.1-8B-Instruct"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(LLAMA_8B))
    return folder


def _provider(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **settings: object) -> LocalProvider:
    given = {"home": tmp_path / "local", "device": "cpu", "threads": 2, **settings}
    provider = LocalProvider(LocalSettings.model_validate(given))
    monkeypatch.setattr(provider, "_spawn", lambda job: None)  # no worker: nothing trains
    return provider


def test_an_8b_model_on_a_cpu_is_refused_with_the_figure_and_the_override(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, big_data: Path, llama_8b: Path
) -> None:
    provider = _provider(tmp_path, monkeypatch)
    client = FineTuneClient(provider, ledger=False)
    with pytest.raises(TrainingTooLongError) as info:
        client.create_job(model=str(llama_8b), training_data=big_data)
    error = info.value
    assert isinstance(error, ConfigurationError)
    message = str(error)
    assert "\n" not in message
    cores = min(2, os.cpu_count() or 1)
    assert message.startswith(
        f"Training Llama-3.1-8B-Instruct (8.0B parameters) on 1.2M tokens × 2 epochs on this CPU "
        f"({cores} core{'s' if cores > 1 else ''}) would take about "
    )
    assert " days, above the limit of 12 hours; nothing was started." in message
    assert "[providers.local] max_training_hours = " in message
    assert "(0 turns the check off)" in message
    assert "provider_options={'max_training_hours': " in message
    assert error.limit_hours == 12
    assert error.estimate.seconds is not None
    assert error.estimate.seconds > 2 * 24 * 3600
    assert not provider.store.jobs.exists() or not any(provider.store.jobs.iterdir())  # no job written
    again = pickle.loads(pickle.dumps(error))  # errors cross process pools
    assert str(again) == message


@pytest.mark.parametrize(
    ("settings", "options", "shown"),
    [
        ({"max_training_hours": 0}, {}, "no limit: max_training_hours = 0"),
        ({"max_training_hours": None}, {}, "no limit: max_training_hours = 0"),
        ({"max_training_hours": 10_000}, {}, "limit 10000 hours"),
        ({}, {"max_training_hours": 10_000}, "limit 10000 hours"),  # one job's own limit
        ({"max_training_hours": 1}, {"max_training_hours": 0}, "no limit: max_training_hours = 0"),
    ],
)
def test_the_limit_can_be_raised_or_turned_off(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    big_data: Path,
    llama_8b: Path,
    settings: dict[str, object],
    options: dict[str, object],
    shown: str,
) -> None:
    provider = _provider(tmp_path, monkeypatch, **settings)
    job = FineTuneClient(provider, ledger=False).create_job(
        model=str(llama_8b), training_data=big_data,
        hyperparameters=Hyperparameters(provider_options=options),
    )  # fmt: skip
    assert job.status is JobStatus.QUEUED
    events = provider.list_events(job.id)
    assert events[0].message == "job queued"
    estimate = events[1]
    assert estimate.type == "estimate"
    assert estimate.message.startswith("estimate: training Llama-3.1-8B-Instruct (8.0B parameters) on 1.2M")
    assert estimate.message.endswith(f"days ({shown})")
    assert estimate.data["params_source"] == "config.json"
    assert estimate.data["seconds"] > 2 * 24 * 3600
    spec = json.loads(provider.store.job(job.id).spec_path.read_text())
    assert spec["estimate"]["seconds"] == estimate.data["seconds"]  # the worker compares against it


@pytest.mark.parametrize("bad", [-1, "12", True])
def test_a_bad_per_job_limit_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, llama_8b: Path, bad: object
) -> None:
    provider = _provider(tmp_path, monkeypatch)
    data = write_jsonl(tmp_path / "t.jsonl", 8, seed=1)
    with pytest.raises(ConfigurationError, match="max_training_hours must be a number of hours"):
        FineTuneClient(provider, ledger=False).create_job(
            model=str(llama_8b), training_data=data,
            hyperparameters=Hyperparameters(provider_options={"max_training_hours": bad}),
        )  # fmt: skip


def test_a_small_job_passes_and_its_estimate_is_the_formula(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_model: Path
) -> None:
    provider = _provider(tmp_path, monkeypatch, threads=1)
    data = write_jsonl(tmp_path / "t.jsonl", 24, seed=3)
    valid = write_jsonl(tmp_path / "v.jsonl", 6, seed=4)
    e = provider.estimate_training(str(tiny_model), data, validation_data=valid)
    config = json.loads((tiny_model / "config.json").read_text())
    assert (e.params, e.token_params) == est.count_params(config)
    assert e.params_source == "config.json"
    assert (e.examples, e.epochs, e.device, e.units) == (24, 3, "cpu", 1)  # 3 epochs below 1,000 examples
    assert e.train_tokens == est.count_tokens(data, 1024)[1]
    assert e.valid_tokens == est.count_tokens(valid, 1024)[1]
    n = e.token_params or 0
    flops = 3 * (4 * n * e.train_tokens + 2 * n * e.valid_tokens)
    assert e.seconds == pytest.approx(est.STARTUP_SECONDS + flops / est.CPU_FLOPS_PER_CORE)
    job = FineTuneClient(provider, ledger=False).create_job(model=str(tiny_model), training_data=data)
    assert job.status is JobStatus.QUEUED
    uploaded = JobSpec(
        model=str(tiny_model), training_file=FileRef(id=job.training_file or "", provider="local")
    )
    assert provider.estimate_training_seconds(uploaded) == pytest.approx(
        provider.estimate_training_seconds(str(tiny_model), data)
    )  # a JobSpec of files uploaded here, or files on disk before any upload
    assert provider.list_events(job.id)[1].message.endswith("would take about 10 s (limit 12 hours)")


def test_the_demo_job_is_estimated_at_a_few_minutes_on_two_cores(tmp_path: Path) -> None:
    """SmolLM2-135M on the demo's 160 training tickets × 2 epochs (measured: ~4 min on 2 cores)."""
    from unitune.data import Dataset, split

    parts = split(Dataset.from_jsonl(write_jsonl(tmp_path / "tickets.jsonl", 200)), tmp_path,
                  validation_fraction=0.2, seed=0)  # fmt: skip
    e = est.estimate_training(
        "HuggingFaceTB/SmolLM2-135M-Instruct", parts.train_path, parts.validation_path, {"epochs": 2},
        {"threads": 2}, device="cpu",
    )  # fmt: skip
    assert e.token_params == 134_479_872  # the publisher's config, or the same config.json in a cache
    assert e.epochs == 2
    assert e.seconds is not None
    if e.units == 2:
        assert 120 < e.seconds < 360
    assert e.seconds < 12 * 3600


def test_epochs_follow_the_trainers_rule(tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "t.jsonl", 1200, seed=2)
    assert est.estimate_training("x-1b", data, None, {}, {}, device="cpu").epochs == 2  # 1,000-9,999
    assert est.estimate_training("x-1b", data, None, {"epochs": 5}, {}, device="cpu").epochs == 5


def test_gpus_use_the_gpu_rate_and_scale_with_processes(tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "t.jsonl", 50, seed=2)
    one = est.estimate_training("llama-3.1-8b-instruct", data, None, {}, {}, device="cuda")
    four = est.estimate_training("llama-3.1-8b-instruct", data, None, {}, {"num_processes": 4}, device="cuda")
    assert (one.units, one.flops_per_second) == (1, est.CUDA_FLOPS_PER_GPU)
    assert one.params_source == "known config"
    assert four.where() == "4 GPUs"
    assert four.seconds is not None
    assert one.seconds is not None
    assert four.seconds - est.STARTUP_SECONDS == pytest.approx((one.seconds - est.STARTUP_SECONDS) / 4)


def test_an_unknown_model_size_is_not_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(est, "_hf_cache_config", lambda repo: None)
    provider = _provider(tmp_path, monkeypatch, max_training_hours=0.001)
    data = write_jsonl(tmp_path / "t.jsonl", 8, seed=1)
    e = provider.estimate_training("someone/mystery-model", data)
    assert (e.params, e.seconds, e.params_source) == (None, None, "unknown")
    assert provider.estimate_training_seconds("someone/mystery-model", data) is None
    assert e.sentence().endswith("no time estimate (the model's size is unknown)")


def test_model_sizes_from_config_table_and_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(est, "_hf_cache_config", lambda repo: None)
    monkeypatch.setenv("UNITUNE_CACHE", str(tmp_path / "cache"))
    published = {  # the weights' parameter counts on Hugging Face (norms and biases are not counted here)
        "llama-3.2-1b-instruct": 1_235_814_400, "llama-3.2-3b-instruct": 3_212_749_824,
        "llama-3.1-8b-instruct": 8_030_261_248, "qwen2.5-7b-instruct": 7_615_616_512,
        "qwen3-8b": 8_190_735_360, "smollm2-135m-instruct": 134_515_008,
    }  # fmt: skip
    for name, size in published.items():
        sizes, source = est.model_params(f"org/{name}")
        assert source == "known config"
        assert sizes is not None
        assert sizes[0] == pytest.approx(size, rel=0.001), name
    # An untied input embedding is a lookup: a token's matrices are 8.03B less 128,256 × 4,096.
    assert est.count_params(LLAMA_8B) == (8_029_995_008, 8_029_995_008 - 128_256 * 4096)
    assert est.model_params("mistralai/Mistral-7B-Instruct-v0.3") == ((7_000_000_000,) * 2, "model name")
    assert est.model_params("org/tiny-350m")[0] == (350_000_000,) * 2
    assert est.model_params("mistralai/Mixtral-8x7B-v0.1") == (None, "unknown")  # 8x7b is not 7B
    folder = tmp_path / "cache" / "models" / "org--custom"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({**LLAMA_8B, "num_hidden_layers": 1}))
    assert est.model_params("org/custom")[1] == "config.json"  # the unitune cache's converted model
    moe = {"hidden_size": 1024, "num_hidden_layers": 2, "vocab_size": 1000, "num_attention_heads": 8,
           "intermediate_size": 512, "num_local_experts": 8, "num_experts_per_tok": 2, "tie_word_embeddings": True}  # fmt: skip
    total, per_token = est.count_params(moe) or (0, 0)
    assert total - per_token == 2 * 3 * 1024 * 512 * 6  # 6 experts a token skips, in each layer


def test_token_count_truncates_and_extrapolates(tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "t.jsonl", 400, seed=5)
    examples, tokens = est.count_tokens(data, 1024)
    assert examples == 400
    assert est.count_tokens(data, 16) == (400, 400 * 16)  # each example cut at max_seq_length
    extrapolated = est.count_tokens(data, 1024, parse_bytes=20_000)
    assert extrapolated[0] == 400
    assert extrapolated[1] == pytest.approx(tokens, rel=0.05)
    assert extrapolated[1] != tokens  # it did extrapolate


def test_format_duration() -> None:
    assert [est.format_duration(s) for s in (0.2, 40, 200, 5400, 6.5 * 3600, 20 * 3600, 6.5 * 86400, 12 * 86400)] == [
        "1 s", "40 s", "3 min", "1.5 hours", "6.5 hours", "20 hours", "6.5 days", "12 days",
    ]  # fmt: skip


def test_the_estimate_does_not_import_torch_on_a_cpu(tmp_path: Path) -> None:
    if est._gpu_driver_present():
        pytest.skip("a GPU driver is present: 'auto' asks torch, as it should")
    data = write_jsonl(tmp_path / "t.jsonl", 8, seed=1)
    code = (
        "import sys\n"
        "from unitune.providers.local import LocalProvider, LocalSettings\n"
        f"p = LocalProvider(LocalSettings(home={str(tmp_path / 'h')!r}))\n"
        f"e = p.estimate_training('llama-3.2-1b-instruct', {str(data)!r})\n"
        "assert e.device == 'cpu' and e.seconds, e\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


def test_the_estimate_type_is_exported() -> None:
    assert TrainingEstimate is est.TrainingEstimate
    assert math.isclose(LocalSettings().max_training_hours or 0, 12)


# -- what the create refuses is refused before anything is copied or started ------------------------

_REFUSED = [
    pytest.param({"learning_rate_multiplier": 0.5}, UnsupportedFeatureError, "learning_rate_multiplier",
                 id="learning_rate_multiplier"),
    pytest.param({"provider_options": {"nope": 1}}, UnsupportedFeatureError, "'nope'", id="unknown-option"),
    pytest.param({"provider_options": {"max_training_hours": "12"}}, ConfigurationError,
                 "max_training_hours must be a number of hours", id="bad-limit"),
]  # fmt: skip


@pytest.mark.parametrize(("hp", "error", "match"), _REFUSED)
def test_what_the_create_refuses_is_refused_before_the_upload(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hp: dict[str, object], error: type[Exception], match: str
) -> None:
    provider = _provider(tmp_path, monkeypatch)
    data = write_jsonl(tmp_path / "t.jsonl", 8, seed=1)
    with pytest.raises(error, match=match):
        FineTuneClient(provider, ledger=False).create_job(
            model="HuggingFaceTB/SmolLM2-135M-Instruct", training_data=data, validation_data=data,
            hyperparameters=hp,
        )  # fmt: skip
    assert not provider.store.files.exists() or not any(provider.store.files.iterdir())  # nothing copied
    assert not provider.store.jobs.exists() or not any(provider.store.jobs.iterdir())


@pytest.mark.parametrize(("hp", "error", "match"), _REFUSED)
def test_check_job_with_the_stand_in_refuses_as_the_create_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hp: dict[str, object], error: type[Exception], match: str
) -> None:
    stand_in = FileRef(id="unitune-check", provider="local")
    model = "HuggingFaceTB/SmolLM2-135M-Instruct"
    # Built from a config section, as the fake builds the provider it impersonates.
    bare = LocalProvider.from_config({"home": str(tmp_path / "elsewhere")})
    with pytest.raises(error, match=match) as checked:
        bare.check_job(JobSpec(model=model, training_file=stand_in, validation_file=stand_in,
                               hyperparameters=Hyperparameters(**hp)))  # fmt: skip
    provider = _provider(tmp_path, monkeypatch)
    ref = FineTuneClient(provider, ledger=False).upload(write_jsonl(tmp_path / "t.jsonl", 8, seed=1))
    with pytest.raises(error) as created:
        provider.create_job(JobSpec(model=model, training_file=ref, hyperparameters=Hyperparameters(**hp)),
                            idempotency_key="k")  # fmt: skip
    assert str(created.value) == str(checked.value)
    assert not provider.store.jobs.exists() or not any(provider.store.jobs.iterdir())


def test_the_estimate_needs_the_data_so_the_stand_in_skips_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, big_data: Path, llama_8b: Path
) -> None:
    provider = _provider(tmp_path, monkeypatch)
    stand_in = FileRef(id="unitune-check", provider="local")
    provider.check_job(JobSpec(model=str(llama_8b), training_file=stand_in, validation_file=stand_in))
    # Once the data is in the store (the local upload is only a copy), check_job makes the estimate.
    ref = FineTuneClient(provider, ledger=False).upload(big_data)
    with pytest.raises(TrainingTooLongError) as checked:
        provider.check_job(JobSpec(model=str(llama_8b), training_file=ref))
    with pytest.raises(TrainingTooLongError) as created:
        provider.create_job(JobSpec(model=str(llama_8b), training_file=ref), idempotency_key="k")
    assert str(created.value) == str(checked.value)
    assert not provider.store.jobs.exists() or not any(provider.store.jobs.iterdir())


def test_check_job_and_create_job_make_one_estimate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, llama_8b: Path
) -> None:
    provider = _provider(tmp_path, monkeypatch)
    made: list[str] = []
    real = provider._estimate

    def counted(model: str, *args: object) -> TrainingEstimate:
        made.append(model)
        return real(model, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(provider, "_estimate", counted)
    data = write_jsonl(tmp_path / "t.jsonl", 8, seed=1)
    job = FineTuneClient(provider, ledger=False).create_job(model=str(llama_8b), training_data=data)
    assert job.status is JobStatus.QUEUED
    assert made == [str(llama_8b)]
