"""`plan_migration`, `run_migration` and `migrate` end to end: OpenAI's side and the target both fakes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.migrate.conftest import World, answer, rows, write_jsonl
from unitune import FineTuneClient
from unitune.errors import ConfigurationError
from unitune.migrate import (
    DEFAULT_LEARNING_RATES,
    decide,
    idempotency_key,
    map_hyperparameters,
    migrate,
    plan_migration,
    render,
    run_migration,
)
from unitune.testing import FakeProvider

TOGETHER_8B = "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference"


# -- the plan ------------------------------------------------------------------------------------------


def test_dry_run_plans_model_hyperparameters_and_quote_and_creates_nothing(world: World) -> None:
    report = migrate(world.source, world.target, data=world.train, dry_run=True)

    assert [r.verdict for r in report.jobs] == ["planned"]
    plan = report.jobs[0].plan
    assert plan.source_job_id == world.job.id
    assert (plan.source_model, plan.method, plan.suffix) == ("gpt-4o-mini-2024-07-18", "sft", "support")
    # The proposal is live on the target and trains the method.
    catalog = world.target.catalog
    entry = catalog.find("together", plan.target_model or "")
    assert entry is not None
    assert "sft" in entry.methods
    assert catalog.lifecycle("together", entry.id, today=world.target.clock.now().date()).state != "retired"
    # OpenAI's multiplier × Together's default rate; epochs and batch size as they were.
    hp = plan.hyperparameters
    assert hp.epochs == 3
    assert hp.batch_size == 8
    assert hp.learning_rate == pytest.approx(2.0 * DEFAULT_LEARNING_RATES["together"])
    assert hp.learning_rate_multiplier is None
    assert any("multiplier 2 × together's default" in n for n in plan.mapping_notes)
    assert plan.quote is not None
    assert plan.quote.total_usd is not None
    assert plan.quote.total_usd > 0
    assert plan.idempotency_key == idempotency_key("openai", world.job.id)
    assert world.target_fake.calls_to("create_job") == []
    assert world.target_fake.calls_to("upload") == []
    text = render(report)
    assert "PLANNED" in text
    assert "quote:" in text


def test_a_job_without_data_is_said_clearly_and_not_run(world: World) -> None:
    plan = plan_migration(world.source, world.target)

    job = plan.jobs[0]
    assert not job.ready
    assert job.data.kind == "none"
    assert any("no data available" in p and "--data" in p for p in job.problems)
    assert job.quote is None
    report = run_migration(plan)
    assert report.jobs[0].verdict == "not run"
    assert "no data available" in report.jobs[0].reason
    assert world.target_fake.calls_to("create_job") == []
    assert "PROBLEM: no data available" in str(plan)


def test_the_users_mapping_overrides_the_catalog_by_alias(world: World) -> None:
    plan = plan_migration(
        world.source, world.target, data=world.train, model_map={"gpt-4o-mini": "llama-3.1-8b-instruct"}
    )

    job = plan.jobs[0]
    assert job.target_model == TOGETHER_8B
    assert "mapping" in job.target_model_reason
    assert job.ready


def test_a_mapping_to_a_model_the_target_lacks_is_a_problem(world: World) -> None:
    plan = plan_migration(
        world.source, world.target, data=world.train, model_map={"gpt-4o-mini": "gpt-4.1-mini"}
    )

    assert not plan.jobs[0].ready
    assert "does not resolve" in plan.jobs[0].problems[0]


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"model_map": {"gpt-4o-mini": ""}}, "model_map"),
        ({"jobs": "ftjob-1"}, "jobs must be a list"),
        ({"data": 3}, "data must be a file path"),
    ],
)
def test_malformed_arguments_are_configuration_errors_with_a_fix(
    world: World, kwargs: dict[str, object], words: str
) -> None:
    with pytest.raises(ConfigurationError, match=words) as e:
        plan_migration(world.source, world.target, **kwargs)  # type: ignore[arg-type]
    assert e.value.fix


def test_source_and_target_must_differ(world: World) -> None:
    with pytest.raises(ConfigurationError, match="both 'openai'") as e:
        plan_migration(world.source, world.source)
    assert e.value.fix


def test_only_succeeded_jobs_are_listed_and_a_named_failed_one_is_a_problem(world: World) -> None:
    world.source_fake.fail_next_job("boom")
    failed = world.source.create_job(model="gpt-4o-mini", training_data=world.train)
    for _ in range(10):
        failed = world.source.get_job(failed)

    listed = plan_migration(world.source, world.target, data=world.train)
    assert [j.source_job_id for j in listed.jobs] == [world.job.id]
    assert any("not succeeded" in n for n in listed.notes)
    named = plan_migration(world.source, world.target, jobs=[failed.id], data=world.train)
    assert "has not succeeded" in named.jobs[0].problems[0]


def test_data_per_job_and_a_missing_file(world: World, tmp_path: Path) -> None:
    plan = plan_migration(world.source, world.target, data={world.job.id: str(tmp_path / "gone.jsonl")})
    assert "does not exist" in plan.jobs[0].problems[0]


# -- the run ---------------------------------------------------------------------------------------------


def test_a_run_creates_waits_evaluates_and_a_rerun_creates_nothing_new(world: World, tmp_path: Path) -> None:
    out = tmp_path / "migration"
    first = migrate(world.source, world.target, data=world.train, output_dir=out)

    result = first.jobs[0]
    assert result.verdict == "parity"
    assert result.target_status == "succeeded"
    assert not result.continued
    assert result.fine_tuned_model is not None
    assert {q.name for q in result.quality} == {"new", "source", "together-base+5-shot"}
    source_row = next(q for q in result.quality if q.name == "source")
    assert source_row.provider == "openai"
    assert source_row.low is not None
    assert source_row.high is not None
    assert result.cost_per_1k_before_usd is not None
    assert result.cost_per_1k_after_usd is not None
    assert result.training_usd is not None
    assert "held out" in result.data_note
    assert (out / "migration.md").is_file()
    saved = json.loads((out / "migration.json").read_text(encoding="utf-8"))
    assert saved["jobs"][0]["verdict"] == "parity"
    assert (out / world.job.id / "evaluation" / "report.json").is_file()
    created = len(world.target_fake.calls_to("create_job"))
    assert created == 1

    again = migrate(world.source, world.target, data=world.train, output_dir=out)
    assert len(world.target_fake.calls_to("create_job")) == created
    assert again.jobs[0].continued
    assert again.jobs[0].target_job_id == result.target_job_id
    assert again.jobs[0].verdict == "parity"


def test_a_worse_replacement_is_called_worse(world: World) -> None:
    # The new tuned model (an ft: model on the target) answers wrong; the target's base is right.
    world.target_fake.set_reply(answer(lambda m: not m.startswith("ft:")))
    report = migrate(world.source, world.target, data=world.train)

    result = report.jobs[0]
    assert result.verdict == "worse"
    assert result.high is not None
    assert result.high < 0


def test_a_better_replacement_is_called_better(world: World) -> None:
    world.source_fake.set_reply(answer(lambda m: False))
    report = migrate(world.source, world.target, data=world.train, validation=world.train)

    result = report.jobs[0]
    assert result.verdict == "better"
    assert result.low is not None
    assert result.low > 0
    assert "evaluated on" in result.data_note
    assert "BETTER" in str(report)
    assert "**better**" in render(report, markdown=True)


def test_a_target_that_fails_the_job_is_reported_on_that_job(world: World) -> None:
    world.target_fake.fail_next_job("out of memory")
    report = migrate(world.source, world.target, data=world.train)

    assert report.jobs[0].verdict == "not run"
    assert "out of memory" in report.jobs[0].reason


def test_without_evaluation_the_job_is_created_and_not_judged(world: World) -> None:
    report = migrate(world.source, world.target, data=world.train, evaluate=False)
    assert report.jobs[0].target_status == "succeeded"
    assert report.jobs[0].verdict == "not run"
    assert world.target_fake.calls_to("chat") == []


def test_run_migration_checks_its_arguments(world: World) -> None:
    plan = plan_migration(world.source, world.target, data=world.train)
    with pytest.raises(ConfigurationError, match="parity_margin"):
        run_migration(plan, parity_margin=2)
    with pytest.raises(ConfigurationError, match="MigrationPlan"):
        run_migration("plan")  # type: ignore[arg-type]
    copy = type(plan).model_validate_json(plan.model_dump_json())
    with pytest.raises(ConfigurationError, match="holds no clients") as e:
        run_migration(copy)
    assert e.value.fix


def test_a_handful_of_held_out_examples_is_inconclusive_whatever_they_say(
    world: World, tmp_path: Path
) -> None:
    small = write_jsonl(tmp_path / "small.jsonl", rows(40))
    report = migrate(world.source, world.target, data=small)

    assert report.jobs[0].verdict == "inconclusive"
    assert "only 8 paired examples" in report.jobs[0].reason


# -- the verdict ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("estimate", "low", "high", "p", "verdict"),
    [
        (0.0, 0.0, 0.0, None, "parity"),
        (-0.01, -0.04, 0.02, 0.5, "parity"),
        (-0.05, -0.2, 0.1, 0.5, "inconclusive"),
        (0.3, 0.1, 0.5, 0.001, "better"),
        (0.3, 0.1, 0.5, 0.2, "parity"),  # the interval says better, the exact test does not
        (-0.3, -0.5, -0.1, 0.001, "worse"),
    ],
)
def test_decide(estimate: float, low: float, high: float, p: float | None, verdict: str) -> None:
    assert decide(estimate, low, high, p, margin=0.05, n=50)[0] == verdict
    assert decide(estimate, low, high, p, margin=0.05, n=19)[0] == "inconclusive"


# -- the hyperparameter rule on other targets --------------------------------------------------------------


def _target(world: World, name: str, **settings: object) -> FineTuneClient:
    return FineTuneClient(
        FakeProvider(clock=world.target_fake.clock).as_provider(name, **settings), ledger=False
    )


def test_a_target_that_takes_a_multiplier_gets_it_unchanged(world: World) -> None:
    with _target(world, "vertex", project="my-project") as target:
        hp, notes = map_hyperparameters(
            target,
            "gemini-2.5-flash",
            "sft",
            {"n_epochs": 3, "learning_rate_multiplier": 2.0, "batch_size": 8},
        )
    assert hp.learning_rate_multiplier == 2.0
    assert hp.learning_rate is None
    assert hp.epochs == 3
    assert any("taken as is" in n for n in notes)


def test_a_target_whose_default_rate_is_unknown_keeps_it_and_says_what_has_no_equivalent(
    world: World,
) -> None:
    with _target(world, "bedrock") as target:
        hp, notes = map_hyperparameters(
            target, "amazon.nova-micro-v1:0:128k", "sft",
            {"n_epochs": 2, "learning_rate_multiplier": 2.0, "batch_size": 8, "beta": 0.1},
        )  # fmt: skip
    assert hp.set_fields() == {"epochs": 2}
    assert any("batch size: 8 has no equivalent" in n for n in notes)
    assert any("multiplier 2: no equivalent on bedrock" in n for n in notes)
    assert any("beta: no equivalent" in n for n in notes)


def test_openais_auto_settings_leave_the_targets_defaults(world: World) -> None:
    hp, notes = map_hyperparameters(
        world.target,
        TOGETHER_8B,
        "sft",
        {"n_epochs": "auto", "batch_size": "auto", "learning_rate_multiplier": "auto"},
    )
    assert hp.set_fields() == {}
    assert any("auto" in n for n in notes)


def test_a_target_that_is_not_configured_is_a_problem_of_the_plan(world: World) -> None:
    with _target(world, "vertex") as target:
        plan = plan_migration(
            world.source, target, data=world.train, model_map={"gpt-4o-mini": "gemini-2.5-flash"}
        )
    job = plan.jobs[0]
    assert any("needs a project" in p for p in job.problems)
    assert job.hyperparameters.learning_rate_multiplier == 2.0  # still mapped, for the plan to show


def test_a_job_id_the_source_does_not_have_is_a_configuration_error(world: World) -> None:
    with pytest.raises(ConfigurationError, match="no fine-tuning job 'ftjob-nope'") as e:
        plan_migration(world.source, world.target, jobs=["ftjob-nope"])
    assert e.value.fix


def test_client_migrate_is_the_same_plan(world: World) -> None:
    through_client = world.source.migrate(world.target, data=world.train, dry_run=True)
    direct = migrate(world.source, world.target, data=world.train, dry_run=True)
    assert [r.plan.target_model for r in through_client.jobs] == [r.plan.target_model for r in direct.jobs]
    assert [r.verdict for r in through_client.jobs] == ["planned"]
    with pytest.raises(ConfigurationError, match="provider name or a FineTuneClient"):
        world.source.migrate(42, dry_run=True)  # type: ignore[arg-type]


def test_without_data_the_ledgers_file_is_used_after_its_sha256_is_checked(tmp_path: Path) -> None:
    from tests.migrate.conftest import TODAY
    from unitune.ledger import Ledger
    from unitune.testing import FakeClock

    clock = FakeClock(start=TODAY)
    ledger = Ledger(tmp_path / "ledger.sqlite3")
    source_fake = FakeProvider(clock=clock, reply=answer(lambda m: True)).as_provider("openai")
    target_fake = FakeProvider(clock=clock, reply=answer(lambda m: True)).as_provider("together")
    train = write_jsonl(tmp_path / "train.jsonl", rows(100))
    with (
        FineTuneClient(source_fake, ledger=ledger) as source,
        FineTuneClient(target_fake, ledger=False) as target,
    ):
        job = source.wait(source.create_job(model="gpt-4o-mini", training_data=train, suffix="support"))

        plan = plan_migration(source, target, jobs=[job.id])
        (one,) = plan.jobs
        assert (one.data.kind, one.data.path) == ("ledger", str(train.resolve()))
        assert one.problems == []

        with train.open("a") as f:
            f.write(json.dumps(rows(1)[0]) + "\n")  # the file changed after training
        (changed,) = plan_migration(source, target, jobs=[job.id]).jobs
        assert changed.data.kind == "none"
        assert any("has changed since the job was created" in p for p in changed.problems)
