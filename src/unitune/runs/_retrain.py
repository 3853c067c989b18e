"""`client.retrain(run)`: a child run evaluated against its parent.

`client.retrain(run)`: a child run with the parent's spec, on new data, a new base or another
provider, evaluated against its parent on the parent's validation data (did the change help?).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from unitune.errors import ConfigurationError
from unitune.ledger import RunRecord, sha256_file
from unitune.runs._jobfile import JobFile, load_job_file
from unitune.runs._lineage import DataChange, diff_data, without_examples
from unitune.runs._train import RunResult, Say, _quiet, _runs_ledger, check_run_args, run_job

if TYPE_CHECKING:
    from rich.console import Console

    from unitune.client import FineTuneClient

__all__ = ["find_run", "retrain"]


def find_run(client: FineTuneClient, run_id: str) -> RunRecord:
    """A recorded run by id (or a unique prefix), else `ConfigurationError` naming `unitune runs`.

    Args:
        client: the client whose ledger holds the runs.
        run_id: the run's id, or a prefix of it that names one run.

    Raises:
        ConfigurationError: `run_id` is empty, or no run (or more than one) matches it.
    """
    if not isinstance(run_id, str) or not run_id.strip():
        raise ConfigurationError(
            f"A run id must be a non-empty string, not {run_id!r}.", fix="See `unitune runs`."
        )
    run = _runs_ledger(client).get_run(run_id.strip())
    if run is None:
        raise ConfigurationError(
            f"No run {run_id!r} in the ledger.", fix="List the runs with `unitune runs`."
        )
    return run


def _checked(path: str | None, sha: str | None, what: str, run: RunRecord) -> Path:
    """A parent's recorded file, as it was: present and with the same sha256."""
    if path is None:
        raise ConfigurationError(f"Run {run.run_id} recorded no {what} file.", fix="Pass --data.")
    file = Path(path)
    if not file.is_file():
        raise ConfigurationError(
            f"Run {run.run_id}'s {what} data moved: {path} no longer exists.",
            fix=f"Restore the file, or pass the {what} data again with --data"
            + (
                " (the validation file must be the parent's to compare like with like)"
                if what == "validation"
                else ""
            )
            + ".",
        )
    if sha is not None and sha256_file(file) != sha:
        raise ConfigurationError(
            f"Run {run.run_id}'s {what} data changed since the run: {path} has another sha256 than recorded.",
            fix="Restore the original file, or pass the new data with --data (a child run records it).",
        )
    return file


def retrain(
    client: FineTuneClient,
    run_id: str,
    *,
    data: str | os.PathLike[str] | None = None,
    model: str | None = None,
    provider: str | None = None,
    console: Console | None = None,
    poll_interval: float | None = None,
) -> RunResult:
    """Retrain run `run_id` with new data, a new base or another provider.

    A child of run `run_id`: the same spec, with what is given changed, evaluated against the parent
    on the parent's validation file.

    Args:
        client: the client whose ledger holds the run.
        run_id: the parent run's id or a unique prefix of it.
        data: new training examples (a JSONL path).
        model: a new base model.
        provider: another provider to train on.
        console: where progress is drawn.
        poll_interval: seconds between polls while waiting.

    Returns:
        The child run; `result.data_change` says how the data changed. Examples of `data` that are in
        the parent's validation file are left out of the child's training (the comparison would
        otherwise flatter the child); `data_change.held_out` counts them.

    Raises:
        ConfigurationError: an unknown run, or a file the parent used has moved or changed.
    """
    check_run_args(console, poll_interval)
    if data is not None and not isinstance(data, (str, os.PathLike)):
        raise ConfigurationError(f"data must be the path of a JSONL file, not a {type(data).__name__}.")
    for name, value in (("model", model), ("provider", provider)):
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise ConfigurationError(f"{name} must be a non-empty string or None, not {value!r}.")
    parent = find_run(client, run_id)
    spec = JobFile.model_validate_json(parent.spec_json)
    validation = _checked(parent.validation_path, parent.validation_sha256, "validation", parent)
    held_out = 0
    if data is None:
        training = _checked(parent.training_path, parent.training_sha256, "training", parent)
    else:
        training = Path(data)
        if not training.is_file():
            raise ConfigurationError(
                f"--data {str(data)!r} does not exist.", fix="Pass the new training file."
            )
        # New data is often the whole dataset again, the parent's held-out examples included: they
        # are left out of the child's training, or the comparison on them would flatter the child.
        from unitune.config import home_dir

        filtered = (
            home_dir(client.config)
            / "runs"
            / "data"
            / (
                f"{sha256_file(training)[:16]}-without-{(parent.validation_sha256 or sha256_file(validation))[:16]}.jsonl"
            )
        )
        held_out = without_examples(training, validation, filtered)
        if held_out:
            training = filtered
    overrides: dict[str, Any] = {
        # The parent's split files, not its split rule: the child is scored on the very same examples.
        "data": {"training": str(training.resolve()), "validation": str(validation)},
        "provider": provider,
        "model": model,
    }
    if provider is not None and model is None and provider != parent.provider:
        overrides["model"] = _portable_model(client, spec, parent, provider)
    child = load_job_file(spec.model_dump(mode="json", exclude_none=True), overrides)
    parent_training = Path(parent.training_path) if parent.training_path else None
    change: DataChange | None = None
    if parent_training is not None and parent_training.is_file():
        change = diff_data(parent_training, training, validation).model_copy(update={"held_out": held_out})
    say: Say = console.print if console is not None else _quiet
    say(f"[bold]retrain of run {parent.run_id}[/] ({parent.name}: {parent.model} on {parent.provider})")
    if change is not None:
        say(f"data: {change.summary()}")
        if change.in_validation:
            say(f"[yellow]warning:[/] {change.in_validation} training example(s) are also in the validation data: "
                "the comparison with the parent will flatter the child")  # fmt: skip
    parent_candidate = None
    if parent.fine_tuned_model:
        from unitune.evaluate import Candidate

        parent_candidate = Candidate(model=parent.fine_tuned_model, provider=parent.provider, name="parent",
                                     role="baseline", base_model=parent.model)  # fmt: skip
    else:
        say(
            f"the parent run has no tuned model (status {parent.status}): the child is compared with the baselines only"
        )
    return run_job(client, child, console=console, parent=parent, parent_candidate=parent_candidate,
                   data_change=change, poll_interval=poll_interval)  # fmt: skip


def _portable_model(client: FineTuneClient, spec: JobFile, parent: RunRecord, provider: str) -> str:
    """The parent's base on another provider: its portable alias when the catalog has one there."""
    catalog = client.catalog
    entry = catalog.find(parent.provider, parent.model)
    for name in [*(entry.aliases if entry is not None else []), spec.model]:
        if name and catalog.find(provider, name) is not None:
            return str(name)
    raise ConfigurationError(
        f"{parent.model} (run {parent.run_id}'s base) has no counterpart on {provider!r} in the catalog.",
        fix=f"Pass --model with a model {provider} offers (`unitune models --provider {provider}`).",
    )
