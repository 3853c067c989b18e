"""How `client.evaluate` gets its answers (`unitune.evaluate._run`): a bounded pool shared by every
candidate, batches for providers that batch, one Retry-After gate per provider, failed answers for
errors that outlast the retries, and answers saved as they arrive so that a rerun resumes.

Providers here are `FakeProvider`s; where the test needs calls to overlap, `chat` is overridden,
since the fake's own `chat` holds its lock for the whole call.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from unitune import FineTuneClient
from unitune.errors import AuthenticationError, NotFoundError, ProviderUnavailableError, RateLimitError
from unitune.evaluate import Candidate, EvaluationReport
from unitune.evaluate._run import request_key
from unitune.testing import FakeClock, FakeProvider
from unitune.types import ChatResponse, Message, Usage

SYSTEM = "Answer with the code only."


def rows(n: int, *, start: int = 0) -> list[dict[str, Any]]:
    """`n` chat examples: "q<i>" is asked, "a<i>" is the reference."""
    return [
        {
            "messages": [
                {"role": "system", "content": SYSTEM},
                {"role": "user", "content": f"q{i}"},
                {"role": "assistant", "content": f"a{i}"},
            ]
        }
        for i in range(start, start + n)
    ]


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "valid.jsonl", rows(20))


def last_user(messages: list[Message]) -> str:
    return next(m.text for m in reversed(messages) if m.role == "user")


def right(model: str, messages: list[Message]) -> str:
    """The reference answer to every prompt."""
    return "a" + last_user(messages)[1:]


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


class Scripted(FakeProvider):
    """A fake whose `chat` runs outside the fake's lock, so calls overlap as they do over HTTP.

    `answer(model, messages)` gives the text (or raises); every call is recorded in `asked` with
    the thread and the clock's time when it started; `active`/`peak` count overlapping calls.
    """

    def __init__(
        self,
        answer: Callable[[str, list[Message]], str] = right,
        *,
        delay: float = 0.0,
        clock: FakeClock | None = None,
    ) -> None:
        super().__init__(clock=clock or FakeClock())
        self.answer = answer
        self.delay = delay
        self.asked: list[tuple[str, str, float, str]] = []  # model, prompt, clock time, thread
        self.returned: list[tuple[str, str]] = []  # model, prompt of each answer given
        self.active = 0
        self.peak = 0
        self._guard = threading.Lock()

    def chat(self, model: str, messages: list[Message], **params: Any) -> ChatResponse:
        prompt = last_user(messages)
        with self._guard:
            self.asked.append((model, prompt, self.clock.monotonic(), threading.current_thread().name))
            self.active += 1
            self.peak = max(self.peak, self.active)
        try:
            if self.delay:
                time.sleep(self.delay)
            text = self.answer(model, messages)
        finally:
            with self._guard:
                self.active -= 1
        with self._guard:
            self.returned.append((model, prompt))
        tokens = sum(len(m.text.split()) + 4 for m in messages)
        return ChatResponse(
            model=model, provider=self.name, content=text,
            usage=Usage(prompt_tokens=tokens, completion_tokens=len(text.split())),
        )  # fmt: skip


@pytest.fixture
def make_client() -> Iterator[Callable[..., FineTuneClient]]:
    made: list[FineTuneClient] = []

    def make(provider: FakeProvider, **kwargs: Any) -> FineTuneClient:
        client = FineTuneClient(provider, ledger=False, **kwargs)
        made.append(client)
        return client

    yield make
    for c in made:
        c.close()


# -- concurrency ------------------------------------------------------------------------------------


def test_requests_run_concurrently_and_never_above_the_limit(
    data: Path, make_client: Callable[..., FineTuneClient]
) -> None:
    delay = 0.05
    provider = Scripted(delay=delay)
    client = make_client(provider)

    started = time.perf_counter()
    report = client.evaluate(data, candidates=["m-one", "m-two"], concurrency=4)  # 2 × 20 = 40 requests
    wall = time.perf_counter() - started

    assert len(provider.asked) == 40
    assert provider.peak == 4  # the pool is shared by both candidates and bounded
    sequential = 40 * delay
    assert wall < 0.6 * sequential, f"{wall:.2f}s is not concurrent (sequential: {sequential:.2f}s)"
    assert {c.name: c.answered for c in report.candidates} == {"m-one": 20, "m-two": 20}
    assert all(c.metrics["exact_match"].mean == 1.0 for c in report.candidates)


def test_concurrency_one_asks_one_at_a_time(data: Path, make_client: Callable[..., FineTuneClient]) -> None:
    provider = Scripted(delay=0.002)

    make_client(provider).evaluate(data, candidates=["m"], concurrency=1)

    assert provider.peak == 1
    assert len(provider.asked) == 20


class Batching(FakeProvider):
    """Generates in batches, as the local trainer does: records each batch and the thread it came from."""

    batches_chat = True

    def __init__(self) -> None:
        super().__init__(clock=FakeClock())
        self.batches: list[tuple[str, int, str]] = []

    def chat_batch(self, model: str, conversations: list[list[Message]], **params: Any) -> list[ChatResponse]:
        self.batches.append((model, len(conversations), threading.current_thread().name))
        return [ChatResponse(model=model, provider=self.name, content=right(model, c)) for c in conversations]


def test_a_batching_provider_gets_batches_from_one_thread_and_no_chat_calls(
    tmp_path: Path, make_client: Callable[..., FineTuneClient]
) -> None:
    data = write_jsonl(tmp_path / "valid.jsonl", rows(10))
    batching = Batching()
    pooled = Scripted()  # a hosted candidate in the same evaluation goes through the pool meanwhile
    client = make_client(batching)

    report = client.evaluate(
        data,
        candidates=[Candidate(model="local-model", name="local"), Candidate(model="hosted", provider=pooled)],
        batch_size=4,
        concurrency=3,
    )

    assert [(m, n) for m, n, _ in batching.batches] == [
        ("local-model", 4),
        ("local-model", 4),
        ("local-model", 2),
    ]
    assert {t for _, _, t in batching.batches} == {threading.current_thread().name}  # the calling thread
    assert batching.calls_to("chat") == []
    assert len(pooled.asked) == 10
    assert all(t != threading.current_thread().name for _, _, _, t in pooled.asked)
    assert report.candidate("local").answered == 10
    assert report.candidate("local").metrics["exact_match"].mean == 1.0


# -- the Retry-After gate ------------------------------------------------------------------------------


class GateClock(FakeClock):
    """A fake clock that tells the rate-limited worker's backoff from the other workers' waits.

    The worker that got the 429 (`limited`) holds its backoff sleep until another worker has slept
    on the clock (or 5 s pass): without a shared gate the others never sleep and go on asking while
    it waits, which the test sees as requests made before the Retry-After has passed.
    """

    def __init__(self) -> None:
        super().__init__()
        self.limited: threading.Thread | None = None
        self.backing_off = threading.Event()
        self.other_slept = threading.Event()
        self.others: list[tuple[str, float]] = []

    def sleep(self, seconds: float) -> None:
        if threading.current_thread() is self.limited:
            self.backing_off.set()
            self.other_slept.wait(5)
        else:
            self.others.append((threading.current_thread().name, seconds))
            self.other_slept.set()
        super().sleep(seconds)


def test_retry_after_closes_the_gate_for_every_worker(
    data: Path, make_client: Callable[..., FineTuneClient]
) -> None:
    clock = GateClock()
    said = threading.Lock()
    first = [True]

    def answer(model: str, messages: list[Message]) -> str:
        with said:
            limited = first[0] and last_user(messages) == "q0"
            first[0] = first[0] and not limited
        if limited:
            clock.limited = threading.current_thread()
            raise RateLimitError("Rate limit reached", provider="fake", status_code=429, retry_after=2)
        clock.backing_off.wait(5)  # requests already in flight finish while the 429 is handled
        return right(model, messages)

    provider = Scripted(answer, clock=clock)
    client = make_client(provider, clock=clock)

    report = client.evaluate(data, candidates=["m"], concurrency=4)

    result = report.candidate("m")
    assert (result.answered, result.failed) == (20, 0)
    assert result.metrics["exact_match"].mean == 1.0
    assert len(provider.asked) == 21  # q0 twice
    t429 = next(t for _, p, t, _ in provider.asked if p == "q0")
    early = [p for _, p, t, _ in provider.asked if t < t429 + 2]
    # Only the 429 itself and the (at most 3) requests already in flight started before Retry-After.
    assert len(early) <= 4, early
    assert clock.others, "no other worker waited for the Retry-After"
    assert all(name != clock.limited.name for name, _ in clock.others)  # type: ignore[union-attr]
    retried = [t for _, p, t, _ in provider.asked if p == "q0"][1]
    assert retried >= t429 + 2


# -- errors ----------------------------------------------------------------------------------------


def test_a_transient_error_that_outlasts_the_retries_is_a_failed_answer(
    data: Path, tmp_path: Path, make_client: Callable[..., FineTuneClient]
) -> None:
    def answer(model: str, messages: list[Message]) -> str:
        if last_user(messages) == "q3":
            raise ProviderUnavailableError("Service unavailable", provider="fake", status_code=503)
        return right(model, messages)

    provider = Scripted(answer)
    client = make_client(provider)
    out = tmp_path / "report"

    report = client.evaluate(data, candidates=["m"], concurrency=4, output_dir=out)

    attempts = client.config.retry.max_attempts
    assert [p for _, p, _, _ in provider.asked].count("q3") == attempts  # it was retried, every try failed
    result = report.candidate("m")
    assert (result.answered, result.failed) == (19, 1)
    for name in report.metrics:
        assert result.metrics[name].count == 19  # the failed example has no score
    assert result.metrics["exact_match"].mean == 1.0  # the others are scored (not as zeros)
    assert all(s.index != 3 for s in report.samples)
    failed = [r for r in lines(out / "answers" / "m.jsonl") if r["index"] == 3]
    assert len(failed) == 1
    assert "content" not in failed[0]
    assert "unavailable" in failed[0]["error"].lower()
    # A rerun asks the failed one again, and only it.
    fixed = Scripted()
    make_client(fixed).evaluate(data, candidates=["m"], output_dir=out)
    assert [p for _, p, _, _ in fixed.asked] == ["q3"]


@pytest.mark.parametrize(
    "error",
    [
        AuthenticationError("Incorrect API key", provider="fake", status_code=401),
        NotFoundError("The model does not exist", provider="fake", status_code=404),
    ],
    ids=["auth", "not-found"],
)
def test_a_non_transient_error_propagates_after_the_requests_in_flight_are_saved(
    tmp_path: Path, make_client: Callable[..., FineTuneClient], error: Exception
) -> None:
    data = write_jsonl(tmp_path / "valid.jsonl", rows(60))
    slow_started = threading.Event()

    def answer(model: str, messages: list[Message]) -> str:
        prompt = last_user(messages)
        if prompt == "q5":
            slow_started.set()
            time.sleep(0.3)  # still in flight when q6 fails
        elif prompt == "q6":
            slow_started.wait(5)
            raise error
        else:
            time.sleep(0.02)
        return right(model, messages)

    provider = Scripted(answer)
    client = make_client(provider)
    out = tmp_path / "report"

    with pytest.raises(type(error)):
        client.evaluate(data, candidates=["m"], concurrency=4, output_dir=out)

    stored = {r["index"]: r for r in lines(out / "answers" / "m.jsonl")}
    answered = {int(p[1:]) for _, p in provider.returned}
    assert 5 in answered
    assert stored[5]["content"] == "a5"
    assert set(stored) == answered  # every answer received is on disk, nothing else
    assert len(provider.asked) < 60  # the queued requests were not sent
    assert not (out / "report.json").exists()

    # A rerun pays only for what is missing.
    again = Scripted()
    report = make_client(again).evaluate(data, candidates=["m"], concurrency=4, output_dir=out)
    assert sorted(int(p[1:]) for _, p, _, _ in again.asked) == sorted(set(range(60)) - answered)
    assert report.candidate("m").answered == 60


# -- resuming -----------------------------------------------------------------------------------------


def two_candidates(provider: FakeProvider, system_b: str | None = "Be terse.") -> list[Candidate]:
    return [
        Candidate(model="model-a", provider=provider, name="a", role="baseline"),
        Candidate(model="model-b", provider=provider, name="b", system=system_b, role="tuned"),
    ]


def half_right(model: str, messages: list[Message]) -> str:
    i = int(last_user(messages)[1:])
    return right(model, messages) if model == "model-b" or i % 2 == 0 else "wrong"


def test_a_rerun_with_everything_saved_asks_nothing_and_reports_the_same(
    data: Path, tmp_path: Path, make_client: Callable[..., FineTuneClient]
) -> None:
    out = tmp_path / "report"
    first_provider = Scripted(half_right)
    first = make_client(first_provider).evaluate(
        data, candidates=two_candidates(first_provider), output_dir=out
    )
    assert len(first_provider.asked) == 40

    counting = Scripted(half_right)
    again = make_client(counting).evaluate(data, candidates=two_candidates(counting), output_dir=out)

    assert counting.asked == []
    assert again == first
    assert EvaluationReport.model_validate_json((out / "report.json").read_text(encoding="utf-8")) == first


def test_a_rerun_asks_only_the_answers_lost_and_a_torn_last_line_is_ignored(
    data: Path, tmp_path: Path, make_client: Callable[..., FineTuneClient]
) -> None:
    out = tmp_path / "report"
    provider = Scripted(half_right)
    first = make_client(provider).evaluate(data, candidates=two_candidates(provider), output_dir=out)
    path = out / "answers" / "b.jsonl"
    text = path.read_text(encoding="utf-8").splitlines()
    kept, dropped = text[::2], text[1::2]
    lost = {json.loads(line)["index"] for line in dropped}
    # A crash mid-write leaves half of a line with no newline.
    path.write_text("\n".join(kept) + "\n" + dropped[0][: len(dropped[0]) // 2], encoding="utf-8")

    counting = Scripted(half_right)
    again = make_client(counting).evaluate(data, candidates=two_candidates(counting), output_dir=out)

    assert {m for m, _, _, _ in counting.asked} == {"model-b"}
    assert sorted(int(p[1:]) for _, p, _, _ in counting.asked) == sorted(lost)
    assert again.candidate("b").answered == 20
    assert again.candidate("b").metrics == first.candidate("b").metrics
    assert again.verdict == first.verdict


def test_after_resuming_past_a_torn_line_every_answer_is_kept(
    data: Path, tmp_path: Path, make_client: Callable[..., FineTuneClient]
) -> None:
    out = tmp_path / "report"
    provider = Scripted()
    make_client(provider).evaluate(data, candidates=["m"], output_dir=out)
    path = out / "answers" / "m.jsonl"
    text = path.read_text(encoding="utf-8").splitlines()
    path.write_text("\n".join(text[:-1]) + "\n" + text[-1][:15], encoding="utf-8")  # the last write torn
    make_client(Scripted()).evaluate(data, candidates=["m"], output_dir=out)  # asks the torn one again

    third = Scripted()
    make_client(third).evaluate(data, candidates=["m"], output_dir=out)

    assert third.asked == []


def test_a_changed_system_prompt_asks_that_candidate_again_and_only_it(
    data: Path, tmp_path: Path, make_client: Callable[..., FineTuneClient]
) -> None:
    out = tmp_path / "report"
    provider = Scripted(half_right)
    make_client(provider).evaluate(data, candidates=two_candidates(provider, "Be terse."), output_dir=out)

    counting = Scripted(half_right)
    report = make_client(counting).evaluate(
        data, candidates=two_candidates(counting, "Be very terse."), output_dir=out
    )

    assert {m for m, _, _, _ in counting.asked} == {"model-b"}
    assert len(counting.asked) == 20
    assert report.candidate("b").system == "Be very terse."
    assert report.candidate("a").answered == report.candidate("b").answered == 20


# -- what is on disk --------------------------------------------------------------------------------


def test_answer_lines_carry_the_documented_fields_and_the_request_key(
    tmp_path: Path, make_client: Callable[..., FineTuneClient]
) -> None:
    records = rows(6)
    records.insert(2, {"messages": [{"role": "user", "content": "no reference"}]})  # skipped
    records.append({"messages": [{"role": "system", "content": "s"}, {"role": "assistant", "content": "x"}]})
    data = write_jsonl(tmp_path / "valid.jsonl", records)
    out = tmp_path / "report"
    provider = Scripted()

    report = make_client(provider).evaluate(
        data, candidates=["m", Candidate(model="m", name="sys", system="Short.")], output_dir=out
    )

    assert report.examples == 6
    examples = lines(out / "examples.jsonl")
    assert len(examples) == 6  # one line per evaluated example, none for the skipped ones
    assert [e["index"] for e in examples] == list(range(6))
    assert [e["reference"] for e in examples] == [f"a{i}" for i in range(6)]
    assert all(set(e) == {"index", "line", "prompt", "reference"} for e in examples)
    assert examples[0]["prompt"] == [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "q0"}]

    assert sorted(p.name for p in (out / "answers").iterdir()) == ["m.jsonl", "sys.jsonl"]
    for slug, system in (("m", SYSTEM), ("sys", "Short.")):
        answers = lines(out / "answers" / f"{slug}.jsonl")
        assert sorted(a["index"] for a in answers) == list(range(6))
        for a in answers:
            assert set(a) == {"index", "key", "content", "prompt_tokens", "completion_tokens", "latency_ms"}
            assert a["content"] == f"a{a['index']}"
            assert a["prompt_tokens"] == len(SYSTEM.split() if slug == "m" else ["Short."]) + 4 + 1 + 4
            assert a["completion_tokens"] == 1
            assert isinstance(a["latency_ms"], float)
            assert a["latency_ms"] >= 0
            sent = [Message(role="system", content=system), Message(role="user", content=f"q{a['index']}")]
            assert a["key"] == request_key("fake", "m", sent, {})


def test_switching_a_system_prompt_back_reuses_the_first_answers(
    data: Path, tmp_path: Path, make_client: Callable[..., FineTuneClient]
) -> None:
    out = tmp_path / "report"
    for system in ("Be terse.", "Be very terse."):
        provider = Scripted(half_right)
        make_client(provider).evaluate(data, candidates=two_candidates(provider, system), output_dir=out)

    back = Scripted(half_right)
    report = make_client(back).evaluate(data, candidates=two_candidates(back, "Be terse."), output_dir=out)

    assert back.asked == []  # both versions' answers are in the file, each under its own request key
    assert report.candidate("b").answered == 20
