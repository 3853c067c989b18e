"""The GGUF export in llama.cpp itself: greedy text from the file equals transformers' on the merged model.

llama-cpp-python has no wheel for this machine and building it takes minutes, so `make test` skips
this; it was run by hand with `pip install llama-cpp-python` (0.3.36, built from source) and passed
for f32 and f16 files (docs/serve.md). Install it into the venv to run it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from unitune.export import export_model

from .conftest import Job

llama_cpp = pytest.importorskip("llama_cpp")

MESSAGES = [
    {"role": "system", "content": "You triage support tickets. Reply with JSON."},
    {
        "role": "user",
        "content": "I returned the bottle 6 days ago and still have no refund for order #95319.",
    },
]


def _transformers_text(folder: Path, tokens: int) -> str:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    ids = tokenizer.apply_chat_template(MESSAGES, add_generation_prompt=True, return_tensors="pt")
    ids = ids if torch.is_tensor(ids) else ids["input_ids"]
    out = model.generate(ids, max_new_tokens=tokens, do_sample=False)
    return str(tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)).strip()


@pytest.mark.parametrize("dtype", ["f32", "f16"])
def test_llama_cpp_generates_what_transformers_does(job: Job, tmp_path: Path, dtype: str) -> None:
    merged = export_model(job.provider(), job.model, "merged", tmp_path / "merged")
    gguf = export_model(job.provider(), job.model, "gguf", tmp_path / "gguf", dtype=dtype)  # type: ignore[arg-type]
    llm = llama_cpp.Llama(model_path=str(gguf.path / "model.gguf"), n_ctx=512, verbose=False, seed=0)
    # The chat template comes from the GGUF file itself: the export wrote it there.
    answer = llm.create_chat_completion(messages=MESSAGES, max_tokens=24, temperature=0.0, top_k=1)
    text = answer["choices"][0]["message"]["content"].strip()
    assert text
    assert text == _transformers_text(merged.path, 24)
