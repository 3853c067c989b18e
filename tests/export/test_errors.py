"""What an export refuses, and how: every refusal is a `UnituneError` that names the fix, and a
refused or failed export leaves the file system as it was."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from unitune import FineTuneClient
from unitune.errors import ConfigurationError, NotFoundError, UnsupportedFeatureError
from unitune.export import _WRITERS, export_model

from .conftest import Job, make_job


def _siblings(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A folder of its own (the shared set-up puts home/ and work/ in tmp_path)."""
    folder = tmp_path / "exports"
    folder.mkdir()
    return folder


def test_an_existing_path_is_refused_unless_overwrite(job: Job, root: Path) -> None:
    tmp_path = root
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(ConfigurationError, match="already exists and is not empty") as info:
        export_model(job.provider(), job.model, "peft", out)
    assert "overwrite=True" in str(info.value)
    assert "--force" in str(info.value)
    assert _siblings(out) == {"keep.txt"}

    (tmp_path / "empty").mkdir()  # an empty folder is as good as none
    export_model(job.provider(), job.model, "peft", tmp_path / "empty")
    result = export_model(job.provider(), job.model, "peft", out, overwrite=True)
    assert "keep.txt" not in _siblings(out)
    assert "adapter_config.json" in _siblings(out)
    assert _siblings(tmp_path) == {"out", "empty"}  # no staging or backup folder left behind
    assert all(p.parent == out for p in result.files)


def test_a_failed_export_leaves_the_old_folder_and_no_partial_one(
    job: Job, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tmp_path = root
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")

    def half_then_fail(source: object, stage: Path, dtype: object, system: object) -> list[str]:
        (stage / "model.gguf").write_bytes(b"GGUF half")
        raise OSError(28, "No space left on device")

    monkeypatch.setitem(_WRITERS, "gguf", half_then_fail)
    with pytest.raises(OSError, match="No space left"):
        export_model(job.provider(), job.model, "gguf", out, overwrite=True)
    assert _siblings(tmp_path) == {"out"}
    assert _siblings(out) == {"keep.txt"}


@pytest.mark.parametrize(
    ("damage", "words"),
    [
        (lambda a: (a / "adapter_config.json").unlink(), "adapter_config.json is missing"),
        (lambda a: (a / "adapter_config.json").write_text("{not json"), "adapter_config.json cannot be read"),
        (lambda a: (a / "adapter_model.safetensors").unlink(), "no adapter_model.safetensors"),
        (lambda a: (a / "adapter_model.safetensors").write_bytes(b"\x00" * 3), "is empty or cut short"),
        (lambda a: (a / "adapter_model.safetensors").write_bytes(b"garbage!" * 64), "bad header length"),
        (lambda a: _truncate(a / "adapter_model.safetensors"), "cut short"),
    ],
)  # fmt: skip
def test_a_corrupt_adapter_folder_is_named_with_the_fix(
    job: Job, tmp_path: Path, damage: object, words: str
) -> None:
    broken = make_job(tmp_path / "local", job.base, job.adapter, job_id="ftjob-local-20261207-000001-bad000")
    damage(broken.adapter)  # type: ignore[operator]
    for fmt in ("peft", "merged"):
        with pytest.raises(ConfigurationError) as info:
            export_model(broken.provider(), broken.model, fmt, tmp_path / fmt)  # type: ignore[arg-type]
        message = str(info.value)
        assert str(broken.adapter) in message, message
        assert words in message, message
        assert "Train the job again" in message
        assert not (tmp_path / fmt).exists()


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_bad_arguments(job: Job, smol_base: Path, tmp_path: Path) -> None:
    provider = job.provider()
    with pytest.raises(ConfigurationError, match=r"Unknown export format 'onnx'.*peft, merged, gguf, ollama"):
        export_model(provider, job.model, "onnx", tmp_path / "x")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="Unknown export dtype 'q4'"):
        export_model(provider, job.model, "gguf", tmp_path / "x", dtype="q4")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="A system prompt is for the Modelfile of an ollama export"):
        export_model(provider, job.model, "gguf", tmp_path / "x", system="Be brief.")
    with pytest.raises(ConfigurationError, match="takes no dtype"):
        export_model(provider, job.model, "peft", tmp_path / "x", dtype="f16")
    with pytest.raises(ConfigurationError, match="is a base model: a peft export needs a tuned one") as info:
        export_model(provider, str(smol_base), "peft", tmp_path / "x")
    assert "--format merged, gguf or ollama" in str(info.value)
    with pytest.raises(NotFoundError, match="No local fine-tuning job 'ftjob-local-nope'"):
        export_model(provider, "local:ftjob-local-nope", "peft", tmp_path / "x")
    with pytest.raises(ConfigurationError, match="overlaps"):
        export_model(provider, job.model, "peft", job.adapter / "inside", overwrite=True)
    assert not (tmp_path / "x").exists()


def test_a_bare_job_id_is_the_local_model(job: Job, tmp_path: Path) -> None:
    result = export_model(job.provider(), job.id, "peft", tmp_path / "out")
    assert result.model == job.model


def test_a_non_llama_model_cannot_become_gguf(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import unitune.export as export

    tmp_path = root
    from tokenizers import Tokenizer, models
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    base = tmp_path / "gpt2"
    config = GPT2Config(vocab_size=16, n_positions=32, n_embd=8, n_layer=1, n_head=2)
    GPT2LMHeadModel(config).save_pretrained(base)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.BPE()), eos_token="<e>")
    tokenizer.save_pretrained(base)
    provider = Job(tmp_path / "local", "-", base).provider()
    monkeypatch.setattr(export, "_load", lambda source: pytest.fail("refused only after loading the model"))
    with pytest.raises(
        UnsupportedFeatureError, match="GGUF export of the GPT2LMHeadModel architecture"
    ) as info:
        export_model(provider, str(base), "gguf", tmp_path / "out")
    assert "--format merged" in str(info.value)
    assert "convert_hf_to_gguf.py" in str(info.value)
    assert _siblings(tmp_path) == {"gpt2"}  # nothing written, no staging folder left


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("together", "together lets you download the tuned weights: Download them with the Together SDK"),
        ("openai", "openai does not let you download tuned weights: OpenAI keeps fine-tuned models"),
        ("bedrock", "bedrock does not let you download tuned weights: Bedrock keeps custom models"),
        ("fake", "fake does not let you download tuned weights"),
    ],
)
def test_a_hosted_vendor_says_what_it_allows(name: str, words: str, tmp_path: Path) -> None:
    with FineTuneClient(name, ledger=False) as client, pytest.raises(UnsupportedFeatureError) as info:
        export_model(client.provider, "ft:some-model", "merged", tmp_path / "out")
    message = str(info.value)
    assert message.startswith(f"The {name!r} provider does not support exporting tuned models.")
    assert words in message, message
    entry = client.catalog.providers[name].provider.weights
    assert entry is not None
    assert entry.source in message
    assert not (tmp_path / "out").exists()


def test_every_vendor_in_the_catalog_says_whether_weights_download() -> None:
    from unitune.catalog import load_catalog

    catalog = load_catalog()
    downloadable = []
    for name in ("openai", "together", "bedrock", "vertex", "mistral", "cohere", "local", "fake"):
        weights = catalog.providers[name].provider.weights
        assert weights is not None, name
        assert weights.source.startswith(("https://", "unitune")), name
        assert weights.verified or weights.note, name  # an unverified fact says why
        if weights.downloadable:
            downloadable.append(name)
    assert downloadable == ["together", "local"]


def test_peft_export_needs_no_model_load(job: Job, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A peft export is a copy: it must work where torch would fail to load the model."""
    import unitune.export as export

    monkeypatch.setattr(export, "_load", lambda source: pytest.fail("the model was loaded"))
    result = export_model(job.provider(), job.model, "peft", tmp_path / "a")
    record = json.loads((result.path / "unitune-export.json").read_text())
    assert record["model"] == job.model
    assert record["adapter_path"] == str(job.adapter)
    shutil.rmtree(result.path)
