"""How long a local training job will take, worked out before it starts.

How long a local training job will take, worked out before it starts, so that a $0 quote cannot
hide that an 8B model on a laptop CPU would train for days.

    seconds = start-up + epochs × (4·N·training tokens + 2·N·validation tokens) / device FLOP/s

* N: the parameters every token passes through (all the model's matrices; the embedding lookup is
  free and a tied output head counts once), from the model's `config.json` when it is on this machine
  (a folder, the Hugging Face cache, the unitune cache; only the config is read, never the weights),
  else from the publishers' configs of the catalog's models kept below, else from a size in the name
  ("…-7B-…"), else unknown (no estimate, no refusal).
* 4·N per training token: the forward pass (2·N) and the backward pass through the frozen weights to
  the activations (2·N). LoRA leaves out the frozen weights' own gradients (the other 2·N of the usual
  6·N) and adds well under 1% for its small matrices at r=16. Validation is forward only (2·N). The
  attention scores (a few % at these lengths) are left out.
* Tokens: 4 characters a token plus a chat template's few tokens per message, each example cut at
  `max_seq_length` as the trainer cuts it. On the demo's tickets this counts 10% fewer tokens than
  SmolLM2's tokenizer (17.5k against 19.5k): close enough for telling hours from days, and it needs
  no tokenizer (loading one takes seconds). Epochs are the trainer's own choice (`pick_defaults`).
* Device FLOP/s: measured for CPUs (below), assumed for GPUs.

Nothing here imports torch unless the device setting is "auto" on a machine with a GPU driver.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from unitune.errors import ConfigurationError
from unitune.types import content_text

__all__ = [
    "CPU_FLOPS_PER_CORE",
    "CUDA_FLOPS_PER_GPU",
    "STARTUP_SECONDS",
    "TrainingEstimate",
    "TrainingTooLongError",
    "count_params",
    "count_tokens",
    "estimate_training",
    "format_duration",
    "limit_hours",
    "model_params",
    "training_device",
]

#: Effective fp32 FLOP/s of one CPU core running this trainer: the FLOPs counted as above over the
#: wall time of the training phase (padding, optimizer steps, Python and validation passes included).
#: Measured on this project's 2-vCPU AMD EPYC VM (AVX-512 with BF16, no AMX: fp32; torch 2.13 CPU),
#: SmolLM2-135M-Instruct (N = 134.5M), batch 8, logits only at labelled positions, exact token counts:
#:   - the trainer benchmark, quiet machine (bench/README.md, "Local trainer benchmark": 73,293
#:     training tokens over 3 epochs, 3 validation passes of ~6,100 tokens, 349.2 s; about 324 s once
#:     its step-time slip is corrected, see bench_trainer.py): 127-137 GFLOP/s;
#:   - the demo's job, quiet machine (docs/local.md, "The demo, measured": 40 steps at ~4.2 s): ~125;
#:   - the demo's job, machine shared with other work (bench/README.md, "Issue 16"): 82-88.
#: 60 GFLOP/s a core (120 on 2) sits at the quiet runs, a little below. Scaled linearly with the
#: cores training uses: a CPU with AMX trains in bf16 and is faster, many cores scale worse than
#: linearly (memory bandwidth), so on a big machine the estimate is low, and a refusal there stands.
CPU_FLOPS_PER_CORE = 60e9

#: Effective FLOP/s of one GPU, assumed (no GPU was available to measure here): a mid-range card
#: (RTX 3090 / A10 / L4 class, ~70-125 TFLOP/s of dense bf16 at peak) at the 15-25% of peak an eager
#: PyTorch LoRA loop with bf16 autocast reaches. Conservative: an A100 or H100 is several times faster,
#: so there the estimate errs long; a GPU without bf16 (T4, V100) trains in fp32 and is slower.
CUDA_FLOPS_PER_GPU = 15e12

#: Worker start-up before the first step: starting Python, importing torch, transformers and peft,
#: loading the model, tokenizing. Measured 7 s for SmolLM2-135M on the 2-vCPU VM (the job's events:
#: created to the first step, less one step); larger models load longer, but then training dominates.
STARTUP_SECONDS = 10.0

_CHARS_PER_TOKEN = 4
#: What a chat template adds per message: ChatML's `<|im_start|>role\n … <|im_end|>\n` is 5 tokens.
_TOKENS_PER_MESSAGE = 5
#: Files are parsed up to this many bytes; beyond it, tokens are extrapolated by bytes (a 1 GB file
#: is estimated in about a second, not parsed whole before training even starts).
_PARSE_BYTES = 64 * 2**20

Device = Literal["cpu", "cuda"]

# The publishers' config.json values for the catalog's models (catalog/data/local.toml), for when
# the model is not on this machine yet (the worker fetches it). From the models' Hugging Face pages.
_KNOWN_CONFIGS: dict[str, dict[str, Any]] = {
    "smollm2-135m-instruct": {"hidden_size": 576, "num_hidden_layers": 30, "intermediate_size": 1536,
                              "vocab_size": 49152, "num_attention_heads": 9, "num_key_value_heads": 3,
                              "tie_word_embeddings": True},
    "llama-3.2-1b-instruct": {"hidden_size": 2048, "num_hidden_layers": 16, "intermediate_size": 8192,
                              "vocab_size": 128256, "num_attention_heads": 32, "num_key_value_heads": 8,
                              "tie_word_embeddings": True},
    "llama-3.2-3b-instruct": {"hidden_size": 3072, "num_hidden_layers": 28, "intermediate_size": 8192,
                              "vocab_size": 128256, "num_attention_heads": 24, "num_key_value_heads": 8,
                              "tie_word_embeddings": True},
    "llama-3.1-8b-instruct": {"hidden_size": 4096, "num_hidden_layers": 32, "intermediate_size": 14336,
                              "vocab_size": 128256, "num_attention_heads": 32, "num_key_value_heads": 8},
    "qwen2.5-7b-instruct": {"hidden_size": 3584, "num_hidden_layers": 28, "intermediate_size": 18944,
                            "vocab_size": 152064, "num_attention_heads": 28, "num_key_value_heads": 4},
    "qwen3-8b": {"hidden_size": 4096, "num_hidden_layers": 36, "intermediate_size": 12288,
                 "vocab_size": 151936, "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 128},
}  # fmt: skip

# Model types whose MLP is two matrices (up, down) rather than a gated three (gate, up, down).
_PLAIN_MLP = frozenset(
    {"gpt2", "gpt_neo", "gptj", "gpt_neox", "gpt_bigcode", "opt", "bloom", "falcon", "phi", "codegen", "mpt"}
)


class TrainingTooLongError(ConfigurationError):
    """The local job's estimated training time is above the limit. Nothing was started.

    The limit is `[providers.local] max_training_hours`, or `provider_options["max_training_hours"]`
    for one job. `estimate` is the `TrainingEstimate`, `limit_hours` the limit it exceeded.
    """

    def __init__(self, estimate: TrainingEstimate, limit_hours: float) -> None:
        self.estimate = estimate
        self.limit_hours = limit_hours
        suggested = max(1, math.ceil((estimate.seconds or 0) / 3600 * 1.25))
        super().__init__(
            f"{estimate.sentence()}, above the limit of {limit_hours:g} hours; nothing was started.",
            fix=f"Use a GPU, a smaller model or less data, or raise the limit: [providers.local] "
            f"max_training_hours = {suggested} (0 turns the check off), or "
            f"provider_options={{'max_training_hours': {suggested}}} for this job.",
        )


@dataclasses.dataclass(frozen=True)
class TrainingEstimate:
    """What `estimate_training` worked out, and from what."""

    model: str
    #: All the model's parameters, as published ("8B"); None: unknown, so no estimate.
    params: int | None
    #: The parameters a token's matrix products go through (N in the formula).
    token_params: int | None
    #: Where the sizes came from: "config.json", "known config", "model name" or "unknown".
    params_source: str
    examples: int
    #: Training tokens in one epoch (approximate: see the module docstring).
    train_tokens: int
    valid_tokens: int
    epochs: int
    device: Device
    #: CPU cores (device "cpu") or GPUs (device "cuda") training uses.
    units: int
    flops_per_second: float
    #: Start-up included; None when the model's size is unknown.
    seconds: float | None

    @property
    def flops(self) -> float | None:
        """Floating-point operations the whole run does (None when the model's size is unknown)."""
        n = self.token_params
        if n is None:
            return None
        return self.epochs * (4 * n * self.train_tokens + 2 * n * self.valid_tokens)

    def where(self) -> str:
        """The device in words: "this CPU (2 cores)", "one GPU", "4 GPUs"."""
        if self.device == "cpu":
            return f"this CPU ({self.units} core{'s' if self.units != 1 else ''})"
        return "one GPU" if self.units == 1 else f"{self.units} GPUs"

    def sentence(self) -> str:
        """The estimate as one sentence.

        One line: "Training Llama-3.1-8B-Instruct (8.0B parameters) on 1.2M tokens × 3 epochs on
        this CPU (2 cores) would take about 11 days".
        """
        size = f" ({_si(self.params)} parameters)" if self.params is not None else ""
        head = (
            f"Training {_short(self.model)}{size} on {_si(self.train_tokens)} tokens × {self.epochs} "
            f"epoch{'s' if self.epochs != 1 else ''} on {self.where()}"
        )
        if self.seconds is None:
            return f"{head}: no time estimate (the model's size is unknown)"
        return f"{head} would take about {format_duration(self.seconds)}"

    def as_data(self) -> dict[str, Any]:
        """The estimate as JSON-ready fields (for the job's spec and events)."""
        return {**dataclasses.asdict(self), "flops": self.flops}


def format_duration(seconds: float) -> str:
    """A duration the way a person says it: "40 s", "4 min", "6.5 hours", "10 days"."""
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} min"
    hours = seconds / 3600
    if hours < 36:
        return f"{hours:.1f} hours" if hours < 10 else f"{round(hours)} hours"
    days = hours / 24
    return f"{days:.1f} days" if days < 10 else f"{round(days)} days"


def _si(n: float) -> str:
    for factor, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if n >= factor:
            value = n / factor
            return f"{value:.1f}{suffix}" if value < 10 else f"{round(value)}{suffix}"
    return str(round(n))


def _short(model: str) -> str:
    return model.rstrip("/").rsplit("/", 1)[-1] or model


# -- model size ------------------------------------------------------------------------------------


def _int(cfg: Mapping[str, Any], *keys: str) -> int | None:
    for key in keys:
        value = cfg.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def count_params(config: Mapping[str, Any]) -> tuple[int, int] | None:
    """Count a decoder-only model's parameters from its `config.json`.

    (all parameters, parameters a token passes through) of a decoder-only model, from its Hugging
    Face `config.json`: attention (grouped-query aware) and MLP matrices of every layer, the output
    head and, when untied, the input embedding. A token skips the input embedding (a lookup) and, in a
    mixture of experts, the experts it is not routed to. None when the config lacks the sizes.
    """
    if isinstance(config.get("text_config"), Mapping):  # multimodal configs nest the language model
        config = {**config, **config["text_config"]}
    hidden = _int(config, "hidden_size", "n_embd", "d_model")
    layers = _int(config, "num_hidden_layers", "n_layer", "num_layers")
    vocab = _int(config, "vocab_size")
    if hidden is None or layers is None or vocab is None:
        return None
    heads = _int(config, "num_attention_heads", "n_head") or max(1, hidden // 64)
    kv_heads = _int(config, "num_key_value_heads", "num_kv_heads") or heads
    head_dim = _int(config, "head_dim") or hidden // heads
    attention = 2 * hidden * heads * head_dim + 2 * hidden * kv_heads * head_dim  # q, o; k, v
    matrices = 2 if config.get("model_type") in _PLAIN_MLP else 3
    routed = _int(config, "num_experts_per_tok", "num_experts_per_token", "moe_topk")
    experts = _int(config, "num_local_experts", "num_experts", "n_routed_experts")
    if routed is not None and experts is not None:
        expert = _int(config, "moe_intermediate_size", "intermediate_size") or 4 * hidden
        shared = (_int(config, "n_shared_experts") or 0) * expert + (
            _int(config, "shared_expert_intermediate_size") or 0
        )
        mlp_all = matrices * hidden * (experts * expert + shared)
        mlp_token = matrices * hidden * (min(routed, experts) * expert + shared)
    else:
        mlp_all = mlp_token = (
            matrices * hidden * (_int(config, "intermediate_size", "n_inner", "ffn_dim") or 4 * hidden)
        )
    head = vocab * hidden
    embedding = 0 if config.get("tie_word_embeddings", False) else vocab * hidden
    return layers * (attention + mlp_all) + head + embedding, layers * (attention + mlp_token) + head


def _hf_cache_config(repo: str) -> Path | None:
    """`config.json` of `repo` if the Hugging Face cache has it (never downloads)."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    try:
        found = try_to_load_from_cache(repo, "config.json")
    except Exception:  # a name that is not a repo id (the hub library raises its own validation errors)
        return None
    return Path(found) if isinstance(found, str) else None


def _local_config(model: str) -> Path | None:
    from unitune.config import cache_dir

    folder = Path(model).expanduser()
    if (folder / "config.json").is_file():
        return folder / "config.json"
    if "/" in model and not model.startswith(("/", ".", "~")):
        converted = cache_dir() / "models" / model.replace("/", "--") / "config.json"
        if converted.is_file():
            return converted
        return _hf_cache_config(model)
    return None


_SIZE_IN_NAME = re.compile(r"(?<![\d.x])(\d+(?:\.\d+)?)([bm])(?![a-z])")


def model_params(model: str) -> tuple[tuple[int, int] | None, str]:
    """The parameter counts of `model` and where they came from.

    (all parameters, parameters a token passes through) of `model`, and where they came from:
    "config.json", "known config", "model name" or "unknown" (see the module docstring).
    """
    path = _local_config(model)
    if path is not None:
        try:
            config = json.loads(path.read_text("utf-8"))
        except (OSError, ValueError):
            config = None
        if isinstance(config, dict):
            sizes = count_params(config)
            if sizes is not None:
                return sizes, "config.json"
    name = _short(model).lower()
    if name in _KNOWN_CONFIGS:
        return count_params(_KNOWN_CONFIGS[name]), "known config"
    found = _SIZE_IN_NAME.findall(name)
    if found:
        number, unit = found[-1]
        params = int(float(number) * (1e9 if unit == "b" else 1e6))
        return (params, params), "model name"
    return None, "unknown"


# -- tokens ------------------------------------------------------------------------------------------


def _example_tokens(record: Any, max_len: int) -> int:
    messages = record.get("messages") if isinstance(record, dict) else None
    if not isinstance(messages, list):
        return 0
    chars = 0
    for m in messages:
        if not isinstance(m, dict):
            continue
        content = m.get("content")
        chars += len(content_text(content if isinstance(content, str | list) else None))
        if m.get("tool_calls"):
            chars += len(json.dumps(m["tool_calls"], ensure_ascii=False))
    tokens = math.ceil(chars / _CHARS_PER_TOKEN) + _TOKENS_PER_MESSAGE * len(messages)
    return min(tokens, max_len)  # the trainer cuts every example at max_seq_length


def count_tokens(path: Path, max_len: int, *, parse_bytes: int = _PARSE_BYTES) -> tuple[int, int]:
    """(examples, approximate tokens) of a JSONL chat file.

    Lines past `parse_bytes` are counted, not parsed: their tokens are extrapolated from the parsed
    part's tokens per byte.
    """
    examples = tokens = parsed_bytes = 0
    rest_bytes = 0
    with path.open("rb") as fh:
        for line in fh:
            if not line.strip():
                continue
            examples += 1
            if parsed_bytes >= parse_bytes:
                rest_bytes += len(line)
                continue
            parsed_bytes += len(line)
            try:
                tokens += _example_tokens(json.loads(line), max_len)
            except ValueError:
                continue  # validation reports bad lines; an estimate skips them
    if rest_bytes and parsed_bytes:
        tokens += round(tokens * rest_bytes / parsed_bytes)
    return examples, tokens


# -- device ------------------------------------------------------------------------------------------


def _gpu_driver_present() -> bool:
    """Whether this machine could have a CUDA (or ROCm) device at all, asked without importing torch."""
    if sys.platform == "darwin":
        return False  # no CUDA on macOS; the trainer does not use MPS
    if not sys.platform.startswith("linux"):
        return True  # cannot tell cheaply (Windows): let torch say
    return any(Path(p).exists() for p in ("/dev/nvidiactl", "/proc/driver/nvidia/gpus", "/dev/kfd"))


def training_device(setting: str) -> Device:
    """The device the worker will train on, as `_train.train` decides it ("auto": CUDA if torch sees one).

    torch is imported only when a GPU driver is present, so the CPU-only path stays cheap.
    """
    if setting == "cpu":
        return "cpu"
    if setting == "cuda":
        return "cuda"
    if "torch" not in sys.modules:
        import importlib.util

        if not _gpu_driver_present() or importlib.util.find_spec("torch") is None:
            return "cpu"
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


# -- the estimate ------------------------------------------------------------------------------------


def estimate_training(
    model: str,
    training: Path,
    validation: Path | None,
    hyperparameters: Mapping[str, Any],
    settings: Mapping[str, Any],
    *,
    device: Device | None = None,
) -> TrainingEstimate:
    """Estimate a local job's training time.

    Estimate a local job: `hyperparameters` and `settings` as the job's spec.json holds them
    (a `Hyperparameters` and `LocalSettings` dumped to JSON). `device` skips asking torch.
    """
    from unitune.providers.local._train import pick_defaults

    max_len = int(settings.get("max_seq_length") or 1024)
    examples, train_tokens = count_tokens(training, max_len)
    valid_tokens = count_tokens(validation, max_len)[1] if validation is not None else 0
    epochs = pick_defaults(examples, dict(hyperparameters), dict(settings)).epochs
    where = device or training_device(str(settings.get("device") or "auto"))
    processes = int(settings.get("num_processes") or 1)
    if where == "cuda":
        units, rate = processes, processes * CUDA_FLOPS_PER_GPU
    else:
        # The cores the trainer gives torch: `threads` per process if set, else all of them shared
        # out; more threads than cores buy nothing.
        cores = os.cpu_count() or 1
        threads = settings.get("threads")
        units = min(cores, int(threads) * processes) if threads else cores
        rate = units * CPU_FLOPS_PER_CORE
    sizes, source = model_params(model)
    estimate = TrainingEstimate(
        model=model, params=sizes[0] if sizes else None, token_params=sizes[1] if sizes else None,
        params_source=source, examples=examples, train_tokens=train_tokens, valid_tokens=valid_tokens,
        epochs=epochs, device=where, units=units, flops_per_second=rate, seconds=None,
    )  # fmt: skip
    flops = estimate.flops
    if flops is None:
        return estimate
    return dataclasses.replace(estimate, seconds=STARTUP_SECONDS + flops / rate)


def limit_hours(option: Any, setting: float | None) -> float | None:
    """The training-time limit that applies, in hours.

    The limit that applies: the job's `provider_options["max_training_hours"]` if given, else the
    setting; None (or 0) means no limit.
    """
    if option is None:
        return setting or None
    if isinstance(option, bool) or not isinstance(option, int | float) or option < 0:
        raise ConfigurationError(
            f"provider_options max_training_hours must be a number of hours ≥ 0, not {option!r}.",
            fix="Pass e.g. provider_options={'max_training_hours': 48}, or 0 to turn the check off.",
        )
    return float(option) or None
