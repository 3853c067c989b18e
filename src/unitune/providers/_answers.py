"""Reading vendors' answers and mapping their failures, shared by the adapters.

What the adapters share to read a vendor's answers and to map its failures: status tables,
HTTP error statuses, transport failures (naming the host and port), bodies cut short or not JSON,
the `@guard_answers` decorator that turns what a malformed body makes parsing code raise into a
one-line `ProviderError`, parts sent in parallel, tolerant conversions of answer fields, and the
OpenAI-shaped chat request and answer.

Split out of `providers/base.py`, which re-exports every public name here: adapters and docs
import them from `unitune.providers.base`.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import functools
import hashlib
import json
import os
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from unitune._log import get_logger
from unitune.errors import (
    AuthenticationError,
    JobSpecRefused,
    NotFoundError,
    PermissionDeniedError,
    ProviderError,
    ProviderRetiredError,
    ProviderUnavailableError,
    RateLimitError,
    UnituneError,
    UnknownStatusError,
)
from unitune.types import (
    ChatResponse,
    JobStatus,
    Message,
    PreparedFile,
    Purpose,
    Usage,
)

if TYPE_CHECKING:
    from unitune.catalog import Catalog
    from unitune.data import Dataset
    from unitune.providers.base import Provider

T = TypeVar("T")
I = TypeVar("I")  # noqa: E741 - an item

log = get_logger("unitune")

#: When set to "1" (the pytest plugin does), an unknown vendor status raises instead of warning.
STRICT_STATUS_ENV = "UNITUNE_STRICT_STATUS"


def map_status(provider: str, raw: str, table: Mapping[str, JobStatus]) -> JobStatus:
    """Map a vendor status through `table`.

    An unknown status is never guessed into a terminal or queued state: in strict mode (tests) it
    raises, otherwise it is reported as RUNNING with a warning so a poller keeps polling.

    Args:
        provider: the provider's name, for the warning and the error.
        raw: the status as the vendor spells it.
        table: the adapter's map from vendor statuses to unitune's.

    Returns:
        The unitune status; RUNNING for an unknown one outside strict mode.

    Raises:
        UnknownStatusError: `raw` is not in `table` and `UNITUNE_STRICT_STATUS` is "1".
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
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date); None if absent/bad.

    Args:
        value: the header's value, or None when the answer has none.
        now: the current Unix time an HTTP date is measured from; defaults to the system clock.
    """
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
    """The unitune error for an HTTP status. Adapters call this from their `_map_errors()`.

    Args:
        status_code: the HTTP status, or None when there was no answer.
        message: the error's message, usually the vendor's own words.
        provider: the provider's name.
        request_id: the vendor's request id, for its support.
        retry_after: seconds the vendor asked to wait (a 429's Retry-After).
        body: the vendor's error body, kept on the error.

    Returns:
        `AuthenticationError` (401), `PermissionDeniedError` (403), `NotFoundError` (404),
        `ProviderRetiredError` (410), `RateLimitError` (429), `ProviderUnavailableError` (no status,
        408 or 5xx), else a plain `ProviderError`. It is returned, not raised.
    """
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
    """The URL a transport error was about: httpx's `request`, the vendor SDK's, botocore's `endpoint_url`."""
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
    """`host:port` of the failed request, looking through the exception's causes.

    Never the path or the query: a presigned upload URL carries a credential there.
    """
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
    """The unitune error for a request that got no answer: a refused or reset connection, a timeout.

    The message names the host and port it tried (never the path or query), e.g. `[openai] get job x:
    cannot connect to 127.0.0.1:9 (connection refused)`. Retried by the client.

    Args:
        provider: the provider's name.
        action: what was being done, for the message ("get job x").
        exc: the transport's exception (httpx's, the vendor SDK's, botocore's).
        timeout: whether it was a timeout; None to tell from `exc`.

    Returns:
        The error to raise; marked as not sent when nothing reached the vendor (connection refused,
        host not found).
    """
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
    """A vendor's error detail as one line for a message.

    An HTML page (a proxy's 502) becomes its title or its text, whitespace is collapsed, and it is cut at
    `limit` characters.

    Args:
        value: the detail: a string, or anything whose `str()` is one.
        limit: the most characters kept.
    """
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
    """The unitune error for an answer whose body is cut short or is not JSON.

    A proxy's HTML page or an empty body, say. Transient, so the client retries it; on a create the
    outcome is unknown, so the client looks the job up by its idempotency key before creating again.

    Args:
        provider: the provider's name.
        action: what was being done, for the message ("create job").
        exc: the parser's exception, whose text ends the message; None for none.
        status_code: the answer's HTTP status.
        body: the answer's body, kept on the error.

    Returns:
        The error to raise.
    """
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
    """Class decorator that keeps an adapter's exceptions inside unitune's tree.

    Class decorator for a vendor adapter: no exception outside unitune's tree leaves the contract's
    methods (and the `extra` ones named). A body cut short becomes `ProviderUnavailableError`; one of
    the wrong shape (what `raw["id"]` on a list, or a field of the wrong type, raises) a one-line
    `ProviderError`, or `ProviderUnavailableError` on `create_job`, whose outcome is then unknown.
    The original exception stays as `__cause__`.
    """

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
    """Send the parts of a multipart upload in parallel.

    `send(item)` for every part of a multipart upload, `concurrency` at a time, results in order;
    `meanwhile()` runs in the calling thread while they travel (a checksum). `send` retries its one
    request (`Provider.step`); once a part has failed for good the parts not yet started are not
    sent, and the first failure, in order, is raised.

    Args:
        send: sends one part and returns its result (an ETag, say).
        items: the parts, in order.
        concurrency: how many parts travel at once.
        meanwhile: work for the calling thread while the parts travel; None for none.

    Returns:
        The results of `send`, in the order of `items`.
    """
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

    Args:
        data: the dataset to convert.
        purpose: "training" or "validation"; it names the file.
        provider: the provider's name, for the messages.
        wire_format: the vendor's format (`Provider.wire_format_for`).
        workdir: the folder the converted file is written in.

    Returns:
        The converted file, its size, checksum, example count and conversion losses.

    Raises:
        ValidationFailed: some examples cannot be expressed in `wire_format`.
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
    """A vendor SDK object (a pydantic model) as plain JSON-ready data; a dict as is.

    Args:
        obj: a pydantic model or a dict; anything else is wrapped as `{"value": obj}`.
        by_alias: whether a model's fields are named by their aliases (the vendor's wire names).
    """
    dump = getattr(obj, "model_dump", None)
    if dump is not None:
        # warnings off: SDK models often hold values their own annotations do not allow ("max").
        result: dict[str, Any] = dump(mode="json", by_alias=by_alias, warnings=False)
        return result
    return dict(obj) if isinstance(obj, dict) else {"value": obj}


def as_datetime(value: Any) -> dt.datetime | None:
    """A vendor timestamp as an aware UTC datetime.

    A vendor timestamp (datetime, Unix seconds or ISO 8601) as an aware UTC datetime; None if absent
    or unreadable.
    """
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
    """A short, stable tag for an idempotency key.

    For vendors without job metadata: carried in a suffix or a name, so a create whose answer was
    lost can be found again.

    Args:
        key: the idempotency key.
        prefix: the tag's first letters.
        nbytes: the hash's length in bytes (the tag has twice as many hex digits).
    """
    return prefix + hashlib.blake2b(key.encode(), digest_size=nbytes).hexdigest()


def refuse_unknown_options(
    provider: str,
    options: Mapping[str, Any],
    known: Iterable[str],
    *,
    scope: str = "",
    hint: str | None = None,
) -> None:
    """Refuse every `provider_options` key the adapter does not know.

    `JobSpecRefused` naming every `provider_options` key the adapter does not know (`scope` ends
    the feature's name, "for nova"; `hint` replaces the list of known options).

    Args:
        provider: the provider's name.
        options: the job's `provider_options`.
        known: the option names the adapter accepts.
        scope: words that end the feature's name in the message (" for nova"); empty for none.
        hint: what to do instead; None for the list of known options.

    Raises:
        JobSpecRefused: some key of `options` is not in `known`.
    """
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
    """What the catalog says of a provider's retirement.

    From the catalog (the provider's context's, else the built-in one): the date new jobs end on
    `provider` (a provider-wide training sunset), the live alternatives and the source. Adapters put
    these in the errors a vendor's refusal becomes.

    Args:
        provider: the provider's name.
        catalog: the catalog to read; None for the built-in one.
        today: the date alternatives are judged on; defaults to today.

    Returns:
        The date new jobs end (None when no provider-wide sunset is known), the alternatives, and
        the source of that date (else of the provider's lifecycle; None for an unknown provider).
    """
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
    """A `ChatResponse` from an OpenAI-shaped completion (OpenAI, Together, Mistral).

    Args:
        raw: the completion as JSON data.
        model: the model asked, used when the completion names none.
        provider: the provider's name.
    """
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
