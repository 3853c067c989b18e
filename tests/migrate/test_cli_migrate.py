"""`unitune migrate` through Typer's test runner, every client routed to one `FakeProvider`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

import unitune.cli._migrate_cmds  # noqa: F401  # registers `migrate` (the CLI package imports it once wired)
from tests.migrate.conftest import TODAY, answer, rows, write_jsonl
from unitune import FineTuneClient
from unitune.cli import app
from unitune.testing import FakeClock, FakeProvider, override_provider
from unitune.types import Job


@pytest.fixture(autouse=True)
def wide(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setenv("UNITUNE_HOME", str(tmp_path / "home"))


@pytest.fixture
def fake() -> Iterator[FakeProvider]:
    # One fake answers for both providers (a view per name, sharing jobs), as in `unitune_fake`.
    provider = FakeProvider(clock=FakeClock(start=TODAY), reply=answer(lambda m: True))
    with override_provider(provider):
        yield provider


@pytest.fixture
def train(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "train.jsonl", rows(100))


@pytest.fixture
def source_job(fake: FakeProvider, train: Path) -> Job:
    with FineTuneClient("openai") as client:
        job = client.create_job(model="gpt-4o-mini", training_data=train, hyperparameters={"epochs": 2})
        return client.wait(job)


def test_dry_run_json_is_the_plan(fake: FakeProvider, source_job: Job, train: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["migrate", "--from", "openai", "--to", "together", "--job", source_job.id, "--data", str(train),
         "--map", "gpt-4o-mini=llama-3.1-8b-instruct", "--dry-run", "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["dry_run"] is True
    job = report["jobs"][0]
    assert job["verdict"] == "planned"
    assert job["plan"]["target_model"] == "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference"
    assert job["plan"]["hyperparameters"]["epochs"] == 2
    assert job["plan"]["quote"]["total_usd"] > 0
    assert len(fake.calls_to("create_job")) == 1  # the source's only


def test_a_run_prints_the_report_and_writes_it(
    fake: FakeProvider, source_job: Job, train: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    args = [
        "migrate",
        "--from",
        "openai",
        "--to",
        "together",
        "--job",
        source_job.id,
        "--data",
        str(train),
        "-o",
        str(out),
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "Migration report: openai → together" in result.stdout
    assert "PARITY" in result.stdout
    assert (out / "migration.md").is_file()

    again = CliRunner().invoke(app, [*args, "--json"])
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["jobs"][0]["continued"] is True
    assert len(fake.calls_to("create_job")) == 2  # the source's and one replacement

    # One fake answers for both sides, so the source's list shows the replacement too: a job made
    # by a migration is never itself planned for migration.
    listed = CliRunner().invoke(
        app, ["migrate", "--from", "openai", "--to", "together", "--data", str(train), "--dry-run", "--json"]
    )
    assert [j["plan"]["source_job_id"] for j in json.loads(listed.stdout)["jobs"]] == [source_job.id]


def test_usage_errors(fake: FakeProvider) -> None:
    bad_map = CliRunner().invoke(app, ["migrate", "--from", "openai", "--to", "together", "--map", "nothing"])
    assert bad_map.exit_code == 2
    assert "SRC=DST" in bad_map.output
    same = CliRunner().invoke(app, ["migrate", "--from", "openai", "--to", "openai", "--json"])
    assert same.exit_code == 1
    assert "both 'openai'" in json.loads(same.stdout)["error"]["message"]
