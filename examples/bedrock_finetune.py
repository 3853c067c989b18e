"""Fine-tune Nova Micro on AWS Bedrock, deploy it on demand, call it, and stop paying.

Runs on the in-process fake provider by default (no account, no network, seconds):

    python examples/bedrock_finetune.py

On Bedrock (bucket, role and region in unitune.toml, see docs/bedrock.md):

    UNITUNE_PROVIDER=bedrock python examples/bedrock_finetune.py
"""

import os

from unitune import FineTuneClient, Hyperparameters
from unitune.data import Dataset, split
from unitune.demo.tickets import write_jsonl


def main() -> None:
    client = FineTuneClient(os.environ.get("UNITUNE_PROVIDER", "fake"))
    model = "nova-micro"  # amazon.nova-micro-v1:0:128k on Bedrock (us-east-1)

    parts = split(Dataset.from_jsonl(write_jsonl("tickets.jsonl", n=200)), "tickets-split", seed=1)
    print(client.validate(parts.train, model=model).summary())  # Nova's Converse-format rules
    print(client.estimate(parts.train, model=model, hyperparameters=Hyperparameters(epochs=2)).summary())

    job = client.create_job(model=model, training_data=parts.train, validation_data=parts.validation,
                            hyperparameters=Hyperparameters(epochs=2), suffix="triage",
                            idempotency_key="tickets-nova-v1", max_cost_usd=10)  # fmt: skip
    job = client.wait(job, on_update=lambda j: print(f"  {j.status} (raw: {j.raw_status})"))
    losses = [m.train_loss for m in client.metrics(job) if m.train_loss is not None]
    if losses:
        print(f"train loss {losses[0]:.3f} → {losses[-1]:.3f}")

    deploy = getattr(client.provider, "deploy", None)
    if deploy is None:  # providers that serve tuned models directly
        print(client.chat(job.fine_tuned_model or "", "I was charged twice this month.").content)
        return
    deployment = deploy(job)  # on-demand: billed per token, no hourly charge
    try:
        print(client.chat(deployment.arn, "I was charged twice this month.").content)
    finally:
        client.provider.undeploy(deployment)  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
