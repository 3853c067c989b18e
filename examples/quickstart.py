"""The README example: validate, price, train, wait, call — on the fake provider (no keys, no network).

Run: python examples/quickstart.py      (UNITUNE_PROVIDER=together with TOGETHER_API_KEY runs it there)
"""

import os

from unitune import Dataset, FineTuneClient, Hyperparameters
from unitune.demo.tickets import write_jsonl

write_jsonl("tickets.jsonl", n=200)  # a seeded, generated support-ticket dataset
client = FineTuneClient(os.environ.get("UNITUNE_PROVIDER", "fake"))
model = "llama-3.1-8b-instruct"  # a portable alias: each provider's own id for Llama 3.1 8B Instruct
data = Dataset.from_jsonl("tickets.jsonl")
print(client.validate(data, model=model).summary())  # provider-aware checks, line numbers
quote = client.estimate(data, model=model, hyperparameters=Hyperparameters(epochs=3))
print(quote.summary())
budget = 25.0  # refuse to start a job quoted above $25
if quote.total_usd is None:
    # The catalog has no dated training price for this model here (Bedrock's Llama 3.1 8B, for one):
    # no quote, so no budget to check. Add the price in a catalog file (docs/catalog.md) to keep one.
    print(f"No training price for {model} on {client.provider_name}: running without max_cost_usd.")
    budget = None
job = client.create_job(model=model, training_data=data, hyperparameters=Hyperparameters(epochs=3),
                        max_cost_usd=budget, idempotency_key="tickets-v1")  # fmt: skip
job = client.wait(job, on_update=lambda j: print(j.status, f"{j.progress or 0:.0%}"))
print(client.chat(job.fine_tuned_model or "", "My order #12345 is late").content)
