"""Move fine-tunes off a provider that closes, and prove the replacements are as good.

    from unitune import FineTuneClient
    from unitune.migrate import plan_migration, run_migration

    with FineTuneClient("openai") as source, FineTuneClient("together") as target:
        plan = plan_migration(source, target, data="train.jsonl")   # creates nothing
        print(plan)                                                 # models, settings, quotes
        report = run_migration(plan, output_dir="migration/")       # create, wait, evaluate
        print(report)                                               # parity / better / worse per job

`plan_migration` reads each source job (base model, method, hyperparameters, suffix), finds its
data (OpenAI returns no training files, so the file comes from `data=` / `--data`, else from the
ledger, which records the local file and its sha256 when this machine creates a job; a job with
neither is reported "no data available"), proposes the target model
from the catalog (live, offering the method, the same model or the closest size or price; a
`model_map` overrides), maps the hyperparameters (see `map_hyperparameters`) and quotes the job.
`run_migration` creates the jobs idempotently (keys derived from the source job ids: a rerun
continues), waits, evaluates each new model against the source tuned model and the target's base
model few-shot, and decides parity, better or worse from the difference's interval (`decide`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from unitune.migrate._plan import (
    DEFAULT_LEARNING_RATES,
    DataSource,
    JobPlan,
    MigrationPlan,
    idempotency_key,
    map_hyperparameters,
    plan_migration,
    propose_model,
)
from unitune.migrate._render import render, render_plan
from unitune.migrate._run import (
    DEFAULT_PARITY_MARGIN,
    JobResult,
    MigrationReport,
    QualityRow,
    decide,
    dry_run_report,
    run_migration,
    write_report,
)

if TYPE_CHECKING:
    from unitune.client._sync import FineTuneClient

__all__ = [
    "DEFAULT_LEARNING_RATES",
    "DEFAULT_PARITY_MARGIN",
    "DataSource",
    "JobPlan",
    "JobResult",
    "MigrationPlan",
    "MigrationReport",
    "QualityRow",
    "decide",
    "dry_run_report",
    "idempotency_key",
    "map_hyperparameters",
    "migrate",
    "plan_migration",
    "propose_model",
    "render",
    "render_plan",
    "run_migration",
    "write_report",
]

PathMap = str | os.PathLike[str] | Mapping[str, str | os.PathLike[str]] | None


def migrate(
    source_client: FineTuneClient,
    target_client: FineTuneClient,
    *,
    jobs: Sequence[str] | None = None,
    data: PathMap = None,
    validation: PathMap = None,
    model_map: Mapping[str, str] | None = None,
    dry_run: bool = False,
    wait: bool = True,
    evaluate: bool = True,
    output_dir: str | os.PathLike[str] | None = None,
    parity_margin: float = DEFAULT_PARITY_MARGIN,
) -> MigrationReport:
    """Plan and (unless `dry_run`) run a migration: what `unitune migrate` and `client.migrate` do.

    A dry run creates nothing and returns the plan as a report whose jobs are `planned` (or `not
    run`, with the reason).

    Args:
        source_client: the client of the provider the fine-tunes are on.
        target_client: the client of the provider they move to.
        jobs: as in `plan_migration`.
        data: as in `plan_migration`.
        validation: as in `plan_migration`.
        model_map: as in `plan_migration`.
        dry_run: plan and quote only; create nothing.
        wait: as in `run_migration`.
        evaluate: as in `run_migration`.
        output_dir: as in `run_migration`.
        parity_margin: as in `run_migration`.

    Returns:
        The migration's report.
    """
    plan = plan_migration(
        source_client, target_client, jobs=jobs, data=data, validation=validation, model_map=model_map
    )
    if dry_run:
        report = dry_run_report(plan, parity_margin=parity_margin)
        if output_dir is not None:
            from pathlib import Path

            write_report(report, Path(output_dir))
        return report
    return run_migration(
        plan, wait=wait, evaluate=evaluate, output_dir=output_dir, parity_margin=parity_margin
    )
