"""Getting the answers: every candidate asked every prompt, concurrently, resumably.

Hosted providers are asked one prompt per request from a bounded pool of threads shared by every
candidate (the wall time is then about requests × latency / concurrency). Providers that generate
several sequences in one pass (the local trainer: `Provider.batches_chat`) are asked a batch at a
time from the calling thread instead, while the pool works on the others.

Each request runs inside its candidate's retry policy. A 429 with Retry-After also closes a gate
that every worker of that provider waits on, so the pool backs off together instead of spending
its retries one thread at a time.

Every answer is appended to `answers/<slug>.jsonl` as it arrives (when there is a directory), keyed
by a hash of what was sent: a rerun with the same candidates and prompts resumes from the file
and pays only for what is missing; a changed prompt or model is asked again.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec

from unitune._log import get_logger
from unitune._retry import retryable
from unitune.errors import ProviderError, RateLimitError
from unitune.types import ChatResponse, Message

if TYPE_CHECKING:
    from unitune._clock import Clock
    from unitune.providers.base import Provider

__all__ = ["Answer", "AnswerStore", "Asker", "Runner", "request_key"]

log = get_logger("unitune.evaluate")

T = TypeVar("T")
#: Runs one request under a retry policy: `run(fn)` returns what `fn()` returns.
Run = Callable[[Callable[[], Any]], Any]


class Answer(msgspec.Struct, frozen=True, omit_defaults=True):
    """One candidate's answer to one example (`content` None when the request failed)."""

    index: int
    key: str
    content: str | None = None
    error: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_ms: float = 0.0


_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(Answer).decode


def request_key(provider: str, model: str, messages: Sequence[Message], params: Mapping[str, Any]) -> str:
    """A short hash of everything that decides an answer, so a resumed run reuses only equal requests."""
    body = json.dumps(
        [
            provider,
            model,
            [[m.role, m.text] for m in messages],
            sorted((k, repr(v)) for k, v in params.items()),
        ],
        ensure_ascii=False,
    )
    return hashlib.sha256(body.encode()).hexdigest()[:20]


class AnswerStore:
    """`answers/<slug>.jsonl` under a report directory: appended, flushed per answer, read on resume.

    With no directory the store keeps nothing (an evaluation in memory).
    """

    def __init__(self, directory: Path | None, slug: str) -> None:
        self.path = directory / "answers" / f"{slug}.jsonl" if directory is not None else None
        self._lock = threading.Lock()

    def load(self, keys: Mapping[int, str]) -> dict[int, Answer]:
        """Answers already paid for whose request equals today's (`keys`: index -> request key).

        Every line is kept by (index, key), so switching a prompt back to an earlier version finds
        its answers again. A torn line (a crash mid-write) and failed requests are ignored: those
        are asked again.
        """
        found: dict[int, Answer] = {}
        if self.path is None or not self.path.is_file():
            return found
        with self.path.open("rb") as f:
            for raw in f:
                try:
                    answer = _decode(raw)
                except msgspec.DecodeError:
                    continue
                if answer.content is not None and keys.get(answer.index) == answer.key:
                    found[answer.index] = answer
        return found

    def add(self, answer: Answer) -> None:
        """Append one answer, flushed so a crash right after loses nothing."""
        if self.path is None:
            return
        line = _encode(answer) + b"\n"
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("ab+") as f:
                # After a crash mid-write the file ends in a torn line: start on a fresh one, or
                # this answer would be glued to it and lost too.
                if f.tell() > 0:
                    f.seek(-1, os.SEEK_END)
                    if f.read(1) != b"\n":
                        line = b"\n" + line
                f.write(line)


@dataclass
class Asker:
    """How to ask one candidate: its provider, model, settings and retry policy, and its prompts."""

    slug: str
    provider: Provider
    model: str
    params: dict[str, Any]
    run: Run
    prompts: dict[int, list[Message]]
    store: AnswerStore

    def key(self, index: int) -> str:
        """The request key of one example's prompt."""
        return request_key(self.provider.name, self.model, self.prompts[index], self.params)


class _Gate:
    """Closed for everyone while a provider has said "retry after N seconds"."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._until = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        while True:
            with self._lock:
                delay = self._until - self._clock.monotonic()
            if delay <= 0:
                return
            self._clock.sleep(delay)

    def hold(self, seconds: float) -> None:
        with self._lock:
            self._until = max(self._until, self._clock.monotonic() + seconds)


class Runner:
    """Asks every candidate every prompt it has no stored answer for; see the module docstring."""

    def __init__(
        self,
        askers: Sequence[Asker],
        *,
        clock: Clock,
        concurrency: int = 8,
        batch_size: int = 8,
        on_answer: Callable[[Asker, Answer], None] | None = None,
    ) -> None:
        self.askers = askers
        self.clock = clock
        self.concurrency = concurrency
        self.batch_size = batch_size
        self.on_answer = on_answer
        self._gates: dict[str, _Gate] = {}

    def _gate(self, provider: Provider) -> _Gate:
        return self._gates.setdefault(f"{provider.name}:{id(provider)}", _Gate(self.clock))

    def run(self, answers: dict[str, dict[int, Answer]]) -> None:
        """Fill `answers[slug]` (pre-filled with stored answers) for every asker and prompt.

        Raises the first error that retrying cannot fix (a wrong key, an unknown model) once the
        requests already in flight have finished and been stored; a transient error that outlasts
        the retries is recorded as a failed answer and the evaluation goes on.
        """
        pooled = [a for a in self.askers if not a.provider.batches_chat]
        batched = [a for a in self.askers if a.provider.batches_chat]
        todo = [(a, i) for a in pooled for i in a.prompts if i not in answers[a.slug]]
        with ThreadPoolExecutor(
            max_workers=max(1, self.concurrency), thread_name_prefix="unitune-eval"
        ) as pool:
            futures = [pool.submit(self._one, a, i, answers) for a, i in todo]
            try:
                for asker in batched:
                    self._batches(asker, answers)
                done, _ = wait(futures, return_when=FIRST_EXCEPTION)
                failed = next((f for f in done if not f.cancelled() and f.exception() is not None), None)
                if failed is not None:
                    _raise(failed)
            except BaseException:
                # An error or Ctrl-C: drop the queued requests; the pool's exit waits only for those
                # in flight, whose answers are stored as they arrive.
                for f in futures:
                    f.cancel()
                raise

    def _record(self, asker: Asker, answer: Answer, answers: dict[str, dict[int, Answer]]) -> None:
        asker.store.add(answer)
        if answer.content is not None:
            answers[asker.slug][answer.index] = answer
        if self.on_answer is not None:
            self.on_answer(asker, answer)

    def _one(self, asker: Asker, index: int, answers: dict[str, dict[int, Answer]]) -> None:
        gate = self._gate(asker.provider)
        messages = asker.prompts[index]

        def ask() -> tuple[ChatResponse, float]:
            gate.wait()
            started = time.perf_counter()
            try:
                response = asker.provider.chat(asker.model, list(messages), **asker.params)
            except RateLimitError as e:
                if e.retry_after:
                    gate.hold(float(e.retry_after))
                raise
            return response, (time.perf_counter() - started) * 1000

        key = asker.key(index)
        with _failure_recorded(self, asker, index, key, answers):
            response, ms = asker.run(ask)
            self._record(asker, _answer(index, key, response, ms), answers)

    def _batches(self, asker: Asker, answers: dict[str, dict[int, Answer]]) -> None:
        pending = [i for i in asker.prompts if i not in answers[asker.slug]]
        for start in range(0, len(pending), self.batch_size):
            chunk = pending[start : start + self.batch_size]
            conversations = [list(asker.prompts[i]) for i in chunk]

            def ask(conversations: list[list[Message]] = conversations) -> tuple[list[ChatResponse], float]:
                started = time.perf_counter()
                out = asker.provider.chat_batch(asker.model, conversations, **asker.params)
                return out, (time.perf_counter() - started) * 1000

            try:
                responses, ms = asker.run(ask)
            except ProviderError as e:
                if not retryable(e):
                    raise
                # Like a single request that outlasts its retries: these answers failed, the rest go on.
                log.warning("%s: a batch of %d failed after retries: %s", asker.slug, len(chunk), e)
                for index in chunk:
                    self._record(asker, Answer(index=index, key=asker.key(index), error=str(e)), answers)
                continue
            if len(responses) != len(chunk):
                # Zipping a short list would silently score answers against the wrong references.
                raise ProviderError(
                    f"chat_batch returned {len(responses)} responses for {len(chunk)} conversations",
                    provider=asker.provider.name,
                )
            for index, response in zip(chunk, responses, strict=True):
                # A batch's time is shared by its answers: latency per answer is the batch's share.
                self._record(asker, _answer(index, asker.key(index), response, ms / len(chunk)), answers)


def _answer(index: int, key: str, response: ChatResponse, ms: float) -> Answer:
    if not isinstance(response, ChatResponse):
        raise ProviderError(f"chat returned {type(response).__name__}, not a ChatResponse")
    return Answer(
        index=index, key=key, content=response.content, prompt_tokens=response.usage.prompt_tokens,
        completion_tokens=response.usage.completion_tokens, latency_ms=round(ms, 3),
    )  # fmt: skip


@contextmanager
def _failure_recorded(
    runner: Runner, asker: Asker, index: int, key: str, answers: dict[str, dict[int, Answer]]
) -> Iterator[None]:
    """A transient error that outlasted the retries becomes a failed answer; anything else propagates."""
    try:
        yield
    except ProviderError as e:
        if not retryable(e):
            raise
        log.warning("%s: example %d failed after retries: %s", asker.slug, index, e)
        runner._record(asker, Answer(index=index, key=key, error=str(e)), answers)


def _raise(future: Future[None]) -> None:
    error = future.exception()
    assert error is not None
    raise error
