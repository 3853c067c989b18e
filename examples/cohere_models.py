"""Your tuned Cohere models after the 2025-09-15 deprecation: list them, read a job's loss curve,
call one. Creating a new fine-tune says what happened and where to go.

Runs on the in-process fake provider by default (no key, no network):

    python examples/cohere_models.py

On Cohere:

    UNITUNE_PROVIDER=cohere CO_API_KEY=... python examples/cohere_models.py
"""

import os

from unitune import FineTuneClient, ProviderRetiredError, UnsupportedFeatureError
from unitune.demo.tickets import write_jsonl


def main() -> None:
    client = FineTuneClient(os.environ.get("UNITUNE_PROVIDER", "fake"))

    for job in client.list_jobs(limit=5):
        print(f"{job.id}: {job.status} (raw: {job.raw_status}) model={job.fine_tuned_model}")
        if job.action_required:
            print(f"  note: {job.action_required}")
        losses = [m.train_loss for m in client.metrics(job) if m.train_loss is not None]
        if losses:
            print(f"  train loss {losses[0]:.3f} → {losses[-1]:.3f} over {len(losses)} steps")
    try:
        ready = [m.id for m in client.models()]
    except UnsupportedFeatureError:  # the fake keeps no tuned models
        ready = []
    if ready:
        print(client.chat(ready[0], "Summarise: the parcel arrived damaged.").content)

    model = "command-r-08-2024" if client.provider_name == "cohere" else "gpt-4o-mini"
    try:
        job = client.create_job(model=model, training_data=write_jsonl("tickets.jsonl", n=60))
        print(f"created {job.id} on {client.provider_name}")
    except ProviderRetiredError as e:
        print(f"cannot train on {client.provider_name}: {e}")


if __name__ == "__main__":
    main()
