"""`unitune gateway`: the unmodified `openai` SDK, sync and async, drives OpenAI's fine-tuning API
served over the fake provider. Every answer is checked against OpenAI's OpenAPI schema for its path
(httpx where a request must be malformed on purpose)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests._openapi import Check, openai_schema_check

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
openai = pytest.importorskip("openai")
httpx = pytest.importorskip("httpx")

from pydantic import SecretStr  # noqa: E402

from unitune.config import UnituneConfig  # noqa: E402
from unitune.errors import ConfigurationError, ProviderError  # noqa: E402
from unitune.gateway import GatewayConfig, GatewayKey, GatewayServer, start_gateway  # noqa: E402
from unitune.testing import FakeClock, FakeProvider, FakeSettings, override_provider  # noqa: E402

KEY_A = "sk-gateway-tenant-a-0123456789"
KEY_B = "sk-gateway-tenant-b-9876543210"
MAPPED = "gpt-4o-mini-2024-07-18"


@pytest.fixture(scope="module")
def openapi() -> Check:
    """`openapi("FineTuningJob", body)`: raises unless `body` fits that schema of OpenAI's spec."""
    return openai_schema_check()


def _example(i: int) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": f"Question number {i}?"},
                         {"role": "assistant", "content": f"Answer number {i}."}]}  # fmt: skip


TRAIN = ("\n".join(json.dumps(_example(i)) for i in range(12)) + "\n").encode()


@pytest.fixture
def fake() -> Iterator[FakeProvider]:
    # Jobs advance with the fake clock (a step per 30 s), not per read: listing does not move them.
    # process_wide: the gateway's worker threads do not inherit the test's context.
    provider = FakeProvider(FakeSettings(advance="clock"), clock=FakeClock())
    with override_provider(provider, process_wide=True):
        assert isinstance(provider, FakeProvider)
        yield provider


def _config(home: Path, **overrides: Any) -> GatewayConfig:
    settings: dict[str, Any] = {
        "provider": "fake", "port": 0, "api_keys": (SecretStr(KEY_A), SecretStr(KEY_B)),
        "models": {MAPPED: "fake:gpt-4o-mini"}, "home": home, "unitune_config": UnituneConfig(),
    }  # fmt: skip
    settings.update(overrides)
    return GatewayConfig(**settings)


@pytest.fixture
def gateway(fake: FakeProvider, tmp_path: Path) -> Iterator[GatewayServer]:
    with start_gateway(_config(tmp_path / "home")) as server:
        yield server


def _client(server: GatewayServer, key: str = KEY_A) -> Any:
    return openai.OpenAI(base_url=server.url, api_key=key, max_retries=0, timeout=30)


def _upload(client: Any, openapi: Check, data: bytes = TRAIN, name: str = "train.jsonl") -> str:
    raw = client.files.with_raw_response.create(file=(name, data), purpose="fine-tune")
    openapi("OpenAIFile", raw.http_response.json())
    file_id: str = raw.parse().id
    return file_id


def _step(fake: FakeProvider, steps: int = 1) -> None:
    clock = fake.clock
    assert isinstance(clock, FakeClock)
    clock.advance(30.0 * steps)


def _to_end(client: Any, fake: FakeProvider, job_id: str, openapi: Check) -> Any:
    for _ in range(20):
        _step(fake)
        raw = client.fine_tuning.jobs.with_raw_response.retrieve(job_id)
        openapi("FineTuningJob", raw.http_response.json())
        job = raw.parse()
        if job.status in ("succeeded", "failed", "cancelled"):
            return job
    raise AssertionError(f"job {job_id} did not end")


# -- the lifecycle ---------------------------------------------------------------------------------


def test_the_sync_sdk_runs_the_lifecycle_in_openai_shapes(
    gateway: GatewayServer, fake: FakeProvider, openapi: Check
) -> None:
    client = _client(gateway)
    file_id = _upload(client, openapi)
    assert client.files.retrieve(file_id).bytes == len(TRAIN)
    raw = client.fine_tuning.jobs.with_raw_response.create(
        model=MAPPED, training_file=file_id, suffix="triage", seed=7, metadata={"team": "a"},
        method={"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 2}}},
    )  # fmt: skip
    openapi("FineTuningJob", raw.http_response.json())
    first = raw.parse()
    assert first.id.startswith("ftjob-")
    assert (first.model, first.status, first.seed, first.training_file) == (
        MAPPED,
        "validating_files",
        7,
        file_id,
    )
    assert first.method.supervised.hyperparameters.n_epochs == 2
    assert fake.calls_to("create_job")[0].args["model"] == "gpt-4o-mini"  # the mapping chose the model
    others = [
        client.fine_tuning.jobs.create(
            model="fake:gpt-4o-mini", training_file=file_id, metadata={"team": "b"}
        )
        for _ in range(2)
    ]
    # Pages of two, newest first, by `after`; the SDK's auto-pagination follows them.
    page = client.fine_tuning.jobs.with_raw_response.list(limit=2)
    openapi("ListPaginatedFineTuningJobsResponse", page.http_response.json())
    assert [j.id for j in page.parse().data] == [others[1].id, others[0].id]
    assert page.parse().has_more
    rest = client.fine_tuning.jobs.list(limit=2, after=others[0].id)
    assert [j.id for j in rest.data] == [first.id]
    assert not rest.has_more
    assert [j.id for j in client.fine_tuning.jobs.list(limit=2)] == [others[1].id, others[0].id, first.id]
    assert [j.id for j in client.fine_tuning.jobs.list(metadata={"team": "a"})] == [first.id]
    _step(fake, 2)
    assert client.fine_tuning.jobs.retrieve(first.id).status == "running"
    events = client.fine_tuning.jobs.with_raw_response.list_events(first.id, limit=1)
    openapi("ListFineTuningJobEventsResponse", events.http_response.json())
    newest = events.parse()
    assert newest.data[0].message == "Training started"
    assert newest.has_more
    older = client.fine_tuning.jobs.list_events(first.id, after=newest.data[-1].id)
    assert older.data[-1].message == "Validating training file"  # the oldest, last
    assert {e.id for e in older.data}.isdisjoint(e.id for e in newest.data)
    checkpoints = client.fine_tuning.jobs.checkpoints.with_raw_response.list(first.id)
    openapi("ListFineTuningJobCheckpointsResponse", checkpoints.http_response.json())
    cancelled = client.fine_tuning.jobs.with_raw_response.cancel(first.id)
    openapi("FineTuningJob", cancelled.http_response.json())
    assert _to_end(client, fake, first.id, openapi).status == "cancelled"


def test_a_job_that_succeeds_has_its_model_and_a_result_file(
    gateway: GatewayServer, fake: FakeProvider, openapi: Check
) -> None:
    client = _client(gateway)
    file_id = _upload(client, openapi)
    job = client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=file_id, validation_file=file_id)
    _step(fake, 3)
    running = {e.id for e in client.fine_tuning.jobs.list_events(job.id, limit=100).data}
    done = _to_end(client, fake, job.id, openapi)
    events = client.fine_tuning.jobs.list_events(job.id, limit=100).data
    assert running < {e.id for e in events}  # an event keeps its id as the log grows
    assert [e.type for e in events].count("metrics") == 3
    assert done.status == "succeeded"
    assert done.fine_tuned_model.startswith("ft:gpt-4o-mini:fake:")
    assert done.finished_at is not None
    assert len(done.result_files) == 1
    result = client.files.retrieve(done.result_files[0])
    assert (result.purpose, result.filename) == ("fine-tune-results", "step_metrics.csv")
    lines = client.files.content(result.id).text.splitlines()
    assert lines[0] == "step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy"
    assert lines[1].startswith("1,")
    assert len(lines) == 31
    again = client.fine_tuning.jobs.retrieve(job.id)
    assert again.result_files == done.result_files  # made once
    checkpoints = client.fine_tuning.jobs.checkpoints.list(job.id, limit=2)
    assert [c.step_number for c in checkpoints.data] == [30, 20]
    assert checkpoints.has_more
    assert checkpoints.data[0].fine_tuned_model_checkpoint == f"{done.fine_tuned_model}:ckpt-step-30"
    # The tuned model answers its owner, in OpenAI's shapes, and no other key.
    reply = client.chat.completions.with_raw_response.create(
        model=done.fine_tuned_model,
        messages=[{"role": "developer", "content": "brief"}, {"role": "user", "content": "hi"}],
    )
    openapi("CreateChatCompletionResponse", reply.http_response.json())
    assert reply.parse().choices[0].message.content == f"[{done.fine_tuned_model}] hi"
    models = client.models.with_raw_response.list()
    openapi("ListModelsResponse", models.http_response.json())
    assert [m.id for m in models.parse()] == [done.fine_tuned_model]
    assert client.models.retrieve(done.fine_tuned_model).owned_by == "org-unitune"
    other = _client(gateway, KEY_B)
    with pytest.raises(openai.NotFoundError) as caught:
        other.chat.completions.create(
            model=done.fine_tuned_model, messages=[{"role": "user", "content": "hi"}]
        )
    assert caught.value.code == "model_not_found"
    with pytest.raises(openai.NotFoundError):
        other.models.retrieve(done.fine_tuned_model)
    assert list(other.models.list()) == []
    with pytest.raises(openai.BadRequestError, match="Streaming"):
        client.chat.completions.create(
            model=done.fine_tuned_model, messages=[{"role": "user", "content": "hi"}], stream=True
        )


def test_a_dpo_job_runs_as_dpo(gateway: GatewayServer, fake: FakeProvider, openapi: Check) -> None:
    client = _client(gateway)
    pairs = [
        {"input": {"messages": [{"role": "user", "content": f"Question {i}?"}]},
         "preferred_output": [{"role": "assistant", "content": f"A clear answer {i}."}],
         "non_preferred_output": [{"role": "assistant", "content": f"A vague answer {i}."}]}
        for i in range(12)
    ]  # fmt: skip
    file_id = _upload(client, openapi, ("\n".join(json.dumps(p) for p in pairs) + "\n").encode())
    dpo = {"type": "dpo", "dpo": {"hyperparameters": {"n_epochs": 1}}}
    raw = client.fine_tuning.jobs.with_raw_response.create(model=MAPPED, training_file=file_id, method=dpo)
    openapi("FineTuningJob", raw.http_response.json())
    assert raw.parse().method.type == "dpo"
    assert fake.calls_to("create_job")
    with pytest.raises(openai.BadRequestError, match="beta"):  # the fake, like most vendors, takes no beta
        client.fine_tuning.jobs.create(
            model=MAPPED,
            training_file=file_id,
            method={"type": "dpo", "dpo": {"hyperparameters": {"beta": 0.2}}},
        )
    with pytest.raises(openai.BadRequestError, match="line 1"):  # chat examples are not preference pairs
        client.fine_tuning.jobs.create(model=MAPPED, training_file=_upload(client, openapi), method=dpo)


def test_pause_and_resume(gateway: GatewayServer, fake: FakeProvider, openapi: Check) -> None:
    client = _client(gateway)
    job = client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=_upload(client, openapi))
    with pytest.raises(openai.BadRequestError, match="only a running job"):
        client.fine_tuning.jobs.pause(job.id)
    _step(fake, 2)
    assert client.fine_tuning.jobs.pause(job.id).status == "paused"
    resumed = client.fine_tuning.jobs.with_raw_response.resume(job.id)
    openapi("FineTuningJob", resumed.http_response.json())
    assert resumed.parse().status == "running"


def test_the_async_sdk_runs_the_lifecycle(gateway: GatewayServer, fake: FakeProvider, openapi: Check) -> None:
    async def run() -> None:
        client = openai.AsyncOpenAI(base_url=gateway.url, api_key=KEY_A, max_retries=0, timeout=30)
        uploaded = await client.files.create(file=("train.jsonl", TRAIN), purpose="fine-tune")
        raw = await client.fine_tuning.jobs.with_raw_response.create(model=MAPPED, training_file=uploaded.id)
        openapi("FineTuningJob", raw.http_response.json())
        job = raw.parse()
        _step(fake)
        assert (await client.fine_tuning.jobs.retrieve(job.id)).status == "queued"
        assert [j.id async for j in client.fine_tuning.jobs.list(limit=1)] == [job.id]
        events = await client.fine_tuning.jobs.list_events(job.id)
        assert events.data[0].object == "fine_tuning.job.event"
        await client.fine_tuning.jobs.checkpoints.list(job.id)
        await client.fine_tuning.jobs.cancel(job.id)
        _step(fake)
        assert (await client.fine_tuning.jobs.retrieve(job.id)).status == "cancelled"
        listed = await client.files.list()
        assert [f.id for f in listed.data] == [uploaded.id]
        deleted = await client.files.delete(uploaded.id)
        assert deleted.deleted
        await client.close()

    asyncio.run(run())


# -- bad input ---------------------------------------------------------------------------------------


def _jobs_rows(home: Path) -> int:
    with sqlite3.connect(home / "gateway" / "state.sqlite") as conn:
        count: int = conn.execute("SELECT count(*) FROM jobs").fetchone()[0]
    return count


def test_a_refused_dataset_names_its_line_and_creates_nothing(
    gateway: GatewayServer, fake: FakeProvider, openapi: Check, tmp_path: Path
) -> None:
    client = _client(gateway)
    bad = TRAIN + json.dumps({"messages": [{"role": "user", "content": "no answer"}]}).encode() + b"\n"
    file_id = _upload(client, openapi, bad)
    with pytest.raises(openai.BadRequestError) as caught:
        client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=file_id)
    body = caught.value.response.json()
    openapi("ErrorResponse", body)
    assert "line 13" in body["error"]["message"]
    assert "missing_assistant" in body["error"]["message"]
    assert str(tmp_path) not in body["error"]["message"]  # no path of the gateway's machine
    assert (body["error"]["param"], body["error"]["code"]) == ("training_file", "invalid_training_file")
    for junk, code in [(b"not json\n", "invalid_json"), (b"\x00\xff\xfe", "invalid_utf8")]:
        with pytest.raises(openai.BadRequestError, match=f"line 1: \\[{code}\\]") as caught:
            client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=_upload(client, openapi, junk))
        assert str(tmp_path) not in caught.value.message
    assert not fake.calls_to("upload")
    assert not fake.calls_to("create_job")
    assert client.fine_tuning.jobs.list().data == []
    assert _jobs_rows(tmp_path / "home") == 0


def test_wrong_purpose_malformed_multipart_and_unknown_models_are_openai_errors(
    gateway: GatewayServer, fake: FakeProvider, openapi: Check
) -> None:
    client = _client(gateway)
    with pytest.raises(openai.BadRequestError, match="purpose must be 'fine-tune'"):
        client.files.create(file=("x.jsonl", TRAIN), purpose="batch")
    headers = {"Authorization": f"Bearer {KEY_A}"}
    for content_type, body in [
        (
            "multipart/form-data; boundary=xyz",
            b'--xyz\r\nContent-Disposition: form-data; name="file"\r\n\r\nab',
        ),
        ("application/json", b"{}"),
    ]:
        response = httpx.post(
            f"{gateway.url}/files", content=body, headers={**headers, "Content-Type": content_type}
        )
        assert response.status_code == 400
        openapi("ErrorResponse", response.json())
        assert response.json()["error"]["code"] == "invalid_multipart"
    no_file = httpx.post(f"{gateway.url}/files", data={"purpose": "fine-tune"}, files={"other": ("a", b"x")},
                         headers=headers)  # fmt: skip
    assert no_file.status_code == 400
    assert no_file.json()["error"]["param"] == "file"
    assert client.files.list().data == []  # nothing half-stored
    assert client.files.list(after="file-unknown", order="asc").data == []
    file_id = _upload(client, openapi)
    with pytest.raises(openai.BadRequestError) as caught:
        client.fine_tuning.jobs.create(model="gpt-9-unheard-of", training_file=file_id)
    assert caught.value.code == "model_not_available"
    assert MAPPED in caught.value.message
    with pytest.raises(openai.BadRequestError, match="Missing required parameter: 'training_file'"):
        client.fine_tuning.jobs.create(model=MAPPED, training_file=None)
    with pytest.raises(openai.BadRequestError, match="Unknown hyperparameter 'warmup'"):
        client.fine_tuning.jobs.create(model=MAPPED, training_file=file_id, hyperparameters={"warmup": 1})
    with pytest.raises(openai.BadRequestError, match="Reinforcement"):
        client.fine_tuning.jobs.create(model=MAPPED, training_file=file_id, method={"type": "reinforcement"})
    unknown = httpx.get(f"{gateway.url}/nothing-here", headers=headers)
    assert unknown.status_code == 404
    openapi("ErrorResponse", unknown.json())
    assert not fake.calls_to("create_job")


def test_a_provider_refusal_is_an_openai_error_and_leaves_no_job(
    gateway: GatewayServer, fake: FakeProvider, openapi: Check, tmp_path: Path
) -> None:
    client = _client(gateway)
    file_id = _upload(client, openapi)
    fake.inject_error("create_job", ProviderError("the vendor says no", provider="fake", status_code=400))
    with pytest.raises(openai.BadRequestError, match="the vendor says no"):
        client.fine_tuning.jobs.create(model=MAPPED, training_file=file_id)
    assert _jobs_rows(tmp_path / "home") == 0


def test_another_key_sees_none_of_a_tenants_objects(gateway: GatewayServer, openapi: Check) -> None:
    a, b = _client(gateway, KEY_A), _client(gateway, KEY_B)
    file_id = _upload(a, openapi)
    job = a.fine_tuning.jobs.create(model=MAPPED, training_file=file_id)
    with pytest.raises(openai.NotFoundError) as caught:
        b.files.retrieve(file_id)
    openapi("ErrorResponse", caught.value.response.json())
    attempts: tuple[Callable[[], Any], ...] = (
        lambda: b.files.content(file_id),
        lambda: b.files.delete(file_id),
        lambda: b.fine_tuning.jobs.retrieve(job.id),
        lambda: b.fine_tuning.jobs.cancel(job.id),
        lambda: b.fine_tuning.jobs.list_events(job.id),
        lambda: b.fine_tuning.jobs.checkpoints.list(job.id),
    )
    for attempt in attempts:
        with pytest.raises(openai.NotFoundError):
            attempt()
    with pytest.raises(openai.BadRequestError, match="does not exist"):
        b.fine_tuning.jobs.create(model=MAPPED, training_file=file_id)
    assert b.files.list().data == []
    assert b.fine_tuning.jobs.list().data == []
    assert a.files.content(file_id).content == TRAIN  # still there for its owner
    with pytest.raises(openai.AuthenticationError):
        _client(gateway, "sk-not-a-tenant").files.list()


def test_an_idempotency_key_returns_the_same_job(
    gateway: GatewayServer, fake: FakeProvider, openapi: Check
) -> None:
    a, b = _client(gateway, KEY_A), _client(gateway, KEY_B)
    file_a, file_b = _upload(a, openapi), _upload(b, openapi)
    once = {"Idempotency-Key": "nightly-2026-12-07"}
    first = a.fine_tuning.jobs.create(model=MAPPED, training_file=file_a, extra_headers=once)
    again = a.fine_tuning.jobs.create(model=MAPPED, training_file=file_a, extra_headers=once)
    assert again.id == first.id
    assert len(fake.calls_to("create_job")) == 1
    with pytest.raises(openai.ConflictError, match="different job"):
        a.fine_tuning.jobs.create(model=MAPPED, training_file=file_a, suffix="other", extra_headers=once)
    theirs = b.fine_tuning.jobs.create(model=MAPPED, training_file=file_b, extra_headers=once)
    assert theirs.id != first.id  # keys are per tenant
    assert len(a.fine_tuning.jobs.list().data) == 1


def test_a_restarted_gateway_lists_the_same_jobs(fake: FakeProvider, tmp_path: Path, openapi: Check) -> None:
    home = tmp_path / "home"
    with start_gateway(_config(home)) as first:
        client = _client(first)
        job = client.fine_tuning.jobs.create(model=MAPPED, training_file=_upload(client, openapi))
    with start_gateway(_config(home)) as second:
        client = _client(second)
        assert [j.id for j in client.fine_tuning.jobs.list()] == [job.id]
        assert _to_end(client, fake, job.id, openapi).status == "succeeded"  # still advancing


def test_the_uploads_api_assembles_a_file(gateway: GatewayServer, openapi: Check) -> None:
    client = _client(gateway)
    half = len(TRAIN) // 2
    created = client.uploads.with_raw_response.create(
        filename="big.jsonl", purpose="fine-tune", bytes=len(TRAIN), mime_type="application/jsonl"
    )
    openapi("Upload", created.http_response.json())
    upload = created.parse()
    parts = [client.uploads.parts.create(upload.id, data=chunk) for chunk in (TRAIN[:half], TRAIN[half:])]
    with pytest.raises(openai.BadRequestError, match="it was created for"):
        client.uploads.parts.create(upload.id, data=b"one byte too many")
    assert parts[0].object == "upload.part"
    with pytest.raises(openai.BadRequestError, match="bytes"):
        client.uploads.complete(upload.id, part_ids=[parts[0].id])
    done = client.uploads.with_raw_response.complete(upload.id, part_ids=[p.id for p in parts])
    openapi("Upload", done.http_response.json())
    assert done.parse().status == "completed"
    assert done.parse().file is not None
    file_id = done.parse().file.id
    assert client.files.content(file_id).content == TRAIN
    assert client.fine_tuning.jobs.create(model=MAPPED, training_file=file_id).status == "validating_files"
    other = client.uploads.create(
        filename="x.jsonl", purpose="fine-tune", bytes=3, mime_type="application/jsonl"
    )
    assert client.uploads.cancel(other.id).status == "cancelled"
    with pytest.raises(openai.BadRequestError, match="cancelled"):
        client.uploads.parts.create(other.id, data=b"abc")


# -- configuration and the command ---------------------------------------------------------------------


def test_another_host_needs_keys_and_keys_are_never_shown(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="without an API key"):
        GatewayConfig(host="0.0.0.0", home=tmp_path)
    config = GatewayConfig(host="0.0.0.0", api_keys=(KEY_A,), home=tmp_path)  # type: ignore[arg-type]
    assert isinstance(config.keys[0].key, SecretStr)
    assert KEY_A not in repr(config)
    with pytest.raises(ConfigurationError, match="names no provider"):
        GatewayConfig(models={MAPPED: "llama"})


def test_the_keys_are_not_stored(gateway: GatewayServer, openapi: Check, tmp_path: Path) -> None:
    _upload(_client(gateway), openapi)
    database = (tmp_path / "home" / "gateway" / "state.sqlite").read_bytes()
    assert KEY_A.encode() not in database


def test_importing_the_gateway_loads_no_server_library() -> None:
    code = (
        "import sys, json, unitune.gateway, unitune.cli._gateway_cmds; "
        "print(json.dumps([m for m in ('fastapi', 'uvicorn', 'starlette') if m in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == []


def test_the_command_refuses_a_public_bind_without_keys() -> None:
    from typer.testing import CliRunner

    import unitune.cli._gateway_cmds  # noqa: F401  (registers the command)
    from unitune.cli import app

    runner = CliRunner()
    assert "--map" in runner.invoke(app, ["gateway", "--help"]).output
    result = runner.invoke(app, ["gateway", "--provider", "fake", "--host", "0.0.0.0"])
    assert result.exit_code != 0
    assert "without an API key" in result.output
    result = runner.invoke(app, ["gateway", "--provider", "fake", "--map", "gpt-4o-mini"])
    assert result.exit_code != 0
    assert "OPENAI_MODEL=PROVIDER:MODEL" in result.output


def test_many_clients_polling_many_jobs_at_once(
    gateway: GatewayServer, fake: FakeProvider, openapi: Check
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    client = _client(gateway)
    file_id = _upload(client, openapi)
    same = {"Idempotency-Key": "burst"}
    with ThreadPoolExecutor(8) as pool:  # one key sent by eight clients at once: one job
        burst = list(pool.map(lambda _: client.fine_tuning.jobs.create(
            model=MAPPED, training_file=file_id, extra_headers=same).id, range(8)))  # fmt: skip
    assert len(set(burst)) == 1
    jobs = [burst[0]] + [
        client.fine_tuning.jobs.create(model=MAPPED, training_file=file_id).id for _ in range(9)
    ]

    def poll(i: int) -> str:
        own = _client(gateway)
        for _ in range(5):
            status: str = own.fine_tuning.jobs.retrieve(jobs[i % len(jobs)]).status
        own.fine_tuning.jobs.list(limit=5)
        return status

    _step(fake, 6)
    with ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(poll, range(40)))
    assert set(statuses) == {"succeeded"}
    listed = client.fine_tuning.jobs.list(limit=100).data
    assert len(listed) == 10
    assert all(len(j.result_files) == 1 for j in listed)  # one result file each, however many polled
    assert len([f for f in client.files.list() if f.purpose == "fine-tune-results"]) == 10


def test_the_budget_cap_refuses_a_dear_job_before_anything_is_made(
    fake: FakeProvider, tmp_path: Path, openapi: Check
) -> None:
    # Key A is capped at a cent a job; key B only by the gateway's cap of $100.
    keys = (GatewayKey(SecretStr(KEY_A), max_cost_usd=0.01), SecretStr(KEY_B))
    with start_gateway(_config(tmp_path / "home", api_keys=keys, max_cost_usd=100.0)) as server:
        client = _client(server)
        file_id = _upload(client, openapi)
        with pytest.raises(openai.BadRequestError) as caught:
            client.fine_tuning.jobs.create(model=MAPPED, training_file=file_id)
        assert caught.value.code == "budget_exceeded"
        assert "max_cost_usd" in caught.value.message
        assert not fake.calls_to("upload")
        assert _jobs_rows(tmp_path / "home") == 0
        other = _client(server, KEY_B)
        assert other.fine_tuning.jobs.create(model=MAPPED, training_file=_upload(other, openapi)).id
    with pytest.raises(ConfigurationError, match="max_cost_usd"):
        GatewayKey(SecretStr(KEY_A), max_cost_usd=-1)


def test_the_command_serves_and_its_state_survives_kill_9(tmp_path: Path, openapi: Check) -> None:
    import os
    import re

    env = {**os.environ, "UNITUNE_HOME": str(tmp_path / "home"), "PYTHONUNBUFFERED": "1"}
    code = "import unitune.cli._gateway_cmds; from unitune.cli._app import app; app()"
    argv = [sys.executable, "-c", code, "gateway", "--provider", "fake", "--port", "0", "--api-key", KEY_A]

    def start() -> tuple[subprocess.Popen[str], str]:
        process = subprocess.Popen(
            argv, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        assert process.stdout is not None
        line = process.stdout.readline()
        found = re.search(r"on (http://\S+/v1) over fake", line)
        assert found, line
        return process, found.group(1)

    process, url = start()
    try:
        client = openai.OpenAI(base_url=url, api_key=KEY_A, max_retries=0, timeout=30)
        job = client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=_upload(client, openapi))
    finally:
        process.kill()  # SIGKILL: no shutdown code runs
        process.wait(10)
    process, url = start()
    try:
        client = openai.OpenAI(base_url=url, api_key=KEY_A, max_retries=0, timeout=30)
        # The fake's jobs died with its process; the gateway still lists the job as last seen.
        assert [j.id for j in client.fine_tuning.jobs.list()] == [job.id]
        assert client.files.list().data[0].filename == "train.jsonl"
    finally:
        process.kill()  # SIGKILL: no shutdown code runs
        process.wait(10)


def test_a_keys_file_gives_each_tenant_a_cap_and_errors_name_the_line_not_the_key(tmp_path: Path) -> None:
    from unitune.cli._gateway_cmds import read_keys_file

    keys = tmp_path / "keys"
    keys.write_text(f"# team a, capped\n{KEY_A} 50\n\n{KEY_B}  # uncapped\n")
    read = read_keys_file(keys)
    assert [(k.key.get_secret_value(), k.max_cost_usd) for k in read] == [(KEY_A, 50.0), (KEY_B, None)]
    keys.write_text(f"{KEY_A} fifty\n")
    with pytest.raises(ConfigurationError, match=r"keys:1: expected KEY or KEY MAX_COST_USD") as caught:
        read_keys_file(keys)
    assert KEY_A not in str(caught.value)
