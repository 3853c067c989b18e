"""The README example: the whole lifecycle in ten lines, on the fake provider (no keys, no network).

Run: python examples/quickstart.py   (set UNITUNE_PROVIDER to run it on another provider)
"""

from unitune import FineTuneClient, Hyperparameters
from unitune.demo.tickets import write_jsonl

write_jsonl("tickets.jsonl", n=100)  # a seeded, generated support-ticket dataset
client = FineTuneClient("fake")  # or FineTuneClient.from_config(): provider from unitune.toml
job = client.create_job(model="llama-3.1-8b-instruct", training_data="tickets.jsonl",
                        hyperparameters=Hyperparameters(epochs=3), idempotency_key="tickets-v1")  # fmt: skip
job = client.wait(job, on_update=lambda j: print(j.status, f"{j.progress:.0%}"))
print("final train loss:", client.metrics(job)[-1].train_loss)
print(client.chat(job.fine_tuned_model, "My order #12345 is late").content)
