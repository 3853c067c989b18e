"""The everyday commands (`--version`, `upload`, `create`, `metrics`, `files`, `clean`) through
Typer's test runner, against the fake provider on a fake clock, each test with its own home."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

import tests.test_cli as cli_tests
from unitune import FineTuneClient
from unitune.cli import app
from unitune.testing import FakeProvider

MODEL = "gpt-4o-mini"
ROWS = cli_tests.TRAINING_ROWS
# The CLI tests' fixtures: a private home, cache and working directory (autouse), the fake every
# client uses, a small training file.
home = cli_tests.home
fake = cli_tests.fake
train_file = cli_tests.train_file


def invoke(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def parse_json(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def error_line(result: Result, code: int = 1) -> str:
    """The one line a failed command prints on stderr, after checking it failed cleanly."""
    assert result.exit_code == code, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


# -- --version --------------------------------------------------------------------------------------


def test_version_prints_the_installed_version(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("UNITUNE_CONFIG", str(tmp_path / "missing.toml"))  # no config is read
    result = invoke("--version")
    assert result.exit_code == 0, result.output
    assert result.stdout == f"unitune {version('unitune')}\n"


# -- upload -----------------------------------------------------------------------------------------


def test_upload_prints_the_file_id_and_the_next_command(fake: FakeProvider, train_file: Path) -> None:
    result = invoke("upload", str(train_file), "--provider", "fake", "--model", MODEL)
    assert result.exit_code == 0, result.output
    assert len(fake.calls_to("upload")) == 1
    assert "file-fake-" in result.stdout
    assert "next: unitune create --training-file file-fake-" in result.stdout
    assert f"--model {MODEL} --provider fake" in result.stdout


def test_upload_json_and_validation_purpose(fake: FakeProvider, train_file: Path) -> None:
    ref = parse_json(
        invoke("upload", str(train_file), "--provider", "fake", "--purpose", "validation", "--json")
    )
    assert ref["id"].startswith("file-fake-")
    assert ref["purpose"] == "validation"
    assert ref["provider"] == "fake"


def test_upload_of_bad_data_uploads_nothing(fake: FakeProvider, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": [{"role": "user", "content": "no answer"}]}\n' * 3)
    line = error_line(invoke("upload", str(bad), "--provider", "fake"))
    assert line.startswith("error: ValidationFailed:")
    assert "nothing was uploaded" in line
    assert fake.calls_to("upload") == []


def test_upload_usage_errors_exit_2(fake: FakeProvider, train_file: Path) -> None:
    assert "not one of 'training', 'validation'" in error_line(
        invoke("upload", str(train_file), "--provider", "fake", "--purpose", "test"), code=2
    )
    error_line(invoke("upload", "missing.jsonl", "--provider", "fake"), code=2)
    assert "not one of 'sft', 'dpo'" in error_line(
        invoke("upload", str(train_file), "--provider", "fake", "--method", "rlhf"), code=2
    )


# -- create -----------------------------------------------------------------------------------------


def test_create_from_a_local_file(fake: FakeProvider, train_file: Path) -> None:
    result = invoke("create", "--training-file", str(train_file), "--model", MODEL, "--provider", "fake",
                    "--epochs", "2", "--learning-rate-multiplier", "0.5", "--batch-size", "4", "--suffix", "t")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert len(fake.calls_to("upload")) == 1
    job = fake.list_jobs()[0]
    assert job.id in result.stdout
    assert f"next: unitune wait {job.id} --provider fake" in result.stdout
    assert job.hyperparameters["epochs"] == 2
    assert job.hyperparameters["learning_rate_multiplier"] == 0.5
    assert job.hyperparameters["batch_size"] == 4


def test_create_from_an_uploaded_file_id(fake: FakeProvider, train_file: Path) -> None:
    ref = parse_json(invoke("upload", str(train_file), "--provider", "fake", "--json"))
    job = parse_json(invoke("create", "--training-file", ref["id"], "--model", MODEL, "--provider", "fake",
                            "--idempotency-key", "k1", "--json"))  # fmt: skip
    assert job["training_file"] == ref["id"]
    assert len(fake.calls_to("upload")) == 1  # the id is used as is, nothing uploaded again
    again = parse_json(invoke("create", "--training-file", ref["id"], "--model", MODEL, "--provider", "fake",
                              "--idempotency-key", "k1", "--json"))  # fmt: skip
    assert again["id"] == job["id"]


def test_create_with_uploaded_training_and_validation_ids(fake: FakeProvider, train_file: Path) -> None:
    train = parse_json(invoke("upload", str(train_file), "--provider", "fake", "--json"))["id"]
    valid = parse_json(
        invoke("upload", str(train_file), "--provider", "fake", "--purpose", "validation", "--json")
    )
    job = parse_json(invoke("create", "--training-file", train, "--validation-file", valid["id"], "--model", MODEL,
                            "--provider", "fake", "--json"))  # fmt: skip
    assert job["training_file"] == train
    assert job["validation_file"] == valid["id"]


def test_create_with_an_unknown_file_id_fails_in_one_line(fake: FakeProvider) -> None:
    line = error_line(
        invoke("create", "--training-file", "file-nope", "--model", MODEL, "--provider", "fake")
    )
    assert line.startswith("error: NotFoundError:")
    assert "file-nope" in line


def test_create_with_a_mistyped_path_is_a_usage_error(fake: FakeProvider, tmp_path: Path) -> None:
    line = error_line(
        invoke("create", "--training-file", "data/trian.jsonl", "--model", MODEL, "--provider", "fake"),
        code=2,
    )
    assert "no file 'data/trian.jsonl'" in line
    assert "unitune files" in line
    assert fake.calls_to("create_job") == []


def test_create_over_budget_uploads_nothing(fake: FakeProvider, train_file: Path) -> None:
    result = invoke("create", "--training-file", str(train_file), "--model", MODEL, "--provider", "fake",
                    "--max-cost-usd", "0")  # fmt: skip
    line = error_line(result)
    assert "BudgetExceeded" in line
    assert fake.calls_to("upload") == []


# -- metrics ----------------------------------------------------------------------------------------


@pytest.fixture
def finished_job(fake: FakeProvider, train_file: Path, home: Path) -> str:
    """A fake job of 3 epochs × 20 steps that has succeeded."""
    with FineTuneClient(fake, ledger=home / "ledger.sqlite3") as client:
        job = client.create_job(model=MODEL, training_data=train_file,
                                hyperparameters={"epochs": 3, "provider_options": {"steps_per_epoch": 20}})  # fmt: skip
        return client.wait(job).id


def test_metrics_table_thins_a_long_run(fake: FakeProvider, finished_job: str) -> None:
    result = invoke("metrics", finished_job, "--provider", "fake")
    assert result.exit_code == 0, result.output
    rows = [line for line in result.stdout.splitlines() if line.startswith("│")]
    assert len(rows) == 30
    assert "showing 30 of 60 steps" in result.stdout
    assert "valid loss" in result.stdout


def test_metrics_json_has_every_step(fake: FakeProvider, finished_job: str) -> None:
    items = parse_json(invoke("metrics", finished_job, "--provider", "fake", "--json"))
    assert len(items) == 60
    assert items[0]["step"] < items[-1]["step"]


def test_metrics_plot_writes_a_png(fake: FakeProvider, finished_job: str, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    png = tmp_path / "out" / "loss.png"
    result = invoke("metrics", finished_job, "--provider", "fake", "--plot", str(png))
    assert result.exit_code == 0, result.output
    assert png.read_bytes().startswith(b"\x89PNG")
    assert "loss curve:" in result.stdout


def test_metrics_plot_without_matplotlib_names_the_extra(
    fake: FakeProvider, finished_job: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib raises ImportError
    line = error_line(
        invoke("metrics", finished_job, "--provider", "fake", "--plot", str(tmp_path / "l.png"))
    )
    assert "pip install 'unitune[plot]'" in line
    assert fake.calls_to("list_metrics") == []  # refused before asking the provider


def test_metrics_on_a_provider_without_them_is_one_line(fake: FakeProvider) -> None:
    fake.as_provider("vertex", project="p", location="us-central1", bucket="b")  # Vertex: no metrics API
    line = error_line(invoke("metrics", "ftjob-1", "--provider", "vertex"))
    assert line.startswith(
        "error: UnsupportedFeatureError: The 'vertex' provider does not support training metrics."
    )
    assert fake.calls_to("list_metrics") == []


def test_metrics_of_a_job_with_none_yet(fake: FakeProvider, train_file: Path, home: Path) -> None:
    with FineTuneClient(fake, ledger=home / "ledger.sqlite3") as client:
        job = client.create_job(model=MODEL, training_data=train_file)
    result = invoke("metrics", job.id, "--provider", "fake")
    assert result.exit_code == 0, result.output
    assert "No metrics reported for this job (yet)." in result.stdout


# -- files ------------------------------------------------------------------------------------------


def test_files_lists_and_deletes(fake: FakeProvider, train_file: Path) -> None:
    first = parse_json(invoke("upload", str(train_file), "--provider", "fake", "--json"))["id"]
    second = parse_json(invoke("upload", str(train_file), "--provider", "fake", "--json"))["id"]

    table = invoke("files", "--provider", "fake")
    assert table.exit_code == 0, table.output
    assert first in table.stdout
    assert second in table.stdout
    assert [f["id"] for f in parse_json(invoke("files", "--provider", "fake", "--json"))] == [second, first]

    deleted = invoke("files", "--provider", "fake", "--delete", first)
    assert deleted.exit_code == 0, deleted.output
    assert f"deleted {first} from fake" in deleted.stdout
    assert [f["id"] for f in parse_json(invoke("files", "--provider", "fake", "--json"))] == [second]
    assert parse_json(invoke("files", "--provider", "fake", "--delete", second, "--json")) == {
        "deleted": second, "provider": "fake",
    }  # fmt: skip
    assert "No files uploaded to fake" in invoke("files", "--provider", "fake").stdout


def test_files_delete_of_an_unknown_id_is_one_line(fake: FakeProvider) -> None:
    line = error_line(invoke("files", "--provider", "fake", "--delete", "file-nope"))
    assert line.startswith("error: NotFoundError:")


def test_files_on_a_vendor_without_a_files_api_names_its_console(fake: FakeProvider) -> None:
    line = error_line(invoke("files", "--provider", "mistral"))
    assert "does not support listing uploaded files" in line
    assert "https://console.mistral.ai/" in line


# -- clean ------------------------------------------------------------------------------------------


def _old_local_job(home: Path, job_id: str, status: str) -> Path:
    from unitune.providers.local._store import JobState, Store

    job = Store(home / "local").job(job_id)
    job.path.mkdir(parents=True)
    spec = {"model": "m", "training_file": "file-local-0", "validation_file": None, "hyperparameters": {}}
    job.spec_path.write_text(json.dumps(spec))
    (job.path / "adapter.bin").write_bytes(b"x" * 3000)
    ended = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=45)).isoformat()
    job.write_state(JobState(status=status, created_at=ended, finished_at=ended))
    return job.path


def test_clean_dry_run_lists_and_keeps(home: Path) -> None:
    job = _old_local_job(home, "ftjob-local-old", "failed")
    result = invoke("clean", "--dry-run")
    assert result.exit_code == 0, result.output
    assert str(job) in result.stdout
    assert "failed 45 days ago" in result.stdout
    assert re.search(r"would free \d+\.\d KB \(1 item\); run without --dry-run", result.stdout)
    assert job.exists()


def test_clean_removes_and_says_what_was_freed(home: Path) -> None:
    job = _old_local_job(home, "ftjob-local-old", "cancelled")
    data = parse_json(invoke("clean", "--json"))
    assert data["dry_run"] is False
    assert [i["path"] for i in data["items"]] == [str(job)]
    assert data["freed_bytes"] == data["bytes"] >= 3000
    assert not job.exists()
    assert "Nothing to clean older than 30 days." in invoke("clean").stdout


def test_clean_keeps_what_is_younger_than_older_than(home: Path) -> None:
    job = _old_local_job(home, "ftjob-local-old", "succeeded")
    assert "Nothing to clean older than 60 days." in invoke("clean", "--older-than", "60").stdout
    assert job.exists()
    error_line(invoke("clean", "--older-than", "-1"), code=2)


# -- files on the local trainer, and the client's files API -------------------------------------------


def _stored(home: Path, digest: str, text: str = "{}\n") -> str:
    files = home / "local" / "files"
    files.mkdir(parents=True, exist_ok=True)
    file_id = f"file-local-{digest:0>16}"
    (files / f"{file_id}.jsonl").write_text(text)
    return file_id


def test_files_of_the_local_trainer(home: Path) -> None:
    from unitune.providers.registry import provider_info

    if not provider_info("local").installed:  # the CLI builds it by name, which needs its extra
        pytest.skip("the local extra (torch, transformers, peft) is not installed")
    file_id = _stored(home, "ab", "x" * 100)
    listed = parse_json(invoke("files", "--provider", "local", "--json"))
    assert [(f["id"], f["size_bytes"], f["provider"]) for f in listed] == [(file_id, 100, "local")]
    assert invoke("files", "--provider", "local", "--delete", file_id).exit_code == 0
    assert parse_json(invoke("files", "--provider", "local", "--json")) == []


def test_local_delete_file_refuses_other_ids_and_files_an_unfinished_job_reads(home: Path) -> None:
    from unitune.errors import ConfigurationError, NotFoundError
    from unitune.providers.local import LocalProvider, LocalSettings, _proc_start
    from unitune.providers.local._store import JobState, Store

    store = Store(home / "local")
    local = LocalProvider(LocalSettings(home=store.root))
    home.mkdir(parents=True, exist_ok=True)
    (home / "secret.txt").write_text("keep")
    for bad in ("../secret", "file-local-zz", "file-local-00000000000000ab"):
        with pytest.raises(NotFoundError):
            local.delete_file(bad)
    used = _stored(home, "cd")
    job = store.job("ftjob-local-running")
    job.path.mkdir(parents=True)
    job.spec_path.write_text(json.dumps({"model": "m", "training_file": used, "hyperparameters": {}}))
    job.write_state(JobState(status="running"))
    (job.path / "pid").write_text(f"{os.getpid()} {_proc_start(os.getpid()) or ''}")  # a live worker
    with pytest.raises(ConfigurationError, match="used by the running job 'ftjob-local-running'"):
        local.delete_file(used)
    assert (store.files / f"{used}.jsonl").exists()
    assert (home / "secret.txt").exists()


def test_async_client_files(fake: FakeProvider, train_file: Path) -> None:
    import asyncio

    from unitune import AsyncFineTuneClient

    async def run() -> list[str]:
        async with AsyncFineTuneClient(fake, ledger=False) as client:
            ref = await client.upload(train_file, model=MODEL)
            before = [f.id for f in await client.files()]
            await client.delete_file(ref.id)
            return [*before, *(f.id for f in await client.files(limit=5))]

    assert asyncio.run(run()) == ["file-fake-000001"]
