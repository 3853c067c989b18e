"""`FineTuneClient`: the one façade application code uses.

The client picks a provider (by name, instance or config), prepares and uploads data, records every
job it creates in the ledger, retries transient errors with one policy, and polls jobs to the end.
It imports no vendor SDK: providers do that, lazily.

Over ~700 lines on purpose: the module is the `FineTuneClient` class, one public method per
operation, each with its docstring; what is not the façade has left it (the poller `_poll`, the
argument checks `_args`, the async client `_async`).
"""

from __future__ import annotations

import itertools
import os
import shutil
import sqlite3
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import SecretStr, ValidationError

from unitune._clock import Clock, SystemClock
from unitune._log import get_logger
from unitune._retry import RetryPolicy, retryable
from unitune.catalog import Catalog, Quote, load_catalog
from unitune.catalog import compare as compare_costs
from unitune.catalog import estimate as estimate_cost
from unitune.client._args import (
    DataInput,
    JobRef,
    MessagesInput,
    OnUpdate,
    _as_config,
    _callback,
    _hyperparameters,
    _job_id,
    _messages,
    _metadata,
    _name,
    _number,
    _one_line,
)
from unitune.client._poll import _Poll
from unitune.config import RetrySettings, UnituneConfig, home_dir, ledger_path, load_config
from unitune.data import Dataset, ValidationReport
from unitune.data import validate as validate_dataset
from unitune.errors import (
    BudgetExceeded,
    ConfigurationError,
    JobSpecRefused,
    ProviderRetiredError,
    ProviderUnavailableError,
    RateLimitError,
    ValidationFailed,
    WaitTimeout,
)
from unitune.ledger import DataFiles, Ledger, RunRecord, sha256_file
from unitune.providers.base import Provider, ProviderContext
from unitune.providers.registry import build_provider, load_provider_class
from unitune.types import (
    ChatResponse,
    Checkpoint,
    FileRef,
    Hyperparameters,
    Job,
    JobEvent,
    JobSpec,
    PreparedFile,
    Purpose,
    StepMetric,
    TrainingMethod,
    TunedModel,
    WandbIntegration,
    file_key,
    spec_fingerprint,
)

if TYPE_CHECKING:
    from rich.console import Console

    from unitune.evaluate import Candidate, EvaluationReport, Judge
    from unitune.export import ExportDtype, ExportFormat, ExportResult
    from unitune.migrate import MigrationReport
    from unitune.runs import JobFile, RunResult, SweepResult

log = get_logger("unitune")


def _data_files(training: Dataset | FileRef, validation: Dataset | FileRef | None) -> DataFiles | None:
    """The local files a job is created from, with their sha256, for the ledger (None: none local).

    Vendors do not return the files they trained on, so this is how the job can be retrained
    elsewhere later (`unitune migrate`) from the same, checked, data.
    """

    def one(data: Dataset | FileRef | None) -> tuple[str | None, str | None]:
        path = getattr(data, "path", None) if isinstance(data, Dataset) else None
        if path is None:
            return None, None
        try:
            return str(Path(path).resolve()), sha256_file(path)
        except OSError:
            return None, None  # the data was read a moment ago; a vanished file is not worth failing for

    training_path, training_sha = one(training)
    validation_path, validation_sha = one(validation)
    if training_path is None and validation_path is None:
        return None
    return DataFiles(training_path=training_path, training_sha256=training_sha,
                     validation_path=validation_path, validation_sha256=validation_sha)  # fmt: skip


class FineTuneClient:
    """Fine-tune, track and call models on one provider, chosen by name, instance or config.

    >>> client = FineTuneClient("fake")
    >>> job = client.create_job(model="gpt-4o-mini", training_data="train.jsonl")  # doctest: +SKIP
    >>> client.wait(job).fine_tuned_model  # doctest: +SKIP

    Args:
        provider: a registered provider name ("fake", "together", …), a `Provider` instance, or
            None for the provider named in the config (`unitune.toml`, `$UNITUNE_PROVIDER`).
        config: settings to use instead of reading the config file: a `UnituneConfig` or the path
            of a unitune.toml.
        ledger: where jobs are recorded: a `Ledger`, a path, False for none, or None for the
            default file under the unitune home directory (none for an ephemeral provider such
            as the fake, whose jobs end with the process).
        clock: the time source (tests pass a `FakeClock`); defaults to the provider's own clock
            when it simulates time (the fake does), else the system clock.
        api_key: the provider's API key, over its config section, as a vendor SDK takes it
            (`FineTuneClient("together", api_key=...)`).
        base_url: the provider's API address, over its config section.
        timeout: the provider's request timeout in seconds, over its config section.
        max_retries: retries of a transient error (429, 5xx, timeouts) per call, over
            `[retry] max_attempts` (attempts = retries + 1); 0 turns retrying off.
        **settings: any other setting of the chosen provider (`region=` for Bedrock, …), checked
            by its settings class: an unknown name raises `ConfigurationError`.
    """

    def __init__(
        self,
        provider: str | Provider | None = None,
        *,
        config: UnituneConfig | str | os.PathLike[str] | None = None,
        ledger: Ledger | str | os.PathLike[str] | Literal[False] | None = None,
        clock: Clock | None = None,
        api_key: str | SecretStr | None = None,
        base_url: str | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        **settings: Any,
    ) -> None:
        config = _as_config(config)
        if max_retries is not None:
            if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
                raise ConfigurationError(
                    f"max_retries must be a whole number of retries (0 or more), not {max_retries!r}."
                )
            retry = RetrySettings.model_validate(
                {**config.retry.model_dump(), "max_attempts": max_retries + 1}
            )
            config = config.model_copy(update={"retry": retry})
        self.config = config
        given = {"api_key": api_key, "base_url": base_url, "timeout": timeout, **settings}
        overrides = {k: v for k, v in given.items() if v is not None}
        if isinstance(provider, Provider):
            if overrides:
                raise ConfigurationError(
                    f"{', '.join(sorted(overrides))} cannot change a provider that is already built.",
                    fix="Pass them when you build the provider, or pass the provider's name instead.",
                )
            self.provider = provider
        elif provider is None or isinstance(provider, str):
            name = provider if provider is not None else self.config.provider
            _name(name, "The provider name", "Pass a provider name such as 'openai' or 'local'.")
            if overrides:
                fields = load_provider_class(name).settings_class.model_fields
                unknown = sorted(set(overrides) - set(fields))
                if unknown:
                    raise ConfigurationError(
                        f"The {name!r} provider has no setting {', '.join(map(repr, unknown))}.",
                        fix=f"Its settings: {', '.join(fields)}.",
                    )
            section = {**self.config.section(name), **overrides}
            self.provider = build_provider(name, section, home=home_dir(self.config))
        else:
            raise ConfigurationError(
                f"provider must be a provider name or a Provider, not a {type(provider).__name__}.",
                fix="Pass e.g. FineTuneClient('together'), or leave it out to use the config's provider.",
            )
        self.clock: Clock = clock or getattr(self.provider, "clock", None) or SystemClock()
        if ledger is False or (ledger is None and self.provider.ephemeral):
            self.ledger: Ledger | None = None
        elif isinstance(ledger, Ledger):
            self.ledger = ledger
        elif isinstance(ledger, (str, os.PathLike)):
            self.ledger = Ledger(Path(ledger))
        elif ledger is None:
            self.ledger = Ledger(ledger_path(self.config))
        else:
            raise ConfigurationError(
                f"ledger must be a Ledger, a path or False, not a {type(ledger).__name__}."
            )
        self.retry = RetryPolicy(self.config.retry, self.clock)
        self._catalog: Catalog | None = None
        # The provider works inside this client: its home, its clock, its catalog, and its retry
        # policy for the requests inside one call (an upload's parts, its complete).
        self.provider.bind(
            ProviderContext(
                home=home_dir(self.config), clock=self.clock, retry=self.retry, catalog=lambda: self.catalog
            )
        )
        self._owns_provider = not isinstance(provider, Provider)
        self._locks: dict[tuple[str, str], threading.Lock] = {}
        self._locks_guard = threading.Lock()

    @classmethod
    def from_config(cls, path: str | os.PathLike[str] | None = None, **kwargs: Any) -> FineTuneClient:
        """A client for the provider named in the config file (see `unitune.config`).

        Args:
            path: the unitune.toml to read; None for `$UNITUNE_CONFIG` or the working directory's.
            **kwargs: the other arguments of `FineTuneClient` (not `provider` or `config`).

        Raises:
            ConfigurationError: `provider` or `config` is passed, or the config file is malformed.
        """
        for taken in ("provider", "config"):
            if taken in kwargs:
                raise ConfigurationError(
                    f"from_config reads {taken} from the config file; it cannot also be passed.",
                    fix="Use FineTuneClient(provider, config=...) to choose both, or set it in the file.",
                )
        return cls(None, config=load_config(path), **kwargs)

    def __repr__(self) -> str:
        return f"FineTuneClient(provider={self.provider.name!r})"

    def __enter__(self) -> FineTuneClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the provider's connections if this client built the provider.

        Release the provider's connections, if this client built the provider (one passed in
        belongs to the caller, who may share it).
        """
        if self._owns_provider:
            self.provider.close()

    @property
    def catalog(self) -> Catalog:
        """The model catalog (built-in data plus the config's `catalog` files), loaded on first use."""
        if self._catalog is None:
            self._catalog = load_catalog(self.config.catalog)
        return self._catalog

    def resolve_model(self, model: str) -> str:
        """The provider's own id for a portable alias (`llama-3.1-8b-instruct` → the vendor's id)."""
        model = _name(model, "model", "Pass a model id or a portable alias such as 'llama-3.1-8b-instruct'.")
        if self.provider.name not in self.catalog.providers:
            return model
        return self.catalog.resolve(self.provider.name, model)

    @property
    def provider_name(self) -> str:
        """The provider's registered name ("fake", "together", …)."""
        return self.provider.name

    # -- data -----------------------------------------------------------------------------------

    @staticmethod
    def _dataset(data: DataInput) -> Dataset | FileRef:
        if isinstance(data, (FileRef, Dataset)):
            return data
        if isinstance(data, (str, os.PathLike)):
            if not str(data):
                raise ConfigurationError("The data path is empty.", fix="Pass the path of a JSONL file.")
            return Dataset.from_jsonl(Path(data))
        raise ConfigurationError(
            f"data must be a path, a Dataset or a FileRef, not a {type(data).__name__}.",
            fix="Pass the path of a JSONL file, or unitune.Dataset.from_records([...]).",
        )

    def validate(
        self,
        data: DataInput,
        *,
        model: str | None = None,
        validation_data: DataInput | None = None,
        method: TrainingMethod | None = None,
    ) -> ValidationReport:
        """Check a dataset against this provider's rules (and `validation_data` for leakage).

        Never raises for bad data: the report lists every problem with its line.

        Args:
            data: the training data: a JSONL path or a `Dataset`.
            model: the model to train, checked as `estimate` and `create_job` check it; it sets the
                token limit.
            validation_data: held-out data, checked too and compared with `data` for leakage.
            method: "sft" or "dpo": every example must then be of that job's kind.

        Returns:
            The report: every problem found, with its line, and the dataset's statistics.

        Raises:
            ConfigurationError: a bad argument, or a model alias this provider does not offer.
        """
        train = self._dataset(data)
        valid = self._dataset(validation_data) if validation_data is not None else None
        if isinstance(train, FileRef) or isinstance(valid, FileRef):
            raise ConfigurationError(
                "A FileRef is already on the provider; validate the local file it came from."
            )
        defaults = self.config.job_defaults(self.provider.name)  # what create_job would use
        if model is None:
            model = defaults.model
        if method is None:
            method = defaults.method
        if method is not None:
            method = self._method_arg(method)
        return self._validate_local(
            train, valid, self.resolve_model(model) if model is not None else None, method
        )

    def _validate_local(
        self, train: Dataset, valid: Dataset | None, model: str | None, method: TrainingMethod | None
    ) -> ValidationReport:
        """`unitune.data.validate` with this provider's profile and this client's catalog limit."""
        entry = self.catalog.find(self.provider.name, model) if model else None
        return validate_dataset(
            train,
            provider=self.provider.profile_for(model),
            model=model,
            method=method,
            validation=valid,
            token_limit=entry.max_example_tokens if entry is not None else None,
            today=self.clock.now().date() if self.provider.name in self.catalog.providers else None,
            catalog=self.catalog,
        )

    def _check_and_prepare(
        self,
        items: list[tuple[DataInput, Purpose]],
        model: str | None,
        workdir: Path,
        method: TrainingMethod = "sft",
    ) -> list[PreparedFile | FileRef]:
        """Validate local data and convert it to the provider's format for `method`.

        Validate local data (training against validation for leakage, each example of `method`'s
        kind), then convert it to the provider's format for `method`. Raises `ValidationFailed`
        before anything is uploaded.
        """
        loaded = [(self._dataset(d), purpose) for d, purpose in items]
        local = {purpose: ds for ds, purpose in loaded if isinstance(ds, Dataset)}
        if "training" in local or "validation" in local:
            first = local.get("training") or local["validation"]
            other = local.get("validation") if "training" in local else None
            report = self._validate_local(first, other, model, method)
            if not report.ok:
                # One line: the count, the first problem, and where to see them all (`report`).
                raise ValidationFailed(
                    f"The dataset fails {self.provider.name}'s checks; nothing was uploaded. "
                    f"{report.summary()}. First: {report.errors[0]}. "
                    "See every problem with `unitune validate FILE` (or the error's .report).",
                    report=report,
                )
        return [
            ds
            if isinstance(ds, FileRef)
            else self.provider.prepare(ds, purpose, model=model, workdir=workdir, method=method)
            for ds, purpose in loaded
        ]

    def _workdir(self) -> Path:
        parent = home_dir(self.config) / "prepared"
        try:
            parent.mkdir(parents=True, exist_ok=True)
            return Path(tempfile.mkdtemp(dir=parent))
        except OSError as e:
            raise ConfigurationError(
                f"Cannot use the unitune home {str(home_dir(self.config))!r}: {e.strerror or e}.",
                fix="Set UNITUNE_HOME (or `home` in unitune.toml) to a writable directory.",
            ) from None

    def _upload_prepared(self, item: PreparedFile | FileRef) -> FileRef:
        if isinstance(item, FileRef):
            if item.provider != self.provider.name:
                raise ConfigurationError(
                    f"File {item.id!r} lives on {item.provider!r}, not {self.provider.name!r}.",
                    fix="Pass the local dataset instead, so it is uploaded to this provider.",
                )
            return item
        return self.retry.call("upload", self.provider.upload, item)

    def upload(
        self,
        data: DataInput,
        *,
        purpose: Purpose = "training",
        model: str | None = None,
        method: TrainingMethod = "sft",
    ) -> FileRef:
        """Validate `data`, convert it to the provider's format for `method` and upload it.

        Args:
            data: a JSONL path or a `Dataset`; a `FileRef` (already uploaded) is returned as is.
            purpose: "training" or "validation".
            model: the model the file is for: it decides the dataset rules and the token limit.
            method: "sft" or "dpo", which decides the wire format.

        Returns:
            The uploaded file.

        Raises:
            ValidationFailed: the data fails the provider's checks; nothing is uploaded.
        """
        if purpose not in ("training", "validation"):
            raise ConfigurationError(f"purpose must be 'training' or 'validation', not {purpose!r}.")
        if model is not None:
            model = self.resolve_model(model)
        method = self._method_arg(method)
        workdir = self._workdir()
        try:
            (item,) = self._check_and_prepare([(data, purpose)], model, workdir, method)
            return self._upload_prepared(item)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    # -- prices -----------------------------------------------------------------------------------

    def _local(self, data: DataInput | None) -> Dataset | None:
        if data is None:
            return None
        return self._required_local(data)

    def _required_local(self, data: DataInput) -> Dataset:
        if data is None:
            raise ConfigurationError("No data given.", fix="Pass the path of a JSONL file or a Dataset.")
        ds = self._dataset(data)
        if isinstance(ds, FileRef):
            raise ConfigurationError(
                "A quote needs the local data to count its tokens; pass the file, not an uploaded FileRef."
            )
        return ds

    def _quote(
        self,
        data: DataInput,
        validation_data: DataInput | None,
        model: str,
        hp: Hyperparameters,
        method: TrainingMethod,
    ) -> Quote:
        return estimate_cost(
            self.catalog, self.provider.name, model, self._required_local(data),
            validation=self._local(validation_data), hyperparameters=hp, method=method,
            today=self.clock.now().date(),
        )  # fmt: skip

    def estimate(
        self,
        data: DataInput,
        *,
        model: str | None = None,
        hyperparameters: Hyperparameters | Mapping[str, Any] | None = None,
        validation_data: DataInput | None = None,
        method: TrainingMethod | None = None,
    ) -> Quote:
        """Quote what fine-tuning `model` on `data` would cost on this provider.

        The quote comes from exact token counts and the catalog's dated prices (each line carries its
        source).

        Args:
            data: the training data: a JSONL path or a `Dataset`.
            model: the model id or catalog alias; default from the config's job settings.
            hyperparameters: epochs and the like; default from the config, merged field by field.
            validation_data: held-out data, whose tokens some vendors bill too.
            method: "sft" or "dpo"; default from the config.

        Returns:
            The quote, line by line, with each price's source and date.
        """
        defaults = self.config.job_defaults(self.provider.name)
        return self._quote(
            data, validation_data, self._model_arg(model, defaults.model),
            _hyperparameters(hyperparameters, defaults.hyperparameters),
            self._method_arg(method if method is not None else defaults.method),
        )  # fmt: skip

    def compare(
        self,
        data: DataInput,
        *,
        model: str,
        providers: Sequence[str],
        validation_data: DataInput | None = None,
        hyperparameters: Hyperparameters | None = None,
        method: TrainingMethod = "sft",
    ) -> list[Quote]:
        """Quote the same job on several providers, cheapest first (see `unitune.catalog.compare`).

        Args:
            data: the training data: a JSONL path or a `Dataset`.
            model: the model id or a portable catalog alias.
            providers: the provider names to quote, e.g. `["together", "bedrock"]`.
            validation_data: held-out data, whose tokens some vendors bill too.
            hyperparameters: the job's hyperparameters (each provider's defaults where not given).
            method: "sft" or "dpo".

        Returns:
            One quote per provider, cheapest first.

        Raises:
            ConfigurationError: `providers` is empty or not a list of names, or another argument is bad.
        """
        if isinstance(providers, str) or not isinstance(providers, Sequence) or not providers:
            raise ConfigurationError(
                f"providers must be a non-empty list of provider names, not {providers!r}.",
                fix='Pass e.g. providers=["together", "bedrock"].',
            )
        for name in providers:
            _name(name, "A provider name", 'Pass e.g. providers=["together", "bedrock"].')
        return compare_costs(
            self.catalog, self._required_local(data), model=_name(model, "model", "Pass a model id or alias."),
            providers=providers, validation=self._local(validation_data),
            hyperparameters=_hyperparameters(hyperparameters, {}), method=self._method_arg(method),
            today=self.clock.now().date(),
        )  # fmt: skip

    # -- jobs -----------------------------------------------------------------------------------

    def create_job(
        self,
        *,
        model: str | None = None,
        training_data: DataInput,
        validation_data: DataInput | None = None,
        hyperparameters: Hyperparameters | Mapping[str, Any] | None = None,
        method: TrainingMethod | None = None,
        suffix: str | None = None,
        metadata: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
        max_cost_usd: float | None = None,
        validation_split: float | None = None,
        wandb: WandbIntegration | None = None,
    ) -> Job:
        """Upload the data (if local) and start a fine-tuning job.

        Arguments left out come from the config: `[job]`, overridden by the same keys under
        `[providers.<name>]`, so switching vendor is a config change. Every argument is checked before
        anything is uploaded.

        Args:
            model: the model id, or a portable alias from the catalog (`llama-3.1-8b-instruct`).
            training_data: a JSONL path, a `Dataset`, or a `FileRef` already uploaded.
            validation_data: held-out data, in the same forms.
            hyperparameters: epochs, learning rate and the like; merged field by field over the config's.
            method: "sft" or "dpo".
            suffix: a name part for the tuned model, where the vendor takes one.
            metadata: string tags for the job, where the vendor takes them.
            idempotency_key: calling again with the same key returns the job already created (from the
                ledger, even in a new process) instead of making a second one, and transient errors are
                retried safely. Without it, create is attempted exactly once.
            max_cost_usd: the job is quoted first and refused above this many dollars.
            validation_split: the fraction of a local training file held out as validation data when
                `validation_data` is not given.
            wandb: ask the vendor to log the job to Weights & Biases itself (OpenAI, Together: see
                `Capabilities.wandb_integration`).

        Returns:
            The job as the provider reports it once created.

        Raises:
            ConfigurationError: a bad argument.
            BudgetExceeded: the quote is above `max_cost_usd` (it carries the quote); nothing is uploaded.
            ProviderRetiredError: the provider accepts no new jobs (or is past the catalog's sunset date,
                with the live alternatives).
            UnsupportedFeatureError: the provider cannot honour `method` or a hyperparameter; a provider
                without a W&B integration refuses `wandb` (`JobSpecRefused`) before anything is uploaded.
            ValidationFailed: local data fails the provider's checks; nothing is uploaded.
        """
        defaults = self.config.job_defaults(self.provider.name)
        model = self._model_arg(model, defaults.model)
        hp = _hyperparameters(hyperparameters, defaults.hyperparameters)
        if validation_split is None:
            validation_split = defaults.validation_split
        elif not _number(validation_split) or not 0 < validation_split < 1:
            raise ConfigurationError(
                f"validation_split must be a fraction between 0 and 1, not {validation_split!r}.",
                fix="Pass e.g. validation_split=0.1 to hold out 10% of the training file.",
            )
        method = self._method_arg(method if method is not None else defaults.method)
        suffix = suffix if suffix is not None else defaults.suffix
        if suffix is not None and not isinstance(suffix, str):
            raise ConfigurationError(f"suffix must be a string, not a {type(suffix).__name__}.")
        meta = _metadata(metadata)
        if idempotency_key is not None:
            _name(idempotency_key, "idempotency_key", "Pass a stable, non-empty key per job, or None.")
        if max_cost_usd is not None and (
            isinstance(max_cost_usd, bool) or not isinstance(max_cost_usd, (int, float)) or max_cost_usd < 0
        ):
            raise ConfigurationError(
                f"max_cost_usd must be a number of dollars (0 or more), not {max_cost_usd!r}."
            )
        training = self._dataset(training_data)
        validation = self._dataset(validation_data) if validation_data is not None else None
        model = self.resolve_model(model)
        # The catalog first: its refusal carries the date, the source and the live alternatives.
        self.catalog.check_can_train(self.provider.name, model, today=self.clock.now().date())
        self._check_supported(method, hp)
        if wandb is not None and not isinstance(wandb, WandbIntegration):
            raise ConfigurationError(
                f"wandb must be a WandbIntegration, not a {type(wandb).__name__}.",
                fix="Pass wandb=WandbIntegration(project='...').",
            )
        draft = self._draft_spec(
            model, hp, method, suffix, meta, validation is not None or validation_split is not None, wandb
        )
        workdir = self._workdir()
        try:
            if validation is None and validation_split is not None and isinstance(training, Dataset):
                training, validation = self._split(training, validation_split, workdir)
            if max_cost_usd is not None:
                quote = self._quote(training, validation, model, hp, method)
                if quote.total_usd is None:
                    raise ConfigurationError(
                        f"Cannot enforce max_cost_usd: the catalog has no training price for {model} on "
                        f"{self.provider.name}.",
                        fix="Add one in a catalog file (config key `catalog`), or drop max_cost_usd.",
                    )
                if quote.total_usd > max_cost_usd:
                    raise BudgetExceeded(cost_usd=quote.total_usd, max_cost_usd=max_cost_usd, quote=quote)
                if not quote.verified:
                    sources = sorted({line.source for line in quote.lines if not line.verified})
                    log.warning(
                        "unitune: max_cost_usd=%.2f holds against a quote of $%.2f that rests on unverified "
                        "prices (from %s); the vendor's bill may differ", max_cost_usd, quote.total_usd,
                        ", ".join(sources) or "the catalog",
                    )  # fmt: skip
            return self._create_job(draft, training, validation, idempotency_key, workdir)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)  # the converted copies; uploaded by now

    def _model_arg(self, model: object, default: str | None) -> str:
        if model is None:
            model = default
        if model is None:
            raise ConfigurationError(
                f"No model given for {self.provider.name!r}.",
                fix=f"Pass model=..., or set model under [providers.{self.provider.name}] (or [job]) in unitune.toml.",
            )
        return _name(model, "model", "Pass a model id or a portable alias such as 'llama-3.1-8b-instruct'.")

    def _method_arg(self, method: object) -> TrainingMethod:
        if method is None or method == "sft":
            return "sft"
        if method == "dpo":
            return "dpo"
        raise ConfigurationError(f"method must be 'sft' or 'dpo', not {method!r}.")

    def _draft_spec(
        self,
        model: str,
        hp: Hyperparameters,
        method: TrainingMethod,
        suffix: str | None,
        meta: dict[str, str],
        validation: bool = False,
        wandb: WandbIntegration | None = None,
    ) -> JobSpec:
        """The job's spec with stand-in files, checked before anything is uploaded.

        The job's spec with a stand-in file, built before anything is uploaded so whatever the
        spec refuses is refused now, not after the upload; the uploaded files replace the stand-ins.
        """
        stand_in = FileRef(id="unitune-check", provider=self.provider.name)
        try:
            spec = JobSpec(
                model=model,
                training_file=stand_in,
                validation_file=stand_in if validation else None,
                hyperparameters=hp,
                method=method,
                suffix=suffix,
                metadata=meta,
                wandb=wandb,
            )
        except ValidationError as e:
            raise ConfigurationError(f"Invalid job settings ({_one_line(e)}).") from None
        # And what the provider refuses without a request (options, settings, limits).
        self.provider.check_job(spec)
        return spec

    def _split(self, data: Dataset, fraction: float, workdir: Path) -> tuple[Dataset, Dataset]:
        """Hold out `fraction` of `data` as validation (config `validation_split`), deterministically."""
        from unitune.data import split

        result = split(data, workdir / "split", validation_fraction=fraction)
        if not result.train_examples or not result.validation_examples:
            raise ConfigurationError(
                f"validation_split = {fraction:g} leaves {result.train_examples} training and "
                f"{result.validation_examples} validation example(s) of {data.name}.",
                fix="Change validation_split in [job] (or [providers.NAME]), or pass validation_data.",
            )
        log.info(
            "unitune: validation_split=%g held out %d of %d examples",
            fraction, result.validation_examples, result.train_examples + result.validation_examples,
        )  # fmt: skip
        return result.train, result.validation

    def _create_job(
        self,
        draft: JobSpec,
        training_data: Dataset | FileRef,
        validation_data: Dataset | FileRef | None,
        idempotency_key: str | None,
        workdir: Path,
    ) -> Job:
        items: list[tuple[DataInput, Purpose]] = [(training_data, "training")]
        if validation_data is not None:
            items.append((validation_data, "validation"))
        prepared = self._check_and_prepare(items, draft.model, workdir, draft.method)
        training = prepared[0]
        validation = prepared[1] if len(prepared) > 1 else None
        fingerprint = spec_fingerprint(
            model=draft.model,
            training=file_key(training),
            validation=file_key(validation) if validation is not None else None,
            hyperparameters=draft.hyperparameters,
            method=draft.method,
            suffix=draft.suffix,
            metadata=draft.metadata,
        )
        files = _data_files(training_data, validation_data)
        if idempotency_key is None:
            return self._create(draft, training, validation, fingerprint, None, files)
        # One creator per key in this process: concurrent callers wait, then find the job made.
        with self._key_lock(idempotency_key):
            existing = self._recorded(idempotency_key, fingerprint, draft.model)
            if existing is not None:
                return existing
            return self._create(draft, training, validation, fingerprint, idempotency_key, files)

    def _create(
        self,
        draft: JobSpec,
        training: PreparedFile | FileRef,
        validation: PreparedFile | FileRef | None,
        fingerprint: str,
        idempotency_key: str | None,
        files: DataFiles | None = None,
    ) -> Job:
        validation_ref: FileRef | None
        if isinstance(training, PreparedFile) and isinstance(validation, PreparedFile):
            training_ref, validation_ref = self.retry.call(
                "upload", self.provider.upload_pair, training, validation
            )  # both local: the provider may keep them together
        else:
            training_ref = self._upload_prepared(training)
            validation_ref = self._upload_prepared(validation) if validation is not None else None
        spec = draft.model_copy(update={"training_file": training_ref, "validation_file": validation_ref})
        key = idempotency_key or f"unitune-{uuid.uuid4().hex}"
        if idempotency_key is None:
            job = self.provider.create_job(spec, idempotency_key=key)
        else:
            attempts = itertools.count(1)
            job = self.retry.call("create_job", self._create_once, spec, key, attempts)
        self._remember(job, fingerprint, key, files)
        return job

    def _remember(self, job: Job, fingerprint: str | None, key: str, files: DataFiles | None = None) -> None:
        """Record a created job.

        The job exists whatever happens here, so a ledger failure is a warning, never an error that would
        make the caller think the create failed and retry.
        """
        if self.ledger is None:
            return
        try:
            self.ledger.record(job, spec_hash=fingerprint, idempotency_key=key, data=files)
        except (sqlite3.Error, OSError, ConfigurationError) as e:
            log.warning(
                "unitune: job %s was created but could not be recorded in %s: %s", job.id, self.ledger.path, e
            )

    def _key_lock(self, key: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault((self.provider.name, key), threading.Lock())

    def _check_supported(self, method: TrainingMethod, hp: Hyperparameters) -> None:
        caps = self.provider.capabilities
        # The catalog decides where it has the provider (`check_can_train`, before this); the
        # adapter's flag speaks only for a provider the catalog does not list.
        if self.provider.name not in self.catalog.providers and not caps.accepts_new_jobs:
            raise ProviderRetiredError(
                f"{self.provider.name!r} accepts no new fine-tuning jobs", provider=self.provider.name
            )
        if method == "dpo" and not caps.dpo:
            raise JobSpecRefused.unsupported(self.provider.name, "DPO training")
        if (hp.lora_rank is not None or hp.lora_alpha is not None) and not caps.lora:
            raise JobSpecRefused.unsupported(
                self.provider.name, "LoRA settings (lora_rank, lora_alpha)",
                "Leave them unset to use the provider's own method.",
            )  # fmt: skip

    def _recorded(self, key: str, fingerprint: str, model: str) -> Job | None:
        """The job already created with idempotency key `key`, if any.

        The job already created with this key: from the ledger, else from the provider's tags
        (the key may have been used on another machine, or with the ledger off).
        """
        reuse = ConfigurationError(
            f"Idempotency key {key!r} was already used for another job with a different model, data "
            "or settings.",
            fix="Use a new key for a different job.",
        )
        if self.ledger is not None:
            entry = self.ledger.find_by_key(self.provider.name, key)
            if entry is not None:
                if entry.spec_hash is not None and entry.spec_hash != fingerprint:
                    raise reuse
                return self.get_job(entry.job_id)
        found = self.retry.call("find_job", self.provider.find_job, key)
        if found is not None:
            # Vendors' tags carry no fingerprint, so the model is what we can compare, unless the
            # provider kept the spec's hash (the fake does).
            kept = found.raw.get("spec_hash")
            if found.model != model or (isinstance(kept, str) and kept != fingerprint):
                raise reuse
            self._remember(found, fingerprint, key)
        return found

    def _create_once(self, spec: JobSpec, key: str, attempts: Iterator[int]) -> Job:
        if next(attempts) > 1:
            # A retry: an earlier attempt may have created the job (its answer lost), and the
            # vendor's list may only now show it. Look before creating again.
            found = self.provider.find_job(key)
            if found is not None:
                return found
        try:
            return self.provider.create_job(spec, idempotency_key=key)
        except ProviderUnavailableError as e:
            if not e.sent:
                raise  # it never reached the vendor: nothing to look for
            # The request may have taken effect. Vendors' job lists lag behind a create by seconds,
            # so one immediate look can miss the job and a retry would make a second one.
            found = self._find_created(key)
            if found is not None:
                return found
            raise

    def _find_created(self, key: str) -> Job | None:
        """Look up the job tagged `key`, with backoff where the provider's job list lags.

        The job tagged `key`, looked up with backoff for `retry.find_window` seconds on
        providers whose job list can lag (once on those that cannot). A lookup that itself fails
        counts as "not seen yet"; if none succeeded, that error is raised, so the caller's retry
        looks again rather than creating blind.
        """
        window = self.config.retry.find_window if getattr(self.provider, "list_lags", True) else 0.0
        deadline = self.clock.monotonic() + window
        delay = max(self.config.retry.initial_backoff, 0.5)
        failure: ProviderUnavailableError | RateLimitError | None = None
        looked = False
        while True:
            try:
                found = self.provider.find_job(key)
                looked = True
            except (ProviderUnavailableError, RateLimitError) as e:
                if not retryable(e):
                    raise
                failure, found = e, None
            if found is not None:
                return found
            remaining = deadline - self.clock.monotonic()
            if remaining <= 0:
                break
            self.clock.sleep(min(delay, remaining))
            delay = min(delay * 2, max(self.config.retry.max_backoff, 0.5))
        if not looked and failure is not None:
            raise failure
        return None

    def get_job(self, job: JobRef) -> Job:
        """The job's current state (and the ledger's copy updated)."""
        fresh = self.retry.call("get_job", self.provider.get_job, _job_id(job))
        self._update_ledger(fresh)
        return fresh

    def _update_ledger(self, job: Job) -> None:
        if self.ledger is None:
            return
        try:
            self.ledger.update(job)
        except (
            sqlite3.Error,
            OSError,
            ConfigurationError,
        ) as e:  # the read succeeded; a stale cache is only a warning
            log.warning("unitune: could not update job %s in %s: %s", job.id, self.ledger.path, e)

    def list_jobs(self, *, limit: int = 20) -> list[Job]:
        """The provider's recent jobs, newest first (all pages, up to `limit`)."""
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ConfigurationError(f"limit must be a whole number of jobs (1 or more), not {limit!r}.")
        return self.retry.call("list_jobs", self.provider.list_jobs, limit=limit)

    def cancel_job(self, job: JobRef) -> Job:
        """Ask the provider to stop the job. It may report `cancelling` for a while."""
        cancelled = self.retry.call("cancel_job", self.provider.cancel_job, _job_id(job))
        self._update_ledger(cancelled)
        return cancelled

    def pause_job(self, job: JobRef) -> Job:
        """Pause a running job where the provider can (OpenAI); `resume_job` continues it."""
        paused = self.retry.call("pause_job", self.provider.pause_job, _job_id(job))
        self._update_ledger(paused)
        return paused

    def resume_job(self, job: JobRef) -> Job:
        """Resume a paused job."""
        resumed = self.retry.call("resume_job", self.provider.resume_job, _job_id(job))
        self._update_ledger(resumed)
        return resumed

    def wait(
        self,
        job: JobRef,
        *,
        timeout: float | None = None,
        poll_interval: float | None = None,
        on_update: OnUpdate | None = None,
    ) -> Job:
        """Poll until the job ends; return it when it succeeded.

        Args:
            job: the job or its id.
            timeout: give up after this many seconds; None waits as long as the job runs.
            poll_interval: seconds between polls (config `[wait]`); polls back off while nothing changes.
            on_update: called with the job after every poll.

        Returns:
            The succeeded job.

        Raises:
            JobFailedError: the job failed or was cancelled (the job is attached).
            WaitTimeout: `timeout` passed; the job keeps running.
        """
        poll = _Poll(self.config.wait, self.clock, timeout, poll_interval)
        _callback(on_update, "on_update")
        _job_id(job)
        last = job if isinstance(job, Job) else None
        while True:
            current = last = self._poll_once(job, poll, last)
            if on_update is not None:
                on_update(current)
            sleep = poll.next_sleep(current)
            if sleep is None:
                return current
            self.clock.sleep(sleep)

    def _poll_once(self, job: JobRef, poll: _Poll, last: Job | None) -> Job:
        """One status read within the wait's deadline: retries of a 429 never outlast `timeout`."""
        try:
            fresh = self.retry.call("get_job", self.provider.get_job, _job_id(job), deadline=poll.deadline)
        except (RateLimitError, ProviderUnavailableError) as e:
            pause = e.retry_after if isinstance(e, RateLimitError) and e.retry_after else 0.0
            pause = max(pause, self.config.retry.initial_backoff)
            if (
                poll.deadline is not None
                and last is not None
                and self.clock.monotonic() + pause >= poll.deadline
            ):
                # Retrying would outlast the caller's timeout: that is a timeout, not a vendor error.
                assert poll.timeout is not None
                raise WaitTimeout(last, poll.timeout) from e
            raise
        self._update_ledger(fresh)
        return fresh

    def events(self, job: JobRef) -> list[JobEvent]:
        """The job's log, oldest first."""
        return self.retry.call("events", self.provider.list_events, _job_id(job))

    def metrics(self, job: JobRef) -> list[StepMetric]:
        """Per-step training metrics (loss curves), in step order."""
        return self.retry.call("metrics", self.provider.list_metrics, _job_id(job))

    def checkpoints(self, job: JobRef) -> list[Checkpoint]:
        """The models the provider saved during the job, in step order (each callable with `chat`)."""
        return self.retry.call("checkpoints", self.provider.list_checkpoints, _job_id(job))

    def files(self, *, limit: int = 100) -> list[FileRef]:
        """List the fine-tuning files uploaded to the provider, newest first.

        The fine-tuning files uploaded to the provider, newest first (where it can list them:
        `capabilities.files`; elsewhere `UnsupportedFeatureError` names where to see them).
        """
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ConfigurationError(f"limit must be a whole number of files (1 or more), not {limit!r}.")
        return self.retry.call("list_files", self.provider.list_files, limit=limit)

    def delete_file(self, file_id: str) -> None:
        """Delete an uploaded file for good. Never called implicitly by unitune."""
        from unitune.errors import NotFoundError

        fix = "Pass the uploaded file's id (FileRef.id; `unitune files` lists them)."
        file_id = _name(file_id, "file_id", fix)
        attempts = 0

        def once() -> None:
            nonlocal attempts
            attempts += 1
            try:
                self.provider.delete_file(file_id)
            except NotFoundError:
                # A retry after a lost answer finds the file gone: the earlier attempt deleted it.
                if attempts == 1:
                    raise

        self.retry.call("delete_file", once)

    def evaluate(
        self,
        model_or_data: str | Job | DataInput,
        data: DataInput | None = None,
        *,
        candidates: Sequence[str | Candidate | Job] | None = None,
        baseline: str | None = None,
        train_data: DataInput | None = None,
        metrics: Sequence[Any] | None = None,
        primary_metric: str | None = None,
        judge: str | Judge | None = None,
        max_examples: int | None = None,
        batch_size: int = 8,
        concurrency: int = 8,
        chat_params: Mapping[str, Any] | None = None,
        on_progress: Callable[[int, int], None] | None = None,
        output_dir: str | os.PathLike[str] | None = None,
        seed: int = 0,
        confidence: float = 0.95,
        epsilon: float = 1e-3,
    ) -> EvaluationReport:
        """Compare candidates on held-out chat examples and decide: ship, abandon or inconclusive.

        Two forms: `evaluate(data, candidates=[...])`, and the shorthand `evaluate(model, data,
        baseline=...)`. Each example's last assistant message is the reference. See `unitune.evaluate`
        for the metrics and the decision.

        Args:
            model_or_data: the evaluation data (a JSONL path or a `Dataset`) with `candidates`; in the
                shorthand, the tuned model (an id or a finished `Job`).
            data: the evaluation data, in the shorthand only.
            candidates: what to compare: spec strings (`"base"`, `"base:few-shot=5"`,
                `"together:ft-..."`, a job id the ledger knows), `Candidate`s or finished `Job`s.
            baseline: the model the tuned one is compared with, in the shorthand.
            train_data: where few-shot examples are drawn from (seeded), never the evaluation set.
            metrics: metric names, `Metric`s or scoring functions; default from the data's kind.
            primary_metric: the metric the verdict rests on; default from the data's kind.
            judge: an LLM judge of pairs of answers: `"provider:model"` or a `Judge`.
            max_examples: evaluate on at most this many examples.
            batch_size: how many examples are sent per batch.
            concurrency: how many requests run at once.
            chat_params: sent with every request (temperature, max_tokens, ...).
            on_progress: called with (done, total) as answers arrive.
            output_dir: where answers are saved as they arrive (a rerun resumes and pays only for what is
                missing) and report.json, report.md and report.html are written at the end.
            seed: seeds the few-shot draw and the bootstrap intervals.
            confidence: the confidence level of the intervals.
            epsilon: a measured difference at most this large on the primary metric means the fine-tune
                adds nothing (abandon).

        Returns:
            The report: each candidate's metrics with intervals, the differences, and the verdict.

        Raises:
            ConfigurationError: a bad argument, both forms mixed, or no usable example.
        """
        from contextlib import ExitStack

        from unitune.client._evaluate import Resolver, as_directory
        from unitune.evaluate import Candidate, check_settings, metric_specs
        from unitune.evaluate._evaluate import read_items, run_evaluation

        check_settings(batch_size=batch_size, max_examples=max_examples, chat_params=chat_params,
                       on_progress=on_progress, concurrency=concurrency, confidence=confidence, seed=seed,
                       epsilon=epsilon)  # fmt: skip
        if candidates is None:
            if data is None:
                raise ConfigurationError(
                    "evaluate() needs the candidates to compare.",
                    fix="Call evaluate(data, candidates=['base', 'base:few-shot=5', job]) or evaluate(model, data, baseline=...).",
                )
            shorthand: list[str | Candidate | Job] = [
                model_or_data if isinstance(model_or_data, Job)
                else Candidate(model=_name(model_or_data, "model", "Pass the tuned model's id."),
                               name="tuned" if baseline is not None else None, role="tuned")
            ]  # fmt: skip
            if baseline is not None:
                shorthand.append(Candidate(model=baseline, name="base", role="baseline"))
            candidates = shorthand
        else:
            if data is not None or baseline is not None:
                raise ConfigurationError(
                    "Pass either candidates= or a model with baseline=, not both.",
                    fix="Call evaluate(data, candidates=[...]).",
                )
            data = model_or_data  # type: ignore[assignment]  # the one-argument form: it is the data
        if data is None:
            raise ConfigurationError(
                "No data given.", fix="Pass the evaluation examples: a JSONL path or a Dataset."
            )
        specs = metric_specs(metrics)
        directory = as_directory(output_dir)
        items, skipped = read_items(self._required_local(data), max_examples)
        pool = read_items(self._required_local(train_data))[0] if train_data is not None else []
        with ExitStack() as stack:
            resolver = Resolver(self, stack)
            resolved = resolver.resolve(candidates, dict(chat_params or {}))
            if any(r.few_shot for r in resolved) and train_data is None:
                raise ConfigurationError(
                    "A few-shot candidate needs training examples to draw its shots from.",
                    fix="Pass train_data= (the training split), or --train TRAIN.jsonl.",
                )
            return run_evaluation(
                items, skipped, resolved, clock=self.clock, pool=pool, metrics=specs,
                primary_metric=primary_metric, judge=resolver.judge(judge), output_dir=directory,
                concurrency=concurrency, batch_size=batch_size, on_progress=on_progress, seed=seed,
                confidence=confidence, epsilon=epsilon,
            )  # fmt: skip

    def export(
        self,
        job_or_model: str | Job,
        *,
        format: ExportFormat,
        path: str | os.PathLike[str],
        overwrite: bool = False,
        dtype: ExportDtype | None = None,
        system: str | None = None,
    ) -> ExportResult:
        """Write a tuned model for another runtime.

        Local models only; for a hosted vendor the error says whether and how it lets you download
        weights. See docs/serve.md and `unitune.export.export_model`.

        Args:
            job_or_model: a local job (or its id, or `local:<job-id>`), or a base model (not for `peft`).
            format: `peft` (the adapter), `merged` (a transformers folder), `gguf` (llama.cpp) or `ollama`
                (GGUF + Modelfile).
            path: the folder to write.
            overwrite: replace a `path` that exists.
            dtype: the precision of the weights written: for `gguf`/`ollama` f16 unless "f32"; for
                `merged` the base model's own unless given.
            system: the Modelfile's SYSTEM prompt for `ollama` (default: the one every training example
                shares, else the one the model's chat template inserts).

        Returns:
            What was written, and where.

        Raises:
            UnsupportedFeatureError: a hosted provider, or a model GGUF cannot hold.
            ConfigurationError: a bad argument, a `path` that exists, or a corrupt adapter folder.
            NotFoundError: an unknown job.
        """
        from unitune.export import export_model

        if isinstance(job_or_model, Job):
            if not job_or_model.fine_tuned_model:
                raise ConfigurationError(
                    f"Job {job_or_model.id} has no tuned model yet (status {job_or_model.status.value}).",
                    fix="Wait for it to succeed (client.wait(job)) before exporting it.",
                )
            model = job_or_model.fine_tuned_model
        else:
            model = _name(job_or_model, "model", "Pass a job or a model id such as 'local:ftjob-…'.")
        if not isinstance(path, (str, os.PathLike)) or not str(path):
            raise ConfigurationError(
                f"path must be the folder to export into, not {path!r}.",
                fix="Pass e.g. path='triage-merged/'.",
            )
        return export_model(
            self.provider, model, format, Path(path), overwrite=overwrite, dtype=dtype, system=system
        )

    def migrate(
        self,
        to: str | FineTuneClient,
        *,
        jobs: Sequence[str] | None = None,
        data: str | os.PathLike[str] | Mapping[str, str | os.PathLike[str]] | None = None,
        validation: str | os.PathLike[str] | Mapping[str, str | os.PathLike[str]] | None = None,
        model_map: Mapping[str, str] | None = None,
        dry_run: bool = False,
        output_dir: str | os.PathLike[str] | None = None,
    ) -> MigrationReport:
        """Move this provider's fine-tunes to another provider.

        Plans each job's target model, settings and quote; unless `dry_run`, creates the jobs (once per
        source job, so a rerun continues), waits, and evaluates each new model against the source one.
        See docs/migrate.md and `unitune.migrate.plan_migration`.

        Args:
            to: the target: a provider name or a client.
            jobs: the source job ids to move; None: every succeeded job on the source's job list and in
                this machine's ledger.
            data: the training file: one path for every job, or a mapping of source job id to path.
            validation: a held-out file (same forms as `data`) to evaluate on; without one, the run holds
                out a fifth of the training file.
            model_map: source model → target model, over the catalog's proposal.
            dry_run: plan and quote only; create nothing.
            output_dir: where each job's data split and evaluation are kept (under
                `<output_dir>/<source job id>/`), and the report is written (migration.json and .md).

        Returns:
            The report: each job's plan and, unless `dry_run`, its new job and evaluation.
        """
        from unitune.migrate import migrate

        if isinstance(to, str):
            name = _name(to, "to", "Pass the target provider's name, e.g. 'together'.")
            with FineTuneClient(
                name, config=self.config, ledger=self.ledger or False, clock=self.clock
            ) as target:
                return migrate(self, target, jobs=jobs, data=data, validation=validation, model_map=model_map,
                               dry_run=dry_run, output_dir=output_dir)  # fmt: skip
        if not isinstance(to, FineTuneClient):
            raise ConfigurationError(
                f"to must be a provider name or a FineTuneClient, not a {type(to).__name__}.",
                fix="Pass e.g. client.migrate('together').",
            )
        return migrate(self, to, jobs=jobs, data=data, validation=validation, model_map=model_map,
                       dry_run=dry_run, output_dir=output_dir)  # fmt: skip

    # -- runs ---------------------------------------------------------------------------------------

    def train(
        self,
        job: str | os.PathLike[str] | Mapping[str, Any] | JobFile,
        *,
        overrides: Mapping[str, Any] | None = None,
        console: Console | None = None,
        poll_interval: float | None = None,
    ) -> RunResult:
        """Run a job file end to end and record the run.

        Validate, quote (refusing past `budget_usd`), upload, create, wait (with a progress bar on
        `console`), plot the loss, evaluate against the file's baselines, and record the run in the
        ledger (`unitune runs`). A job file that names another provider than this client's runs there,
        with this client's config. Running the same spec on the same data again follows the job already
        made (after Ctrl-C or a crash) instead of starting a second one. See docs/runs.md.

        Args:
            job: a TOML job file's path, a dict of the same keys, or a `JobFile`.
            overrides: keys set on top of the file (`{"provider": "fake", "hyperparameters.epochs": 3}`).
            console: where the progress bar is drawn.
            poll_interval: seconds between polls while waiting.

        Returns:
            The run: its ledger record, the job, the quote, the loss curve and the evaluation.

        Raises:
            BudgetExceeded: the quote is over the file's `budget_usd`; nothing is uploaded.
            RunInterrupted: Ctrl-C while waiting (a KeyboardInterrupt); it carries the job, which keeps
                running.
        """
        from unitune.runs import load_job_file, run_job

        return run_job(self, load_job_file(job, overrides), console=console, poll_interval=poll_interval)

    def retrain(
        self,
        run: str,
        *,
        data: str | os.PathLike[str] | None = None,
        model: str | None = None,
        provider: str | None = None,
        console: Console | None = None,
        poll_interval: float | None = None,
    ) -> RunResult:
        """Retrain a recorded run with new data, a new base model or another provider.

        The child run keeps its parent's spec but for what is changed, and is evaluated against the
        parent's tuned model on the parent's validation file. `result.data_change` says how the data
        changed.

        Args:
            run: the parent run's id or a unique prefix of it.
            data: new training data (a JSONL path).
            model: a new base model.
            provider: another provider to train on.
            console: where the progress bar is drawn.
            poll_interval: seconds between polls while waiting.

        Returns:
            The child run.

        Raises:
            ConfigurationError: a file the parent used has moved or changed.
        """
        from unitune.runs import retrain

        return retrain(self, run, data=data, model=model, provider=provider,
                       console=console, poll_interval=poll_interval)  # fmt: skip

    def sweep(
        self,
        job: str | os.PathLike[str] | Mapping[str, Any] | JobFile,
        *,
        grid: Mapping[str, Sequence[Any]] | None = None,
        providers: Sequence[str] | None = None,
        concurrency: int = 4,
        overrides: Mapping[str, Any] | None = None,
        console: Console | None = None,
        poll_interval: float | None = None,
    ) -> SweepResult:
        """Train a job file over a grid of settings and providers, and rank the runs.

        Every combination is checked and quoted first and the total held against the file's
        `budget_usd` before any job starts. Each job is created with the key a single `train` would use,
        so a rerun resumes; all are waited on together.

        Args:
            job: a TOML job file's path, a dict of the same keys, or a `JobFile`.
            grid: values to try per setting, e.g. `{"epochs": [1, 3]}`; every combination is trained.
            providers: the providers to train each combination on (default: the job file's, else this
                client's).
            concurrency: how many jobs are created at once, at most.
            overrides: keys set on top of the file, as in `train`.
            console: where progress is drawn.
            poll_interval: seconds between polls while waiting.

        Returns:
            The runs and a leaderboard, best first.
        """
        from unitune.runs import load_job_file, run_sweep

        return run_sweep(self, load_job_file(job, overrides), grid=grid, providers=providers,
                         concurrency=concurrency, console=console, poll_interval=poll_interval)  # fmt: skip

    def runs(
        self,
        *,
        name: str | None = None,
        provider: str | None = None,
        status: str | None = None,
        limit: int = 50,
    ) -> list[RunRecord]:
        """Recorded runs, newest first, optionally filtered.

        Args:
            name: only runs of this name.
            provider: only runs on this provider.
            status: only runs with this status.
            limit: at most this many.

        Returns:
            The runs' ledger records.
        """
        from unitune.runs._train import _runs_ledger

        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ConfigurationError(f"limit must be a whole number ≥ 1, not {limit!r}.")
        for key, value in (("name", name), ("provider", provider), ("status", status)):
            if value is not None and not isinstance(value, str):
                raise ConfigurationError(f"{key} must be a string or None, not a {type(value).__name__}.")
        return _runs_ledger(self).list_runs(name=name, provider=provider, status=status, limit=limit)

    def get_run(self, run: str) -> RunRecord:
        """One recorded run by id or unique prefix."""
        from unitune.runs import find_run

        return find_run(self, run)

    # -- tuned models -------------------------------------------------------------------------------

    def models(self) -> list[TunedModel]:
        """The fine-tuned models the provider holds for this account (where it can list them)."""
        return self.retry.call("list_models", self.provider.list_models)

    def update_model(
        self, model_id: str, *, name: str | None = None, description: str | None = None
    ) -> TunedModel:
        """Rename or describe a tuned model.

        Args:
            model_id: the tuned model's id.
            name: its new name.
            description: its new description.

        Returns:
            The model as the provider reports it after the change.
        """
        model_id = _name(model_id, "model_id", "Pass the tuned model's id.")
        return self.retry.call(
            "update_model", self.provider.update_model, model_id, name=name, description=description
        )

    def archive_model(self, model_id: str) -> TunedModel:
        """Archive a tuned model."""
        model_id = _name(model_id, "model_id", "Pass the tuned model's id.")
        return self.retry.call("archive_model", self.provider.archive_model, model_id)

    def unarchive_model(self, model_id: str) -> TunedModel:
        """Bring an archived tuned model back."""
        model_id = _name(model_id, "model_id", "Pass the tuned model's id.")
        return self.retry.call("unarchive_model", self.provider.unarchive_model, model_id)

    def delete_model(self, model_id: str) -> None:
        """Delete a tuned model for good. Never called implicitly by unitune."""
        model_id = _name(model_id, "model_id", "Pass the tuned model's id.")
        self.provider.delete_model(model_id)  # not retried: a lost answer must not look like a second delete

    def chat(self, model: str, messages: MessagesInput, **params: Any) -> ChatResponse:
        """One chat completion with a base or fine-tuned model.

        Args:
            model: the model id.
            messages: a prompt string, or a list of messages (`Message` objects or OpenAI-style dicts).
            **params: sent to the provider: temperature, max_tokens, ...

        Returns:
            The completion.
        """
        model = _name(model, "model", "Pass a base model id or the fine_tuned_model of a job.")
        return self.retry.call("chat", self.provider.chat, model, _messages(messages), **params)
