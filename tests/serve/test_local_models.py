"""`unitune serve` with real local models: the demo model and two LoRA adapters over one loaded base,
through the official `openai` SDK on 127.0.0.1, answers checked against OpenAI's OpenAPI schemas.

Answers are greedy and short (max_tokens 8 or less), so the module runs in well under a minute on
two CPU cores; the models load once (the `local` fixture)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from unitune.serve import RequestLog
from unitune.serve._app import ServeConfig, ServeServer, start_server
from unitune.serve._backends import StreamHandle

from .conftest import ALIAS, DEMO, Local

Check = Callable[[str, Any], None]
HELLO: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Say hi"}]


@contextmanager
def serving(local: Local, **settings: Any) -> Iterator[tuple[ServeServer, openai.OpenAI]]:
    with start_server(ServeConfig(port=0, **settings), models=local.served) as server:
        yield server, openai.OpenAI(base_url=server.url, api_key="unused", max_retries=0, timeout=120)


@pytest.fixture
def server(local: Local, tmp_path: Path) -> Iterator[tuple[ServeServer, openai.OpenAI]]:
    with serving(local, log_path=tmp_path / "requests.sqlite", max_tokens=64) as pair:
        yield pair


def _answer(client: openai.OpenAI, model: str, openapi: Check, max_tokens: int = 6) -> str:
    raw = client.chat.completions.with_raw_response.create(model=model, messages=HELLO, max_tokens=max_tokens)
    openapi("CreateChatCompletionResponse", raw.http_response.json())
    reply = raw.parse()
    assert reply.model == model
    assert reply.usage is not None
    assert reply.usage.prompt_tokens > 0
    assert 0 < reply.usage.completion_tokens <= max_tokens
    return reply.choices[0].message.content or ""


def test_base_and_two_adapters_over_one_base_answer_differently(
    local: Local, server: tuple[ServeServer, openai.OpenAI], openapi: Check
) -> None:
    _, client = server
    listed = client.models.list()
    assert [m.id for m in listed] == [DEMO, ALIAS, local.adapter_a, local.adapter_b]
    base = _answer(client, DEMO, openapi)
    a = _answer(client, local.adapter_a, openapi)
    b = _answer(client, local.adapter_b, openapi)
    assert len({base, a, b}) == 3, (base, a, b)
    assert _answer(client, ALIAS, openapi) == base  # the alias is the same loaded model
    assert _answer(client, DEMO, openapi) == base  # the adapters are off again for the base
    assert len(local.backend._engines) == 1  # one copy of the base weights for all four ids


def test_streaming_gives_the_same_answer_in_pieces(
    local: Local, server: tuple[ServeServer, openai.OpenAI], openapi: Check
) -> None:
    srv, client = server
    for model in (DEMO, local.adapter_b):
        whole = _answer(client, model, openapi)
        body = {"model": model, "messages": HELLO, "max_tokens": 6, "stream": True,
                "stream_options": {"include_usage": True}}  # fmt: skip
        with httpx.stream("POST", f"{srv.url}/chat/completions", json=body, timeout=120) as response:
            lines = [line for line in response.iter_lines() if line]
        assert lines[-1] == "data: [DONE]"
        chunks = [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]
        for chunk in chunks:
            openapi("CreateChatCompletionStreamResponse", chunk)
        text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
        assert text.strip() == whole
        assert len([c for c in chunks if c["choices"] and c["choices"][0]["delta"].get("content")]) > 1
        assert chunks[-1]["usage"]["completion_tokens"] == 6
    stream = client.chat.completions.create(model=DEMO, messages=HELLO, max_tokens=4, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices).strip()


def test_unknown_and_corrupt_models_are_404_and_the_server_goes_on(
    local: Local, server: tuple[ServeServer, openai.OpenAI], openapi: Check
) -> None:
    _, client = server
    assert local.corrupt in local.served.failed
    with pytest.raises(openai.NotFoundError) as unknown:
        client.chat.completions.create(model="local:ftjob-nope", messages=HELLO)
    assert unknown.value.code == "model_not_found"
    with pytest.raises(openai.NotFoundError) as corrupt:
        client.chat.completions.create(model=local.corrupt, messages=HELLO)
    assert corrupt.value.code == "model_not_loaded"
    assert "adapter_model.safetensors" in corrupt.value.message
    openapi("ErrorResponse", corrupt.value.response.json())
    assert _answer(client, local.adapter_a, openapi, max_tokens=2)


def test_prompt_over_the_context_window_and_max_tokens_over_the_limit_are_400(
    local: Local, server: tuple[ServeServer, openai.OpenAI], openapi: Check
) -> None:
    _, client = server
    window = local.backend._routes[DEMO][0].context
    assert window == 8192
    long: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hello " * (window + 10)}]
    with pytest.raises(openai.BadRequestError) as too_long:
        client.chat.completions.create(model=DEMO, messages=long, max_tokens=4)
    assert too_long.value.code == "context_length_exceeded"
    assert "maximum context length is 8192 tokens" in too_long.value.message
    openapi("ErrorResponse", too_long.value.response.json())
    with pytest.raises(openai.BadRequestError) as too_many:
        client.chat.completions.create(model=DEMO, messages=HELLO, max_tokens=65)
    assert too_many.value.param == "max_tokens"
    assert "at most 64" in too_many.value.message


def test_a_stream_the_client_closes_stops_its_generation(
    local: Local, server: tuple[ServeServer, openai.OpenAI], openapi: Check, monkeypatch: pytest.MonkeyPatch
) -> None:
    srv, client = server
    handles: list[StreamHandle] = []
    real_stream = local.backend.stream

    def spy(model: str, request: Any, notify: Any) -> StreamHandle:
        handles.append(real_stream(model, request, notify))
        return handles[-1]

    monkeypatch.setattr(local.backend, "stream", spy)
    body = {"model": DEMO, "messages": [{"role": "user", "content": "Tell me a long story."}],
            "max_tokens": 64, "stream": True}  # fmt: skip
    with httpx.stream("POST", f"{srv.url}/chat/completions", json=body, timeout=120) as response:
        seen = 0
        for line in response.iter_lines():
            if line.startswith("data: ") and '"content":"' in line and '"content":""' not in line:
                seen += 1
            if seen == 2:
                break  # leaving the block closes the connection mid-stream
    (handle,) = handles
    deadline = time.monotonic() + 60
    while not handle.take()[1] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert handle.cancelled.is_set()
    assert handle.result().completion_tokens < 64  # generation stopped early
    assert _answer(client, DEMO, openapi, max_tokens=2)  # and the next request is answered
    srv.state.flush_log()
    rows = list(RequestLog(srv.state.config.log_path or "").records())
    assert (rows[0].status, rows[0].error_type, rows[0].stream) == (499, "client_disconnected", True)


def test_concurrent_requests_are_batched(
    local: Local, server: tuple[ServeServer, openai.OpenAI], openapi: Check
) -> None:
    _, client = server
    before = len(local.backend.batch_sizes)
    prompts = [f"Name a fruit that starts with {letter}." for letter in "ABCDEF"]
    answers: dict[int, str] = {}

    def ask(i: int) -> None:
        reply = client.chat.completions.create(
            model=local.adapter_a, messages=[{"role": "user", "content": prompts[i]}], max_tokens=4
        )
        answers[i] = reply.choices[0].message.content or ""

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(prompts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert sorted(answers) == list(range(len(prompts)))
    sizes = local.backend.batch_sizes[before:]
    assert sum(sizes) == len(prompts)
    assert max(sizes) > 1, sizes


def test_the_log_has_a_row_per_request_with_tokens_and_no_text(
    local: Local, server: tuple[ServeServer, openai.OpenAI]
) -> None:
    srv, client = server
    reply = client.chat.completions.create(model=DEMO, messages=HELLO, max_tokens=3)
    list(client.chat.completions.create(model=local.adapter_b, messages=HELLO, max_tokens=3, stream=True))
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="gone", messages=HELLO)
    srv.state.flush_log()
    rows = list(RequestLog(srv.state.config.log_path or "").records())
    assert [(r.model, r.status, r.stream) for r in rows] == [
        (DEMO, 200, False), (local.adapter_b, 200, True), ("gone", 404, False),
    ]  # fmt: skip
    first, streamed, missing = rows
    assert first.id == reply.id
    assert reply.usage is not None
    assert (first.prompt_tokens, first.completion_tokens) == (reply.usage.prompt_tokens, 3)
    assert streamed.completion_tokens == 3
    assert streamed.ttft_ms is not None
    assert 0 < streamed.ttft_ms <= streamed.latency_ms
    assert missing.error_type == "model_not_found"
    assert all(r.prompt_text is None and r.completion_text is None for r in rows)


def test_stop_strings_cut_the_answer_alike_with_and_without_streaming(
    local: Local, server: tuple[ServeServer, openai.OpenAI]
) -> None:
    _, client = server
    plain = client.chat.completions.create(model=DEMO, messages=HELLO, max_tokens=8)
    text = plain.choices[0].message.content or ""
    stop = text.split()[2]  # a word in the middle of the greedy answer
    cut = client.chat.completions.create(model=DEMO, messages=HELLO, max_tokens=8, stop=[stop])
    assert cut.choices[0].finish_reason == "stop"
    assert cut.choices[0].message.content == text[: text.index(stop)].strip()
    stream = client.chat.completions.create(model=DEMO, messages=HELLO, max_tokens=8, stop=stop, stream=True)
    chunks = list(stream)
    assert (
        "".join(c.choices[0].delta.content or "" for c in chunks if c.choices).strip()
        == text[: text.index(stop)].strip()
    )
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_a_full_queue_is_503_with_retry_after(
    local: Local, server: tuple[ServeServer, openai.OpenAI], monkeypatch: pytest.MonkeyPatch, openapi: Check
) -> None:
    _, client = server
    engine = local.backend._routes[DEMO][0]
    monkeypatch.setattr(engine, "_max_queue", 0)
    for stream in (False, True):
        with pytest.raises(openai.InternalServerError) as full:
            client.chat.completions.create(model=DEMO, messages=HELLO, max_tokens=2, stream=stream)
        assert full.value.status_code == 503
        assert full.value.response.headers["retry-after"] == "1"
        openapi("ErrorResponse", full.value.response.json())
