"""What answers a served model: local models with transformers, hosted models through unitune's client.

A served model id is one of

- `local:<job-id>`: a local fine-tuning job's LoRA adapter, over the base it was trained on;
- a directory: a PEFT adapter folder (`adapter_config.json`; its base is the one the config names)
  or an ordinary model folder (`config.json`: a merged or exported model);
- `provider:model` for a hosted provider (`together:…`, `openai:ft:…`): forwarded (`ForwardBackend`);
- anything else: a base model the local provider resolves (a Hugging Face id or a catalog alias).

`TransformersBackend` loads each distinct base folder once and every adapter over it as a named
PEFT adapter, so several tuned models share one copy of the base weights; a request is routed to
its adapter (or to the base, with the adapters disabled) by the model id. Each base has one worker
thread that owns the model: it batches concurrent non-streaming requests for the same adapter and
sampling settings into one left-padded `generate` call (up to `max_batch_size`; the batching window
stays open while requests keep arriving less than `batch_wait_ms` apart, see `_Engine._next_batch`),
and runs streaming requests one at a time.

No torch, transformers or peft is imported until a local model is loaded.

Over ~700 lines on purpose: model-id resolution, loading a base with its adapters, and the worker
that batches and streams share one lock discipline (the worker owns the model) that is easier to
keep right in one file.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from unitune.errors import (
    AuthenticationError,
    ConfigurationError,
    NotFoundError,
    PermissionDeniedError,
    ProviderError,
    RateLimitError,
    UnituneError,
    UnsupportedFeatureError,
)

__all__ = [
    "BACKENDS",
    "Backend",
    "ChatRequest",
    "Completion",
    "ForwardBackend",
    "ServeError",
    "ServedModels",
    "StreamHandle",
    "TransformersBackend",
]

#: `--backend` values. "auto" is transformers in this build: vLLM is not supported yet.
BACKENDS = ("auto", "transformers", "vllm")
LOCAL_PREFIX = "local:"
#: A batching window closes at the latest this many `batch_wait_ms` after it opened.
_WINDOW_CAP = 8


class ServeError(Exception):
    """A request the server refuses or cannot answer: an HTTP status and OpenAI's error fields."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        """OpenAI's error shape: `{"error": {"message", "type", "param", "code"}}`."""
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


@dataclass(frozen=True)
class ChatRequest:
    """One chat completion to produce: plain-text messages and the sampling settings."""

    messages: list[dict[str, str]]
    max_tokens: int
    temperature: float | None = None
    top_p: float | None = None
    stop: tuple[str, ...] = ()
    #: False when the client gave no max_tokens: a backend may then shorten it to fit the context.
    max_tokens_given: bool = True


@dataclass(frozen=True)
class Completion:
    """A finished answer."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str


class StreamHandle:
    """One streamed answer: text pieces as they are produced, then the finished `Completion`.

    The producer (a backend's worker) calls `push`, then `finish` or `fail`; every call also calls
    `notify`, which the server uses to wake its event loop (no thread sits blocked per stream).
    The consumer takes what is there with `take`, or iterates (blocking). `cancel` (the client went
    away) asks the producer to stop. Stop strings are applied here: text that might begin one is
    held back until it is clear, and once one appears, nothing after it is given out.
    """

    def __init__(self, stop: Sequence[str] = (), notify: Callable[[], None] | None = None) -> None:
        self.cancelled = threading.Event()
        self._stop = tuple(s for s in stop if s)
        self._hold = max((len(s) for s in self._stop), default=1) - 1
        self._notify = notify
        self._cond = threading.Condition()
        self._pieces: list[str] = []
        self._held = ""
        self._stopped = False
        self._done = False
        self._completion: Completion | None = None
        self._error: BaseException | None = None

    def _wake(self) -> None:
        if self._notify is not None:
            with contextlib.suppress(RuntimeError):  # the server's loop has closed: no one listens
                self._notify()

    def push(self, text: str) -> None:
        """More text of the answer."""
        with self._cond:
            if self._stopped or not text:
                return
            self._held += text
            ends = [i for s in self._stop if (i := self._held.find(s)) >= 0]
            if ends:
                out, self._held, self._stopped = self._held[: min(ends)], "", True
                self.cancelled.set()  # the answer is complete: generation need not go on
            elif len(self._held) > self._hold:
                cut = len(self._held) - self._hold
                out, self._held = self._held[:cut], self._held[cut:]
            else:
                out = ""
            if out:
                self._pieces.append(out)
            self._cond.notify_all()
        self._wake()

    def finish(self, completion: Completion) -> None:
        """The answer is complete."""
        with self._cond:
            if self._held and not self._stopped:
                self._pieces.append(self._held)
            self._held = ""
            if self._stopped:
                completion = replace(completion, finish_reason="stop")
            self._completion, self._done = completion, True
            self._cond.notify_all()
        self._wake()

    def fail(self, error: BaseException) -> None:
        """The answer cannot be completed."""
        with self._cond:
            self._error, self._done = error, True
            self._cond.notify_all()
        self._wake()

    def cancel(self) -> None:
        """Stop producing (a no-op once done)."""
        self.cancelled.set()

    def take(self) -> tuple[list[str], bool]:
        """The pieces produced since the last call, and whether the answer is complete."""
        with self._cond:
            pieces, self._pieces = self._pieces, []
            return pieces, self._done

    def result(self) -> Completion:
        """The finished answer (after `take` said done); raises what the producer failed with."""
        with self._cond:
            if self._error is not None:
                raise self._error
            if self._completion is None:
                raise RuntimeError("the stream has not finished")
            return self._completion

    def __iter__(self) -> Iterator[str]:
        """The pieces, blocking until each comes (for callers outside an event loop)."""
        while True:
            with self._cond:
                self._cond.wait_for(lambda: bool(self._pieces) or self._done)
            pieces, done = self.take()
            yield from pieces
            if done:
                return


class Backend(Protocol):
    """What the app needs of a backend; `prepare` and `stream`'s producer may block."""

    def prepare(self, model: str, request: ChatRequest) -> tuple[ChatRequest, int | None]:
        """Check `request` against `model` before anything is sent.

        Check `request` against `model` (its context window) before anything is sent: the
        request to run (max_tokens shortened to fit when the client gave none) and the prompt's
        tokens (None when unknown). Raises `ServeError`.
        """
        ...

    def complete(self, model: str, request: ChatRequest) -> Future[Completion]:
        """Start a non-streaming answer."""
        ...

    def stream(self, model: str, request: ChatRequest, notify: Callable[[], None]) -> StreamHandle:
        """Start a streaming answer."""
        ...

    def close(self) -> None:
        """Stop workers and release models."""
        ...


# -- transformers ------------------------------------------------------------------------------------


@dataclass
class _Job:
    adapter: str | None
    request: ChatRequest
    future: Future[Completion] | None = None
    handle: StreamHandle | None = None

    @property
    def key(self) -> tuple[Any, ...]:
        """Requests with equal keys can share one `generate` call."""
        r = self.request
        sampled = (r.temperature or 0.0) > 0
        return (self.adapter, r.temperature if sampled else 0.0, r.top_p if sampled else None, r.stop)

    def started(self) -> bool:
        """Claim the job for running; False if its client has gone already."""
        if self.handle is not None:
            return not self.handle.cancelled.is_set()
        assert self.future is not None
        return self.future.set_running_or_notify_cancel()


class _Engine:
    """One base model folder, the adapters loaded over it, and the worker thread that owns it."""

    def __init__(
        self, base: Path, *, device: str, max_batch: int, batch_wait_s: float, max_queue: int
    ) -> None:
        from unitune.providers.local._infer import load_tokenizer, load_unmerged

        self.base = base
        self.model: Any
        self.model, self.tokenizer = load_unmerged(base, device)
        # A second tokenizer for counting prompts from the server's threads: a fast tokenizer is
        # not safe to use from two threads while one of them changes its padding.
        self._counter: Any = load_tokenizer(base)
        self._count_lock = threading.Lock()
        self.context: int | None = getattr(self.model.config, "max_position_embeddings", None)
        self._peft = False
        self._names = itertools.count()
        self._max_batch = max_batch
        self._batch_wait = batch_wait_s
        self._max_queue = max_queue
        self._pending: deque[_Job] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self.batch_sizes: deque[int] = deque(maxlen=10_000)
        self._thread = threading.Thread(target=self._run, name=f"unitune-serve-{base.name}", daemon=True)
        self._thread.start()

    def add_adapter(self, folder: Path) -> str:
        """Load a PEFT adapter over the base; its name. Call before requests arrive."""
        from unitune.providers.local._infer import check_adapter, wrap_with_adapter

        check_adapter(folder)
        name = f"adapter{next(self._names)}"
        if not self._peft:
            self.model = wrap_with_adapter(self.model, folder, name)
            self._peft = True
            return name
        try:
            self.model.load_adapter(folder, adapter_name=name)
        except Exception:
            with contextlib.suppress(Exception):  # what was injected before the failure, if anything
                self.model.delete_adapter(name)
            raise
        return name

    def count(self, messages: list[dict[str, str]]) -> int:
        """The prompt's tokens, as generation will see them."""
        from unitune.providers.local._infer import render_prompt

        with self._count_lock:
            try:
                prompt = render_prompt(self._counter, messages)
            except Exception as e:  # jinja's TemplateError and the template's own raise_exception
                raise ServeError(
                    400, f"The messages do not fit the model's chat template: {e}", param="messages"
                ) from None
            return len(self._counter(prompt, add_special_tokens=False)["input_ids"])

    def submit(self, job: _Job) -> None:
        with self._cond:
            if self._closed:
                raise ServeError(
                    503, "The server is shutting down.", type="server_error", code="shutting_down"
                )
            if len(self._pending) >= self._max_queue:
                raise ServeError(
                    503,
                    f"The server is overloaded: {len(self._pending)} requests are waiting for this model. "
                    "Retry shortly.",
                    type="server_error",
                    code="overloaded",
                    headers={"Retry-After": "1"},
                )
            self._pending.append(job)
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            waiting = list(self._pending)
            self._pending.clear()
            self._cond.notify_all()
        for job in waiting:
            error = ServeError(503, "The server is shutting down.", type="server_error", code="shutting_down")
            if job.handle is not None:
                job.handle.fail(error)
            elif job.future is not None and job.future.set_running_or_notify_cancel():
                job.future.set_exception(error)
        self._thread.join(30)

    # -- the worker thread ----------------------------------------------------------------------

    def _next_batch(self) -> list[_Job] | None:
        """The next batch of jobs to run.

        The next streaming job alone, or the next non-streaming job with the queued jobs that can
        share its `generate` call. The window stays open while more keep coming: it closes once no
        new one has arrived for `batch_wait`, or `_WINDOW_CAP` × `batch_wait` after it opened (a
        burst of clients whose requests arrive a few ms apart still lands in one batch, while a lone
        request waits only `batch_wait`).
        """
        with self._cond:
            while not self._pending:
                if self._closed:
                    return None
                self._cond.wait()
            first = self._pending.popleft()
            if first.handle is not None:
                return [first]
            batch = [first]
            opened = time.monotonic()
            deadline = opened + self._batch_wait
            while True:
                for job in list(self._pending):
                    if len(batch) >= self._max_batch:
                        break
                    if job.handle is None and job.key == first.key:
                        self._pending.remove(job)
                        batch.append(job)
                        deadline = min(
                            time.monotonic() + self._batch_wait, opened + _WINDOW_CAP * self._batch_wait
                        )
                left = deadline - time.monotonic()
                if len(batch) >= self._max_batch or left <= 0 or self._closed:
                    return batch
                self._cond.wait(left)

    def _run(self) -> None:
        while (batch := self._next_batch()) is not None:
            live = [j for j in batch if j.started()]
            if not live:
                continue
            if live[0].handle is not None:
                self._run_stream(live[0], live[0].handle)
            else:
                self._run_batch(live)

    @contextlib.contextmanager
    def _using(self, adapter: str | None) -> Iterator[None]:
        if not self._peft:
            yield
        elif adapter is None:
            with self.model.disable_adapter():
                yield
        else:
            self.model.set_adapter(adapter)
            yield

    def _generate(self, jobs: list[_Job], **kwargs: Any) -> list[Completion]:
        from unitune.providers.local._infer import generate_batch

        first = jobs[0].request
        with self._using(jobs[0].adapter):
            gens = generate_batch(
                self.model,
                self.tokenizer,
                [j.request.messages for j in jobs],
                max_new_tokens=[j.request.max_tokens for j in jobs],
                temperature=first.temperature or 0.0,
                top_p=first.top_p,
                stop_strings=list(first.stop) or None,
                **kwargs,
            )
        self.batch_sizes.append(len(jobs))
        return [Completion(g.text, g.prompt_tokens, g.completion_tokens, g.finish_reason) for g in gens]

    def _run_batch(self, jobs: list[_Job]) -> None:
        try:
            done = self._generate(jobs)
        except Exception as e:  # the server answers 500 to these requests and goes on serving
            for job in jobs:
                assert job.future is not None
                job.future.set_exception(e)
            return
        for job, completion in zip(jobs, done, strict=True):
            assert job.future is not None
            job.future.set_result(completion)

    def _run_stream(self, job: _Job, handle: StreamHandle) -> None:
        from unitune.providers.local._infer import cancel_criteria, text_streamer

        try:
            (completion,) = self._generate(
                [job],
                streamer=text_streamer(self.tokenizer, handle.push),
                stopping_criteria=cancel_criteria(handle.cancelled),
            )
        except Exception as e:
            handle.fail(e)
        else:
            handle.finish(completion)


def _context_error(context: int, prompt: int, completion: int) -> ServeError:
    return ServeError(
        400,
        f"This model's maximum context length is {context} tokens. However, you requested "
        f"{prompt + completion} tokens ({prompt} in the messages, {completion} in the completion). "
        "Please reduce the length of the messages or completion.",
        param="messages",
        code="context_length_exceeded",
    )


class TransformersBackend:
    """Local models with transformers, on the CPU or one GPU (see the module docstring).

    `add` loads models before serving starts. Streaming requests run one at a time per base model
    (each holds the worker for its whole answer); non-streaming ones are batched.
    """

    def __init__(
        self,
        *,
        device: str = "auto",
        max_batch_size: int = 8,
        batch_wait_ms: float = 10.0,
        max_queue: int = 64,
    ) -> None:
        self.device = device
        self.max_batch_size = max_batch_size
        self.batch_wait_ms = batch_wait_ms
        self.max_queue = max_queue
        self._engines: dict[str, _Engine] = {}
        self._routes: dict[str, tuple[_Engine, str | None]] = {}

    def add(self, model: str, base: Path, adapter: Path | None = None) -> None:
        """Serve `model` as `base` (a model folder) with `adapter` (a PEFT folder) over it, if any.

        A base already loaded for another model is shared. Raises if the folders cannot be loaded.
        """
        key = str(base.resolve())
        engine = self._engines.get(key)
        if engine is None:
            engine = _Engine(
                base,
                device=self.device,
                max_batch=self.max_batch_size,
                batch_wait_s=self.batch_wait_ms / 1000,
                max_queue=self.max_queue,
            )
            self._engines[key] = engine
        name = engine.add_adapter(adapter) if adapter is not None else None
        self._routes[model] = (engine, name)

    @property
    def models(self) -> list[str]:
        """The model ids this backend answers."""
        return list(self._routes)

    @property
    def batch_sizes(self) -> list[int]:
        """The size of every `generate` call made so far (all base models), oldest first."""
        return [n for e in self._engines.values() for n in e.batch_sizes]

    def _route(self, model: str) -> tuple[_Engine, str | None]:
        try:
            return self._routes[model]
        except KeyError:
            raise ServeError(
                404, f"The model `{model}` is not loaded.", param="model", code="model_not_found"
            ) from None

    def prepare(self, model: str, request: ChatRequest) -> tuple[ChatRequest, int | None]:
        """Check `request` against `model`'s context window.

        See `Backend.prepare`: a prompt that leaves no room for the answer is refused
        (`context_length_exceeded`), as is prompt + max_tokens over the window when max_tokens was given.
        """
        engine, _ = self._route(model)
        prompt = engine.count(request.messages)
        context = engine.context
        if context is None:
            return request, prompt
        if prompt >= context or (request.max_tokens_given and prompt + request.max_tokens > context):
            raise _context_error(context, prompt, request.max_tokens)
        if prompt + request.max_tokens > context:
            request = replace(request, max_tokens=context - prompt)
        return request, prompt

    def complete(self, model: str, request: ChatRequest) -> Future[Completion]:
        """Queue a non-streaming answer (batched with others for the same adapter)."""
        engine, adapter = self._route(model)
        future: Future[Completion] = Future()
        engine.submit(_Job(adapter, request, future=future))
        return future

    def stream(self, model: str, request: ChatRequest, notify: Callable[[], None]) -> StreamHandle:
        """Queue a streaming answer; `handle.cancel()` stops its generation at the next token."""
        engine, adapter = self._route(model)
        handle = StreamHandle(request.stop, notify)
        engine.submit(_Job(adapter, request, handle=handle))
        return handle

    def close(self) -> None:
        """Stop the workers (queued requests fail with 503)."""
        for engine in self._engines.values():
            engine.close()


# -- forwarding ----------------------------------------------------------------------------------------


def _forward_error(e: UnituneError, model: str) -> ServeError:
    """A provider's error as the status a client of this server should see."""
    if isinstance(e, NotFoundError):
        return ServeError(
            404, f"The hosted model `{model}` was not found: {e}", param="model", code="model_not_found"
        )
    if isinstance(e, RateLimitError):
        wait = {"Retry-After": str(max(1, round(e.retry_after)))} if e.retry_after else {}
        return ServeError(
            429,
            f"The provider is rate limiting: {e}",
            type="rate_limit_error",
            code="rate_limit_exceeded",
            headers=wait,
        )
    if isinstance(e, (AuthenticationError, PermissionDeniedError)):
        # The server's own credentials for the provider were refused: not the client's fault.
        return ServeError(
            502,
            f"The provider refused this server's credentials: {e}",
            type="server_error",
            code="upstream_authentication",
        )
    if isinstance(e, (ConfigurationError, UnsupportedFeatureError)):
        return ServeError(400, str(e))
    if isinstance(e, ProviderError) and e.status_code is not None and 400 <= e.status_code < 500:
        return ServeError(e.status_code, str(e))
    return ServeError(502, f"The provider could not answer: {e}", type="server_error", code="upstream_error")


class ForwardBackend:
    """Hosted models, answered by unitune's client for their provider.

    Hosted models (`provider:model`), answered by unitune's client for that provider, so an
    application has one endpoint for every model it uses.

    Streaming is emulated: the provider is asked for the whole answer, which is then sent as one
    content chunk (time to first token is the whole answer's latency). Each provider's client is
    built once, when its first model is added; calls run in a thread pool of `max_workers`.
    A provider's refusal (429 with its Retry-After, 5xx) is passed on at once by default
    (`max_retries=0`): the application's own client retries as it is configured to, and a
    request does not hold a connection through this server's backoff as well.
    """

    def __init__(self, *, config: Any = None, max_workers: int = 16, max_retries: int = 0) -> None:
        self._config = config
        self._max_retries = max_retries
        self._clients: dict[str, Any] = {}
        self._routes: dict[str, tuple[str, str]] = {}
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="unitune-serve-forward")

    def add(self, model: str) -> None:
        """Serve a hosted model.

        Serve `model` ("provider:model"): builds the provider's client (its settings and key are
        checked now, so a missing key is reported at start-up).
        """
        from unitune.client import FineTuneClient

        provider, sep, name = model.partition(":")
        if not sep or not name:
            raise ConfigurationError(f"{model!r} is not PROVIDER:MODEL.", fix="Write e.g. together:my-model.")
        if provider not in self._clients:
            self._clients[provider] = FineTuneClient(
                provider, config=self._config, ledger=False, max_retries=self._max_retries
            )
        self._routes[model] = (provider, name)

    @property
    def models(self) -> list[str]:
        """The model ids this backend answers."""
        return list(self._routes)

    def prepare(self, model: str, request: ChatRequest) -> tuple[ChatRequest, int | None]:
        """Nothing to check here: the provider checks its own context window."""
        if model not in self._routes:
            raise ServeError(
                404, f"The model `{model}` is not loaded.", param="model", code="model_not_found"
            )
        return request, None

    def _call(self, model: str, request: ChatRequest) -> Completion:
        provider, name = self._routes[model]
        params: dict[str, Any] = {"max_tokens": request.max_tokens}
        if request.temperature is not None:
            params["temperature"] = request.temperature
        if request.top_p is not None:
            params["top_p"] = request.top_p
        if request.stop:
            params["stop"] = list(request.stop)
        try:
            reply = self._clients[provider].chat(name, request.messages, **params)
        except UnituneError as e:
            raise _forward_error(e, model) from None
        return Completion(
            reply.content,
            reply.usage.prompt_tokens or 0,
            reply.usage.completion_tokens or 0,
            reply.finish_reason or "stop",
        )

    def complete(self, model: str, request: ChatRequest) -> Future[Completion]:
        """Ask the provider, in the pool."""
        return self._pool.submit(self._call, model, request)

    def stream(self, model: str, request: ChatRequest, notify: Callable[[], None]) -> StreamHandle:
        """The whole answer as one piece (see the class docstring)."""
        handle = StreamHandle(request.stop, notify)

        def run() -> None:
            try:
                completion = self._call(model, request)
            except Exception as e:
                handle.fail(e)
                return
            handle.push(completion.text)
            handle.finish(completion)

        self._pool.submit(run)
        return handle

    def close(self) -> None:
        """Wait for calls in flight, then close the clients."""
        self._pool.shutdown(wait=True)
        for client in self._clients.values():
            client.close()


# -- the served models ---------------------------------------------------------------------------------


@dataclass
class ServedModels:
    """Which backend answers each served model id, and the models that failed to load, with why.

    A model that failed is not served (a request for it gets 404 with the reason) while the others
    are: one corrupt adapter folder does not take the server down.
    """

    routes: dict[str, Backend] = field(default_factory=dict)
    owners: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    created: int = field(default_factory=lambda: int(time.time()))

    @classmethod
    def load(
        cls,
        models: Sequence[str],
        *,
        backend: str = "auto",
        device: str | None = None,
        max_batch_size: int = 8,
        batch_wait_ms: float = 10.0,
        max_queue: int = 64,
        config: Any = None,
        progress: Callable[[str], None] | None = None,
    ) -> ServedModels:
        """Load every model in `models` (see the module docstring for the ids accepted).

        `backend` "auto" or "transformers" for local models ("vllm": ConfigurationError, not
        supported by this build yet). `device` defaults to `[providers.local] device`. Raises
        `ConfigurationError` only when no model at all could be loaded.
        """
        check_backend(backend)
        say = progress or (lambda _: None)
        served = cls()
        local: Any = None
        transformers: TransformersBackend | None = None
        forward: ForwardBackend | None = None
        for model in dict.fromkeys(models):
            try:
                if _is_hosted(model):
                    forward = forward or ForwardBackend(config=config)
                    forward.add(model)
                    served.routes[model], served.owners[model] = forward, model.partition(":")[0]
                    continue
                if local is None:
                    local = _local_client(config)
                base, adapter = _local_paths(local, model)
                if transformers is None:
                    transformers = TransformersBackend(
                        device=device or local.provider.settings.device,
                        max_batch_size=max_batch_size,
                        batch_wait_ms=batch_wait_ms,
                        max_queue=max_queue,
                    )
                say(f"loading {model}" + (f" (adapter over {base})" if adapter else f" ({base})"))
                transformers.add(model, base, adapter)
                served.routes[model], served.owners[model] = transformers, "local"
            except Exception as e:  # any load failure: this model is reported, the others served
                served.failed[model] = (
                    f"{type(e).__name__}: {e}" if not isinstance(e, UnituneError) else str(e)
                )
                say(f"cannot serve {model}: {served.failed[model]}")
        if not served.routes:
            served.close()
            reasons = "; ".join(f"{m}: {why}" for m, why in served.failed.items()) or "no model was given"
            raise ConfigurationError(f"No model could be loaded ({reasons}).", fix="Pass models that load.")
        return served

    @classmethod
    def of(cls, backend: Backend, models: Sequence[str], owned_by: str = "local") -> ServedModels:
        """Serve `models` with an already built backend (tests, benchmarks, embedding)."""
        return cls(routes=dict.fromkeys(models, backend), owners=dict.fromkeys(models, owned_by))

    def merge(self, other: ServedModels) -> ServedModels:
        """Both sets of models (the other's win on a clash)."""
        return ServedModels(
            {**self.routes, **other.routes},
            {**self.owners, **other.owners},
            {**self.failed, **other.failed},
            min(self.created, other.created),
        )

    @property
    def ids(self) -> list[str]:
        """The served model ids."""
        return list(self.routes)

    def get(self, model: str) -> Backend:
        """The backend for `model`; 404 (`model_not_found`, or `model_not_loaded` with why) if none."""
        backend = self.routes.get(model)
        if backend is not None:
            return backend
        if model in self.failed:
            raise ServeError(
                404,
                f"The model `{model}` could not be loaded when the server started: {self.failed[model]}",
                param="model",
                code="model_not_loaded",
            )
        raise ServeError(
            404,
            f"The model `{model}` does not exist on this server. It serves: {', '.join(self.routes)}.",
            param="model",
            code="model_not_found",
        )

    def close(self) -> None:
        """Close every backend once."""
        seen: list[Backend] = []
        for backend in self.routes.values():
            if not any(backend is b for b in seen):
                seen.append(backend)
                backend.close()


def check_backend(backend: str) -> None:
    """Refuse a backend this build cannot use."""
    if backend == "vllm":
        raise ConfigurationError(
            "The vLLM backend is not supported by this build of unitune yet.",
            fix="Use --backend transformers (or auto, which picks it).",
        )
    if backend not in BACKENDS:
        raise ConfigurationError(f"Unknown backend {backend!r}.", fix="Use --backend auto or transformers.")


def _is_hosted(model: str) -> bool:
    """`provider:model` for a provider other than local (and not a folder that happens to have a colon)."""
    from unitune.providers.registry import BUILTIN_PROVIDERS, list_providers

    provider, sep, rest = model.partition(":")
    if not sep or not rest or provider == "local" or Path(model).expanduser().is_dir():
        return False
    return provider in BUILTIN_PROVIDERS or provider in {p.name for p in list_providers()}


def _local_client(config: Any) -> Any:
    from unitune.client import FineTuneClient
    from unitune.providers.local import LocalProvider

    client = FineTuneClient("local", config=config, ledger=False)
    if not isinstance(client.provider, LocalProvider):  # a test's stand-in for every provider
        raise ConfigurationError("Local models need the local provider, not a stand-in for it.")
    return client


def _local_paths(client: Any, model: str) -> tuple[Path, Path | None]:
    """(base folder, adapter folder or None) of a local model id (see the module docstring)."""
    from unitune.providers.local._models import resolve_model_path

    folder = Path(model).expanduser()
    if folder.is_dir() and (folder / "adapter_config.json").is_file():
        try:
            named = json.loads((folder / "adapter_config.json").read_text("utf-8"))["base_model_name_or_path"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ConfigurationError(
                f"{str(folder)!r}: adapter_config.json names no base model ({e})."
            ) from None
        return resolve_model_path(client.resolve_model(str(named))), folder
    if folder.is_dir():
        return resolve_model_path(str(folder)), None
    if model.startswith(LOCAL_PREFIX):
        base, adapter = client.provider._model_paths(model)
        return Path(base), adapter
    return resolve_model_path(client.resolve_model(model)), None
