"""The README example: validate, price, train, wait, call — on the fake provider (no keys, no network).

Run: python examples/quickstart.py      (UNITUNE_PROVIDER=together with TOGETHER_API_KEY runs it there)
"""

import os

from unitune import Dataset, FineTuneClient, Hyperparameters
from unitune.demo.tickets import write_jsonl

write_jsonl("tickets.jsonl", n=200)  # a seeded, generated support-ticket dataset
client = FineTuneClient(os.environ.get("UNITUNE_PROVIDER", "fake"))
data = Dataset.from_jsonl("tickets.jsonl")
print(client.validate(data, model="llama-3.1-8b-instruct").summary())  # provider-aware checks, line numbers
print(
    client.estimate(data, model="llama-3.1-8b-instruct", hyperparameters=Hyperparameters(epochs=3)).summary()
)
job = client.create_job(model="llama-3.1-8b-instruct", training_data=data, hyperparameters=Hyperparameters(epochs=3),
                        max_cost_usd=25, idempotency_key="tickets-v1")  # fmt: skip
job = client.wait(job, on_update=lambda j: print(j.status, f"{j.progress or 0:.0%}"))
print(client.chat(job.fine_tuned_model or "", "My order #12345 is late").content)
