# ruff: noqa
# Vendored copy of the format checks in OpenAI's chat fine-tuning data-prep notebook, for differential tests.
#
# Copied from: openai/openai-cookbook, examples/Chat_finetuning_data_prep.ipynb
#   @ b774cbf15fb77b121e8027c4a6ab862d250f0299 (the version with the 16,385-token limit; the format-check
#   cell is identical in the older 2e652704bf3df73cf35e46e26ebae692f5bd7b0c).
# Licence: MIT (openai/openai-cookbook).
#
# What is copied, verbatim apart from the plumbing listed below:
# - cell "Data loading": `with open(data_path, 'r', encoding='utf-8') as f: dataset = [json.loads(line) for
#   line in f]`, then `for message in dataset[0]["messages"]: print(message)`;
# - cell "Format validation" (`format_errors`), the loop over `dataset`.
# What is NOT copied: the token-counting/warning/cost cells (they need tiktoken and numpy, and only warn).
#   Note they would crash on inputs the format cell lets through: tiktoken's encode() raises on a non-string
#   message value (e.g. "weight": 1) and on special-token text such as "<|endoftext|>", and
#   `message["role"]` raises KeyError on a message without a role.
#
# What was changed (plumbing only):
# - The list comprehension that loads the file became an explicit loop so that the failing line is known;
#   `print(...)` calls were dropped (the "first example" loop is kept because it can crash).
# - The format loop records which example (line) each error belongs to, so `check()` can return one
#   refusal per (line, error type) instead of the notebook's counts per error type.
# - A crash (uncaught exception) stops the notebook at that point; `check()` returns the errors found
#   before it plus "crash: <Type>: <msg>".
from __future__ import annotations

import json
import pathlib
from collections import defaultdict
from typing import Any


def _load(data_path: pathlib.Path, first_example_print: bool) -> tuple[list[Any] | None, list]:
    # ---- cell "Data loading" ----
    # Load the dataset
    dataset = []
    lineno = 0
    try:
        with open(data_path, "r", encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):  # was: dataset = [json.loads(line) for line in f]
                try:
                    dataset.append(json.loads(line))
                except Exception as exc:
                    return None, [(lineno, f"crash: {type(exc).__name__}: {exc}")]
    except Exception as exc:  # e.g. UnicodeDecodeError while reading
        return None, [(None, f"crash: {type(exc).__name__}: {exc}")]

    if first_example_print:
        # Initial dataset stats
        # print("Num examples:", len(dataset))
        # print("First example:")
        try:
            for message in dataset[0]["messages"]:
                pass  # print(message)
        except Exception as exc:
            return None, [(1 if dataset else None, f"crash: {type(exc).__name__}: {exc}")]
    return dataset, []


def check(path: pathlib.Path, **options: Any) -> list[tuple[int | None, str]]:
    """Run the notebook's loading + format-validation cells on `path`.

    Returns one refusal per (line, error type) with the notebook's error-type key as the message
    (`data_type`, `missing_messages_list`, `message_missing_key`, `message_unrecognized_key`,
    `unrecognized_role`, `missing_content`, `example_missing_assistant_message`); [] means "No errors found".

    Options: `first_example_print` (default True): also run the loading cell's
    `for message in dataset[0]["messages"]: print(message)`, which crashes on an empty file or when line 1
    is not an object with an iterable "messages".
    """
    dataset, refusals = _load(path, bool(options.get("first_example_print", True)))
    if dataset is None:
        return refusals

    # ---- cell "Format validation" (verbatim, plus the per-line bookkeeping `errors_by_line`) ----
    # Format error checks
    format_errors = defaultdict(int)
    errors_by_line: dict[int, dict[str, None]] = defaultdict(dict)
    lineno = 0

    def _count(key: str) -> None:
        format_errors[key] += 1
        errors_by_line[lineno][key] = None

    try:
        for lineno, ex in enumerate(dataset, 1):
            if not isinstance(ex, dict):
                _count("data_type")  # format_errors["data_type"] += 1
                continue

            messages = ex.get("messages", None)
            if not messages:
                _count("missing_messages_list")  # format_errors["missing_messages_list"] += 1
                continue

            for message in messages:
                if "role" not in message or "content" not in message:
                    _count("message_missing_key")  # format_errors["message_missing_key"] += 1

                if any(k not in ("role", "content", "name", "function_call", "weight") for k in message):
                    _count("message_unrecognized_key")  # format_errors["message_unrecognized_key"] += 1

                if message.get("role", None) not in ("system", "user", "assistant", "function"):
                    _count("unrecognized_role")  # format_errors["unrecognized_role"] += 1

                content = message.get("content", None)
                function_call = message.get("function_call", None)

                if (not content and not function_call) or not isinstance(content, str):
                    _count("missing_content")  # format_errors["missing_content"] += 1

            if not any(message.get("role", None) == "assistant" for message in messages):
                _count("example_missing_assistant_message")
                # format_errors["example_missing_assistant_message"] += 1
    except Exception as exc:
        crash = (lineno, f"crash: {type(exc).__name__}: {exc}")
    else:
        crash = None

    # if format_errors: print("Found errors:") ... else: print("No errors found")
    for line in sorted(errors_by_line):
        for key in errors_by_line[line]:
            refusals.append((line, key))
    if crash is not None:
        refusals.append(crash)
    return refusals
