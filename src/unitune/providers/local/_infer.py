"""Chat with a base model or a trained adapter, in this process, through the model's chat template.

Loaded models are kept (two at most) so evaluating base vs tuned does not reload for every batch.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Generation", "generate", "merge_adapter"]

_CACHE: OrderedDict[tuple[str, str | None, str], tuple[Any, Any]] = OrderedDict()
_LOCK = threading.Lock()
_KEEP = 2


@dataclass(frozen=True)
class Generation:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str


def _device(device: str) -> str:
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device = 'cuda' was asked for, but PyTorch sees no CUDA device")
    return "cuda" if device in ("auto", "cuda") and torch.cuda.is_available() else "cpu"


def _load(base: Path, adapter: Path | None, device: str = "auto") -> tuple[Any, Any]:
    where = _device(device)
    key = (str(base), str(adapter) if adapter else None, where)
    with _LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base)
    model: Any = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    if adapter is not None:
        from peft import PeftModel

        # Merged once here: generation is then as fast as with the base model.
        model = PeftModel.from_pretrained(model, adapter).merge_and_unload()
    model = model.to(where)
    model.eval()
    with _LOCK:
        _CACHE[key] = (model, tokenizer)
        while len(_CACHE) > _KEEP:
            _CACHE.popitem(last=False)
    return model, tokenizer


def generate(
    base: Path,
    adapter: Path | None,
    conversations: list[list[dict[str, Any]]],
    *,
    max_new_tokens: int = 256,
    temperature: float = 0.0,
    batch_size: int = 8,
    device: str = "auto",
) -> list[Generation]:
    """Complete each conversation (greedy unless `temperature` > 0), batched with left padding, on
    the GPU when there is one (`device` "auto"), else the CPU."""
    import torch

    model, tokenizer = _load(base, adapter, device)
    tokenizer.padding_side = "left"
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    stops = [
        t
        for t in {tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<|im_end|>")}
        if isinstance(t, int) and t >= 0
    ]
    out: list[Generation] = []
    for start in range(0, len(conversations), batch_size):
        chunk = conversations[start : start + batch_size]
        prompts = [
            tokenizer.apply_chat_template(c, add_generation_prompt=True, tokenize=False) for c in chunk
        ]
        enc = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
        sampling = (
            {"do_sample": True, "temperature": temperature} if temperature > 0 else {"do_sample": False}
        )
        with torch.no_grad():
            ids = model.generate(
                **enc, max_new_tokens=max_new_tokens, pad_token_id=pad, eos_token_id=stops, **sampling
            )
        width = enc["input_ids"].shape[1]
        for row in range(len(chunk)):
            new = ids[row, width:].tolist()
            finish = "length"
            for i, tid in enumerate(new):
                if tid in stops:
                    new, finish = new[:i], "stop"
                    break
            prompt_tokens = int(enc["attention_mask"][row].sum())
            text = tokenizer.decode(new, skip_special_tokens=True).strip()
            out.append(Generation(text, prompt_tokens, len(new), finish))
    return out


def merge_adapter(base: Path, adapter: Path, out: Path) -> Path:
    """Write base + adapter merged into one ordinary model folder (for serving without PEFT)."""
    model, tokenizer = _load(base, adapter)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
