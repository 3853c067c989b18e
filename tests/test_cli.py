"""The `unitune` command line, driven through Typer's test runner against the fake provider.

Every test runs with its own unitune home and working directory, so no real config or ledger is
touched, and (where it needs one) with the CLI's provider routed to a `FakeProvider` on a
`FakeClock`, so waiting for a job takes no time.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

import unitune.cli._app as cli_app
from unitune import FineTuneClient, Job, JobFailedError, JobStatus, Ledger
from unitune.cli import app
from unitune.testing import FakeClock, FakeProvider, FakeSettings, override_provider

TRAINING_ROWS = [
    {"messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]}
    for prompt, answer in [("hi", "hello"), ("my order is late", "sorry"), ("refund please", "done")]
]


# -- fixtures and helpers -------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A private unitune home, cache and working directory; no config from the environment."""
    home = tmp_path / "unitune-home"
    monkeypatch.setenv("UNITUNE_HOME", str(home))
    monkeypatch.setenv("UNITUNE_CACHE", str(tmp_path / "cache"))
    for var in ("UNITUNE_PROVIDER", "UNITUNE_CONFIG", "FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"):
        monkeypatch.delenv(var, raising=False)
    # Wide enough that Rich tables show ids whole; the 80-column case has its own test.
    monkeypatch.setenv("COLUMNS", "200")
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    return home


@pytest.fixture
def fake() -> Iterator[FakeProvider]:
    """The provider every client (the CLI's included) uses in this test."""
    provider = FakeProvider(clock=FakeClock())
    with override_provider(provider):
        yield provider


@pytest.fixture
def train_file(tmp_path: Path) -> Path:
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in TRAINING_ROWS), encoding="utf-8")
    return path


@pytest.fixture
def client(fake: FakeProvider, home: Path) -> Iterator[FineTuneClient]:
    """A client on the fake that records its jobs in the ledger the CLI reads."""
    with FineTuneClient(fake, ledger=home / "ledger.sqlite3") as c:
        yield c


def new_job(client: FineTuneClient, train_file: Path, **kwargs: Any) -> Job:
    return client.create_job(model=kwargs.pop("model", "gpt-4o-mini"), training_data=train_file, **kwargs)


def invoke(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def parse_json(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def error_line(result: Result) -> str:
    """The one line a failed command prints on stderr, after checking it failed cleanly."""
    assert result.exit_code == 1, result.output
    # A clean failure is `typer.Exit(1)`; any other exception would be a traceback in a terminal.
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


# -- providers ------------------------------------------------------------------------------------


@pytest.fixture
def planned(monkeypatch: pytest.MonkeyPatch) -> str:
    """A vendor whose adapter is not in this release (every built-in one is, today)."""
    from unitune.providers import registry

    info = registry.ProviderInfo("acme", "acme_unitune:AcmeProvider", "acme", ("acme_sdk",), "Acme fine-tuning",
                                 available=False)  # fmt: skip
    monkeypatch.setitem(registry.BUILTIN_PROVIDERS, "acme", info)
    return "acme"


def test_providers_table_lists_installed_and_planned(planned: str) -> None:
    result = invoke("providers")

    assert result.exit_code == 0, result.output
    rows = {line.split("│")[1].strip(): line for line in result.stdout.splitlines() if "│" in line}
    assert "installed" in rows["fake"]
    assert "planned" in rows["acme"]
    assert 'pip install "unitune[acme]"' in rows["acme"]
    for vendor in ("openai", "together", "bedrock", "mistral", "cohere"):
        assert "installed" in rows[vendor]  # dev dependencies: their adapters' tests run
    assert result.stderr == ""


def test_providers_json(planned: str) -> None:
    rows = parse_json(invoke("providers", "--json"))

    by_name = {r["name"]: r for r in rows}
    assert by_name["fake"]["state"] == "installed"
    assert by_name["fake"]["capabilities"]["chat"] is True
    assert by_name["acme"]["state"] == "planned"
    assert by_name["acme"]["install"] == 'pip install "unitune[acme]"'
    assert by_name["acme"]["capabilities"] is None
    assert by_name["together"]["capabilities"]["dpo"] is True


def test_providers_filter() -> None:
    rows = parse_json(invoke("providers", "--provider", "fake", "--json"))

    assert [r["name"] for r in rows] == ["fake"]


# -- jobs -----------------------------------------------------------------------------------------


def test_jobs_empty() -> None:
    result = invoke("jobs")

    assert result.exit_code == 0, result.output
    assert "No jobs recorded yet" in result.stdout


def test_jobs_lists_recorded_jobs(client: FineTuneClient, train_file: Path, home: Path) -> None:
    first = new_job(client, train_file)
    second = new_job(client, train_file, model="llama-3-8b")

    result = invoke("jobs")

    assert (home / "ledger.sqlite3").is_file()
    assert result.exit_code == 0, result.output
    assert first.id in result.stdout
    assert second.id in result.stdout
    assert "llama-3-8b" in result.stdout
    assert "No jobs recorded yet" not in result.stdout
    # Newest first.
    assert result.stdout.index(second.id) < result.stdout.index(first.id)


def test_jobs_json(client: FineTuneClient, train_file: Path) -> None:
    first = new_job(client, train_file)
    second = new_job(client, train_file)
    client.wait(first)

    entries = parse_json(invoke("jobs", "--json"))

    assert [e["job_id"] for e in entries] == [second.id, first.id]
    assert {e["provider"] for e in entries} == {"fake"}
    assert entries[1]["status"] == "succeeded"
    assert entries[1]["fine_tuned_model"] == client.get_job(first).fine_tuned_model
    assert entries[0]["status"] == "validating"


def test_jobs_provider_filter(client: FineTuneClient, train_file: Path, home: Path) -> None:
    mine = new_job(client, train_file)
    other = mine.model_copy(update={"provider": "together", "id": "ft-together-1"})
    Ledger(home / "ledger.sqlite3").record(other, spec_hash=None, idempotency_key=None)

    assert [e["job_id"] for e in parse_json(invoke("jobs", "--json"))] == ["ft-together-1", mine.id]
    assert [e["job_id"] for e in parse_json(invoke("jobs", "--provider", "fake", "--json"))] == [mine.id]
    together = parse_json(invoke("jobs", "--provider", "together", "--json"))
    assert [e["job_id"] for e in together] == ["ft-together-1"]


def test_jobs_limit(client: FineTuneClient, train_file: Path) -> None:
    jobs = [new_job(client, train_file) for _ in range(3)]

    entries = parse_json(invoke("jobs", "--limit", "2", "--json"))

    assert [e["job_id"] for e in entries] == [jobs[2].id, jobs[1].id]


# -- status ---------------------------------------------------------------------------------------


def test_status_finds_the_provider_in_the_ledger(
    client: FineTuneClient, train_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = new_job(client, train_file)
    asked: list[str | None] = []
    real_client = cli_app._client

    def spy(provider: str | None, **kwargs: Any) -> FineTuneClient:
        asked.append(provider)
        return real_client(provider, **kwargs)

    monkeypatch.setattr(cli_app, "_client", spy)

    result = invoke("status", job.id)

    assert result.exit_code == 0, result.output
    assert asked == ["fake"]  # from the ledger: no --provider, and the config names another
    assert f"{job.id} on fake:" in result.stdout
    assert "model: gpt-4o-mini" in result.stdout


def test_status_json(client: FineTuneClient, train_file: Path) -> None:
    job = new_job(client, train_file)

    data = parse_json(invoke("status", job.id, "--json"))

    assert data["id"] == job.id
    assert data["provider"] == "fake"
    assert data["status"] == "queued"  # one poll past "validating"
    assert data["model"] == "gpt-4o-mini"


def test_status_of_a_job_on_several_providers_asks_for_one(
    client: FineTuneClient, train_file: Path, home: Path
) -> None:
    job = new_job(client, train_file)
    Ledger(home / "ledger.sqlite3").record(
        job.model_copy(update={"provider": "together"}), spec_hash=None, idempotency_key=None
    )

    line = error_line(invoke("status", job.id))

    assert "ConfigurationError" in line
    assert "several providers" in line
    assert "fake" in line
    assert "together" in line
    assert "--provider" in line
    # Naming the provider settles it.
    assert parse_json(invoke("status", job.id, "--provider", "fake", "--json"))["id"] == job.id


def test_status_unknown_job(fake: FakeProvider) -> None:
    line = error_line(invoke("status", "ftjob-missing", "--provider", "fake"))

    assert "NotFoundError" in line
    assert "ftjob-missing" in line


# -- wait -----------------------------------------------------------------------------------------


def test_wait_prints_the_fine_tuned_model(client: FineTuneClient, train_file: Path) -> None:
    job = new_job(client, train_file)

    result = invoke("wait", job.id)

    assert result.exit_code == 0, result.output
    tuned = client.get_job(job).fine_tuned_model
    assert tuned is not None
    assert f"fine-tuned model: {tuned}" in result.stdout
    assert "succeeded" in result.stdout
    assert "progress: 100%" in result.stdout
    assert result.stderr == ""


def test_wait_json(client: FineTuneClient, train_file: Path, fake: FakeProvider) -> None:
    job = new_job(client, train_file)

    data = parse_json(invoke("wait", job.id, "--json"))

    assert data["id"] == job.id
    assert data["status"] == "succeeded"
    assert data["fine_tuned_model"].startswith("ft:gpt-4o-mini:fake:")
    assert len(fake.calls_to("get_job")) >= 5  # it polled through the whole progression


def test_wait_on_a_failing_job_exits_1(client: FineTuneClient, train_file: Path, fake: FakeProvider) -> None:
    fake.fail_next_job("boom")
    job = new_job(client, train_file)

    line = error_line(invoke("wait", job.id))

    assert "JobFailedError" in line
    assert "boom" in line
    assert job.id in line


def test_wait_json_on_a_failing_job(client: FineTuneClient, train_file: Path, fake: FakeProvider) -> None:
    fake.fail_next_job("boom")
    job = new_job(client, train_file)

    result = invoke("wait", job.id, "--json")

    assert result.exit_code == 1
    error = json.loads(result.stdout)["error"]
    assert error["type"] == "JobFailedError"
    assert "boom" in error["message"]


def test_wait_timeout(train_file: Path, home: Path) -> None:
    clock = FakeClock()
    never_done = FakeProvider(FakeSettings(progression=(JobStatus.RUNNING,)), clock=clock)
    with override_provider(never_done):
        job = new_job(FineTuneClient(never_done, ledger=home / "ledger.sqlite3"), train_file)

        line = error_line(invoke("wait", job.id, "--timeout", "30"))

    assert "WaitTimeout" in line
    assert job.id in line
    assert "still running after 30s" in line
    assert 30 <= clock.monotonic() < 60  # gave up at the deadline, on the fake clock


# -- events, cancel -------------------------------------------------------------------------------


def test_events_table(client: FineTuneClient, train_file: Path) -> None:
    job = client.wait(new_job(client, train_file))

    result = invoke("events", job.id)

    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "Validating training file" in out
    assert "Training started" in out
    assert "Job succeeded" in out
    assert out.index("Validating training file") < out.index("Job succeeded")


def test_events_json(client: FineTuneClient, train_file: Path, fake: FakeProvider) -> None:
    fake.fail_next_job("boom")
    job = new_job(client, train_file)
    with pytest.raises(JobFailedError, match="boom"):
        client.wait(job)

    events = parse_json(invoke("events", job.id, "--json"))

    messages = [e["message"] for e in events]
    assert messages[0] == "Validating training file"
    assert messages[-1] == "Job failed: boom"
    assert events[-1]["level"] == "error"
    assert {e["level"] for e in events[:-1]} == {"info"}


def test_cancel(client: FineTuneClient, train_file: Path, fake: FakeProvider) -> None:
    job = new_job(client, train_file)

    data = parse_json(invoke("cancel", job.id, "--json"))

    assert data["id"] == job.id
    assert data["status"] == "cancelling"
    assert [c.args["job_id"] for c in fake.calls_to("cancel_job")] == [job.id]


def test_cancel_table(client: FineTuneClient, train_file: Path) -> None:
    job = new_job(client, train_file)

    result = invoke("cancel", job.id)

    assert result.exit_code == 0, result.output
    assert f"{job.id} on fake: cancelling" in result.stdout


# -- chat -----------------------------------------------------------------------------------------


def test_chat_plain(fake: FakeProvider) -> None:
    result = invoke("chat", "gpt-4o-mini", "My order is late")

    assert result.exit_code == 0, result.output
    assert result.stdout == "[gpt-4o-mini] My order is late\n"
    assert fake.calls_to("chat")[-1].args == {"model": "gpt-4o-mini", "messages": 1}


def test_chat_json(fake: FakeProvider) -> None:
    data = parse_json(invoke("chat", "gpt-4o-mini", "hello there", "--json"))

    assert data["content"] == "[gpt-4o-mini] hello there"
    assert data["model"] == "gpt-4o-mini"
    assert data["provider"] == "local"  # the fake stands in for the configured provider (local by default)
    assert data["usage"]["completion_tokens"] == 3


def test_chat_system_message(fake: FakeProvider) -> None:
    fake.set_reply(lambda model, messages: " | ".join(f"{m.role}={m.content}" for m in messages))

    result = invoke("chat", "gpt-4o-mini", "hi", "--system", "Be brief.")

    assert result.exit_code == 0, result.output
    assert result.stdout == "system=Be brief. | user=hi\n"


def test_chat_with_an_unknown_tuned_model(fake: FakeProvider) -> None:
    line = error_line(invoke("chat", "ft:nope", "hi"))

    assert "NotFoundError" in line
    assert "ft:nope" in line


def test_interrupt_exits_130(fake: FakeProvider) -> None:
    def interrupted(model: str, messages: object) -> str:
        raise KeyboardInterrupt

    fake.set_reply(interrupted)

    result = invoke("chat", "gpt-4o-mini", "hi")

    assert result.exit_code == 130
    assert result.stderr.strip() == "interrupted"


# -- demo -----------------------------------------------------------------------------------------


def test_demo_json(tmp_path: Path) -> None:
    workdir = tmp_path / "demo"

    data = parse_json(
        invoke("demo", "--provider", "fake", "--json", "--examples", "20", "--eval-examples", "3",
               "--workdir", str(workdir))
    )  # fmt: skip

    assert data["provider"] == "fake"
    assert data["job"]["status"] == "succeeded"
    assert data["job"]["fine_tuned_model"]
    assert data["metrics"]
    assert data["workdir"] == str(workdir)
    assert data["validation"].startswith("OK: 20 examples")
    assert data["quote"]["provider"] == "fake"
    assert data["evaluation"]["examples"] == 3
    assert "verdict" in data["evaluation"]
    train = (workdir / "train.jsonl").read_text(encoding="utf-8").splitlines()
    valid = (workdir / "validation.jsonl").read_text(encoding="utf-8").splitlines()
    assert (len(train), len(valid)) == (16, 4)
    assert json.loads((workdir / "demo-result.json").read_text())["job"]["id"] == data["job"]["id"]
    # The demo's fake jobs live only in its own process, so the machine's ledger stays empty.
    assert parse_json(invoke("jobs", "--json")) == []


# -- errors ---------------------------------------------------------------------------------------


def test_unknown_provider_suggests_the_closest() -> None:
    line = usage_line(invoke("chat", "gpt-4o-mini", "hi", "--provider", "togther"))  # a bad option value

    assert "'--provider'" in line
    assert "Unknown provider 'togther'" in line
    assert "Did you mean 'together'" in line


def test_planned_provider_says_it_is_not_available_yet(planned: str) -> None:
    result = invoke("status", "ft-1", "--provider", "acme")

    line = error_line(result)
    assert "'acme' adapter is not part of unitune" in line
    assert "available in this release: fake" in line


def test_provider_from_the_environment_is_checked_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UNITUNE_PROVIDER", "togther")

    line = error_line(invoke("chat", "gpt-4o-mini", "hi"))

    assert "Did you mean 'together'" in line


def test_json_error_mode() -> None:
    result = invoke("chat", "gpt-4o-mini", "hi", "--provider", "togther", "--json")

    assert result.exit_code == 2  # a bad option value is a usage error
    assert isinstance(result.exception, SystemExit)
    assert result.stderr == ""
    data = json.loads(result.stdout)
    assert list(data) == ["error"]
    assert data["error"]["type"] == "UsageError"
    assert "Did you mean 'together'" in data["error"]["message"]


def test_malformed_config_file_is_named() -> None:
    Path("unitune.toml").write_text("provider = [\n", encoding="utf-8")

    line = error_line(invoke("jobs"))

    assert "ConfigurationError" in line
    assert "unitune.toml" in line
    assert "not valid TOML" in line


def test_invalid_config_setting_is_named() -> None:
    Path("unitune.toml").write_text("provider = 3\n", encoding="utf-8")

    result = invoke("status", "ft-1", "--json")

    assert result.exit_code == 1
    error = json.loads(result.stdout)["error"]
    assert error["type"] == "ConfigurationError"
    assert "unitune.toml" in error["message"]
    assert "'provider'" in error["message"]


def test_no_command_shows_help() -> None:
    result = invoke()

    assert "Usage" in result.output
    for command in ("providers", "jobs", "status", "wait", "events", "cancel", "chat", "demo"):
        assert command in result.output


# -- known bugs -----------------------------------------------------------------------------------


def test_error_messages_are_printed_verbatim(
    client: FineTuneClient, train_file: Path, fake: FakeProvider
) -> None:
    fake.fail_next_job("boom [fake] [/x]")
    job = new_job(client, train_file)

    line = error_line(invoke("wait", job.id))

    assert "boom [fake] [/x]" in line


def test_provider_error_keeps_the_provider_tag(fake: FakeProvider) -> None:
    line = error_line(invoke("status", "ftjob-missing", "--provider", "fake"))

    assert "[fake] HTTP 404" in line


def test_fine_tuned_model_id_is_printed_verbatim(client: FineTuneClient, train_file: Path) -> None:
    job = new_job(client, train_file, suffix="rocket")

    result = invoke("wait", job.id)

    assert result.exit_code == 0, result.output
    assert "fine-tuned model: ft:gpt-4o-mini:fake:rocket:" in result.stdout


def test_chat_reply_is_printed_verbatim(fake: FakeProvider) -> None:
    fake.set_reply("Sure :smile: see ft:m:fake:x")

    result = invoke("chat", "gpt-4o-mini", "hi")

    assert result.stdout == "Sure :smile: see ft:m:fake:x\n"


def test_jobs_table_shows_whole_ids_at_80_columns(
    client: FineTuneClient, train_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    job = new_job(client, train_file)

    result = invoke("jobs")

    assert result.exit_code == 0, result.output
    assert job.id in result.stdout


@pytest.mark.parametrize("command", ["providers", "jobs"])
def test_unknown_provider_filter_is_an_error_not_an_empty_list(command: str) -> None:
    result = invoke(command, "--provider", "togther")
    assert "Did you mean 'together'" in usage_line(result)


def test_unexpected_errors_are_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*a: object, **k: object) -> None:
        raise OSError("disk on fire")

    monkeypatch.setattr(cli_app, "_client", boom)
    result = invoke("chat", "m", "hi")
    assert result.exit_code == 1
    line = error_line(result)
    assert "unexpected OSError: disk on fire" in line
    assert "UNITUNE_DEBUG" in line


# -- dataset commands -----------------------------------------------------------------------------


def _write(path: Path, rows: list[Any]) -> Path:
    path.write_text(
        "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8"
    )
    return path


def test_validate_reports_lines_and_exits_1(tmp_path: Path) -> None:
    data = _write(
        tmp_path / "d.jsonl", [TRAINING_ROWS[0], "{broken", {"messages": [{"role": "user", "content": "x"}]}]
    )
    result = invoke("validate", str(data), "--provider", "openai")
    assert result.exit_code == 1
    assert f"{data}:2:2: error invalid_json" in result.stdout
    assert f"{data}:3: error missing_assistant" in result.stdout
    assert "FAILED" in result.stdout


def test_validate_json_and_fix(tmp_path: Path) -> None:
    rows = [
        {"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "a"}]}
        for i in range(12)
    ]
    data = _write(tmp_path / "d.jsonl", [*rows, rows[0], ""])
    fixed = tmp_path / "fixed.jsonl"
    result = invoke("validate", str(data), "--provider", "openai", "--json", "--fix", str(fixed))
    payload = parse_json(result)
    assert payload["ok"] is True
    assert payload["counts"]["duplicate_example"] == 1
    assert payload["stats"]["examples"] == 13
    assert payload["fix"]["kept"] == 12
    assert payload["fix"]["dropped"] == {"duplicate_example": 1}
    assert len(fixed.read_text().splitlines()) == 12


def test_convert_and_split(tmp_path: Path) -> None:
    rows = [{"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": f"q{i}"},
                          {"role": "assistant", "content": "a"}]} for i in range(10)]  # fmt: skip
    data = _write(tmp_path / "d.jsonl", rows)
    out = tmp_path / "claude.jsonl"
    result = invoke("convert", str(data), "--format", "bedrock-claude", "-o", str(out), "--json")
    payload = parse_json(result)
    assert payload["written"] == 10
    first = json.loads(out.read_text().splitlines()[0])
    assert first == {
        "system": "s",
        "messages": [{"role": "user", "content": "q0"}, {"role": "assistant", "content": "a"}],
    }
    result = invoke(
        "split", str(data), "-o", str(tmp_path / "parts"), "--validation-fraction", "0.3", "--json"
    )
    payload = parse_json(result)
    assert (payload["train_examples"], payload["validation_examples"]) == (7, 3)


def test_convert_unknown_format_suggests(tmp_path: Path) -> None:
    data = _write(tmp_path / "d.jsonl", TRAINING_ROWS)
    result = invoke("convert", str(data), "--format", "bedrock-claud", "-o", str(tmp_path / "o.jsonl"))
    assert result.exit_code == 1
    assert "bedrock-claude" in error_line(result)


# -- catalog commands -----------------------------------------------------------------------------


def test_estimate_json_and_table(tmp_path: Path) -> None:
    rows = [
        {"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "a"}]}
        for i in range(40)
    ]
    data = _write(tmp_path / "d.jsonl", rows)
    payload = parse_json(
        invoke(
            "estimate", str(data), "--model", "gpt-4o-mini", "--provider", "fake", "--epochs", "2", "--json"
        )
    )
    assert payload["provider"] == "fake"
    assert payload["epochs"] == 2
    assert payload["billable_tokens"] == 2 * payload["training_tokens"]
    assert payload["total_usd"] == max(payload["billable_tokens"] * 10 / 1e6, 0.5)
    result = invoke("estimate", str(data), "--model", "gpt-4o-mini", "--provider", "fake")
    assert result.exit_code == 0
    assert "fake gpt-4o-mini: $0.50" in result.stdout  # the minimum charge applies


def test_estimate_unknown_alias_names_who_offers_it(tmp_path: Path) -> None:
    data = _write(tmp_path / "d.jsonl", TRAINING_ROWS)
    result = invoke("estimate", str(data), "--model", "gpt-4o", "--provider", "fake")
    assert result.exit_code == 1
    assert "offered by: openai" in error_line(result)


def test_models_and_prices(tmp_path: Path) -> None:
    rows = parse_json(invoke("models", "--provider", "fake", "--json"))
    assert {r["model"] for r in rows} == {
        "gpt-4o-mini",
        "llama-3.1-8b-instruct",
        "nova-micro",
        "smollm2-135m-instruct",
    }
    assert all(r["accepts_new_jobs"] for r in rows)
    prices = parse_json(invoke("prices", "--provider", "fake", "--json"))
    assert {p["item"] for p in prices} >= {"training any", "tuned inference", "base inference"}
    assert all(p["source"] and p["as_of"] for p in prices)
    result = invoke("models", "--provider", "nope")
    assert result.exit_code == 2


# -- lifecycle: one answer per model everywhere (issue 16) ----------------------------------------

NANO_GONE = dt.date(2026, 12, 7)  # after gpt-4.1-nano's shutdown (2026-10-23), before OpenAI's 2027-01-06


@pytest.fixture
def on_day(monkeypatch: pytest.MonkeyPatch) -> dt.date:
    monkeypatch.setattr(cli_app, "_today", lambda: NANO_GONE)
    return NANO_GONE


def test_models_show_one_lifecycle_per_model(on_day: dt.date) -> None:
    rows = {r["model"]: r for r in parse_json(invoke("models", "--provider", "openai", "--json"))}
    nano = rows["gpt-4.1-nano-2025-04-14"]
    assert nano["accepts_new_jobs"] is False
    assert nano["lifecycle"]["state"] == "retired"
    assert nano["lifecycle"]["phrase"] == "retired 2026-10-23"
    assert "together" in nano["lifecycle"]["alternatives"]
    mini = rows["gpt-4o-mini-2024-07-18"]
    assert (mini["accepts_new_jobs"], mini["lifecycle"]["phrase"]) == (True, "live; training ends 2027-01-06")
    result = invoke("models", "--provider", "openai")
    assert result.exit_code == 0, result.output
    (nano_line,) = [line for line in result.stdout.splitlines() if "gpt-4.1-nano-2025" in line]
    assert "retired 2026-10-23" in nano_line
    assert "live" not in nano_line
    assert "training ends" not in nano_line


def test_providers_take_new_jobs_from_the_catalog(on_day: dt.date) -> None:
    rows = {r["name"]: r for r in parse_json(invoke("providers", "--json"))}
    for name in ("mistral", "cohere"):
        assert rows[name]["accepts_new_jobs"] is False, name
        assert rows[name]["capabilities"]["accepts_new_jobs"] is False, name
        assert rows[name]["lifecycle"].startswith("retired")
    assert rows["openai"]["accepts_new_jobs"] is True
    assert rows["openai"]["lifecycle"] == "live; training ends 2027-01-06"
    assert rows["fake"]["capabilities"]["accepts_new_jobs"] is True


def test_providers_lists_a_catalog_provider_without_an_adapter(on_day: dt.date, tmp_path: Path) -> None:
    old = tmp_path / "old.toml"
    old.write_text(
        '[provider]\nname = "oldco"\naccepts_new_jobs = false\nstatus = "retired: gone"\n'
        '[provider.lifecycle]\nsource = "https://example.test/oldco"\nas_of = 2026-01-01\nverified = true\n'
        '[[provider.sunsets]]\nwhat = "fine_tuning_api"\ndate = 2024-08-01\nsource = "https://example.test/oldco"\n'
        "as_of = 2026-01-01\nverified = true\n"
        '[[models]]\nid = "oldco/llama"\naliases = ["llama-3.1-8b-instruct"]\n',
        encoding="utf-8",
    )
    Path("unitune.toml").write_text(f"catalog = [{json.dumps(str(old))}]\n", encoding="utf-8")

    (row,) = parse_json(invoke("providers", "--provider", "oldco", "--json"))

    assert row["state"] == "no adapter (catalog only)"
    assert (row["accepts_new_jobs"], row["lifecycle"], row["capabilities"]) == (
        False,
        "retired 2024-08-01",
        None,
    )
    models = parse_json(invoke("models", "--alias", "llama-3.1-8b-instruct", "--json"))
    assert {r["provider"]: r["lifecycle"]["state"] for r in models}["oldco"] == "retired"
    data = _write(tmp_path / "d.jsonl", TRAINING_ROWS)
    assert "ProviderRetiredError" in error_line(
        invoke("estimate", str(data), "--model", "oldco/llama", "-p", "oldco")
    )
    quotes = parse_json(
        invoke("estimate", str(data), "--model", "llama-3.1-8b-instruct", "--compare", "--json")
    )
    assert [q["provider"] for q in quotes if not q["available"]] == ["oldco"]  # ranked last, kept to say so


def test_models_by_alias(on_day: dt.date) -> None:
    rows = parse_json(invoke("models", "--alias", "llama-3.1-8b-instruct", "--json"))
    offered = {r["provider"]: r["model"] for r in rows}
    assert offered["together"] == "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference"
    assert offered["local"] == "meta-llama/Llama-3.1-8B-Instruct"
    assert offered["bedrock"].startswith("meta.llama3-1-8b-instruct")
    assert offered["vertex"] == "meta/llama3_1@llama-3.1-8b-instruct"
    assert "openai" not in offered
    result = invoke("models", "--alias", "gpt-4.1-nano")
    assert result.exit_code == 0, result.output
    assert "'gpt-4.1-nano' is offered as:" in result.stdout
    assert "retired 2026-10-23" in result.stdout
    line = usage_line(invoke("models", "--alias", "llama-3.1-8b-instrukt"))
    assert "no provider offers the alias 'llama-3.1-8b-instrukt'" in line
    assert "llama-3.1-8b-instruct" in line


def _examples(tmp_path: Path, n: int = 20) -> Path:
    return _write(tmp_path / "d.jsonl", [
        {"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "a"}]} for i in range(n)
    ])  # fmt: skip


def test_estimate_validate_and_models_agree_on_a_retired_model(on_day: dt.date, tmp_path: Path) -> None:
    data = _examples(tmp_path)
    for command in (
        ("estimate", str(data), "--model", "gpt-4.1-nano", "--provider", "openai"),
        ("validate", str(data), "--model", "gpt-4.1-nano", "--provider", "openai"),
    ):
        line = error_line(invoke(*command))
        assert "ProviderRetiredError" in line, command
        assert "retired 2026-10-23" in line
        assert "together" in line
    quotes = parse_json(invoke("estimate", str(data), "--model", "gpt-4.1-nano", "--compare", "--json"))
    assert [(q["provider"], q["available"]) for q in quotes] == [("openai", False)]
    result = invoke("estimate", str(data), "--model", "gpt-4.1-nano", "--compare")
    assert result.exit_code == 0, result.output
    assert "openai gpt-4.1-nano-2025-04-14: unavailable (retired 2026-10-23)" in result.stdout
    # A closing model is quoted, with its date.
    quote = parse_json(
        invoke("estimate", str(data), "--model", "gpt-4o-mini", "--provider", "openai", "--json")
    )
    assert quote["lifecycle"]["phrase"] == "live; training ends 2027-01-06"
    assert parse_json(
        invoke("validate", str(data), "--model", "gpt-4o-mini", "--provider", "openai", "--json")
    )["ok"]


def test_estimate_compare_uses_the_same_epochs_for_every_row(on_day: dt.date, tmp_path: Path) -> None:
    data = _examples(tmp_path)
    quotes = parse_json(
        invoke("estimate", str(data), "--model", "llama-3.1-8b-instruct", "--compare", "--json")
    )
    assert {q["provider"] for q in quotes} >= {"together", "bedrock", "local", "vertex"}
    assert {q["epochs"] for q in quotes} == {3}
    vertex = next(q for q in quotes if q["provider"] == "vertex")
    assert vertex["model"] == "meta/llama3_1@llama-3.1-8b-instruct"
    assert vertex["total_usd"] is not None
    assert vertex["verified"] is False  # Google's own sample's figure, not its pricing page
    result = invoke("estimate", str(data), "--model", "llama-3.1-8b-instruct", "--compare")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("Every provider quoted at 3 epochs (one shared default")
    assert "[shared default for comparison]" in result.stdout
    quotes = parse_json(
        invoke(
            "estimate", str(data), "--model", "llama-3.1-8b-instruct", "--compare", "--epochs", "12", "--json"
        )
    )
    by = {q["provider"]: q for q in quotes}
    assert by["together"]["epochs"] == 12
    assert (by["bedrock"]["epochs"], by["bedrock"]["epochs_source"]) == (
        10,
        "given, moved into bedrock's 1–10",
    )
    assert "quoted at 10, not 12" in by["bedrock"]["notes"][0]


# -- usage errors: one line, exit 2; failed operations: one line, exit 1 -------------------------


def usage_line(result: Result) -> str:
    """The one line a usage error prints on stderr: exit 2, no usage block, never 'unexpected'."""
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "unexpected" not in lines[0]
    return lines[0]


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["status", ""], "must not be empty"),
        (["cancel", " "], "must not be empty"),
        (["wait", "ft-1", "--timeout", "-1"], "'--timeout'"),
        (["wait", "ft-1", "--poll-interval", "0"], "0 is not above 0"),
        (["jobs", "--limit", "0"], "'--limit'"),
        (["jobs", "--limit", "-5"], "'--limit'"),
        (["prices", "--days", "-1"], "'--days'"),
        (["providers", "--provider", ""], "'--provider'"),
        (["chat", "gpt-4o-mini", ""], "'prompt'"),
        (["chat", "", "hi"], "'model'"),
        (["models", "--alias", ""], "'--alias'"),
        (["estimate", "{data}", "--model", "gpt-4o-mini", "-p", "fake", "--epochs", "-3"], "'--epochs'"),
        (["estimate", "{data}", "--model", "", "-p", "fake"], "'--model'"),
        (["estimate", "{dir}", "--model", "gpt-4o-mini", "-p", "fake"], "is a directory"),
        (["estimate", "{data}", "--model", "gpt-4o-mini", "--validation", "{missing}"], "does not exist"),
        (["split", "{data}", "-o", "{dir}/parts", "--validation-fraction", "0"], "'--validation-fraction'"),
        (["split", "{data}", "-o", "{dir}/parts", "--validation-fraction", "1"], "'--validation-fraction'"),
        (["split", "{data}", "-o", "{dir}/parts", "--seed", "-1"], "'--seed'"),
        (["split", "{data}", "-o", "{data}"], "is a file"),
        (["split", "{dir}", "-o", "{dir}/parts"], "is a directory"),
        (["validate", "{missing}", "-p", "openai"], "does not exist"),
        (["validate", "{dir}", "-p", "openai"], "is a directory"),
        (["validate", "{data}", "-p", "openai", "--method", "rft"], "'--method'"),
        (["validate", "{data}", "-p", "openai", "--redact-pii"], "--fix OUT"),
        (["validate", "{data}", "-p", "openai", "--show", "-1"], "'--show'"),
        (["validate", "{data}", "-p", "openai", "--fix", "{dir}"], "is a directory"),
        (["convert", "{data}", "-p", "openai", "-o", "{dir}"], "is a directory"),
        (["convert", "{missing}", "-p", "openai", "-o", "{dir}/o.jsonl"], "does not exist"),
        (["demo", "--provider", "fake", "--examples", "0"], "'--examples'"),
        (["demo", "--provider", "fake", "--workdir", "{data}"], "is a file"),
        (["nosuchcommand"], "No such command"),
        (["status"], "Missing argument"),
    ],
)
def test_usage_errors_are_one_line_and_exit_2(tmp_path: Path, args: list[str], words: str) -> None:
    folder = tmp_path / "folder"
    folder.mkdir()
    data = _write(tmp_path / "d.jsonl", [{**TRAINING_ROWS[0], "label": "a"}, TRAINING_ROWS[1]])
    paths = {"data": str(data), "dir": str(folder), "missing": str(tmp_path / "missing.jsonl")}

    line = usage_line(invoke(*(a.format(**paths) for a in args)))

    assert words in line
    assert "--help" in line


def test_usage_error_in_json_mode(tmp_path: Path) -> None:
    result = invoke("status", "", "--json")

    assert result.exit_code == 2
    assert result.stderr == ""
    error = json.loads(result.stdout)["error"]
    assert error["type"] == "UsageError"
    assert "must not be empty" in error["message"]


def test_convert_creates_the_output_folder(tmp_path: Path) -> None:
    data = _write(tmp_path / "d.jsonl", TRAINING_ROWS)
    out = tmp_path / "nodir" / "deeper" / "x.jsonl"

    payload = parse_json(invoke("convert", str(data), "-p", "openai", "-o", str(out), "--json"))

    assert payload["written"] == 3
    assert len(out.read_text().splitlines()) == 3


def test_convert_into_a_folder_it_cannot_create(tmp_path: Path) -> None:
    data = _write(tmp_path / "d.jsonl", TRAINING_ROWS)

    line = error_line(invoke("convert", str(data), "-p", "openai", "-o", str(data / "x.jsonl")))

    assert "ConfigurationError: Cannot create the folder" in line


def test_validate_fix_creates_the_output_folder(tmp_path: Path) -> None:
    data = _examples(tmp_path, 12)
    fixed = tmp_path / "out" / "fixed.jsonl"

    assert parse_json(invoke("validate", str(data), "-p", "openai", "--fix", str(fixed), "--json"))["ok"]
    assert len(fixed.read_text().splitlines()) == 12


@pytest.mark.parametrize("content", ["", "\n\n", "{broken\n"])
def test_splitting_a_file_without_examples_fails(tmp_path: Path, content: str) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text(content, encoding="utf-8")

    line = error_line(invoke("split", str(empty), "-o", str(tmp_path / "parts")))

    assert "DatasetError" in line
    assert "no readable examples to split" in line
    assert not (tmp_path / "parts").exists()  # nothing written


def test_split_on_a_key_no_example_has(tmp_path: Path) -> None:
    data = _write(tmp_path / "d.jsonl", [{**TRAINING_ROWS[0], "label": "a"}, TRAINING_ROWS[1]])

    line = error_line(invoke("split", str(data), "-o", str(tmp_path / "parts"), "--stratify", "nosuchkey"))

    assert "No example has the key 'nosuchkey'" in line
    assert "label, messages" in line
    assert not (tmp_path / "parts").exists()


def test_split_stratified(tmp_path: Path) -> None:
    rows = [
        {
            "messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "a"}],
            "label": "ab"[i % 2],
        }
        for i in range(20)
    ]
    data = _write(tmp_path / "d.jsonl", rows)

    payload = parse_json(
        invoke("split", str(data), "-o", str(tmp_path / "p"), "--stratify", "label", "--json")
    )

    assert payload["strata"] == {"a": [8, 2], "b": [8, 2]}


@pytest.mark.parametrize("command", [["jobs"], ["status", "ft-1"]])
def test_a_corrupt_ledger_is_one_line(home: Path, command: list[str], fake: FakeProvider) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "ledger.sqlite3").write_bytes(b"this is not a database" * 100)

    line = error_line(invoke(*command))

    assert "ConfigurationError" in line
    assert "ledger.sqlite3" in line
    assert "unexpected" not in line


def test_a_file_system_refusal_names_the_file(monkeypatch: pytest.MonkeyPatch) -> None:
    def refused(*a: object, **k: object) -> None:
        raise PermissionError(13, "Permission denied", "/nowhere/x.jsonl")

    monkeypatch.setattr(cli_app, "_client", refused)

    line = error_line(invoke("chat", "m", "hi"))

    assert line == "error: PermissionError: Permission denied: '/nowhere/x.jsonl'"


@pytest.mark.parametrize("content", ["", "{broken\n", "\x00\x01 not json\n"])
def test_estimate_of_a_file_without_examples_fails(tmp_path: Path, content: str) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text(content, encoding="utf-8")

    line = error_line(invoke("estimate", str(empty), "--model", "gpt-4o-mini", "--provider", "fake"))

    assert "DatasetError" in line
    assert "no examples to price" in line


def test_estimate_on_an_unknown_provider_suggests_one(tmp_path: Path) -> None:
    data = _write(tmp_path / "d.jsonl", TRAINING_ROWS)

    line = usage_line(invoke("estimate", str(data), "--model", "gpt-4o-mini", "--provider", "togther"))

    assert "Did you mean 'together'" in line


# -- the config's job defaults reach the commands (issue 16, review) -------------------------------------


def test_estimate_and_validate_take_the_model_and_method_from_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = [
        {
            "messages": [
                {"role": "user", "content": f"question {i}"},
                {"role": "assistant", "content": "answer"},
            ]
        }
        for i in range(12)
    ]
    data = _write(tmp_path / "d.jsonl", rows)
    config = tmp_path / "unitune.toml"
    config.write_text(
        'provider = "openai"\n[job]\nhyperparameters = { epochs = 2 }\n[providers.openai]\nmodel = "gpt-4o-mini"\n'
    )
    monkeypatch.setenv("UNITUNE_CONFIG", str(config))
    monkeypatch.delenv("UNITUNE_PROVIDER", raising=False)
    quote = parse_json(invoke("estimate", str(data), "--json"))
    assert quote["model"] == "gpt-4o-mini-2024-07-18"
    assert quote["epochs"] == 2  # [job] hyperparameters, as create_job would train
    assert parse_json(invoke("estimate", str(data), "--epochs", "3", "--json"))["epochs"] == 3
    config.write_text('provider = "openai"\n[job]\nmodel = "gpt-4.1-nano"\n')  # retired
    assert "ProviderRetiredError" in error_line(invoke("validate", str(data)))
    config.write_text('provider = "openai"\n[job]\nmethod = "dpo"\n')
    result = invoke("validate", str(data), "--json")
    assert result.exit_code == 1  # chats where a DPO job needs pairs, as create_job would refuse
    assert "method_mismatch" in result.stdout
    config.write_text('provider = "openai"\n')
    assert "'--model'" in usage_line(invoke("estimate", str(data)))
