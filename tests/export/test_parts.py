"""The parts of the GGUF and Ollama writers that the SmolLM2 export does not reach: the other
pre-tokenizers, Llama 3.1's rope scaling, the Llama 3 chat format, and a merged export in float16."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from unitune.errors import UnsupportedFeatureError
from unitune.export import export_model
from unitune.export._gguf import _LLAMA3_SPLIT, _pre_tokenizer, _rope
from unitune.export._ollama import chat_format

from .conftest import Job

BYTES = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}


def test_pre_tokenizers_get_llama_cpps_names() -> None:
    assert _pre_tokenizer(BYTES) == "gpt-2"
    smollm = {"type": "Sequence", "pretokenizers": [{"type": "Digits", "individual_digits": True}, BYTES]}
    assert _pre_tokenizer(smollm) == "smollm"  # the hub's SmolLM2 tokenizer
    split = {"type": "Split", "pattern": {"Regex": _LLAMA3_SPLIT}, "behavior": "Isolated", "invert": False}
    llama3 = {"type": "Sequence", "pretokenizers": [split, {**BYTES, "use_regex": False}]}
    assert _pre_tokenizer(llama3) == "llama-bpe"
    with pytest.raises(UnsupportedFeatureError, match=r"pre-tokenizer llama.cpp may not know \(Metaspace\)"):
        _pre_tokenizer({"type": "Metaspace"})
    with pytest.raises(UnsupportedFeatureError, match="bytes-with-prefix-space"):
        _pre_tokenizer({**BYTES, "add_prefix_space": True})


def test_llama3_rope_scaling_writes_rope_freqs_and_others_are_refused() -> None:
    llama31 = SimpleNamespace(
        hidden_size=4096, num_attention_heads=32, head_dim=128,
        rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
                         "high_freq_factor": 4.0, "original_max_position_embeddings": 8192},
    )  # fmt: skip
    (tensor,), notes = _rope(llama31)
    factors = tensor.load()
    assert tensor.name == "rope_freqs.weight"
    assert tensor.shape == (64,)
    assert not tensor.f16
    assert factors[0] == 1.0  # the highest frequency is kept
    assert factors[-1] == 8.0  # the lowest is scaled by the factor
    assert all(1.0 <= f <= 8.0 for f in factors)
    assert notes
    plain = SimpleNamespace(hidden_size=8, num_attention_heads=2, rope_theta=10000.0, rope_scaling=None)
    assert _rope(plain) == ([], [])
    yarn = SimpleNamespace(hidden_size=8, num_attention_heads=2, rope_parameters={"rope_type": "yarn"})
    with pytest.raises(UnsupportedFeatureError, match="'yarn' rope scaling"):
        _rope(yarn)


class _Tokenizer:
    """Just what `chat_format` uses of a tokenizer: its Jinja chat template and special tokens."""

    def __init__(self, template: str, bos: str = "", eos: str | None = None) -> None:
        self.chat_template, self.bos_token, self.eos_token = template, bos, eos

    def apply_chat_template(self, messages: list[dict[str, str]], **kwargs: Any) -> str:
        import jinja2

        return jinja2.Template(self.chat_template).render(
            messages=messages, bos_token=self.bos_token, add_generation_prompt=kwargs["add_generation_prompt"]
        )


LLAMA3_TEMPLATE = (  # Meta-Llama-3-8B-Instruct's
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' "
    "+ message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
    "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)


def test_chat_formats_are_recognised_by_what_they_render() -> None:
    llama3 = chat_format(_Tokenizer(LLAMA3_TEMPLATE, bos="<|begin_of_text|>", eos="<|eot_id|>"))
    assert (llama3.name, llama3.stops, llama3.default_system) == ("llama3", ("<|eot_id|>",), None)
    assert "<|start_header_id|>assistant<|end_header_id|>\n\n" in llama3.template
    chatml = "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}" \
             "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"  # fmt: skip
    plain = chat_format(_Tokenizer(chatml, eos="<|endoftext|>"))
    assert (plain.name, plain.stops, plain.default_system) == (
        "chatml",
        ("<|im_end|>", "<|endoftext|>"),
        None,
    )
    alpaca = "{% for m in messages %}### {{ m.role }}:\n{{ m.content }}\n{% endfor %}### assistant:\n"
    with pytest.raises(UnsupportedFeatureError, match="ChatML and Llama 3") as info:
        chat_format(_Tokenizer(alpaca))
    assert "--format gguf" in str(info.value)


def _safetensors_header(path: Path) -> dict[str, Any]:
    with path.open("rb") as fh:
        (length,) = struct.unpack("<Q", fh.read(8))
        header: dict[str, Any] = json.loads(fh.read(length))
    return header


def test_merged_in_float16_keeps_tied_weights_once(job: Job, tmp_path: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    result = export_model(job.provider(), job.model, "merged", tmp_path / "m16", dtype="f16")
    assert result.dtype == "f16"
    header = _safetensors_header(result.path / "model.safetensors")
    dtypes = {v["dtype"] for k, v in header.items() if k != "__metadata__"}
    assert dtypes == {"F16"}
    assert "lm_head.weight" not in header
    assert json.loads((result.path / "config.json").read_text())["dtype"] == "float16"
    model = AutoModelForCausalLM.from_pretrained(result.path)
    assert model.dtype == torch.float16
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
