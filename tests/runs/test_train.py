"""`client.train`, `retrain` and `sweep` against the fake, impersonating real vendors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.runs.conftest import job_toml, knowing_tuned_models
from unitune import FineTuneClient
from unitune.errors import BudgetExceeded, ConfigurationError, JobSpecRefused, ValidationFailed
from unitune.providers.fake import FakeProvider
from unitune.runs import RunInterrupted

CONFIG = """
provider = "together"
[providers.bedrock]
region = "us-east-1"
bucket = "unitune-test"
role_arn = "arn:aws:iam::123456789012:role/unitune"
"""


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tickets: Path) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "unitune.toml").write_text(CONFIG)
    return tmp_path


@pytest.fixture
def fake(workdir: Path, unitune_fake: FakeProvider, tickets: Path) -> FakeProvider:
    knowing_tuned_models(unitune_fake, tickets)
    return unitune_fake


def test_train_runs_every_step_and_records_the_run(workdir: Path, fake: FakeProvider) -> None:
    client = FineTuneClient.from_config()
    result = client.train(job_toml(workdir))
    run = result.run
    assert (run.status, run.provider, run.name) == ("succeeded", "together", "tickets")
    assert run.model == "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference"  # the alias, resolved
    assert result.job is not None
    assert run.job_id == result.job.id
    assert run.fine_tuned_model == result.job.fine_tuned_model
    assert run.quote_usd is not None
    assert run.quote_usd > 0
    assert result.metrics
    assert result.loss_png is not None
    assert Path(result.loss_png).is_file()
    # Evaluated against the job file's baselines on the held-out split, and recorded.
    report = result.evaluation
    assert report is not None
    assert {c.name for c in report.candidates} == {"base", "base+2-shot", "tuned"}
    assert report.examples == 25  # 25% of 100
    assert (run.decision, run.primary_metric, run.score) == ("ship", "json_fields", 1.0)
    assert run.verdict is not None
    assert run.verdict.startswith("ship:")
    assert Path(run.run_dir or "", "evaluation", "report.html").is_file()
    assert client.get_run(run.run_id[:6]) == run
    assert [r.run_id for r in client.runs(name="tickets")] == [run.run_id]
    spec = json.loads(run.spec_json)
    assert spec["provider"] == "together"
    assert spec["hyperparameters"]["epochs"] == 2


def test_running_the_same_job_again_follows_the_job_already_made(workdir: Path, fake: FakeProvider) -> None:
    client = FineTuneClient.from_config()
    first = client.train(job_toml(workdir))
    again = client.train(job_toml(workdir), overrides={"evaluate.max_examples": 5})
    assert again.reattached
    assert again.run.run_id == first.run.run_id
    assert again.job is not None
    assert first.job is not None
    assert again.job.id == first.job.id
    assert len(fake.calls_to("create_job")) == 1
    changed = client.train(job_toml(workdir), overrides={"hyperparameters.epochs": 3})
    assert not changed.reattached
    assert changed.run.run_id != first.run.run_id
    assert len(fake.calls_to("create_job")) == 2


def test_a_quote_above_the_budget_starts_nothing(workdir: Path, fake: FakeProvider) -> None:
    client = FineTuneClient.from_config()
    with pytest.raises(BudgetExceeded, match=r"budget_usd=\$0.00"):
        client.train(job_toml(workdir), overrides={"budget_usd": 0.000001})
    assert fake.calls_to("upload") == []
    assert fake.calls_to("create_job") == []


def test_data_the_vendor_refuses_starts_nothing(workdir: Path, fake: FakeProvider) -> None:
    bad = workdir / "tickets.jsonl"
    bad.write_text(bad.read_text() + '{"messages": [{"role": "user", "content": "no answer"}]}\n' * 3)
    with pytest.raises(ValidationFailed, match="nothing was started"):
        FineTuneClient.from_config().train(job_toml(workdir), overrides={"data.validation_split": None})
    assert fake.calls_to("upload") == []


def test_ctrl_c_leaves_the_job_running_and_the_same_file_reattaches(
    workdir: Path, fake: FakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = FineTuneClient.from_config()

    def interrupt(seconds: float) -> None:
        raise KeyboardInterrupt

    sleep = fake.clock.sleep
    monkeypatch.setattr(fake.clock, "sleep", interrupt)  # the user presses Ctrl-C during the first wait
    with pytest.raises(RunInterrupted) as e:
        client.train(job_toml(workdir))
    assert not e.value.job.status.is_terminal
    assert client.get_run(e.value.run.run_id).status == "interrupted"
    monkeypatch.setattr(fake.clock, "sleep", sleep)
    resumed = client.train(job_toml(workdir))
    assert resumed.reattached
    assert resumed.run.run_id == e.value.run.run_id
    assert resumed.run.status == "succeeded"
    assert len(fake.calls_to("create_job")) == 1


def test_retrain_on_new_data_compares_the_child_with_its_parent(workdir: Path, fake: FakeProvider) -> None:
    client = FineTuneClient.from_config()
    parent = client.train(job_toml(workdir)).run
    lines = Path(parent.training_path or "").read_text().splitlines()
    new = workdir / "more.jsonl"
    new.write_text("\n".join(lines[5:] + lines[:2] + [lines[-1]]) + "\n")  # 5 dropped, a duplicate
    child = client.retrain(parent.run_id, data=new)
    assert child.run.parent_id == parent.run_id
    assert child.run.status == "succeeded"
    assert child.data_change is not None
    assert (child.data_change.removed, child.data_change.added, child.data_change.duplicates) == (3, 0, 1)
    assert child.run.validation_sha256 == parent.validation_sha256  # scored on the parent's examples
    assert child.evaluation is not None
    assert "parent" in {c.name for c in child.evaluation.candidates}
    assert len(fake.calls_to("create_job")) == 2  # a retrain is a new job, even on similar data


def test_retrain_on_another_provider_maps_the_base_model(workdir: Path, fake: FakeProvider) -> None:
    client = FineTuneClient.from_config()
    parent = client.train(job_toml(workdir)).run
    child = client.retrain(parent.run_id, provider="bedrock")
    assert (child.run.provider, child.run.model) == ("bedrock", "meta.llama3-1-8b-instruct-v1:0:128k")


def test_retrain_refuses_a_run_whose_data_moved_or_changed(workdir: Path, fake: FakeProvider) -> None:
    client = FineTuneClient.from_config()
    parent = client.train(job_toml(workdir)).run
    validation = Path(parent.validation_path or "")
    validation.write_text(validation.read_text() + validation.read_text().splitlines()[0] + "\n")
    with pytest.raises(ConfigurationError, match="validation data changed since the run"):
        client.retrain(parent.run_id)
    validation.unlink()
    with pytest.raises(ConfigurationError, match=r"validation data moved: .* no longer exists"):
        client.retrain(parent.run_id)
    with pytest.raises(ConfigurationError, match="No run 'nope'"):
        client.retrain("nope")
    assert len(fake.calls_to("create_job")) == 1


def test_a_two_by_two_grid_over_two_providers_is_ranked(workdir: Path, fake: FakeProvider) -> None:
    client = FineTuneClient.from_config()
    result = client.sweep(job_toml(workdir), grid={"epochs": [1, 2], "batch_size": [8, 16]},
                          providers=["together", "bedrock"], concurrency=3)  # fmt: skip
    tuned = [row for row in result.leaderboard if row.role == "tuned"]
    assert len(tuned) == 8
    assert len(fake.calls_to("create_job")) == 8
    assert {row.provider for row in tuned} == {"together", "bedrock"}
    assert all(row.score == 1.0 and row.status == "succeeded" for row in tuned)
    baselines = [row for row in result.leaderboard if row.role == "baseline"]
    assert {row.name for row in baselines} == {
        f"{p}: {b}" for p in ("together", "bedrock") for b in ("base", "base+2-shot")
    }
    assert result.leaderboard[: len(tuned)] == tuned  # best first
    assert {r.sweep_id for r in result.runs} == {result.sweep_id}
    assert result.total_quote_usd is None  # Bedrock has no price for this model in the catalog
    # A rerun resumes: the same keys find the same jobs.
    again = client.sweep(job_toml(workdir), grid={"epochs": [1, 2], "batch_size": [8, 16]},
                         providers=["together", "bedrock"])  # fmt: skip
    assert again.sweep_id == result.sweep_id
    assert len(fake.calls_to("create_job")) == 8


def test_a_sweep_over_budget_or_refused_anywhere_starts_nothing(workdir: Path, fake: FakeProvider) -> None:
    client = FineTuneClient.from_config()
    with pytest.raises(BudgetExceeded, match=r"The sweep \(4 jobs\) is quoted at"):
        client.sweep(job_toml(workdir), grid={"epochs": [1, 3, 5, 7]}, overrides={"budget_usd": 0.01})
    with pytest.raises(ConfigurationError, match="no training price for bedrock epochs=1"):
        client.sweep(job_toml(workdir), grid={"epochs": [1]}, providers=["together", "bedrock"],
                     overrides={"budget_usd": 100})  # fmt: skip
    # Together takes an absolute learning rate: the whole sweep is refused before any job.
    with pytest.raises(JobSpecRefused, match="learning_rate_multiplier"):
        client.sweep(job_toml(workdir), grid={"learning_rate_multiplier": [0.5, 1.0]})
    with pytest.raises(ConfigurationError, match="not a hyperparameter"):
        client.sweep(job_toml(workdir), grid={"epoch": [1]})
    assert fake.calls_to("upload") == []
    assert fake.calls_to("create_job") == []


def test_a_failed_job_in_a_sweep_is_reported_and_the_rest_go_on(workdir: Path, fake: FakeProvider) -> None:
    fake.fail_next_job("out of memory")
    result = FineTuneClient.from_config().sweep(job_toml(workdir), grid={"epochs": [1, 2, 3]}, concurrency=1)
    statuses = sorted(row.status for row in result.leaderboard if row.role == "tuned")
    assert statuses == ["failed", "succeeded", "succeeded"]
    failed = next(row for row in result.leaderboard if row.status == "failed")
    assert "out of memory" in failed.note
    assert failed.score is None


def test_vendor_tracking_is_passed_to_a_vendor_with_a_wandb_integration_and_refused_elsewhere(
    workdir: Path, fake: FakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = FineTuneClient.from_config()
    vendor = '[tracking]\nbackend = "wandb"\nvendor = true\nexperiment = "triage"\n'
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    with pytest.raises(JobSpecRefused, match="WANDB_API_KEY"):  # Together logs with a key sent with the job
        client.train(job_toml(workdir, vendor))
    monkeypatch.setenv("WANDB_API_KEY", "wandb-test-key")
    result = client.train(job_toml(workdir, vendor))
    assert result.run.status == "succeeded"
    assert result.run.tracking is None  # the vendor logs; unitune logged nothing itself
    assert [c.args["wandb"] for c in fake.calls_to("create_job")] == ["triage"]
    with pytest.raises(JobSpecRefused, match="bedrock"):
        client.train(job_toml(workdir, vendor), overrides={"provider": "bedrock"})
    assert len(fake.calls_to("upload")) == 2  # training and validation, of the one run that started
    assert "wandb-test-key" not in result.run.spec_json


def test_the_async_client_trains_and_lists_runs(workdir: Path, fake: FakeProvider) -> None:
    import asyncio

    from unitune import AsyncFineTuneClient

    async def main() -> tuple[str, list[str]]:
        client = AsyncFineTuneClient("together")
        result = await client.train(job_toml(workdir))
        return result.run.run_id, [r.run_id for r in await client.runs()]

    run_id, listed = asyncio.run(main())
    assert listed == [run_id]


def test_a_failed_job_is_not_followed_again_a_rerun_is_a_fresh_attempt(
    workdir: Path, fake: FakeProvider
) -> None:
    from unitune.errors import JobFailedError

    client = FineTuneClient.from_config()
    fake.fail_next_job("the vendor's capacity ran out")
    with pytest.raises(JobFailedError, match="capacity"):
        client.train(job_toml(workdir))
    (failed,) = client.runs()
    assert failed.status == "failed"
    assert "capacity" in (failed.error or "")
    retried = client.train(job_toml(workdir))
    assert retried.run.status == "succeeded"
    assert retried.run.run_id != failed.run_id
    assert retried.run.key == f"{failed.key}-r2"
    assert len(fake.calls_to("create_job")) == 2


BAD: list[object] = [
    None,
    "",
    123,
    -1,
    2.5,
    float("nan"),
    [],
    {},
    object(),
    True,
    b"x",
    Path("/nonexistent/x"),
]


@pytest.mark.parametrize("method", ["train", "sweep", "retrain"])
def test_no_bad_argument_escapes_the_error_tree(workdir: Path, fake: FakeProvider, method: str) -> None:
    import inspect

    from unitune.errors import UnituneError

    client = FineTuneClient.from_config()
    parent = client.train(job_toml(workdir)).run.run_id
    good = {"job": job_toml(workdir), "run": parent}
    fn = getattr(client, method)
    params = [p for p in inspect.signature(fn).parameters.values() if p.kind is not p.VAR_KEYWORD]
    escapes = []
    for p in params:
        for bad in BAD:
            kwargs = {q.name: good[q.name] for q in params if q.name in good}
            kwargs[p.name] = bad
            try:
                fn(**kwargs)
            except UnituneError as e:
                if "\n" in str(e):
                    escapes.append(f"{method}({p.name}={bad!r}): several lines")
            except Exception as e:
                escapes.append(f"{method}({p.name}={bad!r}): {type(e).__name__}: {e}")
    assert escapes == []


def test_retrain_on_the_whole_dataset_again_leaves_the_parents_validation_examples_out(
    workdir: Path, fake: FakeProvider, tickets: Path
) -> None:
    client = FineTuneClient.from_config()
    parent = client.train(job_toml(workdir)).run  # 75 train / 25 held out of tickets.jsonl
    child = client.retrain(parent.run_id, data=tickets)  # the whole file again, held-out tickets included
    change = child.data_change
    assert change is not None
    assert (change.held_out, change.in_validation, change.after) == (25, 0, 75)
    assert "25 validation example(s) in the new data left out" in change.summary()
    trained_on = Path(child.run.training_path or "").read_text().splitlines()
    assert not set(trained_on) & set(Path(parent.validation_path or "").read_text().splitlines())
