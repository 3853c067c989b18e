"""What still works on Mistral after the retirement of its fine-tuning API: your tuned models
(list, rename, archive) and calling them; and what creating a job says now.

Runs on the in-process fake provider by default (no key, no network):

    python examples/mistral_models.py

On Mistral:

    UNITUNE_PROVIDER=mistral MISTRAL_API_KEY=... python examples/mistral_models.py
"""

import os

from unitune import FineTuneClient, ProviderRetiredError, UnsupportedFeatureError
from unitune.demo.tickets import write_jsonl


def main() -> None:
    client = FineTuneClient(os.environ.get("UNITUNE_PROVIDER", "fake"))

    try:
        tuned = client.models()
    except UnsupportedFeatureError as e:  # the fake keeps no tuned models
        print(f"{client.provider_name}: {e}")
        tuned = []
    for model in tuned:
        state = "archived" if model.archived else "active"
        print(f"{model.id}  base={model.base_model}  job={model.job_id}  {state}")
    active = [m for m in tuned if not m.archived]
    if active:
        print(client.chat(active[0].id, "My order #12345 is late.").content)

    model = "open-mistral-7b" if client.provider_name == "mistral" else "gpt-4o-mini"
    try:
        job = client.create_job(model=model, training_data=write_jsonl("tickets.jsonl", n=60))
        print(f"created {job.id} on {client.provider_name}")
    except ProviderRetiredError as e:  # Mistral: training retired, with the live alternatives
        print(f"cannot train on {client.provider_name}: {e}")
        print("move to:", ", ".join(e.alternatives))


if __name__ == "__main__":
    main()
