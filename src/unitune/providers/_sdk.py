"""The base of the adapters that call a vendor's SDK, and the pieces of a job request they share.

`SDKProvider` holds what every SDK-backed adapter needs and had written out on its own: the SDK
client built on first use under a lock (an adapter says how, in `_build_client`), who owns it and
`close()`, the call wrapper that runs a request inside the adapter's error mapping (`_call`, and
`_step_call` for a request retried on its own), and `FileRef`s from a `PreparedFile`.
`StainlessProvider` adds the error mapping of the SDKs Stainless generates (OpenAI's and Together's
share one exception tree), so each of those adapters says only what its vendor does differently.

The job request's pieces: `HyperparameterTable` maps unitune's common hyperparameters to the
vendor's names and refuses the rest by name; `tagged_suffix` and `refuse_reserved_metadata` carry
the idempotency key in a suffix or the metadata; `sdk_model` builds an SDK's own request model so
`check_job` finds what it refuses before upload; every refusal is a `JobSpecRefused`.

An adapter then holds only its vendor's mapping: statuses, shapes, calls.
"""

from __future__ import annotations

import abc
import contextlib
import json
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from unitune.errors import JobSpecRefused, ProviderError
from unitune.providers.base import (
    Provider,
    ProviderSettings,
    as_datetime,
    as_float,
    error_from_status,
    parse_retry_after,
    plain_text,
    transport_error,
    unreadable_answer,
)
from unitune.types import FileRef, Hyperparameters, PreparedFile

__all__ = [
    "HyperparameterTable",
    "sdk_model",
    "SDKProvider",
    "StainlessProvider",
    "no_query",
    "refuse_reserved_metadata",
    "tagged_suffix",
]

T = TypeVar("T")


class SDKProvider(Provider):
    """An adapter that calls its vendor through the vendor's SDK client.

    `client=` takes a ready SDK client (tests point one at a fake server); the provider then does
    not own it and `close()` leaves it open. Otherwise `sdk` builds one on first use with
    `_build_client()` (under a lock: two threads never build two), and `close()` releases it.
    """

    def __init__(self, settings: ProviderSettings | None = None, *, client: Any = None) -> None:
        super().__init__(settings, client=client)
        self._owned = client is None
        # Reentrant: building the client may read another lazily built one (Mistral's two).
        self._lock = threading.RLock()

    @abc.abstractmethod
    def _build_client(self) -> Any:
        """Build a new SDK client from `self.settings`.

        A new SDK client from `self.settings`, with the SDK's own retries off (retries belong
        to the client's policy) and the API key from `settings.require_api_key`.
        """

    @property
    def sdk(self) -> Any:
        """The vendor SDK client: the one passed in, or one built on first use."""
        with self._lock:
            if self._client is None:
                self._client = self._build_client()
            return self._client

    def check_ready(self) -> None:
        """Build the SDK client: that is where a missing key or setting is found, with no request."""
        _ = self.sdk

    def _release(self, client: Any) -> None:
        """Release what an SDK client this provider built holds.

        Release what a client this provider built holds (its connections); its `close()` by
        default, where it has one (not every SDK's client does).
        """
        close = getattr(client, "close", None)
        if callable(close):
            close()

    def close(self) -> None:
        """Release the SDK client this provider built (not one passed in).

        Safe to call twice; a later call builds a new client.
        """
        with self._lock:
            client = self._client if self._owned else None
            if self._owned:
                self._client = None
        if client is not None:
            self._release(client)

    @abc.abstractmethod
    def _map_errors(self, action: str) -> contextlib.AbstractContextManager[None]:
        """A context that maps the SDK's exceptions to unitune's errors.

        A context in which the SDK's exceptions become unitune's errors (the SDK's stays as
        `__cause__`); `action` starts every message ("create job: ...").
        """

    def _call(self, action: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """One request through the SDK, its errors mapped."""
        with self._map_errors(action):
            return fn(*args, **kwargs)

    def _step_call(self, action: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """One request of a call made of several, retried on its own (see `Provider.step`)."""
        result: T = self.step(action, self._call, action, fn, *args, **kwargs)
        return result

    def _file_ref(
        self,
        prepared: PreparedFile,
        raw: Mapping[str, Any],
        *,
        file_id: Any = None,
        filename: str | None = None,
        size_bytes: int | None = None,
    ) -> FileRef:
        """The `FileRef` of an uploaded file from the vendor's answer.

        The `FileRef` of an uploaded `prepared` file from the vendor's answer `raw` (its `id`,
        `filename`, `bytes` and `created_at`, where the answer has them; ours where not).
        """
        return FileRef(
            id=str(file_id if file_id is not None else raw["id"]),
            provider=self.name,
            filename=filename or raw.get("filename") or prepared.filename,
            size_bytes=size_bytes or raw.get("bytes") or prepared.size_bytes,
            purpose=prepared.purpose,
            sha256=prepared.sha256,
            created_at=as_datetime(raw.get("created_at")),
            raw=dict(raw),
        )


def no_query(text: str) -> str:
    """`text` with URLs' query strings cut: a presigned upload URL carries credentials there."""
    return re.sub(r"(https?://[^\s?'\"]+)\?[^\s'\"]*", r"\1?…", text)


def stainless_detail(body: Any) -> str | None:
    """The vendor's own words in a Stainless SDK's error body.

    `message` or `detail`, of the body or of its `error` object, with a schema check's problems
    (problem+json `validation`) after them.
    """
    if not isinstance(body, dict):
        return str(body) if body else None
    inner = body.get("error", body)
    if not isinstance(inner, dict):
        return str(inner) if inner else None
    detail = inner.get("message") or inner.get("detail")
    problems = inner.get("validation")
    if isinstance(problems, list) and problems:
        detail = f"{detail}: " + "; ".join(
            str(p.get("message", p) if isinstance(p, dict) else p) for p in problems[:5]
        )
    return str(detail) if detail else None


class StainlessProvider(SDKProvider):
    """An adapter whose SDK Stainless generated (OpenAI's, Together's).

    One exception tree — `APIStatusError` (with the response), `APIConnectionError` (and
    `APITimeoutError`), `APIResponseValidationError` — mapped here once. `_sdk_module()` names the SDK's
    module; `_status_error` may be extended for what a vendor means by a status (OpenAI's 410 and 403).
    """

    @abc.abstractmethod
    def _sdk_module(self) -> Any:
        """The SDK's top module, imported lazily (its exception classes live there)."""

    def _listed_file(self, raw: dict[str, Any]) -> FileRef:
        """A `FileRef` from one entry of the vendor's file list (both vendors' `FileObject` shape)."""
        return FileRef(
            id=str(raw["id"]), provider=self.name, filename=raw.get("filename"), size_bytes=raw.get("bytes"),
            created_at=as_datetime(raw.get("created_at")), raw=raw,
        )  # fmt: skip

    @contextlib.contextmanager
    def _map_errors(self, action: str) -> Iterator[None]:
        sdk = self._sdk_module()
        try:
            yield
        except sdk.APIStatusError as e:
            if 200 <= e.status_code < 300:  # the SDK's word for a 2xx it could not use
                raise unreadable_answer(self.name, action, status_code=e.status_code) from e
            raise self._status_error(e, action) from e
        except sdk.APIConnectionError as e:  # APITimeoutError is a subclass
            raise transport_error(self.name, action, e, timeout=isinstance(e, sdk.APITimeoutError)) from e
        except sdk.APIResponseValidationError as e:
            raise ProviderError(
                f"{action}: the API answered with data the SDK could not read ({e.message})",
                provider=self.name, status_code=e.status_code, body=e.body,
            ) from e  # fmt: skip
        except json.JSONDecodeError as e:  # a 200 whose body was cut short, or an HTML page
            raise unreadable_answer(self.name, action, e) from e

    def _status_error(self, e: Any, action: str) -> ProviderError:
        """The unitune error for an HTTP error status.

        Its class from the status, the vendor's own words, the request id and Retry-After (or Stainless's
        `retry-after-ms`).
        """
        headers = e.response.headers
        retry_after = parse_retry_after(headers.get("retry-after"))
        if retry_after is None and headers.get("retry-after-ms"):
            retry_after = (as_float(headers.get("retry-after-ms")) or 0.0) / 1000
        return error_from_status(
            e.status_code, f"{action}: {plain_text(no_query(stainless_detail(e.body) or e.message))}",
            provider=self.name, request_id=getattr(e, "request_id", None) or headers.get("x-request-id"),
            retry_after=retry_after, body=e.body,
        )  # fmt: skip


@dataclass(frozen=True)
class HyperparameterTable:
    """unitune's common hyperparameters → one vendor's names.

    A field set on a job but missing from `names` is refused by name (`JobSpecRefused`), with
    `instead[field]` as the fix where the vendor has something else (an absolute rate for a multiplier),
    else the list of what it takes.
    """

    names: Mapping[str, str]
    instead: Mapping[str, str] = field(default_factory=dict)
    #: What a refused field is called in the error, where its name alone would mislead.
    called: Mapping[str, str] = field(default_factory=dict)
    #: How a value is sent (Bedrock sends strings); as it is by default.
    convert: Callable[[str, Any], Any] = field(default=lambda name, value: value)

    def map(self, provider: str, hp: Hyperparameters, *, scope: str = "") -> dict[str, Any]:
        """The set fields of `hp` under the vendor's names.

        `scope` ends the refused feature's name ("lora_rank for nova models").

        Args:
            provider: the provider's name, for the error.
            hp: the job's hyperparameters.
            scope: words that end the refused feature's name (" for nova models"); empty for none.

        Returns:
            The vendor's names for the fields set, each with its value as `convert` sends it.

        Raises:
            JobSpecRefused: a field is set that the vendor does not take (not in `names`).
        """
        out: dict[str, Any] = {}
        for name, value in hp.set_fields().items():
            vendor = self.names.get(name)
            if vendor is None:
                hint = self.instead.get(name) or f"It takes {', '.join(self.names) or 'none of them'}."
                raise JobSpecRefused.unsupported(provider, f"{self.called.get(name, name)}{scope}", hint)
            out[vendor] = self.convert(name, value)
        return out


def tagged_suffix(provider: str, vendor: str, suffix: str | None, tag: str, *, limit: int) -> str:
    """The suffix a job is created with on a vendor without job metadata.

    The caller's, then the idempotency key's `tag` (`key_tag(key)`), so a create whose answer was lost
    can be found again by its output model's name. Refused when the vendor's `limit` leaves no room for
    the tag.

    Args:
        provider: the provider's name, for the error.
        vendor: the vendor's name as the message shows it.
        suffix: the caller's suffix, or None for none.
        tag: the idempotency key's tag (`key_tag(key)`).
        limit: the most characters the vendor takes in a suffix.

    Returns:
        `suffix-tag`, or the tag alone when there is no suffix.

    Raises:
        JobSpecRefused: the suffix and the tag together are longer than `limit`.
    """
    tagged = f"{suffix}-{tag}" if suffix else tag
    if len(tagged) > limit:
        raise JobSpecRefused(
            f"suffix {suffix!r} is too long for {vendor}: at most {limit - len(tag) - 1} characters "
            f"({vendor} takes {limit}; unitune appends -{tag} to find the job again on a retry).",
            provider=provider, feature="suffix",
        )  # fmt: skip
    return tagged


def refuse_reserved_metadata(provider: str, metadata: Mapping[str, str], tag: str) -> None:
    """Refuse metadata that uses unitune's own key, which carries the job's idempotency key.

    Args:
        provider: the provider's name, for the error.
        metadata: the job's metadata.
        tag: unitune's own metadata key.

    Raises:
        JobSpecRefused: `metadata` has the key `tag`.
    """
    if tag in metadata:
        raise JobSpecRefused(
            f"metadata key {tag!r} is unitune's own (the job's idempotency key).",
            provider=provider, feature="metadata",
            fix="Name your key otherwise, or pass idempotency_key=... to create_job.",
        )  # fmt: skip


def sdk_model(provider: str, vendor: str, cls: Any, what: str | None = None, **fields: Any) -> Any:
    """Build a vendor SDK's pydantic request model from `fields`.

    A vendor SDK's pydantic request model built from `fields`; a value the model refuses (an
    option of the wrong type) is a `JobSpecRefused` naming the field, so `check_job` can build the
    request before anything is uploaded. `what` names the part of the request ("the job's").
    """
    from pydantic import ValidationError

    try:
        return cls(**fields)
    except ValidationError as e:
        first = e.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        label = f"{what} {field}" if what else field
        raise JobSpecRefused(
            f"{vendor} cannot take {label} = {first.get('input')!r}: {first['msg']}.",
            provider=provider, feature=field,
        ) from None  # fmt: skip
