"""Each export format, loaded back by the tool it is meant for: PEFT, plain transformers, the gguf
package's reader (every tensor compared with the merged model) and transformers' own GGUF loader, and
the Ollama Modelfile."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from unitune.export import ExportResult, export_model
from unitune.export._gguf import permute
from unitune.export._ollama import chat_format, modelfile, shared_system_prompt
from unitune.types import Message

from .conftest import HUB_ID, Job

PROMPT = [{"role": "user", "content": "My invoice is wrong, who do I talk to?"}]


@pytest.fixture(scope="module")
def merged(job: Job) -> Any:
    """The reference: base + adapter merged by PEFT, in float32."""
    from unitune.providers.local._infer import _load

    return _load(job.base, job.adapter, "cpu")


@pytest.fixture(scope="module")
def gguf_f32(job: Job, tmp_path_factory: pytest.TempPathFactory) -> ExportResult:
    out = tmp_path_factory.mktemp("gguf32") / "out"
    return export_model(job.provider(), job.model, "gguf", out, dtype="f32")


def _ids(tokenizer: Any) -> Any:
    text = tokenizer.apply_chat_template(PROMPT, add_generation_prompt=True, tokenize=False)
    return tokenizer(text, return_tensors="pt", add_special_tokens=False)["input_ids"]


def test_peft_export_loads_with_peft_and_answers_like_unitune(job: Job, tmp_path: Path) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    result = export_model(job.provider(), job.model, "peft", tmp_path / "adapter")
    out = result.path
    assert result.base_model == HUB_ID
    assert result.dtype is None
    assert json.loads((out / "adapter_config.json").read_text())["base_model_name_or_path"] == HUB_ID
    assert {"adapter_model.safetensors", "chat_template.jinja", "tokenizer.json"} <= {
        p.name for p in result.files
    }

    tokenizer = AutoTokenizer.from_pretrained(out)  # the tokenizer travels with the adapter
    model = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(job.base, dtype=torch.float32), out
    )
    ids = _ids(tokenizer)
    with torch.no_grad():
        new = model.generate(
            input_ids=ids, max_new_tokens=12, do_sample=False, eos_token_id=tokenizer.eos_token_id
        )
    text = tokenizer.decode(new[0, ids.shape[1] :], skip_special_tokens=True).strip()
    reply = job.provider().chat(job.model, [Message(**m) for m in PROMPT], max_new_tokens=12)
    assert text == reply.content
    assert text


def test_merged_export_loads_with_plain_transformers(job: Job, merged: Any, tmp_path: Path) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    result = export_model(job.provider(), job.model, "merged", tmp_path / "merged")
    names = {p.name for p in result.files}
    assert {
        "model.safetensors",
        "config.json",
        "generation_config.json",
        "tokenizer.json",
        "chat_template.jinja",
    } <= names
    assert result.dtype == "f32"  # the base's own precision
    config = json.loads((result.path / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"]
    assert "peft" not in json.dumps(config).lower()

    tokenizer = AutoTokenizer.from_pretrained(result.path)
    assert tokenizer.chat_template == merged[1].chat_template
    ids = _ids(tokenizer)
    with torch.no_grad():
        exported = AutoModelForCausalLM.from_pretrained(result.path)(ids).logits
        base = AutoModelForCausalLM.from_pretrained(job.base, dtype=torch.float32)
        base_logits = base(ids).logits
        tuned = PeftModel.from_pretrained(base, job.adapter)(ids).logits  # unmerged: base + adapter
    assert torch.allclose(exported, tuned, atol=1e-4), (exported - tuned).abs().max()
    assert (exported - base_logits).abs().max() > 1e-2  # the adapter is in there


def _field(reader: Any, key: str) -> Any:
    return reader.fields[key].contents()


def _expected_gguf_tensors(model: Any) -> dict[str, Any]:
    """The merged model's tensors under their GGUF names, q/k in HF row order (not permuted)."""
    import gguf

    config = model.config
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, config.num_hidden_layers)
    out = {}
    for name, tensor in model.state_dict().items():
        if name == "lm_head.weight":
            continue  # tied to the embeddings: not written
        out[names.get_name(name, try_suffixes=(".weight",))] = tensor.detach().float().numpy()
    return out


def _unpermute(data: Any, n_head: int) -> Any:
    """The inverse of `permute`: llama.cpp's row order back to HF's."""
    return (
        data.reshape(n_head, data.shape[0] // n_head // 2, 2, *data.shape[1:])
        .swapaxes(1, 2)
        .reshape(data.shape)
    )


def _read_tensors(path: Path, model: Any) -> dict[str, tuple[Any, str]]:
    import gguf

    config = model.config
    heads = {"attn_q": config.num_attention_heads, "attn_k": config.num_key_value_heads}
    out = {}
    for t in gguf.GGUFReader(path).tensors:
        data = np.array(t.data)
        kind = t.name.split(".")[-2]
        out[t.name] = (_unpermute(data, heads[kind]) if kind in heads else data, t.tensor_type.name)
    return out


def test_gguf_f32_holds_every_tensor_exactly_and_the_metadata(gguf_f32: ExportResult, merged: Any) -> None:
    import gguf

    model, tokenizer = merged
    config = model.config
    path = gguf_f32.path / "model.gguf"
    reader = gguf.GGUFReader(path)
    arch = _field(reader, gguf.Keys.General.ARCHITECTURE)
    assert arch == "llama"
    expected_kv = {
        gguf.Keys.LLM.BLOCK_COUNT: 30, gguf.Keys.LLM.CONTEXT_LENGTH: 8192, gguf.Keys.LLM.EMBEDDING_LENGTH: 576,
        gguf.Keys.LLM.FEED_FORWARD_LENGTH: 1536, gguf.Keys.Attention.HEAD_COUNT: 9,
        gguf.Keys.Attention.HEAD_COUNT_KV: 3, gguf.Keys.Rope.DIMENSION_COUNT: 64, gguf.Keys.LLM.VOCAB_SIZE: 49152,
    }  # fmt: skip
    for key, value in expected_kv.items():
        assert _field(reader, key.format(arch=arch)) == value, key
    assert _field(reader, gguf.Keys.Rope.FREQ_BASE.format(arch=arch)) == pytest.approx(100000.0)
    eps = _field(reader, gguf.Keys.Attention.LAYERNORM_RMS_EPS.format(arch=arch))
    assert eps == pytest.approx(config.rms_norm_eps, rel=1e-6)
    assert _field(reader, gguf.Keys.General.FILE_TYPE) == gguf.LlamaFileType.ALL_F32

    assert _field(reader, gguf.Keys.Tokenizer.MODEL) == "gpt2"
    # This copy's pre-tokenizer is GPT-2's regex alone (the hub's SmolLM2 splits digits first: "smollm").
    assert _field(reader, gguf.Keys.Tokenizer.PRE) == "gpt-2"
    tokens = _field(reader, gguf.Keys.Tokenizer.LIST)
    assert len(tokens) == config.vocab_size == len(_field(reader, gguf.Keys.Tokenizer.TOKEN_TYPE))
    assert tokens[:3] == ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    assert all(tokens[i] == t for t, i in list(tokenizer.get_vocab().items())[:2000])
    assert len(_field(reader, gguf.Keys.Tokenizer.MERGES)) == 48900
    assert _field(reader, gguf.Keys.Tokenizer.BOS_ID) == tokenizer.bos_token_id == 1
    assert _field(reader, gguf.Keys.Tokenizer.EOS_ID) == tokenizer.eos_token_id == 2
    assert _field(reader, gguf.Keys.Tokenizer.ADD_BOS) is False  # the HF tokenizer adds none either
    assert _field(reader, gguf.Keys.Tokenizer.CHAT_TEMPLATE) == tokenizer.chat_template

    expected = _expected_gguf_tensors(model)
    written = _read_tensors(path, model)
    assert set(written) == set(expected)
    assert "output.weight" not in written  # tied: llama.cpp reuses token_embd.weight
    assert len(written) == 2 + 9 * 30
    for name, (data, kind) in written.items():
        assert kind == "F32", name
        assert np.array_equal(data, expected[name]), name


def test_gguf_f16_rounds_weights_and_keeps_norms_in_f32(job: Job, merged: Any, tmp_path: Path) -> None:
    import gguf

    model, _ = merged
    result = export_model(job.provider(), job.model, "gguf", tmp_path / "gguf16")
    assert result.dtype == "f16"
    path = result.path / "model.gguf"
    assert _field(gguf.GGUFReader(path), gguf.Keys.General.FILE_TYPE) == gguf.LlamaFileType.MOSTLY_F16
    expected = _expected_gguf_tensors(model)
    worst = 0.0
    for name, (data, kind) in _read_tensors(path, model).items():
        want = expected[name]
        if want.ndim == 1:
            assert kind == "F32", name
            assert np.array_equal(data, want), name
            continue
        assert kind == "F16", name
        assert np.array_equal(data, want.astype(np.float16)), name  # exactly float16's rounding
        rel = np.abs(data.astype(np.float32) - want) / np.maximum(np.abs(want), 2.0**-14)
        worst = max(worst, float(rel.max()))
    assert worst <= 2.0**-11  # half a float16 ulp at most


def test_permute_is_llama_cpps_and_undone_by_the_inverse() -> None:
    rows = np.arange(2 * 8 * 3, dtype=np.float32).reshape(16, 3)  # 2 heads of 8 rows
    out = permute(rows, 2, 2)
    # Within a head, HF's halves (rows 0-3, 4-7) are interleaved: 0, 4, 1, 5, ...
    assert [int(r[0] // 3) for r in out[:8]] == [0, 4, 1, 5, 2, 6, 3, 7]
    assert np.array_equal(_unpermute(out, 2), rows)
    assert np.array_equal(_unpermute(permute(rows, 4, 2), 2), rows)  # k: the kv head count counts


def test_gguf_loads_in_transformers_own_gguf_reader(gguf_f32: ExportResult, merged: Any) -> None:
    """An independent reader of llama.cpp's files: it undoes the permutation and rebuilds the
    tokenizer from the GGUF alone."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model, tokenizer = merged
    folder, name = str(gguf_f32.path), "model.gguf"
    from_gguf = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    text = "Ticket #4512: refund 3 items — naïve café ünïcödé\n\n  done?"
    assert from_gguf(text)["input_ids"] == tokenizer(text)["input_ids"]
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    ids = _ids(tokenizer)
    with torch.no_grad():
        assert torch.allclose(loaded(ids).logits, model(ids).logits, atol=1e-4)


def test_ollama_export_writes_the_gguf_and_a_modelfile(job: Job, tmp_path: Path) -> None:
    result = export_model(job.provider(), job.model, "ollama", tmp_path / "ollama")
    assert {p.name for p in result.files} == {"model.gguf", "Modelfile", "unitune-export.json"}
    text = (result.path / "Modelfile").read_text()
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert lines[0] == "FROM ./model.gguf"
    assert lines[-1] == 'PARAMETER stop "<|im_end|>"'
    # No training example had a system prompt, so training saw the template's default one.
    assert 'SYSTEM """You are a helpful AI assistant named SmolLM, trained by Hugging Face"""' in lines
    user_turn = "<|im_start|>user\n{{ .Content }}<|im_end|>\n<|im_start|>assistant\n"
    assert '{{ if eq .Role "user" }}' + user_turn in text
    assert text.count('"""') == 4  # TEMPLATE and SYSTEM blocks, each closed


def test_modelfile_system_prompt_comes_from_the_training_data_or_the_caller(
    merged: Any, tmp_path: Path
) -> None:
    _, tokenizer = merged
    fmt = chat_format(tokenizer)
    assert (fmt.name, fmt.stops) == ("chatml", ("<|im_end|>",))
    assert fmt.default_system == "You are a helpful AI assistant named SmolLM, trained by Hugging Face"

    def jsonl(*firsts: dict[str, str]) -> Path:
        path = tmp_path / f"{len(firsts)}-{firsts[0]['role']}.jsonl"
        path.write_text("".join(json.dumps({"messages": [m, {"role": "assistant", "content": "x"}]}) + "\n"
                                for m in firsts))  # fmt: skip
        return path

    system, user = {"role": "system", "content": "Classify tickets."}, {"role": "user", "content": "B"}
    assert shared_system_prompt(jsonl(system, system)) == ("Classify tickets.", True)
    assert shared_system_prompt(jsonl(user, user)) == (None, True)
    assert shared_system_prompt(jsonl(system, user)) == (None, False)
    text = modelfile("model.gguf", fmt, "Be brief.", header="h")
    assert 'SYSTEM """Be brief."""' in text
    assert text.startswith("# h\nFROM ./model.gguf\n")
