"""Tune Gemini 3.5 Flash on Vertex AI, call the tuned model's endpoint, and look at its checkpoints.

Runs on the in-process fake provider by default, impersonating Vertex AI (its catalog, data rules, wire
format, statuses and refusals; no account, no network, seconds):

    python examples/vertex_finetune.py

On Vertex AI (project, region and bucket in unitune.toml or GOOGLE_CLOUD_PROJECT / GOOGLE_CLOUD_LOCATION,
credentials from `gcloud auth application-default login`; see docs/vertex.md):

    UNITUNE_PROVIDER=vertex python examples/vertex_finetune.py
"""

import os

from unitune import FineTuneClient, Hyperparameters
from unitune.data import Dataset, split
from unitune.demo.tickets import write_jsonl
from unitune.testing import FakeProvider


def main() -> None:
    if os.environ.get("UNITUNE_PROVIDER"):
        client = FineTuneClient(os.environ["UNITUNE_PROVIDER"])
    else:  # the fake as Vertex AI: it refuses what Vertex AI would, with the settings Vertex AI needs
        fake = FakeProvider().as_provider(
            "vertex", project="demo", location="us-central1", bucket="demo-data"
        )
        client = FineTuneClient(fake)
    model = "gemini-3.5-flash"

    parts = split(Dataset.from_jsonl(write_jsonl("tickets.jsonl", n=200)), "tickets-split", seed=1)
    print(client.validate(parts.train, model=model).summary())
    print(client.estimate(parts.train, model=model, hyperparameters=Hyperparameters(epochs=2)).summary())

    # lora_rank is Vertex AI's adapter size (1, 2, 4, 8 or 16).
    job = client.create_job(model=model, training_data=parts.train, validation_data=parts.validation,
                            hyperparameters=Hyperparameters(epochs=2, lora_rank=4), suffix="triage",
                            idempotency_key="tickets-gemini-v1")  # fmt: skip
    job = client.wait(job, on_update=lambda j: print(f"  {j.status} (raw: {j.raw_status})"))
    for checkpoint in client.checkpoints(job):
        print(f"checkpoint at step {checkpoint.step}: {checkpoint.model}")
    print(client.chat(job.fine_tuned_model or "", "I was charged twice this month.").content)


if __name__ == "__main__":
    main()
