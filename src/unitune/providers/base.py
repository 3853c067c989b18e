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

import datetime as dt
import email.utils
import functools
import hashlib
import json
import logging
import os
import threading
import time
import urllib.parse
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn, TypeVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from unitune.errors import (
    AuthenticationError,
    ConfigurationError,
    JobSpecRefused,
    NotFoundError,
    PermissionDeniedError,
    ProviderError,
    ProviderRetiredError,
    ProviderUnavailableError,
    RateLimitError,
    UnituneError,
    UnknownStatusError,
    UnsupportedFeatureError,
    remember_secret,
)
from unitune.types import (
    Capabilities,
    ChatResponse,
    Checkpoint,
    FileRef,
    Job,
    JobEvent,
    JobSpec,
    JobStatus,
    Message,
    PreparedFile,
    Purpose,
    StepMetric,
    TrainingMethod,
    TunedModel,
    Usage,
)

if TYPE_CHECKING:
    from unitune._clock import Clock
    from unitune._retry import RetryPolicy
    from unitune.catalog import Catalog
    from unitune.data import Dataset

T = TypeVar("T")
I = TypeVar("I")  # noqa: E741 - an item

__all__ = [
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

log = logging.getLogger("unitune")

#: When set to "1" (the pytest plugin does), an unknown vendor status raises instead of warning.
STRICT_STATUS_ENV = "UNITUNE_STRICT_STATUS"


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


def map_status(provider: str, raw: str, table: Mapping[str, JobStatus]) -> JobStatus:
    """Map a vendor status through `table`.

    An unknown status is never guessed into a terminal or queued state: in strict mode (tests) it
    raises, otherwise it is reported as RUNNING with a warning so a poller keeps polling.
    """
    try:
        return table[raw]
    except KeyError:
        if os.environ.get(STRICT_STATUS_ENV) == "1":
            raise UnknownStatusError(
                f"unknown job status {raw!r}; add it to the {provider} status table", provider=provider
            ) from None
        log.warning("unitune: %s reported unknown job status %r; treating it as running", provider, raw)
        return JobStatus.RUNNING


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date); None if absent/bad."""
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


def error_from_status(
    status_code: int | None,
    message: str,
    *,
    provider: str,
    request_id: str | None = None,
    retry_after: float | None = None,
    body: Any = None,
) -> ProviderError:
    """The unitune error for an HTTP status. Adapters call this from their `_map_errors()`."""
    kwargs: dict[str, Any] = {"provider": provider, "request_id": request_id, "body": body}
    code = status_code
    if code == 401:
        return AuthenticationError(message, status_code=code, **kwargs)
    if code == 403:
        return PermissionDeniedError(message, status_code=code, **kwargs)
    if code == 404:
        return NotFoundError(message, status_code=code, **kwargs)
    if code == 410:
        return ProviderRetiredError(message, status_code=code, **kwargs)
    if code == 429:
        return RateLimitError(message, status_code=code, retry_after=retry_after, **kwargs)
    if code is None or code == 408 or code >= 500:
        return ProviderUnavailableError(message, status_code=code, **kwargs)
    return ProviderError(message, status_code=code, **kwargs)


# -- what a failed exchange becomes: connection failures and answers unitune cannot read ---------------


def _url_of(exc: BaseException) -> str | None:
    """The URL a transport error was about: httpx's `request`, the vendor SDK's, botocore's
    `endpoint_url`."""
    kwargs = getattr(exc, "kwargs", None)
    if isinstance(kwargs, dict) and kwargs.get("endpoint_url"):
        return str(kwargs["endpoint_url"])
    try:
        request = getattr(exc, "request", None)
    except RuntimeError:  # httpx: "The .request property has not been set."
        return None
    url = getattr(request, "url", None)
    return str(url) if url is not None else None


def _endpoint(exc: BaseException) -> str | None:
    """`host:port` of the failed request, looking through the exception's causes. Never the path or
    the query: a presigned upload URL carries a credential there."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        url = _url_of(current)
        if url:
            parts = urllib.parse.urlsplit(url)
            if parts.hostname:
                try:
                    port = parts.port
                except ValueError:
                    port = None
                port = port or {"https": 443, "http": 80}.get(parts.scheme)
                host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
                return f"{host}:{port}" if port else host
        current = current.__cause__ or current.__context__
    return None


def _root(exc: BaseException) -> BaseException:
    seen: set[int] = set()
    current = exc
    while id(current) not in seen:
        seen.add(id(current))
        nxt = current.__cause__ or current.__context__
        if nxt is None:
            break
        current = nxt
    return current


def _reason(exc: BaseException) -> str:
    """A few words on why: the deepest cause's own text, the usual ones in plain words."""
    texts = []
    current: BaseException | None = exc
    seen: set[int] = set()
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        texts.append(f"{type(current).__name__} {current}")
        current = current.__cause__ or current.__context__
    joined = " ".join(texts).lower()
    for needle, words in (
        ("refused", "connection refused"),
        ("reset", "connection reset"),
        ("name or service not known", "host not found"),
        ("nodename nor servname", "host not found"),
        ("getaddrinfo", "host not found"),
        ("timeout", "timed out"),
        ("timed out", "timed out"),
        ("remoteprotocolerror", "connection closed before the answer was complete"),
        ("closed", "connection closed before the answer was complete"),
        ("incomplete", "connection closed before the answer was complete"),
    ):
        if needle in joined:
            return words
    root = _root(exc)
    text = (str(root).strip().splitlines() or [""])[0][:160]
    return f"{type(root).__name__}: {text}" if text else type(root).__name__


def transport_error(
    provider: str, action: str, exc: BaseException, *, timeout: bool | None = None
) -> ProviderUnavailableError:
    """The unitune error for a request that got no answer: a refused or reset connection, a
    timeout. The message names the host and port it tried (never the path or query), e.g.
    `[openai] get job x: cannot connect to 127.0.0.1:9 (connection refused)`. Retried by the client."""
    where = _endpoint(exc) or "the server"
    reason = _reason(exc)
    if timeout is None:
        timeout = reason == "timed out"
    if timeout:
        text = f"{action}: no answer from {where} in time ({reason})"
    elif reason in ("connection refused", "host not found"):
        # Nothing reached the vendor: a create that failed so cannot have made a job.
        return ProviderUnavailableError(
            f"{action}: cannot connect to {where} ({reason})", provider=provider, sent=False
        )
    else:
        text = f"{action}: the connection to {where} failed ({reason})"
    return ProviderUnavailableError(text, provider=provider)


def _one_line(value: object, limit: int = 200) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def plain_text(value: object, limit: int = 300) -> str:
    """A vendor's error detail as one line for a message: an HTML page (a proxy's 502) becomes its
    title or its text, whitespace is collapsed, and it is cut at `limit` characters."""
    import re

    text = str(value)
    if re.search(r"<\s*(html|head|body|title|h1|center)\b", text, re.I):
        title = re.search(r"<title[^>]*>(.*?)</title>", text, re.I | re.S)
        text = title.group(1) if title else re.sub(r"<[^>]+>", " ", text)
        text = f"an HTML page ({_one_line(text, 120)})"
    return _one_line(text, limit)


def unreadable_answer(
    provider: str,
    action: str,
    exc: BaseException | None = None,
    *,
    status_code: int | None = None,
    body: Any = None,
) -> ProviderUnavailableError:
    """The unitune error for an answer whose body is cut short or is not JSON (a proxy's HTML
    page, an empty body). Transient, so the client retries it; on a create the outcome is unknown,
    so the client looks the job up by its idempotency key before creating again."""
    detail = f" ({_one_line(exc, 120)})" if exc is not None and str(exc) else ""
    return ProviderUnavailableError(
        f"{action}: the answer was cut short or is not JSON{detail}",
        provider=provider, status_code=status_code, body=body,
    )  # fmt: skip


#: What parsing code raises on a body of the wrong shape (a field missing, a list for an object).
_MALFORMED = (LookupError, TypeError, ValueError, AttributeError)

#: The contract's methods `guard_answers` wraps (where a subclass defines them).
GUARDED_METHODS = (
    "upload", "upload_pair", "create_job", "get_job", "list_jobs", "find_job", "cancel_job", "pause_job",
    "resume_job", "list_events", "list_metrics", "list_checkpoints", "chat", "chat_batch", "list_models",
    "update_model", "archive_model", "unarchive_model", "delete_model",
)  # fmt: skip


def _guarded(name: str, fn: Callable[..., T]) -> Callable[..., T]:
    @functools.wraps(fn)
    def method(self: Provider, *args: Any, **kwargs: Any) -> T:
        try:
            return fn(self, *args, **kwargs)
        except UnituneError:
            raise
        except json.JSONDecodeError as e:
            raise unreadable_answer(self.name, name.replace("_", " "), e) from e
        except _MALFORMED as e:
            # On a create the request may have taken effect: unknown, so the client looks the job up.
            kind = ProviderUnavailableError if name == "create_job" else ProviderError
            raise kind(
                f"{name.replace('_', ' ')}: the answer could not be read ({type(e).__name__}: {_one_line(e, 160)})",
                provider=self.name,
            ) from e

    method.__unitune_guarded__ = True  # type: ignore[attr-defined]
    return method


ProviderT = TypeVar("ProviderT", bound="type[Provider]")


def guard_answers(*extra: str) -> Callable[[ProviderT], ProviderT]:
    """Class decorator for a vendor adapter: no exception outside unitune's tree leaves the contract's
    methods (and the `extra` ones named). A body cut short becomes `ProviderUnavailableError`; one of
    the wrong shape (what `raw["id"]` on a list, or a field of the wrong type, raises) a one-line
    `ProviderError`, or `ProviderUnavailableError` on `create_job`, whose outcome is then unknown.
    The original exception stays as `__cause__`."""

    def decorate(cls: ProviderT) -> ProviderT:
        for name in (*GUARDED_METHODS, *extra):
            fn = cls.__dict__.get(name)
            if callable(fn) and not getattr(fn, "__unitune_guarded__", False):
                setattr(cls, name, _guarded(name, fn))
        return cls

    return decorate


class _NotSent(Exception):
    """A part not sent because another had failed for good (never surfaces: that failure does)."""


def send_parts(
    send: Callable[[I], T],
    items: Iterable[I],
    *,
    concurrency: int,
    meanwhile: Callable[[], None] | None = None,
) -> list[T]:
    """`send(item)` for every part of a multipart upload, `concurrency` at a time, results in order;
    `meanwhile()` runs in the calling thread while they travel (a checksum). `send` retries its one
    request (`Provider.step`); once a part has failed for good the parts not yet started are not
    sent, and the first failure, in order, is raised."""
    from concurrent.futures import ThreadPoolExecutor

    failed = threading.Event()

    def run(item: I) -> T:
        if failed.is_set():
            raise _NotSent
        try:
            return send(item)
        except BaseException:
            failed.set()
            raise

    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="unitune-upload") as pool:
        futures = [pool.submit(run, item) for item in items]
        try:
            if meanwhile is not None:
                meanwhile()
            return [f.result() for f in futures]
        except BaseException:
            failed.set()
            for f in futures:
                f.cancel()
            raise


def convert_for_upload(
    data: Dataset, purpose: Purpose, *, provider: str, wire_format: str, workdir: Path
) -> PreparedFile:
    """Write `data` in `wire_format` under `workdir`, streaming, for upload to `provider`.

    Examples the format cannot express at all raise `ValidationFailed` (nothing is uploaded);
    partial losses are counted in `PreparedFile.conversion_losses` and logged.
    """
    from unitune.data.convert import write_jsonl
    from unitune.errors import ValidationFailed

    result = write_jsonl(data, wire_format, workdir / f"{purpose}.{wire_format}.jsonl")
    if result.refused:
        first = "; ".join(str(loss) for loss in result.losses if loss.refused)
        raise ValidationFailed(
            f"{result.refused} example(s) cannot be expressed in {provider}'s format "
            f"({wire_format}): {first}",
            report=result,
        )
    if result.loss_counts:
        log.warning(
            "unitune: converting %s data for %s changed some examples: %s",
            purpose,
            provider,
            ", ".join(f"{k} ×{v}" for k, v in sorted(result.loss_counts.items())),
        )
    return PreparedFile(
        path=result.path,
        filename=f"{data.path.stem if data.path is not None else purpose}.jsonl",
        size_bytes=result.size_bytes,
        sha256=result.sha256,
        purpose=purpose,
        num_examples=result.written,
        conversion_losses=dict(result.loss_counts),
    )


# -- helpers the vendor adapters share ----------------------------------------------------------------


def as_dict(obj: Any, *, by_alias: bool = False) -> dict[str, Any]:
    """A vendor SDK object (a pydantic model) as plain JSON-ready data; a dict as is."""
    dump = getattr(obj, "model_dump", None)
    if dump is not None:
        # warnings off: SDK models often hold values their own annotations do not allow ("max").
        result: dict[str, Any] = dump(mode="json", by_alias=by_alias, warnings=False)
        return result
    return dict(obj) if isinstance(obj, dict) else {"value": obj}


def as_datetime(value: Any) -> dt.datetime | None:
    """A vendor timestamp (datetime, Unix seconds or ISO 8601) as an aware UTC datetime; None if absent
    or unreadable."""
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
    if isinstance(value, (int, float)) or (isinstance(value, str) and value.isdigit()):
        try:
            return dt.datetime.fromtimestamp(int(value), tz=dt.timezone.utc)
        except (OverflowError, OSError, ValueError):  # 1e400, NaN, a year past 9999: not a time
            return None
    if isinstance(value, str):
        try:
            return as_datetime(dt.datetime.fromisoformat(value.replace("Z", "+00:00")))
        except ValueError:
            return None
    return None


def as_float(value: Any) -> float | None:
    """A number from vendor data (CSV cells, JSON), or None when it is not one."""
    if value is None or value == "":
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def key_tag(key: str, *, prefix: str = "ut", nbytes: int = 4) -> str:
    """A short, stable tag for an idempotency key, for vendors without job metadata: carried in a
    suffix or a name, so a create whose answer was lost can be found again."""
    return prefix + hashlib.blake2b(key.encode(), digest_size=nbytes).hexdigest()


def refuse_unknown_options(
    provider: str,
    options: Mapping[str, Any],
    known: Iterable[str],
    *,
    scope: str = "",
    hint: str | None = None,
) -> None:
    """`JobSpecRefused` naming every `provider_options` key the adapter does not know (`scope` ends
    the feature's name, "for nova"; `hint` replaces the list of known options)."""
    names = sorted(known)
    unknown = sorted(set(options) - set(names))
    if unknown:
        raise JobSpecRefused.unsupported(
            provider, f"the provider option(s) {', '.join(map(repr, unknown))}{scope}",
            hint or "Known options: " + ", ".join(names) + ".",
        )  # fmt: skip


def catalog_retirement(
    provider: str, catalog: Catalog | None = None, *, today: dt.date | None = None
) -> tuple[dt.date | None, list[str], str | None]:
    """From the catalog (the provider's context's, else the built-in one): the date new jobs end on
    `provider` (a provider-wide training sunset), the live alternatives and the source. Adapters put
    these in the errors a vendor's refusal becomes."""
    if catalog is None:
        from unitune.catalog import load_catalog

        catalog = load_catalog()
    if provider not in catalog.providers:
        return None, [], None
    entry = catalog.provider(provider)
    alternatives = list(catalog.alternatives(provider, None, today=today or dt.date.today()))
    for sunset in entry.sunsets:
        if sunset.what in ("training", "fine_tuning_api") and not sunset.models:
            return sunset.date, alternatives, sunset.source
    return None, alternatives, entry.lifecycle.source


def chat_messages(messages: list[Message]) -> list[dict[str, Any]]:
    """Messages for an OpenAI-style chat API: unitune's training-only `weight` left out."""
    return [m.model_dump(exclude_none=True, exclude={"weight"}) for m in messages]


def chat_response(raw: Mapping[str, Any], *, model: str, provider: str) -> ChatResponse:
    """A `ChatResponse` from an OpenAI-shaped completion (OpenAI, Together, Mistral)."""
    choices = raw.get("choices")
    if not isinstance(choices, list):  # not a completion at all (a guarded adapter: ProviderError)
        raise ValueError(f"the answer has no choices ({plain_text(list(raw)[:5], 80)})")
    choice = (choices or [{}])[0]
    content = (choice.get("message") or {}).get("content")
    if isinstance(content, list):  # content parts: keep the text ones
        content = "".join(str(c.get("text", "")) for c in content if isinstance(c, dict))
    usage = raw.get("usage") or {}
    return ChatResponse(
        model=str(raw.get("model") or model),
        provider=provider,
        content=content or "",
        finish_reason=choice.get("finish_reason"),
        # A negative count (seen from mocks) is nonsense, not a reason to fail the answer.
        usage=Usage(
            prompt_tokens=max(0, int(usage.get("prompt_tokens") or 0)),
            completion_tokens=max(0, int(usage.get("completion_tokens") or 0)),
        ),
        raw=dict(raw),
    )


class ProviderContext:
    """What a provider takes from the client that runs it, instead of reaching for globals: the
    unitune home (where a provider that keeps files keeps them), the clock (every wait and poll
    sleeps on it), the retry policy for the requests inside one call, and the catalog (the
    client's, with the config's catalog files), loaded on first use."""

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

    def __init__(self, settings: ProviderSettings | None = None, *, client: Any = None) -> None:
        self.settings = settings if settings is not None else self.settings_class()
        self._client = client

    @classmethod
    def from_config(cls, section: Mapping[str, Any] | None = None, **kwargs: Any) -> Provider:
        """Build from a config section (`[providers.<name>]`); keys are checked by `settings_class`."""
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
        """The dataset rules (a `profiles.toml` section) for training `model`; the default is the
        provider's one profile. Providers whose rules differ by model family (Bedrock) override it."""
        return self.dataset_profile

    def wire_format_for(self, method: TrainingMethod, model: str | None = None) -> str:
        """The wire format a job of `method` on `model` uploads: `wire_format` for supervised data,
        `preference_wire_format` for DPO pairs."""
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
        streaming. Examples the format cannot express at all raise `ValidationFailed` (nothing is
        uploaded); partial losses are counted in `PreparedFile.conversion_losses` and logged.
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
        """Upload a job's training and validation files. The default uploads each; a vendor that
        keeps both in one object (Cohere's datasets) overrides this."""
        return self.upload(training), self.upload(validation)

    def check_job(self, spec: JobSpec) -> None:  # noqa: B027 - optional hook: most checks need no code
        """Raise what `create_job(spec)` would refuse without asking the vendor: a hyperparameter or
        `provider_options` key it cannot take, a setting the create needs (a bucket, a role), limits
        on suffix and metadata. No network. The client calls it before anything is uploaded, with a
        stand-in `training_file` (id "unitune-check"), and `create_job` calls it again; the fake calls
        the impersonated provider's. The default checks nothing."""

    @abstractmethod
    def create_job(self, spec: JobSpec, *, idempotency_key: str) -> Job:
        """Create a fine-tuning job. Tag it with `idempotency_key` (or pass the vendor's own token).
        Starts with `self.check_job(spec)`."""

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
        """One chat completion with a base or fine-tuned model."""
        self._unsupported("chat")

    # -- tuned-model management (a small extension: Mistral has it; others may add it) -------------

    def list_models(self) -> list[TunedModel]:
        """The fine-tuned models this account holds."""
        self._unsupported("listing tuned models")

    def update_model(
        self, model_id: str, *, name: str | None = None, description: str | None = None
    ) -> TunedModel:
        """Rename or describe a tuned model."""
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

    def chat_batch(self, model: str, conversations: list[list[Message]], **params: Any) -> list[ChatResponse]:
        """One chat completion per conversation with the same model, answers in the same order.

        Evaluation sends its prompts through here. The default calls `chat` once per conversation;
        providers that generate several sequences in one pass (the local trainer) override it. An
        override must return exactly one response per conversation, in order.
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
        """Run inside `context`: `FineTuneClient` passes its own when it is built (its unitune home,
        clock, retry policy and catalog), so a provider never reaches for the process's globals and
        a client's `home` or catalog files hold for its provider too."""
        self._context = context

    @property
    def context(self) -> ProviderContext:
        """The context `bind` gave; a provider used on its own gets the defaults: the home
        `UNITUNE_HOME` or the config names, the provider's own clock (the fake's) or the system's,
        the default retry settings, the built-in catalog."""
        if self._context is None:
            self._context = ProviderContext.default(clock=getattr(self, "clock", None))
        return self._context

    def bind_retry(self, policy: RetryPolicy) -> None:
        """Retry the requests inside one call with `policy` (and sleep on its clock): each request
        of an upload (the create, every part, the complete), a file's processing poll or the limits
        read before a create is retried on its own rather than the whole call being repeated.
        `bind` sets this with the rest of the context; this changes the policy alone."""
        self.bind(self.context.replace(retry=policy, clock=policy.clock))

    @property
    def retry_policy(self) -> RetryPolicy:
        """The policy `step` retries with (the context's)."""
        return self.context.retry

    def step(self, action: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run one request of a call made of several, retrying it alone when it fails transiently
        (`fn` raises unitune's errors: pass the adapter's mapped call).

        When its retries are spent the error stays what it was (`ProviderUnavailableError`,
        `RateLimitError`) but is marked `retryable = False`, which the client's policy honours: the
        call is not started again from scratch (repeating every step that had succeeded), so
        attempts never multiply beyond one policy's bound.
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
