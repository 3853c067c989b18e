"""Local trainer vs TRL's SFTTrainer: same model, data, hyperparameters and threads (issue 5, "Speed").

    python bench/bench_trainer.py                       # both, 200 train / 50 validation examples, 3 epochs
    python bench/bench_trainer.py --only unitune --json out.json
    python bench/bench_trainer.py --estimate            # the demo's job: create_job's estimate vs measured

Each side runs in its own fresh process (`--child`), so neither inherits the other's warm caches,
threads or allocator state. Measured per side:

- `train_s`: the training phase alone (first optimizer step to the end of the last epoch, validation
  passes included, because both sides evaluate once per epoch); `total_s`: create to saved adapter
  (unitune: the job's own timestamps) or process start to the end of `train()` (TRL), model loading
  and tokenization included.
- tokens/s: non-padding tokens of the training examples × epochs / `train_s` (prompt tokens included:
  they pass through the model too, only their loss is masked).
- final validation loss: recomputed by this script for both final models with the same function
  (token-weighted mean over assistant tokens), so the two trainers' own, differently averaged
  figures do not decide the comparison.

`--estimate` (issue 16) runs the job `make demo` runs (its 200 generated tickets split 80/20 with
seed 0, 2 epochs, learning rate 5e-4) and compares the time `LocalProvider.estimate_training` gives
before it starts with the job's measured time, and derives the trainer's effective FLOP/s on this
machine from exact token counts (the calibration of `_estimate.CPU_FLOPS_PER_CORE`).

TRL runs with the conversational prompt-completion format (`completion_only_loss`), which masks the
same tokens as unitune's assistant-only loss on these single-turn examples, `use_cpu` when no GPU,
no checkpoints, no reporting. Install it with `pip install -e ".[bench]"`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"
HP = {"epochs": 3, "batch_size": 8, "learning_rate": 5e-4, "lora_rank": 16, "lora_alpha": 32, "seed": 0}
MAX_LEN = 1024


def _data(workdir: Path, n_train: int, n_valid: int) -> tuple[Path, Path]:
    from unitune.data import Dataset, split
    from unitune.demo.tickets import write_jsonl

    # The split is by hashed rank, so the counts are close to, not exactly, n_train / n_valid.
    src = write_jsonl(workdir / "tickets.jsonl", n=n_train + n_valid, seed=7)
    parts = split(Dataset.from_jsonl(src), workdir, validation_fraction=n_valid / (n_train + n_valid), seed=7)
    return parts.train_path, parts.validation_path


def _rows(path: Path) -> list[list[dict[str, Any]]]:
    return [json.loads(line)["messages"] for line in path.read_text("utf-8").splitlines() if line.strip()]


def _valid_loss(model: Any, tokenizer: Any, rows: list[list[dict[str, Any]]]) -> float:
    """Token-weighted mean loss over assistant tokens, one example at a time (no padding effects)."""
    import torch

    from unitune.providers.local._train import encode_chat

    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for messages in rows:
            ids, labels = encode_chat(tokenizer, messages, MAX_LEN)
            n = sum(1 for x in labels[1:] if x != -100)
            if n == 0:
                continue
            out = model(input_ids=torch.tensor([ids]), labels=torch.tensor([labels]))
            total += float(out.loss) * n
            count += n
    return total / max(1, count)


def _tokens(tokenizer: Any, rows: list[list[dict[str, Any]]]) -> int:
    from unitune.providers.local._train import encode_chat

    return sum(len(encode_chat(tokenizer, r, MAX_LEN)[0]) for r in rows)


def _seconds_per_step(steps: list[Any]) -> float:
    """Seconds a step from the job's "step N/M" events, which come at step 1 and every tenth of the
    run (not every step): the time between the first and last over the steps between them. (Before
    issue 16 this divided by the number of events instead, which made `train_s` about 6 steps too
    long, ~8%, in the table of bench/README.md's "Local trainer benchmark".)"""
    if len(steps) < 2:
        return 0.0
    span = int(steps[-1].data["step"]) - int(steps[0].data["step"])
    return (steps[-1].created_at - steps[0].created_at).total_seconds() / max(1, span)


def run_unitune(train: Path, valid: Path, workdir: Path, *, group_by_length: bool = False) -> dict[str, Any]:
    os.environ["UNITUNE_HOME"] = str(workdir / "home")
    from unitune import FineTuneClient, Hyperparameters

    client = FineTuneClient("local")
    job = client.create_job(
        model="smollm2-135m-instruct",
        training_data=train,
        validation_data=valid,
        hyperparameters=Hyperparameters(**HP, provider_options={"group_by_length": group_by_length}),
    )
    job = client.wait(job.id, timeout=3600)
    # The job's own timestamps: the poll that notices the end comes up to a poll interval later.
    assert job.created_at is not None
    assert job.finished_at is not None
    total = (job.finished_at - job.created_at).total_seconds()
    if job.status.value != "succeeded":
        raise SystemExit(f"unitune job ended {job.status.value}: {job.error}")
    events = client.events(job.id)
    first = next(e for e in events if e.message.startswith("step 1/"))
    last = next(e for e in reversed(events) if e.message.startswith("epoch "))
    # "step 1/…" is written after the first step: add that step's time back from the metrics rate.
    steps = [e for e in events if e.message.startswith("step ")]
    per_step = _seconds_per_step(steps)
    train_s = (last.created_at - first.created_at).total_seconds() + per_step
    del steps

    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from unitune.providers.local._models import resolve_model_path

    base = resolve_model_path(MODEL)
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    adapter = next(Path(os.environ["UNITUNE_HOME"]).rglob(f"{job.id}/adapter"))
    model = PeftModel.from_pretrained(model, adapter)
    tokens = _tokens(tokenizer, _rows(train)) * HP["epochs"]
    return {
        "trainer": "unitune local" + (" (group_by_length on)" if group_by_length else ""),
        "train_s": round(train_s, 1),
        "total_s": round(total, 1),
        "tokens": tokens,
        "tokens_per_s": round(tokens / train_s, 1),
        "valid_loss": round(_valid_loss(model, tokenizer, _rows(valid)), 4),
        "valid_loss_reported": next(
            (m.valid_loss for m in reversed(client.metrics(job.id)) if m.valid_loss is not None), None
        ),
    }


def run_trl(train: Path, valid: Path, workdir: Path) -> dict[str, Any]:
    started = time.perf_counter()
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from unitune.providers.local._models import resolve_model_path

    torch.set_num_threads(os.cpu_count() or 1)
    base = resolve_model_path(MODEL)
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)

    def as_pc(rows: list[list[dict[str, Any]]]) -> Dataset:
        return Dataset.from_list([{"prompt": r[:-1], "completion": r[-1:]} for r in rows])

    cuda = torch.cuda.is_available()
    config = SFTConfig(
        output_dir=str(workdir / "trl"),
        num_train_epochs=HP["epochs"],
        per_device_train_batch_size=HP["batch_size"],
        per_device_eval_batch_size=HP["batch_size"],
        learning_rate=HP["learning_rate"],
        lr_scheduler_type="linear",
        # unitune's schedule: linear warm-up over 5% of the steps, then linear decay.
        warmup_steps=max(1, -(-len(_rows(train)) // HP["batch_size"]) * HP["epochs"] // 20),
        weight_decay=0.0,
        max_grad_norm=1.0,
        max_length=MAX_LEN,
        packing=False,
        completion_only_loss=True,
        eval_strategy="epoch",
        save_strategy="no",
        logging_steps=5,
        report_to="none",
        use_cpu=not cuda,
        bf16=cuda,
        seed=HP["seed"],
        dataloader_num_workers=0,
    )
    trainer = SFTTrainer(
        model=model,
        args=config,
        train_dataset=as_pc(_rows(train)),
        eval_dataset=as_pc(_rows(valid)),
        processing_class=tokenizer,
        peft_config=LoraConfig(
            r=HP["lora_rank"],
            lora_alpha=HP["lora_alpha"],
            lora_dropout=0.0,
            target_modules="all-linear",
            task_type="CAUSAL_LM",
        ),
    )
    t0 = time.perf_counter()
    trainer.train()
    train_s = time.perf_counter() - t0
    total = time.perf_counter() - started
    tokens = _tokens(tokenizer, _rows(train)) * HP["epochs"]
    reported = [h["eval_loss"] for h in trainer.state.log_history if "eval_loss" in h]
    return {
        "trainer": "TRL SFTTrainer",
        "train_s": round(train_s, 1),
        "total_s": round(total, 1),
        "tokens": tokens,
        "tokens_per_s": round(tokens / train_s, 1),
        "valid_loss": round(
            _valid_loss(trainer.model.cpu() if not cuda else trainer.model, tokenizer, _rows(valid)), 4
        ),
        "valid_loss_reported": reported[-1] if reported else None,
    }


def run_estimate(workdir: Path) -> dict[str, Any]:
    """The demo's job: the estimate create_job makes against the measured run (see the docstring)."""
    os.environ["UNITUNE_HOME"] = str(workdir / "home")
    from unitune import FineTuneClient, Hyperparameters
    from unitune.data import Dataset, split
    from unitune.demo.tickets import write_jsonl
    from unitune.providers.local import LocalProvider

    source = write_jsonl(workdir / "tickets.jsonl", 200)  # as src/unitune/demo/run.py makes them
    parts = split(Dataset.from_jsonl(source), workdir, validation_fraction=0.2, seed=0)
    hp = Hyperparameters(epochs=2, learning_rate=5e-4)
    client = FineTuneClient("local")
    provider = client.provider
    assert isinstance(provider, LocalProvider)
    estimate = provider.estimate_training(
        MODEL, parts.train_path, validation_data=parts.validation_path, hyperparameters=hp
    )
    load_before = os.getloadavg()
    job = client.create_job(
        model=MODEL, training_data=parts.train_path, validation_data=parts.validation_path, hyperparameters=hp
    )
    job = client.wait(job.id, timeout=3600)
    load_after = os.getloadavg()
    if job.status.value != "succeeded" or job.created_at is None or job.finished_at is None:
        raise SystemExit(f"the job ended {job.status.value}: {job.error}")
    total = (job.finished_at - job.created_at).total_seconds()
    events = client.events(job.id)
    steps = [e for e in events if e.message.startswith("step ")]
    last = next(e for e in reversed(events) if e.message.startswith("epoch "))
    per_step = _seconds_per_step(steps)
    startup = (steps[0].created_at - job.created_at).total_seconds() - per_step
    train_s = (last.created_at - steps[0].created_at).total_seconds() + per_step

    from transformers import AutoTokenizer

    from unitune.providers.local._models import resolve_model_path

    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path(MODEL))
    exact_train = _tokens(tokenizer, _rows(parts.train_path))
    exact_valid = _tokens(tokenizer, _rows(parts.validation_path))
    n = estimate.token_params or 0
    flops = estimate.epochs * (4 * n * exact_train + 2 * n * exact_valid)
    return {
        "estimate_s": round(estimate.seconds or 0, 1),
        "measured_s": round(total, 1),
        "estimate_over_measured": round((estimate.seconds or 0) / total, 2),
        "startup_s": round(startup, 1),
        "train_s": round(train_s, 1),
        "steps": sum(1 for m in client.metrics(job.id) if m.train_loss is not None),
        "epochs": estimate.epochs,
        "token_params": n,
        "tokens_estimated": [estimate.train_tokens, estimate.valid_tokens],
        "tokens_exact": [exact_train, exact_valid],
        "cores": estimate.units,
        "effective_gflops": round(flops / train_s / 1e9, 1),
        "effective_gflops_per_core": round(flops / train_s / 1e9 / estimate.units, 1),
        "loadavg_1min_before_after": [round(load_before[0], 2), round(load_after[0], 2)],
        "estimate_line": estimate.sentence(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--only", default="unitune,trl", help="unitune, unitune-grouped (group_by_length on), trl"
    )
    ap.add_argument("--train", type=int, default=200)
    ap.add_argument("--valid", type=int, default=50)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--estimate", action="store_true", help="the demo's job: estimate vs measured time")
    ap.add_argument("--child", choices=["unitune", "unitune-grouped", "trl"], help=argparse.SUPPRESS)
    ap.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.child:
        train, valid = args.workdir / "train.jsonl", args.workdir / "validation.jsonl"
        if args.child == "trl":
            result = run_trl(train, valid, args.workdir)
        else:
            result = run_unitune(train, valid, args.workdir, group_by_length=args.child == "unitune-grouped")
        print("RESULT " + json.dumps(result), flush=True)
        return

    if args.estimate:
        with tempfile.TemporaryDirectory(prefix="unitune-bench-") as tmp:
            result = run_estimate(Path(tmp))
        print(json.dumps(result, indent=2))
        if args.json:
            args.json.write_text(json.dumps(result, indent=2))
        return

    results = []
    with tempfile.TemporaryDirectory(prefix="unitune-bench-") as tmp:
        workdir = Path(tmp)
        train, valid = _data(workdir, args.train, args.valid)
        print(f"data: {len(_rows(train))} training, {len(_rows(valid))} validation examples", flush=True)
        for name in args.only.split(","):
            out = subprocess.run(
                [sys.executable, __file__, "--child", name, "--workdir", str(workdir)],
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            line = next((x for x in out.stdout.splitlines() if x.startswith("RESULT ")), None)
            if out.returncode or line is None:
                sys.stderr.write(out.stdout[-3000:] + out.stderr[-6000:])
                raise SystemExit(f"{name} failed (exit {out.returncode})")
            results.append(json.loads(line[7:]))
            print(json.dumps(results[-1]), flush=True)
    if [r["trainer"] for r in results] == ["unitune local", "TRL SFTTrainer"]:
        u, t = results
        print(f"\nunitune/TRL throughput: {u['tokens_per_s'] / t['tokens_per_s']:.2f}x "
              f"(train phase {u['train_s']} s vs {t['train_s']} s); "
              f"validation loss {u['valid_loss']} vs {t['valid_loss']}")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
