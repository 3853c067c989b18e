"""Job files: a fine-tune declared in TOML, checked by a schema whose errors name the key and line.

    name = "tickets"
    provider = "local"
    model = "smollm2-135m-instruct"
    budget_usd = 1.0

    [data]
    training = "tickets.jsonl"       # relative to the job file
    validation_split = 0.2           # or: validation = "valid.jsonl"

    [hyperparameters]
    epochs = 2

    [evaluate]
    candidates = ["base", "base:few-shot=3"]

    [tracking]
    backend = "mlflow"

Every key can also be given from the command line (`--provider`, `--epochs`, …) or from Python as a
dict; `overrides` win over the file. Paths are made absolute here, so a run's spec read back from the
ledger names the same files wherever the command is run from.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from unitune.errors import ConfigurationError
from unitune.tracking import TrackingSettings
from unitune.types import Hyperparameters

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]

__all__ = ["DataSection", "EvaluateSection", "JobFile", "load_job_file"]


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DataSection(_Strict):
    """`[data]`: the training file and where validation examples come from."""

    training: Path = Field(description="The training examples (JSONL), relative to the job file.")
    validation: Path | None = Field(
        default=None, description="Held-out examples for the job and the evaluation."
    )
    validation_split: float | None = Field(
        default=None, gt=0, lt=1, description="Hold out this fraction of `training` instead (seeded)."
    )
    seed: int = Field(default=0, description="The split's seed.")

    @model_validator(mode="after")
    def _one_source(self) -> DataSection:
        if self.validation is not None and self.validation_split is not None:
            raise ValueError("set either validation or validation_split, not both")
        return self


class EvaluateSection(_Strict):
    """`[evaluate]`: what the tuned model is compared with after training (see `client.evaluate`)."""

    enabled: bool = True
    candidates: list[str] = Field(
        default_factory=lambda: ["base"], description="Baselines; the tuned model is always added."
    )
    metrics: list[str] | None = None
    primary_metric: str | None = None
    max_examples: int | None = Field(default=None, ge=1)
    judge: str | None = None
    chat_params: dict[str, Any] = Field(default_factory=dict)


class JobFile(_Strict):
    """One fine-tune, declared: provider, model, data, hyperparameters, budget, evaluation, tracking.

    `provider` and `model` left out come from unitune.toml, as for `create_job`.
    """

    name: str | None = Field(
        default=None, min_length=1, description="The run's name (default: the file's stem)."
    )
    provider: str | None = Field(default=None, min_length=1)
    model: str | None = Field(default=None, min_length=1)
    method: Literal["sft", "dpo"] = "sft"
    suffix: str | None = None
    budget_usd: float | None = Field(
        default=None, ge=0, description="Refuse to start when the quote (a sweep's total) is above this."
    )
    data: DataSection
    hyperparameters: Hyperparameters = Field(default_factory=Hyperparameters)
    evaluate: EvaluateSection = Field(default_factory=EvaluateSection)
    tracking: TrackingSettings | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[\w.\- ]+", value):
            raise ValueError("use letters, digits, spaces, '.', '-' and '_'")
        return value

    def training_key(self, data_sha256: str, provider: str, model: str) -> str:
        """The job's idempotency key.

        What is trained (provider, model, method, hyperparameters, suffix) and on what (the data's
        fingerprint). The same spec on the same data is the same job, so running a job file again
        reattaches to it instead of paying twice.

        Args:
            data_sha256: the training data's fingerprint.
            provider: the provider the job runs on.
            model: the model id the job trains.
        """
        trained = {
            "provider": provider,
            "model": model,
            "method": self.method,
            "suffix": self.suffix,
            "hyperparameters": self.hyperparameters.model_dump(mode="json", exclude_none=True),
            "data": data_sha256,
        }
        digest = hashlib.sha256(json.dumps(trained, sort_keys=True).encode()).hexdigest()
        return f"unitune-run-{digest[:24]}"

    def spec_json(self) -> str:
        """The spec as canonical JSON (what the ledger keeps; secrets never enter a job file)."""
        return json.dumps(self.model_dump(mode="json", exclude_none=True), sort_keys=True)


def load_job_file(
    source: str | os.PathLike[str] | Mapping[str, Any] | JobFile,
    overrides: Mapping[str, Any] | None = None,
) -> JobFile:
    """Load and check a job file.

    Relative data paths are resolved against the job file's folder (a dict's: the current directory).

    Args:
        source: a TOML file's path, a dict of the same keys, or a `JobFile`.
        overrides: dotted keys applied on top: `{"provider": "fake", "hyperparameters.epochs": 3}`.

    Returns:
        The checked `JobFile`.

    Raises:
        ConfigurationError: an unknown key, a wrong type or a data file that does not exist (naming
            the key, and for a file its line).
    """
    if overrides is not None and (
        not isinstance(overrides, Mapping) or not all(isinstance(k, str) and k for k in overrides)
    ):
        raise ConfigurationError(
            f"overrides must be a dict of dotted keys, not {overrides!r}.",
            fix='Pass e.g. overrides={"provider": "fake", "hyperparameters.epochs": 3}.',
        )
    text: str | None = None
    path: Path | None = None
    if isinstance(source, JobFile):
        raw: dict[str, Any] = source.model_dump(exclude_none=True)
        base = Path.cwd()
    elif isinstance(source, Mapping):
        raw = _plain(source)
        base = Path.cwd()
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        text = _read(path)
        try:
            raw = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise ConfigurationError(
                f"{path} is not valid TOML: {e}.", fix=f"Fix the syntax at the line named in {path.name}."
            ) from None
        base = path.resolve().parent
        raw.setdefault("name", path.stem)
    else:
        raise ConfigurationError(
            f"A job must be a job file's path, a dict or a JobFile, not a {type(source).__name__}.",
            fix="Pass e.g. client.train('job.toml') or client.train({'data': {'training': 'train.jsonl'}}).",
        )
    for dotted, value in (overrides or {}).items():
        if value is None:
            continue
        *parents, leaf = dotted.split(".")
        table = raw
        for part in parents:
            table = table.setdefault(part, {})
            if not isinstance(table, dict):
                raise ConfigurationError(f"{dotted} cannot be set: {part} is not a table in the job file.")
        table[leaf] = value
    where = str(path) if path is not None else "the job"
    try:
        job = JobFile.model_validate(raw)
    except ValidationError as e:
        raise _schema_error(e, where, text) from None
    return _with_paths(job, base, where, text)


def _plain(source: Mapping[str, Any]) -> dict[str, Any]:
    """A deep, mutable copy of a mapping (overrides write into nested tables)."""
    return {k: _plain(v) if isinstance(v, Mapping) else v for k, v in source.items()}


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigurationError(
            f"The job file {str(path)!r} does not exist.",
            fix="Pass the path of a .toml job file (see examples/jobs/tickets.toml).",
        ) from None
    except UnicodeDecodeError:
        raise ConfigurationError(f"{path} is not UTF-8 text.", fix="Save it as UTF-8.") from None
    except OSError as e:
        raise ConfigurationError(f"Cannot read the job file {str(path)!r}: {e.strerror or e}.") from None


def _with_paths(job: JobFile, base: Path, where: str, text: str | None) -> JobFile:
    """The job with absolute data paths, each checked to exist (nothing starts with a missing file)."""
    data = job.data
    updates: dict[str, Any] = {}
    for key in ("training", "validation"):
        value: Path | None = getattr(data, key)
        if value is None:
            continue
        full = (base / value.expanduser()).resolve()
        if not full.is_file():
            line = _line_of(text, ("data", key))
            at = f"{where} line {line}" if line else where
            raise ConfigurationError(
                f"{at}: data.{key} = {str(value)!r} does not exist ({full}).",
                fix=f"Fix the path (relative to {base}) or create the file.",
            )
        updates[key] = full
    return job.model_copy(update={"data": data.model_copy(update=updates)})


def _schema_error(e: ValidationError, where: str, text: str | None) -> ConfigurationError:
    """The first schema error as one line: where (file and line), which key, what is wrong, the fix."""
    err = e.errors()[0]
    loc = tuple(str(p) for p in err["loc"])
    key = ".".join(loc) or "(top level)"
    line = _line_of(text, loc)
    at = f"{where} line {line}" if line else where
    if err["type"] == "extra_forbidden":
        known = _known_keys(loc[:-1])
        close = difflib.get_close_matches(loc[-1], known, n=1)
        hint = f"Did you mean {close[0]!r}? " if close else ""
        return ConfigurationError(
            f"{at}: unknown key {key!r}.", fix=f"{hint}Known keys here: {', '.join(known)}."
        )
    if err["type"] == "missing":
        return ConfigurationError(f"{at}: {key} is required.", fix=f"Add {key} to the job file.")
    message = err["msg"].removeprefix("Value error, ")
    return ConfigurationError(
        f"{at}: {key} = {err.get('input')!r} is not valid: {message}.", fix=f"Fix {key} in the job file."
    )


_TABLES: dict[tuple[str, ...], type[BaseModel]] = {
    (): JobFile,
    ("data",): DataSection,
    ("hyperparameters",): Hyperparameters,
    ("evaluate",): EvaluateSection,
    ("tracking",): TrackingSettings,
}


def _known_keys(table: tuple[str, ...]) -> list[str]:
    model = _TABLES.get(table)
    return list(model.model_fields) if model is not None else []


_HEADER = re.compile(r"^\s*\[\s*([^\]]+?)\s*\]")
_KEY = re.compile(r"^\s*([A-Za-z0-9_\-\"']+(?:\s*\.\s*[A-Za-z0-9_\-\"']+)*)\s*=")


def _line_of(text: str | None, loc: tuple[str, ...]) -> int | None:
    """The line where `loc` (table…, key) is written, else the line of its nearest written parent.

    tomllib keeps no positions, so the text is scanned: `[table]` headers and `key =` lines.
    """
    if text is None or not loc:
        return None
    table: tuple[str, ...] = ()
    best: tuple[int, int] | None = None  # (how much of loc matched, line)
    for number, line in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(line)
        if header:
            table = tuple(p.strip().strip("\"'") for p in header.group(1).split("."))
            if loc[: len(table)] == table and (best is None or len(table) > best[0]):
                best = (len(table), number)
            continue
        key = _KEY.match(line)
        if key:
            path = table + tuple(p.strip().strip("\"'") for p in key.group(1).split("."))
            matched = len(path) if loc[: len(path)] == path else 0
            if matched and (best is None or matched > best[0]):
                best = (matched, number)
    return best[1] if best else None
