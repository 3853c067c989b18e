"""The provider contract: what every vendor adapter implements, and the helpers they share.

An adapter is one module in `unitune.providers` holding a `Provider` subclass, a `ProviderSettings`
subclass, a status table and a `_map_errors()` context manager. Vendor SDKs are imported inside the
adapter's methods (or a cached `_sdk()` helper), never at module import, so `import unitune` stays light.

Retries belong to `FineTuneClient`'s one policy: build vendor SDK clients with their own retries
switched off (`max_retries=0` or the SDK's equivalent) so attempts never multiply. A call the client
retries as a whole should be one request; where a call is made of several (an upload's parts, a
create that first reads the model's limits), the adapter runs each of them through `Provider.step`,
which retries that request alone with the same policy (the client's, given by `bind_retry`).

Whatever a vendor answers, an adapter raises only unitune's errors: `transport_error` names the
host and port a connection failed to reach, `unreadable_answer` covers a body cut short or not JSON,
and `@guard_answers` turns what a malformed body makes the parsing code raise (`KeyError`,
`TypeError`, ...) into a one-line `ProviderError`.
"""

from __future__ import annotations

import functools
import os
import urllib.parse
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn, TypeVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from unitune._log import get_logger
from unitune.errors import (
    ConfigurationError,
    JobSpecRefused,
    ProviderError,
    ProviderUnavailableError,
    RateLimitError,
    UnknownStatusError,
    UnsupportedFeatureError,
    remember_secret,
)
from unitune.providers._answers import (
    STRICT_STATUS_ENV,
    as_datetime,
    as_dict,
    as_float,
    catalog_retirement,
    chat_messages,
    chat_response,
    convert_for_upload,
    error_from_status,
    guard_answers,
    key_tag,
    map_status,
    parse_retry_after,
    plain_text,
    refuse_unknown_options,
    send_parts,
    transport_error,
    unreadable_answer,
)
from unitune.types import (
    Capabilities,
    ChatResponse,
    Checkpoint,
    FileRef,
    Job,
    JobEvent,
    JobSpec,
    Message,
    PreparedFile,
    Purpose,
    StepMetric,
    TrainingMethod,
    TunedModel,
)

if TYPE_CHECKING:
    from unitune._clock import Clock
    from unitune._retry import RetryPolicy
    from unitune.catalog import Catalog
    from unitune.data import Dataset
    from unitune.providers._sdk import (
        HyperparameterTable,
        SDKProvider,
        StainlessProvider,
        refuse_reserved_metadata,
        tagged_suffix,
    )

T = TypeVar("T")

__all__ = [
    "HyperparameterTable",
    "SDKProvider",
    "StainlessProvider",
    "refuse_reserved_metadata",
    "tagged_suffix",
    "STRICT_STATUS_ENV",
    "Provider",
    "ProviderContext",
    "ProviderSettings",
    "UnknownStatusError",
    "convert_for_upload",
    "error_from_status",
    "guard_answers",
    "map_status",
    "as_datetime",
    "as_dict",
    "as_float",
    "catalog_retirement",
    "chat_messages",
    "chat_response",
    "key_tag",
    "parse_retry_after",
    "plain_text",
    "refuse_unknown_options",
    "send_parts",
    "transport_error",
    "unreadable_answer",
]

log = get_logger("unitune")


class ProviderSettings(BaseModel):
    """Settings every provider accepts; adapters subclass this to add their own.

    `api_key` is read from the config file or, when absent there, from the vendor's conventional
    environment variable named by `api_key_env`. Unknown keys are refused so a typo is caught.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: The vendor's conventional environment variable for the key (None: no key needed).
    api_key_env: ClassVar[str | None] = None

    api_key: SecretStr | None = None
    base_url: str | None = None
    timeout: float = Field(default=60.0, gt=0)

    def __init__(self, **data: Any) -> None:
        # Built in code (`OpenAISettings(timeout=-1)`), a bad value is a one-line ConfigurationError
        # like one read from the config file, not pydantic's multi-line report.
        from pydantic import ValidationError

        try:
            super().__init__(**data)
        except ValidationError as e:
            first = e.errors()[0]
            key = ".".join(str(p) for p in first["loc"]) or "(settings)"
            msg = str(first["msg"]).removeprefix("Value error, ")
            error = ConfigurationError(
                f"Invalid setting {key} for {type(self).__name__}: {msg}.", fix=f"Fix or remove {key!r}."
            )
            error.setting, error.reason = key, msg  # type: ignore[attr-defined]  # for from_config's wording
            raise error from None

    @field_validator("timeout")
    @classmethod
    def _positive_timeout(cls, value: float) -> float:
        # Declared here so adapters that change the default keep the check.
        if not value > 0:
            raise ValueError(f"timeout must be a positive number of seconds, not {value!r}")
        return value

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        # Refused when the client is built, not after a round of retries against a non-URL.
        if value is None:
            return None
        parsed = urllib.parse.urlsplit(value.strip())
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ValueError(f"{value!r} is not an http(s) URL such as https://api.example.com/v1")
        try:
            parsed.port  # noqa: B018 - raises on a port that is not a number
        except ValueError:
            raise ValueError(f"{value!r} has an invalid port") from None
        return value.strip()

    def model_post_init(self, context: Any, /) -> None:
        """Mask the API key in every provider error from now on (pydantic calls this after validation)."""
        if self.api_key is not None:
            remember_secret(self.api_key.get_secret_value())

    def require_api_key(self, provider: str) -> SecretStr:
        """The key, from config or the environment; a clear `ConfigurationError` naming both if absent."""
        if self.api_key is not None and self.api_key.get_secret_value():
            return self.api_key
        env = self.api_key_env
        if env and os.environ.get(env):
            remember_secret(os.environ[env])
            return SecretStr(os.environ[env])
        where = f"set the environment variable {env} or " if env else ""
        raise ConfigurationError(
            f"No API key for the {provider!r} provider.",
            fix=f"To fix: {where}add api_key under [providers.{provider}] in unitune.toml.",
        )


class ProviderContext:
    """What a provider takes from the client that runs it, instead of reaching for globals.

    The unitune home (where a provider that keeps files keeps them), the clock (every wait and poll
    sleeps on it), the retry policy for the requests inside one call, and the catalog (the client's,
    with the config's catalog files), loaded on first use.
    """

    __slots__ = ("_catalog", "_load_catalog", "clock", "home", "retry")

    def __init__(
        self,
        *,
        home: Path,
        clock: Clock,
        retry: RetryPolicy,
        catalog: Callable[[], Catalog] | Catalog | None = None,
    ) -> None:
        self.home = home
        self.clock = clock
        self.retry = retry
        self._catalog: Catalog | None = None if catalog is None or callable(catalog) else catalog
        self._load_catalog = catalog if callable(catalog) else None

    @classmethod
    def default(cls, *, clock: Clock | None = None) -> ProviderContext:
        """The context of a provider used without a client."""
        from unitune._clock import SystemClock
        from unitune._retry import RetryPolicy
        from unitune.config import RetrySettings, home_dir

        clock = clock or SystemClock()
        return cls(home=home_dir(), clock=clock, retry=RetryPolicy(RetrySettings(), clock))

    @property
    def catalog(self) -> Catalog:
        """The catalog: the client's, or the built-in one."""
        if self._catalog is None:
            from unitune.catalog import load_catalog

            self._catalog = self._load_catalog() if self._load_catalog is not None else load_catalog()
        return self._catalog

    def replace(self, **changes: Any) -> ProviderContext:
        """A copy with `changes` (keyword arguments of the constructor)."""
        values: dict[str, Any] = {"home": self.home, "clock": self.clock, "retry": self.retry,
                                  "catalog": self._catalog or self._load_catalog}  # fmt: skip
        values.update(changes)
        return ProviderContext(**values)


class Provider(ABC):
    """The contract every vendor adapter implements.

    Construction takes typed settings and, optionally, a ready-made vendor SDK client (`client=`):
    the test seam is a constructor argument, not a patch target. Methods a vendor lacks keep the
    defaults here, which raise `UnsupportedFeatureError`; set `capabilities` to match.
    """

    name: ClassVar[str]
    capabilities: ClassVar[Capabilities]
    settings_class: ClassVar[type[ProviderSettings]] = ProviderSettings
    #: The dataset rules (`unitune/data/profiles.toml`) and the wire format (`unitune.data.convert`)
    #: this provider's training files follow.
    dataset_profile: ClassVar[str] = "openai"
    wire_format: ClassVar[str] = "openai"
    #: The format preference (DPO) pairs are written in, for a provider that trains on them.
    preference_wire_format: ClassVar[str | None] = None
    #: True when jobs live only as long as this process (the fake): the client then keeps them out
    #: of the machine's ledger, where they would dangle after the process ends.
    ephemeral: ClassVar[bool] = False
    #: False when `find_job` sees a job as soon as it is created (a read by a name the key
    #: determines), so the client need not keep looking after a create whose answer was lost.
    list_lags: ClassVar[bool] = True
    #: True when `chat_batch` generates several answers in one pass (the local trainer): evaluation
    #: then sends it batches from one thread instead of one request per prompt from a pool.
    batches_chat: ClassVar[bool] = False

    def __init__(self, settings: ProviderSettings | None = None, *, client: Any = None) -> None:
        self.settings = settings if settings is not None else self.settings_class()
        self._client = client

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # Checks every provider shares run before an adapter's own `check_job`, so no adapter (nor a
        # third-party one) has to remember to call them: wrap each class's own override once.
        own = cls.__dict__.get("check_job")
        if own is not None and not getattr(own, "_unitune_shared_checks", False):

            @functools.wraps(own)
            def check_job(self: Provider, spec: JobSpec) -> None:
                self._check_shared(spec)
                own(self, spec)

            setattr(check_job, "_unitune_shared_checks", True)  # noqa: B010 - a flag on a function
            cls.check_job = check_job  # type: ignore[method-assign]

    def _check_shared(self, spec: JobSpec) -> None:
        """The refusals driven by `capabilities`, the same for every provider.

        Refusals driven by `capabilities`, the same for every provider (read from the instance:
        the fake reports the capabilities of the provider it impersonates).
        """
        if spec.wandb is not None and not self.capabilities.wandb_integration:
            raise JobSpecRefused(
                f"{self.name} has no Weights & Biases integration of its own (JobSpec.wandb).",
                provider=self.name, feature="wandb integration",
                fix='Log the run from unitune instead: [tracking] backend = "wandb" (or "mlflow") with '
                "vendor = false in unitune.toml.",
            )  # fmt: skip

    @classmethod
    def from_config(cls, section: Mapping[str, Any] | None = None, **kwargs: Any) -> Provider:
        """Build from a config section (`[providers.<name>]`); keys are checked by `settings_class`.

        Args:
            section: the section's settings; None for none (the defaults and the environment).
            **kwargs: passed to the constructor.

        Returns:
            The provider.

        Raises:
            ConfigurationError: a setting is unknown or has a bad value.
        """
        values = dict(section or {})
        if not all(isinstance(k, str) for k in values):
            raise ConfigurationError(f"[providers.{cls.name}] has a setting whose name is not text.")
        try:
            settings = cls.settings_class(**values)
        except ConfigurationError as e:
            key = getattr(e, "setting", "?")
            msg = getattr(e, "reason", str(e))
            raise ConfigurationError(
                f"Invalid setting [providers.{cls.name}] {key}: {msg}.",
                fix=f"Fix or remove {key!r} where it is set ([providers.{cls.name}] in unitune.toml, or the "
                "keyword argument of FineTuneClient).",
            ) from None
        return cls(settings, **kwargs)

    def __repr__(self) -> str:
        # Settings may hold a key; SecretStr keeps it out of this repr as well.
        return f"{type(self).__name__}(settings={self.settings!r})"

    # -- data -----------------------------------------------------------------------------------

    def profile_for(self, model: str | None) -> str:
        """The dataset rules for training `model`.

        The dataset rules (a `profiles.toml` section) for training `model`; the default is the
        provider's one profile. Providers whose rules differ by model family (Bedrock) override it.
        """
        return self.dataset_profile

    def wire_format_for(self, method: TrainingMethod, model: str | None = None) -> str:
        """The wire format a job of `method` on `model` uploads.

        `wire_format` for supervised data, `preference_wire_format` for DPO pairs.

        Args:
            method: "sft" or "dpo".
            model: the model the job trains, for providers whose format differs by model.

        Raises:
            JobSpecRefused: `method` is "dpo" and the provider has no preference training.
        """
        if method == "dpo":
            if self.preference_wire_format is None:
                self._refuse("DPO (preference) training")
            return self.preference_wire_format
        return self.wire_format

    def prepare(
        self,
        data: Dataset,
        purpose: Purpose,
        *,
        model: str | None = None,
        workdir: Path,
        method: TrainingMethod = "sft",
    ) -> PreparedFile:
        """Convert a (validated) dataset to the bytes this provider uploads, in `workdir`. No network.

        The default writes `wire_format_for(method, model)` with the dataset toolkit's converter,
        streaming; partial losses are counted in `PreparedFile.conversion_losses` and logged.

        Args:
            data: the validated dataset.
            purpose: "training" or "validation".
            model: the model the job trains, which may decide the wire format.
            workdir: the folder the prepared file is written in.
            method: "sft" or "dpo", which decides the wire format.

        Returns:
            The prepared file, ready for `upload`.

        Raises:
            ValidationFailed: examples the format cannot express at all; nothing is uploaded.
        """
        return convert_for_upload(
            data,
            purpose,
            provider=self.name,
            wire_format=self.wire_format_for(method, model),
            workdir=workdir,
        )

    # -- the core every provider offers ---------------------------------------------------------

    @abstractmethod
    def upload(self, prepared: PreparedFile) -> FileRef:
        """Upload a prepared file; return the provider's reference to it."""

    def upload_pair(self, training: PreparedFile, validation: PreparedFile) -> tuple[FileRef, FileRef]:
        """Upload a job's training and validation files.

        The default uploads each; a vendor that keeps both in one object (Cohere's datasets) overrides
        this.

        Args:
            training: the prepared training file.
            validation: the prepared validation file.

        Returns:
            The references to both, training first.
        """
        return self.upload(training), self.upload(validation)

    def check_job(self, spec: JobSpec) -> None:
        """Raise what `create_job(spec)` would refuse, without asking the vendor.

        A hyperparameter or `provider_options` key it cannot take, a setting the create needs (a bucket,
        a role), limits on suffix and metadata. No network. The client calls it before anything is
        uploaded, with a stand-in `training_file` (id "unitune-check"), and `create_job` calls it again;
        the fake calls the impersonated provider's. The default checks only what every provider shares
        (a `JobSpec.wandb` where `capabilities.wandb_integration` is False), which also runs before an
        adapter's own override.

        Args:
            spec: the job to check.

        Raises:
            JobSpecRefused: what the provider would refuse.
            ConfigurationError: a setting the create needs is missing.
        """
        self._check_shared(spec)

    @abstractmethod
    def create_job(self, spec: JobSpec, *, idempotency_key: str) -> Job:
        """Create a fine-tuning job.

        Starts with `self.check_job(spec)`.

        Args:
            spec: the job: model, files, method, hyperparameters and options.
            idempotency_key: tag the job with it (or pass it as the vendor's own token), so that a create
                whose answer was lost can be found again.

        Returns:
            The job as the vendor reports it once created.
        """

    @abstractmethod
    def get_job(self, job_id: str) -> Job:
        """The job's current state."""

    @abstractmethod
    def list_jobs(self, *, limit: int = 20) -> list[Job]:
        """Recent jobs, newest first, following the vendor's pagination up to `limit`."""

    # -- optional capabilities: the defaults say plainly that they are missing -------------------

    def cancel_job(self, job_id: str) -> Job:
        """Ask the provider to stop the job; returns it (often `cancelling` until it stops)."""
        self._unsupported("cancelling jobs")

    def pause_job(self, job_id: str) -> Job:
        """Pause a running job."""
        self._unsupported("pausing jobs")

    def resume_job(self, job_id: str) -> Job:
        """Resume a paused job."""
        self._unsupported("resuming jobs")

    def list_events(self, job_id: str) -> list[JobEvent]:
        """The job's log, oldest first."""
        self._unsupported("job events")

    def list_metrics(self, job_id: str) -> list[StepMetric]:
        """Per-step training metrics, in step order."""
        self._unsupported("training metrics")

    def list_checkpoints(self, job_id: str) -> list[Checkpoint]:
        """Models saved during the job, in step order."""
        self._unsupported("checkpoints")

    def chat(self, model: str, messages: list[Message], **params: Any) -> ChatResponse:
        """One chat completion with a base or fine-tuned model.

        Args:
            model: the model id.
            messages: the conversation so far.
            **params: the vendor's sampling options (temperature, max_tokens, ...).

        Returns:
            The completion.
        """
        self._unsupported("chat")

    # -- uploaded files (`capabilities.files`) -------------------------------------------------------

    def list_files(self, *, limit: int = 100) -> list[FileRef]:
        """The fine-tuning files this account holds on the provider, newest first, at most `limit`."""
        # The note names where the vendor shows its files instead (its console, a bucket).
        self._unsupported("listing uploaded files", self.capabilities.notes.get("files"))

    def delete_file(self, file_id: str) -> None:
        """Delete an uploaded file, for good: a job created later from its id fails."""
        self._unsupported("deleting uploaded files", self.capabilities.notes.get("files"))

    # -- tuned-model management (a small extension: Mistral has it; others may add it) -------------

    def list_models(self) -> list[TunedModel]:
        """The fine-tuned models this account holds."""
        self._unsupported("listing tuned models")

    def update_model(
        self, model_id: str, *, name: str | None = None, description: str | None = None
    ) -> TunedModel:
        """Rename or describe a tuned model.

        Args:
            model_id: the tuned model's id.
            name: its new name.
            description: its new description.

        Returns:
            The model as the vendor reports it after the change.
        """
        self._unsupported("updating tuned models")

    def archive_model(self, model_id: str) -> TunedModel:
        """Archive a tuned model (kept, not listed as active)."""
        self._unsupported("archiving tuned models")

    def unarchive_model(self, model_id: str) -> TunedModel:
        """Bring an archived tuned model back."""
        self._unsupported("unarchiving tuned models")

    def delete_model(self, model_id: str) -> None:
        """Delete a tuned model, for good."""
        self._unsupported("deleting tuned models")

    def check_ready(self) -> None:  # noqa: B027  (optional on purpose: most providers need no check)
        """Raise `ConfigurationError` when this provider cannot make calls as configured.

        No API key or a missing setting is found without sending a request. Evaluation calls it for every
        candidate before asking any, so a half-configured comparison fails before it spends money. The
        default checks nothing.
        """

    def chat_batch(self, model: str, conversations: list[list[Message]], **params: Any) -> list[ChatResponse]:
        """One chat completion per conversation with the same model, answers in the same order.

        Evaluation sends its prompts through here. The default calls `chat` once per conversation;
        providers that generate several sequences in one pass (the local trainer) override it. An
        override must return exactly one response per conversation, in order.

        Args:
            model: the model id.
            conversations: the conversations to complete.
            **params: the vendor's sampling options, as for `chat`.

        Returns:
            One response per conversation, in order.
        """
        return [self.chat(model, messages, **params) for messages in conversations]

    def find_job(self, idempotency_key: str) -> Job | None:
        """The job tagged with this idempotency key, if the provider has one.

        Used before retrying a create whose outcome is unknown. The default scans recent jobs for
        the tag; adapters with a server-side filter (e.g. metadata search) override it.
        """
        for job in self.list_jobs(limit=100):
            if job.idempotency_key == idempotency_key:
                return job
        return None

    def close(self) -> None:  # noqa: B027 - optional hook, most providers hold nothing to close
        """Release connections the provider holds."""

    # -- what the client gives: the context, and retries for the requests inside one call ----------

    #: Set by `bind`; None until then (see `context`).
    _context: ProviderContext | None = None

    def bind(self, context: ProviderContext) -> None:
        """Run inside `context`.

        `FineTuneClient` passes its own when it is built (its unitune home, clock, retry policy and
        catalog), so a provider never reaches for the process's globals and a client's `home` or catalog
        files hold for its provider too.
        """
        self._context = context

    @property
    def context(self) -> ProviderContext:
        """The context `bind` gave, else the defaults.

        The context `bind` gave; a provider used on its own gets the defaults: `UNITUNE_HOME` (else
        the platform's data directory), the provider's own clock (the fake's) or the system's, the
        default retry settings, the built-in catalog.
        """
        if self._context is None:
            self._context = ProviderContext.default(clock=getattr(self, "clock", None))
        return self._context

    def bind_retry(self, policy: RetryPolicy) -> None:
        """Retry the requests inside one call with `policy` (and sleep on its clock).

        Each request of an upload (the create, every part, the complete), a file's processing poll or the
        limits read before a create is retried on its own rather than the whole call being repeated.
        `bind` sets this with the rest of the context; this changes the policy alone.
        """
        self.bind(self.context.replace(retry=policy, clock=policy.clock))

    @property
    def retry_policy(self) -> RetryPolicy:
        """The policy `step` retries with (the context's)."""
        return self.context.retry

    def step(self, action: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run one request of a call made of several, retrying it alone when it fails transiently.

        When its retries are spent the error stays what it was (`ProviderUnavailableError`,
        `RateLimitError`) but is marked `retryable = False`, which the client's policy honours: the
        call is not started again from scratch (repeating every step that had succeeded), so
        attempts never multiply beyond one policy's bound.

        Args:
            action: what the request does, named in retry messages ("find job").
            fn: the request; it must raise unitune's errors (pass the adapter's mapped call).
            *args: passed to `fn`.
            **kwargs: passed to `fn`.

        Returns:
            What `fn` returned.
        """
        try:
            return self.retry_policy.call(f"{self.name}: {action}", fn, *args, **kwargs)
        except (RateLimitError, ProviderUnavailableError) as e:
            message = f"{e.message}; gave up on this step after its retries"
            common: dict[str, Any] = {"provider": self.name, "status_code": e.status_code,
                                      "request_id": e.request_id, "body": e.body}  # fmt: skip
            final: ProviderError = (
                RateLimitError(message, retry_after=e.retry_after, **common)
                if isinstance(e, RateLimitError)
                else ProviderUnavailableError(message, **common)
            )
            vars(final)["retryable"] = False
            raise final from e

    # -- helpers for subclasses --------------------------------------------------------------------

    def _unsupported(self, feature: str, hint: str | None = None) -> NoReturn:
        """A call this provider does not offer (events, pause, ...)."""
        raise UnsupportedFeatureError(provider=self.name, feature=feature, hint=hint)

    def _refuse(self, feature: str, hint: str | None = None) -> NoReturn:
        """A job this provider cannot take (a method, a hyperparameter, an option): `JobSpecRefused`."""
        raise JobSpecRefused.unsupported(self.name, feature, hint)


#: The SDK adapter base and the job request's pieces (`providers/_sdk.py`), importable from here
#: with the rest of the contract, by built-in and third-party adapters alike. Loaded on first use:
#: `_sdk` subclasses `Provider`, so it cannot be imported while this module is.
_SDK_KIT = (
    "HyperparameterTable",
    "SDKProvider",
    "StainlessProvider",
    "refuse_reserved_metadata",
    "tagged_suffix",
)


def __getattr__(name: str) -> Any:
    if name in _SDK_KIT:
        from unitune.providers import _sdk

        return getattr(_sdk, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
