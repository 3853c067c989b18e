"""The LoRA trainer the local worker runs.

Assistant-only loss through the tokenizer's chat template, optional packing, bf16 autocast where the
hardware has it, validation loss every epoch.

A plain PyTorch loop rather than a framework trainer: on this kind of machine a plain PEFT loop took
149 s where TRL's SFTTrainer took 238 s for the same run and loss (bench/README.md),
and a loop of our own keeps every step observable and cancellable.
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from unitune.providers.local._store import JobDir
from unitune.types import StepMetric, content_text

__all__ = ["Cancelled", "MaskError", "TrainConfig", "causal_lm_loss", "encode_chat", "pick_defaults", "train"]


class Cancelled(Exception):
    """Raised inside the loop when cancellation was requested."""


class MaskError(ValueError):
    """The chat template cannot locate assistant tokens for the loss mask.

    The chat template does not render conversations prefix-consistently, so assistant tokens
    cannot be located for the loss mask.
    """


@dataclass
class TrainConfig:
    epochs: int
    learning_rate: float
    batch_size: int
    lora_rank: int
    lora_alpha: float
    seed: int
    max_seq_length: int
    packing: bool
    device: str  # "auto" | "cpu" | "cuda"
    group_by_length: bool = False
    threads: int | None = None


def pick_defaults(n_examples: int, hp: dict[str, Any], settings: dict[str, Any]) -> TrainConfig:
    """Hyperparameters with defaults chosen from the dataset size (smaller data: more epochs)."""
    epochs = hp.get("epochs") or (3 if n_examples < 1_000 else 2 if n_examples < 10_000 else 1)
    return TrainConfig(
        epochs=int(epochs),
        # 5e-4 converged in 75 steps on SmolLM2-135M with r=16 (the demo's measured run, docs/local.md).
        learning_rate=float(hp.get("learning_rate") or 5e-4),
        batch_size=int(hp.get("batch_size") or max(1, min(8, n_examples))),
        lora_rank=int(hp.get("lora_rank") or 16),
        lora_alpha=float(hp.get("lora_alpha") or 2 * int(hp.get("lora_rank") or 16)),
        seed=int(hp["seed"]) if hp.get("seed") is not None else 0,
        max_seq_length=int(settings.get("max_seq_length") or 1024),
        packing=bool(hp.get("provider_options", {}).get("packing", settings.get("packing", False))),
        group_by_length=bool(
            hp.get("provider_options", {}).get("group_by_length", settings.get("group_by_length", False))
        ),
        device=str(settings.get("device") or "auto"),
        threads=settings.get("threads"),
    )


def _render(tokenizer: Any, messages: list[dict[str, Any]], *, generation_prompt: bool = False) -> str:
    text: str = tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=generation_prompt
    )
    return text


def encode_chat(
    tokenizer: Any, messages: Sequence[dict[str, Any]], max_len: int
) -> tuple[list[int], list[int]]:
    """Token ids and labels for one conversation.

    Labels are the ids on assistant turns (weight ≠ 0) and -100 (ignored by the loss) everywhere else.

    Each assistant turn's characters are found by rendering the conversation up to that turn with
    and without it, so any chat template works as long as it renders prefixes consistently (checked:
    `MaskError` otherwise).
    """
    clean = [{"role": m["role"], "content": content_text(m.get("content"))} for m in messages]
    text = _render(tokenizer, clean)
    spans: list[tuple[int, int]] = []
    for i, m in enumerate(messages):
        if m.get("role") != "assistant" or m.get("weight", 1) == 0:
            continue
        before = _render(tokenizer, clean[:i], generation_prompt=True)
        upto = _render(tokenizer, clean[: i + 1])
        if not (text.startswith(before) and text.startswith(upto) and len(upto) > len(before)):
            raise MaskError("the chat template does not render conversation prefixes consistently")
        spans.append((len(before), len(upto)))
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids: list[int] = list(enc["input_ids"])[:max_len]
    offsets = list(enc["offset_mapping"])[:max_len]
    labels = [
        tid if any(s <= start < e for s, e in spans) else -100
        for tid, (start, _end) in zip(ids, offsets, strict=True)
    ]
    return ids, labels


def _read_rows(path: Path) -> list[list[dict[str, Any]]]:
    rows = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                rows.append(json.loads(line)["messages"])
    return rows


def _pack(items: list[tuple[list[int], list[int]]], max_len: int) -> list[tuple[list[int], list[int]]]:
    """Pack whole examples greedily into rows of at most `max_len` tokens.

    Greedy packing of whole examples into rows of at most `max_len` tokens (examples attend to
    their row neighbours; cheap and usually harmless for short SFT data, hence off by default).
    """
    rows: list[tuple[list[int], list[int]]] = []
    ids: list[int] = []
    labels: list[int] = []
    for i, lab in items:
        if ids and len(ids) + len(i) > max_len:
            rows.append((ids, labels))
            ids, labels = [], []
        ids, labels = ids + i, labels + lab
    if ids:
        rows.append((ids, labels))
    return rows


def _bf16_ok(device: str) -> bool:
    import torch

    if device == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    # Only AMX makes bf16 pay on a CPU. Measured on a 2-vCPU Xeon with AVX512-BF16 but no AMX
    # (SmolLM2-135M, LoRA, batch 8 × ~120 tokens): 9.6 s a step under bf16 autocast, 6.9 s in fp32.
    return "amx_bf16" in flags


def _length_grouped(lengths: Sequence[int], batch_size: int, rng: random.Random) -> list[list[int]]:
    """Batches of similar length, in random order.

    The order is shuffled, cut into groups of 50 batches, each group sorted by length and cut into
    batches, and the batches shuffled. Less padding per batch for the same examples per epoch (the
    sampler `transformers` calls `group_by_length`).
    """
    order = list(range(len(lengths)))
    rng.shuffle(order)
    group = 50 * batch_size
    out: list[list[int]] = []
    for start in range(0, len(order), group):
        chunk = sorted(order[start : start + group], key=lambda i: -lengths[i])
        out.extend(chunk[k : k + batch_size] for k in range(0, len(chunk), batch_size))
    rng.shuffle(out)
    return out


def _accepts_logits_to_keep(model: Any) -> bool:
    import inspect

    try:
        return "logits_to_keep" in inspect.signature(model.get_base_model().forward).parameters
    except (AttributeError, TypeError, ValueError):
        return False


def causal_lm_loss(
    model: Any, ids: Any, labels: Any, mask: Any, *, device: str, bf16: bool, keep_logits: bool
) -> Any:
    """Mean cross-entropy over the labelled tokens (labels ≠ -100), as the model's own loss.

    With `keep_logits`, logits are computed only at the positions that predict a labelled token:
    the vocabulary projection and its softmax are a large share of a small model's step, and prompt
    positions need neither (SmolLM2-135M on 2 CPU cores: 6.9 s → 5.0 s a step). Same loss.
    """
    import torch

    targets = labels[:, 1:]
    positions = (targets != -100).any(0).nonzero().squeeze(1)
    with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=bf16):
        # An empty index would mean "every position" to some models: take the plain path then.
        if not keep_logits or positions.numel() == 0:
            return model(input_ids=ids, attention_mask=mask, labels=labels).loss
        logits = model(input_ids=ids, attention_mask=mask, logits_to_keep=positions).logits
    return torch.nn.functional.cross_entropy(
        logits.float().reshape(-1, logits.shape[-1]), targets[:, positions].reshape(-1), ignore_index=-100
    )


class _Silent:
    """What a non-zero rank writes to the job: nothing (rank 0 owns the files)."""

    def event(self, *args: Any, **kwargs: Any) -> None:
        pass

    def metric(self, *args: Any, **kwargs: Any) -> None:
        pass

    def update(self, *args: Any, **kwargs: Any) -> None:
        pass


def _shard(groups: list[list[int]], rank: int, world: int) -> list[list[int]]:
    """This rank's batches.

    Every rank gets the same number (the list is padded by wrapping around), because data-parallel steps
    must match across ranks.
    """
    if world == 1:
        return groups
    per_rank = math.ceil(len(groups) / world)
    padded = [groups[k % len(groups)] for k in range(per_rank * world)]
    return padded[rank::world]


#: One encoded example (or packed row): token ids, and labels with -100 where the loss ignores a token.
_Encoded = tuple[list[int], list[int]]


@dataclass(frozen=True)
class _Placement:
    """Where this process trains and how it reaches the others: decided once, before the model loads."""

    device: str  # "cuda" or "cpu": the kind of device, as autocast names it
    where: Any  # where this rank's tensors go: `device`, or the rank's own GPU under accelerate
    acc: Any  # the Accelerator when several processes train data-parallel; None in a single process
    rank: int
    world: int
    bf16: bool  # autocast to bf16 (only where it pays: see _bf16_ok)


def _place(cfg: TrainConfig, rank: int, world: int) -> _Placement:
    """The device to train on, joining the process group when there are several.

    The device to train on (an unavailable CUDA asked for by name is an error, "auto" falls back
    to the CPU), joining the process group that `accelerate launch` set up when there are several.
    """
    import torch

    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device = 'cuda' was asked for, but PyTorch sees no CUDA device")
    device = "cuda" if cfg.device in ("auto", "cuda") and torch.cuda.is_available() else "cpu"
    acc: Any = None
    where: Any = device
    if world > 1:
        from accelerate import Accelerator

        acc = Accelerator(cpu=device == "cpu")  # joins the process group accelerate launch set up
        where = acc.device  # this rank's GPU (or the CPU)
    return _Placement(device=device, where=where, acc=acc, rank=rank, world=world, bf16=_bf16_ok(device))


def _encode_items(
    tokenizer: Any,
    train_rows: list[list[dict[str, Any]]],
    valid_rows: list[list[dict[str, Any]]],
    cfg: TrainConfig,
    out: Any,
) -> tuple[list[_Encoded], list[_Encoded]]:
    """The training and validation examples encoded for the loss, packed when asked for.

    Examples whose assistant tokens were all cut off at `max_seq_length` are left out: the loss has
    nothing to learn from them (a warning event counts the training ones), and none left at all is
    an error.
    """
    train_items = [encode_chat(tokenizer, r, cfg.max_seq_length) for r in train_rows]
    valid_items = [encode_chat(tokenizer, r, cfg.max_seq_length) for r in valid_rows]
    usable = [x for x in train_items if any(lab != -100 for lab in x[1])]
    if len(usable) < len(train_items):
        # Truncation at max_seq_length cut off every assistant token: nothing to learn from these.
        out.event(f"{len(train_items) - len(usable)} training examples have no assistant tokens within "
                  f"{cfg.max_seq_length} tokens and are skipped", level="warning")  # fmt: skip
    if not usable:
        raise ValueError("no training example has an assistant turn within max_seq_length tokens")
    train_items = usable
    valid_items = [x for x in valid_items if any(lab != -100 for lab in x[1])]
    if cfg.packing:
        train_items = _pack(train_items, cfg.max_seq_length)
    return train_items, valid_items


def _batches(
    items: list[_Encoded],
    cfg: TrainConfig,
    place: _Placement,
    pad_id: int,
    *,
    shuffle: bool,
    rng: random.Random,
    pad: bool,
) -> Iterator[tuple[Any, Any, Any]]:
    """This rank's batches of `items` as padded (ids, labels, attention mask) tensors on its device.

    With `pad`, every rank gets the same number of batches (see `_shard`), as training steps need;
    validation takes a plain share instead, so no example is counted twice.
    """
    import torch

    if shuffle and cfg.group_by_length:
        groups = _length_grouped([len(i) for i, _ in items], cfg.batch_size, rng)
    else:
        order = list(range(len(items)))
        if shuffle:
            rng.shuffle(order)
        groups = [order[k : k + cfg.batch_size] for k in range(0, len(order), cfg.batch_size)]
    # Every rank draws the same order (same seed) and takes its share of it.
    mine = _shard(groups, place.rank, place.world) if pad else groups[place.rank :: place.world]
    for group in mine:
        chunk = [items[i] for i in group]
        width = max(len(ids) for ids, _ in chunk)
        ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)
        labels = torch.full((len(chunk), width), -100, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for row, (i, lab) in enumerate(chunk):
            ids[row, : len(i)] = torch.tensor(i)
            labels[row, : len(lab)] = torch.tensor(lab)
            mask[row, : len(i)] = 1
        yield ids.to(place.where), labels.to(place.where), mask.to(place.where)


def _stop_now(should_stop: Callable[[], bool], main: bool, place: _Placement) -> bool:
    """Whether to stop here: rank 0 (`main`) asks `should_stop` and every rank follows its answer."""
    import torch

    asked = main and should_stop()
    if place.acc is None:
        return asked
    flag = torch.tensor([1.0 if asked else 0.0], device=place.where)
    torch.distributed.broadcast(flag, src=0)  # rank 0 decides, every rank stops at the same step
    return bool(flag.item())


def _validation_loss(
    plain: Any,
    items: list[_Encoded],
    rng: random.Random,
    cfg: TrainConfig,
    place: _Placement,
    pad_id: int,
    keep_logits: bool,
) -> float:
    """The mean loss per labelled token over the validation set, summed across every rank's share.

    Runs on the unwrapped model (`plain`), so no rank waits in a DDP collective meanwhile.
    """
    import torch

    plain.eval()
    losses, weights = [], []
    with torch.no_grad():
        for ids, labels, mask in _batches(items, cfg, place, pad_id, shuffle=False, rng=rng, pad=False):
            n = int((labels[:, 1:] != -100).sum())
            if n == 0:
                continue  # the mean over zero tokens is NaN and would poison the epoch's loss
            loss = causal_lm_loss(
                plain, ids, labels, mask, device=place.device, bf16=place.bf16, keep_logits=keep_logits
            )
            losses.append(float(loss) * n)
            weights.append(n)
    sums = torch.tensor([sum(losses), float(sum(weights))], dtype=torch.float64, device=place.where)
    if place.acc is not None:
        torch.distributed.all_reduce(sums)  # every rank's share of the validation set
    return float(sums[0] / max(1.0, float(sums[1])))


def train(job: JobDir, base_path: Path, should_stop: Callable[[], bool], *, main: bool = True) -> None:
    """Train the job's LoRA adapter; write metrics, events and progress to `job` as it goes.

    Under `accelerate launch` (WORLD_SIZE > 1) it trains data-parallel: each rank takes its share of
    every epoch's batches, gradients are averaged by DDP, and only rank 0 (`main`) writes the job's
    files; rank 0's stop decision is broadcast so that every rank stops at the same step.
    """
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    spec = job.spec()
    settings: dict[str, Any] = spec.get("settings", {})
    train_rows = _read_rows(Path(spec["training_path"]))
    valid_rows = _read_rows(Path(spec["validation_path"])) if spec.get("validation_path") else []
    cfg = pick_defaults(len(train_rows), spec["hyperparameters"], settings)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    out: Any = job if main else _Silent()
    # Processes share the cores: each gets its share, or they slow each other down.
    torch.set_num_threads(cfg.threads or max(1, (os.cpu_count() or 1) // world))
    torch.manual_seed(cfg.seed)
    place = _place(cfg, rank, world)
    out.event(f"loading {spec['model']} on {place.device} ({'bf16 autocast' if place.bf16 else 'fp32'})"
              + (f", {world} processes (data-parallel)" if world > 1 else ""))  # fmt: skip

    tokenizer = AutoTokenizer.from_pretrained(base_path)
    if tokenizer.chat_template is None:
        raise MaskError(f"{spec['model']} has no chat template; use an instruct/chat model")
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    model: Any = AutoModelForCausalLM.from_pretrained(base_path, dtype=torch.float32)
    model = model.to(place.where)
    model = get_peft_model(
        model,
        LoraConfig(r=cfg.lora_rank, lora_alpha=cast(int, cfg.lora_alpha), lora_dropout=0.0,
                   target_modules="all-linear", task_type="CAUSAL_LM"),  # peft types alpha as int; floats work
    )  # fmt: skip

    if should_stop():
        raise Cancelled
    train_items, valid_items = _encode_items(tokenizer, train_rows, valid_rows, cfg, out)
    trained_tokens = sum(len(i) for i, _ in train_items) * cfg.epochs
    steps_per_epoch = math.ceil(math.ceil(len(train_items) / cfg.batch_size) / world)
    total = steps_per_epoch * cfg.epochs
    out.update(total_steps=total)
    out.event(
        f"training {len(train_items)} examples × {cfg.epochs} epochs = {total} steps "
        f"(LoRA r={cfg.lora_rank}, alpha={cfg.lora_alpha:g}, lr={cfg.learning_rate:g}, batch {cfg.batch_size})",
        hyperparameters=cfg.__dict__,
    )

    keep_logits = _accepts_logits_to_keep(model)
    plain = model  # unwrapped: validation runs on it, so no rank waits in a DDP collective
    if place.acc is not None:
        model = place.acc.prepare_model(model)  # DistributedDataParallel: gradients averaged across ranks
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=0.0)
    warmup = max(1, total // 20)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / warmup) * max(0.0, (total - s) / max(1, total - warmup))
    )

    rng = random.Random(cfg.seed)
    step = 0
    started = time.monotonic()
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        for ids, labels, mask in _batches(train_items, cfg, place, pad_id, shuffle=True, rng=rng, pad=True):
            if _stop_now(should_stop, main, place):
                raise Cancelled
            loss = causal_lm_loss(
                model, ids, labels, mask, device=place.device, bf16=place.bf16, keep_logits=keep_logits
            )
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            value = float(place.acc.reduce(loss.detach(), "mean") if place.acc is not None else loss.detach())
            out.metric(StepMetric(step=step, epoch=round(step / steps_per_epoch, 4), train_loss=round(value, 6),
                                  learning_rate=scheduler.get_last_lr()[0]))  # fmt: skip
            out.update(step=step, progress=min(0.99, step / total))
            if step == 1 or step % max(1, total // 10) == 0:
                rate = step / max(1e-9, time.monotonic() - started)
                out.event(f"step {step}/{total}: train loss {value:.4f} ({rate:.2f} steps/s)", type="metrics",
                          step=step, train_loss=value)  # fmt: skip
        if valid_items:
            valid = _validation_loss(plain, valid_items, rng, cfg, place, pad_id, keep_logits)
            out.metric(StepMetric(step=step, epoch=float(epoch), valid_loss=round(valid, 6)))
            out.event(
                f"epoch {epoch}: validation loss {valid:.4f}", type="metrics", epoch=epoch, valid_loss=valid
            )
    if _stop_now(should_stop, main, place):
        raise Cancelled
    if place.acc is not None:
        place.acc.wait_for_everyone()
    if main:
        plain.save_pretrained(job.adapter_path)
    out.update(trained_tokens=trained_tokens)
    out.event(f"saved the LoRA adapter to {job.adapter_path}")
