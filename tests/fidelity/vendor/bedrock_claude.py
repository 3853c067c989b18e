# ruff: noqa
# Vendored copy of AWS's Claude 3 Haiku fine-tuning data validator for Amazon Bedrock, for differential tests.
#
# Copied from (S1): aws-samples/amazon-bedrock-samples,
#   bedrock-fine-tuning/claude-haiku/DataValidation/data_validation.py
#   @ 60d1ae35debe42bea2e09c5a1c9c9bb710c46e2a
# Licence: MIT-0 (aws-samples/amazon-bedrock-samples).
# PLUS (S5) the reserved-keyword check of a third-party port of the same script:
#   aldente0630/bedrock-model-finetuner, core/dataset_validator.py @ e9f6135be2a56e751b084c920ff7c5a1378cc316
#   (`RESERVED_KEYWORDS = ["\nHuman:", "\nAssistant:"]`, checked at the end of
#   `DataEntry.check_message_structure`), licence MIT (Copyright (c) 2024 Jonas Kim). Only that check is
#   taken from it, marked "S5" below. S1 itself has no reserved-keyword check.
#
# What was changed (plumbing only; S1's logic is verbatim):
# - Constants, models, `validate_data_entry`, `count_tokens` and `validate_file` are S1 verbatim (reformatted
#   by `ruff format`; the S1 constants keep their values: 32..10,000 training lines, 1,000 validation lines,
#   32,000 tokens estimated as len(text) // 3 per field, 10 GB / 1 GB files).
# - The S5 block is inserted where S5 has it (after the alternation check) behind a ContextVar so `check()`
#   can turn it off (`reserved_keywords=False` gives plain S1).
# - The pydantic class definitions are wrapped in `warnings.catch_warnings()` to silence the pydantic 2
#   deprecation warning for S1's `Field(..., min_items=2)` (kept as written; it behaves as min_length=2).
# - Not copied: `print_validation_results` and `validate_data` (printing, and the train+validation total,
#   which needs two files; note S1's `validate_data` checks a validation file with the *training* limits).
# - `check()` added at the end: the wrapper our tests call.
import contextvars
import os
import json
import pathlib
import warnings
from typing import Any, List, Optional, Tuple
from pydantic import BaseModel, Field, ValidationError, model_validator

# Constants
MIN_LINES = 32
MAX_TRAINING_LINES = 10000
MAX_VALIDATION_LINES = 1000
MAX_TOTAL_LINES = 10000
MAX_TOKENS = 32000
CHARS_PER_TOKEN = 3
MAX_TRAINING_SIZE_GB = 10
MAX_VALIDATION_SIZE_GB = 1

# ---- S5 (aldente0630/bedrock-model-finetuner core/dataset_validator.py @ e9f6135) ----
RESERVED_KEYWORDS = ["\nHuman:", "\nAssistant:"]
# ---- end S5 ----
_S5_RESERVED_KEYWORDS = contextvars.ContextVar("_S5_RESERVED_KEYWORDS", default=True)  # wrapper plumbing

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)  # `min_items` is deprecated in pydantic 2

    class Message(BaseModel):
        role: str = Field(..., pattern="^(user|assistant)$")
        content: str

    class DataEntry(BaseModel):
        system: Optional[str] = None
        messages: List[Message] = Field(..., min_items=2)

        @model_validator(mode="after")
        def check_message_structure(self) -> "DataEntry":
            messages = self.messages
            if not messages:
                raise ValueError("Messages list cannot be empty")

            if messages[0].role != "user" or messages[-1].role != "assistant":
                raise ValueError("Messages must start with user and end with assistant")

            for i in range(len(messages) - 1):
                if messages[i].role == messages[i + 1].role:
                    raise ValueError("Messages must alternate between user and assistant")

            # ---- S5 (aldente0630/bedrock-model-finetuner core/dataset_validator.py @ e9f6135), verbatim
            # apart from `self.messages` (S5) being the local `messages` (S1) and the ContextVar guard ----
            if _S5_RESERVED_KEYWORDS.get():
                for keyword in RESERVED_KEYWORDS:
                    if self.system and keyword in self.system:
                        raise ValueError(f"Reserved keyword '{keyword}' found in system prompt")
                    if any(keyword in message.content for message in messages):
                        raise ValueError(f"Reserved keyword '{keyword}' found in message content")
            # ---- end S5 ----

            return self


def validate_data_entry(entry: dict) -> Tuple[bool, List[str]]:
    try:
        DataEntry(**entry)
        return True, []
    except ValidationError as e:
        errors = []
        for error in e.errors():
            if error["type"] == "value_error":
                errors.append(f"Structure error: {error['msg']}")
            else:
                location = ".".join(str(loc) for loc in error["loc"])
                errors.append(f"Field '{location}': {error['msg']}")
        return False, errors


def count_tokens(text: str) -> int:
    """Estimate the number of tokens in a given text."""
    return len(text) // CHARS_PER_TOKEN


def validate_file(file_path: str, is_training: bool = True) -> Tuple[List[str], int]:
    """Validate a JSONL file"""
    errors = []
    line_count = 0

    file_size_gb = os.path.getsize(file_path) / (1024 * 1024 * 1024)
    if is_training:
        if file_size_gb > MAX_TRAINING_SIZE_GB:
            errors.append(
                f"Training file size ({file_size_gb:.2f} GB) exceeds the maximum allowed size "
                f"({MAX_TRAINING_SIZE_GB} GB)"
            )
    else:
        if file_size_gb > MAX_VALIDATION_SIZE_GB:
            errors.append(
                f"Validation file size ({file_size_gb:.2f} GB) exceeds the maximum allowed size "
                f"({MAX_VALIDATION_SIZE_GB} GB)"
            )

    with open(file_path, "r", encoding="utf-8") as f:
        for line_num, line in enumerate(f, 1):
            line_count += 1
            try:
                data = json.loads(line)
            except json.JSONDecodeError:
                errors.append(f"Line {line_num}: Invalid JSON")
                continue
            is_valid, entry_errors = validate_data_entry(data)
            if not is_valid:
                for error in entry_errors:
                    errors.append(f"Line {line_num}: {error}")
            total_tokens = count_tokens(data.get("system", "")) + sum(
                count_tokens(msg["content"]) for msg in data["messages"]
            )
            if total_tokens > MAX_TOKENS:
                errors.append(f"Line {line_num}: Exceeds maximum token count ({total_tokens} > {MAX_TOKENS})")

    if is_training:
        if line_count > MAX_TRAINING_LINES or line_count < MIN_LINES:
            errors.append(
                f"File has {line_count} lines. Training data should have between {MIN_LINES} and "
                f"{MAX_TRAINING_LINES} lines."
            )
    else:
        if line_count > MAX_VALIDATION_LINES or line_count < MIN_LINES:
            errors.append(
                f"File has {line_count} lines. Validation data should have between {MIN_LINES} and "
                f"{MAX_VALIDATION_LINES} lines."
            )

    return errors, line_count


# ---------------------------------------------------------------------------------------------------------
# Wrapper for the differential tests (not part of the vendor's code).
# ---------------------------------------------------------------------------------------------------------
import re as _re


def _line_of(error: str) -> "int | None":
    found = _re.match(r"Line (\d+): ", error)
    return int(found.group(1)) if found else None


def check(path: pathlib.Path, **options: Any) -> "list[tuple[int | None, str]]":
    """Run S1's `validate_file` (+ S5's reserved keywords) on `path`; [] means "Validation SUCCESSFUL".

    Options: `is_training` (default True; False applies the validation-file limits),
    `reserved_keywords` (default True; False drops the S5 check, i.e. plain S1).
    Each of the script's error strings is one refusal, with its "Line N" as the line (None for the file
    size and line-count errors). The script collects errors for every line, but some inputs make it raise
    (e.g. a line that is a JSON array, `"system": null`, a missing `messages`); then the errors collected
    before that line are returned, followed by "crash: <Type>: <msg>" for the line.
    """
    token = _S5_RESERVED_KEYWORDS.set(bool(options.get("reserved_keywords", True)))
    try:
        errors, _ = validate_file(str(path), is_training=bool(options.get("is_training", True)))
    except Exception as exc:  # the script dies with a traceback: a refusal
        errors, line = [], None
        tb = exc.__traceback__
        while tb is not None:
            if tb.tb_frame.f_code.co_name == "validate_file":
                errors = list(tb.tb_frame.f_locals.get("errors", []))
                line = tb.tb_frame.f_locals.get("line_num")
            tb = tb.tb_next
        if isinstance(exc, UnicodeDecodeError):
            line = None  # raised while reading, before the line is known
        return [(_line_of(e), e) for e in errors] + [(line, f"crash: {type(exc).__name__}: {exc}")]
    finally:
        _S5_RESERVED_KEYWORDS.reset(token)
    return [(_line_of(e), e) for e in errors]
