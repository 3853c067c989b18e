"""`unitune demo`: the whole job, visibly, on the generated support-ticket dataset.

Generate → validate → split 80/20 → quote → train (a local job, with a progress bar) → loss curve →
evaluate base zero-shot, base few-shot and tuned on the validation split → verdict with its interval,
break-even and an HTML report. On the default `local` provider this really
fine-tunes SmolLM2-135M-Instruct with LoRA, offline; `--provider fake` runs the same steps in seconds
with a simulated job.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from unitune._plot import loss_png
from unitune.client import FineTuneClient
from unitune.data import Dataset, split
from unitune.demo.tickets import write_jsonl
from unitune.types import Hyperparameters

__all__ = ["DEMO_MODEL", "run_demo"]

DEMO_MODEL = "smollm2-135m-instruct"
#: Shots for the few-shot baseline: three tickets keep the prompt within the 135M model's comfort
#: (and the demo's time budget) while being the comparison a careful engineer would make.
FEW_SHOT = 3


def _client(provider: str) -> FineTuneClient:
    if provider != "fake":
        return FineTuneClient(provider)
    from unitune._clock import SystemClock
    from unitune.providers.fake import FakeProvider, FakeSettings

    # A real clock and short steps: the demo shows a job moving, and takes seconds.
    return FineTuneClient(
        FakeProvider(FakeSettings(advance="clock", seconds_per_step=0.6), clock=SystemClock())
    )


def _cell(mean: float | None, low: float | None, high: float | None) -> str:
    if mean is None:
        return "—"
    return f"{mean:.2f}" + (f" [{low:.2f}, {high:.2f}]" if low is not None and high is not None else "")


def run_demo(
    *,
    provider: str = "local",
    examples: int = 200,
    eval_examples: int = 24,
    epochs: int = 2,
    workdir: Path | None = None,
    console: Console | None = None,
) -> dict[str, Any]:
    """Run the demo and return what happened (quote, job, loss curve, evaluation) as a dict."""
    say = console.print if console is not None else (lambda *a, **k: None)
    started = time.monotonic()
    work = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="unitune-demo-"))
    work.mkdir(parents=True, exist_ok=True)
    client = _client(provider)
    say(f"[bold]unitune demo[/] on provider [cyan]{client.provider.name}[/] — files in {escape(str(work))}")
    if client.provider.name == "fake":
        say("[dim]The fake provider simulates training in-process; its replies are canned.[/]")

    data_path = write_jsonl(work / "tickets.jsonl", examples)
    report = client.validate(Dataset.from_jsonl(data_path), model=DEMO_MODEL)
    say(f"1. dataset: {examples} generated support tickets; validation: {escape(report.summary())}")
    parts = split(Dataset.from_jsonl(data_path), work, validation_fraction=0.2, seed=0)
    say(f"2. split: {parts.train_examples} train / {parts.validation_examples} validation")
    hp = Hyperparameters(epochs=epochs, learning_rate=5e-4)
    quote = client.estimate(parts.train, model=DEMO_MODEL, hyperparameters=hp)
    say(f"3. quote: {escape(quote.summary())}")

    job = client.create_job(model=DEMO_MODEL, training_data=parts.train, validation_data=parts.validation,
                            hyperparameters=hp, suffix="triage")  # fmt: skip
    say(f"4. training job {escape(job.id)} ({job.status.value}) — it runs in the background")
    try:
        if console is not None:
            from unitune._progress import wait_with_progress

            job = wait_with_progress(client, job.id, console=console, poll_interval=1.0)
        else:
            job = client.wait(job, poll_interval=1.0)
    except KeyboardInterrupt:
        # The worker is detached on purpose (it outlives a closed terminal), so a demo stopped with
        # Ctrl-C must stop its job itself rather than leave it training in the background.
        client.cancel_job(job)
        say(f"stopped: job {escape(job.id)} cancelled")
        raise
    assert job.fine_tuned_model is not None  # wait() returns only succeeded jobs
    metrics = client.metrics(job)
    png = loss_png(metrics, work / "loss.png", title="unitune demo: ticket triage, LoRA")
    first = next((m.train_loss for m in metrics if m.train_loss is not None), None)
    last = next((m.train_loss for m in reversed(metrics) if m.train_loss is not None), None)
    valid = [m.valid_loss for m in metrics if m.valid_loss is not None]
    say(f"5. trained: {job.fine_tuned_model}; train loss {first} → {last}; validation loss by epoch {valid}")
    say(f"   loss curve: {escape(str(png)) if png else 'install unitune[plot] for a PNG'}")

    say(
        f"6. evaluating base (zero-shot and {FEW_SHOT}-shot) vs tuned on "
        f"{min(eval_examples, parts.validation_examples)} validation tickets…"
    )
    evaluation = client.evaluate(
        parts.validation, candidates=["base", f"base:few-shot={FEW_SHOT}", job], train_data=parts.train,
        max_examples=eval_examples, batch_size=8, output_dir=work / "evaluation",
        chat_params={"max_new_tokens": 64, "temperature": 0},  # a triage answer is ~45 tokens
    )  # fmt: skip
    if console is not None:
        # The primary metric and the two that say most about a JSON answer; report.html has them all.
        shown = list(dict.fromkeys([evaluation.primary_metric, "exact_match", "json_valid"]))
        shown = [name for name in shown if name in evaluation.metrics]
        table = Table(
            "candidate", *shown, "prompt tokens", title="7. evaluation (validation split, 95% intervals)"
        )
        for c in evaluation.candidates:
            cells = [_cell(c.metrics[name].mean, c.metrics[name].low, c.metrics[name].high) for name in shown]
            table.add_row(escape(c.name), *cells, f"{c.mean_prompt_tokens:,.0f}")
        console.print(table)
        if evaluation.samples:
            sample = evaluation.samples[0]
            say(f"   e.g. tuned: {escape(sample.answers.get(evaluation.tuned.name, '')[:160])}")
        for line in evaluation.break_even:
            say(f"   break-even vs {escape(line.baseline)}: {escape(line.note)}")
        say(f"   report: {escape(str(work / 'evaluation' / 'report.html'))}")
    verdict_style = {"ship": "green", "abandon": "red"}.get(evaluation.verdict.decision, "yellow")
    say(
        f"[bold {verdict_style}]verdict: {escape(str(evaluation.verdict))}[/] "
        f"(demo took {time.monotonic() - started:.0f} s)"
    )
    serve = f"unitune serve {job.fine_tuned_model}" if client.provider.name == "local" else None
    if serve is not None:
        # The one next step: the model just trained, behind an OpenAI-compatible API on this machine.
        say(f"serve it: [bold]{escape(serve)}[/]  (OpenAI-compatible API on http://127.0.0.1:8000/v1)")
    result = {
        "provider": client.provider.name,
        "workdir": str(work),
        "validation": report.summary(),
        "quote": quote.model_dump(mode="json"),
        "job": job.model_dump(mode="json"),
        "loss_png": str(png) if png else None,
        "metrics": [m.model_dump(mode="json", exclude_none=True) for m in metrics],
        "evaluation": evaluation.model_dump(mode="json"),
        "report_html": str(work / "evaluation" / "report.html"),
        "serve_command": serve,
        "seconds": round(time.monotonic() - started, 1),
    }
    (work / "demo-result.json").write_text(json.dumps(result, indent=2))
    return result
