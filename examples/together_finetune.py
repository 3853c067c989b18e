"""LoRA fine-tune of Llama 3.1 8B on Together: unitune's quote beside Together's own estimate,
the job with evaluations and checkpoints, the loss curve, and the tuned model called.

Runs on the in-process fake provider by default (no key, no network, seconds):

    python examples/together_finetune.py

The same code on Together:

    UNITUNE_PROVIDER=together TOGETHER_API_KEY=... python examples/together_finetune.py
"""

import os

from unitune import FineTuneClient, Hyperparameters
from unitune.data import Dataset, split
from unitune.demo.tickets import write_jsonl


def main() -> None:
    client = FineTuneClient(os.environ.get("UNITUNE_PROVIDER", "fake"))
    model = "llama-3.1-8b-instruct"  # a catalog alias: meta-llama/Meta-Llama-3.1-8B-Instruct-Reference on Together
    hp = Hyperparameters(
        epochs=3,
        learning_rate=1e-4,
        lora_rank=16,
        lora_alpha=32,
        # Together-only knobs, checked by name: evaluations and checkpoints along the way.
        provider_options={"n_checkpoints": 3} if client.provider.name == "together" else {},
    )

    parts = split(Dataset.from_jsonl(write_jsonl("tickets.jsonl", n=300)), "tickets-split", seed=1)
    print(client.estimate(parts.train, model=model, hyperparameters=hp).summary())  # unitune's own quote

    job = client.create_job(model=model, training_data=parts.train, validation_data=parts.validation,
                            hyperparameters=hp, suffix="triage", idempotency_key="tickets-llama-v1",
                            max_cost_usd=20)  # fmt: skip
    estimate = getattr(client.provider, "price_estimates", {}).get(job.id)
    if estimate:  # Together's own estimate, asked before the job was created
        print(f"Together estimates ${estimate.get('estimated_total_price', 0):.2f} for this job")

    job = client.wait(
        job, on_update=lambda j: print(f"  {j.status} (raw: {j.raw_status}) {j.progress or 0:.0%}")
    )
    for m in client.metrics(job):
        if m.valid_loss is not None:
            print(f"  step {m.step}: validation loss {m.valid_loss:.3f}")
    if client.provider.capabilities.checkpoints:
        for ckpt in client.checkpoints(job):
            print(f"  checkpoint {ckpt.id}")
    print(client.chat(job.fine_tuned_model or "", "The invoice charged me twice this month.").content)


if __name__ == "__main__":
    main()
