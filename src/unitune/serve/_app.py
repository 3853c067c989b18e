"""`unitune serve`: an OpenAI-compatible HTTP API over local and hosted models.

Endpoints (the shapes of OpenAI's API, so the official SDKs work unchanged):

- `GET /health`: `{"status": "ok", "models": N, "failed": M}`, without authentication (for probes).
- `GET /v1/models`, `GET /v1/models/{id}`: the served models.
- `POST /v1/chat/completions`: one answer, or with `"stream": true` server-sent events
  (`data: {chunk}` per piece, then `data: [DONE]`; usage in a last chunk with
  `stream_options.include_usage`).

Every error is `{"error": {"message", "type", "param", "code"}}` with its status: 400 for a
malformed or unsupported request (also schema errors, which FastAPI would answer with 422), 401 for
a missing or wrong key (with `WWW-Authenticate`), 404 for a model not served, 413 for a body over
`max_request_bytes`, 429/502 for a hosted provider's refusal, 503 when a model's queue is full, 500
for anything unexpected (logged; the server goes on serving).

Security: the server binds 127.0.0.1 unless told otherwise, and another address needs an API key,
sent as `Authorization: Bearer KEY` (compared in constant time, never logged or echoed). Without a
key, only requests whose Host is a loopback name are answered, so a web page cannot reach the
server by rebinding its DNS name to 127.0.0.1.

The request log (`log_path`): one row per chat request, success or error (see `unitune.serve._log`
for what is kept). Rows are written by a background thread, off the request's path; the text is
kept only with `log_text`, after PII redaction with `redact_pii`. With an A/B split (`ab`), a
request for any arm's model is answered by the arm the user's id (`X-Unitune-User`, else the
body's `user`, else the request id) hashes to; the row records the arm and the user id hashed.

FastAPI and uvicorn are the `serve` extra: they are imported only when an app is built.

Over ~700 lines on purpose: the routes, their OpenAI error mapping and the request log row each
route writes change together; what answers a model lives in `_backends`.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from unitune._asgi import ThreadedServer
from unitune._log import get_logger
from unitune.errors import ConfigurationError
from unitune.serve._ab import ABSplit
from unitune.serve._backends import (
    Backend,
    ChatRequest,
    Completion,
    ServedModels,
    ServeError,
    StreamHandle,
    check_backend,
)
from unitune.serve._log import RequestLog, RequestRecord, hash_value, output_fields, sketch

if TYPE_CHECKING:
    import datetime as dt

    from fastapi import FastAPI
    from starlette.requests import Request
    from starlette.responses import Response

__all__ = ["ServeConfig", "ServeServer", "create_app", "start_server"]

logger = get_logger("unitune.serve")

_INSTALL_FIX = "Install it with: pip install 'unitune[serve]'"
USER_HEADER = "x-unitune-user"


def _require(module: str) -> ModuleType:
    """Import one of the extra's packages, or say how to install it."""
    from unitune._asgi import require

    return require(module, "unitune serve", _INSTALL_FIX)


def _is_loopback(host: str) -> bool:
    from unitune.evaluate._review import _is_loopback as loopback

    return loopback(host)


@dataclass(frozen=True)
class ServeConfig:
    """What `unitune serve` serves and how.

    `models`: model ids (see `unitune.serve._backends`); the A/B arms are served too. `api_key` is
    required unless `host` is a loopback address. `max_tokens`: the most one request may ask for;
    `default_max_tokens`: what a request that names none gets. `max_request_bytes`: the largest body
    accepted. `log_path`: the request log (None: no log); `log_text` keeps the prompt and answer
    text in it, redacted first with `redact_pii`. `backend`: "auto" or "transformers" ("vllm" is
    refused: not supported by this build yet). Batching: `max_batch_size` requests per `generate`
    call, gathered while they arrive less than `batch_wait_ms` apart (10 ms: a burst of clients
    lands in one batch, measured in bench/README.md; a lone request waits that long);
    `max_queue` waiting requests per model before 503.
    """

    models: tuple[str, ...] = ()
    host: str = "127.0.0.1"
    port: int = 8000
    api_key: SecretStr | None = field(default=None, repr=False)
    backend: str = "auto"
    max_tokens: int = 2048
    default_max_tokens: int = 256
    max_request_bytes: int = 1 << 20
    log_path: Path | None = None
    log_text: bool = False
    redact_pii: bool = False
    ab: ABSplit | None = None
    max_batch_size: int = 8
    batch_wait_ms: float = 10.0
    max_queue: int = 64

    def __post_init__(self) -> None:
        key = self.api_key
        if isinstance(key, str):
            key = SecretStr(key)
            object.__setattr__(self, "api_key", key)
        if key is not None and not key.get_secret_value().strip():
            raise ConfigurationError(
                "The API key is empty.", fix="Pass a non-empty --api-key, or none on 127.0.0.1."
            )
        if key is None and not _is_loopback(self.host):
            raise ConfigurationError(
                f"Serving on {self.host!r} would answer other machines without an API key.",
                fix="Pass --api-key (or set UNITUNE_SERVE_API_KEY), or serve on 127.0.0.1.",
            )
        check_backend(self.backend)
        for name in ("max_tokens", "default_max_tokens", "max_request_bytes", "max_batch_size", "max_queue"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ConfigurationError(
                    f"{name} must be a whole number of at least 1, not {getattr(self, name)!r}."
                )
        if not 0 <= self.port <= 65535:
            raise ConfigurationError(f"port must be 0 to 65535, not {self.port!r}.")

    @property
    def served_models(self) -> list[str]:
        """`models` and then any A/B arm not among them."""
        arms = self.ab.models if self.ab is not None else []
        return list(dict.fromkeys([*self.models, *arms]))


# -- the request body -------------------------------------------------------------------------------


class _Message(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)

    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[dict[str, Any]] | None = None


class _StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)

    include_usage: bool | None = None


class _ChatIn(BaseModel):
    """The fields of OpenAI's chat completion request this server reads.

    The fields of OpenAI's CreateChatCompletionRequest this server reads (others are ignored,
    except those it refuses by name: `_UNSUPPORTED`).
    """

    model_config = ConfigDict(extra="allow", strict=True)

    model: str = Field(min_length=1)
    messages: list[_Message] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    n: int | None = Field(default=None, ge=1)
    stop: str | list[str] | None = None
    stream: bool | None = None
    stream_options: _StreamOptions | None = None
    user: str | None = None


#: Request fields that would change the answer's shape in ways this server does not implement:
#: refused by name rather than silently ignored.
_UNSUPPORTED = {
    "tools": "Tool calling",
    "functions": "Function calling",
    "logprobs": "Log probabilities",
    "top_logprobs": "Log probabilities",
    "audio": "Audio output",
    "prediction": "Predicted outputs",
}


def _param(loc: tuple[int | str, ...]) -> str:
    """A pydantic location as OpenAI writes a parameter: messages.[0].content."""
    return ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in loc)


def _parse(raw: bytes) -> _ChatIn:
    try:
        data = json.loads(raw)
    except ValueError:
        raise ServeError(
            400,
            "We could not parse the JSON body of your request. Send a JSON object (Content-Type: "
            "application/json).",
            code="invalid_json",
        ) from None
    if not isinstance(data, dict):
        raise ServeError(400, "The request body must be a JSON object.", code="invalid_json")
    try:
        body = _ChatIn.model_validate(data)
    except ValidationError as e:
        first = e.errors(include_url=False)[0]
        param = _param(tuple(first["loc"]))
        if first["type"] == "missing":
            raise ServeError(
                400, f"Missing required parameter: '{param}'.", param=param, code="missing_required_parameter"
            ) from None
        raise ServeError(
            400, f"Invalid value for '{param}': {first['msg']}.", param=param, code="invalid_value"
        ) from None
    _refuse_unsupported(body)
    return body


def _refuse_unsupported(body: _ChatIn) -> None:
    extra = body.model_extra or {}
    for name, what in _UNSUPPORTED.items():
        if extra.get(name):
            raise ServeError(
                400,
                f"{what} ('{name}') is not supported by this server.",
                param=name,
                code="unsupported_parameter",
            )
    response_format = extra.get("response_format")
    if isinstance(response_format, dict) and response_format.get("type") not in (None, "text"):
        raise ServeError(
            400,
            "Only response_format {'type': 'text'} is supported by this server.",
            param="response_format",
            code="unsupported_parameter",
        )
    if body.n is not None and body.n > 1:
        raise ServeError(
            400,
            "Only one choice per request (n=1) is supported by this server.",
            param="n",
            code="unsupported_parameter",
        )


def _text_messages(body: _ChatIn) -> list[dict[str, str]]:
    """The messages as plain text (text parts joined); `developer` is sent as `system`."""
    out: list[dict[str, str]] = []
    for i, m in enumerate(body.messages):
        if isinstance(m.content, list):
            texts = []
            for part in m.content:
                if part.get("type") != "text" or not isinstance(part.get("text"), str):
                    raise ServeError(
                        400,
                        "Only text content parts are supported by this server.",
                        param=f"messages.[{i}].content",
                        code="unsupported_parameter",
                    )
                texts.append(part["text"])
            text = "\n".join(texts)
        else:
            text = m.content or ""
        out.append({"role": "system" if m.role == "developer" else m.role, "content": text})
    return out


def _stops(stop: str | list[str] | None) -> tuple[str, ...]:
    stops = [stop] if isinstance(stop, str) else list(stop or [])
    if len(stops) > 4 or any(not s for s in stops):
        raise ServeError(400, "'stop' takes up to 4 non-empty strings.", param="stop", code="invalid_value")
    return tuple(stops)


# -- one request, as traced for the log ----------------------------------------------------------------


@dataclass
class _Trace:
    """What the log needs to know of one chat request, filled in as it goes."""

    id: str
    ts: dt.datetime
    started: float
    requested: str = ""
    model: str = ""
    arm: str | None = None
    user: str | None = None
    stream: bool = False
    messages: list[dict[str, str]] = field(default_factory=list)
    prompt_tokens: int = 0
    first_token: float | None = None

    def elapsed_ms(self, since: float | None = None) -> float:
        return ((since if since is not None else time.perf_counter()) - self.started) * 1000


class _LogWriter:
    """Writes the request log's rows from one background thread.

    Builds and writes the log's rows in one background thread: sketching, redaction and
    SQLite stay off the request's path, and the rows keep the requests' order.
    """

    def __init__(self, log: RequestLog, *, log_text: bool, redact_pii: bool) -> None:
        self.log = log
        self._log_text = log_text
        self._redact_pii = redact_pii
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="unitune-serve-log")
        self._warned = False

    def write(
        self, trace: _Trace, status: int, error_type: str | None, completion: Completion | None, end: float
    ) -> None:
        self._pool.submit(self._write, trace, status, error_type, completion, end)

    def _write(
        self, trace: _Trace, status: int, error_type: str | None, completion: Completion | None, end: float
    ) -> None:
        try:
            self.log.record(self._record(trace, status, error_type, completion, end))
        except Exception as e:  # a full disk must not fail requests: say so once, keep serving
            if not self._warned:
                self._warned = True
                logger.warning("The request log %s cannot be written: %s", self.log.path, e)

    def _record(
        self, trace: _Trace, status: int, error_type: str | None, completion: Completion | None, end: float
    ) -> RequestRecord:
        messages = trace.messages
        answer = completion.text if completion is not None else ""
        if self._redact_pii:
            from unitune.data._pii import redact

            messages = [{**m, "content": redact(m["content"])} for m in messages]
            answer = redact(answer)
        words, buckets = sketch("\n".join(m["content"] for m in messages))
        valid, fields = output_fields(answer) if completion is not None else (None, None)
        keep = self._log_text
        return RequestRecord(
            id=trace.id,
            ts=trace.ts,
            model=trace.model or trace.requested,
            requested_model=trace.requested,
            status=status,
            stream=trace.stream,
            prompt_tokens=completion.prompt_tokens if completion else trace.prompt_tokens,
            completion_tokens=completion.completion_tokens if completion else 0,
            latency_ms=trace.elapsed_ms(end),
            ttft_ms=trace.elapsed_ms(trace.first_token) if trace.first_token is not None else None,
            finish_reason=completion.finish_reason if completion else None,
            error_type=error_type,
            arm=trace.arm,
            user_hash=hash_value(trace.user) if trace.user else None,
            input_words=words,
            input_sketch=buckets,
            output_json_valid=valid,
            output_fields=fields,
            prompt_text=json.dumps(messages, ensure_ascii=False) if keep and messages else None,
            completion_text=answer if keep and completion is not None else None,
        )

    def flush(self) -> None:
        """Wait until every row submitted so far is written."""
        self._pool.submit(lambda: None).result()

    def close(self) -> None:
        """Write what is queued, then stop."""
        self._pool.shutdown(wait=True)


# -- the app -------------------------------------------------------------------------------------------


def _chunk(trace: _Trace, created: int, choices: list[dict[str, Any]], **extra: Any) -> bytes:
    body = {
        "id": trace.id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": trace.model,
        "choices": choices,
        **extra,
    }
    return b"data: " + json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode() + b"\n\n"


def _usage(completion: Completion, prompt_tokens: int) -> dict[str, int]:
    prompt = completion.prompt_tokens or prompt_tokens
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion.completion_tokens,
        "total_tokens": prompt + completion.completion_tokens,
    }


class ServeState:
    """The app's state (`app.state.unitune`): the config, the served models and the log writer."""

    def __init__(self, config: ServeConfig, models: ServedModels, *, owns_models: bool) -> None:
        self.config = config
        self.models = models
        self.owns_models = owns_models
        self.log: _LogWriter | None = None
        if config.log_path is not None:
            self.log = _LogWriter(
                RequestLog(config.log_path), log_text=config.log_text, redact_pii=config.redact_pii
            )
        key = config.api_key
        self._key = key.get_secret_value().encode("utf-8") if key is not None else None

    def flush_log(self) -> None:
        """Wait until the log holds every request answered so far."""
        if self.log is not None:
            self.log.flush()

    def close(self) -> None:
        """Flush the log; close the models if this app loaded them."""
        if self.log is not None:
            self.log.close()
        if self.owns_models:
            self.models.close()

    # -- checks ----------------------------------------------------------------------------------

    def authorize(self, request: Request) -> None:
        """Check the request's bearer token (or, without a key, its Host).

        401 unless the bearer token is the key (when there is one); without a key, only a
        loopback Host is answered (see the module docstring).
        """
        if self._key is None:
            from unitune.evaluate._review import _host_name

            if not _is_loopback(_host_name(request.headers.get("host", ""))):
                raise ServeError(
                    403, "This server answers on its loopback address only.", code="forbidden_host"
                )
            return
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise ServeError(
                401,
                "You didn't provide an API key. Send it as 'Authorization: Bearer KEY'.",
                code="missing_api_key",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if not hmac.compare_digest(token.strip().encode("utf-8"), self._key):
            raise ServeError(
                401,
                "Incorrect API key provided.",
                code="invalid_api_key",
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )

    async def read_body(self, request: Request) -> bytes:
        """The body, refused with 413 as soon as it is known to be over the limit."""
        limit = self.config.max_request_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise ServeError(
                413,
                f"The request body is {int(declared)} bytes; this server accepts at most {limit}.",
                code="request_too_large",
            )
        size, chunks = 0, []
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise ServeError(
                    413,
                    f"The request body is over {limit} bytes, the most this server accepts.",
                    code="request_too_large",
                )
            chunks.append(chunk)
        return b"".join(chunks)

    def chat_request(self, body: _ChatIn, messages: list[dict[str, str]]) -> ChatRequest:
        limit = self.config.max_tokens
        given = body.max_completion_tokens or body.max_tokens
        if given is not None and given > limit:
            name = "max_completion_tokens" if body.max_completion_tokens else "max_tokens"
            raise ServeError(
                400,
                f"{name} is too large: {given}. This server allows at most {limit}.",
                param=name,
                code="invalid_value",
            )
        return ChatRequest(
            messages=messages,
            max_tokens=given or min(self.config.default_max_tokens, limit),
            temperature=body.temperature,
            top_p=body.top_p,
            stop=_stops(body.stop),
            max_tokens_given=given is not None,
        )

    def route(self, trace: _Trace) -> str:
        """The model that answers: the requested one, or its A/B arm for this user."""
        ab = self.config.ab
        if ab is None or trace.requested not in ab.models:
            return trace.requested
        trace.arm = ab.choose(trace.user or trace.id)
        return trace.arm

    # -- answers ---------------------------------------------------------------------------------

    def record(
        self,
        trace: _Trace,
        status: int,
        *,
        error_type: str | None = None,
        completion: Completion | None = None,
    ) -> None:
        if self.log is not None:
            self.log.write(trace, status, error_type, completion, time.perf_counter())

    def error(self, trace: _Trace | None, e: ServeError) -> Response:
        from fastapi.responses import JSONResponse

        if trace is not None:
            self.record(trace, e.status, error_type=e.code or e.type)
        headers = dict(e.headers)
        if trace is not None:
            headers["x-request-id"] = trace.id
        return JSONResponse(e.body(), status_code=e.status, headers=headers)

    @staticmethod
    def internal(trace: _Trace | None) -> ServeError:
        where = f" (request id {trace.id})" if trace is not None else ""
        return ServeError(
            500,
            f"The server had an error while processing your request{where}. It goes on "
            "serving; its log says more.",
            type="server_error",
        )

    async def chat(self, request: Request) -> Response:
        """POST /v1/chat/completions."""
        import datetime as dt

        trace = _Trace(
            id=f"chatcmpl-{secrets.token_hex(12)}",
            ts=dt.datetime.now(dt.timezone.utc),
            started=time.perf_counter(),
        )
        try:
            self.authorize(request)
            body = _parse(await self.read_body(request))
            trace.requested, trace.stream = body.model, bool(body.stream)
            trace.user = request.headers.get(USER_HEADER) or body.user
            trace.messages = _text_messages(body)
            trace.model = self.route(trace)
            backend = self.models.get(trace.model)
            wanted = self.chat_request(body, trace.messages)
            from starlette.concurrency import run_in_threadpool

            wanted, prompt_tokens = await run_in_threadpool(backend.prepare, trace.model, wanted)
            trace.prompt_tokens = prompt_tokens or 0
            if trace.stream:
                include_usage = bool(body.stream_options and body.stream_options.include_usage)
                return self.streaming(trace, backend, wanted, include_usage)  # 503 if full, before any byte
            completion = await asyncio.wrap_future(backend.complete(trace.model, wanted))
        except ServeError as e:
            return self.error(trace, e)
        except Exception:
            logger.exception("chat completion %s failed", trace.id)
            return self.error(trace, self.internal(trace))
        self.record(trace, 200, completion=completion)
        from fastapi.responses import JSONResponse

        answer = {
            "id": trace.id,
            "object": "chat.completion",
            "created": int(trace.ts.timestamp()),
            "model": trace.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": completion.text, "refusal": None},
                    "logprobs": None,
                    "finish_reason": completion.finish_reason,
                }
            ],
            "usage": _usage(completion, trace.prompt_tokens),
        }
        return JSONResponse(answer, headers={"x-request-id": trace.id})

    def streaming(
        self, trace: _Trace, backend: Backend, wanted: ChatRequest, include_usage: bool
    ) -> Response:
        """Start the stream (so a full queue is still a 503), then answer with its events."""
        from fastapi.responses import StreamingResponse

        loop = asyncio.get_running_loop()
        wake = asyncio.Event()

        def notify() -> None:
            loop.call_soon_threadsafe(wake.set)

        handle = backend.stream(trace.model, wanted, notify)
        headers = {"x-request-id": trace.id, "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        return StreamingResponse(
            self._events(trace, handle, wake, include_usage), media_type="text/event-stream", headers=headers
        )

    async def _events(
        self, trace: _Trace, handle: StreamHandle, wake: asyncio.Event, include_usage: bool
    ) -> AsyncIterator[bytes]:
        """The SSE body.

        A client that goes away cancels this generator at its `await`: `finally` then stops the
        generation, and the request is logged with status 499.
        """
        created = int(trace.ts.timestamp())
        usage_null: dict[str, Any] = {"usage": None} if include_usage else {}
        # What is logged unless the stream gets further: the client went away (nginx's 499).
        status, error_type = 499, "client_disconnected"
        completion: Completion | None = None
        try:
            delta = {"role": "assistant", "content": ""}
            yield _chunk(trace, created, [{"index": 0, "delta": delta, "finish_reason": None}], **usage_null)
            while True:
                pieces, done = handle.take()
                for piece in pieces:
                    if trace.first_token is None:
                        trace.first_token = time.perf_counter()
                    yield _chunk(
                        trace,
                        created,
                        [{"index": 0, "delta": {"content": piece}, "finish_reason": None}],
                        **usage_null,
                    )
                if done:
                    break
                await wake.wait()
                wake.clear()
            try:
                completion = handle.result()
            except ServeError as e:
                status, error_type = e.status, e.code or e.type
                yield b"data: " + json.dumps(e.body()).encode() + b"\n\n"
                return
            except Exception:
                logger.exception("streamed chat completion %s failed", trace.id)
                failure = self.internal(trace)
                status, error_type = failure.status, failure.type
                yield b"data: " + json.dumps(failure.body()).encode() + b"\n\n"
                return
            yield _chunk(
                trace,
                created,
                [{"index": 0, "delta": {}, "finish_reason": completion.finish_reason}],
                **usage_null,
            )
            if include_usage:
                yield _chunk(trace, created, [], usage=_usage(completion, trace.prompt_tokens))
            yield b"data: [DONE]\n\n"
            status = 200
        finally:
            handle.cancel()
            self.record(
                trace, status, error_type=None if status == 200 else error_type, completion=completion
            )

    def model_card(self, model: str) -> dict[str, Any]:
        return {
            "id": model,
            "object": "model",
            "created": self.models.created,
            "owned_by": self.models.owners.get(model, "unitune"),
        }


def create_app(config: ServeConfig, *, models: ServedModels | None = None) -> FastAPI:
    """The OpenAI-compatible app for `config` (see the module docstring).

    `models`: already loaded models to serve (the caller closes them); by default the app loads
    `config.served_models` itself (`ServedModels.load`) and `app.state.unitune.close()` closes them.
    """
    _require("fastapi")
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException

    owns = models is None
    if models is None:
        models = ServedModels.load(
            config.served_models,
            backend=config.backend,
            max_batch_size=config.max_batch_size,
            batch_wait_ms=config.batch_wait_ms,
            max_queue=config.max_queue,
        )
    missing = [m for m in (config.ab.models if config.ab else []) if m not in models.routes]
    if missing:
        raise ConfigurationError(
            f"The A/B arm(s) {', '.join(missing)} are not served.", fix="Serve both arms."
        )
    state = ServeState(config, models, owns_models=owns)
    app = FastAPI(title="unitune serve", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.unitune = state

    async def checked(request: Request, then: Callable[[], Awaitable[Response]]) -> Response:
        try:
            state.authorize(request)
            return await then()
        except ServeError as e:
            return state.error(None, e)

    async def http_error(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        message = f"Unknown request URL: {request.method} {request.url.path}." if status == 404 else str(exc)
        return JSONResponse(ServeError(status, message).body(), status_code=status)

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "models": len(models.routes), "failed": len(models.failed)})

    async def list_models(request: Request) -> Response:
        async def answer() -> Response:
            return JSONResponse({"object": "list", "data": [state.model_card(m) for m in models.ids]})

        return await checked(request, answer)

    async def get_model(request: Request) -> Response:
        async def answer() -> Response:
            model = request.path_params["model"]
            models.get(model)
            return JSONResponse(state.model_card(model))

        return await checked(request, answer)

    # Plain Starlette routes: each endpoint reads its own request (the body's errors must be
    # OpenAI's, not FastAPI's 422), and no per-request dependency resolution is paid for.
    app.add_route("/health", health, methods=["GET"])
    app.add_route("/v1/models", list_models, methods=["GET"])
    app.add_route("/v1/models/{model:path}", get_model, methods=["GET"])
    app.add_route("/v1/chat/completions", state.chat, methods=["POST"])
    app.add_exception_handler(HTTPException, http_error)
    return app


# -- serving -------------------------------------------------------------------------------------------


class ServeServer(ThreadedServer):
    """The app served by uvicorn from a background thread; a context manager that stops it.

    `url` is the base URL for an OpenAI client (`.../v1`), `port` the port really bound (also when
    0 was asked for), `app` the FastAPI app, `state` its `ServeState`.
    """

    def __init__(self, uvicorn: Any, app: FastAPI, *, host: str, port: int) -> None:
        self.app = app
        self.state: ServeState = app.state.unitune
        super().__init__(uvicorn, app, host=host, port=port, name="unitune-serve", what="The server",
                         path="/v1", on_close=self.state.close)  # fmt: skip


def start_server(config: ServeConfig, *, models: ServedModels | None = None) -> ServeServer:
    """Serve the app from a background thread.

    Serve `create_app(config, models=models)` on `config.host:config.port` from a background
    thread, and return once it answers. Port 0 takes any free port (`.port` says which).
    """
    uvicorn = _require("uvicorn")
    app = create_app(config, models=models)
    return ServeServer(uvicorn, app, host=config.host, port=config.port)
