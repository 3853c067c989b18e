"""The migration plan: what each source fine-tune is, and what it becomes on the target.

Nothing here creates anything: `plan_migration` reads the source's jobs (its job list and this
machine's ledger), finds each job's data, proposes the target model from the catalog, maps the
hyperparameters (checked against the target's own rules), and quotes the new job.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from unitune.catalog import Quote
from unitune.catalog._schema import InferencePrice, ModelEntry
from unitune.errors import ConfigurationError, NotFoundError, UnituneError
from unitune.types import FileRef, Hyperparameters, Job, JobSpec, JobStatus, TrainingMethod

if TYPE_CHECKING:
    from unitune.client._sync import FineTuneClient

__all__ = [
    "DEFAULT_LEARNING_RATES",
    "DataSource",
    "JobPlan",
    "MigrationPlan",
    "idempotency_key",
    "plan_migration",
]

#: The learning rate each target uses when none is given: OpenAI's multiplier is applied to it.
#: Together's is from its adapter's own refusal text (its documented default); the local trainer's
#: is its code's default. A target missing here keeps its own default and the plan says so.
DEFAULT_LEARNING_RATES: dict[str, float] = {"together": 1e-5, "local": 5e-4}

#: Where a migration's idempotency keys start: the source's jobs that carry one are migrations
#: themselves (a shared fake lists both sides' jobs) and are never migrated again.
KEY_PREFIX = "unitune-migrate-"

#: How many source jobs are read from the vendor's list when no --job is given.
_LIST_LIMIT = 100

_SIZE = re.compile(r"(?<![0-9.])(\d+(?:\.\d+)?)b(?![a-z0-9])", re.IGNORECASE)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DataSource(_Frozen):
    """Where a job's training data comes from, or why there is none."""

    kind: Literal["given", "ledger", "none"] = Field(
        description="given: --data (or data=); ledger: the file recorded when the job was created, "
        "its sha256 checked; none: no data available."
    )
    path: str | None = None
    note: str


class JobPlan(_Frozen):
    """One source fine-tune and the job that replaces it on the target."""

    source_provider: str
    source_job_id: str
    source_status: str
    source_model: str = Field(description="The base model the source job trained.")
    source_tuned_model: str | None
    method: TrainingMethod | None
    suffix: str | None
    source_hyperparameters: dict[str, Any]
    data: DataSource
    validation: str | None = Field(default=None, description="A held-out file given for this job.")
    target_provider: str
    target_model: str | None
    target_model_reason: str
    hyperparameters: Hyperparameters
    mapping_notes: list[str] = Field(
        default_factory=list, description="How each setting was mapped, and what has no equivalent."
    )
    quote: Quote | None = None
    quote_note: str = ""
    idempotency_key: str
    problems: list[str] = Field(default_factory=list, description="Why this job cannot be migrated now.")

    @property
    def ready(self) -> bool:
        """True when the job can be created on the target."""
        return not self.problems


class MigrationPlan(_Frozen):
    """Every source job to move, with what each becomes (`render_plan` prints it)."""

    source_provider: str
    target_provider: str
    jobs: list[JobPlan]
    notes: list[str] = Field(default_factory=list)
    _source: FineTuneClient | None = PrivateAttr(default=None)
    _target: FineTuneClient | None = PrivateAttr(default=None)

    def clients(self) -> tuple[FineTuneClient, FineTuneClient]:
        """The source and target clients the plan was made with (`run_migration` needs them)."""
        if self._source is None or self._target is None:
            raise ConfigurationError(
                "This plan was read back from JSON and holds no clients.",
                fix="Make it again with plan_migration(source, target, ...) and run that.",
            )
        return self._source, self._target

    def __str__(self) -> str:
        from unitune.migrate._render import render_plan

        return render_plan(self)


def idempotency_key(source_provider: str, source_job_id: str) -> str:
    """The key the replacement of one source job is created with: the same on every rerun.

    Args:
        source_provider: the source job's provider.
        source_job_id: the source job's id.
    """
    return f"{KEY_PREFIX}{source_provider}-{source_job_id}"


# -- reading the source ------------------------------------------------------------------------------


def _method(job: Job) -> TrainingMethod | None:
    """`sft` or `dpo` from the job's raw record (OpenAI: `method.type`; the fake: `method`)."""
    raw = job.raw.get("method")
    kind = raw.get("type") if isinstance(raw, dict) else raw
    if kind in (None, "supervised", "sft"):
        return "sft"
    if kind == "dpo":
        return "dpo"
    return None


def _suffix(job: Job) -> str | None:
    """The tuned model's suffix, read from its name.

    The suffix, read from the tuned model's name (`ft:BASE:ORG:SUFFIX:ID`): OpenAI's job object
    has no field for it.
    """
    if isinstance(job.raw.get("suffix"), str) and job.raw["suffix"]:
        return str(job.raw["suffix"])
    parts = (job.fine_tuned_model or "").split(":")
    if len(parts) == 5 and parts[0] == "ft" and parts[3]:
        return parts[3]
    return None


def _number(value: Any) -> float | None:
    """A set number; OpenAI reports "auto" for a setting it chose itself."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _named_job(source: FineTuneClient, job_id: str) -> Job:
    try:
        return source.get_job(job_id)
    except NotFoundError:
        raise ConfigurationError(
            f"{source.provider_name} has no fine-tuning job {job_id!r}.",
            fix=f"List them with `unitune jobs --provider {source.provider_name}`, or leave out --job to move every succeeded job.",
        ) from None


def _source_jobs(source: FineTuneClient, jobs: Sequence[str] | None) -> tuple[list[Job], list[str]]:
    """The jobs asked for, or every succeeded job on the vendor's list and in the ledger."""
    notes: list[str] = []
    if jobs:
        return [_named_job(source, j) for j in dict.fromkeys(jobs)], notes
    found = {j.id: j for j in source.list_jobs(limit=_LIST_LIMIT)}
    if source.ledger is not None:
        for entry in source.ledger.list(provider=source.provider_name, limit=_LIST_LIMIT):
            if entry.job_id not in found:
                try:
                    found[entry.job_id] = source.get_job(entry.job_id)
                except UnituneError as e:
                    notes.append(f"{entry.job_id} (from the ledger) could not be read: {e}")
    listed = [
        j
        for j in found.values()
        if j.status is JobStatus.SUCCEEDED and not (j.idempotency_key or "").startswith(KEY_PREFIX)
    ]
    skipped = len(found) - len(listed)
    if skipped:
        notes.append(
            f"{skipped} job(s) not succeeded (or themselves migrations) were left out; name one with --job"
        )
    return listed, notes


# -- data ----------------------------------------------------------------------------------------------

_NO_DATA = (
    "no data available: {provider} does not return fine-tuning files, and this machine's ledger has no "
    "local file recorded for the job; pass the training file with --data FILE (data=)"
)


def _per_job(value: object, job_id: str, what: str) -> str | None:
    """The file for `job_id`: one path for every job, or a mapping of job id to path."""
    if value is None:
        return None
    if isinstance(value, Mapping):
        chosen = value.get(job_id)
        return None if chosen is None else _path(chosen, what)
    return _path(value, what)


def _path(value: object, what: str) -> str:
    if not isinstance(value, (str, os.PathLike)) or not str(value):
        raise ConfigurationError(
            f"{what} must be a file path or a mapping of source job id to path, not {value!r}.",
            fix=f"Pass e.g. {what}='train.jsonl' or {what}={{'ftjob-abc': 'train.jsonl'}}.",
        )
    return str(value)


def _from_ledger(source: FineTuneClient, job_id: str) -> tuple[DataSource, list[str]] | None:
    """The training file the ledger recorded when this machine created the job, checked by sha256."""
    entry = source.ledger.get(source.provider_name, job_id) if source.ledger is not None else None
    if entry is None or entry.training_path is None:
        return None
    from unitune.ledger import sha256_file

    path = entry.training_path
    try:
        same = sha256_file(path) == entry.training_sha256
    except OSError:
        note = (
            f"the ledger's data file {path!r} for this job is gone; pass the training file with --data FILE"
        )
        return DataSource(kind="none", path=path, note=note), [note]
    if not same:
        note = (f"the ledger's data file {path!r} has changed since the job was created (sha256 differs); "
                "pass the file it was trained on with --data FILE")  # fmt: skip
        return DataSource(kind="none", path=path, note=note), [note]
    return DataSource(
        kind="ledger", path=path, note="recorded in the ledger when the job was created; sha256 checked"
    ), []


def _data_source(source: FineTuneClient, job_id: str, data: object) -> tuple[DataSource, list[str]]:
    path = _per_job(data, job_id, "data")
    if path is None:
        recorded = _from_ledger(source, job_id)
        if recorded is not None:
            return recorded
        note = _NO_DATA.format(provider=source.provider_name)
        return DataSource(kind="none", note=note), [note]
    if not Path(path).is_file():
        note = f"the data file {path!r} does not exist"
        return DataSource(kind="given", path=path, note=note), [note + "; pass an existing JSONL file"]
    return DataSource(
        kind="given",
        path=path,
        note="given with --data",
    ), []


# -- the target model ----------------------------------------------------------------------------------


def _size(entry: ModelEntry) -> float | None:
    """Billions of parameters, when the id or an alias says it (`llama-3.1-8b-instruct`)."""
    for name in (entry.id, *entry.aliases):
        match = _SIZE.search(name)
        if match:
            return float(match[1])
    return None


def _price(price: InferencePrice | None) -> float | None:
    if price is None:
        return None
    total = price.input_per_million + price.output_per_million
    return total if total > 0 else None


def _distance(a: float | None, b: float | None) -> float:
    return abs(math.log(a / b)) if a and b else math.inf


def propose_model(
    target: FineTuneClient, source: FineTuneClient, source_model: str, method: TrainingMethod
) -> tuple[str | None, str]:
    """The target model most like `source_model`.

    Live on the target, trained with `method`, the same model where the target offers it, else the
    closest size (from the names), else the closest tuned inference price. Returns the model and the
    reason, or None and why there is none.

    Args:
        target: the client of the provider migrated to; its catalog and clock decide what is live.
        source: the client of the provider migrated from.
        source_model: the source job's base model.
        method: "sft" or "dpo": the target model must train with it.
    """
    catalog, name, today = target.catalog, target.provider_name, target.clock.now().date()
    if name not in catalog.providers:
        return None, f"the catalog does not know {name!r}: map the model with --map SRC=DST"
    live = [
        m
        for _, m in catalog.models(name)
        if method in m.methods and catalog.lifecycle(name, m.id, today=today).state != "retired"
    ]
    if not live:
        return None, f"{name} offers no live model trained with {method}"
    origin = (
        catalog.find(source.provider_name, source_model)
        if source.provider_name in catalog.providers
        else None
    )
    if origin is not None:
        same = next((m for m in live if set(m.aliases) & set(origin.aliases)), None)
        if same is not None:
            return same.id, f"the same model ({', '.join(sorted(set(same.aliases) & set(origin.aliases)))})"
        size = _size(origin)
        sized = [m for m in live if _size(m) is not None]
        if size is not None and sized:
            best = min(sized, key=lambda m: _distance(_size(m), size))
            return best.id, f"closest size ({_size(best):g}B against {size:g}B)"
        price = _price(origin.tuned_inference)
        priced = [m for m in live if _price(m.tuned_inference) is not None]
        if price is not None and priced:
            best = min(priced, key=lambda m: _distance(_price(m.tuned_inference), price))
            return best.id, (
                f"closest tuned inference price (${_price(best.tuned_inference):g} against "
                f"${price:g} per 1M input + 1M output tokens)"
            )
    return live[
        0
    ].id, f"the first live {method} model in the catalog ({source_model} has no size or price to match)"


def _mapped_model(source: FineTuneClient, source_model: str, model_map: Mapping[str, str]) -> str | None:
    """The user's mapping for `source_model`, if any.

    The user's mapping for `source_model`, by its id or by an alias the source's catalog gives it
    (`gpt-4o-mini=...` maps `gpt-4o-mini-2024-07-18`).
    """
    if source_model in model_map:
        return model_map[source_model]
    catalog, name = source.catalog, source.provider_name
    entry = catalog.find(name, source_model) if name in catalog.providers else None
    if entry is None:
        return None
    for key, value in model_map.items():
        found = catalog.find(name, key)
        if found is not None and found.id == entry.id:
            return value
    return None


# -- hyperparameters -----------------------------------------------------------------------------------


def _refusal(
    target: FineTuneClient, model: str, method: TrainingMethod, hp: Hyperparameters, suffix: str | None = None
) -> str | None:
    """Why the target refuses these settings (its own adapter's checks, nothing sent), or None."""
    stand_in = FileRef(id="unitune-migrate-check", provider=target.provider_name)
    try:
        spec = JobSpec(model=model, training_file=stand_in, hyperparameters=hp, method=method, suffix=suffix)
        target.provider.check_job(spec)
    except UnituneError as e:
        return str(e)
    return None


def map_hyperparameters(
    target: FineTuneClient, model: str, method: TrainingMethod, source: Mapping[str, Any]
) -> tuple[Hyperparameters, list[str]]:
    """The source job's settings in the target's terms, each kept only if the target accepts it.

    - epochs (OpenAI's `n_epochs`) and batch size carry over as they are.
    - OpenAI's `learning_rate_multiplier` scales OpenAI's own (undisclosed) default rate, so the
      transferable part is the scale: a target that takes a multiplier gets it unchanged; one that
      takes an absolute rate gets multiplier × its own default (`DEFAULT_LEARNING_RATES`); one
      whose default unitune does not know keeps its default, and the plan says so.
    - the seed carries over where the target takes one; anything else has no equivalent.

    Args:
        target: the client of the provider migrated to; each setting is tried on its `check_job`.
        model: the target model.
        method: "sft" or "dpo".
        source: the source job's hyperparameters, as the source vendor names them.

    Returns:
        The hyperparameters kept, and a note for each setting changed or left out.
    """
    notes: list[str] = []
    fields: dict[str, Any] = {}
    # A target that refuses the job with no settings at all (not configured: no project, no role)
    # refuses every trial for that reason; a trial refused for no other reason is kept.
    baseline = _refusal(target, model, method, Hyperparameters())

    def keep(name: str, value: Any, note: str) -> bool:
        trial = Hyperparameters.model_validate({**fields, name: value})
        refused = _refusal(target, model, method, trial)
        accepted = refused is None or refused == baseline
        if accepted:
            fields[name] = value
            notes.append(note)
        return accepted

    epochs = _number(source.get("n_epochs", source.get("epochs")))
    if epochs is not None and epochs >= 1:
        if not keep("epochs", int(epochs), f"epochs: {int(epochs)} (as on the source)"):
            notes.append(
                f"epochs: {int(epochs)} has no equivalent on {target.provider_name}; its default is used"
            )
    else:
        notes.append("epochs: the source chose them itself (auto); the target's own rule decides")
    batch = _number(source.get("batch_size"))
    if batch is not None and not keep(
        "batch_size", int(batch), f"batch size: {int(batch)} (as on the source)"
    ):
        notes.append(
            f"batch size: {int(batch)} has no equivalent on {target.provider_name}; its default is used"
        )
    _map_learning_rate(target, _number(source.get("learning_rate_multiplier")), keep, notes)
    seed = source.get("seed")
    if isinstance(seed, int) and not isinstance(seed, bool) and not keep("seed", seed, f"seed: {seed}"):
        notes.append(f"seed: {target.provider_name} takes none; no equivalent")
    known = {"n_epochs", "epochs", "batch_size", "learning_rate_multiplier", "seed"}
    for name in sorted(set(source) - known):
        if source[name] not in (None, "auto", {}, []):  # unset, or OpenAI's own choice
            notes.append(f"{name}: no equivalent on {target.provider_name} (left out)")
    return Hyperparameters.model_validate(fields), notes


def _map_learning_rate(target: FineTuneClient, multiplier: float | None, keep: Any, notes: list[str]) -> None:
    name = target.provider_name
    if multiplier is None:
        notes.append("learning rate: the source used its default; the target uses its own")
        return
    if keep(
        "learning_rate_multiplier", multiplier, f"learning-rate multiplier: {multiplier:g} (taken as is)"
    ):
        return
    default = DEFAULT_LEARNING_RATES.get(name)
    if default is not None:
        rate = multiplier * default
        if keep(
            "learning_rate",
            rate,
            f"learning rate: {rate:.3g} = multiplier {multiplier:g} × {name}'s default {default:g}",
        ):
            return
    notes.append(
        f"learning-rate multiplier {multiplier:g}: no equivalent on {name} (its default rate is not "
        "known to unitune); the target's default learning rate is used"
    )


# -- the plan --------------------------------------------------------------------------------------------


def _check_map(model_map: object) -> dict[str, str]:
    if model_map is None:
        return {}
    if not isinstance(model_map, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) and k and v for k, v in model_map.items()
    ):
        raise ConfigurationError(
            f"model_map must map source model ids to target model ids, not {model_map!r}.",
            fix="Pass e.g. model_map={'gpt-4o-mini-2024-07-18': 'llama-3.1-8b-instruct'} (--map SRC=DST).",
        )
    return dict(model_map)


def _target_model(
    source: FineTuneClient,
    target: FineTuneClient,
    job: Job,
    method: TrainingMethod,
    model_map: Mapping[str, str],
) -> tuple[str | None, str, list[str]]:
    mapped = _mapped_model(source, job.model, model_map)
    if mapped is None:
        model, reason = propose_model(target, source, job.model, method)
        return model, reason, ([] if model else [reason])
    try:
        model = target.resolve_model(mapped)
    except UnituneError as e:
        return None, f"mapped to {mapped!r}", [f"the mapping to {mapped!r} does not resolve: {e}"]
    catalog, name = target.catalog, target.provider_name
    if name in catalog.providers and catalog.find(name, model) is not None:
        lifecycle = catalog.lifecycle(name, model, today=target.clock.now().date())
        if lifecycle.state == "retired":
            return model, "your mapping", [f"{model} on {name} takes no new jobs ({lifecycle.phrase})"]
    return model, "your mapping (--map)", []


def plan_job(
    source: FineTuneClient,
    target: FineTuneClient,
    job: Job,
    *,
    data: object = None,
    validation: object = None,
    model_map: Mapping[str, str] | None = None,
) -> JobPlan:
    """The plan for one source job (see `plan_migration`)."""
    problems: list[str] = []
    if job.status is not JobStatus.SUCCEEDED:
        problems.append(f"the source job has not succeeded (status {job.status.value}): nothing to replace")
    method = _method(job)
    if method is None:
        problems.append(
            f"its method {job.raw.get('method')!r} has no equivalent outside {source.provider_name}"
        )
    source_data, missing = _data_source(source, job.id, data)
    problems += missing
    valid = _per_job(validation, job.id, "validation")
    if valid is not None and not Path(valid).is_file():
        problems.append(f"the validation file {valid!r} does not exist")
    model, reason, model_problems = _target_model(source, target, job, method or "sft", model_map or {})
    problems += model_problems
    hp, notes = Hyperparameters(), list[str]()
    quote, quote_note = None, ""
    suffix = _suffix(job)
    if model is not None and method is not None:
        refused = _refusal(target, model, method, Hyperparameters())
        if refused is not None:
            problems.append(f"{target.provider_name} refuses a {method} job on {model}: {refused}")
        hp, notes = map_hyperparameters(target, model, method, job.hyperparameters)
        if suffix is not None and _refusal(target, model, method, hp, suffix) is not None:
            notes.append(f"suffix {suffix!r}: {target.provider_name} refuses it; left out")
            suffix = None
        if source_data.path is not None and not missing:
            try:
                quote = target.estimate(source_data.path, model=model, hyperparameters=hp, method=method)
            except UnituneError as e:
                quote_note = f"no quote: {e}"
        else:
            quote_note = "no quote without the data"
    return JobPlan(
        source_provider=source.provider_name, source_job_id=job.id, source_status=job.status.value,
        source_model=job.model, source_tuned_model=job.fine_tuned_model, method=method, suffix=suffix,
        source_hyperparameters=dict(job.hyperparameters), data=source_data, validation=valid,
        target_provider=target.provider_name, target_model=model, target_model_reason=reason,
        hyperparameters=hp, mapping_notes=notes, quote=quote, quote_note=quote_note,
        idempotency_key=idempotency_key(source.provider_name, job.id), problems=problems,
    )  # fmt: skip


def plan_migration(
    source: FineTuneClient,
    target: FineTuneClient,
    *,
    jobs: Sequence[str] | None = None,
    data: str | os.PathLike[str] | Mapping[str, str | os.PathLike[str]] | None = None,
    validation: str | os.PathLike[str] | Mapping[str, str | os.PathLike[str]] | None = None,
    model_map: Mapping[str, str] | None = None,
) -> MigrationPlan:
    """Plan moving fine-tunes from `source` (e.g. an OpenAI client) to `target`; creates nothing.

    Args:
        source: the client of the provider the fine-tunes are on.
        target: the client of the provider they move to.
        jobs: the source job ids to move; None: every succeeded job on the source's job list and
            in this machine's ledger.
        data: the training file: one path for every job, or a mapping of source job id to path.
            OpenAI does not return training files; without `data`, the file the ledger recorded
            when this machine created the job is used (its sha256 checked), and a job with neither
            is planned with "no data available" and cannot run.
        validation: a held-out file (same forms as `data`) to evaluate on; without one, the run
            holds out a fifth of the training file.
        model_map: source model → target model, over the catalog's proposal.

    Raises `ConfigurationError` when source and target are the same provider or an argument is
    malformed; each job's own problems are listed in its `JobPlan.problems`.
    """
    if source.provider_name == target.provider_name:
        raise ConfigurationError(
            f"The source and the target are both {source.provider_name!r}.",
            fix="Migrate to another provider: --to together, bedrock, vertex or local.",
        )
    if jobs is not None and (isinstance(jobs, str) or not all(isinstance(j, str) and j for j in jobs)):
        raise ConfigurationError(
            f"jobs must be a list of source job ids, not {jobs!r}.", fix="Pass e.g. jobs=['ftjob-abc']."
        )
    mapping = _check_map(model_map)
    found, notes = _source_jobs(source, jobs)
    if not found:
        notes.append(
            f"no succeeded fine-tuning job was found on {source.provider_name}; name one with --job ID"
        )
    planned = [
        plan_job(source, target, j, data=data, validation=validation, model_map=mapping) for j in found
    ]
    plan = MigrationPlan(
        source_provider=source.provider_name, target_provider=target.provider_name, jobs=planned, notes=notes
    )
    plan._source, plan._target = source, target
    return plan
