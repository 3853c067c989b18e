"""The client's argument checks.

Every bad value a caller can pass becomes a one-line `ConfigurationError` naming the fix, before anything
is uploaded.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from unitune.config import UnituneConfig, load_config
from unitune.data import Dataset
from unitune.errors import ConfigurationError
from unitune.types import (
    FileRef,
    Hyperparameters,
    Job,
    Message,
)

#: Training or validation data: a `Dataset`, a local JSONL file (any format `Dataset.from_jsonl`
#: reads), or a file already uploaded to the provider (`FileRef`).
DataInput = str | os.PathLike[str] | Dataset | FileRef
#: Chat input: a prompt string, or messages as `Message` objects or OpenAI-style dicts.
MessagesInput = str | Sequence[Message | Mapping[str, Any]]
JobRef = Job | str
OnUpdate = Callable[[Job], None]


def _number(value: object, *, finite: bool = False) -> bool:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value != value:  # NaN
        return False
    return not finite or abs(value) != float("inf")


def _callback(value: object, what: str) -> None:
    if value is not None and not callable(value):
        raise ConfigurationError(f"{what} must be a function, not a {type(value).__name__}.")


def _one_line(e: ValidationError) -> str:
    """A pydantic error as one phrase: where and what (the first problem; there is usually one)."""
    first = e.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    return f"{where}: {first['msg']}" if where else str(first["msg"])


def _name(value: object, what: str, fix: str) -> str:
    """`value` as a non-empty string id, or a `ConfigurationError` saying what was passed instead."""
    if not isinstance(value, str) or not value.strip():
        shown = repr(value) if isinstance(value, str) or value is None else f"a {type(value).__name__}"
        raise ConfigurationError(f"{what} must be a non-empty string, not {shown}.", fix=fix)
    return value


def _job_id(job: JobRef) -> str:
    if isinstance(job, Job):
        return job.id
    return _name(job, "A job id", "Pass the Job that create_job returned, or its id (job.id).")


def _messages(messages: MessagesInput) -> list[Message]:
    if isinstance(messages, str):
        if not messages:
            raise ConfigurationError(
                "The prompt is empty.", fix="Pass the text to send, or a list of messages."
            )
        return [Message(role="user", content=messages)]
    if isinstance(messages, Mapping) or not isinstance(messages, Sequence) or not messages:
        raise ConfigurationError(
            "messages must be a prompt string or a non-empty list of messages.",
            fix='Pass e.g. [{"role": "user", "content": "Hi"}].',
        )
    out = []
    for i, m in enumerate(messages, 1):
        if isinstance(m, Message):
            out.append(m)
            continue
        if not isinstance(m, Mapping):
            raise ConfigurationError(
                f"Message {i} is a {type(m).__name__}, not a message.",
                fix='Each message is a dict like {"role": "user", "content": "Hi"} or a unitune.Message.',
            )
        try:
            out.append(Message.model_validate(dict(m)))
        except ValidationError as e:
            raise ConfigurationError(
                f"Message {i} is not a valid chat message ({_one_line(e)}).",
                fix="Use role system, user, assistant or tool, with string content.",
            ) from None
    return out


def _hyperparameters(
    value: Hyperparameters | Mapping[str, Any] | None, base: Mapping[str, Any]
) -> Hyperparameters:
    """The call's hyperparameters over the config's defaults (`[job] hyperparameters`)."""
    if isinstance(value, Hyperparameters):
        given: dict[str, Any] = value.model_dump(exclude_unset=True)
    elif isinstance(value, Mapping):
        given = dict(value)
    elif value is None:
        given = {}
    else:
        raise ConfigurationError(
            f"hyperparameters must be a Hyperparameters or a dict, not a {type(value).__name__}.",
            fix="Pass e.g. Hyperparameters(epochs=3) or {'epochs': 3}.",
        )
    merged = {**base, **given}
    if "provider_options" in base and "provider_options" in given:
        merged["provider_options"] = {**base["provider_options"], **given["provider_options"]}
    try:
        return Hyperparameters.model_validate(merged)
    except ValidationError as e:
        raise ConfigurationError(
            f"Invalid hyperparameters ({_one_line(e)}).",
            fix="Known fields: "
            + ", ".join(Hyperparameters.model_fields)
            + "; vendor-only knobs go in provider_options.",
        ) from None


def _metadata(value: Mapping[str, str] | None) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigurationError(
            f"metadata must be a dict of strings, not a {type(value).__name__}.",
            fix="Pass e.g. {'team': 'search'}.",
        )
    bad = [k for k, v in value.items() if not isinstance(k, str) or not isinstance(v, str)]
    if bad:
        raise ConfigurationError(
            f"metadata values must be strings; {bad[0]!r} is a {type(value[bad[0]]).__name__}.",
            fix=f"Convert it first, e.g. {{{bad[0]!r}: str(value)}}.",
        )
    return dict(value)


def _as_config(config: UnituneConfig | str | os.PathLike[str] | None) -> UnituneConfig:
    if config is None:
        return load_config()
    if isinstance(config, UnituneConfig):
        return config
    if isinstance(config, (str, os.PathLike)):
        return load_config(config)
    raise ConfigurationError(
        f"config must be a UnituneConfig or the path of a unitune.toml, not a {type(config).__name__}.",
        fix="Pass unitune.load_config(...) or a path, or leave it out to read unitune.toml.",
    )
