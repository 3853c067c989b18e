"""The unitune error tree.

Every error says what went wrong *and* what to do about it, and keeps the facts a program needs
(status code, request id, retry-after, the job, the report) as attributes. Messages never contain
secrets: API keys are `SecretStr` everywhere and are never formatted into text here.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from unitune.types import Job

__all__ = [
    "AuthenticationError",
    "BudgetExceeded",
    "ConfigurationError",
    "DatasetError",
    "JobFailedError",
    "JobSpecRefused",
    "MissingDependencyError",
    "NotFoundError",
    "PermissionDeniedError",
    "ProviderError",
    "ProviderRetiredError",
    "ProviderUnavailableError",
    "RateLimitError",
    "UnituneError",
    "UnknownStatusError",
    "UnsupportedFeatureError",
    "ValidationFailed",
    "WaitTimeout",
]


#: Keys this process was given (settings, keyword arguments) and the vendors' usual key variables:
#: a vendor that repeats a key back ("Incorrect API key provided: sk-…") must not put it in our text.
_SECRETS: set[str] = set()
_SECRET_ENV = (
    "OPENAI_API_KEY", "TOGETHER_API_KEY", "MISTRAL_API_KEY", "CO_API_KEY", "COHERE_API_KEY",
    "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
)  # fmt: skip


def remember_secret(value: str | None) -> None:
    """Mask `value` in every provider error from now on.

    Keys shorter than 8 characters are not masked: they would blank out ordinary words.
    """
    if value and len(value) >= 8:
        _SECRETS.add(value)


def mask_secrets(value: Any) -> Any:
    """`value` (text, or JSON-like data) with every known key replaced by `***`."""
    secrets = _SECRETS | {v for k in _SECRET_ENV if len(v := os.environ.get(k, "")) >= 8}
    if not secrets:
        return value
    if isinstance(value, str):
        for secret in sorted(secrets, key=len, reverse=True):
            if secret in value:
                value = value.replace(secret, "***")
        return value
    if isinstance(value, dict):
        return {k: mask_secrets(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(mask_secrets(v) for v in value)
    return value


def _rebuild(cls: type[UnituneError], message: str, state: dict[str, Any]) -> UnituneError:
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    error.__dict__.update(state)
    return error


class UnituneError(Exception):
    """Base class of every error unitune raises on purpose."""

    def __reduce__(self) -> tuple[Any, ...]:
        # Subclasses take keyword-only arguments, which Exception's default pickling cannot replay;
        # errors must survive multiprocessing, process pools and pytest-xdist.
        return (_rebuild, (type(self), str(self), self.__dict__))


class ConfigurationError(UnituneError, ValueError):
    """A setting or an argument is missing or wrong.

    A key, a provider name, a config file, a value passed to a call. Also a `ValueError`, so code that
    guards a call with `except ValueError` keeps working.

    `fix` holds the one thing to do (set an env var, edit a key in a named file).
    """

    def __init__(self, message: str, *, fix: str | None = None) -> None:
        self.fix = fix
        super().__init__(f"{message} {fix}" if fix else message)


class MissingDependencyError(UnituneError, ImportError):
    """An optional extra is not installed. The message is the `pip install` line that fixes it."""

    def __init__(self, *, provider: str, extra: str, module: str) -> None:
        self.provider = provider
        self.extra = extra
        self.module = module
        self.install = f'pip install "unitune[{extra}]"'
        super().__init__(
            f"The {provider!r} provider needs the Python package {module!r}, which is not installed. "
            f"Install it with: {self.install}"
        )


class DatasetError(UnituneError):
    """Input data could not be read or parsed. Points at the file, line and column."""

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        line: int | None = None,
        column: int | None = None,
    ) -> None:
        self.path = path
        self.line = line
        self.column = column
        where = ""
        if path is not None:
            where = path
            if line is not None:
                where += f":{line}"
                if column is not None:
                    where += f":{column}"
            where += ": "
        super().__init__(f"{where}{message}")


class ValidationFailed(UnituneError):
    """The dataset failed the target provider's checks; nothing was uploaded. `report` says where."""

    def __init__(self, message: str, *, report: Any = None) -> None:
        self.report = report
        super().__init__(message)


class BudgetExceeded(UnituneError):
    """The quote is above `max_cost_usd`. Nothing was uploaded and no job was created."""

    def __init__(
        self,
        *,
        cost_usd: float,
        max_cost_usd: float,
        quote: Any = None,
        subject: str = "This job",
        limit: str = "max_cost_usd",
    ) -> None:
        self.cost_usd = cost_usd
        self.max_cost_usd = max_cost_usd
        self.quote = quote
        # A quote that rests on a price not read on the vendor's own page says so, and where it came from.
        unverified = sorted({line.source for line in getattr(quote, "lines", []) if not line.verified})
        caveat = (
            f" The quote rests on unverified prices (from {', '.join(unverified)})." if unverified else ""
        )
        super().__init__(
            f"{subject} is quoted at ${cost_usd:,.2f}, above {limit}=${max_cost_usd:,.2f}; "
            f"nothing was uploaded. Raise {limit}, train fewer epochs, or trim the dataset.{caveat}"
        )


class UnsupportedFeatureError(UnituneError):
    """The provider does not offer this capability. Raised instead of a silent no-op."""

    def __init__(self, *, provider: str, feature: str, hint: str | None = None) -> None:
        self.provider = provider
        self.feature = feature
        self.hint = hint
        message = f"The {provider!r} provider does not support {feature}."
        super().__init__(f"{message} {hint}" if hint else message)


class JobSpecRefused(UnsupportedFeatureError, ConfigurationError):
    """This provider cannot take this job as specified.

    A hyperparameter, a `provider_options` key, a suffix or metadata it refuses, or a method or model it
    does not train. Raised by the adapter's `check_job`, before anything is uploaded.

    One class for every adapter, whatever the reason; it is also an `UnsupportedFeatureError` and a
    `ConfigurationError` (so a `ValueError`), which code written against either keeps catching.
    `provider`, `feature` (what was refused) and `fix` (what to do instead; also `hint`) are kept.
    """

    def __init__(
        self, message: str, *, provider: str, fix: str | None = None, feature: str | None = None
    ) -> None:
        self.provider = provider
        self.feature = feature or message
        self.hint = fix
        self.fix = fix
        UnituneError.__init__(self, f"{message} {fix}" if fix else message)

    @classmethod
    def unsupported(cls, provider: str, feature: str, hint: str | None = None) -> JobSpecRefused:
        """The refusal of a feature, worded as `UnsupportedFeatureError` words it.

        Args:
            provider: the provider's name.
            feature: what is refused, as it ends the sentence "does not support ...".
            hint: what to do instead; None for nothing.

        Returns:
            The error, to raise.
        """
        return cls(f"The {provider!r} provider does not support {feature}.", provider=provider, fix=hint,
                   feature=feature)  # fmt: skip


class JobFailedError(UnituneError):
    """`wait()` saw the job end without success (failed or cancelled). Carries the job."""

    def __init__(self, job: Job) -> None:
        self.job = job
        detail = job.error or "no reason given by the provider"
        super().__init__(f"Fine-tuning job {job.id} on {job.provider!r} ended {job.status.value}: {detail}")


class WaitTimeout(UnituneError, TimeoutError):
    """`wait()` gave up before the job finished. The job keeps running; `job` is its last known state."""

    def __init__(self, job: Job, timeout: float) -> None:
        self.job = job
        self.timeout = timeout
        super().__init__(
            f"Job {job.id} on {job.provider!r} is still {job.status.value} after {timeout:g}s. "
            f"It keeps running: wait again, or cancel it with `unitune cancel {job.id}`."
        )


class ProviderError(UnituneError):
    """The provider's API answered with an error, or could not be reached.

    Attributes: `provider`, `status_code` (None when no HTTP answer came), `request_id`, `body`.
    The vendor's own exception is kept as `__cause__`.
    """

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        status_code: int | None = None,
        request_id: str | None = None,
        body: Any = None,
    ) -> None:
        # A vendor may repeat the caller's key back in its error text: never into ours.
        message = mask_secrets(message)
        self.provider = provider
        self.status_code = status_code
        self.request_id = request_id
        self.body = mask_secrets(body)
        self.message = message
        parts = [f"[{provider}]"]
        if status_code is not None:
            parts.append(f"HTTP {status_code}:")
        parts.append(message)
        if request_id:
            parts.append(f"(request id {request_id})")
        super().__init__(" ".join(parts))


class AuthenticationError(ProviderError):
    """The API key was refused (HTTP 401)."""


class PermissionDeniedError(ProviderError):
    """The key is valid but may not do this (HTTP 403)."""


class NotFoundError(ProviderError):
    """The job, file or model does not exist for this account (HTTP 404)."""


class RateLimitError(ProviderError):
    """Too many requests (HTTP 429). `retry_after` is the server's wait in seconds, when it said."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        self.retry_after = retry_after
        super().__init__(message, **kwargs)


class UnknownStatusError(ProviderError):
    """A vendor reported a status unitune has no mapping for (raised only in strict mode, i.e. tests)."""


class ProviderUnavailableError(ProviderError):
    """The provider is unavailable for now: worth retrying later.

    A 5xx answer, a timeout, a dropped connection or a 2xx answer whose body cannot be read: worth
    retrying later.

    `sent` is False when the request certainly never reached the vendor (the connection was refused,
    the host was not found): it cannot have taken effect, so a create is retried without first
    looking for the job it might have made.
    """

    def __init__(self, message: str, *, sent: bool = True, **kwargs: Any) -> None:
        self.sent = sent
        super().__init__(message, **kwargs)


class ProviderRetiredError(ProviderError):
    """The vendor closed this capability (HTTP 410, or the catalog's sunset date has passed).

    `retired_on` is the date it closed (None when the vendor gave none); `alternatives` names
    providers that still offer it.
    """

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        feature: str = "fine-tuning",
        retired_on: dt.date | None = None,
        alternatives: Sequence[str] = (),
        source: str | None = None,
        **kwargs: Any,
    ) -> None:
        self.feature = feature
        self.retired_on = retired_on
        self.alternatives = tuple(alternatives)
        self.source = source
        text = message
        if retired_on is not None and str(retired_on) not in text:
            text += f" (retired {retired_on.isoformat()})"
        if self.alternatives:
            text += f". Live alternatives: {', '.join(self.alternatives)}"
        if source:
            text += f". Source: {source}"
        super().__init__(text, provider=provider, **kwargs)
