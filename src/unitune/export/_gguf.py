"""Write a Hugging Face Llama-family model as one GGUF file.

A loaded Hugging Face Llama-family model (SmolLM2, Llama 3.x) → one GGUF file, as llama.cpp's
`convert_hf_to_gguf.py` writes it for `LlamaForCausalLM`, through the `gguf` package's own writer,
names and constants.

What llama.cpp reads, and so what is written:
- the hyperparameters under `llama.*` (context, embedding and feed-forward lengths, block and head
  counts, rope dimensions and base, RMS epsilon, vocabulary size);
- a GPT-2-style byte-level BPE tokenizer (`tokenizer.ggml.model = "gpt2"`): tokens, their types, merges,
  the special token ids, whether a BOS is added, the chat template, and the pre-tokenizer by the name
  llama.cpp knows it (`smollm`, `gpt-2`, `llama-bpe`), recognised from the tokenizer's own definition;
- every tensor under its GGUF name, with q and k rows permuted the way llama.cpp's rope expects
  (`permute`), 2-D weights in f16 or f32 and norms and other 1-D tensors always in f32 (as the
  converter does: ggml's norm kernels take f32);
- no `output.weight` when the output layer is tied to the embeddings: llama.cpp then uses
  `token_embd.weight` for both, as it does for the converter's files of tied models.

Anything else (another architecture, a SentencePiece tokenizer, a rope scaling llama.cpp's llama
graph does not take) is refused by name rather than written wrong.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from unitune.errors import UnsupportedFeatureError

__all__ = ["check_architecture", "permute", "write_gguf"]

#: The regex of the Llama 3 tokenizer's Split pre-tokenizer (its tokenizer.json, JSON-decoded).
_LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
#: Pre-tokenizer pieces (see `_pieces`) → the name llama.cpp gives that pre-tokenizer
#: (llama-vocab.cpp: `gpt-2` is GPT-2's regex; `smollm` splits digits first, then GPT-2's regex).
_PRE_TOKENIZERS = {
    ("gpt2-regex",): "gpt-2",
    ("digits", "gpt2-regex"): "smollm",
    ("llama3-regex", "bytes"): "llama-bpe",
}
_HINT = "Export with --format merged and convert that folder with llama.cpp's convert_hf_to_gguf.py."


def _refuse(feature: str) -> UnsupportedFeatureError:
    return UnsupportedFeatureError(provider="local", feature=feature, hint=_HINT)


def permute(weights: Any, n_head: int, n_head_kv: int | None) -> Any:
    """Reorder a q or k projection's rows as llama.cpp's rope wants them.

    The row order llama.cpp's rope wants for a q (or k) projection: within each head, HF keeps the
    two rotated halves apart ([x0..x31, y0..y31]); llama.cpp interleaves them ([x0, y0, x1, y1, ...]).
    The same function as `LlamaModel.permute` in llama.cpp's convert_hf_to_gguf.py.
    """
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return (
        weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
        .swapaxes(1, 2)
        .reshape(weights.shape)
    )


@dataclass(frozen=True)
class _Tensor:
    name: str
    shape: tuple[int, ...]
    f16: bool
    load: Callable[[], Any]  # → a float32 numpy array, converted when it is written


def write_gguf(
    model: Any, tokenizer: Any, tokenizer_dir: Path, out: Path, *, dtype: str, name: str
) -> list[str]:
    """Write `model` and `tokenizer` to the GGUF file `out`.

    Write `model` (a loaded `LlamaForCausalLM`, adapter merged) and `tokenizer` (saved in
    `tokenizer_dir` too, where `gguf.SpecialVocab` reads it) to the GGUF file `out`, its 2-D weights
    in `dtype` ("f16" or "f32"). Tensors are converted one at a time while the file is written, so
    the export needs little memory beyond the loaded model. Returns notes for the export's result.
    """
    import gguf

    config = model.config
    check_architecture(config.to_dict())
    rope_extra, notes = _rope(config)
    tensors = [*rope_extra, *_model_tensors(model, config, f16=dtype == "f16")]
    if not any(t.name == gguf.TENSOR_NAMES[gguf.MODEL_TENSOR.OUTPUT] + ".weight" for t in tensors):
        notes.append("output.weight is not written: the output layer is tied to token_embd.weight, "
                     "which llama.cpp then uses for both")  # fmt: skip

    writer = gguf.GGUFWriter(out, gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.LLAMA])
    try:
        writer.add_type(gguf.GGUFType.MODEL)
        writer.add_name(name)
        _hyperparameters(writer, config, dtype)
        _vocabulary(writer, tokenizer, tokenizer_dir, int(config.vocab_size))
        writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
        import numpy as np

        for t in tensors:
            np_dtype = np.dtype(np.float16 if t.f16 else np.float32)
            writer.add_tensor_info(t.name, t.shape, np_dtype, math.prod(t.shape) * np_dtype.itemsize)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        for t in tensors:
            data = t.load()
            writer.write_tensor_data(data.astype(np.float16) if t.f16 else data)
    finally:
        writer.close()
    return notes


def check_architecture(config: dict[str, Any]) -> None:
    """Refuse (`UnsupportedFeatureError`) a model config.json that is not a `LlamaForCausalLM`."""
    architectures = list(config.get("architectures") or [])
    if config.get("model_type") != "llama" or architectures not in ([], ["LlamaForCausalLM"]):
        arch = architectures[0] if architectures else config.get("model_type", "unknown")
        raise _refuse(f"GGUF export of the {arch} architecture (only LlamaForCausalLM: SmolLM2, Llama 3.x)")


def _rope(config: Any) -> tuple[list[_Tensor], list[str]]:
    """Extra tensors and notes for the model's rope.

    Nothing for plain rope, `rope_freqs` for Llama 3.1's "llama3" scaling (the converter's
    `generate_extra_tensors`); other kinds refused.
    """
    params = _rope_parameters(config)
    kind = str(params.get("rope_type") or params.get("type") or "default")
    if kind == "default":
        return [], []
    if kind == "linear":
        return [], [f"linear rope scaling, factor {params['factor']}"]
    if kind != "llama3":
        raise _refuse(f"GGUF export of a model with {kind!r} rope scaling")
    import gguf
    import numpy as np

    base = float(params["rope_theta"])
    dim = _head_dim(config)
    factor = float(params.get("factor", 8.0))
    low, high = float(params.get("low_freq_factor", 1.0)), float(params.get("high_freq_factor", 4.0))
    old_context = float(params.get("original_max_position_embeddings", 8192))
    factors: list[float] = []
    for i in range(0, dim, 2):
        wavelen = 2 * math.pi * base ** (i / dim)
        if wavelen < old_context / high:
            factors.append(1.0)
        elif wavelen > old_context / low:
            factors.append(factor)
        else:
            smooth = (old_context / wavelen - low) / (high - low)
            factors.append(1 / ((1 - smooth) / factor + smooth))
    array = np.array(factors, dtype=np.float32)
    name = gguf.TENSOR_NAMES[gguf.MODEL_TENSOR.ROPE_FREQS] + ".weight"
    return [_Tensor(name, array.shape, False, lambda: array)], ["llama3 rope scaling: rope_freqs written"]


def _rope_parameters(config: Any) -> dict[str, Any]:
    """Rope settings from either transformers layout.

    `rope_parameters` (5.x) or `rope_theta` and `rope_scaling` (4.x).
    """
    params = dict(getattr(config, "rope_parameters", None) or {})
    if "rope_theta" not in params:
        params["rope_theta"] = getattr(config, "rope_theta", 10000.0)
    params.update(getattr(config, "rope_scaling", None) or {})
    return params


def _head_dim(config: Any) -> int:
    return int(getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads)


def _hyperparameters(writer: Any, config: Any, dtype: str) -> None:
    import gguf

    params = _rope_parameters(config)
    head_dim = _head_dim(config)
    writer.add_vocab_size(int(config.vocab_size))
    writer.add_context_length(int(config.max_position_embeddings))
    writer.add_embedding_length(int(config.hidden_size))
    writer.add_block_count(int(config.num_hidden_layers))
    writer.add_feed_forward_length(int(config.intermediate_size))
    writer.add_head_count(int(config.num_attention_heads))
    writer.add_head_count_kv(int(getattr(config, "num_key_value_heads", None) or config.num_attention_heads))
    writer.add_key_length(head_dim)
    writer.add_value_length(head_dim)
    writer.add_rope_dimension_count(head_dim)
    writer.add_rope_freq_base(float(params["rope_theta"]))
    if str(params.get("rope_type") or params.get("type")) == "linear":
        writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        writer.add_rope_scaling_factor(float(params["factor"]))
    writer.add_layer_norm_rms_eps(float(config.rms_norm_eps))
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16 if dtype == "f16" else gguf.LlamaFileType.ALL_F32)


def _model_tensors(model: Any, config: Any, *, f16: bool) -> list[_Tensor]:
    import gguf

    n_head = int(config.num_attention_heads)
    n_kv = int(getattr(config, "num_key_value_heads", None) or n_head)
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, int(config.num_hidden_layers))
    state = model.state_dict()
    tied = _tied(model, config, state)
    out: list[_Tensor] = []
    for hf_name, tensor in state.items():
        if hf_name.endswith(".rotary_emb.inv_freq") or (tied and hf_name == "lm_head.weight"):
            continue
        gguf_name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if gguf_name is None:
            raise _refuse(f"GGUF export of the tensor {hf_name!r} (no llama GGUF name)")
        heads = (n_head, n_head) if hf_name.endswith(("q_proj.weight", "q_proj.bias")) else None
        if hf_name.endswith(("k_proj.weight", "k_proj.bias")):
            heads = (n_head, n_kv)
        shape = tuple(int(d) for d in tensor.shape)
        # Norms and every 1-D tensor stay f32, as llama.cpp's converter keeps them.
        half = f16 and len(shape) > 1 and not gguf_name.endswith("_norm.weight")
        out.append(_Tensor(gguf_name, shape, half, _loader(tensor, heads)))
    return out


def _tied(model: Any, config: Any, state: dict[str, Any]) -> bool:
    """Whether the output layer is the embedding matrix itself (SmolLM2, Llama 3.2 1B/3B)."""
    if "lm_head.weight" not in state:
        return True
    same = state["lm_head.weight"].data_ptr() == state["model.embed_tokens.weight"].data_ptr()
    return bool(getattr(config, "tie_word_embeddings", False)) and same


def _loader(tensor: Any, heads: tuple[int, int] | None) -> Callable[[], Any]:
    def load() -> Any:
        import numpy

        from unitune.providers.local._infer import as_float32_array

        data = as_float32_array(tensor)
        if heads is not None:
            data = permute(data, *heads)  # reshape/swapaxes: the same on a NumPy array as on a tensor
        return numpy.ascontiguousarray(data)

    return load


def _vocabulary(writer: Any, tokenizer: Any, tokenizer_dir: Path, vocab_size: int) -> None:
    """The tokenizer as llama.cpp's converter writes a GPT-2-style BPE (`_set_vocab_gpt2`)."""
    import gguf

    definition = _tokenizer_json(tokenizer_dir)
    model = definition.get("model") or {}
    if model.get("type") != "BPE" or definition.get("normalizer") is not None:
        kind = model.get("type", "unknown")
        raise _refuse(f"GGUF export of a {kind} tokenizer with a normalizer" if model.get("type") == "BPE"
                      else f"GGUF export of a {kind} tokenizer (only byte-level BPE)")  # fmt: skip
    tokens, types = _tokens(tokenizer, vocab_size)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(_pre_tokenizer(definition.get("pre_tokenizer")))
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    special = gguf.SpecialVocab(tokenizer_dir, load_merges=True, n_vocab=vocab_size)
    if not special.merges:
        raise _refuse("GGUF export of a BPE tokenizer without merges")
    # What the tokenizer really does to a prompt, so llama.cpp adds (or not) the same BOS / EOS.
    ids = list(tokenizer("a", add_special_tokens=True)["input_ids"])
    special.add_special_token["bos"] = bool(ids) and ids[0] == tokenizer.bos_token_id and len(ids) > 1
    special.add_special_token["eos"] = len(ids) > 1 and ids[-1] == tokenizer.eos_token_id
    special.add_to_gguf(writer, quiet=True)


def _tokenizer_json(folder: Path) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads((folder / "tokenizer.json").read_text("utf-8"))
    except (OSError, ValueError):
        raise _refuse(
            "GGUF export of a tokenizer without tokenizer.json (a slow or SentencePiece one)"
        ) from None
    return data


def _tokens(tokenizer: Any, vocab_size: int) -> tuple[list[str], list[int]]:
    """Tokens by id and their types, as `get_vocab_base` in llama.cpp's converter makes them."""
    import gguf

    by_id = {i: t for t, i in tokenizer.get_vocab().items()}
    added = tokenizer.get_added_vocab()
    decoders = tokenizer.added_tokens_decoder
    if by_id and max(by_id) >= vocab_size:
        raise _refuse(f"GGUF export of a tokenizer with ids past the model's vocab_size ({vocab_size})")
    tokens: list[str] = []
    types: list[int] = []
    for i in range(vocab_size):
        token = by_id.get(i)
        if token is None:
            tokens.append(f"[PAD{i}]")  # an id the model has and the tokenizer never produces
            types.append(gguf.TokenType.UNUSED)
            continue
        if token in added:
            if not decoders[i].normalized:  # llama.cpp expects added tokens in their normalized form
                token = tokenizer.decode(tokenizer.encode(token, add_special_tokens=False))
            special = decoders[i].special or (token.startswith("<|") and token.endswith("|>"))
            types.append(gguf.TokenType.CONTROL if special else gguf.TokenType.USER_DEFINED)
        else:
            types.append(gguf.TokenType.NORMAL)
        tokens.append(token)
    return tokens, types


def _pre_tokenizer(definition: dict[str, Any] | None) -> str:
    """llama.cpp's name for the tokenizer's pre-tokenizer.

    llama.cpp's converter tells them apart by hashing the tokens of a test text; the definition itself
    says the same and also covers a copy whose vocabulary differs from the reference model's (the offline
    SmolLM2, rebuilt from a GGUF).
    """
    pieces = tuple(_pieces(definition))
    name = _PRE_TOKENIZERS.get(pieces)
    if name is None:
        raise _refuse(
            f"GGUF export of a tokenizer whose pre-tokenizer llama.cpp may not know ({' + '.join(pieces)})"
        )
    return name


def _pieces(p: dict[str, Any] | None) -> list[str]:
    if p is None:
        return ["none"]
    kind = p.get("type")
    if kind == "Sequence":
        return [piece for inner in p.get("pretokenizers", []) for piece in _pieces(inner)]
    if kind == "ByteLevel":
        if p.get("add_prefix_space"):
            return ["bytes-with-prefix-space"]
        return ["gpt2-regex" if p.get("use_regex", True) else "bytes"]
    if kind == "Digits" and p.get("individual_digits"):
        return ["digits"]
    pattern = (p.get("pattern") or {}).get("Regex")
    if (
        kind == "Split"
        and pattern == _LLAMA3_SPLIT
        and p.get("behavior") == "Isolated"
        and not p.get("invert")
    ):
        return ["llama3-regex"]
    return [str(kind)]
