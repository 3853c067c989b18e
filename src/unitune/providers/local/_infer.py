"""Chat with a base model or a trained adapter, in this process, through the model's chat template.

Loaded models are kept (two at most) so evaluating base vs tuned does not reload for every batch.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from unitune.errors import ConfigurationError

__all__ = [
    "Generation",
    "cancel_criteria",
    "check_adapter",
    "generate",
    "generate_batch",
    "load_tokenizer",
    "load_unmerged",
    "merge_adapter",
    "render_prompt",
    "stop_token_ids",
    "text_streamer",
    "wrap_with_adapter",
]

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


def stop_token_ids(tokenizer: Any) -> list[int]:
    """The ids that end an answer: the end-of-sequence token and ChatML's `<|im_end|>`, where they exist."""
    return [
        t
        for t in {tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<|im_end|>")}
        if isinstance(t, int) and t >= 0
    ]


def render_prompt(tokenizer: Any, conversation: list[dict[str, Any]]) -> str:
    """The conversation through the model's chat template, ending where the assistant's answer starts."""
    prompt: str = tokenizer.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False)
    return prompt


def _cut_at_stop(text: str, stop_strings: list[str] | None) -> str | None:
    """`text` up to the first of `stop_strings` in it, or None when none occurs."""
    ends = [i for s in stop_strings or () if (i := text.find(s)) >= 0]
    return text[: min(ends)] if ends else None


def generate_batch(
    model: Any,
    tokenizer: Any,
    conversations: list[list[dict[str, Any]]],
    *,
    max_new_tokens: int | list[int],
    temperature: float = 0.0,
    top_p: float | None = None,
    stop_strings: list[str] | None = None,
    **generate_kwargs: Any,
) -> list[Generation]:
    """Generate for a batch of conversations in one left-padded call.

    One left-padded `generate` call over `conversations` with a loaded model (the server batches
    concurrent requests through this; `generate` loads the model and calls it per batch).

    `max_new_tokens` may differ per conversation: the batch runs to the largest and each answer is
    cut at its own limit (finish "length"). `stop_strings` end an answer where one first appears
    (finish "stop"); `generate_kwargs` go to `model.generate` (a streamer, stopping criteria).
    """
    import torch

    limits = max_new_tokens if isinstance(max_new_tokens, list) else [max_new_tokens] * len(conversations)
    tokenizer.padding_side = "left"
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    stops = stop_token_ids(tokenizer)
    prompts = [render_prompt(tokenizer, c) for c in conversations]
    enc = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
    sampling: dict[str, Any] = (
        {"do_sample": True, "temperature": temperature} if temperature > 0 else {"do_sample": False}
    )
    if temperature > 0 and top_p is not None:
        sampling["top_p"] = top_p
    if stop_strings:
        # Generation halts once every row has one; the text is cut at it below.
        sampling.update(stop_strings=stop_strings, tokenizer=tokenizer)
    with torch.no_grad():
        ids = model.generate(
            **enc, max_new_tokens=max(limits), pad_token_id=pad, eos_token_id=stops, **sampling,
            **generate_kwargs,
        )  # fmt: skip
    width = enc["input_ids"].shape[1]
    out: list[Generation] = []
    for row, limit in enumerate(limits):
        new = ids[row, width:].tolist()
        finish = "length"
        for i, tid in enumerate(new):
            if tid in stops:
                new, finish = new[:i], "stop"
                break
        if len(new) > limit:
            new, finish = new[:limit], "length"
        prompt_tokens = int(enc["attention_mask"][row].sum())
        text = tokenizer.decode(new, skip_special_tokens=True).strip()
        cut = _cut_at_stop(text, stop_strings)
        if cut is not None:
            text, finish = cut.strip(), "stop"
        out.append(Generation(text, prompt_tokens, len(new), finish))
    return out


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
    """Complete each conversation with the model.

    Complete each conversation (greedy unless `temperature` > 0), batched with left padding, on
    the GPU when there is one (`device` "auto"), else the CPU.
    """
    model, tokenizer = _load(base, adapter, device)
    out: list[Generation] = []
    for start in range(0, len(conversations), batch_size):
        chunk = conversations[start : start + batch_size]
        out.extend(
            generate_batch(model, tokenizer, chunk, max_new_tokens=max_new_tokens, temperature=temperature)
        )
    return out


def merge_adapter(base: Path, adapter: Path, out: Path) -> Path:
    """Write base + adapter merged into one ordinary model folder (for serving without PEFT)."""
    model, tokenizer = _load(base, adapter)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


# -- pieces the server (`unitune.serve._backends`) builds on: the ML libraries stay in this package ----


def load_tokenizer(base: Path) -> Any:
    """The base model's tokenizer."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(base)


def load_unmerged(base: Path, device: str = "auto") -> tuple[Any, Any]:
    """Load a base model and its tokenizer, not cached.

    (model, tokenizer) of a base model, in eval mode on `device`, not cached: the server keeps it
    and puts several adapters over it, which a merged, shared copy (`_load`) cannot take.
    """
    import torch
    from transformers import AutoModelForCausalLM

    model: Any = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    model = model.to(_device(device))
    model.eval()
    return model, load_tokenizer(base)


def wrap_with_adapter(model: Any, folder: Path, name: str) -> Any:
    """Wrap `model` as a PEFT model with the adapter in `folder`.

    `model` as a PEFT model with the adapter in `folder` loaded under `name` (more can be loaded
    with `load_adapter`).
    """
    from peft import PeftModel

    wrapped = PeftModel.from_pretrained(model, folder, adapter_name=name)
    wrapped.eval()
    return wrapped


def cancel_criteria(flag: threading.Event) -> Any:
    """Stopping criteria that end generation once `flag` is set (the client disconnected)."""
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    class _Cancelled(StoppingCriteria):
        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            return torch.full((input_ids.shape[0],), flag.is_set(), dtype=torch.bool, device=input_ids.device)

    return StoppingCriteriaList([_Cancelled()])


def text_streamer(tokenizer: Any, on_text: Callable[[str], None]) -> Any:
    """A text streamer that hands each decoded piece to `on_text`.

    transformers' text streamer (it decodes whole words only, so no piece splits a character),
    handing each piece to `on_text` instead of TextIteratorStreamer's queue, so that the server's
    event loop is woken rather than a thread blocked per stream.
    """
    from transformers import TextStreamer

    class _ToCallback(TextStreamer):
        def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
            on_text(text)

    return _ToCallback(tokenizer, skip_prompt=True, skip_special_tokens=True)


def check_adapter(folder: Path) -> None:
    """Check an adapter folder before it touches the loaded model.

    Read an adapter folder's config and weights before they touch the loaded model: a corrupt
    folder is refused here, so it cannot leave half an adapter injected into a shared base.
    """
    try:
        config = json.loads((folder / "adapter_config.json").read_text("utf-8"))
    except (OSError, ValueError) as e:
        raise ConfigurationError(f"{str(folder)!r} has no readable adapter_config.json ({e}).") from None
    if not isinstance(config, dict) or "peft_type" not in config:
        raise ConfigurationError(f"{str(folder)!r}: adapter_config.json is not a PEFT adapter config.")
    weights = folder / "adapter_model.safetensors"
    if weights.is_file():
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            load_file(weights)
        except (SafetensorError, OSError, ValueError) as e:
            raise ConfigurationError(f"{str(weights)!r} cannot be read: {e}.") from None
    elif not (folder / "adapter_model.bin").is_file():
        raise ConfigurationError(f"{str(folder)!r} has no adapter weights (adapter_model.safetensors).")


def save_model(model: Any, out: Path, dtype: str) -> None:
    """Write `model` as a transformers folder with its weights in `dtype` (a torch dtype name).

    The model itself is not changed (it may be shared with chat's cache): a copy of the weights is
    cast, and tied tensors stay one tensor.
    """
    import torch

    target = getattr(torch, dtype)
    if target == torch.float32:
        model.save_pretrained(out)
        return
    cast: dict[int, Any] = {}
    state = {k: cast.setdefault(v.data_ptr(), v.to(target)) for k, v in model.state_dict().items()}
    model.save_pretrained(out, state_dict=state)


def as_float32_array(tensor: Any) -> Any:
    """A weight tensor as a float32 NumPy array on the CPU (what a GGUF writer takes)."""
    import torch

    return tensor.detach().to(device="cpu", dtype=torch.float32).numpy()
