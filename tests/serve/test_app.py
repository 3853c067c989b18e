"""`unitune serve` without a model: the HTTP layer over a stub backend and hosted models forwarded
to the fake provider, with the official `openai` SDK as the client (and httpx where a request must
be malformed on purpose). Every answer is checked against OpenAI's OpenAPI schemas."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from pydantic import SecretStr
from typer.testing import CliRunner

from unitune.errors import ConfigurationError
from unitune.serve import ABSplit, RequestLog
from unitune.serve._app import ServeConfig, ServeServer, start_server
from unitune.serve._backends import ChatRequest, Completion, ServedModels, StreamHandle
from unitune.testing import FakeClock, FakeProvider, override_provider

Check = Callable[[str, Any], None]
KEY = "sk-serve-test-0123456789"


class Stub:
    """A backend that answers at once: "echo: <last message>", or fails when told to."""

    def __init__(self) -> None:
        self.fail_next: BaseException | None = None
        self.seen: list[ChatRequest] = []

    def prepare(self, model: str, request: ChatRequest) -> tuple[ChatRequest, int | None]:
        return request, 3

    def _answer(self, request: ChatRequest) -> Completion:
        self.seen.append(request)
        if self.fail_next is not None:
            error, self.fail_next = self.fail_next, None
            raise error
        return Completion(f"echo: {request.messages[-1]['content']}", 3, 2, "stop")

    def complete(self, model: str, request: ChatRequest) -> Future[Completion]:
        future: Future[Completion] = Future()
        try:
            future.set_result(self._answer(request))
        except Exception as e:
            future.set_exception(e)
        return future

    def stream(self, model: str, request: ChatRequest, notify: Callable[[], None]) -> StreamHandle:
        handle = StreamHandle(request.stop, notify)

        def run() -> None:
            try:
                completion = self._answer(request)
            except Exception as e:
                handle.fail(e)
                return
            for word in completion.text.split(" "):
                handle.push(word + " ")
            handle.finish(completion)

        threading.Thread(target=run).start()
        return handle

    def close(self) -> None:
        pass


@contextmanager
def serving(config: ServeConfig, served: ServedModels) -> Iterator[tuple[ServeServer, openai.OpenAI]]:
    with start_server(config, models=served) as server:
        client = openai.OpenAI(base_url=server.url, api_key=KEY, max_retries=0, timeout=30)
        yield server, client


@pytest.fixture
def stub() -> Stub:
    return Stub()


@pytest.fixture
def stub_server(stub: Stub, tmp_path: Path) -> Iterator[tuple[ServeServer, openai.OpenAI]]:
    config = ServeConfig(
        port=0, api_key=SecretStr(KEY), log_path=tmp_path / "log.sqlite", max_request_bytes=4000
    )
    with serving(config, ServedModels.of(stub, ["echo", "org/echo-2"])) as pair:
        yield pair


def _error(response: httpx.Response, openapi: Check) -> dict[str, Any]:
    body = response.json()
    openapi("ErrorResponse", body)
    error: dict[str, Any] = body["error"]
    return error


# -- configuration -----------------------------------------------------------------------------------


def test_another_host_needs_a_key_and_the_key_is_never_shown() -> None:
    with pytest.raises(ConfigurationError, match="without an API key"):
        ServeConfig(host="0.0.0.0")
    config = ServeConfig(host="0.0.0.0", api_key=KEY)  # type: ignore[arg-type]  # a str is taken as a secret
    assert isinstance(config.api_key, SecretStr)
    assert KEY not in repr(config)
    assert ServeConfig(host="::1").api_key is None  # loopback needs none
    with pytest.raises(ConfigurationError, match="empty"):
        ServeConfig(api_key=SecretStr("  "))


def test_vllm_is_refused_clearly() -> None:
    with pytest.raises(ConfigurationError, match="vLLM backend is not supported by this build"):
        ServeConfig(backend="vllm")
    with pytest.raises(ConfigurationError, match="vLLM"):
        ServedModels.load(["x"], backend="vllm")
    with pytest.raises(ConfigurationError, match="Unknown backend"):
        ServeConfig(backend="tgi")


def test_importing_unitune_serve_loads_no_server_or_ml_library() -> None:
    heavy = ["fastapi", "uvicorn", "starlette", "torch", "transformers", "peft"]
    code = (
        "import sys, json, unitune.serve, unitune.serve._app, unitune.serve._backends, unitune.cli._serve_cmds; "
        f"print(json.dumps([m for m in {heavy!r} if m in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == []


def test_a_stop_string_is_held_back_until_clear_and_ends_the_answer() -> None:
    woken: list[int] = []
    handle = StreamHandle(["END"], notify=lambda: woken.append(1))
    for piece in ["Hello E", "N", "ough; then E", "ND and more"]:
        handle.push(piece)
    handle.push("ignored")
    handle.finish(Completion("whatever", 1, 9, "length"))
    pieces, done = handle.take()
    assert "".join(pieces) == "Hello ENough; then "
    assert done
    assert handle.cancelled.is_set()  # generation is told to stop once the stop string appears
    assert handle.result().finish_reason == "stop"
    assert woken


# -- the HTTP API over a stub backend --------------------------------------------------------------


def test_models_health_and_a_chat_in_openai_shapes(
    stub_server: tuple[ServeServer, openai.OpenAI], openapi: Check
) -> None:
    server, client = stub_server
    raw = client.models.with_raw_response.list()
    openapi("ListModelsResponse", raw.http_response.json())
    assert [m.id for m in raw.parse()] == ["echo", "org/echo-2"]
    assert client.models.retrieve("org/echo-2").owned_by == "local"
    health = httpx.get(server.url.removesuffix("/v1") + "/health")  # no key needed for a probe
    assert health.json() == {"status": "ok", "models": 2, "failed": 0}
    raw_chat = client.chat.completions.with_raw_response.create(
        model="echo",
        messages=[{"role": "developer", "content": "be brief"}, {"role": "user", "content": "hi"}],
    )
    openapi("CreateChatCompletionResponse", raw_chat.http_response.json())
    reply = raw_chat.parse()
    assert reply.choices[0].message.content == "echo: hi"
    assert reply.usage is not None
    assert reply.usage.total_tokens == 5
    assert raw_chat.http_response.headers["x-request-id"] == reply.id


def test_streaming_chunks_fit_the_schema_and_end_with_usage_and_done(
    stub_server: tuple[ServeServer, openai.OpenAI], openapi: Check
) -> None:
    server, client = stub_server
    body = {"model": "echo", "messages": [{"role": "user", "content": "a b c"}], "stream": True,
            "stream_options": {"include_usage": True}}  # fmt: skip
    lines = []
    with httpx.stream("POST", f"{server.url}/chat/completions", json=body,
                      headers={"Authorization": f"Bearer {KEY}"}) as response:  # fmt: skip
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in response.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]
    for chunk in chunks:
        openapi("CreateChatCompletionStreamResponse", chunk)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == "echo: a b c "
    # The SDK reads the same stream.
    stream = client.chat.completions.create(
        model="echo", messages=[{"role": "user", "content": "x y"}], stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "echo: x y "


def test_errors_have_openai_shape_and_status(
    stub_server: tuple[ServeServer, openai.OpenAI], stub: Stub, openapi: Check
) -> None:
    server, client = stub_server
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "hi"}])
    assert missing.value.code == "model_not_found"
    openapi("ErrorResponse", missing.value.response.json())
    with pytest.raises(openai.BadRequestError) as bad_role:
        client.chat.completions.create(model="echo", messages=[{"role": "robot", "content": "hi"}])  # type: ignore[misc,list-item]
    assert bad_role.value.param == "messages.[0].role"
    with pytest.raises(openai.BadRequestError, match="Tool calling"):
        client.chat.completions.create(
            model="echo", messages=[{"role": "user", "content": "hi"}],
            tools=[{"type": "function", "function": {"name": "f"}}],
        )  # fmt: skip
    url, auth = f"{server.url}/chat/completions", {"Authorization": f"Bearer {KEY}"}
    not_json = httpx.post(url, content=b"{not json", headers={**auth, "content-type": "application/json"})
    assert not_json.status_code == 400
    assert _error(not_json, openapi)["code"] == "invalid_json"
    no_messages = httpx.post(url, json={"model": "echo"}, headers=auth)
    assert no_messages.status_code == 400
    assert _error(no_messages, openapi)["param"] == "messages"
    too_large = httpx.post(url, json={"model": "echo", "messages": [{"role": "user", "content": "x" * 5000}]},
                           headers=auth)  # fmt: skip
    assert too_large.status_code == 413
    assert _error(too_large, openapi)["code"] == "request_too_large"

    def chunked() -> Iterator[bytes]:  # no Content-Length: the limit is counted as it arrives
        yield b'{"model": "echo", "messages": [{"role": "user", "content": "'
        for _ in range(10):
            yield b"y" * 500
        yield b'"}]}'

    assert httpx.post(url, content=chunked(), headers=auth).status_code == 413
    unknown_path = httpx.get(server.url + "/nothing-here", headers=auth)
    assert unknown_path.status_code == 404
    openapi("ErrorResponse", unknown_path.json())
    stub.fail_next = RuntimeError("the GPU fell over")
    with pytest.raises(openai.InternalServerError) as crashed:
        client.chat.completions.create(model="echo", messages=[{"role": "user", "content": "hi"}])
    assert "the GPU fell over" not in str(crashed.value)  # internals stay in the server's log
    openapi("ErrorResponse", crashed.value.response.json())
    # ...and the server goes on serving.
    assert client.chat.completions.create(model="echo", messages=[{"role": "user", "content": "ok"}]).choices


def test_a_wrong_or_missing_key_is_refused(
    stub_server: tuple[ServeServer, openai.OpenAI], openapi: Check
) -> None:
    server, _ = stub_server
    wrong = openai.OpenAI(base_url=server.url, api_key="sk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as refused:
        wrong.chat.completions.create(model="echo", messages=[{"role": "user", "content": "hi"}])
    assert refused.value.response.headers["www-authenticate"].startswith("Bearer")
    assert refused.value.code == "invalid_api_key"
    with pytest.raises(openai.AuthenticationError):
        wrong.models.list()
    missing = httpx.get(f"{server.url}/models")
    assert missing.status_code == 401
    assert _error(missing, openapi)["code"] == "missing_api_key"
    server.state.flush_log()
    rows = list(RequestLog(server.state.config.log_path or "").records())
    assert [(r.status, r.error_type) for r in rows] == [(401, "invalid_api_key")]
    assert "sk-wrong" not in json.dumps([r.__dict__ for r in rows], default=str)


def test_without_a_key_only_loopback_host_names_are_answered(stub: Stub) -> None:
    with start_server(ServeConfig(port=0), models=ServedModels.of(stub, ["echo"])) as server:
        assert httpx.get(f"{server.url}/models").status_code == 200
        # A page on evil.example whose name was rebound to 127.0.0.1 sends its own Host.
        rebound = httpx.get(f"{server.url}/models", headers={"Host": "evil.example"})
        assert rebound.status_code == 403


def test_the_ab_arm_is_stable_per_user_and_logged(stub: Stub, tmp_path: Path) -> None:
    split = ABSplit.parse("echo=0.5,org/echo-2=0.5")
    config = ServeConfig(port=0, ab=split, log_path=tmp_path / "log.sqlite")
    users = [f"user-{i}" for i in range(12)]
    with serving(config, ServedModels.of(stub, ["echo", "org/echo-2"])) as (server, client):
        for user in users * 2:
            reply = client.chat.completions.create(
                model="echo",
                messages=[{"role": "user", "content": "hi"}],
                extra_headers={"X-Unitune-User": user},
            )
            assert reply.model == split.choose(user)
        by_field = client.chat.completions.create(model="org/echo-2", messages=[{"role": "user", "content": "hi"}],
                                                  user="user-3")  # fmt: skip
        assert by_field.model == split.choose("user-3")
        server.state.flush_log()
    rows = list(RequestLog(tmp_path / "log.sqlite").records())
    from unitune.serve._log import hash_value

    assert {r.arm for r in rows} == {"echo", "org/echo-2"}  # both arms served
    for row, user in zip(rows, [*users, *users, "user-3"], strict=True):
        assert row.user_hash == hash_value(user)
        assert row.arm == row.model == split.choose(user)
    assert {r.requested_model for r in rows} == {"echo", "org/echo-2"}


def test_the_log_keeps_text_only_when_asked_and_redacts_it(stub: Stub, tmp_path: Path) -> None:
    message = "Write to jane.doe@example.com about order 4411"
    rows = {}
    for name, extra in [
        ("plain", {}),
        ("text", {"log_text": True}),
        ("redacted", {"log_text": True, "redact_pii": True}),
    ]:
        config = ServeConfig(port=0, log_path=tmp_path / f"{name}.sqlite", **extra)  # type: ignore[arg-type]
        with serving(config, ServedModels.of(stub, ["echo"])) as (server, client):
            client.chat.completions.create(model="echo", messages=[{"role": "user", "content": message}])
            server.state.flush_log()
        (rows[name],) = RequestLog(tmp_path / f"{name}.sqlite").records()
    plain = rows["plain"]
    assert (plain.status, plain.prompt_tokens, plain.completion_tokens, plain.finish_reason) == (
        200,
        3,
        2,
        "stop",
    )
    assert plain.prompt_text is None
    assert plain.completion_text is None
    assert plain.input_words > 0
    assert plain.latency_ms > 0
    assert json.loads(rows["text"].prompt_text or "") == [{"role": "user", "content": message}]
    assert rows["text"].completion_text == f"echo: {message}"
    redacted = rows["redacted"]
    assert "jane.doe@example.com" not in (redacted.prompt_text or "") + (redacted.completion_text or "")
    assert "<EMAIL>" in (redacted.prompt_text or "")
    assert "<EMAIL>" in (redacted.completion_text or "")


# -- hosted models, forwarded ----------------------------------------------------------------------------


def test_hosted_models_are_forwarded_through_unitunes_client(openapi: Check, tmp_path: Path) -> None:
    fake = FakeProvider(clock=FakeClock())
    fake.set_reply(lambda model, messages: f"{model} says: {messages[-1].text}")
    with override_provider(fake):
        served = ServedModels.load(["together:acme/support-bot", "openai:ft:gpt-4o-mini:acme::abc"])
    config = ServeConfig(port=0, log_path=tmp_path / "log.sqlite")
    try:
        with serving(config, served) as (_, client):
            assert [m.owned_by for m in client.models.list()] == ["together", "openai"]
            raw = client.chat.completions.with_raw_response.create(
                model="together:acme/support-bot", messages=[{"role": "user", "content": "hi"}], max_tokens=5
            )
            openapi("CreateChatCompletionResponse", raw.http_response.json())
            assert raw.parse().choices[0].message.content == "acme/support-bot says: hi"
            chat = fake.calls_to("chat")[-1]
            assert chat.args["model"] == "acme/support-bot"
            # Streaming is emulated: the whole answer in one chunk.
            stream = client.chat.completions.create(
                model="together:acme/support-bot", messages=[{"role": "user", "content": "yo"}], stream=True
            )
            pieces = [c.choices[0].delta.content for c in stream if c.choices and c.choices[0].delta.content]
            assert pieces == ["acme/support-bot says: yo"]
            # The fake, as OpenAI, knows no such tuned model: its 404 is the client's 404.
            with pytest.raises(openai.NotFoundError):
                client.chat.completions.create(
                    model="openai:ft:gpt-4o-mini:acme::abc", messages=[{"role": "user", "content": "hi"}]
                )
            fake.rate_limit("chat", retry_after=7, times=5)
            with pytest.raises(openai.RateLimitError) as limited:
                client.chat.completions.create(model="together:acme/support-bot",
                                               messages=[{"role": "user", "content": "hi"}])  # fmt: skip
            assert limited.value.response.headers["retry-after"] == "7"
    finally:
        served.close()


# -- the command line -------------------------------------------------------------------------------------


def _cli(args: list[str]) -> Any:
    import unitune.cli._serve_cmds  # noqa: F401  (registers `serve`)
    from unitune.cli import app

    return CliRunner().invoke(app, ["serve", *args])


def test_cli_refuses_an_open_host_without_a_key_and_vllm(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("UNITUNE_SERVE_API_KEY", raising=False)
    open_host = _cli(["fake:echo", "--host", "0.0.0.0"])
    assert open_host.exit_code == 1
    assert "--api-key" in open_host.output
    vllm = _cli(["fake:echo", "--backend", "vllm"])
    assert vllm.exit_code == 1
    assert "vLLM" in vllm.output
    nothing = _cli([])
    assert nothing.exit_code == 2


def test_cli_serves_until_stopped_with_the_key_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("UNITUNE_SERVE_API_KEY", KEY)
    answers: list[str] = []

    def one_request_then_stop(self: ServeServer) -> None:
        client = openai.OpenAI(base_url=self.url, api_key=KEY, max_retries=0)
        reply = client.chat.completions.create(
            model="fake:echo", messages=[{"role": "user", "content": "ping"}]
        )
        answers.append(reply.choices[0].message.content or "")
        raise KeyboardInterrupt  # what Ctrl-C does to the waiting command

    monkeypatch.setattr(ServeServer, "wait", one_request_then_stop)
    result = _cli(["fake:echo", "--port", "0", "--host", "127.0.0.1"])
    assert result.exit_code == 0, result.output
    assert answers == ["[echo] ping"]
    assert "Serving 1 model(s) on http://127.0.0.1:" in result.output
    assert KEY not in result.output
    rows = list(RequestLog(Path(os.environ["UNITUNE_HOME"]) / "serve" / "requests.sqlite").records())
    assert [(r.model, r.status) for r in rows] == [("fake:echo", 200)]
