"""Fine-tune on OpenAI, follow the job, call the tuned model and compare it with the base model.

Runs on the in-process fake provider by default (no key, no network, seconds):

    python examples/openai_finetune.py

The same code on OpenAI (while it still takes new jobs: until 2027-01-06, see docs/openai.md):

    UNITUNE_PROVIDER=openai OPENAI_API_KEY=sk-... python examples/openai_finetune.py
"""

import os

from unitune import FineTuneClient, Hyperparameters, JobFailedError
from unitune.data import Dataset, split
from unitune.demo.tickets import write_jsonl


def main() -> None:
    provider = os.environ.get("UNITUNE_PROVIDER", "fake")
    client = FineTuneClient(provider)
    model = "gpt-4o-mini"  # a catalog alias: gpt-4o-mini-2024-07-18 on OpenAI

    parts = split(Dataset.from_jsonl(write_jsonl("tickets.jsonl", n=200)), "tickets-split", seed=1)
    print(client.validate(parts.train, model=model).summary())
    quote = client.estimate(parts.train, model=model, hyperparameters=Hyperparameters(epochs=2))
    print(quote.summary())

    job = client.create_job(
        model=model,
        training_data=parts.train,
        validation_data=parts.validation,
        hyperparameters=Hyperparameters(epochs=2),
        suffix="triage",
        idempotency_key="tickets-triage-v1",  # running this again returns the same job
        max_cost_usd=10,
    )
    print(f"job {job.id}: {job.status} (raw: {job.raw_status})")
    try:
        job = client.wait(job, on_update=lambda j: print(f"  {j.status} {j.progress or 0:.0%}"))
    except JobFailedError as e:
        print(f"the job ended {e.job.status}: {e.job.error}")
        raise SystemExit(1) from e

    for event in client.events(job)[-5:]:
        print(f"  [{event.level}] {event.message}")
    losses = [(m.step, m.train_loss) for m in client.metrics(job) if m.train_loss is not None]
    print(
        f"train loss: {losses[0][1]:.3f} at step {losses[0][0]} → {losses[-1][1]:.3f} at step {losses[-1][0]}"
    )
    if client.provider.capabilities.checkpoints:
        for ckpt in client.checkpoints(job):
            print(f"  checkpoint at step {ckpt.step}: {ckpt.model}")

    tuned = job.fine_tuned_model or ""
    print(client.chat(tuned, "My order #12345 is three weeks late and nobody answers.").content)
    report = client.evaluate(tuned, parts.validation, baseline=model, max_examples=20)
    print(report.verdict)


if __name__ == "__main__":
    main()
