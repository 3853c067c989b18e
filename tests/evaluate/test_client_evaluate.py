"""`FineTuneClient.evaluate` end to end: candidates on several providers, prices from the catalog and
the break-even, the OpenAI adapter with the real `openai` SDK against a loopback server, the
arguments it refuses, and the async client.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from unitune import AsyncFineTuneClient, FineTuneClient
from unitune.errors import ConfigurationError
from unitune.evaluate import Candidate, EvaluationReport
from unitune.testing import FakeClock, FakeProvider
from unitune.types import Job, JobStatus, Message


def chat_rows(n: int, *, user: str = "question", answer: str = "answer") -> list[dict[str, Any]]:
    return [
        {
            "messages": [
                {"role": "user", "content": f"{user} {i}"},
                {"role": "assistant", "content": f"{answer} {i}"},
            ]
        }
        for i in range(n)
    ]


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def last_user(messages: list[Message]) -> str:
    return next(m.text for m in reversed(messages) if m.role == "user")


def right(model: str, messages: list[Message]) -> str:
    """'question 7' -> 'answer 7': the reference."""
    return "answer " + last_user(messages).split()[-1]


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "valid.jsonl", chat_rows(12))


@pytest.fixture
def fake() -> FakeProvider:
    provider = FakeProvider(clock=FakeClock())
    provider.set_reply(right)
    return provider


@pytest.fixture
def client(fake: FakeProvider) -> Iterator[FineTuneClient]:
    with FineTuneClient(fake, ledger=False) as c:
        yield c


# -- candidates on several providers ---------------------------------------------------------------


def test_candidates_on_two_providers_in_one_report(
    fake: FakeProvider, client: FineTuneClient, data: Path
) -> None:
    other = FakeProvider(clock=FakeClock()).as_provider("together")
    other.set_reply(lambda model, messages: "no idea")

    report = client.evaluate(
        data,
        candidates=[
            Candidate(model="base-model", name="base", role="baseline"),
            Candidate(model="meta-llama/Other-8B", provider=other, name="other", role="tuned"),
        ],
    )

    base, theirs = report.candidate("base"), report.candidate("other")
    assert (base.provider, base.model) == ("fake", "base-model")
    assert (theirs.provider, theirs.model) == ("together", "meta-llama/Other-8B")
    assert [c.args["model"] for c in fake.calls_to("chat")] == ["base-model"] * 12
    assert [c.args["model"] for c in other.calls_to("chat")] == ["meta-llama/Other-8B"] * 12
    assert base.metrics["exact_match"].mean == 1.0
    assert theirs.metrics["exact_match"].mean == 0.0
    assert report.verdict.decision == "abandon"


def test_a_candidate_on_an_unconfigured_provider_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch, client: FineTuneClient, data: Path, tmp_path: Path
) -> None:
    monkeypatch.delenv("TOGETHER_API_KEY", raising=False)

    with pytest.raises(ConfigurationError) as caught:
        client.evaluate(data, candidates=["base-model", "together:some-model"], output_dir=tmp_path / "out")

    assert "together" in str(caught.value).lower()
    assert "TOGETHER_API_KEY" in str(caught.value)
    assert not (tmp_path / "out" / "report.json").exists()


def test_an_unconfigured_provider_fails_before_any_request(
    monkeypatch: pytest.MonkeyPatch, fake: FakeProvider, client: FineTuneClient, data: Path
) -> None:
    monkeypatch.delenv("TOGETHER_API_KEY", raising=False)

    with pytest.raises(ConfigurationError, match="together") as caught:
        client.evaluate(data, candidates=["base-model", "together:some-model"])

    assert fake.calls_to("chat") == []
    assert caught.value.fix


def test_an_unknown_provider_prefix_is_part_of_the_model_id(
    fake: FakeProvider, client: FineTuneClient, data: Path
) -> None:
    report = client.evaluate(data, candidates=["nosuch:model"])

    (result,) = report.candidates
    assert (result.provider, result.model, result.name) == ("fake", "nosuch:model", "nosuch:model")
    assert {c.args["model"] for c in fake.calls_to("chat")} == {"nosuch:model"}


# -- prices and break-even ----------------------------------------------------------------------------


def test_prices_come_from_measured_tokens_and_the_catalog(tmp_path: Path) -> None:
    fake = FakeProvider(clock=FakeClock()).as_provider("openai")
    fake.set_reply(right)
    data = write_jsonl(tmp_path / "valid.jsonl", chat_rows(12))
    train = write_jsonl(tmp_path / "train.jsonl", chat_rows(6, user="train", answer="label"))
    job = Job(
        id="ftjob-abc", provider="openai", status=JobStatus.SUCCEEDED, raw_status="succeeded",
        model="gpt-4.1-mini", fine_tuned_model="tuned-4.1-mini", trained_tokens=200_000,
    )  # fmt: skip

    with FineTuneClient(fake, ledger=False) as client:
        entry = client.catalog.find("openai", "gpt-4.1-mini")
        report = client.evaluate(data, candidates=["base", "base:few-shot=3", job], train_data=train)

    assert entry is not None
    assert entry.base_inference is not None
    assert entry.tuned_inference is not None
    training = next(t for t in entry.training if t.method in ("sft", "any"))
    base_price, tuned_price = entry.base_inference, entry.tuned_inference
    # The fake counts a message as its words + 4 tokens, an answer as its words.
    zero_shot = 2 + 4  # "question i"
    few_shot = 3 * ((2 + 4) + (2 + 4)) + zero_shot  # three "train j" / "label j" turns first
    completion = 2  # "answer i"

    def per_1k(prompt: float, price: Any) -> float:
        return 1000 * (prompt * price.input_per_million + completion * price.output_per_million) / 1e6

    base, shots, tuned = report.candidate("base"), report.candidate("base+3-shot"), report.candidate("tuned")
    assert base.model == shots.model == entry.id  # the tuned model's base, resolved in the catalog
    assert (base.mean_prompt_tokens, shots.mean_prompt_tokens, tuned.mean_prompt_tokens) == (
        zero_shot,
        few_shot,
        zero_shot,
    )
    assert shots.mean_prompt_tokens > base.mean_prompt_tokens
    assert base.mean_completion_tokens == completion
    assert base.cost_per_1k_requests_usd == pytest.approx(per_1k(zero_shot, base_price), abs=1e-6)
    assert shots.cost_per_1k_requests_usd == pytest.approx(per_1k(few_shot, base_price), abs=1e-6)
    assert tuned.cost_per_1k_requests_usd == pytest.approx(per_1k(zero_shot, tuned_price), abs=1e-6)
    assert base_price.source in base.price_note
    assert tuned.training_usd == pytest.approx(200_000 * (training.per_million_tokens or 0) / 1e6)

    assert report.verdict.candidate == "tuned"
    lines = {b.baseline: b for b in report.break_even}
    assert set(lines) == {"base", "base+3-shot"}
    assert all(b.candidate == "tuned" for b in lines.values())
    assert lines["base"].prompt_tokens_saved == 0
    assert lines["base+3-shot"].prompt_tokens_saved == few_shot - zero_shot
    saving = per_1k(few_shot, base_price) - per_1k(zero_shot, tuned_price)
    assert lines["base+3-shot"].saving_per_1k_requests_usd == pytest.approx(saving, abs=2e-6)
    assert saving > 0
    assert tuned.training_usd is not None
    assert lines["base+3-shot"].requests == pytest.approx(tuned.training_usd / (saving / 1000), rel=1e-3)
    assert lines["base"].requests is None  # the zero-shot base is cheaper per request: it never pays off
    assert all(b.note for b in lines.values())


# -- the OpenAI adapter and the real SDK over loopback ---------------------------------------------------


class ChatServer:
    """POST /v1/chat/completions on 127.0.0.1, answering from `answers[model][last user message]`."""

    def __init__(self, answers: dict[str, dict[str, str]], *, delay: float = 0.01) -> None:
        self.answers = answers
        self.delay = delay
        self.seen: list[tuple[str, str, str]] = []  # path, model, prompt
        self.rate_limit_first = False
        self.active = 0
        self.peak = 0
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                prompt = [m for m in body["messages"] if m["role"] == "user"][-1]["content"]
                with server._lock:
                    server.seen.append((self.path, body["model"], prompt))
                    first = len(server.seen) == 1
                    server.active += 1
                    server.peak = max(server.peak, server.active)
                try:
                    time.sleep(server.delay)
                    if self.path != "/v1/chat/completions":
                        self._send(404, {"error": {"message": "no route", "type": "invalid_request_error"}})
                    elif first and server.rate_limit_first:
                        error = {
                            "message": "Rate limit reached",
                            "type": "requests",
                            "code": "rate_limit_exceeded",
                        }
                        self._send(429, {"error": error}, {"Retry-After": "1"})
                    else:
                        content = server.answers[body["model"]][prompt]
                        self._send(200, {
                            "id": f"chatcmpl-{len(server.seen)}", "object": "chat.completion", "created": 0,
                            "model": body["model"],
                            "choices": [{"index": 0, "finish_reason": "stop",
                                         "message": {"role": "assistant", "content": content}}],
                            "usage": {"prompt_tokens": 10 + len(body["messages"]), "completion_tokens": 2,
                                      "total_tokens": 12 + len(body["messages"])},
                        })  # fmt: skip
                finally:
                    with server._lock:
                        server.active -= 1

            def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
                raw = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(raw)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_port}/v1"


TUNED_ID = "ft:gpt-4o-mini-2024-07-18:acme::abc123"


@pytest.fixture
def server() -> Iterator[ChatServer]:
    questions = [f"question {i}" for i in range(30)]
    answers = {
        TUNED_ID: {q: "answer " + q.split()[1] for q in questions},
        # The base model gets the even ones right.
        "gpt-4o-mini-2024-07-18": {
            q: "answer " + q.split()[1] if int(q.split()[1]) % 2 == 0 else "?" for q in questions
        },
    }
    srv = ChatServer(answers)
    srv.thread.start()
    yield srv
    srv.httpd.shutdown()
    srv.httpd.server_close()


def openai_evaluate(server: ChatServer, tmp_path: Path) -> tuple[EvaluationReport, FakeClock]:
    data = write_jsonl(tmp_path / "valid.jsonl", chat_rows(30))
    clock = FakeClock()
    with FineTuneClient(
        "openai", api_key="sk-test", base_url=server.base_url, clock=clock, ledger=False
    ) as client:
        report = client.evaluate(
            data,
            candidates=[
                Candidate(model="gpt-4o-mini", name="base", role="baseline"),
                Candidate(model=TUNED_ID, name="tuned", base_model="gpt-4o-mini"),
            ],
            concurrency=8,
        )
    return report, clock


def test_openai_over_loopback_with_the_real_sdk(server: ChatServer, tmp_path: Path) -> None:
    report, _ = openai_evaluate(server, tmp_path)

    assert len(server.seen) == 60
    assert {path for path, _, _ in server.seen} == {"/v1/chat/completions"}
    assert sorted((m, p) for _, m, p in server.seen) == sorted(
        (m, f"question {i}") for m in ("gpt-4o-mini-2024-07-18", TUNED_ID) for i in range(30)
    )
    assert 1 < server.peak <= 8
    base, tuned = report.candidate("base"), report.candidate("tuned")
    assert (base.provider, base.model) == ("openai", "gpt-4o-mini-2024-07-18")
    assert tuned.metrics["exact_match"].mean == 1.0
    assert base.metrics["exact_match"].mean == 0.5
    assert (base.answered, tuned.answered, base.failed, tuned.failed) == (30, 30, 0, 0)
    assert tuned.usage.prompt_tokens == 30 * 11
    assert tuned.usage.completion_tokens == 30 * 2
    assert tuned.mean_prompt_tokens == 11
    assert base.cost_per_1k_requests_usd is not None
    assert tuned.cost_per_1k_requests_usd is not None
    difference = report.difference("exact_match")
    assert (difference.better, difference.worse) == (15, 0)
    assert report.verdict.decision == "ship"


def test_openai_429_with_retry_after_is_retried(server: ChatServer, tmp_path: Path) -> None:
    server.rate_limit_first = True

    report, clock = openai_evaluate(server, tmp_path)

    assert len(server.seen) == 61
    first = server.seen[0][1:]
    assert [s[1:] for s in server.seen].count(first) == 2  # the limited request was sent again
    assert any(s >= 1.0 for s in clock.sleeps)  # after waiting at least the Retry-After
    assert all(c.answered == 30 and c.failed == 0 for c in report.candidates)
    assert report.candidate("tuned").metrics["exact_match"].mean == 1.0


# -- refused arguments ------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["under-a-file", "is-a-file"])
def test_an_output_dir_that_cannot_be_written_is_refused_with_a_fix(
    fake: FakeProvider, client: FineTuneClient, data: Path, tmp_path: Path, where: str
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    target = blocker / "report" if where == "under-a-file" else blocker

    with pytest.raises(ConfigurationError) as caught:
        client.evaluate(data, candidates=["m"], output_dir=target)

    assert str(blocker) in str(caught.value)
    assert caught.value.fix
    assert "output_dir" in caught.value.fix
    assert fake.calls_to("chat") == []


def test_max_examples_and_metrics_limit_the_work(
    fake: FakeProvider, client: FineTuneClient, data: Path
) -> None:
    report = client.evaluate(data, candidates=["a", "b"], max_examples=5, metrics=["exact_match"])

    assert report.examples == 5
    assert report.metrics == ["exact_match"]
    assert report.primary_metric == "exact_match"
    assert all(list(c.metrics) == ["exact_match"] for c in report.candidates)
    assert len(fake.calls_to("chat")) == 10


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"metrics": ["exact_match"], "primary_metric": "chrf"}, "primary metric 'chrf'"),
        ({"max_examples": 0}, "max_examples"),
        ({"concurrency": 0}, "concurrency"),
        ({"metrics": ["no_such_metric"]}, "no_such_metric"),
    ],
)
def test_bad_settings_are_refused_before_any_request(
    fake: FakeProvider, client: FineTuneClient, data: Path, kwargs: dict[str, Any], match: str
) -> None:
    with pytest.raises(ConfigurationError, match=match):
        client.evaluate(data, candidates=["a", "b"], **kwargs)

    assert fake.calls_to("chat") == []


# -- async ------------------------------------------------------------------------------------------


def test_the_async_client_evaluates(fake: FakeProvider, data: Path, tmp_path: Path) -> None:
    async def main() -> EvaluationReport:
        async with AsyncFineTuneClient(fake, ledger=False) as client:
            return await client.evaluate(
                data,
                candidates=[Candidate(model="base-model", name="base", role="baseline"), "tuned-model"],
                output_dir=tmp_path / "out",
            )

    report = asyncio.run(main())

    assert isinstance(report, EvaluationReport)
    assert [c.name for c in report.candidates] == ["base", "tuned-model"]
    assert all(c.answered == 12 for c in report.candidates)
    assert len(fake.calls_to("chat")) == 24
    assert (tmp_path / "out" / "report.json").is_file()
