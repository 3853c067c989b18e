"""`unitune demo`: the whole lifecycle, visibly, on the generated support-ticket dataset.

Upload → create → wait (progress bar) → events → loss curve → chat with the tuned model. On the
`fake` provider the job runs in this process on a real clock (a few seconds), so every step shows.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from unitune.client import FineTuneClient
from unitune.demo.tickets import generate
from unitune.types import Hyperparameters

__all__ = ["run_demo"]

DEMO_MODEL = "smollm2-135m-instruct"


def _write_split(examples: int, workdir: Path) -> tuple[Path, Path, list[dict[str, Any]]]:
    """80/20 split by position of a seeded shuffle (the generator is already seeded)."""
    rows = list(generate(examples))
    cut = int(len(rows) * 0.8)
    train, valid = workdir / "train.jsonl", workdir / "valid.jsonl"
    for path, part in ((train, rows[:cut]), (valid, rows[cut:])):
        with path.open("w", encoding="utf-8") as fh:
            fh.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in part)
    return train, valid, rows[cut:]


def _client(provider: str) -> FineTuneClient:
    if provider != "fake":
        return FineTuneClient(provider)
    from unitune._clock import SystemClock
    from unitune.providers.fake import FakeProvider, FakeSettings

    # A real clock and short steps: the demo shows a job moving, and takes seconds.
    fake = FakeProvider(FakeSettings(advance="clock", seconds_per_step=0.6), clock=SystemClock())
    return FineTuneClient(fake)


def run_demo(
    *,
    provider: str = "fake",
    examples: int = 200,
    workdir: Path | None = None,
    console: Console | None = None,
) -> dict[str, Any]:
    """Run the demo and return what happened (job, loss curve, a sample reply) as a dict."""
    say = console.print if console is not None else (lambda *a, **k: None)
    work = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="unitune-demo-"))
    work.mkdir(parents=True, exist_ok=True)
    client = _client(provider)
    say(f"[bold]unitune demo[/] on provider [cyan]{client.provider.name}[/]")
    if client.provider.name == "fake":
        say("[dim]The fake provider simulates training in-process; its replies are canned.[/]")

    train, valid, held_out = _write_split(examples, work)
    say(f"1. dataset: {examples} generated support tickets → {train.name} / {valid.name} in {work}")
    train_ref = client.upload(train)
    valid_ref = client.upload(valid, purpose="validation")
    say(f"2. uploaded: {train_ref.id} ({train_ref.size_bytes:,} bytes), {valid_ref.id}")

    job = client.create_job(
        model=DEMO_MODEL,
        training_data=train_ref,
        validation_data=valid_ref,
        hyperparameters=Hyperparameters(epochs=3, learning_rate=2e-4),
        suffix="triage",
    )
    say(f"3. created job {job.id} ({job.status.value})")
    if console is not None:
        from unitune.cli._app import _wait_with_progress

        job = _wait_with_progress(client, job.id, poll_interval=0.3)
    else:
        job = client.wait(job, poll_interval=0.3)
    say(f"4. finished: {job.status.value}; fine-tuned model [bold]{escape(job.fine_tuned_model or '')}[/]")

    events = client.events(job)
    metrics = client.metrics(job)
    if console is not None:
        table = Table("event", "message", title="5. events")
        for e in events:
            table.add_row(e.created_at.strftime("%H:%M:%S"), escape(e.message))
        console.print(table)
        curve = Table("epoch", "step", "train loss", "valid loss", title="6. loss curve")
        for m in metrics:
            if m.valid_loss is not None:
                curve.add_row(f"{m.epoch:g}", str(m.step), f"{m.train_loss:.4f}", f"{m.valid_loss:.4f}")
        console.print(curve)

    ticket = held_out[0]["messages"]
    assert job.fine_tuned_model is not None  # wait() returns only succeeded jobs
    reply = client.chat(job.fine_tuned_model, ticket[:2])
    say("7. chat with the tuned model")
    say(f"   user: {escape(ticket[1]['content'])}\n   model: {escape(reply.content)}")
    say(f"[green]done[/]: {len(metrics)} training steps, final train loss {metrics[-1].train_loss:.4f}")
    return {
        "provider": client.provider.name,
        "workdir": str(work),
        "job": job.model_dump(mode="json"),
        "events": len(events),
        "metrics": [m.model_dump(mode="json") for m in metrics],
        "reply": reply.content,
    }
